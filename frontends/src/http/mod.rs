//! The HTTP front end (hyper 1.x): HTTP/1.1, and with `--tls-cert` HTTPS
//! with HTTP/2 where the client offers it (ALPN).
//!
//! One task per connection, bounded by a semaphore; uploads are bounded by a
//! second one and answered 503 + `Retry-After` when it is exhausted, rather
//! than queued without limit. Request bodies stream through [`upload`] straight
//! into the backend; nothing holds a whole file.
//!
//! Modules: [`observe`] gives each request its id, access-log line and
//! metrics, [`guard`] checks tokens and origins, [`routes`] dispatches
//! (every path in `routes::ROUTES`), [`docs`] serves the OpenAPI document and the
//! interactive docs, [`upload`] streams bodies, [`query`] reads ids and
//! parameters, [`pages`] renders HTML, [`respond`] builds responses, [`tls`]
//! loads and reloads the certificate.

mod claims;
mod docs;
mod events;
pub mod guard;
pub mod observe;
mod pages;
mod query;
mod respond;
mod routes;
pub mod tls;
mod upload;
mod uploads;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::Backend;

pub use docs::DOCS_ASSETS;
pub use routes::{Route, ROUTES};

/// Limits of the HTTP front end. Every one is a protection against a client,
/// so each has a safe default.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Largest accepted file, in bytes (413 beyond).
    pub max_upload: u64,
    /// Uploads in progress at once (503 beyond).
    pub max_uploads: usize,
    /// `GET /jobs/ID/events` streams open at once (503 beyond). Each holds a
    /// connection and a small task, so this bounds what watchers cost.
    pub max_event_streams: usize,
    /// Longest an event stream stays open; a client that still wants one
    /// reconnects (with `Last-Event-ID`), and the stream goes on: nothing
    /// is lost, the final state least of all.
    pub event_stream_max: Duration,
    /// Open connections at once; further ones wait in the listen backlog.
    /// Also the most lookups waiting at once (`?wait=SECS`, 503 beyond): over
    /// HTTP/1.1 each holds a connection anyway, and HTTP/2, which carries
    /// many requests on one, cannot exceed it either.
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
    /// Where request metrics go; `None` counts nothing.
    pub metrics: Option<Arc<observe::HttpMetrics>>,
    /// Bearer tokens (`--auth-token-file`); `None` leaves hashd open.
    pub auth: Option<Arc<guard::Auth>>,
    /// Origins allowed to call from a browser (`--cors-origin`).
    pub cors: Arc<guard::Cors>,
    /// The certificate (`--tls-cert`, `--tls-key`); `None` serves plain
    /// HTTP/1.1.
    pub tls: Option<Arc<tls::Tls>>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_upload: 8 << 30,
            max_uploads: 512,
            max_event_streams: 1024,
            event_stream_max: Duration::from_secs(300),
            max_connections: 16_384,
            header_timeout: Duration::from_secs(30),
            body_idle_timeout: Duration::from_secs(60),
            max_header_bytes: 256 << 10,
            max_headers: 100,
            shutdown_grace: Duration::from_secs(30),
            metrics: None,
            auth: None,
            cors: Arc::default(),
            tls: None,
        }
    }
}

/// State every connection shares.
pub(crate) struct Shared<B> {
    pub(crate) backend: Arc<B>,
    pub(crate) config: HttpConfig,
    pub(crate) uploads: Arc<Semaphore>,
    /// One permit per open event stream (`max_event_streams`).
    pub(crate) event_streams: Arc<Semaphore>,
    /// One permit per lookup waiting for its job (`?wait=SECS`), at most
    /// `max_connections`.
    pub(crate) lookup_waits: Arc<Semaphore>,
    /// The uploads streaming in now, for `GET /uploads`.
    pub(crate) in_progress: Arc<uploads::InProgress>,
    /// Becomes true when the server stops accepting: event streams end
    /// then, so that they do not hold the drain for the whole grace period.
    pub(crate) stopping: tokio::sync::watch::Receiver<bool>,
}

impl<B> Shared<B> {
    fn new(
        backend: Arc<B>,
        config: HttpConfig,
        stopping: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        Shared {
            backend,
            uploads: Arc::new(Semaphore::new(config.max_uploads.max(1))),
            event_streams: Arc::new(Semaphore::new(config.max_event_streams.max(1))),
            lookup_waits: Arc::new(Semaphore::new(config.max_connections.max(1))),
            in_progress: Arc::default(),
            stopping,
            config,
        }
    }
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
    let (stop_tx, stopping) = tokio::sync::watch::channel(false);
    let shared = Arc::new(Shared::new(backend, config, stopping));
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
        if let Some(tls) = &shared.config.tls {
            // The handshake runs in the connection's task, so a slow client
            // does not hold up the accept loop; the watcher makes shutdown
            // wait for it (it is bounded by the header timeout).
            let (acceptor, watcher, shared) = (tls.acceptor(), graceful.watcher(), shared.clone());
            tokio::spawn(async move {
                if let Err(e) = serve_tls(shared, acceptor, watcher, stream, peer).await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                drop(permit);
            });
            continue;
        }
        let conn = connection(shared.clone(), TokioIo::new(stream), Some(peer));
        let fut = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = fut.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
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
    // Never stopping: the caller ends the connection by dropping `io`.
    let (_, stopping) = tokio::sync::watch::channel(false);
    let shared = Arc::new(Shared::new(backend, config, stopping));
    connection(shared, TokioIo::new(io), None).await
}

