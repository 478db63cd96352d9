//! hashd's engine: pure compute and threads, no HTTP, SQL or async runtime.
//!
//! Every `unsafe` block in hashd is in this crate, and each carries a
//! `// SAFETY:` comment arguing why it is sound; the two lints below make
//! both rules fail the build rather than rely on review.
//!
//! Layout:
//! - [`algo`]: the algorithms clients may ask for, behind one small interface.
//! - [`md5`]: multi-lane MD5 kernels (portable, AVX2, AVX-512) behind one `Platform`.
//! - [`read`]: file readers for descriptor jobs: io_uring, with a `pread` fallback.
//! - [`pool`]: the hasher pool: pinned OS threads fed by bounded crossbeam channels.
//! - [`selftest`]: the known-answer test of every selected kernel, run at start-up.
//! - [`sigpipe`]: dying of SIGPIPE, for command-line output to a closed pipe.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod algo;
pub mod fdpass;
pub mod md5;
pub mod pool;
pub mod read;
pub mod selftest;
pub mod sigpipe;
#[cfg(test)]
mod testutil;

pub use algo::{
    to_hex, Algorithm, AlgorithmSpec, Algorithms, Hasher, Hashes, MultiHasher, UnknownAlgorithm,
};
pub use pool::{
    BytesHashed, Completion, Digest, HasherPool, HasherSnapshot, JobClosed, JobError, Outcome,
    PoolConfig, StreamJob,
};
