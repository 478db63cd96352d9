//! HTTP conformance of the real handler, in process (issue 10, part 3):
//! clients that half-close, HEAD and OPTIONS, `Allow` on every 405, and
//! transfer and content codings hashd must not hash through.

mod common;

use common::{serve_io, serve_with, Answer};
use frontends::testing::PieceIo;

fn req(method: &str, path: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    [
        format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{headers}\r\n")
            .into_bytes(),
        body.to_vec(),
    ]
    .concat()
}

fn send(request: Vec<u8>) -> Answer {
    serve_with(vec![request], false).0
}

fn header<'a>(a: &'a Answer, name: &str) -> Option<&'a str> {
    a.head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn md5_hex(data: &[u8]) -> String {
    hashcore::to_hex(&hashcore::Algorithm::Md5.digest(data))
}

/// A client that sends its request and then shuts down its sending side is
/// answered, whether the server sees the end of stream only after it parsed
/// the request (a pause between) or together with the request's last bytes
/// (one read each, no pause: the end comes with the next read).
#[test]
fn a_client_that_half_closes_is_answered() {
    let body = b"half-closed upload".to_vec();
    let form = [
        &b"--B\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n"[..],
        &body,
        b"\r\n--B--\r\n",
    ]
    .concat();
    let cases = [
        (
            "GET /health",
            b"GET /health HTTP/1.0\r\n\r\n".to_vec(),
            None,
        ),
        (
            "PUT /files",
            format!(
                "PUT /files/h?wait=1 HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes()
            .into_iter()
            .chain(body.iter().copied())
            .collect(),
            Some(&body),
        ),
        (
            "POST /uploadfile",
            format!(
                "POST /uploadfile/?wait=1 HTTP/1.1\r\nHost: t\r\n\
                 Content-Type: multipart/form-data; boundary=B\r\nContent-Length: {}\r\n\r\n",
                form.len()
            )
            .into_bytes()
            .into_iter()
            .chain(form.iter().copied())
            .collect(),
            Some(&body),
        ),
    ];
    for (what, request, file) in cases {
        for split in [None, Some(request.len() / 2), Some(request.len() - 1)] {
            let pieces = match split {
                None => vec![request.clone()],
                Some(at) => vec![request[..at].to_vec(), request[at..].to_vec()],
            };
            for pause in [false, true] {
                let io = PieceIo::new(pieces.clone(), true);
                let io = if pause { io.pause_before_eof() } else { io };
                let (a, _) = serve_io(io);
                let how = format!("{what}, split {split:?}, pause before EOF {pause}");
                assert_eq!(a.status, 200, "{how}: {}", a.json);
                if let Some(file) = file {
                    assert_eq!(a.json["hash"], md5_hex(file).as_str(), "{how}");
                }
            }
        }
    }
}

/// A concrete path for every route in the router's table, with and
/// without the trailing slash, so that a new route is covered here without
/// being listed by hand.
fn route_paths() -> Vec<String> {
    frontends::http::ROUTES
        .iter()
        .flat_map(|r| match (r.prefix, r.path) {
            (true, "/docs/") => vec!["/docs/swagger-ui.css".to_string()],
            (true, p) => vec![format!("{p}name.bin{}", r.suffix)],
            (false, "/") => vec!["/".to_string()],
            (false, p) => vec![p.to_string(), format!("{p}/")],
        })
        .collect()
}

/// Every path answers exactly the methods its `Allow` lists: others get a
/// 405 that carries `Allow` (RFC 9110 section 15.5.6), OPTIONS gets 200 with
/// it, and HEAD is answered wherever GET is, without a body.
#[test]
fn every_path_answers_the_methods_it_allows() {
    for path in route_paths() {
        let path = path.as_str();
        let options = send(req("OPTIONS", path, "", b""));
        assert_eq!(options.status, 200, "OPTIONS {path}");
        assert_eq!(
            header(&options, "content-length"),
            Some("0"),
            "OPTIONS {path}"
        );
        let allow = header(&options, "allow").unwrap_or_else(|| panic!("no Allow on {path}"));
        let allowed: Vec<&str> = allow.split(',').map(str::trim).collect();
        assert_eq!(
            allowed.contains(&"GET"),
            allowed.contains(&"HEAD"),
            "{path}: {allow}"
        );
        for method in ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            // Uploads get an empty body: a 4xx of their own, not a 405.
            let a = send(req(method, path, "Content-Length: 0\r\n", b""));
            if allowed.contains(&method) {
                assert_ne!(a.status, 405, "{method} {path} is allowed ({allow})");
            } else {
                assert_eq!(a.status, 405, "{method} {path}");
                assert_eq!(header(&a, "allow"), Some(allow), "{method} {path}");
            }
        }
        if allowed.contains(&"GET") {
            let get = send(req("GET", path, "", b""));
            let head = send(req("HEAD", path, "", b""));
            assert_eq!(head.status, get.status, "HEAD {path}");
            assert!(
                head.raw.ends_with(b"\r\n\r\n"),
                "HEAD {path} has a body: {:?}",
                String::from_utf8_lossy(&head.raw)
            );
            assert_eq!(
                header(&head, "content-length"),
                header(&get, "content-length"),
                "HEAD {path}"
            );
        }
    }
}

