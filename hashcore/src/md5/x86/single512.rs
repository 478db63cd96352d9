//! Single-stream MD5 on AVX-512VL: one stream's chain in the low element of
//! XMM registers, so that each step's round function is one `VPTERNLOGD`
//! and its rotate one `VPROLD`.
//!
//! The schedule is animetosho/md5-optimisation's `md5_block_avx512` (CC0),
//! as ported to Rust intrinsics by the md5-many crate (MIT or Apache-2.0,
//! `src/scalar_x86_64_avx512.rs` of 0.1.0-alpha.4); the constant table is
//! computed here from RFC 1321's instead of copied. Besides the short chain,
//! the message words are loaded four at a time with their constants already
//! added, and the next round's constant is folded in with one vector add per
//! four words (the table's later entries are differences of constants).
//!
//! Whether this beats the scalar path depends on the CPU: on Intel cores with
//! one-cycle vector rotates it does (md5-many prefers it on GenuineIntel; the
//! issue that brought it measured md5-many's single stream 12% ahead of our
//! scalar code on a Sapphire Rapids class Xeon), on AMD Zen 4, where `VPROLD`
//! and `VPTERNLOGD` take two cycles, it does not. hashd therefore picks
//! between them by timing both at start-up ([`crate::md5::Tuning`]).

use core::arch::x86_64::*;

use crate::md5::consts::{K, WORD};
use crate::md5::BLOCK_LEN;

/// Entries 0..16: `K[0..16]`, added to the message words as they are loaded.
/// Entries `16 r + w` for rounds r = 1, 2, 3: the constant of the step of
/// round r that reads word w minus that of round r - 1's step reading it, so
/// that adding the entry turns a loaded "word plus constant" into the next
/// round's.
const CONSTANTS: [u32; 64] = {
    // step[r][w]: the step of round r that reads message word w.
    let mut step = [[0usize; 16]; 4];
    let mut i = 0;
    while i < 64 {
        step[i / 16][WORD[i]] = i;
        i += 1;
    }
    let mut table = [0u32; 64];
    let mut w = 0;
    while w < 16 {
        table[w] = K[w];
        let mut r = 1;
        while r < 4 {
            table[16 * r + w] = K[step[r][w]].wrapping_sub(K[step[r - 1][w]]);
            r += 1;
        }
        w += 1;
    }
    table
};

/// Four message words `word..word + 4` of `block`.
#[inline(always)]
fn load_words(block: &[u8], word: usize) -> __m128i {
    let bytes = &block[4 * word..4 * word + 16];
    // SAFETY: `bytes` is 16 readable bytes; the load has no alignment requirement.
    unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) }
}

/// Four entries `index..index + 4` of [`CONSTANTS`].
#[inline(always)]
fn load_constants(index: usize) -> __m128i {
    let words = &CONSTANTS[index..index + 4];
    // SAFETY: `words` is 16 readable bytes; the load has no alignment requirement.
    unsafe { _mm_loadu_si128(words.as_ptr().cast()) }
}

/// A step of rounds F, G or I: `a = b + ((a_in + input + fun(b, c, d)) <<< s)`
/// with `d` carried in `$t2` (the previous step's `c`).
macro_rules! step_x {
    ($truth:expr, $a_in:expr, $a:ident, $b:expr, $c:expr, $input:expr, $s:expr, $t2:ident) => {{
        $a = _mm_add_epi32($a_in, $input);
        $t2 = _mm_ternarylogic_epi32::<$truth>($t2, $c, $b);
        $a = _mm_add_epi32($a, $t2);
        $a = _mm_rol_epi32::<$s>($a);
        $t2 = $c;
        $a = _mm_add_epi32($a, $b);
    }};
}

