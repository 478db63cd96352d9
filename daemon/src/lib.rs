//! The `hashd` daemon: configuration, the job owner ([`jobs`]), the job
//! store, the results log, and the wiring of front ends to the job owner.
//!
//! Threads: tokio runs the front ends; `hasher-N` threads (hashcore) hash;
//! with SQLite, `store-writer` owns the only writing connection (with
//! PostgreSQL, the writer, heartbeat and listener are tokio tasks);
//! `results-log` appends finished jobs; with `--artificial-delay`,
//! `result-delay` holds results before they reach the store. Data flows
//! front end → hasher → store writer → results log, each hop over a channel.
//!
//! Shutdown, in one order (see [`run`]): signal → stop accepting → drain
//! HTTP and socket connections and the start-up re-hashes (each bounded by
//! `--shutdown-grace`) → shut the hasher pool (queued work finishes, open
//! streams fail) → results held for the delay go to the store → the store
//! writer applies what is queued, commits (SQLite: checkpoints) → the
//! results log flushes and fsyncs. A second signal exits at once (see `main.rs`).
#![forbid(unsafe_code)]

pub mod cli;
pub mod client;
pub mod config;
pub mod delay;
pub mod jobs;
pub mod results_log;
pub mod store;
pub mod util;

use std::future::Future;
use std::io::Write;
use std::sync::Arc;

use anyhow::Context as _;
use frontends::unix::SocketConfig;
use hashcore::{HasherPool, PoolConfig};
use tokio::net::TcpListener;

pub use config::{Config, ServeArgs};
use jobs::{Jobs, JobsConfig};
use results_log::ResultsLog;
use store::{JobStore as _, Node, Store};

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
    // Bound before the store opens, so that the node registers the port it
    // has (`--listen` may ask for port 0); requests wait in the backlog
    // until the front end starts.
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let node = Node {
        id: node_id(&config.data_dir)?,
        address: addr.to_string(),
        started_ms: util::now_ms(),
        timeout: config.node_timeout,
    };
    let location = config.store_location();
    if let store::Location::Postgres(_) = &location {
        tracing::info!(node = %node.id, "connecting to the PostgreSQL job store");
    }
    let store = Arc::new(Store::connect(&location, config.sync, log, node).await?);
    // Before any job: a kernel that answers wrong must stop start-up, not
    // serve wrong digests. Checked on the MD5 backend the pool will use.
    if !config.md5.is_available() {
        anyhow::bail!(
            "md5 backend {} is not available on this CPU",
            config.md5.name()
        );
    }
    let self_test = hashcore::selftest::run(config.md5)
        .context("refusing to start: a hash kernel gave a wrong answer")?;
    tracing::info!(
        checks = self_test.checks,
        ms = self_test.elapsed.as_secs_f64() * 1e3,
        "known-answer self-test passed"
    );
    for algo in hashcore::Algorithm::ALL {
        tracing::debug!(
            algorithm = algo.name(),
            implementation = algo.implementation(),
            "hash implementation"
        );
    }
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
    let jobs = Arc::new(
        Jobs::new(
            pool,
            store.clone(),
            JobsConfig {
                uploads_dir: config.keep_uploads.then(|| config.uploads_dir()),
                artificial_delay: config.artificial_delay,
                self_test,
            },
        )
        .context("cannot start the thread that delays results")?,
    );
    let rehashing = jobs.recover(config.chunk_size).await?;
    let reporter = jobs.report_task(config.node_timeout / 5);

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
        jobs.clone(),
        config.http.clone(),
        stopped(stop_rx.clone()),
    );
    let unix = async {
        if let Some((l, path)) = socket {
            frontends::unix::serve(
                l,
                &path,
                jobs.clone(),
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
        // Long-polls answer now with the job as it is, instead of holding
        // the drain for up to their timeout.
        store.waiters().close();
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

    jobs.shutdown();
    reporter.abort();
    store.close().await;
    tracing::info!("hashd stopped");
    Ok(())
}

/// Streams the hasher pool admits beyond `--max-uploads`: the unix socket's
/// request-and-reply streams and start-up re-hashes share them. One more
/// is refused (the socket's busy reply; a 503 for an upload that finds them
/// taken). Each open stream may hold 2 MiB at its hasher, so this bounds
/// that memory too.
const SOCKET_STREAMS: usize = 1024;

/// This node's id, kept in `DATA_DIR/node-id` so that it survives
/// restarts (a restarted node then finds its own unfinished jobs): `n-`
/// and 16 hex digits, made on the first start.
fn node_id(dir: &std::path::Path) -> anyhow::Result<String> {
    let path = dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    let id = format!("n-{}", &util::new_id()?[..16]);
    std::fs::write(&path, format!("{id}\n"))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(id)
}

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
