//! MD5 throughput: one stream (ours, md-5, md5-many, and `openssl speed` for
//! reference), and many streams in SIMD lanes (per backend, buffers staggered
//! or page-aligned to each other) against md5-many's multi-buffer API.
//!
//! Run: `cargo bench -p hashd-benches --bench md5 -- --warm-up-time 1 --measurement-time 3`
//! (add a filter such as `md5/many/avx512` to run a part). Throughput is in
//! bytes of input per second; each many-stream iteration hashes every stream
//! from scratch, padding included.
//!
//! Medians from that command on an AMD EPYC (Zen 4) VM, 2 cores shared with
//! four other builds (so expect some noise), rustc 1.95, in GB/s (10^9 B/s;
//! criterion prints GiB/s). Single stream, 16 KiB and 1 MiB alike: ours 0.80,
//! md5-many 0.81, md-5 0.59; `openssl speed -evp md5 -bytes 16384` 0.77.
//! Many streams of 64 KiB each (the `portable` platform always takes the
//! single-stream path: its lanes are slower than one stream):
//!
//! | streams            | 1    | 2    | 3    | 4    | 8    | 16   | 24   | 32    | 48    | 64    |
//! |--------------------|------|------|------|------|------|------|------|-------|-------|-------|
//! | portable/staggered | 0.81 | 0.81 | 0.81 | 0.81 | 0.81 | 0.80 | 0.80 | 0.80  | 0.80  | 0.79  |
//! | avx2/staggered     | 0.81 | 1.27 | 1.90 | 2.52 | 4.98 | 7.37 | 8.07 | 7.73  | 7.70  | 7.60  |
//! | avx2/aligned       | 0.81 | 1.27 | 1.90 | 2.53 | 5.01 | 7.15 | 7.45 | 7.11  | 6.99  | 6.90  |
//! | avx512/staggered   | 0.80 | 1.15 | 1.65 | 2.25 | 4.05 | 8.19 | 9.54 | 11.29 | 11.58 | 10.82 |
//! | avx512/aligned     | 0.81 | 1.20 | 1.80 | 2.40 | 4.76 | 8.70 | 8.65 | 9.88  | 9.64  | 9.14  |
//! | md5-many/staggered | 0.67 | 0.81 | 0.92 | 1.13 | 4.29 | 6.89 | 6.35 | 10.90 | 11.94 | 10.51 |
//! | md5-many/aligned   | 0.81 | 0.81 | 0.92 | 1.23 | 4.94 | 5.88 | 6.29 | 9.85  | 10.66 | 9.75  |
//!
//! After that run, AVX-512 with up to 8 streams moved to the AVX2 kernel
//! (best of repeated runs, 16 KiB streams: 2 streams 1.27, 8 streams 5.05;
//! reruns of those rows under the same load scattered by about 10%).
//!
//! AMD EPYC, family 25 model 1 (Zen 3 class, 2.45 GHz, AVX2 and SHA-NI, no
//! AVX-512), 2 cores, quiet machine, rustc 1.95, 2026-11-30, the same
//! command with the filter
//! `'md5/single|md5/many/(avx2/(staggered|tuned)|md5-many/staggered)'`.
//! Single stream, 16 KiB and 1 MiB: ours 0.70 (the calibration kept the
//! scalar kernel: the only one on AVX2), md5-many 0.70 and 0.71, md-5 0.52;
//! `openssl speed -evp md5 -bytes 16384` 0.67. Many streams of 64 KiB,
//! staggered (`avx2/tuned`: shapes and planner costs from the start-up
//! calibration; `avx2/staggered`: the fixed Zen 4 choice):
//!
//! | streams            | 1    | 2    | 3    | 4    | 8    | 16   | 24   | 32   | 48   | 64   |
//! |--------------------|------|------|------|------|------|------|------|------|------|------|
//! | avx2/tuned         | 0.70 | 0.97 | 1.46 | 1.94 | 3.82 | 6.09 | 6.87 | 6.40 | 6.41 | 6.35 |
//! | avx2/staggered     | 0.70 | 0.97 | 1.45 | 1.93 | 3.81 | 6.05 | 6.82 | 6.41 | 6.40 | 6.28 |
//! | md5-many/staggered | 0.69 | 0.69 | 0.75 | 0.99 | 3.88 | 6.54 | 7.39 | 6.12 | 7.45 | 7.23 |
//!
//! Here md5-many's AVX2 lanes were 7% ahead at 16 and 24 streams and 14% at
//! 48 (it runs 48 as two batches; ours took turns in 24 lanes), behind at
//! 32; the calibration chose the fixed shapes (no alternative won by 5%).
//!
//! The same machine after the single stream read message words in place,
//! the AVX2 kernel stopped prefetching, and the planner priced its slices
//! (commit 7a76532, quiet, filter
//! `'md5/single|md5/many/(avx2/(staggered|tuned)|md5-many/staggered)/(8|16|24|32|48|64)$'`):
//! single stream, 16 KiB and 1 MiB: ours 0.709 and 0.713, md5-many 0.706
//! and 0.710, md-5 0.518 and 0.521; `openssl speed` 0.668. Many streams:
//!
//! | streams            | 8    | 16   | 24   | 32   | 48   | 64   |
//! |--------------------|------|------|------|------|------|------|
//! | avx2/tuned         | 3.86 | 6.68 | 7.35 | 6.76 | 7.34 | 6.98 |
//! | avx2/staggered     | 3.84 | 6.65 | 7.32 | 6.83 | 7.12 | 6.87 |
//! | md5-many/staggered | 3.93 | 6.56 | 7.36 | 5.82 | 6.90 | 6.88 |
//!
//! Criterion runs contenders one after another while this VM's speed
//! drifts by several percent; `examples/md5_side_by_side.rs` takes turns
//! instead. Its ratios ours/md5-many over three runs of the same commit:
//! one stream 1.003 to 1.005; 8 streams 0.97 to 0.98; 16 streams 1.00; 24
//! streams 0.96 to 0.98; 32 streams 1.08 to 1.12; 48 streams 0.97 to 1.01;
//! 64 streams 0.94 to 1.00.
//!
//! The same machine after the lane kernels aligned their stack frames, the
//! AVX2 kernel fixed the order of its additions, and planning got cheaper
//! (commit 261a35e, quiet, the same filter): single stream, 16 KiB and
//! 1 MiB: ours 0.711 and 0.712, md5-many 0.705 and 0.710, md-5 0.519 and
//! 0.521; `openssl speed` 0.667. Many streams:
//!
//! | streams            | 8    | 16   | 24   | 32   | 48   | 64   |
//! |--------------------|------|------|------|------|------|------|
//! | avx2/tuned         | 3.85 | 6.77 | 7.42 | 7.01 | 7.43 | 7.25 |
//! | avx2/staggered     | 3.86 | 6.73 | 7.42 | 6.99 | 7.35 | 7.21 |
//! | md5-many/staggered | 3.93 | 6.63 | 7.36 | 6.12 | 7.47 | 7.26 |
//!
//! md5-many's kernels do not align their frames, so in criterion their
//! speed also depends on where the process's stack starts; the side-by-side
//! example now runs every contender at four stack offsets and keeps the
//! best. Its ratios ours/md5-many over three runs: one stream 1.003 to
//! 1.006; 8 streams 0.974 to 0.981; 16 streams 0.995 to 1.003; 24 streams
//! 0.972 to 0.977; 32 streams 1.12 to 1.13; 48 streams 0.968 to 0.977; 64
//! streams 0.967 to 0.979.
//!
//! The same machine after the AVX2 kernel's steps moved into `asm!`, with
//! the rotate's left shift added to `b` first and the I step one operation
//! shorter (commit c89c3ae, quiet, the same filter; the clock measured 3.2
//! GHz): single stream, 16 KiB and 1 MiB: ours 0.710 and 0.712, md5-many
//! 0.706 and 0.709, md-5 0.520 and 0.520; `openssl speed` 0.666. Many
//! streams:
//!
//! | streams            | 8    | 16   | 24   | 32   | 48   | 64   |
//! |--------------------|------|------|------|------|------|------|
//! | avx2/tuned         | 4.28 | 7.09 | 7.53 | 7.31 | 7.78 | 7.58 |
//! | avx2/staggered     | 4.26 | 7.08 | 7.77 | 7.17 | 7.79 | 7.55 |
//! | md5-many/staggered | 3.90 | 6.65 | 7.20 | 6.08 | 7.34 | 7.14 |
//!
//! Side by side, md5-many at its best stack offset, ratios ours/md5-many
//! over three runs: one stream 1.003 to 1.006; 8 streams 1.085 to 1.091; 16
//! streams 1.060 to 1.066; 24 streams 1.022 to 1.050; 32 streams 1.19 to
//! 1.21; 48 streams 1.028 to 1.048; 64 streams 1.037 to 1.046.
//!
//! Intel Xeon (Sapphire Rapids class, AVX-512, 2.1 GHz nominal), as issue 17
//! reported it (ours before calibration and the AVX-512VL single stream):
//! one stream at 1 MiB ours 0.66, md5-many 0.74; 16 streams 8.1 against
//! 8.3, 32 streams 10.7 against 11.2, 48 streams 10.3 against 11.0;
//! `openssl speed -evp md5` 0.50 to 0.54. Not yet rerun with this code.

