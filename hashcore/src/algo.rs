//! The hash algorithms hashd offers, behind one small interface.
//!
//! Adding an algorithm means one variant in [`Algorithm`] and one arm in
//! [`Algorithm::hasher`]; every front end learns it from [`Algorithm::ALL`].

use std::fmt;
use std::str::FromStr;

use digest::DynDigest;

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

    /// A fresh single-stream hasher. MD5 streams that the hashers can batch
    /// into SIMD lanes do not come through here; see [`crate::md5`].
    pub fn hasher(self) -> Box<dyn DynDigest + Send> {
        match self {
            Algorithm::Md5 => Box::new(::md5::Md5::default()),
            Algorithm::Sha1 => Box::new(sha1::Sha1::default()),
            Algorithm::Sha256 => Box::new(sha2::Sha256::default()),
            Algorithm::Sha512 => Box::new(sha2::Sha512::default()),
        }
    }

    /// Hashes a whole buffer in one call.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        let mut h = self.hasher();
        h.update(data);
        h.finalize().into_vec()
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

    #[test]
    fn parses_names_and_rejects_others() {
        assert_eq!("MD5".parse::<Algorithm>(), Ok(Algorithm::Md5));
        assert_eq!("sha-256".parse::<Algorithm>(), Ok(Algorithm::Sha256));
        let err = "crc32".parse::<Algorithm>().unwrap_err();
        assert!(err.to_string().contains("crc32") && err.to_string().contains("sha512"));
    }
}
