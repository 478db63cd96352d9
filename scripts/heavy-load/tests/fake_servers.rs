//! heavy-load against in-process fake servers: a correct one and deliberately
//! faulty ones. Each fault must be caught (and reported under its kind), the
//! correct server must give a clean pass, both through the library and through
//! the real binary.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use digest::Digest;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use heavy_load::{Algo, Config, FailKind, SizeSpec, Summary};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    /// Correct: PENDING on the first poll, SUCCESS with the right hash after.
    None,
    /// Correct, and the upload answer is already final (status + hash).
    Immediate,
    /// Every `every`-th job (by id) gets a wrong hash.
    WrongHash,
    /// Every `every`-th id is forgotten: gethash says INVALID_ID.
    LoseIds,
    /// Every `every`-th id stays PENDING forever.
    StuckPending,
    /// Every `every`-th upload is answered 500.
    Http500,
    /// Every `every`-th upload is answered `success: false`.
    SuccessFalse,
    /// Every `every`-th job ends in FAILURE.
    FailureStatus,
    /// Correct, but every upload takes this long.
    Slow(Duration),
    /// Uploads are never answered.
    HangUploads,
}

struct Job {
    hash: String,
    polls: u32,
}

struct State {
    fault: Fault,
    every: u64,
    next: AtomicU64,
    /// TCP connections accepted.
    conns: AtomicU64,
    jobs: Mutex<HashMap<u64, Job>>,
}

struct FakeServer {
    addr: SocketAddr,
    state: Arc<State>,
}

impl FakeServer {
    /// Starts a server on 127.0.0.1:0 in its own thread and runtime.
    fn start(fault: Fault, every: u64) -> FakeServer {
        let state = Arc::new(State {
            fault,
            every,
            next: AtomicU64::new(0),
            conns: AtomicU64::new(0),
            jobs: Mutex::new(HashMap::new()),
        });
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let st = state.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    st.conns.fetch_add(1, Ordering::Relaxed);
                    let _ = stream.set_nodelay(true);
                    let st = st.clone();
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |req| {
                            let st = st.clone();
                            async move { Ok::<_, Infallible>(handle(&st, req).await) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            });
        });
        FakeServer { addr, state }
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn jobs(&self) -> u64 {
        self.state.next.load(Ordering::Relaxed)
    }

    /// The hash the server recorded for job `id`.
    fn job_hash(&self, id: u64) -> Option<String> {
        let jobs = self.state.jobs.lock().unwrap();
        jobs.get(&id).map(|j| j.hash.clone())
    }

    /// How many of the first `n` job ids the fault hits.
    fn hits(&self, n: u64) -> u64 {
        (0..n).filter(|i| i % self.state.every == 0).count() as u64
    }
}

fn reply(status: StatusCode, v: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(v.to_string())))
        .unwrap()
}

fn query(req: &Request<Incoming>, key: &str) -> Option<String> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.to_string())
    })
}

