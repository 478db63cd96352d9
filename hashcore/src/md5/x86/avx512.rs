//! AVX-512 lane kernels: 16 lanes per ZMM register, or 8 per YMM register
//! (AVX-512VL) when few lanes are busy, with register groups interleaved.
//!
//! Each MD5 step is six instructions per group: `VPTERNLOGD` computes any of
//! the four round functions in one instruction and `VPROLD` rotates, so the
//! dependency chain per step is four single-cycle instructions. One group is
//! bound by that chain; two groups fill Zen 4's vector pipes. Zen 4 splits a
//! ZMM instruction into two 256-bit halves, so with 16 or fewer busy lanes two
//! or three YMM groups do the same work as one ZMM group with the chain
//! latency hidden. Which kernel and group count run when is
//! [`crate::md5::Tuning`]'s choice.

use core::arch::x86_64::*;

use super::{load_transposed_x16, load_transposed_x8, md5_steps, PREFETCH_BLOCKS};
use crate::md5::consts::{BLOCK_WORDS, K};
use crate::md5::{Lane, BLOCK_LEN};

/// Lanes in one ZMM register.
const ZMM_LANES: usize = 16;

/// Lanes in one YMM register.
const YMM_LANES: usize = 8;

/// One MD5 step on every group: `a = b + ((a + w + k + fun(b, c, d)) <<< s)`,
/// with `fun` given as a `VPTERNLOGD` truth table.
macro_rules! step {
    (
        $fun:expr, $set1:ident, $add:ident, $ternlog:ident, $rol:ident, $w:ident,
        $a:ident, $b:ident, $c:ident, $d:ident, $word:expr, $i:expr, $s:expr
    ) => {
        for g in 0..G {
            let k = $set1(K[$i] as i32);
            let t = $add($a[g], $add($w[g][$word], k));
            let f = $ternlog::<{ $fun }>($b[g], $c[g], $d[g]);
            let t = $rol::<$s>($add(t, f));
            $a[g] = $add(t, $b[g]);
        }
    };
}

// Truth tables over (b, c, d) = (0xf0, 0xcc, 0xaa).
macro_rules! step_f {
    ($($t:tt)*) => { step!(0xca, $($t)*) }; // (b & c) | (!b & d)
}
macro_rules! step_g {
    ($($t:tt)*) => { step!(0xe4, $($t)*) }; // (b & d) | (c & !d)
}
macro_rules! step_h {
    ($($t:tt)*) => { step!(0x96, $($t)*) }; // b ^ c ^ d
}
macro_rules! step_i {
    ($($t:tt)*) => { step!(0x39, $($t)*) }; // c ^ (b | !d)
}

/// Defines a kernel for `G` interleaved groups of one vector width; lanes
/// past `lanes.len()` compute on a copy of lane 0's data and are discarded.
macro_rules! kernel {
    (
        $name:ident, $vec:ty, $width:expr, $setzero:ident, $set1:ident, $add:ident,
        $ternlog:ident, $rol:ident, $loadu:ident, $storeu:ident, $transpose:ident
    ) => {
        #[target_feature(enable = "avx2,avx512f,avx512vl")]
        pub(crate) fn $name<const G: usize>(lanes: &mut [Lane<'_>], blocks: usize) {
            assert!(lanes
                .iter()
                .all(|lane| lane.data.len() >= blocks * BLOCK_LEN));
            // Pointers rather than slices: the check above covers every
            // block, where slicing would check each lane again every block.
            let mut data: [[*const u8; $width]; G] = [[lanes[0].data.as_ptr(); $width]; G];
            let mut words = [[[0u32; $width]; 4]; G];
            for (i, lane) in lanes.iter().enumerate() {
                let (g, l) = (i / $width, i % $width);
                data[g][l] = lane.data.as_ptr();
                for (r, word) in lane.state.iter().enumerate() {
                    words[g][r][l] = *word;
                }
            }
            let zero = $setzero();
            let mut regs = [[zero; 4]; G];
            for g in 0..G {
                for r in 0..4 {
                    // SAFETY: `words[g][r]` is a whole register's worth of
                    // readable bytes; the load has no alignment requirement.
                    regs[g][r] = unsafe { $loadu(words[g][r].as_ptr().cast()) };
                }
            }
            let mut a: [$vec; G] = core::array::from_fn(|g| regs[g][0]);
            let mut b: [$vec; G] = core::array::from_fn(|g| regs[g][1]);
            let mut c: [$vec; G] = core::array::from_fn(|g| regs[g][2]);
            let mut d: [$vec; G] = core::array::from_fn(|g| regs[g][3]);

            let mut w = [[zero; BLOCK_WORDS]; G];
            for block in 0..blocks {
                let offset = block * BLOCK_LEN;
                for g in 0..G {
                    // The loads' safety rests on the assertion above.
                    w[g] = $transpose!(&data[g], offset);
                }
                for lane_data in data.iter().flatten() {
                    let ahead = lane_data.wrapping_add(offset + PREFETCH_BLOCKS * BLOCK_LEN);
                    // A prefetch is a hint: it never faults, even past the data's end.
                    _mm_prefetch::<_MM_HINT_T0>(ahead.cast());
                }
                let (a0, b0, c0, d0) = (a, b, c, d);

                md5_steps!(
                    [$set1, $add, $ternlog, $rol, w,],
                    step_f,
                    step_g,
                    step_h,
                    step_i,
                    a,
                    b,
                    c,
                    d
                );

                for g in 0..G {
                    a[g] = $add(a[g], a0[g]);
                    b[g] = $add(b[g], b0[g]);
                    c[g] = $add(c[g], c0[g]);
                    d[g] = $add(d[g], d0[g]);
                }
            }

            for g in 0..G {
                for (r, v) in [a[g], b[g], c[g], d[g]].into_iter().enumerate() {
                    // SAFETY: `words[g][r]` is a whole register's worth of
                    // writable bytes; the store has no alignment requirement.
                    unsafe { $storeu(words[g][r].as_mut_ptr().cast(), v) };
                }
            }
            for (i, lane) in lanes.iter_mut().enumerate() {
                let (g, l) = (i / $width, i % $width);
                for (r, word) in lane.state.iter_mut().enumerate() {
                    *word = words[g][r][l];
                }
            }
        }
    };
}

kernel!(
    compress_zmm,
    __m512i,
    ZMM_LANES,
    _mm512_setzero_si512,
    _mm512_set1_epi32,
    _mm512_add_epi32,
    _mm512_ternarylogic_epi32,
    _mm512_rol_epi32,
    _mm512_loadu_si512,
    _mm512_storeu_si512,
    load_transposed_x16
);

kernel!(
    compress_ymm,
    __m256i,
    YMM_LANES,
    _mm256_setzero_si256,
    _mm256_set1_epi32,
    _mm256_add_epi32,
    _mm256_ternarylogic_epi32,
    _mm256_rol_epi32,
    _mm256_loadu_si256,
    _mm256_storeu_si256,
    load_transposed_x8
);
