//! `hashd upload` and `hashd get`: a command-line client of the HTTP API,
//! for files on another machine than the daemon's.
//!
//! Uploads go to `PUT /files/NAME` (a raw body: no multipart framing to
//! build or for the server to parse), streamed from the file in
//! [`UPLOAD_CHUNK_BYTES`] pieces as hyper asks for them, so memory stays
//! flat whatever the file's size. Lookups are `GET /gethash/ID?wait=SECS`.
//! A 503 (the server busy, its job store unreachable, or shutting down) is
//! retried after its `Retry-After`, at most [`MAX_RETRIES`] times, each wait
//! capped at [`MAX_RETRY_WAIT`]; every other error is reported with the
//! server's reason, and the command goes on with the next operand.
//!
//! Output and exit codes follow `hashd sum`: md5sum-format lines (with its
//! escaping of names), diagnostics `hashd: NAME: reason` on stderr, and exit
//! code 0 only if every operand succeeded, else 1 (usage errors too).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hashcore::Algorithm;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Limited, StreamBody};
use hyper::body::Frame;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;

use super::escape::{needs_line_escape, push_line_name, quote};
use super::{describe, warn, Output};

/// Where the client looks for the server when `--server` is not given.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8000";

/// How many times a 503 is retried before the operand fails.
pub const MAX_RETRIES: u32 = 5;

/// The longest one retry waits, whatever `Retry-After` asks: a server that
/// asks for more is better reported than waited on.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);

/// The size of each read from an uploaded file, and so the most one upload
/// holds in memory at a time (hyper writes a chunk before asking for the
/// next). 256 KiB is the server's own read size.
pub const UPLOAD_CHUNK_BYTES: usize = 256 << 10;

/// The largest answer body read from the server (its answers are small JSON
/// objects); a longer one is an error, not a buffer that grows.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;

/// How long connecting to the server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a lookup may take beyond the `--wait` it asked for.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Upload files to a hashd server over HTTP and print their hashes
#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct UploadArgs {
    /// The server's base URL (http only)
    #[arg(long, value_name = "URL", env = "HASHD_SERVER", default_value = DEFAULT_SERVER)]
    pub server: String,
    /// Hash algorithm: md5, sha1, sha256 or sha512 [default: md5]
    #[arg(short = 'a', long = "algo", value_name = "ALGO")]
    pub algo: Option<Algorithm>,
    /// Wait for each hash and print md5sum-format lines (`HASH  FILE`);
    /// without it, print `ID  FILE` as soon as each upload is accepted
    #[arg(long)]
    pub wait: bool,
    /// Files to upload
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

/// Look jobs up on a hashd server and print their status and hash
#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct GetArgs {
    /// The server's base URL (http only)
    #[arg(long, value_name = "URL", env = "HASHD_SERVER", default_value = DEFAULT_SERVER)]
    pub server: String,
    /// Wait up to SECS (0 to 55) for a PENDING job to end
    #[arg(long, value_name = "SECS")]
    pub wait: Option<f64>,
    /// Job ids (as `hashd upload` prints them)
    #[arg(value_name = "ID", required = true)]
    pub ids: Vec<String>,
}

