//! `--retain`: finished jobs older than the retention period are deleted,
//! with their kept uploads, in the background and in small windows (see
//! `JobStore::expire`), so uploads never wait long behind it.

use std::sync::Arc;
use std::time::Duration;

use crate::store::{JobStore as _, Store};
use crate::util::now_ms;

/// How often a pass runs: a quarter of the period, between 1 s and 1 min,
/// so a job outlives its period by at most that much.
pub fn interval(retain: Duration) -> Duration {
    (retain / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Runs passes until aborted.
pub async fn run(store: Arc<Store>, retain: Duration) {
    let mut tick = tokio::time::interval(interval(retain));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let before = now_ms() - retain.as_millis() as i64;
        match pass(&store, before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                jobs = n,
                "retention: deleted finished jobs older than the retention period"
            ),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "retention pass failed; the next one retries")
            }
        }
    }
}

/// Deletes every finished job that ended before `before_ms`; returns how
/// many.
async fn pass(store: &Store, before_ms: i64) -> anyhow::Result<usize> {
    let mut after = 0;
    let mut deleted = 0;
    loop {
        let expired = store.expire(before_ms, after).await?;
        deleted += expired.jobs.len();
        for (_, path) in expired
            .jobs
            .iter()
            .filter_map(|(id, p)| Some((id, p.as_ref()?)))
        {
            match tokio::fs::remove_file(path).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "retention: cannot remove a kept upload")
                }
            }
        }
        match expired.next {
            Some(next) => after = next,
            None => return Ok(deleted),
        }
        // Between windows, let the writer have the database.
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_run_a_quarter_period_apart_within_bounds() {
        assert_eq!(interval(Duration::from_secs(2)), Duration::from_secs(1));
        assert_eq!(interval(Duration::from_secs(40)), Duration::from_secs(10));
        assert_eq!(
            interval(Duration::from_secs(30 * 86400)),
            Duration::from_secs(60)
        );
    }
}
