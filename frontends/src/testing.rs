//! In-memory stand-ins for driving the real front ends without a daemon: a
//! [`Backend`] that hashes on the caller's thread and keeps jobs in a map,
//! and an I/O object that hands the server a request in chosen pieces. For
//! this crate's tests and the fuzz targets; not for production.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use hashcore::Algorithms;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::{
    check_claims, Answer, ApiError, Backend, ByteStream, Claim, JobEnded, JobPage, JobStatus,
    JobView, ListQuery, Reply, Upload, UploadMeta,
};

/// Uploads and socket streams are hashed as their bytes arrive, on the
/// caller's thread; uploads are recorded SUCCESS at `finish` and can be
/// looked up and listed.
#[derive(Default)]
pub struct MemBackend {
    next: AtomicU64,
    jobs: Arc<Mutex<HashMap<String, JobView>>>,
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
    algo: Algorithms,
    name: Option<String>,
    size: u64,
    hasher: hashcore::MultiHasher,
    expected: Vec<Claim>,
    jobs: Arc<Mutex<HashMap<String, JobView>>>,
}

impl Backend for MemBackend {
    type Upload = MemUpload;
    type Stream = MemStream;

    fn begin_upload(&self, meta: UploadMeta) -> Result<MemUpload, ApiError> {
        Ok(MemUpload {
            id: format!("{:032x}", self.next.fetch_add(1, Ordering::Relaxed)),
            algo: meta.algo,
            name: meta.name,
            size: 0,
            hasher: meta.algo.hasher(),
            expected: meta.expected,
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

    fn answer_file(
        &self,
        algo: Algorithms,
        file: std::fs::File,
        hashed: Option<Arc<AtomicU64>>,
        reply: Reply,
    ) {
        // As the daemon's pool: only regular files (a pipe could stall it).
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            return reply(Answer::Failed {
                reason: "not a regular file".into(),
                busy: false,
            });
        }
        let mut hasher = algo.hasher();
        let answer = match std::io::copy(&mut &file, &mut DigestWriter(&mut hasher)) {
            Ok(size) => {
                if let Some(h) = hashed {
                    h.store(size, Ordering::Relaxed);
                }
                Answer::Digest {
                    hashes: hasher.finalize(),
                    size,
                }
            }
            Err(e) => Answer::Failed {
                reason: e.to_string(),
                busy: false,
            },
        };
        reply(answer);
    }

    fn answer_stream(&self, algo: Algorithms, reply: Reply) -> MemStream {
        MemStream(Mutex::new(StreamState {
            hasher: Some(algo.hasher()),
            size: 0,
            reply: Some(reply),
        }))
    }
}

/// Feeds what is written to a digest.
struct DigestWriter<'a>(&'a mut hashcore::MultiHasher);

impl std::io::Write for DigestWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A socket stream on a [`MemBackend`]. In a mutex only to make it `Sync`.
pub struct MemStream(Mutex<StreamState>);

struct StreamState {
    /// Taken when the stream finishes.
    hasher: Option<hashcore::MultiHasher>,
    size: u64,
    reply: Option<Reply>,
}

impl ByteStream for MemStream {
    async fn send(&mut self, chunk: Bytes) -> Result<(), JobEnded> {
        let state = self.0.get_mut().unwrap();
        state.size += chunk.len() as u64;
        if let Some(h) = &mut state.hasher {
            h.update(&chunk);
        }
        Ok(())
    }

    fn finish(mut self) {
        let state = self.0.get_mut().unwrap();
        let hashes = state
            .hasher
            .take()
            .map(hashcore::MultiHasher::finalize)
            .unwrap_or_default();
        if let Some(reply) = state.reply.take() {
            reply(Answer::Digest {
                hashes,
                size: state.size,
            });
        }
    }
}

impl Drop for MemStream {
    fn drop(&mut self) {
        if let Some(reply) = self.0.get_mut().unwrap().reply.take() {
            reply(Answer::Failed {
                reason: "the stream ended before its data".into(),
                busy: false,
            });
        }
    }
}

impl Upload for MemUpload {
    async fn send(&mut self, chunk: Bytes) -> Result<(), ApiError> {
        self.size += chunk.len() as u64;
        self.hasher.update(&chunk);
        Ok(())
    }

    fn expect(&mut self, claims: Vec<Claim>) -> Result<(), ApiError> {
        if let Some(c) = claims.iter().find(|c| !self.algo.contains(c.algo)) {
            return Err(ApiError::BadRequest(format!(
                "{} names {}, which this upload does not compute",
                c.source, c.algo
            )));
        }
        self.expected.extend(claims);
        Ok(())
    }

    async fn finish(self, _wait: bool) -> Result<JobView, ApiError> {
        let hashes = self.hasher.finalize();
        let mismatch = check_claims(&self.expected, &hashes);
        let job = JobView {
            id: self.id.clone(),
            status: match mismatch {
                None => JobStatus::Success,
                Some(_) => JobStatus::Failure,
            },
            algorithm: self.algo.to_string(),
            hash: mismatch.is_none().then(|| hashcore::to_hex(&hashes[0].1)),
            hashes: match mismatch {
                None => hashes
                    .iter()
                    .map(|(a, d)| (a.name().to_string(), hashcore::to_hex(d)))
                    .collect(),
                Some(_) => Vec::new(),
            },
            size: Some(self.size),
            name: self.name,
            error: mismatch,
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
