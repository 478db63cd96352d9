//! The job store: where a job's row lives from its insert to its end.
//!
//! [`JobStore`] is the interface the engine and, through it, the front ends
//! use; [`Store`] is the one type they hold. Today its only implementation is
//! SQLite ([`sqlite`]); a second one (PostgreSQL, issue 12) implements
//! [`JobStore`] and becomes a second variant of [`Store`], without a change
//! to the engine or the front ends.
//!
//! Inside the SQLite store: [`schema`] (the table and the one mapping
//! between a status and its text), `writer` (the thread that batches
//! writes), `cache` (recent results in memory) and `recovery` (jobs a
//! previous run left PENDING, results a crash kept out of the results log).
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
//!   [`RecordError`]: `disk_full` when the disk or quota is full (the client
//!   may retry later: HTTP 507), otherwise a reason (500). A store that is
//!   closed refuses inserts the same way. A finish that cannot be committed
//!   (disk full, I/O error) is retried every second until it can; one still
//!   unwritten at shutdown leaves its job PENDING, and the next start ends it
//!   (re-hashed from a kept upload, else FAILURE `interrupted`). Reads fail
//!   with the database's error, and with an error, never a made-up status,
//!   when a row holds a status the schema does not know.
//! - **Close.** [`JobStore::close`] applies everything queued before it,
//!   commits, and closes the results log; afterwards inserts are refused and
//!   finishes are dropped (their jobs stay PENDING for the next start).

pub mod schema;
pub mod sqlite;

mod cache;
mod recovery;
mod writer;

use std::future::Future;
use std::path::{Path, PathBuf};

use frontends::{JobPage, JobView, ListQuery};
use tokio::sync::oneshot;

use crate::results_log::ResultsLog;

pub use sqlite::SqliteStore;

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
    /// The algorithm's name as the API spells it (`md5`, `sha256`, …).
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
    /// `hash` in lower-case hex; `size` the bytes hashed.
    Success { hash: String, size: u64 },
    /// `reason` is shown to clients as the job's `error`.
    Failure { reason: String },
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
    /// The disk (or the database's quota) is full: retrying later may work.
    pub disk_full: bool,
    /// For the client and the log; names no server path.
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

    /// Applies everything queued, commits and closes the results log.
    /// Blocks the calling thread until that is done; later calls return at
    /// once.
    fn close(&self);
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
        SqliteStore::open(path, sync, log).map(Store::Sqlite)
    }
}

impl JobStore for Store {
    fn insert(&self, job: NewJob) -> oneshot::Receiver<Result<(), RecordError>> {
        match self {
            Store::Sqlite(s) => s.insert(job),
        }
    }

    fn finish(&self, id: String, finish: Finish, notify: Option<oneshot::Sender<JobView>>) {
        match self {
            Store::Sqlite(s) => s.finish(id, finish, notify),
        }
    }

    async fn get(&self, id: &str) -> anyhow::Result<Option<JobView>> {
        match self {
            Store::Sqlite(s) => s.get(id).await,
        }
    }

    async fn list(&self, query: ListQuery) -> anyhow::Result<JobPage> {
        match self {
            Store::Sqlite(s) => s.list(query).await,
        }
    }

    async fn counts(&self) -> anyhow::Result<Counts> {
        match self {
            Store::Sqlite(s) => s.counts().await,
        }
    }

    async fn interrupted(&self) -> anyhow::Result<Vec<Interrupted>> {
        match self {
            Store::Sqlite(s) => s.interrupted().await,
        }
    }

    fn close(&self) {
        match self {
            Store::Sqlite(s) => s.close(),
        }
    }
}
