//! The original API and its quirks, hashd's additions, and the HTML pages.

use std::time::{Duration, Instant};

use crate::util::*;

#[test]
fn hashes_match_the_reference_for_boundary_sizes_and_every_algorithm() {
    let dir = TempDir::new("sizes");
    let d = Daemon::start(dir.path());
    for algo in ["md5", "sha1", "sha256", "sha512"] {
        for (i, len) in [0usize, 1, 55, 56, 63, 64, 65, 1 << 20]
            .into_iter()
            .enumerate()
        {
            let body = data(len, i as u64 + 1);
            let r = d.upload(&format!("?algo={algo}&wait=true"), "f.bin", &body);
            assert_eq!(r.status, 200, "{}", r.text());
            let v = r.json();
            assert_eq!(v["success"], true);
            assert_eq!(v["status"], "SUCCESS");
            assert_eq!(v["algorithm"], algo);
            assert_eq!(v["size"], len as u64);
            assert_eq!(v["hash"], reference(algo, &body), "{algo} {len}");
        }
    }
}

#[test]
fn a_100_mib_upload_hashes_correctly_for_every_algorithm() {
    let dir = TempDir::new("100m");
    let d = Daemon::start(dir.path());
    let body = data(100 << 20, 42);
    for algo in ["md5", "sha1", "sha256", "sha512"] {
        let r = request(
            d.addr,
            "PUT",
            &format!("/files/big.bin?algo={algo}&wait=1"),
            &[],
            &body,
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["hash"], reference(algo, &body), "{algo}");
    }
}

#[test]
fn original_flow_upload_then_poll_with_every_lookup_form() {
    let dir = TempDir::new("flow");
    let d = Daemon::start(dir.path());
    let body = b"hello";
    let want = reference("md5", body);
    for path in ["/uploadfile/", "/uploadfile"] {
        let (ct, mp) = multipart(&[
            Part::field("description", b"ignored"),
            Part::file("file", "hello.txt", body),
            Part::field("after", b"also ignored"),
        ]);
        let r = request(d.addr, "POST", path, &[("Content-Type", &ct)], &mp);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let v = r.json();
        assert_eq!(v["success"], true);
        let id = v["id"].as_str().unwrap().to_string();
        assert_eq!(id.len(), 32, "ids are 128-bit hex");
        assert_eq!(v["celery_id"], v["id"]);
        assert!(v["celery_status"] == "PENDING" || v["celery_status"] == "SUCCESS");
        assert_eq!(v["name"], "hello.txt");
        assert_eq!(d.wait_final(&id)["hash"], want);

        for lookup in [
            format!("/gethash/?file_id={id}"),
            format!("/gethash?file_id={id}"),
            format!("/gethash/{id}"),
        ] {
            let (status, v) = d.get_json(&lookup);
            assert_eq!(status, 200, "{lookup}");
            assert_eq!(v["status"], "SUCCESS");
            assert_eq!(v["hash"], want);
        }
        // The documented JSON-body variant, at both paths.
        for lookup in ["/get_hash/gethash/", "/get_hash/gethash", "/gethash/"] {
            let body = format!("{{\"file_id\": \"{id}\"}}");
            let r = request(
                d.addr,
                "GET",
                lookup,
                &[("Content-Type", "application/json")],
                body.as_bytes(),
            );
            assert_eq!(r.status, 200, "{lookup}");
            assert_eq!(r.json()["hash"], want);
        }
        // Python requests sends the query *and* a form body on GET.
        let r = request(
            d.addr,
            "GET",
            &format!("/gethash/?file_id={id}"),
            &[("Content-Type", "application/x-www-form-urlencoded")],
            format!("file_id={id}&x=1").as_bytes(),
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["hash"], want);
    }
}

