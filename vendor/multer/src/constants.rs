use std::borrow::Cow;

pub(crate) const DEFAULT_WHOLE_STREAM_SIZE_LIMIT: u64 = std::u64::MAX;
pub(crate) const DEFAULT_PER_FIELD_SIZE_LIMIT: u64 = std::u64::MAX;

pub(crate) const MAX_HEADERS: usize = 32;

// PATCH (hashd): upstream buffered these three without limit while it looked
// for their end, so a client could make it hold any amount of memory.

/// Largest header block of one part, CRLFCRLF included. Browsers send a
/// few hundred bytes; 64 KiB leaves room for long file names.
pub(crate) const MAX_PART_HEADERS_BYTES: usize = 64 << 10;
/// Most bytes before the first boundary (the preamble; browsers send none).
pub(crate) const MAX_PREAMBLE_BYTES: usize = 64 << 10;
/// Most spaces and tabs between a boundary and its CRLF (RFC 2046's
/// transport padding; clients send none).
pub(crate) const MAX_TRANSPORT_PADDING: usize = 1 << 10;
pub(crate) const BOUNDARY_EXT: &str = "--";
#[allow(dead_code)]
pub(crate) const CR: &str = "\r";
#[allow(dead_code)]
pub(crate) const LF: &str = "\n";
pub(crate) const CRLF: &str = "\r\n";
pub(crate) const CRLF_CRLF: &str = "\r\n\r\n";

#[derive(PartialEq)]
pub(crate) enum ContentDispositionAttr {
    Name,
    FileName,
}

impl ContentDispositionAttr {
    /// Extract ContentDisposition Attribute from header.
    ///
    /// Some older clients may not quote the name or filename, so we allow them.
    ///
    /// PATCH (hashd): the header is split into its parameters (RFC 6266
    /// section 4.1) and their names are matched case-insensitively (RFC 7578
    /// section 4.2, RFC 6266 section 4.1). Upstream searched the header for
    /// the lower-case name, so `NAME="file"` was no name at all, text inside
    /// another parameter's quoted value could be taken for a parameter, and a
    /// `filename*` before `filename` hid it. For `FileName`, `filename*`
    /// (RFC 8187, UTF-8 or ISO-8859-1) wins over `filename` (RFC 6266 section
    /// 4.3). Bytes that are not UTF-8 are replaced (U+FFFD) rather than
    /// losing the whole value. The first occurrence of a parameter counts.
    pub fn extract_from<'h>(&self, header: &'h [u8]) -> Option<Cow<'h, str>> {
        let wanted: &[u8] = match self {
            ContentDispositionAttr::Name => b"name",
            ContentDispositionAttr::FileName => b"filename",
        };
        if *self == ContentDispositionAttr::FileName {
            let extended = parameters(header)
                .find(|(name, _)| name.eq_ignore_ascii_case(b"filename*"))
                .and_then(|(_, value)| decode_ext_value(&value));
            if extended.is_some() {
                return extended.map(Cow::Owned);
            }
        }
        parameters(header)
            .find(|(name, _)| name.eq_ignore_ascii_case(wanted))
            .map(|(_, value)| match value {
                Cow::Borrowed(bytes) => String::from_utf8_lossy(bytes),
                Cow::Owned(bytes) => Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
            })
    }
}

fn trim_ascii_ws(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |i| i + 1);
    &bytes[start..end.max(start)]
}

