//! The scalar MD5 compression function: one chain for the single-stream
//! path, and two or three chains interleaved for the `scalar` lane shapes.
//!
//! Plain Rust but for [`opaque`], an empty `asm!` that pins the order of
//! additions. MD5 is one long dependency chain, so speed comes
//! from keeping the chain short, as OpenSSL's and md5-optimisation's hand
//! scheduling do:
//! - the message word and round constant are added to `a` before the round
//!   function is known, off the critical path;
//! - G is computed as `(d & b) + (!d & c)` and the two halves are added
//!   separately, so only `d & b` waits for the newest `b`;
//! - H is computed as `(c ^ d) ^ b`, so only one XOR waits for `b`;
//! - each message word is read where it is added, as a memory operand of the
//!   addition: preloaded into 16 variables, the words did not fit the
//!   registers and were spilled and reloaded.
//!
//! Measured on Zen 4 with 16 KiB inputs (best of repeated runs; criterion
//! medians agree, see `benches/benches/md5.rs`): this 0.81 GB/s, md5-many's
//! hand-scheduled assembly 0.81, `openssl speed -evp md5 -bytes 16384` 0.76,
//! md-5 0.10 0.60 (0.63 with its `asm` feature). Without [`opaque`] LLVM moves
//! the constant to the end of each step's additions and this runs at 0.66.
//! On Zen 3 (EPYC family 25 model 1), taking turns with md5-many
//! (`benches/examples/md5_side_by_side.rs`, medians of 11): preloaded words
//! 0.2 to 0.3% behind its assembly at 16 KiB and 1 MiB, words read in place
//! 0.3 to 0.5% ahead (0.709 against 0.705 GB/s at 16 KiB).
//!
//! One chain leaves most of the integer pipes idle while it waits on itself,
//! so a second chain, another stream's, runs nearly free. On Zen 3 (EPYC
//! family 25 model 1), two streams of 64 KiB (`md5_side_by_side 2`): 1.28
//! GB/s as two chains, against 0.71 for one chain at a time and 1.09 in the
//! AVX2 kernel with six of its eight lanes idle; through the daemon with one
//! hasher, two page-cached 1 GiB files took 1.89 s against 2.18 s. Three
//! chains measure 1.43 in the start-up calibration, below three busy lanes
//! of the AVX2 kernel (1.62). Which runs where is the calibration's choice
//! ([`super::Tuning`]); two or three chains are the only lanes on the
//! portable backend.

use super::consts::{md5_steps, K};
use super::{assert_lanes_hold, Lane, BLOCK_LEN};

/// Hashes `blocks` (a whole number of 64-byte blocks) into `state`.
///
/// # Panics
/// If `blocks.len()` is not a multiple of [`BLOCK_LEN`].
pub(crate) fn compress(state: &mut [u32; 4], blocks: &[u8]) {
    assert_eq!(
        blocks.len() % BLOCK_LEN,
        0,
        "md5 input is not block-aligned"
    );
    // One chain hashed in place: through a local copy of the chaining value,
    // LLVM kept `b` on the stack and the single stream ran 1% slower (0.700
    // against 0.710 GB/s on Zen 3, EPYC family 25 model 1).
    for block in blocks.chunks_exact(BLOCK_LEN) {
        compress_block(
            core::array::from_mut(state),
            [block.try_into().expect("chunks_exact gives whole blocks")],
        );
    }
}

