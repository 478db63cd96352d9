//! Multi-lane MD5 against the md-5 crate: the input decides the backend, how
//! many streams, how long each is, and how each is cut into the chunks that
//! successive `update_many` calls see (empty chunks, partial blocks and very
//! unequal streams included). Every stream's digest must equal md-5's, and
//! so must the single-stream `Md5::update` path fed the same chunks.
#![no_main]

use hashcore::md5::{update_many, Md5, Platform};
use libfuzzer_sys::fuzz_target;
use md5::Digest;

/// Bounds that keep one run fast: 64 streams exceed every backend's lanes
/// (48 at most), and 20 KiB per stream spans hundreds of blocks.
const MAX_STREAMS: usize = 64;
const MAX_STREAM_LEN: usize = 20 * 1024;
const MAX_CALLS: usize = 8;

/// Reads the input front to back; past its end, yields zeros.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> usize {
        usize::from(self.byte()) | usize::from(self.byte()) << 8
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let available: Vec<Platform> = Platform::ALL
        .into_iter()
        .filter(|p| p.is_available())
        .collect();
    let platform = available[usize::from(input.byte()) % available.len()];
    let streams = 1 + usize::from(input.byte()) % MAX_STREAMS;
    let calls = 1 + usize::from(input.byte()) % MAX_CALLS;
    let seed = u64::from(input.byte()) | 1;

    // Stream contents: lengths from the input, bytes from a generator (the
    // bytes matter less than the lengths, and this keeps inputs short).
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let messages: Vec<Vec<u8>> = (0..streams)
        .map(|_| {
            let len = input.u16() % (MAX_STREAM_LEN + 1);
            (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        })
        .collect();

    // Cut points: call c gives each stream its next chunk; the last call
    // takes whatever is left.
    let mut lanes: Vec<Md5> = vec![Md5::new(); streams];
    let mut single: Vec<Md5> = vec![Md5::new(); streams];
    let mut pos = vec![0usize; streams];
    for call in 0..calls {
        let mut items: Vec<(&mut Md5, &[u8])> = Vec::with_capacity(streams);
        for ((state, msg), p) in lanes.iter_mut().zip(&messages).zip(pos.iter_mut()) {
            let left = msg.len() - *p;
            let take = if call + 1 == calls {
                left
            } else {
                input.u16().min(left)
            };
            items.push((state, &msg[*p..*p + take]));
            *p += take;
        }
        let chunks: Vec<&[u8]> = items.iter().map(|(_, d)| *d).collect();
        for (s, chunk) in single.iter_mut().zip(&chunks) {
            s.update(chunk);
        }
        update_many(platform, &mut items);
    }

    for (i, ((lane, one), msg)) in lanes.into_iter().zip(single).zip(&messages).enumerate() {
        assert_eq!(lane.len(), msg.len() as u64);
        let want: [u8; 16] = md5::Md5::digest(msg).into();
        assert_eq!(
            lane.finalize(),
            want,
            "stream {i} of {streams} on {platform}"
        );
        assert_eq!(one.finalize(), want, "single-stream path, stream {i}");
    }
});
