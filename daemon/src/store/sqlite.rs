//! The SQLite store: one file in WAL mode.
//!
//! One writer thread (`writer`) owns the only writing connection; readers
//! use their own pooled read-only connections and never wait for it (WAL).
//!
//! Durability: `synchronous=NORMAL`. A commit is in the WAL file when it
//! returns, so a killed daemon loses nothing; only a power loss can drop the
//! last transactions. `--sync full` trades throughput for that too.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use frontends::{JobPage, JobStatus, JobView, ListQuery};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use tokio::sync::oneshot;

use super::batch::Op;
use super::cache::RecentJobs;
use super::schema::{add_missing_columns, row_to_view, status_is, DbStatus, COLUMNS, SCHEMA};
use super::waiters::Waiters;
use super::writer::Writer;
use super::{
    recovery, Counts, Expired, Finish, Interrupted, NewJob, Node, NodeReport, NodeView,
    RecordError, RecordErrorKind, SyncMode, EXPIRE_WINDOW,
};
use crate::results_log::ResultsLog;
use crate::util::is_valid_id;

/// The SQLite implementation of [`super::JobStore`]; the daemon holds it as
/// [`super::Store::Sqlite`].
pub struct SqliteStore {
    tx: mpsc::Sender<Op>,
    recent: Arc<RecentJobs>,
    readers: Arc<Readers>,
    writer: Mutex<Option<JoinHandle<()>>>,
    waiters: Arc<Waiters>,
    node: Node,
    report: Mutex<NodeReport>,
}

