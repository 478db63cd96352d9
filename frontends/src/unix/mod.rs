//! The unix-socket front end for local clients (`hashd sum`): requests are
//! framed ([`frame`]) and tagged so a client can pipeline thousands on one
//! connection; files arrive as descriptors (SCM_RIGHTS), so the daemon reads
//! only what the client itself could open, and takes a path only under
//! roots the operator named.
//!
//! Each frame is parsed once into a [`request::Request`] and applied to the
//! connection's session; replies are the typed payloads of [`message`],
//! which clients decode with the same types.
//!
//! Per connection: one task reads frames and submits jobs; completions go
//! through a channel to a writer task. In-flight requests per connection are
//! bounded by a semaphore; when it is exhausted the reader stops reading, so a
//! client that never reads its answers cannot grow our memory.

pub mod frame;
pub mod message;
pub mod request;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hashcore::{to_hex, Algorithms};
use serde::Serialize;
use tokio::io::Interest;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::{Answer, Backend, ByteStream, Reply};
use frame::Kind;
use message::{to_payload, DigestReply, ErrorReply, HashReply, OkFlag};
use request::{ProtocolError, Request};

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
    let deadline = tokio::time::Instant::now() + config.shutdown_grace;
    let mut report = tokio::time::interval_at(
        tokio::time::Instant::now() + crate::http::DRAIN_REPORT,
        crate::http::DRAIN_REPORT,
    );
    let drained = loop {
        tokio::select! {
            next = tasks.join_next() => if next.is_none() { break true },
            _ = tokio::time::sleep_until(deadline) => break false,
            _ = report.tick() => tracing::info!(connections = tasks.len(), "waiting for unix connections to finish"),
        }
    };
    if !drained {
        tracing::warn!("unix connections still open after the grace period; closing them");
        tasks.abort_all();
        // Wait for the cancellations, so no task still holds the backend
        // when the daemon goes on to stop the hasher pool.
        while tasks.join_next().await.is_some() {}
    }
}

/// An answer on its way to the writer; the slot frees the request's
/// in-flight permit once it is written.
struct Outgoing {
    tag: u64,
    payload: Vec<u8>,
    _slot: Option<OwnedSemaphorePermit>,
}

/// Turns a job's answer into its reply.
fn hash_reply(algo: Algorithms, answer: Answer) -> HashReply {
    match answer {
        Answer::Digest { hashes, size } => HashReply::Digest(DigestReply {
            ok: OkFlag,
            algorithm: algo.to_string(),
            hash: to_hex(hashes.first().map_or(&[][..], |(_, d)| d)),
            size,
            hashes: (hashes.len() > 1).then(|| {
                hashes
                    .iter()
                    .map(|(a, d)| (a.name().to_string(), to_hex(d)))
                    .collect()
            }),
        }),
        Answer::Failed { reason, busy } => HashReply::Error(ErrorReply {
            busy: Some(busy),
            ..ErrorReply::new(reason)
        }),
    }
}

/// Requests of one connection not yet answered, and the heartbeat and
/// progress intervals its HELLO asked for, shared by the reader (which sets
/// them) and the writer (which sends heartbeats and PROGRESS frames).
struct ConnState {
    /// Unanswered requests: each holds one permit until its reply is written.
    in_flight: Arc<Semaphore>,
    /// `max_in_flight`, to turn free permits into a count of held ones.
    max_in_flight: usize,
    /// Heartbeat interval in milliseconds; 0 until a HELLO asks for one.
    heartbeat_ms: AtomicU64,
    /// PROGRESS interval in milliseconds; 0 until a HELLO asks for one.
    progress_ms: AtomicU64,
    /// Bytes hashed so far of each unanswered file request (HASH_FD,
    /// HASH_PATH), by tag, while PROGRESS is on. The reader adds an entry
    /// when it starts the job, the writer removes it when it writes the
    /// reply, so no PROGRESS frame follows its request's REPLY. Each entry
    /// belongs to a request holding an in-flight slot, so there are at most
    /// `max_in_flight` (a client reusing a tag still in flight replaces its
    /// entry).
    meters: std::sync::Mutex<HashMap<u64, Arc<AtomicU64>>>,
}

impl ConnState {
    fn outstanding(&self) -> usize {
        self.max_in_flight
            .saturating_sub(self.in_flight.available_permits())
    }

