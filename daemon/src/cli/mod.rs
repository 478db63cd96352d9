//! `hashd sum` and `hashd check`: drop-in replacements for coreutils
//! `md5sum`/`sha256sum` (and `-c`), matching coreutils 9.1 byte for byte on
//! stdout, in exit codes, and in the shape of stderr (with `hashd` as the
//! program name).
//!
//! Layout:
//! - this file: the arguments ([`SumArgs`], [`CheckArgs`]), the entry points
//!   ([`run_sum`], [`run_check`]) and the [`Digests`] trait through
//!   which all hashing happens;
//! - `sum`: printing checksums, including `-r` directory walks;
//! - `check`: parsing checksum files (GNU and BSD `--tag` lines) and verifying;
//! - `escape`: the three coreutils conventions for writing file names;
//! - `digests`: [`ReadDigests`], hashing with `std::fs` in this thread;
//! - `remote`: `hashd upload` and `hashd get`, the HTTP API's client
//!   ([`run_upload`], [`run_get`]), with the same output conventions.
//!
//! The commands only plan and print: every digest comes from a
//! [`Digests`], which receives the whole batch of inputs at once so that
//! it may pipeline them ([`DaemonDigests`](crate::client::DaemonDigests) passes descriptors over its unix
//! socket), and reports results in input order so that output streams.
//!
//! The writers are used as given: pass a line-buffered stdout (as
//! `std::io::stdout()` is) for output that streams line by line, as
//! coreutils' does.

mod check;
mod digests;
mod escape;
mod progress;
mod remote;
mod sum;

use std::io::{self, Write};
use std::path::PathBuf;

use hashcore::{Algorithm, Algorithms, Hashes};

pub(crate) use digests::hash_reader;
pub use digests::ReadDigests;
pub use progress::{ProgressDigests, Screen, Suspending};
pub use remote::{run_get, run_upload, GetArgs, UploadArgs};

/// The name diagnostics start with.
pub(crate) const PROGRAM: &str = "hashd";

/// One thing to hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// The process's standard input (`-` on the command line). Reading it a
    /// second time reads from where the first read stopped (usually EOF).
    Stdin,
    /// A file, opened and read by the [`Digests`] implementation.
    Path(PathBuf),
}

/// Computes digests for the commands. The daemon client implements it over
/// the unix socket; [`ReadDigests`] hashes in the calling thread.
pub trait Digests {
    /// Hashes every input in order and calls `done(index, result)` exactly
    /// once per input, in input order, as soon as each is known (so output
    /// streams). Errors are per input (open/read failures) and should be the
    /// OS error (`ENOENT`, `EISDIR`, ...) so that messages read like
    /// coreutils'; `ErrorKind::NotFound` is what `--ignore-missing` skips.
    /// Implementations may pipeline many inputs at once; that is why this is
    /// batched. An `Err` return means the implementation itself failed (for
    /// example the daemon went away); inputs not yet reported are lost.
    fn hash_inputs(
        &mut self,
        algo: Algorithms,
        inputs: &[Input],
        done: &mut dyn FnMut(usize, io::Result<Hashes>),
    ) -> io::Result<()>;
}

/// Options that only make sense when verifying (`hashd check`, `hashd sum -c`).
///
/// `--quiet`, `--status` and `--warn` cancel each other: the last one given
/// wins, as in coreutils. Like every flag here, each may be repeated.
#[derive(clap::Args, Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckOptions {
    /// Don't fail or report status for missing files
    #[arg(long, overrides_with = "ignore_missing")]
    pub ignore_missing: bool,
    /// Don't print OK for each successfully verified file
    #[arg(long, overrides_with_all = ["quiet", "status", "warn"])]
    pub quiet: bool,
    /// Don't output anything, status code shows success
    #[arg(long, overrides_with_all = ["quiet", "status", "warn"])]
    pub status: bool,
    /// Exit non-zero for improperly formatted checksum lines
    #[arg(long, overrides_with = "strict")]
    pub strict: bool,
    /// Warn about improperly formatted checksum lines
    #[arg(short = 'w', long, overrides_with_all = ["quiet", "status", "warn"])]
    pub warn: bool,
}

