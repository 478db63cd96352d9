//! The API as a contract (issue 13), against the real binary: the served
//! OpenAPI document validates as OpenAPI 3.1 (openapi-spec-validator, from
//! PyPI), `/docs` works in headless Chromium with no network beyond the
//! daemon (Debian's chromium driven by playwright-core, `tests/browser`),
//! and the HTTP client `hashd upload` / `hashd get` (streaming, exit codes,
//! 503 retries). schemathesis runs in `.ci/run` (`scripts/schemathesis`).
//!
//! Tests that need a tool the machine lacks skip with a message, except
//! with `HASHD_TEST_API_TOOLS` set, where they fail: `.ci/run` installs the
//! tools in a step of their own, after the workspace's tests, and then runs
//! these tests again with it set.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::{wait_until, Daemon, TempDir, BIN};

/// Whether a test may run: `missing` is `None` when its tool is there, else
/// what is missing. With `HASHD_TEST_API_TOOLS` set a missing tool is a
/// failure, not a skip.
fn have(missing: Option<String>) -> bool {
    let Some(what) = missing else {
        return true;
    };
    if std::env::var_os("HASHD_TEST_API_TOOLS").is_some_and(|v| !v.is_empty()) {
        panic!("HASHD_TEST_API_TOOLS is set and {what} is missing");
    }
    eprintln!("skipped: {what} is not installed");
    false
}

fn python_has(module: &str) -> Option<String> {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    (!ok).then(|| format!("the python3 module {module}"))
}

fn base(d: &Daemon) -> String {
    format!("http://{}", d.addr)
}

#[test]
fn openapi_json_validates_as_openapi_3_1() {
    if !have(python_has("openapi_spec_validator")) {
        return;
    }
    let dir = TempDir::new("openapi");
    let d = Daemon::start(dir.path());
    let r = d.get("/openapi.json");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let path = dir.path().join("openapi.json");
    std::fs::write(&path, &r.body).unwrap();
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys\n\
             from openapi_spec_validator import validate\n\
             from openapi_spec_validator.readers import read_from_filename\n\
             from openapi_spec_validator.validation import OpenAPIV31SpecValidator\n\
             doc, _ = read_from_filename(sys.argv[1])\n\
             validate(doc, cls=OpenAPIV31SpecValidator)\n\
             print('valid OpenAPI 3.1')",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openapi-spec-validator: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The playwright-core install in `tests/browser` (`npm ci` there).
fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/browser")
}

/// Debian's chromium, node and playwright-core, or what is missing.
fn browser_tools() -> Result<String, String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        Err(format!("chromium ({chromium})"))
    } else if Command::new("node").arg("--version").output().is_err() {
        Err("node".into())
    } else if !browser_dir().join("node_modules/playwright-core").exists() {
        Err("playwright-core (npm ci in tests/browser)".into())
    } else {
        Ok(chromium)
    }
}

/// Chromium's path when the browser tools are there; `None` (the test
/// returns) when one is missing, unless the tools are required.
fn chromium_or_skip() -> Option<String> {
    match browser_tools() {
        Ok(c) => Some(c),
        Err(missing) => {
            have(Some(missing));
            None
        }
    }
}

/// Runs `node tests/browser/SCRIPT ARGS` with `chromium`; panics with its
/// output when it fails.
fn run_browser_script(script: &str, args: &[&str], chromium: &str) {
    let out = Command::new("node")
        .arg(browser_dir().join(script))
        .args(args)
        .env("CHROMIUM", chromium)
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{log}");
    assert!(out.status.success(), "browser test {script} failed: {log}");
}