    fn heartbeat(&self) -> Option<Duration> {
        match self.heartbeat_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    fn progress(&self) -> Option<Duration> {
        match self.progress_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    fn meters(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<AtomicU64>>> {
        self.meters.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The heartbeat (and PROGRESS) interval a client may ask for in HELLO is
/// clamped to this range. The floor keeps a client from making us write a
/// frame every few microseconds, yet lets tests use silence bounds of a few
/// hundred milliseconds; the ceiling is past any silence bound a client
/// would use.
const HEARTBEAT_MIN: Duration = Duration::from_millis(20);
/// See [`HEARTBEAT_MIN`].
const HEARTBEAT_MAX: Duration = Duration::from_secs(60);

/// Where a hash job's bytes come from.
enum Source {
    /// A file the daemon reads (passed by descriptor, or opened by path).
    File(std::fs::File),
    /// Bytes the client sends as STREAM_DATA under the request's tag.
    Stream,
}

/// What the reader of one connection keeps between frames; requests are
/// applied to it ([`Request::apply`]).
struct Session<B: Backend> {
    backend: Arc<B>,
    /// To the connection's writer task.
    replies: mpsc::UnboundedSender<Outgoing>,
    /// Shared with the writer.
    state: Arc<ConnState>,
    /// See [`SocketConfig::allowed_roots`].
    roots: Arc<[PathBuf]>,
    /// Descriptors received and not yet claimed by a HASH_FD frame.
    fds: VecDeque<OwnedFd>,
    /// Streams opened and not yet ended, by tag.
    streams: HashMap<u64, B::Stream>,
}

impl<B: Backend> Session<B> {
    /// Waits for an in-flight slot: while none is free the reader stops
    /// reading, so a client that never reads its answers cannot grow our
    /// memory.
    async fn slot(&self) -> Result<OwnedSemaphorePermit, ProtocolError> {
        self.state
            .in_flight
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ProtocolError::new("closed"))
    }

    /// Clamps and records the heartbeat interval a HELLO asked for; returns
    /// it in milliseconds, as granted.
    fn set_heartbeat(&self, asked_ms: u64) -> u64 {
        let every = Duration::from_millis(asked_ms).clamp(HEARTBEAT_MIN, HEARTBEAT_MAX);
        let ms = every.as_millis() as u64;
        self.state.heartbeat_ms.store(ms, Ordering::Relaxed);
        ms
    }

    /// Clamps and records the PROGRESS interval a HELLO asked for (the
    /// heartbeat's bounds); returns it in milliseconds, as granted.
    fn set_progress(&self, asked_ms: u64) -> u64 {
        let every = Duration::from_millis(asked_ms).clamp(HEARTBEAT_MIN, HEARTBEAT_MAX);
        let ms = every.as_millis() as u64;
        self.state.progress_ms.store(ms, Ordering::Relaxed);
        ms
    }

    /// Answers request `tag` now, freeing its slot once written.
    fn reply(&self, tag: u64, reply: &impl Serialize, slot: OwnedSemaphorePermit) {
        let _ = self.replies.send(Outgoing {
            tag,
            payload: to_payload(reply),
            _slot: Some(slot),
        });
    }

    /// Starts a hash job whose reply goes to request `tag` when it
    /// completes. The one place the socket hands work to the backend.
    fn submit(
        &mut self,
        tag: u64,
        algo: Algorithms,
        source: Source,
        slot: OwnedSemaphorePermit,
    ) -> Result<(), ProtocolError> {
        if matches!(source, Source::Stream) {
            if self.streams.contains_key(&tag) {
                return Err(ProtocolError::new(format!("stream {tag} is already open")));
            }
            // A stream stays here until its STREAM_END, answered or not
            // (see `stream_data`), so its slot alone does not bound them.
            if self.streams.len() >= self.state.max_in_flight {
                return Err(ProtocolError::new(format!(
                    "more than {} streams open on one connection",
                    self.state.max_in_flight
                )));
            }
        }
        let replies = self.replies.clone();
        let reply: Reply = Box::new(move |answer| {
            let _ = replies.send(Outgoing {
                tag,
                payload: to_payload(&hash_reply(algo, answer)),
                _slot: Some(slot),
            });
        });
        match source {
            Source::File(file) => {
                // Registered before the job starts, so the writer, which
                // removes it with the reply, never sees it afterwards.
                let hashed = self.state.progress().map(|_| {
                    let hashed = Arc::new(AtomicU64::new(0));
                    self.state.meters().insert(tag, hashed.clone());
                    hashed
                });
                self.backend.answer_file(algo, file, hashed, reply)
            }
            Source::Stream => {
                let job = self.backend.answer_stream(algo, reply);
                self.streams.insert(tag, job);
            }
        }
        Ok(())
    }

    /// Feeds STREAM_DATA to its stream. Data for a stream whose job has
    /// already ended (refused busy, failed, shutting down) is dropped: the
    /// client, which pipelines its data, learns why from the reply, and its
    /// connection stays usable until it sends the STREAM_END.
    async fn stream_data(&mut self, tag: u64, bytes: Bytes) -> Result<(), ProtocolError> {
        let job = self
            .streams
            .get_mut(&tag)
            .ok_or_else(|| ProtocolError::new(format!("STREAM_DATA for unknown stream {tag}")))?;
        let _ = job.send(bytes).await;
        Ok(())
    }

    /// Ends a stream; its job then completes and answers.
    fn stream_end(&mut self, tag: u64) -> Result<(), ProtocolError> {
        let job = self
            .streams
            .remove(&tag)
            .ok_or_else(|| ProtocolError::new(format!("STREAM_END for unknown stream {tag}")))?;
        job.finish();
        Ok(())
    }
}

/// Why a connection ended early.
enum Closed {
    /// The client broke the protocol; it is told why.
    Protocol(ProtocolError),
    /// The socket failed, or the client left mid-frame.
    Io(io::Error),
}

impl From<ProtocolError> for Closed {
    fn from(e: ProtocolError) -> Closed {
        Closed::Protocol(e)
    }
}

impl From<io::Error> for Closed {
    fn from(e: io::Error) -> Closed {
        Closed::Io(e)
    }
}

async fn connection<B: Backend>(
    backend: Arc<B>,
    stream: UnixStream,
    max_in_flight: usize,
    roots: Arc<[PathBuf]>,
) -> io::Result<()> {
    let stream = Arc::new(stream);
    let (tx, rx) = mpsc::unbounded_channel::<Outgoing>();
    let state = Arc::new(ConnState {
        in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))),
        max_in_flight: max_in_flight.max(1),
        heartbeat_ms: AtomicU64::new(0),
        progress_ms: AtomicU64::new(0),
        meters: std::sync::Mutex::default(),
    });
    let writer = tokio::spawn(write_replies(
        stream.clone(),
        rx,
        state.clone(),
        backend.clone(),
    ));
    let mut session = Session {
        backend,
        replies: tx,
        state,
        roots,
        fds: VecDeque::new(),
        streams: HashMap::new(),
    };
    let result = read_requests(&mut session, &stream).await;
    if let Err(Closed::Protocol(e)) = &result {
        // Tell the client why before closing; tag 0 is never a request's.
        let _ = session.replies.send(Outgoing {
            tag: 0,
            payload: to_payload(&ErrorReply::protocol(e)),
            _slot: None,
        });
    }
    // The writer ends once every sender is gone, pending completions
    // included, so the last replies are still written.
    drop(session);
    let _ = writer.await;
    result.map_err(|e| match e {
        Closed::Protocol(e) => io::Error::new(io::ErrorKind::InvalidData, e),
        Closed::Io(e) => e,
    })
}

/// What wakes the writer.
enum Wake {
    /// A reply, or `None` once every sender is gone.
    Reply(Option<Outgoing>),
    /// A heartbeat interval passed without a write.
    Quiet,
    /// Time to tell the client how far its files have got.
    Progress,
}

/// Sleeps until `at`, or for ever when there is no `at`.
async fn until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Writes replies as they come, batched; heartbeats while the client
/// waits; and PROGRESS frames for its running files, if it asked.
async fn write_replies<B: Backend>(
    stream: Arc<UnixStream>,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    state: Arc<ConnState>,
    backend: Arc<B>,
) {
    use tokio::time::Instant;
    let mut out = BytesMut::new();
    let mut last_progress = backend.progress();
    // The last write (or quiet check), and the last PROGRESS round.
    let mut quiet_since = Instant::now();
    let mut progress_since = Instant::now();
    // Bytes last reported per tag, to send only what has grown.
    let mut reported: HashMap<u64, u64> = HashMap::new();
    loop {
        // Read each time round: a HELLO may have set them since.
        let quiet_at = state.heartbeat().map(|every| quiet_since + every);
        let progress_at = state.progress().map(|every| progress_since + every);
        let wake = tokio::select! {
            next = rx.recv() => Wake::Reply(next),
            _ = until(quiet_at) => Wake::Quiet,
            _ = until(progress_at) => Wake::Progress,
        };
        match wake {
            // A client that asked for heartbeats learns after each quiet
            // interval that its unanswered requests are still being worked
            // on, so it can bound the silence between frames instead of
            // the whole job (which for a large file legitimately takes
            // minutes) and tell a busy daemon from a stopped or stuck one.
            Wake::Quiet => {
                quiet_since = Instant::now();
                let progress = backend.progress();
                let moved = progress.is_none() || progress != last_progress;
                last_progress = progress;
                if moved && state.outstanding() > 0 {
                    frame::encode(Kind::Heartbeat, 0, &[], &mut out);
                    if write_all(&stream, &mut out).await.is_err() {
                        break;
                    }
                }
            }
            Wake::Progress => {
                progress_since = Instant::now();
                for (tag, hashed) in state.meters().iter() {
                    let bytes = hashed.load(Ordering::Relaxed);
                    let last = reported.entry(*tag).or_insert(0);
                    if bytes > *last {
                        *last = bytes;
                        let payload = to_payload(&message::Progress { bytes });
                        frame::encode(Kind::Progress, *tag, &payload, &mut out);
                    }
                }
                if !out.is_empty() {
                    // Hashing moved: as good a sign of life as a heartbeat.
                    quiet_since = Instant::now();
                    if write_all(&stream, &mut out).await.is_err() {
                        break;
                    }
                }
            }
            Wake::Reply(None) => break,
            Wake::Reply(Some(reply)) => {
                let mut replied = |tag: u64| {
                    if state.progress().is_some() {
                        state.meters().remove(&tag);
                        reported.remove(&tag);
                    }
                };
                replied(reply.tag);
                frame::encode(Kind::Reply, reply.tag, &reply.payload, &mut out);
                drop(reply);
                // Batch whatever else is ready into one write.
                while let Ok(more) = rx.try_recv() {
                    replied(more.tag);
                    frame::encode(Kind::Reply, more.tag, &more.payload, &mut out);
                    if out.len() > 256 << 10 {
                        break;
                    }
                }
                quiet_since = Instant::now();
                if write_all(&stream, &mut out).await.is_err() {
                    break;
                }
            }
        }
    }
}

async fn read_requests<B: Backend>(
    session: &mut Session<B>,
    stream: &UnixStream,
) -> Result<(), Closed> {
    let mut buf = BytesMut::with_capacity(64 << 10);
    let mut received: Vec<OwnedFd> = Vec::new();
    loop {
        while let Some(f) = frame::decode(&mut buf).map_err(ProtocolError::from)? {
            Request::from_frame(f, &mut session.fds)?
                .apply(session)
                .await?;
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
                hashcore::fdpass::recv_with_fds(stream.as_fd(), &mut buf[filled..], &mut received)
            })
            .await;
        buf.truncate(filled + *n.as_ref().unwrap_or(&0));
        let n = n?;
        session.fds.extend(received.drain(..));
        if session.fds.len() > MAX_PENDING_FDS {
            return Err(ProtocolError::new("descriptors sent without HASH_FD frames").into());
        }
        if n == 0 {
            if !buf.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed mid-frame",
                )
                .into());
            }
            return Ok(());
        }
    }
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

