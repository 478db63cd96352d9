use super::*;
use crate::testutil::{block_on, TempDir};
use std::sync::mpsc;

fn small_pool(hashers: usize) -> HasherPool {
    HasherPool::start(PoolConfig {
        hashers,
        pin: false,
        max_streams: 64,
        stream_budget_bytes: 4096,
        stream_budget_chunks: 4,
        // These tests are about the hasher threads: no job stays inline.
        inline_max_bytes: 0,
        ..PoolConfig::default()
    })
    .unwrap()
}

fn completion() -> (Completion, mpsc::Receiver<Outcome>) {
    let (tx, rx) = mpsc::channel();
    (Box::new(move |o| tx.send(o).unwrap()), rx)
}

#[test]
fn streams_hash_like_one_shot_for_every_algorithm() {
    let pool = small_pool(2);
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 3) as u8).collect();
    for algo in Algorithm::ALL {
        let (done, rx) = completion();
        let mut job = pool.open_stream(algo, done);
        block_on(async {
            for piece in data.chunks(1000) {
                job.send(Bytes::copy_from_slice(piece)).await.unwrap();
            }
        });
        job.finish().unwrap();
        let d = rx.recv().unwrap().unwrap();
        assert_eq!(d.first().to_vec(), algo.digest(&data), "{algo}");
        assert_eq!(d.len, data.len() as u64);
    }
}

#[test]
fn many_interleaved_streams_with_one_byte_chunks() {
    let pool = small_pool(2);
    let mut jobs = Vec::new();
    for i in 0..20usize {
        let data: Vec<u8> = (0..(i * 13 % 200)).map(|b| (b ^ i) as u8).collect();
        let (done, rx) = completion();
        jobs.push((pool.open_stream(Algorithm::Md5, done), rx, data));
    }
    block_on(async {
        for pos in 0..200 {
            for (job, _, data) in jobs.iter_mut() {
                if let Some(&b) = data.get(pos) {
                    job.send(Bytes::from(vec![b])).await.unwrap();
                }
            }
        }
    });
    for (job, rx, data) in jobs {
        job.finish().unwrap();
        assert_eq!(
            rx.recv().unwrap().unwrap().first().to_vec(),
            Algorithm::Md5.digest(&data)
        );
    }
    let stats = pool.stats();
    assert_eq!(stats.iter().map(|s| s.jobs_done).sum::<u64>(), 20);
    assert!(stats.iter().all(|s| s.active_jobs == 0));
}

#[test]
fn dropping_an_unfinished_stream_fails_it() {
    let pool = small_pool(1);
    let (done, rx) = completion();
    let mut job = pool.open_stream(Algorithm::Sha1, done);
    block_on(job.send(Bytes::from_static(b"partial"))).unwrap();
    drop(job);
    assert!(matches!(rx.recv().unwrap(), Err(JobError::Aborted(_))));
    assert_eq!(pool.stats()[0].jobs_failed, 1);
}

#[test]
fn explicit_abort_carries_the_reason() {
    let pool = small_pool(1);
    let (done, rx) = completion();
    let job = pool.open_stream(Algorithm::Md5, done);
    job.abort("too big");
    assert_eq!(rx.recv().unwrap(), Err(JobError::Aborted("too big".into())));
}

#[test]
fn shutdown_fails_open_streams_and_refuses_new_data() {
    let pool = Arc::new(small_pool(1));
    let (done, rx) = completion();
    let mut job = pool.open_stream(Algorithm::Md5, done);
    // Stopped through a shared handle (another holder, like a connection
    // past the grace period, keeps the pool alive), twice: the second call
    // finds nothing left to stop.
    let holder = pool.clone();
    pool.shutdown();
    holder.shutdown();
    assert_eq!(rx.recv().unwrap(), Err(JobError::ShuttingDown));
    assert_eq!(
        block_on(job.send(Bytes::from_static(b"late"))),
        Err(JobClosed)
    );
}

