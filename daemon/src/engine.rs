//! The daemon's side of [`frontends::Backend`]: uploads become hasher-pool
//! streams whose results go to the store; lookups read the store.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use frontends::{
    Answer, ApiError, Backend, ByteStream, JobEnded, JobPage, JobStatus, JobView, ListQuery, Reply,
    Upload, UploadMeta,
};
use hashcore::{to_hex, Algorithm, Completion, HasherPool, JobError, Outcome, StreamJob};
use tokio::sync::oneshot;

use crate::delay::DelayedResults;
use crate::store::{Finish, JobStore as _, NewJob, Store};
use crate::util::{new_id, now_ms, rfc3339};

/// What the engine needs to know of the configuration.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Keep each upload under this directory, named by its id.
    pub uploads_dir: Option<PathBuf>,
    /// Extra delay before a job's result reaches the store (testing PENDING
    /// flows); zero for none.
    pub artificial_delay: Duration,
}

pub struct Engine {
    pub(crate) pool: HasherPool,
    pub(crate) store: Arc<Store>,
    pub(crate) config: EngineConfig,
    /// Holds results for `config.artificial_delay`; `None` when it is zero,
    /// so that results go straight to the store.
    delayed: Option<Arc<DelayedResults>>,
    started: Instant,
}

impl Engine {
    /// Errors: the thread that holds delayed results cannot be started.
    pub fn new(
        pool: HasherPool,
        store: Arc<Store>,
        config: EngineConfig,
    ) -> std::io::Result<Engine> {
        let delayed = match config.artificial_delay {
            d if d.is_zero() => None,
            d => Some(Arc::new(DelayedResults::start(d, store.clone())?)),
        };
        Ok(Engine {
            pool,
            store,
            config,
            delayed,
            started: Instant::now(),
        })
    }

    /// Hands results held for the artificial delay to the store at once;
    /// results after this go there directly. Call at shutdown, once the
    /// pool has stopped and before the store closes.
    pub(crate) fn release_delayed(&self) {
        if let Some(d) = &self.delayed {
            d.close();
        }
    }

    /// A completion that records the outcome of job `id` in the store.
    pub(crate) fn completion(
        &self,
        id: String,
        notify: Option<oneshot::Sender<JobView>>,
    ) -> Completion {
        let store = self.store.clone();
        let delayed = self.delayed.clone();
        Box::new(move |outcome| {
            let finish = match outcome {
                Ok(d) => Finish::Success {
                    hash: to_hex(&d.bytes),
                    size: d.len,
                },
                Err(e) => Finish::Failure {
                    reason: e.to_string(),
                },
            };
            match delayed {
                Some(d) => d.finish(id, finish, notify),
                None => store.finish(id, finish, notify),
            }
        })
    }
}

/// A pool completion that hands a request-and-reply job's end to its
/// front end as an [`Answer`].
fn answered(reply: Reply) -> Completion {
    Box::new(move |outcome: Outcome| {
        reply(match outcome {
            Ok(d) => Answer::Digest {
                bytes: d.bytes,
                size: d.len,
            },
            Err(e) => Answer::Failed {
                busy: matches!(e, JobError::Busy),
                reason: e.to_string(),
            },
        })
    })
}

/// A socket stream: the pool's stream job, behind the front ends' trait.
pub struct SocketStream(StreamJob);

impl ByteStream for SocketStream {
    async fn send(&mut self, chunk: Bytes) -> Result<(), JobEnded> {
        self.0.send(chunk).await.map_err(|_| JobEnded)
    }

    fn finish(self) {
        // An error means the job already ended, and its reply is on its way.
        let _ = self.0.finish();
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

/// A failure to keep an upload, without the path (answers never name
/// server paths): 507 for a full disk, 500 otherwise.
fn storage_error(e: &std::io::Error) -> ApiError {
    if matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    ) {
        ApiError::InsufficientStorage("cannot store the upload".into())
    } else {
        ApiError::Internal(format!("cannot store the upload: {}", e.kind()))
    }
}

impl Backend for Engine {
    type Upload = HttpUpload;
    type Stream = SocketStream;

    fn begin_upload(&self, meta: UploadMeta) -> Result<HttpUpload, ApiError> {
        let id = new_id().map_err(internal)?;
        let spool = match &self.config.uploads_dir {
            Some(dir) => Some(Spool::create(dir.join(&id)).map_err(|e| {
                tracing::error!(error = %e, "cannot store an upload");
                storage_error(&e)
            })?),
            None => None,
        };
        let (final_tx, final_rx) = oneshot::channel();
        let job = self
            .pool
            .try_open_stream(meta.algo, self.completion(id.clone(), Some(final_tx)))
            .map_err(|e| match e {
                JobError::Busy => ApiError::Busy {
                    retry_after: 1,
                    what: format!("{} streams being hashed", self.pool.max_streams()),
                },
                _ => ApiError::ShuttingDown,
            })?;
        Ok(HttpUpload {
            id,
            algo: meta.algo,
            name: meta.name,
            job: Some(job),
            final_rx,
            store: self.store.clone(),
            size: 0,
            spool,
            created_ms: now_ms(),
        })
    }

    async fn lookup(&self, id: &str) -> Result<Option<JobView>, ApiError> {
        self.store.get(id).await.map_err(internal)
    }

    async fn list(&self, query: ListQuery) -> Result<JobPage, ApiError> {
        self.store.list(query).await.map_err(internal)
    }

    fn answer_file(&self, algo: Algorithm, file: File, reply: Reply) {
        self.pool.submit_file(algo, file, answered(reply));
    }

