//! Shared helpers: start the real `hashd` binary on port 0, learn its address
//! from what it prints, and talk HTTP/1.1 to it over plain sockets so every
//! byte a test sends is under its control.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use digest::Digest as _;

pub const BIN: &str = env!("CARGO_BIN_EXE_hashd");

/// A scratch directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "hashd-it-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running daemon. Killed (SIGKILL) when dropped if still running.
pub struct Daemon {
    pub child: Child,
    pub addr: SocketAddr,
    pub stderr_path: PathBuf,
}

pub struct DaemonBuilder<'a> {
    dir: &'a Path,
    args: Vec<String>,
    env: Vec<(String, String)>,
    listen: bool,
}

impl<'a> DaemonBuilder<'a> {
    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.to_string());
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_string(), v.to_string()));
        self
    }

    /// Leave the listen address to the environment or `.env` (which must then
    /// ask for port 0).
    pub fn no_listen_flag(mut self) -> Self {
        self.listen = false;
        self
    }

    pub fn start(self) -> Daemon {
        let stderr_path = self.dir.join(format!(
            "stderr-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let mut cmd = Command::new(BIN);
        cmd.current_dir(self.dir)
            .env_remove("API_PORT")
            .env_remove("ARTIFICIAL_DELAY")
            .env_remove("ARTIFITIAL_DELAY")
            .env_remove("DELETE_FILE")
            // A test runner started by systemd must not have its daemons
            // notify the runner's service manager (tests/integration/service.rs
            // sets its own).
            .env_remove("NOTIFY_SOCKET")
            .env("HASHD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap());
        if self.listen {
            cmd.arg("--listen").arg("127.0.0.1:0");
        }
        if let Some(url) = test_store_url(self.dir) {
            if !self.args.iter().any(|a| a == "--store") {
                cmd.arg("--store").arg(url);
            }
        }
        cmd.args(&self.args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn hashd");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    // `https://` when the daemon serves TLS.
                    if let Some(rest) = line
                        .strip_prefix("hashd listening on http://")
                        .or_else(|| line.strip_prefix("hashd listening on https://"))
                    {
                        break rest.trim().parse().unwrap();
                    }
                }
                _ => panic!(
                    "hashd exited before listening; stderr:\n{}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                ),
            }
        };
        // Keep draining stdout so the daemon never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Daemon {
            child,
            addr,
            stderr_path,
        }
    }
}

/// The PostgreSQL server the tests may use (`.ci/run` starts one and sets
/// this), as a URL of its maintenance database.
pub fn test_postgres() -> Option<String> {
    std::env::var("HASHD_TEST_POSTGRES")
        .ok()
        .filter(|v| !v.is_empty())
}

/// PostgreSQL for a test that needs it; `None` (the test returns early)
/// on a developer machine without one. In CI (`CI` set) a missing server
/// is a failure, not a skip.
pub fn postgres_or_skip(test: &str) -> Option<String> {
    let url = test_postgres();
    if url.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: HASHD_TEST_POSTGRES is not set, but CI is: .ci/run must start PostgreSQL"
        );
        eprintln!("{test}: skipped: set HASHD_TEST_POSTGRES (scripts/pg-tmp start DIR PORT prints one) to run it");
    }
    url
}

/// A fresh database on the test server, named `name`, as a URL.
pub fn postgres_database(server: &str, name: &str) -> String {
    let status = Command::new("psql")
        .env("PGOPTIONS", "-c client_min_messages=warning")
        .arg(server)
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-c"])
        .arg(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .arg("-c")
        .arg(format!("CREATE DATABASE {name}"))
        .stdout(Stdio::null())
        .status()
        .expect("psql (Debian's postgresql-client) must be installed");
    assert!(status.success(), "psql could not create database {name}");
    let base = server.rsplit_once('/').map_or(server, |(b, _)| b);
    format!("{base}/{name}")
}

/// Whether this run's daemons use PostgreSQL (`HASHD_TEST_STORE`).
pub fn testing_postgres() -> bool {
    std::env::var("HASHD_TEST_STORE").is_ok_and(|s| s == "postgres")
}

/// With `HASHD_TEST_STORE=postgres`, every daemon a test starts runs on
/// PostgreSQL: the API tests then run against both stores. One database per
/// scratch directory, so a daemon restarted on the same data finds its jobs.
fn test_store_url(dir: &Path) -> Option<String> {
    if !testing_postgres() {
        return None;
    }
    let server = test_postgres().expect("HASHD_TEST_STORE=postgres needs HASHD_TEST_POSTGRES");
    static MADE: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let name = format!(
        "it_{:016x}",
        dir.to_string_lossy()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64)
                .wrapping_mul(0x100_0000_01b3))
    );
    let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
    let mut made = MADE.lock().unwrap_or_else(|p| p.into_inner());
    if made.iter().any(|d| d == dir) {
        return Some(format!("{base}/{name}"));
    }
    made.push(dir.to_path_buf());
    Some(postgres_database(&server, &name))
}

