//! A job's end, exactly once: the [`Finisher`] every job carries from the
//! moment it is admitted until its completion has run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::credits::Credits;
use super::{Completion, Counters, JobError, Outcome};

/// Why a job whose [`Finisher`] was dropped unfinished failed: its hasher
/// thread died (a panic unwinds through the jobs it held, and a dead
/// hasher's channel drops the messages still in it).
pub(crate) const LOST: &str = "the hasher running this job stopped unexpectedly";

/// One admitted stream, counted against [`super::PoolConfig::max_streams`]
/// until its job has ended. The hasher channels are sized for that many
/// streams, so while the count holds, queueing a chunk cannot fail.
pub(crate) struct StreamSlot(pub(crate) Arc<AtomicUsize>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Calls a job's [`Completion`] exactly once, and is the one place that
/// counts a job's end: [`Finisher::complete`] with the outcome, or `Drop`
/// with [`JobError::Lost`] when the job is dropped unfinished. A job holds it
/// from admission on: in its stream's head, in the message that opens it on
/// a hasher, in the shared file queue, and in the hasher's table of active
/// jobs. So whichever of those is dropped by a dying thread or a closed
/// channel, the completion still runs.
pub(crate) struct Finisher {
    done: Option<Completion>,
    /// The hasher that counts this job as active; `None` while a file job
    /// waits in the shared queue, before a hasher has taken it.
    counters: Option<Arc<Counters>>,
    slot: Option<StreamSlot>,
    /// A stream's budget, closed at the end so that a producer waiting for
    /// credit wakes up (with an error) whatever ended the job.
    credits: Option<Arc<Credits>>,
}

impl Finisher {
    /// A job not yet counted by any hasher.
    pub(crate) fn new(done: Completion) -> Finisher {
        Finisher {
            done: Some(done),
            counters: None,
            slot: None,
            credits: None,
        }
    }

    /// Counts the job as active on the hasher that owns `counters`, until
    /// it ends.
    pub(crate) fn on(mut self, counters: Arc<Counters>) -> Finisher {
        counters.active.fetch_add(1, Ordering::Relaxed);
        self.counters = Some(counters);
        self
    }

    /// Keeps a stream's `slot` taken until the job ends, and closes its
    /// `credits` then.
    pub(crate) fn stream(mut self, slot: StreamSlot, credits: Arc<Credits>) -> Finisher {
        self.slot = Some(slot);
        self.credits = Some(credits);
        self
    }

    /// Ends the job with `outcome`.
    pub(crate) fn complete(mut self, outcome: Outcome) {
        self.end(outcome);
    }

    fn end(&mut self, outcome: Outcome) {
        let Some(done) = self.done.take() else {
            return;
        };
        if let Some(c) = self.counters.take() {
            c.active.fetch_sub(1, Ordering::Relaxed);
            let ended = match outcome {
                Ok(_) => &c.jobs_done,
                Err(_) => &c.jobs_failed,
            };
            ended.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(credits) = self.credits.take() {
            credits.close();
        }
        // Freed before the completion runs: it may well open the next job.
        drop(self.slot.take());
        done(outcome);
    }
}

impl Drop for Finisher {
    fn drop(&mut self) {
        self.end(Err(JobError::Lost(LOST.to_string())));
    }
}
