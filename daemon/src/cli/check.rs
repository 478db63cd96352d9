//! `hashd check` and `hashd sum -c`: verifying checksum files as
//! `md5sum -c` (coreutils 9.1) does, with the same lines, warnings and exit
//! status.
//!
//! Each checksum file is parsed whole, then its entries go to the digests in
//! one batch. Diagnostics about lines (`-w`) are queued with their position
//! and printed between the results around them, so stderr keeps coreutils'
//! order.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use hashcore::{Algorithm, Hashes};

use super::escape::{push_result_name, quote, unescape_name};
use super::{describe, warn, CheckOptions, Digests, Input, Output};

/// Verifies every checksum file in `files` (none means standard input);
/// false if anything failed. With `tagged_algorithms` (`hashd check`, as
/// `cksum -c`) a BSD line (`SHA256 (f) = …`) is checked with the algorithm
/// it names; without (`hashd sum -c`, as `md5sum -c`) only lines tagged
/// with `algo` count. Untagged lines use `algo`; with `None` (`hashd check`
/// without `-a`), the one algorithm whose digest has the line's length.
/// Digests are hex or, as `cksum --base64` writes them, base64.
#[allow(clippy::too_many_arguments)]
pub(super) fn run(
    algo: Option<Algorithm>,
    tagged_algorithms: bool,
    options: &CheckOptions,
    files: &[PathBuf],
    digests: &mut dyn Digests,
    stdin: &mut dyn Read,
    out: &mut Output<'_>,
    stderr: &mut dyn Write,
) -> bool {
    let mut checker = Checker {
        algo,
        options,
        parser: LineParser::new(algo, tagged_algorithms),
        digests,
        stdin,
        out,
        stderr,
    };
    let stdin_only = [PathBuf::from("-")];
    let files = if files.is_empty() {
        &stdin_only[..]
    } else {
        files
    };
    let mut ok = true;
    for file in files {
        ok &= checker.check_file(file.as_os_str());
    }
    ok
}

/// Everything one run needs; the parser's state carries over between files,
/// as coreutils' does.
struct Checker<'r, 'o> {
    /// The algorithm of untagged lines (`None`: told by their length).
    algo: Option<Algorithm>,
    /// What to print and what fails.
    options: &'r CheckOptions,
    /// Line parser, with its memory of the line format seen so far.
    parser: LineParser,
    /// Computes the digests.
    digests: &'r mut dyn Digests,
    /// Read when a checksum file is `-`.
    stdin: &'r mut dyn Read,
    /// Result lines.
    out: &'r mut Output<'o>,
    /// Diagnostics.
    stderr: &'r mut dyn Write,
}

/// One properly formatted line.
struct Entry {
    /// The algorithm the line is checked with.
    algo: Algorithm,
    /// The file name, unescaped.
    name: Vec<u8>,
    /// The expected digest (decoded from hex or base64).
    expected: Vec<u8>,
}

/// What the results of one checksum file add up to.
#[derive(Default)]
struct Tally {
    /// Lines that could not be read hashed.
    failed_reads: u64,
    /// Files whose digest differs.
    mismatched: u64,
    /// True once any file matched.
    matched: bool,
}

