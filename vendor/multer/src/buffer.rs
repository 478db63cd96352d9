use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::stream::Stream;

use crate::constants;

pub(crate) struct StreamBuffer<'r> {
    pub(crate) eof: bool,
    pub(crate) buf: BytesMut,
    pub(crate) stream: Pin<Box<dyn Stream<Item = Result<Bytes, crate::Error>> + Send + 'r>>,
    pub(crate) whole_stream_size_limit: u64,
    pub(crate) stream_size_counter: u64,
}

impl<'r> StreamBuffer<'r> {
    pub fn new<S>(stream: S, whole_stream_size_limit: u64) -> Self
    where
        S: Stream<Item = Result<Bytes, crate::Error>> + Send + 'r,
    {
        StreamBuffer {
            eof: false,
            buf: BytesMut::new(),
            stream: Box::pin(stream),
            whole_stream_size_limit,
            stream_size_counter: 0,
        }
    }

    pub fn poll_stream(&mut self, cx: &mut Context<'_>) -> Result<(), crate::Error> {
        if self.eof {
            return Ok(());
        }

        loop {
            match self.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(data))) => {
                    self.stream_size_counter += data.len() as u64;

                    if self.stream_size_counter > self.whole_stream_size_limit {
                        return Err(crate::Error::StreamSizeExceeded {
                            limit: self.whole_stream_size_limit,
                        });
                    }

                    self.buf.extend_from_slice(&data)
                }
                Poll::Ready(Some(Err(err))) => return Err(err),
                Poll::Ready(None) => {
                    self.eof = true;
                    return Ok(());
                }
                Poll::Pending => return Ok(()),
            }
        }
    }

    pub fn read_exact(&mut self, size: usize) -> Option<Bytes> {
        if size <= self.buf.len() {
            Some(self.buf.split_to(size).freeze())
        } else {
            None
        }
    }

    pub fn peek_exact(&mut self, size: usize) -> Option<&[u8]> {
        self.buf.get(..size)
    }

    pub fn read_until(&mut self, pattern: &[u8]) -> Option<Bytes> {
        memchr::memmem::find(&self.buf, pattern).map(|idx| self.buf.split_to(idx + pattern.len()).freeze())
    }

    pub fn read_to(&mut self, pattern: &[u8]) -> Option<Bytes> {
        memchr::memmem::find(&self.buf, pattern).map(|idx| self.buf.split_to(idx).freeze())
    }

    pub fn advance_past_transport_padding(&mut self) -> bool {
        match self.buf.iter().position(|b| *b != b' ' && *b != b'\t') {
            Some(pos) => {
                self.buf.advance(pos);
                true
            }
            None => {
                self.buf.clear();
                false
            }
        }
    }

    /// The next piece of the current field's data, and whether the field
    /// ends with it.
    ///
    /// PATCH (hashd): a field ends only at a real delimiter line: CRLF,
    /// `--boundary`, optional transport padding and CRLF; or the close
    /// delimiter, `--boundary--` then padding and CRLF or the end of the body
    /// (RFC 2046 section 5.1.1). Upstream ended a field at
    /// the first `CRLF--boundary` whatever followed, so a file containing a
    /// line that merely begins with the delimiter was cut short there.
    pub fn read_field_data(
        &mut self,
        boundary: &str,
        field_name: Option<&str>,
    ) -> crate::Result<Option<(bool, Bytes)>> {
        trace!("finding next field: {:?}", field_name);
        if self.buf.is_empty() && self.eof {
            trace!("empty buffer && EOF");
            return Err(crate::Error::IncompleteFieldData {
                field_name: field_name.map(|s| s.to_owned()),
            });
        } else if self.buf.is_empty() {
            return Ok(None);
        }

        let boundary_deriv = format!("{}{}{}", constants::CRLF, constants::BOUNDARY_EXT, boundary);
        let b_len = boundary_deriv.len();

        let mut from = 0;
        while let Some(rel_idx) = memchr::memmem::find(&self.buf[from..], boundary_deriv.as_bytes()) {
            let idx = from + rel_idx;
            match after_boundary(&self.buf[idx + b_len..], self.eof) {
                AfterBoundary::Delimiter => {
                    trace!("new field found at {}", idx);
                    let bytes = self.buf.split_to(idx).freeze();

                    // discard \r\n.
                    self.buf.advance(constants::CRLF.len());

                    return Ok(Some((true, bytes)));
                }
                // Data that only begins like a delimiter: keep looking after it.
                AfterBoundary::Data => from = idx + 1,
                AfterBoundary::PaddingTooLong => {
                    return Err(crate::Error::TransportPaddingTooLong {
                        limit: constants::MAX_TRANSPORT_PADDING,
                    });
                }
                // Undecided until more bytes arrive: hand out what precedes it.
                AfterBoundary::NeedMore => {
                    return Ok(match idx {
                        0 => None,
                        _ => Some((false, self.buf.split_to(idx).freeze())),
                    });
                }
            }
        }

        if self.eof {
            trace!("no new field found: EOF. terminating");
            return Err(crate::Error::IncompleteFieldData {
                field_name: field_name.map(|s| s.to_owned()),
            });
        }

        // Keep back a tail that may be the start of a delimiter. Such a tail
        // begins with its only CR, so it begins at the last CR.
        let buf_len = self.buf.len();
        let rem_boundary_part_idx = buf_len.saturating_sub(b_len - 1).max(from);
        trace!("no new field found, not EOF, checking close");
        let bytes = &self.buf[rem_boundary_part_idx..];
        match memchr::memrchr(b'\r', bytes) {
            Some(rel_idx) if boundary_deriv.as_bytes().starts_with(&bytes[rel_idx..]) => {
                let idx = rel_idx + rem_boundary_part_idx;
                let bytes = self.buf.split_to(idx).freeze();

                match bytes.is_empty() {
                    true => Ok(None),
                    false => Ok(Some((false, bytes))),
                }
            }
            _ => Ok(Some((false, self.read_full_buf()))),
        }
    }

    pub fn read_full_buf(&mut self) -> Bytes {
        self.buf.split_to(self.buf.len()).freeze()
    }
}

