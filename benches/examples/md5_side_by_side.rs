//! Many-stream MD5 side by side with md5-many, interleaved: each repetition
//! runs every contender once, in turn, and the medians are printed. On a
//! shared VM the machine's speed drifts by several percent over a criterion
//! run, which hashes one contender after another; taking turns exposes every
//! contender to the same drift, so their ratios hold where the absolute
//! figures do not. Each contender also runs at four stack offsets and keeps
//! its best, since a kernel that does not align its frame (md5-many's) is
//! fast or slow by where the process's stack happens to start.
//!
//! Run: `cargo run --release -p hashd-benches --example md5_side_by_side --
//! [STREAMS,..] [REPETITIONS]` (defaults: 8,16,24,32,48,64 and 11). Streams
//! are 64 KiB each, staggered as in `benches/md5.rs`; figures are GB/s
//! (10^9 B/s) of input, padding included. Contenders: ours with the fixed
//! tuning of the best platform here, ours with the start-up calibration's,
//! and md5-many's `Md5Many::update_many`. First, one stream of 16 KiB and of
//! 1 MiB: ours (the calibrated single-stream kernel), md5-many's `md5` and
//! md-5's `Md5::digest`.

use std::hint::black_box;
use std::time::Instant;

use hashcore::md5::{update_many_tuned, Md5, Platform, Tuning};

const STREAM_LEN: usize = 64 * 1024;

/// Bytes each contender hashes per repetition (about 2 ms at 7 GB/s).
const BYTES_PER_TURN: usize = 16 << 20;

fn main() {
    let mut args = std::env::args().skip(1);
    let counts: Vec<usize> = args
        .next()
        .unwrap_or_else(|| "8,16,24,32,48,64".to_owned())
        .split(',')
        .map(|n| {
            n.parse()
                .expect("STREAMS is a comma-separated list of counts")
        })
        .collect();
    let repetitions: usize = args
        .next()
        .map_or(11, |n| n.parse().expect("REPETITIONS is a count"));
    let platform = *Platform::ALL
        .iter()
        .rev()
        .find(|p| p.is_available())
        .expect("portable is always available");
    let fixed = Tuning::fixed(platform);
    let calibration = Tuning::calibrate(platform);
    println!(
        "{platform}: calibrated in {:.2} ms: {}",
        calibration.elapsed.as_secs_f64() * 1e3,
        calibration
            .tuning
            .shapes()
            .iter()
            .map(|(n, shape)| format!("{shape} up to {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    calibration.tuning.install();
    for len in [16 << 10, 1 << 20] {
        let streams = hashd_benches::Streams::new(1, len, false);
        let data = streams.slices()[0];
        let contenders: [&dyn Fn(); 3] = [
            &|| {
                let mut h = Md5::new();
                h.update(data);
                black_box(h.finalize());
            },
            &|| {
                black_box(md5_many::md5(data));
            },
            &|| {
                use md5::Digest;
                black_box(md5::Md5::digest(data));
            },
        ];
        let [ours, theirs, md_5] = medians(repetitions, len, &contenders);
        println!(
            "one stream of {:4} KiB: ours {ours:.3} | md5-many {theirs:.3} ({:.3}x) | md-5 {md_5:.3} ({:.3}x)",
            len >> 10,
            ours / theirs,
            ours / md_5
        );
    }
    let engine = md5_many::Md5Many::new();
    for count in counts {
        let streams = hashd_benches::Streams::new(count, STREAM_LEN, true);
        let slices = streams.slices();
        let ours = |tuning: &Tuning| {
            let mut hashers: Vec<Md5> = slices.iter().map(|_| Md5::new()).collect();
            let mut jobs: Vec<(&mut Md5, &[u8])> =
                hashers.iter_mut().zip(slices.iter().copied()).collect();
            black_box(update_many_tuned(tuning, &mut jobs));
            black_box(hashers.into_iter().map(Md5::finalize).collect::<Vec<_>>());
        };
        let contenders: [&dyn Fn(); 3] = [&|| ours(&fixed), &|| ours(&calibration.tuning), &|| {
            let mut states = vec![md5_many::Md5State::new(); slices.len()];
            let mut out = vec![[0u8; 16]; slices.len()];
            engine.update_many(&mut states, &slices);
            engine.finalize_many(&states, &mut out);
            black_box(out);
        }];
        let [fixed_rate, tuned_rate, theirs] =
            medians(repetitions, count * STREAM_LEN, &contenders);
        println!(
            "{count:3} streams: md5-many {theirs:.2} | fixed {fixed_rate:.2} ({:.3}x) | calibrated {tuned_rate:.2} ({:.3}x)",
            fixed_rate / theirs,
            tuned_rate / theirs
        );
    }
}

/// Median GB/s of each contender (one call hashes `bytes`), taking turns
/// `repetitions` times, each turn about [`BYTES_PER_TURN`]; each contender
/// runs at every stack offset of [`run_shifted`] and keeps its best median.
fn medians<const N: usize>(
    repetitions: usize,
    bytes: usize,
    contenders: &[&dyn Fn(); N],
) -> [f64; N] {
    let calls = (BYTES_PER_TURN / bytes).max(1);
    let mut figures: [[Vec<f64>; STACK_SHIFTS]; N] =
        std::array::from_fn(|_| std::array::from_fn(|_| Vec::new()));
    for _ in 0..repetitions {
        for (run, figures) in contenders.iter().zip(figures.iter_mut()) {
            for (shift, figure) in figures.iter_mut().enumerate() {
                let seconds = run_shifted(shift, &|| {
                    let start = Instant::now();
                    for _ in 0..calls {
                        run();
                    }
                    start.elapsed().as_secs_f64()
                });
                figure.push((calls * bytes) as f64 / seconds / 1e9);
            }
        }
    }
    figures.map(|shifts| {
        shifts
            .map(|mut f| {
                f.sort_by(f64::total_cmp);
                f[f.len() / 2]
            })
            .into_iter()
            .fold(0.0, f64::max)
    })
}

/// Stack offsets, 16 bytes apart, that every contender runs at.
const STACK_SHIFTS: usize = 4;

/// Runs `f` with the stack moved down by `16 * shift` bytes.
///
/// A kernel that spills vectors to a frame it does not align runs at a speed
/// that depends on where the caller's stack happens to be (see
/// `hashcore::md5::x86::align_frame`): md5-many 0.1.0-alpha.4's 24-stream
/// kernel, for one, ran at 6.6 or 7.5 GB/s on Zen 3 from one process to the
/// next. Each contender is timed at four offsets covering a 64-byte cache
/// line, and keeps its best.
fn run_shifted(shift: usize, f: &dyn Fn() -> f64) -> f64 {
    match shift {
        0 => on_stack_below::<0>(f),
        1 => on_stack_below::<16>(f),
        2 => on_stack_below::<32>(f),
        _ => on_stack_below::<48>(f),
    }
}

#[inline(never)]
fn on_stack_below<const BYTES: usize>(f: &dyn Fn() -> f64) -> f64 {
    let mut pad = [0u8; BYTES];
    black_box(&mut pad);
    f()
}
