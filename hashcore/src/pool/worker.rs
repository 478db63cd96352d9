//! One hasher thread: drains its channel in batches and hashes every active
//! job's pending chunks together.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use crossbeam_channel::{Receiver, TryRecvError};
use digest::DynDigest;

use super::credits::Credits;
use super::{Completion, Counters, Digest, JobError};
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

/// How many messages one pass takes from the channel before hashing; large
/// enough to collect one chunk from many streams, small enough that credit
/// flows back to senders often.
const MAX_BATCH_MSGS: usize = 256;

struct ActiveJob {
    state: Box<dyn DynDigest + Send>,
    len: u64,
    credits: Arc<Credits>,
    done: Completion,
}

pub(crate) struct Worker {
    rx: Receiver<Msg>,
    counters: Arc<Counters>,
    jobs: HashMap<u64, ActiveJob>,
}

impl Worker {
    pub(crate) fn new(rx: Receiver<Msg>, counters: Arc<Counters>) -> Worker {
        Worker {
            rx,
            counters,
            jobs: HashMap::new(),
        }
    }

    pub(crate) fn run(mut self) {
        let mut batch = Vec::with_capacity(MAX_BATCH_MSGS);
        let mut shutting_down = false;
        while !shutting_down {
            match self.rx.recv() {
                Ok(msg) => batch.push(msg),
                Err(_) => break,
            }
            while batch.len() < MAX_BATCH_MSGS {
                match self.rx.try_recv() {
                    Ok(msg) => batch.push(msg),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => break,
                }
            }
            for msg in batch.drain(..) {
                if let Msg::Shutdown = msg {
                    shutting_down = true;
                } else {
                    self.handle(msg);
                }
            }
        }
        // Whatever is still queued was accepted before shutdown: finish it.
        while let Ok(msg) = self.rx.try_recv() {
            if !matches!(msg, Msg::Shutdown) {
                self.handle(msg);
            }
        }
        for (_, job) in self.jobs.drain() {
            job.credits.close();
            self.counters.active.fetch_sub(1, Ordering::Relaxed);
            self.counters.jobs_failed.fetch_add(1, Ordering::Relaxed);
            (job.done)(Err(JobError::ShuttingDown));
        }
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
                    credits,
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
                    job.credits.release(chunk.len());
                }
            }
            Msg::End { key } => {
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
            Msg::Abort { key, reason } => {
                if let Some(job) = self.jobs.remove(&key) {
                    self.counters.active.fetch_sub(1, Ordering::Relaxed);
                    self.counters.jobs_failed.fetch_add(1, Ordering::Relaxed);
                    (job.done)(Err(JobError::Aborted(reason)));
                }
            }
            Msg::Shutdown => {}
        }
    }
}
