//! Lookups waiting for a job to become final (`GET /gethash/ID?wait=SECS`).
//!
//! A waiter registers under the job's id before it reads the job, so an end
//! committed between the read and the wait still wakes it. The store wakes
//! ids after each commit of its own and, on PostgreSQL, when another node
//! announces ends (LISTEN/NOTIFY); a woken waiter reads the job again, so a
//! wake-up carries no state and a spurious one costs one read.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Waiters by job id. One entry per waiting request, so the map is bounded
/// by the open HTTP connections (`--max-connections`).
#[derive(Default)]
pub struct Waiters {
    inner: Mutex<HashMap<String, Vec<oneshot::Sender<()>>>>,
    /// Set at shutdown: waits end at once, so that a long-poll does not
    /// hold the graceful shutdown for its whole timeout.
    closed: AtomicBool,
}

/// A registration; resolves when its job may have changed. Dropping it
/// (timeout, client gone) removes it.
pub struct Waiter {
    id: String,
    rx: oneshot::Receiver<()>,
    waiters: Arc<Waiters>,
}

impl Waiters {
    /// Registers a wait for job `id`.
    pub fn register(self: &Arc<Self>, id: &str) -> Waiter {
        let (tx, rx) = oneshot::channel();
        self.lock().entry(id.to_string()).or_default().push(tx);
        Waiter {
            id: id.to_string(),
            rx,
            waiters: self.clone(),
        }
    }

    /// Wakes every waiter of each id in `ids`.
    pub fn wake<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut inner = self.lock();
        if inner.is_empty() {
            return;
        }
        for id in ids {
            for tx in inner.remove(id).unwrap_or_default() {
                let _ = tx.send(());
            }
        }
    }

    /// Wakes every waiter: after a gap in the announcements (the listening
    /// connection was lost), any job may have ended unannounced.
    pub fn wake_all(&self) {
        for (_, txs) in self.lock().drain() {
            for tx in txs {
                let _ = tx.send(());
            }
        }
    }

    /// Ends every wait now and every later one at once (shutdown).
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.wake_all();
    }

    /// Whether [`Waiters::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Whether anyone waits for `id`.
    pub fn is_waited(&self, id: &str) -> bool {
        self.lock().contains_key(id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<oneshot::Sender<()>>>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Waiter {
    /// Resolves when the job may have changed (or the store is gone).
    pub async fn changed(&mut self) {
        let _ = (&mut self.rx).await;
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        // Closed first, so that its own sender counts as gone below.
        self.rx.close();
        let mut inner = self.waiters.lock();
        if let Some(txs) = inner.get_mut(&self.id) {
            txs.retain(|tx| !tx.is_closed());
            if txs.is_empty() {
                inner.remove(&self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wake_reaches_the_waiters_of_its_id_and_dropped_waiters_leave_no_entry() {
        let waiters = Arc::new(Waiters::default());
        let mut a = waiters.register("a");
        let b = waiters.register("b");
        waiters.wake(["a", "zz"]);
        a.changed().await;
        assert!(!waiters.is_waited("a"));
        assert!(waiters.is_waited("b"));
        drop(b);
        assert!(waiters.lock().is_empty());
        let mut c = waiters.register("c");
        waiters.wake_all();
        c.changed().await;
    }
}