/// Print checksums like md5sum, or verify them with -c
#[derive(clap::Args, Clone, Debug, Default, PartialEq, Eq)]
pub struct SumArgs {
    /// Hash algorithm: md5, sha1, sha224, sha256, sha384, sha512, sha3-256,
    /// sha3-512, blake3, crc32, crc32c, crc64nvme [default: md5]; several,
    /// separated by commas (md5,sha256), read each file once and print one
    /// BSD-style line per algorithm. crc32b: CRC-32 printed as
    /// `cksum -a crc32b` does (decimal CRC, byte count, name)
    #[arg(short = 'a', long = "algo", value_name = "ALGO[,ALGO...]")]
    pub algo: Option<SumAlgorithms>,
    /// Hash the files under directory arguments, depth first, names sorted
    /// byte-wise (symbolic links to directories are not followed)
    #[arg(short = 'r', long, overrides_with = "recursive")]
    pub recursive: bool,
    /// Create a BSD-style checksum
    #[arg(long, overrides_with_all = ["tag", "untagged"])]
    pub tag: bool,
    /// Create a reversed style checksum, without digest type (the default
    /// for one algorithm; as cksum's --untagged)
    #[arg(long, overrides_with_all = ["tag", "untagged"])]
    pub untagged: bool,
    /// Emit base64-encoded digests, not hexadecimal
    #[arg(long, overrides_with = "base64")]
    pub base64: bool,
    /// Emit a raw binary digest, not hexadecimal (one file, one algorithm)
    #[arg(long, overrides_with = "raw")]
    pub raw: bool,
    /// Mark the lines as binary mode (`*` before the name)
    #[arg(short = 'b', long, overrides_with_all = ["binary", "text"])]
    pub binary: bool,
    /// Mark the lines as text mode (the default)
    #[arg(short = 't', long, overrides_with_all = ["binary", "text"])]
    pub text: bool,
    /// End each output line with NUL, not newline, and disable file name
    /// escaping
    #[arg(short = 'z', long, overrides_with = "zero")]
    pub zero: bool,
    /// Read checksums from the FILEs and check them
    #[arg(short = 'c', long, overrides_with = "check")]
    pub check: bool,
    /// Options for --check
    #[command(flatten)]
    pub verify: CheckOptions,
    /// Files to hash (or checksum files with --check); none or `-` means
    /// standard input
    #[arg(value_name = "FILE", value_parser = file_operand())]
    pub files: Vec<PathBuf>,
}

impl SumArgs {
    /// The algorithm to use: `-a`, else MD5. A caller that wants another
    /// default (say, when invoked as `sha256sum`) sets `algo` when parsing
    /// left it `None`.
    pub fn algorithms(&self) -> Algorithms {
        self.algo.map(|a| a.algorithms).unwrap_or_default()
    }

    /// Whether `-a crc32b` asked for `cksum -a crc32b`'s output.
    pub fn cksum_crc32b(&self) -> bool {
        self.algo.is_some_and(|a| a.crc32b)
    }

    /// The first of [`SumArgs::algorithms`] (the only one `-c` takes).
    pub fn algorithm(&self) -> Algorithm {
        self.algorithms().first()
    }
}

/// What `hashd sum -a` names: a list of algorithms, or `crc32b`, coreutils
/// cksum's name for CRC-32 (hashd's `crc32`) in cksum's own output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SumAlgorithms {
    /// The algorithms, in the order given; `crc32` alone for `crc32b`.
    pub algorithms: Algorithms,
    /// `crc32b`: lines as `cksum -a crc32b` prints them (`CRC LENGTH NAME`,
    /// the CRC in decimal), which carry the byte count and no tag.
    pub crc32b: bool,
}

impl std::str::FromStr for SumAlgorithms {
    type Err = hashcore::UnknownAlgorithm;

    /// `crc32b` alone (any case), else [`Algorithms`]' comma-separated
    /// names. `crc32b` in a list is an error: its lines have no tag.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().eq_ignore_ascii_case("crc32b") {
            return Ok(SumAlgorithms {
                algorithms: Algorithm::Crc32.into(),
                crc32b: true,
            });
        }
        Ok(SumAlgorithms {
            algorithms: s.parse()?,
            crc32b: false,
        })
    }
}

/// Verify checksum files, like md5sum -c
#[derive(clap::Args, Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckArgs {
    /// Hash algorithm of the untagged lines (BSD lines name their own):
    /// md5, sha1, sha224, sha256, sha384, sha512, sha3-256, sha3-512,
    /// blake3, crc32, crc32c, crc64nvme [default: from the digest's length
    /// where only one algorithm has it: md5, sha1, sha224, sha384,
    /// crc64nvme]
    #[arg(short = 'a', long = "algo", value_name = "ALGO")]
    pub algo: Option<Algorithm>,
    /// What to print and what counts as failure
    #[command(flatten)]
    pub options: CheckOptions,
    /// Checksum files; none or `-` means standard input
    #[arg(value_name = "FILE", value_parser = file_operand())]
    pub files: Vec<PathBuf>,
}

