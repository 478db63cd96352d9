//! The node's writer task: batches of inserts and ends in one transaction
//! each (one multi-row statement per kind, so a batch is five round trips
//! however many jobs it holds), the node's heartbeat, and failing the
//! PENDING jobs of nodes that stopped heartbeating.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use frontends::{JobStatus, JobView};
use tokio::sync::mpsc;

use super::schema::status_is;
use super::{Health, PgError, CHANNEL, STATEMENT_TIMEOUT};
use crate::results_log::ResultsLog;
use crate::store::batch::{plan, FinalColumns, Op, Outlets, Role, MAX_BATCH_OPS};
use crate::store::cache::RecentJobs;
use crate::store::schema::status_text;
use crate::store::waiters::Waiters;
use crate::store::{Node, NodeReport, RecordError, RecordErrorKind};
use crate::util::{now_ms, rfc3339};

/// How long failed finishes wait before the next attempt.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// Largest NOTIFY payload: the server's limit is 8000 bytes.
const NOTIFY_PAYLOAD: usize = 7900;

/// Key of the transaction advisory lock a reaping node holds, so that one
/// node at a time fails a dead node's jobs ("reap" in ASCII).
const REAP_LOCK: i64 = 0x7265_6170;

pub(super) struct PgWriter {
    pub pool: Pool,
    pub node: Arc<Node>,
    pub recent: Arc<RecentJobs>,
    pub waiters: Arc<Waiters>,
    pub health: Arc<Health>,
    pub report: Arc<Mutex<NodeReport>>,
    pub log: ResultsLog,
    /// Finishes that could not be committed, retried until they can.
    pub retry: Vec<Op>,
    /// Since when heartbeats have succeeded without a gap; `None` after a
    /// failed one. Dead nodes are reaped only once this is older than the
    /// node timeout: after an outage of the server every node's heartbeat is
    /// old, and the live ones need a timeout's time to beat again.
    pub up_since: Option<Instant>,
    pub metrics: Arc<crate::metrics::StoreMetrics>,
}

/// Heartbeats per node timeout: a node misses four before it counts as dead.
fn heartbeat_interval(timeout: Duration) -> Duration {
    (timeout / 5).clamp(Duration::from_millis(100), Duration::from_secs(2))
}

