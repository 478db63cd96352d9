//! File-name escaping and quoting, byte for byte as coreutils 9.1 does it.
//!
//! Three different conventions meet in `md5sum`-style output:
//! - checksum lines ([`push_line_name`]): a name containing `\`, newline or
//!   carriage return makes the line start with `\`, and those three bytes are
//!   written `\\`, `\n`, `\r`;
//! - check results ([`push_result_name`]): only a newline triggers escaping
//!   (so that `--check` output stays one line per file), but then all three
//!   bytes are escaped;
//! - diagnostics on stderr ([`quote`]): gnulib's `quotef`, the shell-escape
//!   quoting style with `:` also quoted, as seen in a UTF-8 locale.

/// True if a checksum line for `name` must start with a backslash.
pub fn needs_line_escape(name: &[u8]) -> bool {
    name.iter().any(|&b| matches!(b, b'\\' | b'\n' | b'\r'))
}

/// Appends `name` to a checksum line, escaping it if `escape` is set. The
/// caller writes the leading backslash, which comes before the whole line.
pub fn push_line_name(out: &mut Vec<u8>, name: &[u8], escape: bool) {
    if !escape {
        out.extend_from_slice(name);
        return;
    }
    for &b in name {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

/// Appends `name` as a `--check` result line shows it: escaped, with a
/// leading backslash, only if it contains a newline.
pub fn push_result_name(out: &mut Vec<u8>, name: &[u8]) {
    let escape = name.contains(&b'\n');
    if escape {
        out.push(b'\\');
    }
    push_line_name(out, name, escape);
}

/// Reverses [`push_line_name`] for a name read from a checksum file whose
/// line started with a backslash. `None` for anything but `\\`, `\n`, `\r`
/// after a backslash, a trailing lone backslash, or a NUL byte.
pub fn unescape_name(escaped: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(escaped.len());
    let mut bytes = escaped.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'\\' => match bytes.next()? {
                b'\\' => out.push(b'\\'),
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                _ => return None,
            },
            0 => return None,
            _ => out.push(b),
        }
    }
    Some(out)
}

/// Quotes a file name for a diagnostic, as coreutils' `quotef` does in a
/// UTF-8 locale: unchanged if the shell would read it back as is; else in
/// double quotes if it holds a `'` and nothing that needs escaping; else in
/// single quotes, with `'\''` for `'` and `$'\n'`-style sequences for
/// control characters and bytes that are not valid UTF-8.
///
/// Printability of non-ASCII characters is approximated as "not a control
/// character": glibc also escapes unassigned code points, which we cannot
/// know without Unicode tables.
pub fn quote(name: &[u8]) -> String {
    let units = units(name);
    if !needs_quoting(name.len(), &units) {
        return String::from_utf8_lossy(name).into_owned();
    }
    let has_single_quote = units.iter().any(|u| matches!(u, Unit::Char(_, '\'')));
    if has_single_quote && units.iter().all(|u| is_double_quote_safe(name.len(), u)) {
        return format!("\"{}\"", String::from_utf8_lossy(name));
    }
    let mut out = String::from("'");
    // Inside a `$'...'` section, opened by an escape and closed before the
    // next literal character.
    let mut in_dollar = false;
    for unit in &units {
        let escape = match *unit {
            // gnulib writes `'\''` without closing a `$'...'` first: its
            // first quote closes that section.
            Unit::Char(_, '\'') => {
                out.push_str("'\\''");
                in_dollar = false;
                continue;
            }
            Unit::Char(_, c) => char_escape(c),
            Unit::Byte(b) => Some(octal(b)),
        };
        match escape {
            Some(seq) => {
                if !in_dollar {
                    out.push_str("'$'");
                    in_dollar = true;
                }
                out.push_str(&seq);
            }
            None => {
                if in_dollar {
                    out.push_str("''");
                    in_dollar = false;
                }
                if let Unit::Char(_, c) = *unit {
                    out.push(c);
                }
            }
        }
    }
    out.push('\'');
    out
}

/// One decoded piece of a name: a character at a byte offset, or a byte that
/// is not part of valid UTF-8.
#[derive(Clone, Copy, Debug)]
enum Unit {
    Char(usize, char),
    Byte(u8),
}

fn units(name: &[u8]) -> Vec<Unit> {
    let mut units = Vec::with_capacity(name.len());
    let mut offset = 0;
    for chunk in name.utf8_chunks() {
        for (i, c) in chunk.valid().char_indices() {
            units.push(Unit::Char(offset + i, c));
        }
        offset += chunk.valid().len();
        units.extend(chunk.invalid().iter().map(|&b| Unit::Byte(b)));
        offset += chunk.invalid().len();
    }
    units
}

/// Characters that never need quoting, wherever they appear.
fn is_plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '%' | '+' | ',' | '-' | '.' | '/' | ']' | '_' | '@')
}

