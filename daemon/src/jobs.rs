//! The job owner: the only caller of the hasher pool and the store. Front
//! ends reach it through [`frontends::Backend`]: uploads become pool streams
//! whose results go to the store (after the artificial delay, if any),
//! lookups read the store, request-and-reply jobs answer their client. It
//! also recovers the jobs a previous run left PENDING, and stops the pool
//! and the delay in order at shutdown.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use frontends::{
    check_claims, Answer, ApiError, Backend, ByteStream, Claim, JobEnded, JobPage, JobProgress,
    JobStatus, JobView, ListQuery, Reply, Upload, UploadMeta,
};
use hashcore::{Algorithm, Algorithms, Completion, HasherPool, JobError, Outcome, StreamJob};
use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;

use crate::delay::DelayedResults;
use crate::store::{
    Finish, Interrupted, JobStore as _, NewJob, NodeReport, RecordErrorKind, Store, Unavailable,
};
use crate::util::{new_id, now_ms, rfc3339};

/// What the job owner needs to know of the configuration.
#[derive(Clone, Debug)]
pub struct JobsConfig {
    /// Keep each upload under this directory, named by its id.
    pub uploads_dir: Option<PathBuf>,
    /// Extra delay before a job's result reaches the store (testing PENDING
    /// flows); zero for none.
    pub artificial_delay: Duration,
    /// The data directory, whose free space `/ready` checks.
    pub data_dir: PathBuf,
    /// `/ready` fails below this many free bytes in `data_dir`
    /// (`--min-free-disk`).
    pub min_free_disk: u64,
    /// What the start-up known-answer test checked, for `/stats`.
    pub self_test: hashcore::selftest::SelfTestReport,
    /// The MD5 kernels in use, for `/stats`.
    pub md5_tuning: hashcore::md5::Tuning,
    /// What the start-up calibration measured; `None` with `--md5-tuning
    /// fixed`.
    pub md5_calibration: Option<hashcore::md5::Calibration>,
}

/// Owns every job from admission to its recorded or answered end.
pub struct Jobs {
    pub(crate) pool: HasherPool,
    pub(crate) store: Arc<Store>,
    pub(crate) config: JobsConfig,
    /// Holds results for `config.artificial_delay`; `None` when it is zero,
    /// so that results go straight to the store.
    delayed: Option<Arc<DelayedResults>>,
    started: Instant,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    /// The byte counters of the jobs being hashed here, for event streams.
    meters: Arc<Meters>,
}

/// The byte counter of one job being hashed: one relaxed atomic add per
/// chunk on the hot path.
struct Meter {
    /// Bytes handed to the job's hasher so far.
    bytes: AtomicU64,
    /// The job's size, when known before its end (re-hashes).
    total: Option<u64>,
}

/// Running jobs' counters by id: an entry from the job's start until its
/// hasher's outcome (the completion removes it), so at most as many
/// entries as the pool admits streams.
#[derive(Default)]
struct Meters(Mutex<HashMap<String, Arc<Meter>>>);

impl Meters {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Meter>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn start(&self, id: &str, total: Option<u64>) -> Arc<Meter> {
        let meter = Arc::new(Meter {
            bytes: AtomicU64::new(0),
            total,
        });
        self.lock().insert(id.to_string(), meter.clone());
        meter
    }
}

