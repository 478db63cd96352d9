//! The last finished jobs, in memory, for lookups.
//!
//! Clients poll a job soon after uploading it; answering those polls from
//! memory skips a read transaction (a mutex, shared-memory locks and the SQL
//! engine) per poll. Only the writer adds to it, after the commit, and a
//! finished job never changes, so a copy cannot go stale or show a state
//! that is not durable.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use frontends::JobView;

/// Finished jobs kept. About 300 bytes each, so about 5 MiB.
pub const RECENT_JOBS: usize = 16 * 1024;

/// The last [`RECENT_JOBS`] finished jobs, oldest dropped first.
#[derive(Default)]
pub struct RecentJobs {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    views: HashMap<String, JobView>,
    order: VecDeque<String>,
}

impl RecentJobs {
    /// Job `id` if it finished recently.
    pub fn get(&self, id: &str) -> Option<JobView> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.views.get(id).cloned()
    }

    /// Forgets jobs that were deleted (retention): a lookup must not find
    /// them.
    pub fn remove<'a>(&self, ids: impl Iterator<Item = &'a str>) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for id in ids {
            inner.views.remove(id);
        }
        // `order` keeps the ids; they age out with the others.
    }

    /// Adds jobs that just became final and durable.
    pub fn add<'a>(&self, views: impl Iterator<Item = &'a JobView>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use frontends::JobStatus;

    #[test]
    fn recent_jobs_are_bounded_oldest_out_first() {
        let recent = RecentJobs::default();
        let view = |i: usize| JobView {
            id: format!("{i}"),
            status: JobStatus::Success,
            algorithm: "md5".into(),
            hash: None,
            hashes: Vec::new(),
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
}
