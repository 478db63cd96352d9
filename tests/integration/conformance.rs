//! Issue 10 against the real binary: the multipart fixtures real clients
//! send (shared with frontends/tests/multipart.rs, which also splits them at
//! every offset), the 2 MiB false-delimiter file, codings, framing,
//! half-closed clients, HEAD and `Allow`, and the bound on part headers.

use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::Command;
use std::time::Duration;

use crate::util::*;

#[path = "../../frontends/tests/common/fixtures.rs"]
mod fixtures;

use fixtures::Expect;

#[test]
fn the_multipart_fixtures_get_their_answers() {
    let dir = TempDir::new("conf-mp");
    let d = Daemon::start(dir.path());
    let mut expected_jobs = 0;
    for f in fixtures::fixtures() {
        let r = request(
            d.addr,
            "POST",
            "/uploadfile/?wait=true",
            &[("Content-Type", &f.content_type)],
            &f.body,
        );
        match &f.expect {
            Expect::File { bytes, name } => {
                assert_eq!(r.status, 200, "{}: {}", f.name, r.text());
                let v = r.json();
                assert_eq!(v["hash"], reference("md5", bytes).as_str(), "{}", f.name);
                assert_eq!(v["size"], bytes.len(), "{}", f.name);
                assert_eq!(v["name"].as_str(), name.as_deref(), "{}", f.name);
                expected_jobs += 1;
            }
            Expect::Error { status, needle } => {
                assert_json_error(&r, *status, needle);
                assert_eq!(r.json()["success"], false, "{}", f.name);
            }
        }
        assert_eq!(
            d.get_json("/stats").1["jobs"]["total"],
            expected_jobs,
            "{}: a refused form leaves no job",
            f.name
        );
    }
}

/// The example: a 2 MiB file with `\r\n--BOUNDARY` plus other bytes
/// in its middle was answered with the MD5 of its first 1 MiB.
#[test]
fn a_false_delimiter_in_a_large_file_is_hashed_as_data() {
    let dir = TempDir::new("conf-2m");
    let d = Daemon::start(dir.path());
    let mut file = data(2 << 20, 5);
    let inner = format!("\r\n--{BOUNDARY}abc\r\n");
    file[1 << 20..(1 << 20) + inner.len()].copy_from_slice(inner.as_bytes());
    let v = d.upload("?wait=true", "big.bin", &file).json();
    assert_eq!(v["status"], "SUCCESS", "{v}");
    assert_eq!(v["size"], file.len());
    assert_eq!(v["hash"], reference("md5", &file).as_str());
    // And with curl as the client, as users send it (its own boundary).
    let path = dir.path().join("big.bin");
    let needle = "\r\n--------------------------abc\r\n";
    file[100..100 + needle.len()].copy_from_slice(needle.as_bytes());
    std::fs::write(&path, &file).unwrap();
    let out = Command::new("curl")
        .args(["-sS", "-F"])
        .arg(format!("file=@{}", path.display()))
        .arg(format!("http://{}/uploadfile/?wait=true", d.addr))
        .output()
        .expect("curl");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["hash"], reference("md5", &file).as_str(), "{v}");
}

#[test]
fn codings_and_unframed_uploads_are_refused_with_no_job() {
    let dir = TempDir::new("conf-te");
    let d = Daemon::start(dir.path());
    let path = dir.path().join("f.txt");
    std::fs::write(&path, b"the file").unwrap();
    let curl = |extra: &[&str], url: &str| -> (u16, serde_json::Value, String) {
        let out = Command::new("curl")
            .args(["-sS", "-D", "-", "-T"])
            .arg(&path)
            .args(extra)
            .arg(format!("http://{}{url}", d.addr))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let text = text.trim_start_matches("HTTP/1.1 100 Continue\r\n\r\n");
        let (head, body) = text.split_once("\r\n\r\n").expect("an answer");
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (
            status,
            serde_json::from_str(body).unwrap(),
            head.to_ascii_lowercase(),
        )
    };
    // RFC 9112 section 6.1: a transfer coding hashd does not decode is 501.
    let (status, v, head) = curl(&["-H", "Transfer-Encoding: gzip, chunked"], "/files/f.txt");
    assert_eq!(status, 501, "{v}");
    assert!(head.contains("connection: close"), "{head}");
    // RFC 9110 section 15.5.16: a content coding is 415 with Accept-Encoding.
    let (status, v, head) = curl(&["-H", "Content-Encoding: gzip"], "/files/f.txt");
    assert_eq!(status, 415, "{v}");
    assert!(head.contains("accept-encoding: identity"), "{head}");
    // RFC 9110 section 14.5: a partial PUT is refused.
    let (status, v, _) = curl(&["-H", "Content-Range: bytes 0-7/100"], "/files/f.txt");
    assert_eq!(status, 400, "{v}");
    assert_eq!(d.get_json("/stats").1["jobs"]["total"], 0);
    // Plain chunked is hashed.
    let (status, v, _) = curl(&["-H", "Transfer-Encoding: chunked"], "/files/f.txt?wait=1");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["hash"], reference("md5", b"the file").as_str());

    // No Content-Length and no Transfer-Encoding: 411.
    let mut s = TcpStream::connect(d.addr).unwrap();
    s.write_all(b"PUT /files/x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_json_error(&read_response(&mut s), 411, "Content-Length");
}