/// Parses a FILE operand. Unlike clap's `PathBuf` parser this accepts the
/// empty string, which coreutils reports as a missing file.
fn file_operand() -> impl clap::builder::TypedValueParser<Value = PathBuf> {
    use clap::builder::TypedValueParser;
    clap::builder::OsStringValueParser::new().map(PathBuf::from)
}

/// Runs `hashd sum` and returns the exit code: 0 if every file was hashed
/// (or, with `-c`, verified), 1 otherwise, as `md5sum` does.
pub fn run_sum(
    args: &SumArgs,
    digests: &mut dyn Digests,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    if let Err(usage) = sum::validate(args) {
        let _ = writeln!(stderr, "{PROGRAM}: {usage}");
        let _ = writeln!(stderr, "Try '{PROGRAM} sum --help' for more information.");
        return 1;
    }
    let mut out = Output::new(stdout);
    let ok = if args.check {
        check::run(
            Some(args.algorithm()),
            false,
            &args.verify,
            &args.files,
            digests,
            &mut io::stdin(),
            &mut out,
            stderr,
        )
    } else {
        sum::run(args, digests, &mut out, stderr)
    };
    out.finish(ok, stderr)
}

/// Runs `hashd check` and returns the exit code: 0 if every listed file
/// matched, 1 otherwise, as `md5sum -c` does.
pub fn run_check(
    args: &CheckArgs,
    digests: &mut dyn Digests,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    let mut out = Output::new(stdout);
    let ok = check::run(
        args.algo,
        true,
        &args.options,
        &args.files,
        digests,
        &mut io::stdin(),
        &mut out,
        stderr,
    );
    out.finish(ok, stderr)
}

/// Standard output that remembers its first write error, so that a closed
/// pipe ends in one `write error` message and exit code 1 (as coreutils'
/// `close_stdout`) instead of one message per line.
struct Output<'a> {
    /// Where lines go.
    writer: &'a mut dyn Write,
    /// The first failure; once set, nothing more is written.
    error: Option<io::Error>,
}

impl<'a> Output<'a> {
    fn new(writer: &'a mut dyn Write) -> Self {
        Output {
            writer,
            error: None,
        }
    }

    /// Writes one whole line in one call, so a line-buffered writer never
    /// splits it.
    fn line(&mut self, line: &[u8]) {
        if self.error.is_none() {
            if let Err(e) = self.writer.write_all(line) {
                self.error = Some(e);
            }
        }
    }

    /// Flushes and turns the outcome into the exit code.
    fn finish(mut self, ok: bool, stderr: &mut dyn Write) -> i32 {
        if self.error.is_none() {
            if let Err(e) = self.writer.flush() {
                self.error = Some(e);
            }
        }
        match self.error {
            Some(e) => {
                let _ = writeln!(stderr, "{PROGRAM}: write error: {}", describe(&e));
                1
            }
            None if ok => 0,
            None => 1,
        }
    }
}

/// The text of an I/O error as `strerror` gives it: Rust's message without
/// its ` (os error N)` suffix.
fn describe(err: &io::Error) -> String {
    let text = err.to_string();
    match err.raw_os_error() {
        Some(code) => {
            let suffix = format!(" (os error {code})");
            text.strip_suffix(&suffix).unwrap_or(&text).to_string()
        }
        None => text,
    }
}

