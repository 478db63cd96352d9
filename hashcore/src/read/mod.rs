//! File readers for descriptor jobs: each hasher thread owns one
//! [`FileReader`] that reads many files at once, with several reads in flight
//! per file, so that reading and hashing overlap.
//!
//! Layout:
//! - this file: the one type the pool uses, and everything both engines share:
//!   per-file state, ordering, end of file, flow control and the buffer pool.
//! - `uring.rs`: the io_uring engine, with all of this module's `unsafe`
//!   outside tests.
//! - `pread.rs`: the fallback engine, synchronous `pread(2)` inside `poll`.
//!
//! How a file is read: it is cut into segments of `read_len` bytes. Each
//! segment is read into one pooled buffer, by one read that is continued in the
//! same buffer while it comes back short, until the buffer is full or a read
//! returns 0 bytes (end of file). Segments may complete out of order; they are
//! delivered in order, so every `Data` but a file's last has exactly
//! `read_len` bytes. The size seen at [`FileReader::add`] only limits how far
//! ahead reads are issued; the end of a file is always a 0-byte read, so a file
//! that grows or shrinks while it is read still ends in one `Eof` or `Failed`.
//!
//! Flow control: a file holds at most `reads_per_file` buffers, counting reads
//! in flight, segments completed while an earlier one is still in flight, and
//! delivered buffers not yet given back with [`FileReader::recycle`].
//! Delivered buffers are recognised by their address when they come back.
//!
//! The engines only execute reads (`ReadOp` in, `Completed` out), so the
//! logic above is shared, and tested through both.

mod pread;
mod uring;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::fs::{File, FileType};
use std::io;
use std::mem;
use std::os::unix::fs::FileTypeExt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use pread::PreadEngine;
use uring::UringEngine;

/// Which engine a [`FileReader`] runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReaderKind {
    Uring,
    Pread,
}

impl ReaderKind {
    /// The name used in logs and statistics.
    pub fn name(self) -> &'static str {
        match self {
            ReaderKind::Uring => "io_uring",
            ReaderKind::Pread => "pread",
        }
    }
}

/// A [`FileReader`]'s current [`ReaderKind`], readable from other threads
/// while the reader runs on its own. The kind can change after start-up:
/// a ring that fails mid-run is replaced by pread, and `/stats` must then say
/// pread, not what the reader started with.
#[derive(Clone, Debug)]
pub struct SharedReaderKind(Arc<AtomicU8>);

impl SharedReaderKind {
    pub(crate) fn new(kind: ReaderKind) -> SharedReaderKind {
        SharedReaderKind(Arc::new(AtomicU8::new(kind as u8)))
    }

    fn set(&self, kind: ReaderKind) {
        // Relaxed: the value is a report; nothing else is published with it.
        self.0.store(kind as u8, Ordering::Relaxed);
    }

    /// The engine the reader runs on now.
    pub fn get(&self) -> ReaderKind {
        if self.0.load(Ordering::Relaxed) == ReaderKind::Uring as u8 {
            ReaderKind::Uring
        } else {
            ReaderKind::Pread
        }
    }
}

/// Sizes of a [`FileReader`]. Its memory is bounded by
/// `read_len * reads_per_file * max_files` (8 MiB with the defaults), plus the
/// buffers of cancelled files' reads until the kernel finishes them.
#[derive(Clone, Copy, Debug)]
pub struct ReaderConfig {
    /// Bytes per read, and per delivered chunk (except a file's last).
    pub read_len: usize,
    /// Buffers one file may hold: in flight, or delivered and not yet recycled.
    pub reads_per_file: usize,
    /// Files read at once; [`FileReader::add`] refuses more.
    pub max_files: usize,
    /// Tests only: when the flag is set, the next reap on io_uring fails as
    /// a failed `io_uring_enter` would (the flag is cleared), so tests can
    /// switch a running reader to pread without depending on timing. A
    /// `&'static` keeps the config `Copy`; each test uses its own static.
    #[cfg(test)]
    pub(crate) fail_uring: Option<&'static std::sync::atomic::AtomicBool>,
}

