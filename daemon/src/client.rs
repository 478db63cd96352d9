//! The [`Digests`] implementations behind `hashd sum` and `hashd check`:
//! - [`DaemonDigests`] talks to a running daemon over its unix socket and
//!   passes each file's descriptor, so the daemon's hashers read it with
//!   io_uring while the client only opens files. It bounds the daemon's
//!   silence (the daemon sends heartbeats while it works) and, when the
//!   daemon misbehaves in any way, finishes in-process with the same output.
//!   For `--progress` it asks for PROGRESS frames, which say how far each
//!   running file has got;
//! - [`PoolDigests`] runs the same hasher pool in-process, for when no
//!   daemon is running (or `--no-daemon`).
//!
//! Both pipeline up to [`WINDOW`] files and report results in input order.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::Duration;

use bytes::BytesMut;
use frontends::unix::frame::{self, Kind};
use frontends::unix::message::{
    DigestReply, ErrorReply, HashReply, HelloReply, HelloRequest, Progress,
};
use hashcore::{Algorithms, HasherPool, Hashes, JobError, PoolConfig};

use crate::cli::{Digests, Input};

/// Files in flight at once: enough to keep every hasher's lanes and reads
/// busy, well under the socket's per-connection in-flight limit (1024).
pub const WINDOW: usize = 256;
/// Bytes per STREAM_DATA frame when a non-regular input is sent as bytes.
const STREAM_CHUNK_LEN: usize = 256 << 10;

/// Emits results in input order as they complete in any order.
struct InOrder<'a> {
    next: usize,
    ready: BTreeMap<usize, io::Result<Hashes>>,
    done: &'a mut dyn FnMut(usize, io::Result<Hashes>),
}

impl<'a> InOrder<'a> {
    fn new(done: &'a mut dyn FnMut(usize, io::Result<Hashes>)) -> Self {
        InOrder {
            next: 0,
            ready: BTreeMap::new(),
            done,
        }
    }

    fn put(&mut self, index: usize, result: io::Result<Hashes>) {
        self.ready.insert(index, result);
        while let Some(r) = self.ready.remove(&self.next) {
            (self.done)(self.next, r);
            self.next += 1;
        }
    }
}

/// An engine that hashes inputs asynchronously; [`run_pipeline`] drives it.
trait Pipelined {
    /// Starts hashing input `index`; `Some(result)` when it is known at once.
    fn start(
        &mut self,
        algo: Algorithms,
        index: usize,
        opened: Opened,
    ) -> io::Result<Option<io::Result<Hashes>>>;

    /// Waits for the next completion; `None` when the engine resubmitted the
    /// input instead (it is still in flight).
    fn next(
        &mut self,
        algo: Algorithms,
        inputs: &[Input],
    ) -> io::Result<Option<(usize, io::Result<Hashes>)>>;
}

/// Keeps up to [`WINDOW`] inputs in flight and reports every result, in
/// input order, exactly once.
fn run_pipeline<P: Pipelined>(
    engine: &mut P,
    algo: Algorithms,
    inputs: &[Input],
    done: &mut dyn FnMut(usize, io::Result<Hashes>),
) -> io::Result<()> {
    let mut order = InOrder::new(done);
    let mut in_flight = 0usize;
    let reap = |engine: &mut P, order: &mut InOrder<'_>, in_flight: &mut usize| -> io::Result<()> {
        if let Some((index, result)) = engine.next(algo, inputs)? {
            order.put(index, result);
            *in_flight -= 1;
        }
        Ok(())
    };
    for (index, input) in inputs.iter().enumerate() {
        while in_flight >= WINDOW {
            reap(engine, &mut order, &mut in_flight)?;
        }
        match open(input) {
            Err(e) => order.put(index, Err(e)),
            Ok(opened) => match engine.start(algo, index, opened)? {
                Some(result) => order.put(index, result),
                None => in_flight += 1,
            },
        }
    }
    while in_flight > 0 {
        reap(engine, &mut order, &mut in_flight)?;
    }
    Ok(())
}

