//! Portable multi-lane MD5: the in-crate reference every SIMD kernel is tested
//! against, and the lane kernel on CPUs without AVX2.
//!
//! Written straight from RFC 1321 (table-driven, one step at a time) so that it
//! is easy to check by eye; it is itself tested against the md-5 crate. Each
//! step works on [`GROUP_LANES`] lanes at once over plain arrays, which the
//! compiler turns into SSE2 on any x86-64.

use super::consts::{BLOCK_WORDS, K, SHIFT, WORD};
use super::{assert_lanes_hold, Lane, BLOCK_LEN};

/// Lanes hashed side by side in one pass over the steps.
pub(crate) const GROUP_LANES: usize = 8;

/// Hashes the first `blocks` blocks of every lane's data into that lane's state.
///
/// # Panics
/// If a lane holds fewer than `blocks` blocks.
pub(crate) fn compress(lanes: &mut [Lane<'_>], blocks: usize) {
    assert_lanes_hold(lanes, blocks);
    for group in lanes.chunks_mut(GROUP_LANES) {
        compress_group(group, blocks);
    }
}

fn compress_group(lanes: &mut [Lane<'_>], blocks: usize) {
    let n = lanes.len();
    let mut state = [[0u32; GROUP_LANES]; 4];
    for (l, lane) in lanes.iter().enumerate() {
        for (r, reg) in state.iter_mut().enumerate() {
            reg[l] = lane.state[r];
        }
    }
    for block in 0..blocks {
        let mut m = [[0u32; GROUP_LANES]; BLOCK_WORDS];
        for (l, lane) in lanes.iter().enumerate() {
            let bytes = &lane.data[block * BLOCK_LEN..(block + 1) * BLOCK_LEN];
            for (w, word) in bytes.chunks_exact(4).enumerate() {
                m[w][l] = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
            }
        }
        let [mut a, mut b, mut c, mut d] = state;
        for i in 0..64 {
            let mut f = [0u32; GROUP_LANES];
            for l in 0..GROUP_LANES {
                f[l] = match i / 16 {
                    0 => (b[l] & c[l]) | (!b[l] & d[l]),
                    1 => (b[l] & d[l]) | (c[l] & !d[l]),
                    2 => b[l] ^ c[l] ^ d[l],
                    _ => c[l] ^ (b[l] | !d[l]),
                };
            }
            let mut next_b = [0u32; GROUP_LANES];
            for l in 0..GROUP_LANES {
                let sum = a[l]
                    .wrapping_add(f[l])
                    .wrapping_add(K[i])
                    .wrapping_add(m[WORD[i]][l]);
                next_b[l] = b[l].wrapping_add(sum.rotate_left(SHIFT[i]));
            }
            (a, b, c, d) = (d, next_b, b, c);
        }
        for (reg, new) in state.iter_mut().zip([a, b, c, d]) {
            for l in 0..GROUP_LANES {
                reg[l] = reg[l].wrapping_add(new[l]);
            }
        }
    }
    for (l, lane) in lanes.iter_mut().enumerate().take(n) {
        for (r, reg) in state.iter().enumerate() {
            lane.state[r] = reg[l];
        }
    }
}
