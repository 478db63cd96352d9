//! Settings: flags, then environment variables (hashd's `HASHD_*` and the
//! original service's names), then a `.env` file in the working directory,
//! then embedded defaults. Validated once into [`Config`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;
use frontends::http::HttpConfig;

use crate::store::{Location, SyncMode};

/// Everything `hashd serve` needs, validated.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub results_log: PathBuf,
    pub hashers: usize,
    pub pin: bool,
    pub keep_uploads: bool,
    pub artificial_delay: Duration,
    pub chunk_size: usize,
    pub sync: SyncMode,
    pub http: HttpConfig,
    /// The unix socket for local clients; `None` turns it off.
    pub socket: Option<PathBuf>,
    /// Read descriptor jobs with io_uring where the kernel allows it.
    pub uring: bool,
    /// The multi-lane MD5 backend.
    pub md5: hashcore::md5::Platform,
    /// Choose the MD5 kernels by timing them at start-up (`--md5-tuning
    /// measure`), or take the fixed choice (`fixed`).
    pub md5_measure: bool,
    /// Roots under which socket clients may ask for files by path; empty
    /// turns hashing by path off.
    pub allowed_roots: Vec<PathBuf>,
    /// The job store; `None` for the SQLite file in the data directory.
    pub store: Option<Location>,
    /// Another node whose heartbeat is older than this is dead (PostgreSQL).
    pub node_timeout: Duration,
    /// `/ready` fails with less free space than this in the data directory.
    pub min_free_disk: u64,
    /// Finished jobs older than this are deleted; `None` keeps them.
    pub retain: Option<Duration>,
    /// Bearer tokens with scopes; `None` leaves the API open.
    pub auth_token_file: Option<PathBuf>,
    /// Origins allowed to use the API from a browser, validated.
    pub cors: frontends::http::guard::Cors,
}

impl Config {
    /// The embedded defaults with the data directory `dir`: what tests and
    /// embedders start from.
    pub fn with_data_dir(dir: impl Into<PathBuf>) -> Config {
        let data_dir: PathBuf = dir.into();
        Config {
            socket: Some(data_dir.join("hashd.sock")),
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            results_log: data_dir.join("results.log"),
            data_dir,
            hashers: default_hashers(),
            pin: true,
            keep_uploads: false,
            artificial_delay: Duration::ZERO,
            chunk_size: 256 << 10,
            sync: SyncMode::Normal,
            http: HttpConfig::default(),
            uring: true,
            md5: hashcore::md5::Platform::detect(),
            md5_measure: true,
            allowed_roots: Vec::new(),
            store: None,
            node_timeout: Duration::from_secs(10),
            min_free_disk: 64 << 20,
            retain: None,
            auth_token_file: None,
            cors: Default::default(),
        }
    }

    /// Where the job table lives: `--store`, else `DATA_DIR/jobs.db`.
    pub fn store_location(&self) -> Location {
        self.store
            .clone()
            .unwrap_or_else(|| Location::Sqlite(self.data_dir.join("jobs.db")))
    }

    pub fn uploads_dir(&self) -> PathBuf {
        self.data_dir.join("uploads")
    }
}

fn default_hashers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Flags of `hashd serve` (also accepted with no subcommand).
///
/// The fields' doc comments are their `--help` texts, written for a
/// terminal: `[:PORT]` is optional syntax and a URL is an example, not
/// links for rustdoc.
#[allow(rustdoc::broken_intra_doc_links, rustdoc::bare_urls)]
#[derive(Args, Debug, Clone, Default)]
pub struct ServeArgs {
    /// Address to listen on for HTTP. [env: HASHD_LISTEN; the original API_PORT sets the port] [default: 127.0.0.1:8000]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,

    /// Directory for the job database, the results log and kept uploads. [env: HASHD_DATA_DIR] [default: ./hashd-data]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Where to append one line per finished job. [env: HASHD_RESULTS_LOG] [default: DATA_DIR/results.log]
    #[arg(long, value_name = "PATH")]
    pub results_log: Option<PathBuf>,

    /// Number of hasher threads. [env: HASHD_HASHERS] [default: one per core]
    #[arg(long, value_name = "N")]
    pub hashers: Option<usize>,

    /// Do not pin hasher threads to cores. [env: HASHD_NO_PIN=1]
    #[arg(long)]
    pub no_pin: bool,