/// Writes `hashd: MESSAGE` to stderr. Failures to write diagnostics are
/// ignored: there is nowhere left to report them.
fn warn(stderr: &mut dyn Write, message: std::fmt::Arguments<'_>) {
    let _ = writeln!(stderr, "{PROGRAM}: {message}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(clap::Subcommand)]
    enum Command {
        Sum(SumArgs),
        Check(CheckArgs),
    }

    fn sum_args(args: &[&str]) -> SumArgs {
        let argv = ["hashd", "sum"].iter().chain(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Sum(a) => a,
            Command::Check(_) => unreachable!(),
        }
    }

    fn check_args(args: &[&str]) -> CheckArgs {
        let argv = ["hashd", "check"].iter().chain(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Check(a) => a,
            Command::Sum(_) => unreachable!(),
        }
    }

    #[test]
    fn parses_sum_flags() {
        let a = sum_args(&["-a", "sha256", "-rz", "--tag", "x", "-"]);
        assert_eq!(a.algorithm(), Algorithm::Sha256);
        assert!(a.recursive && a.zero && a.tag && !a.check);
        assert_eq!(a.files, [PathBuf::from("x"), PathBuf::from("-")]);
        assert_eq!(sum_args(&[]).algorithm(), Algorithm::Md5);
        assert_eq!(sum_args(&["--", ""]).files, [PathBuf::new()]);
        let a = sum_args(&["-a", "CRC32B", "--base64", "--raw"]);
        assert!(a.cksum_crc32b() && a.base64 && a.raw);
        assert_eq!(a.algorithm(), Algorithm::Crc32);
        assert!(!sum_args(&["-a", "crc32"]).cksum_crc32b());
        // --tag and --untagged: the last one wins.
        let a = sum_args(&["--tag", "--untagged"]);
        assert!(a.untagged && !a.tag);
        let a = sum_args(&["--untagged", "--tag"]);
        assert!(a.tag && !a.untagged);
        let argv = ["hashd", "sum", "-a", "md5,crc32b"];
        assert!(Cli::try_parse_from(argv).is_err());
    }

    #[test]
    fn last_of_quiet_status_warn_wins() {
        let a = check_args(&["--status", "-w"]);
        assert!(a.options.warn && !a.options.status);
        let a = check_args(&["-w", "--status", "--quiet"]);
        assert!(a.options.quiet && !a.options.status && !a.options.warn);
        let a = check_args(&["--quiet", "--quiet"]);
        assert!(a.options.quiet);
        let a = sum_args(&["-c", "--quiet", "--status", "-a", "SHA-1"]);
        assert!(a.check && a.verify.status && !a.verify.quiet);
        assert_eq!(a.algorithm(), Algorithm::Sha1);
        let a = sum_args(&["-b", "-t"]);
        assert!(a.text && !a.binary);
        let a = sum_args(&["-rr", "--tag", "--tag", "-zz", "-bb", "x"]);
        assert!(a.recursive && a.tag && a.zero && a.binary);
        let a = sum_args(&[
            "-cc",
            "--strict",
            "--strict",
            "--ignore-missing",
            "--ignore-missing",
        ]);
        assert!(a.check && a.verify.strict && a.verify.ignore_missing);
    }

    #[test]
    fn describe_strips_os_error_suffix() {
        let e = io::Error::from_raw_os_error(2);
        assert_eq!(describe(&e), "No such file or directory");
        let e = io::Error::other("daemon went away");
        assert_eq!(describe(&e), "daemon went away");
    }

    #[test]
    fn write_error_is_reported_once_with_exit_code_1() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from_raw_os_error(32))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut broken = Broken;
        let mut err = Vec::new();
        let mut out = Output::new(&mut broken);
        out.line(b"a\n");
        out.line(b"b\n");
        assert_eq!(out.finish(true, &mut err), 1);
        assert_eq!(err, b"hashd: write error: Broken pipe\n");
    }

    #[test]
    fn usage_errors_match_coreutils() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["--quiet"],
                "the --quiet option is meaningful only when verifying checksums",
            ),
            (
                &["-c", "--tag"],
                "the --tag option is meaningless when verifying checksums",
            ),
            (
                &["-c", "-z", "--tag"],
                "the --zero option is not supported when verifying checksums",
            ),
            (&["--tag", "-t"], "--tag does not support --text mode"),
            (
                &["--base64", "--raw"],
                "--base64 and --raw are mutually exclusive",
            ),
            (&["-a", "md5,sha1", "--raw"], "--raw takes one algorithm"),
            (
                &["-a", "md5,sha1", "--untagged"],
                "--untagged takes one algorithm (only a tag tells the lines of several apart)",
            ),
            (
                &["-a", "crc32b", "-c"],
                "--check is not supported with --algorithm=crc32b",
            ),
            (
                &["--strict", "--quiet"],
                "the --quiet option is meaningful only when verifying checksums",
            ),
        ];
        for (argv, want) in cases {
            let mut out = Vec::new();
            let mut err = Vec::new();
            let code = run_sum(&sum_args(argv), &mut ReadDigests::new(), &mut out, &mut err);
            assert_eq!(code, 1, "{argv:?}");
            assert!(out.is_empty());
            let want = format!("hashd: {want}\nTry 'hashd sum --help' for more information.\n");
            assert_eq!(String::from_utf8(err).unwrap(), want, "{argv:?}");
        }
    }
}