fn needs_quoting(len: usize, units: &[Unit]) -> bool {
    len == 0
        || units.iter().any(|u| match *u {
            Unit::Byte(_) => true,
            Unit::Char(i, c) => match c {
                '#' | '~' => i == 0,
                '{' | '}' => len == 1,
                c if c.is_ascii() => !is_plain(c),
                c => c.is_control(),
            },
        })
}

/// gnulib's `c_and_shell_quote_compat`: may appear between double quotes
/// without any escaping.
fn is_double_quote_safe(len: usize, unit: &Unit) -> bool {
    match *unit {
        Unit::Byte(_) => false,
        Unit::Char(i, c) => match c {
            ' ' | '\'' | ':' => true,
            '#' | '~' => i == 0,
            '{' | '}' => len == 1,
            c if c.is_ascii() => is_plain(c),
            c => !c.is_control(),
        },
    }
}

/// The `$'...'` escape for a character, if it needs one.
fn char_escape(c: char) -> Option<String> {
    let named = match c {
        '\x07' => "\\a",
        '\x08' => "\\b",
        '\x0c' => "\\f",
        '\n' => "\\n",
        '\r' => "\\r",
        '\t' => "\\t",
        '\x0b' => "\\v",
        c if c.is_control() => {
            let mut buf = [0; 4];
            return Some(c.encode_utf8(&mut buf).bytes().map(octal).collect());
        }
        _ => return None,
    };
    Some(named.to_string())
}

fn octal(b: u8) -> String {
    format!("\\{:03o}", b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_name(name: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        push_line_name(&mut out, name, needs_line_escape(name));
        out
    }

    #[test]
    fn line_names_escape_backslash_newline_and_carriage_return() {
        assert_eq!(line_name(b"plain name"), b"plain name");
        assert_eq!(line_name(b"back\\slash"), b"back\\\\slash");
        assert_eq!(line_name(b"new\nline"), b"new\\nline");
        assert_eq!(line_name(b"cr\rx"), b"cr\\rx");
        assert!(!needs_line_escape(b"tab\tx"));
    }

    #[test]
    fn result_names_escape_only_for_newline() {
        let mut out = Vec::new();
        push_result_name(&mut out, b"back\\slash\r");
        assert_eq!(out, b"back\\slash\r");
        out.clear();
        push_result_name(&mut out, b"m\nix\\b\rc");
        assert_eq!(out, b"\\m\\nix\\\\b\\rc");
    }

    #[test]
    fn unescape_round_trips_and_rejects_unknown_escapes() {
        let name = b"a\\b\nc\rd";
        assert_eq!(unescape_name(&line_name(name)).as_deref(), Some(&name[..]));
        assert_eq!(unescape_name(b"a\\qb"), None);
        assert_eq!(unescape_name(b"trailing\\"), None);
        assert_eq!(unescape_name(b"nul\0"), None);
    }

    /// Expected values recorded from coreutils 9.1 `md5sum` error messages
    /// under `LANG=C.UTF-8`.
    #[test]
    fn quote_matches_coreutils_quotef() {
        let cases: &[(&[u8], &str)] = &[
            (b"plain-name_1.txt", "plain-name_1.txt"),
            (b"a#h", "a#h"),
            (b"#h", "'#h'"),
            (b"~x", "'~x'"),
            (b"a~", "a~"),
            (b"a{b", "a{b"),
            (b"{", "'{'"),
            (b"a]", "a]"),
            (b"a+@,%", "a+@,%"),
            (b"a:b", "'a:b'"),
            (b"a=b", "'a=b'"),
            (b"a^", "'a^'"),
            (b"a?", "'a?'"),
            (b"", "''"),
            (b"no such", "'no such'"),
            (b"a\"b", "'a\"b'"),
            (b"a\\b", "'a\\b'"),
            (b"q'x", "\"q'x\""),
            (b"a'b c", "\"a'b c\""),
            (b"#a'", "\"#a'\""),
            (b"a#'", "'a#'\\'''"),
            (b"'", "\"'\""),
            ("é".as_bytes(), "é"),
            ("é'".as_bytes(), "\"é'\""),
            (b"nl\nx", "'nl'$'\\n''x'"),
            (b"x\n", "'x'$'\\n'"),
            (b"t\tx", "'t'$'\\t''x'"),
            (b"a'\nb", "'a'\\'''$'\\n''b'"),
            (b"\x80x", "''$'\\200''x'"),
            (b"\x7f", "''$'\\177'"),
            (b"\x01\x02z", "''$'\\001\\002''z'"),
            (b"\xe2\x82", "''$'\\342\\202'"),
            (b"a\xc3", "'a'$'\\303'"),
            ("\u{85}".as_bytes(), "''$'\\302\\205'"),
            ("\u{a0}".as_bytes(), "\u{a0}"),
            (b"m\nix\\b\rc", "'m'$'\\n''ix\\b'$'\\r''c'"),
        ];
        for &(name, want) in cases {
            assert_eq!(quote(name), want, "{:?}", String::from_utf8_lossy(name));
        }
    }
}