    /// Keep every upload in DATA_DIR/uploads, named by its id (the original's DELETE_FILE=false). [env: HASHD_KEEP_UPLOADS=1]
    #[arg(long)]
    pub keep_uploads: bool,

    /// Seconds to delay each result, for testing clients that poll PENDING jobs. [env: HASHD_ARTIFICIAL_DELAY, ARTIFICIAL_DELAY, ARTIFITIAL_DELAY] [default: 0]
    #[arg(long, value_name = "SECS")]
    pub artificial_delay: Option<f64>,

    /// Read size for re-hashing kept uploads at start-up, e.g. 256K. [env: HASHD_CHUNK_SIZE, CHUNK_SIZE] [default: 256K]
    #[arg(long, value_name = "SIZE")]
    pub chunk_size: Option<String>,

    /// Largest accepted upload, e.g. 8G; larger ones get 413. [env: HASHD_MAX_UPLOAD] [default: 8G]
    #[arg(long, value_name = "SIZE")]
    pub max_upload: Option<String>,

    /// Uploads in progress at once; more get 503 with Retry-After. [env: HASHD_MAX_UPLOADS] [default: 512]
    #[arg(long, value_name = "N")]
    pub max_uploads: Option<usize>,

    /// `GET /jobs/ID/events` streams open at once; more get 503 with Retry-After. [env: HASHD_MAX_EVENT_STREAMS] [default: 1024]
    #[arg(long, value_name = "N")]
    pub max_event_streams: Option<usize>,

    /// Longest an event stream stays open, in seconds; the client reconnects (EventSource does, with Last-Event-ID) and the stream goes on. [env: HASHD_EVENT_STREAM_SECS] [default: 300]
    #[arg(long, value_name = "SECS")]
    pub event_stream_secs: Option<u64>,

    /// Open HTTP connections at once; more wait in the listen backlog. Also the most lookups waiting at once (?wait=SECS; 503 beyond). [env: HASHD_MAX_CONNECTIONS] [default: 16384]
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,

    /// Seconds a client may stay silent while sending a body (408 after). [env: HASHD_BODY_TIMEOUT] [default: 60]
    #[arg(long, value_name = "SECS")]
    pub body_timeout: Option<u64>,

    /// Seconds a client may take to send its request head; also how long an idle keep-alive connection stays open. Such a connection is closed without an answer. [env: HASHD_HEADER_TIMEOUT] [default: 30]
    #[arg(long, value_name = "SECS")]
    pub header_timeout: Option<u64>,

    /// Seconds a shutdown (SIGTERM, SIGINT) waits for open connections and start-up re-hashes before failing what is left; a second signal exits at once. [env: HASHD_SHUTDOWN_GRACE] [default: 30]
    #[arg(long, value_name = "SECS")]
    pub shutdown_grace: Option<u64>,

    /// Commit durability: normal (safe against crashes of hashd) or full (also against power loss). [env: HASHD_SYNC] [default: normal]
    #[arg(long, value_name = "MODE")]
    pub sync: Option<String>,

    /// Unix socket for local clients such as `hashd sum`. [env: HASHD_SOCKET] [default: DATA_DIR/hashd.sock]
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Do not open the unix socket. [env: HASHD_NO_SOCKET=1]
    #[arg(long, conflicts_with = "socket")]
    pub no_socket: bool,

    /// Read files with pread instead of io_uring. [env: HASHD_NO_URING=1]
    #[arg(long)]
    pub no_uring: bool,

    /// MD5 kernel: auto, portable, avx2 or avx512; one the CPU lacks is an error. [env: HASHD_MD5_BACKEND] [default: auto]
    #[arg(long, value_name = "NAME")]
    pub md5_backend: Option<String>,

    /// How the MD5 kernels for each number of busy lanes are chosen: measure (time each on this CPU for about a millisecond at start-up) or fixed (the choice measured on an AMD Zen 4, the same on every start; for hosts whose load would skew the timing). [env: HASHD_MD5_TUNING] [default: measure]
    #[arg(long, value_name = "HOW")]
    pub md5_tuning: Option<String>,

    /// Job store: postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE shares one job table among several nodes; sqlite:PATH or a file path is the embedded store. [env: HASHD_STORE] [default: DATA_DIR/jobs.db]
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,

