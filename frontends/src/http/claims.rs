//! Digests a client claims for its upload, read from the request head (and,
//! for forms, from form fields), and the digest headers of final answers.
//!
//! Which header covers which bytes decides where it is accepted:
//! - `Content-MD5` (RFC 1864), `Repr-Digest` and `Content-Digest` (RFC 9530)
//!   describe the HTTP message's content. On a raw upload (`/files`) that is
//!   exactly the file (hashd refuses content codings and ranges), so they
//!   are checked against it. On a multipart upload they cover the whole
//!   form, not the file: hashd does not hash the form, so it refuses them
//!   (400) rather than compare a file digest with a form digest.
//! - `x-amz-checksum-<alg>` (S3), `x-goog-hash` (GCS) and tus's
//!   `Upload-Checksum` name the stored object's digest: checked against the
//!   file on both kinds of upload.
//! - Form fields (multipart only): `expected_<alg>` (hex or base64),
//!   `expected` (`<alg>:<hex>`), and S3's POST-form names `x-amz-checksum-<alg>`
//!   and `content-md5` (base64).
//!
//! A malformed value, or an algorithm hashd lacks, is a 400 before any byte
//! of the body is read. Limits: header values are bounded by hyper's head
//! limit; form fields by the 64 KiB per-field limit of the form parser.

use base64::Engine as _;
use hashcore::{Algorithm, Hashes};
use hyper::HeaderMap;

use super::query::clean_name;
use crate::{ApiError, Claim};

/// The prefix of S3's checksum headers and form fields.
const S3_PREFIX: &str = "x-amz-checksum-";

/// S3 headers under [`S3_PREFIX`] that are not checksums: the algorithm of
/// a trailing checksum, the checksum's type, and GetObject's request for
/// checksums. Ignored.
const S3_NOT_CHECKSUMS: [&str; 3] = [
    "x-amz-checksum-algorithm",
    "x-amz-checksum-type",
    "x-amz-checksum-mode",
];

fn bad(msg: String) -> ApiError {
    ApiError::BadRequest(msg)
}

/// Standard base64 (RFC 4648, padded, as every one of these headers uses)
/// of exactly `algo`'s digest length.
fn base64_digest(algo: Algorithm, value: &str, source: &str) -> Result<Vec<u8>, ApiError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|e| {
            bad(format!(
                "{source}: {:?} is not base64: {e}",
                clean_name(value)
            ))
        })?;
    length_checked(algo, bytes, source)
}

/// Lower- or upper-case hex of `algo`'s digest length, else base64.
fn hex_or_base64_digest(algo: Algorithm, value: &str, source: &str) -> Result<Vec<u8>, ApiError> {
    let value = value.trim();
    if value.len() == algo.digest_len() * 2 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        let bytes = (0..value.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&value[i..i + 2], 16).unwrap_or_default())
            .collect();
        return Ok(bytes);
    }
    base64_digest(algo, value, source)
}

fn length_checked(algo: Algorithm, bytes: Vec<u8>, source: &str) -> Result<Vec<u8>, ApiError> {
    if bytes.len() != algo.digest_len() {
        return Err(bad(format!(
            "{source}: a {algo} digest is {} bytes, this one has {}",
            algo.digest_len(),
            bytes.len()
        )));
    }
    Ok(bytes)
}

fn known(name: &str, source: &str) -> Result<Algorithm, ApiError> {
    name.parse::<Algorithm>().map_err(|_| {
        bad(format!(
            "{source}: algorithm {:?} is not one hashd computes (it has: {})",
            clean_name(name),
            Algorithm::ALL.map(|a| a.name()).join(", ")
        ))
    })
}

/// Every value of header `name` (each line; values that are not UTF-8 are
/// malformed).
fn values<'a>(headers: &'a HeaderMap, name: &str) -> Result<Vec<&'a str>, ApiError> {
    headers
        .get_all(name)
        .iter()
        .map(|v| {
            v.to_str()
                .map_err(|_| bad(format!("{name}: the value is not ASCII")))
        })
        .collect()
}

