//! Multipart bodies real clients send, and the faults issue 10 found, each
//! with the answer hashd must give. Shared by the in-process tests
//! (frontends/tests/multipart.rs) and the real-binary ones
//! (tests/integration/conformance.rs): plain data, no dependencies.

/// What a fixture must be answered with.
pub enum Expect {
    /// 200 SUCCESS with the digest of exactly these bytes, and this name.
    File {
        bytes: Vec<u8>,
        name: Option<String>,
    },
    /// This status, a reason containing `needle`, and no job recorded.
    Error { status: u16, needle: &'static str },
}

pub struct Fixture {
    pub name: String,
    pub content_type: String,
    pub body: Vec<u8>,
    pub expect: Expect,
}

/// A part: its header lines (without the final empty line) and its data.
fn part(boundary: &str, headers: &str, data: &[u8]) -> Vec<u8> {
    [
        format!("--{boundary}\r\n{headers}\r\n\r\n").into_bytes(),
        data.to_vec(),
        b"\r\n".to_vec(),
    ]
    .concat()
}

fn close(boundary: &str) -> Vec<u8> {
    format!("--{boundary}--\r\n").into_bytes()
}

fn file_part(boundary: &str, data: &[u8]) -> Vec<u8> {
    part(
        boundary,
        "Content-Disposition: form-data; name=\"file\"; filename=\"f.bin\"",
        data,
    )
}

fn ok(name: &str, boundary: &str, body: Vec<u8>, file: &[u8], file_name: Option<&str>) -> Fixture {
    Fixture {
        name: name.to_string(),
        content_type: format!("multipart/form-data; boundary={boundary}"),
        body,
        expect: Expect::File {
            bytes: file.to_vec(),
            name: file_name.map(str::to_string),
        },
    }
}

fn err(name: &str, boundary: &str, body: Vec<u8>, status: u16, needle: &'static str) -> Fixture {
    Fixture {
        name: name.to_string(),
        content_type: format!("multipart/form-data; boundary={boundary}"),
        body,
        expect: Expect::Error { status, needle },
    }
}

/// Every fixture. Small, so that a test can split each at every offset.
pub fn fixtures() -> Vec<Fixture> {
    let b = "XyZ";
    let mut all = Vec::new();

    // 1. Lines inside the file that begin like the delimiter but are not one
    // (RFC 2046 section 5.1.1: the boundary, optional padding, then CRLF or
    // `--`): all of the file is hashed, never a prefix.
    for (what, inner) in [
        ("letters after the boundary", &b"\r\n--XyZabc\r\n"[..]),
        ("one dash after the boundary", b"\r\n--XyZ-x"),
        ("padding then a letter", b"\r\n--XyZ \tz\r\n"),
        ("a lone CR after the boundary", b"\r\n--XyZ\r\r\n"),
        ("a bare LF after the boundary", b"\r\n--XyZ\nnext"),
        ("a longer boundary-like run", b"\r\n--XyZXyZ--\r\n"),
        ("two in a row", b"\r\n--XyZa\r\n--XyZb"),
        (
            "a close delimiter followed by text",
            b"\r\n--XyZ--notend\r\n",
        ),
        (
            "a close delimiter, padding, then text",
            b"\r\n--XyZ-- \tx\r\n",
        ),
        ("a close delimiter and a lone CR", b"\r\n--XyZ--\r\r\n"),
    ] {
        let file = [&b"head of the file"[..], inner, b"tail of the file"].concat();
        let body = [file_part(b, &file), close(b)].concat();
        all.push(ok(
            &format!("false delimiter: {what}"),
            b,
            body,
            &file,
            Some("f.bin"),
        ));
    }
    // A file that ends with such a line, right before the real delimiter.
    for (what, file) in [
        ("false delimiter at the end", &b"data\r\n--XyZ!"[..]),
        ("false close delimiter at the end", b"data\r\n--XyZ--x"),
    ] {
        let body = [file_part(b, file), close(b)].concat();
        all.push(ok(what, b, body, file, Some("f.bin")));
    }
    // The close delimiter may end the body without its CRLF.
    let file = b"no CRLF after the close delimiter".to_vec();
    let body = [file_part(b, &file), format!("--{b}--").into_bytes()].concat();
    all.push(ok(
        "close delimiter at the very end",
        b,
        body,
        &file,
        Some("f.bin"),
    ));

    // 2. Real delimiters with transport padding.
    let file = b"padded".to_vec();
    let body = [
        part(b, "Content-Disposition: form-data; name=\"note\"", b"x"),
        format!(
            "--{b} \t \r\nContent-Disposition: form-data; name=\"file\"; filename=\"p\"\r\n\r\n"
        )
        .into_bytes(),
        file.clone(),
        format!("\r\n--{b}--  \r\n").into_bytes(),
    ]
    .concat();
    all.push(ok("transport padding", b, body, &file, Some("p")));

    // 3. Two `file` parts: the last one counts, as in the original.
    let (first, last) = (b"the first file".to_vec(), b"the second file".to_vec());
    let body = [
        file_part(b, &first),
        part(
            b,
            "Content-Disposition: form-data; name=\"note\"",
            b"between",
        ),
        part(
            b,
            "Content-Disposition: form-data; name=\"file\"; filename=\"second\"",
            &last,
        ),
        close(b),
    ]
    .concat();
    all.push(ok(
        "two file parts: the last counts",
        b,
        body,
        &last,
        Some("second"),
    ));

    // 4. Content-Disposition parameters, as clients write them.
    let file = b"parameters".to_vec();
    for (what, disposition, file_name) in [
        (
            "upper-case names",
            "form-data; NAME=\"file\"; FILENAME=\"UP.txt\"",
            Some("UP.txt"),
        ),
        (
            "mixed-case type and names",
            "Form-Data; Name=file; FileName=m.txt",
            Some("m.txt"),
        ),
        (
            "filename* before name",
            "form-data; filename*=UTF-8''%E2%82%AC%20rates.txt; name=\"file\"",
            Some("\u{20ac} rates.txt"),
        ),
        (
            "filename* wins over filename",
            "form-data; name=\"file\"; filename=\"plain.txt\"; filename*=utf-8''fancy.txt",
            Some("fancy.txt"),
        ),
        (
            "a parameter-like text in a quoted value",
            "form-data; filename=\"a; name=other\"; name=\"file\"",
            Some("a; name=other"),
        ),
        (
            "spaces around =",
            "form-data; name = \"file\" ; filename = \"s.txt\"",
            Some("s.txt"),
        ),
        ("no file name", "form-data; name=\"file\"", None),
    ] {
        let body = [
            part(b, &format!("Content-Disposition: {disposition}"), &file),
            close(b),
        ]
        .concat();
        all.push(ok(
            &format!("parameters: {what}"),
            b,
            body,
            &file,
            file_name,
        ));
    }
    let body = [
        part(
            b,
            "Content-Disposition: form-data; filename=\"x; name=file\"; name=\"other\"",
            b"not the file",
        ),
        close(b),
    ]
    .concat();
    all.push(err(
        "parameters: name only inside a quoted value",
        b,
        body,
        400,
        "no field named `file`",
    ));

    // 5. Boundaries as clients write them.
    let file = b"boundary".to_vec();
    for boundary in [
        "===1700000000000===",
        "a=b",
        "----WebKitFormBoundary7MA4YWxkTrZu0gW",
    ] {
        let body = [file_part(boundary, &file), close(boundary)].concat();
        all.push(ok(
            &format!("boundary {boundary}"),
            boundary,
            body,
            &file,
            Some("f.bin"),
        ));
    }
    let mut quoted = ok(
        "quoted boundary with = and a space",
        "x",
        [file_part("a= b", &file), close("a= b")].concat(),
        &file,
        Some("f.bin"),
    );
    quoted.content_type = "Multipart/Form-Data; Boundary=\"a= b\"".to_string();
    all.push(quoted);

    // 6. Bounded buffers: a part's header block, the preamble, the padding
    // after a boundary.
    let body = [
        format!("--{b}\r\nContent-Disposition: form-data; name=\"file\"\r\nX-Pad: ").into_bytes(),
        vec![b'a'; 70 << 10],
        b"\r\n\r\ndata\r\n".to_vec(),
        close(b),
    ]
    .concat();
    all.push(err(
        "a 70 KiB part header block",
        b,
        body,
        400,
        "header block",
    ));
    let body = [
        vec![b'p'; 70 << 10],
        b"\r\n".to_vec(),
        file_part(b, b"x"),
        close(b),
    ]
    .concat();
    all.push(err(
        "a 70 KiB preamble",
        b,
        body,
        400,
        "before the first boundary",
    ));
    let body = [
        file_part(b, b"x")[..]
            .strip_suffix(b"\r\n")
            .unwrap()
            .to_vec(),
        format!("\r\n--{b}").into_bytes(),
        vec![b' '; 2000],
        b"--\r\n".to_vec(),
    ]
    .concat();
    all.push(err("2000 spaces after a boundary", b, body, 400, "padding"));

    // 7. Forms that do not end: no job, whatever came before.
    let file = b"complete file part".to_vec();
    let body = file_part(b, &file);
    all.push(err(
        "no close delimiter after the file",
        b,
        body,
        400,
        "malformed multipart",
    ));
    let body = [
        file_part(b, &file),
        format!("--{b}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nab").into_bytes(),
    ]
    .concat();
    all.push(err(
        "cut in a field after the file",
        b,
        body,
        400,
        "malformed multipart",
    ));
    let mut body = [file_part(b, &file), close(b)].concat();
    body.truncate(body.len() - 6);
    all.push(err(
        "cut in the close delimiter",
        b,
        body,
        400,
        "malformed multipart",
    ));

    // 8. Parts that would make the hash ambiguous.
    let body = [
        part(
            b,
            "Content-Disposition: form-data; name=\"file\"\r\nContent-Transfer-Encoding: base64",
            b"aGVsbG8=",
        ),
        close(b),
    ]
    .concat();
    all.push(err(
        "a base64 part",
        b,
        body,
        400,
        "Content-Transfer-Encoding",
    ));
    let body = [
        part(
            b,
            "Content-Disposition: form-data; name=\"file\"\r\nContent-Disposition: form-data; name=\"other\"",
            b"x",
        ),
        close(b),
    ]
    .concat();
    all.push(err(
        "two Content-Disposition headers",
        b,
        body,
        400,
        "two content-disposition",
    ));

    all
}
