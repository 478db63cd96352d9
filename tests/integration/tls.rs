//! TLS (`--tls-cert`, `--tls-key`) against the real binary, with a test CA
//! and server certificates made by the `openssl` command and curl as the
//! client: the right hash over HTTPS, HTTP/2 by ALPN, plain HTTP refused, a
//! silent client dropped, SIGHUP swapping the certificate (and keeping it
//! when the new pair is bad), and start-up errors naming flag and file.

use std::io::Read as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

/// Whether `openssl` and curl are there; in CI (`CI` set) their absence is
/// a failure, since `.ci/run` installs them.
fn tools_or_skip(test: &str) -> bool {
    let have = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    };
    // openssl's subcommand is `version`; `--version` fails but it runs.
    let ok = Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        && have("curl");
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: openssl and curl must be installed in CI"
        );
        eprintln!("{test}: skipped: needs the openssl command and curl");
    }
    ok
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A throwaway CA in `dir`: `ca.pem` and `ca.key`.
fn make_ca(dir: &Path) {
    run(Command::new("openssl")
        .current_dir(dir)
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes"])
        .args(["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"])
        .args(["-subj", "/CN=hashd test CA"]));
}

/// A server certificate for 127.0.0.1 signed by the CA, with its serial:
/// `NAME.pem` and `NAME.key` (`kind` is an `-newkey` argument: `rsa:2048`
/// or `ec`, which is P-256).
fn make_cert(dir: &Path, name: &str, serial: u32, kind: &str) -> (PathBuf, PathBuf) {
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let mut req = Command::new("openssl");
    req.current_dir(dir)
        .args(["req", "-newkey", kind, "-nodes"])
        .args([
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ])
        .args(["-subj", &format!("/CN=hashd {name}")]);
    if kind == "ec" {
        req.args(["-pkeyopt", "ec_paramgen_curve:prime256v1"]);
    }
    run(&mut req);
    run(Command::new("openssl")
        .current_dir(dir)
        .args(["x509", "-req", "-in", &format!("{name}.csr")])
        .args(["-CA", "ca.pem", "-CAkey", "ca.key", "-days", "2"])
        .args(["-set_serial", &serial.to_string(), "-extfile", "ext"])
        .args(["-out", &format!("{name}.pem")]));
    (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    )
}