#[test]
fn invalid_ids_answer_invalid_id_with_404() {
    let dir = TempDir::new("ids");
    let d = Daemon::start(dir.path());
    for path in [
        "/gethash/?file_id=-1",
        "/gethash/?file_id=abc",
        "/gethash/-1",
        "/gethash/abc",
        "/gethash/?file_id=00000000000000000000000000000000",
        "/gethash/?file_id=1%27%20OR%20%271%27%3D%271",
        "/gethash/%00",
    ] {
        let (status, v) = d.get_json(path);
        assert_eq!(status, 404, "{path}");
        assert_eq!(
            v,
            serde_json::json!({"status": "INVALID_ID", "hash": null}),
            "{path}"
        );
    }
    let r = request(
        d.addr,
        "GET",
        "/get_hash/gethash/",
        &[],
        br#"{"file_id": -1}"#,
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["status"], "INVALID_ID");
    let (status, v) = d.get_json("/gethash/");
    assert_eq!(status, 400);
    assert_eq!(v["status"], "INVALID_ID");
    assert!(v["error"].as_str().unwrap().contains("file_id"));
}

#[test]
fn artificial_delay_keeps_jobs_pending_until_it_passes() {
    let dir = TempDir::new("delay");
    // The original's misspelt name, as its .env has it.
    let d = Daemon::builder(dir.path())
        .env("ARTIFITIAL_DELAY", "1")
        .start();
    let t0 = std::time::Instant::now();
    let r = d.upload("", "a.txt", b"abc");
    let v = r.json();
    assert_eq!(v["status"], "PENDING");
    assert_eq!(v["celery_status"], "PENDING");
    let id = v["id"].as_str().unwrap();
    assert_eq!(d.get_json(&format!("/gethash/{id}")).1["status"], "PENDING");
    let done = d.wait_final(id);
    assert!(t0.elapsed() >= std::time::Duration::from_millis(900));
    assert_eq!(done["status"], "SUCCESS");
    assert_eq!(done["hash"], reference("md5", b"abc"));
    // ?wait=true answers only once the delay has passed.
    let t1 = std::time::Instant::now();
    let v = d.upload("?wait=true", "b.txt", b"x").json();
    assert!(t1.elapsed() >= std::time::Duration::from_millis(900));
    assert_eq!(v["status"], "SUCCESS");
}

#[test]
fn lookups_with_wait_hold_the_answer_until_the_job_ends() {
    let dir = TempDir::new("long-poll");
    let d = Daemon::builder(dir.path())
        .arg("--artificial-delay")
        .arg("1")
        .start();
    let uploaded = Instant::now();
    let id = d.upload("", "a.txt", b"abc").json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Shorter than the delay: the job as it is, at the wait's end (not at
    // the job's: the bound is loose, as the machine may be loaded).
    let t = Instant::now();
    let (status, v) = d.get_json(&format!("/gethash/{id}?wait=0.3"));
    assert_eq!(
        (status, v["status"].as_str()),
        (200, Some("PENDING")),
        "{v}"
    );
    assert!(t.elapsed() >= Duration::from_millis(250));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // Every lookup form takes it; the answer comes with the job's end,
    // long before the wait runs out.
    for path in [
        format!("/gethash/{id}?wait=30"),
        format!("/gethash/?file_id={id}&wait=30"),
        format!("/get_hash/gethash/?file_id={id}&wait=30"),
    ] {
        let t = Instant::now();
        let (status, v) = d.get_json(&path);
        assert_eq!(status, 200, "{path}: {v}");
        assert_eq!(v["status"], "SUCCESS", "{path}: {v}");
        assert_eq!(v["hash"], reference("md5", b"abc"));
        assert!(t.elapsed() < Duration::from_secs(10), "{path}");
        // Not before the delay has passed (it starts once the bytes are
        // hashed, after the upload began). How soon after is measured by
        // scripts/wait-latency, not here.
        assert!(uploaded.elapsed() >= Duration::from_millis(950), "{path}");
    }
    // An unknown id does not wait.
    let t = Instant::now();
    let (status, _) = d.get_json("/gethash/0123456789abcdef0123456789abcdef?wait=30");
    assert_eq!(status, 404);
    assert!(t.elapsed() < Duration::from_secs(5));
    for bad in ["abc", "-1", "56", "true", "nan", "1e9", ""] {
        let r = d.get(&format!("/gethash/{id}?wait={bad}"));
        assert_json_error(&r, 400, "wait must be a number of seconds");
    }
}