/// Runs `hashd upload`; the exit code is 0 if every file was accepted (and,
/// with `--wait`, hashed: SUCCESS), else 1.
pub fn run_upload(args: &UploadArgs, stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32 {
    let Some((server, runtime)) = setup(&args.server, stderr) else {
        return 1;
    };
    let algo = args.algo.unwrap_or(Algorithm::Md5);
    let mut out = Output::new(stdout);
    let mut ok = true;
    for file in &args.files {
        let name = file.as_os_str().as_encoded_bytes();
        match runtime.block_on(upload(&server, file, algo, args.wait)) {
            Ok(job) => match (args.wait, job.status.as_str(), job.hash) {
                (false, _, _) => out.line(&line(job.id.as_bytes(), name)),
                (true, "SUCCESS", Some(hash)) => out.line(&line(hash.as_bytes(), name)),
                (true, status, _) => {
                    ok = false;
                    let why = job.error.unwrap_or_else(|| format!("job is {status}"));
                    warn(stderr, format_args!("{}: {why}", quote(name)));
                }
            },
            Err(e) => {
                ok = false;
                warn(stderr, format_args!("{}: {e}", quote(name)));
            }
        }
    }
    out.finish(ok, stderr)
}

/// Runs `hashd get`; prints `ID STATUS HASH` per id (`-` for no hash yet)
/// and exits 0 only if every job is SUCCESS, else 1 (PENDING, FAILURE, an
/// unknown id, or an error).
pub fn run_get(args: &GetArgs, stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32 {
    let Some((server, runtime)) = setup(&args.server, stderr) else {
        return 1;
    };
    let mut out = Output::new(stdout);
    let mut ok = true;
    for id in &args.ids {
        match runtime.block_on(lookup(&server, id, args.wait)) {
            Ok(Some(job)) => {
                let hash = job.hash.as_deref().unwrap_or("-");
                out.line(format!("{} {} {hash}\n", job.id, job.status).as_bytes());
                if job.status != "SUCCESS" {
                    ok = false;
                }
                if let Some(why) = job.error {
                    warn(stderr, format_args!("{}: {why}", quote(id.as_bytes())));
                }
            }
            Ok(None) => {
                ok = false;
                warn(
                    stderr,
                    format_args!("{}: no such job", quote(id.as_bytes())),
                );
            }
            Err(e) => {
                ok = false;
                warn(stderr, format_args!("{}: {e}", quote(id.as_bytes())));
            }
        }
    }
    out.finish(ok, stderr)
}

/// An md5sum-format line: `DIGEST  NAME`, with md5sum's escaping.
fn line(first: &[u8], name: &[u8]) -> Vec<u8> {
    let escape = needs_line_escape(name);
    let mut line = Vec::with_capacity(first.len() + name.len() + 4);
    if escape {
        line.push(b'\\');
    }
    line.extend_from_slice(first);
    line.extend_from_slice(b"  ");
    push_line_name(&mut line, name, escape);
    line.push(b'\n');
    line
}

fn setup(url: &str, stderr: &mut dyn Write) -> Option<(Server, tokio::runtime::Runtime)> {
    let server = match Server::parse(url) {
        Ok(s) => s,
        Err(e) => {
            warn(stderr, format_args!("{e}"));
            return None;
        }
    };
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some((server, rt)),
        Err(e) => {
            warn(
                stderr,
                format_args!("cannot start the async runtime: {}", describe(&e)),
            );
            None
        }
    }
}

/// The server: where to connect, and the path prefix its routes are under
/// (empty unless it sits behind a proxy at a sub-path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    /// `host:port`, for connecting and for the `Host` header.
    authority: String,
    /// The URL's path without its trailing slash.
    prefix: String,
}

impl Server {
    /// Parses an `http://host[:port][/prefix]` URL (port 80 by default).
    pub fn parse(url: &str) -> Result<Server, String> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| format!("invalid server URL {url:?}: {e}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(format!(
                    "server URL {url:?}: scheme {other} is not supported (hashd serves plain http; use http://)"
                ))
            }
            None => return Err(format!("server URL {url:?} needs http://")),
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("server URL {url:?} has no host"))?;
        if uri.query().is_some() || authority.as_str().contains('@') {
            return Err(format!(
                "server URL {url:?} must be http://HOST[:PORT][/PATH], without user or query"
            ));
        }
        Ok(Server {
            authority: format!(
                "{}:{}",
                authority.host(),
                authority.port_u16().unwrap_or(80)
            ),
            prefix: uri.path().trim_end_matches('/').to_string(),
        })
    }
}

/// The fields of the server's job answers the client uses.
#[derive(serde::Deserialize, Debug)]
struct JobAnswer {
    #[serde(default)]
    id: String,
    #[serde(default)]
    status: String,
    hash: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// What went wrong with one operand.
#[derive(Debug)]
enum ClientError {
    /// The file could not be read.
    File(io::Error),
    /// The server could not be reached or the exchange broke off.
    Transport(String),
    /// The server answered with an error status; `reason` is its `error`.
    Status { status: StatusCode, reason: String },
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::File(e) => f.write_str(&describe(e)),
            ClientError::Transport(m) => f.write_str(m),
            ClientError::Status { status, reason } => {
                write!(f, "server answered {status}: {reason}")
            }
        }
    }
}

