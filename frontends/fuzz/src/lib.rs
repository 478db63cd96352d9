//! The harness behind the fuzz targets: one HTTP/1.1 connection served by
//! the real handler (`frontends::http::serve_connection`) over an in-memory
//! pipe, against an in-memory backend, on a paused clock so every timeout
//! (header, body idle) fires as soon as the connection has nothing to do.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use frontends::http::HttpConfig;
use frontends::testing::MemBackend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