impl PgWriter {
    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Op>) {
        let mut tick = tokio::time::interval(heartbeat_interval(self.node.timeout));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut closing = false;
        while !closing {
            // The heartbeat first: a flood of uploads must not starve it, or
            // the other nodes would take this one for dead.
            let first = tokio::select! {
                biased;
                _ = tick.tick() => {
                    self.heartbeat().await;
                    None
                }
                op = rx.recv() => Some(op.unwrap_or(Op::Close)),
                _ = tokio::time::sleep(RETRY_INTERVAL), if !self.retry.is_empty() => None,
            };
            if first.is_none() && (self.retry.is_empty() || self.health.is_down()) {
                continue;
            }
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
                self.apply(batch).await;
            }
            if closing && !self.retry.is_empty() {
                tracing::error!(jobs = self.retry.len(), "could not record job results before shutdown; they will be marked interrupted at the next start");
            }
        }
        if let Err(e) = self.log.close() {
            tracing::error!(error = %e, "closing the results log failed");
        }
    }

    fn outlets(&self) -> Outlets<'_> {
        Outlets {
            recent: &self.recent,
            waiters: &self.waiters,
            log: &self.log,
        }
    }

    /// Commits `ops` in one transaction. When the server is unreachable,
    /// inserts are refused (503) and finishes kept for a retry; another
    /// error is retried one operation at a time, so one bad operation cannot
    /// sink the others.
    async fn apply(&mut self, ops: Vec<Op>) {
        let started = Instant::now();
        let committed = self.commit(&ops).await;
        self.metrics
            .batch(ops.len(), started.elapsed().as_secs_f64());
        match committed {
            Ok(ended) => {
                self.health.up();
                self.outlets().settle(ops, ended);
            }
            Err(e) if e.is_unavailable() => {
                self.health.down(&e);
                for op in ops {
                    self.fail(op, &e, RecordErrorKind::Unavailable);
                }
            }
            Err(batch_err) => {
                tracing::warn!(error = %batch_err, ops = ops.len(), "batched commit failed; applying one at a time");
                for op in ops {
                    match self.commit(std::slice::from_ref(&op)).await {
                        Ok(ended) => self.outlets().settle(vec![op], ended),
                        Err(e) if e.is_unavailable() => {
                            self.health.down(&e);
                            self.fail(op, &e, RecordErrorKind::Unavailable);
                        }
                        Err(e) => self.fail(op, &e, RecordErrorKind::Other),
                    }
                }
            }
        }
    }

    fn fail(&mut self, op: Op, err: &PgError, kind: RecordErrorKind) {
        match op {
            Op::Insert { ack, job } => {
                if kind != RecordErrorKind::Unavailable {
                    tracing::error!(id = %job.id, error = %err, "could not record a new job");
                }
                let _ = ack.send(Err(RecordError {
                    kind,
                    reason: format!("the job store could not record the job: {err}"),
                }));
            }
            op @ Op::Finish { .. } => self.retry.push(op),
            // Dropped: the probe fails.
            Op::Probe(_) | Op::Close => {}
        }
    }

    async fn commit(&self, ops: &[Op]) -> Result<Vec<Option<JobView>>, PgError> {
        match tokio::time::timeout(STATEMENT_TIMEOUT, self.transaction(ops)).await {
            Ok(r) => r,
            Err(_) => Err(PgError::Timeout),
        }
    }

    /// The statements of one batch; see [`plan`] for which op writes what.
    async fn transaction(&self, ops: &[Op]) -> Result<Vec<Option<JobView>>, PgError> {
        let roles = plan(ops);
        // One end time for the whole commit, as in SQLite: the log's
        // reconciliation relies on it growing in commit order per node.
        let finished = now_ms();
        let finished_at = rfc3339(finished);
        let mut ended: Vec<Option<JobView>> = vec![None; ops.len()];
        let mut ins = InsertColumns::default();
        let mut upd = UpdateColumns::default();
        for (i, op) in ops.iter().enumerate() {
            match (op, roles[i]) {
                (Op::Insert { job, .. }, Role::Insert { finish }) => {
                    let outcome = finish.and_then(|j| match &ops[j] {
                        Op::Finish { finish, .. } => Some((j, FinalColumns::of(finish))),
                        _ => None,
                    });
                    let (status, hash, hashes, size, error) = match &outcome {
                        Some((_, o)) => (
                            o.status,
                            o.hash,
                            o.hashes,
                            o.size.unwrap_or(job.size),
                            o.error,
                        ),
                        None => (JobStatus::Pending, None, None, job.size, None),
                    };
                    ins.id.push(&job.id);
                    ins.status.push(status_text(status));
                    ins.algorithm.push(&job.algorithm);
                    ins.hash.push(hash);
                    ins.hashes.push(hashes);
                    ins.size.push(size as i64);
                    ins.name.push(job.name.as_deref());
                    ins.error.push(error);
                    ins.stored_path.push(
                        job.stored_path
                            .as_ref()
                            .map(|p| p.to_string_lossy().into_owned()),
                    );
                    ins.created_ms.push(job.created_ms);
                    ins.finished_ms.push(outcome.as_ref().map(|_| finished));
                    if let Some((j, o)) = outcome {
                        ended[j] = Some(o.view(
                            job.id.clone(),
                            job.algorithm.clone(),
                            Some(size),
                            job.name.clone(),
                            job.created_ms,
                            finished_at.clone(),
                        ));
                    }
                }
                (Op::Finish { id, finish, .. }, Role::Update) => {
                    let o = FinalColumns::of(finish);
                    upd.index.push(i);
                    upd.id.push(id);
                    upd.status.push(status_text(o.status));
                    upd.hash.push(o.hash);
                    upd.hashes.push(o.hashes);
                    upd.size.push(o.size.map(|s| s as i64));
                    upd.error.push(o.error);
                }
                _ => {}
            }
        }
        let node = self.node.id.as_str();
        let mut client = self.pool.get().await.map_err(PgError::Pool)?;
        let tx = client.transaction().await.map_err(PgError::Db)?;
        if !ins.id.is_empty() {
            let stmt = tx.prepare_cached(INSERT_SQL).await.map_err(PgError::Db)?;
            tx.execute(
                &stmt,
                &[
                    &ins.id,
                    &ins.status,
                    &ins.algorithm,
                    &ins.hash,
                    &ins.size,
                    &ins.name,
                    &ins.error,
                    &ins.stored_path,
                    &ins.created_ms,
                    &ins.finished_ms,
                    &node,
                    &ins.hashes,
                ],
            )
            .await
            .map_err(PgError::Db)?;
        }
        if !upd.id.is_empty() {
            let stmt = tx
                .prepare_cached(&update_sql())
                .await
                .map_err(PgError::Db)?;
            let rows = tx
                .query(
                    &stmt,
                    &[
                        &upd.id,
                        &upd.status,
                        &upd.hash,
                        &upd.size,
                        &upd.error,
                        &finished,
                        &node,
                        &upd.hashes,
                    ],
                )
                .await
                .map_err(PgError::Db)?;
            let at: std::collections::HashMap<&str, usize> = upd
                .id
                .iter()
                .zip(&upd.index)
                .map(|(id, i)| (*id, *i))
                .collect();
            for r in rows {
                let id: String = r.try_get(0).map_err(PgError::Db)?;
                let Some(&i) = at.get(id.as_str()) else {
                    continue;
                };
                let Op::Finish { finish, .. } = &ops[i] else {
                    continue;
                };
                ended[i] = Some(
                    FinalColumns::of(finish).view(
                        id,
                        r.try_get(1).map_err(PgError::Db)?,
                        r.try_get::<_, Option<i64>>(2)
                            .map_err(PgError::Db)?
                            .map(|s| s as u64),
                        r.try_get(3).map_err(PgError::Db)?,
                        r.try_get(4).map_err(PgError::Db)?,
                        finished_at.clone(),
                    ),
                );
            }
        }
        announce(&tx, ended.iter().flatten().map(|v| v.id.as_str())).await?;
        tx.commit().await.map_err(PgError::Db)?;
        Ok(ended)
    }

    /// Updates this node's row, then fails the jobs of dead nodes.
    async fn heartbeat(&mut self) {
        let report = self
            .report
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let beat = async {
            let client = self.pool.get().await.map_err(PgError::Pool)?;
            client
                .execute(
                    "INSERT INTO nodes (id, address, started_ms, heartbeat, hashers, jobs_in_flight, bytes_per_sec, version)
                     VALUES ($1, $2, $3, now(), $4, $5, $6, $7)
                     ON CONFLICT (id) DO UPDATE SET address = $2, started_ms = $3, heartbeat = now(),
                         hashers = $4, jobs_in_flight = $5, bytes_per_sec = $6, version = $7",
                    &[
                        &self.node.id,
                        &self.node.address,
                        &self.node.started_ms,
                        &(report.hashers as i32),
                        &(report.jobs_in_flight as i64),
                        &report.bytes_per_sec,
                        &env!("CARGO_PKG_VERSION"),
                    ],
                )
                .await
                .map_err(PgError::Db)
        };
        let result = match tokio::time::timeout(STATEMENT_TIMEOUT, beat).await {
            Ok(r) => r,
            Err(_) => Err(PgError::Timeout),
        };
        match result {
            Ok(_) => {
                self.health.up();
                let up = *self.up_since.get_or_insert_with(Instant::now);
                if up.elapsed() >= self.node.timeout {
                    match tokio::time::timeout(STATEMENT_TIMEOUT, self.reap()).await {
                        Ok(Ok(views)) if !views.is_empty() => self.outlets().publish(&views),
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, "failing the jobs of dead nodes failed; next heartbeat retries")
                        }
                        Err(_) => tracing::warn!(
                            "failing the jobs of dead nodes timed out; next heartbeat retries"
                        ),
                    }
                }
            }
            Err(e) => {
                self.up_since = None;
                if e.is_unavailable() {
                    self.health.down(&e);
                } else {
                    tracing::warn!(error = %e, "heartbeat failed");
                }
            }
        }
    }

    /// Fails the PENDING jobs of every node whose heartbeat is older than
    /// this node's timeout, under a lock so that one live node does it.
    /// Returns the jobs it ended; they belong in this node's results log.
    async fn reap(&self) -> Result<Vec<JobView>, PgError> {
        let timeout = self.node.timeout.as_secs_f64();
        let mut client = self.pool.get().await.map_err(PgError::Pool)?;
        let tx = client.transaction().await.map_err(PgError::Db)?;
        let locked: bool = tx
            .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&REAP_LOCK])
            .await
            .map_err(PgError::Db)?
            .get(0);
        if !locked {
            return Ok(Vec::new());
        }
        let dead = tx
            .query(
                &format!(
                    "SELECT DISTINCT n.id, n.address FROM nodes n JOIN jobs j ON j.node = n.id AND j.{}
                     WHERE n.heartbeat < now() - make_interval(secs => $1) AND n.id <> $2",
                    status_is(JobStatus::Pending)
                ),
                &[&timeout, &self.node.id],
            )
            .await
            .map_err(PgError::Db)?;
        let finished = now_ms();
        let mut views = Vec::new();
        for n in dead {
            let (id, address): (String, String) = (n.get(0), n.get(1));
            let reason = format!(
                "node {id} ({address}) stopped: no heartbeat for more than {} s before the job finished",
                self.node.timeout.as_secs_f64()
            );
            let rows = tx
                .query(
                    &format!(
                        "UPDATE jobs SET status = $1, error = $2, finished_ms = $3, finished_by = $4
                         WHERE node = $5 AND {}
                         RETURNING {}",
                        status_is(JobStatus::Pending),
                        super::schema::COLUMNS
                    ),
                    &[
                        &status_text(JobStatus::Failure),
                        &reason,
                        &finished,
                        &self.node.id,
                        &id,
                    ],
                )
                .await
                .map_err(PgError::Db)?;
            tracing::warn!(node = %id, %address, jobs = rows.len(), "a node stopped heartbeating; its unfinished jobs failed");
            for r in &rows {
                views.push(super::row_to_view(r).map_err(PgError::Row)?);
            }
        }
        announce(&tx, views.iter().map(|v| v.id.as_str())).await?;
        tx.commit().await.map_err(PgError::Db)?;
        Ok(views)
    }
}

