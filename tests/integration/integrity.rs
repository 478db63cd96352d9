//! Issue 16: the algorithms storage systems use, several digests in one
//! pass, and the digests clients claim. Every digest is judged by
//! `scripts/refdigest.py` (Python's hashlib and zlib, the blake3 package,
//! crcmod), never by hashd's own code.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;

use base64::Engine as _;

use crate::util::*;

/// Every algorithm hashd has, in its table's order.
const ALL: &str =
    "md5,sha1,sha224,sha256,sha384,sha512,sha3-256,sha3-512,blake3,crc32,crc32c,crc64nvme";

/// The reference digests of each input for `algos`: one `Vec` of hex per
/// input, in `algos` order. `None` (with a message) where the references
/// are not installed, unless `HASHD_REQUIRE_REFERENCES` is set (`.ci/run`
/// sets it once it has installed them).
fn references(dir: &Path, algos: &str, inputs: &[Vec<u8>]) -> Option<Vec<Vec<String>>> {
    let data = dir.join("ref-data");
    let lengths = dir.join("ref-lengths");
    std::fs::write(&data, inputs.concat()).unwrap();
    let listed: String = inputs.iter().map(|i| format!("{}\n", i.len())).collect();
    std::fs::write(&lengths, listed).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/refdigest.py");
    let out = Command::new("python3")
        .args([script, algos])
        .arg(&data)
        .arg(&lengths)
        .output();
    match out {
        Ok(o) if o.status.success() => Some(
            String::from_utf8(o.stdout)
                .unwrap()
                .lines()
                .map(|l| l.split(' ').map(str::to_string).collect())
                .collect(),
        ),
        other => {
            let why = format!("scripts/refdigest.py failed: {other:?}");
            assert!(
                std::env::var_os("HASHD_REQUIRE_REFERENCES").is_none(),
                "{why}"
            );
            eprintln!("skipped: {why} (pip install blake3 crcmod)");
            None
        }
    }
}

fn b64(hex: &str) -> String {
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Inputs of every length up to 256, then longer ones up to 1 MiB.
fn inputs() -> Vec<Vec<u8>> {
    let mut lens: Vec<usize> = (0..=256).collect();
    lens.extend([
        511,
        512,
        513,
        1023,
        1024,
        1025,
        4095,
        4096,
        4097,
        16383,
        16384,
        16385,
        65535,
        65536,
        65537,
        100_000,
        262_143,
        262_144,
        262_145,
        1 << 20,
    ]);
    lens.iter()
        .enumerate()
        .map(|(i, &len)| data(len, i as u64 + 16))
        .collect()
}

#[test]
fn every_algorithm_alone_and_together_over_http_and_the_socket_equals_its_reference() {
    let dir = TempDir::new("integrity-ref");
    let inputs = inputs();
    let Some(want) = references(dir.path(), ALL, &inputs) else {
        return;
    };
    let d = Daemon::start(dir.path());
    // The start-up self-test passed, and /stats says what runs each one.
    let (_, stats) = d.get_json("/stats");
    assert_eq!(stats["self_test"]["passed"], true, "{stats}");
    assert!(stats["self_test"]["checks"].as_u64().unwrap() > 36);
    assert!(d.stderr().contains("known-answer self-test passed"));
    let names: Vec<&str> = ALL.split(',').collect();
    for name in &names {
        assert!(
            stats["implementations"][name].is_string(),
            "{name}: {stats}"
        );
    }
    assert_eq!(stats["algorithms"].as_array().unwrap().len(), names.len());
    for (i, input) in inputs.iter().enumerate() {
        // All algorithms in one pass, raw and multipart by turns.
        let r = if i % 2 == 0 {
            request(
                d.addr,
                "PUT",
                &format!("/files?wait=1&algo={ALL}"),
                &[],
                input,
            )
        } else {
            d.upload(&format!("?wait=1&algo={ALL}"), "f", input)
        };
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        assert_eq!(v["status"], "SUCCESS");
        assert_eq!(v["algorithm"], ALL);
        assert_eq!(v["hash"], want[i][0].as_str());
        for (k, name) in names.iter().enumerate() {
            assert_eq!(
                v["hashes"][name],
                want[i][k].as_str(),
                "{name} of {} bytes",
                input.len()
            );
            assert_eq!(v["hashes_base64"][name], b64(&want[i][k]), "{name}");
        }
        // And each alone, on a rotating subset.
        let k = i % names.len();
        let r = request(
            d.addr,
            "PUT",
            &format!("/files?wait=1&algo={}", names[k]),
            &[],
            input,
        );
        assert_eq!(r.json()["hash"], want[i][k].as_str(), "{} alone", names[k]);
    }
    // A lookup answers every digest; the store kept them.
    let r = request(
        d.addr,
        "PUT",
        &format!("/files?wait=1&algo={ALL}"),
        &[],
        &inputs[270],
    );
    let id = r.json()["id"].as_str().unwrap().to_string();
    let (_, v) = d.get_json(&format!("/gethash/{id}"));
    for (k, name) in names.iter().enumerate() {
        assert_eq!(v["hashes"][name], want[270][k].as_str());
    }
    let jobs = d.get_json("/jobs?limit=1").1;
    assert_eq!(jobs["jobs"][0]["hashes"]["blake3"], want[270][8].as_str());
    // Socket streams, all algorithms in one pass.
    let mut s = UnixStream::connect(dir.path().join("data/hashd.sock")).unwrap();
    for (i, input) in inputs.iter().enumerate().step_by(7) {
        let tag = i as u64 + 1;
        s.write_all(&frame(0x03, tag, ALL.as_bytes())).unwrap();
        for piece in input.chunks(100_000) {
            s.write_all(&frame(0x04, tag, piece)).unwrap();
        }
        s.write_all(&frame(0x05, tag, b"")).unwrap();
        let (kind, got, body) = read_frame(&mut s).unwrap();
        assert_eq!((kind, got), (0x80, tag));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["size"], input.len());
        for (k, name) in names.iter().enumerate() {
            assert_eq!(v["hashes"][name], want[i][k].as_str(), "socket {name}");
        }
    }
}

