//! x86-64 lane kernels: one file per instruction set (`avx2::compress_groups`,
//! `avx512::compress_ymm` and `compress_zmm`, each for 1 to 3 register
//! groups; which runs when is `Shape::compress`'s dispatch), and the
//! AVX-512VL single stream (`single512`).
//!
//! The lane kernels follow one plan: load each lane's block, transpose so that
//! one register holds the same message word of every lane, then run MD5's 64
//! steps on registers whose element `l` belongs to lane `l`. Several such
//! groups of lanes are interleaved step by step (`G` in the kernels), so that
//! while one group waits on its chain of dependent instructions another group's
//! instructions fill the execution ports.

use super::{assert_lanes_hold, Lane};

pub(crate) mod avx2;
pub(crate) mod avx512;
pub(crate) mod single512;

/// Blocks ahead of the current one that the AVX-512 kernels prefetch in
/// every lane.
///
/// Streams whose buffers are page-aligned to each other map every lane's
/// current block to the same L1 sets. Measured on Zen 4, AVX-512, 32 streams
/// of 16 KiB: staggered buffers 11.8 GB/s; page-aligned ones 9.8 GB/s without
/// prefetching, 10.2 GB/s prefetching 1 or 4 blocks ahead, 9.8 GB/s 8 ahead.
/// Prefetching recovers only part of the loss, so whoever allocates the
/// streams' buffers should stagger their starts: large allocations from malloc
/// are mmap-backed and all share one page offset.
///
/// The AVX2 kernel does not prefetch: on Zen 3 (EPYC family 25 model 1),
/// staggered 64 KiB streams, prefetching 4 blocks ahead cost 1.5 to 3% at
/// 25 to 64 streams and up to 5% at 16 and 24 (interleaved runs, medians).
/// Measured again with the `asm!` steps, 8 to 48 streams: 2 or 4 blocks
/// ahead within noise, 8 ahead 2 to 3% slower at 24 and 48; transposing the
/// next block while the current one is hashed (two word buffers), 1 to 2%
/// slower.
pub(crate) const PREFETCH_BLOCKS: usize = 4;

/// Makes the kernel it expands in align its stack frame to 64 bytes, so
/// that every vector register the kernel spills lies within one cache line.
///
/// The AVX-512 lane kernels spill: their state, message words and constants
/// need more registers than there are. LLVM gives a frame with 32- or 64-byte
/// spill slots only the ABI's 16-byte alignment unless an object in the frame
/// asks for more, so where the slots fall depends on the caller's stack: in
/// half of all processes every other 32-byte slot (and three in four 64-byte
/// ones) straddles two cache lines, and now and then one straddles a page. An
/// aligned object that the optimiser must keep makes LLVM realign the frame.
/// (The AVX2 kernel, which spills little, gets the same alignment from its
/// 64-byte word buffer.)
///
/// Measured on Zen 3 (EPYC family 25 model 1), the AVX2 8x2 kernel of the
/// time (intrinsics, which spilled), 16 staggered 64 KiB streams, the stack
/// moved in 32-byte steps over 2 KiB (`setarch -R`, a padded environment):
/// 5.3 to 6.8 GB/s before, 6.6 to 6.8 after. md5-many 0.1.0-alpha.4's
/// kernels do not realign and show the same spread.
macro_rules! align_frame {
    () => {
        #[repr(align(64))]
        struct Aligned([u8; 64]);
        let mut aligned = Aligned([0; 64]);
        core::hint::black_box(&mut aligned.0);
    };
}
pub(crate) use align_frame;