/// What an input turned out to be once opened.
enum Opened {
    /// A regular file: the hashers read it by descriptor.
    File(File),
    /// Anything else (stdin, a pipe, a device): its bytes must be pushed.
    Stream(Box<dyn Read>),
}

fn open(input: &Input) -> io::Result<Opened> {
    match input {
        Input::Stdin => Ok(Opened::Stream(Box::new(io::stdin()))),
        Input::Path(p) => {
            let f = File::open(p)?;
            let meta = f.metadata()?;
            if meta.is_dir() {
                Err(io::Error::from_raw_os_error(libc::EISDIR))
            } else if meta.is_file() {
                Ok(Opened::File(f))
            } else {
                Ok(Opened::Stream(Box::new(f)))
            }
        }
    }
}

fn job_error(e: JobError) -> io::Error {
    io::Error::other(e.to_string())
}

/// The daemon's hasher pool (io_uring reads, SIMD lanes), in this process.
pub struct PoolDigests {
    pool: HasherPool,
    /// Completions come back here, tagged with their input's index.
    tx: mpsc::Sender<(usize, io::Result<Hashes>)>,
    rx: mpsc::Receiver<(usize, io::Result<Hashes>)>,
}

impl PoolDigests {
    pub fn new(uring: bool) -> io::Result<PoolDigests> {
        let pool = HasherPool::start(PoolConfig {
            prefer_uring: uring && PoolConfig::default().prefer_uring,
            // A command-line tool shares the machine: pinned hashers cannot
            // move off a core another process keeps busy, and the hasher on
            // it then holds its files (up to 32) while the others idle.
            pin: false,
            max_streams: 1,
            // The same choice by measurement as the daemon's start-up: about
            // a millisecond, against hashing runs of many.
            md5: hashcore::md5::Tuning::calibrate(PoolConfig::default().md5.platform()).tuning,
            ..PoolConfig::default()
        })?;
        let (tx, rx) = mpsc::channel();
        Ok(PoolDigests { pool, tx, rx })
    }

    /// Reads the bytes this process's pool has hashed, for `--progress`.
    pub fn bytes_hashed(&self) -> HashedSoFar {
        let live = self.pool.bytes_hashed();
        Arc::new(move || live.get())
    }
}

impl Pipelined for PoolDigests {
    fn start(
        &mut self,
        algo: Algorithms,
        index: usize,
        opened: Opened,
    ) -> io::Result<Option<io::Result<Hashes>>> {
        match opened {
            Opened::Stream(mut r) => {
                let mut buf = vec![0u8; STREAM_CHUNK_LEN];
                Ok(Some(crate::cli::hash_reader(algo, &mut r, &mut buf)))
            }
            Opened::File(f) => {
                let tx = self.tx.clone();
                self.pool.submit_file(
                    algo,
                    f,
                    Box::new(move |o| {
                        let _ = tx.send((index, o.map(|d| d.hashes).map_err(job_error)));
                    }),
                );
                Ok(None)
            }
        }
    }

    fn next(
        &mut self,
        _: Algorithms,
        _: &[Input],
    ) -> io::Result<Option<(usize, io::Result<Hashes>)>> {
        self.rx
            .recv()
            .map(Some)
            .map_err(|_| io::Error::other("hasher pool stopped"))
    }
}