/// The `name=value` parameters after the disposition type, names as sent
/// (trimmed), values unquoted. A quoted value ends at the first `"` not
/// preceded by a backslash, and only `\"` is unescaped: browsers send
/// Windows paths with literal backslashes. An unquoted value runs to the next
/// `;`, trimmed. A parameter without `=`, or with an unterminated quoted
/// value, is skipped.
fn parameters(header: &[u8]) -> impl Iterator<Item = (&[u8], Cow<'_, [u8]>)> {
    // Skip the disposition type (`form-data`).
    let mut rest = match memchr::memchr(b';', header) {
        Some(i) => &header[i + 1..],
        None => &header[header.len()..],
    };
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        let name_end = memchr::memchr2(b'=', b';', rest).unwrap_or(rest.len());
        let name = trim_ascii_ws(&rest[..name_end]);
        if rest.get(name_end) != Some(&b'=') {
            rest = rest.get(name_end + 1..).unwrap_or(&[]);
            continue;
        }
        let after = &rest[name_end + 1..];
        let value_start = after.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(after.len());
        let after = &after[value_start..];
        if let Some(quoted) = after.strip_prefix(b"\"") {
            let mut k = 0;
            let close = loop {
                match memchr::memchr(b'"', &quoted[k..]) {
                    Some(i) if k + i > 0 && quoted[k + i - 1] == b'\\' => k += i + 1,
                    Some(i) => break Some(k + i),
                    None => break None,
                }
            };
            let Some(close) = close else {
                rest = &[];
                return None;
            };
            let raw = &quoted[..close];
            let after_close = &quoted[close + 1..];
            rest = match memchr::memchr(b';', after_close) {
                Some(i) => &after_close[i + 1..],
                None => &[],
            };
            let value = if memchr::memmem::find(raw, b"\\\"").is_some() {
                let text = raw.split(|b| *b == b'"').collect::<Vec<_>>();
                let mut out = Vec::with_capacity(raw.len());
                for (i, piece) in text.iter().enumerate() {
                    if i > 0 {
                        out.pop(); // the backslash before this quote
                        out.push(b'"');
                    }
                    out.extend_from_slice(piece);
                }
                Cow::Owned(out)
            } else {
                Cow::Borrowed(raw)
            };
            return Some((name, value));
        }
        let value_end = memchr::memchr(b';', after).unwrap_or(after.len());
        let value = trim_ascii_ws(&after[..value_end]);
        rest = after.get(value_end + 1..).unwrap_or(&[]);
        return Some((name, Cow::Borrowed(value)));
    })
}