#[test]
fn open_after_shutdown_completes_with_failure() {
    let pool = small_pool(1);
    let tx = pool.hashers[0].tx.clone();
    pool.shutdown();
    // A pool whose hasher is gone (its receiver dropped) must still complete
    // every stream it opens, rather than leave it pending.
    let hasher = Hasher {
        tx,
        counters: Arc::default(),
        cpu: None,
        reader: crate::read::SharedReaderKind::new(crate::read::ReaderKind::Pread),
        thread: std::sync::Mutex::new(None),
    };
    let (files, _) = crossbeam_channel::bounded(1);
    let pool = HasherPool {
        hashers: vec![hasher],
        files,
        uring_fallback: None,
        next_key: AtomicU64::new(1),
        next_hasher: AtomicUsize::new(0),
        open_streams: Arc::default(),
        config: PoolConfig::default(),
    };
    let big = Bytes::from(vec![1u8; PoolConfig::default().inline_max_bytes + 1]);
    let (done, rx) = completion();
    let mut job = pool.open_stream(Algorithm::Md5, done);
    assert_eq!(block_on(job.send(big)), Err(JobClosed));
    assert_eq!(rx.recv().unwrap(), Err(JobError::ShuttingDown));
    assert_eq!(job.finish(), Err(JobClosed));
}

#[test]
fn small_streams_are_hashed_inline_and_larger_ones_by_a_hasher() {
    let inline_max = 16 * 1024;
    let pool = HasherPool::start(PoolConfig {
        hashers: 1,
        pin: false,
        inline_max_bytes: inline_max,
        ..PoolConfig::default()
    })
    .unwrap();
    let data: Vec<u8> = (0..3 * inline_max as u32)
        .map(|i| (i * 13 + i / 7) as u8)
        .collect();
    let here = std::thread::current().id();
    let mut expected_inline = 0;
    for algo in Algorithm::ALL {
        for (len, piece) in [
            (0, 1),
            (1, 1),
            (4096, 4096),
            (inline_max, 1000),
            (inline_max + 1, 1000),
            (3 * inline_max, 5000),
        ] {
            let (tx, rx) = mpsc::channel();
            let mut job = pool.open_stream(
                algo,
                Box::new(move |o| tx.send((o, std::thread::current().id())).unwrap()),
            );
            block_on(async {
                for chunk in data[..len].chunks(piece) {
                    job.send(Bytes::copy_from_slice(chunk)).await.unwrap();
                }
            });
            job.finish().unwrap();
            let (outcome, thread) = rx.recv().unwrap();
            let d = outcome.unwrap();
            assert_eq!(
                d.first().to_vec(),
                algo.digest(&data[..len]),
                "{algo} {len}"
            );
            assert_eq!(d.len, len as u64);
            let inline = len <= inline_max;
            assert_eq!(
                thread == here,
                inline,
                "{algo} {len}: completed on the wrong thread"
            );
            expected_inline += u64::from(inline);
        }
    }
    let stats = pool.stats();
    assert_eq!(stats[0].jobs_done, 6 * Algorithm::ALL.len() as u64);
    assert_eq!(stats[0].active_jobs, 0);
    // A job still in its head counts as active where it was placed, so that
    // jobs opened together are placed knowing of each other.
    let held = pool.open_stream(Algorithm::Md5, Box::new(|_| {}));
    assert_eq!(pool.stats()[0].active_jobs, 1);
    held.finish().unwrap();
    assert_eq!(pool.stats()[0].active_jobs, 0);
    assert!(expected_inline > 0);

    // Dropped or aborted before the end, inline or not: a failure, at once.
    for len in [10, 2 * inline_max] {
        let (done, rx) = completion();
        let mut job = pool.open_stream(Algorithm::Md5, done);
        block_on(job.send(Bytes::from(vec![0u8; len]))).unwrap();
        drop(job);
        assert!(
            matches!(rx.recv().unwrap(), Err(JobError::Aborted(_))),
            "{len}"
        );
        let (done, rx) = completion();
        let mut job = pool.open_stream(Algorithm::Md5, done);
        block_on(job.send(Bytes::from(vec![0u8; len]))).unwrap();
        job.abort("too big");
        assert_eq!(
            rx.recv().unwrap(),
            Err(JobError::Aborted("too big".into())),
            "{len}"
        );
    }
    let stats = pool.stats();
    assert_eq!((stats[0].jobs_failed, stats[0].active_jobs), (4, 0));
}

