//! The SQLite table, and the one mapping between a [`JobStatus`] and the
//! text of the `status` column. Every statement that names a status, and
//! every read of the column, goes through [`status_text`] and [`DbStatus`],
//! so a status the schema does not know is an error wherever it is read,
//! never taken for another.

use std::sync::LazyLock;

use frontends::{JobStatus, JobView};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::util::rfc3339;

/// The text stored for `status`. The inverse is [`parse_status`].
pub fn status_text(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Pending => "PENDING",
        JobStatus::Success => "SUCCESS",
        JobStatus::Failure => "FAILURE",
    }
}

/// A `status` column holding text no [`JobStatus`] maps to (a row edited by
/// hand, or a damaged file). The text is kept for the error message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorruptStatus(pub String);

impl std::fmt::Display for CorruptStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "corrupt job status {:?} in the job database", self.0)
    }
}

impl std::error::Error for CorruptStatus {}

/// The status stored as `text`: exact, case-sensitive (as the column's
/// CHECK is), so anything else is [`CorruptStatus`].
pub fn parse_status(text: &str) -> Result<JobStatus, CorruptStatus> {
    [JobStatus::Pending, JobStatus::Success, JobStatus::Failure]
        .into_iter()
        .find(|s| status_text(*s) == text)
        .ok_or_else(|| CorruptStatus(text.to_string()))
}

/// A status as a SQL value: binds as [`status_text`], reads through
/// [`parse_status`]. (A newtype because neither the trait nor the type is
/// ours.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DbStatus(pub JobStatus);

impl ToSql for DbStatus {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(status_text(self.0)))
    }
}

impl FromSql for DbStatus {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = match value {
            ValueRef::Text(t) => String::from_utf8_lossy(t),
            other => {
                return Err(FromSqlError::Other(Box::new(CorruptStatus(format!(
                    "{other:?}"
                )))))
            }
        };
        parse_status(&text)
            .map(DbStatus)
            .map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

/// `status = 'TEXT'` for SQL. A literal, not a bound parameter: only a
/// literal lets SQLite use the partial index of that status.
pub fn status_is(status: JobStatus) -> String {
    format!("status = '{}'", status_text(status))
}

/// The table and its indexes; idempotent, applied at every start.
pub static SCHEMA: LazyLock<String> = LazyLock::new(|| {
    let [pending, success, failure] = [JobStatus::Pending, JobStatus::Success, JobStatus::Failure]
        .map(|s| format!("'{}'", status_text(s)));
    format!(
        "
-- seq is the rowid: rows are never deleted, so it grows without AUTOINCREMENT
-- (which only added a sqlite_sequence write per insert).
CREATE TABLE IF NOT EXISTS jobs (
    seq         INTEGER PRIMARY KEY,
    id          TEXT    NOT NULL UNIQUE,
    status      TEXT    NOT NULL CHECK (status IN ({pending}, {success}, {failure})),
    algorithm   TEXT    NOT NULL,
    hash        TEXT,
    size        INTEGER,
    name        TEXT,
    error       TEXT,
    stored_path TEXT,
    created_ms  INTEGER NOT NULL,
    finished_ms INTEGER,
    -- Every digest of a job with several algorithms (`md5:hex,sha256:hex`);
    -- NULL for one algorithm, whose digest is `hash`. Added by
    -- [`ADD_COLUMNS`] to tables created before it.
    hashes      TEXT
);
-- Jobs by status, for start-up recovery and /jobs?status=: partial indexes
-- over the rare states only. A job that ends in its insert's batch (most)
-- then adds no index entry beyond the id, and a listing of SUCCESS jobs walks
-- the table newest first, where nearly every row matches.
CREATE INDEX IF NOT EXISTS jobs_pending ON jobs (seq) WHERE status = {pending};
CREATE INDEX IF NOT EXISTS jobs_failed ON jobs (seq) WHERE status = {failure};
DROP INDEX IF EXISTS jobs_by_status;
"
    )
});

/// Columns added after the table's first release, as `(name, definition)`:
/// a database made before gets them at start-up (SQLite has no `ADD
/// COLUMN IF NOT EXISTS`, so [`add_missing_columns`] checks first).
pub const ADD_COLUMNS: [(&str, &str); 1] = [("hashes", "TEXT")];

/// Adds the [`ADD_COLUMNS`] a table lacks; idempotent. Old rows read as
/// NULL there, which is what they mean (one algorithm each).
pub fn add_missing_columns(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    let mut have = Vec::new();
    {
        let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('jobs')")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            have.push(r.get::<_, String>(0)?);
        }
    }
    for (name, definition) in ADD_COLUMNS {
        if !have.iter().any(|h| h == name) {
            conn.execute_batch(&format!("ALTER TABLE jobs ADD COLUMN {name} {definition}"))?;
        }
    }
    Ok(())
}

/// The columns [`row_to_view`] reads, in its order.
pub const COLUMNS: &str =
    "id, status, algorithm, hash, size, name, error, created_ms, finished_ms, hashes";

/// Index of `finished_ms` (milliseconds since the epoch) in [`COLUMNS`].
pub const FINISHED_MS: usize = 8;

/// A row selected as [`COLUMNS`]. Errors: a column of the wrong type, or a
/// [`CorruptStatus`].
pub fn row_to_view(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobView> {
    let algorithm: String = r.get(2)?;
    let hash: Option<String> = r.get(3)?;
    let hashes: Option<String> = r.get(9)?;
    Ok(JobView {
        id: r.get(0)?,
        status: r.get::<_, DbStatus>(1)?.0,
        hashes: super::hash_list(&algorithm, hash.as_deref(), hashes.as_deref()),
        algorithm,
        hash,
        size: r.get::<_, Option<i64>>(4)?.map(|s| s as u64),
        name: r.get(5)?,
        error: r.get(6)?,
        created_at: rfc3339(r.get(7)?),
        finished_at: r.get::<_, Option<i64>>(FINISHED_MS)?.map(rfc3339),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips_and_nothing_else_parses() {
        for s in [JobStatus::Pending, JobStatus::Success, JobStatus::Failure] {
            assert_eq!(parse_status(status_text(s)), Ok(s));
        }
        for bad in ["", "failure", "FAILED", "DONE", "SUCCESS "] {
            assert_eq!(parse_status(bad), Err(CorruptStatus(bad.into())));
        }
    }

    #[test]
    fn a_corrupt_status_column_is_an_error_not_a_failure() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(&SCHEMA).unwrap();
        // Past the CHECK, as a hand edit or an older schema could be.
        conn.execute_batch(
            "PRAGMA ignore_check_constraints = ON;
             INSERT INTO jobs (id, status, algorithm, created_ms) VALUES ('a', 'DONE', 'md5', 0);
             INSERT INTO jobs (id, status, algorithm, created_ms) VALUES ('b', 7, 'md5', 0);
             INSERT INTO jobs (id, status, algorithm, created_ms) VALUES ('c', 'FAILURE', 'md5', 0);",
        )
        .unwrap();
        let read = |id: &str| {
            conn.query_row(
                &format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"),
                [id],
                row_to_view,
            )
        };
        for id in ["a", "b"] {
            let err = read(id).unwrap_err();
            assert!(
                matches!(err, rusqlite::Error::FromSqlConversionFailure(1, _, _)),
                "{err:?}"
            );
        }
        assert!(read("a").unwrap_err().to_string().contains("\"DONE\""));
        assert_eq!(read("c").unwrap().status, JobStatus::Failure);
    }
}
