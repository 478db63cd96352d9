//! The known-answer self-test a daemon runs at start-up, before it serves:
//! every algorithm through the implementation this CPU selected (the crates
//! dispatch on CPU features at run time, so a fault in one kernel shows only
//! on the machines that select it), several at once through one
//! [`MultiHasher`](crate::MultiHasher), MD5's chosen single-stream kernel,
//! and MD5's lanes in every kernel shape the chosen [`Tuning`] uses, each at
//! its full width. A failure means hashd would serve wrong digests: the
//! caller stops.
//!
//! The long input is 65,549 bytes (`(i * 7 + i / 251) mod 256`): long enough
//! to take every crate's SIMD path (BLAKE3 parallelises whole 1 KiB chunks,
//! the CRCs fold 256-byte blocks), and of a length that is no multiple of
//! any block. Its digests were computed with `scripts/refdigest.py`
//! (Python's hashlib and zlib, the blake3 package, crcmod), not with hashd.

use std::time::{Duration, Instant};

use crate::md5::{self, Tuning};
use crate::{to_hex, Algorithm, Algorithms};

/// Length of the generated input.
const LONG_LEN: usize = 65_549;

/// Digests of the generated input, in [`Algorithm::ALL`] order.
const LONG_DIGESTS: [&str; Algorithm::COUNT] = [
    "d90040973d679b36365939677b4a4156",
    "f07ff666f6d2f0f10c001018298149f9055797cc",
    "6d8d9a5dab2b1d5d1f333bfa0ec6a7ab638dcd43256e1290da2c8d0c",
    "b2fce268f913a7cd50f0ab1594e117fc9708ab94cce3fcc4d4891cf16a502023",
    "59f122e2382f1781b24bb4d1bd7bb7402bdd6b27549a20834be794feba052d1ee073636df5f9a87abf4888920ea61fba",
    "236358e1fad02b29698ae9d322ca13c942c3c76f02ec60330ed97b7de1964189c48bf6aea773121837d33e9e8c6634bdced472d5516f3d2ac242870a0ca254bb",
    "6208810139e60a1439a64f91e8e737df5b76a4726038ec0ef2c273b2ee6ead51",
    "3ef336ed3bda3313fd2ee2514214312a56c175dd4550923527bef3131ca059ef41e15bb1530c67a9fb79e31f5959392ddf61b1383ba6b94f80e7711250d748c0",
    "fdaaa28c94365724719a63279b6a70bc08b2bbc91aed41ef46bca895812d8fdc",
    "244151e0",
    "e6355eae",
    "e9bc7dda8fef48a4",
];

/// Published short vectors: `"abc"` (RFC 1321, FIPS 180-2, FIPS 202, the
/// BLAKE3 reference) and the CRC catalogue's check input `"123456789"`.
const SHORT: [(Algorithm, &str, &str); Algorithm::COUNT] = [
    (Algorithm::Md5, "abc", "900150983cd24fb0d6963f7d28e17f72"),
    (Algorithm::Sha1, "abc", "a9993e364706816aba3e25717850c26c9cd0d89d"),
    (Algorithm::Sha224, "abc", "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7"),
    (Algorithm::Sha256, "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    (Algorithm::Sha384, "abc", "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"),
    (Algorithm::Sha512, "abc", "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"),
    (Algorithm::Sha3_256, "abc", "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532"),
    (Algorithm::Sha3_512, "abc", "b751850b1a57168a5693cd924b6b096e08f621827444f70d884f5d0240d2712e10e116e9192af3c91a7ec57647e3934057340b4cf408d5a56592f8274eec53f0"),
    (Algorithm::Blake3, "abc", "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"),
    (Algorithm::Crc32, "123456789", "cbf43926"),
    (Algorithm::Crc32c, "123456789", "e3069283"),
    (Algorithm::Crc64Nvme, "123456789", "ae8b14860a799888"),
];

/// What the self-test checked, for the start-up log and `/stats`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelfTestReport {
    /// Digests compared with their known answers.
    pub checks: usize,
    /// How long the whole test took.
    pub elapsed: Duration,
}

/// A kernel gave a wrong answer: what was hashed, and both digests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelfTestError {
    /// The algorithm and path (`blake3 (blake3 crate, avx512), 65549 bytes`).
    pub what: String,
    pub expected: String,
    pub got: String,
}