/// The serial number of the certificate the daemon presents now, as
/// openssl prints it (`serial=03E9` for 1001).
fn served_serial(addr: std::net::SocketAddr) -> String {
    let pem = Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .unwrap()
        .stdout;
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    x509.stdin.take().unwrap().write_all(&pem).unwrap();
    let out = x509.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// curl over HTTPS with the test CA; stdout.
fn curl(ca: &Path, args: &[&str]) -> String {
    run(Command::new("curl")
        .args(["-sS", "--fail-with-body", "--cacert"])
        .arg(ca)
        .args(args))
}

#[test]
fn tls_uploads_hash_right_over_http1_and_http2_and_reload_on_sighup() {
    if !tools_or_skip("tls") {
        return;
    }
    let dir = TempDir::new("tls");
    make_ca(dir.path());
    let (cert1, key1) = make_cert(dir.path(), "one", 1001, "ec");
    let (cert2, key2) = make_cert(dir.path(), "two", 2002, "rsa:2048");
    // The daemon reads these two paths; the test swaps their contents.
    let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server.key"));
    std::fs::copy(&cert1, &cert).unwrap();
    std::fs::copy(&key1, &key).unwrap();
    let d = Daemon::builder(dir.path())
        .arg("--tls-cert")
        .arg(cert.to_str().unwrap())
        .env("HASHD_TLS_KEY", key.to_str().unwrap())
        .arg("--header-timeout")
        .arg("1")
        .start();
    let ca = dir.path().join("ca.pem");
    let base = format!("https://127.0.0.1:{}", d.addr.port());

    // The right MD5, as md5sum computes it, over HTTP/1.1 and HTTP/2.
    let file = dir.path().join("upload.bin");
    std::fs::write(&file, data(1 << 20, 14)).unwrap();
    let md5sum = run(Command::new("md5sum").arg(&file));
    let expected = md5sum.split_whitespace().next().unwrap();
    for (version, flag) in [("1.1", "--http1.1"), ("2", "--http2")] {
        let out = curl(
            &ca,
            &[
                flag,
                "-w",
                "\n%{http_version}",
                "-F",
                &format!("file=@{}", file.display()),
                &format!("{base}/uploadfile/?wait=true"),
            ],
        );
        let (body, got_version) = out.rsplit_once('\n').unwrap();
        assert_eq!(got_version, version, "{flag}: negotiated {got_version}");
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["hash"], expected, "{flag}: {body}");
        // And the lookup on the same protocol.
        let id = json["id"].as_str().unwrap();
        let got = curl(&ca, &[flag, &format!("{base}/gethash/{id}")]);
        assert!(got.contains(expected), "{flag}: {got}");
    }

    // HTTP/2 frames the body itself: a raw upload of unknown length (curl
    // sends standard input without Content-Length) is no 411 there.
    let raw = Command::new("curl")
        .args(["-sS", "--fail-with-body", "--http2", "--cacert"])
        .arg(&ca)
        .args(["-T", "-", &format!("{base}/files/upload.bin?wait=1")])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&raw.stdout);
    assert!(raw.status.success(), "{body}");
    assert!(body.contains(expected), "{body}");

    // Plain HTTP to the TLS port: a 400 that says why, not a hang.
    let r = request(d.addr, "GET", "/health", &[], &[]);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("https://"), "{}", r.text());

    // A client that connects and says nothing is dropped after the header
    // timeout (1 s), not kept holding a connection slot.
    let mut silent = TcpStream::connect(d.addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let n = silent.read(&mut [0u8; 64]).unwrap_or(0);
    assert_eq!(n, 0, "the server sent bytes to a silent client");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "silent client held for {:?}",
        started.elapsed()
    );

    // SIGHUP with a new pair: new connections see the new certificate.
    assert_eq!(served_serial(d.addr), "serial=03E9");
    std::fs::copy(&cert2, &cert).unwrap();
    std::fs::copy(&key2, &key).unwrap();
    signal(d.pid(), "HUP");
    wait_until(
        "the new certificate is served",
        Duration::from_secs(10),
        || served_serial(d.addr) == "serial=07D2",
    );
    assert!(curl(&ca, &[&format!("{base}/health")]).contains("true"));

    // A bad pair on SIGHUP (the first certificate with the second's key,
    // then a certificate file with no certificate): the old one stays, and
    // the log says why.
    std::fs::copy(&cert1, &cert).unwrap();
    signal(d.pid(), "HUP");
    wait_until("the mismatch is logged", Duration::from_secs(10), || {
        d.stderr().contains("does not match the certificate")
    });
    assert_eq!(served_serial(d.addr), "serial=07D2");
    std::fs::write(&cert, "not a certificate\n").unwrap();
    signal(d.pid(), "HUP");
    wait_until("the empty file is logged", Duration::from_secs(10), || {
        d.stderr().contains("no certificate in it")
    });
    assert_eq!(served_serial(d.addr), "serial=07D2");
    assert!(curl(&ca, &[&format!("{base}/health")]).contains("true"));
    assert!(d.terminate().success());
}

#[test]
fn tls_start_up_errors_name_the_flag_and_the_file() {
    if !tools_or_skip("tls_start_up_errors") {
        return;
    }
    let dir = TempDir::new("tls-errors");
    make_ca(dir.path());
    let (cert1, key1) = make_cert(dir.path(), "one", 1, "ec");
    let (_, key2) = make_cert(dir.path(), "two", 2, "ec");
    let missing = dir.path().join("missing.pem");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let cases: [(Vec<String>, String); 5] = [
        (
            vec![
                "--tls-cert".into(),
                s(&missing),
                "--tls-key".into(),
                s(&key1),
            ],
            format!("--tls-cert {}: cannot read: No such file", s(&missing)),
        ),
        (
            vec!["--tls-cert".into(), s(&cert1)],
            format!("--tls-cert {} needs --tls-key", s(&cert1)),
        ),
        (
            vec!["--tls-cert".into(), s(&key1), "--tls-key".into(), s(&key1)],
            format!("--tls-cert {}: no certificate in it", s(&key1)),
        ),
        (
            vec![
                "--tls-cert".into(),
                s(&cert1),
                "--tls-key".into(),
                s(&cert1),
            ],
            format!("--tls-key {}: no private key in it", s(&cert1)),
        ),
        (
            vec!["--tls-cert".into(), s(&cert1), "--tls-key".into(), s(&key2)],
            format!(
                "--tls-key {} does not match the certificate in --tls-cert {}",
                s(&key2),
                s(&cert1)
            ),
        ),
    ];
    for (args, needle) in cases {
        let out = Command::new(BIN)
            .current_dir(dir.path())
            .args(["--listen", "127.0.0.1:0", "--no-socket", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(&args)
            .env_remove("HASHD_TLS_CERT")
            .env_remove("HASHD_TLS_KEY")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(&needle), "{args:?}: {stderr}");
    }
}
