//! heavy-load: uploads many files of random content and known digest to a
//! server speaking the original hashing API, polls every id until it is final
//! and checks every hash.
//!
//! The logic lives here so tests can run it in-process ([`run`]) and read the
//! [`Summary`]; `main.rs` only parses flags and prints.

pub mod body;
pub mod gen;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{LineWriter, Write as _};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde_json::Value;

use body::{ReqBody, Upload};
pub use gen::SizeSpec;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Algo {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl Algo {
    pub fn name(self) -> &'static str {
        match self {
            Algo::Md5 => "md5",
            Algo::Sha1 => "sha1",
            Algo::Sha256 => "sha256",
            Algo::Sha512 => "sha512",
        }
    }
}

/// Everything a run needs. `main.rs` fills it from the command line.
#[derive(Clone, Debug)]
pub struct Config {
    /// `http://HOST:PORT`, loopback only.
    pub base: String,
    pub files: u64,
    pub size: SizeSpec,
    pub concurrency: usize,
    pub algo: Algo,
    /// Upload with `?wait=true` and expect the final hash in the upload answer.
    pub wait: bool,
    /// Stop issuing uploads after this long; in-flight files then get
    /// `pending_timeout` more before they are cut off (counted as failures).
    pub time_limit: Option<Duration>,
    /// Longest sleep between two polls of one id (the first poll is immediate,
    /// then 1 ms, 2 ms, 4 ms ... up to this).
    pub poll_interval: Duration,
    /// An id still PENDING this long after its upload answered is "hung".
    pub pending_timeout: Duration,
    /// Limit for one HTTP exchange (request sent, answer read).
    pub request_timeout: Duration,
    pub seed: u64,
    /// Write `ID EXPECTED_HEX` here, one line per upload answered with an id,
    /// as the answers arrive (so a run that ends badly, or is killed, still
    /// leaves every id a client was given). The id is written as it is sent
    /// back in `?file_id=` (percent-encoded where needed; hex ids unchanged);
    /// the digest is lower-case hex of `algo`.
    pub ids_out: Option<PathBuf>,
}

impl Config {
    pub fn new(base: impl Into<String>) -> Self {
        Config {
            base: base.into(),
            files: 100,
            size: SizeSpec::Fixed(64 << 10),
            concurrency: 8,
            algo: Algo::Md5,
            wait: false,
            time_limit: None,
            poll_interval: Duration::from_millis(50),
            pending_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            seed: 1,
            ids_out: None,
        }
    }
}

/// Why a file did not verify. Mismatches are counted separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailKind {
    /// Non-2xx answer (503 on upload is retried first, see `busy_retries`).
    HttpError,
    /// Upload answered `success: false`.
    SuccessFalse,
    /// Final status `FAILURE`.
    FailureStatus,
    /// `INVALID_ID` for an id the server gave us: a lost id.
    InvalidId,
    /// Still PENDING after `pending_timeout`.
    HungPending,
    /// Connection refused/reset, request timeout, ...
    TransportError,
    /// Unparseable answer, missing id, SUCCESS without hash, unknown status,
    /// or no final hash in a `--wait` upload answer.
    Protocol,
    /// Still in flight when the time limit's grace period ran out.
    CutOff,
}

