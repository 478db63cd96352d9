//! Running under systemd (`deploy/systemd/hashd.service`, `Type=notify`):
//! readiness and stopping reach `NOTIFY_SOCKET`.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use crate::util::*;

/// The next notification, as text.
fn next(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("no notification within 10 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn notify_socket_gets_ready_once_listening_and_stopping_on_sigterm() {
    let dir = TempDir::new("notify");
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let d = Daemon::builder(dir.path())
        .env("NOTIFY_SOCKET", path.to_str().unwrap())
        .start();
    // `start` returned once hashd printed `hashd listening`; READY=1 comes
    // after that, and by then requests are answered.
    let ready = next(&socket);
    assert_eq!(ready.trim(), "READY=1", "{ready:?}");
    assert_eq!(d.get("/health").status, 200);
    assert!(d.terminate().success());
    let stopping = next(&socket);
    assert_eq!(stopping.trim(), "STOPPING=1", "{stopping:?}");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(
        socket.recv(&mut [0u8; 512]).is_err(),
        "more notifications than READY and STOPPING"
    );
}

#[test]
fn without_notify_socket_nothing_is_sent_and_nothing_fails() {
    let dir = TempDir::new("notify-none");
    let d = Daemon::builder(dir.path()).env("NOTIFY_SOCKET", "").start();
    assert_eq!(d.get("/health").status, 200);
    let stderr = d.stderr();
    assert!(d.terminate().success());
    assert!(!stderr.contains("cannot notify systemd"), "{stderr}");
}
