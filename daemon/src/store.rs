//! The job store: SQLite in WAL mode.
//!
//! One writer thread owns the only writing connection and applies status
//! changes in batches, one transaction per batch, so thousands of jobs per
//! second cost a few commits. A job's row is committed before its id is
//! returned (the caller awaits the insert's acknowledgement). Readers use
//! their own connections and never wait for the writer (WAL).
//!
//! Durability: `synchronous=NORMAL`. A commit is in the WAL file when it
//! returns, so a killed daemon loses nothing; only a power loss can drop the
//! last transactions. `--sync full` trades throughput for that too.
//!
//! Results reach the results log only after their commit, from the writer
//! thread, in commit order. Results committed but not yet logged when the
//! daemon was killed are appended when it next opens the store (`unlogged`).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use frontends::{JobPage, JobStatus, JobView, ListQuery};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use tokio::sync::oneshot;

use crate::results_log::{LogLine, LogTail, ResultsLog};
use crate::util::{is_valid_id, now_ms, rfc3339};

/// Finished jobs kept in memory for lookups. Clients poll a job soon after
/// uploading it; answering those polls from memory skips a read transaction
/// (a mutex, shared-memory locks and the SQL engine) per poll. A finished job
/// never changes, so a copy cannot go stale. About 300 bytes each.
const RECENT_JOBS: usize = 16 * 1024;

/// Most operations applied in one transaction; bounds the latency a batch
/// adds to the acknowledgements waiting on it.
const MAX_BATCH_OPS: usize = 4096;

const SCHEMA: &str = "
-- seq is the rowid: rows are never deleted, so it grows without AUTOINCREMENT
-- (which only added a sqlite_sequence write per insert).
CREATE TABLE IF NOT EXISTS jobs (
    seq         INTEGER PRIMARY KEY,
    id          TEXT    NOT NULL UNIQUE,
    status      TEXT    NOT NULL CHECK (status IN ('PENDING', 'SUCCESS', 'FAILURE')),
    algorithm   TEXT    NOT NULL,
    hash        TEXT,
    size        INTEGER,
    name        TEXT,
    error       TEXT,
    stored_path TEXT,
    created_ms  INTEGER NOT NULL,
    finished_ms INTEGER
);
-- Jobs by status, for start-up recovery and /jobs?status=: partial indexes
-- over the rare states only. A job that ends in its insert's batch (most)
-- then adds no index entry beyond the id, and a listing of SUCCESS jobs walks
-- the table newest first, where nearly every row matches.
CREATE INDEX IF NOT EXISTS jobs_pending ON jobs (seq) WHERE status = 'PENDING';
CREATE INDEX IF NOT EXISTS jobs_failed ON jobs (seq) WHERE status = 'FAILURE';
DROP INDEX IF EXISTS jobs_by_status;
";

/// How hard commits push to disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// Safe against a killed process; a power loss may drop the last commits.
    Normal,
    /// fsync on every commit (batched, so still many jobs per fsync).
    Full,
}

/// A job whose bytes have all arrived.
#[derive(Clone, Debug)]
pub struct NewJob {
    pub id: String,
    pub algorithm: String,
    pub size: u64,
    pub name: Option<String>,
    /// Where the upload was kept, when keeping uploads is on.
    pub stored_path: Option<PathBuf>,
    pub created_ms: i64,
}

/// How a job ended.
#[derive(Clone, Debug)]
pub enum Finish {
    Success { hash: String, size: u64 },
    Failure { reason: String },
}

/// A job found PENDING at start-up: a previous run stopped before it ended.
#[derive(Clone, Debug)]
pub struct Interrupted {
    pub id: String,
    pub algorithm: String,
    pub size: Option<u64>,
    pub stored_path: Option<PathBuf>,
}

/// Why a new job could not be recorded.
#[derive(Clone, Debug)]
pub struct RecordError {
    /// The disk (or the database's quota) is full: retrying later may work.
    pub disk_full: bool,
    pub reason: String,
}

