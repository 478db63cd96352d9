// /docs in headless Chromium with no network beyond the daemon: the page
// loads from the binary's embedded Swagger UI, and "Try it out" on
// POST /uploadfile/ with a chosen file returns that file's hash.
//
// Usage: node docs.mjs BASE_URL FILE EXPECTED_MD5
// Chromium is Debian's (/usr/bin/chromium, or $CHROMIUM): playwright's own
// browser downloads are not used.
import { launch } from "./launch.mjs";

const [base, file, expected] = process.argv.slice(2);
if (!base || !file || !expected) {
  console.error("usage: node docs.mjs BASE_URL FILE EXPECTED_MD5");
  process.exit(2);
}
const { context, close } = await launch();
// Every request that is not to the daemon is refused and remembered: the
// docs must work offline.
const outside = [];
await context.route("**/*", (route) => {
  const url = route.request().url();
  if (url.startsWith(base + "/")) return route.continue();
  outside.push(url);
  return route.abort();
});
let failed = null;
try {
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error("page error:", e.message));
  await page.goto(base + "/docs", { waitUntil: "load" });
  const op = page.locator(".opblock-post", {
    has: page.locator('[data-path="/uploadfile/"]'),
  });
  await op.locator(".opblock-summary").first().click();
  await op.locator("button.try-out__btn").click();
  await op.locator('tr[data-param-name="wait"] select').selectOption("true");
  await op.locator('input[type="file"]').setInputFiles(file);
  await op.locator("button.execute").click();
  const body = op.locator(".live-responses-table tr.response .response-col_description pre").first();
  await body.waitFor({ timeout: 30000 });
  const text = await body.innerText();
  const status = await op.locator(".live-responses-table tr.response .response-col_status").first().innerText();
  console.log(`status ${status.trim()}, body ${text.replace(/\s+/g, " ")}`);
  if (status.trim() !== "200") failed = `status ${status}`;
  else if (!text.includes(`"hash": "${expected}"`)) failed = `no hash ${expected} in the answer`;
} catch (e) {
  failed = String(e);
} finally {
  await close();
}
if (outside.length > 0) failed = `requests outside the daemon: ${outside.join(", ")}`;
if (failed) {
  console.error(`FAIL: ${failed}`);
  process.exit(1);
}
console.log("ok: /docs uploaded the file and showed its hash, no request left the daemon");