/// The largest accepted `read_len`: one read must fit the `u32` length of an
/// io_uring read, and Linux caps a single read at just under 2 GiB anyway.
pub const MAX_READ_LEN: usize = 1 << 30;

impl Default for ReaderConfig {
    /// 64 KiB reads, 4 per file, 32 files: 8 MiB of buffers per reader.
    /// Measured with `read::tests::measure_throughput` (one thread, 1000
    /// page-cached 1 MiB files, best of 5, on a 2-vCPU EPYC VM shared with
    /// other builds, so ±30%): io_uring matches pread up to 128 KiB reads
    /// (12-14 GiB/s), then halves (256 KiB: 6.6 vs 13.0; 1 MiB: 4.9 vs 9.8);
    /// both lose a third once the buffers outgrow the caches (16 MiB: ~10,
    /// 32 MiB: ~9). On evicted files io_uring reads 1.4-1.5 GiB/s against
    /// pread's 0.8-1.2, and 4 reads per file do no worse than 2.
    ///
    /// Through the whole pool (2 hashers, 1000 page-cached 1 MiB files, CPU
    /// ms per run, medians of 5, two interleaved rounds, same VM under load):
    /// 128 KiB x 4 x 16 files 277/287, 64 KiB x 4 x 32 261/271, 128 KiB x 2 x
    /// 32 264/265, 64 KiB x 2 x 48 259/256, 64 KiB x 4 x 48 297/277. 32 files
    /// fill 32 AVX-512 lanes (11.3 GB/s against 8.2 for 16); beyond that the
    /// lanes gain little and the tail (files left on one hasher) grows.
    /// 64 KiB stays under glibc's mmap threshold, so buffers come from the
    /// heap, not page-aligned to each other (the reader staggers them by
    /// 9 cache lines, for the L1 sets the lanes map to).
    ///
    /// End to end, with these sizes and the worker holding back ill-filled
    /// lane rounds (`pool::worker`): hyperfine, 15 runs, 1000 page-cached
    /// 1 MiB files, load average ~1.8, medians before -> after: `hashd sum`
    /// through the daemon 207 -> 151 ms (daemon CPU per run 393 -> 271 ms),
    /// `--no-daemon` 209 -> 147 ms; `xargs -P2 md5sum` 828 ms in the same run,
    /// so 5.5x (was 4.0x).
    ///
    /// Where the time goes (perf, `hashd sum --no-daemon` over those files):
    /// the kernel's copy from the page cache (`_copy_to_iter` plus
    /// `filemap_get_read_batch`) takes as much CPU as MD5 itself, about
    /// 165 ms per GiB here whatever the buffer size or reuse (16 KiB-1 MiB
    /// reads into 1-64 buffers, pread, one thread: 154-195 ms). mmap instead
    /// (prototype: map, hash from the mapping in 32-48 lanes, unmap) cost
    /// more CPU, 313 ms per run against 290 for the pool: page faults
    /// (`next_uptodate_folio`), unmapping, and lanes stalled on DRAM instead
    /// of reading a just-copied buffer; and a file truncated under a mapping
    /// raises SIGBUS. So files are read, not mapped.
    fn default() -> Self {
        ReaderConfig {
            read_len: 64 * 1024,
            reads_per_file: 4,
            max_files: 32,
            #[cfg(test)]
            fail_uring: None,
        }
    }
}

/// Spare capacity given to each new buffer so that consecutive heap
/// allocations start 9 cache lines (plus the allocator's header) apart, not
/// on the same offset in their pages: MD5 lanes read all their buffers at the
/// same offset at once, and page-aligned buffers share L1 sets (measured 12%
/// slower lanes in `benches/benches/md5.rs`). Best effort: it depends on the
/// allocator placing the buffers side by side.
const STAGGER_LEN: usize = 9 * 64;

impl ReaderConfig {
    /// The same sizes, each clamped to what the reader can work with.
    fn normalized(self) -> ReaderConfig {
        ReaderConfig {
            read_len: self.read_len.clamp(1, MAX_READ_LEN),
            reads_per_file: self.reads_per_file.max(1),
            max_files: self.max_files.max(1),
            #[cfg(test)]
            fail_uring: self.fail_uring,
        }
    }
}