/// How long `hashd sum` waits for the daemon to say anything (a reply or a
/// heartbeat) while it has requests outstanding, and to write a request.
/// Past it the daemon counts as wedged (stopped with SIGSTOP, deadlocked)
/// and the remaining files are hashed in this process. Five heartbeat
/// intervals: a daemon whose threads are merely starved by a loaded
/// machine misses one or two, not five, and a wrong guess costs only
/// hashing in-process, never a wrong line.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(5);
/// How long connecting and the HELLO exchange may take. A live daemon
/// answers HELLO in microseconds; a stopped one still completes the connect
/// (the kernel queues it) but never answers, and that wait is the only
/// delay it adds before the command goes on without it, so this is short.
pub const HANDSHAKE_LIMIT: Duration = Duration::from_secs(2);
/// Heartbeats asked for per [`SILENCE_LIMIT`].
const HEARTBEATS_PER_SILENCE: u32 = 5;
/// Overrides [`SILENCE_LIMIT`] (and caps [`HANDSHAKE_LIMIT`]), in
/// milliseconds. Not a documented setting: it lets tests simulate a wedged
/// daemon in a fraction of a second.
pub const SILENCE_ENV: &str = "HASHD_CLIENT_SILENCE_MS";
/// The tag of the HELLO a client sends on connecting; file requests use
/// their input's index + 1, far below it.
const HELLO_TAG: u64 = u64::MAX;
/// The PROGRESS interval asked for with `--progress`: a few updates per
/// redraw of the progress line, a handful of small frames a second.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Reads, from any thread, the bytes hashed so far (finished inputs
/// included) by whatever hashes for a [`Digests`]; `--progress` draws it.
pub type HashedSoFar = Arc<dyn Fn() -> u64 + Send + Sync>;

/// What [`DaemonDigests`] has seen hashed: the daemon's count, from its
/// PROGRESS frames and replies, plus the fallback pool's, once there is one.
#[derive(Default)]
struct Hashed {
    daemon: AtomicU64,
    fallback: OnceLock<hashcore::BytesHashed>,
}

impl Hashed {
    fn get(&self) -> u64 {
        self.daemon.load(Ordering::Relaxed) + self.fallback.get().map_or(0, |b| b.get())
    }
}

/// A daemon that broke the protocol or stopped answering: any of these
/// makes [`DaemonDigests`] finish the job in-process.
fn misbehaved(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// The digests `hashd sum` and `hashd check` use when a daemon runs.
/// Whatever the daemon does wrong (stays silent past [`SILENCE_LIMIT`],
/// closes the connection, sends garbage or a malformed reply, dies), the
/// inputs not yet reported are hashed in this process with
/// [`PoolDigests`], so the output is the same as without a daemon.
pub struct DaemonDigests {
    /// `None` once the daemon has misbehaved: it is not asked again.
    conn: Option<Connection>,
    /// Created when first needed.
    fallback: Option<PoolDigests>,
    /// io_uring for the fallback engine.
    uring: bool,
    /// Say on stderr (once) that the daemon was given up on.
    verbose: bool,
    /// Bytes hashed so far, for `--progress`.
    hashed: Arc<Hashed>,
}

/// The bounds a client applies to the daemon.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// See [`SILENCE_LIMIT`].
    pub silence: Duration,
    /// See [`HANDSHAKE_LIMIT`].
    pub handshake: Duration,
}

impl Limits {
    /// The defaults, or the silence bound from [`SILENCE_ENV`].
    pub fn from_env() -> Limits {
        let silence = std::env::var(SILENCE_ENV)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|&ms| ms > 0)
            .map(Duration::from_millis)
            .unwrap_or(SILENCE_LIMIT);
        Limits {
            silence,
            handshake: HANDSHAKE_LIMIT.min(silence),
        }
    }
}

impl DaemonDigests {
    /// Connects to the daemon at `path` and checks that it answers and sends
    /// heartbeats; with `progress`, asks it for PROGRESS frames too (a
    /// daemon that predates them is still used: its files then count when
    /// done). An error means there is no usable daemon: the caller hashes
    /// in-process instead.
    pub fn connect(
        path: &Path,
        limits: Limits,
        uring: bool,
        verbose: bool,
        progress: bool,
    ) -> io::Result<DaemonDigests> {
        let hashed = Arc::new(Hashed::default());
        let progress = progress.then(|| hashed.clone());
        Ok(DaemonDigests {
            conn: Some(Connection::open(path, limits, progress)?),
            fallback: None,
            uring,
            verbose,
            hashed,
        })
    }

    /// Reads the bytes hashed so far, by the daemon (as far as its PROGRESS
    /// frames and replies tell) and by the fallback pool, for `--progress`.
    pub fn bytes_hashed(&self) -> HashedSoFar {
        let hashed = self.hashed.clone();
        Arc::new(move || hashed.get())
    }