#[test]
fn a_stalled_hasher_bounds_what_a_fast_producer_queues() {
    // Stall the only hasher inside a completion, then see how much of another
    // stream it lets a producer queue: exactly the budget (4 chunks).
    let pool = small_pool(1);
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (stalled_tx, stalled_rx) = mpsc::channel::<()>();
    let blocker = pool.open_stream(
        Algorithm::Md5,
        Box::new(move |_| {
            stalled_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        }),
    );
    blocker.finish().unwrap();
    stalled_rx.recv().unwrap();

    let (done, rx) = completion();
    let mut job = pool.open_stream(Algorithm::Md5, done);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let mut sent = 0;
    while let Poll::Ready(Ok(())) = job.poll_ready(&mut cx) {
        assert!(job.credits.try_spend(1000).unwrap());
        job.deliver(Msg::Data {
            key: job.key,
            chunk: Bytes::from(vec![0u8; 1000]),
        })
        .unwrap();
        sent += 1;
        assert!(sent <= 4, "queued more than the budget");
    }
    assert_eq!(sent, 4);
    release_tx.send(()).unwrap();
    job.finish().unwrap();
    assert_eq!(rx.recv().unwrap().unwrap().len, 4000);
}

fn file_pool(prefer_uring: bool) -> HasherPool {
    HasherPool::start(PoolConfig {
        hashers: 2,
        pin: false,
        prefer_uring,
        reader: crate::read::ReaderConfig {
            read_len: 4096,
            reads_per_file: 3,
            max_files: 4,
            ..crate::read::ReaderConfig::default()
        },
        ..PoolConfig::default()
    })
    .unwrap()
}

#[test]
fn descriptor_jobs_hash_like_one_shot_with_both_readers() {
    let dir = TempDir::new("pool");
    for prefer_uring in [true, false] {
        let pool = file_pool(prefer_uring);
        let mut waiting = Vec::new();
        // More files than the readers hold at once, so the queue is used.
        for (i, len) in [0usize, 1, 4095, 4096, 4097, 100_000, 1 << 20]
            .iter()
            .cycle()
            .take(30)
            .enumerate()
        {
            let data: Vec<u8> = (0..*len).map(|b| (b * 31 + i) as u8).collect();
            let path = dir.write(&format!("{prefer_uring}-{i}"), &data);
            let algo = Algorithm::ALL[i % 4];
            let (done, rx) = completion();
            pool.submit_file(algo, std::fs::File::open(&path).unwrap(), done);
            waiting.push((rx, algo.digest(&data)));
        }
        for (rx, want) in waiting {
            let d = rx.recv().unwrap().unwrap();
            assert_eq!(d.first().to_vec(), want);
        }
        let stats = pool.stats();
        assert_eq!(stats.iter().map(|s| s.jobs_done).sum::<u64>(), 30);
        if !prefer_uring {
            assert!(stats.iter().all(|s| s.reader == "pread"));
        }
    }
}

#[test]
fn a_pipe_is_refused_as_a_descriptor_job() {
    let pool = file_pool(true);
    let mut child = std::process::Command::new("true")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pipe: std::os::fd::OwnedFd = child.stdout.take().unwrap().into();
    let (done, rx) = completion();
    pool.submit_file(Algorithm::Md5, std::fs::File::from(pipe), done);
    let err = rx.recv().unwrap().unwrap_err();
    assert!(
        matches!(err, JobError::Read(ref m) if m.contains("regular")),
        "{err}"
    );
    child.wait().unwrap();
}

#[test]
fn shutdown_finishes_queued_descriptor_jobs() {
    let dir = TempDir::new("pool");
    let pool = file_pool(true);
    let data = vec![7u8; 300_000];
    let path = dir.write("shutdown", &data);
    let mut waiting = Vec::new();
    for _ in 0..10 {
        let (done, rx) = completion();
        pool.submit_file(Algorithm::Sha256, std::fs::File::open(&path).unwrap(), done);
        waiting.push(rx);
    }
    pool.shutdown();
    for rx in waiting {
        assert_eq!(
            rx.recv().unwrap().unwrap().first().to_vec(),
            Algorithm::Sha256.digest(&data)
        );
    }
}

