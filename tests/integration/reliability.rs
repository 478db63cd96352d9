//! Reliability (issue 6): broken and hostile clients, slowloris, an
//! unwritable or full disk, kill -9 under load. Each test checks the
//! documented answer and that the daemon still serves afterwards.

use std::collections::HashMap;
use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::util::*;

fn post_form(d: &Daemon, query: &str, content_type: &str, body: &[u8]) -> Response {
    request(
        d.addr,
        "POST",
        &format!("/uploadfile/{query}"),
        &[("Content-Type", content_type)],
        body,
    )
}

/// Sends `raw` on one connection and reads `n` answers in order.
fn exchange(d: &Daemon, raw: &[u8], n: usize) -> Vec<Response> {
    let mut s = TcpStream::connect(d.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(raw).unwrap();
    let mut r = BufReader::new(s);
    (0..n)
        .map(|i| try_read_response(&mut r).unwrap_or_else(|e| panic!("answer {i}: {e}")))
        .collect()
}

/// Sends `raw` on one connection and reads one answer, if there is one
/// before the daemon closes the connection.
fn exchange_or_close(d: &Daemon, raw: &[u8]) -> Option<Response> {
    let mut s = TcpStream::connect(d.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = s.write_all(raw);
    try_read_response(&mut BufReader::new(s)).ok()
}

fn form_part(head: &[u8], data: &[u8]) -> Vec<u8> {
    let mut p = format!("--{BOUNDARY}\r\n").into_bytes();
    p.extend_from_slice(head);
    p.extend_from_slice(b"\r\n\r\n");
    p.extend_from_slice(data);
    p.extend_from_slice(b"\r\n");
    p
}

fn form_end() -> Vec<u8> {
    format!("--{BOUNDARY}--\r\n").into_bytes()
}

#[test]
fn broken_multipart_bodies_get_400_or_are_read_correctly() {
    let dir = TempDir::new("rel-mp");
    let d = Daemon::start(dir.path());
    let ct = format!("multipart/form-data; boundary={BOUNDARY}");
    let file = data(20_000, 1);
    let md5 = reference("md5", &file);

    // Truncated: in the first boundary, in a part's head, in its data, and
    // before the closing boundary. No job is left behind by any of them.
    let (_, whole) = multipart(&[Part::file("file", "t.bin", &file)]);
    let head_end = whole.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    for cut in [10, head_end - 5, head_end + 5000, whole.len() - 8] {
        let r = post_form(&d, "", &ct, &whole[..cut]);
        assert_json_error(&r, 400, "multipart");
    }
    assert_eq!(d.get_json("/stats").1["jobs"]["total"], 0);

    // Truncated after the file part is complete: a later `file` part could
    // have replaced it, so the form is not whole and no job is recorded.
    let mut body = form_part(
        b"Content-Disposition: form-data; name=\"file\"; filename=\"a\"",
        &file,
    );
    body.extend_from_slice(&form_part(
        b"Content-Disposition: form-data; name=\"note\"",
        b"abc",
    ));
    body.truncate(body.len() - 4);
    assert_json_error(&post_form(&d, "?wait=1", &ct, &body), 400, "multipart");
    assert_eq!(d.get_json("/stats").1["jobs"]["total"], 0);

    // A 10,000-character boundary (RFC 2046 allows 70) is read like any other.
    let long = "b".repeat(10_000);
    let body = [
        format!(
            "--{long}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"l\"\r\n\r\n"
        )
        .into_bytes(),
        file.clone(),
        format!("\r\n--{long}--\r\n").into_bytes(),
    ]
    .concat();
    let r = post_form(
        &d,
        "?wait=1",
        &format!("multipart/form-data; boundary={long}"),
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["hash"], md5.as_str());
    // An empty boundary parameter.
    let r = post_form(&d, "", "multipart/form-data; boundary=", &body);
    assert_json_error(&r, 400, "boundary");

    // 1,000 parts: the file among 999 other fields, first and last.
    let fields: Vec<Vec<u8>> = (0..999)
        .map(|i| {
            form_part(
                format!("Content-Disposition: form-data; name=\"f{i}\"").as_bytes(),
                b"x",
            )
        })
        .collect();
    let file_part = form_part(
        b"Content-Disposition: form-data; name=\"file\"; filename=\"many\"",
        &file,
    );
    for file_first in [true, false] {
        let mut body = Vec::new();
        if file_first {
            body.extend_from_slice(&file_part);
        }
        body.extend(fields.iter().flatten());
        if !file_first {
            body.extend_from_slice(&file_part);
        }
        body.extend_from_slice(&form_end());
        let r = post_form(&d, "?wait=1", &ct, &body);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["hash"], md5.as_str());
    }

    // Parts with no name, or no Content-Disposition at all, are skipped.
    let nameless = [
        form_part(b"Content-Disposition: form-data", b"no name"),
        form_part(b"Content-Type: text/plain", b"no disposition"),
    ]
    .concat();
    let r = post_form(&d, "", &ct, &[nameless.clone(), form_end()].concat());
    assert_json_error(&r, 400, "no field named `file`");
    let r = post_form(
        &d,
        "?wait=1",
        &ct,
        &[nameless, file_part.clone(), form_end()].concat(),
    );
    assert_eq!(r.json()["hash"], md5.as_str());

    // Invalid UTF-8 in the file name: accepted, the name made valid.
    let body = [
        form_part(
            b"Content-Disposition: form-data; name=\"file\"; filename=\"a\xff\xfe\xc3.bin\"",
            &file,
        ),
        form_end(),
    ]
    .concat();
    let r = post_form(&d, "?wait=1", &ct, &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["hash"], md5.as_str());
    assert!(v["name"].as_str().unwrap().starts_with('a'), "{v}");
    // Invalid UTF-8 in the field name: that field is not `file`.
    let body = [
        form_part(
            b"Content-Disposition: form-data; name=\"fi\xffle\"; filename=\"x\"",
            &file,
        ),
        form_end(),
    ]
    .concat();
    let r = post_form(&d, "", &ct, &body);
    assert_json_error(&r, 400, "no field named `file`");
    still_serving(&d);
}

#[test]
fn a_1_mib_request_head_gets_431_or_a_closed_connection() {
    let dir = TempDir::new("rel-head");
    let d = Daemon::start(dir.path());
    let mut raw = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    raw.extend(std::iter::repeat_n(b'a', 1 << 20));
    raw.extend_from_slice(b"\r\n\r\n");
    // hyper stops reading at --max-header-bytes (256 KiB), answers 431 and
    // closes; a client still writing may see the reset before the answer.
    if let Some(r) = exchange_or_close(&d, &raw) {
        assert_eq!(r.status, 431, "{}", r.text());
    }
    // Many small headers, past the 100-header limit: the same.
    let mut raw = b"GET /health HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..200 {
        raw.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    if let Some(r) = exchange_or_close(&d, &raw) {
        assert_eq!(r.status, 431, "{}", r.text());
    }
    still_serving(&d);
}

#[test]
fn a_content_length_that_lies_is_read_as_declared() {
    let dir = TempDir::new("rel-cl");
    let d = Daemon::builder(dir.path())
        .arg("--body-timeout")
        .arg("1")
        .start();
    // Shorter than the body: the extra bytes are the next request.
    let rs = exchange(
        &d,
        b"PUT /files/s.txt?wait=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n\
          helloGET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        2,
    );
    assert_eq!(rs[0].json()["hash"], reference("md5", b"hello"));
    assert_eq!(rs[1].status, 200);
    assert_eq!(rs[1].json()["ok"], true);
    // ... and extra bytes that are no request: the upload stands, then 400.
    let mut s = TcpStream::connect(d.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(
        b"PUT /files?wait=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\x00\x01garbage\r\n\r\n",
    )
    .unwrap();
    let mut r = BufReader::new(s);
    assert_eq!(
        try_read_response(&mut r).unwrap().json()["hash"],
        reference("md5", b"hello")
    );
    if let Ok(next) = try_read_response(&mut r) {
        assert_eq!(next.status, 400);
    }

    // Longer than the body: the client stalls, 408 after --body-timeout,
    // raw and multipart alike, and no job is recorded.
    let before = d.get_json("/stats").1["jobs"]["total"].as_u64().unwrap();
    let file = data(100_000, 2);
    let (ct, mp) = multipart(&[Part::file("file", "l.bin", &file)]);
    let head = |len: usize| {
        format!(
            "POST /uploadfile/ HTTP/1.1\r\nHost: x\r\nContent-Type: {ct}\r\nContent-Length: {len}\r\n\r\n"
        )
        .into_bytes()
    };
    let multipart_head = [head(mp.len()), mp[..mp.len() / 2].to_vec()].concat();
    let raw_head = b"PUT /files HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc".to_vec();
    for raw in [raw_head, multipart_head] {
        let started = Instant::now();
        let r = &exchange(&d, &raw, 1)[0];
        assert_json_error(r, 408, "no data from the client");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    let after = d.get_json("/stats").1["jobs"]["total"].as_u64().unwrap();
    assert_eq!(before, after, "a stalled upload left a job");
    // A stall after the whole file arrived: the job is recorded, so the
    // answer is its id (after the body timeout), not a 408.
    let r = &exchange(&d, &[head(mp.len() + 100), mp.clone()].concat(), 1)[0];
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(d.wait_final(&id)["hash"], reference("md5", &file));
    still_serving(&d);
}

#[test]
fn bad_chunked_bodies_get_400() {
    let dir = TempDir::new("rel-chunk");
    let d = Daemon::start(dir.path());
    let bad: [&[u8]; 5] = [
        b"zz\r\nabc\r\n0\r\n\r\n",
        b"ffffffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
        b"-3\r\nabc\r\n0\r\n\r\n",
        b"3\r\nabcdef\r\n0\r\n\r\n",
        b"3 x\r\nabc\r\n0\r\n\r\n",
    ];
    for chunks in bad {
        let mut raw =
            b"PUT /files?wait=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        raw.extend_from_slice(chunks);
        let r = exchange_or_close(&d, &raw)
            .unwrap_or_else(|| panic!("no answer to {:?}", String::from_utf8_lossy(chunks)));
        assert_json_error(&r, 400, "body");
    }
    // A good chunked upload, raw and multipart.
    let rs = exchange(
        &d,
        b"PUT /files?wait=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
          3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n",
        1,
    );
    assert_eq!(rs[0].json()["hash"], reference("md5", b"abcde"));
    assert_eq!(d.get_json("/stats").1["jobs"]["FAILURE"], 0);
    still_serving(&d);
}

#[test]
fn http_1_0_and_pipelined_requests_are_answered_in_order() {
    let dir = TempDir::new("rel-pipe");
    let d = Daemon::start(dir.path());
    // HTTP/1.0: answered, then the connection closes.
    let mut s = TcpStream::connect(d.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"POST /files/old.txt?wait=1 HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc")
        .unwrap();
    let r = read_response(&mut s);
    let v = r.json();
    assert_eq!(v["hash"], reference("md5", b"abc"));
    let id = v["id"].as_str().unwrap().to_string();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    let r = &exchange(
        &d,
        format!("GET /gethash/{id} HTTP/1.0\r\n\r\n").as_bytes(),
        1,
    )[0];
    assert_eq!(r.json()["status"], "SUCCESS");

    // Several uploads and lookups in one write; answers in order.
    let (ct, mp) = multipart(&[Part::file("file", "p.bin", b"multi")]);
    let mut raw = Vec::new();
    for body in [&b"one"[..], b"two", b""] {
        raw.extend_from_slice(
            format!(
                "PUT /files?wait=1 HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        raw.extend_from_slice(body);
    }
    raw.extend_from_slice(
        format!(
            "POST /uploadfile/?wait=1 HTTP/1.1\r\nHost: x\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
            mp.len()
        )
        .as_bytes(),
    );
    raw.extend_from_slice(&mp);
    raw.extend_from_slice(
        format!("GET /gethash/?file_id={id} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    );
    raw.extend_from_slice(b"GET /gethash/-1 HTTP/1.1\r\nHost: x\r\n\r\n");
    // A GET with a body, pipelined: the body is read, not taken as a request.
    raw.extend_from_slice(b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    raw.extend_from_slice(b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let rs = exchange(&d, &raw, 8);
    for (r, body) in rs.iter().zip([&b"one"[..], b"two", b"", b"multi"]) {
        assert_eq!(r.json()["hash"], reference("md5", body));
    }
    assert_eq!(rs[4].json()["status"], "SUCCESS");
    assert_eq!(rs[4].json()["id"], id.as_str());
    assert_eq!(rs[5].status, 404);
    assert_eq!(rs[6].json()["ok"], true);
    assert!(rs[7].json()["jobs"]["total"].as_u64().unwrap() >= 5);
    still_serving(&d);
}

#[test]
fn hostile_ids_and_nul_bytes_in_paths_are_404_not_500() {
    let dir = TempDir::new("rel-ids");
    let d = Daemon::start(dir.path());
    let v = d.upload("?wait=1", "known.txt", b"known").json();
    let id = v["id"].as_str().unwrap().to_string();

    // The documented GET-with-a-body forms; the query wins.
    let r = request(
        d.addr,
        "GET",
        &format!("/gethash/?file_id={id}"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"file_id=zzz",
    );
    assert_eq!(r.json()["status"], "SUCCESS");
    let r = request(
        d.addr,
        "GET",
        "/get_hash/gethash/",
        &[("Content-Type", "application/json")],
        format!("{{\"file_id\": \"{id}\"}}").as_bytes(),
    );
    assert_eq!(r.json()["status"], "SUCCESS");

    for path in [
        "/gethash/?file_id=1'%20OR%20'1'='1",
        "/gethash/1%27%3B%20DROP%20TABLE%20jobs%3B--",
        "/gethash/%25%27%22%5C%3B",
        "/gethash/?file_id=%00",
        "/gethash/%00",
        &format!("/gethash/{id}%00"),
        "/gethash-form/?file_id=%27%3Cscript%3E",
    ] {
        let r = d.get(path);
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert_no_internals(&r);
        if !path.starts_with("/gethash-form") {
            assert_eq!(r.json()["status"], "INVALID_ID", "{path}");
        } else {
            assert!(!r.text().contains("<script>"), "{}", r.text());
        }
    }
    let r = request(
        d.addr,
        "GET",
        "/get_hash/gethash/",
        &[],
        br#"{"file_id": "x' OR 1=1; --"}"#,
    );
    assert_eq!(r.json()["status"], "INVALID_ID");
    // Not an id at all: refused before it reaches SQL.
    assert_json_error(
        &d.get("/jobs?after=x%27%20OR%201%3D1--"),
        400,
        "after must be a job id",
    );
    assert_json_error(&d.get("/jobs?status=SUCCESS%27--"), 400, "unknown status");
    assert_json_error(&d.get("/jobs?limit=1%00"), 400, "limit");
    assert_json_error(&d.get("/gethash%00"), 404, "no route");
    assert_json_error(&d.get("/%00"), 404, "no route");

    // A NUL in an upload's name is replaced, never an error.
    let r = request(d.addr, "PUT", "/files/a%00b.txt?wait=1", &[], b"nul");
    let v = r.json();
    assert_eq!(v["hash"], reference("md5", b"nul"));
    assert_eq!(v["name"], "a?b.txt");
    // A raw NUL or control byte in the request line: hyper's 400, or a close.
    if let Some(r) = exchange_or_close(&d, b"GET /gethash/\x00 HTTP/1.1\r\nHost: x\r\n\r\n") {
        assert_eq!(r.status, 400);
    }
    // The table is intact.
    assert_eq!(d.get_json(&format!("/gethash/{id}")).1["status"], "SUCCESS");
    still_serving(&d);
}

/// Opens `n` connections that send nothing, from 8 threads. A connect
/// whose SYN was dropped (the listen backlog overflowing for a moment) is
/// retried after 250 ms rather than the kernel's 1 s.
fn idle_connections(addr: std::net::SocketAddr, n: usize) -> Vec<TcpStream> {
    const THREADS: usize = 8;
    let deadline = Instant::now() + Duration::from_secs(20);
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::spawn(move || {
                let want = n / THREADS + usize::from(t < n % THREADS);
                let mut conns = Vec::with_capacity(want);
                while conns.len() < want {
                    match TcpStream::connect_timeout(&addr, Duration::from_millis(250)) {
                        Ok(s) => conns.push(s),
                        Err(e) => assert!(Instant::now() < deadline, "connect: {e}"),
                    }
                }
                conns
            })
        })
        .collect();
    threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect()
}

/// Whether the daemon closed `s` (EOF or reset), waiting up to `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

#[test]
fn idle_and_slowloris_connections_do_not_block_a_normal_client() {
    // 10,000 idle connections: both ends fit under `ulimit -n` (checked).
    const IDLE: usize = 10_000;
    const SLOW: usize = 5;
    let limit = std::fs::read_to_string("/proc/self/limits")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3)?.parse::<usize>().ok())
        .unwrap_or(1024);
    let idle_wanted = if limit > IDLE + 500 {
        IDLE
    } else {
        eprintln!("ulimit -n is {limit}: using 1,000 idle connections instead of 10,000");
        1000.min(limit.saturating_sub(200))
    };
    let dir = TempDir::new("rel-slow");
    let d = Daemon::builder(dir.path())
        .arg("--header-timeout")
        .arg("5")
        .start();
    let started = Instant::now();
    let mut idle = idle_connections(d.addr, idle_wanted);
    eprintln!(
        "{} idle connections open in {:?}",
        idle.len(),
        started.elapsed()
    );
    if started.elapsed() > Duration::from_secs(5) {
        eprintln!(
            "note: opening took longer than the header timeout, so not all were open at once"
        );
    }
    // Slowloris: one header byte per second, never finishing the head.
    let stop = Arc::new(AtomicBool::new(false));
    let cut_off = Arc::new(AtomicUsize::new(0));
    let slow: Vec<_> = (0..SLOW)
        .map(|_| {
            let (stop, cut_off) = (stop.clone(), cut_off.clone());
            let addr = d.addr;
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                let head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaa";
                for b in head.iter().cycle() {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    if s.write_all(&[*b]).is_err() || closed_within(&mut s, Duration::from_secs(1))
                    {
                        cut_off.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            })
        })
        .collect();
    // A normal client meanwhile.
    for i in 0..5 {
        let body = data(100_000, i);
        let r = try_request(
            d.addr,
            "POST",
            "/files/n.bin?wait=1",
            &[],
            &body,
            Duration::from_secs(10),
        )
        .expect("a normal upload");
        let v = r.json();
        assert_eq!(v["hash"], reference("md5", &body));
        let (_, l) = d.get_json(&format!("/gethash/{}", v["id"].as_str().unwrap()));
        assert_eq!(l["status"], "SUCCESS");
    }
    // The slow ones are cut off by the header timeout (5 s), not served.
    wait_until(
        "slowloris connections still open",
        Duration::from_secs(15),
        || cut_off.load(Ordering::Relaxed) == SLOW,
    );
    stop.store(true, Ordering::Relaxed);
    for t in slow {
        t.join().unwrap();
    }
    // And so are the idle ones (sample a few; each is closed by now).
    for s in idle.iter_mut().step_by(idle_wanted / 20) {
        assert!(
            closed_within(s, Duration::from_secs(10)),
            "an idle connection is still open"
        );
    }
    drop(idle);
    still_serving(&d);
}

#[test]
fn an_unwritable_data_dir_exits_1_with_a_clear_error() {
    let dir = TempDir::new("rel-ro");
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let run = |args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new(BIN)
            .args(["--listen", "127.0.0.1:0", "--no-socket"])
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // A data directory under a regular file.
    let under_file = file.join("data");
    let (code, err) = run(&["--data-dir".as_ref(), under_file.as_os_str()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cannot create the data directory"), "{err}");
    assert!(err.contains("a-file/data"), "{err}");
    // A results log that cannot be created.
    let good = dir.path().join("good");
    let (code, err) = run(&[
        "--data-dir".as_ref(),
        good.as_os_str(),
        "--results-log".as_ref(),
        file.join("r.log").as_os_str(),
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cannot open the results log"), "{err}");
    // A read-only file system.
    let ro = dir.path().join("ro");
    if let Some(_mount) = Tmpfs::mount(&ro, "ro,size=1m") {
        let (code, err) = run(&["--data-dir".as_ref(), ro.as_os_str()]);
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains("Read-only file system"), "{err}");
        assert!(err.contains("hashd:"), "{err}");
    }
}

/// Fills the file system holding `dir` with `dir/filler`.
fn fill(dir: &std::path::Path) {
    let mut f = std::fs::File::create(dir.join("filler")).unwrap();
    let block = vec![0xa5u8; 64 << 10];
    while f.write_all(&block).is_ok() {}
    // Every last page, too.
    while f.write_all(&block[..512]).is_ok() {}
}

#[test]
fn a_full_disk_fails_uploads_cleanly_and_recovers_when_space_returns() {
    if testing_postgres() {
        // The job table is on the database server, not on this disk; the
        // results log's full disk has its own test below.
        return;
    }
    let dir = TempDir::new("rel-full");
    let data_dir = dir.path().join("data");
    let Some(_mount) = Tmpfs::mount(&data_dir, "size=2m") else {
        return;
    };
    // The delay lets jobs accepted before the disk fills end while it is full.
    let d = Daemon::builder(dir.path())
        .arg("--keep-uploads")
        .arg("--no-socket")
        .arg("--artificial-delay")
        .arg("1")
        .arg("--min-free-disk")
        .arg("256K")
        .start();
    assert_eq!(d.get("/ready").status, 200);
    let mut expected: HashMap<String, String> = HashMap::new();
    let mut upload = |seed: u64| {
        let body = data(10_000, seed);
        let v = d.upload("", "before", &body).json();
        let id = v["id"].as_str().unwrap().to_string();
        expected.insert(id.clone(), reference("md5", &body));
        id
    };
    let done: Vec<String> = (0..5).map(&mut upload).collect();
    for id in &done {
        assert_eq!(d.wait_final(id)["status"], "SUCCESS");
    }
    let pending: Vec<String> = (5..10).map(&mut upload).collect();

    fill(&data_dir);
    let (status, ready) = d.get_json("/ready");
    assert_eq!(status, 503, "{ready}");
    assert!(
        ready["error"].as_str().unwrap().contains("--min-free-disk"),
        "{ready}"
    );
    // The pending jobs come due: their commit or their log line meets the
    // full disk (which one depends on the database's free pages).
    wait_until(
        "no write failed on the full disk",
        Duration::from_secs(10),
        || {
            let e = d.stderr();
            e.contains("batched commit failed") || e.contains("results log write failed")
        },
    );
    // Storing a kept upload fails: 507 with a reason, quickly.
    let started = Instant::now();
    let body = data(300_000, 11);
    let (ct, mp) = multipart(&[Part::file("file", "big", &body)]);
    let r = try_request(
        d.addr,
        "POST",
        "/uploadfile/?wait=1",
        &[("Content-Type", &ct)],
        &mp,
        Duration::from_secs(20),
    )
    .expect("an answer, not a hang");
    assert_json_error(&r, 507, "disk full");
    assert_eq!(r.json()["success"], false);
    assert!(started.elapsed() < Duration::from_secs(10));
    // An empty upload needs no upload space, so it reaches the database:
    // recorded (and ends later) or 507.
    let mut full_ids = Vec::new();
    for _ in 0..10 {
        let r = try_request(
            d.addr,
            "PUT",
            "/files/empty",
            &[],
            b"",
            Duration::from_secs(20),
        )
        .expect("an answer, not a hang");
        match r.status {
            200 => full_ids.push(r.json()["id"].as_str().unwrap().to_string()),
            _ => assert_json_error(&r, 507, "disk full"),
        }
    }
    let e = d.stderr();
    eprintln!(
        "while full: {} of 10 empty uploads recorded; a commit failed: {}; a log write failed: {}",
        full_ids.len(),
        e.contains("batched commit failed"),
        e.contains("results log write failed")
    );
    // Jobs recorded before still answer.
    for id in &done {
        let (_, v) = d.get_json(&format!("/gethash/{id}"));
        assert_eq!(v["hash"], expected[id].as_str());
    }

    std::fs::remove_file(data_dir.join("filler")).unwrap();
    assert_eq!(d.get("/ready").status, 200);
    // Uploads work again, and every job recorded while full ends.
    let body = data(300_000, 12);
    let v = d.upload("?wait=1", "after", &body).json();
    assert_eq!(v["hash"], reference("md5", &body), "{v}");
    expected.insert(v["id"].as_str().unwrap().into(), reference("md5", &body));
    for id in &full_ids {
        expected.insert(id.clone(), reference("md5", b""));
    }
    for (id, hash) in &expected {
        let v = d.wait_final(id);
        assert_eq!(v["status"], "SUCCESS", "{v}");
        assert_eq!(&v["hash"], hash);
    }
    assert!(pending.iter().all(|id| expected.contains_key(id)));
    d.wait_for_stats("jobs left PENDING", |s| s["jobs"]["PENDING"] == 0);
    let kept = std::fs::read_dir(data_dir.join("uploads")).unwrap().count();
    assert_eq!(kept, expected.len(), "kept uploads: one per recorded job");
    assert!(d.terminate().success());
    // Every recorded job is in the log once, in whole lines.
    let mut logged: HashMap<String, String> = HashMap::new();
    for l in results_log(dir.path()) {
        let id = l["id"].as_str().unwrap().to_string();
        let hash = l["hash"].as_str().unwrap().to_string();
        assert!(logged.insert(id, hash).is_none(), "logged twice: {l}");
    }
    assert_eq!(logged, expected);
}

#[test]
fn a_full_results_log_disk_delays_lines_without_losing_or_tearing_them() {
    let dir = TempDir::new("rel-logfull");
    let log_dir = dir.path().join("log");
    let Some(_mount) = Tmpfs::mount(&log_dir, "size=64k") else {
        return;
    };
    let log = log_dir.join("results.log");
    let d = Daemon::builder(dir.path())
        .arg("--results-log")
        .arg(log.to_str().unwrap())
        .start();
    let first = d.upload("?wait=1", "first", b"first").json();
    wait_until("first line written", Duration::from_secs(10), || {
        std::fs::metadata(&log).is_ok_and(|m| m.len() > 0)
    });
    fill(&log_dir);
    // Uploads and lookups go on; the lines wait (past the few that fit in
    // the log's last page).
    let mut ids = vec![first["id"].as_str().unwrap().to_string()];
    for i in 0..60u8 {
        let v = d.upload("?wait=1", "full", &[i; 100]).json();
        assert_eq!(v["status"], "SUCCESS", "{v}");
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    wait_until("no log write failed", Duration::from_secs(10), || {
        d.stderr().contains("results log write failed")
    });
    std::fs::remove_file(log_dir.join("filler")).unwrap();
    wait_until("delayed lines not written", Duration::from_secs(10), || {
        d.stderr().contains("delayed lines written")
    });
    assert!(d.terminate().success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.ends_with('\n'), "torn last line");
    let logged: Vec<String> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a whole JSON line");
            v["id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(logged, ids, "every line once, in order");
}

/// Uploads from `threads` clients until told to stop; returns each id a
/// client was answered, with the digest of what it sent.
fn upload_until_stopped(
    addr: std::net::SocketAddr,
    threads: u64,
    round: u64,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<Vec<(String, String)>>> {
    (0..threads)
        .map(|t| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let seed = round << 40 | t << 20 | i;
                    let body = data(1 + (seed as usize * 7919) % 200_000, seed);
                    let (ct, mp) = multipart(&[Part::file("file", "c.bin", &body)]);
                    let r = try_request(
                        addr,
                        "POST",
                        "/uploadfile/",
                        &[("Content-Type", &ct)],
                        &mp,
                        Duration::from_secs(10),
                    );
                    match r {
                        Ok(r) if r.status == 200 => got.push((
                            r.json()["id"].as_str().unwrap().to_string(),
                            reference("md5", &body),
                        )),
                        Ok(r) => panic!("upload answered {}: {}", r.status, r.text()),
                        Err(_) => break, // the daemon is gone
                    }
                }
                got
            })
        })
        .collect()
}

#[test]
fn kill_9_under_concurrent_uploads_loses_no_answered_job() {
    let dir = TempDir::new("rel-crash");
    let mut expected: HashMap<String, String> = HashMap::new();
    for round in 0..2u64 {
        let d = Daemon::builder(dir.path())
            .arg("--keep-uploads")
            .arg("--no-socket")
            .start();
        let stop = Arc::new(AtomicBool::new(false));
        let base = d.get_json("/stats").1["jobs"]["total"].as_u64().unwrap();
        let clients = upload_until_stopped(d.addr, 6, round, &stop);
        // Kill once a good number of uploads were answered in this round.
        wait_until("uploads were not answered", Duration::from_secs(20), || {
            d.get_json("/stats").1["jobs"]["total"].as_u64().unwrap() >= base + 60
        });
        d.kill9();
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            expected.extend(c.join().unwrap());
        }
    }
    let d = Daemon::builder(dir.path()).arg("--keep-uploads").start();
    let mut failures = 0;
    for (id, hash) in &expected {
        let v = d.wait_final(id);
        match v["status"].as_str() {
            Some("SUCCESS") => assert_eq!(&v["hash"], hash, "{v}"),
            Some("FAILURE") => {
                failures += 1;
                assert!(v["error"].as_str().unwrap().contains("interrupted"), "{v}");
            }
            _ => panic!("{v}"),
        }
    }
    eprintln!(
        "{} answered uploads over 2 kills: {} re-hashed or done, {failures} failed",
        expected.len(),
        expected.len() - failures
    );
    d.wait_for_stats("jobs left PENDING", |s| s["jobs"]["PENDING"] == 0);
    let finished = d.get_json("/stats").1["jobs"]["total"].as_i64().unwrap();
    assert!(d.terminate().success());
    // The log is whole lines, every line a job the store knows.
    let lines = results_log(dir.path());
    if !testing_postgres() {
        let db = rusqlite::Connection::open(dir.path().join("data/jobs.db")).unwrap();
        let check: String = db
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
    }
    // Every line is a job the store knows, with its status, and every
    // finished job has its line once: the lines a kill kept out are
    // appended at the next start.
    let d = Daemon::builder(dir.path()).arg("--no-socket").start();
    let mut logged = HashMap::new();
    for l in &lines {
        let id = l["id"].as_str().unwrap().to_string();
        let (_, v) = d.get_json(&format!("/gethash/{id}"));
        assert_eq!(l["status"], v["status"], "{l} {v}");
        assert!(logged.insert(id, ()).is_none(), "logged twice: {l}");
    }
    assert_eq!(
        logged.len() as i64,
        finished,
        "finished jobs missing from the log"
    );
}

#[test]
fn a_database_locked_by_another_process_stops_start_up_with_a_clear_error() {
    let dir = TempDir::new("rel-dblock");
    let data = dir.path().join("data");
    // Create the database, then let another process hold its write lock.
    let d = Daemon::start(dir.path());
    assert!(d.terminate().success());
    let db = data.join("jobs.db");
    let mut holder = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys, time\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
             c.execute('BEGIN EXCLUSIVE')\n\
             print('locked', flush=True)\n\
             time.sleep(60)\n",
        )
        .arg(&db)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "locked");
    let out = std::process::Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--no-socket", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let _ = holder.kill();
    let _ = holder.wait();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot open the job database") && err.contains("locked"),
        "{err}"
    );
    // Once the other process lets go, the daemon starts on the same data.
    let d = Daemon::start(dir.path());
    still_serving(&d);
}
