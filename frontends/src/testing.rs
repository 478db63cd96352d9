//! In-memory stand-ins for driving the real HTTP handler without a daemon:
//! a [`Backend`] that hashes uploads on the caller's thread and keeps jobs in
//! a map, and an I/O object that hands the server a request in chosen
//! pieces. For this crate's tests and the fuzz targets; not for production.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use hashcore::{Algorithm, Completion, HasherPool, JobError, PoolConfig, StreamJob};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::{ApiError, Backend, JobPage, JobStatus, JobView, ListQuery, Upload, UploadMeta};

/// Uploads are hashed as they stream in (single-stream, no pool), recorded
/// SUCCESS at `finish`, and can be looked up and listed.
#[derive(Default)]
pub struct MemBackend {
    next: AtomicU64,
    jobs: Arc<Mutex<HashMap<String, JobView>>>,
    /// Only for `open_stream` (the unix socket's path).
    pool: OnceLock<HasherPool>,
}

impl MemBackend {
    /// Every recorded job, in no order.
    pub fn jobs(&self) -> Vec<JobView> {
        self.jobs.lock().unwrap().values().cloned().collect()
    }
}

/// One upload in flight on a [`MemBackend`].
pub struct MemUpload {
    id: String,
    algo: Algorithm,
    name: Option<String>,
    size: u64,
    hasher: hashcore::Hasher,
    jobs: Arc<Mutex<HashMap<String, JobView>>>,
}

impl Backend for MemBackend {
    type Upload = MemUpload;

    fn begin_upload(&self, meta: UploadMeta) -> Result<MemUpload, ApiError> {
        Ok(MemUpload {
            id: format!("{:032x}", self.next.fetch_add(1, Ordering::Relaxed)),
            algo: meta.algo,
            name: meta.name,
            size: 0,
            hasher: meta.algo.hasher(),
            jobs: self.jobs.clone(),
        })
    }

    async fn lookup(&self, id: &str) -> Result<Option<JobView>, ApiError> {
        Ok(self.jobs.lock().unwrap().get(id).cloned())
    }

    async fn list(&self, query: ListQuery) -> Result<JobPage, ApiError> {
        let jobs = self.jobs.lock().unwrap();
        Ok(JobPage {
            jobs: jobs
                .values()
                .filter(|j| query.status.is_none_or(|s| s == j.status))
                .take(query.limit)
                .cloned()
                .collect(),
            next: None,
        })
    }

    async fn stats(&self) -> Result<serde_json::Value, ApiError> {
        Ok(serde_json::json!({"jobs": {"total": self.jobs.lock().unwrap().len()}}))
    }

    fn hash_file(&self, _algo: Algorithm, _file: std::fs::File, done: Completion) {
        done(Err(JobError::Read("not in the in-memory backend".into())));
    }

    fn open_stream(&self, algo: Algorithm, done: Completion) -> StreamJob {
        self.pool
            .get_or_init(|| {
                HasherPool::start(PoolConfig {
                    hashers: 1,
                    pin: false,
                    ..PoolConfig::default()
                })
                .expect("a hasher thread")
            })
            .open_stream(algo, done)
    }
}

impl Upload for MemUpload {
    async fn send(&mut self, chunk: Bytes) -> Result<(), ApiError> {
        self.size += chunk.len() as u64;
        self.hasher.update(&chunk);
        Ok(())
    }

    async fn finish(self, _wait: bool) -> Result<JobView, ApiError> {
        let job = JobView {
            id: self.id.clone(),
            status: JobStatus::Success,
            algorithm: self.algo.name().to_string(),
            hash: Some(hashcore::to_hex(&self.hasher.finalize())),
            size: Some(self.size),
            name: self.name,
            error: None,
            created_at: "1970-01-01T00:00:00.000Z".into(),
            finished_at: Some("1970-01-01T00:00:00.000Z".into()),
        };
        self.jobs.lock().unwrap().insert(self.id, job.clone());
        Ok(job)
    }
}

/// A client connection that sends `pieces` one read at a time, with a
/// `Pending` between two pieces (so the server acts on each piece before it
/// sees the next), then either ends its sending side (`eof`: the read after
/// the last piece returns end of stream at once, as a socket does when the
/// request and the FIN arrived together) or stays open; everything the
/// server writes is kept in `written`.
pub struct PieceIo {
    pieces: std::collections::VecDeque<Vec<u8>>,
    /// Whether the previous poll handed out a piece (the next one waits).
    just_read: bool,
    eof: bool,
    /// A `Pending` between the last piece and the end of stream too.
    pause_before_eof: bool,
    /// Bytes the server has read so far.
    pub read: usize,
    /// Everything the server wrote.
    pub written: Arc<Mutex<Vec<u8>>>,
    /// `read` when the server first wrote (`None` until then).
    pub read_at_first_write: Arc<Mutex<Option<usize>>>,
}

impl PieceIo {
    /// `eof`: after the last piece, reads return end of stream (a client
    /// that shut down its sending side); otherwise they stay pending.
    pub fn new(pieces: Vec<Vec<u8>>, eof: bool) -> PieceIo {
        PieceIo {
            pieces: pieces.into(),
            just_read: false,
            eof,
            pause_before_eof: false,
            read: 0,
            written: Arc::default(),
            read_at_first_write: Arc::default(),
        }
    }
}

impl PieceIo {
    /// The end of stream comes only after a `Pending`, so the server has
    /// acted on the last piece before it sees it.
    pub fn pause_before_eof(mut self) -> PieceIo {
        self.pause_before_eof = true;
        self
    }
}

impl AsyncRead for PieceIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let pause = !self.pieces.is_empty() || self.pause_before_eof;
        if self.just_read && pause {
            self.just_read = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let Some(mut piece) = self.pieces.pop_front() else {
            return if self.eof {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            };
        };
        let n = piece.len().min(buf.remaining());
        buf.put_slice(&piece[..n]);
        if n < piece.len() {
            piece.drain(..n);
            self.pieces.push_front(piece);
        }
        self.read += n;
        self.just_read = true;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for PieceIo {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.read_at_first_write
            .lock()
            .unwrap()
            .get_or_insert(self.read);
        self.written.lock().unwrap().extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