/// Bytes hashd would have to decode before hashing are refused, never
/// hashed as sent: transfer codings other than chunked (501, RFC 9112
/// section 6.1), content codings (415 with Accept-Encoding, RFC 9110
/// section 15.5.16), a Content-Range (400, RFC 9110 section 14.5), and a
/// body with no framing at all (411).
#[test]
fn codings_and_partial_bodies_are_refused() {
    let chunked = b"3\r\nabc\r\n0\r\n\r\n";
    for te in ["gzip, chunked", "deflate,chunked", "identity, chunked"] {
        for (method, path, ct) in [
            ("PUT", "/files/x", ""),
            (
                "POST",
                "/uploadfile/",
                "Content-Type: multipart/form-data; boundary=B\r\n",
            ),
            ("GET", "/health", ""),
        ] {
            let a = send(req(
                method,
                path,
                &format!("{ct}Transfer-Encoding: {te}\r\n"),
                chunked,
            ));
            assert_eq!(a.status, 501, "{method} {path} with {te}: {}", a.json);
            assert!(
                a.json["error"]
                    .as_str()
                    .unwrap()
                    .contains("transfer coding"),
                "{}",
                a.json
            );
            assert_eq!(header(&a, "connection"), Some("close"));
            assert_eq!(a.jobs, 0);
        }
    }
    // Two header lines make one list (RFC 9110 section 5.3).
    let a = send(req(
        "PUT",
        "/files/x",
        "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
        chunked,
    ));
    assert_eq!(a.status, 501, "{}", a.json);

    // Plain chunked is fine.
    let a = send(req(
        "PUT",
        "/files/x?wait=1",
        "Transfer-Encoding: chunked\r\n",
        chunked,
    ));
    assert_eq!(a.json["hash"], md5_hex(b"abc").as_str(), "{}", a.json);

    for ce in ["gzip", "br", "identity, gzip"] {
        let a = send(req(
            "PUT",
            "/files/x",
            &format!("Content-Encoding: {ce}\r\nContent-Length: 3\r\n"),
            b"abc",
        ));
        assert_eq!(a.status, 415, "{ce}: {}", a.json);
        assert_eq!(header(&a, "accept-encoding"), Some("identity"));
        assert_eq!(a.jobs, 0);
    }
    let a = send(req(
        "PUT",
        "/files/x?wait=1",
        "Content-Encoding: identity\r\nContent-Length: 3\r\n",
        b"abc",
    ));
    assert_eq!(a.json["hash"], md5_hex(b"abc").as_str(), "{}", a.json);

    let a = send(req(
        "PUT",
        "/files/x",
        "Content-Range: bytes 0-2/10\r\nContent-Length: 3\r\n",
        b"abc",
    ));
    assert_eq!(a.status, 400, "{}", a.json);
    assert!(a.json["error"].as_str().unwrap().contains("Content-Range"));

    for (method, path) in [
        ("PUT", "/files/x"),
        ("POST", "/files"),
        ("POST", "/uploadfile/"),
    ] {
        let a = send(req(
            method,
            path,
            "Content-Type: multipart/form-data; boundary=B\r\n",
            b"",
        ));
        assert_eq!(a.status, 411, "{method} {path}: {}", a.json);
        assert_eq!(a.jobs, 0);
    }
}