/// One upload with `headers` (raw or multipart), answered as (status,
/// JSON, the job's final state by lookup, if it has an id).
fn claimed(
    d: &Daemon,
    multipart_form: bool,
    wait: bool,
    headers: &[(&str, &str)],
    fields: &[(&str, &str)],
    data: &[u8],
) -> (u16, serde_json::Value, Option<serde_json::Value>) {
    let q = if wait { "?wait=1" } else { "" };
    let r = if multipart_form {
        let mut parts: Vec<Part> = fields
            .iter()
            .map(|(k, v)| Part::field(k, v.as_bytes()))
            .collect();
        parts.push(Part::file("file", "f.bin", data));
        let (ct, body) = multipart(&parts);
        let mut h = headers.to_vec();
        h.push(("Content-Type", &ct));
        request(d.addr, "POST", &format!("/uploadfile/{q}"), &h, &body)
    } else {
        request(d.addr, "PUT", &format!("/files{q}"), headers, data)
    };
    let v = r.json();
    let lookup = v["id"].as_str().map(|id| d.wait_final(id));
    (r.status, v, lookup)
}

#[test]
fn claimed_digests_are_checked_and_a_mismatch_is_400_and_failure() {
    let dir = TempDir::new("integrity-claims");
    let input = data(300_000, 7);
    let other = data(300_000, 8);
    let Some(refs) = references(dir.path(), ALL, &[input.clone(), other]) else {
        return;
    };
    let d = Daemon::start(dir.path());
    let names: Vec<&str> = ALL.split(',').collect();
    let good = |name: &str| refs[0][names.iter().position(|n| *n == name).unwrap()].clone();
    let bad = |name: &str| refs[1][names.iter().position(|n| *n == name).unwrap()].clone();
    // (header, value for a digest in hex, applies to multipart)
    type Form = fn(&str) -> String;
    let header_cases: Vec<(&str, &str, Form, bool)> = vec![
        ("Content-MD5", "md5", |h| b64(h), false),
        (
            "Repr-Digest",
            "sha256",
            |h| format!("sha-256=:{}:", b64(h)),
            false,
        ),
        (
            "Content-Digest",
            "sha512",
            |h| format!("sha-512=:{}:", b64(h)),
            false,
        ),
        ("x-amz-checksum-crc64nvme", "crc64nvme", |h| b64(h), true),
        ("x-amz-checksum-crc32", "crc32", |h| b64(h), true),
        ("x-amz-checksum-sha1", "sha1", |h| b64(h), true),
        (
            "x-goog-hash",
            "crc32c",
            |h| format!("crc32c={}", b64(h)),
            true,
        ),
        (
            "Upload-Checksum",
            "sha256",
            |h| format!("sha256 {}", b64(h)),
            true,
        ),
    ];
    for (header, algo, form, on_multipart) in header_cases {
        for multipart_form in [false, true] {
            for wait in [false, true] {
                let what = format!("{header} multipart={multipart_form} wait={wait}");
                let right = form(&good(algo));
                let (status, v, job) =
                    claimed(&d, multipart_form, wait, &[(header, &right)], &[], &input);
                if multipart_form && !on_multipart {
                    // Covers the whole form, not the file: refused, no job.
                    assert_eq!(status, 400, "{what}: {v}");
                    assert!(v["id"].is_null(), "{what}");
                    continue;
                }
                assert_eq!(status, 200, "{what}: {v}");
                assert_eq!(v["status"], "SUCCESS", "{what}");
                assert_eq!(v["hashes"][algo], good(algo).as_str(), "{what}");
                assert_eq!(job.unwrap()["status"], "SUCCESS", "{what}");
                let wrong = form(&bad(algo));
                let (status, v, job) =
                    claimed(&d, multipart_form, wait, &[(header, &wrong)], &[], &input);
                assert_eq!(status, 400, "{what}: {v}");
                let err = v["error"].as_str().unwrap();
                assert!(err.starts_with("digest mismatch"), "{what}: {err}");
                assert!(
                    err.contains(&bad(algo)) && err.contains(&good(algo)),
                    "{what}: {err}"
                );
                let job = job.expect("a mismatch is a recorded job");
                assert_eq!(job["status"], "FAILURE", "{what}");
                assert!(job["hash"].is_null(), "{what}");
                let malformed = "#not a digest#";
                let (status, v, _) = claimed(
                    &d,
                    multipart_form,
                    wait,
                    &[(header, malformed)],
                    &[],
                    &input,
                );
                assert_eq!(status, 400, "{what} malformed: {v}");
                assert!(v["id"].is_null(), "{what}: a malformed claim makes no job");
            }
        }
    }
    // An algorithm hashd lacks is named.
    let (status, v, _) = claimed(
        &d,
        false,
        false,
        &[("Repr-Digest", "whirlpool=:AAAA:")],
        &[],
        &input,
    );
    assert_eq!(status, 400);
    assert!(v["error"].as_str().unwrap().contains("whirlpool"), "{v}");
    // Form fields, before and after the file.
    let md5 = good("md5");
    for fields in [
        vec![("expected_md5", md5.as_str())],
        vec![("expected", &*format!("sha3-256:{}", good("sha3-256")))],
    ] {
        let (status, v, _) = claimed(&d, true, false, &[], &fields, &input);
        assert_eq!(
            (status, &v["status"]),
            (200, &"SUCCESS".into()),
            "{fields:?}: {v}"
        );
    }
    let wrong_md5 = bad("md5");
    let (status, v, job) = claimed(
        &d,
        true,
        false,
        &[],
        &[("expected_md5", &wrong_md5)],
        &input,
    );
    assert_eq!(status, 400, "{v}");
    assert_eq!(job.unwrap()["status"], "FAILURE");
    // A field after the file: checked when its algorithm was computed.
    let (ct, body) = multipart(&[
        Part::file("file", "f", &input),
        Part::field("expected_md5", wrong_md5.as_bytes()),
    ]);
    let r = request(
        d.addr,
        "POST",
        "/uploadfile/",
        &[("Content-Type", &ct)],
        &body,
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        d.wait_final(r.json()["id"].as_str().unwrap())["status"],
        "FAILURE"
    );
    let sha = good("sha256");
    let (ct, body) = multipart(&[
        Part::file("file", "f", &input),
        Part::field("expected_sha256", sha.as_bytes()),
    ]);
    let r = request(
        d.addr,
        "POST",
        "/uploadfile/",
        &[("Content-Type", &ct)],
        &body,
    );
    assert_eq!(r.status, 400, "not computed: {}", r.text());
    assert!(r.json()["id"].is_null());
    // Final answers carry the S3 and GCS digest headers.
    let r = request(
        d.addr,
        "PUT",
        "/files?wait=1&algo=sha256,crc32c,md5",
        &[],
        &input,
    );
    assert_eq!(
        r.header("x-amz-checksum-sha256"),
        Some(b64(&good("sha256")).as_str())
    );
    assert_eq!(
        r.header("x-goog-hash"),
        Some(format!("crc32c={},md5={}", b64(&good("crc32c")), b64(&good("md5"))).as_str())
    );
}