impl Checker<'_, '_> {
    fn check_file(&mut self, file: &OsStr) -> bool {
        let is_stdin = file == "-";
        let display = quote(if is_stdin {
            b"standard input"
        } else {
            file.as_bytes()
        });
        let Some(content) = self.read_list(file, is_stdin, &display) else {
            return false;
        };
        let (entries, misformatted, looks_like) = self.parse_list(&content, is_stdin);

        let inputs: Vec<Input> = entries
            .iter()
            .map(|e| match &e.name[..] {
                b"-" => Input::Stdin,
                name => Input::Path(PathBuf::from(OsStr::from_bytes(name))),
            })
            .collect();
        let options = self.options;
        let tag = self.parser.tag.clone();
        let stderr = &mut *self.stderr;
        let out = &mut *self.out;
        let mut tally = Tally::default();
        let mut pending = misformatted.iter().peekable();
        let warn_misformatted = |stderr: &mut dyn Write, line_number: u64| {
            if options.warn {
                warn(
                    stderr,
                    format_args!(
                        "{display}: {line_number}: improperly formatted {tag} checksum line"
                    ),
                );
            }
        };
        let mut line = Vec::new();
        let mut report = |index: usize, result: io::Result<Hashes>| {
            while let Some((_, n)) = pending.next_if(|(before, _)| *before <= index) {
                warn_misformatted(stderr, *n);
            }
            let entry = &entries[index];
            line.clear();
            match result {
                Err(e) if options.ignore_missing && e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    warn(
                        stderr,
                        format_args!("{}: {}", quote(&entry.name), describe(&e)),
                    );
                    tally.failed_reads += 1;
                    if !options.status {
                        push_result_name(&mut line, &entry.name);
                        line.extend_from_slice(b": FAILED open or read\n");
                    }
                }
                Ok(hashes) => {
                    // The digests of exactly the line's algorithm (asked
                    // for alone); anything else is no match.
                    let matches = matches!(&hashes[..], [(a, d)]
                        if *a == entry.algo && *d == entry.expected);
                    if matches {
                        tally.matched = true;
                    } else {
                        tally.mismatched += 1;
                    }
                    let silent = options.status || (matches && options.quiet);
                    if !silent {
                        push_result_name(&mut line, &entry.name);
                        line.extend_from_slice(if matches { b": OK\n" } else { b": FAILED\n" });
                    }
                }
            }
            out.line(&line);
        };
        // Consecutive lines for the same file with different algorithms
        // (`hashd sum -a md5,sha256` writes them so) are one unit: the file
        // is read once for all of them. Consecutive units with the same
        // algorithms go to the digests together (the whole list, for a
        // list of one algorithm), so they are pipelined.
        let units = units(&entries);
        let mut start = 0;
        while start < units.len() {
            let algos = units[start].1;
            let end = start + units[start..].iter().take_while(|u| u.1 == algos).count();
            let batch: Vec<Input> = units[start..end]
                .iter()
                .map(|u| inputs[u.0.start].clone())
                .collect();
            let result = self
                .digests
                .hash_inputs(algos, &batch, &mut |index, result| {
                    let lines = units[start + index].0.clone();
                    for i in lines {
                        report(i, line_result(entries[i].algo, &result));
                    }
                });
            if let Err(e) = result {
                warn(self.stderr, format_args!("{}", describe(&e)));
                return false;
            }
            start = end;
        }
        for (_, n) in pending {
            warn_misformatted(stderr, *n);
        }
        let ok = self.summarize(&display, entries.len(), misformatted.len() as u64, &tally);
        if entries.is_empty() && !looks_like.is_empty() && self.parser.any_tag {
            self.hint(&display, &looks_like);
        }
        ok
    }

    /// Says which algorithms the untagged lines of a list without a usable
    /// line seem to be for, so that `-a` can be fixed. `hashd check` only:
    /// `hashd sum -c`'s stderr stays md5sum's, line for line (coreutils'
    /// own tests compare it).
    fn hint(&mut self, display: &str, looks_like: &[Algorithm]) {
        let names: Vec<String> = looks_like
            .iter()
            .map(|a| a.name().to_ascii_uppercase())
            .collect();
        let advice = match looks_like {
            [only] => format!(" (try -a {})", only.name()),
            _ => " (use -a to say which)".to_string(),
        };
        let not = match self.algo {
            Some(algo) => format!(", not {}", bsd_tag(algo)),
            None => String::new(),
        };
        warn(
            self.stderr,
            format_args!(
                "{display}: the lines look like {} checksums{not}{advice}",
                names.join(", "),
            ),
        );
    }

    /// Reads a whole checksum file; `None` (after saying why) if it cannot.
    fn read_list(&mut self, file: &OsStr, is_stdin: bool, display: &str) -> Option<Vec<u8>> {
        let mut content = Vec::new();
        let read = if is_stdin {
            self.stdin.read_to_end(&mut content)
        } else {
            match File::open(file) {
                Ok(mut f) => f.read_to_end(&mut content),
                Err(e) => {
                    warn(self.stderr, format_args!("{display}: {}", describe(&e)));
                    return None;
                }
            }
        };
        match read {
            Ok(_) => Some(content),
            Err(_) => {
                warn(self.stderr, format_args!("{display}: read error"));
                None
            }
        }
    }

    /// Splits a checksum file into its entries and the line numbers of its
    /// improperly formatted lines, each with the number of entries before it,
    /// and the algorithms those lines look like, in order of appearance.
    /// Comments (`#` first) and empty lines are neither.
    #[allow(clippy::type_complexity)]
    fn parse_list(
        &mut self,
        content: &[u8],
        is_stdin: bool,
    ) -> (Vec<Entry>, Vec<(usize, u64)>, Vec<Algorithm>) {
        let mut entries = Vec::new();
        let mut misformatted = Vec::new();
        let mut looks_like = Vec::new();
        for (line, line_number) in content.split_inclusive(|&b| b == b'\n').zip(1u64..) {
            if line[0] == b'#' {
                continue;
            }
            let line = line.strip_suffix(b"\n").unwrap_or(line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            match self.parser.parse(line) {
                // `-` would be the list itself.
                Some(entry) if !(is_stdin && entry.name == b"-") => entries.push(entry),
                _ => {
                    misformatted.push((entries.len(), line_number));
                    for algo in looks_like_algorithms(line) {
                        // A line of the right length that failed otherwise
                        // (no name, a bad escape) is just misformatted.
                        if !looks_like.contains(&algo) && Some(algo) != self.algo {
                            looks_like.push(algo);
                        }
                    }
                }
            }
        }
        (entries, misformatted, looks_like)
    }

    /// Prints the warnings that end a checksum file and says whether it
    /// passed.
    fn summarize(
        &mut self,
        display: &str,
        entries: usize,
        misformatted: u64,
        tally: &Tally,
    ) -> bool {
        let options = self.options;
        let stderr = &mut *self.stderr;
        if entries == 0 {
            warn(
                stderr,
                format_args!("{display}: no properly formatted checksum lines found"),
            );
            return false;
        }
        if !options.status {
            for (n, one, many, what) in [
                (misformatted, "line is", "lines are", "improperly formatted"),
                (
                    tally.failed_reads,
                    "listed file",
                    "listed files",
                    "could not be read",
                ),
                (
                    tally.mismatched,
                    "computed checksum",
                    "computed checksums",
                    "did NOT match",
                ),
            ] {
                if n > 0 {
                    let noun = plural(n, one, many);
                    warn(stderr, format_args!("WARNING: {n} {noun} {what}"));
                }
            }
            if options.ignore_missing && !tally.matched {
                warn(stderr, format_args!("{display}: no file was verified"));
            }
        }
        tally.matched
            && tally.mismatched == 0
            && tally.failed_reads == 0
            && (!options.strict || misformatted == 0)
    }
}

