//! The hasher pool: N OS threads, each pinned to a core, each holding many
//! active jobs at once.
//!
//! Threads and channels:
//! - Every hasher owns a bounded crossbeam channel of messages (`worker::Msg`). A streamed job
//!   (an upload) is bound to one hasher for its life, because its hash state
//!   lives there; its chunks travel as refcounted `Bytes`, never copied.
//! - The channel is sized so that `try_send` cannot fail while every open
//!   stream respects its credit budget (`credits`): the sender waits for
//!   credit (asynchronously, via a `Waker`), never for channel space, so an
//!   async front end never blocks its runtime.
//! - Admission: at most [`PoolConfig::max_streams`] streams are open at once
//!   (the channels are sized for that many); one more is refused with
//!   [`JobError::Busy`] rather than queued.
//! - A job ends by calling its [`Completion`] exactly once, with the digest or
//!   the reason it failed: on the hasher thread, or on the producer's thread
//!   for a stream that never outgrew its head (see [`StreamJob`]). A
//!   `Finisher` guarantees it: a job dropped unfinished (its hasher thread
//!   panicked) ends with [`JobError::Lost`]. A hasher that died is skipped by
//!   placement and shown in [`HasherSnapshot::alive`]; the others go on.
//!   Completions must be cheap and must not block (hand the result to another
//!   thread); they run on the hot path, possibly inside an async runtime.

mod credits;
mod finish;
mod pin;
mod worker;

use std::future::poll_fn;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;

use bytes::Bytes;
use crossbeam_channel::{Sender, TrySendError};

use crate::md5::{Platform, Tuning};
use crate::read::{FileReader, ReaderConfig, SharedReaderKind};
use crate::{Algorithm, Algorithms, Hashes};
use credits::Credits;
pub use credits::JobClosed;
use finish::{Finisher, StreamSlot};
use worker::{FileJob, HashState, Msg, Worker};

/// A finished job's digests and how many bytes went into them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digest {
    /// One digest per algorithm of the job, in the job's order.
    pub hashes: Hashes,
    /// Bytes hashed (the same for every algorithm: one pass fed them all).
    pub len: u64,
}

impl Digest {
    /// The first algorithm's digest: the job's `hash`.
    pub fn first(&self) -> &[u8] {
        self.hashes.first().map_or(&[], |(_, d)| d)
    }
}

/// Why a job ended without a digest. The text is shown to clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobError {
    /// The producer went away before the end of the data (client disconnect,
    /// upload over the size limit, malformed body).
    Aborted(String),
    /// The pool shut down while the job was open.
    ShuttingDown,
    /// Reading a descriptor job's file failed (or it is not a regular file).
    Read(String),
    /// The pool is at its bound (open streams, or queued files); the client
    /// should retry later.
    Busy,
    /// The job was lost with the hasher thread running it (a bug: the
    /// thread panicked). The text says so; the daemon goes on without it.
    Lost(String),
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobError::Aborted(reason) => f.write_str(reason),
            JobError::ShuttingDown => f.write_str("daemon shut down before the job finished"),
            JobError::Read(reason) => f.write_str(reason),
            JobError::Busy => f.write_str("too many jobs in progress; retry later"),
            JobError::Lost(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for JobError {}

pub type Outcome = Result<Digest, JobError>;

/// Called exactly once per job, on the hasher thread, with its outcome.
pub type Completion = Box<dyn FnOnce(Outcome) + Send>;

/// Sizes and switches for [`HasherPool::start`].
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// Number of hasher threads.
    pub hashers: usize,
    /// Pin hasher k to the k-th allowed CPU.
    pub pin: bool,
    /// Streams that may be open at once across the pool: one more is
    /// refused with [`JobError::Busy`]. Sizes the channels.
    pub max_streams: usize,
    /// Bytes of one stream that may wait at its hasher before the sender must
    /// wait. Bounds memory per upload (plus at most one chunk).
    pub stream_budget_bytes: usize,
    /// Chunks of one stream that may wait at its hasher.
    pub stream_budget_chunks: usize,
    /// A stream whose data all fits in this many bytes is hashed on the
    /// producer's thread at [`StreamJob::finish`] and never reaches a hasher
    /// (0: every stream goes to a hasher). See [`StreamJob`].
    pub inline_max_bytes: usize,
    /// Descriptor jobs that may wait for a hasher, across the pool.
    pub file_queue_len: usize,
    /// Read files with io_uring where the kernel allows it (else `pread`).
    pub prefer_uring: bool,
    /// Read sizes and depth for descriptor jobs.
    pub reader: ReaderConfig,
    /// The MD5 kernels: the lane backend (which must be available on this
    /// CPU), its shapes and costs, and the single-stream kernel, which
    /// [`HasherPool::start`] installs process-wide ([`Tuning::install`]).
    pub md5: Tuning,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            hashers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            pin: true,
            max_streams: 1024,
            stream_budget_bytes: 2 << 20,
            stream_budget_chunks: 32,
            inline_max_bytes: 16 * 1024,
            file_queue_len: 4096,
            prefer_uring: !cfg!(feature = "no_uring"),
            reader: ReaderConfig::default(),
            md5: Tuning::fixed(Platform::detect()),
        }
    }
}

