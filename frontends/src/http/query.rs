//! Reading parameters: query strings, form bodies, and the several ways the
//! original API passes a job id.

use std::borrow::Cow;

use crate::ApiError;

/// Decodes `application/x-www-form-urlencoded` (also used by query strings).
/// Invalid escapes are kept literally rather than rejected, as browsers do.
pub fn decode_component(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The pairs of a query string or form body, decoded, in order.
pub fn pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode_component(k), decode_component(v)),
            None => (decode_component(p), String::new()),
        })
        .collect()
}

/// The first value of `key`, if present.
pub fn get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A boolean flag: absent is false; present with no value, or `1`, `true`,
/// `yes`, `on` is true; `0`, `false`, `no`, `off` is false (any case).
/// Anything else is a 400 rather than a guess.
pub fn flag(pairs: &[(String, String)], key: &str) -> Result<bool, ApiError> {
    let Some(v) = get(pairs, key) else {
        return Ok(false);
    };
    match v.to_ascii_lowercase().as_str() {
        "" | "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ApiError::BadRequest(format!(
            "`{key}` must be true or false, got {:?}",
            clean_name(v)
        ))),
    }
}

/// The parameters hashd reads, each of which must have one value: a key
/// given twice with different values (or `algo` and `algorithm` that
/// disagree) is a 400, not a silent choice of one.
pub fn single_valued(pairs: &[(String, String)]) -> Result<(), ApiError> {
    const KEYS: [&str; 8] = [
        "algo",
        "algorithm",
        "wait",
        "name",
        "status",
        "limit",
        "after",
        "file_id",
    ];
    fn canonical(k: &str) -> &str {
        if k == "algorithm" {
            "algo"
        } else {
            k
        }
    }
    for (i, (k, v)) in pairs.iter().enumerate() {
        if !KEYS.contains(&k.as_str()) {
            continue;
        }
        let clash = pairs[i + 1..]
            .iter()
            .any(|(k2, v2)| canonical(k2) == canonical(k) && v2 != v);
        if clash {
            return Err(ApiError::BadRequest(format!(
                "parameter `{}` is given twice with different values",
                canonical(k)
            )));
        }
    }
    Ok(())
}

/// Finds a `file_id` in a request body: JSON `{"file_id": ID}` (string or
/// number), or a form body `file_id=ID`.
pub fn id_from_body(body: &[u8]) -> Option<String> {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        return match v.get("file_id")? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
    }
    let text = std::str::from_utf8(body).ok()?;
    get(&pairs(text.trim()), "file_id").map(str::to_string)
}

/// A file name safe to show and store: control characters replaced, length
/// bounded. Names are labels only; they never reach the filesystem.
pub fn clean_name(name: &str) -> Cow<'_, str> {
    const MAX_NAME_CHARS: usize = 255;
    if name.chars().count() <= MAX_NAME_CHARS && !name.chars().any(char::is_control) {
        return Cow::Borrowed(name);
    }
    Cow::Owned(
        name.chars()
            .take(MAX_NAME_CHARS)
            .map(|c| if c.is_control() { '?' } else { c })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_and_plus() {
        assert_eq!(decode_component("a%20b+c"), "a b c");
        assert_eq!(decode_component("100%"), "100%");
        assert_eq!(decode_component("%zz%4"), "%zz%4");
        assert_eq!(decode_component("%00x"), "\0x");
        assert_eq!(decode_component("%ff"), "\u{fffd}");
    }

    #[test]
    fn reads_pairs_and_flags() {
        let p = pairs("file_id=abc&wait&algo=sha256&wait2=false");
        assert_eq!(get(&p, "file_id"), Some("abc"));
        assert_eq!(flag(&p, "wait"), Ok(true));
        assert_eq!(flag(&p, "wait2"), Ok(false));
        assert_eq!(flag(&p, "missing"), Ok(false));
        assert!(flag(&pairs("wait=maybe"), "wait").is_err());
        assert!(single_valued(&pairs("algo=md5&x=1&algorithm=md5")).is_ok());
        assert!(single_valued(&pairs("limit=1&limit=2")).is_err());
        assert!(single_valued(&pairs("other=1&other=2")).is_ok());
    }

    #[test]
    fn id_in_json_or_form_bodies() {
        assert_eq!(id_from_body(br#"{"file_id": "x1"}"#), Some("x1".into()));
        assert_eq!(id_from_body(br#"{"file_id": 42}"#), Some("42".into()));
        assert_eq!(id_from_body(b"file_id=-1"), Some("-1".into()));
        assert_eq!(id_from_body(br#"{"other": 1}"#), None);
        assert_eq!(id_from_body(b"\xff\xfe"), None);
    }

    #[test]
    fn names_are_cleaned() {
        assert_eq!(clean_name("a b.txt"), "a b.txt");
        assert_eq!(clean_name("a\nb"), "a?b");
        assert_eq!(clean_name(&"x".repeat(300)).len(), 255);
    }
}
