//! `hashd sum`'s cksum-style formats (`--tag`, `--untagged`, `--base64`,
//! `--raw`, `-a crc32b`) against coreutils' `cksum` byte for byte, for
//! every option and algorithm this machine's cksum has; `hashd check` on
//! lists written by cksum and in b3sum's format. Where the installed cksum
//! predates an option (`--base64` and `--raw` came in coreutils 9.2,
//! `crc32b` in 9.6, `sha3` in 9.8), the expected bytes are derived from its
//! hex output, or from scripts/refdigest.py, and the test says so.

use std::path::Path;
use std::process::Output;

use base64::Engine as _;

use crate::util::{run_cli, TempDir, BIN};

/// Runs `hashd ARGS` (in-process: `--no-daemon` after the subcommand).
fn hashd(cwd: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut all = vec![args[0], "--no-daemon"];
    all.extend_from_slice(&args[1..]);
    run_cli(cwd, BIN, &all, stdin)
}

/// Whether this machine's cksum accepts `args` (reading empty input).
fn cksum_has(args: &[&str]) -> bool {
    run_cli(Path::new("/"), "cksum", args, b"").status.success()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `ours` (hashd) prints what `theirs` (cksum) prints, byte for byte, on
/// stdout, with the same exit code.
fn same(cwd: &Path, ours: &[&str], theirs: &[&str], stdin: &[u8]) {
    let want = run_cli(cwd, "cksum", theirs, stdin);
    assert!(want.status.success(), "cksum {theirs:?}: {want:?}");
    let got = hashd(cwd, ours, stdin);
    assert_eq!(text(&got.stdout), text(&want.stdout), "hashd {ours:?}");
    assert_eq!(got.stdout, want.stdout, "hashd {ours:?}");
    assert_eq!(got.status.code(), want.status.code(), "hashd {ours:?}");
}

/// Files with the names checksum tools treat specially.
const FILES: [(&str, &[u8]); 5] = [
    ("empty", b""),
    ("abc", b"abc"),
    ("with space", b"a file whose name has a space\n"),
    ("back\\slash", b"escaped name"),
    ("big", &[0x5a; 200_000]),
];

fn make_files(dir: &Path) -> Vec<&'static str> {
    for (name, data) in FILES {
        std::fs::write(dir.join(name), data).unwrap();
    }
    FILES.iter().map(|(n, _)| *n).collect()
}

/// The algorithms coreutils 9.1's cksum and hashd share, by their name in
/// both.
const SHARED: [&str; 6] = ["md5", "sha1", "sha224", "sha256", "sha384", "sha512"];