/// What [`FileReader::poll`] reports. Per token: `Data` chunks in file order,
/// then exactly one `Eof` or `Failed`, then nothing.
#[derive(Debug)]
pub enum ReadEvent {
    /// The next bytes of the file; `data.len()` is the number read (never 0).
    /// Give `data` back with [`FileReader::recycle`] once hashed.
    Data { token: u64, data: Vec<u8> },
    /// The end of the file, `len` bytes after its start.
    Eof { token: u64, len: u64 },
    /// A read failed; the file is dropped.
    Failed { token: u64, error: io::Error },
}

/// Why [`FileReader::add`] refused a file.
#[derive(Debug)]
pub enum AddError {
    /// Only regular files are read here: pipes and sockets could block a
    /// hasher, so clients stream them instead.
    NotRegularFile {
        token: u64,
        file_type: &'static str,
        file: File,
    },
    /// The reader already holds `max_files` files.
    Full {
        token: u64,
        max_files: usize,
        file: File,
    },
    /// A file with this token is already being read.
    DuplicateToken { token: u64, file: File },
    /// `fstat` failed.
    Io { token: u64, source: io::Error },
}

impl AddError {
    /// The refused file, when the error carries it.
    pub fn into_file(self) -> Option<File> {
        match self {
            AddError::NotRegularFile { file, .. }
            | AddError::Full { file, .. }
            | AddError::DuplicateToken { file, .. } => Some(file),
            AddError::Io { .. } => None,
        }
    }
}

impl fmt::Display for AddError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddError::NotRegularFile {
                token, file_type, ..
            } => write!(
                f,
                "file {token} is a {file_type}, not a regular file: stream it instead"
            ),
            AddError::Full {
                token, max_files, ..
            } => write!(
                f,
                "reader is full: {max_files} of {max_files} files active, file {token} refused"
            ),
            AddError::DuplicateToken { token, .. } => {
                write!(f, "file {token} is already being read")
            }
            AddError::Io { token, .. } => write!(f, "cannot stat file {token}"),
        }
    }
}

impl std::error::Error for AddError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AddError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// One read for an engine to execute: `buf[filled..]` from `file` at
/// `offset + filled`. The engine owns it until it hands it back, completed.
#[derive(Debug)]
struct ReadOp {
    /// The file's token, to find its state when the read completes.
    token: u64,
    /// The file's `FileState::id`: a cancelled token may be added again, and
    /// the new file must not receive the old one's reads.
    file_id: u64,
    /// Keeps the descriptor open while the read is in flight, even after the
    /// file was cancelled, so its number cannot be reused under the read.
    file: Arc<File>,
    /// Start of the segment in the file.
    offset: u64,
    /// Bytes of the segment already read into `buf`.
    filled: usize,
    /// `read_len` bytes, always initialised (see [`Buffers::put`]).
    buf: Vec<u8>,
}

/// A read an engine finished: the bytes it read, or why it failed.
#[derive(Debug)]
struct Completed {
    op: ReadOp,
    result: io::Result<usize>,
}

/// The engine a [`FileReader`] runs on.
enum Engine {
    /// Boxed: the ring's bookkeeping is ten times the size of pread's.
    Uring(Box<UringEngine>),
    Pread(PreadEngine),
}

impl Engine {
    fn push(&mut self, op: ReadOp) {
        match self {
            Engine::Uring(e) => e.push(op),
            Engine::Pread(e) => e.push(op),
        }
    }

    /// Starts the pushed reads without waiting for any.
    fn submit(&mut self) {
        match self {
            Engine::Uring(e) => e.submit(),
            Engine::Pread(_) => {}
        }
    }

    /// Moves finished reads to `done`; with `wait`, at least one if any is
    /// in flight. An error means the engine can no longer run.
    fn reap(&mut self, wait: bool, done: &mut Vec<Completed>) -> io::Result<()> {
        match self {
            Engine::Uring(e) => e.reap(wait, done),
            Engine::Pread(e) => {
                e.reap(done);
                Ok(())
            }
        }
    }

