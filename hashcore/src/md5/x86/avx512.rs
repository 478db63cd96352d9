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

use super::{
    align_frame, gather_lanes, load_transposed_x16, load_transposed_x8, scatter_states,
    PREFETCH_BLOCKS,
};
use crate::md5::consts::{md5_steps, BLOCK_WORDS, K};
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
/// The intrinsics are named, not imported, so that the same text also runs
/// on an emulation of them in the tests (`emulated` below), on any CPU.
macro_rules! kernel {
    (
        $(#[$attr:meta])* $vis:vis $name:ident, $vec:ty, $width:expr, $setzero:ident,
        $set1:ident, $add:ident, $ternlog:ident, $rol:ident, $loadu:ident, $storeu:ident,
        $transpose:ident
    ) => {
        $(#[$attr])*
        $vis fn $name<const G: usize>(lanes: &mut [Lane<'_>], blocks: usize) {
            align_frame!();
            let (data, mut words) = gather_lanes::<{ $width }, G>(lanes, blocks);
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
                    // The loads' safety rests on `gather_lanes`' check.
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
            scatter_states(lanes, &words);
        }
    };
}

/// Defines `compress_zmm` and `compress_ymm` with the given attributes and
/// visibility, on whatever the intrinsics' names resolve to where it expands.
macro_rules! kernels {
    ($(#[$attr:meta])* $vis:vis) => {
        kernel!(
            $(#[$attr])* $vis compress_zmm,
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
            $(#[$attr])* $vis compress_ymm,
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
    };
}

kernels!(#[target_feature(enable = "avx2,avx512f,avx512vl")] pub(crate));

/// The kernels above on an emulation of the AVX-512 and AVX2 intrinsics they
/// use (`u32` arrays, one element per lane), checked against scalar MD5: the
/// step functions' truth tables, the transposes and the lane bookkeeping are
/// tested on CPUs without AVX-512 too, not only where CI has it.
#[cfg(test)]
mod emulated {
    #![allow(non_camel_case_types)]

    use super::{YMM_LANES, ZMM_LANES};
    use crate::md5::consts::{md5_steps, BLOCK_WORDS, K};
    use crate::md5::x86::{
        align_frame, gather_lanes, load_transposed_x16, load_transposed_x8, scatter_states,
        PREFETCH_BLOCKS,
    };
    use crate::md5::{Lane, BLOCK_LEN};

    #[derive(Clone, Copy)]
    struct __m256i([u32; 8]);
    #[derive(Clone, Copy)]
    struct __m512i([u32; 16]);

    const _MM_HINT_T0: i32 = 3;

    fn _mm_prefetch<const STRATEGY: i32>(_: *const i8) {}

    /// Bit `i` of the result is bit `(a << 2) | (b << 1) | c` of `imm`.
    fn ternlog<const N: usize>(imm: i32, a: [u32; N], b: [u32; N], c: [u32; N]) -> [u32; N] {
        core::array::from_fn(|i| {
            (0..32).fold(0u32, |out, bit| {
                let index = ((a[i] >> bit) & 1) << 2 | ((b[i] >> bit) & 1) << 1 | (c[i] >> bit) & 1;
                out | (((imm as u32) >> index) & 1) << bit
            })
        })
    }

    /// Within each 128-bit quarter, the 32-bit elements `at` and `at + 1` of
    /// `a` and `b`, interleaved (`unpack*_epi32`).
    fn unpack32<const N: usize>(a: [u32; N], b: [u32; N], at: usize) -> [u32; N] {
        core::array::from_fn(|i| {
            let (q, j) = (i / 4 * 4, i % 4);
            let src = if j % 2 == 0 { a } else { b };
            src[q + at + j / 2]
        })
    }

    /// Within each 128-bit quarter, the 64-bit element `at` of `a`, then of
    /// `b` (`unpack*_epi64`).
    fn unpack64<const N: usize>(a: [u32; N], b: [u32; N], at: usize) -> [u32; N] {
        core::array::from_fn(|i| {
            let (q, j) = (i / 4 * 4, i % 4);
            let src = if j < 2 { a } else { b };
            src[q + 2 * at + j % 2]
        })
    }

    macro_rules! emulate {
        ($vec:ident, $n:expr, $setzero:ident, $set1:ident, $add:ident, $ternlog:ident,
         $rol:ident, $loadu:ident, $storeu:ident, $lo32:ident, $hi32:ident, $lo64:ident,
         $hi64:ident) => {
            fn $setzero() -> $vec {
                $vec([0; $n])
            }
            fn $set1(x: i32) -> $vec {
                $vec([x as u32; $n])
            }
            fn $add(a: $vec, b: $vec) -> $vec {
                $vec(core::array::from_fn(|i| a.0[i].wrapping_add(b.0[i])))
            }
            fn $ternlog<const IMM: i32>(a: $vec, b: $vec, c: $vec) -> $vec {
                $vec(ternlog(IMM, a.0, b.0, c.0))
            }
            fn $rol<const S: i32>(a: $vec) -> $vec {
                $vec(a.0.map(|x| x.rotate_left(S as u32)))
            }
            /// # Safety
            /// `p` points to a register's worth of readable bytes.
            unsafe fn $loadu(p: *const $vec) -> $vec {
                // SAFETY: the caller's.
                unsafe { p.read_unaligned() }
            }
            /// # Safety
            /// `p` points to a register's worth of writable bytes.
            unsafe fn $storeu(p: *mut $vec, v: $vec) {
                // SAFETY: the caller's.
                unsafe { p.write_unaligned(v) }
            }
            fn $lo32(a: $vec, b: $vec) -> $vec {
                $vec(unpack32(a.0, b.0, 0))
            }
            fn $hi32(a: $vec, b: $vec) -> $vec {
                $vec(unpack32(a.0, b.0, 2))
            }
            fn $lo64(a: $vec, b: $vec) -> $vec {
                $vec(unpack64(a.0, b.0, 0))
            }
            fn $hi64(a: $vec, b: $vec) -> $vec {
                $vec(unpack64(a.0, b.0, 1))
            }
        };
    }

    emulate!(
        __m512i,
        16,
        _mm512_setzero_si512,
        _mm512_set1_epi32,
        _mm512_add_epi32,
        _mm512_ternarylogic_epi32,
        _mm512_rol_epi32,
        _mm512_loadu_si512,
        _mm512_storeu_si512,
        _mm512_unpacklo_epi32,
        _mm512_unpackhi_epi32,
        _mm512_unpacklo_epi64,
        _mm512_unpackhi_epi64
    );
    emulate!(
        __m256i,
        8,
        _mm256_setzero_si256,
        _mm256_set1_epi32,
        _mm256_add_epi32,
        _mm256_ternarylogic_epi32,
        _mm256_rol_epi32,
        _mm256_loadu_si256,
        _mm256_storeu_si256,
        _mm256_unpacklo_epi32,
        _mm256_unpackhi_epi32,
        _mm256_unpacklo_epi64,
        _mm256_unpackhi_epi64
    );

    /// 128-bit quarter `IMM >> 2k & 3` of `a` for quarters 0 and 1, of `b`
    /// for quarters 2 and 3.
    fn _mm512_shuffle_i32x4<const IMM: i32>(a: __m512i, b: __m512i) -> __m512i {
        __m512i(core::array::from_fn(|i| {
            let (q, j) = (i / 4, i % 4);
            let src = if q < 2 { a } else { b };
            src.0[4 * ((IMM as usize >> (2 * q)) & 3) + j]
        }))
    }

    /// Each 128-bit half from the half `IMM >> 4h & 3` of (a, b) counts
    /// low a, high a, low b, high b; zero where bit `4h + 3` is set.
    fn _mm256_permute2x128_si256<const IMM: i32>(a: __m256i, b: __m256i) -> __m256i {
        let halves = [&a.0[..4], &a.0[4..], &b.0[..4], &b.0[4..]];
        __m256i(core::array::from_fn(|i| {
            let control = (IMM as usize >> (4 * (i / 4))) & 0xf;
            if control & 8 != 0 {
                0
            } else {
                halves[control & 3][i % 4]
            }
        }))
    }

    kernels!(pub(super));

    /// Every group count and a few lane counts (full, partial, one) of both
    /// widths, against scalar MD5 lane by lane.
    #[test]
    fn lane_kernels_match_scalar_md5_on_any_cpu() {
        type Kernel = fn(&mut [Lane<'_>], usize);
        let kernels: [(&str, usize, usize, Kernel); 6] = [
            ("zmm", ZMM_LANES, 1, compress_zmm::<1>),
            ("zmm", ZMM_LANES, 2, compress_zmm::<2>),
            ("zmm", ZMM_LANES, 3, compress_zmm::<3>),
            ("ymm", YMM_LANES, 1, compress_ymm::<1>),
            ("ymm", YMM_LANES, 2, compress_ymm::<2>),
            ("ymm", YMM_LANES, 3, compress_ymm::<3>),
        ];
        let mut rng = crate::testutil::XorShift(0x5eed_0513);
        for (width_name, width, groups, kernel) in kernels {
            for lanes in [width * groups, width * groups - 3, 1] {
                let blocks = 2;
                let data: Vec<Vec<u8>> =
                    (0..lanes).map(|_| rng.bytes(blocks * BLOCK_LEN)).collect();
                let starts: Vec<[u32; 4]> = (0..lanes)
                    .map(|_| [0; 4].map(|_: u32| rng.next() as u32))
                    .collect();
                let mut lane_list: Vec<Lane<'_>> = data
                    .iter()
                    .zip(&starts)
                    .map(|(d, s)| Lane { state: *s, data: d })
                    .collect();
                kernel(&mut lane_list, blocks);
                for (l, lane) in lane_list.iter().enumerate() {
                    let mut want = starts[l];
                    crate::md5::single::compress(&mut want, &data[l]);
                    assert_eq!(
                        lane.state, want,
                        "{width_name}x{groups}: lane {l} of {lanes}"
                    );
                }
            }
        }
    }
}
