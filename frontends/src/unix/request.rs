//! Requests, parsed once from their frames and then applied to the
//! connection's [`Session`] (the shape of mini-redis's `Command::from_frame`
//! and `apply`). Parsing needs no connection state, so every frame is
//! decoded in one place; applying checks a request against the state (which
//! streams are open) and answers it.

use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use hashcore::Algorithms;

use super::frame::{Frame, FrameError, Kind, VERSION};
use super::message::{ErrorReply, HelloReply, HelloRequest, LookupReply, OkFlag, StatsReply};
use super::{Session, Source};
use crate::Backend;

/// A client broke the protocol: it is told why (an [`ErrorReply`] with tag
/// 0) and its connection is closed. Other connections are unaffected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError(String);

impl ProtocolError {
    /// A violation described in words.
    pub fn new(reason: impl Into<String>) -> ProtocolError {
        ProtocolError(reason.into())
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProtocolError {}

impl From<FrameError> for ProtocolError {
    fn from(e: FrameError) -> ProtocolError {
        ProtocolError(e.to_string())
    }
}

/// One client request: its tag and what it asks.
#[derive(Debug)]
pub struct Request {
    /// The client's tag, carried by the reply.
    pub tag: u64,
    /// What the request asks.
    pub command: Command,
}

/// What a request asks, with its payload decoded.
#[derive(Debug)]
pub enum Command {
    /// A request that gets a reply of its own.
    Call(Call),
    /// STREAM_DATA: the next bytes of the stream opened under the tag.
    /// Part of the STREAM_OPEN request, so not answered by itself.
    StreamData(Bytes),
    /// STREAM_END: the stream under the tag is complete; the answer to
    /// its STREAM_OPEN follows.
    StreamEnd,
}

/// A request that gets a reply of its own, and holds one of its
/// connection's in-flight slots until then.
#[derive(Debug)]
pub enum Call {
    /// HELLO; intervals as asked, not yet clamped.
    Hello {
        /// The heartbeat interval asked for, if any.
        heartbeat_ms: Option<u64>,
        /// The PROGRESS interval asked for, if any.
        progress_ms: Option<u64>,
    },
    /// HASH_FD: the descriptor the frame claimed.
    HashFd {
        /// The algorithm to hash with.
        algo: Algorithms,
        /// The file the client passed.
        file: File,
    },
    /// HASH_PATH; the path is checked against the allowed roots when
    /// applied, since that touches the file system.
    HashPath {
        /// The algorithm to hash with.
        algo: Algorithms,
        /// The path as sent.
        path: PathBuf,
    },
    /// STREAM_OPEN.
    StreamOpen {
        /// The algorithm to hash with.
        algo: Algorithms,
    },
    /// LOOKUP of a job id (trimmed).
    Lookup(String),
    /// STATS.
    Stats,
    /// A well-framed request that cannot be carried out (an unknown
    /// algorithm): it is answered with this error, and the connection
    /// goes on.
    Refused(String),
}

/// Reads an algorithm name, or several separated by commas
/// (`md5,sha256`); the error is the reply's text.
fn algorithm(name: &[u8]) -> Result<Algorithms, String> {
    std::str::from_utf8(name)
        .unwrap_or("")
        .parse::<Algorithms>()
        .map_err(|e| e.to_string())
}

impl Request {
    /// Decodes `frame`. A HASH_FD claims the oldest descriptor in `fds`
    /// (descriptors arrive with the first byte of their frame, so in frame
    /// order), even when its algorithm is then refused.
    pub fn from_frame(frame: Frame, fds: &mut VecDeque<OwnedFd>) -> Result<Request, ProtocolError> {
        let Frame { kind, tag, payload } = frame;
        let call = match kind {
            Kind::StreamData => {
                return Ok(Request {
                    tag,
                    command: Command::StreamData(payload),
                })
            }
            Kind::StreamEnd => {
                return Ok(Request {
                    tag,
                    command: Command::StreamEnd,
                })
            }
            Kind::Hello => {
                let hello = HelloRequest::parse(&payload);
                Call::Hello {
                    heartbeat_ms: hello.heartbeat_ms,
                    progress_ms: hello.progress_ms,
                }
            }
            Kind::HashFd => {
                let fd = fds
                    .pop_front()
                    .ok_or_else(|| ProtocolError::new("HASH_FD frame without a descriptor"))?;
                match algorithm(&payload) {
                    Ok(algo) => Call::HashFd {
                        algo,
                        file: File::from(fd),
                    },
                    Err(reason) => Call::Refused(reason),
                }
            }
            Kind::HashPath => {
                let Some(nul) = payload.iter().position(|&b| b == 0) else {
                    return Err(ProtocolError::new("HASH_PATH payload must be ALGO\\0PATH"));
                };
                let path = PathBuf::from(std::ffi::OsStr::from_bytes(&payload[nul + 1..]));
                match algorithm(&payload[..nul]) {
                    Ok(algo) => Call::HashPath { algo, path },
                    Err(reason) => Call::Refused(reason),
                }
            }
            Kind::StreamOpen => match algorithm(&payload) {
                Ok(algo) => Call::StreamOpen { algo },
                Err(reason) => Call::Refused(reason),
            },
            Kind::Lookup => Call::Lookup(String::from_utf8_lossy(&payload).trim().to_owned()),
            Kind::Stats => Call::Stats,
            Kind::Reply | Kind::Heartbeat | Kind::Progress => {
                return Err(ProtocolError::new(
                    "clients do not send REPLY, HEARTBEAT or PROGRESS frames",
                ))
            }
        };
        Ok(Request {
            tag,
            command: Command::Call(call),
        })
    }

    /// Carries the request out. Stream bytes go to their open stream; every
    /// other request takes one of the connection's in-flight slots (waiting
    /// for one frees up, which is what stops the reading) and is answered
    /// exactly once, now or when its job completes.
    pub(super) async fn apply<B: Backend>(
        self,
        session: &mut Session<B>,
    ) -> Result<(), ProtocolError> {
        let tag = self.tag;
        let call = match self.command {
            Command::StreamData(bytes) => return session.stream_data(tag, bytes).await,
            Command::StreamEnd => return session.stream_end(tag),
            Command::Call(call) => call,
        };
        let slot = session.slot().await?;
        match call {
            Call::Hello {
                heartbeat_ms,
                progress_ms,
            } => {
                let granted = heartbeat_ms.map(|ms| session.set_heartbeat(ms));
                let progress = progress_ms.map(|ms| session.set_progress(ms));
                let hello = HelloReply {
                    ok: OkFlag,
                    version: VERSION,
                    server: concat!("hashd ", env!("CARGO_PKG_VERSION")).into(),
                    heartbeat_ms: granted,
                    progress_ms: progress,
                };
                session.reply(tag, &hello, slot);
            }
            Call::HashFd { algo, file } => session.submit(tag, algo, Source::File(file), slot)?,
            Call::HashPath { algo, path } => match open_under_roots(&path, &session.roots) {
                Ok(file) => session.submit(tag, algo, Source::File(file), slot)?,
                Err(reason) => session.reply(tag, &ErrorReply::new(reason), slot),
            },
            Call::StreamOpen { algo } => session.submit(tag, algo, Source::Stream, slot)?,
            Call::Lookup(id) => match session.backend.lookup(&id).await {
                Ok(Some(job)) => session.reply(tag, &LookupReply { ok: OkFlag, job }, slot),
                Ok(None) => session.reply(tag, &ErrorReply::new("INVALID_ID"), slot),
                Err(e) => session.reply(tag, &ErrorReply::new(e.to_string()), slot),
            },
            Call::Stats => match session.backend.stats().await {
                Ok(stats) => session.reply(tag, &StatsReply { ok: OkFlag, stats }, slot),
                Err(e) => session.reply(tag, &ErrorReply::new(e.to_string()), slot),
            },
            Call::Refused(reason) => session.reply(tag, &ErrorReply::new(reason), slot),
        }
        Ok(())
    }
}

/// Opens `path` for HASH_PATH if it lies under one of `roots` (which are
/// canonical). `..` is refused outright; symlinks are resolved, and the file
/// actually opened is checked again through `/proc/self/fd`, so a link
/// swapped in between the check and the open cannot escape the roots.
/// Messages name neither the roots nor the resolved path.
fn open_under_roots(path: &Path, roots: &[PathBuf]) -> Result<File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    if roots.is_empty() {
        return Err(
            "hashing by path is off (start hashd with --allow-path-root DIR, or pass a descriptor)"
                .into(),
        );
    }
    if !path.is_absolute() {
        return Err("path must be absolute".into());
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err("path must not contain '..'".into());
    }
    let outside = || "path is outside the allowed roots".to_string();
    let canonical =
        std::fs::canonicalize(path).map_err(|e| format!("cannot open the path: {e}"))?;
    if !roots.iter().any(|r| canonical.starts_with(r)) {
        return Err(outside());
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&canonical)
        .map_err(|e| format!("cannot open the path: {e}"))?;
    let opened = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&file)
    ))
    .map_err(|e| format!("cannot verify the opened path: {e}"))?;
    if !roots.iter().any(|r| opened.starts_with(r)) {
        return Err(outside());
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hashcore::Algorithm;

    fn frame(kind: Kind, tag: u64, payload: &'static [u8]) -> Frame {
        Frame {
            kind,
            tag,
            payload: Bytes::from_static(payload),
        }
    }

    fn a_descriptor() -> OwnedFd {
        File::open("/dev/null").unwrap().into()
    }

    #[test]
    fn each_kind_parses_into_its_command() {
        let mut fds = VecDeque::from([a_descriptor()]);
        let parse = |f, fds: &mut VecDeque<OwnedFd>| Request::from_frame(f, fds).unwrap();
        let r = parse(frame(Kind::HashFd, 3, b"SHA256"), &mut fds);
        assert_eq!(r.tag, 3);
        assert!(matches!(
            r.command,
            Command::Call(Call::HashFd { algo, .. }) if algo == Algorithm::Sha256.into()
        ));
        assert!(fds.is_empty());
        let r = parse(frame(Kind::HashPath, 4, b"md5\0/a/b"), &mut fds);
        match r.command {
            Command::Call(Call::HashPath { algo, path }) => {
                assert_eq!((algo, path), (Algorithm::Md5.into(), PathBuf::from("/a/b")))
            }
            other => panic!("{other:?}"),
        }
        let r = parse(
            frame(Kind::Hello, 1, br#"{"version":1,"heartbeat_ms":5}"#),
            &mut fds,
        );
        assert!(matches!(
            r.command,
            Command::Call(Call::Hello {
                heartbeat_ms: Some(5),
                progress_ms: None,
            })
        ));
        let r = parse(frame(Kind::Lookup, 2, b" abc\n"), &mut fds);
        assert!(matches!(r.command, Command::Call(Call::Lookup(id)) if id == "abc"));
        let r = parse(frame(Kind::StreamData, 5, b"bytes"), &mut fds);
        assert!(matches!(r.command, Command::StreamData(b) if b == "bytes"));
        let r = parse(frame(Kind::StreamEnd, 5, b""), &mut fds);
        assert!(matches!(r.command, Command::StreamEnd));
    }

    #[test]
    fn an_unknown_algorithm_is_refused_and_still_claims_its_descriptor() {
        let mut fds = VecDeque::from([a_descriptor(), a_descriptor()]);
        for (kind, payload) in [
            (Kind::HashFd, &b"whirlpool"[..]),
            (Kind::StreamOpen, b"whirlpool"),
            (Kind::HashPath, b"\xff\0/a"),
        ] {
            let f = Frame {
                kind,
                tag: 9,
                payload: Bytes::from_static(payload),
            };
            let r = Request::from_frame(f, &mut fds).unwrap();
            assert!(
                matches!(r.command, Command::Call(Call::Refused(_))),
                "{kind:?}"
            );
        }
        assert_eq!(fds.len(), 1, "only HASH_FD claims a descriptor");
    }

    #[test]
    fn what_breaks_the_protocol_is_a_protocol_error() {
        let mut fds = VecDeque::new();
        for (f, needle) in [
            (frame(Kind::HashFd, 1, b"md5"), "without a descriptor"),
            (frame(Kind::HashPath, 1, b"md5/a"), "ALGO\\0PATH"),
            (frame(Kind::Reply, 1, b"{}"), "REPLY, HEARTBEAT or PROGRESS"),
            (
                frame(Kind::Heartbeat, 0, b""),
                "REPLY, HEARTBEAT or PROGRESS",
            ),
            (
                frame(Kind::Progress, 1, b"{}"),
                "REPLY, HEARTBEAT or PROGRESS",
            ),
        ] {
            let e = Request::from_frame(f, &mut fds).unwrap_err();
            assert!(e.to_string().contains(needle), "{e}");
        }
    }
}
