//! The job store: where a job's row lives from its insert to its end.
//!
//! [`JobStore`] is the interface the engine and, through it, the front ends
//! use; [`Store`] is the one type they hold. Two implementations: SQLite
//! ([`sqlite`], the embedded default, one node) and PostgreSQL
//! ([`postgres`], one job table for several nodes).
//!
//! Shared by both: [`schema`] (the one mapping between a status and its
//! text; also the SQLite table), `batch` (queued writes, how a batch maps
//! onto rows, what follows a commit), `cache` (recent results in memory),
//! `waiters` (lookups waiting for a job's end) and `recovery` (results a
//! crash kept out of the results log). SQLite's own: `writer` (the thread
//! that batches writes).
//!
//! # The contract
//!
//! Every implementation keeps these promises; the engine relies on them.
//!
//! - **Durable on acknowledgement.** [`JobStore::insert`]'s receiver resolves
//!   `Ok` only once the row is committed (for SQLite: in the WAL, fsynced
//!   with [`SyncMode::Full`]). The engine returns a job's id only after that,
//!   so an id a client holds always names a row.
//! - **A finish is queued, never waited for.** [`JobStore::finish`] returns
//!   at once, on any thread (hasher threads call it). Its result is durable
//!   when `notify` is told, and only then is it visible to readers and
//!   appended to the results log (log lines follow commit order).
//! - **Ordering.** A finish must be queued after its job's insert was
//!   queued (the engine queues the insert before it lets the hasher end).
//!   Both may land in the same batch; the job is then written once, with
//!   its final state. A finish whose job has no row (an upload abandoned
//!   before its insert) or is already final changes nothing and tells no
//!   one. A job ends once: later finishes of the same id are ignored.
//! - **What a reader sees.** Only committed state: a job whose insert is
//!   still queued is unknown (`None`), a just-inserted job is PENDING even
//!   when its result is already queued, and a final job never changes
//!   again (which is what lets recent results be served from memory).
//! - **Errors.** An insert that cannot be committed resolves with a
//!   [`RecordError`]: [`RecordErrorKind::DiskFull`] when the disk or quota is
//!   full (HTTP 507), [`RecordErrorKind::Unavailable`] when the database
//!   server cannot be reached (503 with Retry-After), otherwise a reason
//!   (500). Reads fail with [`Unavailable`] in the second case. A store that is
//!   closed refuses inserts the same way. A finish that cannot be committed
//!   (disk full, I/O error) is retried every second until it can; one still
//!   unwritten at shutdown leaves its job PENDING, and the next start ends it
//!   (re-hashed from a kept upload, else FAILURE `interrupted`). Reads fail
//!   with the database's error, and with an error, never a made-up status,
//!   when a row holds a status the schema does not know.
//! - **Close.** [`JobStore::close`] applies everything queued before it,
//!   commits, and closes the results log; afterwards inserts are refused and
//!   finishes are dropped (their jobs stay PENDING for the next start).

pub mod postgres;
pub mod schema;
pub mod sqlite;

mod batch;
mod cache;
mod recovery;
mod waiters;
mod writer;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use frontends::{JobPage, JobStatus, JobView, ListQuery};
use tokio::sync::oneshot;

use crate::metrics::StoreMetrics;
use crate::results_log::ResultsLog;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use waiters::Waiters;

/// Where the job table lives: `--store`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file, created if missing.
    Sqlite(PathBuf),
    /// A PostgreSQL URL (`postgres://` or `postgresql://`), as libpq and
    /// tokio-postgres parse it.
    Postgres(String),
}

impl Location {
    /// Parses `--store`: `postgres://…` or `postgresql://…`, `sqlite:PATH`
    /// (also `sqlite://PATH`), or a plain file path (SQLite).
    ///
    /// Errors: an empty value, or another URL scheme.
    pub fn parse(s: &str) -> anyhow::Result<Location> {
        let t = s.trim();
        if t.starts_with("postgres://") || t.starts_with("postgresql://") {
            return Ok(Location::Postgres(t.to_string()));
        }
        if let Some(path) = t.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            anyhow::ensure!(!path.is_empty(), "--store sqlite: needs a file path");
            return Ok(Location::Sqlite(PathBuf::from(path)));
        }
        match t.split_once("://") {
            Some((scheme, _)) => anyhow::bail!(
                "--store: unknown scheme {scheme:?} (expected postgres://USER@HOST/DB, sqlite:PATH or a file path)"
            ),
            None if t.is_empty() => anyhow::bail!("--store must not be empty"),
            None => Ok(Location::Sqlite(PathBuf::from(t))),
        }
    }
}