/// A step of round H; `$t2` carries the previous step's `c ^ d`, so that one
/// three-way XOR with the old `a` and the new `b` gives this step's.
macro_rules! step_h {
    ($a:ident, $b:expr, $input:expr, $s:expr, $t1:ident, $t2:ident) => {{
        $t1 = _mm_add_epi32($a, $input);
        $t2 = _mm_ternarylogic_epi32::<0x96>($t2, $a, $b);
        $a = _mm_add_epi32($t1, $t2);
        $a = _mm_rol_epi32::<$s>($a);
        $a = _mm_add_epi32($a, $b);
    }};
}

// Truth tables over ($t2 = d, c, b) as (0xf0, 0xcc, 0xaa): F 0xd8, G 0xac, I 0x63.

macro_rules! four_f {
    ($v:expr, $a:ident, $b:ident, $c:ident, $d:ident, $ia:expr, $ib:expr, $ic:expr, $id:expr, $t1:ident, $t2:ident) => {{
        let v = $v;
        step_x!(0xd8, $ia, $a, $ib, $ic, v, 7, $t2);
        $t1 = _mm_srli_epi64::<32>(v);
        step_x!(0xd8, $id, $d, $a, $ib, $t1, 12, $t2);
        $t1 = _mm_unpackhi_epi64(v, v);
        step_x!(0xd8, $ic, $c, $d, $a, $t1, 17, $t2);
        $t1 = _mm_srli_epi64::<32>($t1);
        step_x!(0xd8, $ib, $b, $c, $d, $t1, 22, $t2);
    }};
}

macro_rules! four_g {
    ($rs:expr, $r1:expr, $r2:expr, $a:ident, $b:ident, $c:ident, $d:ident, $t1:ident, $t2:ident) => {{
        let (rs, r1, r2) = ($rs, $r1, $r2);
        $t1 = _mm_srli_epi64::<32>(rs);
        step_x!(0xac, $a, $a, $b, $c, $t1, 5, $t2);
        $t1 = _mm_unpackhi_epi64(r1, r1);
        step_x!(0xac, $d, $d, $a, $b, $t1, 9, $t2);
        $t1 = _mm_srli_si128::<12>(r2);
        step_x!(0xac, $c, $c, $d, $a, $t1, 14, $t2);
        step_x!(0xac, $b, $b, $c, $d, rs, 20, $t2);
    }};
}

macro_rules! four_h {
    ($r1:expr, $rs:expr, $r2:expr, $a:ident, $b:ident, $c:ident, $d:ident, $t1:ident, $t2:ident) => {{
        let (r1, rs, r2) = ($r1, $rs, $r2);
        $t1 = _mm_srli_epi64::<32>(r1);
        step_h!($a, $b, $t1, 4, $t1, $t2);
        step_h!($d, $a, rs, 11, $t1, $t2);
        $t1 = _mm_srli_si128::<12>(rs);
        step_h!($c, $d, $t1, 16, $t1, $t2);
        $t1 = _mm_unpackhi_epi64(r2, r2);
        step_h!($b, $c, $t1, 23, $t1, $t2);
    }};
}

macro_rules! four_i {
    ($r1:expr, $rs:expr, $r2:expr, $a:ident, $b:ident, $c:ident, $d:ident, $t1:ident, $t2:ident) => {{
        let (r1, rs, r2) = ($r1, $rs, $r2);
        step_x!(0x63, $a, $a, $b, $c, r1, 6, $t2);
        $t1 = _mm_srli_si128::<12>(rs);
        step_x!(0x63, $d, $d, $a, $b, $t1, 10, $t2);
        $t1 = _mm_unpackhi_epi64(r2, r2);
        step_x!(0x63, $c, $c, $d, $a, $t1, 15, $t2);
        $t1 = _mm_srli_epi64::<32>(rs);
        step_x!(0x63, $b, $b, $c, $d, $t1, 21, $t2);
    }};
}

