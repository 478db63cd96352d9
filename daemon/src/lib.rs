//! The `hashd` daemon: configuration, the job store, the results log, and
//! the wiring of front ends to the hasher pool.
//!
//! Threads: tokio runs the front ends; `hasher-N` threads (hashcore) hash;
//! `store-writer` owns the only writing SQLite connection; `results-log`
//! appends finished jobs; with `--artificial-delay`, `result-delay` holds
//! results before they reach the store. Data flows front end → hasher →
//! store writer → results log, each hop over a channel.
//!
//! Shutdown, in one order (see [`run`]): signal → stop accepting → drain
//! HTTP connections (bounded by the grace period) → shut the hasher pool
//! (queued work finishes, open streams fail) → results held for the delay go
//! to the store → the store writer applies what is queued, commits,
//! checkpoints → the results log flushes and fsyncs.
#![forbid(unsafe_code)]

pub mod cli;
pub mod client;
pub mod config;
pub mod delay;
pub mod engine;
pub mod results_log;
pub mod store;
pub mod util;

use std::future::Future;
use std::io::Write;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::BytesMut;
use frontends::unix::SocketConfig;
use hashcore::{HasherPool, PoolConfig};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

pub use config::{Config, ServeArgs};
use engine::{Engine, EngineConfig};
use results_log::ResultsLog;
use store::{Finish, Interrupted, JobStore as _, Store};

/// Runs the daemon until `shutdown` resolves, then stops in the documented
/// order. Prints `hashd listening on http://ADDR` once it accepts requests.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            config.data_dir.display()
        )
    })?;
    let _lock = lock_data_dir(&config.data_dir)?;
    if config.keep_uploads {
        std::fs::create_dir_all(config.uploads_dir()).with_context(|| {
            format!(
                "cannot create the uploads directory {}",
                config.uploads_dir().display()
            )
        })?;
    }
    let log = ResultsLog::open(&config.results_log).with_context(|| {
        format!(
            "cannot open the results log {}",
            config.results_log.display()
        )
    })?;
    let store = Arc::new(Store::open(&config.database(), config.sync, log)?);
    let pool = HasherPool::start(PoolConfig {
        hashers: config.hashers,
        pin: config.pin,
        max_streams: config.http.max_uploads + SOCKET_STREAMS,
        prefer_uring: config.uring && PoolConfig::default().prefer_uring,
        md5: config.md5,
        ..PoolConfig::default()
    })
    .context("cannot start the hasher threads")?;
    tracing::info!(md5_backend = config.md5.name(), "md5 lanes");
    match pool.uring_fallback() {
        Some(reason) => tracing::warn!(reason, "io_uring unavailable; files are read with pread"),
        None => tracing::info!(reader = pool.stats()[0].reader, "file reader"),
    }
    let engine = Arc::new(
        Engine::new(
            pool,
            store.clone(),
            EngineConfig {
                uploads_dir: config.keep_uploads.then(|| config.uploads_dir()),
                artificial_delay: config.artificial_delay,
            },
        )
        .context("cannot start the thread that delays results")?,
    );
    let rehashing = recover_interrupted(&engine, &config).await?;

    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, data_dir = %config.data_dir.display(), hashers = config.hashers, "hashd started");

    let socket = match &config.socket {
        Some(path) => {
            let l = frontends::unix::bind(path)
                .with_context(|| format!("cannot listen on the unix socket {}", path.display()))?;
            tracing::info!(path = %path.display(), "unix socket ready");
            Some((l, path.clone()))
        }
        None => None,
    };
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "hashd listening on http://{addr}")?;
        if let Some((_, path)) = &socket {
            writeln!(out, "hashd socket at {}", path.display())?;
        }
        out.flush()?;
    }

    // One shutdown signal fans out to both front ends.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let http = frontends::http::serve(
        listener,
        engine.clone(),
        config.http.clone(),
        stopped(stop_rx.clone()),
    );
    let unix = async {
        if let Some((l, path)) = socket {
            frontends::unix::serve(
                l,
                &path,
                engine.clone(),
                SocketConfig {
                    allowed_roots: config.allowed_roots.clone(),
                    shutdown_grace: config.http.shutdown_grace,
                    ..SocketConfig::default()
                },
                stopped(stop_rx.clone()),
            )
            .await;
        }
    };
    let signal = async {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    tokio::join!(http, unix, signal);
    tracing::info!("front ends stopped; finishing queued jobs");
    if let Some(task) = rehashing {
        // Re-hashes read local files: let them finish, within the grace.
        let abort = task.abort_handle();
        if tokio::time::timeout(config.http.shutdown_grace, task)
            .await
            .is_err()
        {
            tracing::warn!("start-up re-hashes still running after the grace period; they fail");
            abort.abort();
        }
    }

    // A connection that outlived the grace period still holds the engine;
    // stopping the pool anyway fails its job now, with a reason, rather than
    // leaving it PENDING until the next start.
    if Arc::strong_count(&engine) > 1 {
        tracing::warn!("a connection outlived the grace period; its job will fail");
    }
    engine.pool.shutdown();
    // Results held for the artificial delay are applied now, not dropped:
    // shutdown leaves no job PENDING that a hasher finished.
    engine.release_delayed();
    store.close();
    tracing::info!("hashd stopped");
    Ok(())
}

