//! The writer thread: the only writing connection. It takes every queued
//! operation at hand (up to [`MAX_BATCH_OPS`]) and applies them in one
//! transaction, so thousands of jobs per second cost a few commits; then it
//! tells waiters what it wrote, fills the recent-results cache and hands the
//! results to the results log, in commit order.

use std::sync::{mpsc, Arc, LazyLock};
use std::time::Duration;

use frontends::{JobStatus, JobView};
use rusqlite::{params, Connection, OptionalExtension};

use super::batch::{plan, FinalColumns, Op, Outlets, Role, MAX_BATCH_OPS};
use super::cache::RecentJobs;
use super::schema::{status_is, DbStatus};
use super::waiters::Waiters;
use super::{RecordError, RecordErrorKind};
use crate::results_log::ResultsLog;
use crate::util::{now_ms, rfc3339};

/// How long failed finishes wait before the next attempt.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);

const INSERT_SQL: &str = "INSERT INTO jobs (id, status, algorithm, hash, size, name, error, stored_path, created_ms, finished_ms, hashes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

/// Ends a PENDING job; a job already final, or without a row, is left alone.
static FINISH_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE jobs SET status = ?2, hash = ?3, size = COALESCE(?4, size), error = ?5, finished_ms = ?6, hashes = ?7
                 WHERE id = ?1 AND {}
                 RETURNING algorithm, size, name, created_ms",
        status_is(JobStatus::Pending)
    )
});

/// The writer thread's state; [`Writer::run`] is the thread's body.
pub struct Writer {
    conn: Connection,
    log: ResultsLog,
    recent: Arc<RecentJobs>,
    waiters: Arc<Waiters>,
    metrics: Arc<crate::metrics::StoreMetrics>,
    /// Finishes that could not be committed (disk full, I/O error), retried
    /// until they can: a job must never stay PENDING for good.
    retry: Vec<Op>,
}

impl Writer {
    /// `conn` must have the schema applied.
    pub fn new(
        conn: Connection,
        log: ResultsLog,
        recent: Arc<RecentJobs>,
        waiters: Arc<Waiters>,
        metrics: Arc<crate::metrics::StoreMetrics>,
    ) -> Writer {
        Writer {
            conn,
            log,
            recent,
            waiters,
            metrics,
            retry: Vec::new(),
        }
    }

    /// Applies batches until [`Op::Close`] (or until every sender is gone),
    /// then checkpoints the WAL and closes the results log.
    pub fn run(mut self, rx: mpsc::Receiver<Op>) {
        let mut closing = false;
        while !closing {
            // Failed finishes go again with the next batch, or after
            // RETRY_INTERVAL when nothing else arrives.
            let first = if self.retry.is_empty() {
                Some(rx.recv().unwrap_or(Op::Close))
            } else {
                match rx.recv_timeout(RETRY_INTERVAL) {
                    Ok(op) => Some(op),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => Some(Op::Close),
                }
            };
            let mut batch = std::mem::take(&mut self.retry);
            batch.extend(first);
            while batch.len() < MAX_BATCH_OPS {
                match rx.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            closing = batch.iter().any(|op| matches!(op, Op::Close));
            batch.retain(|op| !matches!(op, Op::Close));
            if !batch.is_empty() {
                self.apply(batch);
            }
            if closing && !self.retry.is_empty() {
                tracing::error!(jobs = self.retry.len(), "could not record job results before shutdown; they will be marked interrupted at the next start");
            }
        }
        if let Err(e) = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
            tracing::warn!(error = %e, "WAL checkpoint at shutdown failed");
        }
        if let Err(e) = self.log.close() {
            tracing::error!(error = %e, "closing the results log failed");
        }
    }