type Body = BoxBody<Bytes, ReadError>;

/// A failure to read the file being uploaded, told apart from the
/// connection's own I/O errors when hyper reports the request's failure.
#[derive(Debug)]
struct ReadError(io::Error);

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&describe(&self.0))
    }
}

impl std::error::Error for ReadError {}

/// One answer: status, `Retry-After` seconds if any, and the body.
struct Answer {
    status: StatusCode,
    retry_after: Option<u64>,
    body: Bytes,
}

/// Sends one request on a new connection and reads the whole answer.
async fn exchange(
    server: &Server,
    method: Method,
    path_and_query: &str,
    body: Body,
    content_length: Option<u64>,
) -> Result<Answer, ClientError> {
    let transport = |what: &str, e: &dyn std::fmt::Display| {
        ClientError::Transport(format!("{what} {}: {e}", server.authority))
    };
    let stream = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect(&server.authority),
    )
    .await
    .map_err(|_| transport("timed out connecting to", &"no answer in 10 s"))?
    .map_err(|e| transport("cannot connect to", &describe(&e)))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| transport("cannot talk to", &e))?;
    let driver = tokio::spawn(conn);
    let mut request = Request::builder()
        .method(method)
        .uri(format!("{}{path_and_query}", server.prefix))
        .header(hyper::header::HOST, &server.authority)
        .header(
            hyper::header::USER_AGENT,
            concat!("hashd/", env!("CARGO_PKG_VERSION")),
        );
    if let Some(len) = content_length {
        request = request.header(hyper::header::CONTENT_LENGTH, len);
    }
    let request = request
        .body(body)
        .map_err(|e| transport("cannot build a request for", &e))?;
    let response = sender.send_request(request).await.map_err(|e| {
        // A file read error ends the body stream; hyper reports it as the
        // request's failure, with the ReadError as its source.
        let source = std::error::Error::source(&e);
        if let Some(ReadError(io)) = source.and_then(|s| s.downcast_ref::<ReadError>()) {
            return ClientError::File(io::Error::new(io.kind(), describe(io)));
        }
        // hashd answers an upload it refuses at once (413 for a declared
        // length over its limit, 503) and closes without reading the body;
        // the kernel may then reset the connection before that answer is
        // read, and the write of the rest of the file fails.
        let reset = source
            .and_then(|s| s.downcast_ref::<io::Error>())
            .is_some_and(|io| {
                matches!(
                    io.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                )
            });
        match reset {
            true => transport(
                "the connection was closed mid-request by",
                &"the server may have refused the upload (too large? busy?) without its answer arriving",
            ),
            false => transport("lost the connection to", &e),
        }
    })?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(hyper::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
        .collect()
        .await
        .map_err(|e| transport("could not read the answer from", &e))?
        .to_bytes();
    driver.abort();
    Ok(Answer {
        status,
        retry_after,
        body,
    })
}

/// Runs `attempt` until it is answered with something other than 503, or
/// the retries are used up; then turns the answer into a job (or `None` for
/// a 404 with the original's `INVALID_ID`).
async fn with_retries<F, Fut>(mut attempt: F) -> Result<Option<JobAnswer>, ClientError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Answer, ClientError>>,
{
    let mut retries = 0;
    let answer = loop {
        let answer = attempt().await?;
        if answer.status != StatusCode::SERVICE_UNAVAILABLE || retries == MAX_RETRIES {
            break answer;
        }
        retries += 1;
        let wait = Duration::from_secs(answer.retry_after.unwrap_or(1)).min(MAX_RETRY_WAIT);
        tracing::debug!(?wait, retries, "server busy, retrying");
        tokio::time::sleep(wait).await;
    };
    let json: Option<serde_json::Value> = serde_json::from_slice(&answer.body).ok();
    if answer.status == StatusCode::OK {
        return match json.map(serde_json::from_value::<JobAnswer>) {
            Some(Ok(job)) => Ok(Some(job)),
            _ => Err(ClientError::Transport(
                "the server's answer is not a job (is this a hashd server?)".into(),
            )),
        };
    }
    let field = |k: &str| {
        json.as_ref()
            .and_then(|j| j.get(k)?.as_str().map(str::to_string))
    };
    if answer.status == StatusCode::NOT_FOUND && field("status").as_deref() == Some("INVALID_ID") {
        return Ok(None);
    }
    let mut reason = field("error").unwrap_or_else(|| "(no reason given)".into());
    if answer.status == StatusCode::SERVICE_UNAVAILABLE {
        reason.push_str(&format!(" (gave up after {MAX_RETRIES} retries)"));
    }
    Err(ClientError::Status {
        status: answer.status,
        reason,
    })
}

