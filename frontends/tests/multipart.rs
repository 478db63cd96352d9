//! Multipart uploads through the real handler, in process: every fixture
//! sent whole, one byte per read, and split in two at every offset must get
//! the same answer, and a SUCCESS only ever for exactly the file's bytes
//! (issue 10). The same fixtures run against the real binary in
//! tests/integration/conformance.rs.

mod common;

use common::{expect_hash, fixtures, request, serve, Expect};

#[test]
fn every_fixture_answers_the_same_whatever_the_split() {
    for f in fixtures() {
        let req = request(&f.content_type, &f.body);
        let whole = serve(vec![req.clone()]);
        check(&f.name, "whole", &f.expect, &whole);

        let bytes: Vec<Vec<u8>> = req.iter().map(|b| vec![*b]).collect();
        check(&f.name, "one byte per read", &f.expect, &serve(bytes));

        // Every split point inside the body (the head is parsed whole); in
        // large bodies every few hundredth, so the test stays quick.
        let head_len = req.len() - f.body.len();
        let step = (f.body.len() / 512).max(1);
        for at in (head_len..req.len()).step_by(step) {
            let pieces = vec![req[..at].to_vec(), req[at..].to_vec()];
            check(
                &f.name,
                &format!("split at {at}"),
                &f.expect,
                &serve(pieces),
            );
        }
    }
}

fn check(name: &str, how: &str, expect: &Expect, got: &common::Answer) {
    match expect {
        Expect::File {
            bytes,
            name: file_name,
        } => {
            expect_hash(name, how, got, bytes);
            assert_eq!(
                got.json["name"].as_str(),
                file_name.as_deref(),
                "{name} ({how}): file name"
            );
            assert_eq!(got.jobs, 1, "{name} ({how}): one job");
        }
        Expect::Error { status, needle } => {
            assert_eq!(got.status, *status, "{name} ({how}): {}", got.json);
            let reason = got.json["error"].as_str().unwrap_or_default();
            assert!(
                reason.contains(needle),
                "{name} ({how}): {reason:?} lacks {needle:?}"
            );
            assert_eq!(got.json["success"], false, "{name} ({how})");
            assert_eq!(got.jobs, 0, "{name} ({how}): no job recorded");
        }
    }
}

/// A part header block that never ends is refused once it passes 64 KiB,
/// not buffered: the answer comes before the client has sent much more.
#[test]
fn an_endless_part_header_is_refused_early() {
    let boundary = "XyZ";
    let mut body =
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"\r\nX-Pad: ")
            .into_bytes();
    body.resize(64 << 20, b'a');
    let req = request(&format!("multipart/form-data; boundary={boundary}"), &body);
    let pieces: Vec<Vec<u8>> = req.chunks(16 << 10).map(<[u8]>::to_vec).collect();
    let (answer, read_before_answer) = common::serve_counting(pieces);
    assert_eq!(answer.status, 400, "{}", answer.json);
    assert!(
        answer.json["error"]
            .as_str()
            .unwrap()
            .contains("header block"),
        "{}",
        answer.json
    );
    // 64 KiB of headers, the request head, and what hyper reads ahead (its
    // 256 KiB buffer) at most.
    assert!(
        read_before_answer < (64 << 10) + (512 << 10),
        "read {read_before_answer} bytes before answering"
    );
}