/// This node, as the store records it.
#[derive(Clone, Debug)]
pub struct Node {
    /// Stable across restarts: kept in the data directory (`node-id`).
    pub id: String,
    /// Where clients reach it (its listen address).
    pub address: String,
    /// When this run started, milliseconds since the Unix epoch.
    pub started_ms: i64,
    /// A node whose heartbeat is older than this is dead (`--node-timeout`).
    pub timeout: Duration,
}

/// What a node reports with each heartbeat.
#[derive(Clone, Debug, Default)]
pub struct NodeReport {
    pub hashers: u32,
    /// Jobs being hashed (uploads streaming in included).
    pub jobs_in_flight: u64,
    /// Bytes hashed per second over the last heartbeat interval.
    pub bytes_per_sec: f64,
}

/// One node as `GET /cluster` lists it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NodeView {
    pub id: String,
    pub address: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// RFC 3339, UTC, by the database's clock.
    pub last_heartbeat: String,
    /// Heartbeat younger than the answering node's `--node-timeout`.
    pub alive: bool,
    pub hashers: u32,
    pub jobs_in_flight: u64,
    pub bytes_per_sec: f64,
}

/// The database server cannot be reached (down, restarting, out of
/// connections, too slow): the request was fine and may succeed later.
#[derive(Clone, Debug)]
pub struct Unavailable(pub String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the job store is unavailable: {}", self.0)
    }
}

impl std::error::Error for Unavailable {}

/// How hard commits push to disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// Safe against a killed process; a power loss may drop the last commits.
    Normal,
    /// fsync on every commit (batched, so still many jobs per fsync).
    Full,
}

/// A job whose bytes have all arrived, as its row is first written.
#[derive(Clone, Debug)]
pub struct NewJob {
    /// 32 lower-case hex digits (see `util::new_id`).
    pub id: String,
    /// The algorithms' names as the API spells them, comma-separated in
    /// the job's order (`md5`, `md5,sha256`, …).
    pub algorithm: String,
    /// Bytes received, which are the bytes hashed.
    pub size: u64,
    /// The file name the client gave, if any.
    pub name: Option<String>,
    /// Where the upload was kept, when keeping uploads is on.
    pub stored_path: Option<PathBuf>,
    /// When the upload began, milliseconds since the Unix epoch.
    pub created_ms: i64,
}

/// How a job ended.
#[derive(Clone, Debug)]
pub enum Finish {
    /// `hash` in lower-case hex (the first algorithm's); `hashes` every
    /// digest in [`encode_hashes`]' form when the job had several
    /// algorithms, `None` when it had one (its digest is `hash`, and the
    /// row stays as small as before); `size` the bytes hashed.
    Success {
        hash: String,
        hashes: Option<String>,
        size: u64,
    },
    /// `reason` is shown to clients as the job's `error`.
    Failure { reason: String },
}

impl Finish {
    /// The success of a job with these digests (at least one).
    pub fn success(hashes: &hashcore::Hashes, size: u64) -> Finish {
        Finish::Success {
            hash: hashes
                .first()
                .map(|(_, d)| hashcore::to_hex(d))
                .unwrap_or_default(),
            hashes: (hashes.len() > 1).then(|| encode_hashes(hashes)),
            size,
        }
    }
}

/// Several digests as the `hashes` column holds them: `name:hex` pairs
/// joined by commas, in the job's order (`md5:…,sha256:…`). Names never
/// contain `:` or `,`; hex never does either.
pub fn encode_hashes(hashes: &hashcore::Hashes) -> String {
    hashes
        .iter()
        .map(|(a, d)| format!("{}:{}", a.name(), hashcore::to_hex(d)))
        .collect::<Vec<_>>()
        .join(",")
}

/// A finished job's digests as [`frontends::JobView::hashes`] lists them:
/// from the `hashes` column when the job had several algorithms, else its
/// one `(algorithm, hash)`; empty without a hash (not finished, or failed).
pub fn hash_list(
    algorithm: &str,
    hash: Option<&str>,
    hashes: Option<&str>,
) -> Vec<(String, String)> {
    match (hash, hashes) {
        (_, Some(all)) => all
            .split(',')
            .filter_map(|pair| pair.split_once(':'))
            .map(|(a, h)| (a.to_string(), h.to_string()))
            .collect(),
        (Some(h), None) => vec![(algorithm.to_string(), h.to_string())],
        (None, None) => Vec::new(),
    }
}

/// A job found PENDING at start-up: a previous run stopped before it ended.
#[derive(Clone, Debug)]
pub struct Interrupted {
    pub id: String,
    /// As in [`NewJob::algorithm`]; may be one this build no longer knows.
    pub algorithm: String,
    /// Bytes the upload had; `None` only in rows written by hand.
    pub size: Option<u64>,
    /// The kept upload, if uploads were kept.
    pub stored_path: Option<PathBuf>,
}

