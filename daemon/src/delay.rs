//! The original service's `ARTIFICIAL_DELAY` (`--artificial-delay`): each
//! job's result is held this long before it reaches the store, so the job
//! reads PENDING meanwhile (clients test their polling with it).
//!
//! It is the engine's, not the store's: the store's contract stays "a
//! finish is applied as soon as it can be", whatever the store. One thread
//! holds the results in a FIFO. The delay is the same for every result, so
//! arrival order is due order and no heap is needed. [`DelayedResults::close`]
//! (at shutdown, after the hasher pool and before the store closes) hands
//! every held result to the store at once, as the store writer did before.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use frontends::JobView;
use tokio::sync::oneshot;

use crate::store::{Finish, JobStore as _, Store};

/// One result waiting for its time.
struct Held {
    due: Instant,
    id: String,
    finish: Finish,
    notify: Option<oneshot::Sender<JobView>>,
}

#[derive(Default)]
struct Queue {
    held: VecDeque<Held>,
    /// Set by `close`; from then on results go straight to the store.
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Wakes the thread for a first result or for `close`.
    changed: Condvar,
}

/// Results held for the artificial delay, then passed to the store.
pub struct DelayedResults {
    delay: Duration,
    store: Arc<Store>,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl DelayedResults {
    /// Starts the thread that releases results `delay` after they arrive.
    /// Errors: the thread cannot be created.
    pub fn start(delay: Duration, store: Arc<Store>) -> std::io::Result<DelayedResults> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            changed: Condvar::new(),
        });
        let thread = {
            let (shared, store) = (shared.clone(), store.clone());
            std::thread::Builder::new()
                .name("result-delay".into())
                .spawn(move || release(&shared, &store))?
        };
        Ok(DelayedResults {
            delay,
            store,
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Holds job `id`'s result for the delay, then queues it at the store
    /// (see [`crate::store::JobStore::finish`]). Never blocks for long: it
    /// is called from completions, on hasher threads and the runtime. After
    /// [`close`](Self::close), passes the result on at once.
    pub fn finish(&self, id: String, finish: Finish, notify: Option<oneshot::Sender<JobView>>) {
        let mut q = lock(&self.shared.queue);
        if q.closed {
            drop(q);
            self.store.finish(id, finish, notify);
            return;
        }
        q.held.push_back(Held {
            due: Instant::now() + self.delay,
            id,
            finish,
            notify,
        });
        // The thread sleeps until the front's due time, which a push behind
        // it does not change; only a first result needs to wake it.
        if q.held.len() == 1 {
            self.shared.changed.notify_one();
        }
    }

    /// Passes every held result to the store now and stops the thread.
    /// Results that arrive later go to the store at once. Blocks until the
    /// thread has handed everything over; later calls return at once.
    pub fn close(&self) {
        lock(&self.shared.queue).closed = true;
        self.shared.changed.notify_one();
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
    }
}

impl Drop for DelayedResults {
    fn drop(&mut self) {
        self.close();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The thread: waits for the front result's due time (or `close`), and
/// passes due results to the store outside the lock.
fn release(shared: &Shared, store: &Store) {
    let mut q = lock(&shared.queue);
    loop {
        let now = Instant::now();
        let closed = q.closed;
        let mut due = Vec::new();
        while q.held.front().is_some_and(|h| closed || h.due <= now) {
            due.extend(q.held.pop_front());
        }
        if !due.is_empty() {
            drop(q);
            for h in due {
                store.finish(h.id, h.finish, h.notify);
            }
            q = lock(&shared.queue);
            continue;
        }
        if closed {
            return;
        }
        q = match q.held.front() {
            Some(h) => {
                let wait = h.due.saturating_duration_since(now);
                shared
                    .changed
                    .wait_timeout(q, wait)
                    .unwrap_or_else(|p| p.into_inner())
                    .0
            }
            None => shared.changed.wait(q).unwrap_or_else(|p| p.into_inner()),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results_log::ResultsLog;
    use crate::store::{NewJob, SyncMode};
    use crate::util::new_id;
    use frontends::JobStatus;

    fn open(dir: &std::path::Path) -> Arc<Store> {
        let log = ResultsLog::open(&dir.join("results.log")).unwrap();
        Arc::new(Store::open(&dir.join("jobs.db"), SyncMode::Normal, log).unwrap())
    }

    fn job(id: &str) -> NewJob {
        NewJob {
            id: id.into(),
            algorithm: "md5".into(),
            size: 1,
            name: None,
            stored_path: None,
            created_ms: 0,
        }
    }

    fn ok() -> Finish {
        Finish::Success {
            hash: "00".into(),
            hashes: None,
            size: 1,
        }
    }

    #[test]
    fn results_stay_pending_for_the_delay_and_close_applies_the_rest() {
        let dir = std::env::temp_dir().join(format!("hashd-delay-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let store = open(&dir);
        let delay = Duration::from_millis(300);
        let delayed = DelayedResults::start(delay, store.clone()).unwrap();
        let (soon, later) = (new_id().unwrap(), new_id().unwrap());
        for id in [&soon, &later] {
            rt.block_on(store.insert(job(id))).unwrap().unwrap();
        }
        let started = Instant::now();
        let (notify, told) = oneshot::channel();
        delayed.finish(soon.clone(), ok(), Some(notify));
        let status = |store: &Store, id: &str| rt.block_on(store.get(id)).unwrap().unwrap().status;
        assert_eq!(status(&store, &soon), JobStatus::Pending);
        let view = rt.block_on(told).unwrap();
        assert!(started.elapsed() >= delay, "{:?}", started.elapsed());
        assert_eq!(view.status, JobStatus::Success);
        assert_eq!(status(&store, &soon), JobStatus::Success);

        // Held when shutdown begins: applied at close, not dropped.
        delayed.finish(later.clone(), ok(), None);
        assert_eq!(status(&store, &later), JobStatus::Pending);
        let closing = Instant::now();
        delayed.close();
        assert!(closing.elapsed() < delay);
        // After close, results go to the store directly.
        let after = new_id().unwrap();
        rt.block_on(store.insert(job(&after))).unwrap().unwrap();
        delayed.finish(after.clone(), ok(), None);
        rt.block_on(store.close());
        drop(store);
        let store = open(&dir);
        assert_eq!(status(&store, &later), JobStatus::Success);
        assert_eq!(status(&store, &after), JobStatus::Success);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