impl SqliteStore {
    /// See [`super::Store::open`].
    pub fn open(
        path: &Path,
        sync: SyncMode,
        log: ResultsLog,
        node: Node,
        metrics: Arc<crate::metrics::StoreMetrics>,
    ) -> anyhow::Result<SqliteStore> {
        let conn = open_writer(path, sync)
            .with_context(|| format!("cannot open the job database {}", path.display()))?;
        recovery::complete_log(&conn, &log)
            .context("cannot compare the results log with the job database")?;
        let (tx, rx) = mpsc::channel();
        let recent = Arc::new(RecentJobs::default());
        let waiters = Arc::new(Waiters::default());
        let writer = Writer::new(conn, log, recent.clone(), waiters.clone(), metrics);
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run(rx))?;
        Ok(SqliteStore {
            tx,
            recent,
            readers: Arc::new(Readers {
                path: path.to_path_buf(),
                pool: Mutex::new(Vec::new()),
            }),
            writer: Mutex::new(Some(writer)),
            waiters,
            node,
            report: Mutex::default(),
        })
    }

    /// See [`super::JobStore::insert`].
    pub fn insert(&self, job: NewJob) -> oneshot::Receiver<Result<(), RecordError>> {
        let (ack, rx) = oneshot::channel();
        if let Err(mpsc::SendError(Op::Insert { ack, .. })) = self.tx.send(Op::Insert { job, ack })
        {
            let _ = ack.send(Err(RecordError {
                kind: RecordErrorKind::Other,
                reason: "the job store is closed".into(),
            }));
        }
        rx
    }

    /// See [`super::JobStore::finish`].
    pub fn finish(&self, id: String, finish: Finish, notify: Option<oneshot::Sender<JobView>>) {
        let _ = self.tx.send(Op::Finish { id, finish, notify });
    }

    /// See [`super::JobStore::get`]. Runs on the caller's thread: a keyed
    /// read on a pooled WAL connection takes microseconds and never waits
    /// for the writer, where a hop to a blocking pool would cost more.
    pub async fn get(&self, id: &str) -> anyhow::Result<Option<JobView>> {
        if !is_valid_id(id) {
            return Ok(None);
        }
        if let Some(view) = self.recent.get(id) {
            return Ok(Some(view));
        }
        self.readers.with(|c| {
            c.prepare_cached(&format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"))?
                .query_row([id], row_to_view)
                .optional()
        })
    }

    /// See [`super::JobStore::list`]; on the blocking pool (a page scans).
    pub async fn list(&self, query: ListQuery) -> anyhow::Result<JobPage> {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || readers.list(&query)).await?
    }

    /// See [`super::JobStore::counts`]; on the blocking pool (it scans).
    pub async fn counts(&self) -> anyhow::Result<Counts> {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || readers.counts()).await?
    }

    /// See [`super::JobStore::interrupted`].
    pub async fn interrupted(&self) -> anyhow::Result<Vec<Interrupted>> {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || readers.with(recovery::interrupted)).await?
    }

    /// See [`super::JobStore::expire`]: on its own connection, in one short
    /// immediate transaction (the writer waits for it at most that long).
    pub async fn expire(&self, before_ms: i64, after: i64) -> anyhow::Result<Expired> {
        let path = self.readers.path.clone();
        let expired = tokio::task::spawn_blocking(move || -> anyhow::Result<Expired> {
            let mut conn = Connection::open(&path)?;
            conn.busy_timeout(Duration::from_secs(5))?;
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let rows = {
                let mut stmt = tx.prepare(
                    "SELECT seq, id, status, finished_ms, created_ms, stored_path FROM jobs
                     WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )?;
                let rows = stmt.query_map(params![after, EXPIRE_WINDOW], |r| {
                    Ok(Window {
                        seq: r.get(0)?,
                        id: r.get(1)?,
                        status: r.get::<_, DbStatus>(2)?.0,
                        finished_ms: r.get(3)?,
                        created_ms: r.get(4)?,
                        stored_path: r.get(5)?,
                    })
                })?;
                rows.collect::<Result<Vec<_>, _>>()?
            };
            let expired = expire_window(rows, before_ms);
            {
                let mut delete = tx.prepare("DELETE FROM jobs WHERE id = ?1")?;
                for (id, _) in &expired.jobs {
                    delete.execute([id])?;
                }
            }
            tx.commit()?;
            Ok(expired)
        })
        .await??;
        self.recent
            .remove(expired.jobs.iter().map(|(id, _)| id.as_str()));
        Ok(expired)
    }

    /// See [`super::JobStore::nodes`]: this node alone, alive.
    pub async fn nodes(&self) -> anyhow::Result<Vec<NodeView>> {
        let r = self
            .report
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        Ok(vec![NodeView {
            id: self.node.id.clone(),
            address: self.node.address.clone(),
            started_at: crate::util::rfc3339(self.node.started_ms),
            last_heartbeat: crate::util::rfc3339(crate::util::now_ms()),
            alive: true,
            hashers: r.hashers,
            jobs_in_flight: r.jobs_in_flight,
            bytes_per_sec: r.bytes_per_sec,
        }])
    }

    /// See [`super::JobStore::report`].
    pub fn report(&self, report: NodeReport) {
        *self.report.lock().unwrap_or_else(|p| p.into_inner()) = report;
    }

    /// See [`super::JobStore::ready`]: a commit by the writer.
    pub async fn ready(&self) -> anyhow::Result<()> {
        let (ack, done) = oneshot::channel();
        let _ = self.tx.send(Op::Probe(ack));
        done.await
            .map_err(|_| anyhow::anyhow!("the writer could not commit"))
    }

    /// A local file is never unreachable.
    pub fn is_down(&self) -> bool {
        false
    }

    /// See [`super::JobStore::waiters`].
    pub fn waiters(&self) -> &Arc<Waiters> {
        &self.waiters
    }

    /// See [`super::JobStore::close`].
    pub async fn close(&self) {
        self.close_now();
    }

    /// The writer applies what is queued, commits, checkpoints and closes
    /// the results log; joined here, on the calling thread.
    fn close_now(&self) {
        let _ = self.tx.send(Op::Close);
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(w) = writer {
            let _ = w.join();
        }
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close_now();
    }
}