impl Daemon {
    /// A daemon with its data in `dir`.
    pub fn builder(dir: &Path) -> DaemonBuilder<'_> {
        DaemonBuilder {
            dir,
            args: vec![
                "--data-dir".into(),
                dir.join("data").to_string_lossy().into_owned(),
            ],
            env: Vec::new(),
            listen: true,
        }
    }

    pub fn start(dir: &Path) -> Daemon {
        Daemon::builder(dir).start()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then the exit status (within 30 s).
    pub fn terminate(mut self) -> std::process::ExitStatus {
        signal(self.pid(), "TERM");
        self.wait_exit(Duration::from_secs(30))
            .expect("hashd did not stop after SIGTERM")
    }

    /// The exit status, if the daemon exits within `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Peak resident set (VmHWM) in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmHWM:")
    }

    pub fn get(&self, path: &str) -> Response {
        request(self.addr, "GET", path, &[], &[])
    }

    pub fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self.get(path);
        (r.status, r.json())
    }

    /// Uploads `data` through the original multipart API.
    pub fn upload(&self, query: &str, name: &str, data: &[u8]) -> Response {
        let (ct, body) = multipart(&[Part::file("file", name, data)]);
        request(
            self.addr,
            "POST",
            &format!("/uploadfile/{query}"),
            &[("Content-Type", &ct)],
            &body,
        )
    }

    /// Polls `/gethash/?file_id=` until the status is final.
    pub fn wait_final(&self, id: &str) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, v) = self.get_json(&format!("/gethash/?file_id={id}"));
            if v["status"] != "PENDING" {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} still PENDING after 60 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Daemon {
    /// Sum of one counter over all hashers in `/stats`.
    pub fn hasher_total(stats: &serde_json::Value, counter: &str) -> u64 {
        stats["hashers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h[counter].as_u64().unwrap())
            .sum()
    }

    /// Polls `/stats` until `ready` holds (10 s at most); returns those stats.
    pub fn wait_for_stats(
        &self,
        what: &str,
        ready: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let stats = self.get_json("/stats").1;
            if ready(&stats) {
                return stats;
            }
            assert!(Instant::now() < deadline, "{what}: {stats}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(ok.success());
}

fn proc_status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request on a fresh connection (`Connection: close`).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    // A server may answer (413, 415...) and close before reading the whole
    // body; the answer is what the test checks, so a failed write is not.
    let _ = s.write_all(body);
    read_response(&mut s)
}

pub fn read_response(s: &mut TcpStream) -> Response {
    try_read_response(&mut BufReader::new(s)).unwrap()
}

/// Reads one response from `r`. Keep one reader per connection to read
/// several pipelined answers: a reader may buffer the start of the next one.
pub fn try_read_response(r: &mut impl BufRead) -> std::io::Result<Response> {
    let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l
            .split_once(':')
            .ok_or_else(|| bad(format!("bad header line {l:?}")))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse::<usize>().map_err(|e| bad(e.to_string())))
        .transpose()?;
    let mut body = Vec::new();
    match len {
        Some(n) => {
            body.resize(n, 0);
            r.read_exact(&mut body)?;
        }
        None => {
            r.read_to_end(&mut body)?;
        }
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Like [`request`], but a connection failure (a daemon being killed, a
/// reset) is an error rather than a panic; `timeout` bounds each read.
pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> std::io::Result<Response> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    try_read_response(&mut BufReader::new(s))
}

/// Polls `cond` every 20 ms until it holds; panics with `what` after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "{what} (after {limit:?})");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A tmpfs mounted for a test (the tests run as root); unmounted on drop.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs with `options` (e.g. `size=2m`, `ro`) on `dir`,
    /// creating it; `None`, with a message, where mounting is not allowed.
    pub fn mount(dir: &Path, options: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(dir.to_path_buf())),
            Ok(o) => {
                eprintln!(
                    "skipped: cannot mount a tmpfs on {}: {}",
                    dir.display(),
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: cannot run mount: {e}");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

pub struct Part<'a> {
    pub name: &'a str,
    pub filename: Option<&'a str>,
    pub data: &'a [u8],
}

impl<'a> Part<'a> {
    pub fn file(name: &'a str, filename: &'a str, data: &'a [u8]) -> Part<'a> {
        Part {
            name,
            filename: Some(filename),
            data,
        }
    }

    pub fn field(name: &'a str, data: &'a [u8]) -> Part<'a> {
        Part {
            name,
            filename: None,
            data,
        }
    }
}

pub const BOUNDARY: &str = "hashd-test-boundary-7MA4YWxkTrZu0gW";

/// A multipart/form-data body: (content type, body).
pub fn multipart(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    let mut body = Vec::new();
    for p in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match p.filename {
            Some(f) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n", p.name).as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{}\"\r\n\r\n", p.name).as_bytes(),
            ),
        }
        body.extend_from_slice(p.data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The reference digest, from the RustCrypto crates.
pub fn reference(algo: &str, data: &[u8]) -> String {
    let bytes = match algo {
        "md5" => md5::Md5::digest(data).to_vec(),
        "sha1" => sha1::Sha1::digest(data).to_vec(),
        "sha256" => sha2::Sha256::digest(data).to_vec(),
        "sha512" => sha2::Sha512::digest(data).to_vec(),
        _ => panic!("unknown algorithm {algo}"),
    };
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The lines of the results log, parsed; panics on a torn or non-JSON line.
pub fn results_log(dir: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("data/results.log")).unwrap_or_default();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "results log ends mid-line"
    );
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("torn log line {l:?}: {e}")))
        .collect()
}

/// An upload and a lookup both work.
pub fn still_serving(d: &Daemon) {
    let body = data(5000, 77);
    let v = d.upload("?wait=1", "ok.bin", &body).json();
    assert_eq!(v["hash"], reference("md5", &body), "{v}");
    let id = v["id"].as_str().unwrap();
    assert_eq!(d.get_json(&format!("/gethash/{id}")).1["status"], "SUCCESS");
}

/// `status`, a JSON reason containing `needle`, and nothing internal in it.
pub fn assert_json_error(r: &Response, status: u16, needle: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    let v = r.json();
    let reason = v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no reason in {v}"));
    assert!(reason.contains(needle), "{reason:?} lacks {needle:?}");
    assert_no_internals(r);
}

pub fn assert_no_internals(r: &Response) {
    let text = r.text();
    for leak in ["/tmp", "hashd-it-", "jobs.db", "uploads/", "panicked"] {
        assert!(!text.contains(leak), "answer leaks {leak:?}: {text}");
    }
}

/// One unix-socket frame (docs/protocol.md): length, kind, tag, payload.
pub fn frame(kind: u8, tag: u64, payload: &[u8]) -> Vec<u8> {
    let mut f = ((9 + payload.len()) as u32).to_be_bytes().to_vec();
    f.push(kind);
    f.extend_from_slice(&tag.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// The next frame from `s` as (kind, tag, payload); `None` when the
/// connection ends or a read times out first.
pub fn read_frame(s: &mut std::os::unix::net::UnixStream) -> Option<(u8, u64, Vec<u8>)> {
    let mut head = [0u8; 13];
    s.read_exact(&mut head).ok()?;
    let len = u32::from_be_bytes(head[..4].try_into().unwrap()) as usize;
    let mut body = vec![0u8; len - 9];
    s.read_exact(&mut body).ok()?;
    Some((
        head[4],
        u64::from_be_bytes(head[5..13].try_into().unwrap()),
        body,
    ))
}

/// Runs `prog ARGS` in `cwd` with `stdin` as its standard input and waits
/// for it, as a command-line user would: out of any daemon's reach (no
/// `HASHD_SOCKET` or `HASHD_DATA_DIR` from the test's environment) and in
/// the C locale, so that messages compare byte for byte with coreutils'.
pub fn run_cli(cwd: &Path, prog: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(prog)
        .args(args)
        .current_dir(cwd)
        .env_remove("HASHD_SOCKET")
        .env_remove("HASHD_DATA_DIR")
        .env("LC_ALL", "C")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}