impl Jobs {
    /// Errors: the thread that holds delayed results cannot be started.
    pub fn new(
        pool: HasherPool,
        store: Arc<Store>,
        config: JobsConfig,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> std::io::Result<Jobs> {
        let delayed = match config.artificial_delay {
            d if d.is_zero() => None,
            d => Some(Arc::new(DelayedResults::start(d, store.clone())?)),
        };
        Ok(Jobs {
            pool,
            store,
            config,
            delayed,
            started: Instant::now(),
            metrics,
            meters: Arc::default(),
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

    /// A completion that records the outcome of job `id`, hashed with
    /// `algos`, in the store. A digest that contradicts one of the
    /// `expected` claims (read when the job ends, so that claims added
    /// until then count) ends the job as FAILURE
    /// [`frontends::DIGEST_MISMATCH`], never SUCCESS.
    pub(crate) fn completion(
        &self,
        id: String,
        algos: Algorithms,
        notify: Option<oneshot::Sender<JobView>>,
        expected: Expected,
    ) -> Completion {
        let store = self.store.clone();
        let delayed = self.delayed.clone();
        let metrics = self.metrics.jobs.clone();
        let meters = self.meters.clone();
        // With an artificial delay the counter stays (all bytes in) until
        // the result is released, so that a watcher sees the job hashed
        // and waiting rather than nothing; a timer on the runtime removes it.
        let delay = self.config.artificial_delay;
        let runtime = tokio::runtime::Handle::try_current().ok();
        Box::new(move |outcome| {
            match (&runtime, delay.is_zero()) {
                (Some(rt), false) => {
                    let (meters, id) = (meters.clone(), id.clone());
                    rt.spawn(async move {
                        tokio::time::sleep(delay).await;
                        meters.lock().remove(&id);
                    });
                }
                _ => {
                    meters.lock().remove(&id);
                }
            }
            let claims = expected.lock().unwrap_or_else(|p| p.into_inner());
            let finish = match outcome {
                Ok(d) => match check_claims(&claims, &d.hashes) {
                    Some(reason) => {
                        metrics.mismatched();
                        Finish::Failure { reason }
                    }
                    None => {
                        metrics.succeeded(algos.iter().map(|a| a.name()), d.len);
                        Finish::success(&d.hashes, d.len)
                    }
                },
                Err(e) => {
                    metrics.failed(&e);
                    Finish::Failure {
                        reason: e.to_string(),
                    }
                }
            };
            match delayed {
                Some(d) => d.finish(id, finish, notify),
                None => store.finish(id, finish, notify),
            }
        })
    }
}

/// The claims a job is checked against, shared between its upload (which
/// may add some until it finishes) and its completion.
pub(crate) type Expected = Arc<std::sync::Mutex<Vec<Claim>>>;

/// A pool completion that hands a request-and-reply job's end to its
/// front end as an [`Answer`].
fn answered(reply: Reply) -> Completion {
    Box::new(move |outcome: Outcome| {
        reply(match outcome {
            Ok(d) => Answer::Digest {
                hashes: d.hashes,
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

/// Seconds a client is asked to wait while the job store is unreachable.
const STORE_RETRY_AFTER: u64 = 2;

/// A store error as an answer: 503 with Retry-After when the database
/// server is unreachable, 500 otherwise.
fn store_error(e: anyhow::Error) -> ApiError {
    match e.downcast_ref::<Unavailable>() {
        Some(u) => ApiError::Unavailable {
            retry_after: STORE_RETRY_AFTER,
            reason: u.to_string(),
        },
        None => ApiError::Internal(format!("{e:#}")),
    }
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

impl Backend for Jobs {
    type Upload = HttpUpload;
    type Stream = SocketStream;

    fn begin_upload(&self, meta: UploadMeta) -> Result<HttpUpload, ApiError> {
        // A job that cannot be recorded is not accepted: say so before the
        // client sends its body.
        if self.store.is_down() {
            return Err(ApiError::Unavailable {
                retry_after: STORE_RETRY_AFTER,
                reason: "the job store (PostgreSQL) is unreachable".into(),
            });
        }
        let id = new_id().map_err(internal)?;
        let spool = match &self.config.uploads_dir {
            Some(dir) => Some(Spool::create(dir.join(&id)).map_err(|e| {
                tracing::error!(error = %e, "cannot store an upload");
                storage_error(&e)
            })?),
            None => None,
        };
        let (final_tx, final_rx) = oneshot::channel();
        let expected: Expected = Arc::new(std::sync::Mutex::new(meta.expected));
        let done = self.completion(id.clone(), meta.algo, Some(final_tx), expected.clone());
        let job = self
            .pool
            .try_open_stream(meta.algo, done)
            .map_err(|e| match e {
                JobError::Busy => ApiError::Busy {
                    retry_after: 1,
                    what: format!("{} streams being hashed", self.pool.max_streams()),
                },
                _ => ApiError::ShuttingDown,
            })?;
        let meter = self.meters.start(&id, None);
        Ok(HttpUpload {
            meter,
            id,
            algo: meta.algo,
            expected,
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
        self.store.get(id).await.map_err(store_error)
    }

    async fn lookup_wait(&self, id: &str, timeout: Duration) -> Result<Option<JobView>, ApiError> {
        self.store.wait(id, timeout).await.map_err(store_error)
    }

    fn job_progress(&self, id: &str) -> Option<JobProgress> {
        let meters = self.meters.lock();
        let meter = meters.get(id)?;
        Some(JobProgress {
            bytes: meter.bytes.load(Ordering::Relaxed),
            total: meter.total,
        })
    }

    async fn list(&self, query: ListQuery) -> Result<JobPage, ApiError> {
        self.store.list(query).await.map_err(store_error)
    }

    async fn cluster(&self) -> Result<serde_json::Value, ApiError> {
        let nodes = self.store.nodes().await.map_err(store_error)?;
        Ok(serde_json::json!({ "nodes": nodes }))
    }

    async fn ready(&self) -> Result<(), String> {
        if let Some(h) = self.pool.stats().into_iter().find(|h| !h.alive) {
            return Err(format!("hasher {} has stopped", h.index));
        }
        let dir = &self.config.data_dir;
        match rustix::fs::statvfs(dir) {
            Ok(s) => {
                let free = s.f_bavail.saturating_mul(s.f_frsize);
                if free < self.config.min_free_disk {
                    return Err(format!(
                        "data directory: {free} bytes free, below --min-free-disk ({} bytes)",
                        self.config.min_free_disk
                    ));
                }
            }
            Err(e) => return Err(format!("data directory: cannot read its free space: {e}")),
        }
        match tokio::time::timeout(READY_DEADLINE, self.store.ready()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("job store: {e:#}")),
            Err(_) => Err(format!(
                "job store: no answer within {} s",
                READY_DEADLINE.as_secs()
            )),
        }
    }

    fn answer_file(
        &self,
        algo: Algorithms,
        file: File,
        hashed: Option<Arc<AtomicU64>>,
        reply: Reply,
    ) {
        self.pool
            .submit_file_counted(algo, file, hashed, answered(reply));
    }

    fn answer_stream(&self, algo: Algorithms, reply: Reply) -> SocketStream {
        SocketStream(self.pool.open_stream(algo, answered(reply)))
    }

    fn metrics(&self) -> Option<String> {
        self.metrics.encode()
    }

    fn progress(&self) -> Option<u64> {
        Some(self.pool.progress())
    }

    async fn stats(&self) -> Result<serde_json::Value, ApiError> {
        let counts = self.store.counts().await.map_err(store_error)?;
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
            "implementations": Algorithm::ALL
                .iter()
                .map(|a| (a.name().to_string(), serde_json::Value::from(a.implementation())))
                .collect::<serde_json::Map<_, _>>(),
            "artificial_delay_secs": self.config.artificial_delay.as_secs_f64(),
            "keep_uploads": self.config.uploads_dir.is_some(),
            "uring_fallback": self.pool.uring_fallback(),
            "md5_backend": self.pool.md5_platform().name(),
            "md5": md5_stats(&self.config.md5_tuning, self.config.md5_calibration.as_ref()),
            "self_test": {
                "passed": true,
                "checks": self.config.self_test.checks,
                "ms": self.config.self_test.elapsed.as_secs_f64() * 1e3,
            },
        }))
    }
}

/// Each MD5 kernel the calibration timed, with its GB/s (10^9 bytes per
/// second) with every lane busy: lane shapes first, then single streams.
pub(crate) fn md5_measured(c: &hashcore::md5::Calibration) -> Vec<(String, f64)> {
    use hashcore::md5::Calibration;
    let shapes = c
        .shapes
        .iter()
        .map(|(shape, ns)| (shape.to_string(), Calibration::gb_per_s(shape.lanes(), *ns)));
    let singles = c
        .singles
        .iter()
        .map(|(kernel, ns)| (kernel.to_string(), Calibration::gb_per_s(1, *ns)));
    shapes.chain(singles).collect()
}

/// `/stats`' `md5`: the kernels chosen and the calibration's figures (null
/// without a calibration).
fn md5_stats(
    t: &hashcore::md5::Tuning,
    c: Option<&hashcore::md5::Calibration>,
) -> serde_json::Value {
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    serde_json::json!({
        "backend": t.platform().name(),
        "single": t.single().name(),
        "shapes": t.shapes().iter().map(|(n, shape)| serde_json::json!({
            "up_to_lanes": n,
            "kernel": shape.to_string(),
        })).collect::<Vec<_>>(),
        // null: lanes never beat the single stream.
        "min_lanes": (t.min_lanes() != usize::MAX).then_some(t.min_lanes()),
        "calibration": c.map(|c| serde_json::json!({
            "ms": round(c.elapsed.as_secs_f64() * 1e3),
            "rounds": c.rounds,
            "gb_per_s": md5_measured(c)
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::from(round(v))))
                .collect::<serde_json::Map<_, _>>(),
        })),
    })
}

/// How long `GET /ready` waits for the store's answer.
const READY_DEADLINE: Duration = Duration::from_secs(2);

impl Jobs {
    /// Hands the store what this node reports with its heartbeats, every
    /// `interval`, until the task is aborted. Bytes per second are over the
    /// last interval.
    pub fn report_task(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let jobs = self.clone();
        tokio::spawn(async move {
            let mut last: Option<(Instant, u64)> = None;
            let mut tick = tokio::time::interval(interval);
            loop {
                tick.tick().await;
                let stats = jobs.pool.stats();
                let bytes: u64 = stats.iter().map(|h| h.bytes).sum();
                let now = Instant::now();
                let bytes_per_sec = match last {
                    Some((t, b)) => bytes.saturating_sub(b) as f64 / (now - t).as_secs_f64(),
                    None => 0.0,
                };
                last = Some((now, bytes));
                jobs.store.report(NodeReport {
                    hashers: stats.len() as u32,
                    jobs_in_flight: stats.iter().map(|h| h.active_jobs).sum(),
                    bytes_per_sec,
                });
            }
        })
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
    /// Counts the bytes for `job_progress`.
    meter: Arc<Meter>,
    id: String,
    algo: Algorithms,
    /// Claims the job's digests are checked against when it ends.
    expected: Expected,
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
    fn expect(&mut self, claims: Vec<Claim>) -> Result<(), ApiError> {
        if let Some(c) = claims.iter().find(|c| !self.algo.contains(c.algo)) {
            return Err(ApiError::BadRequest(format!(
                "{} names {}, which this upload was not hashed with: send the claim before \
                 the file, or add {} to ?algo=",
                c.source, c.algo, c.algo
            )));
        }
        // The job cannot end before `finish`, so its completion sees these.
        self.expected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(claims);
        Ok(())
    }

    async fn send(&mut self, chunk: Bytes) -> Result<(), ApiError> {
        self.size += chunk.len() as u64;
        self.meter
            .bytes
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
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
            algorithm: self.algo.to_string(),
            size: self.size,
            name: self.name.clone(),
            stored_path: self.spool.as_ref().map(|s| s.path.clone()),
            created_ms: self.created_ms,
        });
        job.finish().map_err(|_| ApiError::ShuttingDown)?;
        let unrecorded = match recorded.await {
            Ok(Ok(())) => None,
            Ok(Err(e)) if e.kind == RecordErrorKind::DiskFull => {
                Some(ApiError::InsufficientStorage(e.reason))
            }
            Ok(Err(e)) if e.kind == RecordErrorKind::Unavailable => Some(ApiError::Unavailable {
                retry_after: STORE_RETRY_AFTER,
                reason: e.reason,
            }),
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
            algorithm: self.algo.to_string(),
            hash: None,
            hashes: Vec::new(),
            size: Some(self.size),
            name: self.name.clone(),
            error: None,
            created_at: rfc3339(self.created_ms),
            finished_at: None,
        }))
    }
}

/// Start-up re-hashes running at once: enough to fill a hasher's SIMD
/// lanes, few enough to leave room for new uploads.
const REHASH_CONCURRENCY: usize = 32;

impl Jobs {
    /// Stops the hasher pool (queued work finishes, streams still open fail
    /// with a reason: a connection that outlived the grace period gets its
    /// job failed, not left PENDING), then hands the results held for the
    /// artificial delay to the store. The store closes after this.
    pub fn shutdown(&self) {
        self.pool.shutdown();
        self.release_delayed();
    }

    /// Ends every job a previous run left PENDING: re-hashed from its kept
    /// upload when that is complete, FAILURE `interrupted` otherwise. The
    /// re-hashes run in the returned task, at most `REHASH_CONCURRENCY` at a
    /// time, so that shutdown can wait for them.
    pub async fn recover(
        self: &Arc<Self>,
        chunk_size: usize,
    ) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
        let jobs = self;
        let pending = jobs.store.interrupted().await?;
        if pending.is_empty() {
            return Ok(None);
        }
        tracing::warn!(
            jobs = pending.len(),
            "jobs left PENDING by the previous run"
        );
        let mut rehash_jobs = Vec::new();
        for job in pending {
            let complete = match (&job.stored_path, job.size) {
                (Some(p), Some(size)) => std::fs::metadata(p).is_ok_and(|m| m.len() == size),
                _ => false,
            };
            match job.algorithm.parse::<Algorithms>() {
                Ok(algo) if complete => rehash_jobs.push((job, algo)),
                _ => jobs.store.finish(
                    job.id,
                    Finish::Failure {
                        reason: INTERRUPTED.into(),
                    },
                    None,
                ),
            }
        }
        let jobs = jobs.clone();
        let chunk = chunk_size;
        Ok(Some(tokio::spawn(async move {
            let limit = Arc::new(tokio::sync::Semaphore::new(REHASH_CONCURRENCY));
            let mut running = tokio::task::JoinSet::new();
            for (job, algo) in rehash_jobs {
                let Ok(permit) = limit.clone().acquire_owned().await else {
                    break;
                };
                let jobs = jobs.clone();
                running.spawn(async move {
                    rehash(&jobs, job, algo, chunk).await;
                    drop(permit);
                });
            }
            while running.join_next().await.is_some() {}
        })))
    }
}

const INTERRUPTED: &str = "interrupted: the daemon stopped before the job finished";

/// Re-hashes an interrupted job from its kept upload. Claims its client made
/// were not stored, so a re-hashed job is not checked against them: an
/// upload that claimed a digest was answered only once its job ended, so a
/// job interrupted before that was never acknowledged as checked.
async fn rehash(jobs: &Jobs, job: Interrupted, algo: Algorithms, chunk_size: usize) {
    let id = job.id.clone();
    // Uploads and socket streams may hold every slot for a while: wait for
    // one rather than fail a job that can still be recovered.
    let mut stream = loop {
        match jobs.pool.try_open_stream(
            algo,
            jobs.completion(id.clone(), algo, None, Expected::default()),
        ) {
            Ok(stream) => break stream,
            Err(hashcore::JobError::Busy) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await
            }
            Err(_) => {
                let reason = INTERRUPTED.into();
                jobs.store.finish(id, Finish::Failure { reason }, None);
                return;
            }
        }
    };
    let path = job.stored_path.unwrap_or_default();
    let expected = job.size.unwrap_or(0);
    let meter = jobs.meters.start(&id, Some(expected));
    let result: std::io::Result<()> = async {
        let mut file = tokio::fs::File::open(&path).await?;
        let mut read = 0u64;
        loop {
            let mut buf = BytesMut::with_capacity(chunk_size);
            let n = file.read_buf(&mut buf).await? as u64;
            read += n;
            // The length was checked before, but the copy could change
            // since: a hash of other bytes than the upload's is never an
            // answer.
            if read > expected || (n == 0 && read != expected) {
                return Err(std::io::Error::other(format!(
                    "the kept upload no longer has the upload's {expected} bytes"
                )));
            }
            if n == 0 {
                return Ok(());
            }
            meter.bytes.fetch_add(n, Ordering::Relaxed);
            if stream.send(buf.freeze()).await.is_err() {
                return Err(std::io::Error::other("hasher pool stopped"));
            }
        }
    }
    .await;
    match result {
        Ok(()) => {
            let _ = stream.finish();
            tracing::info!(%id, "re-hashed an interrupted job from its kept upload");
        }
        Err(e) => stream.abort(format!(
            "interrupted, and re-reading the kept upload failed: {e}"
        )),
    }
}
