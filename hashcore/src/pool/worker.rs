//! One hasher thread: drains its channel in batches, takes descriptor jobs
//! from the shared queue while its reader has room, and hashes whatever data
//! is ready, uploads and files alike.

use std::collections::HashMap;
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use crossbeam_channel::{Receiver, TryRecvError};

use super::credits::Credits;
use super::finish::Finisher;
use super::{Counters, Digest, JobError};
use crate::md5::{self, Tuning};
use crate::read::{FileReader, ReadEvent};
use crate::Algorithms;

/// Messages a hasher receives on its own channel.
pub(crate) enum Msg {
    Open {
        key: u64,
        algo: Algorithms,
        credits: Arc<Credits>,
        done: Finisher,
    },
    Data {
        key: u64,
        chunk: Bytes,
    },
    End {
        key: u64,
    },
    Abort {
        key: u64,
        reason: String,
    },
    Shutdown,
    /// Test-only fault injection: the hasher panics, as a bug would make it.
    #[cfg(test)]
    Panic,
}

/// A descriptor job: the hasher reads the file itself. Queued on the channel
/// all hashers share, so whichever has room takes it.
pub(crate) struct FileJob {
    pub(crate) key: u64,
    pub(crate) algo: Algorithms,
    pub(crate) file: File,
    /// Where to store the bytes hashed so far, if anyone watches.
    pub(crate) hashed: Option<Arc<AtomicU64>>,
    pub(crate) done: Finisher,
}

/// How many messages one pass takes from the channel before reading files;
/// large enough to collect one chunk from many streams, small enough that
/// credit flows back to senders and file reads are reaped often.
const MAX_BATCH_MSGS: usize = 256;

/// How much of the pending data [`Worker::flush`] hashes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flush {
    /// Everything: the worker is about to sleep, or to end.
    All,
    /// The rounds that fill enough lanes; more data is about to arrive.
    Filled,
}

/// A job's running hashes: the crate's one per-stream hasher type, for all
/// the job's algorithms. On a hasher, the MD5 of the streams that have one
/// is batched into SIMD lanes (see `hash_round`), the job's other
/// algorithms hashed as each chunk arrives; streams hashed outside a
/// hasher go through [`HashState::update`].
pub(super) use crate::algo::MultiHasher as HashState;

/// Bytes waiting to be hashed in the next lane pass, with what must be
/// given back once they are.
enum Chunk {
    /// An upload chunk: hashing it returns credit to its producer.
    Upload(Bytes),
    /// A file read: its buffer goes back to the reader.
    Read(Vec<u8>),
}

impl Chunk {
    /// The chunk as a refcounted buffer, when it is one (an upload's).
    fn shared(&self) -> Option<&Bytes> {
        match self {
            Chunk::Upload(b) => Some(b),
            Chunk::Read(_) => None,
        }
    }
}

impl std::ops::Deref for Chunk {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Chunk::Upload(b) => b,
            Chunk::Read(v) => v,
        }
    }
}

struct ActiveJob {
    state: HashState,
    len: u64,
    /// Chunks of this job waiting in `Worker::pending`.
    pending: usize,
    /// Streams only: the producer's budget, returned as chunks are hashed.
    credits: Option<Arc<Credits>>,
    /// Files only, when watched: `len`, published as it grows.
    hashed: Option<Arc<AtomicU64>>,
    done: Finisher,
}

impl ActiveJob {
    /// Counts `n` more bytes hashed.
    fn hashed(&mut self, n: usize) {
        self.len += n as u64;
        if let Some(h) = &self.hashed {
            h.store(self.len, Ordering::Relaxed);
        }
    }
}

pub(crate) struct Worker {
    rx: Receiver<Msg>,
    files: Receiver<FileJob>,
    reader: FileReader,
    counters: Arc<Counters>,
    jobs: HashMap<u64, ActiveJob>,
    /// Reused between polls so reaping allocates nothing.
    events: Vec<ReadEvent>,
    /// The MD5 kernels the lanes and single streams run on.
    md5: Tuning,
    /// MD5 data gathered from all jobs, hashed together in one lane pass.
    pending: Vec<(u64, Chunk)>,
    /// Jobs whose data is complete (end of file, or `End`), finished once
    /// their pending chunks are hashed: ending a job does not force a lane
    /// pass over whatever little happens to be pending at that moment.
    ending: Vec<u64>,
}

