//! `hashd sum` and `hashd check` against daemons that misbehave (stopped,
//! silent, gone, answering garbage), closed output pipes, and usage errors:
//! the command never hangs and prints what md5sum prints. And `hashd check`
//! on BSD-tagged lists, against `cksum -c`.
//!
//! The client's silence bound is shortened through `HASHD_CLIENT_SILENCE_MS`
//! so a wedged daemon costs a fraction of a second; nothing here asserts a
//! speed, only that the command ends and what it printed.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::util::*;

/// The client's silence bound in these tests, in milliseconds.
const SILENCE_MS: &str = "300";

const FILES: [&str; 4] = ["a", "b", "with space", "missing"];

fn make_files(dir: &Path) {
    std::fs::write(dir.join("a"), b"alpha").unwrap();
    std::fs::write(dir.join("b"), data(300_000, 9)).unwrap();
    std::fs::write(dir.join("with space"), b"s").unwrap();
}

fn hashd(cwd: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env_remove("HASHD_SOCKET")
        .env("HASHD_CLIENT_SILENCE_MS", SILENCE_MS)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn md5sum(cwd: &Path, args: &[&str]) -> Output {
    Command::new("md5sum")
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `hashd sum` and `hashd check` through `sock` print exactly what md5sum
/// prints; with `-v` stderr says once that the daemon was not used, and
/// without it says nothing more than md5sum.
fn same_as_md5sum_despite(dir: &Path, sock: &Path, daemon_used: bool) {
    let sock = sock.to_str().unwrap();
    let want = md5sum(dir, &FILES);
    let list: Vec<u8> = want.stdout.clone();
    std::fs::write(dir.join("list.md5"), &list).unwrap();
    let want_check = md5sum(dir, &["-c", "list.md5"]);
    for verbose in [false, true] {
        for (ours, want) in [
            (vec!["sum", "--socket", sock], &want),
            (vec!["check", "--socket", sock], &want_check),
        ] {
            let mut args = ours.clone();
            if verbose {
                args.push("-v");
            }
            let files: &[&str] = if ours[0] == "sum" {
                &FILES
            } else {
                &["list.md5"]
            };
            args.extend_from_slice(files);
            let got = hashd(dir, &args);
            assert_eq!(
                String::from_utf8_lossy(&got.stdout),
                String::from_utf8_lossy(&want.stdout),
                "stdout of {args:?}"
            );
            assert_eq!(got.status.code(), want.status.code(), "{args:?}");
            let err = String::from_utf8_lossy(&got.stderr);
            let want_err = String::from_utf8_lossy(&want.stderr).replace("md5sum:", "hashd:");
            let notices: Vec<&str> = err
                .lines()
                .filter(|l| l.contains("in this process"))
                .collect();
            let rest: String = err
                .lines()
                .filter(|l| !l.contains("in this process"))
                .map(|l| format!("{l}\n"))
                .collect();
            assert_eq!(rest, want_err, "stderr of {args:?}");
            let want_notices = usize::from(verbose && !daemon_used);
            assert_eq!(notices.len(), want_notices, "stderr of {args:?}: {err}");
        }
    }
}

/// What a stand-in daemon does with a connection; the path is the test's
/// directory.
type FakeConn = fn(UnixStream, &Path);

/// A stand-in daemon on `sock` that runs `conn` for every connection it
/// accepts, for as long as the test runs.
fn fake_daemon(sock: &Path, conn: FakeConn) -> PathBuf {
    let listener = UnixListener::bind(sock).unwrap();
    let dir = sock.parent().unwrap().to_path_buf();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let dir = dir.clone();
            std::thread::spawn(move || conn(s.unwrap(), &dir));
        }
    });
    sock.to_path_buf()
}

/// Answers HELLO as a current daemon does (agreeing to heartbeats).
fn hello(s: &mut UnixStream) {
    let (kind, tag, body) = read_frame(s).unwrap();
    assert_eq!(kind, 0x01);
    let asked: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let ms = asked["heartbeat_ms"].as_u64().unwrap();
    let reply = serde_json::json!({"ok": true, "version": 1, "heartbeat_ms": ms});
    s.write_all(&frame(0x80, tag, reply.to_string().as_bytes()))
        .unwrap();
}

