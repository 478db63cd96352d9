//! Both engines against `std::fs::read`, and the contract of `poll`: per
//! token, `Data` in file order, then exactly one `Eof` or `Failed`.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::{AddError, FileReader, ReadEvent, ReaderConfig, ReaderKind};
use crate::testutil::{random_bytes, TempDir, XorShift};

fn config(read_len: usize, reads_per_file: usize, max_files: usize) -> ReaderConfig {
    ReaderConfig {
        read_len,
        reads_per_file,
        max_files,
        ..ReaderConfig::default()
    }
}

/// An io_uring reader, or `None` (with a message) where the machine cannot
/// run one.
fn uring_reader(cfg: ReaderConfig) -> Option<FileReader> {
    let reader = FileReader::new(true, cfg);
    if reader.kind() == ReaderKind::Uring {
        Some(reader)
    } else {
        eprintln!(
            "skipping the io_uring case: {}",
            reader.fallback_reason().unwrap_or("no reason given")
        );
        None
    }
}

/// A pread reader whose reads come back short and out of order.
fn chaos_reader(cfg: ReaderConfig, seed: u64) -> FileReader {
    let mut reader = FileReader::new(false, cfg);
    if let super::Engine::Pread(engine) = &mut reader.engine {
        engine.chaos = Some(XorShift::new(seed));
    }
    reader
}

/// One reader of each kind this machine can run: pread, pread with chaos,
/// and io_uring where it can.
fn readers(cfg: ReaderConfig) -> Vec<FileReader> {
    let mut readers = vec![FileReader::new(false, cfg), chaos_reader(cfg, 0x5eed)];
    readers.extend(uring_reader(cfg));
    readers
}

/// What one token received.
#[derive(Default)]
struct Received {
    data: Vec<u8>,
    chunk_lens: Vec<usize>,
    end: Option<io::Result<u64>>,
}

/// Everything delivered, checked against the contract as it arrives.
#[derive(Default)]
struct Log {
    files: HashMap<u64, Received>,
    /// Tokens in delivery order.
    order: Vec<u64>,
}

impl Log {
    /// Records events, checking that nothing follows a token's end; hands
    /// every buffer back unless `keep` is set, in which case they are returned.
    fn record(
        &mut self,
        events: Vec<ReadEvent>,
        reader: &mut FileReader,
        keep: bool,
    ) -> Vec<Vec<u8>> {
        let mut kept = Vec::new();
        for event in events {
            let token = match &event {
                ReadEvent::Data { token, .. }
                | ReadEvent::Eof { token, .. }
                | ReadEvent::Failed { token, .. } => *token,
            };
            self.order.push(token);
            let file = self.files.entry(token).or_default();
            assert!(
                file.end.is_none(),
                "event for token {token} after its end: {event:?}"
            );
            match event {
                ReadEvent::Data { data, .. } => {
                    assert!(!data.is_empty(), "empty Data for token {token}");
                    file.data.extend_from_slice(&data);
                    file.chunk_lens.push(data.len());
                    if keep {
                        kept.push(data);
                    } else {
                        reader.recycle(data);
                    }
                }
                ReadEvent::Eof { len, .. } => file.end = Some(Ok(len)),
                ReadEvent::Failed { error, .. } => file.end = Some(Err(error)),
            }
        }
        kept
    }
}

/// Polls (waiting) until the reader has nothing left to do, recycling every
/// buffer. Panics instead of hanging.
fn drain(reader: &mut FileReader, log: &mut Log) {
    for _ in 0..1_000_000 {
        if !reader.has_work() {
            return;
        }
        let mut events = Vec::new();
        reader.poll(true, &mut events);
        assert!(!events.is_empty(), "poll(wait) with work returned nothing");
        log.record(events, reader, false);
    }
    panic!("reader still busy after a million polls");
}

/// Checks that `token` received exactly `expected`, in `read_len` chunks.
fn assert_read(log: &Log, token: u64, expected: &[u8], read_len: usize, kind: ReaderKind) {
    let got = &log.files[&token];
    match &got.end {
        Some(Ok(len)) => assert_eq!(
            *len,
            expected.len() as u64,
            "{kind:?} token {token}: Eof len"
        ),
        other => panic!("{kind:?} token {token}: ended with {other:?}"),
    }
    assert!(
        got.data == expected,
        "{kind:?} token {token}: {} bytes differ from std::fs::read",
        expected.len()
    );
    if let Some((_, all_but_last)) = got.chunk_lens.split_last() {
        assert!(
            all_but_last.iter().all(|&n| n == read_len),
            "{kind:?} token {token}: chunks {:?}",
            got.chunk_lens
        );
    }
}

