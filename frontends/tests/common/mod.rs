//! Driving the real HTTP handler in process, over [`PieceIo`], against the
//! in-memory backend.
#![allow(dead_code)] // each test file uses its own part of this

mod fixtures;

use std::sync::Arc;
use std::time::Duration;

#[allow(unused_imports)] // multipart.rs only
pub use fixtures::{fixtures, Expect};
use frontends::http::HttpConfig;
use frontends::testing::{MemBackend, PieceIo};

/// A response, with how many jobs the backend recorded while serving it.
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub json: serde_json::Value,
    pub raw: Vec<u8>,
    pub jobs: usize,
}

/// A multipart upload request with `body`, waiting for the hash.
pub fn request(content_type: &str, body: &[u8]) -> Vec<u8> {
    [
        format!(
            "POST /uploadfile/?wait=true HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\
             Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes(),
        body.to_vec(),
    ]
    .concat()
}

/// Serves one connection whose client sends `pieces` and then waits.
pub fn serve(pieces: Vec<Vec<u8>>) -> Answer {
    serve_with(pieces, false).0
}

/// As [`serve`], and how many bytes the server had read when it answered.
pub fn serve_counting(pieces: Vec<Vec<u8>>) -> (Answer, usize) {
    serve_with(pieces, false)
}

/// Serves one connection whose client sends `pieces`, then shuts down its
/// sending side if `eof` (see [`PieceIo`]).
pub fn serve_with(pieces: Vec<Vec<u8>>, eof: bool) -> (Answer, usize) {
    serve_io(PieceIo::new(pieces, eof))
}

/// Serves one connection over `io`.
pub fn serve_io(io: PieceIo) -> (Answer, usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let backend = Arc::new(MemBackend::default());
    let written = io.written.clone();
    let first_write = io.read_at_first_write.clone();
    let config = HttpConfig {
        header_timeout: Duration::from_secs(5),
        body_idle_timeout: Duration::from_secs(5),
        ..HttpConfig::default()
    };
    rt.block_on(async {
        let conn = frontends::http::serve_connection(backend.clone(), config, io);
        // The connection ends after its answer (Connection: close), or by
        // the header timeout if it never got one.
        let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
    });
    let raw = written.lock().unwrap().clone();
    let read = first_write.lock().unwrap().unwrap_or(usize::MAX);
    (parse(raw, backend.jobs().len()), read)
}

fn parse(raw: Vec<u8>, jobs: usize) -> Answer {
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no answer: {text:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head:?}"));
    let json = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
    Answer {
        status,
        head: head.to_string(),
        json,
        raw,
        jobs,
    }
}

/// `got` is a SUCCESS whose hash is the MD5 of `bytes`.
pub fn expect_hash(name: &str, how: &str, got: &Answer, bytes: &[u8]) {
    assert_eq!(got.status, 200, "{name} ({how}): {}", got.json);
    assert_eq!(got.json["status"], "SUCCESS", "{name} ({how})");
    let want = hashcore::to_hex(&hashcore::Algorithm::Md5.digest(bytes));
    assert_eq!(
        got.json["hash"].as_str(),
        Some(want.as_str()),
        "{name} ({how}): hash of {} bytes expected, size says {}",
        bytes.len(),
        got.json["size"]
    );
}