#[test]
fn a_database_from_before_the_hashes_column_keeps_working() {
    if testing_postgres() {
        // SQLite's start-up ALTER TABLE; PostgreSQL's migration 2 is
        // applied by every test that starts a node on a fresh database.
        return;
    }
    let dir = TempDir::new("integrity-oldschema");
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let db = dir.path().join("data/jobs.db");
    // The table as the previous release created it, with one finished job.
    let status = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys\n\
             c = sqlite3.connect(sys.argv[1])\n\
             c.executescript('''CREATE TABLE jobs (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,\n\
               status TEXT NOT NULL CHECK (status IN ('PENDING','SUCCESS','FAILURE')), algorithm TEXT NOT NULL,\n\
               hash TEXT, size INTEGER, name TEXT, error TEXT, stored_path TEXT, created_ms INTEGER NOT NULL,\n\
               finished_ms INTEGER);\n\
               INSERT INTO jobs (id, status, algorithm, hash, size, created_ms, finished_ms)\n\
               VALUES ('0000018c000000000000000000000001', 'SUCCESS', 'md5', 'd41d8cd98f00b204e9800998ecf8427e', 0, 1, 2);''')\n\
             c.commit()",
        ])
        .arg(&db)
        .status()
        .unwrap();
    assert!(status.success());
    let d = Daemon::start(dir.path());
    let (_, old) = d.get_json("/gethash/0000018c000000000000000000000001");
    assert_eq!(old["hashes"]["md5"], "d41d8cd98f00b204e9800998ecf8427e");
    let r = request(d.addr, "PUT", "/files?wait=1&algo=md5,sha256", &[], b"abc");
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert!(d.terminate().success());
    let d = Daemon::start(dir.path());
    let (_, v) = d.get_json(&format!("/gethash/{id}"));
    assert_eq!(
        v["hashes"]["sha256"],
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(v["hash"], "900150983cd24fb0d6963f7d28e17f72");
}

