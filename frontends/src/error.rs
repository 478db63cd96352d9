//! The one error type front ends answer with, and its mapping to HTTP.

use std::fmt;

use hyper::StatusCode;

/// Every failure a request can meet. Messages are lower-case, name the
/// offending value and the limit, and never echo file contents or paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    BadRequest(String),
    NotFound(String),
    /// `allow` is the path's methods, for the `Allow` header RFC 9110
    /// section 15.5.6 requires on a 405.
    MethodNotAllowed {
        method: String,
        path: String,
        allow: &'static str,
    },
    /// An upload with neither Content-Length nor Transfer-Encoding: its end
    /// cannot be told from a client that meant to send more (RFC 9110
    /// section 15.5.12).
    LengthRequired(String),
    PayloadTooLarge {
        limit: u64,
    },
    UnsupportedMediaType(String),
    /// A body in a content coding hashd does not decode (RFC 9110 section
    /// 15.5.16): answered 415 with `Accept-Encoding: identity`.
    UnsupportedContentCoding(String),
    /// A transfer coding other than `chunked`: RFC 9112 section 6.1 asks
    /// for 501, and the connection is closed after the answer.
    NotImplemented(String),
    /// The client went quiet for longer than the body-idle timeout.
    Timeout {
        secs: u64,
    },
    /// Saturated: try again after `retry_after` seconds.
    Busy {
        retry_after: u64,
        what: String,
    },
    ShuttingDown,
    /// A service the answer depends on (the job store's database server)
    /// cannot be reached: try again after `retry_after` seconds.
    Unavailable {
        retry_after: u64,
        reason: String,
    },
    /// No valid bearer token (RFC 6750): 401 with `challenge` as
    /// `WWW-Authenticate`.
    Unauthorized {
        reason: String,
        challenge: String,
    },
    /// Not allowed: a token without the scope (with its challenge), or a
    /// cross-site request.
    Forbidden {
        reason: String,
        challenge: Option<String>,
    },
    /// The server's disk is full (or over quota): the request was fine and
    /// may succeed once space returns.
    InsufficientStorage(String),
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::LengthRequired(_) => StatusCode::LENGTH_REQUIRED,
            ApiError::UnsupportedMediaType(_) | ApiError::UnsupportedContentCoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::Timeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::Busy { .. } | ApiError::ShuttingDown | ApiError::Unavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Seconds for a `Retry-After` header, where one applies.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::Busy { retry_after, .. } | ApiError::Unavailable { retry_after, .. } => {
                Some(*retry_after)
            }
            ApiError::ShuttingDown => Some(5),
            _ => None,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::BadRequest(m)
            | ApiError::NotFound(m)
            | ApiError::LengthRequired(m)
            | ApiError::UnsupportedMediaType(m)
            | ApiError::UnsupportedContentCoding(m)
            | ApiError::NotImplemented(m) => f.write_str(m),
            ApiError::MethodNotAllowed {
                method,
                path,
                allow,
            } => {
                write!(
                    f,
                    "method {method} not allowed on {path} (allowed: {allow})"
                )
            }
            ApiError::PayloadTooLarge { limit } => {
                write!(f, "upload exceeds the limit of {limit} bytes")
            }
            ApiError::Timeout { secs } => write!(f, "no data from the client for {secs} s"),
            ApiError::Busy { what, .. } => write!(f, "server busy: {what}"),
            ApiError::ShuttingDown => f.write_str("server is shutting down"),
            ApiError::Unavailable { reason, .. } => write!(f, "service unavailable: {reason}"),
            ApiError::Unauthorized { reason, .. } | ApiError::Forbidden { reason, .. } => {
                f.write_str(reason)
            }
            ApiError::InsufficientStorage(m) => write!(f, "server disk full: {m}"),
            ApiError::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl std::error::Error for ApiError {}
