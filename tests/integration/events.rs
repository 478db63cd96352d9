//! Live views: `GET /jobs/ID/events` (Server-Sent Events) and
//! `GET /uploads`, against the real binary.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::util::*;

/// One event of a stream, and when it arrived.
#[derive(Debug)]
struct Event {
    /// The `id:` field, a number that grows by one per event.
    id: Option<u64>,
    name: String,
    data: serde_json::Value,
    at: Duration,
}

/// An open event stream: the head read, events read one by one.
struct EventStream {
    status: u16,
    head: String,
    reader: BufReader<TcpStream>,
    opened: Instant,
}

/// Opens `GET path` as HTTP/1.0, so the stream's end is the connection's
/// end (no chunked framing to undo).
fn open_events(addr: std::net::SocketAddr, path: &str) -> EventStream {
    open_events_after(addr, path, None)
}

/// Opens `GET path` as an `EventSource` reconnects: with `Last-Event-ID`.
fn open_events_after(addr: std::net::SocketAddr, path: &str, last: Option<u64>) -> EventStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let last = last.map_or(String::new(), |n| format!("Last-Event-ID: {n}\r\n"));
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{last}\r\n").unwrap();
    let opened = Instant::now();
    let mut reader = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line.trim_end().is_empty() {
            break;
        }
        head.push_str(&line.to_ascii_lowercase());
    }
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    EventStream {
        status,
        head,
        reader,
        opened,
    }
}

impl EventStream {
    /// The next event (comments skipped); `None` at the stream's end.
    fn next(&mut self) -> Option<Event> {
        let (mut id, mut name, mut data) = (None, String::new(), String::new());
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).unwrap() == 0 {
                return None;
            }
            let line = line.trim_end_matches('\n');
            if line.is_empty() {
                if data.is_empty() {
                    continue;
                }
                return Some(Event {
                    id,
                    name,
                    data: serde_json::from_str(&data).unwrap(),
                    at: self.opened.elapsed(),
                });
            }
            if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.parse().unwrap());
            } else if let Some(v) = line.strip_prefix("event: ") {
                name = v.to_string();
            } else if let Some(v) = line.strip_prefix("data: ") {
                data.push_str(v);
            }
        }
    }

    fn rest(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.next()).collect()
    }

    fn body(mut self) -> String {
        let mut s = String::new();
        self.reader.read_to_string(&mut s).unwrap();
        s
    }
}

#[test]
fn events_give_the_state_progress_and_the_final_state_then_end() {
    let dir = TempDir::new("events");
    let d = Daemon::builder(dir.path())
        .arg("--artificial-delay")
        .arg("1")
        .start();
    let data = data(3 << 20, 15);
    let r = request(d.addr, "PUT", "/files/big.bin", &[], &data);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let mut s = open_events(d.addr, &format!("/jobs/{id}/events"));
    assert_eq!(s.status, 200);
    assert!(
        s.head.contains("content-type: text/event-stream"),
        "{}",
        s.head
    );
    assert!(s.head.contains("cache-control: no-store"), "{}", s.head);
    let events = s.rest();
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names.first(), Some(&"state"), "{events:?}");
    assert_eq!(names.last(), Some(&"state"), "{events:?}");
    let (first, last) = (&events[0], &events[events.len() - 1]);
    assert_eq!(first.data["status"], "PENDING");
    assert_eq!(first.data["id"], id.as_str());
    assert!(first.at < Duration::from_millis(500), "{first:?}");
    // Held for the delay: every byte was hashed, and the stream says so.
    let progress: Vec<&Event> = events.iter().filter(|e| e.name == "progress").collect();
    assert!(!progress.is_empty(), "{events:?}");
    assert_eq!(progress.last().unwrap().data["bytes"], data.len() as u64);
    assert_eq!(last.data["status"], "SUCCESS");
    assert_eq!(last.data["hash"], reference("md5", &data));
    // The end came with the job's, not at a timeout.
    assert!(last.at < Duration::from_secs(5), "{last:?}");
    assert!(
        names[1..names.len() - 1].iter().all(|n| *n == "progress"),
        "{events:?}"
    );
    // Numbered 1, 2, 3, …: PENDING, progress, the final state, in order.
    let ids: Vec<Option<u64>> = events.iter().map(|e| e.id).collect();
    let want: Vec<Option<u64>> = (1..=events.len() as u64).map(Some).collect();
    assert_eq!(ids, want, "{events:?}");

    // A finished job: its state, and the end at once.
    let mut s = open_events(d.addr, &format!("/jobs/{id}/events/"));
    let events = s.rest();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].data["status"], "SUCCESS");
    assert_eq!(events[0].id, Some(1));

    // No such job: a JSON 404, no stream.
    let r = d.get("/jobs/0123456789abcdef0123456789abcdef/events");
    assert_json_error(&r, 404, "no job with id");
    let r = d.get("/jobs/x");
    assert_eq!(r.status, 404);
}