/// coreutils' `select_plural` for English: the singular only for 1.
fn plural(n: u64, singular: &'static str, plural: &'static str) -> &'static str {
    if n == 1 {
        singular
    } else {
        plural
    }
}

/// Splits checksum lines as coreutils' `split_3` does (9.1's, with the
/// base64 digests and length detection of later versions' cksum).
struct LineParser {
    /// The algorithm of untagged lines (and, unless `any_tag`, of all);
    /// `None`: the one whose digest has the line's length.
    algo: Option<Algorithm>,
    /// The BSD tag `algo`'s lines carry (`MD5`, `SHA256`, ...); MD5's
    /// without `algo`, for warnings, which then read as md5sum's.
    tag: String,
    /// Whether a BSD line may name another algorithm than `algo`, and is
    /// then checked with it (`cksum -c`), rather than be misformatted
    /// (`md5sum -c`).
    any_tag: bool,
    /// coreutils' `bsd_reversed`: `None` until a GNU line decides; then
    /// whether lines are `HASH NAME` (one blank, no mode character, as BSD
    /// `md5 -r` prints) rather than `HASH  NAME`/`HASH *NAME`. Once decided,
    /// lines of the other kind are misformatted (or, reversed, a name
    /// starting with a blank keeps it).
    bsd_reversed: Option<bool>,
}

/// The list's lines as units: runs of consecutive lines that name the same
/// file (not standard input, which can be read once only as it is) with
/// different algorithms, each with the algorithms of its lines in order.
fn units(entries: &[Entry]) -> Vec<(std::ops::Range<usize>, hashcore::Algorithms)> {
    let mut out: Vec<(std::ops::Range<usize>, hashcore::Algorithms)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if let Some((range, algos)) = out.last_mut() {
            let first = &entries[range.start];
            if first.name == e.name && e.name != b"-" && !algos.contains(e.algo) {
                range.end = i + 1;
                algos.push(e.algo);
                continue;
            }
        }
        out.push((i..i + 1, e.algo.into()));
    }
    out
}

/// One line's share of its unit's result: the digest of its algorithm, or
/// the unit's error (each line reports it, as each line of md5sum -c does).
fn line_result(algo: Algorithm, result: &io::Result<Hashes>) -> io::Result<Hashes> {
    match result {
        Ok(hashes) => Ok(hashes.iter().filter(|(a, _)| *a == algo).cloned().collect()),
        Err(e) => Err(match e.raw_os_error() {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(e.kind(), e.to_string()),
        }),
    }
}