    fn in_flight(&self) -> usize {
        match self {
            Engine::Uring(e) => e.in_flight(),
            Engine::Pread(e) => e.in_flight(),
        }
    }
}

/// Reads many regular files at once, delivering their bytes in order. See the
/// [module documentation](self).
pub struct FileReader {
    /// Sizes, normalised.
    cfg: ReaderConfig,
    /// Executes the reads.
    engine: Engine,
    /// Why the engine is not io_uring, for one start-up log line.
    fallback_reason: Option<String>,
    /// Files being read, by token.
    files: HashMap<u64, FileState>,
    /// Free buffers, and who holds the delivered ones.
    buffers: Buffers,
    /// The next `FileState::id`.
    next_file_id: u64,
    /// Scratch space for [`Engine::reap`], kept to avoid an allocation per poll.
    done: Vec<Completed>,
    /// An io_uring engine that failed while running. Reads may still be in
    /// the kernel's hands, so its buffers must outlive it: it is dropped with
    /// the reader, and its `Drop` drains or leaks them.
    retired: Option<Box<UringEngine>>,
    /// The engine's kind, for statistics read on other threads.
    shared_kind: SharedReaderKind,
}

impl FileReader {
    /// Tries io_uring when `prefer_uring`, else or on failure pread; never
    /// fails. The `no_uring` feature forces pread.
    pub fn new(prefer_uring: bool, cfg: ReaderConfig) -> FileReader {
        FileReader::with_ring_setup(prefer_uring, cfg, uring::setup_ring)
    }

    /// [`FileReader::new`] with the `io_uring_setup` call replaced, so tests
    /// can make it fail as it does in a sandbox (`EPERM`) or on an old kernel
    /// (`ENOSYS`).
    fn with_ring_setup(
        prefer_uring: bool,
        cfg: ReaderConfig,
        setup: impl FnOnce(u32) -> io::Result<io_uring::IoUring>,
    ) -> FileReader {
        let cfg = cfg.normalized();
        let uring = if cfg!(feature = "no_uring") {
            Err("io_uring disabled by the no_uring feature".to_owned())
        } else if !prefer_uring {
            Err("io_uring disabled by configuration".to_owned())
        } else {
            UringEngine::new(&cfg, setup)
        };
        let (engine, fallback_reason) = match uring {
            Ok(engine) => (Engine::Uring(Box::new(engine)), None),
            Err(reason) => (Engine::Pread(PreadEngine::default()), Some(reason)),
        };
        let shared_kind = SharedReaderKind::new(match engine {
            Engine::Uring(_) => ReaderKind::Uring,
            Engine::Pread(_) => ReaderKind::Pread,
        });
        FileReader {
            cfg,
            engine,
            shared_kind,
            fallback_reason,
            files: HashMap::new(),
            buffers: Buffers::new(&cfg),
            next_file_id: 0,
            done: Vec::new(),
            retired: None,
        }
    }

    /// The engine in use.
    pub fn kind(&self) -> ReaderKind {
        match self.engine {
            Engine::Uring(_) => ReaderKind::Uring,
            Engine::Pread(_) => ReaderKind::Pread,
        }
    }

    /// A handle that follows [`FileReader::kind`] from any thread, also after
    /// the reader has switched to pread mid-run.
    pub fn shared_kind(&self) -> SharedReaderKind {
        self.shared_kind.clone()
    }

