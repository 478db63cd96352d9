//! The PostgreSQL store: one job table shared by every node of a cluster.
//!
//! Each node runs one writer task (`writer`: batched inserts and ends,
//! heartbeats, failing the jobs of dead nodes), a listener (`listen`: job
//! ends announced by other nodes, for waiting lookups) and answers reads
//! from a connection pool, recent results from memory. Every node keeps its
//! own results log of the jobs it ended.
//!
//! Client: tokio-postgres with deadpool-postgres. tokio-postgres is the
//! async driver the other Rust clients build on, with `LISTEN`/`NOTIFY` as a
//! stream of messages and pipelining; deadpool-postgres adds a pool with
//! timeouts and a statement cache and nothing else. sqlx would bring a
//! second query layer and compile-time checks against a live database that
//! the build machines do not have.
//!
//! Availability: a connection error (refused, reset, the server shutting
//! down, a timeout) marks the store down. While it is down uploads are
//! refused with 503 before their body is read, inserts and reads fail with
//! [`Unavailable`] (503), and finishes wait in memory and are retried; the
//! writer's heartbeat probes every interval and clears the mark. Errors are
//! logged once when the store goes down and once when it comes back.

mod listen;
pub mod schema;
mod writer;

use std::str::FromStr as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use frontends::{JobPage, JobStatus, JobView, ListQuery};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::NoTls;

use self::schema::{row_to_view, status_is, COLUMNS};
use super::batch::Op;
use super::cache::RecentJobs;
use super::recovery::{append_missing, missing_lines};
use super::waiters::Waiters;
use super::{
    Counts, Expired, Finish, Interrupted, NewJob, Node, NodeReport, NodeView, RecordError,
    RecordErrorKind, Unavailable, EXPIRE_WINDOW,
};
use crate::results_log::ResultsLog;
use crate::util::{is_valid_id, rfc3339};

/// The channel job ends are announced on (payload: ids, comma-separated).
const CHANNEL: &str = "hashd_jobs";

/// Longest a read, a batch or a heartbeat may take before the store counts
/// as unreachable: a server that stopped answering, not a slow query (every
/// statement is an index lookup or a bounded page).
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections kept for reads and the writer. A lookup holds one for one
/// round trip, so a few serve thousands of lookups per second.
const POOL_SIZE: usize = 16;

/// The PostgreSQL implementation of [`super::JobStore`]; the daemon holds it
/// as [`super::Store::Postgres`].
pub struct PgStore {
    pool: Pool,
    tx: mpsc::UnboundedSender<Op>,
    recent: Arc<RecentJobs>,
    waiters: Arc<Waiters>,
    health: Arc<Health>,
    node: Arc<Node>,
    report: Arc<Mutex<NodeReport>>,
    writer: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    listener: tokio::task::JoinHandle<()>,
}