/// Counts for `/stats`.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Counts {
    pub pending: u64,
    pub success: u64,
    pub failure: u64,
    pub total: u64,
    /// Bytes of all successful jobs.
    pub bytes_hashed: u64,
}

/// The last [`RECENT_JOBS`] finished jobs, filled by the writer after each
/// commit, oldest dropped first.
#[derive(Default)]
struct Recent {
    inner: Mutex<RecentInner>,
}

#[derive(Default)]
struct RecentInner {
    views: HashMap<String, JobView>,
    order: VecDeque<String>,
}

impl Recent {
    fn get(&self, id: &str) -> Option<JobView> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.views.get(id).cloned()
    }

    fn add<'a>(&self, views: impl Iterator<Item = &'a JobView>) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for view in views {
            if inner.views.insert(view.id.clone(), view.clone()).is_none() {
                inner.order.push_back(view.id.clone());
            }
        }
        while inner.order.len() > RECENT_JOBS {
            if let Some(old) = inner.order.pop_front() {
                inner.views.remove(&old);
            }
        }
    }
}

enum Op {
    Insert {
        job: NewJob,
        ack: oneshot::Sender<Result<(), RecordError>>,
    },
    Finish {
        id: String,
        finish: Finish,
        /// Apply no earlier than this (the original's artificial delay).
        not_before: Option<Instant>,
        /// Told the final state once it is committed.
        notify: Option<oneshot::Sender<JobView>>,
    },
    Close,
}