    /// Commits `ops` in one transaction; if that fails, one by one, so one bad
    /// operation cannot sink the others.
    fn apply(&mut self, ops: Vec<Op>) {
        let started = std::time::Instant::now();
        let committed = self.commit(&ops);
        self.metrics
            .batch(ops.len(), started.elapsed().as_secs_f64());
        match committed {
            Ok(logged) => self.settle(ops, logged),
            Err(batch_err) => {
                tracing::warn!(error = %batch_err, ops = ops.len(), "batched commit failed; applying one at a time");
                for op in ops {
                    match self.commit(std::slice::from_ref(&op)) {
                        Ok(logged) => self.settle(vec![op], logged),
                        Err(e) => self.fail(op, &e),
                    }
                }
            }
        }
    }

    /// Runs the statements of `ops` in one transaction. Returns, per op, the
    /// final state of a job that a finish ended (to log and to tell waiters).
    ///
    /// A finish queued after its job's insert in the same batch (a small
    /// upload hashes in microseconds, so most do) is written with the insert:
    /// one row and one index entry instead of an insert and an update.
    fn commit(&mut self, ops: &[Op]) -> rusqlite::Result<Vec<Option<JobView>>> {
        let roles = plan(ops);
        // One end time for the whole commit: it is when these results became
        // durable, and it keeps `finished_ms` in commit order (see `unlogged`).
        let finished = now_ms();
        let finished_at = rfc3339(finished);
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut ended: Vec<Option<JobView>> = vec![None; ops.len()];
        {
            let mut insert = tx.prepare_cached(INSERT_SQL)?;
            let mut finish = tx.prepare_cached(&FINISH_SQL)?;
            for (i, op) in ops.iter().enumerate() {
                match op {
                    Op::Insert { job, .. } => {
                        let stored = job
                            .stored_path
                            .as_ref()
                            .map(|p| p.to_string_lossy().into_owned());
                        let outcome = match roles[i] {
                            Role::Insert { finish: Some(j) } => match &ops[j] {
                                Op::Finish { finish, .. } => Some((j, FinalColumns::of(finish))),
                                _ => None,
                            },
                            _ => None,
                        };
                        let (status, hash, hashes, size, error) = match &outcome {
                            Some((_, o)) => (
                                o.status,
                                o.hash,
                                o.hashes,
                                o.size.or(Some(job.size)),
                                o.error,
                            ),
                            None => (JobStatus::Pending, None, None, Some(job.size), None),
                        };
                        insert.execute(params![
                            job.id,
                            DbStatus(status),
                            job.algorithm,
                            hash,
                            size.map(|s| s as i64),
                            job.name,
                            error,
                            stored,
                            job.created_ms,
                            outcome.as_ref().map(|_| finished),
                            hashes,
                        ])?;
                        if let Some((j, o)) = outcome {
                            ended[j] = Some(o.view(
                                job.id.clone(),
                                job.algorithm.clone(),
                                size,
                                job.name.clone(),
                                job.created_ms,
                                finished_at.clone(),
                            ));
                        }
                    }
                    Op::Finish { id, finish: f, .. } => {
                        if roles[i] != Role::Update {
                            continue; // written with its insert, or a second end
                        }
                        let o = FinalColumns::of(f);
                        let row = finish
                            .query_row(
                                params![
                                    id,
                                    DbStatus(o.status),
                                    o.hash,
                                    o.size.map(|s| s as i64),
                                    o.error,
                                    finished,
                                    o.hashes
                                ],
                                |r| {
                                    Ok((
                                        r.get::<_, String>(0)?,
                                        r.get::<_, Option<i64>>(1)?,
                                        r.get::<_, Option<String>>(2)?,
                                        r.get::<_, i64>(3)?,
                                    ))
                                },
                            )
                            .optional()?;
                        // No row: the upload was abandoned before it was
                        // recorded (or already ended), so nothing to log.
                        ended[i] = row.map(|(algorithm, size, name, created)| {
                            let size = size.map(|s| s as u64);
                            o.view(
                                id.clone(),
                                algorithm,
                                size,
                                name,
                                created,
                                finished_at.clone(),
                            )
                        });
                    }
                    Op::Probe(_) | Op::Close => {}
                }
            }
        }
        tx.commit()?;
        Ok(ended)
    }