impl FailKind {
    pub const ALL: [FailKind; 8] = [
        FailKind::HttpError,
        FailKind::SuccessFalse,
        FailKind::FailureStatus,
        FailKind::InvalidId,
        FailKind::HungPending,
        FailKind::TransportError,
        FailKind::Protocol,
        FailKind::CutOff,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FailKind::HttpError => "http_error",
            FailKind::SuccessFalse => "success_false",
            FailKind::FailureStatus => "failure_status",
            FailKind::InvalidId => "invalid_id",
            FailKind::HungPending => "hung_pending",
            FailKind::TransportError => "transport_error",
            FailKind::Protocol => "protocol",
            FailKind::CutOff => "cut_off",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    fn of(mut v: Vec<Duration>) -> Self {
        if v.is_empty() {
            return Latency::default();
        }
        v.sort_unstable();
        // nearest-rank percentile
        let pick = |p: f64| {
            let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
            ms(v[rank - 1])
        };
        Latency {
            p50_ms: pick(0.50),
            p99_ms: pick(0.99),
            max_ms: ms(v[v.len() - 1]),
        }
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// The result of a run: configuration and every figure printed.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub base: String,
    pub n: u64,
    pub size: String,
    pub concurrency: usize,
    pub algo: Algo,
    pub wait: bool,
    pub seed: u64,
    pub time_limit_s: Option<f64>,
    pub poll_interval_ms: f64,
    pub pending_timeout_s: f64,
    /// Files whose upload was started.
    pub started: u64,
    /// Files never started because the time limit was reached.
    pub not_started: u64,
    pub ok: u64,
    pub mismatches: u64,
    pub failures: u64,
    pub failure_kinds: BTreeMap<&'static str, u64>,
    /// Content bytes of the files started.
    pub bytes: u64,
    pub elapsed_s: f64,
    /// Finished files (any outcome) per second.
    pub files_per_s: f64,
    /// Content megabytes (10^6) of finished files per second.
    pub mb_per_s: f64,
    pub upload: Latency,
    pub end_to_end: Latency,
    pub polls: u64,
    /// Upload attempts answered 503 and retried after Retry-After.
    pub busy_retries: u64,
    /// A few failure messages, for diagnosis.
    pub examples: Vec<String>,
    /// True iff every started file verified and none was lost.
    pub passed: bool,
}

impl Summary {
    pub fn failed(&self, kind: FailKind) -> u64 {
        self.failure_kinds.get(kind.name()).copied().unwrap_or(0)
    }

    /// Human-readable report (the JSON line is printed separately).
    pub fn human(&self) -> String {
        let mut s = String::new();
        use std::fmt::Write;
        let _ = writeln!(
            s,
            "heavy-load {} n={} size={} c={} algo={} wait={} seed={}",
            self.base,
            self.n,
            self.size,
            self.concurrency,
            self.algo.name(),
            self.wait,
            self.seed
        );
        let _ = writeln!(
            s,
            "  {:.1} files/s, {:.1} MB/s over {:.3} s ({} started, {} not started, {} bytes, {} polls, {} busy retries)",
            self.files_per_s,
            self.mb_per_s,
            self.elapsed_s,
            self.started,
            self.not_started,
            self.bytes,
            self.polls,
            self.busy_retries
        );
        for (name, l) in [("upload", &self.upload), ("end-to-end", &self.end_to_end)] {
            let _ = writeln!(
                s,
                "  {name:>10} latency ms: p50 {:.3}  p99 {:.3}  max {:.3}",
                l.p50_ms, l.p99_ms, l.max_ms
            );
        }
        let _ = writeln!(
            s,
            "  ok {}  mismatches {}  failures {}",
            self.ok, self.mismatches, self.failures
        );
        for (k, v) in &self.failure_kinds {
            if *v > 0 {
                let _ = writeln!(s, "    {k}: {v}");
            }
        }
        for e in &self.examples {
            let _ = writeln!(s, "  e.g. {e}");
        }
        let _ = write!(s, "  {}", if self.passed { "PASSED" } else { "FAILED" });
        s
    }
}

/// Refuses anything but `http://` to 127.0.0.0/8, ::1 or localhost.
pub fn check_base(base: &str) -> anyhow::Result<String> {
    let base = base.trim_end_matches('/').to_string();
    let uri: Uri = base
        .parse()
        .with_context(|| format!("bad --base {base:?}"))?;
    if uri.scheme_str() != Some("http") {
        bail!("--base must be http://HOST:PORT, got {base:?}");
    }
    let host = uri.host().context("--base has no host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| match ip {
            IpAddr::V4(v4) => v4.octets()[0] == 127,
            IpAddr::V6(v6) => v6.is_loopback(),
        });
    if !loopback {
        bail!("refusing non-loopback --base {base:?}: only 127.0.0.0/8, ::1 and localhost");
    }
    if uri.path() != "/" && !uri.path().is_empty() || uri.query().is_some() {
        bail!("--base must not have a path or query: {base:?}");
    }
    Ok(base)
}

/// What happened to one file.
enum Verdict {
    Ok,
    Mismatch(String),
    Fail(FailKind, String),
}

struct Record {
    outcome: Verdict,
    size: u64,
    upload: Option<Duration>,
    end_to_end: Option<Duration>,
}

struct Shared {
    cfg: Config,
    client: Client<HttpConnector, ReqBody>,
    next: AtomicU64,
    polls: AtomicU64,
    busy_retries: AtomicU64,
    issue_until: Option<Instant>,
    hard_deadline: Option<Instant>,
    ids_out: Option<IdsOut>,
}

/// The `--ids-out` file: line-buffered, so each id is on disk (in the page
/// cache) as soon as its line is complete.
struct IdsOut {
    file: Mutex<LineWriter<File>>,
    /// The first write error; the run reports it at the end.
    error: Mutex<Option<String>>,
}

impl IdsOut {
    fn record(&self, id: &str, expected: &str) {
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = writeln!(f, "{id} {expected}") {
            let mut err = self.error.lock().unwrap_or_else(|e| e.into_inner());
            err.get_or_insert_with(|| e.to_string());
        }
    }
}

/// Runs the whole load test and returns its summary. Errors only on bad
/// configuration; every problem with the server is counted in the summary.
pub async fn run(cfg: Config) -> anyhow::Result<Summary> {
    let mut cfg = cfg;
    cfg.base = check_base(&cfg.base)?;
    if cfg.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let ids_out = match &cfg.ids_out {
        None => None,
        Some(p) => Some(IdsOut {
            file: Mutex::new(LineWriter::new(
                File::create(p)
                    .with_context(|| format!("--ids-out: cannot create {}", p.display()))?,
            )),
            error: Mutex::new(None),
        }),
    };
    let mut conn = HttpConnector::new();
    conn.set_nodelay(true);
    conn.enforce_http(true);
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(cfg.concurrency)
        .pool_idle_timeout(Duration::from_secs(30))
        .build(conn);
    let start = Instant::now();
    let issue_until = cfg.time_limit.map(|t| start + t);
    let hard_deadline = issue_until.map(|t| t + cfg.pending_timeout + Duration::from_secs(1));
    let workers = cfg.concurrency.min(cfg.files.max(1) as usize);
    let shared = Arc::new(Shared {
        cfg,
        client,
        next: AtomicU64::new(0),
        polls: AtomicU64::new(0),
        busy_retries: AtomicU64::new(0),
        issue_until,
        hard_deadline,
        ids_out,
    });
    let mut tasks = Vec::with_capacity(workers);
    for _ in 0..workers {
        let sh = shared.clone();
        tasks.push(tokio::spawn(async move { worker(sh).await }));
    }
    let mut records = Vec::with_capacity(shared.cfg.files.min(1 << 20) as usize);
    for t in tasks {
        records.extend(t.await.context("worker panicked")?);
    }
    let elapsed = start.elapsed();
    if let Some(ids) = &shared.ids_out {
        let flushed = ids.file.lock().unwrap_or_else(|e| e.into_inner()).flush();
        let mut err = ids.error.lock().unwrap_or_else(|e| e.into_inner());
        if let (Err(e), None) = (flushed, err.as_ref()) {
            *err = Some(e.to_string());
        }
        if let Some(e) = err.as_ref() {
            let p = shared.cfg.ids_out.as_deref().unwrap_or_else(|| "".as_ref());
            bail!("--ids-out: writing {}: {e}", p.display());
        }
    }
    Ok(summarize(&shared, records, elapsed))
}

async fn worker(sh: Arc<Shared>) -> Vec<Record> {
    let mut out = Vec::new();
    loop {
        if sh.issue_until.is_some_and(|t| Instant::now() >= t) {
            break;
        }
        let index = sh.next.fetch_add(1, Ordering::Relaxed);
        if index >= sh.cfg.files {
            break;
        }
        let size = sh.cfg.size.size_of(sh.cfg.seed, index);
        let t0 = Instant::now();
        let mut upload_lat = None;
        let fut = one_file(&sh, index, size, t0, &mut upload_lat);
        let outcome = match sh.hard_deadline {
            None => fut.await,
            Some(d) => match tokio::time::timeout_at(d.into(), fut).await {
                Ok(o) => o,
                Err(_) => Verdict::Fail(
                    FailKind::CutOff,
                    format!("file {index}: still in flight when the time limit ran out"),
                ),
            },
        };
        let end_to_end =
            matches!(outcome, Verdict::Ok | Verdict::Mismatch(_)).then(|| t0.elapsed());
        out.push(Record {
            outcome,
            size,
            upload: upload_lat,
            end_to_end,
        });
    }
    out
}

/// One HTTP exchange, answer body read and parsed as JSON.
async fn exchange(
    sh: &Shared,
    req: Request<ReqBody>,
) -> Result<(StatusCode, hyper::HeaderMap, Bytes), String> {
    let fut = async {
        let resp = sh.client.request(req).await.map_err(|e| format!("{e:?}"))?;
        let (parts, body) = resp.into_parts();
        let bytes = Limited::new(body, 1 << 20)
            .collect()
            .await
            .map_err(|e| format!("reading answer: {e}"))?
            .to_bytes();
        Ok((parts.status, parts.headers, bytes))
    };
    match tokio::time::timeout(sh.cfg.request_timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {:?}", sh.cfg.request_timeout)),
    }
}

fn snippet(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(200)]);
    s.replace('\n', " ")
}