fn run_in(cwd: &Path, prog: &str, args: &[&str]) -> std::process::Output {
    Command::new(prog)
        .args(args)
        .current_dir(cwd)
        .env_remove("HASHD_SOCKET")
        .env_remove("HASHD_DATA_DIR")
        .output()
        .unwrap()
}

/// `hashd sum -a ALGO` for every algorithm, in-process and through the
/// daemon, against the references; sha224sum's and sha384sum's own output
/// byte for byte; several algorithms as BSD lines that `hashd check`
/// verifies, and that fail on a changed file.
#[test]
fn the_command_line_hashes_every_algorithm_alone_and_together() {
    let dir = TempDir::new("integrity-cli");
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let lens = [0usize, 1, 55, 56, 64, 1000, 65_537, 1 << 20];
    let inputs: Vec<Vec<u8>> = lens.iter().map(|&l| data(l, l as u64 + 3)).collect();
    let names: Vec<String> = (0..inputs.len()).map(|i| format!("f{i}")).collect();
    for (n, d) in names.iter().zip(&inputs) {
        std::fs::write(files.join(n), d).unwrap();
    }
    let Some(want) = references(dir.path(), ALL, &inputs) else {
        return;
    };
    let d = Daemon::start(dir.path());
    let sock = dir.path().join("data/hashd.sock");
    let sock = sock.to_str().unwrap();
    let algos: Vec<&str> = ALL.split(',').collect();
    for via in [None, Some(sock)] {
        for (k, algo) in algos.iter().enumerate() {
            let mut args = vec!["sum", "-a", algo];
            if let Some(s) = via {
                args.extend(["--socket", s]);
            }
            args.extend(names.iter().map(String::as_str));
            let out = run_in(&files, BIN, &args);
            assert!(out.status.success(), "{args:?}");
            let expect: String = names
                .iter()
                .enumerate()
                .map(|(i, n)| format!("{}  {n}\n", want[i][k]))
                .collect();
            assert_eq!(String::from_utf8_lossy(&out.stdout), expect, "{args:?}");
        }
        // All of them in one pass: BSD lines, file by file.
        let mut args = vec!["sum", "-a", ALL];
        if let Some(s) = via {
            args.extend(["--socket", s]);
        }
        args.extend(names.iter().map(String::as_str));
        let out = run_in(&files, BIN, &args);
        assert!(out.status.success());
        let mut expect = String::new();
        for (i, n) in names.iter().enumerate() {
            for (k, algo) in algos.iter().enumerate() {
                let tag = algo.to_uppercase();
                expect.push_str(&format!("{tag} ({n}) = {}\n", want[i][k]));
            }
        }
        assert_eq!(String::from_utf8_lossy(&out.stdout), expect);
        std::fs::write(dir.path().join("SUMS"), &out.stdout).unwrap();
        let sums = dir.path().join("SUMS");
        let check = run_in(&files, BIN, &["check", sums.to_str().unwrap()]);
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&check.stdout)
                .matches(": OK\n")
                .count(),
            names.len() * algos.len()
        );
    }
    // coreutils has sha224sum and sha384sum: the same bytes out.
    for (tool, algo) in [("sha224sum", "sha224"), ("sha384sum", "sha384")] {
        for extra in [&[][..], &["--tag"][..], &["-b"][..]] {
            let mut theirs: Vec<&str> = extra.to_vec();
            theirs.extend(names.iter().map(String::as_str));
            let mut ours = vec!["sum", "-a", algo];
            ours.extend(theirs.iter().copied());
            let a = run_in(&files, tool, &theirs);
            let b = run_in(&files, BIN, &ours);
            assert_eq!(b.stdout, a.stdout, "{tool} {extra:?}");
        }
    }
    // A changed file fails its lines, whatever their algorithm.
    std::fs::write(files.join("f3"), b"changed").unwrap();
    let sums = dir.path().join("SUMS");
    let check = run_in(&files, BIN, &["check", sums.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&check.stdout)
            .matches("f3: FAILED\n")
            .count(),
        algos.len()
    );
    drop(d);
}

