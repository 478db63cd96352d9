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
pub mod metrics;
pub mod results_log;
pub mod retention;
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
/// order. Prints `hashd listening on http://ADDR` (`https://` with TLS) once
/// it accepts requests, and then tells systemd so (`READY=1`, when started
/// with `NOTIFY_SOCKET`).
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        let dir = config.data_dir.display();
        let hint = match e.kind() {
            _ if config.data_dir.exists() && !config.data_dir.is_dir() => {
                format!("{dir} is a file, not a directory: choose another --data-dir")
            }
            std::io::ErrorKind::PermissionDenied => format!(
                "no permission to create {dir}: choose a --data-dir this user can write, or create it and give this user write access"
            ),
            _ => format!("cannot create the data directory {dir}"),
        };
        anyhow::Error::new(e).context(hint)
    })?;
    let _lock = lock_data_dir(&config.data_dir)?;
    let auth = match &config.auth_token_file {
        Some(path) => Some(Arc::new(
            frontends::http::guard::Auth::load(path).map_err(anyhow::Error::msg)?,
        )),
        None => None,
    };
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
    let listener = TcpListener::bind(config.listen).await.map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::AddrInUse => format!(
                "cannot listen on {}: another program (another hashd?) has that port: stop it, or choose another with --listen",
                config.listen
            ),
            std::io::ErrorKind::PermissionDenied => format!(
                "cannot listen on {}: ports below 1024 need privileges: choose a port above 1023 with --listen",
                config.listen
            ),
            _ => format!("cannot listen on {}", config.listen),
        };
        anyhow::Error::new(e).context(hint)
    })?;
    let addr = listener.local_addr()?;
    if auth.is_none() && !addr.ip().is_loopback() {
        tracing::warn!(%addr, "listening beyond this machine without --auth-token-file: anyone who can reach it can upload and read jobs");
    }
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
    let metrics = Arc::new(metrics::Metrics::new());
    let log_pending = log.pending_lines();
    let log_reopener = log.reopener();
    let store =
        Arc::new(Store::connect(&location, config.sync, log, node, metrics.store.clone()).await?);
    // Before any job: a kernel that answers wrong must stop start-up, not
    // serve wrong digests. Checked on the MD5 backend the pool will use.
    if !config.md5.is_available() {
        anyhow::bail!(
            "md5 backend {} is not available on this CPU",
            config.md5.name()
        );
    }
    // Kernel shapes by measurement on this CPU (unless fixed), before the
    // self-test so that it checks the kernels chosen.
    let calibration = config
        .md5_measure
        .then(|| hashcore::md5::Tuning::calibrate(config.md5));
    let md5_tuning = match &calibration {
        Some(c) => {
            log_md5_calibration(c);
            c.tuning
        }
        None => {
            let t = hashcore::md5::Tuning::fixed(config.md5);
            tracing::info!(
                md5_backend = %t.platform(),
                single = %t.single(),
                shapes = md5_shapes(&t),
                "md5 kernels: the fixed choice (--md5-tuning fixed)"
            );
            t
        }
    };
    md5_tuning.install();
    let self_test = hashcore::selftest::run(&md5_tuning)
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
        md5: md5_tuning,
        ..PoolConfig::default()
    })
    .context("cannot start the hasher threads")?;
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
                data_dir: config.data_dir.clone(),
                min_free_disk: config.min_free_disk,
                self_test,
                md5_tuning,
                md5_calibration: calibration,
            },
            metrics.clone(),
        )
        .context("cannot start the thread that delays results")?,
    );
    {
        let (weak, store) = (Arc::downgrade(&jobs), store.clone());
        metrics.finish(
            Box::new(move || weak.upgrade().map(|j| j.pool.stats()).unwrap_or_default()),
            log_pending,
            Box::new(move || !store.is_down()),
        );
    }
    let rehashing = jobs.recover(config.chunk_size).await?;
    let reporter = jobs.report_task(config.node_timeout / 5);
    let retention = config
        .retain
        .map(|period| tokio::spawn(retention::run(store.clone(), period)));

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
        let scheme = if config.http.tls.is_some() {
            "https"
        } else {
            "http"
        };
        writeln!(out, "hashd listening on {scheme}://{addr}")?;
        if let Some((_, path)) = &socket {
            writeln!(out, "hashd socket at {}", path.display())?;
        }
        out.flush()?;
    }
    notify_systemd(sd_notify::NotifyState::Ready);

    // One shutdown signal fans out to both front ends.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let http = frontends::http::serve(
        listener,
        jobs.clone(),
        frontends::http::HttpConfig {
            metrics: Some(metrics.http.clone()),
            auth: auth.clone(),
            cors: Arc::new(config.cors.clone()),
            ..config.http.clone()
        },
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
    let reload = tokio::spawn(on_sighup(
        auth.clone(),
        log_reopener,
        config.http.tls.clone(),
    ));
    let signal = async {
        shutdown.await;
        notify_systemd(sd_notify::NotifyState::Stopping);
        reload.abort();
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
    if let Some(r) = retention {
        r.abort();
    }
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

/// Tells systemd (`Type=notify`) where the daemon is: a no-op when
/// `NOTIFY_SOCKET` is unset, and a failure only costs a log line, since
/// systemd then times the start out itself.
/// Logs the MD5 kernels the start-up calibration chose, its time, and what
/// it measured (GB/s with every lane busy, on L1-resident data).
fn log_md5_calibration(c: &hashcore::md5::Calibration) {
    let t = &c.tuning;
    let measured: Vec<String> = jobs::md5_measured(c)
        .into_iter()
        .map(|(kernel, gbps)| format!("{kernel} {gbps:.2}"))
        .collect();
    tracing::info!(
        md5_backend = %t.platform(),
        single = %t.single(),
        shapes = md5_shapes(t),
        min_lanes = t.min_lanes(),
        calibration_ms = c.elapsed.as_secs_f64() * 1e3,
        rounds = c.rounds,
        gb_per_s = measured.join(", "),
        "md5 kernels chosen by measurement"
    );
}

/// The lane kernels of `t`, for the log: `avx2/8x1 up to 8 lanes, ...`.
fn md5_shapes(t: &hashcore::md5::Tuning) -> String {
    let shapes: Vec<String> = t
        .shapes()
        .iter()
        .map(|(n, shape)| format!("{shape} up to {n} lanes"))
        .collect();
    shapes.join(", ")
}

fn notify_systemd(state: sd_notify::NotifyState) {
    // Empty counts as unset, as for every other variable hashd reads
    // (sd-notify would try to connect to "" and fail).
    if std::env::var_os("NOTIFY_SOCKET").is_none_or(|v| v.is_empty()) {
        return;
    }
    // `false`: NOTIFY_SOCKET stays set; removing a variable while other
    // threads may read the environment is unsound.
    if let Err(e) = sd_notify::notify(false, &[state]) {
        tracing::warn!(error = %e, "cannot notify systemd (NOTIFY_SOCKET)");
    }
}

/// SIGHUP: reopens the results log (after logrotate renamed it), re-reads
/// the token file and the TLS certificate and key (a bad file keeps the
/// tokens or the pair in use).
async fn on_sighup(
    auth: Option<Arc<frontends::http::guard::Auth>>,
    log: results_log::Reopener,
    tls: Option<Arc<frontends::http::tls::Tls>>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot install the SIGHUP handler; reloads need a restart");
        return;
    };
    while hup.recv().await.is_some() {
        log.reopen();
        if let Some(auth) = &auth {
            match auth.reload() {
                Ok(n) => tracing::info!(tokens = n, "SIGHUP: token file re-read"),
                Err(e) => {
                    tracing::error!(error = %e, "SIGHUP: token file not re-read; the previous tokens stay in use")
                }
            }
        }
        if let Some(tls) = &tls {
            match tls.reload() {
                Ok(()) => {
                    tracing::info!(cert = %tls.cert_path().display(), "SIGHUP: TLS certificate and key re-read; new connections use them")
                }
                Err(e) => {
                    tracing::error!(error = %e, "SIGHUP: TLS certificate not re-read; the previous one stays in use")
                }
            }
        }
    }
}

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
