//! `hashd-sink`: the sink baseline for HTTP benchmarks.
//!
//! The same hyper server, routes and multer parsing as hashd
//! (`frontends::http::serve` with `HttpConfig::default()`, on the same tokio
//! runtime), over a backend that drops every chunk: no hasher, no store, no
//! results log. An upload answers SUCCESS with `"hash": null`, an id from a
//! counter (32 hex digits, not random) and `created_at`/`finished_at` fixed at
//! the Unix epoch. Lookups answer `INVALID_ID` (nothing is recorded), `/jobs`
//! is empty, `/stats` says `{"sink": true, "uploads": N, "bytes": N}`.
//! Comparing hashd with it isolates what hashing, the store and the job
//! bookkeeping cost on top of HTTP and multipart parsing.
//!
//! Prints `hashd-sink listening on http://ADDR` once it accepts requests;
//! stops on SIGINT or SIGTERM. It serves no unix socket.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use clap::Parser;
use frontends::http::HttpConfig;
use frontends::{
    Answer, ApiError, Backend, ByteStream, JobEnded, JobPage, JobStatus, JobView, ListQuery, Reply,
    Upload, UploadMeta,
};
use hashcore::Algorithms;

/// hashd-sink: hashd's HTTP front end over a backend that discards uploads.
#[derive(Parser, Debug)]
#[command(name = "hashd-sink", version)]
struct Args {
    /// HTTP address (port 0 picks a free port; the bound address is printed)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8001")]
    listen: SocketAddr,
}

const EPOCH: &str = "1970-01-01T00:00:00Z";

#[derive(Default)]
struct Counters {
    uploads: AtomicU64,
    bytes: AtomicU64,
}

#[derive(Default)]
struct Sink {
    counters: Arc<Counters>,
}

/// The sink serves no unix socket; request-and-reply jobs are refused.
struct NoStream;

const NO_SOCKET: &str = "hashd-sink does not hash request-and-reply jobs";

impl ByteStream for NoStream {
    async fn send(&mut self, _chunk: Bytes) -> Result<(), JobEnded> {
        Err(JobEnded)
    }

    fn finish(self) {}
}

struct SinkUpload {
    counters: Arc<Counters>,
    algo: Algorithms,
    name: Option<String>,
    size: u64,
}

impl Backend for Sink {
    type Upload = SinkUpload;
    type Stream = NoStream;

    fn begin_upload(&self, meta: UploadMeta) -> Result<SinkUpload, ApiError> {
        Ok(SinkUpload {
            counters: self.counters.clone(),
            algo: meta.algo,
            name: meta.name,
            size: 0,
        })
    }

    async fn lookup(&self, _id: &str) -> Result<Option<JobView>, ApiError> {
        Ok(None)
    }

    async fn list(&self, _query: ListQuery) -> Result<JobPage, ApiError> {
        Ok(JobPage {
            jobs: Vec::new(),
            next: None,
        })
    }

    async fn stats(&self) -> Result<serde_json::Value, ApiError> {
        Ok(serde_json::json!({
            "sink": true,
            "uploads": self.counters.uploads.load(Ordering::Relaxed),
            "bytes": self.counters.bytes.load(Ordering::Relaxed),
        }))
    }

    fn answer_file(
        &self,
        _algo: Algorithms,
        _file: std::fs::File,
        _hashed: Option<Arc<AtomicU64>>,
        reply: Reply,
    ) {
        reply(Answer::Failed {
            reason: NO_SOCKET.into(),
            busy: false,
        });
    }

    fn answer_stream(&self, _algo: Algorithms, reply: Reply) -> NoStream {
        reply(Answer::Failed {
            reason: NO_SOCKET.into(),
            busy: false,
        });
        NoStream
    }
}

impl Upload for SinkUpload {
    fn expect(&mut self, _claims: Vec<frontends::Claim>) -> Result<(), ApiError> {
        Ok(()) // nothing is hashed, so nothing is checked
    }

    async fn send(&mut self, chunk: Bytes) -> Result<(), ApiError> {
        self.size += chunk.len() as u64;
        Ok(()) // the chunk is dropped here
    }

    async fn finish(self, _wait: bool) -> Result<JobView, ApiError> {
        let n = self.counters.uploads.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes.fetch_add(self.size, Ordering::Relaxed);
        Ok(JobView {
            id: format!("{n:032x}"),
            status: JobStatus::Success,
            algorithm: self.algo.to_string(),
            hash: None,
            hashes: Vec::new(),
            size: Some(self.size),
            name: self.name,
            error: None,
            created_at: EPOCH.to_string(),
            finished_at: Some(EPOCH.to_string()),
        })
    }
}

async fn serve(listen: SocketAddr) -> std::io::Result<()> {
    use std::io::Write;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "hashd-sink listening on http://{addr}")?;
        out.flush()?;
    }
    frontends::http::serve(
        listener,
        Arc::new(Sink::default()),
        HttpConfig::default(),
        shutdown_signal(),
    )
    .await;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        eprintln!("hashd-sink: cannot install signal handlers; stop it with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hashd-sink: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(serve(args.listen)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hashd-sink: cannot listen on {}: {e}", args.listen);
            ExitCode::from(1)
        }
    }
}