/// What the bytes after a `CRLF--boundary` make of it, `eof` telling
/// whether more may come.
///
/// PATCH (hashd), see `read_field_data`.
enum AfterBoundary {
    /// Transport padding then CRLF, or `--`, padding, then CRLF or the end
    /// of the body: a delimiter line (RFC 2046 section 5.1.1).
    Delimiter,
    /// Anything else: the field's data goes on.
    Data,
    /// `rest` ends before that is known, and more may come.
    NeedMore,
    /// More transport padding than `constants::MAX_TRANSPORT_PADDING`.
    PaddingTooLong,
}

fn after_boundary(rest: &[u8], eof: bool) -> AfterBoundary {
    let (close, rest) = match rest {
        [] | [b'-'] if !eof => return AfterBoundary::NeedMore,
        [b'-', b'-', rest @ ..] => (true, rest),
        [b'-', ..] => return AfterBoundary::Data,
        _ => (false, rest),
    };
    let padding = rest.iter().take_while(|b| **b == b' ' || **b == b'\t').count();
    if padding > constants::MAX_TRANSPORT_PADDING {
        return AfterBoundary::PaddingTooLong;
    }
    match &rest[padding..] {
        // A close delimiter may end the body (RFC 2046's epilogue is
        // optional, and so is the CRLF before it); anything else needs its
        // CRLF.
        [] if eof && close => AfterBoundary::Delimiter,
        [] | [b'\r'] if !eof => AfterBoundary::NeedMore,
        [b'\r', b'\n', ..] => AfterBoundary::Delimiter,
        // `--boundary--text` or `--boundarytext`: a line of the field's data.
        _ => AfterBoundary::Data,
    }
}

impl fmt::Debug for StreamBuffer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamBuffer").finish()
    }
}