    /// Seconds without a heartbeat after which another node counts as dead and its unfinished jobs are failed (PostgreSQL store). [env: HASHD_NODE_TIMEOUT] [default: 10]
    #[arg(long, value_name = "SECS")]
    pub node_timeout: Option<f64>,

    /// GET /ready fails (503) while the data directory has less free space than this, e.g. 64M. [env: HASHD_MIN_FREE_DISK] [default: 64M]
    #[arg(long, value_name = "SIZE")]
    pub min_free_disk: Option<String>,

    /// Delete finished jobs (and their kept uploads) that ended longer ago than DURATION, e.g. 30d, 12h, 90min; checked every quarter of it (1 s to 1 min). [env: HASHD_RETAIN] [default: keep forever]
    #[arg(long, value_name = "DURATION")]
    pub retain: Option<String>,

    /// Require bearer tokens: FILE has one `TOKEN SCOPE[,SCOPE...]` per line (scopes upload, read, admin; admin allows all; # comments). Re-read on SIGHUP. [env: HASHD_AUTH_TOKEN_FILE] [default: none: the API is open]
    #[arg(long, value_name = "FILE")]
    pub auth_token_file: Option<PathBuf>,

    /// Let pages of ORIGIN (e.g. https://app.example, or * for any) call the API from a browser (repeatable). Uploads from other origins are refused (403). [env: HASHD_CORS_ORIGIN, comma-separated] [default: none]
    #[arg(long, value_name = "ORIGIN")]
    pub cors_origin: Vec<String>,

    /// Log line format: text (one human-readable line per event) or json (one JSON object per line, for log shippers). [env: HASHD_LOG_FORMAT] [default: text]
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,

    /// Serve HTTPS (and HTTP/2 where the client offers it) with the PEM certificate chain in FILE, leaf first; needs --tls-key. Re-read on SIGHUP. [env: HASHD_TLS_CERT] [default: none: plain HTTP]
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key (PKCS#8, RSA or EC) of --tls-cert's certificate. Re-read on SIGHUP. [env: HASHD_TLS_KEY]
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// Let socket clients hash files by path under DIR (repeatable). Off by default: clients pass descriptors, so the daemon reads only what they could open. [env: HASHD_ALLOW_PATH_ROOT, colon-separated]
    #[arg(long, value_name = "DIR")]
    pub allow_path_root: Vec<PathBuf>,
}

/// Reads `name`, treating an empty value as unset.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn env_flag(name: &str) -> anyhow::Result<Option<bool>> {
    env(name).map(|v| parse_bool(name, &v)).transpose()
}

fn parse_bool(name: &str, v: &str) -> anyhow::Result<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => bail!("{name} must be true or false, got {v:?}"),
    }
}

/// Parses a byte size: `1048576`, `64K`, `1M`, `8G` (binary units; a
/// trailing `B`/`iB` is accepted).
pub fn parse_size(s: &str) -> anyhow::Result<u64> {
    let t = s.trim();
    let upper = t.to_ascii_uppercase();
    let upper = upper.trim_end_matches("IB").trim_end_matches('B');
    let (num, mult) = match upper.chars().last() {
        Some('K') => (&upper[..upper.len() - 1], 1u64 << 10),
        Some('M') => (&upper[..upper.len() - 1], 1 << 20),
        Some('G') => (&upper[..upper.len() - 1], 1 << 30),
        Some('T') => (&upper[..upper.len() - 1], 1 << 40),
        _ => (upper, 1),
    };
    let n: u64 = num
        .trim()
        .parse()
        .with_context(|| format!("invalid size {s:?} (examples: 1048576, 64K, 1M, 8G)"))?;
    n.checked_mul(mult)
        .with_context(|| format!("size {s:?} is too large"))
}

fn pick<T>(
    flag: Option<T>,
    names: &[&str],
    parse: impl Fn(&str, &str) -> anyhow::Result<T>,
) -> anyhow::Result<Option<T>> {
    if flag.is_some() {
        return Ok(flag);
    }
    for name in names {
        if let Some(v) = env(name) {
            return parse(name, &v)
                .map(Some)
                .with_context(|| format!("{name} from {}", source_of(name)));
        }
    }
    Ok(None)
}