/// The bytes a pool's hashers have hashed (see
/// [`HasherPool::bytes_hashed`]): its counters, shared; reading them costs
/// one relaxed load per hasher.
#[derive(Clone)]
pub struct BytesHashed(Vec<Arc<Counters>>);

impl BytesHashed {
    /// Bytes hashed so far, over every hasher.
    pub fn get(&self) -> u64 {
        self.0.iter().map(|c| c.bytes.load(Ordering::Relaxed)).sum()
    }
}

/// Live counters of one hasher, shared with its thread.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Set when the hasher thread dies (a panic); placement then skips it.
    dead: AtomicBool,
    jobs_done: AtomicU64,
    jobs_failed: AtomicU64,
    bytes: AtomicU64,
    active: AtomicU64,
    reads_in_flight: AtomicU64,
    kernel_calls: AtomicU64,
    lane_blocks: AtomicU64,
    lane_slots: AtomicU64,
}

/// A point-in-time view of one hasher, for `/stats`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HasherSnapshot {
    pub index: usize,
    /// False once the thread died (a panic); its jobs ended as
    /// [`JobError::Lost`] and it takes no new ones.
    pub alive: bool,
    /// The CPU it is pinned to, if pinning succeeded.
    pub cpu: Option<usize>,
    pub jobs_done: u64,
    pub jobs_failed: u64,
    pub bytes: u64,
    pub active_jobs: u64,
    pub reads_in_flight: u64,
    /// `io_uring` or `pread`.
    pub reader: &'static str,
    /// Multi-lane MD5 kernel calls, and the lane blocks they hashed out of
    /// the lane slots they had: `lane_blocks / lane_slots` is occupancy.
    pub kernel_calls: u64,
    pub lane_blocks: u64,
    pub lane_slots: u64,
}