impl Worker {
    pub(crate) fn new(
        rx: Receiver<Msg>,
        files: Receiver<FileJob>,
        reader: FileReader,
        counters: Arc<Counters>,
        md5: Tuning,
    ) -> Worker {
        Worker {
            rx,
            files,
            reader,
            counters,
            jobs: HashMap::new(),
            events: Vec::new(),
            md5,
            pending: Vec::new(),
            ending: Vec::new(),
        }
    }

    pub(crate) fn run(mut self) {
        let mut batch = Vec::with_capacity(MAX_BATCH_MSGS);
        let mut shutting_down = false;
        while !shutting_down {
            if !self.reader.has_work() {
                // About to sleep: nothing may stay pending (its producer or
                // its file could be waiting for the buffers or credit).
                self.flush(Flush::All);
                // Hashing gave buffers back, so files may read again.
                if !self.reader.has_work() && !self.wait_for_work(&mut batch) {
                    break;
                }
            }
            while batch.len() < MAX_BATCH_MSGS {
                match self.rx.try_recv() {
                    Ok(msg) => batch.push(msg),
                    Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => break,
                }
            }
            self.take_files();
            let idle = batch.is_empty();
            for msg in batch.drain(..) {
                match msg {
                    Msg::Shutdown => shutting_down = true,
                    msg => self.handle(msg),
                }
            }
            if self.reader.has_work() {
                // File reads follow at once: their chunks may share this pass.
                self.flush(Flush::Filled);
                // Block on reads only when no message needed handling.
                self.poll_reads(idle);
            } else {
                self.flush(Flush::All);
            }
        }
        // Whatever was queued before shutdown was accepted: finish it.
        while let Ok(msg) = self.rx.try_recv() {
            if !matches!(msg, Msg::Shutdown) {
                self.handle(msg);
            }
        }
        loop {
            self.take_files();
            if !self.reader.has_work() {
                break;
            }
            self.poll_reads(true);
        }
        self.flush(Flush::All);
        for (_, job) in self.jobs.drain() {
            job.done.complete(Err(JobError::ShuttingDown));
        }
    }

    /// Sleeps until a message or (if there is room) a file arrives. Returns
    /// false when the pool is gone.
    fn wait_for_work(&mut self, batch: &mut Vec<Msg>) -> bool {
        let mut sel = crossbeam_channel::Select::new();
        let own = sel.recv(&self.rx);
        let files = self.has_room_for_files().then(|| sel.recv(&self.files));
        let op = sel.select();
        if op.index() == own {
            match op.recv(&self.rx) {
                Ok(msg) => batch.push(msg),
                Err(_) => return false,
            }
        } else if Some(op.index()) == files {
            if let Ok(job) = op.recv(&self.files) {
                self.start_file(job);
            }
        }
        true
    }

    fn has_room_for_files(&self) -> bool {
        self.reader.active_files() < self.reader.config().max_files
    }

    /// Takes queued files while the reader has room for them.
    fn take_files(&mut self) {
        while self.has_room_for_files() {
            match self.files.try_recv() {
                Ok(job) => self.start_file(job),
                Err(_) => break,
            }
        }
    }

    fn start_file(&mut self, job: FileJob) {
        let done = job.done.on(self.counters.clone());
        match self.reader.add(job.key, job.file) {
            Ok(()) => {
                let active = ActiveJob {
                    state: HashState::new(job.algo),
                    len: 0,
                    pending: 0,
                    credits: None,
                    hashed: job.hashed,
                    done,
                };
                self.jobs.insert(job.key, active);
            }
            Err(e) => done.complete(Err(JobError::Read(e.to_string()))),
        }
        self.publish_reader_stats();
    }