impl std::fmt::Display for SelfTestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "self-test failed: {} gave {}, the known answer is {}",
            self.what, self.got, self.expected
        )
    }
}

impl std::error::Error for SelfTestError {}

/// The generated long input.
fn long_input() -> Vec<u8> {
    (0..LONG_LEN)
        .map(|i| ((i * 7 + i / 251) & 0xff) as u8)
        .collect()
}

fn expect(what: impl Fn() -> String, expected: &str, got: &[u8]) -> Result<(), SelfTestError> {
    let got = to_hex(got);
    if got == expected {
        return Ok(());
    }
    Err(SelfTestError {
        what: what(),
        expected: expected.to_string(),
        got,
    })
}

/// Runs the self-test with MD5's kernels as `md5` (the tuning the pool will
/// use) chooses them. Errors: the first wrong digest. Panics if `md5`'s
/// platform is not available on this CPU (the pool refuses it before this
/// runs).
pub fn run(md5: &Tuning) -> Result<SelfTestReport, SelfTestError> {
    let start = Instant::now();
    let mut checks = 0;
    let long = long_input();
    for (algo, input, want) in SHORT {
        let imp = algo.implementation();
        expect(
            || format!("{algo} ({imp}) of {input:?}"),
            want,
            &algo.digest(input.as_bytes()),
        )?;
        checks += 1;
    }
    for (algo, want) in Algorithm::ALL.into_iter().zip(LONG_DIGESTS) {
        let imp = algo.implementation();
        let what = || format!("{algo} ({imp}), {LONG_LEN} bytes");
        expect(what, want, &algo.digest(&long))?;
        // Unaligned pieces, as uploads arrive.
        let mut h = algo.hasher();
        for piece in long.chunks(4093) {
            h.update(piece);
        }
        expect(
            || format!("{} in 4093-byte pieces", what()),
            want,
            &h.finalize(),
        )?;
        checks += 2;
    }
    // One pass feeding every algorithm, as jobs with several do.
    let all = Algorithms::from_iter_nonempty(Algorithm::ALL).unwrap_or_default();
    let mut multi = all.hasher();
    for piece in long.chunks(65_536) {
        multi.update(piece);
    }
    for ((algo, got), want) in multi.finalize().into_iter().zip(LONG_DIGESTS) {
        expect(|| format!("{algo} with the others in one pass"), want, &got)?;
        checks += 1;
    }
    // MD5's single-stream kernel, whichever was installed process-wide.
    let single = md5.single();
    let mut h = md5::Md5::new();
    for piece in long.chunks(4093) {
        h.update_with(single, piece);
    }
    expect(
        || format!("md5 single stream ({single})"),
        LONG_DIGESTS[0],
        &h.finalize_with(single),
    )?;
    checks += 1;
    // MD5 in every lane of every shape the tuning uses, each lane a
    // different suffix of the input (so lanes end at different blocks),
    // against `Algorithm::digest`, checked above.
    for (_, shape) in md5.shapes() {
        let forced = Tuning::forced(md5.platform(), shape, single);
        let lanes = shape.lanes();
        let mut states: Vec<md5::Md5> = (0..lanes).map(|_| md5::Md5::new()).collect();
        let inputs: Vec<&[u8]> = (0..lanes).map(|k| &long[k * 67..]).collect();
        let mut items: Vec<(&mut md5::Md5, &[u8])> = states
            .iter_mut()
            .zip(&inputs)
            .map(|(m, d)| (m, *d))
            .collect();
        md5::update_many_tuned(&forced, &mut items);
        drop(items);
        for (k, (state, input)) in states.into_iter().zip(&inputs).enumerate() {
            let want = to_hex(&Algorithm::Md5.digest(input));
            let what = || format!("md5 lane {k} of {lanes} ({shape})");
            expect(what, &want, &state.finalize_with(single))?;
            checks += 1;
        }
    }
    Ok(SelfTestReport {
        checks,
        elapsed: start.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_on_every_available_platform() {
        for platform in md5::Platform::ALL.into_iter().filter(|p| p.is_available()) {
            let report = run(&Tuning::fixed(platform)).unwrap();
            assert!(report.checks > 3 * Algorithm::COUNT, "{report:?}");
        }
    }

    #[test]
    fn a_wrong_answer_names_the_kernel_and_both_digests() {
        let err = expect(|| "md5 lane 3".into(), "00", &[1]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "self-test failed: md5 lane 3 gave 01, the known answer is 00"
        );
    }
}