/// Adds every file (token = index), drains, and compares with `std::fs::read`.
fn check_files(reader: &mut FileReader, paths: &[PathBuf]) -> Log {
    let read_len = reader.config().read_len;
    let mut log = Log::default();
    for (token, path) in paths.iter().enumerate() {
        let mut file = File::open(path).unwrap();
        // The descriptor's position must not matter.
        file.seek(SeekFrom::End(0)).unwrap();
        reader.add(token as u64, file).unwrap();
    }
    drain(reader, &mut log);
    for (token, path) in paths.iter().enumerate() {
        assert_read(
            &log,
            token as u64,
            &fs::read(path).unwrap(),
            read_len,
            reader.kind(),
        );
    }
    assert_eq!(reader.active_files(), 0);
    assert_eq!(reader.reads_in_flight(), 0);
    log
}

#[test]
fn boundary_sizes_match_std_read() {
    let dir = TempDir::new("read");
    let cfg = ReaderConfig::default();
    let n = cfg.read_len;
    let sizes = [0, 1, n - 1, n, n + 1, 2 * n, 3 * n + 17, (5 << 20) + 3];
    let paths: Vec<_> = sizes
        .iter()
        .enumerate()
        .map(|(i, &len)| dir.write(&format!("f{i}"), &random_bytes(len, i as u64)))
        .collect();
    for mut reader in readers(cfg) {
        check_files(&mut reader, &paths);
        // Every buffer came back.
        assert_eq!(reader.buffers_free(), reader.buffers_allocated());
    }
}

#[test]
fn many_random_files_interleave_and_match_std_read() {
    let dir = TempDir::new("read");
    let mut rng = XorShift(0x5eed);
    let paths: Vec<_> = (0..40)
        .map(|i| {
            let len = match i % 4 {
                0 => rng.below(100),
                _ => rng.below(64 * 1024),
            };
            dir.write(&format!("f{i}"), &random_bytes(len, rng.next()))
        })
        .collect();
    for read_len in [4096, 1000] {
        for mut reader in readers(config(read_len, 3, 40)) {
            let log = check_files(&mut reader, &paths);
            // Some token's events are split by another token's: the runs of
            // equal tokens outnumber the tokens.
            let mut runs = log.order.clone();
            runs.dedup();
            assert!(
                runs.len() > log.files.len(),
                "{:?}: no interleaving in {:?}",
                reader.kind(),
                log.order
            );
        }
    }
}

/// Files evicted from the page cache: io_uring reads go to the disk and may
/// complete out of order.
#[test]
fn cold_files_match_std_read() {
    let dir = TempDir::new("read");
    let mut rng = XorShift(11);
    let paths: Vec<_> = (0..12)
        .map(|i| dir.write(&format!("f{i}"), &random_bytes(rng.below(3 << 20), i)))
        .collect();
    for mut reader in readers(config(64 * 1024, 4, 12)) {
        evict(&paths);
        check_files(&mut reader, &paths);
    }
}

#[test]
fn short_and_out_of_order_reads_are_delivered_in_order() {
    let dir = TempDir::new("read");
    let mut rng = XorShift(7);
    let read_len = 4096;
    let paths: Vec<_> = [0, 1, read_len - 1, read_len, read_len + 1, 50_000]
        .iter()
        .map(|&len| dir.write(&format!("f{len}"), &random_bytes(len, rng.next())))
        .collect();
    for seed in 1..20 {
        check_files(&mut chaos_reader(config(read_len, 4, 8), seed), &paths);
    }
}

