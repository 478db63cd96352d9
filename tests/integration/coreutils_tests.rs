//! coreutils' own tests for md5sum, sha1sum, sha224sum, sha256sum,
//! sha384sum and sha512sum (their `.pl` files and harness, vendored in
//! tests/coreutils/, see its README) run against `hashd sum -a ALGO`, with
//! only the program name differing (tests/coreutils/sum-wrapper.sh). Needs
//! perl: skipped without it on a developer machine, a failure in CI.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::util::{TempDir, BIN};

/// The vendored files.
fn vendored() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/coreutils")
}

/// The programs the tests are for; each `.pl` file tests one of them.
const PROGRAMS: &str = "md5sum sha1sum sha224sum sha256sum sha384sum sha512sum";

/// The test files, each named after the program it runs, plus its suffix.
const TESTS: [&str; 7] = [
    "md5sum",
    "md5sum-newline",
    "sha1sum",
    "sha224sum",
    "sha256sum",
    "sha384sum",
    "sha512sum",
];

fn have_perl() -> bool {
    // The harness's modules come with Debian's perl package, not perl-base.
    let ok = Command::new("perl")
        .args([
            "-MFile::Temp",
            "-MFile::Compare",
            "-MFile::Find",
            "-MText::ParseWords",
            "-e1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "coreutils_tests: perl (with its standard modules) must be installed in CI"
        );
        eprintln!("coreutils_tests: skipped: needs perl (Debian package perl)");
    }
    ok
}

/// Runs one `.pl` file as coreutils' `make check` does, with `bin` first
/// in PATH and scratch directories under `tmp`.
fn run_pl(name: &str, bin: &Path, tmp: &Path) -> Output {
    let dir = vendored();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("perl")
        .arg("-w")
        .arg(format!("-I{}", dir.display()))
        .arg("-MCuSkip")
        .arg("-MCoreutils")
        .arg(format!("-MCuTmpdir={}", tmp.join(name).display()))
        .arg(dir.join(format!("{name}.pl")))
        .env("PATH", path)
        .env("built_programs", PROGRAMS)
        .env("srcdir", &dir)
        .env("HASHD_BIN", BIN)
        // The tests' own verbosity switches, off whatever the caller set.
        .env_remove("VERBOSE")
        .env_remove("DEBUG")
        .stdin(Stdio::null())
        .output()
        .expect("run perl")
}

#[test]
fn coreutils_sum_tests_pass_against_hashd_sum() {
    if !have_perl() {
        return;
    }
    let scratch = TempDir::new("coreutils");
    let bin = scratch.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for program in PROGRAMS.split(' ') {
        symlink(vendored().join("sum-wrapper.sh"), bin.join(program)).unwrap();
    }
    let mut failed = Vec::new();
    for name in TESTS {
        let out = run_pl(name, &bin, scratch.path());
        // 77 is the harness's "skipped": none of these may skip.
        if out.status.code() != Some(0) {
            failed.push(format!(
                "{name}.pl: {}\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// The harness really compares: a `sha224sum` that prints SHA-256 digests
/// fails sha224sum.pl.
#[test]
fn coreutils_harness_catches_a_wrong_program() {
    if !have_perl() {
        return;
    }
    let scratch = TempDir::new("coreutils-wrong");
    let bin = scratch.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let wrong = bin.join("sha224sum");
    std::fs::write(
        &wrong,
        "#!/bin/sh\nexec \"$HASHD_BIN\" sum --no-daemon -a sha256 \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = run_pl("sha224sum", &bin, scratch.path());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("test s3: stdout mismatch"), "{err}");
}
