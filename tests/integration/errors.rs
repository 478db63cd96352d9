//! Bad input: a 4xx with a JSON reason, and the daemon unaffected.

use std::io::Write;

use crate::util::*;

#[test]
fn malformed_uploads_get_4xx_with_a_reason() {
    let dir = TempDir::new("bad");
    let d = Daemon::builder(dir.path())
        .arg("--max-upload")
        .arg("1M")
        .start();
    let ct = format!("multipart/form-data; boundary={BOUNDARY}");

    // Wrong content type.
    let r = request(
        d.addr,
        "POST",
        "/uploadfile/",
        &[("Content-Type", "application/json")],
        b"{}",
    );
    assert_json_error(&r, 415, "multipart/form-data");
    assert_eq!(r.json()["success"], false);
    assert!(r.json()["id"].is_null());
    // No boundary.
    let r = request(
        d.addr,
        "POST",
        "/uploadfile/",
        &[("Content-Type", "multipart/form-data")],
        b"x",
    );
    assert_json_error(&r, 400, "boundary");
    // No `file` field.
    let (ct2, mp) = multipart(&[Part::field("other", b"x")]);
    let r = request(
        d.addr,
        "POST",
        "/uploadfile/",
        &[("Content-Type", &ct2)],
        &mp,
    );
    assert_json_error(&r, 400, "no field named `file`");
    // Truncated body: the closing boundary never comes.
    let (_, mp) = multipart(&[Part::file("file", "t.bin", &data(10_000, 1))]);
    let r = request(
        d.addr,
        "POST",
        "/uploadfile/",
        &[("Content-Type", &ct)],
        &mp[..mp.len() - 40],
    );
    assert_json_error(&r, 400, "multipart");
    // Over the size limit, declared and streamed.
    // Declared too large: answered from the head alone, before any body.
    let mut s = std::net::TcpStream::connect(d.addr).unwrap();
    write!(
        s,
        "PUT /files HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n"
    )
    .unwrap();
    assert_json_error(&read_response(&mut s), 413, "1048576");
    let big = data((1 << 20) + 1, 2);
    let (_, mp) = multipart(&[Part::file("file", "big.bin", &big)]);
    let r = request(
        d.addr,
        "POST",
        "/uploadfile/",
        &[("Content-Type", &ct)],
        &mp,
    );
    assert_json_error(&r, 413, "1048576");
    // Unsupported algorithm.
    let r = d.upload("?algo=whirlpool", "a", b"a");
    assert_json_error(&r, 400, "whirlpool");
    // Unknown route and wrong method.
    assert_json_error(&d.get("/nope"), 404, "no route");
    assert_json_error(
        &request(d.addr, "DELETE", "/uploadfile/", &[], b""),
        405,
        "DELETE",
    );
    assert_json_error(&d.get("/uploadfile/"), 405, "GET");

    // None of this left a job behind.
    let stats = d.get_json("/stats").1;
    assert_eq!(stats["jobs"]["total"], 0, "{stats}");
    still_serving(&d);
}

#[test]
fn a_client_that_disconnects_mid_upload_leaves_no_job_behind() {
    let dir = TempDir::new("disconnect");
    let d = Daemon::start(dir.path());
    {
        let mut s = std::net::TcpStream::connect(d.addr).unwrap();
        write!(
            s,
            "PUT /files HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n"
        )
        .unwrap();
        s.write_all(&data(500_000, 3)).unwrap();
    }
    {
        let (ct, mp) = multipart(&[Part::file("file", "gone.bin", &data(2_000_000, 4))]);
        let mut s = std::net::TcpStream::connect(d.addr).unwrap();
        write!(s, "POST /uploadfile/ HTTP/1.1\r\nHost: x\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n", mp.len()).unwrap();
        s.write_all(&mp[..1_000_000]).unwrap();
    }
    // The hashers saw both streams and dropped them.
    let stats = d.wait_for_stats("streams not dropped", |s| {
        Daemon::hasher_total(s, "jobs_failed") == 2 && Daemon::hasher_total(s, "active_jobs") == 0
    });
    assert_eq!(
        stats["jobs"]["total"], 0,
        "no job recorded, so none PENDING"
    );
    still_serving(&d);
}

#[test]
fn a_silent_client_is_cut_off_with_408() {
    let dir = TempDir::new("idle");
    let d = Daemon::builder(dir.path())
        .arg("--body-timeout")
        .arg("1")
        .start();
    let mut s = std::net::TcpStream::connect(d.addr).unwrap();
    write!(
        s,
        "PUT /files HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc"
    )
    .unwrap();
    let r = read_response(&mut s);
    assert_eq!(r.status, 408);
    // The connection ends after it, and the answer says so.
    assert_eq!(r.header("connection"), Some("close"));
    still_serving(&d);
}

#[test]
fn too_many_uploads_get_503_with_retry_after() {
    let dir = TempDir::new("busy");
    let d = Daemon::builder(dir.path())
        .arg("--max-uploads")
        .arg("1")
        .start();
    let mut hog = std::net::TcpStream::connect(d.addr).unwrap();
    write!(
        hog,
        "PUT /files HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc"
    )
    .unwrap();
    // Once the hog's stream is open at a hasher, it holds the only slot.
    d.wait_for_stats("the hog's upload never started", |s| {
        Daemon::hasher_total(s, "active_jobs") == 1
    });
    let r = request(d.addr, "PUT", "/files", &[], b"x");
    assert_json_error(&r, 503, "busy");
    assert_eq!(r.header("retry-after"), Some("1"));
    hog.write_all(&[b'x'; 97]).unwrap();
    let r = read_response(&mut hog);
    assert_eq!(r.status, 200);
    still_serving(&d);
}

#[test]
fn invalid_settings_exit_2_with_a_clear_message() {
    let dir = TempDir::new("cfg");
    for (args, needle) in [
        (vec!["--hashers", "0"], "--hashers"),
        (vec!["--max-upload", "lots"], "invalid size"),
        (vec!["--listen", "nonsense:::"], "invalid listen address"),
        (vec!["--sync", "maybe"], "--sync"),
        (vec!["--md5-backend", "sse9"], "sse9"),
        (
            vec!["--md5-tuning", "guess"],
            "--md5-tuning must be measure or fixed",
        ),
    ] {
        let out = std::process::Command::new(BIN)
            .args(&args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let out = std::process::Command::new(BIN)
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--data-dir",
        "--hashers",
        "--max-upload",
        "--keep-uploads",
        "API_PORT",
        "ARTIFICIAL_DELAY",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn a_second_daemon_on_the_same_data_dir_is_refused() {
    let dir = TempDir::new("lock");
    let _d = Daemon::start(dir.path());
    let out = std::process::Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("locked"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