#[test]
fn cancel_mid_file_stops_its_events_and_loses_no_buffer() {
    let dir = TempDir::new("read");
    let paths: Vec<_> = (0..3)
        .map(|i| dir.write(&format!("f{i}"), &random_bytes(1 << 20, i)))
        .collect();
    let read_len = 4096;
    for mut reader in readers(config(read_len, 4, 4)) {
        let kind = reader.kind();
        for (token, path) in paths.iter().enumerate() {
            reader.add(token as u64, File::open(path).unwrap()).unwrap();
        }
        let mut log = Log::default();
        while log.files.get(&1).map_or(0, |f| f.chunk_lens.len()) < 2 {
            let mut events = Vec::new();
            reader.poll(true, &mut events);
            log.record(events, &mut reader, false);
        }
        reader.cancel(1);
        reader.cancel(1);
        reader.cancel(99);
        // The token may be reused at once; the new file must not get the
        // cancelled one's reads.
        reader.add(1, File::open(&paths[2]).unwrap()).unwrap();
        let cancelled = std::mem::take(&mut log.files.get_mut(&1).unwrap().data);
        assert!(
            cancelled.len() < 1 << 20,
            "{kind:?}: file 1 finished before cancel"
        );
        assert!(cancelled[..] == fs::read(&paths[1]).unwrap()[..cancelled.len()]);
        log.files.get_mut(&1).unwrap().chunk_lens.clear();
        drain(&mut reader, &mut log);
        assert_read(&log, 0, &fs::read(&paths[0]).unwrap(), read_len, kind);
        assert_read(&log, 1, &fs::read(&paths[2]).unwrap(), read_len, kind);
        assert_read(&log, 2, &fs::read(&paths[2]).unwrap(), read_len, kind);
        assert_eq!(reader.reads_in_flight(), 0, "{kind:?}");
        assert_eq!(
            reader.buffers_free(),
            reader.buffers_allocated(),
            "{kind:?}: a buffer was lost"
        );
        assert!(reader.buffers_allocated() <= 3 * 4 + 4, "{kind:?}");
    }
}

#[test]
fn non_regular_files_are_rejected() {
    let dir = TempDir::new("read");
    let mut child = Command::new("true").stdout(Stdio::piped()).spawn().unwrap();
    let pipe = File::from(OwnedFd::from(child.stdout.take().unwrap()));
    let (socket, _peer) = UnixStream::pair().unwrap();
    let socket = File::from(OwnedFd::from(socket));
    let directory = File::open(dir.path()).unwrap();
    let null = File::open("/dev/null").unwrap();
    for mut reader in readers(ReaderConfig::default()) {
        for (file, expected) in [
            (pipe.try_clone().unwrap(), "pipe"),
            (socket.try_clone().unwrap(), "socket"),
            (directory.try_clone().unwrap(), "directory"),
            (null.try_clone().unwrap(), "character device"),
        ] {
            match reader.add(7, file) {
                Err(e @ AddError::NotRegularFile { file_type, .. }) => {
                    assert_eq!(file_type, expected);
                    assert!(e.to_string().contains(expected), "{e}");
                    assert!(e.into_file().is_some(), "the file is given back");
                }
                other => panic!("{expected} accepted: {other:?}"),
            }
        }
        assert_eq!(reader.active_files(), 0);
        assert!(!reader.has_work());
        let mut events = Vec::new();
        reader.poll(true, &mut events);
        assert!(events.is_empty());
    }
    child.wait().unwrap();
}

#[test]
fn full_reader_and_duplicate_tokens_give_the_file_back() {
    let dir = TempDir::new("read");
    let path = dir.write("f", &random_bytes(10_000, 1));
    for mut reader in readers(config(4096, 2, 2)) {
        reader.add(1, File::open(&path).unwrap()).unwrap();
        match reader.add(1, File::open(&path).unwrap()) {
            Err(e @ AddError::DuplicateToken { token: 1, .. }) => assert!(e.into_file().is_some()),
            other => panic!("duplicate token accepted: {other:?}"),
        }
        reader.add(2, File::open(&path).unwrap()).unwrap();
        match reader.add(3, File::open(&path).unwrap()) {
            Err(e @ AddError::Full { max_files: 2, .. }) => {
                assert!(e.to_string().contains("2 of 2"), "{e}");
                assert!(e.into_file().is_some());
            }
            other => panic!("third file accepted: {other:?}"),
        }
        let mut log = Log::default();
        drain(&mut reader, &mut log);
        assert_eq!(log.files.len(), 2);
    }
}