    /// Stops using the daemon, saying why if asked to.
    fn give_up(&mut self, why: &io::Error) {
        self.conn = None;
        if self.verbose {
            let _ = writeln!(
                io::stderr(),
                "{}: the daemon failed ({why}); hashing the remaining files in this process",
                crate::cli::PROGRAM
            );
        }
    }
}

impl Digests for DaemonDigests {
    fn hash_inputs(
        &mut self,
        algo: Algorithms,
        inputs: &[Input],
        done: &mut dyn FnMut(usize, io::Result<Hashes>),
    ) -> io::Result<()> {
        let mut reported = 0;
        if let Some(conn) = &mut self.conn {
            let result = run_pipeline(conn, algo, inputs, &mut |index, result| {
                reported = index + 1;
                done(index, result)
            });
            match result {
                Ok(()) => return Ok(()),
                Err(e) => self.give_up(&e),
            }
        }
        let engine = match &mut self.fallback {
            Some(engine) => engine,
            None => {
                let engine = PoolDigests::new(self.uring)?;
                let _ = self.hashed.fallback.set(engine.pool.bytes_hashed());
                self.fallback.insert(engine)
            }
        };
        let rest = &inputs[reported..];
        engine.hash_inputs(algo, rest, &mut |index, result| {
            done(reported + index, result)
        })
    }
}

/// One connection to the daemon's unix socket.
struct Connection {
    sock: UnixStream,
    inbox: BytesMut,
    /// The socket's read and write timeouts: [`Limits::handshake`] until
    /// HELLO is answered, then [`Limits::silence`].
    silence: Duration,
    /// Where PROGRESS frames and replies are counted, when the daemon
    /// agreed to send PROGRESS frames.
    hashed: Option<Arc<Hashed>>,
    /// Files sent and not yet answered, by tag, with the bytes the daemon
    /// last said it had hashed of each (only while `hashed` is set; at most
    /// [`WINDOW`] entries).
    running: HashMap<u64, u64>,
}

/// Connects within `limit`. A plain blocking connect could wait for ever:
/// a stopped daemon's full accept backlog blocks it.
fn connect_within(path: &Path, limit: Duration) -> io::Result<UnixStream> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    rt.block_on(async {
        let sock = tokio::time::timeout(limit, tokio::net::UnixStream::connect(path))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        let sock = sock.into_std()?;
        sock.set_nonblocking(false)?;
        Ok(sock)
    })
}

impl Connection {
    /// Connects and exchanges HELLO, asking for heartbeats; a daemon that
    /// does not answer within the handshake bound, or does not agree to
    /// heartbeats often enough to tell it from a wedged one, is refused.
    fn open(path: &Path, limits: Limits, progress: Option<Arc<Hashed>>) -> io::Result<Connection> {
        let sock = connect_within(path, limits.handshake)?;
        sock.set_read_timeout(Some(limits.handshake))?;
        sock.set_write_timeout(Some(limits.handshake))?;
        let mut conn = Connection {
            sock,
            inbox: BytesMut::with_capacity(64 << 10),
            silence: limits.handshake,
            hashed: None,
            running: HashMap::new(),
        };
        let every = limits.silence / HEARTBEATS_PER_SILENCE;
        let hello = HelloRequest {
            version: Some(frame::VERSION),
            heartbeat_ms: Some(every.as_millis() as u64),
            progress_ms: progress
                .is_some()
                .then_some(PROGRESS_EVERY.as_millis() as u64),
        };
        conn.send_frame(Kind::Hello, HELLO_TAG, &serde_json::to_vec(&hello)?)?;
        let (tag, payload) = conn.recv_reply()?;
        if tag != HELLO_TAG {
            return Err(misbehaved(format!("a reply for tag {tag} before HELLO's")));
        }
        let answer: HelloReply = decode(&payload)?;
        match answer.heartbeat_ms {
            Some(ms) if Duration::from_millis(ms) < limits.silence => {}
            _ => {
                return Err(misbehaved(
                    "the daemon does not send heartbeats often enough (an older hashd?)",
                ))
            }
        }
        // Asked for and granted; without the grant no PROGRESS frame is
        // expected, and one that came anyway would be a fault.
        conn.hashed = progress.filter(|_| answer.progress_ms.is_some());
        conn.sock.set_read_timeout(Some(limits.silence))?;
        conn.sock.set_write_timeout(Some(limits.silence))?;
        conn.silence = limits.silence;
        Ok(conn)
    }