/// The kernel's body, written against the intrinsics' names so that the
/// same text runs on an emulation of them in the tests (`emulated` below),
/// on any CPU: the schedule and the constant table are checked everywhere,
/// not only where CI happens to have AVX-512.
macro_rules! compress_body {
    ($state:ident, $blocks:ident) => {{
        let state: &mut [u32; 4] = $state;
        let blocks: &[u8] = $blocks;
        assert_eq!(
            blocks.len() % BLOCK_LEN,
            0,
            "md5 input is not block-aligned"
        );
        let mut s = state.map(|word| _mm_cvtsi32_si128(word as i32));
        for block in blocks.chunks_exact(BLOCK_LEN) {
            let [ia, ib, ic, id] = s;
            let (mut a, mut b, mut c, mut d);
            let mut t1;
            let mut t2 = id;

            let mut in0 = _mm_add_epi32(load_words(block, 0), load_constants(0));
            let mut in4 = _mm_add_epi32(load_words(block, 4), load_constants(4));
            let mut in8 = _mm_add_epi32(load_words(block, 8), load_constants(8));
            let mut in12 = _mm_add_epi32(load_words(block, 12), load_constants(12));

            four_f!(in0, a, b, c, d, ia, ib, ic, id, t1, t2);
            four_f!(in4, a, b, c, d, a, b, c, d, t1, t2);
            four_f!(in8, a, b, c, d, a, b, c, d, t1, t2);
            four_f!(in12, a, b, c, d, a, b, c, d, t1, t2);

            in0 = _mm_add_epi32(in0, load_constants(16));
            in4 = _mm_add_epi32(in4, load_constants(20));
            in8 = _mm_add_epi32(in8, load_constants(24));
            four_g!(in0, in4, in8, a, b, c, d, t1, t2);
            in12 = _mm_add_epi32(in12, load_constants(28));
            four_g!(in4, in8, in12, a, b, c, d, t1, t2);
            four_g!(in8, in12, in0, a, b, c, d, t1, t2);
            four_g!(in12, in0, in4, a, b, c, d, t1, t2);

            // Round H's first step starts the carried `c ^ d` from scratch.
            in4 = _mm_add_epi32(in4, load_constants(36));
            t1 = _mm_srli_epi64::<32>(in4);
            a = _mm_add_epi32(a, t1);
            t2 = _mm_ternarylogic_epi32::<0x96>(t2, c, b);
            a = _mm_add_epi32(a, t2);
            a = _mm_rol_epi32::<4>(a);
            a = _mm_add_epi32(a, b);

            in8 = _mm_add_epi32(in8, load_constants(40));
            step_h!(d, a, in8, 11, t1, t2);
            t1 = _mm_srli_si128::<12>(in8);
            in12 = _mm_add_epi32(in12, load_constants(44));
            step_h!(c, d, t1, 16, t1, t2);
            t1 = _mm_unpackhi_epi64(in12, in12);
            step_h!(b, c, t1, 23, t1, t2);

            in0 = _mm_add_epi32(in0, load_constants(32));
            four_h!(in0, in4, in8, a, b, c, d, t1, t2);
            four_h!(in12, in0, in4, a, b, c, d, t1, t2);
            four_h!(in8, in12, in0, a, b, c, d, t1, t2);
            t2 = d;

            in0 = _mm_add_epi32(in0, load_constants(48));
            in4 = _mm_add_epi32(in4, load_constants(52));
            in12 = _mm_add_epi32(in12, load_constants(60));
            four_i!(in0, in4, in12, a, b, c, d, t1, t2);
            in8 = _mm_add_epi32(in8, load_constants(56));
            four_i!(in12, in0, in8, a, b, c, d, t1, t2);
            four_i!(in8, in12, in4, a, b, c, d, t1, t2);
            four_i!(in4, in8, in0, a, b, c, d, t1, t2);

            s = [
                _mm_add_epi32(a, ia),
                _mm_add_epi32(b, ib),
                _mm_add_epi32(c, ic),
                _mm_add_epi32(d, id),
            ];
        }
        *state = s.map(|v| _mm_cvtsi128_si32(v) as u32);
    }};
}

/// Hashes `blocks` (a whole number of 64-byte blocks) into `state`.
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512VL.
///
/// # Panics
/// If `blocks.len()` is not a multiple of [`BLOCK_LEN`].
#[target_feature(enable = "avx512f,avx512vl")]
#[allow(unused_assignments)] // the macros' last writes to the temporaries
pub(crate) unsafe fn compress(state: &mut [u32; 4], blocks: &[u8]) {
    compress_body!(state, blocks);
}