#[test]
fn reads_per_file_bounds_buffers_when_the_consumer_does_not_recycle() {
    let dir = TempDir::new("read");
    let read_len = 4096;
    let per_file = 3;
    let paths: Vec<_> = (0..2)
        .map(|i| dir.write(&format!("f{i}"), &random_bytes(64 * 1024, i)))
        .collect();
    for mut reader in readers(config(read_len, per_file, 4)) {
        let kind = reader.kind();
        for (token, path) in paths.iter().enumerate() {
            reader.add(token as u64, File::open(path).unwrap()).unwrap();
        }
        let mut log = Log::default();
        let mut held = Vec::new();
        while reader.has_work() {
            let mut events = Vec::new();
            reader.poll(true, &mut events);
            held.extend(log.record(events, &mut reader, true));
            for token in 0..2 {
                let delivered = log.files.get(&token).map_or(0, |f| f.chunk_lens.len());
                assert!(
                    delivered <= per_file,
                    "{kind:?}: token {token} got {delivered} chunks"
                );
            }
            assert!(
                reader.reads_in_flight() + held.len() <= 2 * per_file,
                "{kind:?}"
            );
        }
        assert_eq!(held.len(), 2 * per_file, "{kind:?}");
        // Stalled until a buffer comes back: poll(wait) must not block.
        let mut events = Vec::new();
        reader.poll(true, &mut events);
        assert!(events.is_empty(), "{kind:?}: {events:?}");
        // One buffer back: its file may read one more segment.
        reader.recycle(held.pop().unwrap());
        assert!(reader.has_work());
        reader.poll(true, &mut events);
        assert!(!events.is_empty());
        for buf in held.drain(..) {
            reader.recycle(buf);
        }
        log.record(events, &mut reader, false);
        drain(&mut reader, &mut log);
        for (token, path) in paths.iter().enumerate() {
            assert_read(&log, token as u64, &fs::read(path).unwrap(), read_len, kind);
        }
    }
}

#[test]
fn file_truncated_while_read_ends_without_hanging() {
    let dir = TempDir::new("read");
    let original = random_bytes(8 << 20, 3);
    let path = dir.write("f", &original);
    let new_len = (1 << 20) + 5;
    for mut reader in readers(config(64 * 1024, 4, 4)) {
        let kind = reader.kind();
        fs::write(&path, &original).unwrap();
        reader.add(0, File::open(&path).unwrap()).unwrap();
        let mut log = Log::default();
        let mut events = Vec::new();
        reader.poll(true, &mut events);
        log.record(events, &mut reader, false);
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(new_len)
            .unwrap();
        drain(&mut reader, &mut log);
        let got = &log.files[&0];
        match &got.end {
            Some(Ok(len)) => {
                assert_eq!(*len, got.data.len() as u64, "{kind:?}");
                let checked = got.data.len().min(new_len as usize);
                assert!(got.data[..checked] == original[..checked], "{kind:?}");
            }
            Some(Err(e)) => eprintln!("{kind:?}: truncated file failed: {e}"),
            None => panic!("{kind:?}: truncated file never ended"),
        }
    }
}

#[test]
fn failed_ring_setup_falls_back_to_pread_with_a_reason() {
    let cfg = config(4096, 2, 2);
    let reader = FileReader::with_ring_setup(true, cfg, |_| {
        Err(io::Error::from_raw_os_error(libc::EPERM))
    });
    assert_eq!(reader.kind(), ReaderKind::Pread);
    assert_eq!(reader.kind().name(), "pread");
    let reason = reader.fallback_reason().expect("a reason");
    if cfg!(feature = "no_uring") {
        assert!(reason.contains("no_uring"), "{reason}");
    } else {
        assert!(
            reason.contains("io_uring_setup failed") && reason.contains("Operation not permitted"),
            "{reason}"
        );
    }
    let not_wanted = FileReader::new(false, cfg);
    assert_eq!(not_wanted.kind(), ReaderKind::Pread);
    assert!(not_wanted.fallback_reason().is_some());
    if let Some(uring) = uring_reader(cfg) {
        assert_eq!(uring.kind().name(), "io_uring");
        assert!(uring.fallback_reason().is_none());
    }
    // The fallback still reads.
    let dir = TempDir::new("read");
    let mut reader = reader;
    check_files(&mut reader, &[dir.write("f", &random_bytes(10_000, 9))]);
}

#[test]
fn dropping_a_busy_reader_waits_for_its_reads() {
    let dir = TempDir::new("read");
    let paths: Vec<_> = (0..4)
        .map(|i| dir.write(&format!("f{i}"), &random_bytes(1 << 20, i)))
        .collect();
    for mut reader in readers(config(64 * 1024, 4, 4)) {
        for (token, path) in paths.iter().enumerate() {
            reader.add(token as u64, File::open(path).unwrap()).unwrap();
        }
        reader.cancel(0);
        drop(reader);
    }
}