#[test]
fn docs_load_offline_in_chromium_and_try_it_out_uploads_a_file() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let tmp = TempDir::new("docs");
    let d = Daemon::start(tmp.path());
    let file = tmp.path().join("picked.txt");
    let data = b"a file picked in Swagger UI's Try it out\n";
    std::fs::write(&file, data).unwrap();
    let md5 = hashcore::to_hex(&hashcore::Algorithm::Md5.digest(data));
    run_browser_script(
        "docs.mjs",
        &[&base(&d), file.to_str().unwrap(), &md5],
        &chromium,
    );
    // The daemon recorded the upload the browser made.
    let (_, jobs) = d.get_json("/jobs?limit=1");
    assert_eq!(jobs["jobs"][0]["hash"], md5.as_str());
    assert_eq!(jobs["jobs"][0]["name"], "picked.txt");
}

/// Runs `hashd ARGS` and returns (exit code, stdout, stderr).
fn hashd(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("HASHD_SERVER")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn md5sum(path: &Path) -> String {
    let out = Command::new("md5sum").arg(path).output().unwrap();
    // A line for an escaped name starts with a backslash.
    let line = String::from_utf8(out.stdout).unwrap();
    line.trim_start_matches('\\')[..32].to_string()
}

#[test]
fn upload_and_get_against_the_daemon() {
    let tmp = TempDir::new("remote");
    let d = Daemon::start(tmp.path());
    let server = base(&d);
    let a = tmp.path().join("a.txt");
    let b = tmp.path().join("b\\name");
    std::fs::write(&a, b"first file\n").unwrap();
    std::fs::write(&b, crate::util::data(300_000, 3)).unwrap();
    let (a_s, b_s) = (a.to_str().unwrap(), b.to_str().unwrap());

    // --wait: md5sum lines, which md5sum -c accepts (names escaped as it does).
    let (code, out, err) = hashd(&["upload", "--server", &server, "--wait", a_s, b_s], &[]);
    assert_eq!(code, 0, "{err}");
    let want = format!(
        "{}  {a_s}\n\\{}  {}\n",
        md5sum(&a),
        md5sum(&b),
        b_s.replace('\\', "\\\\")
    );
    assert_eq!(out, want);
    let sums = tmp.path().join("sums.md5");
    std::fs::write(&sums, &out).unwrap();
    let check = Command::new("md5sum")
        .arg("-c")
        .arg(&sums)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    // Other algorithms; then ids without --wait, looked up with `get`.
    let (code, out, _) = hashd(
        &["upload", "--server", &server, "-a", "sha256", "--wait", a_s],
        &[],
    );
    assert_eq!(code, 0);
    let sha = Command::new("sha256sum").arg(&a).output().unwrap().stdout;
    assert_eq!(out.as_bytes(), &sha[..]);
    let (code, out, err) = hashd(&["upload", a_s], &[("HASHD_SERVER", &server)]);
    assert_eq!(code, 0, "{err}");
    let id = out.split_whitespace().next().unwrap().to_string();
    assert_eq!(out, format!("{id}  {a_s}\n"));
    assert_eq!(id.len(), 32);
    let (code, out, err) = hashd(&["get", "--server", &server, "--wait", "10", &id], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("{id} SUCCESS {}\n", md5sum(&a)));

    // Failures: each reported with its reason, the rest still done, exit 1.
    let missing = tmp.path().join("missing");
    let (code, out, err) = hashd(
        &[
            "upload",
            "--server",
            &server,
            "--wait",
            missing.to_str().unwrap(),
            a_s,
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert_eq!(out, format!("{}  {a_s}\n", md5sum(&a)));
    assert_eq!(
        err,
        format!("hashd: {}: No such file or directory\n", missing.display())
    );
    let (code, out, err) = hashd(&["get", "--server", &server, "abc", &id], &[]);
    assert_eq!(code, 1);
    assert_eq!(out, format!("{id} SUCCESS {}\n", md5sum(&a)));
    assert_eq!(err, "hashd: abc: no such job\n");
    let (code, _, err) = hashd(&["get", "--server", &server, "--wait", "99", &id], &[]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with(&format!(
            "hashd: {id}: server answered 400 Bad Request: wait must be"
        )),
        "{err}"
    );
    let (code, _, err) = hashd(&["upload", "--server", &server, "--wait", a_s], &[]);
    assert_eq!(code, 0, "{err}");

    // A server that refuses the upload: its reason, not a generic failure.
    // The file is large, so the client is still sending when the 413 comes
    // (the server reads and drops the rest for a while so that the answer
    // is not lost to a connection reset).
    drop(d);
    let d = Daemon::builder(tmp.path())
        .arg("--max-upload")
        .arg("1K")
        .start();
    let big = tmp.path().join("big.bin");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let big_s = big.to_str().unwrap();
    for _ in 0..3 {
        let (code, out, err) = hashd(&["upload", "--server", &base(&d), b_s, big_s], &[]);
        assert_eq!(code, 1);
        assert_eq!(out, "");
        let want = "server answered 413 Payload Too Large: upload exceeds the limit of 1024 bytes";
        assert_eq!(err.matches(want).count(), 2, "{err}");
    }
    // No server at all; a bad URL; no operands: exit 1, as `hashd sum`.
    let port = d.addr.port();
    drop(d);
    let (code, _, err) = hashd(
        &["get", "--server", &format!("http://127.0.0.1:{port}"), &id],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("cannot connect to 127.0.0.1:"), "{err}");
    let (code, _, err) = hashd(&["upload", "--server", "https://x", a_s], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("scheme https is not supported"), "{err}");
    assert_eq!(hashd(&["upload"], &[]).0, 1);
    assert_eq!(hashd(&["get"], &[]).0, 1);
}

/// A 1 GiB file streams from disk: the client's peak RSS stays under 64
/// MiB (measured by its parent, python3, with getrusage).
#[test]
fn a_1_gib_upload_keeps_the_clients_rss_under_64_mib() {
    let tmp = TempDir::new("remote-1g");
    let d = Daemon::start(tmp.path());
    let file = tmp.path().join("big.bin");
    {
        // Sparse, with varied data at the start, the middle and the end.
        let mut f = std::fs::File::create(&file).unwrap();
        f.set_len(1 << 30).unwrap();
        for (i, at) in [0u64, 512 << 20, (1 << 30) - (1 << 20)]
            .into_iter()
            .enumerate()
        {
            use std::io::Seek;
            f.seek(std::io::SeekFrom::Start(at)).unwrap();
            f.write_all(&crate::util::data(1 << 20, i as u64)).unwrap();
        }
    }
    let started = std::time::Instant::now();
    let out = Command::new("python3")
        .args([
            "-c",
            "import resource, subprocess, sys\n\
             r = subprocess.run(sys.argv[1:], capture_output=True)\n\
             sys.stderr.write(r.stderr.decode())\n\
             print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.stdout.decode(), end='')",
            BIN,
            "upload",
            "--server",
            &base(&d),
            "--wait",
        ])
        .arg(&file)
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut fields = text.split_whitespace();
    let (code, peak_kib) = (fields.next().unwrap(), fields.next().unwrap());
    assert_eq!(code, "0", "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(fields.next().unwrap(), md5sum(&file));
    let peak_kib: u64 = peak_kib.parse().unwrap();
    eprintln!("hashd upload of 1 GiB: peak RSS {peak_kib} KiB, {elapsed:?}");
    assert!(peak_kib < 64 << 10, "peak RSS {peak_kib} KiB");
}

/// A server with every upload slot taken answers 503 with Retry-After; the
/// client waits and retries, and succeeds once a slot is free.
#[test]
fn upload_retries_a_503_after_retry_after() {
    use std::io::Read;
    let tmp = TempDir::new("remote-503");
    let d = Daemon::builder(tmp.path())
        .arg("--max-uploads")
        .arg("1")
        .start();
    // Hold the only upload slot: a body that has begun and not ended. On a
    // loaded machine the held request can itself be refused (a 503 while
    // the job store is slow to answer, on PostgreSQL), leaving the slot
    // free: then hold it again with a new connection.
    let hold = || {
        let mut held = std::net::TcpStream::connect(d.addr).unwrap();
        write!(
            held,
            "PUT /files/held HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\nA"
        )
        .unwrap();
        held
    };
    let busy = || crate::util::request(d.addr, "PUT", "/files/probe", &[], b"x").status == 503;
    let mut held = hold();
    let mut attempts = 1;
    let mut deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !busy() {
        if std::time::Instant::now() > deadline {
            assert!(attempts < 5, "the held upload never held the slot");
            held = hold();
            attempts += 1;
            deadline = std::time::Instant::now() + Duration::from_secs(10);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let file = tmp.path().join("f.txt");
    std::fs::write(&file, b"retried upload\n").unwrap();
    let client = Command::new(BIN)
        .args(["upload", "--server", &base(&d), "--wait"])
        .arg(&file)
        .env("HASHD_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let it meet the 503 at least once, then free the slot.
    std::thread::sleep(Duration::from_millis(1500));
    held.write_all(b"B").unwrap();
    let mut answer = String::new();
    let _ = held.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let out = client.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("server busy, retrying"),
        "no retry seen: {err}"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}  {}\n", md5sum(&file), file.display())
    );
}

/// A static server on a loopback port (another web origin); killed on drop.
struct StaticSite(std::process::Child, u16);

impl StaticSite {
    fn start(dir: &Path) -> StaticSite {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1", "-d"])
            .arg(dir)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_until(
            "the static site did not listen",
            Duration::from_secs(10),
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        );
        StaticSite(child, port)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.1)
    }
}

impl Drop for StaticSite {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_page_of_an_allowed_origin_uploads_and_another_origin_cannot() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let tmp = TempDir::new("cors-browser");
    let site = tmp.path().join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("index.html"), "<!doctype html><title>app</title>").unwrap();
    let (app, other) = (StaticSite::start(&site), StaticSite::start(&site));
    let app_origin = app.url().trim_end_matches('/').to_string();
    let d = Daemon::builder(tmp.path())
        .arg("--cors-origin")
        .arg(&app_origin)
        .start();
    let md5 = hashcore::to_hex(&hashcore::Algorithm::Md5.digest(b"cross-origin upload\n"));
    run_browser_script(
        "cors.mjs",
        &[&base(&d), &app.url(), &other.url(), &md5],
        &chromium,
    );
    // Only the allowed origin's upload became a job.
    let (_, stats) = d.get_json("/stats");
    assert_eq!(stats["jobs"]["total"], 1, "{stats}");
}

/// The upload page in headless Chromium with the upload throttled
/// (`tests/browser/page.mjs` says what it checks). Screenshots at 1280 and
/// 390 px go to `HASHD_SCREENSHOT_DIR` (`.ci/run` keeps them as
/// artifacts), else to a temporary directory.
#[test]
fn the_page_uploads_many_files_with_progress_in_chromium() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let dir = browser_dir();
    let tmp = TempDir::new("page-browser");
    let d = Daemon::start(tmp.path());
    let delayed_dir = tmp.path().join("delayed");
    std::fs::create_dir_all(&delayed_dir).unwrap();
    let delayed = Daemon::builder(&delayed_dir)
        .arg("--artificial-delay")
        .arg("2")
        .start();
    let shots = std::env::var_os("HASHD_SCREENSHOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().join("screenshots"));
    let out = Command::new("node")
        .arg(dir.join("page.mjs"))
        .arg(base(&d))
        .arg(&shots)
        .arg(base(&delayed))
        .env("CHROMIUM", &chromium)
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{log}");
    assert!(out.status.success(), "browser test failed: {log}");
    for shot in ["page-1280.png", "page-390.png"] {
        assert!(shots.join(shot).exists(), "{shot}");
    }
}
