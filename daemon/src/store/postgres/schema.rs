//! The PostgreSQL tables, their versioned migrations, and rows as views.
//!
//! Migrations run at start-up under a session advisory lock, so nodes that
//! start together against an empty database apply each version once: the
//! first takes the lock and migrates, the others wait and then find the
//! versions recorded in `hashd_migrations`.

use frontends::{JobStatus, JobView};
use tokio_postgres::Client;

use crate::store::schema::{parse_status, status_text};
use crate::util::rfc3339;

/// Key of the advisory lock that serialises migrations ("hashd" in ASCII).
const MIGRATION_LOCK: i64 = 0x0068_6173_6864;

/// Migrations in order; version `i + 1` is `MIGRATIONS[i]`. Never edit one
/// that has shipped: add the next.
const MIGRATIONS: &[&str] = &[
    // 1: jobs and nodes.
    "
CREATE TABLE jobs (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          text   NOT NULL UNIQUE,
    status      text   NOT NULL CHECK (status IN ('PENDING', 'SUCCESS', 'FAILURE')),
    algorithm   text   NOT NULL,
    hash        text,
    size        bigint,
    name        text,
    error       text,
    stored_path text,
    created_ms  bigint NOT NULL,
    finished_ms bigint,
    -- The node that received the upload, and the one that ended the job
    -- (itself, or a live node that failed it when it died).
    node        text   NOT NULL,
    finished_by text
);
-- The rare states only, as in SQLite: recovery and dead-node reaping look
-- up a node's PENDING jobs, /jobs?status=FAILURE walks failures.
CREATE INDEX jobs_pending ON jobs (node, seq) WHERE status = 'PENDING';
CREATE INDEX jobs_failed ON jobs (seq) WHERE status = 'FAILURE';
CREATE TABLE nodes (
    id             text PRIMARY KEY,
    address        text NOT NULL,
    started_ms     bigint NOT NULL,
    heartbeat      timestamptz NOT NULL,
    hashers        integer NOT NULL,
    jobs_in_flight bigint NOT NULL,
    bytes_per_sec  double precision NOT NULL,
    version        text NOT NULL
);
",
    // 2: every digest of a job with several algorithms (`md5:hex,sha256:hex`);
    // NULL for one algorithm, whose digest is `hash`.
    "ALTER TABLE jobs ADD COLUMN hashes text;",
];

/// Brings the database to the newest schema this build knows.
///
/// Errors: the database cannot be reached, a migration fails (it is rolled
/// back), or the database was migrated by a newer hashd.
pub async fn migrate(client: &mut Client) -> anyhow::Result<()> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let result = apply(client).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    result?;
    unlocked?;
    Ok(())
}

async fn apply(client: &mut Client) -> anyhow::Result<()> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS hashd_migrations (
                 version    integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await?;
    let current: i32 = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM hashd_migrations",
            &[],
        )
        .await?
        .get(0);
    let known = MIGRATIONS.len() as i32;
    anyhow::ensure!(
        current <= known,
        "the database's schema is version {current}, newer than this hashd knows ({known}): upgrade hashd"
    );
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = i as i32 + 1;
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO hashd_migrations (version) VALUES ($1)",
            &[&version],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(version, "applied a job store migration");
    }
    Ok(())
}

/// The columns [`row_to_view`] reads, in its order.
pub const COLUMNS: &str =
    "id, status, algorithm, hash, size, name, error, created_ms, finished_ms, hashes";

/// `status = 'TEXT'`: a literal, so the partial indexes apply.
pub fn status_is(status: JobStatus) -> String {
    format!("status = '{}'", status_text(status))
}

/// A row selected as [`COLUMNS`]. Errors: a column of the wrong type, or a
/// status the schema does not know (never taken for another).
pub fn row_to_view(r: &tokio_postgres::Row) -> anyhow::Result<JobView> {
    let algorithm: String = r.try_get(2)?;
    let hash: Option<String> = r.try_get(3)?;
    let hashes: Option<String> = r.try_get(9)?;
    Ok(JobView {
        id: r.try_get(0)?,
        status: parse_status(r.try_get(1)?)?,
        hashes: super::super::hash_list(&algorithm, hash.as_deref(), hashes.as_deref()),
        algorithm,
        hash,
        size: r.try_get::<_, Option<i64>>(4)?.map(|s| s as u64),
        name: r.try_get(5)?,
        error: r.try_get(6)?,
        created_at: rfc3339(r.try_get(7)?),
        finished_at: r.try_get::<_, Option<i64>>(8)?.map(rfc3339),
    })
}