/// The md5 of the file that request `tag` is for (tags are the input's
/// index + 1, in `FILES` order).
fn md5_of_request(dir: &Path, tag: u64) -> String {
    reference(
        "md5",
        &std::fs::read(dir.join(FILES[tag as usize - 1])).unwrap_or_default(),
    )
}

fn drain(mut s: UnixStream) {
    let _ = std::io::copy(&mut s, &mut std::io::sink());
}

#[test]
fn a_stopped_daemon_is_waited_for_only_briefly_and_its_work_done_in_process() {
    let dir = TempDir::new("stopped");
    make_files(dir.path());
    let sock = dir.path().join("d.sock");
    let d = Daemon::builder(dir.path())
        .arg("--socket")
        .arg(sock.to_str().unwrap())
        .start();
    same_as_md5sum_despite(dir.path(), &sock, true);
    signal(d.pid(), "STOP");
    same_as_md5sum_despite(dir.path(), &sock, false);
    signal(d.pid(), "CONT");
    let before = Daemon::hasher_total(&d.get_json("/stats").1, "jobs_done");
    same_as_md5sum_despite(dir.path(), &sock, true);
    let after = Daemon::hasher_total(&d.get_json("/stats").1, "jobs_done");
    assert!(after > before, "the resumed daemon is used again");
}