fn num<T: std::str::FromStr>(name: &str, v: &str) -> anyhow::Result<T> {
    v.trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("{name} must be a number, got {v:?}"))
}

/// How log lines are written (`--log-format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl ServeArgs {
    /// `--log-format`, else `HASHD_LOG_FORMAT`, else text. Read before the
    /// rest of the configuration, since logging starts first.
    ///
    /// Errors: a value other than text or json.
    pub fn log_format(&self) -> anyhow::Result<LogFormat> {
        let v = pick(self.log_format.clone(), &["HASHD_LOG_FORMAT"], |_, v| {
            Ok(v.to_string())
        })?;
        match v.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("text") => Ok(LogFormat::Text),
            Some("json") => Ok(LogFormat::Json),
            Some(other) => bail!("--log-format must be text or json, got {other:?}"),
        }
    }

    /// Combines flags, environment and defaults into a validated [`Config`].
    pub fn resolve(self) -> anyhow::Result<Config> {
        let data_dir = pick(self.data_dir, &["HASHD_DATA_DIR"], |_, v| {
            Ok(PathBuf::from(v))
        })?
        .unwrap_or_else(|| PathBuf::from("hashd-data"));
        let mut c = Config::with_data_dir(data_dir);

        c.listen = match pick(self.listen, &["HASHD_LISTEN"], |_, v| Ok(v.to_string()))? {
            Some(addr) => parse_listen(&addr)?,
            None => match env("API_PORT") {
                Some(port) => {
                    let port: u16 = num("API_PORT", &port)?;
                    SocketAddr::from(([127, 0, 0, 1], port))
                }
                None => c.listen,
            },
        };
        if let Some(p) = pick(self.results_log, &["HASHD_RESULTS_LOG"], |_, v| {
            Ok(PathBuf::from(v))
        })? {
            c.results_log = p;
        }
        if let Some(n) = pick(self.hashers, &["HASHD_HASHERS"], num)? {
            if n == 0 || n > 1024 {
                bail!("--hashers must be from 1 to 1024, got {n}");
            }
            c.hashers = n;
        }
        c.pin = !(self.no_pin || env_flag("HASHD_NO_PIN")?.unwrap_or(false));
        c.keep_uploads = self.keep_uploads
            || env_flag("HASHD_KEEP_UPLOADS")?.unwrap_or(false)
            || env_flag("DELETE_FILE")?.is_some_and(|delete| !delete);
        if let Some(secs) = pick(
            self.artificial_delay,
            &[
                "HASHD_ARTIFICIAL_DELAY",
                "ARTIFICIAL_DELAY",
                "ARTIFITIAL_DELAY",
            ],
            num,
        )? {
            if !(0.0..=3600.0).contains(&secs) {
                bail!("artificial delay must be from 0 to 3600 seconds, got {secs}");
            }
            c.artificial_delay = Duration::from_secs_f64(secs);
        }
        if let Some(size) = pick(
            self.chunk_size.as_deref().map(parse_size).transpose()?,
            &["HASHD_CHUNK_SIZE", "CHUNK_SIZE"],
            |_, v| parse_size(v),
        )? {
            if !(4096..=(64 << 20)).contains(&size) {
                bail!("chunk size must be from 4K to 64M, got {size}");
            }
            c.chunk_size = size as usize;
        }
        if let Some(max) = pick(
            self.max_upload.as_deref().map(parse_size).transpose()?,
            &["HASHD_MAX_UPLOAD"],
            |_, v| parse_size(v),
        )? {
            c.http.max_upload = max;
        }
        if let Some(n) = pick(self.max_uploads, &["HASHD_MAX_UPLOADS"], num)? {
            if n == 0 {
                bail!("--max-uploads must be at least 1");
            }
            c.http.max_uploads = n;
        }
        if let Some(n) = pick(self.max_event_streams, &["HASHD_MAX_EVENT_STREAMS"], num)? {
            if n == 0 {
                bail!("--max-event-streams must be at least 1");
            }
            c.http.max_event_streams = n;
        }
        if let Some(s) = pick(self.event_stream_secs, &["HASHD_EVENT_STREAM_SECS"], num)? {
            c.http.event_stream_max = Duration::from_secs(s.max(1));
        }
        if let Some(n) = pick(self.max_connections, &["HASHD_MAX_CONNECTIONS"], num)? {
            if n == 0 {
                bail!("--max-connections must be at least 1");
            }
            c.http.max_connections = n;
        }
        if let Some(s) = pick(self.body_timeout, &["HASHD_BODY_TIMEOUT"], num)? {
            c.http.body_idle_timeout = Duration::from_secs(s.max(1));
        }
        if let Some(s) = pick(self.header_timeout, &["HASHD_HEADER_TIMEOUT"], num)? {
            c.http.header_timeout = Duration::from_secs(s.max(1));
        }
        if let Some(s) = pick(self.shutdown_grace, &["HASHD_SHUTDOWN_GRACE"], num)? {
            c.http.shutdown_grace = Duration::from_secs(s);
        }
        if let Some(mode) = pick(self.sync, &["HASHD_SYNC"], |_, v| Ok(v.to_string()))? {
            c.sync = match mode.to_ascii_lowercase().as_str() {
                "normal" => SyncMode::Normal,
                "full" => SyncMode::Full,
                _ => bail!("--sync must be normal or full, got {mode:?}"),
            };
        }
        if let Some(p) = pick(self.socket, &["HASHD_SOCKET"], |_, v| Ok(PathBuf::from(v)))? {
            c.socket = Some(p);
        }
        if self.no_socket || env_flag("HASHD_NO_SOCKET")?.unwrap_or(false) {
            c.socket = None;
        }
        c.uring = !(self.no_uring || env_flag("HASHD_NO_URING")?.unwrap_or(false));
        if let Some(name) = pick(self.md5_backend, &["HASHD_MD5_BACKEND"], |_, v| {
            Ok(v.to_string())
        })? {
            c.md5 = hashcore::md5::Platform::from_name(&name)?;
        }
        if let Some(how) = pick(self.md5_tuning, &["HASHD_MD5_TUNING"], |_, v| {
            Ok(v.to_string())
        })? {
            c.md5_measure = match how.as_str() {
                "measure" => true,
                "fixed" => false,
                _ => bail!("--md5-tuning must be measure or fixed, got {how:?}"),
            };
        }
        if let Some(url) = pick(self.store, &["HASHD_STORE"], |_, v| Ok(v.to_string()))? {
            c.store = Some(Location::parse(&url)?);
        }
        if let Some(secs) = pick(self.node_timeout, &["HASHD_NODE_TIMEOUT"], num)? {
            if !(0.5..=3600.0).contains(&secs) {
                bail!("--node-timeout must be from 0.5 to 3600 seconds, got {secs}");
            }
            c.node_timeout = Duration::from_secs_f64(secs);
        }
        if let Some(size) = pick(
            self.min_free_disk.as_deref().map(parse_size).transpose()?,
            &["HASHD_MIN_FREE_DISK"],
            |_, v| parse_size(v),
        )? {
            c.min_free_disk = size;
        }
        if let Some(text) = pick(self.retain, &["HASHD_RETAIN"], |_, v| Ok(v.to_string()))? {
            let period = humantime::parse_duration(text.trim()).map_err(|e| {
                anyhow::anyhow!("--retain {text:?}: {e} (examples: 30d, 12h, 90min, 45s)")
            })?;
            if period < Duration::from_secs(1) {
                bail!("--retain must be at least 1s, got {text:?}");
            }
            c.retain = Some(period);
        }
        c.auth_token_file = pick(self.auth_token_file, &["HASHD_AUTH_TOKEN_FILE"], |_, v| {
            Ok(PathBuf::from(v))
        })?;
        let mut origins = self.cors_origin;
        if origins.is_empty() {
            if let Some(v) = env("HASHD_CORS_ORIGIN") {
                origins = v.split(',').map(str::to_string).collect();
            }
        }
        c.cors = frontends::http::guard::Cors::parse(&origins).map_err(anyhow::Error::msg)?;
        let tls_cert = pick(self.tls_cert, &["HASHD_TLS_CERT"], |_, v| {
            Ok(PathBuf::from(v))
        })?;
        let tls_key = pick(self.tls_key, &["HASHD_TLS_KEY"], |_, v| {
            Ok(PathBuf::from(v))
        })?;
        c.http.tls = match (tls_cert, tls_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(std::sync::Arc::new(frontends::http::tls::Tls::load(
                &cert, &key,
            )?)),
            (Some(cert), None) => bail!(
                "--tls-cert {} needs --tls-key (HASHD_TLS_KEY) too",
                cert.display()
            ),
            (None, Some(key)) => bail!(
                "--tls-key {} needs --tls-cert (HASHD_TLS_CERT) too",
                key.display()
            ),
        };
        let mut roots = self.allow_path_root;
        if roots.is_empty() {
            if let Some(v) = env("HASHD_ALLOW_PATH_ROOT") {
                roots = std::env::split_paths(&v).collect();
            }
        }
        for root in roots {
            let canonical = std::fs::canonicalize(&root).with_context(|| {
                format!(
                    "--allow-path-root {}: not an existing directory",
                    root.display()
                )
            })?;
            if !canonical.is_dir() {
                bail!("--allow-path-root {}: not a directory", root.display());
            }
            c.allowed_roots.push(canonical);
        }
        warn_about_unknown_variables();
        Ok(c)
    }
}