#[test]
fn md5_streams_share_lanes_on_every_available_backend() {
    for platform in crate::md5::Platform::ALL {
        if !platform.is_available() {
            eprintln!("skipping md5 backend {platform}: not on this CPU");
            continue;
        }
        let pool = HasherPool::start(PoolConfig {
            hashers: 1,
            pin: false,
            md5: crate::md5::Tuning::fixed(platform),
            ..PoolConfig::default()
        })
        .unwrap();
        let mut jobs = Vec::new();
        for i in 0..40usize {
            let data: Vec<u8> = (0..(i * 4099 % 70_000))
                .map(|b| (b * 7 + i) as u8)
                .collect();
            let (done, rx) = completion();
            jobs.push((pool.open_stream(Algorithm::Md5, done), rx, data));
        }
        // Interleave 4 KiB chunks of every stream so batches hold many jobs.
        block_on(async {
            for pos in (0..70_000).step_by(4096) {
                for (job, _, data) in jobs.iter_mut() {
                    if pos < data.len() {
                        let end = (pos + 4096).min(data.len());
                        job.send(Bytes::copy_from_slice(&data[pos..end]))
                            .await
                            .unwrap();
                    }
                }
            }
        });
        for (job, rx, data) in jobs {
            job.finish().unwrap();
            assert_eq!(
                rx.recv().unwrap().unwrap().first().to_vec(),
                Algorithm::Md5.digest(&data),
                "{platform}"
            );
        }
        let s = &pool.stats()[0];
        if platform != crate::md5::Platform::Portable {
            assert!(
                s.kernel_calls > 0 && s.lane_blocks > 0,
                "{platform}: lanes unused: {s:?}"
            );
        }
    }
}

#[test]
fn an_unavailable_md5_backend_is_refused() {
    for platform in crate::md5::Platform::ALL {
        if !platform.is_available() {
            let err = HasherPool::start(PoolConfig {
                md5: crate::md5::Tuning::fixed(platform),
                ..PoolConfig::default()
            })
            .err()
            .unwrap();
            assert!(err.to_string().contains(platform.name()));
        }
    }
}

/// Files of very unequal lengths, some reads running ahead of others (their
/// rounds are held back for the next lane pass), files ending while others'
/// chunks are still pending, and MD5 uploads arriving alongside: every digest
/// must still come out right, and nothing may be left waiting.
#[test]
fn md5_files_and_streams_of_unequal_lengths_hash_right_together() {
    let dir = TempDir::new("pool");
    for prefer_uring in [true, false] {
        let pool = HasherPool::start(PoolConfig {
            hashers: 2,
            pin: false,
            prefer_uring,
            max_streams: 16,
            stream_budget_bytes: 8192,
            stream_budget_chunks: 2,
            reader: crate::read::ReaderConfig {
                read_len: 4096,
                reads_per_file: 3,
                max_files: 8,
                ..crate::read::ReaderConfig::default()
            },
            ..PoolConfig::default()
        })
        .unwrap();
        let mut waiting = Vec::new();
        for i in 0..40usize {
            let len = [0, 63, 64, 4096 * 3 + 1, 150_000, 9_000, 1 << 19][i % 7] + i;
            let data: Vec<u8> = (0..len).map(|b| (b * 7 + i * 13) as u8).collect();
            let path = dir.write(&format!("unequal-{prefer_uring}-{i}"), &data);
            let (done, rx) = completion();
            pool.submit_file(Algorithm::Md5, std::fs::File::open(&path).unwrap(), done);
            waiting.push((rx, Algorithm::Md5.digest(&data)));
        }
        let mut streams = Vec::new();
        for i in 0..6usize {
            let data: Vec<u8> = (0..(i * 20_011 % 70_000)).map(|b| (b ^ i) as u8).collect();
            let (done, rx) = completion();
            streams.push((pool.open_stream(Algorithm::Md5, done), data.clone()));
            waiting.push((rx, Algorithm::Md5.digest(&data)));
        }
        block_on(async {
            for (job, data) in streams.iter_mut() {
                for piece in data.chunks(3000) {
                    job.send(Bytes::copy_from_slice(piece)).await.unwrap();
                }
            }
        });
        for (job, _) in streams {
            job.finish().unwrap();
        }
        for (rx, want) in waiting {
            let d = rx
                .recv_timeout(std::time::Duration::from_secs(30))
                .expect("job finished")
                .unwrap();
            assert_eq!(d.first().to_vec(), want);
        }
        let stats = pool.stats();
        assert_eq!(stats.iter().map(|s| s.jobs_done).sum::<u64>(), 46);
        assert_eq!(stats.iter().map(|s| s.active_jobs).sum::<u64>(), 0);
    }
}