/// An `EventSource` cut off mid-job reconnects with `Last-Event-ID`: the
/// ids go on from it, the PENDING state it has seen is not sent again, and
/// once the job has ended the final state comes at once, then the end.
#[test]
fn a_reconnect_with_last_event_id_never_loses_the_final_state() {
    let dir = TempDir::new("events-reconnect");
    let d = Daemon::builder(dir.path())
        .arg("--artificial-delay")
        .arg("3")
        .start();
    let id = d.upload("", "a.txt", b"abc").json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/jobs/{id}/events");
    let mut first = open_events(d.addr, &path);
    let pending = first.next().unwrap();
    assert_eq!((pending.id, pending.name.as_str()), (Some(1), "state"));
    assert_eq!(pending.data["status"], "PENDING");
    drop(first);

    // Mid-job: progress (the delayed job is wholly hashed), numbered on;
    // on a machine slow enough for the delay to pass, the final state.
    let mut again = open_events_after(d.addr, &path, Some(1));
    assert_eq!(again.status, 200);
    let next = again.next().unwrap();
    assert_eq!(next.id, Some(2), "{next:?}");
    match next.name.as_str() {
        "progress" => assert_eq!(next.data["bytes"], 3),
        _ => assert_eq!(next.data["status"], "SUCCESS", "{next:?}"),
    }
    drop(again);

    // After the job ended: the final state at once, and the end.
    let (_, done) = d.get_json(&format!("/gethash/{id}?wait=30"));
    assert_eq!(done["status"], "SUCCESS");
    let mut late = open_events_after(d.addr, &path, Some(7));
    let events = late.rest();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!((events[0].id, events[0].name.as_str()), (Some(8), "state"));
    assert_eq!(events[0].data["status"], "SUCCESS");
    assert_eq!(events[0].data["hash"], reference("md5", b"abc"));

    // A Last-Event-ID that is not ours is a first connection.
    let mut s = TcpStream::connect(d.addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: x\r\nLast-Event-ID: abc\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.contains("\r\n\r\nid: 1\nevent: state\n"), "{text}");
}

#[test]
fn event_streams_are_bounded_in_number_and_duration() {
    let dir = TempDir::new("events-limits");
    let d = Daemon::builder(dir.path())
        .arg("--artificial-delay")
        .arg("30")
        .arg("--max-event-streams")
        .arg("1")
        .arg("--event-stream-secs")
        .arg("1")
        .start();
    let id = d.upload("", "a.txt", b"abc").json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/jobs/{id}/events");
    let mut first = open_events(d.addr, &path);
    assert_eq!(first.status, 200);
    assert_eq!(first.next().unwrap().data["status"], "PENDING");
    // The one stream is taken.
    let r = d.get(&path);
    assert_json_error(&r, 503, "1 event streams open");
    assert!(r.header("retry-after").is_some());
    // The first ends after its second, without a final state...
    let rest = first.rest();
    assert!(rest.iter().all(|e| e.name == "progress"), "{rest:?}");
    let ended = first.opened.elapsed();
    assert!(
        ended >= Duration::from_millis(900) && ended < Duration::from_secs(10),
        "{ended:?}"
    );
    // ...and gives its place back: a reconnect gets the state again.
    wait_until("a stream slot is free", Duration::from_secs(5), || {
        d.get(&path).status != 503
    });
    let mut again = open_events(d.addr, &path);
    assert_eq!(again.status, 200);
    assert_eq!(again.next().unwrap().data["status"], "PENDING");
    drop(again);
    assert!(first.body().is_empty());
}

