//! Building responses: JSON, HTML and errors, each in one place.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::ApiError;

pub type Body = Full<Bytes>;

pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    // Serialising our own plain structs cannot fail.
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

pub fn html(status: StatusCode, page: String) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(page)));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

/// The JSON error every endpoint answers with: `{"error": reason}`.
pub fn error(err: &ApiError) -> Response<Body> {
    let reason = err.to_string();
    with_retry_after(json(err.status(), &ErrorBody { error: &reason }), err)
}

/// Adds `Retry-After` where the error calls for it.
pub fn with_retry_after(mut resp: Response<Body>, err: &ApiError) -> Response<Body> {
    if let Some(secs) = err.retry_after() {
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}
