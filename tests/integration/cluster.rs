//! Several nodes on one PostgreSQL job table, behind nginx: the real
//! daemon, a real PostgreSQL server (`.ci/run` starts one and sets
//! `HASHD_TEST_POSTGRES`), nginx started by `scripts/lb` from
//! `deploy/nginx/hashd.conf`, and heavy-load as the client. Without
//! PostgreSQL these tests skip on a developer machine and fail in CI.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn script(env_name: &str, name: &str) -> PathBuf {
    std::env::var_os(env_name)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("scripts").join(name))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `psql -tA` of one query, trimmed.
fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-tAc", sql])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A node of a cluster on `store`, with `extra` flags.
fn node(dir: &Path, store: &str, extra: &[&str]) -> Daemon {
    let mut b = Daemon::builder(dir)
        .arg("--store")
        .arg(store)
        .arg("--no-socket")
        .arg("--node-timeout")
        .arg("2");
    for a in extra {
        b = b.arg(a);
    }
    b.start()
}

fn node_id(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("data/node-id"))
        .unwrap()
        .trim()
        .to_string()
}

/// nginx in front of nodes, from the deploy configuration; stopped on drop.
struct Lb {
    dir: TempDir,
    addr: SocketAddr,
}

impl Lb {
    fn start(nodes: &[SocketAddr]) -> Lb {
        let dir = TempDir::new("lb");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let out = Command::new(script("HASHD_TEST_LB", "lb"))
            .arg("start")
            .arg(dir.path())
            .arg(addr.to_string())
            .args(nodes.iter().map(|a| a.to_string()))
            .output()
            .expect("scripts/lb");
        assert!(
            out.status.success(),
            "scripts/lb start failed (is Debian's nginx installed?): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Lb { dir, addr }
    }
}

impl Drop for Lb {
    fn drop(&mut self) {
        let _ = Command::new(script("HASHD_TEST_LB", "lb"))
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}

/// heavy-load (built with the workspace) against `base`; returns whether
/// it verified every file, and the ids it received with their expected
/// hashes.
fn heavy_load(base: &str, args: &[&str], ids_out: &Path) -> (bool, Vec<(String, String)>) {
    let bin = Path::new(BIN).with_file_name("heavy-load");
    assert!(
        bin.exists(),
        "{} is missing: cargo build -p heavy-load",
        bin.display()
    );
    let status = Command::new(&bin)
        .args(["--base", base, "--json-only"])
        .args(args)
        .arg("--ids-out")
        .arg(ids_out)
        .stdout(Stdio::inherit())
        .status()
        .unwrap();
    let ids = std::fs::read_to_string(ids_out)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(id, hex)| (id.to_string(), hex.to_string()))
        .collect();
    (status.success(), ids)
}

/// heavy-load in the background for `secs` seconds (8 clients, 1-16 KiB
/// files, `seed`), writing the ids it gets to `ids_out`.
fn load_for(
    base: &str,
    seed: u32,
    secs: u32,
    ids_out: PathBuf,
) -> std::thread::JoinHandle<(bool, Vec<(String, String)>)> {
    let base = base.to_string();
    std::thread::spawn(move || {
        let (seed, secs) = (seed.to_string(), secs.to_string());
        heavy_load(
            &base,
            &[
                "-n",
                "100000",
                "--size",
                "1K..16K",
                "-c",
                "8",
                "--seed",
                &seed,
                "--time-limit",
                &secs,
                "--pending-timeout",
                "30",
            ],
            &ids_out,
        )
    })
}

/// Job `id` on `d` once final, waiting at most `secs` on the server.
fn final_on(d: &Daemon, id: &str, secs: u32) -> serde_json::Value {
    let (status, v) = d.get_json(&format!("/gethash/{id}?wait={secs}"));
    assert_eq!(status, 200, "{v}");
    v
}

#[test]
fn several_nodes_started_at_once_on_an_empty_database_migrate_it_once() {
    let Some(server) = postgres_or_skip("migrations race") else {
        return;
    };
    let url = postgres_database(&server, "cluster_race");
    let dirs: Vec<TempDir> = (0..4).map(|_| TempDir::new("race")).collect();
    let nodes: Vec<Daemon> = std::thread::scope(|s| {
        let started: Vec<_> = dirs
            .iter()
            .map(|d| s.spawn(|| node(d.path(), &url, &[])))
            .collect();
        started.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(psql(&url, "SELECT COUNT(*) FROM hashd_migrations"), "2");
    let v = nodes[0].upload("?wait=true", "a", b"abc").json();
    let id = v["id"].as_str().unwrap();
    let seen = final_on(&nodes[3], id, 0);
    assert_eq!(seen["hash"], "900150983cd24fb0d6963f7d28e17f72");
    let (_, cluster) = nodes[1].get_json("/cluster");
    let listed = cluster["nodes"].as_array().unwrap();
    assert_eq!(listed.len(), 4, "{cluster}");
    for n in listed {
        assert_eq!(n["alive"], true, "{cluster}");
    }
    for d in nodes {
        assert!(d.terminate().success());
    }
}

#[test]
fn two_nodes_behind_nginx_answer_for_each_others_jobs() {
    let Some(server) = postgres_or_skip("two nodes behind nginx") else {
        return;
    };
    let url = postgres_database(&server, "cluster_lb");
    let (da, db) = (TempDir::new("node-a"), TempDir::new("node-b"));
    let a = node(da.path(), &url, &[]);
    let b = node(db.path(), &url, &[]);
    let lb = Lb::start(&[a.addr, b.addr]);
    let ids_out = da.path().join("ids");
    let (ok, ids) = heavy_load(
        &format!("http://{}", lb.addr),
        &["-n", "600", "--size", "1K..64K", "-c", "16", "--seed", "12"],
        &ids_out,
    );
    assert!(ok, "heavy-load through nginx failed");
    assert_eq!(ids.len(), 600);
    for (id, hex) in &ids {
        for d in [&a, &b] {
            let v = final_on(d, id, 0);
            assert_eq!(v["status"], "SUCCESS", "{v}");
            assert_eq!(&v["hash"], hex.as_str(), "{v}");
        }
    }
    // Each node logged the jobs it ran, the two logs together every job once.
    let (la, lbl) = (results_log(da.path()).len(), results_log(db.path()).len());
    assert!(la > 0 && lbl > 0, "nginx sent every upload to one node");
    assert_eq!(la + lbl, 600);
    for d in [&a, &b] {
        assert_eq!(d.get_json("/stats").1["jobs"]["SUCCESS"], 600);
    }

    // A lookup waiting on one node is woken by the end of a job on another.
    let dc = TempDir::new("node-c");
    let c = node(dc.path(), &url, &["--artificial-delay", "2"]);
    let v = c.upload("", "slow", b"abc").json();
    assert_eq!(v["status"], "PENDING");
    let id = v["id"].as_str().unwrap();
    let asked = Instant::now();
    let seen = final_on(&a, id, 30);
    assert_eq!(seen["status"], "SUCCESS", "{seen}");
    assert!(
        asked.elapsed() < Duration::from_secs(20),
        "the wait on the other node ran to its timeout: not woken"
    );
    let (_, cluster) = b.get_json("/cluster");
    assert_eq!(cluster["nodes"].as_array().unwrap().len(), 3, "{cluster}");
    drop(lb);
    for d in [a, b, c] {
        assert!(d.terminate().success());
    }
}

#[test]
fn a_node_killed_under_load_has_its_jobs_ended_by_a_survivor() {
    let Some(server) = postgres_or_skip("kill -9 one node") else {
        return;
    };
    let url = postgres_database(&server, "cluster_kill");
    let (da, db) = (TempDir::new("victim"), TempDir::new("survivor"));
    // The victim holds each result for 3 s, so it dies with jobs PENDING.
    let victim = node(da.path(), &url, &["--artificial-delay", "3"]);
    let survivor = node(db.path(), &url, &[]);
    let victim_id = node_id(da.path());
    let lb = Lb::start(&[victim.addr, survivor.addr]);
    let load = load_for(&format!("http://{}", lb.addr), 13, 6, db.path().join("ids"));
    std::thread::sleep(Duration::from_secs(3));
    victim.kill9();
    let killed = Instant::now();
    let (_, ids) = load.join().unwrap();
    assert!(ids.len() > 50, "too few uploads answered: {}", ids.len());
    let mut reaped = 0;
    for (id, hex) in &ids {
        let v = final_on(&survivor, id, 20);
        match v["status"].as_str() {
            Some("SUCCESS") => assert_eq!(&v["hash"], hex.as_str(), "{v}"),
            Some("FAILURE") => {
                let why = v["error"].as_str().unwrap();
                assert!(why.contains(&victim_id), "{v}");
                reaped += 1;
            }
            _ => panic!("not final on the survivor: {v}"),
        }
    }
    // node timeout 2 s, a heartbeat interval and the reap's own round trip.
    assert!(
        killed.elapsed() < Duration::from_secs(30),
        "ending the dead node's jobs took {:?}",
        killed.elapsed()
    );
    assert!(reaped > 0, "the victim died with no job PENDING");
    eprintln!(
        "{} ids answered, {reaped} ended FAILURE by the survivor",
        ids.len()
    );
    let (_, cluster) = survivor.get_json("/cluster");
    let dead: Vec<_> = cluster["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["alive"] == false)
        .collect();
    assert_eq!(dead.len(), 1, "{cluster}");
    assert_eq!(dead[0]["id"], victim_id.as_str());
    // The log of the survivor has the jobs it failed for the victim.
    let failed_logged = results_log(db.path())
        .iter()
        .filter(|l| l["status"] == "FAILURE")
        .count();
    assert_eq!(failed_logged, reaped);

    // The victim restarts with its id and finds nothing left to end.
    let victim = node(da.path(), &url, &[]);
    assert!(!victim.stderr().contains("left PENDING"));
    drop(lb);
    for d in [victim, survivor] {
        assert!(d.terminate().success());
    }
}

/// A PostgreSQL cluster of this test's own (so it can be stopped without
/// stopping the other tests' server); destroyed on drop.
struct OwnPostgres {
    dir: TempDir,
    port: u16,
}

impl OwnPostgres {
    fn start() -> (OwnPostgres, String) {
        // Short: the server's socket lives in it (a path limit of ~100 bytes).
        let dir = TempDir::new("pg");
        let pg = OwnPostgres {
            dir,
            port: free_port(),
        };
        let url = pg.run("start");
        (pg, url)
    }

    fn run(&self, verb: &str) -> String {
        let mut cmd = Command::new(script("HASHD_TEST_PG_TMP", "pg-tmp"));
        cmd.arg(verb).arg(self.dir.path().join("c"));
        if verb == "start" {
            cmd.arg(self.port.to_string());
        }
        let out = cmd.output().expect("scripts/pg-tmp");
        assert!(
            out.status.success(),
            "scripts/pg-tmp {verb} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = Command::new(script("HASHD_TEST_PG_TMP", "pg-tmp"))
            .arg("destroy")
            .arg(self.dir.path().join("c"))
            .output();
    }
}

#[test]
fn postgres_stopped_mid_load_gives_503s_and_loses_no_acknowledged_job() {
    if postgres_or_skip("PostgreSQL restart").is_none() {
        return;
    }
    let (pg, url) = OwnPostgres::start();
    let dir = TempDir::new("pg-node");
    let d = node(dir.path(), &url, &[]);
    let load = load_for(&format!("http://{}", d.addr), 14, 8, dir.path().join("ids"));
    std::thread::sleep(Duration::from_secs(2));
    pg.run("stop");
    // While it is down: uploads and lookups of unknown ids answer 503 with
    // Retry-After, and the node is not ready.
    let r = d.upload("", "down", b"abc");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    assert_eq!(r.json()["success"], false);
    let r = d.get("/gethash/00000000000000000000000000000000");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    assert_eq!(d.get("/ready").status, 503);
    std::thread::sleep(Duration::from_secs(2));
    pg.run("start");
    let (_, ids) = load.join().unwrap();
    assert!(ids.len() > 50, "too few uploads answered: {}", ids.len());
    let mut counts: HashMap<String, usize> = HashMap::new();
    for (id, hex) in &ids {
        let v = final_on(&d, id, 30);
        match v["status"].as_str() {
            Some("SUCCESS") => assert_eq!(&v["hash"], hex.as_str(), "{v}"),
            other => panic!("an acknowledged job ended {other:?}: {v}"),
        }
        *counts.entry(v["status"].to_string()).or_default() += 1;
    }
    eprintln!("{} acknowledged jobs: {counts:?}", ids.len());
    assert_eq!(d.get("/ready").status, 200);
    let v = d.upload("?wait=true", "after", b"abc").json();
    assert_eq!(v["hash"], "900150983cd24fb0d6963f7d28e17f72");
    // One outage, one error line and one recovery line.
    let log = d.stderr();
    assert_eq!(log.matches("is unreachable;").count(), 1, "{log}");
    assert_eq!(log.matches("reachable again").count(), 1, "{log}");
    assert!(d.terminate().success());
}
