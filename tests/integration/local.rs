//! Local clients: `hashd sum`/`check` against coreutils, through the daemon
//! and in-process, with io_uring and pread; the socket protocol under abuse.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::util::*;

/// A tree exercising md5sum's corners: sizes, and names with a space, a
/// backslash and a newline.
fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("empty"), b"").unwrap();
    std::fs::write(root.join("one"), b"1").unwrap();
    std::fs::write(root.join("k64"), data(64 << 10, 1)).unwrap();
    std::fs::write(root.join("m1"), data(1 << 20, 2)).unwrap();
    std::fs::write(root.join("m256"), data(256 << 20, 3)).unwrap();
    std::fs::write(root.join("with space"), b"s").unwrap();
    std::fs::write(root.join("back\\slash"), b"b").unwrap();
    std::fs::write(root.join("new\nline"), b"n").unwrap();
    std::fs::write(root.join("sub/inner"), b"i").unwrap();
}

const NAMES: [&str; 10] = [
    "empty",
    "one",
    "k64",
    "m1",
    "m256",
    "with space",
    "back\\slash",
    "new\nline",
    "missing",
    "sub",
];

fn same_as_coreutils(cwd: &Path, tool: &str, ours: &[&str], theirs: &[&str], stdin: &[u8]) {
    let want = run_cli(cwd, tool, theirs, stdin);
    let got = run_cli(cwd, BIN, ours, stdin);
    assert_eq!(
        String::from_utf8_lossy(&got.stdout),
        String::from_utf8_lossy(&want.stdout),
        "stdout of {ours:?}"
    );
    let want_err = String::from_utf8_lossy(&want.stderr).replace(&format!("{tool}:"), "hashd:");
    assert_eq!(
        String::from_utf8_lossy(&got.stderr),
        want_err,
        "stderr of {ours:?}"
    );
    assert_eq!(
        got.status.code(),
        want.status.code(),
        "exit code of {ours:?}"
    );
}

/// Compares every command in `mode`; the 256 MiB file only where `big`,
/// since hashing it costs seconds per run.
fn check_all_modes(tree: &Path, mode: &[&str], big: bool) {
    let names: Vec<&str> = NAMES
        .iter()
        .copied()
        .filter(|n| big || *n != "m256")
        .collect();
    for (tool, algo) in [("md5sum", "md5"), ("sha256sum", "sha256")] {
        let mut ours = vec!["sum", "-a", algo];
        ours.extend_from_slice(mode);
        ours.extend_from_slice(&names);
        same_as_coreutils(tree, tool, &ours, &names, b"");
        // Standard input, as `-` and as no argument.
        let mut ours = vec!["sum", "-a", algo];
        ours.extend_from_slice(mode);
        same_as_coreutils(tree, tool, &ours, &[], b"from stdin");
        ours.push("-");
        same_as_coreutils(tree, tool, &ours, &["-"], b"from stdin");
    }
    // A checksum file with a corrupted entry, a missing file and a bad line.
    let listed: Vec<&str> = NAMES[..8]
        .iter()
        .copied()
        .filter(|n| *n != "m256")
        .collect();
    let good = run_cli(tree, "md5sum", &listed, b"").stdout;
    let mut list = String::from_utf8(good).unwrap();
    list = list.replacen(&reference("md5", b"1"), &"0".repeat(32), 1);
    list.push_str(&format!("{}  gone\n", "1".repeat(32)));
    list.push_str("this line is not a checksum\n");
    std::fs::write(tree.join("list.md5"), &list).unwrap();
    for flags in [
        &[][..],
        &["--quiet"],
        &["--status"],
        &["--strict"],
        &["-w"],
        &["--ignore-missing"],
    ] {
        let mut ours = vec!["check"];
        ours.extend_from_slice(mode);
        ours.extend_from_slice(flags);
        ours.push("list.md5");
        let mut theirs = vec!["-c"];
        theirs.extend_from_slice(flags);
        theirs.push("list.md5");
        same_as_coreutils(tree, "md5sum", &ours, &theirs, b"");
    }
}