/// The BSD tag of `algo`'s lines (its name in capitals).
fn bsd_tag(algo: Algorithm) -> String {
    algo.spec().bsd_tag.to_string()
}

/// The digest a line gives for `algo`: `2n` hex digits (either case) or,
/// as `cksum --base64` writes it, the `4⌈n/3⌉` characters of standard
/// padded base64 (RFC 4648), for an `n`-byte digest. `None` for anything
/// else, as coreutils' `valid_digits`.
fn decode_digest(algo: Algorithm, text: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let n = algo.digest_len();
    if text.len() == 2 * n && text.iter().all(u8::is_ascii_hexdigit) {
        let digit = |b: u8| (b as char).to_digit(16).expect("checked hex") as u8;
        return Some(
            text.chunks(2)
                .map(|p| (digit(p[0]) << 4) | digit(p[1]))
                .collect(),
        );
    }
    if text.len() == n.div_ceil(3) * 4 {
        return base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()
            .filter(|d| d.len() == n);
    }
    None
}

/// The one algorithm whose digest `text` can be (hex first: a string of
/// hex digits is read as hex, as cksum does); `None` if none or several
/// (64 hex digits are sha256, sha3-256 or blake3).
fn algorithm_by_length(text: &[u8]) -> Option<Algorithm> {
    let is_hex = text.iter().all(u8::is_ascii_hexdigit);
    let candidates: Vec<Algorithm> = Algorithm::ALL
        .into_iter()
        .filter(|&a| {
            if is_hex && text.len().is_multiple_of(2) {
                text.len() == 2 * a.digest_len()
            } else {
                decode_digest(a, text).is_some()
            }
        })
        .collect();
    match candidates[..] {
        [only] => Some(only),
        _ => None,
    }
}

/// The algorithm whose BSD tag, followed by `(` or ` (`, starts `rest`.
fn tagged_algorithm(rest: &[u8]) -> Option<(Algorithm, &[u8])> {
    Algorithm::ALL.into_iter().find_map(|algo| {
        let after = rest.strip_prefix(bsd_tag(algo).as_bytes())?;
        let after = after.strip_prefix(b" ").unwrap_or(after);
        Some((algo, after.strip_prefix(b"(")?))
    })
}

/// What an untagged line that did not parse seems to be: the algorithms
/// of its digest's length (BSD lines name theirs, and `hashd check` takes
/// every tag: one that failed is just misformatted).
fn looks_like_algorithms(line: &[u8]) -> Vec<Algorithm> {
    let line = trim_blanks(line);
    let line = line.strip_prefix(b"\\").unwrap_or(line);
    if tagged_algorithm(line).is_some() {
        return Vec::new();
    }
    let hex = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if !line.get(hex).is_some_and(|&b| is_blank(b)) {
        return Vec::new();
    }
    // Every algorithm of that length: sha256, sha3-256 and blake3 share 64
    // digits, and naming one of them would be a guess.
    Algorithm::ALL
        .into_iter()
        .filter(|a| a.digest_len() * 2 == hex)
        .collect()
}

impl LineParser {
    fn new(algo: Option<Algorithm>, any_tag: bool) -> Self {
        LineParser {
            algo,
            tag: bsd_tag(algo.unwrap_or(Algorithm::Md5)),
            any_tag,
            bsd_reversed: None,
        }
    }

    /// Parses a line without its line terminator; `None` if misformatted.
    fn parse(&mut self, line: &[u8]) -> Option<Entry> {
        let blanks = line.iter().take_while(|&&b| is_blank(b)).count();
        let mut rest = &line[blanks..];
        let escaped = rest.first() == Some(&b'\\');
        if escaped {
            rest = &rest[1..];
        }
        if let Some(algo) = self.algo {
            if let Some(after_tag) = rest.strip_prefix(self.tag.as_bytes()) {
                let after_tag = after_tag.strip_prefix(b" ").unwrap_or(after_tag);
                return self.parse_bsd(algo, after_tag.strip_prefix(b"(")?, escaped);
            }
        }
        if self.any_tag {
            if let Some((algo, after_paren)) = tagged_algorithm(rest) {
                return self.parse_bsd(algo, after_paren, escaped);
            }
        }
        // The digest runs to the first blank.
        let digest_len = rest.iter().take_while(|&&b| !is_blank(b)).count();
        if rest.len() < digest_len + 2 + usize::from(rest.first() == Some(&b'\\')) {
            return None;
        }
        let (digest, after) = rest.split_at(digest_len);
        let algo = match self.algo {
            Some(algo) => algo,
            None => algorithm_by_length(digest)?,
        };
        let expected = decode_digest(algo, digest)?;
        let mut name = &after[1..];
        if name.len() == 1 || !matches!(name[0], b' ' | b'*') {
            if self.bsd_reversed == Some(false) {
                return None;
            }
            self.bsd_reversed = Some(true);
        } else if self.bsd_reversed != Some(true) {
            self.bsd_reversed = Some(false);
            name = &name[1..];
        }
        entry(algo, expected, name, escaped)
    }

