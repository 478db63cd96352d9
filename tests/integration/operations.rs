//! Operating hashd: `/metrics` (checked by promtool), `/ready`, the access
//! log and request ids.

use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::*;

/// The value of the sample `name{labels}` (labels as printed, in order;
/// empty for none), or 0 when it is absent.
fn sample(text: &str, name: &str, labels: &str) -> f64 {
    let key = if labels.is_empty() {
        format!("{name} ")
    } else {
        format!("{name}{{{labels}}} ")
    };
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// promtool (Debian's prometheus package) checks the exposition; it must
/// be there in CI.
fn promtool_check(text: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(_) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "promtool is missing: apt-get install prometheus"
            );
            eprintln!("promtool not installed: exposition not checked");
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Upload threads and the flag that stops them.
type Uploads = (
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    Vec<std::thread::JoinHandle<Vec<(String, std::time::Instant)>>>,
);

/// `clients` threads uploading `size`-byte files with `?wait=true` to
/// `addr`, `pause` apart, until the returned flag is set; each thread
/// returns the ids it got and when their answers came (the jobs had ended
/// by then).
fn background_uploads(
    addr: std::net::SocketAddr,
    clients: u64,
    size: usize,
    pause: Duration,
) -> Uploads {
    use std::sync::atomic::Ordering;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let threads = (0..clients)
        .map(|c| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let (ct, body) =
                        multipart(&[Part::file("file", "f", &data(size, c << 32 | i))]);
                    let r = request(
                        addr,
                        "POST",
                        "/uploadfile/?wait=true",
                        &[("Content-Type", &ct)],
                        &body,
                    );
                    let id = r.json()["id"].as_str().unwrap().to_string();
                    got.push((id, std::time::Instant::now()));
                    i += 1;
                    std::thread::sleep(pause);
                }
                got
            })
        })
        .collect();
    (stop, threads)
}

/// Stops `background_uploads` and gathers what its threads got.
fn stop_uploads((stop, threads): Uploads) -> Vec<(String, std::time::Instant)> {
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect()
}