fn parse_listen(s: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    use std::net::ToSocketAddrs;
    s.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .with_context(|| {
            format!("invalid listen address {s:?} (expected HOST:PORT, e.g. 127.0.0.1:8000)")
        })
}

/// Where each variable loaded from `.env` came from (`.env:LINE`), for
/// error messages; set once by [`load_dotenv`].
static DOTENV_SOURCES: std::sync::OnceLock<std::collections::HashMap<String, String>> =
    std::sync::OnceLock::new();

/// Loads `.env`-style `KEY=VALUE` lines from `path` into the environment
/// with dotenvy (quotes, escapes, `#` comments, `export`), never replacing
/// a variable that is already set. A missing file is not an error.
///
/// Errors: the file cannot be read, or a line does not parse (named).
pub fn load_dotenv(path: &Path) -> anyhow::Result<usize> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let pairs = dotenvy::from_read_iter(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| match e {
            dotenvy::Error::LineParse(line, at) => {
                let n = text.lines().position(|l| l == line).map_or(0, |i| i + 1);
                anyhow::anyhow!(
                    "{}:{n}: cannot parse {line:?} at character {at} (expected KEY=VALUE)",
                    path.display()
                )
            }
            other => anyhow::anyhow!("{}: {other}", path.display()),
        })?;
    let mut sources = std::collections::HashMap::new();
    let mut loaded = 0;
    for (key, value) in pairs {
        // The line a key was set on: the last line that assigns it (as
        // dotenvy keeps the last value).
        let line = text
            .lines()
            .enumerate()
            .filter(|(_, l)| {
                let l = l.trim_start();
                let l = l.strip_prefix("export ").unwrap_or(l).trim_start();
                l.strip_prefix(key.as_str())
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            })
            .last()
            .map_or(0, |(i, _)| i + 1);
        if std::env::var_os(&key).is_none() {
            std::env::set_var(&key, value);
            sources.insert(key, format!("{}:{line}", path.display()));
            loaded += 1;
        }
    }
    let _ = DOTENV_SOURCES.set(sources);
    Ok(loaded)
}

