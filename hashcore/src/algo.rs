//! The hash algorithms hashd offers, behind one small interface.
//!
//! Adding an algorithm means one variant in [`Algorithm`] and one in
//! [`Hasher`]; every front end learns it from [`Algorithm::ALL`].

use std::fmt;
use std::str::FromStr;

use digest::Digest as _;

use crate::md5;

/// A hash algorithm a client may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    #[default]
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    /// Every algorithm, in the order help texts list them.
    pub const ALL: [Algorithm; 4] = [
        Algorithm::Md5,
        Algorithm::Sha1,
        Algorithm::Sha256,
        Algorithm::Sha512,
    ];

    /// The lower-case name used on the wire, in the store and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "md5",
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the digest in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Algorithm::Md5 => 16,
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
        }
    }

    /// A fresh hasher for one stream: the same type the hasher pool runs, so
    /// every path (pool, a small upload hashed inline, the command line's
    /// standard input and pipes) hashes at the same speed.
    pub fn hasher(self) -> Hasher {
        Hasher::new(self)
    }

    /// Hashes a whole buffer in one call.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        let mut h = self.hasher();
        h.update(data);
        h.finalize()
    }
}

/// One stream's running hash, for any [`Algorithm`]: the single per-stream
/// hasher type of hashd.
///
/// MD5 is hashcore's own [`md5::Md5`], which the pool's hashers also batch
/// into SIMD lanes (they take the state out of the `Md5` variant); hashed
/// alone, it runs on the single-stream path, about a third faster than the
/// md-5 crate, which remains only as the tests' oracle. The other algorithms
/// are the RustCrypto hashers, held inline rather than boxed.
#[derive(Clone)]
pub enum Hasher {
    /// MD5 (hashcore's own).
    Md5(md5::Md5),
    /// SHA-1.
    Sha1(sha1::Sha1),
    /// SHA-256.
    Sha256(sha2::Sha256),
    /// SHA-512.
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// A hasher that has absorbed nothing.
    pub fn new(algo: Algorithm) -> Hasher {
        match algo {
            Algorithm::Md5 => Hasher::Md5(md5::Md5::new()),
            Algorithm::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    /// The algorithm this hasher computes.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Hasher::Md5(_) => Algorithm::Md5,
            Hasher::Sha1(_) => Algorithm::Sha1,
            Hasher::Sha256(_) => Algorithm::Sha256,
            Hasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// Absorbs `data` on this thread (MD5 on the single-stream path).
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// The digest of everything absorbed, [`Algorithm::digest_len`] bytes.
    pub fn finalize(self) -> Vec<u8> {
        match self {
            Hasher::Md5(h) => h.finalize().to_vec(),
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Hasher").field(&self.algorithm()).finish()
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name did not match any algorithm; the message lists the ones that do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAlgorithm(pub String);

impl fmt::Display for UnknownAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Algorithm::ALL.iter().map(|a| a.name()).collect();
        write!(
            f,
            "unsupported algorithm {:?} (supported: {})",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownAlgorithm {}

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name() == lower || a.name() == lower.replace('-', ""))
            .ok_or_else(|| UnknownAlgorithm(s.to_string()))
    }
}

/// Lower-case hexadecimal, the form every front end answers with.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// RFC 1321, appendix A.5: (input, MD5). Shared by every MD5 test.
#[cfg(test)]
pub(crate) const RFC1321_MD5: [(&str, &str); 7] = [
    ("", "d41d8cd98f00b204e9800998ecf8427e"),
    ("a", "0cc175b9c0f1b6a831c399e269772661"),
    ("abc", "900150983cd24fb0d6963f7d28e17f72"),
    ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
    (
        "abcdefghijklmnopqrstuvwxyz",
        "c3fcd3d76192e4007dfb496cca67e13b",
    ),
    (
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        "d174ab98d277d9f5a5611c2c9f419d9f",
    ),
    (
        "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
        "57edf4a22be3c955ac49da2e2107b67a",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1321, appendix A.5.
    #[test]
    fn md5_rfc1321_vectors() {
        let cases = RFC1321_MD5;
        for (input, want) in cases {
            assert_eq!(
                to_hex(&Algorithm::Md5.digest(input.as_bytes())),
                want,
                "{input:?}"
            );
        }
    }

    #[test]
    fn other_algorithms_known_answers() {
        assert_eq!(
            to_hex(&Algorithm::Sha1.digest(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            to_hex(&Algorithm::Sha256.digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(to_hex(&Algorithm::Sha512.digest(b"abc")).starts_with("ddaf35a193617aba"));
        for a in Algorithm::ALL {
            assert_eq!(a.digest(b"x").len(), a.digest_len());
        }
    }

    /// The md-5 crate is the oracle for hashcore's own MD5: pieces of every
    /// length around block boundaries, fed in uneven splits.
    #[test]
    fn md5_hasher_matches_the_md5_crate() {
        let mut rng = crate::testutil::XorShift::new(0x5eed_a160);
        for len in (0..300).chain([4095, 4096, 4097, 100_000]) {
            let data = rng.bytes(len);
            let mut h = Algorithm::Md5.hasher();
            assert!(matches!(h, Hasher::Md5(_)), "md5 is hashcore's own");
            let mut rest = &data[..];
            while !rest.is_empty() {
                let take = rng.range(0, rest.len().min(200));
                h.update(&rest[..take]);
                rest = &rest[take..];
            }
            let want: [u8; 16] = ::md5::Md5::digest(&data).into();
            assert_eq!(h.finalize(), want, "{len} bytes");
        }
    }

    #[test]
    fn hashers_report_their_algorithm_and_length() {
        for a in Algorithm::ALL {
            let h = a.hasher();
            assert_eq!(h.algorithm(), a);
            assert_eq!(format!("{h:?}"), format!("Hasher({a:?})"));
            assert_eq!(h.finalize().len(), a.digest_len());
        }
    }

    #[test]
    fn parses_names_and_rejects_others() {
        assert_eq!("MD5".parse::<Algorithm>(), Ok(Algorithm::Md5));
        assert_eq!("sha-256".parse::<Algorithm>(), Ok(Algorithm::Sha256));
        let err = "crc32".parse::<Algorithm>().unwrap_err();
        assert!(err.to_string().contains("crc32") && err.to_string().contains("sha512"));
    }
}