/// Uploads one file and returns the server's job.
async fn upload(
    server: &Server,
    path: &Path,
    algo: Algorithm,
    wait: bool,
) -> Result<JobAnswer, ClientError> {
    let name = path
        .file_name()
        .map(|n| n.as_encoded_bytes())
        .unwrap_or_default();
    let target = format!(
        "/files/{}?algo={}{}",
        percent_encode(name),
        algo.name(),
        if wait { "&wait=1" } else { "" }
    );
    let target = &target;
    let job = with_retries(move || async move {
        // Opened anew for each attempt: a retried upload starts over.
        let file = tokio::fs::File::open(path)
            .await
            .map_err(ClientError::File)?;
        let meta = file.metadata().await.map_err(ClientError::File)?;
        if meta.is_dir() {
            return Err(ClientError::File(io::Error::from_raw_os_error(
                libc::EISDIR,
            )));
        }
        // A regular file has a length; anything else (a pipe, a device)
        // goes chunked.
        let length = meta.is_file().then_some(meta.len());
        exchange(server, Method::PUT, target, file_body(file), length).await
    })
    .await?;
    job.ok_or_else(|| ClientError::Transport("the server lost the job it accepted".into()))
}

/// The file's bytes as a request body, read as hyper asks for them.
fn file_body(file: tokio::fs::File) -> Body {
    let chunks = futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = BytesMut::with_capacity(UPLOAD_CHUNK_BYTES);
        match file.read_buf(&mut buf).await {
            Ok(0) => None,
            Ok(_) => Some((Ok(Frame::data(buf.freeze())), Some(file))),
            Err(e) => Some((Err(ReadError(e)), None)),
        }
    });
    BodyExt::boxed(StreamBody::new(chunks))
}

/// Looks one job up (`None`: the server knows no such id).
async fn lookup(
    server: &Server,
    id: &str,
    wait: Option<f64>,
) -> Result<Option<JobAnswer>, ClientError> {
    let mut target = format!("/gethash/{}", percent_encode(id.as_bytes()));
    if let Some(secs) = wait {
        target.push_str(&format!("?wait={secs}"));
    }
    let limit = LOOKUP_TIMEOUT + Duration::from_secs_f64(wait.unwrap_or(0.0).clamp(0.0, 3600.0));
    let target = &target;
    with_retries(move || async move {
        let empty = BodyExt::boxed(Empty::<Bytes>::new().map_err(|never| match never {}));
        tokio::time::timeout(limit, exchange(server, Method::GET, target, empty, None))
            .await
            .map_err(|_| {
                ClientError::Transport(format!("no answer from {} in {limit:?}", server.authority))
            })?
    })
    .await
}

/// Percent-encodes all but RFC 3986's unreserved characters, for a path
/// segment.
fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_server_urls() {
        let s = Server::parse("http://127.0.0.1:8000").unwrap();
        assert_eq!(s.authority, "127.0.0.1:8000");
        assert_eq!(s.prefix, "");
        let s = Server::parse("http://example.org/hashd/").unwrap();
        assert_eq!(s.authority, "example.org:80");
        assert_eq!(s.prefix, "/hashd");
        for bad in ["https://x", "x:80", "http://u@x", "http://x/?q=1", ""] {
            assert!(Server::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_escaped_as_md5sum_does() {
        assert_eq!(line(b"ab", b"f"), b"ab  f\n");
        assert_eq!(line(b"ab", b"a\nb"), b"\\ab  a\\nb\n");
        assert_eq!(percent_encode("a b/é".as_bytes()), "a%20b%2F%C3%A9");
    }
}
