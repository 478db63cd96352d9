//! `hashd sum` without `-c`: one checksum line per input, as `md5sum` prints
//! them, plus `-r`, which expands directory arguments into the files below.
//! The walk finishes before hashing starts, so the digests get every input
//! in one batch; lines then stream as digests arrive.

use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use hashcore::{Algorithms, Hashes};

use super::escape::{needs_line_escape, push_line_name, quote};
use super::{describe, warn, Digests, Input, Output, SumArgs};

/// Checks option combinations in the order coreutils 9.1 does (the
/// options coreutils 9.1's md5sum lacks, from its later cksum, first); the
/// error is the message to print before the `Try ... --help` hint.
pub(super) fn validate(args: &SumArgs) -> Result<(), &'static str> {
    let v = &args.verify;
    let several = args.algorithms().len() > 1;
    let problems = [
        (
            args.check && args.cksum_crc32b(),
            "--check is not supported with --algorithm=crc32b",
        ),
        (
            args.base64 && args.raw,
            "--base64 and --raw are mutually exclusive",
        ),
        (
            args.untagged && several,
            "--untagged takes one algorithm (only a tag tells the lines of several apart)",
        ),
        (args.raw && several, "--raw takes one algorithm"),
        (args.tag && args.text, "--tag does not support --text mode"),
        (
            args.zero && args.check,
            "the --zero option is not supported when verifying checksums",
        ),
        (
            args.tag && args.check,
            "the --tag option is meaningless when verifying checksums",
        ),
        (
            (args.binary || args.text) && args.check,
            "the --binary and --text options are meaningless when verifying checksums",
        ),
        (
            args.recursive && args.check,
            "the --recursive option is meaningless when verifying checksums",
        ),
        (
            args.check && args.algorithms().len() > 1,
            "--check takes one algorithm (BSD lines name their own: use hashd check)",
        ),
        (
            v.ignore_missing && !args.check,
            "the --ignore-missing option is meaningful only when verifying checksums",
        ),
        (
            v.status && !args.check,
            "the --status option is meaningful only when verifying checksums",
        ),
        (
            v.warn && !args.check,
            "the --warn option is meaningful only when verifying checksums",
        ),
        (
            v.quiet && !args.check,
            "the --quiet option is meaningful only when verifying checksums",
        ),
        (
            v.strict && !args.check,
            "the --strict option is meaningful only when verifying checksums",
        ),
    ];
    match problems.iter().find(|(bad, _)| *bad) {
        Some((_, message)) => Err(message),
        None => Ok(()),
    }
}

/// Hashes every input of `args` and prints its line; false if any failed.
pub(super) fn run(
    args: &SumArgs,
    digests: &mut dyn Digests,
    out: &mut Output<'_>,
    stderr: &mut dyn Write,
) -> bool {
    let plan = Plan::build(&args.files, args.recursive);
    if args.raw && plan.inputs.len() > 1 {
        // As cksum: an error without the usage hint, before any output.
        warn(
            stderr,
            format_args!("the --raw option is not supported with multiple files"),
        );
        return false;
    }
    if args.cksum_crc32b() {
        return run_crc32b(args, &plan, out, stderr);
    }
    let style = LineStyle::new(args);
    let mut ok = plan.failures.is_empty();
    let mut failures = plan.failures.iter().peekable();
    let mut line = Vec::new();
    let result = digests.hash_inputs(style.algo, &plan.inputs, &mut |index, result| {
        warn_walk_failures(&mut failures, Some(index), stderr);
        let name = &plan.names[index];
        match result {
            Ok(hashes) => {
                line.clear();
                style.push_lines(&mut line, &hashes, name);
                out.line(&line);
            }
            Err(e) => {
                warn(stderr, format_args!("{}: {}", quote(name), describe(&e)));
                ok = false;
            }
        }
    });
    warn_walk_failures(&mut failures, None, stderr);
    if let Err(e) = result {
        warn(stderr, format_args!("{}", describe(&e)));
        ok = false;
    }
    ok
}

