//! What every request leaves behind: a request id (taken from
//! `X-Request-Id` or made), one access-log line, and its HTTP metrics.
//!
//! The access log is a `tracing` event with target `hashd::access`, inside a
//! span carrying the request id, so every other line logged while the request
//! runs carries the id too. Query strings are not logged (ids and names are
//! fine, but a query may carry anything a client put there).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use hyper::header::{HeaderValue, CONTENT_LENGTH};
use hyper::{Method, Request, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tracing::Instrument as _;

use super::respond::Body;

/// The request id header (a de facto standard: Heroku, nginx's
/// `$request_id`, many proxies).
pub const REQUEST_ID: &str = "x-request-id";

/// Longest request id taken from a client; a longer one is replaced.
pub const MAX_REQUEST_ID_BYTES: usize = 128;

/// The job a response is about, for the access log (set by the routes).
#[derive(Clone, Debug)]
pub struct JobId(pub String);

tokio::task_local! {
    /// Body bytes read for the current request (see `upload::next_chunk`).
    pub(crate) static BYTES_IN: Arc<AtomicU64>;
}

/// Adds `n` body bytes to the current request's count, if one is being kept.
pub(crate) fn count_in(n: usize) {
    let _ = BYTES_IN.try_with(|c| c.fetch_add(n as u64, Ordering::Relaxed));
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: String,
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

/// The HTTP front end's metric families (names in the registry's `hashd_`
/// prefix, Prometheus conventions: `_total` counters, `_seconds`, `_bytes`).
#[derive(Debug)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabels, Histogram>,
    received: Counter,
    sent: Counter,
    pub(crate) uploads: Gauge,
}

impl HttpMetrics {
    /// Registers the families in `registry`:
    /// - `http_requests_total{route,method,code}`: answered requests; the
    ///   code is the exact status (`code=~"5.."` for a class; 503, 413 and
    ///   408 are refusals of overload, size and silence);
    /// - `http_request_duration_seconds{route}`: from the request head to
    ///   the answer's head, 1 ms to about 65 s in powers of two;
    /// - `http_received_bytes_total`, `http_sent_bytes_total`: body bytes;
    /// - `uploads_in_progress`: uploads streaming in now.
    pub fn register(registry: &mut Registry) -> Arc<HttpMetrics> {
        let m = Arc::new(HttpMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 17))
            }),
            received: Counter::default(),
            sent: Counter::default(),
            uploads: Gauge::default(),
        });
        registry.register(
            "http_requests",
            "HTTP requests answered, by route, method and status code",
            m.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's head to its answer's head",
            m.duration.clone(),
        );
        registry.register(
            "http_received_bytes",
            "Request body bytes read",
            m.received.clone(),
        );
        registry.register(
            "http_sent_bytes",
            "Response body bytes sent",
            m.sent.clone(),
        );
        registry.register(
            "uploads_in_progress",
            "Uploads whose bodies are streaming in",
            m.uploads.clone(),
        );
        m
    }
}

/// A request id from the client's header when it is short and plain
/// (letters, digits, `-._:`), else a new one: a client's id is echoed and
/// logged, so it must not carry anything a log or a header cannot hold.
pub fn request_id<B>(req: &Request<B>) -> String {
    let given = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= MAX_REQUEST_ID_BYTES
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b))
        });
    match given {
        Some(id) => id.to_string(),
        None => new_request_id(),
    }
}

/// 16 hex digits: a process-wide counter mixed with the start time, unique
/// within a run and unlikely to repeat across runs (not a secret).
fn new_request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    // splitmix64: consecutive counters give unrelated-looking ids.
    let mut z = seed.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    format!("{:016x}", z ^ (z >> 31))
}

/// Runs `handle` for `req` inside the request's span, then echoes the
/// request id, logs the access line and counts the metrics.
pub async fn observe<F, Fut>(
    metrics: Option<&HttpMetrics>,
    route: &'static str,
    peer: Option<std::net::SocketAddr>,
    req: Request<hyper::body::Incoming>,
    handle: F,
) -> Response<Body>
where
    F: FnOnce(Request<hyper::body::Incoming>) -> Fut,
    Fut: std::future::Future<Output = Response<Body>>,
{
    let started = Instant::now();
    let id = request_id(&req);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let bytes_in = Arc::new(AtomicU64::new(0));
    let span = tracing::info_span!("request", request_id = %id);
    let mut resp = BYTES_IN
        .scope(bytes_in.clone(), handle(req).instrument(span.clone()))
        .await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    let elapsed = started.elapsed();
    let status = resp.status().as_u16();
    let received = bytes_in.load(Ordering::Relaxed);
    // Whole bodies know their length here; an event stream counts as 0.
    let sent = resp
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or_else(|| {
            hyper::body::Body::size_hint(resp.body())
                .exact()
                .unwrap_or(0)
        });
    let job = resp.extensions().get::<JobId>().map(|j| j.0.as_str());
    span.in_scope(|| {
        tracing::info!(
            target: "hashd::access",
            method = %method,
            path = %path,
            status,
            bytes_in = received,
            bytes_out = sent,
            duration_ms = elapsed.as_micros() as f64 / 1000.0,
            job_id = job.unwrap_or("-"),
            peer = %peer.map_or_else(|| "-".to_string(), |p| p.to_string()),
            "request"
        )
    });
    if let Some(m) = metrics {
        m.requests
            .get_or_create(&RequestLabels {
                route,
                method: metric_method(&method),
                code: status,
            })
            .inc();
        m.duration
            .get_or_create(&RouteLabels { route })
            .observe(elapsed.as_secs_f64());
        m.received.inc_by(received);
        m.sent.inc_by(sent);
    }
    resp
}

/// The method as a label: the methods hashd knows, `other` for the rest, so
/// a client cannot grow the label set.
fn metric_method(m: &Method) -> String {
    match m.as_str() {
        "GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "OPTIONS" | "PATCH" | "CONNECT" | "TRACE" => {
            m.as_str().to_string()
        }
        _ => "other".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_id(v: &str) -> Request<()> {
        Request::builder().header(REQUEST_ID, v).body(()).unwrap()
    }

    #[test]
    fn a_plain_short_request_id_is_kept_anything_else_replaced() {
        assert_eq!(request_id(&with_id("abc-123_x.y:z")), "abc-123_x.y:z");
        let long = "a".repeat(MAX_REQUEST_ID_BYTES + 1);
        for bad in ["", "a b", "a\"b", "<script>", long.as_str()] {
            let id = request_id(&with_id(bad));
            assert_eq!(id.len(), 16, "{bad:?} -> {id}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_ne!(request_id(&Request::new(())), request_id(&Request::new(())));
    }
}