/// A row of a retention window.
pub(super) struct Window {
    pub seq: i64,
    pub id: String,
    pub status: JobStatus,
    pub finished_ms: Option<i64>,
    pub created_ms: i64,
    pub stored_path: Option<String>,
}

/// Of a window of rows, oldest first, those to delete: final, ended before
/// `before_ms`. Stops at the first job created at or after the cut-off
/// (later rows are younger still, near enough: ids are made at upload
/// time), which ends the pass. Shared by both stores.
pub(super) fn expire_window(rows: Vec<Window>, before_ms: i64) -> Expired {
    let full = rows.len() as i64 == EXPIRE_WINDOW;
    let mut expired = Expired::default();
    let mut last = None;
    for row in rows {
        if row.created_ms >= before_ms {
            return expired;
        }
        last = Some(row.seq);
        let ended_before = row.finished_ms.is_some_and(|f| f < before_ms);
        if row.status != JobStatus::Pending && ended_before {
            expired
                .jobs
                .push((row.id, row.stored_path.map(PathBuf::from)));
        }
    }
    expired.next = if full { last } else { None };
    expired
}

/// Read-only connections, opened on demand and kept for reuse.
struct Readers {
    path: PathBuf,
    pool: Mutex<Vec<Connection>>,
}

impl Readers {
    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> anyhow::Result<T> {
        let pooled = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match pooled {
            Some(c) => c,
            None => open_reader(&self.path)?,
        };
        let result = f(&conn);
        self.pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
        Ok(result?)
    }

    fn list(&self, q: &ListQuery) -> anyhow::Result<JobPage> {
        // The status is a literal in the SQL (see `status_is`): one of three
        // fixed strings, never client text.
        let status = match q.status {
            Some(s) => status_is(s),
            None => "1".to_string(),
        };
        // Likewise a page after a job gets its own SQL, so that the bound is a
        // range on the rowid rather than a filter on every row.
        let (after, id) = match q.after.as_deref() {
            Some(id) => ("seq < (SELECT seq FROM jobs WHERE id = ?1)", id),
            None => ("?1 IS NOT NULL", ""),
        };
        // Fetch one extra row to know whether a next page exists.
        let fetch = q.limit as i64 + 1;
        let mut jobs = self.with(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM jobs WHERE {status} AND {after} ORDER BY seq DESC LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![id, fetch], row_to_view)?;
            rows.collect::<Result<Vec<_>, _>>()
        })?;
        let next = if jobs.len() > q.limit {
            jobs.truncate(q.limit);
            jobs.last().map(|j| j.id.clone())
        } else {
            None
        };
        Ok(JobPage { jobs, next })
    }

    fn counts(&self) -> anyhow::Result<Counts> {
        self.with(|c| {
            let mut counts = Counts::default();
            let mut stmt = c.prepare_cached(
                "SELECT status, COUNT(*), COALESCE(SUM(size), 0) FROM jobs GROUP BY status",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let n = r.get::<_, i64>(1)? as u64;
                match r.get::<_, DbStatus>(0)?.0 {
                    JobStatus::Pending => counts.pending = n,
                    JobStatus::Success => {
                        counts.success = n;
                        counts.bytes_hashed = r.get::<_, i64>(2)? as u64;
                    }
                    JobStatus::Failure => counts.failure = n,
                }
                counts.total += n;
            }
            Ok(counts)
        })
    }
}

/// The writing connection, with the schema applied.
pub(super) fn open_writer(path: &Path, sync: SyncMode) -> anyhow::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    anyhow::ensure!(
        mode.eq_ignore_ascii_case("wal"),
        "the database refused WAL mode (got {mode})"
    );
    conn.pragma_update(
        None,
        "synchronous",
        if sync == SyncMode::Full {
            "FULL"
        } else {
            "NORMAL"
        },
    )?;
    conn.execute_batch(&SCHEMA)?;
    add_missing_columns(&conn)?;
    // Take the write lock once now: another process holding it (a backup
    // tool, a stray sqlite3 shell) stops start-up with a clear error after the
    // busy timeout, instead of failing every upload later.
    conn.execute_batch("BEGIN IMMEDIATE; COMMIT;")
        .map_err(|e| anyhow::anyhow!("the job database is locked by another process ({e})"))?;
    Ok(conn)
}

fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::JobStore as _;
    use crate::store::Store;
    use crate::util::new_id;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hashd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn new_job(id: &str) -> NewJob {
        NewJob {
            id: id.into(),
            algorithm: "md5".into(),
            size: 3,
            name: None,
            stored_path: None,
            created_ms: 1000,
        }
    }

    #[test]
    fn a_reader_sees_pending_then_the_result_and_close_applies_what_is_queued() {
        let dir = temp_dir("store-contract");
        let db = dir.join("jobs.db");
        let rt = runtime();
        let id = new_id().unwrap();
        let late = new_id().unwrap();
        {
            let store = Store::open(
                &db,
                SyncMode::Normal,
                ResultsLog::open(&dir.join("log")).unwrap(),
            )
            .unwrap();
            rt.block_on(store.insert(new_job(&id))).unwrap().unwrap();
            let v = rt.block_on(store.get(&id)).unwrap().unwrap();
            assert_eq!(v.status, JobStatus::Pending);
            let (notify, told) = oneshot::channel();
            store.finish(
                id.clone(),
                Finish::Success {
                    hash: "ab".into(),
                    hashes: None,
                    size: 3,
                },
                Some(notify),
            );
            let told = rt.block_on(told).unwrap();
            assert_eq!(rt.block_on(store.get(&id)).unwrap(), Some(told));
            rt.block_on(store.insert(new_job(&late))).unwrap().unwrap();
            store.finish(
                late.clone(),
                Finish::Failure {
                    reason: "late".into(),
                },
                None,
            );
            rt.block_on(store.close());
            let refused = rt.block_on(store.insert(new_job("x"))).unwrap();
            assert!(refused.is_err_and(|e| e.kind == RecordErrorKind::Other));
        }
        let store = Store::open(
            &db,
            SyncMode::Normal,
            ResultsLog::open(&dir.join("log")).unwrap(),
        )
        .unwrap();
        let v = rt.block_on(store.get(&late)).unwrap().unwrap();
        assert_eq!(v.error.as_deref(), Some("late"));
        let counts = rt.block_on(store.counts()).unwrap();
        assert_eq!((counts.success, counts.failure, counts.total), (1, 1, 2));
        assert!(rt.block_on(store.interrupted()).unwrap().is_empty());
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn reads_of_a_corrupt_status_fail_instead_of_answering_failure() {
        let dir = temp_dir("store-corrupt");
        let db = dir.join("jobs.db");
        let rt = runtime();
        let id = new_id().unwrap();
        let store = Store::open(
            &db,
            SyncMode::Normal,
            ResultsLog::open(&dir.join("log")).unwrap(),
        )
        .unwrap();
        {
            // Another connection, past the CHECK: a hand edit.
            let conn = Connection::open(&db).unwrap();
            conn.busy_timeout(Duration::from_secs(5)).unwrap();
            conn.execute_batch("PRAGMA ignore_check_constraints = ON")
                .unwrap();
            conn.execute(
                "INSERT INTO jobs (id, status, algorithm, created_ms) VALUES (?1, 'DONE', 'md5', 0)",
                [&id],
            )
            .unwrap();
        }
        let err = rt.block_on(store.get(&id)).unwrap_err();
        assert!(format!("{err:#}").contains("\"DONE\""), "{err:#}");
        assert!(rt.block_on(store.counts()).is_err());
        let all = ListQuery {
            status: None,
            limit: 10,
            after: None,
        };
        assert!(rt.block_on(store.list(all)).is_err());
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