    /// Why io_uring is not in use (`None` when it is).
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback_reason.as_deref()
    }

    /// The sizes in use, after clamping.
    pub fn config(&self) -> ReaderConfig {
        self.cfg
    }

    /// Starts reading `file` from offset 0 (its current position is
    /// irrelevant); its events carry `token`.
    pub fn add(&mut self, token: u64, file: File) -> Result<(), AddError> {
        if self.files.contains_key(&token) {
            return Err(AddError::DuplicateToken { token, file });
        }
        if self.files.len() >= self.cfg.max_files {
            return Err(AddError::Full {
                token,
                max_files: self.cfg.max_files,
                file,
            });
        }
        let meta = match file.metadata() {
            Ok(meta) => meta,
            Err(source) => return Err(AddError::Io { token, source }),
        };
        if !meta.file_type().is_file() {
            return Err(AddError::NotRegularFile {
                token,
                file_type: describe(meta.file_type()),
                file,
            });
        }
        let id = self.next_file_id;
        self.next_file_id += 1;
        let mut state = FileState {
            token,
            id,
            file: Arc::new(file),
            next_offset: 0,
            issue_limit: meta.len(),
            first_offset: 0,
            segments: VecDeque::new(),
            lent: 0,
            at_end: false,
        };
        state.issue(&self.cfg, &mut self.buffers, &mut self.engine);
        self.files.insert(token, state);
        self.engine.submit();
        Ok(())
    }

    /// Stops reading the file with `token`: no more events for it. Its reads
    /// in flight finish in the background, their buffers return to the pool.
    pub fn cancel(&mut self, token: u64) {
        if let Some(state) = self.files.remove(&token) {
            state.release(&mut self.buffers);
        }
    }

    /// Files added and not yet ended or cancelled.
    pub fn active_files(&self) -> usize {
        self.files.len()
    }

    /// Reads issued and not yet completed, cancelled files' included.
    pub fn reads_in_flight(&self) -> usize {
        self.engine.in_flight()
    }

    /// Whether [`FileReader::poll`] can make progress without a
    /// [`FileReader::recycle`]: reads are in flight or can be issued. False
    /// when no file is active, or every active file waits for its delivered
    /// buffers to come back.
    pub fn has_work(&self) -> bool {
        self.engine.in_flight() > 0 || self.files.values().any(|f| f.can_issue(&self.cfg))
    }

    /// Appends ready events to `out`. With `wait`, blocks until at least one
    /// is ready (if [`FileReader::has_work`]); without, never waits for
    /// io_uring (the pread engine reads synchronously either way).
    pub fn poll(&mut self, wait: bool, out: &mut Vec<ReadEvent>) {
        let start = out.len();
        loop {
            for state in self.files.values_mut() {
                state.issue(&self.cfg, &mut self.buffers, &mut self.engine);
            }
            let block = wait && out.len() == start;
            let mut done = mem::take(&mut self.done);
            let result = self.engine.reap(block, &mut done);
            #[cfg(test)]
            let result = match self.cfg.fail_uring {
                Some(flag)
                    if matches!(self.engine, Engine::Uring(_))
                        && flag.swap(false, Ordering::SeqCst) =>
                {
                    Err(io::Error::other("failure injected by a test"))
                }
                _ => result,
            };
            for completed in done.drain(..) {
                self.complete(completed, out);
            }
            self.done = done;
            if let Err(error) = result {
                self.engine_failed(&error, out);
            }
            if !wait || out.len() > start || !self.has_work() {
                // Continuations and the reads that follow what was just
                // delivered go to the kernel now, to run while the caller
                // hashes.
                self.engine.submit();
                return;
            }
        }
    }

    /// Gives a delivered buffer back for reuse, and its file the right to
    /// issue another read (at the next `poll`). The buffer is recognised by
    /// its address: a buffer dropped or reallocated instead still counts
    /// against its file's `reads_per_file` until the file ends or is
    /// cancelled, and a file that loses all its buffers that way stalls.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        if let Some((token, id)) = self.buffers.lent.remove(&(buf.as_ptr() as usize)) {
            if let Some(state) = self.files.get_mut(&token).filter(|f| f.id == id) {
                state.lent -= 1;
            }
        }
        self.buffers.put(buf);
    }

    /// Files a finished read with its segment, continues it if it came back
    /// short, and delivers what is now in order.
    fn complete(&mut self, completed: Completed, out: &mut Vec<ReadEvent>) {
        let Completed { mut op, result } = completed;
        let read_len = self.cfg.read_len;
        let Some(state) = self.files.get_mut(&op.token).filter(|f| f.id == op.file_id) else {
            // The file was cancelled or has already ended.
            self.buffers.put(op.buf);
            return;
        };
        let outcome = match result {
            Ok(0) => Ok(true),
            Ok(n) => {
                op.filled = (op.filled + n).min(read_len);
                if op.filled < read_len {
                    // Short, but not the end: continue in the same buffer.
                    self.engine.push(op);
                    return;
                }
                state.issue_limit = state.issue_limit.max(op.offset + read_len as u64);
                Ok(false)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                ) =>
            {
                self.engine.push(op);
                return;
            }
            Err(e) => Err(e),
        };
        if !matches!(outcome, Ok(false)) {
            state.at_end = true;
        }
        let index = ((op.offset - state.first_offset) / read_len as u64) as usize;
        state.segments[index] = Segment::Ready {
            buf: op.buf,
            filled: op.filled,
            outcome,
        };
        if state.deliver(&mut self.buffers, out) {
            if let Some(state) = self.files.remove(&op.token) {
                state.release(&mut self.buffers);
            }
        } else {
            state.issue(&self.cfg, &mut self.buffers, &mut self.engine);
        }
    }

    /// The io_uring engine failed as a whole (an `io_uring_enter` error other
    /// than the retryable ones): fail every file and carry on with pread.
    fn engine_failed(&mut self, error: &io::Error, out: &mut Vec<ReadEvent>) {
        for (token, state) in self.files.drain() {
            out.push(ReadEvent::Failed {
                token,
                error: io::Error::new(error.kind(), format!("io_uring failed: {error}")),
            });
            state.release(&mut self.buffers);
        }
        if let Engine::Uring(dead) =
            mem::replace(&mut self.engine, Engine::Pread(PreadEngine::default()))
        {
            self.retired = Some(dead);
        }
        self.shared_kind.set(ReaderKind::Pread);
        self.fallback_reason = Some(format!("io_uring failed while running: {error}"));
    }

    /// Buffers allocated and not dropped, for tests that check none is lost.
    #[cfg(test)]
    fn buffers_allocated(&self) -> usize {
        self.buffers.allocated
    }

    /// Buffers in the free pool.
    #[cfg(test)]
    fn buffers_free(&self) -> usize {
        self.buffers.free.len()
    }
}