/// An RFC 8187 `ext-value`: `charset'language'percent-encoded`, for the
/// charsets every recipient must support (UTF-8, ISO-8859-1). `None` for
/// any other charset or a malformed value.
fn decode_ext_value(value: &[u8]) -> Option<String> {
    let mut parts = value.splitn(3, |b| *b == b'\'');
    let (charset, _language, encoded) = (parts.next()?, parts.next()?, parts.next()?);
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut i = 0;
    while i < encoded.len() {
        if encoded[i] == b'%' {
            let hex = std::str::from_utf8(encoded.get(i + 1..i + 3)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            bytes.push(encoded[i]);
            i += 1;
        }
    }
    if charset.eq_ignore_ascii_case(b"utf-8") {
        String::from_utf8(bytes).ok()
    } else if charset.eq_ignore_ascii_case(b"iso-8859-1") {
        Some(bytes.iter().map(|&b| b as char).collect())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_content_disposition_name_only() {
        let val = br#"form-data; name="my_field""#;
        let name = ContentDispositionAttr::Name.extract_from(val);
        let filename = ContentDispositionAttr::FileName.extract_from(val);
        assert_eq!(name.unwrap(), "my_field");
        assert!(filename.is_none());

        let val = br#"form-data; name=my_field  "#;
        let name = ContentDispositionAttr::Name.extract_from(val);
        let filename = ContentDispositionAttr::FileName.extract_from(val);
        assert_eq!(name.unwrap(), "my_field");
        assert!(filename.is_none());

        let val = br#"form-data; name  =  my_field  "#;
        let name = ContentDispositionAttr::Name.extract_from(val);
        let filename = ContentDispositionAttr::FileName.extract_from(val);
        assert_eq!(name.unwrap(), "my_field");
        assert!(filename.is_none());

        let val = br#"form-data; name  =  "#;
        let name = ContentDispositionAttr::Name.extract_from(val);
        let filename = ContentDispositionAttr::FileName.extract_from(val);
        assert_eq!(name.unwrap(), "");
        assert!(filename.is_none());
    }

    #[test]
    fn test_content_disposition_extraction() {
        let val = br#"form-data; name="my_field"; filename="file abc.txt""#;
        let name = ContentDispositionAttr::Name.extract_from(val);
        let filename = ContentDispositionAttr::FileName.extract_from(val);
        assert_eq!(name.unwrap(), "my_field");
        assert_eq!(filename.unwrap(), "file abc.txt");

        let val = "form-data; name=\"你好\"; filename=\"file abc.txt\"".as_bytes();
        let name = ContentDispositionAttr::Name.extract_from(val);
        let filename = ContentDispositionAttr::FileName.extract_from(val);
        assert_eq!(name.unwrap(), "你好");
        assert_eq!(filename.unwrap(), "file abc.txt");

        let val = "form-data; name=\"কখগ\"; filename=\"你好.txt\"".as_bytes();
        let name = ContentDispositionAttr::Name.extract_from(val);
        let filename = ContentDispositionAttr::FileName.extract_from(val);
        assert_eq!(name.unwrap(), "কখগ");
        assert_eq!(filename.unwrap(), "你好.txt");
    }

    #[test]
    fn test_content_disposition_file_name_only() {
        // These are technically malformed, as RFC 7578 says the `name`
        // parameter _must_ be included. But okay.
        let val = br#"form-data; filename="file-name.txt""#;
        let name = ContentDispositionAttr::Name.extract_from(val);
        let filename = ContentDispositionAttr::FileName.extract_from(val);
        assert_eq!(filename.unwrap(), "file-name.txt");
        assert!(name.is_none());

        let val = "form-data; filename=\"কখগ-你好.txt\"".as_bytes();
        let name = ContentDispositionAttr::Name.extract_from(val);
        let filename = ContentDispositionAttr::FileName.extract_from(val);
        assert_eq!(filename.unwrap(), "কখগ-你好.txt");
        assert!(name.is_none());
    }

    #[test]
    fn test_content_distribution_misordered_fields() {
        let val = br#"form-data; filename=file-name.txt; name=file"#;
        let name = ContentDispositionAttr::Name.extract_from(val);
        let filename = ContentDispositionAttr::FileName.extract_from(val);
        assert_eq!(filename.unwrap(), "file-name.txt");
        assert_eq!(name.unwrap(), "file");

        let val = br#"form-data; filename="file-name.txt"; name="file""#;
        let name = ContentDispositionAttr::Name.extract_from(val);
        let filename = ContentDispositionAttr::FileName.extract_from(val);
        assert_eq!(filename.unwrap(), "file-name.txt");
        assert_eq!(name.unwrap(), "file");

        let val = "form-data; filename=\"你好.txt\"; name=\"কখগ\"".as_bytes();
        let name = ContentDispositionAttr::Name.extract_from(val);
        let filename = ContentDispositionAttr::FileName.extract_from(val);
        assert_eq!(name.unwrap(), "কখগ");
        assert_eq!(filename.unwrap(), "你好.txt");
    }

    #[test]
    fn test_content_disposition_name_unquoted() {
        let val = br#"form-data; name=my_field"#;
        let name = ContentDispositionAttr::Name.extract_from(val);
        let filename = ContentDispositionAttr::FileName.extract_from(val);
        assert_eq!(name.unwrap(), "my_field");
        assert!(filename.is_none());

        let val = br#"form-data; name=my_field; filename=file-name.txt"#;
        let name = ContentDispositionAttr::Name.extract_from(val);
        let filename = ContentDispositionAttr::FileName.extract_from(val);
        assert_eq!(name.unwrap(), "my_field");
        assert_eq!(filename.unwrap(), "file-name.txt");
    }

    #[test]
    fn test_content_disposition_name_quoted() {
        let val = br#"form-data; name="my;f;ield""#;
        let name = ContentDispositionAttr::Name.extract_from(val);
        let filename = ContentDispositionAttr::FileName.extract_from(val);
        assert_eq!(name.unwrap(), "my;f;ield");
        assert!(filename.is_none());

        let val = br#"form-data; name=my_field; filename = "file;name.txt""#;
        let name = ContentDispositionAttr::Name.extract_from(val);
        assert_eq!(name.unwrap(), "my_field");
        let filename = ContentDispositionAttr::FileName.extract_from(val);
        assert_eq!(filename.unwrap(), "file;name.txt");

        let val = br#"form-data; name=; filename=filename.txt"#;
        let name = ContentDispositionAttr::Name.extract_from(val);
        let filename = ContentDispositionAttr::FileName.extract_from(val);
        assert_eq!(name.unwrap(), "");
        assert_eq!(filename.unwrap(), "filename.txt");

        let val = br#"form-data; name=";"; filename=";""#;
        let name = ContentDispositionAttr::Name.extract_from(val);
        let filename = ContentDispositionAttr::FileName.extract_from(val);
        assert_eq!(name.unwrap(), ";");
        assert_eq!(filename.unwrap(), ";");
    }

    #[test]
    fn test_content_disposition_name_escaped_quote() {
        let val = br#"form-data; name="my\"field\"name""#;
        let name = ContentDispositionAttr::Name.extract_from(val);
        assert_eq!(name.unwrap(), r#"my"field"name"#);

        let val = br#"form-data; name="myfield\"name""#;
        let name = ContentDispositionAttr::Name.extract_from(val);
        assert_eq!(name.unwrap(), r#"myfield"name"#);
    }
}