    /// Socket timeouts surface as `WouldBlock`; say what they mean.
    fn timed_out(&self, e: io::Error) -> io::Error {
        if matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ) {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no word from the daemon for {:?}", self.silence),
            )
        } else {
            e
        }
    }

    fn send_frame(&mut self, kind: Kind, tag: u64, payload: &[u8]) -> io::Result<()> {
        let mut out = BytesMut::new();
        frame::encode(kind, tag, payload, &mut out);
        self.sock.write_all(&out).map_err(|e| self.timed_out(e))
    }

    /// Counts what a PROGRESS frame says of a file in flight: `bytes` of
    /// it hashed so far. One for a request not in flight is a fault, as a
    /// reply would be.
    fn progressed(&mut self, tag: u64, bytes: u64) -> io::Result<()> {
        let (Some(hashed), Some(last)) = (&self.hashed, self.running.get_mut(&tag)) else {
            return Err(misbehaved(format!("PROGRESS for tag {tag}, not in flight")));
        };
        if bytes > *last {
            hashed.daemon.fetch_add(bytes - *last, Ordering::Relaxed);
            *last = bytes;
        }
        Ok(())
    }

    /// Ends a file's count: it is answered, and if it was hashed, its size
    /// counts whole.
    fn answered(&mut self, tag: u64, size: Option<u64>) {
        if let (Some(hashed), Some(last)) = (&self.hashed, self.running.remove(&tag)) {
            let rest = size.map_or(0, |s| s.saturating_sub(last));
            hashed.daemon.fetch_add(rest, Ordering::Relaxed);
        }
    }

    /// Sends HASH_FD with the descriptor attached to the frame's first byte.
    fn send_fd(&mut self, tag: u64, algo: Algorithms, file: &File) -> io::Result<()> {
        if self.hashed.is_some() {
            self.running.insert(tag, 0);
        }
        let mut out = BytesMut::new();
        frame::encode(Kind::HashFd, tag, algo.to_string().as_bytes(), &mut out);
        let sent = loop {
            match hashcore::fdpass::send_with_fd(self.sock.as_fd(), &out, file.as_fd()) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.timed_out(e)),
            }
        };
        self.sock
            .write_all(&out[sent..])
            .map_err(|e| self.timed_out(e))
    }

    /// Reads the next reply, skipping heartbeats and counting PROGRESS
    /// frames: (tag, payload). A tag-0 reply (the daemon closing the
    /// connection on a protocol error) is an error.
    fn recv_reply(&mut self) -> io::Result<(u64, bytes::Bytes)> {
        loop {
            match frame::decode(&mut self.inbox) {
                Ok(Some(f)) if f.kind == Kind::Heartbeat => continue,
                Ok(Some(f)) if f.kind == Kind::Progress && self.hashed.is_some() => {
                    let Progress { bytes } = decode(&f.payload)?;
                    self.progressed(f.tag, bytes)?;
                    continue;
                }
                Ok(Some(f)) if f.kind != Kind::Reply => {
                    return Err(misbehaved(format!("unexpected frame {:?}", f.kind)))
                }
                Ok(Some(f)) if f.tag == 0 => {
                    let e: ErrorReply = decode(&f.payload)?;
                    return Err(misbehaved(format!("daemon: {}", e.error)));
                }
                Ok(Some(f)) => return Ok((f.tag, f.payload)),
                Ok(None) => {}
                Err(e) => return Err(misbehaved(e.to_string())),
            }
            let mut buf = [0u8; 64 << 10];
            let n = loop {
                match self.sock.read(&mut buf) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    r => break r.map_err(|e| self.timed_out(e))?,
                }
            };
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the daemon closed the connection",
                ));
            }
            self.inbox.extend_from_slice(&buf[..n]);
        }
    }
}