#[test]
fn dotenv_and_original_settings_are_honoured() {
    let dir = TempDir::new("dotenv");
    // API_PORT=0 proves the port came from .env: the default is 8000.
    std::fs::write(
        dir.path().join(".env"),
        "# the original service's settings\nAPI_PORT=0\nARTIFICIAL_DELAY=1\nDELETE_FILE=false\nCHUNK_SIZE=65536\n",
    )
    .unwrap();
    let d = Daemon::builder(dir.path()).no_listen_flag().start();
    assert_ne!(d.addr.port(), 8000);
    let v = d.upload("", "kept.txt", b"keep me").json();
    assert_eq!(v["status"], "PENDING", "ARTIFICIAL_DELAY from .env");
    let id = v["id"].as_str().unwrap().to_string();
    d.wait_final(&id);
    let kept = dir.path().join("data/uploads").join(&id);
    assert_eq!(
        std::fs::read(kept).unwrap(),
        b"keep me",
        "DELETE_FILE=false keeps uploads"
    );
    let stats = d.get_json("/stats").1;
    assert_eq!(stats["keep_uploads"], true);
}

#[test]
fn raw_put_uploads_with_name_and_algorithm() {
    let dir = TempDir::new("put");
    let d = Daemon::start(dir.path());
    let body = data(300_000, 7);
    let r = request(
        d.addr,
        "PUT",
        "/files/report%20v2.pdf?algo=sha256&wait=true",
        &[],
        &body,
    );
    let v = r.json();
    assert_eq!(v["hash"], reference("sha256", &body));
    assert_eq!(v["name"], "report v2.pdf");
    let r = request(d.addr, "PUT", "/files?name=x.bin", &[], b"");
    let v = r.json();
    assert_eq!(v["name"], "x.bin");
    assert_eq!(
        d.wait_final(v["id"].as_str().unwrap())["hash"],
        reference("md5", b"")
    );
}

