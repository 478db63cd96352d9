//! hashd's protocol front ends. They own protocols only: they turn requests
//! into jobs and answers into responses, through the small [`Backend`] trait
//! that the daemon implements. No SQL, no SIMD here.
//!
//! Layout:
//! - [`backend`]: the trait the daemon implements, and the types crossing it.
//! - [`error`]: the one error type every front end maps to a status.
//! - [`http`]: the hyper 1.x server: routes, streaming uploads, HTML pages.
#![forbid(unsafe_code)]

pub mod backend;
pub mod error;
pub mod http;
pub mod unix;

pub use backend::{Backend, JobPage, JobStatus, JobView, ListQuery, Upload, UploadMeta};
pub use error::ApiError;