#[test]
fn reader_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<FileReader>();
}

/// Drops the files' pages from the page cache.
fn evict(paths: &[PathBuf]) {
    use std::os::fd::AsRawFd;
    for path in paths {
        let file = File::open(path).unwrap();
        file.sync_all().unwrap();
        // SAFETY: a plain system call on a descriptor we own.
        let advised =
            unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(advised, 0);
    }
}

/// Hashing-free throughput of 1000 page-cached 1 MiB files on one thread:
/// io_uring and pread over a grid of configurations, and mmap for
/// comparison. Not a pass/fail test. Run:
/// `cargo test -p hashcore --release --lib read::tests::measure_throughput -- --ignored --nocapture`
#[test]
#[ignore]
fn measure_throughput() {
    const FILES: usize = 1000;
    const FILE_LEN: usize = 1 << 20;
    let dir = TempDir::new("read");
    let data = random_bytes(FILE_LEN, 1);
    let paths: Vec<_> = (0..FILES)
        .map(|i| {
            let path = dir.path().join(format!("f{i}"));
            File::create(&path).unwrap().write_all(&data).unwrap();
            path
        })
        .collect();
    let gib = (FILES * FILE_LEN) as f64 / f64::from(1 << 30);
    let best = |run: &mut dyn FnMut() -> u64| {
        let mut best = f64::MAX;
        for _ in 0..5 {
            let start = Instant::now();
            let sum = run();
            best = best.min(start.elapsed().as_secs_f64());
            std::hint::black_box(sum);
        }
        gib / best
    };
    let configs = [
        config(64 << 10, 2, 16),
        config(64 << 10, 4, 16),
        config(128 << 10, 1, 16),
        config(128 << 10, 2, 16),
        config(128 << 10, 4, 16),
        config(128 << 10, 8, 16),
        config(128 << 10, 4, 4),
        config(128 << 10, 4, 64),
        config(256 << 10, 4, 16),
        config(1 << 20, 4, 16),
    ];
    println!("best of 5 runs, GiB/s: read only / reading every word after");
    for cfg in configs {
        let mut line = format!(
            "read_len {:>4} KiB, reads/file {}, files {:>2} ({:>3} MiB of buffers):",
            cfg.read_len >> 10,
            cfg.reads_per_file,
            cfg.max_files,
            (cfg.read_len * cfg.reads_per_file * cfg.max_files) >> 20,
        );
        for prefer_uring in [true, false] {
            let mut reader = FileReader::new(prefer_uring, cfg);
            let only = best(&mut || read_all(&mut reader, &paths, false));
            let touched = best(&mut || read_all(&mut reader, &paths, true));
            line += &format!("  {} {only:5.2} / {touched:5.2}", reader.kind().name());
        }
        println!("{line}");
    }
    for (label, populate, touch_all) in [
        ("mmap, one byte per page", false, false),
        ("mmap + sum words", false, true),
        ("mmap POPULATE, one byte per page", true, false),
        ("mmap POPULATE + sum words", true, true),
    ] {
        let gibs = best(&mut || {
            paths
                .iter()
                .map(|p| mmap_touch(p, populate, touch_all))
                .sum()
        });
        println!("{label:<40} {gibs:6.2} GiB/s");
    }
    // Cold files, from the disk: the first 200, evicted before every run.
    let cold = &paths[..200];
    println!("cold (evicted) files, best of 3, GiB/s:");
    for cfg in [
        config(64 << 10, 4, 16),
        config(128 << 10, 2, 16),
        config(128 << 10, 4, 16),
        config(256 << 10, 4, 16),
    ] {
        let mut line = format!(
            "read_len {:>4} KiB, reads/file {}, files {:>2}:",
            cfg.read_len >> 10,
            cfg.reads_per_file,
            cfg.max_files
        );
        for prefer_uring in [true, false] {
            let mut reader = FileReader::new(prefer_uring, cfg);
            let mut best = f64::MAX;
            for _ in 0..3 {
                evict(cold);
                let start = Instant::now();
                std::hint::black_box(read_all(&mut reader, cold, false));
                best = best.min(start.elapsed().as_secs_f64());
            }
            let gibs = (cold.len() * FILE_LEN) as f64 / f64::from(1 << 30) / best;
            line += &format!("  {} {gibs:5.2}", reader.kind().name());
        }
        println!("{line}");
    }
}