/// `hashd sum -a crc32b`: `cksum -a crc32b`'s lines, `CRC BYTES[ NAME]`
/// (the CRC-32 in decimal, the name only when files were named, never
/// escaped), or with `--raw` the CRC's four bytes, big-endian. The byte
/// count must be that of the bytes hashed, so these inputs are read here,
/// in this process, counting as they are hashed, rather than handed to a
/// [`Digests`] (which reports digests only).
fn run_crc32b(args: &SumArgs, plan: &Plan, out: &mut Output<'_>, stderr: &mut dyn Write) -> bool {
    let mut ok = plan.failures.is_empty();
    let mut failures = plan.failures.iter().peekable();
    let mut buf = vec![0; 128 * 1024];
    let algo = hashcore::Algorithm::Crc32;
    for (index, input) in plan.inputs.iter().enumerate() {
        warn_walk_failures(&mut failures, Some(index), stderr);
        let name = &plan.names[index];
        let result = match input {
            Input::Stdin => count_and_hash(algo, &mut io::stdin(), &mut buf),
            Input::Path(path) => {
                fs::File::open(path).and_then(|mut file| count_and_hash(algo, &mut file, &mut buf))
            }
        };
        match result {
            Ok((digest, len)) => {
                let mut line = Vec::new();
                if args.raw {
                    line.extend_from_slice(&digest);
                } else {
                    let crc = u32::from_be_bytes(digest[..4].try_into().expect("crc32 is 4 bytes"));
                    line.extend_from_slice(format!("{crc} {len}").as_bytes());
                    if !args.files.is_empty() {
                        line.push(b' ');
                        line.extend_from_slice(name);
                    }
                    line.push(if args.zero { b'\0' } else { b'\n' });
                }
                out.line(&line);
            }
            Err(e) => {
                warn(stderr, format_args!("{}: {}", quote(name), describe(&e)));
                ok = false;
            }
        }
    }
    warn_walk_failures(&mut failures, None, stderr);
    ok
}

/// Prints the walk's diagnostics that come before input `index` (all the
/// rest when `None`), so that each stands between the same lines of output
/// as it would in a tool that hashed while walking.
fn warn_walk_failures<'p>(
    failures: &mut std::iter::Peekable<std::slice::Iter<'p, (usize, String)>>,
    index: Option<usize>,
    stderr: &mut dyn Write,
) {
    while let Some((_, message)) =
        failures.next_if(|(before, _)| index.is_none_or(|index| *before <= index))
    {
        warn(stderr, format_args!("{message}"));
    }
}

/// Hashes everything `reader` yields with `algo`; the digest and the
/// number of bytes hashed.
fn count_and_hash(
    algo: hashcore::Algorithm,
    reader: &mut dyn io::Read,
    buf: &mut [u8],
) -> io::Result<(Vec<u8>, u64)> {
    struct Counting<'a> {
        inner: &'a mut dyn io::Read,
        bytes: u64,
    }
    impl io::Read for Counting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.bytes += n as u64;
            Ok(n)
        }
    }
    let mut counting = Counting {
        inner: reader,
        bytes: 0,
    };
    let hashes = super::hash_reader(algo.into(), &mut counting, buf)?;
    let digest = hashes
        .into_iter()
        .next()
        .map(|(_, d)| d)
        .unwrap_or_default();
    Ok((digest, counting.bytes))
}