/// RFC 9112 section 3.2 (Host), RFC 9110 section 9.1 (unknown methods) and
/// section 9.3.7 (`OPTIONS *`).
#[test]
fn host_headers_and_unknown_methods() {
    let bare = |text: &str| send(text.as_bytes().to_vec());
    for (what, request) in [
        (
            "no Host",
            "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n",
        ),
        (
            "two Hosts",
            "GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
        ),
        (
            "an invalid Host",
            "GET /health HTTP/1.1\r\nHost: a b/c\r\nConnection: close\r\n\r\n",
        ),
        (
            "a Host with userinfo",
            "GET /health HTTP/1.1\r\nHost: u@a\r\nConnection: close\r\n\r\n",
        ),
        (
            "two Hosts in HTTP/1.0",
            "GET /health HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
        ),
    ] {
        let a = bare(request);
        assert_eq!(a.status, 400, "{what}: {}", a.json);
        assert!(a.json["error"].as_str().unwrap().contains("Host"), "{what}");
    }
    for (what, request) in [
        ("HTTP/1.0 without Host", "GET /health HTTP/1.0\r\n\r\n"),
        (
            "an empty Host",
            "GET /health HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n",
        ),
        (
            "host and port",
            "GET /health HTTP/1.1\r\nHost: [::1]:8000\r\nConnection: close\r\n\r\n",
        ),
        (
            "absolute form",
            "GET http://x/health HTTP/1.1\r\nHost: y\r\nConnection: close\r\n\r\n",
        ),
    ] {
        assert_eq!(bare(request).status, 200, "{what}");
    }
    let a = send(req("FOO", "/health", "", b""));
    assert_eq!(a.status, 501, "{}", a.json);
    // QUERY (draft-ietf-httpbis-safe-method-w-body) is known: 405, not 501.
    let a = send(req("QUERY", "/health", "", b""));
    assert_eq!(a.status, 405, "{}", a.json);
    assert_eq!(header(&a, "allow"), Some("GET, HEAD, OPTIONS"));
    let a = send(req("OPTIONS", "*", "", b""));
    assert_eq!(a.status, 200);
    assert_eq!(header(&a, "allow"), Some("GET, HEAD, POST, PUT, OPTIONS"));
}

/// Parameters are read strictly: a flag that is neither true nor false, a
/// parameter given twice with different values, and a page cursor that is
/// no id are 400s, not silent guesses (issue 10's new-user trial).
#[test]
fn ambiguous_parameters_are_refused() {
    let upload = |query: &str| {
        send(req(
            "PUT",
            &format!("/files/x{query}"),
            "Content-Length: 3\r\n",
            b"abc",
        ))
    };
    for (query, needle) in [
        ("?wait=maybe", "`wait` must be true or false"),
        ("?algo=md5&algo=sha1", "given twice"),
        ("?algo=md5&algorithm=sha1", "given twice"),
    ] {
        let a = upload(query);
        assert_eq!(a.status, 400, "{query}: {}", a.json);
        assert_eq!(a.json["success"], false);
        assert!(
            a.json["error"].as_str().unwrap().contains(needle),
            "{}",
            a.json
        );
        assert_eq!(a.jobs, 0);
    }
    for query in [
        "?wait=0",
        "?wait=FALSE",
        "?wait",
        "?wait=yes",
        "?algo=md5&algo=md5",
    ] {
        assert_eq!(upload(query).status, 200, "{query}");
    }
    let a = send(req("GET", "/jobs?after=zz", "", b""));
    assert_eq!(a.status, 400, "{}", a.json);
    let a = send(req(
        "GET",
        "/jobs?after=0123456789abcdef0123456789abcdef",
        "",
        b"",
    ));
    assert_eq!(a.status, 200, "{}", a.json);
}