/// The first byte of every TLS connection: a handshake record (RFC 8446
/// section 5.1).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Streams one HTTP/2 connection may carry at once. Each upload among them
/// still takes one of `--max-uploads`; this bounds the requests a single
/// client can have parsed and waiting.
const H2_MAX_CONCURRENT_STREAMS: u32 = 128;

/// HTTP/2 flow-control windows: how much a client may send before hashd has
/// read it. hyper's default, 64 KiB per stream, holds a 1 MiB upload to
/// about a window per round trip; 1 MiB per stream and 4 MiB per connection
/// let uploads stream as over HTTP/1.1 while bounding what one connection
/// can make hashd buffer.
const H2_STREAM_WINDOW_BYTES: u32 = 1 << 20;
const H2_CONNECTION_WINDOW_BYTES: u32 = 4 << 20;

/// Serves one accepted socket over TLS: the handshake, bounded by the
/// header timeout so that a silent client cannot hold a connection slot;
/// then HTTP/2 if ALPN chose `h2`, else HTTP/1.1 with the plain settings.
/// A client that speaks plain HTTP to this port gets a 400 saying so.
async fn serve_tls<B: Backend>(
    shared: Arc<Shared<B>>,
    acceptor: tokio_rustls::TlsAcceptor,
    watcher: hyper_util::server::graceful::Watcher,
    stream: TcpStream,
    peer: std::net::SocketAddr,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let deadline = tokio::time::Instant::now() + shared.config.header_timeout;
    let mut first = [0u8; 1];
    match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
        Err(_) => return Err("no TLS handshake within the header timeout".into()),
        Ok(Ok(0)) => return Ok(()),
        Ok(Ok(_)) if first[0] != TLS_HANDSHAKE_RECORD => {
            tracing::debug!(%peer, "plain HTTP on the TLS port: answered 400");
            return refuse_plain_http(stream).await;
        }
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(e.into()),
    }
    let stream = match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
        Err(_) => return Err("TLS handshake not finished within the header timeout".into()),
        Ok(Err(e)) => return Err(format!("TLS handshake failed: {e}").into()),
        Ok(Ok(s)) => s,
    };
    let h2 = stream.get_ref().1.alpn_protocol() == Some(tls::ALPN_H2);
    let io = TokioIo::new(stream);
    if h2 {
        watcher.watch(connection_h2(shared, io, peer)).await?;
    } else {
        watcher.watch(connection(shared, io, Some(peer))).await?;
    }
    Ok(())
}

/// Answers a plain HTTP request on the TLS port with a 400 that says why,
/// as a client reading the answer expects, then closes.
async fn refuse_plain_http(
    mut stream: TcpStream,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    const BODY: &str = "{\"error\":\"this port speaks HTTPS: use an https:// URL\"}";
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    stream.write_all(answer.as_bytes()).await?;
    stream.shutdown().await?;
    Ok(())
}

/// One request through the access log, metrics and the router.
async fn handle_request<B: Backend>(
    shared: Arc<Shared<B>>,
    peer: Option<std::net::SocketAddr>,
    mut req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<respond::Body>, std::convert::Infallible> {
    // HTTP/2 carries the host in `:authority`, which hyper puts in the URI;
    // the routes (the Host check, same-origin posts) read `Host`, so it is
    // made from it, as RFC 9113 section 8.3.1 says a server doing so must.
    if req.version() == hyper::Version::HTTP_2 && !req.headers().contains_key(hyper::header::HOST) {
        if let Some(host) = req
            .uri()
            .authority()
            .and_then(|a| hyper::header::HeaderValue::from_str(a.as_str()).ok())
        {
            req.headers_mut().insert(hyper::header::HOST, host);
        }
    }
    // `GET /uploads` names each upload's client.
    req.extensions_mut().insert(uploads::Peer(peer));
    let route = routes::route_label(req.uri().path());
    let metrics = shared.config.metrics.clone();
    let resp = observe::observe(metrics.as_deref(), route, peer, req, |req| async {
        routes::handle(&shared, req).await
    })
    .await;
    Ok(resp)
}

/// Serves one HTTP/2 connection (TLS with ALPN `h2` only).
fn connection_h2<B, IO>(
    shared: Arc<Shared<B>>,
    io: IO,
    peer: std::net::SocketAddr,
) -> impl hyper_util::server::graceful::GracefulConnection<Error = hyper::Error> + Send + 'static
where
    B: Backend,
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let config = shared.config.clone();
    let service = service_fn(move |req| handle_request(shared.clone(), Some(peer), req));
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
        .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX))
        .initial_stream_window_size(H2_STREAM_WINDOW_BYTES)
        .initial_connection_window_size(H2_CONNECTION_WINDOW_BYTES)
        // A peer that has gone away without closing is found by a PING
        // unanswered for the header timeout, as HTTP/1.1 closes a silent
        // idle connection after it.
        .keep_alive_interval(Some(config.header_timeout))
        .keep_alive_timeout(config.header_timeout);
    builder.serve_connection(io, service)
}

/// Serves one HTTP/1.1 connection (plain, or TLS without ALPN `h2`).
fn connection<B, IO>(
    shared: Arc<Shared<B>>,
    io: IO,
    peer: Option<std::net::SocketAddr>,
) -> impl hyper_util::server::graceful::GracefulConnection<Error = hyper::Error> + Send + 'static
where
    B: Backend,
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let config = shared.config.clone();
    let service = service_fn(move |req| handle_request(shared.clone(), peer, req));
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
