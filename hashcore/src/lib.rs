//! hashd's engine: pure compute and threads, no HTTP, SQL or async runtime.
//!
//! Layout:
//! - [`algo`]: the algorithms clients may ask for, behind one small interface.
//! - [`md5`]: multi-lane MD5 kernels (portable, AVX2, AVX-512) behind one `Platform`.
//! - [`read`]: file readers for descriptor jobs: io_uring, with a `pread` fallback.
//! - [`pool`]: the hasher pool: pinned OS threads fed by bounded crossbeam channels.
//! - [`sigpipe`]: dying of SIGPIPE, for command-line output to a closed pipe.

pub mod algo;
pub mod fdpass;
pub mod md5;
pub mod pool;
pub mod read;
pub mod sigpipe;

pub use algo::{to_hex, Algorithm, UnknownAlgorithm};
pub use pool::{
    Completion, Digest, HasherPool, HasherSnapshot, JobClosed, JobError, Outcome, PoolConfig,
    StreamJob,
};