impl PgStore {
    /// Connects to `url`, applies the migrations, reconciles `log` with the
    /// results this node committed, and starts the writer and the listener
    /// on the current tokio runtime.
    ///
    /// Errors: a URL tokio-postgres cannot parse, the server cannot be
    /// reached, a migration fails, or the schema is newer than this build.
    pub async fn open(
        url: &str,
        node: Node,
        log: ResultsLog,
        metrics: Arc<crate::metrics::StoreMetrics>,
    ) -> anyhow::Result<PgStore> {
        let mut config = tokio_postgres::Config::from_str(url).with_context(|| {
            format!(
                "invalid PostgreSQL URL {} (expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE)",
                redact(url)
            )
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(2));
        }
        if config.get_application_name().is_none() {
            config.application_name("hashd");
        }
        config.keepalives_idle(Duration::from_secs(10));
        let (mut client, connection) = config
            .connect(NoTls)
            .await
            .with_context(|| format!("cannot connect to the job store at {}", redact(url)))?;
        let driver = tokio::spawn(connection);
        schema::migrate(&mut client)
            .await
            .context("cannot apply the job store's schema migrations")?;
        complete_log(&client, &node.id, &log)
            .await
            .context("cannot compare the results log with the job store")?;
        drop(client);
        let _ = driver.await;

        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(STATEMENT_TIMEOUT))
            .create_timeout(Some(STATEMENT_TIMEOUT))
            .recycle_timeout(Some(STATEMENT_TIMEOUT))
            .build()?;
        let recent = Arc::new(RecentJobs::default());
        let waiters = Arc::new(Waiters::default());
        let health = Arc::new(Health::default());
        let node = Arc::new(node);
        let report = Arc::new(Mutex::new(NodeReport::default()));
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = writer::PgWriter {
            pool: pool.clone(),
            node: node.clone(),
            recent: recent.clone(),
            waiters: waiters.clone(),
            health: health.clone(),
            report: report.clone(),
            log,
            retry: Vec::new(),
            up_since: None,
            metrics,
        };
        let writer = tokio::spawn(writer.run(rx));
        let listener = tokio::spawn(listen::run(config, waiters.clone()));
        Ok(PgStore {
            pool,
            tx,
            recent,
            waiters,
            health,
            node,
            report,
            writer: tokio::sync::Mutex::new(Some(writer)),
            listener,
        })
    }

    /// See [`super::JobStore::insert`]. Refused at once while the store is
    /// down, so the upload answers 503 without waiting for a timeout.
    pub fn insert(&self, job: NewJob) -> oneshot::Receiver<Result<(), RecordError>> {
        let (ack, rx) = oneshot::channel();
        let refused = |kind, reason: &str| {
            Err(RecordError {
                kind,
                reason: reason.into(),
            })
        };
        if self.health.is_down() {
            let _ = ack.send(refused(
                RecordErrorKind::Unavailable,
                "the job store (PostgreSQL) is unreachable",
            ));
        } else if let Err(mpsc::error::SendError(Op::Insert { ack, .. })) =
            self.tx.send(Op::Insert { job, ack })
        {
            let _ = ack.send(refused(RecordErrorKind::Other, "the job store is closed"));
        }
        rx
    }

    /// See [`super::JobStore::finish`].
    pub fn finish(&self, id: String, finish: Finish, notify: Option<oneshot::Sender<JobView>>) {
        let _ = self.tx.send(Op::Finish { id, finish, notify });
    }

    /// See [`super::JobStore::get`]: recent results of this node from
    /// memory, others from the table.
    pub async fn get(&self, id: &str) -> anyhow::Result<Option<JobView>> {
        if !is_valid_id(id) {
            return Ok(None);
        }
        if let Some(view) = self.recent.get(id) {
            return Ok(Some(view));
        }
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = $1");
        let row = self
            .read(|c| async move {
                let stmt = c.prepare_cached(&sql).await?;
                c.query_opt(&stmt, &[&id]).await
            })
            .await?;
        row.as_ref().map(row_to_view).transpose()
    }

    /// See [`super::JobStore::list`].
    pub async fn list(&self, q: ListQuery) -> anyhow::Result<JobPage> {
        let status = match q.status {
            Some(s) => status_is(s),
            None => "TRUE".to_string(),
        };
        let (after, id) = match q.after.as_deref() {
            Some(id) => ("seq < (SELECT seq FROM jobs WHERE id = $1)", id),
            None => ("$1::text IS NOT NULL", ""),
        };
        let fetch = q.limit as i64 + 1;
        let sql = format!(
            "SELECT {COLUMNS} FROM jobs WHERE {status} AND {after} ORDER BY seq DESC LIMIT $2"
        );
        let rows = self
            .read(|c| async move {
                let stmt = c.prepare_cached(&sql).await?;
                c.query(&stmt, &[&id, &fetch]).await
            })
            .await?;
        let mut jobs = rows
            .iter()
            .map(row_to_view)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if jobs.len() > q.limit {
            jobs.truncate(q.limit);
            jobs.last().map(|j| j.id.clone())
        } else {
            None
        };
        Ok(JobPage { jobs, next })
    }

    /// See [`super::JobStore::counts`]: over every node's jobs.
    pub async fn counts(&self) -> anyhow::Result<Counts> {
        let rows = self
            .read(|c| async move {
                c.query(
                    "SELECT status, COUNT(*), COALESCE(SUM(size), 0)::int8 FROM jobs GROUP BY status",
                    &[],
                )
                .await
            })
            .await?;
        let mut counts = Counts::default();
        for r in rows {
            let n = r.try_get::<_, i64>(1)? as u64;
            match super::schema::parse_status(r.try_get(0)?)? {
                JobStatus::Pending => counts.pending = n,
                JobStatus::Success => {
                    counts.success = n;
                    counts.bytes_hashed = r.try_get::<_, i64>(2)? as u64;
                }
                JobStatus::Failure => counts.failure = n,
            }
            counts.total += n;
        }
        Ok(counts)
    }

    /// See [`super::JobStore::interrupted`]: this node's own jobs only;
    /// those of other nodes are theirs, or the reaper's when they die.
    pub async fn interrupted(&self) -> anyhow::Result<Vec<Interrupted>> {
        let node = self.node.id.as_str();
        let rows = self
            .read(|c| async move {
                c.query(
                    &format!(
                        "SELECT id, algorithm, size, stored_path FROM jobs
                         WHERE node = $1 AND {} ORDER BY seq",
                        status_is(JobStatus::Pending)
                    ),
                    &[&node],
                )
                .await
            })
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Interrupted {
                    id: r.try_get(0)?,
                    algorithm: r.try_get(1)?,
                    size: r.try_get::<_, Option<i64>>(2)?.map(|s| s as u64),
                    stored_path: r
                        .try_get::<_, Option<String>>(3)?
                        .map(std::path::PathBuf::from),
                })
            })
            .collect()
    }

    /// See [`super::JobStore::expire`]: the window and the deletion in one
    /// transaction; this node's jobs and those without a kept upload.
    pub async fn expire(&self, before_ms: i64, after: i64) -> anyhow::Result<Expired> {
        let node = self.node.id.as_str();
        let expired = self
            .read(|mut c| async move {
                let tx = c.transaction().await?;
                let rows = tx
                    .query(
                        "SELECT seq, id, status, finished_ms, created_ms, stored_path FROM jobs
                         WHERE seq > $1 AND (node = $2 OR stored_path IS NULL)
                         ORDER BY seq LIMIT $3",
                        &[&after, &node, &EXPIRE_WINDOW],
                    )
                    .await?;
                let mut window = Vec::with_capacity(rows.len());
                for r in &rows {
                    let status: String = r.try_get(2)?;
                    // A status the schema does not know is never deleted
                    // (nor taken for a final one).
                    let Ok(status) = super::schema::parse_status(&status) else {
                        continue;
                    };
                    window.push(super::sqlite::Window {
                        seq: r.try_get(0)?,
                        id: r.try_get(1)?,
                        status,
                        finished_ms: r.try_get(3)?,
                        created_ms: r.try_get(4)?,
                        stored_path: r.try_get(5)?,
                    });
                }
                let expired = super::sqlite::expire_window(window, before_ms);
                let ids: Vec<&str> = expired.jobs.iter().map(|(id, _)| id.as_str()).collect();
                tx.execute("DELETE FROM jobs WHERE id = ANY($1)", &[&ids])
                    .await?;
                tx.commit().await?;
                Ok(expired)
            })
            .await?;
        self.recent
            .remove(expired.jobs.iter().map(|(id, _)| id.as_str()));
        Ok(expired)
    }

    /// See [`super::JobStore::nodes`]: every node that ever registered,
    /// alive when its heartbeat is younger than this node's timeout (by the
    /// database's clock, so the nodes' clocks need not agree).
    pub async fn nodes(&self) -> anyhow::Result<Vec<NodeView>> {
        let timeout = self.node.timeout.as_secs_f64();
        let rows = self
            .read(|c| async move {
                c.query(
                    "SELECT id, address, started_ms, (extract(epoch FROM heartbeat) * 1000)::int8,
                            heartbeat > now() - make_interval(secs => $1),
                            hashers, jobs_in_flight, bytes_per_sec
                     FROM nodes ORDER BY id",
                    &[&timeout],
                )
                .await
            })
            .await?;
        rows.iter()
            .map(|r| {
                Ok(NodeView {
                    id: r.try_get(0)?,
                    address: r.try_get(1)?,
                    started_at: rfc3339(r.try_get(2)?),
                    last_heartbeat: rfc3339(r.try_get(3)?),
                    alive: r.try_get(4)?,
                    hashers: r.try_get::<_, i32>(5)? as u32,
                    jobs_in_flight: r.try_get::<_, i64>(6)? as u64,
                    bytes_per_sec: r.try_get(7)?,
                })
            })
            .collect()
    }

    /// See [`super::JobStore::report`]: sent with the next heartbeat.
    pub fn report(&self, report: NodeReport) {
        *self.report.lock().unwrap_or_else(|p| p.into_inner()) = report;
    }

    /// See [`super::JobStore::ready`]: a commit by the writer.
    pub async fn ready(&self) -> anyhow::Result<()> {
        let (ack, done) = oneshot::channel();
        let _ = self.tx.send(Op::Probe(ack));
        done.await
            .map_err(|_| anyhow::anyhow!("the writer could not commit (is PostgreSQL reachable?)"))
    }

    /// Whether the last contact with the server failed.
    pub fn is_down(&self) -> bool {
        self.health.is_down()
    }

    /// See [`super::JobStore::waiters`].
    pub fn waiters(&self) -> &Arc<Waiters> {
        &self.waiters
    }

    /// See [`super::JobStore::close`].
    pub async fn close(&self) {
        let _ = self.tx.send(Op::Close);
        let writer = self.writer.lock().await.take();
        if let Some(w) = writer {
            let _ = w.await;
        }
        self.listener.abort();
        self.pool.close();
    }

    /// Runs `f` on a pooled connection; connection failures become
    /// [`Unavailable`] and mark the store down, other errors pass as they are.
    async fn read<'a, T, F, Fut>(&'a self, f: F) -> anyhow::Result<T>
    where
        F: FnOnce(deadpool_postgres::Object) -> Fut,
        Fut: std::future::Future<Output = Result<T, tokio_postgres::Error>> + 'a,
    {
        let attempt = async {
            let client = self.pool.get().await.map_err(PgError::Pool)?;
            f(client).await.map_err(PgError::Db)
        };
        let result = match tokio::time::timeout(STATEMENT_TIMEOUT, attempt).await {
            Ok(r) => r,
            Err(_) => Err(PgError::Timeout),
        };
        match result {
            Ok(v) => {
                self.health.up();
                Ok(v)
            }
            Err(e) if e.is_unavailable() => {
                self.health.down(&e);
                Err(Unavailable(e.to_string()).into())
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        let _ = self.tx.send(Op::Close);
        self.listener.abort();
    }
}

/// Why a round trip to the server failed.
#[derive(Debug)]
pub(crate) enum PgError {
    Pool(PoolError),
    Db(tokio_postgres::Error),
    Timeout,
    /// A row the schema does not allow (a hand edit).
    Row(anyhow::Error),
}

impl PgError {
    /// The server, not the statement: unreachable, restarting, shutting
    /// down, out of connections, or too slow to answer. Retrying later may
    /// work; the request was fine.
    fn is_unavailable(&self) -> bool {
        match self {
            PgError::Timeout => true,
            PgError::Pool(PoolError::Backend(e)) | PgError::Db(e) => match e.code() {
                // SQLSTATE classes 08 (connection exception), 53
                // (insufficient resources), 57P01-03 (admin shutdown, crash
                // shutdown, cannot connect now): PostgreSQL manual, appendix A.
                Some(code) => {
                    let c = code.code();
                    c.starts_with("08") || c.starts_with("53") || c.starts_with("57P")
                }
                // No SQLSTATE: the connection failed, not a statement.
                None => {
                    e.is_closed()
                        || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
                }
            },
            PgError::Pool(_) => true,
            PgError::Row(_) => false,
        }
    }
}

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PgError::Pool(PoolError::Timeout(_)) => {
                f.write_str("no connection to PostgreSQL within the timeout")
            }
            PgError::Pool(PoolError::Backend(e)) | PgError::Db(e) => match e.as_db_error() {
                Some(db) => write!(f, "{}: {}", db.code().code(), db.message()),
                // "error connecting to server: Connection refused (os error 111)"
                None => match std::error::Error::source(e) {
                    Some(cause) => write!(f, "{e}: {cause}"),
                    None => write!(f, "{e}"),
                },
            },
            PgError::Pool(e) => write!(f, "{e}"),
            PgError::Row(e) => write!(f, "{e:#}"),
            PgError::Timeout => write!(
                f,
                "PostgreSQL did not answer within {} s",
                STATEMENT_TIMEOUT.as_secs()
            ),
        }
    }
}