/// A name for a file type, for error messages.
fn describe(file_type: FileType) -> &'static str {
    if file_type.is_dir() {
        "directory"
    } else if file_type.is_fifo() {
        "pipe"
    } else if file_type.is_socket() {
        "socket"
    } else if file_type.is_char_device() {
        "character device"
    } else if file_type.is_block_device() {
        "block device"
    } else if file_type.is_symlink() {
        "symbolic link"
    } else {
        "special file"
    }
}

/// One file being read.
struct FileState {
    /// The caller's name for the file, carried by its events.
    token: u64,
    /// Unique per [`FileReader::add`]: tells this file's reads from those of
    /// an earlier, cancelled file with the same token.
    id: u64,
    /// Shared with the reads in flight (see [`ReadOp::file`]).
    file: Arc<File>,
    /// Start of the next segment to issue.
    next_offset: u64,
    /// Segments starting past this offset are not issued: the file's size at
    /// `add`, raised whenever a segment comes back full (the file has grown).
    /// Saves issuing reads that would all return 0 bytes.
    issue_limit: u64,
    /// Start of `segments[0]`.
    first_offset: u64,
    /// Issued segments not yet delivered, in file order.
    segments: VecDeque<Segment>,
    /// Delivered buffers not yet recycled.
    lent: usize,
    /// A read returned 0 bytes or failed: no segment after it is needed.
    at_end: bool,
}

/// A segment issued and not yet delivered.
enum Segment {
    /// Its read is with the engine, which owns the buffer.
    InFlight,
    /// Read to the end of the segment (`Ok(false)`), to the end of the file
    /// (`Ok(true)`), or failed.
    Ready {
        buf: Vec<u8>,
        filled: usize,
        outcome: io::Result<bool>,
    },
}

impl FileState {
    /// Whether another segment may be issued now.
    fn can_issue(&self, cfg: &ReaderConfig) -> bool {
        !self.at_end
            && self.segments.len() + self.lent < cfg.reads_per_file
            && self.next_offset <= self.issue_limit
    }