    /// `TAG (NAME) = HASH`, from just after the `(`: the name runs to the
    /// last `)`.
    fn parse_bsd(&self, algo: Algorithm, s: &[u8], escaped: bool) -> Option<Entry> {
        let close = s.iter().rposition(|&b| b == b')')?;
        let (name, after) = (&s[..close], &s[close + 1..]);
        let after = trim_blanks(after).strip_prefix(b"=")?;
        let expected = decode_digest(algo, trim_blanks(after))?;
        entry(algo, expected, name, escaped)
    }
}

fn entry(algo: Algorithm, expected: Vec<u8>, name: &[u8], escaped: bool) -> Option<Entry> {
    let name = if escaped {
        unescape_name(name)?
    } else {
        // coreutils works on C strings: a NUL ends the name.
        name.split(|&b| b == 0).next().unwrap_or_default().to_vec()
    };
    Some(Entry {
        algo,
        name,
        expected,
    })
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_blanks(s: &[u8]) -> &[u8] {
    &s[s.iter().take_while(|&&b| is_blank(b)).count()..]
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "0cc175b9c0f1b6a831c399e269772661";

    fn parse(parser: &mut LineParser, line: &str) -> Option<String> {
        let entry = parser.parse(line.as_bytes())?;
        assert_eq!(entry.expected.len(), 16);
        Some(String::from_utf8(entry.name).unwrap())
    }

    #[test]
    fn parses_gnu_bsd_and_escaped_lines() {
        let mut p = LineParser::new(Some(Algorithm::Md5), false);
        let ok = |p: &mut LineParser, line: String| parse(p, &line);
        assert_eq!(ok(&mut p, format!("{H}  a b")).as_deref(), Some("a b"));
        assert_eq!(ok(&mut p, format!("{H} *a b")).as_deref(), Some("a b"));
        assert_eq!(ok(&mut p, format!("  \t{H}\t a")).as_deref(), Some("a"));
        assert_eq!(
            ok(&mut p, format!("{}  A", H.to_uppercase())).as_deref(),
            Some("A")
        );
        assert_eq!(
            ok(&mut p, format!("MD5 (a (b)) = {H}")).as_deref(),
            Some("a (b)")
        );
        assert_eq!(ok(&mut p, format!("MD5(x)= {H}")).as_deref(), Some("x"));
        assert_eq!(ok(&mut p, format!("MD5 (x)\t=\t{H}")).as_deref(), Some("x"));
        assert_eq!(
            ok(&mut p, format!("\\{H}  a\\\\b\\nc\\rd")).as_deref(),
            Some("a\\b\nc\rd")
        );
        assert_eq!(
            ok(&mut p, format!("\\MD5 (a\\\\b) = {H}")).as_deref(),
            Some("a\\b")
        );
        for bad in [
            format!("{H}0  a"),
            H.to_string(),
            format!("{H} "),
            format!("MD5 (x) = {H} "),
            format!("MD5  (x) = {H}"),
            format!("SHA1 (x) = {H}"),
            format!("\\{H}  a\\qb"),
            format!("\\{H}  a\\"),
            format!("{}  a", &H[1..]),
            format!("z{}  a", &H[1..]),
            // A reversed line once the file is known to be GNU style.
            format!("{H} a"),
        ] {
            assert_eq!(parse(&mut p, &bad), None, "{bad:?}");
        }
    }

    #[test]
    fn base64_digests_and_algorithms_told_by_length() {
        let empty_md5 = Algorithm::Md5.digest(b"");
        let mut p = LineParser::new(None, true);
        let algo = |p: &mut LineParser, line: &str| p.parse(line.as_bytes()).map(|e| e.algo);
        let e = p.parse(b"1B2M2Y8AsgTpgAmY7PhCfg==  f").unwrap();
        assert_eq!(
            (e.algo, &e.expected[..], &e.name[..]),
            (Algorithm::Md5, &empty_md5[..], &b"f"[..])
        );
        let e = p.parse(b"d41d8cd98f00b204e9800998ecf8427e  f").unwrap();
        assert_eq!(e.expected, empty_md5);
        assert_eq!(
            algo(&mut p, &format!("{}  f", "a".repeat(40))),
            Some(Algorithm::Sha1)
        );
        assert_eq!(
            algo(&mut p, &format!("{}  f", "a".repeat(56))),
            Some(Algorithm::Sha224)
        );
        assert_eq!(
            algo(&mut p, &format!("{}  f", "a".repeat(96))),
            Some(Algorithm::Sha384)
        );
        assert_eq!(
            algo(&mut p, &format!("{}  f", "a".repeat(16))),
            Some(Algorithm::Crc64Nvme)
        );
        // Shared lengths: sha256/sha3-256/blake3, sha512/sha3-512, the CRC-32s.
        for len in [64, 128, 8] {
            assert_eq!(
                algo(&mut p, &format!("{}  f", "a".repeat(len))),
                None,
                "{len}"
            );
        }
        assert_eq!(
            algo(
                &mut p,
                "SHA256 (f) = 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
            ),
            Some(Algorithm::Sha256)
        );
        assert_eq!(
            algo(&mut p, "CRC32C (f) = AAAAAA=="),
            Some(Algorithm::Crc32c)
        );
        // Padding removed, or wrong: no line.
        for bad in [
            "MD5 (f) = 1B2M2Y8AsgTpgAmY7PhCfg=",
            "MD5 (f) = 1B2M2Y8AsgTpgAmY7PhCf===",
            "1B2M2Y8AsgTpgAmY7PhCfg=  f",
        ] {
            assert_eq!(algo(&mut p, bad), None, "{bad}");
        }
        // With -a, a base64 line of that algorithm.
        let mut p = LineParser::new(Some(Algorithm::Sha256), false);
        let e = p
            .parse(b"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=  f")
            .unwrap();
        assert_eq!(e.expected, Algorithm::Sha256.digest(b""));
    }

    #[test]
    fn first_gnu_line_decides_reversed_format() {
        let mut p = LineParser::new(Some(Algorithm::Md5), false);
        assert_eq!(parse(&mut p, &format!("{H} a b")).as_deref(), Some("a b"));
        assert_eq!(parse(&mut p, &format!("{H}  a b")).as_deref(), Some(" a b"));
        // An invalid digest does not decide anything.
        let mut p = LineParser::new(Some(Algorithm::Md5), false);
        assert_eq!(parse(&mut p, &format!("z{} a", &H[1..])), None);
        assert_eq!(parse(&mut p, &format!("{H}  a b")).as_deref(), Some("a b"));
    }

    /// Digests that answer from a table, to test the reporting without
    /// files.
    struct Table(Vec<(&'static str, io::Result<Hashes>)>);

    impl Digests for Table {
        fn hash_inputs(
            &mut self,
            _: hashcore::Algorithms,
            inputs: &[Input],
            done: &mut dyn FnMut(usize, io::Result<Hashes>),
        ) -> io::Result<()> {
            for (i, input) in inputs.iter().enumerate() {
                let Input::Path(path) = input else {
                    panic!("stdin")
                };
                let (_, result) = self.0.iter().find(|(n, _)| path.as_os_str() == *n).unwrap();
                let result = match result {
                    Ok(d) => Ok(d.clone()),
                    Err(e) => Err(io::Error::from_raw_os_error(e.raw_os_error().unwrap())),
                };
                done(i, result);
            }
            Ok(())
        }
    }

    fn check_stdin(options: CheckOptions, list: &str) -> (bool, String, String) {
        let mut digests = Table(vec![
            (
                "good",
                Ok(vec![(Algorithm::Md5, Algorithm::Md5.digest(b"a"))]),
            ),
            (
                "bad",
                Ok(vec![(Algorithm::Md5, Algorithm::Md5.digest(b"b"))]),
            ),
            (
                "new\nline",
                Ok(vec![(Algorithm::Md5, Algorithm::Md5.digest(b"a"))]),
            ),
            ("gone", Err(io::Error::from_raw_os_error(2))),
            ("dir", Err(io::Error::from_raw_os_error(21))),
        ]);
        run_list(Some(Algorithm::Md5), true, &options, &mut digests, list)
    }

    /// `run` over `list` as standard input: (all ok, stdout, stderr).
    fn run_list(
        algo: Option<Algorithm>,
        tagged: bool,
        options: &CheckOptions,
        digests: &mut dyn Digests,
        list: &str,
    ) -> (bool, String, String) {
        let mut out_buf = Vec::new();
        let mut err = Vec::new();
        let mut out = Output::new(&mut out_buf);
        let ok = run(
            algo,
            tagged,
            options,
            &[],
            digests,
            &mut list.as_bytes(),
            &mut out,
            &mut err,
        );
        drop(out);
        (
            ok,
            String::from_utf8(out_buf).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn reports_like_md5sum() {
        let list = format!(
            "{H}  good\n# comment\n\r\n{H}  bad\nbad line\n{H}  gone\n\\{H}  new\\nline\n{H}  dir\n{H}  -\n"
        );
        let (ok, out, err) = check_stdin(
            CheckOptions {
                warn: true,
                ..Default::default()
            },
            &list,
        );
        assert!(!ok);
        assert_eq!(
            out,
            "good: OK\nbad: FAILED\ngone: FAILED open or read\n\\new\\nline: OK\ndir: FAILED open or read\n"
        );
        assert_eq!(
            err,
            "hashd: 'standard input': 5: improperly formatted MD5 checksum line\n\
             hashd: gone: No such file or directory\n\
             hashd: dir: Is a directory\n\
             hashd: 'standard input': 9: improperly formatted MD5 checksum line\n\
             hashd: WARNING: 2 lines are improperly formatted\n\
             hashd: WARNING: 2 listed files could not be read\n\
             hashd: WARNING: 1 computed checksum did NOT match\n"
        );
    }

    #[test]
    fn quiet_status_strict_and_ignore_missing() {
        let (ok, out, err) = check_stdin(
            CheckOptions {
                quiet: true,
                ..Default::default()
            },
            &format!("{H}  good\n"),
        );
        assert!(ok && out.is_empty() && err.is_empty());

        let list = format!("{H}  good\nxx\n");
        assert!(check_stdin(CheckOptions::default(), &list).0);
        let strict = CheckOptions {
            strict: true,
            ..Default::default()
        };
        assert!(!check_stdin(strict, &list).0);

        let (ok, out, err) = check_stdin(
            CheckOptions {
                status: true,
                ..Default::default()
            },
            &format!("{H}  bad\n{H}  gone\n"),
        );
        assert!(!ok && out.is_empty());
        assert_eq!(err, "hashd: gone: No such file or directory\n");

        let ignore = CheckOptions {
            ignore_missing: true,
            ..Default::default()
        };
        let (ok, out, err) = check_stdin(ignore.clone(), &format!("{H}  gone\n"));
        assert!(!ok && out.is_empty());
        assert_eq!(err, "hashd: 'standard input': no file was verified\n");
        let (ok, out, _) = check_stdin(ignore, &format!("{H}  gone\n{H}  good\n"));
        assert!(ok);
        assert_eq!(out, "good: OK\n");

        let (ok, out, err) = check_stdin(CheckOptions::default(), "# nothing\n\n");
        assert!(!ok && out.is_empty());
        assert_eq!(
            err,
            "hashd: 'standard input': no properly formatted checksum lines found\n"
        );
    }

    /// Hashes named in-memory contents with the algorithms it is asked
    /// for, and records each batch's algorithms and inputs.
    struct Contents(Vec<(&'static str, &'static [u8])>, Vec<(String, usize)>);

    impl Digests for Contents {
        fn hash_inputs(
            &mut self,
            algo: hashcore::Algorithms,
            inputs: &[Input],
            done: &mut dyn FnMut(usize, io::Result<Hashes>),
        ) -> io::Result<()> {
            self.1.push((algo.to_string(), inputs.len()));
            for (i, input) in inputs.iter().enumerate() {
                let Input::Path(path) = input else {
                    panic!("stdin")
                };
                let (_, data) = self.0.iter().find(|(n, _)| path.as_os_str() == *n).unwrap();
                done(i, Ok(algo.iter().map(|a| (a, a.digest(data))).collect()));
            }
            Ok(())
        }
    }

    fn check_with(
        tagged: bool,
        algo: Algorithm,
        list: &str,
    ) -> (bool, String, String, Vec<(String, usize)>) {
        let mut digests = Contents(vec![("f", b"a"), ("g", b"b")], Vec::new());
        let (ok, out, err) = run_list(
            Some(algo),
            tagged,
            &CheckOptions::default(),
            &mut digests,
            list,
        );
        (ok, out, err, digests.1)
    }

    fn hex(algo: Algorithm, data: &[u8]) -> String {
        hashcore::to_hex(&algo.digest(data))
    }

    /// `hashd sum -a md5,sha256` output: each file read once, for both.
    #[test]
    fn lines_of_one_file_with_several_algorithms_are_one_read() {
        use Algorithm::*;
        let list = format!(
            "MD5 (f) = {}\nSHA256 (f) = {}\nMD5 (g) = {}\nSHA256 (g) = {}\n",
            hex(Md5, b"a"),
            hex(Sha256, b"a"),
            hex(Md5, b"b"),
            hex(Sha256, b"x"),
        );
        let (ok, out, _, batches) = check_with(true, Md5, &list);
        assert!(!ok);
        assert_eq!(out, "f: OK\nf: OK\ng: OK\ng: FAILED\n");
        assert_eq!(batches, [("md5,sha256".to_string(), 2)]);
    }

    #[test]
    fn check_uses_the_algorithm_each_bsd_line_names() {
        use Algorithm::*;
        let list = format!(
            "SHA256 (f) = {}\nSHA256 (g) = {}\nMD5 (g) = {}\nSHA1(f)= {}\n{}  g\nSHA512 (f) = {}\n",
            hex(Sha256, b"a"),
            hex(Sha256, b"b"),
            hex(Md5, b"b"),
            hex(Sha1, b"a"),
            hex(Md5, b"b"),
            hex(Sha512, b"x"),
        );
        let (ok, out, err, batches) = check_with(true, Md5, &list);
        assert_eq!(out, "f: OK\ng: OK\ng: OK\nf: OK\ng: OK\nf: FAILED\n");
        assert_eq!(err, "hashd: WARNING: 1 computed checksum did NOT match\n");
        assert!(!ok);
        // Consecutive lines of one algorithm are one batch; consecutive
        // lines of one file with other algorithms, one input.
        let names: Vec<&str> = batches.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(names, ["sha256", "sha256,md5", "sha1", "md5", "sha512"]);
        // A tag's digest must have that algorithm's length.
        let list = format!("SHA256 (f) = {}\n", hex(Md5, b"a"));
        let (ok, _, err, _) = check_with(true, Md5, &list);
        assert!(!ok);
        assert!(err.contains("no properly formatted"), "{err}");
    }

    #[test]
    fn sum_c_keeps_md5sum_rules_for_other_tags() {
        let list = format!("SHA256 (f) = {}\n", hex(Algorithm::Sha256, b"a"));
        let (ok, out, err, _) = check_with(false, Algorithm::Md5, &list);
        assert!(!ok && out.is_empty());
        // md5sum's message alone (coreutils' md5sum.pl compares stderr).
        assert_eq!(
            err,
            "hashd: 'standard input': no properly formatted checksum lines found\n"
        );
    }

    #[test]
    fn a_list_for_other_algorithms_says_which_they_look_like() {
        use Algorithm::*;
        let list = format!(
            "{}  f\n{}  g\n\\{}  f\nnot a line\n",
            hex(Sha256, b"a"),
            hex(Sha1, b"b"),
            hex(Sha256, b"a")
        );
        let (ok, out, err, _) = check_with(true, Md5, &list);
        assert!(!ok && out.is_empty());
        assert_eq!(
            err,
            "hashd: 'standard input': no properly formatted checksum lines found\n\
             hashd: 'standard input': the lines look like SHA256, SHA3-256, BLAKE3, SHA1 checksums, not MD5 (use -a to say which)\n"
        );
        // Nothing recognisable: coreutils' message alone.
        let (_, _, err, _) = check_with(true, Md5, "not a line\nabc  f\n");
        assert_eq!(
            err,
            "hashd: 'standard input': no properly formatted checksum lines found\n"
        );
        // Once a line matches, the others are just misformatted.
        let list = format!("{}  f\n{}  g\n", hex(Md5, b"a"), hex(Sha1, b"b"));
        let (ok, out, err, _) = check_with(true, Md5, &list);
        assert!(ok);
        assert_eq!(out, "f: OK\n");
        assert_eq!(err, "hashd: WARNING: 1 line is improperly formatted\n");
    }
}