pub struct Store {
    tx: mpsc::Sender<Op>,
    path: PathBuf,
    recent: Arc<Recent>,
    readers: Mutex<Vec<Connection>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Store {
    /// Opens (creating) the database, and starts the writer thread, which
    /// appends each committed result to `log`.
    pub fn open(path: &Path, sync: SyncMode, log: ResultsLog) -> anyhow::Result<Store> {
        let conn = open_writer(path, sync)
            .with_context(|| format!("cannot open the job database {}", path.display()))?;
        if let Some(tail) = log.tail() {
            let lines = unlogged(&conn, tail)
                .context("cannot compare the results log with the job database")?;
            if !lines.is_empty() {
                tracing::warn!(
                    lines = lines.len(),
                    "results committed before a crash were missing from the results log; appended them"
                );
                log.append(lines);
            }
        }
        let (tx, rx) = mpsc::channel();
        let recent = Arc::new(Recent::default());
        let writer_recent = recent.clone();
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || Writer::new(conn, log, writer_recent).run(rx))?;
        Ok(Store {
            tx,
            path: path.to_path_buf(),
            recent,
            readers: Mutex::new(Vec::new()),
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Jobs left PENDING by a previous run. Call before accepting new jobs.
    pub fn interrupted(&self) -> anyhow::Result<Vec<Interrupted>> {
        self.with_reader(|c| {
            let mut stmt = c.prepare(
                "SELECT id, algorithm, size, stored_path FROM jobs WHERE status = 'PENDING' ORDER BY seq",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(Interrupted {
                    id: r.get(0)?,
                    algorithm: r.get(1)?,
                    size: r.get::<_, Option<i64>>(2)?.map(|s| s as u64),
                    stored_path: r.get::<_, Option<String>>(3)?.map(PathBuf::from),
                })
            })?;
            rows.collect()
        })
    }

    /// Queues the insert; the receiver resolves once it is committed.
    pub fn insert(&self, job: NewJob) -> oneshot::Receiver<Result<(), RecordError>> {
        let (ack, rx) = oneshot::channel();
        if let Err(mpsc::SendError(Op::Insert { ack, .. })) = self.tx.send(Op::Insert { job, ack })
        {
            let _ = ack.send(Err(RecordError {
                disk_full: false,
                reason: "the job store is closed".into(),
            }));
        }
        rx
    }

    /// Queues a job's end. Never blocks: completions call it, on hasher
    /// threads and on the async runtime.
    pub fn finish(
        &self,
        id: String,
        finish: Finish,
        not_before: Option<Instant>,
        notify: Option<oneshot::Sender<JobView>>,
    ) {
        let _ = self.tx.send(Op::Finish {
            id,
            finish,
            not_before,
            notify,
        });
    }

    pub fn get(&self, id: &str) -> anyhow::Result<Option<JobView>> {
        if !is_valid_id(id) {
            return Ok(None);
        }
        if let Some(view) = self.recent.get(id) {
            return Ok(Some(view));
        }
        self.with_reader(|c| {
            c.prepare_cached(&format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"))?
                .query_row([id], row_to_view)
                .optional()
        })
    }

    /// Newest first, `limit` at most, after the job `after` if given.
    pub fn list(&self, q: &ListQuery) -> anyhow::Result<JobPage> {
        // The status is written into the SQL, not bound: only a literal lets
        // SQLite use the partial index of that status. It is one of three
        // fixed strings, never client text.
        let status = match q.status {
            Some(s) => format!("status = '{}'", s.as_str()),
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
        let mut jobs = self.with_reader(|c| {
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

    pub fn counts(&self) -> anyhow::Result<Counts> {
        self.with_reader(|c| {
            let mut counts = Counts::default();
            let mut stmt = c.prepare_cached(
                "SELECT status, COUNT(*), COALESCE(SUM(size), 0) FROM jobs GROUP BY status",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let status: String = r.get(0)?;
                let n = r.get::<_, i64>(1)? as u64;
                match status.as_str() {
                    "PENDING" => counts.pending = n,
                    "SUCCESS" => {
                        counts.success = n;
                        counts.bytes_hashed = r.get::<_, i64>(2)? as u64;
                    }
                    _ => counts.failure = n,
                }
                counts.total += n;
            }
            Ok(counts)
        })
    }

    /// Applies everything queued (delayed finishes at once), commits, closes
    /// the results log and joins the writer.
    pub fn close(&self) {
        let _ = self.tx.send(Op::Close);
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(w) = writer {
            let _ = w.join();
        }
    }

    fn with_reader<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> anyhow::Result<T> {
        let pooled = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match pooled {
            Some(c) => c,
            None => open_reader(&self.path)?,
        };
        let result = f(&conn);
        self.readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
        Ok(result?)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.close();
    }
}

/// The finished jobs a crash kept out of the results log: those committed
/// after the log's last line. Lines are written in commit order and
/// `finished_ms` grows in commit order, so they are the jobs finished after
/// the last line's job, plus those finished in the same millisecond that the
/// log's last lines lack. An empty log, or one whose last job the store
/// does not know (a log shared or replaced by hand), is left as it is. A
/// wall clock stepped back across a crash can defeat this.
fn unlogged(conn: &Connection, tail: &LogTail) -> rusqlite::Result<Vec<LogLine>> {
    let last: Option<i64> = conn
        .query_row(
            "SELECT finished_ms FROM jobs WHERE id = ?1 AND status != 'PENDING'",
            [&tail.last_id],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    let Some(last) = last else {
        return Ok(Vec::new());
    };
    let mut stmt = conn.prepare(
        "SELECT id, status, algorithm, hash, size, name, error, finished_ms FROM jobs
         WHERE status != 'PENDING' AND finished_ms >= ?1 ORDER BY finished_ms, seq",
    )?;
    let rows = stmt.query_map([last], |r| {
        let status: String = r.get(1)?;
        Ok((
            r.get::<_, i64>(7)?,
            LogLine {
                time: rfc3339(r.get(7)?),
                id: r.get(0)?,
                status: if status == "SUCCESS" {
                    "SUCCESS"
                } else {
                    "FAILURE"
                },
                algorithm: r.get(2)?,
                hash: r.get(3)?,
                size: r.get::<_, Option<i64>>(4)?.map(|s| s as u64),
                name: r.get(5)?,
                error: r.get(6)?,
            },
        ))
    })?;
    let mut lines = Vec::new();
    for row in rows {
        let (finished, line) = row?;
        if finished > last || !tail.ids_at_time.contains(&line.id) {
            lines.push(line);
        }
    }
    Ok(lines)
}

const COLUMNS: &str = "id, status, algorithm, hash, size, name, error, created_ms, finished_ms";

fn row_to_view(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobView> {
    let status: String = r.get(1)?;
    Ok(JobView {
        id: r.get(0)?,
        status: JobStatus::parse(&status).unwrap_or(JobStatus::Failure),
        algorithm: r.get(2)?,
        hash: r.get(3)?,
        size: r.get::<_, Option<i64>>(4)?.map(|s| s as u64),
        name: r.get(5)?,
        error: r.get(6)?,
        created_at: rfc3339(r.get(7)?),
        finished_at: r.get::<_, Option<i64>>(8)?.map(rfc3339),
    })
}

fn open_writer(path: &Path, sync: SyncMode) -> anyhow::Result<Connection> {
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
    conn.execute_batch(SCHEMA)?;
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

/// A finish waiting for its artificial delay, ordered by due time.
struct Delayed {
    due: Instant,
    seq: u64,
    op: Op,
}

impl PartialEq for Delayed {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Delayed {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

/// A [`Finish`] as the columns it sets.
struct Outcome<'a> {
    status: JobStatus,
    hash: Option<&'a str>,
    size: Option<u64>,
    error: Option<&'a str>,
}

impl Outcome<'_> {
    /// The final state of a job that ended with this outcome.
    fn view(
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
            algorithm,
            hash: self.hash.map(str::to_string),
            size,
            name,
            error: self.error.map(str::to_string),
            created_at: rfc3339(created_ms),
            finished_at: Some(finished_at),
        }
    }

    fn of(finish: &Finish) -> Outcome<'_> {
        match finish {
            Finish::Success { hash, size } => Outcome {
                status: JobStatus::Success,
                hash: Some(hash),
                size: Some(*size),
                error: None,
            },
            Finish::Failure { reason } => Outcome {
                status: JobStatus::Failure,
                hash: None,
                size: None,
                error: Some(reason),
            },
        }
    }
}

struct Writer {
    conn: Connection,
    log: ResultsLog,
    recent: Arc<Recent>,
    /// Finishes waiting for their artificial delay.
    delayed: BinaryHeap<Reverse<Delayed>>,
    /// Tie-breaker that keeps delayed finishes in arrival order.
    seq: u64,
    /// Finishes that could not be committed (disk full, I/O error), retried
    /// until they can: a job must never stay PENDING for good.
    retry: Vec<Op>,
}

/// Why the writer woke up.
enum Wake {
    Op(Op),
    /// A delayed finish or a retry is due.
    Timer,
    Closed,
}

/// How long failed finishes wait before the next attempt.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);

impl Writer {
    fn new(conn: Connection, log: ResultsLog, recent: Arc<Recent>) -> Writer {
        Writer {
            conn,
            log,
            recent,
            delayed: BinaryHeap::new(),
            seq: 0,
            retry: Vec::new(),
        }
    }

    fn run(mut self, rx: mpsc::Receiver<Op>) {
        let mut closing = false;
        while !closing {
            let mut deadline = self.delayed.peek().map(|Reverse(d)| d.due);
            if !self.retry.is_empty() {
                let at = Instant::now() + RETRY_INTERVAL;
                deadline = Some(deadline.map_or(at, |d| d.min(at)));
            }
            let wake = match deadline {
                None => rx.recv().map_or(Wake::Closed, Wake::Op),
                Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                    Ok(op) => Wake::Op(op),
                    Err(mpsc::RecvTimeoutError::Timeout) => Wake::Timer,
                    Err(mpsc::RecvTimeoutError::Disconnected) => Wake::Closed,
                },
            };
            let mut batch = std::mem::take(&mut self.retry);
            match wake {
                Wake::Op(op) => batch.push(op),
                Wake::Timer => {}
                Wake::Closed => closing = true,
            }
            while batch.len() < MAX_BATCH_OPS {
                match rx.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            closing |= batch.iter().any(|op| matches!(op, Op::Close));
            let now = Instant::now();
            let mut ready = Vec::with_capacity(batch.len());
            for op in batch {
                match op {
                    Op::Close => {}
                    op @ Op::Finish {
                        not_before: Some(due),
                        ..
                    } if due > now && !closing => {
                        // `commit` ignores `not_before`: the heap decides when.
                        self.seq += 1;
                        self.delayed.push(Reverse(Delayed {
                            due,
                            seq: self.seq,
                            op,
                        }));
                    }
                    op => ready.push(op),
                }
            }
            // At close, delayed finishes are applied at once: shutdown must
            // not leave them PENDING.
            while self
                .delayed
                .peek()
                .is_some_and(|Reverse(d)| d.due <= now || closing)
            {
                if let Some(Reverse(d)) = self.delayed.pop() {
                    ready.push(d.op);
                }
            }
            if !ready.is_empty() {
                self.apply(ready);
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
        match self.commit(&ops) {
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
        let mut inserted_at = HashMap::new();
        let mut merged = vec![None; ops.len()];
        for (j, op) in ops.iter().enumerate() {
            match op {
                Op::Insert { job, .. } => {
                    inserted_at.insert(job.id.as_str(), j);
                }
                Op::Finish { id, .. } => {
                    if let Some(i) = inserted_at.remove(id.as_str()) {
                        merged[i] = Some(j);
                    }
                }
                Op::Close => {}
            }
        }
        // One end time for the whole commit: it is when these results became
        // durable, and it keeps `finished_ms` in commit order (see `unlogged`).
        let finished = now_ms();
        let finished_at = rfc3339(finished);
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut ended: Vec<Option<JobView>> = vec![None; ops.len()];
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO jobs (id, status, algorithm, hash, size, name, error, stored_path, created_ms, finished_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?;
            let mut finish = tx.prepare_cached(
                "UPDATE jobs SET status = ?2, hash = ?3, size = COALESCE(?4, size), error = ?5, finished_ms = ?6
                 WHERE id = ?1 AND status = 'PENDING'
                 RETURNING algorithm, size, name, created_ms",
            )?;
            for (i, op) in ops.iter().enumerate() {
                match op {
                    Op::Insert { job, .. } => {
                        let stored = job
                            .stored_path
                            .as_ref()
                            .map(|p| p.to_string_lossy().into_owned());
                        let outcome = merged[i].and_then(|j| match &ops[j] {
                            Op::Finish { finish, .. } => Some((j, Outcome::of(finish))),
                            _ => None,
                        });
                        let (status, hash, size, error) = match &outcome {
                            Some((_, o)) => (o.status, o.hash, o.size.or(Some(job.size)), o.error),
                            None => (JobStatus::Pending, None, Some(job.size), None),
                        };
                        insert.execute(params![
                            job.id,
                            status.as_str(),
                            job.algorithm,
                            hash,
                            size.map(|s| s as i64),
                            job.name,
                            error,
                            stored,
                            job.created_ms,
                            outcome.as_ref().map(|_| finished),
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
                        if ended[i].is_some() {
                            continue; // written with its insert
                        }
                        let o = Outcome::of(f);
                        let row = finish
                            .query_row(
                                params![
                                    id,
                                    o.status.as_str(),
                                    o.hash,
                                    o.size.map(|s| s as i64),
                                    o.error,
                                    finished
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
                    Op::Close => {}
                }
            }
        }
        tx.commit()?;
        Ok(ended)
    }

    /// After a commit: tell waiters, acknowledge inserts, append to the log.
    /// Waiters first: an upload that ended in its insert's batch then answers
    /// with its hash even without `?wait`, since its final state is there
    /// when the acknowledgement wakes it.
    fn settle(&mut self, ops: Vec<Op>, ended: Vec<Option<JobView>>) {
        self.recent.add(ended.iter().flatten());
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
                Op::Close => {}
            }
        }
        for ack in acks {
            let _ = ack.send(Ok(()));
        }
        self.log.append(lines);
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
                    disk_full,
                    reason: format!("the job store could not record the job: {err}"),
                }));
            }
            op @ Op::Finish { .. } => self.retry.push(op),
            Op::Close => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let recent = Arc::new(Recent::default());
        let mut writer = Writer::new(conn, ResultsLog::open(&log_path).unwrap(), recent.clone());
        // "old" was recorded by an earlier batch; "new" arrives with its end;
        // "gone" ends without ever being recorded (an abandoned upload).
        writer.apply(vec![Op::Insert {
            job: new_job("old"),
            ack: oneshot::channel().0,
        }]);
        let success = |hash: &str| Finish::Success {
            hash: hash.into(),
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
                not_before: None,
                notify: None,
            },
            Op::Finish {
                id: "old".into(),
                finish: Finish::Failure {
                    reason: "broken".into(),
                },
                not_before: None,
                notify: None,
            },
            Op::Finish {
                id: "new".into(),
                finish: success("abc"),
                not_before: None,
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

    #[test]
    fn recent_jobs_are_bounded_oldest_out_first() {
        let recent = Recent::default();
        let view = |i: usize| JobView {
            id: format!("{i}"),
            status: JobStatus::Success,
            algorithm: "md5".into(),
            hash: None,
            size: None,
            name: None,
            error: None,
            created_at: String::new(),
            finished_at: None,
        };
        let views: Vec<JobView> = (0..RECENT_JOBS + 10).map(view).collect();
        recent.add(views.iter());
        recent.add(views[RECENT_JOBS..].iter()); // again: no duplicates
        assert_eq!(recent.get("9"), None);
        assert_eq!(recent.get("10"), Some(view(10)));
        assert_eq!(
            recent.get(&format!("{}", RECENT_JOBS + 9)),
            Some(view(RECENT_JOBS + 9))
        );
        let inner = recent.inner.lock().unwrap();
        assert_eq!(
            (inner.views.len(), inner.order.len()),
            (RECENT_JOBS, RECENT_JOBS)
        );
    }

    #[test]
    fn finds_the_results_a_crash_kept_out_of_the_log() {
        let path = std::env::temp_dir().join(format!("hashd-unlogged-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let conn = open_writer(&path, SyncMode::Normal).unwrap();
        // a and b finished at 1000, c at 1000, d at 1001, e still PENDING.
        for (seq, id, status, finished) in [
            (1, "a", "SUCCESS", Some(999)),
            (2, "b", "SUCCESS", Some(1000)),
            (3, "c", "FAILURE", Some(1000)),
            (4, "d", "SUCCESS", Some(1001)),
            (5, "e", "PENDING", None),
        ] {
            conn.execute(
                "INSERT INTO jobs (seq, id, status, algorithm, created_ms, finished_ms)
                 VALUES (?1, ?2, ?3, 'md5', 0, ?4)",
                params![seq, id, status, finished],
            )
            .unwrap();
        }
        let tail = |last: &str, ids: &[&str]| LogTail {
            time: rfc3339(1000),
            last_id: last.into(),
            ids_at_time: ids.iter().map(|s| s.to_string()).collect(),
        };
        let ids = |lines: Vec<LogLine>| lines.into_iter().map(|l| l.id).collect::<Vec<_>>();
        // The log ends with b: c (same millisecond) and d are missing.
        assert_eq!(
            ids(unlogged(&conn, &tail("b", &["b"])).unwrap()),
            ["c", "d"]
        );
        // The log ends with c, b before it in the same millisecond.
        assert_eq!(
            ids(unlogged(&conn, &tail("c", &["c", "b"])).unwrap()),
            ["d"]
        );
        // A last line the store does not know: left alone.
        assert!(unlogged(&conn, &tail("zz", &["zz"])).unwrap().is_empty());
        drop(conn);
        let _ = std::fs::remove_file(&path);
    }
}