    fn answer_stream(&self, algo: Algorithm, reply: Reply) -> SocketStream {
        SocketStream(self.pool.open_stream(algo, answered(reply)))
    }

    fn progress(&self) -> Option<u64> {
        Some(self.pool.progress())
    }

    async fn stats(&self) -> Result<serde_json::Value, ApiError> {
        let counts = self.store.counts().await.map_err(internal)?;
        let hashers: Vec<_> = self
            .pool
            .stats()
            .into_iter()
            .map(|h| {
                serde_json::json!({
                    "index": h.index,
                    "alive": h.alive,
                    "cpu": h.cpu,
                    "jobs_done": h.jobs_done,
                    "jobs_failed": h.jobs_failed,
                    "bytes": h.bytes,
                    "active_jobs": h.active_jobs,
                    "reads_in_flight": h.reads_in_flight,
                    "reader": h.reader,
                    "md5_kernel_calls": h.kernel_calls,
                    "lane_occupancy": (h.lane_slots > 0).then(|| h.lane_blocks as f64 / h.lane_slots as f64),
                })
            })
            .collect();
        Ok(serde_json::json!({
            "jobs": {
                "PENDING": counts.pending,
                "SUCCESS": counts.success,
                "FAILURE": counts.failure,
                "total": counts.total,
            },
            "bytes_hashed": counts.bytes_hashed,
            "hashers": hashers,
            "uptime_secs": self.started.elapsed().as_secs(),
            "version": env!("CARGO_PKG_VERSION"),
            "algorithms": Algorithm::ALL.iter().map(|a| a.name()).collect::<Vec<_>>(),
            "artificial_delay_secs": self.config.artificial_delay.as_secs_f64(),
            "keep_uploads": self.config.uploads_dir.is_some(),
            "uring_fallback": self.pool.uring_fallback(),
            "md5_backend": self.pool.md5_platform().name(),
        }))
    }
}

/// A stored copy of an upload, removed again unless the upload completes.
struct Spool {
    file: Option<File>,
    path: PathBuf,
    complete: bool,
}

impl Spool {
    fn create(path: PathBuf) -> std::io::Result<Spool> {
        let file = File::create(&path)?;
        Ok(Spool {
            file: Some(file),
            path,
            complete: false,
        })
    }

    async fn write(&mut self, chunk: Bytes) -> Result<(), ApiError> {
        let Some(mut file) = self.file.take() else {
            return Err(ApiError::Internal("stored upload is unavailable".into()));
        };
        // The chunk is refcounted: the blocking write shares it, no copy.
        let (file, result) = tokio::task::spawn_blocking(move || {
            let r = file.write_all(&chunk);
            (file, r)
        })
        .await
        .map_err(internal)?;
        self.file = Some(file);
        result.map_err(|e| {
            tracing::error!(error = %e, path = %self.path.display(), "writing a stored upload failed");
            storage_error(&e)
        })
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if !self.complete {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// One HTTP upload in flight; see [`frontends::Upload`].
pub struct HttpUpload {
    id: String,
    algo: Algorithm,
    name: Option<String>,
    /// Dropping it unfinished aborts the job on its hasher.
    job: Option<StreamJob>,
    /// Resolves with the final state once it is committed.
    final_rx: oneshot::Receiver<JobView>,
    store: Arc<Store>,
    size: u64,
    spool: Option<Spool>,
    created_ms: i64,
}

impl Upload for HttpUpload {
    async fn send(&mut self, chunk: Bytes) -> Result<(), ApiError> {
        self.size += chunk.len() as u64;
        if let Some(spool) = &mut self.spool {
            spool.write(chunk.clone()).await?;
        }
        let job = self.job.as_mut().ok_or(ApiError::ShuttingDown)?;
        job.send(chunk).await.map_err(|_| ApiError::ShuttingDown)
    }

    async fn finish(mut self, wait: bool) -> Result<JobView, ApiError> {
        // Kept from here on, even if this future is dropped while the insert
        // is in flight (a client gone at the last moment): the insert may
        // still commit, and then the job needs its copy.
        if let Some(spool) = &mut self.spool {
            spool.complete = true;
        }
        let job = self.job.take().ok_or(ApiError::ShuttingDown)?;
        // The insert is queued before the hasher can finish, so the store
        // sees the row before its result.
        let recorded = self.store.insert(NewJob {
            id: self.id.clone(),
            algorithm: self.algo.name().to_string(),
            size: self.size,
            name: self.name.clone(),
            stored_path: self.spool.as_ref().map(|s| s.path.clone()),
            created_ms: self.created_ms,
        });
        job.finish().map_err(|_| ApiError::ShuttingDown)?;
        let unrecorded = match recorded.await {
            Ok(Ok(())) => None,
            Ok(Err(e)) if e.disk_full => Some(ApiError::InsufficientStorage(e.reason)),
            Ok(Err(e)) => Some(ApiError::Internal(e.reason)),
            Err(_) => Some(ApiError::ShuttingDown),
        };
        if let Some(err) = unrecorded {
            // No job owns the copy: remove it (a full disk must not stay full).
            if let Some(spool) = &mut self.spool {
                spool.complete = false;
            }
            return Err(err);
        }
        if wait {
            return (&mut self.final_rx)
                .await
                .map_err(|_| ApiError::ShuttingDown);
        }
        Ok(self.final_rx.try_recv().unwrap_or_else(|_| JobView {
            id: self.id.clone(),
            status: JobStatus::Pending,
            algorithm: self.algo.name().to_string(),
            hash: None,
            size: Some(self.size),
            name: self.name.clone(),
            error: None,
            created_at: rfc3339(self.created_ms),
            finished_at: None,
        }))
    }
}
