//! What a front end needs from the daemon: submit a job, look one up, list
//! jobs, read statistics. The daemon implements it over the hasher pool and
//! the store; tests implement it in memory.

use std::future::Future;

use bytes::Bytes;
use hashcore::{Algorithm, Algorithms, Hashes};
use serde::{Deserialize, Serialize};

use crate::ApiError;

/// A job's state as clients see it. `INVALID_ID` is not a state: it is the
/// answer for an id that names no job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum JobStatus {
    Pending,
    Success,
    Failure,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "PENDING",
            JobStatus::Success => "SUCCESS",
            JobStatus::Failure => "FAILURE",
        }
    }

    pub fn parse(s: &str) -> Option<JobStatus> {
        match s.to_ascii_uppercase().as_str() {
            "PENDING" => Some(JobStatus::Pending),
            "SUCCESS" => Some(JobStatus::Success),
            "FAILURE" => Some(JobStatus::Failure),
            _ => None,
        }
    }
}

/// One job as every front end reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobView {
    pub id: String,
    pub status: JobStatus,
    pub algorithm: String,
    /// Lower-case hex, once the job succeeded: the first algorithm's.
    pub hash: Option<String>,
    /// Every digest of a job that succeeded, in the order of its
    /// algorithms: `(name, lower-case hex)`, the first being `hash`. Empty
    /// until then. Serialized as a JSON object, `{"md5": "…", "sha256":
    /// "…"}`, left out when empty.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "hash_map::serialize",
        deserialize_with = "hash_map::deserialize"
    )]
    pub hashes: Vec<(String, String)>,
    /// Bytes hashed; known once the upload was received.
    pub size: Option<u64>,
    /// The file name the client gave, if any.
    pub name: Option<String>,
    /// Why the job failed.
    pub error: Option<String>,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub finished_at: Option<String>,
}

/// What a client said about an upload before its bytes arrive.
#[derive(Clone, Debug)]
pub struct UploadMeta {
    /// The algorithms to compute, the job's `hash` being the first's;
    /// includes those of `expected`.
    pub algo: Algorithms,
    pub name: Option<String>,
    /// Digests the client claims for the bytes (`Content-MD5`,
    /// `Repr-Digest`, …): the job succeeds only if every one matches.
    pub expected: Vec<Claim>,
}

/// A digest a client claims for an upload, and where it said so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub algo: Algorithm,
    /// The claimed digest's bytes (decoded from hex or base64).
    pub digest: Vec<u8>,
    /// Where the claim came from, for the error: a header name
    /// (`Content-MD5`, `x-amz-checksum-sha256`) or `form field expected_md5`.
    pub source: String,
}

/// The start of the `error` of a job whose bytes did not match a digest its
/// client claimed; uploads answer such a job with 400.
pub const DIGEST_MISMATCH: &str = "digest mismatch";

/// The first claim in `claims` that `hashes` contradicts, as a job's error:
/// [`DIGEST_MISMATCH`], then the claim's source, the expected and the
/// computed digest (hex, then base64 for headers that carry base64).
/// `None` when every claim matches. A claim whose algorithm `hashes` lacks
/// is a mismatch too: it could not be checked.
pub fn check_claims(claims: &[Claim], hashes: &Hashes) -> Option<String> {
    use base64::Engine as _;
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    claims.iter().find_map(|c| {
        let computed = hashes.iter().find(|(a, _)| *a == c.algo).map(|(_, d)| d);
        match computed {
            Some(d) if *d == c.digest => None,
            Some(d) => Some(format!(
                "{DIGEST_MISMATCH}: {} expected {} {} ({}), the upload's {} is {} ({})",
                c.source,
                c.algo,
                hashcore::to_hex(&c.digest),
                b64(&c.digest),
                c.algo,
                hashcore::to_hex(d),
                b64(d),
            )),
            None => Some(format!(
                "{DIGEST_MISMATCH}: {} names {}, which was not computed",
                c.source, c.algo
            )),
        }
    })
}

/// `JobView::hashes` as a JSON object, in order.
mod hash_map {
    use serde::ser::SerializeMap;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(v.len()))?;
        for (k, h) in v {
            map.serialize_entry(k, h)?;
        }
        map.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
        let map = std::collections::BTreeMap::<String, String>::deserialize(d)?;
        Ok(map.into_iter().collect())
    }
}

/// A page of the job database, newest first.
#[derive(Clone, Debug)]
pub struct ListQuery {
    pub status: Option<JobStatus>,
    pub limit: usize,
    /// Continue after this id (the previous page's `next`).
    pub after: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct JobPage {
    pub jobs: Vec<JobView>,
    /// Pass as `after` to get the next page; absent on the last page.
    pub next: Option<String>,
}

/// A running job's progress (see [`Backend::job_progress`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobProgress {
    /// Bytes of the job handed to its hasher so far; hashing trails this
    /// by at most the stream's flow-control budget (2 MiB).
    pub bytes: u64,
    /// The job's size, when it is known before its end (a re-hash of a
    /// kept upload); `None` for an upload still streaming in.
    pub total: Option<u64>,
}

/// What a request-and-reply job (the unix socket's) ends with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The digests of exactly the job's bytes, one per algorithm in the
    /// job's order, and how many bytes there were.
    Digest { hashes: Hashes, size: u64 },
    /// Why there is no digest; `busy` when retrying later may succeed.
    Failed { reason: String, busy: bool },
}

