//! The HTTP front end (hyper 1.x, HTTP/1.1).
//!
//! One task per connection, bounded by a semaphore; uploads are bounded by a
//! second one and answered 503 + `Retry-After` when it is exhausted, rather
//! than queued without limit. Request bodies stream through [`upload`] straight
//! into the backend; nothing holds a whole file.
//!
//! Modules: [`routes`] dispatches, [`upload`] streams bodies, [`query`] reads
//! ids and parameters, [`pages`] renders HTML, [`respond`] builds responses.

mod claims;
mod pages;
mod query;
mod respond;
mod routes;
mod upload;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::Backend;

/// Limits of the HTTP front end. Every one is a protection against a client,
/// so each has a safe default.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Largest accepted file, in bytes (413 beyond).
    pub max_upload: u64,
    /// Uploads in progress at once (503 beyond).
    pub max_uploads: usize,
    /// Open connections at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Time a client may take to send its request head.
    pub header_timeout: Duration,
    /// Longest silence while a body is streaming (408 beyond).
    pub body_idle_timeout: Duration,
    /// Largest request head, in bytes. It is also hyper's read buffer, so it
    /// caps the size of body chunks: 256 KiB keeps per-chunk costs low.
    pub max_header_bytes: usize,
    /// Most headers in one request.
    pub max_headers: usize,
    /// How long shutdown waits for connections to finish (`--shutdown-grace`).
    pub shutdown_grace: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_upload: 8 << 30,
            max_uploads: 512,
            max_connections: 16_384,
            header_timeout: Duration::from_secs(30),
            body_idle_timeout: Duration::from_secs(60),
            max_header_bytes: 256 << 10,
            max_headers: 100,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// State every connection shares.
pub(crate) struct Shared<B> {
    pub(crate) backend: Arc<B>,
    pub(crate) config: HttpConfig,
    pub(crate) uploads: Arc<Semaphore>,
}

/// Serves HTTP on `listener` until `shutdown` resolves, then stops accepting,
/// lets open connections finish (up to `shutdown_grace`) and returns.
pub async fn serve<B: Backend>(
    listener: TcpListener,
    backend: Arc<B>,
    config: HttpConfig,
    shutdown: impl Future<Output = ()>,
) {
    let connections = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let shared = Arc::new(Shared {
        backend,
        uploads: Arc::new(Semaphore::new(config.max_uploads.max(1))),
        config,
    });
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = connections.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let conn = connection(shared.clone(), TokioIo::new(stream));
        let fut = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = fut.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    let grace = shared.config.shutdown_grace;
    let deadline = tokio::time::Instant::now() + grace;
    let open = || shared.config.max_connections.max(1) - connections.available_permits();
    let mut drained = std::pin::pin!(graceful.shutdown());
    // Says every few seconds what the drain still waits for, so an operator
    // knows why the daemon has not stopped yet.
    let mut report =
        tokio::time::interval_at(tokio::time::Instant::now() + DRAIN_REPORT, DRAIN_REPORT);
    loop {
        tokio::select! {
            _ = &mut drained => return,
            _ = tokio::time::sleep_until(deadline) => {
                tracing::warn!(grace_secs = grace.as_secs(), connections = open(), "connections still open after the grace period");
                return;
            }
            _ = report.tick() => tracing::info!(connections = open(), "waiting for HTTP connections to finish"),
        }
    }
}

/// How often a draining shutdown says what it still waits for.
pub(crate) const DRAIN_REPORT: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves one HTTP/1.1 connection over any byte stream, as [`serve`] does
/// for each accepted socket, until the client is done. With its own upload
/// limit; for tests and the fuzz target, which drive it through memory.
pub async fn serve_connection<B, IO>(
    backend: Arc<B>,
    config: HttpConfig,
    io: IO,
) -> Result<(), hyper::Error>
where
    B: Backend,
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let shared = Arc::new(Shared {
        backend,
        uploads: Arc::new(Semaphore::new(config.max_uploads.max(1))),
        config,
    });
    connection(shared, TokioIo::new(io)).await
}

fn connection<B, IO>(
    shared: Arc<Shared<B>>,
    io: IO,
) -> impl hyper_util::server::graceful::GracefulConnection<Error = hyper::Error> + Send + 'static
where
    B: Backend,
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let config = shared.config.clone();
    let service = service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, std::convert::Infallible>(routes::handle(&shared, req).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        // hyper's floor for its read buffer is 8 KiB + a little.
        .max_buf_size(config.max_header_bytes.max(8192 + 4096))
        .max_headers(config.max_headers)
        // A client may shut down its sending side once its request is out
        // (`nc -N`, some HTTP/1.0 clients); without this, hyper closes the
        // connection unanswered whenever it sees that end of stream before
        // it has parsed the request.
        .half_close(true)
        .keep_alive(true);
    builder.serve_connection(io, service)
}
