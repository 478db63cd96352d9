//! What both stores' writers share: the queued operations, how one batch of
//! them maps onto rows, and what happens after it commits.

use std::collections::HashSet;

use frontends::{JobStatus, JobView};
use tokio::sync::oneshot;

use super::cache::RecentJobs;
use super::waiters::Waiters;
use super::{Finish, NewJob, RecordError};
use crate::results_log::{LogLine, ResultsLog};
use crate::util::rfc3339;

/// Most operations applied in one transaction; bounds the latency a batch
/// adds to the acknowledgements waiting on it.
pub const MAX_BATCH_OPS: usize = 4096;

/// What a store's handle queues for its writer.
pub enum Op {
    Insert {
        job: NewJob,
        ack: oneshot::Sender<Result<(), RecordError>>,
    },
    Finish {
        id: String,
        finish: Finish,
        /// Told the final state once it is committed.
        notify: Option<oneshot::Sender<JobView>>,
    },
    /// Answered once the batch holding it has committed: proof that the
    /// writer runs and its commits succeed (`GET /ready`).
    Probe(oneshot::Sender<()>),
    /// Apply what was queued before it, then stop.
    Close,
}

/// How one operation of a batch is written; see [`plan`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A new row; with `finish`, the index of the finish written with it.
    Insert { finish: Option<usize> },
    /// A finish written with its insert (earlier in the batch).
    WithInsert,
    /// A finish that updates a row committed before (or absent).
    Update,
    /// A second finish of the same job in one batch: a job ends once.
    Ignored,
    /// Writes no row (a probe, the close marker).
    Nothing,
}

/// The roles of `ops`, a batch in queue order.
///
/// A finish queued after its job's insert in the same batch (a small upload
/// hashes in microseconds, so most do) is written with the insert: one row
/// and one index entry instead of an insert and an update.
pub fn plan(ops: &[Op]) -> Vec<Role> {
    let mut roles = Vec::with_capacity(ops.len());
    let mut inserted = std::collections::HashMap::new();
    let mut ended = HashSet::new();
    for (j, op) in ops.iter().enumerate() {
        let role = match op {
            Op::Insert { job, .. } => {
                inserted.insert(job.id.as_str(), j);
                Role::Insert { finish: None }
            }
            Op::Finish { id, .. } if !ended.insert(id.as_str()) => Role::Ignored,
            Op::Finish { id, .. } => match inserted.remove(id.as_str()) {
                Some(i) => {
                    roles[i] = Role::Insert { finish: Some(j) };
                    Role::WithInsert
                }
                None => Role::Update,
            },
            Op::Probe(_) | Op::Close => Role::Nothing,
        };
        roles.push(role);
    }
    roles
}

/// A [`Finish`] as the columns it sets.
pub struct FinalColumns<'a> {
    pub status: JobStatus,
    pub hash: Option<&'a str>,
    /// The `hashes` column: several digests (see `encode_hashes`).
    pub hashes: Option<&'a str>,
    pub size: Option<u64>,
    pub error: Option<&'a str>,
}

impl FinalColumns<'_> {
    pub fn of(finish: &Finish) -> FinalColumns<'_> {
        match finish {
            Finish::Success { hash, hashes, size } => FinalColumns {
                status: JobStatus::Success,
                hash: Some(hash),
                hashes: hashes.as_deref(),
                size: Some(*size),
                error: None,
            },
            Finish::Failure { reason } => FinalColumns {
                status: JobStatus::Failure,
                hash: None,
                hashes: None,
                size: None,
                error: Some(reason),
            },
        }
    }

    /// The final state of a job that ended with this result.
    pub fn view(
        &self,
        id: String,
        algorithm: String,
        size: Option<u64>,
        name: Option<String>,
        created_ms: i64,
        finished_at: String,
    ) -> JobView {
        JobView {
            id,
            status: self.status,
            hashes: super::hash_list(&algorithm, self.hash, self.hashes),
            algorithm,
            hash: self.hash.map(str::to_string),
            size,
            name,
            error: self.error.map(str::to_string),
            created_at: rfc3339(created_ms),
            finished_at: Some(finished_at),
        }
    }
}

/// Where a writer's committed results go.
pub struct Outlets<'a> {
    pub recent: &'a RecentJobs,
    pub waiters: &'a Waiters,
    pub log: &'a ResultsLog,
}

impl Outlets<'_> {
    /// After a commit: tell waiters, acknowledge inserts, append to the log.
    /// `ended[i]` is the final state op `i` committed, if it ended a job.
    /// Waiters first: an upload that ended in its insert's batch then
    /// answers with its hash even without `?wait`, since its final state is
    /// there when the acknowledgement wakes it.
    pub fn settle(&self, ops: Vec<Op>, ended: Vec<Option<JobView>>) {
        self.recent.add(ended.iter().flatten());
        self.waiters
            .wake(ended.iter().flatten().map(|v| v.id.as_str()));
        let mut lines = Vec::new();
        let mut acks = Vec::new();
        for (op, view) in ops.into_iter().zip(ended) {
            match op {
                Op::Insert { ack, .. } => acks.push(ack),
                Op::Finish { notify, .. } => {
                    if let Some(view) = view {
                        lines.push(LogLine::of(&view));
                        if let Some(tx) = notify {
                            let _ = tx.send(view);
                        }
                    }
                }
                Op::Probe(ack) => {
                    let _ = ack.send(());
                }
                Op::Close => {}
            }
        }
        for ack in acks {
            let _ = ack.send(Ok(()));
        }
        self.log.append(lines);
    }

    /// Jobs this node ended outside a batch (the dead nodes' jobs it
    /// failed): into the cache, to their waiters and the results log.
    pub fn publish(&self, views: &[JobView]) {
        self.recent.add(views.iter());
        self.waiters.wake(views.iter().map(|v| v.id.as_str()));
        self.log.append(views.iter().map(LogLine::of).collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insert(id: &str) -> Op {
        Op::Insert {
            job: NewJob {
                id: id.into(),
                algorithm: "md5".into(),
                size: 0,
                name: None,
                stored_path: None,
                created_ms: 0,
            },
            ack: oneshot::channel().0,
        }
    }

    fn finish(id: &str) -> Op {
        Op::Finish {
            id: id.into(),
            finish: Finish::Failure { reason: "x".into() },
            notify: None,
        }
    }

    #[test]
    fn a_finish_after_its_insert_is_written_with_it_and_a_job_ends_once() {
        let ops = [
            finish("b"), // before its insert: an update that finds no row
            insert("a"),
            insert("b"),
            finish("a"),
            finish("a"),
            finish("old"),
            Op::Close,
        ];
        assert_eq!(
            plan(&ops),
            [
                Role::Update,
                Role::Insert { finish: Some(3) },
                Role::Insert { finish: None },
                Role::WithInsert,
                Role::Ignored,
                Role::Update,
                Role::Nothing,
            ]
        );
    }
}
