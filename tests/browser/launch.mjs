// Debian's Chromium (/usr/bin/chromium, or $CHROMIUM) through playwright-core,
// headless, in a fresh profile, with the flags this machine needs (as root:
// no sandbox; no background networking, which the closed network refuses).
// Playwright's own browser downloads are not used.
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

/// A browser context, the profile directory it lives in, and `close()`,
/// which ends the browser and removes the profile. `options` are more
/// context options (a viewport, `javaScriptEnabled: false`).
export async function launch(options = {}) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "hashd-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    ...options,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-quic",
      "--no-first-run",
    ],
  });
  const close = async () => {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  };
  return { context, profile, close };
}