/// The issue's bar: 10,000 random inputs (every length up to 256, then
/// random lengths up to 1 MiB, most short), each with every algorithm in
/// one pass and with one algorithm alone (a different one per input), via
/// HTTP, the socket and the command line, equal to the references.
#[test]
fn ten_thousand_random_inputs_equal_their_references_everywhere() {
    let dir = TempDir::new("integrity-10k");
    let mut x: u64 = 0x1600_0016;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut lens: Vec<usize> = (0..=256).collect();
    while lens.len() < 10_000 {
        lens.push(if next(50) == 0 {
            next((1 << 20) + 1) as usize
        } else {
            let bits = next(17);
            (next(1 << bits) + (1 << bits) - 1) as usize
        });
    }
    let inputs: Vec<Vec<u8>> = lens
        .iter()
        .enumerate()
        .map(|(i, &l)| data(l, i as u64 * 31 + 5))
        .collect();
    let Some(want) = references(dir.path(), ALL, &inputs) else {
        return;
    };
    let names: Vec<&str> = ALL.split(',').collect();
    let d = Daemon::start(dir.path());
    let mut s = UnixStream::connect(dir.path().join("data/hashd.sock")).unwrap();
    for (i, input) in inputs.iter().enumerate() {
        let k = i % names.len();
        // HTTP, all in one pass, then one alone.
        let v = request(
            d.addr,
            "PUT",
            &format!("/files?wait=1&algo={ALL}"),
            &[],
            input,
        )
        .json();
        for (j, name) in names.iter().enumerate() {
            assert_eq!(
                v["hashes"][name],
                want[i][j].as_str(),
                "http {name} {}",
                input.len()
            );
        }
        let path = format!("/files?wait=1&algo={}", names[k]);
        let v = request(d.addr, "PUT", &path, &[], input).json();
        assert_eq!(v["hash"], want[i][k].as_str(), "http {} alone", names[k]);
        // The socket, the same two ways.
        for (tag, algos) in [(1u64, ALL), (2, names[k])] {
            s.write_all(&frame(0x03, tag, algos.as_bytes())).unwrap();
            for piece in input.chunks(200_000) {
                s.write_all(&frame(0x04, tag, piece)).unwrap();
            }
            s.write_all(&frame(0x05, tag, b"")).unwrap();
            let (_, got, body) = read_frame(&mut s).unwrap();
            assert_eq!(got, tag);
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            if tag == 1 {
                for (j, name) in names.iter().enumerate() {
                    assert_eq!(v["hashes"][name], want[i][j].as_str(), "socket {name}");
                }
            } else {
                assert_eq!(v["hash"], want[i][k].as_str(), "socket {} alone", names[k]);
            }
        }
    }
    // The command line: every file with all algorithms in one pass through
    // the daemon, and each algorithm alone in-process.
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let file_names: Vec<String> = (0..inputs.len()).map(|i| format!("{i:05}")).collect();
    for (n, input) in file_names.iter().zip(&inputs) {
        std::fs::write(files.join(n), input).unwrap();
    }
    let sock = dir.path().join("data/hashd.sock");
    let out = run_in(
        &files,
        BIN,
        &[
            "sum",
            "--socket",
            sock.to_str().unwrap(),
            "-a",
            ALL,
            "-r",
            ".",
        ],
    );
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    for (i, n) in file_names.iter().enumerate() {
        for (j, name) in names.iter().enumerate() {
            let want_line = format!("{} (./{n}) = {}", name.to_uppercase(), want[i][j]);
            assert_eq!(lines.next(), Some(want_line.as_str()));
        }
    }
    for (j, name) in names.iter().enumerate() {
        let out = run_in(&files, BIN, &["sum", "--no-daemon", "-a", name, "-r", "."]);
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        for ((i, n), line) in file_names.iter().enumerate().zip(text.lines()) {
            assert_eq!(line, format!("{}  ./{n}", want[i][j]), "cli {name} alone");
        }
        assert_eq!(text.lines().count(), inputs.len());
    }
}