#[test]
fn md5_streams_fill_one_hashers_lanes_and_other_streams_spread() {
    let pool = HasherPool::start(PoolConfig {
        hashers: 2,
        pin: false,
        inline_max_bytes: 0,
        ..PoolConfig::default()
    })
    .unwrap();
    let lanes = pool.md5_lanes();
    let active =
        |pool: &HasherPool| -> Vec<u64> { pool.stats().iter().map(|h| h.active_jobs).collect() };
    let open = |algo| pool.open_stream(algo, Box::new(|_| {}));
    let mut jobs: Vec<StreamJob> = (0..3).map(|_| open(Algorithm::Md5)).collect();
    if lanes > 1 {
        // Packed into one hasher's lanes, until they are full.
        assert!(active(&pool).contains(&3), "{:?}", active(&pool));
        jobs.extend((3..lanes).map(|_| open(Algorithm::Md5)));
        assert!(
            active(&pool).contains(&(lanes as u64)),
            "{:?}",
            active(&pool)
        );
        jobs.push(open(Algorithm::Md5));
        assert!(
            active(&pool).contains(&1),
            "the lane-less stream went to the full hasher: {:?}",
            active(&pool)
        );
    } else {
        assert!(!active(&pool).contains(&3), "{:?}", active(&pool));
    }
    // Other algorithms go to the least busy hasher.
    let before = active(&pool);
    let least = (0..2).min_by_key(|&i| before[i]).unwrap();
    jobs.push(open(Algorithm::Sha256));
    assert_eq!(active(&pool)[least], before[least] + 1);
    for job in jobs {
        job.finish().unwrap();
    }
}

#[test]
fn progress_grows_with_bytes_and_with_jobs_that_have_none() {
    let dir = TempDir::new("pool");
    for prefer_uring in [true, false] {
        let pool = file_pool(prefer_uring);
        assert_eq!(pool.progress(), 0);
        let data = vec![5u8; 300_000];
        let path = dir.write(&format!("progress-{prefer_uring}"), &data);
        let (done, rx) = completion();
        pool.submit_file(Algorithm::Md5, std::fs::File::open(&path).unwrap(), done);
        rx.recv().unwrap().unwrap();
        let after_file = pool.progress();
        assert!(after_file > data.len() as u64, "{after_file}");
        // An empty file hashes no byte, yet finishing it is progress.
        let empty = dir.write(&format!("progress-empty-{prefer_uring}"), b"");
        let (done, rx) = completion();
        pool.submit_file(Algorithm::Sha1, std::fs::File::open(&empty).unwrap(), done);
        rx.recv().unwrap().unwrap();
        assert!(pool.progress() > after_file);
    }
}

/// A watched file job publishes its bytes as they are hashed: the count
/// never runs ahead of the file and is its length once the job is done,
/// for MD5 (hashed in lanes) and the others (hashed as chunks arrive).
#[test]
fn a_counted_file_job_counts_up_to_its_length() {
    let dir = TempDir::new("pool");
    let pool = file_pool(true);
    let data = vec![9u8; 3_000_000];
    let path = dir.write("counted", &data);
    for algo in [Algorithm::Md5, Algorithm::Sha256] {
        let hashed = Arc::new(AtomicU64::new(0));
        let (done, rx) = completion();
        pool.submit_file_counted(
            algo,
            std::fs::File::open(&path).unwrap(),
            Some(hashed.clone()),
            done,
        );
        let mut seen = 0;
        let digest = loop {
            let now = hashed.load(Ordering::Relaxed);
            assert!(now >= seen && now <= data.len() as u64, "{now}");
            seen = now;
            match rx.try_recv() {
                Ok(d) => break d.unwrap(),
                Err(_) => std::thread::sleep(std::time::Duration::from_micros(200)),
            }
        };
        assert_eq!(digest.hashes, [(algo, algo.digest(&data))]);
        assert_eq!(hashed.load(Ordering::Relaxed), data.len() as u64, "{algo}");
    }
}