/// A reply payload as `T`; one that is not is a daemon fault.
fn decode<T: serde::de::DeserializeOwned>(payload: &[u8]) -> io::Result<T> {
    serde_json::from_slice(payload).map_err(|e| {
        misbehaved(format!(
            "malformed reply ({e}): {}",
            String::from_utf8_lossy(payload)
        ))
    })
}

/// What the daemon said about one file.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// Its digests, one per algorithm asked for, checked, and the bytes
    /// hashed.
    Digest(Hashes, u64),
    /// The daemon's file queue was full: ask again.
    Busy,
    /// The daemon could not hash it.
    Refused,
}

/// Reads the reply to a hash request for `algo`. A reply that is neither a
/// success nor a failure, or a digest that is not what was asked, is a
/// daemon fault, not a fact about the file.
fn file_answer(algo: Algorithms, payload: &[u8]) -> io::Result<Answer> {
    match decode::<HashReply>(payload)? {
        HashReply::Digest(d) => reply_digest(algo, &d).map(|h| Answer::Digest(h, d.size)),
        HashReply::Error(e) if e.is_busy() => Ok(Answer::Busy),
        HashReply::Error(_) => Ok(Answer::Refused),
    }
}

/// The digests in a success reply, checked against what was asked: the
/// algorithms as listed, each digest of its algorithm's length (one
/// algorithm: `hash`; several: `hashes`, whose first must be `hash`).
fn reply_digest(algo: Algorithms, reply: &DigestReply) -> io::Result<Hashes> {
    let malformed = || misbehaved(format!("malformed reply: {reply:?}"));
    if reply.algorithm != algo.to_string() {
        return Err(malformed());
    }
    let parse = |a: hashcore::Algorithm, hex: &str| -> Option<Vec<u8>> {
        if hex.len() != 2 * a.digest_len() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
            .collect()
    };
    let mut out = Hashes::new();
    for (i, a) in algo.iter().enumerate() {
        let hex = match (&reply.hashes, i) {
            (_, 0) => &reply.hash,
            (Some(all), _) => all.get(a.name()).ok_or_else(malformed)?,
            (None, _) => return Err(malformed()),
        };
        out.push((a, parse(a, hex).ok_or_else(malformed)?));
    }
    if let Some(all) = &reply.hashes {
        if all.len() != algo.len() || all.get(algo.first().name()) != Some(&reply.hash) {
            return Err(malformed());
        }
    }
    Ok(out)
}

/// Hashes an input in this process (see [`Pipelined::start`] for
/// [`Connection`]).
fn hash_here(algo: Algorithms, opened: Opened) -> io::Result<Hashes> {
    let mut buf = vec![0u8; STREAM_CHUNK_LEN];
    match opened {
        Opened::File(mut f) => crate::cli::hash_reader(algo, &mut f, &mut buf),
        Opened::Stream(mut r) => crate::cli::hash_reader(algo, &mut r, &mut buf),
    }
}

impl Pipelined for Connection {
    fn start(
        &mut self,
        algo: Algorithms,
        index: usize,
        opened: Opened,
    ) -> io::Result<Option<io::Result<Hashes>>> {
        let tag = index as u64 + 1;
        match opened {
            Opened::File(f) => self.send_fd(tag, algo, &f)?,
            // Standard input, pipes and devices are hashed here, not sent
            // as streams: their bytes can be read only once, so if the
            // daemon failed midway they could not be hashed again, and the
            // bytes pass through this process either way.
            Opened::Stream(r) => return Ok(Some(hash_here(algo, Opened::Stream(r)))),
        }
        Ok(None)
    }

