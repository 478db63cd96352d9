//! The socket protocol's frames (see docs/protocol.md): a length, a kind, a
//! client-chosen tag, a payload. Decoding is incremental: "need more bytes"
//! is a state (`Ok(None)`), not an error.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Protocol version spoken by this server.
pub const VERSION: u32 = 1;
/// kind (1) + tag (8).
pub const HEADER_LEN: usize = 9;
/// Largest frame body (kind + tag + payload); bounds memory per connection.
pub const MAX_FRAME_LEN: usize = HEADER_LEN + (1 << 20);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Hello = 0x01,
    HashFd = 0x02,
    StreamOpen = 0x03,
    StreamData = 0x04,
    StreamEnd = 0x05,
    Lookup = 0x06,
    Stats = 0x07,
    /// Hash a file by path; off unless the daemon names allowed roots.
    HashPath = 0x08,
    /// Server to client: the answer to the request with the same tag.
    Reply = 0x80,
    /// Server to client, tag 0, empty: "still working on your requests".
    /// Sent only to clients whose HELLO asked for it (`heartbeat_ms`), so
    /// clients that predate it never see a kind they cannot decode.
    Heartbeat = 0x81,
    /// Server to client, with a request's tag: how many bytes of that
    /// request's file are hashed so far, as JSON ([`super::message::Progress`]).
    /// Sent only to clients whose HELLO asked for it (`progress_ms`), for
    /// the same reason as [`Kind::Heartbeat`].
    Progress = 0x82,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            0x01 => Kind::Hello,
            0x02 => Kind::HashFd,
            0x03 => Kind::StreamOpen,
            0x04 => Kind::StreamData,
            0x05 => Kind::StreamEnd,
            0x06 => Kind::Lookup,
            0x07 => Kind::Stats,
            0x08 => Kind::HashPath,
            0x80 => Kind::Reply,
            0x81 => Kind::Heartbeat,
            0x82 => Kind::Progress,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub kind: Kind,
    pub tag: u64,
    pub payload: Bytes,
}

/// Why the byte stream cannot be framed; the connection is closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    TooLong { len: usize, max: usize },
    TooShort { len: usize },
    UnknownKind(u8),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooLong { len, max } => {
                write!(f, "frame of {len} bytes exceeds the limit of {max}")
            }
            FrameError::TooShort { len } => write!(
                f,
                "frame of {len} bytes is shorter than its {HEADER_LEN}-byte header"
            ),
            FrameError::UnknownKind(k) => write!(f, "unknown frame kind 0x{k:02x}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Bytes still to come of the frame at the front of `buf`, once its length
/// prefix has arrived (0 when the frame is whole).
pub fn missing(buf: &[u8]) -> Option<usize> {
    let prefix: [u8; 4] = buf.get(..4)?.try_into().ok()?;
    Some((4 + u32::from_be_bytes(prefix) as usize).saturating_sub(buf.len()))
}

/// Takes one whole frame off the front of `buf`, if there is one.
pub fn decode(buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLong {
            len,
            max: MAX_FRAME_LEN,
        });
    }
    if len < HEADER_LEN {
        return Err(FrameError::TooShort { len });
    }
    if buf.len() < 5 {
        return Ok(None);
    }
    let kind = Kind::from_u8(buf[4]).ok_or(FrameError::UnknownKind(buf[4]))?;
    if buf.len() < 4 + len {
        buf.reserve(4 + len - buf.len());
        return Ok(None);
    }
    buf.advance(5);
    let tag = buf.get_u64();
    let payload = buf.split_to(len - HEADER_LEN).freeze();
    Ok(Some(Frame { kind, tag, payload }))
}

/// Appends one frame to `out`.
pub fn encode(kind: Kind, tag: u64, payload: &[u8], out: &mut BytesMut) {
    out.reserve(4 + HEADER_LEN + payload.len());
    out.put_u32((HEADER_LEN + payload.len()) as u32);
    out.put_u8(kind as u8);
    out.put_u64(tag);
    out.put_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_byte_by_byte() {
        let mut wire = BytesMut::new();
        encode(Kind::HashFd, 7, b"md5", &mut wire);
        encode(Kind::StreamData, u64::MAX, &[0u8; 1000], &mut wire);
        encode(Kind::Stats, 0, b"", &mut wire);
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for b in wire.iter() {
            buf.put_u8(*b);
            while let Some(f) = decode(&mut buf).unwrap() {
                frames.push(f);
            }
        }
        assert_eq!(frames.len(), 3);
        assert_eq!(
            frames[0],
            Frame {
                kind: Kind::HashFd,
                tag: 7,
                payload: Bytes::from_static(b"md5")
            }
        );
        assert_eq!(frames[1].payload.len(), 1000);
        assert_eq!(frames[2].kind, Kind::Stats);
        assert!(buf.is_empty());
    }

    #[test]
    fn a_frame_read_up_to_what_is_missing_fits_what_decode_reserved() {
        let mut wire = BytesMut::new();
        encode(Kind::StreamData, 1, &[7u8; 200_000], &mut wire);
        assert_eq!(missing(&wire[..3]), None);
        assert_eq!(missing(&wire), Some(0));
        let mut buf = BytesMut::from(&wire[..1000]);
        assert!(decode(&mut buf).unwrap().is_none());
        let want = missing(&buf).unwrap();
        assert_eq!(want, wire.len() - 1000);
        let start = buf.as_ptr();
        buf.extend_from_slice(&wire[1000..]);
        assert_eq!(buf.as_ptr(), start, "the frame's bytes were moved");
        let frame = decode(&mut buf).unwrap().unwrap();
        assert_eq!(frame.payload.len(), 200_000);
        assert!(buf.is_empty());
    }

    #[test]
    fn garbage_is_refused() {
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 1][..]);
        assert!(matches!(decode(&mut buf), Err(FrameError::TooLong { .. })));
        let mut buf = BytesMut::from(&[0, 0, 0, 3, 1, 0, 0][..]);
        assert_eq!(decode(&mut buf), Err(FrameError::TooShort { len: 3 }));
        let mut buf = BytesMut::from(&[0, 0, 0, 9, 0x42][..]);
        assert_eq!(decode(&mut buf), Err(FrameError::UnknownKind(0x42)));
    }
}