/// `id` as sent back in `?file_id=`: strings percent-encoded, numbers as is.
fn id_param(id: &Value) -> Option<String> {
    match id {
        Value::String(s) if !s.is_empty() => {
            let mut o = String::with_capacity(s.len());
            for b in s.bytes() {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    o.push(b as char);
                } else {
                    o.push_str(&format!("%{b:02X}"));
                }
            }
            Some(o)
        }
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

enum Status {
    Pending,
    Final(String),
    Failure,
    InvalidId,
}

/// Reads `status`/`hash` of an answer. `None` status = field absent.
fn parse_status(v: &Value) -> Result<Option<Status>, String> {
    let st = match v.get("status") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.as_str(),
        Some(other) => return Err(format!("status is not a string: {other}")),
    };
    Ok(Some(match st {
        "PENDING" | "STARTED" | "RECEIVED" | "RETRY" => Status::Pending,
        "FAILURE" | "REVOKED" => Status::Failure,
        "INVALID_ID" => Status::InvalidId,
        "SUCCESS" => match v.get("hash") {
            Some(Value::String(h)) if !h.is_empty() => Status::Final(h.to_ascii_lowercase()),
            _ => return Err(format!("SUCCESS without a hash: {v}")),
        },
        other => return Err(format!("unknown status {other:?}")),
    }))
}