/// Reads every file through `reader`, `max_files` at a time; with `touch`,
/// sums every word as a stand-in for a consumer that reads every byte.
fn read_all(reader: &mut FileReader, paths: &[PathBuf], touch: bool) -> u64 {
    let mut next = paths.iter().enumerate();
    let mut events = Vec::new();
    let mut sum = 0u64;
    loop {
        while reader.active_files() < reader.config().max_files {
            let Some((token, path)) = next.next() else {
                break;
            };
            reader.add(token as u64, File::open(path).unwrap()).unwrap();
        }
        if !reader.has_work() {
            return sum;
        }
        reader.poll(true, &mut events);
        for event in events.drain(..) {
            match event {
                ReadEvent::Data { data, .. } => {
                    if touch {
                        sum = sum.wrapping_add(sum_words(&data));
                    }
                    reader.recycle(data);
                }
                ReadEvent::Eof { len, .. } => sum = sum.wrapping_add(len),
                ReadEvent::Failed { error, .. } => panic!("{error}"),
            }
        }
    }
}

fn sum_words(data: &[u8]) -> u64 {
    data.chunks_exact(8)
        .map(|w| u64::from_le_bytes(w.try_into().unwrap()))
        .fold(0u64, u64::wrapping_add)
}

/// Maps a file and reads one byte per page, or every word.
fn mmap_touch(path: &Path, populate: bool, touch_all: bool) -> u64 {
    use std::os::fd::AsRawFd;
    let file = File::open(path).unwrap();
    let len = file.metadata().unwrap().len() as usize;
    let flags = libc::MAP_PRIVATE | if populate { libc::MAP_POPULATE } else { 0 };
    // SAFETY: a fresh read-only private mapping of `len` bytes of an open
    // file; the kernel picks the address.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            flags,
            file.as_raw_fd(),
            0,
        )
    };
    assert_ne!(ptr, libc::MAP_FAILED, "{}", io::Error::last_os_error());
    // SAFETY: the mapping is `len` readable bytes until the munmap below, and
    // nothing in this test writes to or truncates the file meanwhile.
    let bytes = unsafe { std::slice::from_raw_parts(ptr as *const u8, len) };
    let sum = if touch_all {
        sum_words(bytes)
    } else {
        bytes.iter().step_by(4096).map(|&b| u64::from(b)).sum()
    };
    // SAFETY: `ptr`/`len` is the mapping made above; `bytes` is not used after.
    unsafe { libc::munmap(ptr, len) };
    sum
}

/// A ring that fails mid-run (forced through the test-only `fail_uring`
/// flag, as a failed `io_uring_enter` would): the file being read fails with
/// the reason, the reader carries on with pread, and its kind, also as seen
/// through [`FileReader::shared_kind`] from another thread, says pread.
#[test]
fn a_ring_failing_mid_run_switches_the_reader_to_pread() {
    static FAIL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let cfg = ReaderConfig {
        fail_uring: Some(&FAIL),
        ..config(4096, 3, 4)
    };
    let Some(mut reader) = uring_reader(cfg) else {
        return;
    };
    let shared = reader.shared_kind();
    let dir = TempDir::new("read-switch");
    let before = dir.write("before", &random_bytes(100_000, 1));
    check_files(&mut reader, std::slice::from_ref(&before));
    assert_eq!(shared.get(), ReaderKind::Uring);

    FAIL.store(true, std::sync::atomic::Ordering::SeqCst);
    let during = dir.write("during", &random_bytes(100_000, 2));
    reader.add(0, File::open(&during).unwrap()).unwrap();
    let mut log = Log::default();
    drain(&mut reader, &mut log);
    match &log.files[&0].end {
        Some(Err(e)) => assert!(e.to_string().contains("io_uring failed"), "{e}"),
        other => panic!("the file read while the ring failed ended with {other:?}"),
    }
    assert_eq!(reader.kind(), ReaderKind::Pread);
    let seen = std::thread::spawn(move || shared.get()).join().unwrap();
    assert_eq!(seen, ReaderKind::Pread);
    assert!(reader
        .fallback_reason()
        .is_some_and(|r| r.contains("failed while running")));

    // The same reader goes on reading, now with pread.
    let after = dir.write("after", &random_bytes(300_000, 3));
    check_files(&mut reader, &[before, after]);
    assert_eq!(reader.active_files(), 0);
}
