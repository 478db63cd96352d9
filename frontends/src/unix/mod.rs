//! The unix-socket front end for local clients (`hashd sum`): requests are
//! framed ([`frame`]) and tagged so a client can pipeline thousands on one
//! connection; files arrive as descriptors (SCM_RIGHTS), so the daemon reads
//! only what the client itself could open, and never takes a path.
//!
//! Per connection: one task reads frames and submits jobs; completions go
//! through a channel to a writer task. In-flight requests per connection are
//! bounded by a semaphore; when it is exhausted the reader stops reading, so a
//! client that never reads its answers cannot grow our memory.

pub mod frame;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use hashcore::{to_hex, Algorithm, Completion, Outcome, StreamJob};
use serde_json::json;
use tokio::io::Interest;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::Backend;
use frame::{Frame, Kind};

/// Limits of the socket front end.
#[derive(Clone, Debug)]
pub struct SocketConfig {
    /// Requests one connection may have unanswered at once.
    pub max_in_flight: usize,
    /// Connections at once; more wait in the backlog.
    pub max_connections: usize,
    /// How long shutdown waits for connections to finish.
    pub shutdown_grace: Duration,
    /// Directories under which HASH_PATH may open files, canonicalised.
    /// Empty (the default) turns hashing by path off: with descriptor
    /// passing the daemon reads only what a client itself could open.
    pub allowed_roots: Vec<PathBuf>,
}

impl Default for SocketConfig {
    fn default() -> Self {
        SocketConfig {
            max_in_flight: 1024,
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(10),
            allowed_roots: Vec::new(),
        }
    }
}

/// Descriptors received but not yet claimed by a frame; more means the
/// client is not following the protocol.
const MAX_PENDING_FDS: usize = 64;

/// Bytes asked of the socket per read.
const READ_LEN: usize = 64 << 10;

/// Binds `path` with mode 0660. A stale socket file (nobody accepting) is
/// replaced; a live one, or any other file, is an error.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} is in use by a running daemon", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(listener)
}