/// The MD5 kernels are chosen by timing them at start-up: the log says
/// which and how long it took, `/stats` gives the choice and the figures,
/// and `--md5-backend` limits the choice to that backend's kernels. (Each
/// kernel's digests are hashcore's tests' business: they force every shape.)
#[test]
fn md5_kernels_are_chosen_by_measurement_and_reported() {
    let dir = TempDir::new("md5-calibration");
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let mut backends = vec!["auto", "portable"];
    if cpu.split_whitespace().any(|flag| flag == "avx2") {
        backends.push("avx2");
    }
    for backend in backends {
        let d = Daemon::builder(dir.path())
            .arg("--md5-backend")
            .arg(backend)
            .start();
        let (_, stats) = d.get_json("/stats");
        let md5 = &stats["md5"];
        let log = d.stderr();
        let line = log
            .lines()
            .find(|l| l.contains("md5 kernels chosen by measurement"))
            .unwrap_or_else(|| panic!("no calibration line in {log}"));
        assert!(line.contains("calibration_ms="), "{line}");
        assert_eq!(md5["backend"], stats["md5_backend"], "{stats}");
        let shapes = md5["shapes"].as_array().unwrap();
        assert!(!shapes.is_empty(), "{md5}");
        for shape in shapes {
            let kernel = shape["kernel"].as_str().unwrap();
            assert!(line.contains(kernel), "{kernel} not in {line}");
            assert!(
                md5["calibration"]["gb_per_s"][kernel].as_f64().unwrap() > 0.0,
                "{md5}"
            );
        }
        assert!(md5["calibration"]["rounds"].as_u64().unwrap() >= 5, "{md5}");
        match backend {
            "portable" => {
                // The portable 8-lane kernel never runs unforced: two scalar
                // chains beat one stream by far (1.8 times on Zen 3), so they
                // are the lanes there.
                assert_eq!(md5["backend"], "portable");
                assert_eq!(md5["single"], "scalar");
                assert_eq!(shapes[0]["kernel"], "scalar/1x2", "{md5}");
                assert!(shapes
                    .iter()
                    .all(|s| s["kernel"].as_str().unwrap().starts_with("scalar/")));
                assert_eq!(md5["min_lanes"], 2, "{md5}");
            }
            "avx2" => {
                assert_eq!(md5["backend"], "avx2");
                assert!(shapes.iter().all(|s| {
                    let kernel = s["kernel"].as_str().unwrap();
                    kernel.starts_with("avx2/") || kernel.starts_with("scalar/")
                }));
                assert_eq!(md5["single"], "scalar");
            }
            _ => {}
        }
        // Whatever was chosen hashes right.
        let body = data(300_000, 17);
        let v = d.upload("?wait=true", "f", &body).json();
        assert_eq!(v["hash"], reference("md5", &body), "{v}");
    }
}