/// The kernel's intrinsics on plain arrays, with Intel's documented
/// semantics, so that the schedule runs (and is tested) on any CPU.
#[cfg(test)]
mod emulated {
    #![allow(non_camel_case_types)]

    use super::{BLOCK_LEN, CONSTANTS};

    #[derive(Clone, Copy)]
    struct __m128i([u32; 4]);

    fn _mm_cvtsi32_si128(x: i32) -> __m128i {
        __m128i([x as u32, 0, 0, 0])
    }

    fn _mm_cvtsi128_si32(v: __m128i) -> i32 {
        v.0[0] as i32
    }

    fn _mm_add_epi32(a: __m128i, b: __m128i) -> __m128i {
        __m128i(core::array::from_fn(|i| a.0[i].wrapping_add(b.0[i])))
    }

    /// Bit `i` of the result is bit `(a << 2) | (b << 1) | c` of `IMM`.
    fn _mm_ternarylogic_epi32<const IMM: i32>(a: __m128i, b: __m128i, c: __m128i) -> __m128i {
        __m128i(core::array::from_fn(|i| {
            (0..32).fold(0u32, |out, bit| {
                let index =
                    ((a.0[i] >> bit) & 1) << 2 | ((b.0[i] >> bit) & 1) << 1 | (c.0[i] >> bit) & 1;
                out | (((IMM as u32) >> index) & 1) << bit
            })
        }))
    }

    fn _mm_rol_epi32<const S: i32>(a: __m128i) -> __m128i {
        __m128i(a.0.map(|x| x.rotate_left(S as u32)))
    }

    /// Each 64-bit half shifted right by `N` bits.
    fn _mm_srli_epi64<const N: i32>(a: __m128i) -> __m128i {
        let half = |lo: u32, hi: u32| (u64::from(hi) << 32 | u64::from(lo)) >> N;
        let (x, y) = (half(a.0[0], a.0[1]), half(a.0[2], a.0[3]));
        __m128i([x as u32, (x >> 32) as u32, y as u32, (y >> 32) as u32])
    }

    /// The high 64-bit halves of `a` and `b`.
    fn _mm_unpackhi_epi64(a: __m128i, b: __m128i) -> __m128i {
        __m128i([a.0[2], a.0[3], b.0[2], b.0[3]])
    }

    /// The whole register shifted right by `N` bytes.
    fn _mm_srli_si128<const N: i32>(a: __m128i) -> __m128i {
        let wide =
            a.0.iter()
                .rev()
                .fold(0u128, |acc, &w| acc << 32 | u128::from(w))
                >> (8 * N);
        __m128i(core::array::from_fn(|i| (wide >> (32 * i)) as u32))
    }

    fn load_words(block: &[u8], word: usize) -> __m128i {
        __m128i(core::array::from_fn(|i| {
            let at = 4 * (word + i);
            u32::from_le_bytes([block[at], block[at + 1], block[at + 2], block[at + 3]])
        }))
    }

    fn load_constants(index: usize) -> __m128i {
        __m128i(core::array::from_fn(|i| CONSTANTS[index + i]))
    }

    #[allow(unused_assignments)]
    fn compress(state: &mut [u32; 4], blocks: &[u8]) {
        compress_body!(state, blocks);
    }

    #[test]
    fn the_schedule_matches_scalar_md5_on_any_cpu() {
        let mut rng = crate::testutil::XorShift(0x5eed_0512);
        for blocks in 0..20 {
            let data = rng.bytes(blocks * BLOCK_LEN);
            let start = [0; 4].map(|_: u32| rng.next() as u32);
            let (mut want, mut got) = (start, start);
            crate::md5::single::compress(&mut want, &data);
            compress(&mut got, &data);
            assert_eq!(got, want, "{blocks} blocks");
        }
    }
}
