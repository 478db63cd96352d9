//! Issue 11: one shutdown. A drain waits for open connections up to
//! `--shutdown-grace`, a second signal exits at once, and neither leaves a
//! job PENDING.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::util::*;

/// An upload whose client stalls mid-body, holding its connection open.
fn stalled_upload(d: &Daemon) -> TcpStream {
    let mut s = TcpStream::connect(d.addr).unwrap();
    s.write_all(b"PUT /files/stalled HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n")
        .unwrap();
    s.write_all(&[0u8; 1000]).unwrap();
    s
}

#[test]
fn a_second_signal_exits_at_once_and_the_grace_bounds_the_drain() {
    let dir = TempDir::new("shutdown");
    let mut d = Daemon::builder(dir.path())
        .arg("--shutdown-grace")
        .arg("60")
        .start();
    still_serving(&d);
    let _client = stalled_upload(&d);
    std::thread::sleep(Duration::from_millis(200));
    signal(d.pid(), "TERM");
    // Draining: the stalled upload holds it (for up to 60 s).
    assert!(d.wait_exit(Duration::from_millis(700)).is_none());
    let asked = Instant::now();
    signal(d.pid(), "INT");
    let status = d.wait_exit(Duration::from_secs(10)).expect("exited");
    assert_eq!(status.code(), Some(1), "{}", d.stderr());
    assert!(asked.elapsed() < Duration::from_secs(5));
    assert!(d.stderr().contains("second signal"), "{}", d.stderr());
    drop(d);

    // Restarted on the same data: nothing PENDING, nothing lost; and a
    // short grace ends a drain that a stalled client would hold.
    let mut d = Daemon::builder(dir.path())
        .arg("--shutdown-grace")
        .arg("1")
        .start();
    let (_, stats) = d.get_json("/stats");
    assert_eq!(stats["jobs"]["PENDING"], 0, "{stats}");
    assert_eq!(stats["jobs"]["SUCCESS"], 1, "{stats}");
    let _client = stalled_upload(&d);
    std::thread::sleep(Duration::from_millis(200));
    let asked = Instant::now();
    signal(d.pid(), "TERM");
    let status = d.wait_exit(Duration::from_secs(20)).expect("exited");
    assert!(status.success(), "{}", d.stderr());
    assert!(asked.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_waiting_lookup_is_answered_at_once_when_shutdown_begins() {
    let dir = TempDir::new("shutdown-poll");
    let d = Daemon::builder(dir.path())
        .arg("--artificial-delay")
        .arg("20")
        .arg("--no-socket")
        .start();
    let id = d.upload("", "a", b"abc").json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let addr = d.addr;
    let poll = std::thread::spawn(move || {
        request(addr, "GET", &format!("/gethash/{id}?wait=50"), &[], &[])
    });
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    signal(d.pid(), "TERM");
    let r = poll.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "PENDING");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "the long-poll held the shutdown for {:?}",
        t.elapsed()
    );
}
