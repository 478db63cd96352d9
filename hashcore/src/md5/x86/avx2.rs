//! AVX2 lane kernel: 8 lanes per YMM register, up to three register groups
//! interleaved (a fourth would not fit the 16 YMM registers); which group
//! count runs when is [`crate::md5::Tuning`]'s choice.
//!
//! Each step is written out in `asm!`, one block per group, because the
//! instruction order is what makes this kernel fast and LLVM does not keep
//! it: it turns the rotate-and-add below back into an OR of shifts, and with
//! three groups it copies message words from one stack slot to another and
//! reloads them (238 vector moves in the 3-group loop, against 47 here).
//! Measured on Zen 3 (EPYC family 25 model 1, 3.2 GHz), 64 KiB staggered
//! streams, `md5_side_by_side` with the intrinsics kernel this replaced as a
//! third contender, three runs, GB/s, that kernel and this one: 8 streams
//! 3.85-3.86 and 4.27-4.28, 16 streams 6.60-6.68 and 7.10-7.16, 24 streams
//! 7.12-7.24 and 7.56-7.81, 32 streams 6.85-6.95 and 7.33-7.42, 48 streams
//! 7.30-7.32 and 7.72-7.80, 64 streams 7.12-7.18 and 7.58-7.62.
//!
//! A step is `a = b + rotl(a + w + k + f(b, c, d), s)`:
//! - `a + w + k` is added first, off the chain that waits for the newest
//!   `b`; the word and the constant are memory operands (the transposed
//!   block in [`Words`], the constants in [`STEP_CONSTANTS`]), so that the
//!   state of three groups (12 registers) and one scratch register per group
//!   stay in registers.
//! - F is `((c ^ d) & b) ^ d`, G is `(!d & c) + (d & b)` added in two
//!   halves, H is `(c ^ d) ^ b`: two, one and one operations wait for `b`.
//! - I is `c ^ (b | !d)`, which is `!(c ^ (!b & d))`; so `a + I` is
//!   `a - (c ^ (!b & d)) - 1`, and the `- 1` is folded into the step's
//!   constant: three operations instead of four, as many waiting for `b`.
//!   Measured as above against the four-operation form, three runs: 24 to 64
//!   streams 1 to 4% faster, 8 and 16 streams within 1%.
//! - The rotate is `(x << s) + (x >> (32 - s))` (the halves share no bits)
//!   and `b` is added to the left shift before the right shift joins:
//!   `((x << s) + b) + (x >> (32 - s))`. On Zen 3 the two shifts of one
//!   value do not start in the same cycle, the first in program order going
//!   first; adding `b` to it meanwhile takes a cycle off every step's chain.
//!   A dependent chain of F steps alone (8 instructions, looped) took 6.86
//!   cycles a step with `(x << s | x >> (32 - s)) + b` and 6.18 with this
//!   order. In the kernel, same run: 8 streams (one latency-bound chain)
//!   3.87 to 4.29 GB/s, 16 streams 6.92 to 7.10, 24 to 64 streams (bound by
//!   throughput) within 0.5%. The two forms have the same operations and
//!   depth, so nothing is lost where both shifts do start together.
//! - A rotate by 16 is one byte shuffle.

use core::arch::asm;
use core::arch::x86_64::*;

use super::{gather_lanes, load_transposed_x8, scatter_states};
use crate::md5::consts::{md5_steps, BLOCK_WORDS, K};
use crate::md5::{Lane, BLOCK_LEN};

/// Lanes in one YMM register.
const GROUP_LANES: usize = 8;

/// Row of [`STEP_CONSTANTS`] holding the byte shuffle that rotates every
/// 32-bit element by 16.
const ROTATE_16: usize = 64;

/// What the steps read as 32-byte memory operands: row `i < 64` is step
/// `i`'s constant in every lane (`K[i]`, and `K[i] - 1` for the I steps, see
/// the module doc); row [`ROTATE_16`] is the shuffle that swaps each element's
/// 16-bit halves.
#[repr(C, align(32))]
struct StepConstants([[u32; GROUP_LANES]; 65]);

static STEP_CONSTANTS: StepConstants = {
    let mut rows = [[0u32; GROUP_LANES]; 65];
    let mut i = 0;
    while i < 64 {
        let k = if i < 48 { K[i] } else { K[i].wrapping_sub(1) };
        rows[i] = [k; GROUP_LANES];
        i += 1;
    }
    // Within each element (bytes 4e..4e + 4): bytes 2, 3, 0, 1.
    let halves_swapped = [0x0100_0302, 0x0504_0706, 0x0908_0b0a, 0x0d0c_0f0e];
    let mut l = 0;
    while l < GROUP_LANES {
        rows[ROTATE_16][l] = halves_swapped[l % 4];
        l += 1;
    }
    StepConstants(rows)
};

/// One block's message words for `G` groups, transposed: `0[g][j]` holds
/// word `j` of every lane of group `g`. Its 64-byte alignment also makes
/// LLVM align the kernel's frame, so no vector the kernel spills straddles a
/// cache line (see `super::align_frame`).
#[repr(C, align(64))]
struct Words<const G: usize>([[__m256i; BLOCK_WORDS]; G]);