/// Why a new job could not be recorded.
#[derive(Clone, Debug)]
pub struct RecordError {
    pub kind: RecordErrorKind,
    /// For the client and the log; names no server path.
    pub reason: String,
}

/// What kind of failure a [`RecordError`] is, for the answer's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordErrorKind {
    /// The disk (or the database's quota) is full: retrying later may work.
    DiskFull,
    /// The database server cannot be reached: retrying later may work.
    Unavailable,
    /// Anything else (a closed store, a bug).
    Other,
}

/// What one retention pass over a window of the table found (see
/// [`JobStore::expire`]).
#[derive(Clone, Debug, Default)]
pub struct Expired {
    /// Ids of the deleted jobs, with their kept uploads to remove.
    pub jobs: Vec<(String, Option<PathBuf>)>,
    /// Where the next window starts (exclusive), or `None` when the window
    /// reached jobs created after the cut-off: the pass is over.
    pub next: Option<i64>,
}

/// Rows a retention window looks at: a small transaction, so uploads
/// never wait long for it.
pub const EXPIRE_WINDOW: i64 = 1000;

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

/// What the engine needs from a job store; see the module documentation for
/// the contract every implementation keeps.
///
/// Writes (`insert`, `finish`) are synchronous and never block: they queue
/// work for the store's writer, and an insert's answer comes back on a
/// channel. Reads are async so that a store behind a network can await its
/// server; one that answers from memory or a local file may complete them
/// without suspending.
pub trait JobStore: Send + Sync {
    /// Queues the row of a job whose bytes have all arrived. The receiver
    /// resolves once it is committed, or with why it could not be; a dropped
    /// sender means the store closed meanwhile.
    fn insert(&self, job: NewJob) -> oneshot::Receiver<Result<(), RecordError>>;

    /// Queues job `id`'s end. `notify` is told the job's final state once it
    /// is committed (not told when the finish changed nothing). Never blocks.
    fn finish(&self, id: String, finish: Finish, notify: Option<oneshot::Sender<JobView>>);

    /// Job `id` as committed; `Ok(None)` for an unknown or malformed id.
    fn get(&self, id: &str) -> impl Future<Output = anyhow::Result<Option<JobView>>> + Send;

    /// Newest first, at most `query.limit` jobs, after the job `query.after`
    /// if given, of `query.status` if given; `next` is set when more follow.
    fn list(&self, query: ListQuery) -> impl Future<Output = anyhow::Result<JobPage>> + Send;

    /// Jobs per status and bytes hashed, over the whole table.
    fn counts(&self) -> impl Future<Output = anyhow::Result<Counts>> + Send;

    /// Jobs left PENDING by a previous run, oldest first. Call at start-up,
    /// before any new job is accepted (afterwards it would list those too).
    fn interrupted(&self) -> impl Future<Output = anyhow::Result<Vec<Interrupted>>> + Send;

    /// Deletes the finished jobs that ended before `before_ms` among the
    /// [`EXPIRE_WINDOW`] oldest rows after `after` (a row position; start
    /// with 0). Rows are walked oldest first and the walk stops at the
    /// first job created after the cut-off, so a pass touches only what it
    /// deletes plus one window. PENDING jobs are never deleted. On
    /// PostgreSQL a node deletes its own jobs and those without a kept
    /// upload (another node's kept files are not its to remove).
    fn expire(
        &self,
        before_ms: i64,
        after: i64,
    ) -> impl Future<Output = anyhow::Result<Expired>> + Send;

    /// Every node of the cluster; for a single-node store, this one.
    fn nodes(&self) -> impl Future<Output = anyhow::Result<Vec<NodeView>>> + Send;

    /// Replaces what this node reports with its next heartbeat.
    fn report(&self, report: NodeReport);

    /// Whether the store accepts writes now: a probe queued behind the
    /// pending writes, answered once the writer's batch holding it has
    /// committed. Errors say why not; the caller bounds the wait.
    fn ready(&self) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// True while the database server is known to be unreachable: uploads
    /// are then refused before their bodies are read.
    fn is_down(&self) -> bool;

    /// Lookups waiting for job ends; woken after each commit (and, on
    /// PostgreSQL, by other nodes' announcements).
    fn waiters(&self) -> &Arc<Waiters>;

    /// Applies everything queued, commits and closes the results log.
    /// Returns when that is done; later calls return at once.
    fn close(&self) -> impl Future<Output = ()> + Send;
}