/// How checksum lines look: `HASH  NAME`, `HASH *NAME` or
/// `TAG (NAME) = HASH`, ended by newline or NUL; or, with `--raw`, the
/// digest's bytes alone.
struct LineStyle {
    /// The algorithms; each one's BSD tag is in its table row.
    algo: Algorithms,
    /// BSD style (`--tag`, and always for several algorithms: only a tag
    /// tells their lines apart).
    tag: bool,
    /// `*` instead of ` ` before the name (`-b`).
    binary: bool,
    /// NUL-terminated lines without name escaping (`-z`).
    zero: bool,
    /// Digests in standard base64 (RFC 4648, padded), not hex (`--base64`).
    base64: bool,
    /// The digest's bytes alone, no name, no line end (`--raw`).
    raw: bool,
}

impl LineStyle {
    fn new(args: &SumArgs) -> Self {
        LineStyle {
            algo: args.algorithms(),
            tag: args.tag || (args.algorithms().len() > 1 && !args.untagged),
            binary: args.binary,
            zero: args.zero,
            base64: args.base64,
            raw: args.raw,
        }
    }

    /// One line per digest, in the order of the algorithms.
    fn push_lines(&self, line: &mut Vec<u8>, hashes: &Hashes, name: &[u8]) {
        for (algo, digest) in hashes {
            self.push_line(line, algo.spec().bsd_tag, digest, name);
        }
    }

    fn push_line(&self, line: &mut Vec<u8>, tag: &str, digest: &[u8], name: &[u8]) {
        if self.raw {
            line.extend_from_slice(digest);
            return;
        }
        let escape = !self.zero && needs_line_escape(name);
        if escape {
            line.push(b'\\');
        }
        let hex = if self.base64 {
            base64::engine::general_purpose::STANDARD.encode(digest)
        } else {
            hashcore::to_hex(digest)
        };
        if self.tag {
            line.extend_from_slice(tag.as_bytes());
            line.extend_from_slice(b" (");
            push_line_name(line, name, escape);
            line.extend_from_slice(b") = ");
            line.extend_from_slice(hex.as_bytes());
        } else {
            line.extend_from_slice(hex.as_bytes());
            line.extend_from_slice(if self.binary { b" *" } else { b"  " });
            push_line_name(line, name, escape);
        }
        line.push(if self.zero { b'\0' } else { b'\n' });
    }
}

/// What to hash, in output order, and the problems found while walking
/// directories, each to be reported at its place in that order.
#[derive(Debug, Default)]
struct Plan {
    /// The inputs, handed to the digests in one batch.
    inputs: Vec<Input>,
    /// The name each input is printed under, as given or as walked.
    names: Vec<Vec<u8>>,
    /// Diagnostics from the walk, each with the number of inputs planned
    /// before it, so it is printed between the same lines as `md5sum -r`
    /// would have, had it existed.
    failures: Vec<(usize, String)>,
}

impl Plan {
    fn build(files: &[PathBuf], recursive: bool) -> Plan {
        let mut plan = Plan::default();
        if files.is_empty() {
            plan.push(Input::Stdin, b"-".to_vec());
        }
        for file in files {
            if file.as_os_str() == "-" {
                plan.push(Input::Stdin, b"-".to_vec());
            } else if recursive && fs::metadata(file).is_ok_and(|m| m.is_dir()) {
                plan.walk(file);
            } else {
                plan.push_path(file.clone());
            }
        }
        plan
    }

    fn push(&mut self, input: Input, name: Vec<u8>) {
        self.inputs.push(input);
        self.names.push(name);
    }

    fn push_path(&mut self, path: PathBuf) {
        let name = path.as_os_str().as_bytes().to_vec();
        self.push(Input::Path(path), name);
    }

    fn fail(&mut self, path: &Path, err: &io::Error) {
        let message = format!("{}: {}", quote(path.as_os_str().as_bytes()), describe(err));
        self.failures.push((self.inputs.len(), message));
    }