fn hex(raw: &[u8]) -> String {
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

enum AnyHash {
    Md5(md5::Md5),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl AnyHash {
    fn new(algo: &str) -> Option<Self> {
        Some(match algo {
            "md5" => AnyHash::Md5(md5::Md5::new()),
            "sha1" => AnyHash::Sha1(sha1::Sha1::new()),
            "sha256" => AnyHash::Sha256(sha2::Sha256::new()),
            "sha512" => AnyHash::Sha512(sha2::Sha512::new()),
            _ => return None,
        })
    }
    fn update(&mut self, d: &[u8]) {
        match self {
            AnyHash::Md5(h) => h.update(d),
            AnyHash::Sha1(h) => h.update(d),
            AnyHash::Sha256(h) => h.update(d),
            AnyHash::Sha512(h) => h.update(d),
        }
    }
    fn hex(self) -> String {
        match self {
            AnyHash::Md5(h) => hex(&h.finalize()),
            AnyHash::Sha1(h) => hex(&h.finalize()),
            AnyHash::Sha256(h) => hex(&h.finalize()),
            AnyHash::Sha512(h) => hex(&h.finalize()),
        }
    }
}

/// Hashes the multipart field `file` as it streams in.
async fn hash_upload(req: Request<Incoming>, algo: &str) -> Result<String, String> {
    let ct = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .ok_or("no content-type")?
        .to_string();
    let boundary = multer::parse_boundary(&ct).map_err(|e| e.to_string())?;
    let stream = futures_util::stream::unfold(req.into_body(), |mut b| async move {
        loop {
            match b.frame().await? {
                Err(e) => return Some((Err(e), b)),
                Ok(f) => {
                    if let Ok(d) = f.into_data() {
                        return Some((Ok(d), b));
                    }
                }
            }
        }
    });
    let mut mp = multer::Multipart::new(stream, boundary);
    let mut out = None;
    while let Some(mut field) = mp.next_field().await.map_err(|e| e.to_string())? {
        if field.name() == Some("file") {
            let mut h = AnyHash::new(algo).ok_or("bad algo")?;
            while let Some(c) = field.chunk().await.map_err(|e| e.to_string())? {
                h.update(&c);
            }
            out = Some(h.hex());
        }
    }
    out.ok_or_else(|| "no field `file`".to_string())
}

/// Numbers for even ids, strings for odd ones: clients must take both.
fn id_json(id: u64) -> Value {
    if id.is_multiple_of(2) {
        json!(id)
    } else {
        json!(format!("job-{id}"))
    }
}

async fn handle(st: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    match path.as_str() {
        "/uploadfile" => {
            if st.fault == Fault::HangUploads {
                std::future::pending::<()>().await;
            }
            if let Fault::Slow(d) = st.fault {
                tokio::time::sleep(d).await;
            }
            let algo = query(&req, "algo").unwrap_or_else(|| "md5".into());
            let wait = query(&req, "wait").as_deref() == Some("true");
            let hash = match hash_upload(req, &algo).await {
                Ok(h) => h,
                Err(e) => return reply(StatusCode::BAD_REQUEST, json!({ "detail": e })),
            };
            let id = st.next.fetch_add(1, Ordering::Relaxed);
            let hit = id.is_multiple_of(st.every);
            match st.fault {
                Fault::Http500 if hit => {
                    return reply(StatusCode::INTERNAL_SERVER_ERROR, json!({"detail": "boom"}))
                }
                Fault::SuccessFalse if hit => {
                    return reply(
                        StatusCode::OK,
                        json!({"success": false, "id": null, "celery_status": null, "celery_id": null}),
                    )
                }
                _ => {}
            }
            let hash = if st.fault == Fault::WrongHash && hit {
                let mut h = hash.into_bytes();
                h[0] = if h[0] == b'0' { b'1' } else { b'0' };
                String::from_utf8(h).unwrap()
            } else {
                hash
            };
            st.jobs.lock().unwrap().insert(
                id,
                Job {
                    hash: hash.clone(),
                    polls: 0,
                },
            );
            let mut v = json!({
                "success": true, "id": id_json(id), "celery_status": "PENDING",
                "celery_id": format!("celery-{id}"),
            });
            if wait || st.fault == Fault::Immediate {
                if st.fault == Fault::FailureStatus && hit {
                    v["status"] = json!("FAILURE");
                    v["hash"] = Value::Null;
                } else {
                    v["status"] = json!("SUCCESS");
                    v["hash"] = json!(hash);
                }
            }
            reply(StatusCode::OK, v)
        }
        "/gethash" => {
            let raw = query(&req, "file_id").unwrap_or_default();
            let id: Option<u64> = raw.trim_start_matches("job-").parse().ok();
            let mut jobs = st.jobs.lock().unwrap();
            let job = id.and_then(|id| jobs.get_mut(&id).map(|j| (id, j)));
            let Some((id, job)) = job else {
                return reply(
                    StatusCode::OK,
                    json!({"status": "INVALID_ID", "hash": null}),
                );
            };
            let hit = id.is_multiple_of(st.every);
            job.polls += 1;
            let v = match st.fault {
                Fault::LoseIds if hit => json!({"status": "INVALID_ID", "hash": null}),
                Fault::StuckPending if hit => json!({"status": "PENDING", "hash": null}),
                _ if job.polls == 1 && st.fault != Fault::Immediate => {
                    json!({"status": "PENDING", "hash": null})
                }
                Fault::FailureStatus if hit => json!({"status": "FAILURE", "hash": null}),
                _ => json!({"status": "SUCCESS", "hash": job.hash}),
            };
            reply(StatusCode::OK, v)
        }
        _ => reply(StatusCode::NOT_FOUND, json!({"detail": "Not Found"})),
    }
}

fn config(srv: &FakeServer, n: u64, size: &str) -> Config {
    let mut c = Config::new(srv.base());
    c.files = n;
    c.size = size.parse().unwrap();
    c.concurrency = 8;
    c.poll_interval = Duration::from_millis(5);
    c.pending_timeout = Duration::from_millis(300);
    c.request_timeout = Duration::from_secs(20);
    c.seed = 42;
    c
}

async fn run(c: Config) -> Summary {
    heavy_load::run(c).await.expect("valid config")
}

/// Every failure kind other than `kind` is zero, and so are mismatches.
fn only(s: &Summary, kind: Option<FailKind>) {
    for k in FailKind::ALL {
        if Some(k) != kind {
            assert_eq!(s.failed(k), 0, "unexpected {}: {}", k.name(), s.human());
        }
    }
    if kind.is_some() {
        assert_eq!(s.mismatches, 0, "{}", s.human());
    }
    assert!(!s.passed);
}

fn assert_clean(s: &Summary, n: u64) {
    assert!(s.passed, "{}", s.human());
    assert_eq!(
        (s.ok, s.started, s.mismatches, s.failures),
        (n, n, 0, 0),
        "{}",
        s.human()
    );
    assert_eq!(s.not_started, 0);
    assert!(s.files_per_s > 0.0 && s.upload.max_ms > 0.0 && s.end_to_end.p50_ms > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correct_server_passes() {
    let srv = FakeServer::start(Fault::None, 1);
    let s = run(config(&srv, 300, "1..64K")).await;
    assert_clean(&s, 300);
    assert_eq!(srv.jobs(), 300);
    // keep-alive: 900 requests over about one connection per client
    let conns = srv.state.conns.load(Ordering::Relaxed);
    assert!(conns <= 16, "{conns} connections for 900 requests");
    // PENDING first, SUCCESS on the second poll
    assert!(s.polls >= 600, "{}", s.human());
    assert!(s.end_to_end.p50_ms >= s.upload.p50_ms);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correct_server_every_algo_and_multi_chunk_bodies() {
    let srv = FakeServer::start(Fault::None, 1);
    for algo in [Algo::Md5, Algo::Sha1, Algo::Sha256, Algo::Sha512] {
        let mut c = config(&srv, 6, "0..700K");
        c.algo = algo;
        c.seed = 7;
        assert_clean(&run(c).await, 6);
    }
    // bodies spanning several generated chunks, and the empty file
    for size in ["600K", "0"] {
        let c = config(&srv, 4, size);
        assert_clean(&run(c).await, 4);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_mode_and_final_upload_answers() {
    let srv = FakeServer::start(Fault::None, 1);
    let mut c = config(&srv, 100, "4K");
    c.wait = true;
    c.algo = Algo::Sha256;
    let s = run(c).await;
    assert_clean(&s, 100);
    assert_eq!(s.polls, 0, "--wait must not poll");

    let srv = FakeServer::start(Fault::Immediate, 1);
    let s = run(config(&srv, 100, "1K")).await;
    assert_clean(&s, 100);
    assert_eq!(
        s.polls, 100,
        "one poll each when the upload is already final"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_hashes_are_mismatches() {
    let srv = FakeServer::start(Fault::WrongHash, 7);
    let s = run(config(&srv, 200, "1..8K")).await;
    assert_eq!(s.mismatches, srv.hits(200), "{}", s.human());
    assert_eq!(s.failures, 0);
    assert_eq!(s.ok, 200 - srv.hits(200));
    only(&s, None);
    // also caught when the hash comes back in the upload answer
    let srv = FakeServer::start(Fault::WrongHash, 5);
    let mut c = config(&srv, 50, "2K");
    c.wait = true;
    let s = run(c).await;
    assert_eq!(s.mismatches, srv.hits(50), "{}", s.human());
    assert!(!s.passed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_ids_are_invalid_id() {
    let srv = FakeServer::start(Fault::LoseIds, 10);
    let s = run(config(&srv, 200, "1K")).await;
    assert_eq!(
        s.failed(FailKind::InvalidId),
        srv.hits(200),
        "{}",
        s.human()
    );
    assert_eq!(s.ok, 200 - srv.hits(200));
    only(&s, Some(FailKind::InvalidId));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_pending_is_hung() {
    let srv = FakeServer::start(Fault::StuckPending, 25);
    let t = Instant::now();
    let s = run(config(&srv, 100, "1K")).await;
    assert_eq!(
        s.failed(FailKind::HungPending),
        srv.hits(100),
        "{}",
        s.human()
    );
    assert_eq!(s.ok, 100 - srv.hits(100));
    only(&s, Some(FailKind::HungPending));
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_500_success_false_and_failure_status() {
    for (fault, kind) in [
        (Fault::Http500, FailKind::HttpError),
        (Fault::SuccessFalse, FailKind::SuccessFalse),
        (Fault::FailureStatus, FailKind::FailureStatus),
    ] {
        let srv = FakeServer::start(fault, 9);
        let s = run(config(&srv, 150, "1..4K")).await;
        assert_eq!(s.failed(kind), srv.hits(150), "{fault:?}: {}", s.human());
        assert_eq!(s.ok, 150 - srv.hits(150), "{fault:?}");
        only(&s, Some(kind));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_are_transport_errors() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }; // closed again: connections are refused
    let mut c = Config::new(format!("http://{addr}"));
    c.files = 20;
    c.size = SizeSpec::Fixed(100);
    let s = run(c).await;
    assert_eq!(s.failed(FailKind::TransportError), 20, "{}", s.human());
    only(&s, Some(FailKind::TransportError));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_limit_stops_issuing_and_cuts_off_hung_uploads() {
    // slow but correct: stops early, what was started verifies
    let srv = FakeServer::start(Fault::Slow(Duration::from_millis(20)), 1);
    let mut c = config(&srv, 100_000, "1K");
    c.concurrency = 4;
    c.time_limit = Some(Duration::from_millis(300));
    let t = Instant::now();
    let s = run(c).await;
    assert!(t.elapsed() < Duration::from_secs(3));
    assert!(s.passed, "{}", s.human());
    assert!(s.started > 4 && s.not_started > 0, "{}", s.human());
    assert_eq!(s.ok, s.started);

    // uploads never answered: cut off after the grace period, and the run ends
    let srv = FakeServer::start(Fault::HangUploads, 1);
    let mut c = config(&srv, 50, "1K");
    c.concurrency = 5;
    c.time_limit = Some(Duration::from_millis(100));
    let t = Instant::now();
    let s = run(c).await;
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(s.failed(FailKind::CutOff), 5, "{}", s.human());
    assert_eq!(s.not_started, 45);
    only(&s, Some(FailKind::CutOff));
}

/// Reads an `--ids-out` file and checks each line against the jobs `srv`
/// recorded: `ID EXPECTED_HEX`, ids distinct, digests what the server holds.
/// Returns the number of lines.
fn check_ids_file(srv: &FakeServer, path: &std::path::Path) -> u64 {
    let text = std::fs::read_to_string(path).unwrap();
    let mut seen = std::collections::HashSet::new();
    for line in text.lines() {
        let (id, hex) = line.split_once(' ').expect("ID EXPECTED_HEX");
        assert!(seen.insert(id.to_string()), "id {id} twice");
        let n: u64 = id.trim_start_matches("job-").parse().expect("fake id");
        assert_eq!(srv.job_hash(n).as_deref(), Some(hex), "line {line:?}");
        assert!(hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }
    seen.len() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_out_lists_every_id_given_even_when_the_run_fails() {
    let dir = std::env::temp_dir().join(format!("heavy-load-ids-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Failed uploads (500) got no id; lost ids were given, so they are listed.
    for (fault, with_id) in [(Fault::Http500, false), (Fault::LoseIds, true)] {
        let srv = FakeServer::start(fault, 9);
        let path = dir.join(format!("{fault:?}"));
        let mut c = config(&srv, 100, "1..4K");
        c.ids_out = Some(path.clone());
        let s = run(c).await;
        assert!(!s.passed);
        let want = if with_id { 100 } else { 100 - srv.hits(100) };
        assert_eq!(check_ids_file(&srv, &path), want, "{fault:?}");
    }
    // --wait answers carry the id too.
    let srv = FakeServer::start(Fault::None, 1);
    let path = dir.join("wait");
    let mut c = config(&srv, 40, "2K");
    c.wait = true;
    c.algo = Algo::Sha512;
    c.ids_out = Some(path.clone());
    assert_clean(&run(c).await, 40);
    assert_eq!(check_ids_file(&srv, &path), 40);
    // An unwritable file is a configuration error, before any upload.
    let mut c = config(&srv, 1, "1");
    c.ids_out = Some(dir.join("no/such/dir/ids"));
    assert!(heavy_load::run(c).await.is_err());
    assert_eq!(srv.jobs(), 40);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn refuses_bad_config() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert!(rt
        .block_on(heavy_load::run(Config::new("http://192.168.1.1:80")))
        .is_err());
    let mut c = Config::new("http://127.0.0.1:1");
    c.concurrency = 0;
    assert!(rt.block_on(heavy_load::run(c)).is_err());
}

// ---- the real binary ----

fn bin(args: &[&str]) -> (i32, Vec<String>) {
    let out = Command::new(env!("CARGO_BIN_EXE_heavy-load"))
        .args(args)
        .output()
        .expect("run heavy-load");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines = stdout.lines().map(str::to_string).collect();
    (out.status.code().unwrap_or(-1), lines)
}

fn last_json(lines: &[String]) -> Value {
    serde_json::from_str(lines.last().expect("some output")).expect("last line is JSON")
}

#[test]
fn binary_passes_on_correct_server() {
    let srv = FakeServer::start(Fault::None, 1);
    let base = srv.base();
    let ids = std::env::temp_dir().join(format!("heavy-load-bin-ids-{}", std::process::id()));
    let (code, lines) = bin(&[
        "--ids-out",
        ids.to_str().unwrap(),
        "--base",
        &base,
        "-n",
        "300",
        "-c",
        "8",
        "--size",
        "1K..32K",
        "--seed",
        "5",
        "--poll-interval",
        "5",
        "--algo",
        "sha1",
    ]);
    assert_eq!(code, 0, "{lines:#?}");
    assert!(lines.len() > 1, "human report expected before the JSON");
    let v = last_json(&lines);
    assert_eq!(v["ok"], 300);
    assert_eq!(v["failures"], 0);
    assert_eq!(v["mismatches"], 0);
    assert_eq!(v["passed"], true);
    assert_eq!(v["base"], base.as_str());
    assert_eq!(
        (
            v["n"].as_u64(),
            v["concurrency"].as_u64(),
            v["seed"].as_u64()
        ),
        (Some(300), Some(8), Some(5))
    );
    assert_eq!(
        (v["algo"].as_str(), v["size"].as_str(), v["wait"].as_bool()),
        (Some("sha1"), Some("1024..32768"), Some(false))
    );
    for k in ["files_per_s", "mb_per_s"] {
        assert!(v[k].as_f64().unwrap() > 0.0, "{k}");
    }
    for k in ["upload", "end_to_end"] {
        for p in ["p50_ms", "p99_ms", "max_ms"] {
            assert!(v[k][p].as_f64().unwrap() > 0.0, "{k}.{p}");
        }
    }
    assert_eq!(check_ids_file(&srv, &ids), 300);
    std::fs::remove_file(&ids).unwrap();
    eprintln!("{}", lines.join("\n"));
}

#[test]
fn binary_fails_on_each_fault() {
    for (fault, kind) in [
        (Fault::WrongHash, "mismatches"),
        (Fault::LoseIds, "invalid_id"),
        (Fault::StuckPending, "hung_pending"),
        (Fault::Http500, "http_error"),
    ] {
        let srv = FakeServer::start(fault, 13);
        let base = srv.base();
        let mut args = vec![
            "--base",
            &base,
            "-n",
            "60",
            "-c",
            "6",
            "--size",
            "2K",
            "--json-only",
            "--poll-interval",
            "5",
            "--pending-timeout",
            "0.3",
        ];
        if fault == Fault::WrongHash {
            args.push("--wait"); // the hash in the upload answer is checked too
        }
        let (code, lines) = bin(&args);
        assert_eq!(code, 1, "{fault:?}: {lines:#?}");
        assert_eq!(lines.len(), 1, "--json-only prints one line");
        let v = last_json(&lines);
        let got = if kind == "mismatches" {
            &v["mismatches"]
        } else {
            &v["failure_kinds"][kind]
        };
        assert_eq!(got.as_u64(), Some(srv.hits(60)), "{fault:?}: {v}");
        assert_eq!(v["passed"], false);
    }
}

#[test]
fn binary_refuses_non_loopback() {
    let (code, lines) = bin(&["--base", "http://10.1.2.3:8000", "-n", "1"]);
    assert_eq!(code, 2);
    assert!(lines.is_empty());
}

/// Throughput against the correct fake server (client and server share the
/// machine): `cargo test -p heavy-load --release --test fake_servers -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn throughput_against_fake_server() {
    let srv = FakeServer::start(Fault::None, 1);
    for (n, size, c) in [(20_000, "1K", 32), (200, "4M", 4)] {
        let mut cfg = config(&srv, n, size);
        cfg.concurrency = c;
        let s = run(cfg).await;
        eprintln!("{}", s.human());
        assert!(s.passed);
    }
}