/// NOTIFYs the ids of jobs that ended, in payloads under the server's
/// limit; delivered to listeners when the transaction commits.
async fn announce<'a>(
    tx: &deadpool_postgres::Transaction<'_>,
    ids: impl Iterator<Item = &'a str>,
) -> Result<(), PgError> {
    let mut payloads = vec![String::new()];
    for id in ids {
        let last = payloads.last_mut().expect("never empty");
        if !last.is_empty() && last.len() + 1 + id.len() > NOTIFY_PAYLOAD {
            payloads.push(String::new());
        }
        let last = payloads.last_mut().expect("never empty");
        if !last.is_empty() {
            last.push(',');
        }
        last.push_str(id);
    }
    payloads.retain(|p| !p.is_empty());
    if payloads.is_empty() {
        return Ok(());
    }
    tx.execute(
        "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p",
        &[&CHANNEL, &payloads],
    )
    .await
    .map_err(PgError::Db)?;
    Ok(())
}

/// New rows, all of a batch in one statement: each column an array.
const INSERT_SQL: &str = "INSERT INTO jobs (id, status, algorithm, hash, size, name, error, stored_path, created_ms, finished_ms, node, finished_by, hashes)
    SELECT u.id, u.status, u.algorithm, u.hash, u.size, u.name, u.error, u.stored_path, u.created_ms, u.finished_ms,
           $11, CASE WHEN u.finished_ms IS NULL THEN NULL ELSE $11 END, u.hashes
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::text[], $7::text[], $8::text[], $9::int8[], $10::int8[], $12::text[])
         AS u(id, status, algorithm, hash, size, name, error, stored_path, created_ms, finished_ms, hashes)";