#[test]
fn jobs_listing_pages_and_filters_and_stats_count() {
    let dir = TempDir::new("jobs");
    let d = Daemon::start(dir.path());
    let mut ids = Vec::new();
    for i in 0..5u8 {
        let v = d.upload("?wait=1", &format!("f{i}"), &[i]).json();
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    // A failed job: abandoned mid-upload is not recorded, so make one fail
    // through the size limit? No: failures need a recorded job. Use status filter on SUCCESS.
    let (status, page) = d.get_json("/jobs?limit=2");
    assert_eq!(status, 200);
    let jobs = page["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0]["id"], ids[4].as_str(), "newest first");
    assert_eq!(jobs[1]["id"], ids[3].as_str());
    let next = page["next"].as_str().unwrap();
    let page2 = d.get_json(&format!("/jobs?limit=2&after={next}")).1;
    assert_eq!(page2["jobs"][0]["id"], ids[2].as_str());
    let last = d.get_json(&format!("/jobs?limit=10&after={}", ids[1])).1;
    assert_eq!(last["jobs"].as_array().unwrap().len(), 1);
    assert!(last["next"].is_null());
    assert_eq!(
        d.get_json("/jobs?status=SUCCESS").1["jobs"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(
        d.get_json("/jobs?status=pending").1["jobs"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(d.get_json("/jobs?status=bogus").0, 400);
    // Every value that is no whole number from 1 to 1000 (schemathesis
    // found the empty one accepted); empty `status` and `after` mean "any"
    // and "the first page", as the spec says.
    for bad in ["0", "1001", "abc", "", "1.5"] {
        assert_eq!(d.get_json(&format!("/jobs?limit={bad}")).0, 400, "{bad:?}");
    }
    assert_eq!(d.get_json("/jobs?status=&after=").0, 200);

    let stats = d.get_json("/stats").1;
    assert_eq!(stats["jobs"]["SUCCESS"], 5);
    assert_eq!(stats["jobs"]["total"], 5);
    assert_eq!(stats["bytes_hashed"], 5);
    let hashers = stats["hashers"].as_array().unwrap();
    assert!(!hashers.is_empty());
    assert_eq!(
        hashers
            .iter()
            .map(|h| h["jobs_done"].as_u64().unwrap())
            .sum::<u64>(),
        5
    );
}

#[test]
fn html_pages_upload_and_look_up() {
    let dir = TempDir::new("html");
    let d = Daemon::start(dir.path());
    for path in ["/", "/uploadform", "/uploadform/"] {
        let r = d.get(path);
        assert_eq!(r.status, 200);
        assert!(r.header("content-type").unwrap().starts_with("text/html"));
        let page = r.text();
        assert!(page.contains("action=\"/uploadfile-html/\"") && page.contains("name=\"file\""));
        assert!(page.contains("action=\"/gethash-form/\"") && page.contains("name=\"file_id\""));
        // Its script is inline: nothing is loaded from elsewhere.
        assert!(
            !page.contains("<script src")
                && !page.contains("http://")
                && !page.contains("https://")
        );
        assert!(page.contains("Largest accepted file: <strong>8 GiB</strong>"));
        // One checkbox per algorithm, md5 ticked.
        assert!(page.contains("<input type=\"checkbox\" name=\"algo\" value=\"md5\" checked>"));
        for algo in ["sha1", "sha256", "sha512", "blake3"] {
            assert!(
                page.contains(&format!(
                    "<input type=\"checkbox\" name=\"algo\" value=\"{algo}\">"
                )),
                "{algo}"
            );
        }
    }
    // The plain form's post is answered 303 to the job page
    // (Post/Redirect/Get): reloading that page sends no file again.
    let (ct, mp) = multipart(&[Part::file("file", "<b>x</b>.txt", b"page")]);
    let r = request(
        d.addr,
        "POST",
        "/uploadfile-html/",
        &[("Content-Type", &ct)],
        &mp,
    );
    assert_eq!(r.status, 303);
    let location = r.header("location").unwrap().to_string();
    let id = location
        .strip_prefix("/gethash-form/?file_id=")
        .unwrap()
        .to_string();
    assert_eq!(id.len(), 32);
    assert!(r.text().contains(&id));
    d.wait_final(&id);
    let jobs = d.get_json("/stats").1["jobs"]["total"].clone();
    for _ in 0..2 {
        let r = d.get(&location);
        assert_eq!(r.status, 200);
        let page = r.text();
        assert!(
            page.contains("&lt;b&gt;x&lt;/b&gt;.txt"),
            "names are escaped"
        );
        assert!(page.contains(&reference("md5", b"page")));
    }
    assert_eq!(d.get_json("/stats").1["jobs"]["total"], jobs);
    // The form's algorithm field, before the file, chooses the algorithm.
    let post_form = |algos: &[&str]| {
        let mut parts: Vec<Part<'_>> = algos
            .iter()
            .map(|a| Part::field("algo", a.as_bytes()))
            .collect();
        parts.push(Part::file("file", "a.txt", b"page"));
        let (ct, mp) = multipart(&parts);
        request(
            d.addr,
            "POST",
            "/uploadfile-html/",
            &[("Content-Type", &ct)],
            &mp,
        )
    };
    let r = post_form(&["sha256"]);
    assert_eq!(r.status, 303);
    let id = r.header("location").unwrap().rsplit('=').next().unwrap();
    assert_eq!(d.wait_final(id)["hash"], reference("sha256", b"page"));
    // Several `algo` fields (the form's ticked boxes), each a name or a
    // comma list: every algorithm, in order, repeats dropped; the job page
    // shows each digest.
    let r = post_form(&["sha256", "md5,sha256", "sha1"]);
    assert_eq!(r.status, 303);
    let location = r.header("location").unwrap().to_string();
    let id = location.rsplit('=').next().unwrap();
    let done = d.wait_final(id);
    assert_eq!(done["hash"], reference("sha256", b"page"));
    assert_eq!(done["hashes"].as_object().unwrap().len(), 3, "{done}");
    let page = d.get(&location).text();
    let mut at = 0;
    for algo in ["sha256", "md5", "sha1"] {
        assert_eq!(done["hashes"][algo], reference(algo, b"page"));
        let digest = format!("data-algo=\"{algo}\">{}</code>", reference(algo, b"page"));
        let found = page
            .find(&digest)
            .unwrap_or_else(|| panic!("{algo}: {page}"));
        assert!(found > at, "{algo} in the job's order: {page}");
        at = found;
    }
    let r = post_form(&["nope"]);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("nope"));
    let r = d.get("/gethash-form/?file_id=abc");
    assert_eq!(r.status, 404);
    assert!(r.text().contains("INVALID_ID"));
}