    fn next(
        &mut self,
        algo: Algorithms,
        inputs: &[Input],
    ) -> io::Result<Option<(usize, io::Result<Hashes>)>> {
        let (tag, payload) = self.recv_reply()?;
        let index = usize::try_from(tag - 1)
            .ok()
            .filter(|&i| i < inputs.len())
            .ok_or_else(|| misbehaved(format!("reply for unknown tag {tag}")))?;
        let answer = file_answer(algo, &payload)?;
        let size = match answer {
            Answer::Digest(_, size) => Some(size),
            _ => None,
        };
        self.answered(tag, size);
        match answer {
            Answer::Digest(digest, _) => Ok(Some((index, Ok(digest)))),
            Answer::Busy => {
                // The daemon's file queue was full: send the file again; it
                // stays in flight.
                std::thread::sleep(Duration::from_millis(1));
                match open(&inputs[index]) {
                    Ok(Opened::File(f)) => self.send_fd(tag, algo, &f).map(|()| None),
                    Ok(other) => Ok(Some((index, hash_here(algo, other)))),
                    Err(e) => Ok(Some((index, Err(e)))),
                }
            }
            // The daemon could not hash the file. Its reason is its own
            // view (and its own words); hashing here gives the error, or
            // digest, that `md5sum` would.
            Answer::Refused => Ok(Some((
                index,
                open(&inputs[index]).and_then(|o| hash_here(algo, o)),
            ))),
        }
    }
}

