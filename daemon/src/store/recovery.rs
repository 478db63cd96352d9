//! What a previous run left unfinished: jobs still PENDING, and results it
//! committed but did not get into the results log before it died.

use std::path::PathBuf;

use frontends::{JobStatus, JobView};
use rusqlite::{Connection, OptionalExtension};

use super::schema::{row_to_view, status_is, COLUMNS, FINISHED_MS};
use super::Interrupted;
use crate::results_log::{LogLine, LogTail, ResultsLog};

/// Jobs left PENDING, oldest first.
pub fn interrupted(conn: &Connection) -> rusqlite::Result<Vec<Interrupted>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT id, algorithm, size, stored_path FROM jobs WHERE {} ORDER BY seq",
        status_is(JobStatus::Pending)
    ))?;
    let rows = stmt.query_map([], |r| {
        Ok(Interrupted {
            id: r.get(0)?,
            algorithm: r.get(1)?,
            size: r.get::<_, Option<i64>>(2)?.map(|s| s as u64),
            stored_path: r.get::<_, Option<String>>(3)?.map(PathBuf::from),
        })
    })?;
    rows.collect()
}

/// Appends to `log` the results a crash kept out of it (see [`unlogged`]).
/// Runs before the writer starts, so nothing else writes meanwhile.
pub fn complete_log(conn: &Connection, log: &ResultsLog) -> rusqlite::Result<()> {
    let Some(tail) = log.tail() else {
        return Ok(());
    };
    append_missing(log, unlogged(conn, tail)?);
    Ok(())
}

/// Appends the lines a crash kept out of `log`, and says so. Shared by
/// both stores.
pub fn append_missing(log: &ResultsLog, lines: Vec<LogLine>) {
    if !lines.is_empty() {
        tracing::warn!(
            lines = lines.len(),
            "results committed before a crash were missing from the results log; appended them"
        );
        log.append(lines);
    }
}

/// The finished jobs a crash kept out of the results log: those committed
/// after the log's last line. Lines are written in commit order and
/// `finished_ms` grows in commit order, so they are the jobs finished after
/// the last line's job, plus those finished in the same millisecond that the
/// log's last lines lack. An empty log, or one whose last job the store
/// does not know (a log shared or replaced by hand), is left as it is. A
/// wall clock stepped back across a crash can defeat this.
pub fn unlogged(conn: &Connection, tail: &LogTail) -> rusqlite::Result<Vec<LogLine>> {
    let not_pending = format!("NOT {}", status_is(JobStatus::Pending));
    let last: Option<i64> = conn
        .query_row(
            &format!("SELECT finished_ms FROM jobs WHERE id = ?1 AND {not_pending}"),
            [&tail.last_id],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    let Some(last) = last else {
        return Ok(Vec::new());
    };
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM jobs WHERE {not_pending} AND finished_ms >= ?1
         ORDER BY finished_ms, seq"
    ))?;
    let rows = stmt.query_map([last], |r| {
        Ok((r.get::<_, i64>(FINISHED_MS)?, row_to_view(r)?))
    })?;
    Ok(missing_lines(
        last,
        rows.collect::<Result<Vec<_>, _>>()?,
        tail,
    ))
}

/// Of the jobs finished at or after `last` (the log's last job's end, in
/// milliseconds), as `(finished_ms, view)` in commit order, those the log
/// lacks: finished later, or in the same millisecond but not among the
/// log's last lines. Shared by both stores.
pub fn missing_lines(last: i64, rows: Vec<(i64, JobView)>, tail: &LogTail) -> Vec<LogLine> {
    rows.into_iter()
        .filter(|(finished, view)| *finished > last || !tail.ids_at_time.contains(&view.id))
        .map(|(_, view)| LogLine::of(&view))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::schema::SCHEMA;
    use crate::util::rfc3339;
    use rusqlite::params;

    fn table(rows: &[(i64, &str, &str, Option<i64>)]) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(&SCHEMA).unwrap();
        conn.execute_batch("PRAGMA ignore_check_constraints = ON")
            .unwrap();
        for (seq, id, status, finished) in rows {
            conn.execute(
                "INSERT INTO jobs (seq, id, status, algorithm, created_ms, finished_ms)
                 VALUES (?1, ?2, ?3, 'md5', 0, ?4)",
                params![seq, id, status, finished],
            )
            .unwrap();
        }
        conn
    }

    fn tail(last: &str, ids: &[&str]) -> LogTail {
        LogTail {
            time: rfc3339(1000),
            last_id: last.into(),
            ids_at_time: ids.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn finds_the_results_a_crash_kept_out_of_the_log() {
        // a finished at 999, b and c at 1000, d at 1001, e still PENDING.
        let conn = table(&[
            (1, "a", "SUCCESS", Some(999)),
            (2, "b", "SUCCESS", Some(1000)),
            (3, "c", "FAILURE", Some(1000)),
            (4, "d", "SUCCESS", Some(1001)),
            (5, "e", "PENDING", None),
        ]);
        let ids = |lines: Vec<LogLine>| lines.into_iter().map(|l| l.id).collect::<Vec<_>>();
        // The log ends with b: c (same millisecond) and d are missing.
        let lines = unlogged(&conn, &tail("b", &["b"])).unwrap();
        assert_eq!(
            lines.iter().map(|l| l.status).collect::<Vec<_>>(),
            ["FAILURE", "SUCCESS"]
        );
        assert_eq!(lines[1].time, rfc3339(1001));
        assert_eq!(ids(lines), ["c", "d"]);
        // The log ends with c, b before it in the same millisecond.
        assert_eq!(
            ids(unlogged(&conn, &tail("c", &["c", "b"])).unwrap()),
            ["d"]
        );
        // A last line the store does not know: left alone.
        assert!(unlogged(&conn, &tail("zz", &["zz"])).unwrap().is_empty());
        assert_eq!(
            interrupted(&conn)
                .unwrap()
                .into_iter()
                .map(|j| j.id)
                .collect::<Vec<_>>(),
            ["e"]
        );
    }

    #[test]
    fn a_corrupt_status_is_not_logged_as_a_failure() {
        // Before, any status other than SUCCESS was logged as FAILURE.
        let conn = table(&[
            (1, "a", "SUCCESS", Some(1000)),
            (2, "b", "DONE", Some(1001)),
        ]);
        let err = unlogged(&conn, &tail("a", &["a"])).unwrap_err();
        assert!(err.to_string().contains("\"DONE\""), "{err}");
    }
}