    /// Reaps file reads and hashes what is ready. With `wait`, sleeps for a
    /// read when none is ready, after hashing everything pending.
    fn poll_reads(&mut self, wait: bool) {
        let mut events = std::mem::take(&mut self.events);
        self.reader.poll(false, &mut events);
        if events.is_empty() && wait {
            self.flush(Flush::All);
            self.reader.poll(true, &mut events);
        }
        for event in events.drain(..) {
            match event {
                ReadEvent::Data { token, data } => self.absorb(token, Chunk::Read(data)),
                ReadEvent::Eof { token, .. } => self.ending.push(token),
                ReadEvent::Failed { token, error } => self.fail(
                    token,
                    JobError::Read(format!("reading the file failed: {error}")),
                ),
            }
        }
        self.flush(Flush::Filled);
        self.events = events;
        self.publish_reader_stats();
    }

    fn publish_reader_stats(&self) {
        self.counters
            .reads_in_flight
            .store(self.reader.reads_in_flight() as u64, Ordering::Relaxed);
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Open {
                key,
                algo,
                credits,
                done,
            } => {
                let job = ActiveJob {
                    state: HashState::new(algo),
                    len: 0,
                    pending: 0,
                    credits: Some(credits),
                    hashed: None,
                    done,
                };
                self.jobs.insert(key, job);
            }
            Msg::Data { key, chunk } => self.absorb(key, Chunk::Upload(chunk)),
            Msg::End { key } => self.ending.push(key),
            Msg::Abort { key, reason } => self.fail(key, JobError::Aborted(reason)),
            Msg::Shutdown => {}
            #[cfg(test)]
            Msg::Panic => panic!("injected hasher fault"),
        }
    }

    /// Takes one chunk of a job: MD5 data waits for the next lane pass, the
    /// other algorithms hash it at once.
    fn absorb(&mut self, key: u64, chunk: Chunk) {
        match self.jobs.get_mut(&key) {
            Some(job) if job.state.has_md5() => {
                // The other algorithms now, while the chunk is in cache;
                // MD5 (and the chunk's byte count) at the lane pass.
                job.state.update_except_md5(&chunk, chunk.shared());
                job.pending += 1;
                self.pending.push((key, chunk));
            }
            Some(job) => {
                job.state.update_from(&chunk, chunk.shared());
                job.hashed(chunk.len());
                self.counters
                    .bytes
                    .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                let credits = job.credits.clone();
                self.give_back(credits.as_deref(), chunk);
            }
            None => self.give_back(None, chunk),
        }
    }

    fn give_back(&mut self, credits: Option<&Credits>, chunk: Chunk) {
        match chunk {
            Chunk::Upload(b) => {
                if let Some(c) = credits {
                    c.release(b.len());
                }
            }
            Chunk::Read(v) => self.reader.recycle(v),
        }
    }

    /// Hashes pending MD5 data: one `update_many` pass per round, each round
    /// taking the next chunk of every job that has one, so chunks of a job
    /// stay in order and different jobs share the lanes. Then finishes the
    /// ending jobs that have nothing left pending.
    ///
    /// With [`Flush::Filled`], the rounds after the first that would leave
    /// most of the first round's lanes idle (jobs whose reads ran ahead of the
    /// others) stay pending for the next pass, which more reads are about to
    /// join; [`Flush::All`] runs everything, before the worker sleeps or ends.
    /// A job held back keeps its buffers (or credit), so its file stops
    /// reading ahead until the others catch up.
    ///
    /// Measured through the pool (2 hashers, 1000 page-cached 1 MiB files,
    /// CPU ms per run, medians of 5; the VM shared with other builds): before
    /// this, each end of file flushed whatever was pending and every round
    /// ran, so with 3 reads of 128 KiB per file and 32 files 42% of the time
    /// went to the single-stream path: 620 ms, against 272 after; 128 KiB x
    /// 4 x 16 files (the old defaults) 314-320 before, 277-287 after.
    fn flush(&mut self, how: Flush) {
        if !self.pending.is_empty() {
            self.hash_pending(how);
        }
        if !self.ending.is_empty() {
            let mut ending = std::mem::take(&mut self.ending);
            ending.retain(|&key| match self.jobs.get(&key) {
                Some(job) if job.pending > 0 => true,
                Some(_) => {
                    self.end(key);
                    false
                }
                None => false,
            });
            self.ending = ending;
        }
    }

    fn hash_pending(&mut self, how: Flush) {
        let mut rounds: Vec<Vec<(u64, Chunk)>> = Vec::new();
        let mut seen: HashMap<u64, usize> = HashMap::new();
        for (key, chunk) in self.pending.drain(..) {
            let n = seen.entry(key).or_insert(0);
            if rounds.len() <= *n {
                rounds.push(Vec::new());
            }
            rounds[*n].push((key, chunk));
            *n += 1;
        }
        // Rounds only shrink: round r holds the jobs with more than r chunks.
        let keep = match how {
            Flush::All => rounds.len(),
            Flush::Filled => {
                // Round 0 holds every job with data here, so it always runs.
                let enough = (rounds[0].len().min(self.md5.max_lanes()) / 2).max(1);
                rounds
                    .iter()
                    .position(|r| r.len() < enough)
                    .unwrap_or(rounds.len())
            }
        };
        for round in rounds.drain(keep..) {
            self.pending.extend(round);
        }
        for round in rounds {
            self.hash_round(round);
        }
    }

    fn hash_round(&mut self, round: Vec<(u64, Chunk)>) {
        // Move the states out so one call can borrow them all mutably.
        let mut states: Vec<md5::Md5> = round
            .iter()
            .map(|(key, _)| {
                self.jobs
                    .get_mut(key)
                    .and_then(|j| j.state.md5_mut())
                    .map(std::mem::take)
                    .unwrap_or_default()
            })
            .collect();
        let mut items: Vec<(&mut md5::Md5, &[u8])> = states
            .iter_mut()
            .zip(round.iter())
            .map(|(m, (_, c))| (m, &c[..]))
            .collect();
        let stats = md5::update_many_tuned(&self.md5, &mut items);
        drop(items);
        self.counters
            .kernel_calls
            .fetch_add(stats.kernel_calls, Ordering::Relaxed);
        self.counters
            .lane_blocks
            .fetch_add(stats.lane_blocks, Ordering::Relaxed);
        self.counters
            .lane_slots
            .fetch_add(stats.lane_slots, Ordering::Relaxed);
        for (state, (key, chunk)) in states.into_iter().zip(round) {
            let credits = match self.jobs.get_mut(&key) {
                Some(job) => {
                    if let Some(m) = job.state.md5_mut() {
                        *m = state;
                    }
                    job.hashed(chunk.len());
                    job.pending -= 1;
                    self.counters
                        .bytes
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    job.credits.clone()
                }
                None => None,
            };
            self.give_back(credits.as_deref(), chunk);
        }
    }

    fn end(&mut self, key: u64) {
        if let Some(job) = self.jobs.remove(&key) {
            let hashes = job.state.finalize();
            job.done.complete(Ok(Digest {
                hashes,
                len: job.len,
            }));
        }
    }

    fn fail(&mut self, key: u64, error: JobError) {
        if let Some(job) = self.jobs.remove(&key) {
            if job.pending > 0 {
                // Its data will never be hashed: give the chunks back now.
                let pending = std::mem::take(&mut self.pending);
                for (k, chunk) in pending {
                    if k == key {
                        self.give_back(job.credits.as_deref(), chunk);
                    } else {
                        self.pending.push((k, chunk));
                    }
                }
            }
            job.done.complete(Err(error));
        }
    }
}

impl Drop for Worker {
    /// Runs before the fields are dropped: when the thread dies by a panic,
    /// placement stops choosing this hasher before its jobs' finishers (in
    /// `jobs`, and in the messages its channel drops) fail them.
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.counters.dead.store(true, Ordering::Relaxed);
        }
    }
}
