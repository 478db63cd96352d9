//! One hasher thread: drains its channel in batches, takes descriptor jobs
//! from the shared queue while its reader has room, and hashes whatever data
//! is ready, uploads and files alike.

use std::collections::HashMap;
use std::fs::File;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use crossbeam_channel::{Receiver, TryRecvError};
use digest::DynDigest;

use super::credits::Credits;
use super::{Completion, Counters, Digest, JobError};
use crate::read::{FileReader, ReadEvent};
use crate::Algorithm;

/// Messages a hasher receives on its own channel.
pub(crate) enum Msg {
    Open {
        key: u64,
        algo: Algorithm,
        credits: Arc<Credits>,
        done: Completion,
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
}

/// A descriptor job: the hasher reads the file itself. Queued on the channel
/// all hashers share, so whichever has room takes it.
pub(crate) struct FileJob {
    pub(crate) key: u64,
    pub(crate) algo: Algorithm,
    pub(crate) file: File,
    pub(crate) done: Completion,
}

/// How many messages one pass takes from the channel before reading files;
/// large enough to collect one chunk from many streams, small enough that
/// credit flows back to senders and file reads are reaped often.
const MAX_BATCH_MSGS: usize = 256;

struct ActiveJob {
    state: Box<dyn DynDigest + Send>,
    len: u64,
    /// Streams only: the producer's budget, returned as chunks are hashed.
    credits: Option<Arc<Credits>>,
    done: Completion,
}

pub(crate) struct Worker {
    rx: Receiver<Msg>,
    files: Receiver<FileJob>,
    reader: FileReader,
    counters: Arc<Counters>,
    jobs: HashMap<u64, ActiveJob>,
    /// Reused between polls so reaping allocates nothing.
    events: Vec<ReadEvent>,
}

impl Worker {
    pub(crate) fn new(
        rx: Receiver<Msg>,
        files: Receiver<FileJob>,
        reader: FileReader,
        counters: Arc<Counters>,
    ) -> Worker {
        Worker {
            rx,
            files,
            reader,
            counters,
            jobs: HashMap::new(),
            events: Vec::new(),
        }
    }

    pub(crate) fn run(mut self) {
        let mut batch = Vec::with_capacity(MAX_BATCH_MSGS);
        let mut shutting_down = false;
        while !shutting_down {
            if !self.reader.has_work() && !self.wait_for_work(&mut batch) {
                break;
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
                // Block on reads only when no message needed handling.
                self.poll_reads(idle);
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
        for (_, job) in self.jobs.drain() {
            if let Some(c) = &job.credits {
                c.close();
            }
            self.counters.active.fetch_sub(1, Ordering::Relaxed);
            self.counters.jobs_failed.fetch_add(1, Ordering::Relaxed);
            (job.done)(Err(JobError::ShuttingDown));
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
        self.counters.active.fetch_add(1, Ordering::Relaxed);
        match self.reader.add(job.key, job.file) {
            Ok(()) => {
                let active = ActiveJob {
                    state: job.algo.hasher(),
                    len: 0,
                    credits: None,
                    done: job.done,
                };
                self.jobs.insert(job.key, active);
            }
            Err(e) => {
                self.counters.active.fetch_sub(1, Ordering::Relaxed);
                self.counters.jobs_failed.fetch_add(1, Ordering::Relaxed);
                (job.done)(Err(JobError::Read(e.to_string())));
            }
        }
        self.publish_reader_stats();
    }

    fn poll_reads(&mut self, wait: bool) {
        let mut events = std::mem::take(&mut self.events);
        self.reader.poll(wait, &mut events);
        for event in events.drain(..) {
            match event {
                ReadEvent::Data { token, data } => {
                    if let Some(job) = self.jobs.get_mut(&token) {
                        job.state.update(&data);
                        job.len += data.len() as u64;
                        self.counters
                            .bytes
                            .fetch_add(data.len() as u64, Ordering::Relaxed);
                    }
                    self.reader.recycle(data);
                }
                ReadEvent::Eof { token, .. } => self.end(token),
                ReadEvent::Failed { token, error } => self.fail(
                    token,
                    JobError::Read(format!("reading the file failed: {error}")),
                ),
            }
        }
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
                    state: algo.hasher(),
                    len: 0,
                    credits: Some(credits),
                    done,
                };
                self.jobs.insert(key, job);
            }
            Msg::Data { key, chunk } => {
                if let Some(job) = self.jobs.get_mut(&key) {
                    job.state.update(&chunk);
                    job.len += chunk.len() as u64;
                    self.counters
                        .bytes
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    if let Some(c) = &job.credits {
                        c.release(chunk.len());
                    }
                }
            }
            Msg::End { key } => self.end(key),
            Msg::Abort { key, reason } => self.fail(key, JobError::Aborted(reason)),
            Msg::Shutdown => {}
        }
    }

    fn end(&mut self, key: u64) {
        if let Some(job) = self.jobs.remove(&key) {
            self.counters.active.fetch_sub(1, Ordering::Relaxed);
            self.counters.jobs_done.fetch_add(1, Ordering::Relaxed);
            let bytes = job.state.finalize().into_vec();
            (job.done)(Ok(Digest {
                bytes,
                len: job.len,
            }));
        }
    }

    fn fail(&mut self, key: u64, error: JobError) {
        if let Some(job) = self.jobs.remove(&key) {
            if let Some(c) = &job.credits {
                c.close();
            }
            self.counters.active.fetch_sub(1, Ordering::Relaxed);
            self.counters.jobs_failed.fetch_add(1, Ordering::Relaxed);
            (job.done)(Err(error));
        }
    }
}