/// The kernel for `G` interleaved groups; lanes past `lanes.len()` compute on
/// a copy of lane 0's data and are discarded.
#[target_feature(enable = "avx2")]
pub(crate) fn compress_groups<const G: usize>(lanes: &mut [Lane<'_>], blocks: usize) {
    let (data, mut words) = gather_lanes::<GROUP_LANES, G>(lanes, blocks);
    let zero = _mm256_setzero_si256();
    let (mut a, mut b, mut c, mut d) = ([zero; G], [zero; G], [zero; G], [zero; G]);
    for g in 0..G {
        [a[g], b[g], c[g], d[g]] = words[g].map(|w| load_u32x8(&w));
    }
    let mut w = Words([[zero; BLOCK_WORDS]; G]);
    let k = STEP_CONSTANTS.0.as_ptr();

    for block in 0..blocks {
        let offset = block * BLOCK_LEN;
        for (group_words, group_data) in w.0.iter_mut().zip(&data) {
            // The loads' safety rests on `gather_lanes`' check: every
            // lane's data holds `blocks` blocks.
            *group_words = load_transposed_x8!(group_data, offset);
        }
        let words_of: [*const __m256i; G] = core::array::from_fn(|g| w.0[g].as_ptr());
        let (a0, b0, c0, d0) = (a, b, c, d);

        // One step of every group: `$f` adds the round function of {b},
        // {c}, {d} into {a}, with {t} as scratch; `$rotate` rotates {a} and
        // adds {b}, with the operands it names in `$operands`.
        macro_rules! step_asm {
            ($f:literal, $rotate:literal, $a:ident, $b:ident, $c:ident, $d:ident,
             $word:tt, $i:tt, $($operands:tt)*) => {
                for g in 0..G {
                    // SAFETY: the memory operands are in bounds: `{w}` points
                    // at this group's 16 words in `w` (`$word` < 16), `{k}`
                    // at the 65 rows of `STEP_CONSTANTS` (`$i` < 64, and
                    // `ROTATE_16`); vector loads from memory operands need no
                    // alignment under VEX. Only the named registers are
                    // written; no stack or flags are touched.
                    unsafe {
                        asm!(
                            "vpaddd {a}, {a}, ymmword ptr [{w} + {w_at}]",
                            "vpaddd {a}, {a}, ymmword ptr [{k} + {k_at}]",
                            $f,
                            $rotate,
                            a = inout(ymm_reg) $a[g],
                            b = in(ymm_reg) $b[g],
                            c = in(ymm_reg) $c[g],
                            d = in(ymm_reg) $d[g],
                            t = out(ymm_reg) _,
                            w = in(reg) words_of[g],
                            k = in(reg) k,
                            w_at = const $word * 32,
                            k_at = const $i * 32,
                            $($operands)*
                            options(pure, readonly, nostack, preserves_flags),
                        );
                    }
                }
            };
        }
        // `$s` is a literal, so that 16 picks the byte shuffle.
        macro_rules! step {
            ($f:literal, $a:ident, $b:ident, $c:ident, $d:ident, $word:tt, $i:tt, 16) => {
                step_asm!(
                    $f,
                    "vpshufb {a}, {a}, ymmword ptr [{k} + {rotate_16}]\nvpaddd {a}, {a}, {b}",
                    $a, $b, $c, $d, $word, $i,
                    rotate_16 = const ROTATE_16 * 32,
                )
            };
            ($f:literal, $a:ident, $b:ident, $c:ident, $d:ident, $word:tt, $i:tt, $s:tt) => {
                step_asm!(
                    $f,
                    "vpslld {t}, {a}, {s}\nvpsrld {a}, {a}, {r}\nvpaddd {t}, {t}, {b}\nvpaddd {a}, {a}, {t}",
                    $a, $b, $c, $d, $word, $i,
                    s = const $s,
                    r = const 32 - $s,
                )
            };
        }
        macro_rules! step_f {
            ($($args:tt)*) => {
                step!(
                    "vpxor {t}, {c}, {d}\nvpand {t}, {t}, {b}\nvpxor {t}, {t}, {d}\nvpaddd {a}, {a}, {t}",
                    $($args)*
                )
            };
        }
        macro_rules! step_g {
            ($($args:tt)*) => {
                step!(
                    "vpandn {t}, {d}, {c}\nvpaddd {a}, {a}, {t}\nvpand {t}, {d}, {b}\nvpaddd {a}, {a}, {t}",
                    $($args)*
                )
            };
        }
        macro_rules! step_h {
            ($($args:tt)*) => {
                step!(
                    "vpxor {t}, {c}, {d}\nvpxor {t}, {t}, {b}\nvpaddd {a}, {a}, {t}",
                    $($args)*
                )
            };
        }
        macro_rules! step_i {
            ($($args:tt)*) => {
                step!(
                    "vpandn {t}, {b}, {d}\nvpxor {t}, {t}, {c}\nvpsubd {a}, {a}, {t}",
                    $($args)*
                )
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