#[cfg(test)]
mod tests {
    use super::frame::Frame;
    use super::message::{HelloReply, StatsReply};
    use super::*;
    use crate::testing::MemBackend;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn next_frame(s: &mut UnixStream, buf: &mut BytesMut) -> Option<Frame> {
        loop {
            if let Some(f) = frame::decode(buf).unwrap() {
                return Some(f);
            }
            if s.read_buf(buf).await.unwrap() == 0 {
                return None;
            }
        }
    }

    /// Every kind of request through the real connection handler: each is
    /// answered once under its tag with its typed reply, and a protocol
    /// error is answered under tag 0 before the connection closes.
    #[test]
    fn each_request_gets_its_typed_reply_and_a_protocol_error_closes() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (server, mut client) = UnixStream::pair().unwrap();
            let handler = tokio::spawn(connection(
                Arc::new(MemBackend::default()),
                server,
                8,
                Arc::from(Vec::new()),
            ));
            let mut out = BytesMut::new();
            frame::encode(
                Kind::Hello,
                1,
                br#"{"version":1,"heartbeat_ms":5,"progress_ms":5}"#,
                &mut out,
            );
            frame::encode(Kind::StreamOpen, 2, b"whirlpool", &mut out);
            frame::encode(Kind::StreamOpen, 3, b"sha1", &mut out);
            frame::encode(Kind::StreamData, 3, b"hello ", &mut out);
            frame::encode(Kind::StreamData, 3, b"world", &mut out);
            frame::encode(Kind::StreamEnd, 3, b"", &mut out);
            frame::encode(Kind::Lookup, 5, b"nope", &mut out);
            frame::encode(Kind::Stats, 6, b"", &mut out);
            client.write_all(&out).await.unwrap();
            // HASH_FD, with the descriptor on its first byte.
            out.clear();
            frame::encode(Kind::HashFd, 4, b"md5", &mut out);
            let file = std::fs::File::open("/dev/null").unwrap();
            let sent = loop {
                client.writable().await.unwrap();
                match hashcore::fdpass::send_with_fd(client.as_fd(), &out, file.as_fd()) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    r => break r.unwrap(),
                }
            };
            client.write_all(&out[sent..]).await.unwrap();

            let mut buf = BytesMut::new();
            let mut replies = HashMap::new();
            while replies.len() < 6 {
                let f = next_frame(&mut client, &mut buf).await.unwrap();
                if f.kind == Kind::Progress {
                    // Only for the file, and never after its reply.
                    assert_eq!(f.tag, 4);
                    assert!(!replies.contains_key(&4));
                    continue;
                }
                assert_eq!(f.kind, Kind::Reply);
                assert!(replies.insert(f.tag, f.payload).is_none(), "tag {}", f.tag);
            }
            let hello: HelloReply = serde_json::from_slice(&replies[&1]).unwrap();
            assert_eq!(hello.version, frame::VERSION);
            assert_eq!(hello.heartbeat_ms, Some(20), "clamped to the floor");
            assert_eq!(hello.progress_ms, Some(20), "clamped to the floor");
            assert!(hello.server.starts_with("hashd "));
            let refused: ErrorReply = serde_json::from_slice(&replies[&2]).unwrap();
            assert_eq!((refused.ok, refused.busy), (OkFlag, None));
            match serde_json::from_slice(&replies[&3]).unwrap() {
                HashReply::Digest(d) => {
                    assert_eq!(d.algorithm, "sha1");
                    assert_eq!(
                        d.hash,
                        to_hex(&hashcore::Algorithm::Sha1.digest(b"hello world"))
                    );
                    assert_eq!(d.size, 11);
                }
                other => panic!("{other:?}"),
            }
            match serde_json::from_slice(&replies[&4]).unwrap() {
                HashReply::Error(e) => assert_eq!(e.busy, Some(false)),
                other => panic!("{other:?}"),
            }
            let missing: ErrorReply = serde_json::from_slice(&replies[&5]).unwrap();
            assert_eq!(missing, ErrorReply::new("INVALID_ID"));
            let _: StatsReply = serde_json::from_slice(&replies[&6]).unwrap();

            out.clear();
            frame::encode(Kind::StreamData, 7, b"x", &mut out);
            client.write_all(&out).await.unwrap();
            let f = next_frame(&mut client, &mut buf).await.unwrap();
            assert_eq!((f.kind, f.tag), (Kind::Reply, 0));
            let e: ErrorReply = serde_json::from_slice(&f.payload).unwrap();
            assert_eq!(e, ErrorReply::protocol("STREAM_DATA for unknown stream 7"));
            assert!(next_frame(&mut client, &mut buf).await.is_none());
            let closed = handler.await.unwrap().unwrap_err();
            assert_eq!(closed.kind(), io::ErrorKind::InvalidData);
        });
    }
}