/// Ends PENDING jobs, all of a batch in one statement; a job already final,
/// or without a row, is left alone (and not returned).
fn update_sql() -> String {
    format!(
        "UPDATE jobs AS j SET status = u.status, hash = u.hash, size = COALESCE(u.size, j.size),
             error = u.error, finished_ms = $6, finished_by = $7, hashes = u.hashes
         FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $8::text[])
              AS u(id, status, hash, size, error, hashes)
         WHERE j.id = u.id AND j.{}
         RETURNING j.id, j.algorithm, j.size, j.name, j.created_ms",
        status_is(JobStatus::Pending)
    )
}

#[derive(Default)]
struct InsertColumns<'a> {
    id: Vec<&'a str>,
    status: Vec<&'static str>,
    algorithm: Vec<&'a str>,
    hash: Vec<Option<&'a str>>,
    hashes: Vec<Option<&'a str>>,
    size: Vec<i64>,
    name: Vec<Option<&'a str>>,
    error: Vec<Option<&'a str>>,
    stored_path: Vec<Option<String>>,
    created_ms: Vec<i64>,
    finished_ms: Vec<Option<i64>>,
}

#[derive(Default)]
struct UpdateColumns<'a> {
    /// The op each row came from.
    index: Vec<usize>,
    id: Vec<&'a str>,
    status: Vec<&'static str>,
    hash: Vec<Option<&'a str>>,
    hashes: Vec<Option<&'a str>>,
    size: Vec<Option<i64>>,
    error: Vec<Option<&'a str>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_come_four_or_more_times_per_timeout() {
        assert_eq!(
            heartbeat_interval(Duration::from_secs(10)),
            Duration::from_secs(2)
        );
        assert_eq!(
            heartbeat_interval(Duration::from_secs(1)),
            Duration::from_millis(200)
        );
        assert_eq!(
            heartbeat_interval(Duration::from_millis(100)),
            Duration::from_millis(100)
        );
    }
}