/// hex → base64, and the raw bytes, of a digest.
fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn sum_prints_what_cksum_prints() {
    let dir = TempDir::new("cli-formats");
    let cwd = dir.path();
    let names = make_files(cwd);
    let with = |head: &[&'static str]| -> Vec<&'static str> {
        let mut v = head.to_vec();
        v.extend(names.iter().copied());
        v
    };
    let has_base64 = cksum_has(&["--base64", "-a", "md5"]);
    if !has_base64 {
        eprintln!(
            "cksum here lacks --base64 and --raw (coreutils < 9.2): comparing with its hex digests re-encoded"
        );
    }
    for algo in SHARED {
        // cksum -a tags by default; hashd sum, like md5sum, with --tag.
        same(
            cwd,
            &with(&["sum", "-a", algo, "--tag"]),
            &with(&["-a", algo]),
            b"",
        );
        same(
            cwd,
            &with(&["sum", "-a", algo, "--untagged"]),
            &with(&["-a", algo, "--untagged"]),
            b"",
        );
        same(cwd, &["sum", "-a", algo, "--tag"], &["-a", algo], b"stdin");
        same(
            cwd,
            &["sum", "-a", algo, "--untagged", "-z", "-"],
            &["-a", algo, "--untagged", "-z", "-"],
            b"stdin",
        );
        if has_base64 {
            same(
                cwd,
                &with(&["sum", "-a", algo, "--tag", "--base64"]),
                &with(&["-a", algo, "--base64"]),
                b"",
            );
            same(
                cwd,
                &with(&["sum", "-a", algo, "--untagged", "--base64"]),
                &with(&["-a", algo, "--untagged", "--base64"]),
                b"",
            );
            same(
                cwd,
                &["sum", "-a", algo, "--raw", "abc"],
                &["-a", algo, "--raw", "abc"],
                b"",
            );
        } else {
            // The same lines with each hex digest in base64, and raw.
            let hex = run_cli(cwd, "cksum", &with(&["-a", algo, "--untagged"]), b"");
            let want: String = text(&hex.stdout)
                .lines()
                .map(|l| {
                    let (escape, l) = match l.strip_prefix('\\') {
                        Some(rest) => ("\\", rest),
                        None => ("", l),
                    };
                    let (h, rest) = l.split_once(' ').unwrap();
                    format!("{escape}{} {rest}\n", b64(&unhex(h)))
                })
                .collect();
            let got = hashd(
                cwd,
                &with(&["sum", "-a", algo, "--untagged", "--base64"]),
                b"",
            );
            assert_eq!(text(&got.stdout), want, "{algo} --base64");
            let raw = hashd(cwd, &["sum", "-a", algo, "--raw", "abc"], b"");
            let hex = run_cli(cwd, "cksum", &["-a", algo, "--untagged", "abc"], b"");
            let hex = text(&hex.stdout);
            assert_eq!(
                raw.stdout,
                unhex(hex.split(' ').next().unwrap()),
                "{algo} --raw"
            );
        }
    }
    // SHA3 arrived in coreutils 9.8 as `-a sha3 -l 256`, tagged SHA3-256.
    if cksum_has(&["-a", "sha3", "-l", "256"]) {
        for (bits, algo) in [("256", "sha3-256"), ("512", "sha3-512")] {
            same(
                cwd,
                &with(&["sum", "-a", algo, "--tag"]),
                &with(&["-a", "sha3", "-l", bits]),
                b"",
            );
        }
    } else {
        eprintln!("cksum here lacks -a sha3 (coreutils < 9.8): sha3 lines not compared");
    }

    // crc32b: `CRC BYTES NAME`, the name only for named files.
    if cksum_has(&["-a", "crc32b"]) {
        same(
            cwd,
            &with(&["sum", "-a", "crc32b"]),
            &with(&["-a", "crc32b"]),
            b"",
        );
        same(cwd, &["sum", "-a", "crc32b"], &["-a", "crc32b"], b"stdin");
        same(
            cwd,
            &["sum", "-a", "crc32b", "-"],
            &["-a", "crc32b", "-"],
            b"stdin",
        );
        same(
            cwd,
            &["sum", "-a", "crc32b", "--raw", "abc"],
            &["-a", "crc32b", "--raw", "abc"],
            b"",
        );
    } else {
        eprintln!(
            "cksum here lacks -a crc32b (coreutils < 9.6): comparing with zlib's crc32 (Python)"
        );
        let out = hashd(cwd, &with(&["sum", "-a", "crc32b"]), b"");
        assert!(out.status.success());
        let mut want = String::new();
        for (name, data) in FILES {
            let py = run_cli(
                cwd,
                "python3",
                &[
                    "-c",
                    "import sys, zlib; print(zlib.crc32(sys.stdin.buffer.read()))",
                ],
                data,
            );
            let crc = text(&py.stdout).trim().to_string();
            want.push_str(&format!("{crc} {} {name}\n", data.len()));
        }
        assert_eq!(text(&out.stdout), want);
        let out = hashd(cwd, &["sum", "-a", "crc32b"], b"abc");
        assert_eq!(text(&out.stdout), "891568578 3\n");
        let out = hashd(cwd, &["sum", "-a", "crc32b", "--raw", "abc"], b"");
        assert_eq!(out.stdout, 891568578u32.to_be_bytes());
    }

    // Usage errors, as cksum words them.
    let out = hashd(cwd, &["sum", "--raw", "abc", "empty"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr),
        "hashd: the --raw option is not supported with multiple files\n"
    );
    let out = hashd(cwd, &["sum", "--raw", "--base64", "abc"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("hashd: --base64 and --raw are mutually exclusive\n"),
        "{}",
        text(&out.stderr)
    );
    let out = hashd(cwd, &["check", "-a", "crc32b", "x"], b"");
    assert_eq!(out.status.code(), Some(1));
}

/// coreutils v9.11 tests/cksum/cksum-base64.pl, the cases for algorithms
/// hashd has (md5, sha1, sha2 -l 512, sha3 -l 512, crc32b), each on an
/// empty file `f`: `--base64` output; `--check --strict` of that output;
/// and a digest with a padding `=` removed, which is no checksum line.
#[test]
fn cksum_base64_cases_from_coreutils() {
    let dir = TempDir::new("cli-base64");
    let cwd = dir.path();
    std::fs::write(cwd.join("f"), b"").unwrap();
    let pairs = [
        ("md5", "MD5", "1B2M2Y8AsgTpgAmY7PhCfg=="),
        ("sha1", "SHA1", "2jmj7l5rSw0yVb/vlWAYkK/YBwk="),
        (
            "sha512",
            "SHA512",
            "z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg==",
        ),
        (
            "sha3-512",
            "SHA3-512",
            "pp9zzKI6msXItWfcGFp1bpfJghZP4lhZ4NHcwUdcgKYVshI68fX5TBHj6UAsOsVY9QAZnZW20+MBdYWGKB3NJg==",
        ),
    ];
    // ['crc32b', "0 0 f"]
    let out = hashd(cwd, &["sum", "--base64", "-a", "crc32b", "f"], b"");
    assert_eq!(text(&out.stdout), "0 0 f\n");
    for (algo, tag, v) in pairs {
        // [$h, "--base64 -a $opts", {IN=>{f=>''}}, {OUT=>"$o\n"}]
        let line = format!("{tag} (f) = {v}\n");
        let out = hashd(cwd, &["sum", "--tag", "--base64", "-a", algo, "f"], b"");
        assert_eq!(text(&out.stdout), line, "{algo}");
        // ["chk-".$h, "--check --strict", {IN=>$o}, {AUX=>{f=>''}}, {OUT=>"f: OK\n"}]
        std::fs::write(cwd.join("in"), &line).unwrap();
        let out = hashd(cwd, &["check", "--strict", "in"], b"");
        assert_eq!(
            text(&out.stdout),
            "f: OK\n",
            "chk-{algo}: {}",
            text(&out.stderr)
        );
        assert!(out.status.success());
        // ["chk-eq1-".$h, "--check", ...] and "chk-eq2-": "=" removed.
        for cut in ["=", "=="] {
            let Some(short) = v.strip_suffix(cut) else {
                continue;
            };
            std::fs::write(cwd.join("in"), format!("{tag} (f) = {short}\n")).unwrap();
            let out = hashd(cwd, &["check", "in"], b"");
            assert_eq!(out.status.code(), Some(1), "chk-eq-{algo}");
            assert!(out.stdout.is_empty());
            assert_eq!(
                text(&out.stderr),
                "hashd: in: no properly formatted checksum lines found\n",
                "chk-eq-{algo}"
            );
        }
    }
    // ['nul', '-a sha1 --check', {IN=>'\0\0\0'}, ...]: perl's '\0\0\0'
    // is six characters, backslash and zero.
    let out = hashd(cwd, &["check", "-a", "sha1", "-"], b"\\0\\0\\0");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "hashd: 'standard input': no properly formatted checksum lines found\n"
    );
}

/// `hashd check` reads what cksum writes (tagged lines of every shared
/// algorithm in one list; untagged lines, whose algorithm is told by their
/// length where only one algorithm has it, else by `-a`; base64 digests)
/// and b3sum's `HEX  NAME` lines with `-a blake3`.
#[test]
fn check_reads_lists_cksum_and_b3sum_write() {
    let dir = TempDir::new("cli-check-lists");
    let cwd = dir.path();
    let names = make_files(cwd);
    let with = |head: &[&'static str]| -> Vec<&'static str> {
        let mut v = head.to_vec();
        v.extend(names.iter().copied());
        v
    };
    let check = |args: &[&str], list: &str| -> Output {
        std::fs::write(cwd.join("LIST"), list).unwrap();
        let mut all = vec!["check"];
        all.extend_from_slice(args);
        all.push("LIST");
        hashd(cwd, &all, b"")
    };
    let oks = |out: &Output| text(&out.stdout).matches(": OK\n").count();

    // Every shared algorithm, tagged, in one list; in base64 too.
    let has_base64 = cksum_has(&["--base64", "-a", "md5"]);
    let mut tagged = String::new();
    let mut tagged64 = String::new();
    for algo in SHARED {
        tagged.push_str(&text(
            &run_cli(cwd, "cksum", &with(&["-a", algo]), b"").stdout,
        ));
        let b64_list = if has_base64 {
            run_cli(cwd, "cksum", &with(&["-a", algo, "--base64"]), b"").stdout
        } else {
            hashd(cwd, &with(&["sum", "-a", algo, "--tag", "--base64"]), b"").stdout
        };
        tagged64.push_str(&text(&b64_list));
    }
    for list in [&tagged, &tagged64] {
        let out = check(&[], list);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(oks(&out), SHARED.len() * names.len());
        assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    }

    // Untagged: the length tells md5, sha1, sha224 and sha384 apart; 64
    // and 128 hex digits need -a.
    for algo in SHARED {
        let list = text(&run_cli(cwd, "cksum", &with(&["-a", algo, "--untagged"]), b"").stdout);
        let out = check(&["-a", algo], &list);
        assert!(out.status.success(), "{algo}: {}", text(&out.stderr));
        assert_eq!(oks(&out), names.len());
        let out = check(&[], &list);
        if matches!(algo, "sha256" | "sha512") {
            assert_eq!(out.status.code(), Some(1), "{algo}");
            let err = text(&out.stderr);
            assert!(
                err.contains("no properly formatted checksum lines found"),
                "{err}"
            );
            assert!(err.contains("(use -a to say which)"), "{err}");
        } else {
            assert!(out.status.success(), "{algo}: {}", text(&out.stderr));
            assert_eq!(oks(&out), names.len());
        }
        // Base64 untagged lines, with -a.
        let list = if has_base64 {
            run_cli(
                cwd,
                "cksum",
                &with(&["-a", algo, "--untagged", "--base64"]),
                b"",
            )
            .stdout
        } else {
            hashd(cwd, &with(&["sum", "-a", algo, "--base64"]), b"").stdout
        };
        let out = check(&["-a", algo], &text(&list));
        assert!(out.status.success(), "{algo} base64: {}", text(&out.stderr));
        assert_eq!(oks(&out), names.len());
    }

    // b3sum's format is sha256sum's: `HEX  NAME`. BLAKE3 of "abc" and of
    // nothing, from the BLAKE3 team's test vectors and b3sum.
    let b3 = "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85  abc\n\
              af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262  empty\n";
    let out = check(&["-a", "blake3"], b3);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "abc: OK\nempty: OK\n");
    let out = hashd(cwd, &["sum", "-a", "blake3", "abc", "empty"], b"");
    assert_eq!(text(&out.stdout), b3);

    // A changed file fails its lines in every form.
    std::fs::write(cwd.join("abc"), b"abd").unwrap();
    for list in [&tagged, &tagged64] {
        let out = check(&[], list);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            text(&out.stdout).matches("abc: FAILED\n").count(),
            SHARED.len()
        );
    }
    let out = check(&["-a", "blake3"], b3);
    assert_eq!(text(&out.stdout), "abc: FAILED\nempty: OK\n");
}
