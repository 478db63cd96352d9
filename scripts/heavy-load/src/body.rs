//! Request bodies: an empty body for GETs and a streamed multipart upload
//! whose content is generated (and hashed) chunk by chunk as hyper asks for it.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};

use crate::gen::ContentGen;
use crate::Algo;

/// Bytes of content generated per frame (a multiple of 32, see `ContentGen::fill`).
pub const CHUNK: usize = 256 * 1024;

pub enum ReqBody {
    Empty,
    Upload(Box<Upload>),
}

/// One file being uploaded as `multipart/form-data`, field `file`.
pub struct Upload {
    gen: ContentGen,
    hasher: Option<Hasher>,
    prefix: Option<Bytes>,
    suffix: Option<Bytes>,
    remaining: u64,
    /// Hex digest of the content, set once the last content byte was produced.
    digest: Arc<OnceLock<String>>,
}

impl Upload {
    /// Returns the body, its total length, the multipart boundary and the slot
    /// that receives the hex digest of the content once it was all sent.
    pub fn new(
        seed: u64,
        index: u64,
        size: u64,
        algo: Algo,
    ) -> (Self, u64, String, Arc<OnceLock<String>>) {
        let b = crate::gen::splitmix64(seed ^ index.rotate_left(32) ^ 0xB0B);
        let boundary = format!("----heavyload{b:016x}{:016x}", crate::gen::splitmix64(b));
        let prefix = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
             filename=\"heavy-{index}.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        );
        let suffix = format!("\r\n--{boundary}--\r\n");
        let total = prefix.len() as u64 + size + suffix.len() as u64;
        let digest = Arc::new(OnceLock::new());
        let up = Upload {
            gen: ContentGen::new(seed, index),
            hasher: Some(Hasher::new(algo)),
            prefix: Some(Bytes::from(prefix)),
            suffix: Some(Bytes::from(suffix)),
            remaining: size,
            digest: digest.clone(),
        };
        (up, total, boundary, digest)
    }

    fn remaining_total(&self) -> u64 {
        self.prefix.as_ref().map_or(0, |p| p.len() as u64)
            + self.remaining
            + self.suffix.as_ref().map_or(0, |s| s.len() as u64)
    }

    /// The next frame: prefix and suffix are merged into the first and last
    /// content chunk so that a small file goes out as a single write.
    fn next_chunk(&mut self) -> Option<Bytes> {
        let prefix = self.prefix.take();
        if prefix.is_none() && self.remaining == 0 && self.suffix.is_none() {
            return None;
        }
        let n = self.remaining.min(CHUNK as u64) as usize;
        let last = n as u64 == self.remaining;
        let plen = prefix.as_ref().map_or(0, |p| p.len());
        let slen = if last {
            self.suffix.as_ref().map_or(0, |s| s.len())
        } else {
            0
        };
        let mut buf = BytesMut::with_capacity(plen + n + slen);
        if let Some(p) = &prefix {
            buf.extend_from_slice(p);
        }
        buf.resize(plen + n, 0);
        let content = &mut buf[plen..plen + n];
        self.gen.fill(content);
        if let Some(h) = self.hasher.as_mut() {
            h.update(content);
        }
        self.remaining -= n as u64;
        if last {
            if let Some(h) = self.hasher.take() {
                let _ = self.digest.set(h.finalize_hex());
            }
            if let Some(s) = self.suffix.take() {
                buf.extend_from_slice(&s);
            }
        }
        Some(buf.freeze())
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            ReqBody::Empty => Poll::Ready(None),
            ReqBody::Upload(u) => Poll::Ready(u.next_chunk().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Empty => true,
            ReqBody::Upload(u) => u.remaining_total() == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Empty => SizeHint::with_exact(0),
            ReqBody::Upload(u) => SizeHint::with_exact(u.remaining_total()),
        }
    }
}

/// The digest algorithms the original API accepts.
pub enum Hasher {
    Md5(md5::Md5),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn new(algo: Algo) -> Self {
        use digest::Digest;
        match algo {
            Algo::Md5 => Hasher::Md5(md5::Md5::new()),
            Algo::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            Algo::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algo::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        use digest::Digest;
        match self {
            Hasher::Md5(h) => h.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    pub fn finalize_hex(self) -> String {
        use digest::Digest;
        let raw: Vec<u8> = match self {
            Hasher::Md5(h) => h.finalize().to_vec(),
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        };
        hex(&raw)
    }
}

pub fn hex(raw: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(raw.len() * 2);
    for b in raw {
        s.push(D[(b >> 4) as usize] as char);
        s.push(D[(b & 15) as usize] as char);
    }
    s
}

/// Regenerates file `index` and returns its hex digest (used when the body was
/// not fully sent, e.g. the server answered early).
pub fn file_digest(seed: u64, index: u64, size: u64, algo: Algo) -> String {
    let mut g = ContentGen::new(seed, index);
    let mut h = Hasher::new(algo);
    let mut buf = vec![0u8; CHUNK.min(size as usize)];
    let mut left = size;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        g.fill(&mut buf[..n]);
        h.update(&buf[..n]);
        left -= n as u64;
    }
    h.finalize_hex()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn body_is_well_formed_and_digest_matches() {
        for size in [0u64, 1, 31, 32, 1000, CHUNK as u64, CHUNK as u64 * 2 + 77] {
            let (up, total, boundary, slot) = Upload::new(9, 5, size, Algo::Md5);
            let body = ReqBody::Upload(Box::new(up));
            assert_eq!(body.size_hint().exact(), Some(total));
            let bytes = body.collect().await.unwrap().to_bytes();
            assert_eq!(bytes.len() as u64, total);
            let head = format!("--{boundary}\r\n");
            assert!(bytes.starts_with(head.as_bytes()));
            assert!(bytes.ends_with(format!("\r\n--{boundary}--\r\n").as_bytes()));
            let start = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            let content = &bytes[start..start + size as usize];
            let mut h = Hasher::new(Algo::Md5);
            h.update(content);
            let want = h.finalize_hex();
            assert_eq!(slot.get(), Some(&want));
            assert_eq!(file_digest(9, 5, size, Algo::Md5), want);
        }
        // known answer: md5 of the empty file
        assert_eq!(
            file_digest(1, 1, 0, Algo::Md5),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
    }
}
