// The upload page in headless Chromium, as a remote user sees it: the
// upload throttled (CDP Network.emulateNetworkConditions, 6 MB/s), three
// files at once (two picked, one dropped), progress bars that move, one
// upload cancelled, the others' hashes equal to md5 computed here, copy to
// the clipboard, MATCH and MISMATCH, one file with two algorithms (both
// digests shown and compared), a keyboard-only upload, screenshots at
// 1280 and 390 px, and the plain form without JavaScript: its post is
// redirected to the job page, and reloading that page creates no job. With
// DELAYED_URL (a daemon with --artificial-delay), a PENDING job's page
// follows the job's event stream and shows the final state by itself, and
// without JavaScript says that it reloads itself.
//
// Usage: node page.mjs DAEMON_URL SCREENSHOT_DIR [DELAYED_URL]
// Chromium is Debian's (/usr/bin/chromium, or $CHROMIUM).
import { launch as launchChromium } from "./launch.mjs";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const [daemon, shots, delayed] = process.argv.slice(2);
if (!shots) {
  console.error("usage: node page.mjs DAEMON_URL SCREENSHOT_DIR");
  process.exit(2);
}
fs.mkdirSync(shots, { recursive: true });
const UPLOAD_BYTES_PER_SEC = 6 * 1024 * 1024;
const md5 = (buf) => crypto.createHash("md5").update(buf).digest("hex");
const sha256 = (buf) => crypto.createHash("sha256").update(buf).digest("hex");
// The bytes of a test file: the same generator runs in the page for the
// dropped file, so both sides agree without shipping megabytes through CDP.
const gen = (len, seed) => {
  const b = new Uint8Array(len);
  let x = seed >>> 0;
  for (let i = 0; i < len; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
};
const jobsTotal = async () => (await (await fetch(daemon + "/stats")).json()).jobs.total;
const check = (cond, what) => {
  if (!cond) throw new Error(what);
  console.log("ok:", what);
};

// Test files live here; each browser has its own profile (launch.mjs).
const profile = fs.mkdtempSync(path.join(os.tmpdir(), "hashd-page-"));
let browser = null;
const launch = async (javaScriptEnabled) => {
  if (browser) await browser.close();
  browser = await launchChromium({ javaScriptEnabled, viewport: { width: 1280, height: 900 } });
  return browser.context;
};
let failed = null;
let context;
try {
  context = await launch(true);
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: daemon });
  const page = await context.newPage();
  page.on("pageerror", (e) => (failed ??= "page error: " + e));
  await page.goto(daemon + "/", { waitUntil: "load" });
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  await cdp.send("Network.emulateNetworkConditions", {
    offline: false, latency: 5, downloadThroughput: -1, uploadThroughput: UPLOAD_BYTES_PER_SEC,
  });
  check((await page.textContent("form#upload")).includes("Largest accepted file"), "the limit is shown up front");
  const before = await jobsTotal();

  // Two files by the picker, one by drag and drop: all three at once.
  const a = gen(12 << 20, 1), b = gen(10 << 20, 2), c = gen(8 << 20, 3);
  const dir = fs.mkdtempSync(path.join(profile, "files-"));
  fs.writeFileSync(path.join(dir, "a.bin"), a);
  fs.writeFileSync(path.join(dir, "b.bin"), b);
  await page.setInputFiles("#file", [path.join(dir, "a.bin"), path.join(dir, "b.bin")]);
  await page.click("button[type=submit]");
  const dt = await page.evaluateHandle(([genSrc, len, seed]) => {
    const gen = eval(genSrc);
    const d = new DataTransfer();
    d.items.add(new File([gen(len, seed)], "c.bin"));
    return d;
  }, [gen.toString(), c.length, 3]);
  await page.dispatchEvent("#drop", "drop", { dataTransfer: dt });
  const row = (name) => page.locator("li.file", { has: page.locator(".fname", { hasText: name }) });

  // The bars move: sampled values of a.bin's bar strictly increase.
  const samples = [];
  for (let i = 0; i < 40 && samples.length < 4; i++) {
    const v = await row("a.bin").locator("progress").evaluate((p) => p.value);
    if (v > 0 && v < 100 && (samples.length === 0 || v > samples[samples.length - 1])) samples.push(v);
    await page.waitForTimeout(250);
  }
  console.log("progress samples of a.bin:", samples.map((v) => v.toFixed(1)).join(" "));
  check(samples.length >= 3, "the progress bar moves (3 strictly increasing samples)");
  const info = await row("a.bin").locator(".info").textContent();
  check(/\d+% · [\d.]+ MB\/s · ETA/.test(info), `the row shows percent, rate and ETA (${info})`);
  await page.screenshot({ path: path.join(shots, "page-1280-uploading.png"), fullPage: true });

  // Cancel b.bin while it is in flight; the others go on.
  await row("b.bin").getByRole("button", { name: "Cancel b.bin" }).click();
  await row("b.bin").locator(".info", { hasText: "cancelled" }).waitFor();
  check(true, "b.bin cancelled");

  for (const [name, data] of [["a.bin", a], ["c.bin", c]]) {
    const hash = await row(name).locator("code.hash").textContent({ timeout: 60_000 });
    check(hash === md5(data), `${name}: ${hash} is md5sum's`);
  }
  // Copy, then compare.
  const want = md5(a);
  await row("a.bin").getByRole("button", { name: /^Copy/ }).click();
  check((await page.evaluate(() => navigator.clipboard.readText())) === want, "the copy button puts the hash on the clipboard");
  const expect = row("a.bin").locator("input.expect");
  await expect.fill("0".repeat(32));
  check((await row("a.bin").locator("output.verdict").textContent()) === "MISMATCH", "a wrong expected hash shows MISMATCH");
  await expect.fill(want.toUpperCase());
  check((await row("a.bin").locator("output.verdict").textContent()) === "MATCH", "the right one shows MATCH");
  check((await jobsTotal()) - before === 2, "the cancelled upload made no job");
  await page.locator("#recent li").first().waitFor({ timeout: 10_000 });
  check((await page.locator("#recent").textContent()).includes("c.bin"), "the recent jobs list shows the new jobs");
  await page.screenshot({ path: path.join(shots, "page-1280.png"), fullPage: true });

  // Keyboard only: Tab to the algorithms, Space unticks md5 and ticks
  // sha512, Tab to the picker, Space opens it, Tab to Upload, Enter.
  await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  await page.goto(daemon + "/uploadform", { waitUntil: "load" });
  const k = gen(300 << 10, 4);
  fs.writeFileSync(path.join(dir, "k.bin"), k);
  const focused = () => page.evaluate(() => document.activeElement?.value ?? "");
  const tabTo = async (value) => {
    for (let i = 0; i < 20 && (await focused()) !== value; i++) await page.keyboard.press("Tab");
    return (await focused()) === value;
  };
  check(await tabTo("md5"), "Tab reaches the md5 checkbox");
  await page.keyboard.press("Space");
  check(await tabTo("sha512"), "Tab reaches the sha512 checkbox");
  await page.keyboard.press("Space");
  const chosen = await page.evaluate(() => [...document.querySelectorAll("#algos input:checked")].map((c) => c.value).join(","));
  check(chosen === "sha512", `the algorithm is chosen by keyboard (${chosen})`);
  const algo = chosen;
  for (let i = 0; i < 20 && !(await page.evaluate(() => document.activeElement?.id === "file")); i++) {
    await page.keyboard.press("Tab");
  }
  check(await page.evaluate(() => document.activeElement?.id === "file"), "Tab reaches the file input");
  // Space opens the picker; on a loaded machine the first key press can be
  // lost before the input is ready, so Enter (which opens it too) follows.
  let chooser = null;
  for (const key of ["Space", "Enter", "Space"]) {
    chooser = await Promise.all([page.waitForEvent("filechooser", { timeout: 10_000 }), page.keyboard.press(key)])
      .then(([c]) => c, () => null);
    if (chooser) break;
  }
  check(chooser !== null, "the keyboard opens the file picker");
  await chooser.setFiles(path.join(dir, "k.bin"));
  await page.keyboard.press("Tab");
  check(await page.evaluate(() => document.activeElement?.type === "submit"), "Tab reaches Upload");
  await page.keyboard.press("Enter");
  const kh = await row("k.bin").locator("code.hash").textContent({ timeout: 30_000 });
  const expected = crypto.createHash(algo).update(k).digest("hex");
  check(kh === expected, `keyboard-only upload with ${algo}: ${kh}`);

  // Several algorithms at once, md5 and sha256: the result shows both
  // digests, each with its copy button, and compares a pasted hash with
  // either.
  await page.uncheck("#algos input[value=sha512]");
  await page.check("#algos input[value=md5]");
  const m = gen(200 << 10, 6);
  fs.writeFileSync(path.join(dir, "m.bin"), m);
  await page.check("#algos input[value=sha256]");
  await page.setInputFiles("#file", path.join(dir, "m.bin"));
  await page.click("button[type=submit]");
  const mh = await row("m.bin").locator("code.hash[data-algo=sha256]").textContent({ timeout: 30_000 });
  check(mh === sha256(m), `m.bin: sha256 ${mh} is sha256sum's`);
  const mm = await row("m.bin").locator("code.hash[data-algo=md5]").textContent();
  check(mm === md5(m), `m.bin: md5 ${mm} is md5sum's`);
  check((await row("m.bin").locator("code.hash").count()) === 2, "m.bin shows exactly its two digests");
  await row("m.bin").getByRole("button", { name: "Copy sha256 hash of m.bin" }).click();
  check((await page.evaluate(() => navigator.clipboard.readText())) === sha256(m), "the sha256 copy button copies the sha256 digest");
  const mexpect = row("m.bin").locator("input.expect");
  const mverdict = row("m.bin").locator("output.verdict");
  await mexpect.fill(" " + sha256(m).toUpperCase() + " ");
  check((await mverdict.textContent()) === "MATCH (sha256)", "a pasted sha256 digest shows MATCH (sha256)");
  await mexpect.fill(md5(m));
  check((await mverdict.textContent()) === "MATCH (md5)", "a pasted md5 digest shows MATCH (md5)");
  await mexpect.fill(sha256(a));
  check((await mverdict.textContent()) === "MISMATCH", "another file's sha256 shows MISMATCH");

  // 390 px wide: nothing wider than the screen.
  await page.setViewportSize({ width: 390, height: 844 });
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  await page.screenshot({ path: path.join(shots, "page-390.png"), fullPage: true });
  check(wide <= 390, `readable at 390 px (page width ${wide})`);

  // Without JavaScript: the plain form posts, is redirected to the job
  // page, and reloading that page creates no second job.
  context = await launch(false);
  const plain = await context.newPage();
  await plain.goto(daemon + "/uploadform", { waitUntil: "load" });
  const p = gen(64 << 10, 5);
  fs.writeFileSync(path.join(dir, "plain.bin"), p);
  await plain.setInputFiles("#file", path.join(dir, "plain.bin"));
  await plain.check("#algos input[value=sha256]"); // with md5, ticked already
  await Promise.all([plain.waitForURL(/\/gethash-form\/\?file_id=/), plain.click("button[type=submit]")]);
  const n = await jobsTotal();
  await plain.reload({ waitUntil: "load" });
  await plain.reload({ waitUntil: "load" });
  check((await jobsTotal()) === n, "reloading the job page after a form post creates no job");
  const text = await plain.textContent("body");
  check((text.includes(md5(p)) && text.includes(sha256(p))) || text.includes("PENDING"), "the job page shows the job (md5 and sha256)");

  if (delayed) {
    const put = async () => (await (await fetch(delayed + "/files/late.txt", { method: "PUT", body: "late\n" })).json()).id;
    const id = await put();
    await plain.goto(delayed + "/gethash-form/?file_id=" + id, { waitUntil: "load" });
    check((await plain.textContent("body")).includes("reloads itself every second"), "without JS a PENDING job page says it reloads");
    context = await launch(true);
    const live = await context.newPage();
    const id2 = await put();
    const streams = [];
    live.on("request", (r) => r.url().includes("/events") && streams.push(r.url()));
    await live.goto(delayed + "/gethash-form/?file_id=" + id2, { waitUntil: "load" });
    check(await live.isVisible("#live"), "with JS a PENDING job page says it follows the job");
    await live.locator("h1", { hasText: "Job SUCCESS" }).waitFor({ timeout: 20_000 });
    check(streams.some((u) => u.endsWith("/jobs/" + id2 + "/events")), "the PENDING job page used /jobs/ID/events");
    check((await live.textContent("#hash")) === md5(Buffer.from("late\n")), "and then shows the hash");
  }
} catch (e) {
  failed ??= String(e && e.stack ? e.stack : e);
} finally {
  if (browser) await browser.close().catch(() => {});
  fs.rmSync(profile, { recursive: true, force: true });
}
if (failed) {
  console.error("FAILED:", failed);
  process.exit(1);
}
console.log("ok");