/// Where variable `name` came from: `.env:LINE` or the environment.
fn source_of(name: &str) -> String {
    DOTENV_SOURCES
        .get()
        .and_then(|s| s.get(name).cloned())
        .unwrap_or_else(|| "the environment".into())
}

/// Every `HASHD_*` variable hashd reads (`HASHD_TEST_*` belong to the test
/// harness). A unit test checks this list against the names in this file.
pub const KNOWN_VARIABLES: &[&str] = &[
    "HASHD_LISTEN",
    "HASHD_DATA_DIR",
    "HASHD_RESULTS_LOG",
    "HASHD_HASHERS",
    "HASHD_NO_PIN",
    "HASHD_KEEP_UPLOADS",
    "HASHD_ARTIFICIAL_DELAY",
    "HASHD_CHUNK_SIZE",
    "HASHD_MAX_UPLOAD",
    "HASHD_MAX_UPLOADS",
    "HASHD_MAX_EVENT_STREAMS",
    "HASHD_EVENT_STREAM_SECS",
    "HASHD_MAX_CONNECTIONS",
    "HASHD_BODY_TIMEOUT",
    "HASHD_HEADER_TIMEOUT",
    "HASHD_SHUTDOWN_GRACE",
    "HASHD_SYNC",
    "HASHD_SOCKET",
    "HASHD_NO_SOCKET",
    "HASHD_NO_URING",
    "HASHD_MD5_BACKEND",
    "HASHD_MD5_TUNING",
    "HASHD_STORE",
    "HASHD_NODE_TIMEOUT",
    "HASHD_MIN_FREE_DISK",
    "HASHD_RETAIN",
    "HASHD_AUTH_TOKEN_FILE",
    "HASHD_CORS_ORIGIN",
    "HASHD_LOG_FORMAT",
    "HASHD_ALLOW_PATH_ROOT",
    "HASHD_LOG",
    "HASHD_SERVER",
    "HASHD_TLS_CERT",
    "HASHD_TLS_KEY",
];