/// Serves the socket until `shutdown` resolves; then waits for open
/// connections up to the grace period and removes the socket file.
pub async fn serve<B: Backend>(
    listener: UnixListener,
    path: &Path,
    backend: Arc<B>,
    config: SocketConfig,
    shutdown: impl Future<Output = ()>,
) {
    let connections = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let roots: Arc<[PathBuf]> = config.allowed_roots.clone().into();
    let mut tasks = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = connections.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "unix socket accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let backend = backend.clone();
        let max_in_flight = config.max_in_flight;
        let roots = roots.clone();
        tasks.spawn(async move {
            if let Err(e) = connection(backend, stream, max_in_flight, roots).await {
                tracing::debug!(error = %e, "unix connection closed");
            }
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = std::fs::remove_file(path);
    if tokio::time::timeout(config.shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::warn!("unix connections still open after the grace period; closing them");
        tasks.abort_all();
        // Wait for the cancellations, so no task still holds the backend
        // when the daemon goes on to stop the hasher pool.
        while tasks.join_next().await.is_some() {}
    }
}

/// An answer on its way to the writer; the permit frees the request's
/// in-flight slot once it is written.
struct Reply {
    tag: u64,
    body: Vec<u8>,
    _permit: Option<OwnedSemaphorePermit>,
}

fn reply_body(v: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap_or_default()
}

/// A completion that answers request `tag` with the job's outcome; the
/// request's permit is held until then.
fn reply_when_done(
    tx: &mpsc::UnboundedSender<Reply>,
    tag: u64,
    algo: Algorithm,
    permit: OwnedSemaphorePermit,
) -> Completion {
    let tx = tx.clone();
    Box::new(move |outcome| {
        let _ = tx.send(Reply {
            tag,
            body: outcome_body(algo, outcome),
            _permit: Some(permit),
        });
    })
}

fn outcome_body(algo: Algorithm, outcome: Outcome) -> Vec<u8> {
    reply_body(match outcome {
        Ok(d) => {
            json!({"ok": true, "algorithm": algo.name(), "hash": to_hex(&d.bytes), "size": d.len})
        }
        Err(e) => {
            json!({"ok": false, "error": e.to_string(), "busy": matches!(e, hashcore::JobError::Busy)})
        }
    })
}

fn protocol_error(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// The heartbeat interval a client may ask for in HELLO is clamped to this
/// range. The floor keeps a client from making us write a frame every few
/// microseconds, yet lets tests use silence bounds of a few hundred
/// milliseconds; the ceiling is past any silence bound a client would use.
const HEARTBEAT_MIN: Duration = Duration::from_millis(20);
/// See [`HEARTBEAT_MIN`].
const HEARTBEAT_MAX: Duration = Duration::from_secs(60);

/// Requests of one connection not yet answered, and the heartbeat interval
/// its HELLO asked for, shared by the reader (which sets them) and the
/// writer (which sends heartbeats).
struct ConnState {
    /// Unanswered requests: each holds one permit until its reply is written.
    in_flight: Arc<Semaphore>,
    /// `max_in_flight`, to turn free permits into a count of held ones.
    max_in_flight: usize,
    /// Heartbeat interval in milliseconds; 0 until a HELLO asks for one.
    heartbeat_ms: std::sync::atomic::AtomicU64,
}

impl ConnState {
    fn outstanding(&self) -> usize {
        self.max_in_flight
            .saturating_sub(self.in_flight.available_permits())
    }

    fn heartbeat(&self) -> Option<Duration> {
        match self.heartbeat_ms.load(std::sync::atomic::Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }
}

async fn connection<B: Backend>(
    backend: Arc<B>,
    stream: UnixStream,
    max_in_flight: usize,
    roots: Arc<[PathBuf]>,
) -> io::Result<()> {
    let stream = Arc::new(stream);
    let (tx, mut rx) = mpsc::unbounded_channel::<Reply>();
    let state = Arc::new(ConnState {
        in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))),
        max_in_flight: max_in_flight.max(1),
        heartbeat_ms: 0.into(),
    });
    let writer_stream = stream.clone();
    let writer_state = state.clone();
    let writer_backend = backend.clone();
    let writer = tokio::spawn(async move {
        let mut out = BytesMut::new();
        let mut last_progress = writer_backend.progress();
        loop {
            // A client that asked for heartbeats learns after each quiet
            // interval that its unanswered requests are still being worked
            // on, so it can bound the silence between frames instead of
            // the whole job (which for a large file legitimately takes
            // minutes) and tell a busy daemon from a stopped or stuck one.
            let next = match writer_state.heartbeat() {
                None => rx.recv().await,
                Some(every) => match tokio::time::timeout(every, rx.recv()).await {
                    Ok(next) => next,
                    Err(_) => {
                        let progress = writer_backend.progress();
                        let moved = progress.is_none() || progress != last_progress;
                        last_progress = progress;
                        if moved && writer_state.outstanding() > 0 {
                            frame::encode(Kind::Heartbeat, 0, &[], &mut out);
                            if write_all(&writer_stream, &mut out).await.is_err() {
                                break;
                            }
                        }
                        continue;
                    }
                },
            };
            let Some(reply) = next else { break };
            frame::encode(Kind::Reply, reply.tag, &reply.body, &mut out);
            drop(reply);
            // Batch whatever else is ready into one write.
            while let Ok(more) = rx.try_recv() {
                frame::encode(Kind::Reply, more.tag, &more.body, &mut out);
                if out.len() > 256 << 10 {
                    break;
                }
            }
            if write_all(&writer_stream, &mut out).await.is_err() {
                break;
            }
        }
    });
    let result = read_requests(&backend, &stream, &tx, &state, &roots).await;
    if let Err(e) = &result {
        if e.kind() == io::ErrorKind::InvalidData {
            // Tell the client why before closing; tag 0 is never a request's.
            let body = reply_body(json!({"ok": false, "error": format!("protocol error: {e}")}));
            let _ = tx.send(Reply {
                tag: 0,
                body,
                _permit: None,
            });
        }
    }
    drop(tx);
    let _ = writer.await;
    result
}

async fn read_requests<B: Backend>(
    backend: &Arc<B>,
    stream: &UnixStream,
    tx: &mpsc::UnboundedSender<Reply>,
    state: &ConnState,
    roots: &[PathBuf],
) -> io::Result<()> {
    let mut buf = BytesMut::with_capacity(64 << 10);
    let mut fds: Vec<OwnedFd> = Vec::new();
    let mut fd_queue = std::collections::VecDeque::new();
    let mut streams: HashMap<u64, StreamJob> = HashMap::new();
    loop {
        while let Some(f) = frame::decode(&mut buf).map_err(|e| protocol_error(e.to_string()))? {
            handle_frame(backend, f, tx, state, &mut fd_queue, &mut streams, roots).await?;
        }
        // Read straight into the frame buffer: stream payloads are split off
        // it as `Bytes` and reach the hasher without another copy. A read
        // never goes past the end of a frame already begun: `decode` reserved
        // exactly that much, and reading further would make the buffer grow,
        // copying the frame's bytes so far (~200 KiB of a 256 KiB stream frame).
        let filled = buf.len();
        let want = match frame::missing(&buf) {
            Some(missing) if missing > 0 => missing.min(READ_LEN),
            _ => READ_LEN,
        };
        buf.resize(filled + want, 0);
        let n = stream
            .async_io(Interest::READABLE, || {
                hashcore::fdpass::recv_with_fds(stream.as_fd(), &mut buf[filled..], &mut fds)
            })
            .await;
        buf.truncate(filled + *n.as_ref().unwrap_or(&0));
        let n = n?;
        fd_queue.extend(fds.drain(..));
        if fd_queue.len() > MAX_PENDING_FDS {
            return Err(protocol_error("descriptors sent without HASH_FD frames"));
        }
        if n == 0 {
            if !buf.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed mid-frame",
                ));
            }
            return Ok(());
        }
    }
}

