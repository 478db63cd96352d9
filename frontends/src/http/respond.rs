//! Building responses: JSON, HTML and errors, each in one place.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{
    HeaderValue, ACCEPT_ENCODING, ALLOW, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, RETRY_AFTER,
};
use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::ApiError;

/// Every answer's body: whole bytes for almost every route, a stream for
/// `GET /jobs/ID/events`. Boxed so that one handler can return either.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, std::convert::Infallible>;

/// A whole body of `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    // Serialising our own plain structs cannot fail.
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

pub fn html(status: StatusCode, page: String) -> Response<Body> {
    let mut resp = Response::new(full(page));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `GET /metrics`: the Prometheus text format, version 0.0.4 (what
/// Prometheus and promtool read).
pub fn metrics(text: String) -> Response<Body> {
    let mut resp = Response::new(full(text));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(prometheus_client::encoding::prometheus_text::CONTENT_TYPE),
    );
    resp
}

/// 200 with fixed bytes: the OpenAPI document and the docs' assets, which
/// change only with the binary.
pub fn bytes(content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(full(body));
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=3600"));
    resp
}

/// `OPTIONS` on a known path (or `*`): 200 with its methods and
/// `Content-Length: 0` (RFC 9110 section 9.3.7).
pub fn options(allow: &'static str) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::new()));
    resp.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    resp
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

/// The JSON error every endpoint answers with: `{"error": reason}`.
pub fn error(err: &ApiError) -> Response<Body> {
    let reason = err.to_string();
    with_error_headers(json(err.status(), &ErrorBody { error: &reason }), err)
}

/// Adds the headers an error's status calls for: `Retry-After` (503),
/// `Allow` (405, RFC 9110 section 15.5.6), `Accept-Encoding` (415 for a
/// content coding, section 15.5.16), and `Connection: close` where the
/// connection ends after the answer (501 for a transfer coding, 408).
pub fn with_error_headers(mut resp: Response<Body>, err: &ApiError) -> Response<Body> {
    let headers = resp.headers_mut();
    if let Some(secs) = err.retry_after() {
        headers.insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    match err {
        ApiError::MethodNotAllowed { allow, .. } => {
            headers.insert(ALLOW, HeaderValue::from_static(allow));
        }
        ApiError::UnsupportedContentCoding(_) => {
            headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        }
        ApiError::Unauthorized { challenge, .. }
        | ApiError::Forbidden {
            challenge: Some(challenge),
            ..
        } => {
            if let Ok(v) = HeaderValue::from_str(challenge) {
                headers.insert(hyper::header::WWW_AUTHENTICATE, v);
            }
        }
        // The rest of the connection cannot be trusted (a coding we cannot
        // frame), or the client went silent mid-body: say that we close.
        ApiError::NotImplemented(_) | ApiError::Timeout { .. } => {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        _ => {}
    }
    resp
}