use std::hint::black_box;
use std::process::Command;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hashcore::md5::{update_many, update_many_tuned, Md5, Platform, SingleKernel, Tuning};
use hashd_benches::Streams;

/// Stream counts for the many-stream benches.
const STREAM_COUNTS: [usize; 10] = [1, 2, 3, 4, 8, 16, 24, 32, 48, 64];

/// Bytes per stream in the many-stream benches: 64 streams stay within L3.
const STREAM_LEN: usize = 64 * 1024;

/// The `openssl speed` figure for 16 KiB blocks, in MB/s, if openssl is there.
fn openssl_speed() -> Option<f64> {
    let out = Command::new("openssl")
        .args(["speed", "-evp", "md5", "-bytes", "16384", "-seconds", "2"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| l.starts_with("md5"))?;
    let kbytes: f64 = line
        .split_whitespace()
        .last()?
        .trim_end_matches('k')
        .parse()
        .ok()?;
    Some(kbytes / 1000.0)
}

fn single_stream(c: &mut Criterion) {
    match openssl_speed() {
        Some(mbs) => println!("openssl speed -evp md5 -bytes 16384: {mbs:.0} MB/s"),
        None => println!("openssl speed -evp md5: openssl not available"),
    }
    let calibration = Tuning::calibrate(Platform::detect());
    println!(
        "calibrated single-stream kernel: {} ({:.2} ms)",
        calibration.tuning.single(),
        calibration.elapsed.as_secs_f64() * 1e3
    );
    let mut group = c.benchmark_group("md5/single");
    for len in [16 * 1024, 1024 * 1024] {
        let data = &Streams::new(1, len, false).slices()[0].to_vec();
        group.throughput(Throughput::Bytes(len as u64));
        // Each kernel forced, then the calibrated choice ("ours").
        for kernel in SingleKernel::all(Platform::detect()) {
            let id = BenchmarkId::new(format!("ours/{kernel}"), len);
            group.bench_with_input(id, data, |b, data| {
                b.iter(|| {
                    let mut h = Md5::new();
                    h.update_with(kernel, data);
                    h.finalize_with(kernel)
                })
            });
        }
        calibration.tuning.install();
        group.bench_with_input(BenchmarkId::new("ours", len), data, |b, data| {
            b.iter(|| {
                let mut h = Md5::new();
                h.update(data);
                h.finalize()
            })
        });
        group.bench_with_input(BenchmarkId::new("md-5", len), data, |b, data| {
            use md5::Digest;
            b.iter(|| md5::Md5::digest(data))
        });
        group.bench_with_input(BenchmarkId::new("md5-many", len), data, |b, data| {
            b.iter(|| md5_many::md5(data))
        });
    }
    group.finish();
}

fn many_streams(c: &mut Criterion) {
    let mut group = c.benchmark_group("md5/many");
    // The best platform with the shapes and planner costs measured at
    // start-up, as the daemon runs (staggered buffers, as its reads are).
    let calibration = Tuning::calibrate(Platform::detect());
    let tuning = calibration.tuning;
    println!(
        "calibrated md5 lanes on {}: {:?}",
        tuning.platform(),
        tuning
            .shapes()
            .iter()
            .map(|(n, shape)| format!("{shape} up to {n}"))
            .collect::<Vec<_>>()
    );
    for count in STREAM_COUNTS {
        let streams = Streams::new(count, STREAM_LEN, true);
        let slices = streams.slices();
        group.throughput(Throughput::Bytes((count * STREAM_LEN) as u64));
        let id = BenchmarkId::new(format!("{}/tuned", tuning.platform()), count);
        group.bench_with_input(id, &slices, |b, slices| {
            b.iter(|| {
                let mut hashers: Vec<Md5> = slices.iter().map(|_| Md5::new()).collect();
                let mut jobs: Vec<(&mut Md5, &[u8])> =
                    hashers.iter_mut().zip(slices.iter().copied()).collect();
                black_box(update_many_tuned(&tuning, &mut jobs));
                hashers.into_iter().map(Md5::finalize).collect::<Vec<_>>()
            })
        });
    }
    for platform in Platform::ALL {
        if !platform.is_available() {
            println!("skipping md5/many/{platform}: not available on this cpu or build");
            continue;
        }
        for (layout, staggered) in [("staggered", true), ("aligned", false)] {
            for count in STREAM_COUNTS {
                let streams = Streams::new(count, STREAM_LEN, staggered);
                let slices = streams.slices();
                group.throughput(Throughput::Bytes((count * STREAM_LEN) as u64));
                let id = BenchmarkId::new(format!("{platform}/{layout}"), count);
                group.bench_with_input(id, &slices, |b, slices| {
                    b.iter(|| {
                        let mut hashers: Vec<Md5> = slices.iter().map(|_| Md5::new()).collect();
                        let mut jobs: Vec<(&mut Md5, &[u8])> =
                            hashers.iter_mut().zip(slices.iter().copied()).collect();
                        black_box(update_many(platform, &mut jobs));
                        hashers.into_iter().map(Md5::finalize).collect::<Vec<_>>()
                    })
                });
            }
        }
    }
    let engine = md5_many::Md5Many::new();
    for (layout, staggered) in [("staggered", true), ("aligned", false)] {
        for count in STREAM_COUNTS {
            let streams = Streams::new(count, STREAM_LEN, staggered);
            let slices = streams.slices();
            group.throughput(Throughput::Bytes((count * STREAM_LEN) as u64));
            let id = BenchmarkId::new(format!("md5-many/{layout}"), count);
            group.bench_with_input(id, &slices, |b, slices| {
                b.iter(|| {
                    let mut states = vec![md5_many::Md5State::new(); slices.len()];
                    let mut out = vec![[0u8; 16]; slices.len()];
                    engine.update_many(&mut states, slices);
                    engine.finalize_many(&states, &mut out);
                    out
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, single_stream, many_streams);
criterion_main!(benches);