async fn one_file(
    sh: &Shared,
    index: u64,
    size: u64,
    t0: Instant,
    upload_lat: &mut Option<Duration>,
) -> Verdict {
    let cfg = &sh.cfg;
    let fail = |k: FailKind, m: String| Verdict::Fail(k, format!("file {index}: {m}"));
    let mut uri = format!("{}/uploadfile/?algo={}", cfg.base, cfg.algo.name());
    if cfg.wait {
        uri.push_str("&wait=true");
    }
    // Upload; a 503 (server saturated) is retried after Retry-After.
    let mut busy = 0u32;
    let (status, body, digest_slot) = loop {
        let (up, total, boundary, slot) = Upload::new(cfg.seed, index, size, cfg.algo);
        let req = Request::builder()
            .method(Method::POST)
            .uri(&uri)
            .header(
                hyper::header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .header(hyper::header::CONTENT_LENGTH, total)
            .body(ReqBody::Upload(Box::new(up)))
            .expect("valid request");
        match exchange(sh, req).await {
            Err(e) => return fail(FailKind::TransportError, format!("upload: {e}")),
            Ok((StatusCode::SERVICE_UNAVAILABLE, headers, _)) if busy < 50 => {
                busy += 1;
                sh.busy_retries.fetch_add(1, Ordering::Relaxed);
                let after = headers
                    .get(hyper::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .unwrap_or(0.1)
                    .clamp(0.01, 2.0);
                tokio::time::sleep(Duration::from_secs_f64(after)).await;
            }
            Ok((st, _, b)) => break (st, b, slot),
        }
    };
    *upload_lat = Some(t0.elapsed());
    if !status.is_success() {
        return fail(
            FailKind::HttpError,
            format!("upload answered {status}: {}", snippet(&body)),
        );
    }
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return fail(
                FailKind::Protocol,
                format!("upload answer not JSON ({e}): {}", snippet(&body)),
            )
        }
    };
    match v.get("success") {
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => return fail(FailKind::SuccessFalse, format!("upload: {v}")),
        _ => {
            return fail(
                FailKind::Protocol,
                format!("upload answer without success: {v}"),
            )
        }
    }
    let expected = digest_slot
        .get()
        .cloned()
        .unwrap_or_else(|| body::file_digest(cfg.seed, index, size, cfg.algo));
    let id = v.get("id").and_then(id_param);
    if let (Some(ids), Some(id)) = (&sh.ids_out, &id) {
        ids.record(id, &expected);
    }
    let check = |got: &str, wher: &str| {
        if got == expected {
            Verdict::Ok
        } else {
            Verdict::Mismatch(format!(
                "file {index} ({size} bytes): {wher} hash {got}, expected {expected}"
            ))
        }
    };
    let upload_status = match parse_status(&v) {
        Ok(s) => s,
        Err(e) => return fail(FailKind::Protocol, format!("upload: {e}")),
    };
    if cfg.wait {
        return match upload_status {
            Some(Status::Final(h)) => check(&h, "upload"),
            Some(Status::Failure) => fail(FailKind::FailureStatus, format!("upload: {v}")),
            Some(Status::InvalidId) => fail(FailKind::InvalidId, format!("upload: {v}")),
            _ => fail(
                FailKind::Protocol,
                format!("--wait but no final hash in upload answer: {v}"),
            ),
        };
    }
    let id = match id {
        Some(id) => id,
        None => {
            return fail(
                FailKind::Protocol,
                format!("upload answer without usable id: {v}"),
            )
        }
    };
    // An upload answered already final must match too (and we still poll once).
    if let Some(Status::Final(h)) = &upload_status {
        if let o @ Verdict::Mismatch(_) = check(h, "upload") {
            return o;
        }
    }
    let poll_uri = format!("{}/gethash/?file_id={id}", cfg.base);
    let since = Instant::now();
    let mut sleep = Duration::from_millis(1);
    loop {
        sh.polls.fetch_add(1, Ordering::Relaxed);
        let req = Request::builder()
            .method(Method::GET)
            .uri(&poll_uri)
            .body(ReqBody::Empty)
            .expect("valid request");
        let (st, b) = match exchange(sh, req).await {
            Err(e) => return fail(FailKind::TransportError, format!("gethash {id}: {e}")),
            Ok((st, _, b)) => (st, b),
        };
        if !st.is_success() {
            return fail(
                FailKind::HttpError,
                format!("gethash {id} answered {st}: {}", snippet(&b)),
            );
        }
        let pv: Value = match serde_json::from_slice(&b) {
            Ok(v) => v,
            Err(e) => {
                return fail(
                    FailKind::Protocol,
                    format!("gethash {id} not JSON ({e}): {}", snippet(&b)),
                )
            }
        };
        match parse_status(&pv) {
            Err(e) => return fail(FailKind::Protocol, format!("gethash {id}: {e}")),
            Ok(None) => {
                return fail(
                    FailKind::Protocol,
                    format!("gethash {id} without status: {pv}"),
                )
            }
            Ok(Some(Status::Final(h))) => return check(&h, "gethash"),
            Ok(Some(Status::Failure)) => {
                return fail(FailKind::FailureStatus, format!("gethash {id}: {pv}"))
            }
            Ok(Some(Status::InvalidId)) => {
                return fail(FailKind::InvalidId, format!("gethash {id}: lost id ({pv})"))
            }
            Ok(Some(Status::Pending)) => {}
        }
        if since.elapsed() >= cfg.pending_timeout {
            return fail(
                FailKind::HungPending,
                format!("id {id} still PENDING after {:?}", cfg.pending_timeout),
            );
        }
        tokio::time::sleep(sleep.min(cfg.poll_interval)).await;
        sleep = sleep.saturating_mul(2);
    }
}