/// `printf 'GET /health ...' | nc -N`: the request, then the client's FIN.
/// Whether the FIN arrives with the request or after the server parsed it,
/// the client is answered, uploads included.
#[test]
fn clients_that_half_close_are_answered() {
    let dir = TempDir::new("conf-half");
    let d = Daemon::start(dir.path());
    let upload = b"PUT /files/h?wait=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc";
    for request in [
        &b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n"[..],
        b"GET /health HTTP/1.0\r\n\r\n",
        upload,
    ] {
        for pause in [Duration::ZERO, Duration::from_millis(100)] {
            let mut s = TcpStream::connect(d.addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            s.write_all(request).unwrap();
            std::thread::sleep(pause);
            s.shutdown(Shutdown::Write).unwrap();
            let mut out = Vec::new();
            let _ = BufReader::new(s).read_to_end(&mut out);
            let text = String::from_utf8_lossy(&out);
            assert!(
                text.starts_with("HTTP/1.1 200") || text.starts_with("HTTP/1.0 200"),
                "{:?} after {pause:?}: {text:?}",
                String::from_utf8_lossy(request)
            );
            if request == upload {
                assert!(text.contains(&reference("md5", b"abc")), "{text}");
            }
        }
    }
}

#[test]
fn head_is_answered_wherever_get_is_and_405_says_allow() {
    let dir = TempDir::new("conf-head");
    let d = Daemon::start(dir.path());
    let id = d.upload("?wait=1", "h.bin", b"head").json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    for path in [
        "/".to_string(),
        "/uploadform".into(),
        format!("/gethash/{id}"),
        format!("/gethash/?file_id={id}"),
        format!("/gethash-form/?file_id={id}"),
        "/jobs".into(),
        "/stats".into(),
        "/health".into(),
    ] {
        let out = Command::new("curl")
            .args(["-sS", "-I"])
            .arg(format!("http://{}{path}", d.addr))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("HTTP/1.1 200"), "HEAD {path}: {text}");
    }
    for (method, path, allow) in [
        ("DELETE", "/jobs", "GET, HEAD, OPTIONS"),
        ("GET", "/uploadfile/", "POST, OPTIONS"),
        ("PATCH", "/files/x", "PUT, POST, OPTIONS"),
        ("POST", "/gethash/abc", "GET, HEAD, OPTIONS"),
    ] {
        let r = request(d.addr, method, path, &[], &[]);
        assert_json_error(&r, 405, "not allowed");
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
    }
}

/// A part header block that never ends (64 MiB of header bytes) is refused
/// early, and memory stays flat (it was taken whole: RSS 26 → 285 MiB).
#[test]
fn an_endless_part_header_is_refused_and_memory_stays_flat() {
    let dir = TempDir::new("conf-hdr");
    let d = Daemon::start(dir.path());
    let total = 64 << 20;
    let mut s = TcpStream::connect(d.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "POST /uploadfile/ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {total}\r\n\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"\r\nX-Pad: "
    );
    s.write_all(head.as_bytes()).unwrap();
    // Read while writing: the answer comes while the client is still
    // sending, and the close after it may reset the connection.
    let mut reader = s.try_clone().unwrap();
    let answer = std::thread::spawn(move || try_read_response(&mut BufReader::new(&mut reader)));
    let chunk = vec![b'a'; 1 << 20];
    let mut sent = head.len();
    while sent < total {
        if s.write_all(&chunk).is_err() {
            break;
        }
        sent += chunk.len();
    }
    assert!(
        sent < total / 2,
        "the daemon read {sent} bytes of part headers"
    );
    if let Ok(r) = answer.join().unwrap() {
        assert_json_error(&r, 400, "header block");
    }
    assert!(
        d.peak_rss_kib() < 64 << 10,
        "peak RSS {} KiB",
        d.peak_rss_kib()
    );
    still_serving(&d);
}