/// The lanes as a kernel of `G` groups of `W` lanes reads them: each lane's
/// data pointer and chaining value, lane `i` at group `i / W`, element
/// `i % W`. Slots past the last lane point at lane 0's data (their results
/// are discarded) and start from zero.
///
/// Checks first that every lane holds `blocks` blocks
/// ([`assert_lanes_hold`]): the kernels then load each lane's blocks through
/// its pointer, where slicing would check every lane again every block.
///
/// # Panics
/// If a lane is short, or there are more than `W * G` lanes or none.
// Inline, as the code it replaced was: called out of line, the 1-group AVX2
// kernel's loop landed elsewhere and ran 1.3% slower on Zen 3 (same loop).
#[inline]
pub(crate) fn gather_lanes<const W: usize, const G: usize>(
    lanes: &[Lane<'_>],
    blocks: usize,
) -> ([[*const u8; W]; G], [[[u32; W]; 4]; G]) {
    assert_lanes_hold(lanes, blocks);
    let mut data = [[lanes[0].data.as_ptr(); W]; G];
    let mut words = [[[0u32; W]; 4]; G];
    for (i, lane) in lanes.iter().enumerate() {
        let (g, l) = (i / W, i % W);
        data[g][l] = lane.data.as_ptr();
        for (r, word) in lane.state.iter().enumerate() {
            words[g][r][l] = *word;
        }
    }
    (data, words)
}

/// Writes the chaining values a kernel ends with (laid out as
/// [`gather_lanes`] gives them) back into the lanes.
#[inline]
pub(crate) fn scatter_states<const W: usize, const G: usize>(
    lanes: &mut [Lane<'_>],
    words: &[[[u32; W]; 4]; G],
) {
    for (i, lane) in lanes.iter_mut().enumerate() {
        let (g, l) = (i / W, i % W);
        for (r, word) in lane.state.iter_mut().enumerate() {
            *word = words[g][r][l];
        }
    }
}

// The transposes are macros rather than functions: `#[inline(always)]` is not
// allowed with `#[target_feature]`, and an outlined call returns the words
// through memory.

/// Loads block `offset..offset + 64` of each of 16 lanes (pointers) and
/// transposes it: element `l` of result `j` is message word `j` of lane `l`.
/// Every `$data[l]` must point to `$offset + 64` readable bytes.
/// Needs AVX-512F.
macro_rules! load_transposed_x16 {
    ($data:expr, $offset:expr) => {{
        let rows: [__m512i; 16] = core::array::from_fn(|l| {
            // SAFETY: the caller's: 64 bytes from `$data[l] + $offset` are readable.
            // The load has no alignment requirement.
            unsafe { _mm512_loadu_si512($data[l].add($offset).cast()) }
        });
        // Within each 128-bit quarter q: interleave pairs of rows, then quads, so
        // that quarter q of `quads[4k + j]` is word 4q + j of rows 4k..4k + 4.
        let pairs: [__m512i; 16] = core::array::from_fn(|i| {
            let (r0, r1) = (rows[i & !1], rows[i | 1]);
            if i % 2 == 0 {
                _mm512_unpacklo_epi32(r0, r1)
            } else {
                _mm512_unpackhi_epi32(r0, r1)
            }
        });
        let quads: [__m512i; 16] = core::array::from_fn(|i| {
            let (k, j) = (i / 4, i % 4);
            let (p0, p1) = (pairs[4 * k + j / 2], pairs[4 * k + 2 + j / 2]);
            if j % 2 == 0 {
                _mm512_unpacklo_epi64(p0, p1)
            } else {
                _mm512_unpackhi_epi64(p0, p1)
            }
        });
        // Transpose the 4x4 grid of 128-bit quarters for each j.
        let mut out = [_mm512_setzero_si512(); BLOCK_WORDS];
        for j in 0..4 {
            let (x0, x1, x2, x3) = (quads[j], quads[4 + j], quads[8 + j], quads[12 + j]);
            let lo01 = _mm512_shuffle_i32x4::<0x44>(x0, x1);
            let hi01 = _mm512_shuffle_i32x4::<0xee>(x0, x1);
            let lo23 = _mm512_shuffle_i32x4::<0x44>(x2, x3);
            let hi23 = _mm512_shuffle_i32x4::<0xee>(x2, x3);
            out[j] = _mm512_shuffle_i32x4::<0x88>(lo01, lo23);
            out[4 + j] = _mm512_shuffle_i32x4::<0xdd>(lo01, lo23);
            out[8 + j] = _mm512_shuffle_i32x4::<0x88>(hi01, hi23);
            out[12 + j] = _mm512_shuffle_i32x4::<0xdd>(hi01, hi23);
        }
        out
    }};
}
pub(crate) use load_transposed_x16;

/// Loads block `offset..offset + 64` of each of 8 lanes (pointers) and
/// transposes it: element `l` of result `j` is message word `j` of lane `l`.
/// Every `$data[l]` must point to `$offset + 64` readable bytes.
/// Needs AVX2.
macro_rules! load_transposed_x8 {
    ($data:expr, $offset:expr) => {{
        let mut out = [_mm256_setzero_si256(); BLOCK_WORDS];
        for half in 0..2 {
            let rows: [__m256i; 8] = core::array::from_fn(|l| {
                // SAFETY: the caller's: 64 bytes from `$data[l] + $offset` are readable.
                // The load has no alignment requirement.
                unsafe { _mm256_loadu_si256($data[l].add($offset + half * 32).cast()) }
            });
            // Within each 128-bit half q: quarter q of `quads[4k + j]` is word
            // 4q + j of rows 4k..4k + 4, as in `load_transposed_x16`.
            let pairs: [__m256i; 8] = core::array::from_fn(|i| {
                let (r0, r1) = (rows[i & !1], rows[i | 1]);
                if i % 2 == 0 {
                    _mm256_unpacklo_epi32(r0, r1)
                } else {
                    _mm256_unpackhi_epi32(r0, r1)
                }
            });
            let quads: [__m256i; 8] = core::array::from_fn(|i| {
                let (k, j) = (i / 4, i % 4);
                let (p0, p1) = (pairs[4 * k + j / 2], pairs[4 * k + 2 + j / 2]);
                if j % 2 == 0 {
                    _mm256_unpacklo_epi64(p0, p1)
                } else {
                    _mm256_unpackhi_epi64(p0, p1)
                }
            });
            for j in 0..4 {
                out[8 * half + j] = _mm256_permute2x128_si256::<0x20>(quads[j], quads[4 + j]);
                out[8 * half + 4 + j] = _mm256_permute2x128_si256::<0x31>(quads[j], quads[4 + j]);
            }
        }
        out
    }};
}
pub(crate) use load_transposed_x8;
