//! The uploads streaming in now (`GET /uploads`, `/stats`'
//! `uploads_in_progress`): for operators, and for a page's live list. An
//! upload gets its id only once its body has ended (the original API), so
//! this is the one view of an upload before that.
//!
//! Cheap on the hot path: an upload registers once (one mutex operation)
//! when it takes its `--max-uploads` slot and leaves when it gives it back;
//! each body chunk costs one relaxed atomic add. The registry holds at most
//! `--max-uploads` entries, because only slot holders are in it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use serde::Serialize;

/// The client address of a request's connection (a request extension);
/// `None` where the connection is not a socket (tests, fuzzing).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Peer(pub(crate) Option<SocketAddr>);

/// What is known of one upload in progress.
#[derive(Debug)]
pub(crate) struct Entry {
    /// The file's bytes received so far (for a form, the `file` part's).
    pub(crate) received: AtomicU64,
    /// The request's Content-Length; for a form it includes the framing.
    declared: Option<u64>,
    client: Option<SocketAddr>,
    /// The algorithms asked for, comma-separated.
    algorithm: String,
    started_at: SystemTime,
    /// For the rate: wall-clock time can jump, this cannot.
    started: Instant,
}

/// Every upload holding a `--max-uploads` slot, by a local key.
#[derive(Default)]
pub(crate) struct InProgress {
    entries: Mutex<HashMap<u64, Arc<Entry>>>,
    next_key: AtomicU64,
}

/// An upload's place in [`InProgress`]; dropping it removes the upload.
pub(crate) struct Registration {
    pub(crate) entry: Arc<Entry>,
    key: u64,
    registry: Arc<InProgress>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.registry.entries).remove(&self.key);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One upload as `GET /uploads` lists it.
#[derive(Serialize)]
struct View {
    /// Bytes of the file received so far.
    received: u64,
    /// Content-Length, if the client declared one (a form's includes its
    /// framing, so it is a little more than the file).
    declared_length: Option<u64>,
    /// Average bytes per second since the upload started.
    bytes_per_sec: f64,
    client: Option<String>,
    algorithm: String,
    /// RFC 3339, UTC.
    started_at: String,
}

impl InProgress {
    /// Adds an upload; it stays listed until the registration is dropped.
    pub(crate) fn register(
        self: &Arc<Self>,
        client: Option<SocketAddr>,
        declared: Option<u64>,
        algorithm: String,
    ) -> Registration {
        let entry = Arc::new(Entry {
            received: AtomicU64::new(0),
            declared,
            client,
            algorithm,
            started_at: SystemTime::now(),
            started: Instant::now(),
        });
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        lock(&self.entries).insert(key, entry.clone());
        Registration {
            entry,
            key,
            registry: self.clone(),
        }
    }

    /// How many uploads are streaming in now.
    pub(crate) fn count(&self) -> usize {
        lock(&self.entries).len()
    }

    /// `{"uploads": [...]}`, oldest first.
    pub(crate) fn snapshot(&self) -> serde_json::Value {
        let mut entries: Vec<_> = lock(&self.entries).values().cloned().collect();
        entries.sort_by_key(|e| e.started);
        let uploads: Vec<View> = entries
            .iter()
            .map(|e| {
                let received = e.received.load(Ordering::Relaxed);
                let secs = e.started.elapsed().as_secs_f64();
                View {
                    received,
                    declared_length: e.declared,
                    bytes_per_sec: if secs > 0.0 {
                        received as f64 / secs
                    } else {
                        0.0
                    },
                    client: e.client.map(|a| a.to_string()),
                    algorithm: e.algorithm.clone(),
                    started_at: humantime::format_rfc3339_millis(e.started_at).to_string(),
                }
            })
            .collect();
        serde_json::json!({ "uploads": uploads })
    }
}