/// The store the daemon runs on.
///
/// An enum over the implementations rather than `Arc<dyn JobStore>`: every
/// upload calls `insert` and `finish` and most lookups `get`, and a match
/// is a direct call the compiler can inline, where `dyn` would cost an
/// indirect call and, for the async reads, a boxed future (an allocation per
/// lookup), since `dyn` cannot hold `impl Future` methods. A second store is
/// one more variant here and one more arm per method.
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Store {
    /// Opens the SQLite store at `path` (creating it), reconciles `log` with
    /// it (results a crash kept out of the log are appended) and starts its
    /// writer, which appends each committed result to `log`.
    ///
    /// Errors: the database cannot be opened or refuses WAL mode, another
    /// process holds its write lock, or a row the reconciliation reads is
    /// corrupt.
    pub fn open(path: &Path, sync: SyncMode, log: ResultsLog) -> anyhow::Result<Store> {
        SqliteStore::open(path, sync, log, Node::local(), Arc::default()).map(Store::Sqlite)
    }

    /// Opens the store at `location` for `node`: SQLite as [`Store::open`],
    /// PostgreSQL as [`PgStore::open`] (on the current tokio runtime).
    /// Its writer observes each batch in `metrics`.
    pub async fn connect(
        location: &Location,
        sync: SyncMode,
        log: ResultsLog,
        node: Node,
        metrics: Arc<StoreMetrics>,
    ) -> anyhow::Result<Store> {
        match location {
            Location::Sqlite(path) => {
                SqliteStore::open(path, sync, log, node, metrics).map(Store::Sqlite)
            }
            Location::Postgres(url) => PgStore::open(url, node, log, metrics)
                .await
                .map(Store::Postgres),
        }
    }

    /// Job `id` once it is final, or as it is after `timeout` or once
    /// shutdown has begun (`waiters().close()`): woken by the job's end (on
    /// any node), not by polling. `Ok(None)` for an unknown id.
    pub async fn wait(&self, id: &str, timeout: Duration) -> anyhow::Result<Option<JobView>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before the read, so an end in between still wakes it.
            let mut waiter = self.waiters().register(id);
            match self.get(id).await? {
                Some(v) if v.status == JobStatus::Pending && !self.waiters().is_closed() => {}
                other => return Ok(other),
            }
            if tokio::time::timeout_at(deadline, waiter.changed())
                .await
                .is_err()
            {
                return self.get(id).await;
            }
        }
    }
}

impl Node {
    /// A node for a store opened without one (tests, tools).
    pub fn local() -> Node {
        Node {
            id: "local".into(),
            address: String::new(),
            started_ms: crate::util::now_ms(),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Calls the same method on whichever store this is.
macro_rules! each {
    ($self:expr, $s:ident => $call:expr) => {
        match $self {
            Store::Sqlite($s) => $call,
            Store::Postgres($s) => $call,
        }
    };
}

impl JobStore for Store {
    fn insert(&self, job: NewJob) -> oneshot::Receiver<Result<(), RecordError>> {
        each!(self, s => s.insert(job))
    }

    fn finish(&self, id: String, finish: Finish, notify: Option<oneshot::Sender<JobView>>) {
        each!(self, s => s.finish(id, finish, notify))
    }

    async fn get(&self, id: &str) -> anyhow::Result<Option<JobView>> {
        each!(self, s => s.get(id).await)
    }

    async fn list(&self, query: ListQuery) -> anyhow::Result<JobPage> {
        each!(self, s => s.list(query).await)
    }

    async fn counts(&self) -> anyhow::Result<Counts> {
        each!(self, s => s.counts().await)
    }

    async fn interrupted(&self) -> anyhow::Result<Vec<Interrupted>> {
        each!(self, s => s.interrupted().await)
    }

    async fn nodes(&self) -> anyhow::Result<Vec<NodeView>> {
        each!(self, s => s.nodes().await)
    }

    async fn expire(&self, before_ms: i64, after: i64) -> anyhow::Result<Expired> {
        each!(self, s => s.expire(before_ms, after).await)
    }

    fn report(&self, report: NodeReport) {
        each!(self, s => s.report(report))
    }

    async fn ready(&self) -> anyhow::Result<()> {
        each!(self, s => s.ready().await)
    }

    fn is_down(&self) -> bool {
        each!(self, s => s.is_down())
    }

    fn waiters(&self) -> &Arc<Waiters> {
        each!(self, s => s.waiters())
    }

    async fn close(&self) {
        each!(self, s => s.close().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_locations() {
        let pg = "postgres://u@127.0.0.1:5432/db";
        assert_eq!(Location::parse(pg).unwrap(), Location::Postgres(pg.into()));
        assert!(matches!(
            Location::parse("postgresql://h/db").unwrap(),
            Location::Postgres(_)
        ));
        for s in ["sqlite:/x/jobs.db", "sqlite:///x/jobs.db", "/x/jobs.db"] {
            assert_eq!(
                Location::parse(s).unwrap(),
                Location::Sqlite("/x/jobs.db".into()),
                "{s}"
            );
        }
        for bad in ["", "mysql://h/db", "sqlite:"] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
    }
}