#[test]
fn streams_past_the_bound_are_refused_busy_until_one_ends() {
    let pool = HasherPool::start(PoolConfig {
        hashers: 2,
        pin: false,
        max_streams: 3,
        ..PoolConfig::default()
    })
    .unwrap();
    let mut open = Vec::new();
    for _ in 0..3 {
        let (done, rx) = completion();
        open.push((pool.try_open_stream(Algorithm::Md5, done).unwrap(), rx));
    }
    // Refused before it started: its completion is dropped uncalled.
    let (done, rx) = completion();
    assert_eq!(
        pool.try_open_stream(Algorithm::Md5, done).err(),
        Some(JobError::Busy)
    );
    assert!(rx.recv().is_err(), "a refused job has no completion");
    // Through `open_stream`, the refusal is the job's outcome.
    let (done, rx) = completion();
    let mut refused = pool.open_stream(Algorithm::Sha1, done);
    assert_eq!(rx.recv().unwrap(), Err(JobError::Busy));
    assert_eq!(
        block_on(refused.send(Bytes::from_static(b"x"))),
        Err(JobClosed)
    );
    assert_eq!(refused.finish(), Err(JobClosed));
    // An ended job (inline or on a hasher, success or failure) frees its slot.
    let (job, rx) = open.pop().unwrap();
    job.finish().unwrap();
    rx.recv().unwrap().unwrap();
    let (job, rx) = open.pop().unwrap();
    drop(job);
    assert!(rx.recv().unwrap().is_err());
    for _ in 0..2 {
        let (done, rx) = completion();
        let job = pool.try_open_stream(Algorithm::Md5, done).unwrap();
        job.finish().unwrap();
        assert_eq!(
            rx.recv().unwrap().unwrap().first().to_vec(),
            Algorithm::Md5.digest(b"")
        );
    }
}

#[test]
fn a_hasher_that_panics_fails_its_jobs_and_the_others_go_on() {
    let pool = small_pool(2);
    // Streams on both hashers (other algorithms spread to the least busy).
    let mut jobs = Vec::new();
    for _ in 0..6 {
        let (done, rx) = completion();
        let mut job = pool.open_stream(Algorithm::Sha256, done);
        block_on(job.send(Bytes::from_static(b"some data"))).unwrap();
        jobs.push((job, rx));
    }
    let before = pool.stats();
    assert!(before.iter().all(|h| h.active_jobs == 3), "{before:?}");
    pool.inject_panic(0);
    // Every job of the dead hasher has ended, with the reason (the thread is
    // joined); none stays open.
    let mut lost = 0;
    let mut survivors = Vec::new();
    for (mut job, rx) in jobs {
        // A producer of a lost job learns it at its next send, never hangs.
        let more = block_on(job.send(Bytes::from(vec![7u8; 10_000])));
        match rx.try_recv() {
            Ok(Err(JobError::Lost(reason))) => {
                assert_eq!(reason, finish::LOST);
                assert_eq!(more, Err(JobClosed));
                lost += 1;
            }
            Ok(other) => panic!("a job ended early with {other:?}"),
            Err(_) => survivors.push((job, rx)),
        }
    }
    assert_eq!(lost, 3);
    let after = pool.stats();
    assert!(!after[0].alive && after[1].alive, "{after:?}");
    assert_eq!(after[0].active_jobs, 0);
    assert_eq!(after[0].jobs_failed, 3);
    for (job, rx) in survivors {
        job.finish().unwrap();
        let mut data = b"some data".to_vec();
        data.extend(vec![7u8; 10_000]);
        assert_eq!(
            rx.recv().unwrap().unwrap().first().to_vec(),
            Algorithm::Sha256.digest(&data)
        );
    }
    // New jobs go to the live hasher only, streams and files alike.
    for algo in [Algorithm::Md5, Algorithm::Sha1] {
        let (done, rx) = completion();
        let mut job = pool.open_stream(algo, done);
        block_on(job.send(Bytes::from_static(b"after"))).unwrap();
        job.finish().unwrap();
        assert_eq!(
            rx.recv().unwrap().unwrap().first().to_vec(),
            algo.digest(b"after")
        );
    }
    assert_eq!(pool.stats()[0].jobs_done, 0);
    pool.shutdown();
}

#[test]
fn a_finisher_dropped_unfinished_completes_its_job_once() {
    let counters = Arc::new(Counters::default());
    let (done, rx) = completion();
    let finisher = finish::Finisher::new(done).on(counters.clone());
    assert_eq!(counters.active.load(Ordering::Relaxed), 1);
    drop(finisher);
    assert_eq!(
        rx.recv().unwrap(),
        Err(JobError::Lost(finish::LOST.to_string()))
    );
    assert!(rx.recv().is_err(), "called once");
    assert_eq!(counters.active.load(Ordering::Relaxed), 0);
    assert_eq!(counters.jobs_failed.load(Ordering::Relaxed), 1);
}

