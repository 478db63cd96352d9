//! What survives restarts, crashes and load: the store, the results log.

use std::collections::HashMap;

use crate::util::*;

#[test]
fn results_survive_a_clean_restart() {
    let dir = TempDir::new("restart");
    let d = Daemon::start(dir.path());
    let v = d
        .upload("?wait=true&algo=sha1", "keep.txt", b"persist me")
        .json();
    let id = v["id"].as_str().unwrap().to_string();
    let before = d.get_json(&format!("/gethash/{id}")).1;
    assert!(d.terminate().success(), "SIGTERM exits 0");
    let d = Daemon::start(dir.path());
    assert_eq!(d.get_json(&format!("/gethash/{id}")).1, before);
    assert_eq!(before["hash"], reference("sha1", b"persist me"));
}

#[test]
fn kill_9_while_pending_leaves_nothing_pending_after_restart() {
    let dir = TempDir::new("kill9");
    let d = Daemon::builder(dir.path())
        .arg("--artificial-delay")
        .arg("60")
        .start();
    let mut ids = Vec::new();
    for i in 0..10u8 {
        let v = d.upload("", "p.bin", &[i; 100]).json();
        assert_eq!(v["status"], "PENDING");
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    d.kill9();
    let d = Daemon::start(dir.path());
    for id in &ids {
        let v = d.wait_final(id);
        assert_eq!(v["status"], "FAILURE", "{v}");
        assert!(v["error"].as_str().unwrap().contains("interrupted"));
    }
    assert_eq!(d.get_json("/stats").1["jobs"]["PENDING"], 0);
    assert!(
        d.stderr().contains("jobs left PENDING by the previous run"),
        "{}",
        d.stderr()
    );
}

#[test]
fn kill_9_with_kept_uploads_rehashes_them_at_start() {
    let dir = TempDir::new("rehash");
    let d = Daemon::builder(dir.path())
        .arg("--keep-uploads")
        .arg("--artificial-delay")
        .arg("60")
        .start();
    let body = data(3 << 20, 9);
    let v = d.upload("?algo=sha256", "big.bin", &body).json();
    assert_eq!(v["status"], "PENDING");
    let id = v["id"].as_str().unwrap().to_string();
    d.kill9();
    let d = Daemon::builder(dir.path()).arg("--keep-uploads").start();
    let v = d.wait_final(&id);
    assert_eq!(v["status"], "SUCCESS");
    assert_eq!(v["hash"], reference("sha256", &body));
}

#[test]
fn sigterm_finishes_delayed_jobs_and_flushes_the_log() {
    let dir = TempDir::new("term");
    let d = Daemon::builder(dir.path())
        .arg("--artificial-delay")
        .arg("60")
        .start();
    let v = d.upload("", "t.txt", b"term").json();
    let id = v["id"].as_str().unwrap().to_string();
    assert!(d.terminate().success());
    let lines = results_log(dir.path());
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["id"], id.as_str());
    assert_eq!(lines[0]["hash"], reference("md5", b"term"));
    let d = Daemon::start(dir.path());
    assert_eq!(d.get_json(&format!("/gethash/{id}")).1["status"], "SUCCESS");
}

#[test]
fn two_hundred_concurrent_uploads_all_correct_and_logged_once() {
    let dir = TempDir::new("conc");
    let d = Daemon::start(dir.path());
    let addr = d.addr;
    let handles: Vec<_> = (0..200u64)
        .map(|i| {
            std::thread::spawn(move || {
                let body = data(1000 + (i as usize * 7919) % 300_000, i);
                let algo = ["md5", "sha1", "sha256", "sha512"][i as usize % 4];
                let (ct, mp) = multipart(&[Part::file("file", &format!("f{i}"), &body)]);
                let r = request(
                    addr,
                    "POST",
                    &format!("/uploadfile/?algo={algo}"),
                    &[("Content-Type", &ct)],
                    &mp,
                );
                assert_eq!(r.status, 200, "{}", r.text());
                (
                    r.json()["id"].as_str().unwrap().to_string(),
                    reference(algo, &body),
                )
            })
        })
        .collect();
    let expected: HashMap<String, String> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(expected.len(), 200, "ids are unique");
    for (id, want) in &expected {
        assert_eq!(&d.wait_final(id)["hash"], want);
    }
    assert!(d.terminate().success());
    let lines = results_log(dir.path());
    assert_eq!(lines.len(), 200);
    let mut seen = HashMap::new();
    for l in &lines {
        let id = l["id"].as_str().unwrap();
        assert_eq!(
            Some(&l["hash"].as_str().unwrap().to_string()),
            expected.get(id)
        );
        *seen.entry(id.to_string()).or_insert(0) += 1;
    }
    assert!(
        seen.values().all(|&n| n == 1),
        "every job logged exactly once"
    );
}

#[test]
fn a_1_gib_upload_keeps_peak_rss_under_64_mib() {
    use std::io::{Read, Write};
    let dir = TempDir::new("rss");
    let d = Daemon::start(dir.path());
    const LEN: usize = 1 << 30;
    let mut s = std::net::TcpStream::connect(d.addr).unwrap();
    write!(s, "PUT /files/huge.bin?wait=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {LEN}\r\n\r\n").unwrap();
    let block = data(1 << 20, 5);
    let mut md5 = <md5::Md5 as digest::Digest>::new();
    for i in 0..(LEN >> 20) {
        // Vary each block so a cache of repeated data cannot pass the test.
        let mut b = block.clone();
        b[..8].copy_from_slice(&(i as u64).to_le_bytes());
        digest::Digest::update(&mut md5, &b);
        s.write_all(&b).unwrap();
    }
    let r = read_response(&mut s);
    let want: String = digest::Digest::finalize(md5)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(r.json()["hash"], want);
    let peak = d.peak_rss_kib();
    eprintln!("peak RSS after a 1 GiB upload: {peak} KiB");
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB");
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
}
