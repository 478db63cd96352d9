//! The single-stream MD5 compression function: the fastest path for one stream.
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

use super::consts::K;
use super::BLOCK_LEN;

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
    for block in blocks.chunks_exact(BLOCK_LEN) {
        compress_block(
            state,
            block.try_into().expect("chunks_exact gives whole blocks"),
        );
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

macro_rules! step_f {
    ($a:ident, $b:ident, $c:ident, $d:ident, $m:expr, $i:expr, $s:expr) => {
        $a = opaque($a.wrapping_add($m).wrapping_add(K[$i]));
        $a = $a.wrapping_add((($c ^ $d) & $b) ^ $d);
        $a = $a.rotate_left($s).wrapping_add($b);
    };
}

macro_rules! step_g {
    ($a:ident, $b:ident, $c:ident, $d:ident, $m:expr, $i:expr, $s:expr) => {
        $a = opaque(
            $a.wrapping_add($m)
                .wrapping_add(K[$i])
                .wrapping_add(!$d & $c),
        );
        $a = $a.wrapping_add($d & $b);
        $a = $a.rotate_left($s).wrapping_add($b);
    };
}

macro_rules! step_h {
    ($a:ident, $b:ident, $c:ident, $d:ident, $m:expr, $i:expr, $s:expr) => {
        $a = opaque($a.wrapping_add($m).wrapping_add(K[$i]));
        $a = $a.wrapping_add(opaque($c ^ $d) ^ $b);
        $a = $a.rotate_left($s).wrapping_add($b);
    };
}

macro_rules! step_i {
    ($a:ident, $b:ident, $c:ident, $d:ident, $m:expr, $i:expr, $s:expr) => {
        $a = opaque($a.wrapping_add($m).wrapping_add(K[$i]));
        $a = $a.wrapping_add($c ^ ($b | opaque(!$d)));
        $a = $a.rotate_left($s).wrapping_add($b);
    };
}

#[inline(always)]
fn compress_block(state: &mut [u32; 4], block: &[u8; BLOCK_LEN]) {
    // Each word is read where it is added, so that the load folds into the
    // addition: preloading the 16 words into variables spills them.
    let m = |i: usize| {
        u32::from_le_bytes([
            block[4 * i],
            block[4 * i + 1],
            block[4 * i + 2],
            block[4 * i + 3],
        ])
    };
    let [mut a, mut b, mut c, mut d] = *state;

    step_f!(a, b, c, d, m(0), 0, 7);
    step_f!(d, a, b, c, m(1), 1, 12);
    step_f!(c, d, a, b, m(2), 2, 17);
    step_f!(b, c, d, a, m(3), 3, 22);
    step_f!(a, b, c, d, m(4), 4, 7);
    step_f!(d, a, b, c, m(5), 5, 12);
    step_f!(c, d, a, b, m(6), 6, 17);
    step_f!(b, c, d, a, m(7), 7, 22);
    step_f!(a, b, c, d, m(8), 8, 7);
    step_f!(d, a, b, c, m(9), 9, 12);
    step_f!(c, d, a, b, m(10), 10, 17);
    step_f!(b, c, d, a, m(11), 11, 22);
    step_f!(a, b, c, d, m(12), 12, 7);
    step_f!(d, a, b, c, m(13), 13, 12);
    step_f!(c, d, a, b, m(14), 14, 17);
    step_f!(b, c, d, a, m(15), 15, 22);

    step_g!(a, b, c, d, m(1), 16, 5);
    step_g!(d, a, b, c, m(6), 17, 9);
    step_g!(c, d, a, b, m(11), 18, 14);
    step_g!(b, c, d, a, m(0), 19, 20);
    step_g!(a, b, c, d, m(5), 20, 5);
    step_g!(d, a, b, c, m(10), 21, 9);
    step_g!(c, d, a, b, m(15), 22, 14);
    step_g!(b, c, d, a, m(4), 23, 20);
    step_g!(a, b, c, d, m(9), 24, 5);
    step_g!(d, a, b, c, m(14), 25, 9);
    step_g!(c, d, a, b, m(3), 26, 14);
    step_g!(b, c, d, a, m(8), 27, 20);
    step_g!(a, b, c, d, m(13), 28, 5);
    step_g!(d, a, b, c, m(2), 29, 9);
    step_g!(c, d, a, b, m(7), 30, 14);
    step_g!(b, c, d, a, m(12), 31, 20);

    step_h!(a, b, c, d, m(5), 32, 4);
    step_h!(d, a, b, c, m(8), 33, 11);
    step_h!(c, d, a, b, m(11), 34, 16);
    step_h!(b, c, d, a, m(14), 35, 23);
    step_h!(a, b, c, d, m(1), 36, 4);
    step_h!(d, a, b, c, m(4), 37, 11);
    step_h!(c, d, a, b, m(7), 38, 16);
    step_h!(b, c, d, a, m(10), 39, 23);
    step_h!(a, b, c, d, m(13), 40, 4);
    step_h!(d, a, b, c, m(0), 41, 11);
    step_h!(c, d, a, b, m(3), 42, 16);
    step_h!(b, c, d, a, m(6), 43, 23);
    step_h!(a, b, c, d, m(9), 44, 4);
    step_h!(d, a, b, c, m(12), 45, 11);
    step_h!(c, d, a, b, m(15), 46, 16);
    step_h!(b, c, d, a, m(2), 47, 23);

    step_i!(a, b, c, d, m(0), 48, 6);
    step_i!(d, a, b, c, m(7), 49, 10);
    step_i!(c, d, a, b, m(14), 50, 15);
    step_i!(b, c, d, a, m(5), 51, 21);
    step_i!(a, b, c, d, m(12), 52, 6);
    step_i!(d, a, b, c, m(3), 53, 10);
    step_i!(c, d, a, b, m(10), 54, 15);
    step_i!(b, c, d, a, m(1), 55, 21);
    step_i!(a, b, c, d, m(8), 56, 6);
    step_i!(d, a, b, c, m(15), 57, 10);
    step_i!(c, d, a, b, m(6), 58, 15);
    step_i!(b, c, d, a, m(13), 59, 21);
    step_i!(a, b, c, d, m(4), 60, 6);
    step_i!(d, a, b, c, m(11), 61, 10);
    step_i!(c, d, a, b, m(2), 62, 15);
    step_i!(b, c, d, a, m(9), 63, 21);

    state[0] = state[0].wrapping_add(a);
    state[1] = state[1].wrapping_add(b);
    state[2] = state[2].wrapping_add(c);
    state[3] = state[3].wrapping_add(d);
}
