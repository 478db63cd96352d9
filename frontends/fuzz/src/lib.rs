//! The harness behind the fuzz targets: one HTTP/1.1 connection served by
//! the real handler (`frontends::http::serve_connection`) over an in-memory
//! pipe, against an in-memory backend, on a paused clock so every timeout
//! (header, body idle) fires as soon as the connection has nothing to do.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use frontends::http::HttpConfig;
use frontends::{ApiError, Backend, JobPage, JobStatus, JobView, ListQuery, Upload, UploadMeta};
use hashcore::{Algorithm, Completion, HasherPool, JobError, PoolConfig, StreamJob};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Uploads are counted, recorded as SUCCESS with no hash, and can be looked
/// up and listed; nothing is hashed.
#[derive(Default)]
pub struct MemBackend {
    next: AtomicU64,
    jobs: Arc<Mutex<HashMap<String, JobView>>>,
    /// Only for `open_stream` (the unix socket's path, never reached here).
    pool: OnceLock<HasherPool>,
}

pub struct MemUpload {
    id: String,
    algo: Algorithm,
    name: Option<String>,
    size: u64,
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
        Ok(serde_json::json!({"jobs": self.jobs.lock().unwrap().len()}))
    }

    fn hash_file(&self, _algo: Algorithm, _file: std::fs::File, done: Completion) {
        done(Err(JobError::Read("not in the fuzz backend".into())));
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
        Ok(())
    }

    async fn finish(self, _wait: bool) -> Result<JobView, ApiError> {
        let job = JobView {
            id: self.id.clone(),
            status: JobStatus::Success,
            algorithm: self.algo.name().to_string(),
            hash: None,
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

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a tokio runtime");
}

/// Feeds `input` to one connection as the client's bytes and returns what
/// the server wrote back. Checks what must hold for any input: the handler
/// never panics, never answers 500, and the connection ends.
pub fn run_connection(input: &[u8]) -> Vec<u8> {
    RUNTIME.with(|rt| {
        rt.block_on(async {
            let (client, server) = tokio::io::duplex(64 << 10);
            let config = HttpConfig {
                max_upload: 1 << 20,
                max_uploads: 4,
                header_timeout: Duration::from_secs(1),
                body_idle_timeout: Duration::from_secs(1),
                ..HttpConfig::default()
            };
            let conn = tokio::spawn(frontends::http::serve_connection(
                Arc::new(MemBackend::default()),
                config,
                server,
            ));
            let (mut rd, mut wr) = tokio::io::split(client);
            // The write side stays open: the connection ends by the header
            // timeout once the input is used up, as a real idle client's would.
            let write = async move {
                let _ = wr.write_all(input).await;
                wr
            };
            let read = async move {
                let mut out = Vec::new();
                let _ = rd.read_to_end(&mut out).await;
                out
            };
            let (_wr, out) = tokio::join!(write, read);
            match tokio::time::timeout(Duration::from_secs(600), conn).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => panic!("the connection task failed: {e}"),
                Err(_) => panic!("the connection never ended"),
            }
            assert!(
                !out.windows(12).any(|w| w == b"HTTP/1.1 500"),
                "a 500 answer: {}",
                String::from_utf8_lossy(&out)
            );
            out
        })
    })
}

/// A fixed, valid request head for a multipart upload of `body_len` bytes.
pub fn multipart_head(body_len: usize) -> Vec<u8> {
    format!(
        "POST /uploadfile/?wait=1 HTTP/1.1\r\nHost: fuzz\r\n\
         Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: {body_len}\r\n\r\n"
    )
    .into_bytes()
}