async fn handle_frame<B: Backend>(
    backend: &Arc<B>,
    f: Frame,
    tx: &mpsc::UnboundedSender<Reply>,
    state: &ConnState,
    fd_queue: &mut std::collections::VecDeque<OwnedFd>,
    streams: &mut HashMap<u64, StreamJob>,
    roots: &[PathBuf],
) -> io::Result<()> {
    let tag = f.tag;
    match f.kind {
        Kind::StreamData => {
            let job = streams
                .get_mut(&tag)
                .ok_or_else(|| protocol_error(format!("STREAM_DATA for unknown stream {tag}")))?;
            if job.send(f.payload).await.is_err() {
                streams.remove(&tag);
            }
            return Ok(());
        }
        Kind::StreamEnd => {
            let job = streams
                .remove(&tag)
                .ok_or_else(|| protocol_error(format!("STREAM_END for unknown stream {tag}")))?;
            let _ = job.finish();
            return Ok(());
        }
        Kind::Reply | Kind::Heartbeat => {
            return Err(protocol_error(
                "clients do not send REPLY or HEARTBEAT frames",
            ))
        }
        _ => {}
    }
    let permit = state
        .in_flight
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| protocol_error("closed"))?;
    let send = |body: Vec<u8>, permit| {
        let _ = tx.send(Reply {
            tag,
            body,
            _permit: Some(permit),
        });
    };
    match f.kind {
        Kind::Hello => {
            let mut body = json!({"ok": true, "version": frame::VERSION, "server": concat!("hashd ", env!("CARGO_PKG_VERSION"))});
            let asked = serde_json::from_slice::<serde_json::Value>(&f.payload)
                .ok()
                .and_then(|v| v["heartbeat_ms"].as_u64());
            if let Some(ms) = asked {
                let every = Duration::from_millis(ms).clamp(HEARTBEAT_MIN, HEARTBEAT_MAX);
                let ms = every.as_millis() as u64;
                state
                    .heartbeat_ms
                    .store(ms, std::sync::atomic::Ordering::Relaxed);
                body["heartbeat_ms"] = ms.into();
            }
            send(reply_body(body), permit)
        }
        Kind::HashPath => {
            // Payload: ALGO, a NUL byte, then the path's bytes.
            let (algo, path) = match f.payload.iter().position(|&b| b == 0) {
                Some(i) => (&f.payload[..i], &f.payload[i + 1..]),
                None => return Err(protocol_error("HASH_PATH payload must be ALGO\\0PATH")),
            };
            let algo = std::str::from_utf8(algo).unwrap_or("").parse::<Algorithm>();
            let path = Path::new(std::ffi::OsStr::from_bytes(path));
            match algo
                .map_err(|e| e.to_string())
                .and_then(|a| Ok((a, open_under_roots(path, roots)?)))
            {
                Ok((algo, file)) => {
                    backend.hash_file(algo, file, reply_when_done(tx, tag, algo, permit));
                }
                Err(reason) => send(reply_body(json!({"ok": false, "error": reason})), permit),
            }
        }
        Kind::HashFd | Kind::StreamOpen => {
            let fd = if f.kind == Kind::HashFd {
                Some(
                    fd_queue
                        .pop_front()
                        .ok_or_else(|| protocol_error("HASH_FD frame without a descriptor"))?,
                )
            } else {
                None
            };
            let algo = match std::str::from_utf8(&f.payload)
                .unwrap_or("")
                .parse::<Algorithm>()
            {
                Ok(a) => a,
                Err(e) => {
                    send(
                        reply_body(json!({"ok": false, "error": e.to_string()})),
                        permit,
                    );
                    return Ok(());
                }
            };
            let done = reply_when_done(tx, tag, algo, permit);
            match fd {
                Some(fd) => backend.hash_file(algo, std::fs::File::from(fd), done),
                None => {
                    if streams.contains_key(&tag) {
                        return Err(protocol_error(format!("stream {tag} is already open")));
                    }
                    streams.insert(tag, backend.open_stream(algo, done));
                }
            }
        }
        Kind::Lookup => {
            let id = String::from_utf8_lossy(&f.payload).into_owned();
            let body = match backend.lookup(id.trim()).await {
                Ok(Some(job)) => json!({"ok": true, "job": job}),
                Ok(None) => json!({"ok": false, "error": "INVALID_ID"}),
                Err(e) => json!({"ok": false, "error": e.to_string()}),
            };
            send(reply_body(body), permit);
        }
        Kind::Stats => {
            let body = match backend.stats().await {
                Ok(stats) => json!({"ok": true, "stats": stats}),
                Err(e) => json!({"ok": false, "error": e.to_string()}),
            };
            send(reply_body(body), permit);
        }
        Kind::StreamData | Kind::StreamEnd | Kind::Reply | Kind::Heartbeat => {
            unreachable!("handled above")
        }
    }
    Ok(())
}