    /// Issues segments while the file's buffer budget allows.
    fn issue(&mut self, cfg: &ReaderConfig, buffers: &mut Buffers, engine: &mut Engine) {
        while self.can_issue(cfg) {
            engine.push(ReadOp {
                token: self.token,
                file_id: self.id,
                file: Arc::clone(&self.file),
                offset: self.next_offset,
                filled: 0,
                buf: buffers.take(),
            });
            self.segments.push_back(Segment::InFlight);
            self.next_offset += cfg.read_len as u64;
        }
    }

    /// Delivers the ready segments at the front; true when the file has ended.
    fn deliver(&mut self, buffers: &mut Buffers, out: &mut Vec<ReadEvent>) -> bool {
        while matches!(self.segments.front(), Some(Segment::Ready { .. })) {
            let Some(Segment::Ready {
                mut buf,
                filled,
                outcome,
            }) = self.segments.pop_front()
            else {
                unreachable!("the front segment was just seen ready");
            };
            let offset = self.first_offset;
            self.first_offset += buffers.read_len as u64;
            match outcome {
                Ok(at_eof) => {
                    if filled > 0 {
                        buf.truncate(filled);
                        buffers
                            .lent
                            .insert(buf.as_ptr() as usize, (self.token, self.id));
                        self.lent += 1;
                        out.push(ReadEvent::Data {
                            token: self.token,
                            data: buf,
                        });
                    } else {
                        buffers.put(buf);
                    }
                    if at_eof {
                        out.push(ReadEvent::Eof {
                            token: self.token,
                            len: offset + filled as u64,
                        });
                        return true;
                    }
                }
                Err(error) => {
                    buffers.put(buf);
                    out.push(ReadEvent::Failed {
                        token: self.token,
                        error,
                    });
                    return true;
                }
            }
        }
        false
    }

    /// Returns what the file holds to the pool once it has left the reader.
    /// Reads still in flight come back through `complete`, find no file and
    /// return their buffers then.
    fn release(self, buffers: &mut Buffers) {
        for segment in self.segments {
            if let Segment::Ready { buf, .. } = segment {
                buffers.put(buf);
            }
        }
        if self.lent > 0 {
            let id = self.id;
            buffers.lent.retain(|_, &mut (_, lent_id)| lent_id != id);
        }
    }
}

/// The buffer pool, and the record of delivered buffers.
struct Buffers {
    /// Length of every buffer.
    read_len: usize,
    /// Free buffers, each `read_len` long and initialised.
    free: Vec<Vec<u8>>,
    /// Most free buffers kept: as many as the active files can hold.
    max_free: usize,
    /// Delivered buffers not yet recycled, by address: their file's token and id.
    lent: HashMap<usize, (u64, u64)>,
    /// Buffers allocated and not dropped.
    #[cfg(test)]
    allocated: usize,
}

impl Buffers {
    fn new(cfg: &ReaderConfig) -> Buffers {
        Buffers {
            read_len: cfg.read_len,
            free: Vec::new(),
            max_free: cfg.max_files.saturating_mul(cfg.reads_per_file),
            lent: HashMap::new(),
            #[cfg(test)]
            allocated: 0,
        }
    }

    /// A free buffer, `read_len` long.
    fn take(&mut self) -> Vec<u8> {
        self.free.pop().unwrap_or_else(|| {
            #[cfg(test)]
            {
                self.allocated += 1;
            }
            let mut buf = Vec::with_capacity(self.read_len + STAGGER_LEN);
            buf.resize(self.read_len, 0);
            buf
        })
    }

    /// Keeps `buf` for reuse if it is big enough and the pool is not full.
    /// Buffers are kept `read_len` long and initialised, so the engines can
    /// read into them as plain slices: only the unread tail of a file's last
    /// chunk is zeroed again.
    fn put(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() >= self.read_len && self.free.len() < self.max_free {
            buf.resize(self.read_len, 0);
            self.free.push(buf);
        } else {
            #[cfg(test)]
            {
                self.allocated = self.allocated.saturating_sub(1);
            }
        }
    }
}