/// Every pipelined implementation hashes through the one windowed, in-order loop.
impl<P: Pipelined> Digests for P {
    fn hash_inputs(
        &mut self,
        algo: Algorithms,
        inputs: &[Input],
        done: &mut dyn FnMut(usize, io::Result<Hashes>),
    ) -> io::Result<()> {
        run_pipeline(self, algo, inputs, done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hashcore::Algorithm;
    use std::collections::{HashSet, VecDeque};

    /// Completes out of order and asks for some inputs to be resubmitted.
    struct Scrambler {
        pending: VecDeque<usize>,
        resubmitted: HashSet<usize>,
        most_in_flight: usize,
    }

    impl Pipelined for Scrambler {
        fn start(
            &mut self,
            _: Algorithms,
            index: usize,
            _: Opened,
        ) -> io::Result<Option<io::Result<Hashes>>> {
            if index.is_multiple_of(3) {
                return Ok(Some(Ok(vec![(
                    Algorithm::Md5,
                    index.to_le_bytes().to_vec(),
                )])));
            }
            self.pending.push_front(index);
            self.most_in_flight = self.most_in_flight.max(self.pending.len());
            Ok(None)
        }

        fn next(
            &mut self,
            _: Algorithms,
            _: &[Input],
        ) -> io::Result<Option<(usize, io::Result<Hashes>)>> {
            let index = self
                .pending
                .pop_back()
                .expect("next() with nothing in flight");
            if index % 5 == 1 && self.resubmitted.insert(index) {
                self.pending.push_front(index);
                return Ok(None);
            }
            Ok(Some((
                index,
                Ok(vec![(Algorithm::Md5, index.to_le_bytes().to_vec())]),
            )))
        }
    }

    fn answer(v: &serde_json::Value) -> io::Result<Answer> {
        file_answer(Algorithm::Md5.into(), v.to_string().as_bytes())
    }

    #[test]
    fn only_a_well_formed_digest_of_the_asked_algorithm_is_taken() {
        let hex = hashcore::to_hex(&Algorithm::Md5.digest(b"a"));
        let ok = serde_json::json!({"ok": true, "algorithm": "md5", "hash": hex, "size": 1});
        assert_eq!(
            answer(&ok).unwrap(),
            Answer::Digest(vec![(Algorithm::Md5, Algorithm::Md5.digest(b"a"))], 1)
        );
        for bad in [
            serde_json::json!({"ok": true, "algorithm": "sha1", "hash": hex}),
            serde_json::json!({"ok": true, "algorithm": "md5", "hash": &hex[1..]}),
            serde_json::json!({"ok": true, "algorithm": "md5", "hash": format!("{}zz", &hex[2..])}),
            serde_json::json!({"ok": true, "algorithm": "md5", "hash": format!("+{}", &hex[1..])}),
            serde_json::json!({"ok": true, "algorithm": "md5"}),
            serde_json::json!({"ok": true, "algorithm": "md5", "hash": hex, "hashes": {"md5": hex, "sha1": hex}}),
        ] {
            let e = answer(&bad).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{bad}");
        }
    }

    /// Several algorithms: every one, of its length, `hash` the first's.
    #[test]
    fn several_digests_are_taken_only_whole() {
        let md5 = hashcore::to_hex(&Algorithm::Md5.digest(b"a"));
        let sha = hashcore::to_hex(&Algorithm::Sha256.digest(b"a"));
        let algos: Algorithms = "md5,sha256".parse().unwrap();
        let read = |v: serde_json::Value| file_answer(algos, v.to_string().as_bytes());
        let ok = serde_json::json!({"ok": true, "algorithm": "md5,sha256", "hash": md5,
            "hashes": {"md5": md5, "sha256": sha}, "size": 1});
        assert_eq!(
            read(ok).unwrap(),
            Answer::Digest(
                vec![
                    (Algorithm::Md5, Algorithm::Md5.digest(b"a")),
                    (Algorithm::Sha256, Algorithm::Sha256.digest(b"a"))
                ],
                1
            )
        );
        for bad in [
            serde_json::json!({"ok": true, "algorithm": "md5,sha256", "hash": md5}),
            serde_json::json!({"ok": true, "algorithm": "md5,sha256", "hash": md5, "hashes": {"md5": md5}}),
            serde_json::json!({"ok": true, "algorithm": "md5,sha256", "hash": md5, "hashes": {"md5": md5, "sha256": md5}}),
            serde_json::json!({"ok": true, "algorithm": "md5,sha256", "hash": sha, "hashes": {"md5": md5, "sha256": sha}}),
        ] {
            assert_eq!(
                read(bad.clone()).unwrap_err().kind(),
                io::ErrorKind::InvalidData,
                "{bad}"
            );
        }
    }

    #[test]
    fn a_failure_is_busy_only_when_it_says_so_and_anything_else_is_a_fault() {
        let busy = serde_json::json!({"ok": false, "error": "queue full", "busy": true});
        assert_eq!(answer(&busy).unwrap(), Answer::Busy);
        for refused in [
            serde_json::json!({"ok": false, "error": "cannot read", "busy": false}),
            serde_json::json!({"ok": false, "error": "unknown algorithm"}),
        ] {
            assert_eq!(answer(&refused).unwrap(), Answer::Refused, "{refused}");
        }
        for bad in [
            &b"\xff{"[..],
            br#"{"error":"no ok"}"#,
            br#"{"ok":"yes","algorithm":"md5","hash":"00","size":1}"#,
        ] {
            let e = file_answer(Algorithm::Md5.into(), bad).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        }
    }

    #[test]
    fn every_input_is_reported_once_in_order_despite_resubmissions() {
        let path = std::env::temp_dir().join(format!("hashd-client-{}", std::process::id()));
        std::fs::write(&path, b"x").unwrap();
        let inputs: Vec<Input> = (0..1000).map(|_| Input::Path(path.clone())).collect();
        let mut engine = Scrambler {
            pending: VecDeque::new(),
            resubmitted: HashSet::new(),
            most_in_flight: 0,
        };
        let mut seen = Vec::new();
        run_pipeline(&mut engine, Algorithm::Md5.into(), &inputs, &mut |i, r| {
            assert_eq!(r.unwrap(), [(Algorithm::Md5, i.to_le_bytes().to_vec())]);
            seen.push(i);
        })
        .unwrap();
        assert_eq!(seen, (0..1000).collect::<Vec<_>>());
        assert!(engine.most_in_flight <= WINDOW);
        assert!(!engine.resubmitted.is_empty());
        std::fs::remove_file(path).unwrap();
    }
}