/// Receives a request-and-reply job's [`Answer`], exactly once. It runs on
/// whatever thread ended the job: it must be cheap and must not block.
pub type Reply = Box<dyn FnOnce(Answer) + Send>;

/// The bytes of a request-and-reply job, as its client sends them.
/// Dropping it unfinished fails the job (its reply says so).
pub trait ByteStream: Send + Sync + 'static {
    /// Feeds the next chunk, waiting while the hasher is behind. `Err` when
    /// the job has already ended (refused, failed, shutting down): more
    /// bytes are pointless, and its reply has been or will be sent.
    fn send(&mut self, chunk: Bytes) -> impl Future<Output = Result<(), JobEnded>> + Send;

    /// All bytes are in; the reply will carry the digest.
    fn finish(self);
}

/// A [`ByteStream`]'s job has already ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobEnded;

/// The daemon, as the front ends see it: recorded jobs (uploads) and
/// queries of the job store for HTTP, request-and-reply jobs for the unix
/// socket. No hasher or store types cross it.
pub trait Backend: Send + Sync + 'static {
    type Upload: Upload;
    type Stream: ByteStream;

    /// Starts a job whose bytes are about to stream in. Fails fast (busy,
    /// shutting down) before any byte is read.
    fn begin_upload(&self, meta: UploadMeta) -> Result<Self::Upload, ApiError>;

    /// `Ok(None)` for an id that names no job, including ids that cannot be
    /// parsed: clients get `INVALID_ID` for both.
    fn lookup(&self, id: &str) -> impl Future<Output = Result<Option<JobView>, ApiError>> + Send;

    fn list(&self, query: ListQuery) -> impl Future<Output = Result<JobPage, ApiError>> + Send;

    /// As [`Backend::lookup`], but holds the answer until the job is final
    /// or `timeout` has passed (then answers the job as it is). The wait is
    /// woken by the job's end, wherever it ran, not by polling.
    fn lookup_wait(
        &self,
        id: &str,
        timeout: std::time::Duration,
    ) -> impl Future<Output = Result<Option<JobView>, ApiError>> + Send {
        let _ = timeout;
        self.lookup(id)
    }

    /// The nodes sharing this job store: `{"nodes": [...]}`.
    fn cluster(&self) -> impl Future<Output = Result<serde_json::Value, ApiError>> + Send {
        async { Ok(serde_json::json!({ "nodes": [] })) }
    }

    /// The daemon's metrics in the Prometheus text format (`GET /metrics`);
    /// `None` when it keeps none.
    fn metrics(&self) -> Option<String> {
        None
    }

    /// Whether this node can take uploads now; `Err` names the failing
    /// check (for `GET /ready`).
    fn ready(&self) -> impl Future<Output = Result<(), String>> + Send {
        async { Ok(()) }
    }

    /// Jobs by status, bytes hashed, hashers and their counters.
    fn stats(&self) -> impl Future<Output = Result<serde_json::Value, ApiError>> + Send;

    /// Hashes a file a local client passed by descriptor. The answer goes
    /// to the client on its connection, not to the job store: these are
    /// request-and-reply jobs. `reply` is called exactly once. While the
    /// job runs, `hashed` (when given) should hold the bytes of the file
    /// hashed so far, for the socket's PROGRESS frames; a backend that
    /// cannot tell leaves it at 0 and the client sees no progress.
    fn answer_file(
        &self,
        algo: Algorithms,
        file: std::fs::File,
        hashed: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
        reply: Reply,
    );

    /// Opens a request-and-reply job whose bytes the client sends (the
    /// socket's streams). `reply` is called exactly once: at once if the
    /// job is refused (busy), else when the stream finishes or is dropped.
    fn answer_stream(&self, algo: Algorithms, reply: Reply) -> Self::Stream;

    /// How far job `id`'s bytes have got, from this node's memory: `None`
    /// when the job is not being hashed here (not yet recorded, finished,
    /// held only for the artificial delay, or running on another node).
    /// Cheap and non-blocking: event streams call it every few hundred
    /// milliseconds.
    fn job_progress(&self, id: &str) -> Option<JobProgress> {
        let _ = id;
        None
    }

    /// A count that grows whenever hashing makes progress (bytes hashed,
    /// jobs ended), or `None` if the backend cannot tell. The socket front
    /// end sends a waiting client heartbeats only while it grows, so that
    /// a client can tell a daemon working on a long file from one whose
    /// hashing is stuck.
    fn progress(&self) -> Option<u64> {
        None
    }
}

/// One upload in flight. Dropping it without `finish` abandons the job: the
/// backend must make sure it ends as a FAILURE (or is never recorded), never
/// PENDING forever.
pub trait Upload: Send + 'static {
    /// Feeds the next chunk; waits while the hasher is behind (backpressure).
    fn send(&mut self, chunk: Bytes) -> impl Future<Output = Result<(), ApiError>> + Send;

    /// Adds claims that arrived after the bytes began (a multipart form
    /// field after the file). Errors (400): a claim names an algorithm the
    /// job does not compute; the upload must then be dropped.
    fn expect(&mut self, claims: Vec<Claim>) -> Result<(), ApiError>;

    /// All bytes are in. Records the job (durably) and answers its state; with
    /// `wait`, only once the hash is final.
    fn finish(self, wait: bool) -> impl Future<Output = Result<JobView, ApiError>> + Send;
}