#[test]
fn metrics_move_with_uploads_failures_and_refusals_and_pass_promtool() {
    let dir = TempDir::new("metrics");
    let d = Daemon::builder(dir.path())
        .arg("--max-upload")
        .arg("64K")
        .arg("--max-uploads")
        .arg("1")
        .arg("--body-timeout")
        .arg("1")
        .start();
    let metrics = || {
        let r = d.get("/metrics");
        assert_eq!(r.status, 200);
        assert!(r
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4"));
        r.text()
    };
    let before = metrics();
    promtool_check(&before);
    assert_eq!(sample(&before, "hashd_uploads_in_progress", ""), 0.0);
    assert_eq!(sample(&before, "hashd_store_up", ""), 1.0);

    // Three successes: jobs, bytes by algorithm, requests by route and code.
    for (i, size) in [100usize, 2000, 30_000].into_iter().enumerate() {
        let body = data(size, i as u64);
        let v = d.upload("?wait=true&algo=sha256", "f", &body).json();
        assert_eq!(v["hash"], reference("sha256", &body));
    }
    let m = metrics();
    let ok = r#"route="/uploadfile",method="POST",code="200""#;
    assert_eq!(sample(&m, "hashd_http_requests_total", ok), 3.0);
    assert_eq!(
        sample(
            &m,
            "hashd_jobs_finished_total",
            r#"status="SUCCESS",reason="none""#
        ),
        3.0
    );
    assert_eq!(
        sample(&m, "hashd_hashed_bytes_total", r#"algorithm="sha256""#),
        32_100.0
    );
    assert!(sample(&m, "hashd_http_received_bytes_total", "") > 32_100.0);
    assert!(sample(&m, "hashd_http_sent_bytes_total", "") > 0.0);
    assert_eq!(
        sample(
            &m,
            "hashd_http_request_duration_seconds_count",
            r#"route="/uploadfile""#
        ),
        3.0
    );
    assert!(sample(&m, "hashd_store_batch_ops_count", "") >= 3.0);
    assert!(sample(&m, "hashd_store_commit_seconds_count", "") >= 3.0);
    assert!(sample(&m, "hashd_hasher_hashed_bytes_total", r#"hasher="0""#) >= 0.0);
    for family in [
        "hashd_hasher_up{",
        "hashd_hasher_jobs_active{",
        "hashd_hasher_reads_in_flight{",
        "hashd_hasher_lane_blocks_total{",
        "hashd_hasher_lane_slots_total{",
        "hashd_hasher_reader{",
        "hashd_results_log_pending_lines ",
    ] {
        assert!(m.contains(family), "{family} missing:\n{m}");
    }

    // 413: over --max-upload.
    let r = d.upload("", "big", &data(100_000, 9));
    assert_eq!(r.status, 413);
    // An upload that stalls holds the only slot: the next one is 503, and
    // the stalled one is cut off with 408 after --body-timeout. Its job
    // fails (aborted).
    let mut stalled = TcpStream::connect(d.addr).unwrap();
    write!(
        stalled,
        "PUT /files/stall HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc"
    )
    .unwrap();
    wait_until(
        "the stalled upload holds no slot",
        Duration::from_secs(5),
        || sample(&metrics(), "hashd_uploads_in_progress", "") == 1.0,
    );
    let r = d.upload("", "refused", b"x");
    assert_eq!(r.status, 503);
    wait_until("no 408", Duration::from_secs(10), || {
        sample(
            &metrics(),
            "hashd_http_requests_total",
            r#"route="/files/{name}",method="PUT",code="408""#,
        ) == 1.0
    });
    let m = metrics();
    let code = |c: &str| {
        sample(
            &m,
            "hashd_http_requests_total",
            &format!(r#"route="/uploadfile",method="POST",code="{c}""#),
        )
    };
    assert_eq!((code("413"), code("503")), (1.0, 1.0));
    assert_eq!(sample(&m, "hashd_uploads_in_progress", ""), 0.0);
    assert!(
        sample(
            &m,
            "hashd_jobs_finished_total",
            r#"status="FAILURE",reason="aborted""#
        ) >= 1.0,
        "{m}"
    );
    promtool_check(&m);
    drop(stalled);
}

#[test]
fn every_request_has_one_access_line_with_its_request_id() {
    let dir = TempDir::new("access");
    let d = Daemon::builder(dir.path())
        .arg("--log-format")
        .arg("json")
        .start();
    let mut sent = Vec::new();
    for i in 0..20 {
        let id = format!("req-{i}");
        let path = match i % 3 {
            0 => "/health".to_string(),
            1 => format!("/gethash/{:032x}?file_id=secret", i),
            _ => "/nowhere".to_string(),
        };
        let r = request(d.addr, "GET", &path, &[("X-Request-Id", &id)], &[]);
        assert_eq!(r.header("x-request-id"), Some(id.as_str()));
        sent.push((id, r.status));
    }
    let v = d.upload("?wait=true", "a", b"abc");
    let job = v.json()["id"].as_str().unwrap().to_string();
    let made = v.header("x-request-id").unwrap().to_string();
    // An id a log cannot hold safely is replaced.
    let r = request(d.addr, "GET", "/health", &[("X-Request-Id", "a b\"c")], &[]);
    let replaced = r.header("x-request-id").unwrap().to_string();
    assert_ne!(replaced, "a b\"c");
    let log = d.stderr();
    let access: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .filter(|v: &serde_json::Value| v["target"] == "hashd::access")
        .collect();
    let id_of = |v: &serde_json::Value| v["span"]["request_id"].as_str().unwrap().to_string();
    for (id, status) in &sent {
        let lines: Vec<_> = access.iter().filter(|v| &id_of(v) == id).collect();
        assert_eq!(lines.len(), 1, "{id}: {lines:?}");
        assert_eq!(lines[0]["status"], *status);
        assert!(!lines[0]["path"].as_str().unwrap().contains("secret"));
    }
    let upload: Vec<_> = access.iter().filter(|v| id_of(v) == made).collect();
    assert_eq!(upload.len(), 1);
    assert_eq!(upload[0]["job_id"], job.as_str());
    assert_eq!(upload[0]["method"], "POST");
    assert!(upload[0]["bytes_in"].as_u64().unwrap() > 3);
    assert!(upload[0]["duration_ms"].is_number());
    assert_eq!(access.iter().filter(|v| id_of(v) == replaced).count(), 1);
    assert_eq!(access.len(), sent.len() + 2);
}

const UPLOAD_TOKEN: &str = "up-0123456789abcdef";
const READ_TOKEN: &str = "rd-0123456789abcdef";
const ADMIN_TOKEN: &str = "ad-0123456789abcdef";

#[test]
fn tokens_guard_every_route_by_scope_and_are_re_read_on_sighup() {
    let dir = TempDir::new("auth");
    let file = dir.path().join("tokens");
    std::fs::write(
        &file,
        format!("# test tokens\n{UPLOAD_TOKEN} upload\n{READ_TOKEN} read\n{ADMIN_TOKEN} admin\n"),
    )
    .unwrap();
    let d = Daemon::builder(dir.path())
        .arg("--auth-token-file")
        .arg(file.to_str().unwrap())
        .start();
    let (ct, form) = multipart(&[Part::file("file", "a", b"abc")]);
    let send = |method: &str, path: &str, token: Option<&str>| {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", ct.as_str())];
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        let body: &[u8] = if method == "GET" { b"" } else { &form };
        request(d.addr, method, path, &headers, body)
    };
    let id = {
        let r = send("POST", "/uploadfile/?wait=true", Some(UPLOAD_TOKEN));
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["id"].as_str().unwrap().to_string()
    };
    let routes = [
        ("POST", "/uploadfile/".to_string(), "upload"),
        ("POST", "/files/x".to_string(), "upload"),
        ("PUT", "/files".to_string(), "upload"),
        ("GET", format!("/gethash/{id}"), "read"),
        ("GET", format!("/gethash/?file_id={id}"), "read"),
        ("GET", "/jobs".to_string(), "read"),
        ("GET", format!("/jobs/{id}/events"), "read"),
        ("GET", "/".to_string(), "read"),
        ("GET", "/uploads".to_string(), "admin"),
        ("GET", "/stats".to_string(), "admin"),
        ("GET", "/cluster".to_string(), "admin"),
        ("GET", "/metrics".to_string(), "admin"),
    ];
    for (method, path, scope) in &routes {
        let r = send(method, path, None);
        assert_eq!(r.status, 401, "{method} {path}: {}", r.text());
        assert_eq!(
            r.header("www-authenticate"),
            Some(r#"Bearer realm="hashd""#)
        );
        let r = send(method, path, Some("not-a-token-0123456789"));
        assert_eq!(r.status, 401, "{method} {path}");
        assert!(r
            .header("www-authenticate")
            .unwrap()
            .contains("invalid_token"));
        let wrong = if *scope == "upload" {
            READ_TOKEN
        } else {
            UPLOAD_TOKEN
        };
        let r = send(method, path, Some(wrong));
        assert_eq!(r.status, 403, "{method} {path}: {}", r.text());
        assert!(r
            .header("www-authenticate")
            .unwrap()
            .contains(&format!(r#"error="insufficient_scope", scope="{scope}""#)));
        let right = match *scope {
            "upload" => UPLOAD_TOKEN,
            "read" => READ_TOKEN,
            _ => ADMIN_TOKEN,
        };
        for token in [right, ADMIN_TOKEN] {
            let r = send(method, path, Some(token));
            assert!(
                r.status < 400,
                "{method} {path} with {scope}: {} {}",
                r.status,
                r.text()
            );
        }
    }
    // The probes stay open: load balancers and orchestrators have no token.
    assert_eq!(d.get("/health").status, 200);
    assert_eq!(d.get("/ready").status, 200);

    // A new file on SIGHUP: the old token stops working, the new one works.
    let fresh = "new-0123456789abcdef";
    std::fs::write(&file, format!("{fresh} read\n")).unwrap();
    signal(d.pid(), "HUP");
    wait_until(
        "the token file was not re-read",
        Duration::from_secs(5),
        || send("GET", "/jobs", Some(READ_TOKEN)).status == 401,
    );
    assert_eq!(send("GET", "/jobs", Some(fresh)).status, 200);
    // A broken file keeps the tokens in use.
    std::fs::write(&file, "short read\n").unwrap();
    signal(d.pid(), "HUP");
    wait_until(
        "the bad file was not reported",
        Duration::from_secs(5),
        || d.stderr().contains("token file not re-read"),
    );
    assert_eq!(send("GET", "/jobs", Some(fresh)).status, 200);
    let log = d.stderr();
    for t in [UPLOAD_TOKEN, READ_TOKEN, ADMIN_TOKEN, fresh, "not-a-token"] {
        assert!(!log.contains(t), "token {t} in the log");
    }
}

#[test]
fn other_origins_get_cors_only_when_allowed_and_cannot_upload() {
    let dir = TempDir::new("cors");
    let d = Daemon::builder(dir.path())
        .arg("--cors-origin")
        .arg("https://app.example")
        .start();
    let app = "https://app.example";
    let evil = "https://evil.example";
    let preflight = |origin: &str| {
        request(
            d.addr,
            "OPTIONS",
            "/uploadfile/",
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "POST"),
                (
                    "Access-Control-Request-Headers",
                    "content-type, x-request-id",
                ),
            ],
            b"",
        )
    };
    let r = preflight(app);
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some(app));
    assert!(r
        .header("access-control-allow-methods")
        .unwrap()
        .contains("POST"));
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("content-type, x-request-id")
    );
    let r = preflight(evil);
    assert_eq!(r.header("access-control-allow-origin"), None);

    let (ct, form) = multipart(&[Part::file("file", "a", b"abc")]);
    let upload = |origin: &str| {
        request(
            d.addr,
            "POST",
            "/uploadfile/",
            &[("Content-Type", &ct), ("Origin", origin)],
            &form,
        )
    };
    let total = || d.get_json("/stats").1["jobs"]["total"].as_u64().unwrap();
    let before = total();
    let r = upload(evil);
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["success"], false);
    assert!(r.json()["error"].as_str().unwrap().contains("cross-origin"));
    assert_eq!(total(), before, "a refused cross-site upload made a job");
    let r = upload(app);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some(app));
    assert!(r
        .header("access-control-expose-headers")
        .unwrap()
        .contains("X-Request-Id"));
    // The daemon's own page posting back is same-origin.
    let own = format!("http://{}", d.addr);
    let r = request(
        d.addr,
        "POST",
        "/uploadfile/",
        &[("Content-Type", &ct), ("Origin", &own)],
        &form,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // Reads from another origin are answered, without CORS headers: the
    // browser keeps them from the page.
    let r = request(d.addr, "GET", "/jobs", &[("Origin", evil)], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(total(), before + 2);
}

#[test]
fn retention_deletes_exactly_the_expired_jobs_under_concurrent_uploads() {
    use std::time::Instant;
    let dir = TempDir::new("retain");
    let retain = Duration::from_secs(3);
    let d = Daemon::builder(dir.path())
        .arg("--retain")
        .arg("3s")
        .arg("--keep-uploads")
        .arg("--no-socket")
        .start();
    let start = Instant::now();
    let load = background_uploads(d.addr, 3, 1000, Duration::from_millis(20));
    std::thread::sleep(Duration::from_secs(7));
    let jobs = stop_uploads(load);
    // A pass runs every second (a quarter of 3 s, at least 1 s): a job
    // that ended more than retain + 2 s ago is gone, one younger than
    // retain is there; between the two it may be either.
    let now = Instant::now();
    let (mut gone, mut kept) = (0, 0);
    for (id, answered) in &jobs {
        let age = now - *answered;
        let status = d.get(&format!("/gethash/{id}")).status;
        let file = dir.path().join("data/uploads").join(id);
        if age > retain + Duration::from_secs(2) {
            assert_eq!(status, 404, "{id}, {age:?} old, still there");
            assert!(!file.exists(), "{id}: its kept upload is still there");
            gone += 1;
        } else if age + Duration::from_millis(200) < retain {
            assert_eq!(status, 200, "{id}, {age:?} old, deleted too soon");
            assert!(file.exists());
            kept += 1;
        }
    }
    eprintln!(
        "{} jobs over {:?}: {gone} expired, {kept} kept",
        jobs.len(),
        start.elapsed()
    );
    assert!(gone > 10 && kept > 10, "{gone} expired, {kept} kept");
    // The listing agrees with the lookups.
    let (_, page) = d.get_json("/jobs?limit=1000");
    let listed = page["jobs"].as_array().unwrap().len();
    let total = d.get_json("/stats").1["jobs"]["total"].as_u64().unwrap() as usize;
    assert_eq!(listed, total);
    assert!(total < jobs.len());
}

#[test]
fn logrotate_and_sighup_lose_no_results_log_line() {
    let Some(logrotate) = ["/usr/sbin/logrotate", "/sbin/logrotate"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "logrotate is missing: apt-get install logrotate"
        );
        eprintln!("skipped: logrotate is not installed");
        return;
    };
    let dir = TempDir::new("logrotate");
    let d = Daemon::builder(dir.path()).arg("--no-socket").start();
    let log = dir.path().join("data/results.log");
    // The deploy file, pointed at this log and this daemon.
    let conf = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/logrotate/hashd"
    ))
    .unwrap()
    .replace("/var/lib/hashd/results.log", log.to_str().unwrap())
    .replace(
        "systemctl reload hashd.service 2>/dev/null || pkill -HUP -x hashd || true",
        &format!("kill -HUP {}", d.pid()),
    );
    let conf_path = dir.path().join("logrotate.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let load = background_uploads(d.addr, 4, 100, Duration::ZERO);
    // Three rotations under load (-f: whatever the schedule says).
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(700));
        let out = Command::new(logrotate)
            .arg("-f")
            .arg("-s")
            .arg(dir.path().join("logrotate.state"))
            .arg(&conf_path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "logrotate: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    let ids: Vec<String> = stop_uploads(load).into_iter().map(|(id, _)| id).collect();
    assert!(d.terminate().success());
    // The live log and the rotated ones (compressed but the newest, with
    // delaycompress) hold every job once, in whole lines.
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir.path().join("data")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("results.log") {
            continue;
        }
        let text = if name.ends_with(".gz") {
            let out = Command::new("gzip").arg("-dc").arg(&path).output().unwrap();
            String::from_utf8(out.stdout).unwrap()
        } else {
            std::fs::read_to_string(&path).unwrap()
        };
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{name}: a torn line"
        );
        for l in text.lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            lines.push(v["id"].as_str().unwrap().to_string());
        }
    }
    let mut seen = std::collections::HashSet::new();
    for id in &lines {
        assert!(seen.insert(id.clone()), "{id} logged twice");
    }
    for id in &ids {
        assert!(seen.contains(id), "{id} missing from every log");
    }
    assert_eq!(lines.len(), ids.len());
    assert!(
        std::fs::read_dir(dir.path().join("data"))
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("results.log."))
            .count()
            >= 2
    );
    eprintln!("{} jobs over 3 rotations, every line once", ids.len());
}

