// Cross-origin uploads in headless Chromium: a page of an allowed origin
// (--cors-origin) uploads with fetch and reads the hash; a page of another
// origin can neither read an answer nor create a job, by fetch or by a
// plain form post (the daemon refuses both with 403; the test's caller
// checks the job count).
//
// Usage: node cors.mjs DAEMON_URL ALLOWED_PAGE_URL OTHER_PAGE_URL EXPECTED_MD5
// The pages are any pages served from those origins (the caller runs two
// static servers on loopback). Chromium is Debian's (/usr/bin/chromium, or
// $CHROMIUM).
import { launch } from "./launch.mjs";
import fs from "node:fs";
import path from "node:path";

const [daemon, allowed, other, expected] = process.argv.slice(2);
if (!expected) {
  console.error("usage: node cors.mjs DAEMON_URL ALLOWED_PAGE_URL OTHER_PAGE_URL EXPECTED_MD5");
  process.exit(2);
}
const { context, profile, close } = await launch();
// Runs in the page: a multipart upload with fetch, as a web app would.
const upload = async ([url, text]) => {
  const form = new FormData();
  form.append("file", new Blob([text]), "from-browser.txt");
  try {
    const r = await fetch(url + "/uploadfile/?wait=true", { method: "POST", body: form });
    return { status: r.status, body: await r.text(), requestId: r.headers.get("x-request-id") };
  } catch (e) {
    return { error: String(e) };
  }
};
let failed = null;
try {
  const page = await context.newPage();
  await page.goto(allowed, { waitUntil: "load" });
  const ok = await page.evaluate(upload, [daemon, "cross-origin upload\n"]);
  console.log("allowed origin:", JSON.stringify(ok));
  if (ok.status !== 200 || !ok.body.includes(expected)) failed = "the allowed origin could not upload";
  else if (!ok.requestId) failed = "X-Request-Id is not exposed to the page";

  await page.goto(other, { waitUntil: "load" });
  const denied = await page.evaluate(upload, [daemon, "should not be hashed\n"]);
  console.log("other origin, fetch:", JSON.stringify(denied));
  if (!denied.error) failed ??= "a page of another origin read an answer";
  // A form post needs no preflight: the daemon itself must refuse it.
  await page.setContent(
    `<form method="post" enctype="multipart/form-data" action="${daemon}/uploadfile/">` +
      `<input type="file" name="file"><button>go</button></form>`,
  );
  const tmp = path.join(profile, "form.txt");
  fs.writeFileSync(tmp, "posted by a form on another site\n");
  await page.setInputFiles("input[type=file]", tmp);
  const [resp] = await Promise.all([page.waitForNavigation(), page.click("button")]);
  console.log("other origin, form post:", resp.status());
  if (resp.status() !== 403) failed ??= `a form post from another origin got ${resp.status()}`;
} catch (e) {
  failed = String(e);
} finally {
  await close();
}
if (failed) {
  console.error("FAILED:", failed);
  process.exit(1);
}
console.log("ok");