/// The scalar lane kernel: hashes `blocks` blocks of each of 1 to 3 lanes
/// into its state, one chain per lane, interleaved step by step.
///
/// # Panics
/// If a lane holds fewer than `blocks` blocks, or there are more than 3 lanes.
pub(crate) fn compress_lanes(lanes: &mut [Lane<'_>], blocks: usize) {
    assert_lanes_hold(lanes, blocks);
    match lanes.len() {
        0 => {}
        1 => lanes_as_chains::<1>(lanes, blocks),
        2 => lanes_as_chains::<2>(lanes, blocks),
        3 => lanes_as_chains::<3>(lanes, blocks),
        n => panic!("{n} md5 lanes exceed the scalar kernel's 3"),
    }
}

/// Runs lane `j` as chain `j` of `N`, over the lanes' first `blocks` blocks
/// (which `compress_lanes` checked they hold).
fn lanes_as_chains<const N: usize>(lanes: &mut [Lane<'_>], blocks: usize) {
    let mut states: [[u32; 4]; N] = core::array::from_fn(|j| lanes[j].state);
    let data: [&[u8]; N] = core::array::from_fn(|j| lanes[j].data);
    for block in 0..blocks {
        let at = block * BLOCK_LEN;
        let words: [&[u8; BLOCK_LEN]; N] = core::array::from_fn(|j| {
            data[j][at..at + BLOCK_LEN]
                .try_into()
                .expect("a block is BLOCK_LEN bytes")
        });
        compress_block(&mut states, words);
    }
    for (lane, state) in lanes.iter_mut().zip(states) {
        lane.state = state;
    }
}

/// Returns `x` unchanged, but hides it from the optimiser, which would
/// otherwise reassociate `a + m + k + f` so that the constant is added last,
/// on the critical path (one more cycle per step).
#[inline(always)]
pub(super) fn opaque(mut x: u32) -> u32 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the template is a comment: no instruction runs, and no memory,
    // stack or flags are touched; `x` comes back in the register it went in.
    unsafe {
        core::arch::asm!("/* {0:e} */", inout(reg) x, options(pure, nomem, nostack, preserves_flags));
    }
    x
}

// The steps take the chains' count `$n` and word reader `$m` first (the
// context `md5_steps!` passes through), then the rotated roles.
macro_rules! step_f {
    ($n:ident, $m:ident, $a:ident, $b:ident, $c:ident, $d:ident, $w:expr, $i:expr, $s:expr) => {
        for j in 0..$n {
            $a[j] = opaque($a[j].wrapping_add($m(j, $w)).wrapping_add(K[$i]));
            $a[j] = $a[j].wrapping_add((($c[j] ^ $d[j]) & $b[j]) ^ $d[j]);
            $a[j] = $a[j].rotate_left($s).wrapping_add($b[j]);
        }
    };
}

macro_rules! step_g {
    ($n:ident, $m:ident, $a:ident, $b:ident, $c:ident, $d:ident, $w:expr, $i:expr, $s:expr) => {
        for j in 0..$n {
            $a[j] = opaque(
                $a[j]
                    .wrapping_add($m(j, $w))
                    .wrapping_add(K[$i])
                    .wrapping_add(!$d[j] & $c[j]),
            );
            $a[j] = $a[j].wrapping_add($d[j] & $b[j]);
            $a[j] = $a[j].rotate_left($s).wrapping_add($b[j]);
        }
    };
}

macro_rules! step_h {
    ($n:ident, $m:ident, $a:ident, $b:ident, $c:ident, $d:ident, $w:expr, $i:expr, $s:expr) => {
        for j in 0..$n {
            $a[j] = opaque($a[j].wrapping_add($m(j, $w)).wrapping_add(K[$i]));
            $a[j] = $a[j].wrapping_add(opaque($c[j] ^ $d[j]) ^ $b[j]);
            $a[j] = $a[j].rotate_left($s).wrapping_add($b[j]);
        }
    };
}

macro_rules! step_i {
    ($n:ident, $m:ident, $a:ident, $b:ident, $c:ident, $d:ident, $w:expr, $i:expr, $s:expr) => {
        for j in 0..$n {
            $a[j] = opaque($a[j].wrapping_add($m(j, $w)).wrapping_add(K[$i]));
            $a[j] = $a[j].wrapping_add($c[j] ^ ($b[j] | opaque(!$d[j])));
            $a[j] = $a[j].rotate_left($s).wrapping_add($b[j]);
        }
    };
}

#[inline(always)]
fn compress_block<const N: usize>(states: &mut [[u32; 4]; N], blocks: [&[u8; BLOCK_LEN]; N]) {
    // Each word is read where it is added, so that the load folds into the
    // addition: preloading the 16 words into variables spills them.
    let m = move |j: usize, i: usize| {
        let block = blocks[j];
        u32::from_le_bytes([
            block[4 * i],
            block[4 * i + 1],
            block[4 * i + 2],
            block[4 * i + 3],
        ])
    };
    let mut a: [u32; N] = core::array::from_fn(|j| states[j][0]);
    let mut b: [u32; N] = core::array::from_fn(|j| states[j][1]);
    let mut c: [u32; N] = core::array::from_fn(|j| states[j][2]);
    let mut d: [u32; N] = core::array::from_fn(|j| states[j][3]);

    md5_steps!([N, m,], step_f, step_g, step_h, step_i, a, b, c, d);

    for (state, (((a, b), c), d)) in states.iter_mut().zip(a.into_iter().zip(b).zip(c).zip(d)) {
        state[0] = state[0].wrapping_add(a);
        state[1] = state[1].wrapping_add(b);
        state[2] = state[2].wrapping_add(c);
        state[3] = state[3].wrapping_add(d);
    }
}
