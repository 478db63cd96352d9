//! hashd's protocol front ends. They own protocols only: they turn requests
//! into jobs and answers into responses, through the small [`Backend`] trait
//! that the daemon implements. No SQL, no SIMD here.
//!
//! Layout:
//! - [`backend`]: the trait the daemon implements, and the types crossing it
//!   (jobs, answers, queries; no hasher-pool or store types).
//! - [`error`]: the one error type every front end maps to a status.
//! - [`http`]: the hyper 1.x server: routes, streaming uploads, HTML pages;
//!   with a certificate, TLS (rustls) and HTTP/2.
//! - [`unix`]: the unix-socket server for local clients.
//! - [`testing`]: an in-memory backend and a scripted client connection,
//!   for driving the real handler in tests and fuzz targets.
#![forbid(unsafe_code)]

pub mod backend;
pub mod error;
pub mod http;
pub mod testing;
pub mod unix;

pub use backend::{
    check_claims, Answer, Backend, ByteStream, Claim, JobEnded, JobPage, JobProgress, JobStatus,
    JobView, ListQuery, Reply, Upload, UploadMeta, DIGEST_MISMATCH,
};
pub use error::ApiError;