/// A hasher whose io_uring reader fails mid-run (forced through the
/// test-only `fail_uring` flag) reports pread in `stats()` from then on, and
/// keeps hashing files.
#[test]
fn stats_report_pread_after_a_reader_switched_mid_run() {
    static FAIL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let pool = HasherPool::start(PoolConfig {
        hashers: 1,
        pin: false,
        prefer_uring: true,
        reader: crate::read::ReaderConfig {
            fail_uring: Some(&FAIL),
            ..crate::read::ReaderConfig::default()
        },
        ..PoolConfig::default()
    })
    .unwrap();
    if pool.stats()[0].reader != "io_uring" {
        eprintln!("skipping: the pool's reader is not io_uring on this machine or build");
        assert_eq!(pool.stats()[0].reader, "pread");
        return;
    }
    let dir = TempDir::new("pool-switch");
    let data = crate::testutil::random_bytes(200_000, 5);
    let path = dir.write("f", &data);
    let hash = |pool: &HasherPool| {
        let (done, rx) = completion();
        pool.submit_file(Algorithm::Md5, std::fs::File::open(&path).unwrap(), done);
        rx.recv_timeout(std::time::Duration::from_secs(30))
            .expect("job finished")
    };
    assert_eq!(
        hash(&pool).unwrap().first().to_vec(),
        Algorithm::Md5.digest(&data)
    );
    assert_eq!(pool.stats()[0].reader, "io_uring");

    FAIL.store(true, std::sync::atomic::Ordering::SeqCst);
    // The file being read when the ring fails fails with the reason (or
    // succeeds on pread, if the hasher reaped between files).
    match hash(&pool) {
        Ok(d) => assert_eq!(d.first().to_vec(), Algorithm::Md5.digest(&data)),
        Err(e) => assert!(e.to_string().contains("io_uring failed"), "{e}"),
    }
    assert!(
        !FAIL.load(std::sync::atomic::Ordering::SeqCst),
        "failure not injected"
    );
    assert_eq!(pool.stats()[0].reader, "pread");
    assert_eq!(
        hash(&pool).unwrap().first().to_vec(),
        Algorithm::Md5.digest(&data)
    );
    assert_eq!(pool.stats()[0].reader, "pread");
}

/// Several algorithms in one job: interleaved streams whose MD5 runs in the
/// lanes while their other algorithms are hashed as chunks arrive, and
/// descriptor jobs read once for all their algorithms; every digest equal to
/// the algorithm's own one-shot digest, in the job's order.
#[test]
fn several_algorithms_in_one_pass_match_each_alone() {
    let pool = small_pool(2);
    let sets: Vec<Algorithms> = [
        "md5,sha256,crc32c",
        "sha256,md5",
        "blake3,crc64nvme,sha3-512",
        "crc32,md5,sha1,sha224,sha384,sha512,sha3-256",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    let mut jobs = Vec::new();
    for i in 0..12usize {
        let data = crate::testutil::random_bytes(i * 7919 % 50_000, i as u64);
        let algos = sets[i % sets.len()];
        let (done, rx) = completion();
        jobs.push((pool.open_stream(algos, done), rx, data, algos));
    }
    block_on(async {
        for pos in (0..50_000).step_by(977) {
            for (job, _, data, _) in jobs.iter_mut() {
                if pos < data.len() {
                    let end = (pos + 977).min(data.len());
                    job.send(Bytes::copy_from_slice(&data[pos..end]))
                        .await
                        .unwrap();
                }
            }
        }
    });
    let check = |d: Digest, data: &[u8], algos: Algorithms| {
        assert_eq!(d.len, data.len() as u64);
        let got: Vec<Algorithm> = d.hashes.iter().map(|(a, _)| *a).collect();
        assert_eq!(got, algos.as_slice());
        for (algo, digest) in &d.hashes {
            assert_eq!(*digest, algo.digest(data), "{algo} of {algos}");
        }
    };
    for (job, rx, data, algos) in jobs {
        job.finish().unwrap();
        check(rx.recv().unwrap().unwrap(), &data, algos);
    }
    let dir = TempDir::new("multi-files");
    let pool = file_pool(true);
    for (i, algos) in sets.iter().enumerate() {
        let data = crate::testutil::random_bytes(300_000 + i * 4099, i as u64);
        let path = dir.path().join(format!("f{i}"));
        std::fs::write(&path, &data).unwrap();
        let (done, rx) = completion();
        pool.submit_file(*algos, std::fs::File::open(&path).unwrap(), done);
        check(rx.recv().unwrap().unwrap(), &data, *algos);
    }
}