fn summarize(sh: &Shared, records: Vec<Record>, elapsed: Duration) -> Summary {
    let cfg = &sh.cfg;
    let mut failure_kinds: BTreeMap<&'static str, u64> =
        FailKind::ALL.iter().map(|k| (k.name(), 0)).collect();
    let (mut ok, mut mismatches, mut failures, mut bytes) = (0, 0, 0, 0);
    let mut examples = Vec::new();
    let mut up = Vec::with_capacity(records.len());
    let mut e2e = Vec::with_capacity(records.len());
    for r in &records {
        bytes += r.size;
        up.extend(r.upload);
        e2e.extend(r.end_to_end);
        match &r.outcome {
            Verdict::Ok => ok += 1,
            Verdict::Mismatch(m) => {
                mismatches += 1;
                if examples.len() < 5 {
                    examples.push(format!("mismatch: {m}"));
                }
            }
            Verdict::Fail(k, m) => {
                failures += 1;
                *failure_kinds.entry(k.name()).or_default() += 1;
                if examples.len() < 5 {
                    examples.push(format!("{}: {m}", k.name()));
                }
            }
        }
    }
    let started = records.len() as u64;
    let secs = elapsed.as_secs_f64().max(1e-9);
    Summary {
        base: cfg.base.clone(),
        n: cfg.files,
        size: cfg.size.to_string(),
        concurrency: cfg.concurrency,
        algo: cfg.algo,
        wait: cfg.wait,
        seed: cfg.seed,
        time_limit_s: cfg.time_limit.map(|t| t.as_secs_f64()),
        poll_interval_ms: cfg.poll_interval.as_secs_f64() * 1e3,
        pending_timeout_s: cfg.pending_timeout.as_secs_f64(),
        started,
        not_started: cfg.files - started,
        ok,
        mismatches,
        failures,
        failure_kinds,
        bytes,
        elapsed_s: (secs * 1e3).round() / 1e3,
        files_per_s: (started as f64 / secs * 10.0).round() / 10.0,
        mb_per_s: (bytes as f64 / 1e6 / secs * 10.0).round() / 10.0,
        upload: Latency::of(up),
        end_to_end: Latency::of(e2e),
        polls: sh.polls.load(Ordering::Relaxed),
        busy_retries: sh.busy_retries.load(Ordering::Relaxed),
        examples,
        passed: (started > 0 || cfg.files == 0)
            && ok == started
            && mismatches == 0
            && failures == 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_must_be_loopback_http() {
        for good in [
            "http://127.0.0.1:8000",
            "http://127.1.2.3:1/",
            "http://localhost:80",
            "http://[::1]:9000",
        ] {
            assert!(check_base(good).is_ok(), "{good}");
        }
        for bad in [
            "http://10.0.0.1:80",
            "http://example.com",
            "https://127.0.0.1:1",
            "http://[::2]:1",
            "http://128.0.0.1:1",
            "http://127.0.0.1:1/api",
            "127.0.0.1:8000",
        ] {
            assert!(check_base(bad).is_err(), "{bad}");
        }
        assert_eq!(
            check_base("http://127.0.0.1:5/").unwrap(),
            "http://127.0.0.1:5"
        );
    }

    #[test]
    fn percentiles() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let l = Latency::of(v);
        assert_eq!((l.p50_ms, l.p99_ms, l.max_ms), (50.0, 99.0, 100.0));
        assert_eq!(Latency::of(vec![]), Latency::default());
    }

    #[test]
    fn ids_are_encoded() {
        assert_eq!(id_param(&serde_json::json!(17)).as_deref(), Some("17"));
        assert_eq!(
            id_param(&serde_json::json!("a b/c")).as_deref(),
            Some("a%20b%2Fc")
        );
        assert_eq!(id_param(&Value::Null), None);
        assert_eq!(id_param(&serde_json::json!("")), None);
    }
}