    /// Depth first, entries in byte order of their names. Regular files and
    /// symbolic links to them are hashed (dangling links too, so that they
    /// are reported); links to directories and special files are skipped.
    fn walk(&mut self, dir: &Path) {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => return self.fail(dir, &e),
        };
        let mut found = Vec::new();
        for entry in entries {
            match entry.and_then(|e| Ok((e.path(), e.file_type()?))) {
                Ok(entry) => found.push(entry),
                Err(e) => self.fail(dir, &e),
            }
        }
        found.sort_by(|(a, _), (b, _)| a.as_os_str().as_bytes().cmp(b.as_os_str().as_bytes()));
        for (path, file_type) in found {
            if file_type.is_dir() {
                self.walk(&path);
            } else if file_type.is_file() {
                self.push_path(path);
            } else if file_type.is_symlink() {
                match fs::metadata(&path) {
                    Ok(target) if !target.is_file() => {}
                    _ => self.push_path(path),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::ReadDigests;
    use super::*;

    fn style(tag: bool, binary: bool, zero: bool) -> LineStyle {
        LineStyle {
            algo: hashcore::Algorithm::Md5.into(),
            tag,
            binary,
            zero,
            base64: false,
            raw: false,
        }
    }

    fn line(style: &LineStyle, name: &[u8]) -> String {
        let mut line = Vec::new();
        let md5 = hashcore::Algorithm::Md5;
        style.push_line(&mut line, "MD5", &md5.digest(b""), name);
        String::from_utf8(line).unwrap()
    }

    const EMPTY: &str = "d41d8cd98f00b204e9800998ecf8427e";

    #[test]
    fn lines_in_every_style() {
        assert_eq!(
            line(&style(false, false, false), b"a b"),
            format!("{EMPTY}  a b\n")
        );
        assert_eq!(
            line(&style(false, true, false), b"a"),
            format!("{EMPTY} *a\n")
        );
        assert_eq!(
            line(&style(true, false, false), b"a"),
            format!("MD5 (a) = {EMPTY}\n")
        );
        assert_eq!(
            line(&style(false, false, false), b"a\\b\n"),
            format!("\\{EMPTY}  a\\\\b\\n\n")
        );
        assert_eq!(
            line(&style(true, false, false), b"c\rx"),
            format!("\\MD5 (c\\rx) = {EMPTY}\n")
        );
        assert_eq!(
            line(&style(false, false, true), b"a\\b\n"),
            format!("{EMPTY}  a\\b\n\0")
        );
    }

    #[test]
    fn recursive_walk_is_depth_first_in_byte_order() {
        let root = std::env::temp_dir().join(format!("hashd-cli-walk-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for dir in ["d/B", "d/a", "d/a/z"] {
            fs::create_dir_all(root.join(dir)).unwrap();
        }
        for file in ["d/a/z/1", "d/a/2", "d/B/3", "d/c", "d/Z"] {
            fs::write(root.join(file), file).unwrap();
        }
        std::os::unix::fs::symlink(root.join("d/a"), root.join("d/link-to-dir")).unwrap();
        std::os::unix::fs::symlink(root.join("d/c"), root.join("d/link-to-file")).unwrap();

        let args = SumArgs {
            recursive: true,
            files: vec![root.join("d"), root.join("missing")],
            ..SumArgs::default()
        };
        let mut out_buf = Vec::new();
        let mut err = Vec::new();
        let mut out = Output::new(&mut out_buf);
        assert!(!run(&args, &mut ReadDigests::new(), &mut out, &mut err));
        drop(out);
        let root_str = root.to_str().unwrap();
        let names: Vec<String> = String::from_utf8(out_buf)
            .unwrap()
            .lines()
            .map(|l| l[34..].replacen(root_str, "", 1))
            .collect();
        assert_eq!(
            names,
            [
                "/d/B/3",
                "/d/Z",
                "/d/a/2",
                "/d/a/z/1",
                "/d/c",
                "/d/link-to-file"
            ]
        );
        let err = String::from_utf8(err).unwrap();
        assert!(
            err.ends_with("/missing: No such file or directory\n"),
            "{err}"
        );
        fs::remove_dir_all(&root).unwrap();
    }
}