#[test]
fn configuration_errors_name_their_source_and_start_up_errors_say_what_to_do() {
    let dir = TempDir::new("config-errors");
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = Command::new(BIN)
            .current_dir(dir.path())
            .args(args)
            .envs(env.iter().copied())
            .env_remove("HASHD_TEST_STORE")
            .env_remove("HASHD_TEST_POSTGRES")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // A bad value in .env: exit 2, naming the key and the line.
    std::fs::write(
        dir.path().join(".env"),
        "# settings\nHASHD_NO_PIN=1\nexport HASHD_MAX_UPLOADS=\"lots\"\n",
    )
    .unwrap();
    let (code, err) = run(&["--listen", "127.0.0.1:0", "--no-socket"], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("HASHD_MAX_UPLOADS from .env:3"), "{err}");
    // The environment beats .env, and is named as the source.
    let (code, err) = run(
        &["--listen", "127.0.0.1:0", "--no-socket"],
        &[("HASHD_MAX_UPLOADS", "-1")],
    );
    assert_eq!(code, Some(2));
    assert!(
        err.contains("HASHD_MAX_UPLOADS from the environment"),
        "{err}"
    );
    // A misspelt key is named with the closest known one; the daemon runs.
    std::fs::write(dir.path().join(".env"), "HASHD_HASHER=2\n").unwrap();
    let d = Daemon::builder(dir.path()).arg("--no-socket").start();
    wait_until(
        "no warning about the misspelt key",
        Duration::from_secs(5),
        || {
            d.stderr()
            .contains("unknown setting HASHD_HASHER (from .env:1) is ignored; did you mean HASHD_HASHERS?")
        },
    );
    std::fs::remove_file(dir.path().join(".env")).unwrap();
    // The port in use (by that daemon), a data directory that is a file.
    let taken = d.addr.to_string();
    let (code, err) = run(
        &["--listen", &taken, "--no-socket", "--data-dir", "other"],
        &[],
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains("another program (another hashd?) has that port"),
        "{err}"
    );
    std::fs::write(dir.path().join("a-file"), "").unwrap();
    let (code, err) = run(
        &[
            "--listen",
            "127.0.0.1:0",
            "--no-socket",
            "--data-dir",
            "a-file",
        ],
        &[],
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains("is a file, not a directory: choose another --data-dir"),
        "{err}"
    );
}