#[test]
fn sum_and_check_match_coreutils_through_the_daemon_and_in_process() {
    let dir = TempDir::new("sum");
    let tree = dir.path().join("tree");
    make_tree(&tree);
    let sock = dir.path().join("d.sock");
    let sock_s = sock.to_string_lossy().into_owned();
    for uring in [true, false] {
        let mut b = Daemon::builder(dir.path()).arg("--socket").arg(&sock_s);
        if !uring {
            b = b.arg("--no-uring");
        }
        let d = b.start();
        let readers: Vec<String> = d.get_json("/stats").1["hashers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["reader"].as_str().unwrap().to_string())
            .collect();
        if !uring {
            assert!(readers.iter().all(|r| r == "pread"), "{readers:?}");
        }
        check_all_modes(&tree, &["--socket", &sock_s], true);
        // The daemon really did the hashing.
        let done: u64 = d.get_json("/stats").1["hashers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["jobs_done"].as_u64().unwrap())
            .sum();
        assert!(done > 50, "daemon hashed only {done} files");
        assert!(d.terminate().success());
        assert!(!sock.exists(), "socket removed on clean shutdown");
    }
    check_all_modes(&tree, &["--no-daemon"], true);
    check_all_modes(&tree, &["--no-daemon", "--no-uring"], false);
    // No daemon at all: falls back to in-process.
    check_all_modes(&tree, &["--socket", "/nonexistent/hashd.sock"], false);
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// The next frame, which must be a REPLY, as (tag, JSON payload).
fn read_reply(s: &mut UnixStream) -> (u64, serde_json::Value) {
    let (kind, tag, body) = read_frame(s).expect("a reply");
    assert_eq!(kind, 0x80);
    (tag, serde_json::from_slice(&body).unwrap())
}

#[test]
fn thousands_of_pipelined_descriptors_answer_each_request_and_leak_none() {
    use std::os::fd::AsFd;
    let dir = TempDir::new("pipeline");
    let sock = dir.path().join("p.sock");
    let d = Daemon::builder(dir.path())
        .arg("--socket")
        .arg(&sock.to_string_lossy())
        .start();
    let files: Vec<_> = (0..20)
        .map(|i| {
            let p = dir.path().join(format!("f{i}"));
            let body = data(i * 1000 + 1, i as u64);
            std::fs::write(&p, &body).unwrap();
            (p, reference("md5", &body))
        })
        .collect();
    let before = fd_count(d.pid());
    let s = UnixStream::connect(&sock).unwrap();
    let mut reader = s.try_clone().unwrap();
    const N: u64 = 3000;
    let writer = {
        let files = files.clone();
        std::thread::spawn(move || {
            for tag in 1..=N {
                let f = std::fs::File::open(&files[tag as usize % files.len()].0).unwrap();
                let fr = frame(0x02, tag, b"md5");
                let n = hashcore::fdpass::send_with_fd(s.as_fd(), &fr, f.as_fd()).unwrap();
                (&s).write_all(&fr[n..]).unwrap();
            }
            s
        })
    };
    let mut seen = std::collections::HashSet::new();
    for _ in 0..N {
        let (tag, v) = read_reply(&mut reader);
        assert_eq!(v["ok"], true, "{v}");
        assert_eq!(
            v["hash"],
            files[tag as usize % files.len()].1.as_str(),
            "tag {tag}"
        );
        assert!(seen.insert(tag), "tag {tag} answered twice");
    }
    drop(writer.join().unwrap());
    drop(reader);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while fd_count(d.pid()) > before {
        assert!(
            std::time::Instant::now() < deadline,
            "descriptors leaked: {} before, {} after",
            before,
            fd_count(d.pid())
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn garbage_frames_and_dying_clients_close_only_their_connection() {
    let dir = TempDir::new("garbage");
    let sock = dir.path().join("g.sock");
    let d = Daemon::builder(dir.path())
        .arg("--socket")
        .arg(&sock.to_string_lossy())
        .start();
    // Garbage: an unknown kind gets a protocol error (tag 0), then EOF.
    let mut s = UnixStream::connect(&sock).unwrap();
    s.write_all(&[0, 0, 0, 9, 0x42, 0, 0, 0, 0, 0, 0, 0, 1])
        .unwrap();
    let (tag, v) = read_reply(&mut s);
    assert_eq!(tag, 0);
    assert!(
        v["error"].as_str().unwrap().contains("protocol error"),
        "{v}"
    );
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    // HASH_FD with no descriptor.
    let mut s = UnixStream::connect(&sock).unwrap();
    s.write_all(&frame(0x02, 5, b"md5")).unwrap();
    assert!(read_reply(&mut s).1["error"]
        .as_str()
        .unwrap()
        .contains("without a descriptor"));
    // A client that dies mid-stream.
    {
        let mut s = UnixStream::connect(&sock).unwrap();
        s.write_all(&frame(0x03, 1, b"md5")).unwrap();
        s.write_all(&frame(0x04, 1, &data(100_000, 1))).unwrap();
        s.write_all(&frame(0x04, 1, b"part")[..7]).unwrap();
    }
    // Others are still served: a stream, a lookup and stats.
    let mut s = UnixStream::connect(&sock).unwrap();
    s.write_all(&frame(0x01, 9, br#"{"version":1}"#)).unwrap();
    assert_eq!(read_reply(&mut s).1["version"], 1);
    s.write_all(&frame(0x03, 2, b"sha1")).unwrap();
    s.write_all(&frame(0x04, 2, b"hello ")).unwrap();
    s.write_all(&frame(0x04, 2, b"world")).unwrap();
    s.write_all(&frame(0x05, 2, b"")).unwrap();
    let (tag, v) = read_reply(&mut s);
    assert_eq!(tag, 2);
    assert_eq!(v["hash"], reference("sha1", b"hello world"));
    let id = d.upload("?wait=1", "x", b"x").json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.write_all(&frame(0x06, 3, id.as_bytes())).unwrap();
    assert_eq!(read_reply(&mut s).1["job"]["hash"], reference("md5", b"x"));
    s.write_all(&frame(0x06, 4, b"-1")).unwrap();
    assert_eq!(read_reply(&mut s).1["error"], "INVALID_ID");
    s.write_all(&frame(0x07, 5, b"")).unwrap();
    assert!(read_reply(&mut s).1["stats"]["hashers"].is_array());
    let meta = std::fs::metadata(&sock).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
}

fn hash_path(sock: &Path, tag: u64, algo: &str, path: &Path) -> serde_json::Value {
    use std::os::unix::ffi::OsStrExt;
    let mut s = UnixStream::connect(sock).unwrap();
    let mut payload = algo.as_bytes().to_vec();
    payload.push(0);
    payload.extend_from_slice(path.as_os_str().as_bytes());
    s.write_all(&frame(0x08, tag, &payload)).unwrap();
    let (got, v) = read_reply(&mut s);
    assert_eq!(got, tag);
    v
}

#[test]
fn hashing_by_path_is_off_by_default_and_confined_to_allowed_roots() {
    let dir = TempDir::new("paths");
    let root = dir.path().join("allowed");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("sub/in.txt"), b"inside").unwrap();
    std::fs::write(dir.path().join("secret.txt"), b"outside").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("escape")).unwrap();
    std::os::unix::fs::symlink(root.join("sub/in.txt"), root.join("alias")).unwrap();

    let sock = dir.path().join("off.sock");
    let d = Daemon::builder(dir.path())
        .arg("--socket")
        .arg(&sock.to_string_lossy())
        .start();
    let v = hash_path(&sock, 1, "md5", &root.join("sub/in.txt"));
    assert_eq!(v["ok"], false);
    assert!(v["error"].as_str().unwrap().contains("off"), "{v}");
    drop(d);

    let sock = dir.path().join("on.sock");
    let _d = Daemon::builder(dir.path())
        .arg("--socket")
        .arg(&sock.to_string_lossy())
        .arg("--allow-path-root")
        .arg(&root.to_string_lossy())
        .start();
    let v = hash_path(&sock, 2, "sha256", &root.join("sub/in.txt"));
    assert_eq!(v["hash"], reference("sha256", b"inside"), "{v}");
    let v = hash_path(&sock, 3, "md5", &root.join("alias"));
    assert_eq!(
        v["hash"],
        reference("md5", b"inside"),
        "a link that stays inside is fine: {v}"
    );
    for (path, needle) in [
        (root.join("escape"), "outside"),
        (dir.path().join("secret.txt"), "outside"),
        (root.join("sub/../../secret.txt"), ".."),
        (std::path::PathBuf::from("relative.txt"), "absolute"),
        (root.join("missing"), "cannot open"),
    ] {
        let v = hash_path(&sock, 4, "md5", &path);
        assert_eq!(v["ok"], false, "{path:?}: {v}");
        let err = v["error"].as_str().unwrap();
        assert!(err.contains(needle), "{path:?}: {err}");
        assert!(
            !err.contains("secret") && !err.contains(&*dir.path().to_string_lossy()),
            "error leaks a path: {err}"
        );
    }
}

/// Issue 11: the pool admits at most `--max-uploads` + 1024 streams. Past
/// that a socket stream gets the busy reply and an upload a 503 with
/// Retry-After (never "shutting down", never a job left open), and slots
/// come back when streams end.
#[test]
fn streams_past_the_pool_bound_get_busy_and_uploads_503() {
    let dir = TempDir::new("admission");
    let sock = dir.path().join("a.sock");
    let d = Daemon::builder(dir.path())
        .arg("--socket")
        .arg(&sock.to_string_lossy())
        .arg("--max-uploads")
        .arg("1")
        .start();
    // 2 x 600 stream opens against a bound of 1 + 1024: 175 are refused.
    let conns: Vec<UnixStream> = (0..2)
        .map(|_| UnixStream::connect(&sock).unwrap())
        .collect();
    for s in &conns {
        let opens: Vec<u8> = (1..=600u64).flat_map(|t| frame(0x03, t, b"md5")).collect();
        (&*s).write_all(&opens).unwrap();
    }
    let mut busy = Vec::new();
    for (i, s) in conns.iter().enumerate() {
        let mut s = s.try_clone().unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_millis(500)))
            .unwrap();
        // Busy replies come at once; the admitted streams answer nothing yet.
        while let Some((_, tag, body)) = read_frame(&mut s) {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["ok"], false, "{v}");
            assert_eq!(v["busy"], true, "{v}");
            busy.push((i, tag));
        }
    }
    assert_eq!(busy.len(), 1200 - 1025);
    // A client that pipelined data for a refused stream keeps its
    // connection: the data is dropped, and the next request is answered.
    let (i, tag) = busy[0];
    let mut s = conns[i].try_clone().unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let more = [
        frame(0x04, tag, b"late"),
        frame(0x05, tag, b""),
        frame(0x07, 9999, b""),
    ]
    .concat();
    s.write_all(&more).unwrap();
    let (t, v) = read_reply(&mut s);
    assert_eq!(t, 9999, "{v}");
    let body = data(100_000, 3);
    let r = d.upload("?wait=1", "x", &body);
    assert_json_error(&r, 503, "busy");
    assert_eq!(r.header("retry-after"), Some("1"));
    // Closing a connection abandons its streams and frees their slots.
    drop(conns);
    wait_until("slots freed", std::time::Duration::from_secs(10), || {
        d.upload("?wait=1", "x", &body).status == 200
    });
    let (_, stats) = d.get_json("/stats");
    assert_eq!(stats["jobs"]["PENDING"], 0, "{stats}");
    assert_eq!(stats["jobs"]["FAILURE"], 0, "{stats}");
}

/// Whether `script` (util-linux) is there to give a command a terminal.
fn have_script() -> bool {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: `script` (util-linux) is not installed");
        return false;
    }
    true
}

/// A 1 GiB file, `big.bin`, in `dir`: long enough to hash that the line,
/// drawn from 0.5 s on, is seen moving.
fn write_gib(dir: &Path) {
    let mut f = std::fs::File::create(dir.join("big.bin")).unwrap();
    let block = data(1 << 20, 7);
    for _ in 0..1024 {
        f.write_all(&block).unwrap();
    }
}

/// Runs `command` under `script`, so that it has a pseudo-terminal, with a
/// `TERM` that can erase a line (indicatif draws nothing without one);
/// returns what was drawn on the terminal.
fn under_script(dir: &Path, command: &str) -> String {
    let typescript = dir.join("typescript");
    let status = Command::new("script")
        .arg("-qec")
        .arg(command)
        .arg(&typescript)
        .current_dir(dir)
        .env("TERM", "xterm")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    String::from_utf8_lossy(&std::fs::read(&typescript).unwrap()).into_owned()
}

/// Each drawing of the line starts by erasing the last: the percentages
/// drawn, in order.
fn percents_drawn(drawn: &str) -> Vec<u32> {
    drawn
        .split("\r\x1b[2K")
        .filter_map(|line| {
            let (pct, _) = line.trim_start().split_once("% [")?;
            pct.parse().ok()
        })
        .collect()
}

/// The line is drawn with percent, bytes, files, rate and ETA, and erased
/// at the end: the last thing drawn is the erase.
fn assert_drawn_and_cleared(drawn: &str) {
    assert!(drawn.contains("1.00 GiB  0/"), "{drawn}");
    assert!(drawn.contains("/s  ETA "), "{drawn}");
    assert!(!percents_drawn(drawn).is_empty(), "{drawn}");
    let last = drawn.rfind("\r\x1b[2K").unwrap();
    assert!(!drawn[last..].contains('%'), "{drawn}");
}

/// `--progress` draws on a terminal only: on a pipe stderr stays empty; under
/// `script` (a pseudo-terminal) the line is drawn with a percent and cleared
/// at the end; stdout is md5sum's, byte for byte, either way.
#[test]
fn sum_progress_draws_on_a_terminal_only_and_leaves_stdout_alone() {
    if !have_script() {
        return;
    }
    let dir = TempDir::new("sum-progress");
    write_gib(dir.path());
    std::fs::write(dir.path().join("small.txt"), b"x\n").unwrap();
    let want = Command::new("md5sum")
        .args(["big.bin", "small.txt"])
        .current_dir(dir.path())
        .output()
        .unwrap()
        .stdout;
    let piped = Command::new(BIN)
        .args(["sum", "--progress", "--no-daemon", "big.bin", "small.txt"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(piped.stdout, want);
    assert!(
        piped.stderr.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&piped.stderr)
    );
    let drawn = under_script(
        dir.path(),
        &format!("{BIN} sum --progress --no-daemon big.bin small.txt > out.txt"),
    );
    assert_eq!(std::fs::read(dir.path().join("out.txt")).unwrap(), want);
    assert!(drawn.contains("0/2 files"), "{drawn}");
    assert_drawn_and_cleared(&drawn);
    // Stdout on the terminal too: each result line is written on a cleared
    // line (the terminal turns its \n into \r\n), never over the bar.
    let drawn = under_script(
        dir.path(),
        &format!("{BIN} sum --progress --no-daemon big.bin small.txt"),
    );
    let big_line = String::from_utf8_lossy(&want)
        .lines()
        .next()
        .unwrap()
        .to_string();
    assert!(
        drawn.contains(&format!("\r\x1b[2K{big_line}\r\n")),
        "{drawn}"
    );
    assert_drawn_and_cleared(&drawn);
    // `check` draws the same line, over the same stdout as md5sum -c.
    std::fs::write(dir.path().join("list.md5"), &want).unwrap();
    let drawn = under_script(
        dir.path(),
        &format!("{BIN} check --progress --no-daemon list.md5 > checked.txt"),
    );
    assert_eq!(
        std::fs::read(dir.path().join("checked.txt")).unwrap(),
        b"big.bin: OK\nsmall.txt: OK\n"
    );
    assert_drawn_and_cleared(&drawn);
}

/// Through the daemon one large file moves too: the daemon's PROGRESS
/// frames say how far its hashers have got, so the line shows several
/// percentages below 100 before the result, and stdout is md5sum's.
#[test]
fn sum_progress_through_the_daemon_moves_within_one_large_file() {
    if !have_script() {
        return;
    }
    let dir = TempDir::new("sum-progress-daemon");
    let sock = dir.path().join("d.sock");
    let d = Daemon::builder(dir.path())
        .arg("--socket")
        .arg(&sock.to_string_lossy())
        .start();
    write_gib(dir.path());
    let want = Command::new("md5sum")
        .arg("big.bin")
        .current_dir(dir.path())
        .output()
        .unwrap()
        .stdout;
    let drawn = under_script(
        dir.path(),
        &format!(
            "{BIN} sum --progress -v --socket {} big.bin > out.txt",
            sock.display()
        ),
    );
    assert_eq!(std::fs::read(dir.path().join("out.txt")).unwrap(), want);
    // -v would have said so had the daemon not been used.
    assert!(!drawn.contains("hashd:"), "{drawn}");
    assert!(drawn.contains("0/1 files"), "{drawn}");
    assert_drawn_and_cleared(&drawn);
    let mut below_100: Vec<u32> = percents_drawn(&drawn)
        .into_iter()
        .filter(|&p| p < 100)
        .collect();
    below_100.dedup();
    assert!(below_100.len() > 1, "{below_100:?}\n{drawn}");
    // The daemon did the hashing.
    let hashed: u64 = d.get_json("/stats").1["hashers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["bytes"].as_u64().unwrap())
        .sum();
    assert!(hashed >= 1 << 30, "the daemon hashed {hashed} bytes");
    // A pipe still gets nothing extra through the daemon.
    let piped = Command::new(BIN)
        .args(["sum", "--progress", "--socket"])
        .arg(&sock)
        .arg("big.bin")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(piped.stdout, want);
    assert!(piped.stderr.is_empty());
    assert!(d.terminate().success());
}

/// PROGRESS frames on the wire: only to a client that asked in HELLO, with
/// the file request's tag, counts that grow up to the file's length and
/// none after the reply (whose size is the whole file); a stream gets none.
#[test]
fn the_daemon_reports_progress_of_descriptor_jobs_only_to_clients_that_ask() {
    use std::os::fd::AsFd;
    let dir = TempDir::new("progress-frames");
    let sock = dir.path().join("p.sock");
    let _d = Daemon::builder(dir.path())
        .arg("--socket")
        .arg(&sock.to_string_lossy())
        .start();
    let big = dir.path().join("big.bin");
    let mut f = std::fs::File::create(&big).unwrap();
    let block = data(1 << 20, 3);
    for _ in 0..256 {
        f.write_all(&block).unwrap();
    }
    drop(f);
    let size = 256u64 << 20;
    let send_fd = |s: &UnixStream, tag: u64| {
        let f = std::fs::File::open(&big).unwrap();
        let fr = frame(0x02, tag, b"md5");
        let n = hashcore::fdpass::send_with_fd(s.as_fd(), &fr, f.as_fd()).unwrap();
        (&*s).write_all(&fr[n..]).unwrap();
    };
    for asks in [true, false] {
        let mut s = UnixStream::connect(&sock).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
            .unwrap();
        let hello: &[u8] = match asks {
            true => br#"{"version":1,"progress_ms":20}"#,
            false => br#"{"version":1}"#,
        };
        s.write_all(&frame(0x01, 9, hello)).unwrap();
        let (tag, v) = read_reply(&mut s);
        assert_eq!(tag, 9);
        assert_eq!(
            v.get("progress_ms").and_then(|v| v.as_u64()),
            asks.then_some(20),
            "{v}"
        );
        // A stream, open across the file's job and ended after it: no
        // PROGRESS for it.
        s.write_all(&frame(0x03, 2, b"md5")).unwrap();
        s.write_all(&frame(0x04, 2, b"abc")).unwrap();
        send_fd(&s, 1);
        let mut counts = Vec::new();
        let reply = loop {
            let (kind, tag, body) = read_frame(&mut s).unwrap();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            match kind {
                0x82 => {
                    assert_eq!(tag, 1, "{v}");
                    counts.push(v["bytes"].as_u64().unwrap());
                }
                0x80 => {
                    assert_eq!(tag, 1, "{v}");
                    break v;
                }
                other => panic!("frame kind {other:#x}: {v}"),
            }
        };
        assert_eq!(reply["size"], size);
        assert_eq!(
            reply["hash"],
            reference("md5", &std::fs::read(&big).unwrap())
        );
        s.write_all(&frame(0x05, 2, b"")).unwrap();
        let (tag, v) = read_reply(&mut s);
        assert_eq!(
            (tag, &v["hash"]),
            (2, &serde_json::json!(reference("md5", b"abc")))
        );
        if asks {
            assert!(counts.len() > 1, "{counts:?}");
            assert!(counts.windows(2).all(|w| w[0] < w[1]), "{counts:?}");
            assert!(counts.iter().all(|&c| c > 0 && c <= size), "{counts:?}");
        } else {
            assert!(counts.is_empty(), "{counts:?}");
        }
    }
}