/// `--md5-tuning fixed` skips the calibration: the fixed choice is logged
/// and reported, `/stats`' `md5.calibration` is null, and it hashes right.
#[test]
fn md5_tuning_fixed_takes_the_fixed_choice() {
    let dir = TempDir::new("md5-fixed");
    let d = Daemon::builder(dir.path())
        .arg("--md5-tuning")
        .arg("fixed")
        .start();
    let (_, stats) = d.get_json("/stats");
    let md5 = &stats["md5"];
    assert!(md5["calibration"].is_null(), "{md5}");
    assert!(!md5["shapes"].as_array().unwrap().is_empty(), "{md5}");
    let log = d.stderr();
    assert!(
        log.contains("md5 kernels: the fixed choice (--md5-tuning fixed)"),
        "{log}"
    );
    assert!(!log.contains("md5 kernels chosen by measurement"), "{log}");
    let body = data(300_000, 18);
    let v = d.upload("?wait=true", "f", &body).json();
    assert_eq!(v["hash"], reference("md5", &body), "{v}");
}

/// RFC 9530 section 4: `Want-Repr-Digest` is answered with `Repr-Digest`,
/// the file's digests that the job computed and the client wants (most
/// preferred first, nothing computed afresh); `Want-Content-Digest` with
/// `Content-Digest`, the digest of the JSON answer itself. On uploads and
/// on lookups of finished jobs; never without the request field.
#[test]
fn want_digest_fields_get_repr_digest_and_content_digest() {
    use sha2::Digest as _;
    let dir = TempDir::new("integrity-want");
    let input = data(70_000, 9);
    let Some(want) = references(dir.path(), "md5,sha256", std::slice::from_ref(&input)) else {
        return;
    };
    let (md5, sha256) = (b64(&want[0][0]), b64(&want[0][1]));
    let d = Daemon::start(dir.path());
    let r = request(
        d.addr,
        "PUT",
        "/files/f?wait=1&algo=md5,sha256",
        &[(
            "Want-Repr-Digest",
            "sha-512=10, md5=3, sha-256=5, unixsum=9",
        )],
        &input,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // sha-512 is wanted most but was not computed: left out.
    assert_eq!(
        r.header("repr-digest"),
        Some(format!("sha-256=:{sha256}:, md5=:{md5}:").as_str())
    );
    assert_eq!(r.header("content-digest"), None);
    let id = r.json()["id"].as_str().unwrap().to_string();

    // The answer's own content, as sent.
    let r = request(
        d.addr,
        "POST",
        "/files?wait=1&algo=sha256",
        &[
            ("Want-Content-Digest", "sha-256=1, sha-512=2"),
            ("Want-Repr-Digest", "sha-256=1"),
        ],
        &input,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let b = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    assert_eq!(
        r.header("content-digest"),
        Some(
            format!(
                "sha-512=:{}:, sha-256=:{}:",
                b(&sha2::Sha512::digest(&r.body)),
                b(&sha2::Sha256::digest(&r.body))
            )
            .as_str()
        )
    );
    assert_eq!(
        r.header("repr-digest"),
        Some(format!("sha-256=:{sha256}:").as_str())
    );

    // A lookup of the finished job; and one without the field.
    let path = format!("/gethash/{id}");
    let r = request(d.addr, "GET", &path, &[("Want-Repr-Digest", "md5=1")], b"");
    assert_eq!(r.json()["status"], "SUCCESS");
    assert_eq!(
        r.header("repr-digest"),
        Some(format!("md5=:{md5}:").as_str())
    );
    let r = request(d.addr, "GET", &path, &[], b"");
    assert_eq!(r.header("repr-digest"), None);
    assert_eq!(r.header("content-digest"), None);
    // 0 is "not acceptable"; a malformed field is ignored.
    for field in ["md5=0", "md5", "md5=:YQ==:"] {
        let r = request(d.addr, "GET", &path, &[("Want-Repr-Digest", field)], b"");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("repr-digest"), None, "{field}");
    }
}