/// The original service's settings hashd accepts and ignores, and why.
const IGNORED_ORIGINAL: &[(&str, &str)] = &[(
    "CELERY_WORKER_FILESYSTEM_TIMEOUT",
    "hashd hashes uploads as they stream in, so no worker waits for a file",
)];

/// Warns, once each, about `HASHD_*` variables hashd does not know (with the
/// closest known name), and names the original's settings it ignores.
pub fn warn_about_unknown_variables() {
    for (name, _) in std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v)))
        .filter(|(k, _)| k.starts_with("HASHD_") && !k.starts_with("HASHD_TEST_"))
    {
        if KNOWN_VARIABLES.contains(&name.as_str()) {
            continue;
        }
        let closest = KNOWN_VARIABLES
            .iter()
            .map(|k| (strsim::levenshtein(k, &name), *k))
            .min()
            .filter(|(d, _)| *d <= 4);
        match closest {
            Some((_, k)) => tracing::warn!(
                "unknown setting {name} (from {}) is ignored; did you mean {k}?",
                source_of(&name)
            ),
            None => tracing::warn!(
                "unknown setting {name} (from {}) is ignored; `hashd --help` lists the settings",
                source_of(&name)
            ),
        }
    }
    for (name, why) in IGNORED_ORIGINAL {
        if env(name).is_some() {
            tracing::info!("{name} (from {}) has no effect: {why}", source_of(name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variable_read_is_known() {
        let source = include_str!("config.rs");
        let source = &source[..source.find("#[cfg(test)]").unwrap()];
        let main = include_str!("main.rs");
        let remote = include_str!("cli/remote.rs");
        let mut read = std::collections::BTreeSet::new();
        for text in [source, main, remote] {
            for (i, _) in text.match_indices("\"HASHD_") {
                let name: String = text[i + 1..]
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                if name != "HASHD_" && !name.starts_with("HASHD_TEST_") {
                    read.insert(name);
                }
            }
        }
        for name in &read {
            assert!(
                KNOWN_VARIABLES.contains(&name.as_str()),
                "{name} is read but not in KNOWN_VARIABLES"
            );
        }
    }

    #[test]
    fn dotenv_values_keep_quotes_comments_and_export_semantics() {
        let dir = std::env::temp_dir().join(format!("hashd-dotenv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(".env");
        std::fs::write(
            &path,
            "# c\nexport HASHD_UNIT_A=\"two words\"\nHASHD_UNIT_B='x#y' # note\nHASHD_UNIT_C=plain # note\n",
        )
        .unwrap();
        load_dotenv(&path).unwrap();
        assert_eq!(std::env::var("HASHD_UNIT_A").unwrap(), "two words");
        assert_eq!(std::env::var("HASHD_UNIT_B").unwrap(), "x#y");
        assert_eq!(std::env::var("HASHD_UNIT_C").unwrap(), "plain");
        assert!(source_of("HASHD_UNIT_B").ends_with(".env:3"));
        std::fs::write(&path, "GOOD=1\nnot a line\n").unwrap();
        let err = load_dotenv(&path).unwrap_err().to_string();
        assert!(err.contains(".env:2"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size("64K").unwrap(), 64 << 10);
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_size("8g").unwrap(), 8 << 30);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(parse_listen("127.0.0.1:9").unwrap().port(), 9);
        assert_eq!(
            parse_listen("8080").unwrap(),
            SocketAddr::from(([127, 0, 0, 1], 8080))
        );
        assert!(parse_listen("nonsense:::").is_err());
    }
}
