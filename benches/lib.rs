//! Criterion benches live in benches/*.rs and examples in examples/*.rs;
//! this crate holds what they share.

const PAGE_LEN: usize = 4096;

/// `count` streams of `len` bytes in one allocation. Page-aligned: every
/// stream starts on a page boundary, so all lanes hit the same L1 sets.
/// Staggered: stream `i` is shifted by `i * 9` cache lines within its page.
pub struct Streams {
    buf: Vec<u8>,
    starts: Vec<usize>,
    len: usize,
}

impl Streams {
    /// `count` streams of `len` bytes of pseudo-random data; `staggered`
    /// shifts stream `i` by `i * 9` cache lines within its page.
    pub fn new(count: usize, len: usize, staggered: bool) -> Streams {
        let stride = len.next_multiple_of(PAGE_LEN) + PAGE_LEN;
        let mut buf = vec![0u8; count * stride + 2 * PAGE_LEN];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for b in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let base = buf.as_ptr().align_offset(PAGE_LEN);
        let starts = (0..count)
            .map(|i| {
                let shift = if staggered {
                    (i * 9 * 64) % PAGE_LEN
                } else {
                    0
                };
                base + i * stride + shift
            })
            .collect();
        Streams { buf, starts, len }
    }

    /// The streams, in order.
    pub fn slices(&self) -> Vec<&[u8]> {
        self.starts
            .iter()
            .map(|&s| &self.buf[s..s + self.len])
            .collect()
    }
}