#[test]
fn uploads_in_progress_are_listed_and_counted() {
    let dir = TempDir::new("uploads-list");
    let d = Daemon::start(dir.path());
    let (_, v) = d.get_json("/uploads");
    assert_eq!(v["uploads"], serde_json::json!([]));
    assert_eq!(d.get_json("/stats").1["uploads_in_progress"], 0);

    let total = 8usize << 20;
    let data = data(total, 16);
    let mut s = TcpStream::connect(d.addr).unwrap();
    let local = s.local_addr().unwrap().to_string();
    write!(
        s,
        "PUT /files/slow.bin?algo=sha256 HTTP/1.1\r\nHost: {}\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n",
        d.addr
    )
    .unwrap();
    s.write_all(&data[..1 << 20]).unwrap();
    let mut seen = serde_json::Value::Null;
    wait_until("the upload is listed", Duration::from_secs(10), || {
        seen = d.get_json("/uploads").1["uploads"][0].clone();
        seen["received"].as_u64() == Some(1 << 20)
    });
    assert_eq!(seen["declared_length"], total as u64);
    assert_eq!(seen["client"], local.as_str());
    assert_eq!(seen["algorithm"], "sha256");
    assert!(seen["bytes_per_sec"].as_f64().unwrap() > 0.0, "{seen}");
    assert!(
        seen["started_at"].as_str().unwrap().ends_with('Z'),
        "{seen}"
    );
    assert_eq!(d.get_json("/stats").1["uploads_in_progress"], 1);

    s.write_all(&data[1 << 20..]).unwrap();
    let r = read_response(&mut s);
    assert_eq!(r.json()["size"], total as u64);
    wait_until(
        "the upload has left the list",
        Duration::from_secs(10),
        || d.get_json("/uploads").1["uploads"] == serde_json::json!([]),
    );
    assert_eq!(d.get_json("/stats").1["uploads_in_progress"], 0);
}

#[test]
fn an_open_event_stream_does_not_hold_up_shutdown() {
    let dir = TempDir::new("events-shutdown");
    let mut d = Daemon::builder(dir.path())
        .arg("--artificial-delay")
        .arg("60")
        .start();
    let id = d.upload("", "a.txt", b"abc").json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut s = open_events(d.addr, &format!("/jobs/{id}/events"));
    assert_eq!(s.next().unwrap().data["status"], "PENDING");
    let t = Instant::now();
    signal(d.pid(), "TERM");
    // The stream ends when the server stops accepting, not after the
    // 30 s grace period.
    assert!(s.rest().iter().all(|e| e.name == "progress"));
    let status = d.wait_exit(Duration::from_secs(20)).expect("hashd exited");
    assert!(status.success(), "{status:?}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}

/// A stream on one node ends with the job's end on another: woken by the
/// commit's NOTIFY, as `?wait` is.
#[test]
fn an_event_stream_on_another_node_gets_the_final_state() {
    let Some(server) = postgres_or_skip("events across nodes") else {
        return;
    };
    let url = postgres_database(&server, "events_nodes");
    let (da, db) = (TempDir::new("events-a"), TempDir::new("events-b"));
    let start = |dir: &TempDir, extra: &[&str]| {
        let mut b = Daemon::builder(dir.path())
            .arg("--store")
            .arg(&url)
            .arg("--no-socket");
        for a in extra {
            b = b.arg(a);
        }
        b.start()
    };
    let a = start(&da, &["--artificial-delay", "2"]);
    let b = start(&db, &[]);
    let id = a.upload("", "a.txt", b"abc").json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut s = open_events(b.addr, &format!("/jobs/{id}/events"));
    assert_eq!(s.status, 200);
    let events = s.rest();
    assert_eq!(events[0].data["status"], "PENDING", "{events:?}");
    let last = events.last().unwrap();
    assert_eq!(last.name, "state");
    assert_eq!(last.data["status"], "SUCCESS");
    assert_eq!(last.data["hash"], reference("md5", b"abc"));
    assert!(last.at < Duration::from_secs(10), "{last:?}");
}