/// Streams the hasher pool admits beyond `--max-uploads`: the unix socket's
/// request-and-reply streams and start-up re-hashes share them. One more
/// is refused (the socket's busy reply; a 503 for an upload that finds them
/// taken). Each open stream may hold 2 MiB at its hasher, so this bounds
/// that memory too.
const SOCKET_STREAMS: usize = 1024;

/// Start-up re-hashes running at once: enough to fill a hasher's SIMD
/// lanes, few enough to leave room for new uploads.
const REHASH_CONCURRENCY: usize = 32;

/// Holds an exclusive lock on `DATA_DIR/hashd.lock` for the daemon's life, so
/// a second daemon on the same directory stops at start-up with a clear error
/// instead of interleaving writes. The OS drops the lock if we crash.
fn lock_data_dir(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let path = dir.join("hashd.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "the data directory {} is locked by another process (is another hashd using it?)",
            dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// Ends every job a previous run left PENDING: re-hashed from its kept
/// upload when that is complete, FAILURE `interrupted` otherwise. The
/// re-hashes run in the returned task, at most [`REHASH_CONCURRENCY`] at a
/// time, so that shutdown can wait for them.
async fn recover_interrupted(
    engine: &Arc<Engine>,
    config: &Config,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let pending = engine.store.interrupted().await?;
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
        match job.algorithm.parse::<hashcore::Algorithm>() {
            Ok(algo) if complete => rehash_jobs.push((job, algo)),
            _ => engine.store.finish(
                job.id,
                Finish::Failure {
                    reason: INTERRUPTED.into(),
                },
                None,
            ),
        }
    }
    let engine = engine.clone();
    let chunk = config.chunk_size;
    Ok(Some(tokio::spawn(async move {
        let limit = Arc::new(tokio::sync::Semaphore::new(REHASH_CONCURRENCY));
        let mut running = tokio::task::JoinSet::new();
        for (job, algo) in rehash_jobs {
            let Ok(permit) = limit.clone().acquire_owned().await else {
                break;
            };
            let engine = engine.clone();
            running.spawn(async move {
                rehash(&engine, job, algo, chunk).await;
                drop(permit);
            });
        }
        while running.join_next().await.is_some() {}
    })))
}

const INTERRUPTED: &str = "interrupted: the daemon stopped before the job finished";

async fn rehash(engine: &Engine, job: Interrupted, algo: hashcore::Algorithm, chunk_size: usize) {
    let id = job.id.clone();
    // Uploads and socket streams may hold every slot for a while: wait for
    // one rather than fail a job that can still be recovered.
    let mut stream = loop {
        match engine
            .pool
            .try_open_stream(algo, engine.completion(id.clone(), None))
        {
            Ok(stream) => break stream,
            Err(hashcore::JobError::Busy) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await
            }
            Err(_) => {
                let reason = INTERRUPTED.into();
                engine.store.finish(id, Finish::Failure { reason }, None);
                return;
            }
        }
    };
    let path = job.stored_path.unwrap_or_default();
    let expected = job.size.unwrap_or(0);
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