/// An RFC 9530 field (`Repr-Digest`, `Content-Digest`): a structured-field
/// dictionary of algorithm keys to byte sequences. Every line is parsed as
/// one dictionary, as RFC 9651 section 4.2 combines lines.
fn rfc9530(headers: &HeaderMap, name: &str, out: &mut Vec<Claim>) -> Result<(), ApiError> {
    let lines = values(headers, name)?;
    if lines.is_empty() {
        return Ok(());
    }
    let joined = lines.join(", ");
    let dict: sfv::Dictionary = sfv::Parser::new(&joined)
        .parse()
        .map_err(|e| bad(format!("{name}: not a structured-field dictionary: {e}")))?;
    for (key, entry) in &dict {
        let source = format!("{name} {}", key.as_str());
        let algo = Algorithm::from_rfc9530(key.as_str()).ok_or_else(|| {
            bad(format!(
                "{name}: algorithm {:?} is not one hashd computes (it has: {})",
                key.as_str(),
                Algorithm::ALL
                    .iter()
                    .filter_map(|a| a.spec().rfc9530)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        let bytes = match entry {
            sfv::ListEntry::Item(item) => match &item.bare_item {
                sfv::BareItem::ByteSequence(b) => b.clone(),
                _ => {
                    return Err(bad(format!(
                        "{source}: the value must be a byte sequence (:base64:)"
                    )))
                }
            },
            sfv::ListEntry::InnerList(_) => {
                return Err(bad(format!(
                    "{source}: the value must be a byte sequence (:base64:)"
                )))
            }
        };
        out.push(Claim {
            algo,
            digest: length_checked(algo, bytes, &source)?,
            source,
        });
    }
    Ok(())
}

/// The claims in an upload's request head. `multipart`: the headers that
/// describe the whole message (`Content-MD5`, `Repr-Digest`,
/// `Content-Digest`) are refused, see the module docs. Errors: 400 naming
/// the header and what is wrong with it.
pub fn from_headers(headers: &HeaderMap, multipart: bool) -> Result<Vec<Claim>, ApiError> {
    let mut out = Vec::new();
    for name in ["content-md5", "repr-digest", "content-digest"] {
        if multipart && headers.contains_key(name) {
            return Err(bad(format!(
                "{name} describes the whole multipart body, not the file, and hashd hashes only \
                 the file: send the file's digest in a form field (expected_md5=HEX, or \
                 expected=ALGO:HEX) or in x-amz-checksum-ALGO, or upload the file raw to /files"
            )));
        }
    }
    for v in values(headers, "content-md5")? {
        let digest = base64_digest(Algorithm::Md5, v, "Content-MD5")?;
        out.push(Claim {
            algo: Algorithm::Md5,
            digest,
            source: "Content-MD5".into(),
        });
    }
    rfc9530(headers, "repr-digest", &mut out)?;
    rfc9530(headers, "content-digest", &mut out)?;
    for name in headers.keys() {
        let name = name.as_str();
        let Some(alg) = name.strip_prefix(S3_PREFIX) else {
            continue;
        };
        if S3_NOT_CHECKSUMS.contains(&name) {
            continue;
        }
        let algo = Algorithm::ALL
            .into_iter()
            .find(|a| a.spec().s3_header == Some(name))
            .ok_or_else(|| {
                bad(format!(
                    "{name}: algorithm {:?} is not one hashd computes",
                    clean_name(alg)
                ))
            })?;
        for v in values(headers, name)? {
            out.push(Claim {
                algo,
                digest: base64_digest(algo, v, name)?,
                source: name.to_string(),
            });
        }
    }
    for line in values(headers, "x-goog-hash")? {
        for member in line.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            let (key, value) = member.split_once('=').ok_or_else(|| {
                bad(format!(
                    "x-goog-hash: {:?} is not KEY=BASE64",
                    clean_name(member)
                ))
            })?;
            let source = format!("x-goog-hash {}", key.trim());
            let algo = Algorithm::ALL
                .into_iter()
                .find(|a| a.spec().gcs_key == Some(key.trim()))
                .ok_or_else(|| {
                    bad(format!(
                        "x-goog-hash: algorithm {:?} is not one GCS and hashd share (crc32c, md5)",
                        clean_name(key)
                    ))
                })?;
            out.push(Claim {
                algo,
                digest: base64_digest(algo, value, &source)?,
                source,
            });
        }
    }
    for v in values(headers, "upload-checksum")? {
        // tus checksum extension: `ALGORITHM BASE64`.
        let (alg, value) = v.trim().split_once(' ').ok_or_else(|| {
            bad(format!(
                "Upload-Checksum: {:?} is not ALGORITHM BASE64",
                clean_name(v)
            ))
        })?;
        let algo = known(alg, "Upload-Checksum")?;
        out.push(Claim {
            algo,
            digest: base64_digest(algo, value, "Upload-Checksum")?,
            source: "Upload-Checksum".into(),
        });
    }
    Ok(out)
}

/// A form field that claims the file's digest, or `Ok(None)` for any other
/// field. Names (case-insensitive): `expected_<alg>` (hex or base64),
/// `expected` (`<alg>:<hex or base64>`), `x-amz-checksum-<alg>` and
/// `content-md5` (base64).
pub fn from_form_field(name: &str, value: &str) -> Result<Option<Claim>, ApiError> {
    let lower = name.to_ascii_lowercase();
    let source = format!("form field {}", clean_name(name));
    let claim = |algo: Algorithm, digest: Vec<u8>| Claim {
        algo,
        digest,
        source: source.clone(),
    };
    if lower == "expected" {
        let (alg, digest) = value
            .trim()
            .split_once(':')
            .ok_or_else(|| bad(format!("{source}: {:?} is not ALGO:HEX", clean_name(value))))?;
        let algo = known(alg, &source)?;
        return Ok(Some(claim(
            algo,
            hex_or_base64_digest(algo, digest, &source)?,
        )));
    }
    if let Some(alg) = lower.strip_prefix("expected_") {
        let algo = known(alg, &source)?;
        return Ok(Some(claim(
            algo,
            hex_or_base64_digest(algo, value, &source)?,
        )));
    }
    if lower == "content-md5" {
        let algo = Algorithm::Md5;
        return Ok(Some(claim(algo, base64_digest(algo, value, &source)?)));
    }
    if lower.starts_with(S3_PREFIX) && !S3_NOT_CHECKSUMS.contains(&lower.as_str()) {
        let algo = Algorithm::ALL
            .into_iter()
            .find(|a| a.spec().s3_header == Some(lower.as_str()))
            .ok_or_else(|| bad(format!("{source}: not an algorithm hashd computes")))?;
        return Ok(Some(claim(algo, base64_digest(algo, value, &source)?)));
    }
    Ok(None)
}

/// Headers naming a finished job's digests, each in its home header's
/// form: `x-amz-checksum-<alg>` (base64) for the algorithms S3 names, and
/// one `x-goog-hash` (`md5=…,crc32c=…`) for those GCS names. RFC 9530's
/// fields are sent only when asked for (see [`Wanted`]).
pub fn answer_headers(hashes: &Hashes) -> Vec<(String, String)> {
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let mut out = Vec::new();
    let mut goog = Vec::new();
    for (algo, digest) in hashes {
        if let Some(h) = algo.spec().s3_header {
            out.push((h.to_string(), b64(digest)));
        }
        if let Some(k) = algo.spec().gcs_key {
            goog.push(format!("{k}={}", b64(digest)));
        }
    }
    if !goog.is_empty() {
        out.push(("x-goog-hash".to_string(), goog.join(",")));
    }
    out
}

/// The digest fields a client asked for with RFC 9530 section 4's
/// `Want-Repr-Digest` and `Want-Content-Digest` (`sha-256=10, md5=3`:
/// algorithm keys with preferences 0 to 10, 0 meaning "not acceptable").
/// Each list holds the algorithms hashd has with a preference above 0,
/// most preferred first; keys hashd lacks and malformed fields are ignored,
/// as section 4 lets a recipient do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Wanted {
    /// From `Want-Repr-Digest`.
    pub repr: Vec<Algorithm>,
    /// From `Want-Content-Digest`.
    pub content: Vec<Algorithm>,
}

impl Wanted {
    /// Reads both fields from a request head (each may come in several
    /// lines, joined as one dictionary).
    pub fn from_headers(headers: &HeaderMap) -> Wanted {
        Wanted {
            repr: wanted(headers, "want-repr-digest"),
            content: wanted(headers, "want-content-digest"),
        }
    }

    /// True if neither field asked for anything hashd has.
    pub fn is_empty(&self) -> bool {
        self.repr.is_empty() && self.content.is_empty()
    }
}

fn wanted(headers: &HeaderMap, name: &str) -> Vec<Algorithm> {
    let lines: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if lines.is_empty() {
        return Vec::new();
    }
    let Ok(dict) = sfv::Parser::new(&lines.join(", ")).parse::<sfv::Dictionary>() else {
        return Vec::new();
    };
    let mut prefs: Vec<(Algorithm, i64)> = Vec::new();
    for (key, entry) in &dict {
        let (Some(algo), sfv::ListEntry::Item(item)) =
            (Algorithm::from_rfc9530(key.as_str()), entry)
        else {
            continue;
        };
        match item.bare_item.as_integer().map(i64::from) {
            Some(p @ 1..=10) if !prefs.iter().any(|(a, _)| *a == algo) => prefs.push((algo, p)),
            _ => {}
        }
    }
    // Stable: equal preferences keep the client's order.
    prefs.sort_by_key(|&(_, p)| std::cmp::Reverse(p));
    prefs.into_iter().map(|(a, _)| a).collect()
}

/// An RFC 9530 digest field's value (`sha-256=:base64:, md5=:base64:`):
/// the digests in `hashes` of the algorithms in `wanted`, in that order;
/// `None` if there are none.
pub fn digest_field(wanted: &[Algorithm], hashes: &Hashes) -> Option<String> {
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let members: Vec<String> = wanted
        .iter()
        .filter_map(|want| {
            let key = want.spec().rfc9530?;
            let (_, digest) = hashes.iter().find(|(a, _)| a == want)?;
            Some(format!("{key}=:{}:", b64(digest)))
        })
        .collect();
    (!members.is_empty()).then(|| members.join(", "))
}

/// `(name, hex)` pairs as parsed digests; pairs whose name or hex is not
/// understood are left out (they come from the store, which wrote them).
pub fn parse_hashes(pairs: &[(String, String)]) -> Hashes {
    pairs
        .iter()
        .filter_map(|(name, hex)| {
            let algo: Algorithm = name.parse().ok()?;
            let bytes: Option<Vec<u8>> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                .collect();
            Some((algo, bytes?))
        })
        .collect()
}

/// Base64 of each hex digest, for the answers' `hashes_base64`.
pub fn base64_forms(hashes: &Hashes) -> Vec<(String, String)> {
    hashes
        .iter()
        .map(|(a, d)| {
            (
                a.name().to_string(),
                base64::engine::general_purpose::STANDARD.encode(d),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hashcore::to_hex;

    fn head(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn want_fields_list_known_algorithms_by_preference() {
        use Algorithm::*;
        let w = Wanted::from_headers(&head(&[
            ("want-repr-digest", "md5=3, sha-256=10"),
            ("want-repr-digest", "sha-512=3, unixsum=9, sha=0, crc32c=1"),
            ("want-content-digest", "sha-512=1"),
        ]));
        assert_eq!(w.repr, [Sha256, Md5, Sha512, Crc32c]);
        assert_eq!(w.content, [Sha512]);
        // Malformed, out of range, not integers: nothing wanted.
        for bad in [
            "sha-256",
            "sha-256=11",
            "sha-256=:YQ==:",
            "sha-256=(1 2)",
            "=;",
        ] {
            let w = Wanted::from_headers(&head(&[("want-repr-digest", bad)]));
            assert!(w.is_empty(), "{bad}");
        }
        let hashes = vec![
            (Md5, Md5.digest(b"abc")),
            (Sha256, Sha256.digest(b"abc")),
            (Blake3, Blake3.digest(b"abc")),
        ];
        assert_eq!(
            digest_field(&[Sha512, Sha256, Md5], &hashes).as_deref(),
            Some("sha-256=:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=:, md5=:kAFQmDzST7DWlj99KOF/cg==:")
        );
        assert_eq!(digest_field(&[Sha512], &hashes), None);
    }

    #[test]
    fn every_header_form_parses_to_its_algorithm_and_bytes() {
        let md5 = Algorithm::Md5.digest(b"abc");
        let sha = Algorithm::Sha256.digest(b"abc");
        let crc = Algorithm::Crc32c.digest(b"abc");
        let b = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
        let h = head(&[
            ("content-md5", &b(&md5)),
            (
                "repr-digest",
                &format!("sha-256=:{}:, md5=:{}:", b(&sha), b(&md5)),
            ),
            ("x-amz-checksum-crc32c", &b(&crc)),
            ("x-amz-checksum-algorithm", "CRC32C"),
            (
                "x-goog-hash",
                &format!("crc32c={},md5={}", b(&crc), b(&md5)),
            ),
            ("upload-checksum", &format!("sha256 {}", b(&sha))),
        ]);
        let claims = from_headers(&h, false).unwrap();
        let got: Vec<(Algorithm, &[u8])> = claims.iter().map(|c| (c.algo, &c.digest[..])).collect();
        assert_eq!(
            got,
            [
                (Algorithm::Md5, &md5[..]),
                (Algorithm::Sha256, &sha[..]),
                (Algorithm::Md5, &md5[..]),
                (Algorithm::Crc32c, &crc[..]),
                (Algorithm::Crc32c, &crc[..]),
                (Algorithm::Md5, &md5[..]),
                (Algorithm::Sha256, &sha[..]),
            ]
        );
    }

    #[test]
    fn malformed_and_unknown_are_refused_with_the_header_named() {
        for (k, v, says) in [
            ("content-md5", "not base64!", "Content-MD5"),
            ("content-md5", "YWJj", "16 bytes"),
            ("repr-digest", "sha-256=abc", "byte sequence"),
            ("repr-digest", "sha-256=:YWJj", "structured-field"),
            ("repr-digest", "whirlpool=:YWJj:", "whirlpool"),
            ("x-amz-checksum-whirlpool", "YWJj", "whirlpool"),
            ("x-goog-hash", "adler=YWJj", "adler"),
            ("upload-checksum", "md5", "ALGORITHM BASE64"),
        ] {
            let err = from_headers(&head(&[(k, v)]), false).unwrap_err();
            assert!(err.to_string().contains(says), "{k}: {v}: {err}");
            assert_eq!(err.status(), hyper::StatusCode::BAD_REQUEST);
        }
        let err = from_headers(&head(&[("content-md5", "x")]), true).unwrap_err();
        assert!(err.to_string().contains("whole multipart body"), "{err}");
    }

    #[test]
    fn form_fields() {
        let md5 = Algorithm::Md5.digest(b"abc");
        let hex = to_hex(&md5);
        for (name, value) in [
            ("expected_md5", hex.clone()),
            ("EXPECTED", format!("md5:{hex}")),
            (
                "content-md5",
                base64::engine::general_purpose::STANDARD.encode(&md5),
            ),
        ] {
            let c = from_form_field(name, &value).unwrap().unwrap();
            assert_eq!(
                (c.algo, c.digest.clone()),
                (Algorithm::Md5, md5.clone()),
                "{name}"
            );
        }
        assert_eq!(from_form_field("comment", "x").unwrap(), None);
        assert!(from_form_field("expected_md5", "abc").is_err());
        assert!(from_form_field("expected", "whirlpool:00").is_err());
    }
}