struct Hasher {
    tx: Sender<Msg>,
    counters: Arc<Counters>,
    cpu: Option<usize>,
    /// Follows the reader on its thread: it may switch to pread mid-run.
    reader: SharedReaderKind,
    /// Taken by the first [`HasherPool::shutdown`].
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

/// Owns the hasher threads. Dropping it without [`HasherPool::shutdown`]
/// still stops and joins them.
pub struct HasherPool {
    hashers: Vec<Hasher>,
    files: Sender<FileJob>,
    /// Why io_uring is not in use, if it is not.
    uring_fallback: Option<String>,
    next_key: AtomicU64,
    next_hasher: AtomicUsize,
    /// Streams admitted and not yet ended, against `config.max_streams`.
    open_streams: Arc<AtomicUsize>,
    config: PoolConfig,
}

impl HasherPool {
    pub fn start(config: PoolConfig) -> io::Result<HasherPool> {
        let platform = config.md5.platform();
        if !platform.is_available() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("md5 backend {platform} is not available on this CPU"),
            ));
        }
        config.md5.install();
        let n = config.hashers.max(1);
        let cpus = if config.pin {
            pin::allowed_cpus().unwrap_or_default()
        } else {
            Vec::new()
        };
        // A stream uses at most its chunk budget plus Open and End/Abort.
        let capacity = config.max_streams.max(1) * (config.stream_budget_chunks + 2) + 64;
        let (files_tx, files_rx) = crossbeam_channel::bounded(config.file_queue_len.max(1));
        let mut hashers = Vec::with_capacity(n);
        let mut uring_fallback = None;
        for index in 0..n {
            let (tx, rx) = crossbeam_channel::bounded(capacity);
            let counters = Arc::new(Counters::default());
            let cpu = (!cpus.is_empty()).then(|| cpus[index % cpus.len()]);
            // The reader is made here so its kind is known before any job;
            // only the thread it moves to uses it.
            let reader = FileReader::new(config.prefer_uring, config.reader);
            let kind = reader.shared_kind();
            if let Some(reason) = reader.fallback_reason() {
                uring_fallback.get_or_insert_with(|| reason.to_string());
            }
            let worker = Worker::new(rx, files_rx.clone(), reader, counters.clone(), config.md5);
            let thread = std::thread::Builder::new()
                .name(format!("hasher-{index}"))
                .spawn(move || {
                    if let Some(cpu) = cpu {
                        // Pinning is an optimisation; a container may forbid it.
                        let _ = pin::pin_current_thread(cpu);
                    }
                    worker.run();
                })?;
            hashers.push(Hasher {
                tx,
                counters,
                cpu,
                reader: kind,
                thread: std::sync::Mutex::new(Some(thread)),
            });
        }
        Ok(HasherPool {
            hashers,
            files: files_tx,
            uring_fallback,
            next_key: AtomicU64::new(1),
            next_hasher: AtomicUsize::new(0),
            open_streams: Arc::default(),
            config,
        })
    }

    /// The MD5 lane backend in use.
    pub fn md5_platform(&self) -> Platform {
        self.config.md5.platform()
    }

    /// The MD5 kernels in use.
    pub fn md5_tuning(&self) -> &Tuning {
        &self.config.md5
    }

    /// MD5 streams one hasher hashes side by side: 1 where the backend never
    /// uses lanes (the portable one is slower in lanes than one by one).
    pub fn md5_lanes(&self) -> usize {
        let md5 = &self.config.md5;
        if md5.min_lanes() <= md5.max_lanes() {
            md5.max_lanes()
        } else {
            1
        }
    }

    pub fn hashers(&self) -> usize {
        self.hashers.len()
    }

    /// The admission bound, [`PoolConfig::max_streams`].
    pub fn max_streams(&self) -> usize {
        self.config.max_streams.max(1)
    }

    /// Opens a job whose bytes the caller pushes chunk by chunk, as
    /// [`HasherPool::try_open_stream`] does; a refused job ends at once
    /// through `done` (with [`JobError::Busy`] or [`JobError::ShuttingDown`])
    /// and the returned job refuses data.
    pub fn open_stream(&self, algo: impl Into<Algorithms>, done: Completion) -> StreamJob {
        let algo = algo.into();
        let (slot, index) = match self.admit(algo) {
            Ok(admitted) => admitted,
            Err(e) => {
                done(Err(e));
                return StreamJob::refused(&self.hashers[0]);
            }
        };
        self.open_admitted(algo, Finisher::new(done), slot, index)
    }

    /// Opens a job whose bytes the caller pushes chunk by chunk, or refuses
    /// it at once: [`JobError::Busy`] when [`PoolConfig::max_streams`]
    /// streams are open, [`JobError::ShuttingDown`] when no hasher is alive.
    /// A refused job never started: `done` is dropped without being called.
    ///
    /// An MD5 job is placed on the busiest hasher with a free SIMD lane, any
    /// other job (and MD5 once every lane is taken) on the least busy one;
    /// it reaches that hasher only once it outgrows its head (see
    /// [`StreamJob`]).
    pub fn try_open_stream(
        &self,
        algo: impl Into<Algorithms>,
        done: Completion,
    ) -> Result<StreamJob, JobError> {
        let algo = algo.into();
        let (slot, index) = self.admit(algo)?;
        Ok(self.open_admitted(algo, Finisher::new(done), slot, index))
    }

    /// Takes a stream slot and picks the stream's hasher.
    fn admit(&self, algo: Algorithms) -> Result<(StreamSlot, usize), JobError> {
        let max = self.config.max_streams.max(1);
        if self.open_streams.fetch_add(1, Ordering::AcqRel) >= max {
            self.open_streams.fetch_sub(1, Ordering::AcqRel);
            return Err(JobError::Busy);
        }
        let slot = StreamSlot(self.open_streams.clone());
        let index = self.place(algo).ok_or(JobError::ShuttingDown)?;
        Ok((slot, index))
    }

    /// The hasher a new stream goes to, among the live ones.
    fn place(&self, algo: Algorithms) -> Option<usize> {
        let start = self.next_hasher.fetch_add(1, Ordering::Relaxed);
        let n = self.hashers.len();
        let active = |i: usize| self.hashers[i].counters.active.load(Ordering::Relaxed);
        let alive = |i: &usize| !self.hashers[*i].counters.dead.load(Ordering::Relaxed);
        let order = (0..n).map(|i| (start + i) % n).filter(alive);
        let lanes = self.md5_lanes();
        // MD5 streams go to the busiest hasher that still has a free SIMD
        // lane: streams side by side in lanes cost a fraction of the CPU of
        // the same streams spread one per hasher, and that CPU is what the
        // network stack needs. 256 MiB uploads over wrk on 2 cores, 2 at a
        // time: spread 0.88 GB/s, packed 1.12 GB/s. Other streams, and MD5
        // once every lane is taken, go to the least busy hasher.
        let packed = (algo.contains(Algorithm::Md5) && lanes > 1)
            .then(|| {
                order
                    .clone()
                    .filter(|&i| active(i) < lanes as u64)
                    .max_by_key(|&i| active(i))
            })
            .flatten();
        packed.or_else(|| order.min_by_key(|&i| active(i)))
    }

    fn open_admitted(
        &self,
        algo: Algorithms,
        done: Finisher,
        slot: StreamSlot,
        index: usize,
    ) -> StreamJob {
        let hasher = &self.hashers[index];
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let credits = Arc::new(Credits::new(
            self.config.stream_budget_bytes,
            self.config.stream_budget_chunks,
        ));
        // Counted as active from now, head or not, so that streams opened
        // together see each other when they are placed.
        let done = done
            .on(hasher.counters.clone())
            .stream(slot, credits.clone());
        // The head may hold no more than the budget, so that opening the job
        // with it can always spend its credit.
        let head_max_bytes = self
            .config
            .inline_max_bytes
            .min(self.config.stream_budget_bytes);
        let mut job = StreamJob {
            key,
            tx: hasher.tx.clone(),
            credits,
            counters: hasher.counters.clone(),
            head: Some(Head {
                algo,
                done: std::sync::Mutex::new(done),
                chunks: Vec::new(),
                len: 0,
                max_bytes: head_max_bytes,
                max_chunks: self.config.stream_budget_chunks,
            }),
            ended: false,
        };
        if head_max_bytes == 0 {
            // Inline hashing is off: open at once. A failure has already
            // completed the job, and `ended` makes its sends fail.
            let _ = job.open();
        }
        job
    }

    /// Why files are read with `pread` rather than io_uring, if they are.
    pub fn uring_fallback(&self) -> Option<&str> {
        self.uring_fallback.as_deref()
    }

    /// Queues a descriptor job: a hasher reads `file` from offset 0 itself.
    /// Only regular files are accepted (a pipe could stall a hasher); others,
    /// and a full queue, end the job at once through `done`.
    pub fn submit_file(&self, algo: impl Into<Algorithms>, file: std::fs::File, done: Completion) {
        self.submit_file_counted(algo, file, None, done)
    }

    /// As [`HasherPool::submit_file`]; while the job runs, `hashed` (if
    /// given) holds the bytes of the file hashed so far, for a client that
    /// shows one file's progress (the socket's PROGRESS frames). Stored
    /// after each chunk the hasher takes (a read of up to
    /// [`ReaderConfig::read_len`]), so it lags the truth by at most one
    /// chunk and is the file's length when the job succeeds.
    pub fn submit_file_counted(
        &self,
        algo: impl Into<Algorithms>,
        file: std::fs::File,
        hashed: Option<Arc<AtomicU64>>,
        done: Completion,
    ) {
        let algo = algo.into();
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        match self.files.try_send(FileJob {
            key,
            algo,
            file,
            hashed,
            done: Finisher::new(done),
        }) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => job.done.complete(Err(JobError::Busy)),
            Err(TrySendError::Disconnected(job)) => job.done.complete(Err(JobError::ShuttingDown)),
        }
    }

    /// A handle that reads the bytes hashed so far, over every hasher,
    /// from any thread (a progress display beside the pool's user).
    pub fn bytes_hashed(&self) -> BytesHashed {
        BytesHashed(self.hashers.iter().map(|h| h.counters.clone()).collect())
    }

    /// Bytes hashed plus jobs ended, over every hasher: it grows whenever
    /// any hasher gets anything done, so a caller sampling it can tell a
    /// working pool (however long its jobs) from a stuck one.
    pub fn progress(&self) -> u64 {
        self.hashers
            .iter()
            .map(|h| {
                h.counters.bytes.load(Ordering::Relaxed)
                    + h.counters.jobs_done.load(Ordering::Relaxed)
                    + h.counters.jobs_failed.load(Ordering::Relaxed)
            })
            .sum()
    }

    pub fn stats(&self) -> Vec<HasherSnapshot> {
        self.hashers
            .iter()
            .enumerate()
            .map(|(index, h)| HasherSnapshot {
                index,
                alive: !h.counters.dead.load(Ordering::Relaxed),
                cpu: h.cpu,
                jobs_done: h.counters.jobs_done.load(Ordering::Relaxed),
                jobs_failed: h.counters.jobs_failed.load(Ordering::Relaxed),
                bytes: h.counters.bytes.load(Ordering::Relaxed),
                active_jobs: h.counters.active.load(Ordering::Relaxed),
                reads_in_flight: h.counters.reads_in_flight.load(Ordering::Relaxed),
                reader: h.reader.get().name(),
                kernel_calls: h.counters.kernel_calls.load(Ordering::Relaxed),
                lane_blocks: h.counters.lane_blocks.load(Ordering::Relaxed),
                lane_slots: h.counters.lane_slots.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Test-only fault injection: hasher `index` panics, as a bug would make
    /// it.
    #[cfg(test)]
    pub(crate) fn inject_panic(&self, index: usize) {
        let _ = self.hashers[index].tx.send(Msg::Panic);
        // Wait for the thread to be gone, so the test sees its effects.
        if let Some(t) = self.hashers[index]
            .thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = t.join();
        }
    }

    /// Stops the hashers: each finishes what is already queued, fails the
    /// streams still open with [`JobError::ShuttingDown`], and exits. Joins
    /// them. Takes `&self` so that a daemon can stop the pool while a
    /// connection that outlived its grace period still holds a handle; a
    /// second call does nothing.
    pub fn shutdown(&self) {
        let threads: Vec<JoinHandle<()>> = self
            .hashers
            .iter()
            .filter_map(|h| h.thread.lock().unwrap_or_else(|p| p.into_inner()).take())
            .collect();
        if threads.is_empty() {
            return;
        }
        for h in &self.hashers {
            // Blocking send: shutdown must not be lost to a momentarily full queue.
            let _ = h.tx.send(Msg::Shutdown);
        }
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for HasherPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The producer's end of one streamed job. Push chunks, then [`finish`].
/// Dropping it unfinished aborts the job, so a vanished client can never
/// leave a job open.
///
/// The first chunks stay with the producer (the job's head) until they pass
/// [`PoolConfig::inline_max_bytes`]; only then is the job opened on its
/// hasher. A job that ends within that size is hashed by [`finish`] on the
/// caller's thread, and its completion runs there: for a 4 KiB upload the
/// hand-off (open, data and end messages, each of which may wake the hasher
/// thread, then the completion on that thread) costs more than its ~5 µs of
/// MD5. Small jobs do not fill SIMD lanes either: each is one chunk, ended at
/// once.
///
/// [`finish`]: StreamJob::finish
pub struct StreamJob {
    key: u64,
    tx: Sender<Msg>,
    credits: Arc<Credits>,
    counters: Arc<Counters>,
    /// Until the job is opened on its hasher.
    head: Option<Head>,
    ended: bool,
}

/// A job not yet opened on its hasher: what opening it takes, and its data
/// so far.
struct Head {
    algo: Algorithms,
    /// In a mutex only to make the job `Sync` (a completion need not be);
    /// it is only ever taken out, by value.
    done: std::sync::Mutex<Finisher>,
    chunks: Vec<Bytes>,
    len: usize,
    max_bytes: usize,
    max_chunks: usize,
}

impl StreamJob {
    /// Ready when one more chunk may be sent without exceeding the budget.
    pub fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Result<(), JobClosed>> {
        if self.ended {
            return Poll::Ready(Err(JobClosed));
        }
        self.credits.poll_acquire(cx)
    }

    /// Sends one chunk, waiting (asynchronously) for credit first.
    pub async fn send(&mut self, chunk: Bytes) -> Result<(), JobClosed> {
        if chunk.is_empty() {
            return Ok(());
        }
        if let Some(head) = &mut self.head {
            if head.len + chunk.len() <= head.max_bytes && head.chunks.len() < head.max_chunks {
                head.len += chunk.len();
                head.chunks.push(chunk);
                return Ok(());
            }
            self.open()?;
        }
        loop {
            poll_fn(|cx| self.poll_ready(cx)).await?;
            if self.credits.try_spend(chunk.len())? {
                break;
            }
        }
        self.deliver(Msg::Data {
            key: self.key,
            chunk,
        })
    }

    /// Declares the data complete; the completion will carry the digest.
    pub fn finish(mut self) -> Result<(), JobClosed> {
        if self.ended {
            // Refused, or failed on its way to the hasher: already completed.
            return Err(JobClosed);
        }
        self.ended = true;
        if let Some(head) = self.head.take() {
            let mut state = HashState::new(head.algo);
            for chunk in &head.chunks {
                state.update_from(chunk, Some(chunk));
            }
            let hashes = state.finalize();
            self.counters
                .bytes
                .fetch_add(head.len as u64, Ordering::Relaxed);
            take(head.done).complete(Ok(Digest {
                hashes,
                len: head.len as u64,
            }));
            return Ok(());
        }
        self.deliver(Msg::End { key: self.key })
    }

    /// Ends the job as failed with `reason` (shown to clients).
    pub fn abort(mut self, reason: impl Into<String>) {
        if self.ended {
            return;
        }
        self.ended = true;
        if let Some(head) = self.head.take() {
            take(head.done).complete(Err(JobError::Aborted(reason.into())));
            return;
        }
        let _ = self.deliver(Msg::Abort {
            key: self.key,
            reason: reason.into(),
        });
    }

    /// A job refused at admission, whose completion has already run: it
    /// refuses data and ends without another completion.
    fn refused(hasher: &Hasher) -> StreamJob {
        StreamJob {
            key: 0,
            tx: hasher.tx.clone(),
            credits: Arc::new(Credits::new(0, 0)),
            counters: hasher.counters.clone(),
            head: None,
            ended: true,
        }
    }

    /// Hands the job and its head to the hasher. The head is within the
    /// budget (see `open_stream`), so its credit is there to spend.
    fn open(&mut self) -> Result<(), JobClosed> {
        let Some(head) = self.head.take() else {
            return Ok(());
        };
        let open = Msg::Open {
            key: self.key,
            algo: head.algo,
            credits: self.credits.clone(),
            done: take(head.done),
        };
        if let Err(e) = self.tx.try_send(open) {
            self.ended = true;
            if let TrySendError::Full(Msg::Open { done, .. })
            | TrySendError::Disconnected(Msg::Open { done, .. }) = e
            {
                done.complete(Err(JobError::ShuttingDown));
            }
            return Err(JobClosed);
        }
        for chunk in head.chunks {
            // Within the budget this always spends; were it refused, the
            // chunk still fits the channel (sized for the budget plus two).
            self.credits.try_spend(chunk.len())?;
            self.deliver(Msg::Data {
                key: self.key,
                chunk,
            })?;
        }
        Ok(())
    }

    fn deliver(&mut self, msg: Msg) -> Result<(), JobClosed> {
        // Cannot be Full while credits are respected (see the module docs);
        // if it were, failing the upload beats blocking the runtime.
        self.tx.try_send(msg).map_err(|_| {
            self.ended = true;
            JobClosed
        })
    }
}

impl Drop for StreamJob {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        const REASON: &str = "upload ended before all its data arrived";
        if let Some(head) = self.head.take() {
            take(head.done).complete(Err(JobError::Aborted(REASON.into())));
        } else {
            let _ = self.tx.try_send(Msg::Abort {
                key: self.key,
                reason: REASON.into(),
            });
        }
    }
}

/// A head's finisher, out of its mutex.
fn take(done: std::sync::Mutex<Finisher>) -> Finisher {
    done.into_inner().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests;
