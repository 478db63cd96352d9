//! AVX2 lane kernel: 8 lanes per YMM register, up to three register groups
//! interleaved (a fourth would not fit the 16 YMM registers); which group
//! count runs when is [`crate::md5::Tuning`]'s choice.
//!
//! AVX2 has neither a three-input logic instruction nor a rotate, so a step
//! costs more instructions than on AVX-512 (rotate = two shifts and an OR);
//! the round functions use the same short-chain forms as the single-stream
//! path (`((c ^ d) & b) ^ d`, G as two separate additions, `(c ^ d) ^ b`).

use core::arch::x86_64::*;

use super::{align_frame, gather_lanes, load_transposed_x8, md5_steps, scatter_states};
use crate::md5::consts::{BLOCK_WORDS, K};
use crate::md5::{Lane, BLOCK_LEN};

/// Lanes in one YMM register.
const GROUP_LANES: usize = 8;

/// The kernel for `G` interleaved groups; lanes past `lanes.len()` compute on
/// a copy of lane 0's data and are discarded.
#[target_feature(enable = "avx2")]
pub(crate) fn compress_groups<const G: usize>(lanes: &mut [Lane<'_>], blocks: usize) {
    align_frame!();
    let (data, mut words) = gather_lanes::<GROUP_LANES, G>(lanes, blocks);
    let zero = _mm256_setzero_si256();
    let ones = _mm256_set1_epi32(-1);
    let (mut a, mut b, mut c, mut d) = ([zero; G], [zero; G], [zero; G], [zero; G]);
    for g in 0..G {
        [a[g], b[g], c[g], d[g]] = words[g].map(|w| load_u32x8(&w));
    }

    let mut w = [[zero; BLOCK_WORDS]; G];
    for block in 0..blocks {
        let offset = block * BLOCK_LEN;
        for g in 0..G {
            // The loads' safety rests on `gather_lanes`' check: every
            // lane's data holds `blocks` blocks.
            w[g] = load_transposed_x8!(&data[g], offset);
        }
        let (a0, b0, c0, d0) = (a, b, c, d);

        // `a + w + k`, computed before the round function is known, in that
        // order (see `opaque`).
        macro_rules! add_word {
            ($a:ident, $g:ident, $word:expr, $i:expr) => {
                _mm256_add_epi32(
                    opaque(_mm256_add_epi32($a[$g], w[$g][$word])),
                    _mm256_set1_epi32(K[$i] as i32),
                )
            };
        }
        macro_rules! rotate_add {
            ($a:ident, $b:ident, $g:ident, $t:expr, $s:expr) => {
                let t = $t;
                let rotated = _mm256_or_si256(
                    _mm256_slli_epi32::<$s>(t),
                    _mm256_srli_epi32::<{ 32 - $s }>(t),
                );
                $a[$g] = _mm256_add_epi32(rotated, $b[$g]);
            };
        }
        macro_rules! step_f {
            ($a:ident, $b:ident, $c:ident, $d:ident, $word:expr, $i:expr, $s:expr) => {
                for g in 0..G {
                    let t = add_word!($a, g, $word, $i);
                    let cd = _mm256_xor_si256($c[g], $d[g]);
                    let f = _mm256_xor_si256(_mm256_and_si256(cd, $b[g]), $d[g]);
                    rotate_add!($a, $b, g, _mm256_add_epi32(t, f), $s);
                }
            };
        }
        macro_rules! step_g {
            ($a:ident, $b:ident, $c:ident, $d:ident, $word:expr, $i:expr, $s:expr) => {
                for g in 0..G {
                    let t = add_word!($a, g, $word, $i);
                    let t = _mm256_add_epi32(t, _mm256_andnot_si256($d[g], $c[g]));
                    let t = _mm256_add_epi32(t, _mm256_and_si256($d[g], $b[g]));
                    rotate_add!($a, $b, g, t, $s);
                }
            };
        }
        macro_rules! step_h {
            ($a:ident, $b:ident, $c:ident, $d:ident, $word:expr, $i:expr, $s:expr) => {
                for g in 0..G {
                    let t = add_word!($a, g, $word, $i);
                    let h = _mm256_xor_si256(_mm256_xor_si256($c[g], $d[g]), $b[g]);
                    rotate_add!($a, $b, g, _mm256_add_epi32(t, h), $s);
                }
            };
        }
        macro_rules! step_i {
            ($a:ident, $b:ident, $c:ident, $d:ident, $word:expr, $i:expr, $s:expr) => {
                for g in 0..G {
                    let t = add_word!($a, g, $word, $i);
                    let not_d = _mm256_xor_si256($d[g], ones);
                    let i = _mm256_xor_si256($c[g], _mm256_or_si256($b[g], not_d));
                    rotate_add!($a, $b, g, _mm256_add_epi32(t, i), $s);
                }
            };
        }
        md5_steps!([], step_f, step_g, step_h, step_i, a, b, c, d);

        for g in 0..G {
            a[g] = _mm256_add_epi32(a[g], a0[g]);
            b[g] = _mm256_add_epi32(b[g], b0[g]);
            c[g] = _mm256_add_epi32(c[g], c0[g]);
            d[g] = _mm256_add_epi32(d[g], d0[g]);
        }
    }

    for g in 0..G {
        for (r, v) in [a[g], b[g], c[g], d[g]].into_iter().enumerate() {
            words[g][r] = store_u32x8(v);
        }
    }
    scatter_states(lanes, &words);
}

/// Returns `x` unchanged, but hides it from the optimiser, so that `a + w`
/// is added before the constant rather than reassociated (LLVM otherwise
/// computes `a + (w + k)`). The vector twin of `single::opaque`. The
/// instruction counts barely change (within 1% of spills and reloads); the
/// schedule LLVM makes around the fixed order is what is faster. Measured on
/// Zen 3 (EPYC family 25 model 1), `md5_side_by_side`, ratios to md5-many
/// over three runs, without and with it: 24 streams 0.96-0.98 and 0.96-0.99,
/// 48 streams 0.96-0.98 and 0.98-0.99, 64 streams 0.97-0.98 and 0.98-0.99;
/// 8 streams 0.2% faster, 16 streams 0.3 to 0.6% slower.
#[target_feature(enable = "avx2")]
#[inline]
fn opaque(mut x: __m256i) -> __m256i {
    // SAFETY: the template is a comment: no instruction runs, and no memory,
    // stack or flags are touched; `x` comes back in the register it went in.
    unsafe {
        core::arch::asm!("/* {0} */", inout(ymm_reg) x, options(pure, nomem, nostack, preserves_flags));
    }
    x
}

#[target_feature(enable = "avx2")]
fn load_u32x8(words: &[u32; GROUP_LANES]) -> __m256i {
    // SAFETY: `words` is 32 readable bytes; the load has no alignment requirement.
    unsafe { _mm256_loadu_si256(words.as_ptr().cast()) }
}

#[target_feature(enable = "avx2")]
fn store_u32x8(v: __m256i) -> [u32; GROUP_LANES] {
    let mut words = [0u32; GROUP_LANES];
    // SAFETY: `words` is 32 writable bytes; the store has no alignment requirement.
    unsafe { _mm256_storeu_si256(words.as_mut_ptr().cast(), v) };
    words
}