/// Opens `path` for HASH_PATH if it lies under one of `roots` (which are
/// canonical). `..` is refused outright; symlinks are resolved, and the file
/// actually opened is checked again through `/proc/self/fd`, so a link
/// swapped in between the check and the open cannot escape the roots.
/// Messages name neither the roots nor the resolved path.
fn open_under_roots(path: &Path, roots: &[PathBuf]) -> Result<std::fs::File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    if roots.is_empty() {
        return Err(
            "hashing by path is off (start hashd with --allow-path-root DIR, or pass a descriptor)"
                .into(),
        );
    }
    if !path.is_absolute() {
        return Err("path must be absolute".into());
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err("path must not contain '..'".into());
    }
    let outside = || "path is outside the allowed roots".to_string();
    let canonical =
        std::fs::canonicalize(path).map_err(|e| format!("cannot open the path: {e}"))?;
    if !roots.iter().any(|r| canonical.starts_with(r)) {
        return Err(outside());
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&canonical)
        .map_err(|e| format!("cannot open the path: {e}"))?;
    let opened = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&file)
    ))
    .map_err(|e| format!("cannot verify the opened path: {e}"))?;
    if !roots.iter().any(|r| opened.starts_with(r)) {
        return Err(outside());
    }
    Ok(file)
}

async fn write_all(stream: &UnixStream, out: &mut BytesMut) -> io::Result<()> {
    use bytes::Buf;
    while !out.is_empty() {
        stream.writable().await?;
        match stream.try_write(out) {
            Ok(n) => out.advance(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