impl std::error::Error for PgError {}

/// Whether the server is reachable, as the last round trip found it; logs
/// each change once, so an outage is two log lines, not one per request.
#[derive(Default)]
pub(crate) struct Health {
    down: AtomicBool,
}

impl Health {
    fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    fn down(&self, why: &PgError) {
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::error!(error = %why, "the job store (PostgreSQL) is unreachable; uploads and lookups answer 503 until it returns");
        }
    }

    fn up(&self) {
        if self.down.swap(false, Ordering::Relaxed) {
            tracing::warn!("the job store (PostgreSQL) is reachable again");
        }
    }
}

/// `url` without its password, for messages and logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Appends to `log` the results this node committed that a crash kept out
/// of it (see `recovery::unlogged` for the reasoning).
async fn complete_log(
    client: &tokio_postgres::Client,
    node: &str,
    log: &ResultsLog,
) -> anyhow::Result<()> {
    let Some(tail) = log.tail() else {
        return Ok(());
    };
    let not_pending = format!("NOT {}", status_is(JobStatus::Pending));
    let last: Option<i64> = client
        .query_opt(
            &format!(
                "SELECT finished_ms FROM jobs WHERE id = $1 AND finished_by = $2 AND {not_pending}"
            ),
            &[&tail.last_id, &node],
        )
        .await?
        .and_then(|r| r.get(0));
    let Some(last) = last else {
        return Ok(());
    };
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM jobs WHERE finished_by = $1 AND {not_pending}
                 AND finished_ms >= $2 ORDER BY finished_ms, seq"
            ),
            &[&node, &last],
        )
        .await?;
    let views = rows
        .iter()
        .map(|r| Ok((r.try_get::<_, i64>(8)?, row_to_view(r)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    append_missing(log, missing_lines(last, views, tail));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::JobStore as _;
    use crate::store::Store;
    use crate::util::new_id;

    /// A fresh database on the test server (`HASHD_TEST_POSTGRES`), or
    /// `None` to skip (a failure under CI).
    async fn fresh_database(name: &str) -> Option<String> {
        let Ok(server) = std::env::var("HASHD_TEST_POSTGRES") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "HASHD_TEST_POSTGRES is not set, but CI is"
            );
            eprintln!("skipped: set HASHD_TEST_POSTGRES to run the PostgreSQL store's tests");
            return None;
        };
        let (client, conn) = tokio_postgres::connect(&server, NoTls).await.unwrap();
        let driver = tokio::spawn(conn);
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .unwrap();
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        drop(client);
        let _ = driver.await;
        let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
        Some(format!("{base}/{name}"))
    }

    fn node(id: &str) -> Node {
        Node {
            id: id.into(),
            address: "127.0.0.1:1".into(),
            started_ms: 0,
            timeout: Duration::from_secs(10),
        }
    }

    fn job(id: &str) -> NewJob {
        NewJob {
            id: id.into(),
            algorithm: "md5".into(),
            size: 3,
            name: Some("n".into()),
            stored_path: None,
            created_ms: 1000,
        }
    }

    #[tokio::test]
    async fn batches_end_a_job_once_and_other_nodes_are_woken() {
        let Some(url) = fresh_database("hashd_unit_store").await else {
            return;
        };
        let dir = std::env::temp_dir().join(format!("hashd-pg-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let open = |n: &str, log: &str| {
            let (url, node, log) = (url.clone(), node(n), dir.join(log));
            async move {
                let log = ResultsLog::open(&log).unwrap();
                Store::Postgres(
                    PgStore::open(&url, node, log, Arc::default())
                        .await
                        .unwrap(),
                )
            }
        };
        let a = open("node-a", "a.log").await;
        let b = open("node-b", "b.log").await;
        let success = |h: &str| Finish::Success {
            hash: h.into(),
            hashes: None,
            size: 3,
        };
        // Queued together, so one batch: an insert with its end, a second
        // end of the same job (ignored), an end of a job with no row.
        let (x, gone) = (new_id().unwrap(), new_id().unwrap());
        let (told_tx, told) = oneshot::channel();
        let acked = a.insert(job(&x));
        a.finish(x.clone(), success("aa"), Some(told_tx));
        a.finish(x.clone(), success("bb"), None);
        let (gone_tx, gone_told) = oneshot::channel();
        a.finish(gone.clone(), success("cc"), Some(gone_tx));
        acked.await.unwrap().unwrap();
        assert_eq!(told.await.unwrap().hash.as_deref(), Some("aa"));
        assert!(gone_told.await.is_err(), "an end of no job told someone");
        assert_eq!(b.get(&gone).await.unwrap(), None);
        let seen = b.get(&x).await.unwrap().unwrap();
        assert_eq!(
            (seen.status, seen.hash.as_deref()),
            (JobStatus::Success, Some("aa"))
        );

        // A job ended in a later batch, on node a, wakes a wait on node b.
        let y = new_id().unwrap();
        a.insert(job(&y)).await.unwrap().unwrap();
        assert_eq!(b.interrupted().await.unwrap().len(), 0);
        assert_eq!(a.interrupted().await.unwrap()[0].id, y);
        let waited = y.clone();
        let waiting = tokio::spawn(async move {
            let v = b.wait(&waited, Duration::from_secs(30)).await.unwrap();
            (v.unwrap(), b)
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let t = std::time::Instant::now();
        a.finish(
            y,
            Finish::Failure {
                reason: "broken".into(),
            },
            None,
        );
        let (v, b) = waiting.await.unwrap();
        assert_eq!(v.error.as_deref(), Some("broken"));
        assert!(t.elapsed() < Duration::from_secs(10));
        let counts = b.counts().await.unwrap();
        assert_eq!((counts.success, counts.failure, counts.pending), (1, 1, 0));
        a.close().await;
        b.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn passwords_are_kept_out_of_messages() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("host=h user=u"), "host=h user=u");
    }
}