#[test]
fn a_daemon_that_never_answers_or_never_accepts_or_is_gone() {
    let dir = TempDir::new("silent");
    make_files(dir.path());
    // Accepts and reads, never writes.
    let sock = fake_daemon(&dir.path().join("silent.sock"), |s, _| drain(s));
    same_as_md5sum_despite(dir.path(), &sock, false);
    // Answers HELLO, then reads requests and says nothing more.
    let sock = fake_daemon(&dir.path().join("mute.sock"), |mut s, _| {
        hello(&mut s);
        drain(s)
    });
    same_as_md5sum_despite(dir.path(), &sock, false);
    // Never accepts: connecting still succeeds (the kernel queues it).
    let sock = dir.path().join("backlog.sock");
    let _listener = UnixListener::bind(&sock).unwrap();
    same_as_md5sum_despite(dir.path(), &sock, false);
    // The socket file is there, nobody listens.
    let sock = dir.path().join("stale.sock");
    drop(UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    same_as_md5sum_despite(dir.path(), &sock, false);
}

#[test]
fn a_daemon_that_answers_garbage_or_dies_mid_run() {
    let dir = TempDir::new("garbage");
    make_files(dir.path());
    let cases: [(&str, FakeConn); 7] = [
        ("garbage-hello", |mut s, _| {
            read_frame(&mut s);
            s.write_all(b"HTTP/1.1 200 OK\r\n\r\nnot a frame").unwrap();
            drain(s)
        }),
        ("old-daemon", |mut s, _| {
            // An older daemon: no heartbeats offered.
            let (_, tag, _) = read_frame(&mut s).unwrap();
            s.write_all(&frame(0x80, tag, br#"{"ok":true,"version":1}"#))
                .unwrap();
            drain(s)
        }),
        ("dies-after-one", |mut s, dir| {
            // Answers the first file correctly, then the connection drops
            // (as when the daemon is killed mid-run).
            hello(&mut s);
            let (_, tag, _) = read_frame(&mut s).unwrap();
            let body = serde_json::json!({"ok": true, "algorithm": "md5", "hash": md5_of_request(dir, tag), "size": 0});
            s.write_all(&frame(0x80, tag, body.to_string().as_bytes()))
                .unwrap();
        }),
        ("short-hash", |mut s, _| {
            hello(&mut s);
            let (_, tag, _) = read_frame(&mut s).unwrap();
            s.write_all(&frame(
                0x80,
                tag,
                br#"{"ok":true,"algorithm":"md5","hash":"abc","size":1}"#,
            ))
            .unwrap();
            drain(s)
        }),
        ("unknown-tag", |mut s, _| {
            hello(&mut s);
            read_frame(&mut s).unwrap();
            let body = format!(
                r#"{{"ok":true,"algorithm":"md5","hash":"{}"}}"#,
                "0".repeat(32)
            );
            s.write_all(&frame(0x80, 4242, body.as_bytes())).unwrap();
            drain(s)
        }),
        ("not-json", |mut s, _| {
            hello(&mut s);
            let (_, tag, _) = read_frame(&mut s).unwrap();
            s.write_all(&frame(0x80, tag, b"\xff{")).unwrap();
            drain(s)
        }),
        ("refuses-everything", |mut s, _| {
            // Per-file failures from the daemon are not shown: the file is
            // hashed here, so the line (or error) is md5sum's.
            hello(&mut s);
            while let Some((kind, tag, _)) = read_frame(&mut s) {
                if kind == 0x02 {
                    let body = br#"{"ok":false,"error":"cannot read","busy":false}"#;
                    s.write_all(&frame(0x80, tag, body)).unwrap();
                }
            }
        }),
    ];
    for (name, conn) in cases {
        let sock = fake_daemon(&dir.path().join(format!("{name}.sock")), conn);
        same_as_md5sum_despite(dir.path(), &sock, name == "refuses-everything");
    }
}

#[test]
fn a_busy_daemon_that_sends_heartbeats_is_waited_for() {
    let dir = TempDir::new("busy");
    make_files(dir.path());
    // Silent but for heartbeats for several silence bounds, then answers
    // every request with a digest no file has: seeing it in the output
    // proves the client waited for the daemon rather than giving up.
    let sock = fake_daemon(&dir.path().join("busy.sock"), |mut s, _| {
        hello(&mut s);
        let mut reader = s.try_clone().unwrap();
        let tags = std::thread::spawn(move || while read_frame(&mut reader).is_some() {});
        for _ in 0..40 {
            std::thread::sleep(Duration::from_millis(25));
            s.write_all(&frame(0x81, 0, b"")).unwrap();
        }
        // Replies may precede their requests' arrival here: the client
        // sends all three before it reads anything.
        drop(tags);
        for tag in 1..=3u64 {
            let body = format!(
                r#"{{"ok":true,"algorithm":"md5","hash":"{}","size":1}}"#,
                "f".repeat(32)
            );
            s.write_all(&frame(0x80, tag, body.as_bytes())).unwrap();
        }
        drain(s)
    });
    let got = hashd(
        dir.path(),
        &[
            "sum",
            "-v",
            "--socket",
            sock.to_str().unwrap(),
            "a",
            "b",
            "with space",
        ],
    );
    let f = "f".repeat(32);
    assert_eq!(
        String::from_utf8_lossy(&got.stdout),
        format!("{f}  a\n{f}  b\n{f}  with space\n")
    );
    assert!(
        got.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    assert!(got.status.success());
}

#[test]
fn the_daemon_sends_heartbeats_only_to_clients_that_ask_and_only_while_hashing() {
    let dir = TempDir::new("heartbeat");
    let sock = dir.path().join("h.sock");
    let _d = Daemon::builder(dir.path())
        .arg("--socket")
        .arg(sock.to_str().unwrap())
        .start();
    let mut s = UnixStream::connect(&sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(&frame(0x01, 7, br#"{"version":1,"heartbeat_ms":20}"#))
        .unwrap();
    let (kind, tag, body) = read_frame(&mut s).unwrap();
    assert_eq!((kind, tag), (0x80, 7));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["heartbeat_ms"], 20, "{v}");
    let quiet_for = |s: &mut UnixStream, ms: u64| {
        s.set_read_timeout(Some(Duration::from_millis(ms))).unwrap();
        let e = s.read(&mut [0u8; 1]).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    };
    // Nothing outstanding: nothing to say.
    quiet_for(&mut s, 200);
    // A stream outstanding, but no byte to hash: the daemon is not working
    // on it, so it does not claim to be.
    s.write_all(&frame(0x03, 1, b"md5")).unwrap();
    quiet_for(&mut s, 300);
    // While its bytes are being hashed: heartbeats.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let mut s = s.try_clone().unwrap();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sent = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                s.write_all(&frame(0x04, 1, &[0u8; 64 << 10])).unwrap();
                sent += 64 << 10;
                std::thread::sleep(Duration::from_millis(5));
            }
            s.write_all(&frame(0x05, 1, b"")).unwrap();
            sent
        })
    };
    let (kind, tag, body) = read_frame(&mut s).unwrap();
    assert_eq!((kind, tag, body.len()), (0x81, 0, 0));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = sender.join().unwrap();
    let reply = loop {
        let (kind, tag, body) = read_frame(&mut s).unwrap();
        if kind == 0x80 {
            assert_eq!(tag, 1);
            break serde_json::from_slice::<serde_json::Value>(&body).unwrap();
        }
        assert_eq!(kind, 0x81);
    };
    assert_eq!(reply["hash"], reference("md5", &vec![0u8; sent]));

    // A client that did not ask (an older hashd sum) never sees one.
    let mut s = UnixStream::connect(&sock).unwrap();
    s.write_all(&frame(0x01, 7, br#"{"version":1}"#)).unwrap();
    let (_, _, body) = read_frame(&mut s).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(v.get("heartbeat_ms").is_none(), "{v}");
    s.write_all(&frame(0x03, 1, b"md5")).unwrap();
    for _ in 0..5 {
        s.write_all(&frame(0x04, 1, &[0u8; 64 << 10])).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    quiet_for(&mut s, 100);
    s.write_all(&frame(0x05, 1, b"")).unwrap();
    let (kind, tag, _) = read_frame(&mut s).unwrap();
    assert_eq!((kind, tag), (0x80, 1));
}

/// Runs `prog args`, reads one line of the stream `which` (1 stdout, 2
/// stderr) and closes it.
fn close_after_one_line(cwd: &Path, prog: &str, args: &[String], which: u8) -> Output {
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .current_dir(cwd)
        .env("HASHD_SOCKET", "/nonexistent")
        .stdin(Stdio::null());
    if which == 1 {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    } else {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    }
    let mut child = cmd.spawn().unwrap();
    let stream: Box<dyn Read> = if which == 1 {
        Box::new(child.stdout.take().unwrap())
    } else {
        Box::new(child.stderr.take().unwrap())
    };
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    assert!(!line.is_empty());
    // The reader is gone now; whatever else the command writes there fails.
    child.wait_with_output().unwrap()
}

#[test]
fn output_to_a_closed_pipe_ends_silently_as_md5sum_does() {
    let dir = TempDir::new("pipe");
    make_files(dir.path());
    // Far more output than a pipe holds (64 KiB), so writes fail after the
    // close.
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let many: Vec<String> = (0..5000).map(|i| ["a", "b"][i % 2].to_string()).collect();
    let list = md5sum(dir.path(), &["a", "b"]).stdout.repeat(25_000);
    std::fs::write(dir.path().join("list.md5"), list).unwrap();
    let missing: Vec<String> = (0..5000).map(|i| format!("missing-{i}")).collect();
    let cases = [
        ([s(&["sum"]), many.clone()].concat(), many, 1),
        (s(&["check", "list.md5"]), s(&["-c", "list.md5"]), 1),
        (s(&["sum", "-c", "list.md5"]), s(&["-c", "list.md5"]), 1),
        ([s(&["sum"]), missing.clone()].concat(), missing, 2),
    ];
    for (ours, theirs, which) in cases {
        let want = close_after_one_line(dir.path(), "md5sum", &theirs, which);
        let got = close_after_one_line(dir.path(), BIN, &ours, which);
        assert_eq!(want.status.signal(), Some(13), "md5sum {:?}", &theirs[..2]);
        assert_eq!(got.status.signal(), Some(13), "{:?}", &ours[..2]);
        if which == 1 {
            assert!(
                got.stderr.is_empty(),
                "{}",
                String::from_utf8_lossy(&got.stderr)
            );
        }
    }
}

#[test]
fn version_and_usage_errors_exit_as_md5sum_does() {
    let dir = TempDir::new("usage");
    for sub in ["sum", "check"] {
        let got = hashd(dir.path(), &[sub, "--version"]);
        assert!(got.status.success(), "{sub} --version");
        let out = String::from_utf8_lossy(&got.stdout);
        assert!(out.contains(env!("CARGO_PKG_VERSION")), "{out}");
        for bad in [&["--bogus"][..], &["-a", "nope"], &["--algo"]] {
            let mut args = vec![sub];
            args.extend_from_slice(bad);
            let got = hashd(dir.path(), &args);
            assert_eq!(got.status.code(), Some(1), "{args:?}");
            assert!(got.stdout.is_empty());
            assert!(!got.stderr.is_empty());
        }
    }
    assert_eq!(md5sum(dir.path(), &["--bogus"]).status.code(), Some(1));
    // The daemon keeps its documented code for invalid usage.
    assert_eq!(hashd(dir.path(), &["--bogus"]).status.code(), Some(2));
}

#[test]
fn check_follows_each_lines_tag_as_cksum_c_does_and_names_other_algorithms() {
    let dir = TempDir::new("tags");
    make_files(dir.path());
    let sock = dir.path().join("t.sock");
    let _d = Daemon::builder(dir.path())
        .arg("--socket")
        .arg(sock.to_str().unwrap())
        .start();
    let mut list = Vec::new();
    for (tool, file) in [
        ("sha256sum", "a"),
        ("sha256sum", "b"),
        ("md5sum", "with space"),
        ("sha1sum", "a"),
        ("sha512sum", "b"),
    ] {
        let out = Command::new(tool)
            .args(["--tag", file])
            .current_dir(dir.path())
            .output()
            .unwrap();
        list.extend_from_slice(&out.stdout);
    }
    let good = list.clone();
    // One line that no longer matches its file.
    list.extend_from_slice(format!("SHA1 (b) = {}\n", "0".repeat(40)).as_bytes());
    for (name, content) in [("tagged", &good), ("tagged-bad", &list)] {
        std::fs::write(dir.path().join(name), content).unwrap();
        let want = Command::new("cksum")
            .args(["-c", name])
            .current_dir(dir.path())
            .output()
            .unwrap();
        for via in ["--no-daemon", "--socket"] {
            let mut args = vec!["check", via];
            if via == "--socket" {
                args.push(sock.to_str().unwrap());
            }
            args.push(name);
            let got = hashd(dir.path(), &args);
            assert_eq!(
                String::from_utf8_lossy(&got.stdout),
                String::from_utf8_lossy(&want.stdout),
                "{args:?}"
            );
            assert_eq!(
                String::from_utf8_lossy(&got.stderr),
                String::from_utf8_lossy(&want.stderr).replace("cksum:", "hashd:"),
                "{args:?}"
            );
            assert_eq!(got.status.code(), want.status.code(), "{args:?}");
        }
    }
    // Untagged SHA-256 lines checked as MD5: say what they look like.
    let untagged = Command::new("sha256sum")
        .args(["a", "b"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    std::fs::write(dir.path().join("untagged"), &untagged.stdout).unwrap();
    // (`hashd check` only: `hashd sum -c` says what md5sum -c says.)
    for (args, hint) in [
        (
            &["check", "--no-daemon", "untagged"][..],
            "hashd: untagged: the lines look like SHA256, SHA3-256, BLAKE3 checksums \
             (use -a to say which)\n",
        ),
        (&["sum", "-c", "--no-daemon", "untagged"], ""),
    ] {
        let got = hashd(dir.path(), args);
        assert_eq!(got.status.code(), Some(1));
        assert!(got.stdout.is_empty());
        assert_eq!(
            String::from_utf8_lossy(&got.stderr),
            format!("hashd: untagged: no properly formatted checksum lines found\n{hint}")
        );
        let mut with_algo = args.to_vec();
        with_algo.splice(1..1, ["-a", "sha256"]);
        let got = hashd(dir.path(), &with_algo);
        assert!(got.status.success(), "{with_algo:?}");
        assert_eq!(String::from_utf8_lossy(&got.stdout), "a: OK\nb: OK\n");
    }
}