    fn settle(&mut self, ops: Vec<Op>, ended: Vec<Option<JobView>>) {
        Outlets {
            recent: &self.recent,
            waiters: &self.waiters,
            log: &self.log,
        }
        .settle(ops, ended);
    }

    fn fail(&mut self, op: Op, err: &rusqlite::Error) {
        match op {
            Op::Insert { ack, job } => {
                tracing::error!(id = %job.id, error = %err, "could not record a new job");
                let disk_full = matches!(
                    err,
                    rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::DiskFull
                );
                let _ = ack.send(Err(RecordError {
                    kind: match disk_full {
                        true => RecordErrorKind::DiskFull,
                        false => RecordErrorKind::Other,
                    },
                    reason: format!("the job store could not record the job: {err}"),
                }));
            }
            op @ Op::Finish { .. } => self.retry.push(op),
            // Dropped: the probe fails.
            Op::Probe(_) | Op::Close => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::open_writer;
    use crate::store::{Finish, NewJob, SyncMode};
    use tokio::sync::oneshot;

    fn new_job(id: &str) -> NewJob {
        NewJob {
            id: id.into(),
            algorithm: "md5".into(),
            size: 3,
            name: Some(format!("{id}.txt")),
            stored_path: None,
            created_ms: 1000,
        }
    }

    #[test]
    fn a_batch_writes_each_job_once_with_its_final_state() {
        let dir = std::env::temp_dir().join(format!("hashd-batch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("jobs.db");
        let log_path = dir.join("results.log");
        let conn = open_writer(&db, SyncMode::Normal).unwrap();
        let recent = Arc::new(RecentJobs::default());
        let mut writer = Writer::new(
            conn,
            ResultsLog::open(&log_path).unwrap(),
            recent.clone(),
            Arc::default(),
            Arc::default(),
        );
        // "old" was recorded by an earlier batch; "new" arrives with its end;
        // "gone" ends without ever being recorded (an abandoned upload).
        writer.apply(vec![Op::Insert {
            job: new_job("old"),
            ack: oneshot::channel().0,
        }]);
        let success = |hash: &str| Finish::Success {
            hash: hash.into(),
            hashes: None,
            size: 3,
        };
        let (notify, told) = oneshot::channel();
        let (ack, acked) = oneshot::channel();
        writer.apply(vec![
            Op::Insert {
                job: new_job("new"),
                ack,
            },
            Op::Finish {
                id: "gone".into(),
                finish: success("00"),
                notify: None,
            },
            Op::Finish {
                id: "old".into(),
                finish: Finish::Failure {
                    reason: "broken".into(),
                },
                notify: None,
            },
            Op::Finish {
                id: "new".into(),
                finish: success("abc"),
                notify: Some(notify),
            },
        ]);
        acked.blocking_recv().unwrap().unwrap();
        let told = told.blocking_recv().unwrap();
        assert_eq!(told.status, JobStatus::Success);
        assert_eq!(told.hash.as_deref(), Some("abc"));
        assert_eq!(told.name.as_deref(), Some("new.txt"));
        assert_eq!(told.created_at, rfc3339(1000));
        assert!(told.finished_at.is_some());

        type Row = (String, String, Option<String>, Option<String>, i64);
        let rows: Vec<Row> = writer
            .conn
            .prepare("SELECT id, status, hash, error, size FROM jobs ORDER BY seq")
            .unwrap()
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                (
                    "old".into(),
                    "FAILURE".into(),
                    None,
                    Some("broken".into()),
                    3
                ),
                ("new".into(), "SUCCESS".into(), Some("abc".into()), None, 3),
            ]
        );
        // What the lookups see from memory matches the rows.
        assert_eq!(recent.get("new"), Some(told));
        assert_eq!(recent.get("old").unwrap().status, JobStatus::Failure);
        assert_eq!(recent.get("gone"), None);
        writer.log.close().unwrap();
        let log = std::fs::read_to_string(&log_path).unwrap();
        let ids: Vec<&str> = log
            .lines()
            .map(|l| if l.contains("\"old\"") { "old" } else { "new" })
            .collect();
        assert_eq!(ids, ["old", "new"], "{log}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
