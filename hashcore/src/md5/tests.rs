//! Known answers, differential tests of every backend against the portable one
//! and of the portable one against the md-5 crate, and the planner's table.

use super::*;

/// More random cases where the build is fast enough to afford them.
const ITERATIONS: usize = if cfg!(debug_assertions) { 24 } else { 400 };

use crate::testutil::XorShift;

/// Draws shaped for MD5 on the shared generator.
trait Messages {
    /// Random bytes of a random [`Messages::length`].
    fn message(&mut self) -> Vec<u8>;
    /// A length that favours the interesting sizes: around block
    /// boundaries, a few blocks, and now and then many.
    fn length(&mut self) -> usize;
}

impl Messages for XorShift {
    fn message(&mut self) -> Vec<u8> {
        let len = self.length();
        self.bytes(len)
    }

    fn length(&mut self) -> usize {
        match self.range(0, 9) {
            0..=2 => self.range(0, 130),
            3..=5 => (self.range(0, 40) * BLOCK_LEN + self.range(0, 2)).saturating_sub(1),
            6..=8 => self.range(0, 4000),
            _ => self.range(4000, 70_000),
        }
    }
}

fn reference(data: &[u8]) -> [u8; 16] {
    use ::md5::Digest;
    ::md5::Md5::digest(data).into()
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The platforms this machine can run; prints which it skips.
fn platforms() -> Vec<Platform> {
    Platform::ALL
        .into_iter()
        .filter(|p| {
            let available = p.is_available();
            if !available {
                println!("skipping md5 backend {p}: not available on this cpu or build");
            }
            available
        })
        .collect()
}

/// `platform`'s fixed tuning, or with every round in lanes when `min_lanes`
/// is 1.
fn tuning_with(platform: Platform, min_lanes: usize) -> Tuning {
    match min_lanes {
        1 => Tuning::forced_lanes(platform),
        _ => Tuning::fixed(platform),
    }
}

/// `update_many` on [`tuning_with`]`(platform, min_lanes)`.
fn update_many_with(
    platform: Platform,
    min_lanes: usize,
    streams: &mut [(&mut Md5, &[u8])],
) -> LaneStats {
    update_many_tuned(&tuning_with(platform, min_lanes), streams)
}

/// Fresh streams, each absorbing its message whole in one `update_many`
/// call on `tuning`; the streams (not yet finalized) and the call's figures.
fn absorb_all(tuning: &Tuning, messages: &[Vec<u8>]) -> (Vec<Md5>, LaneStats) {
    let mut hashers: Vec<Md5> = messages.iter().map(|_| Md5::new()).collect();
    let mut streams: Vec<(&mut Md5, &[u8])> = hashers
        .iter_mut()
        .zip(messages)
        .map(|(h, m)| (h, &m[..]))
        .collect();
    let stats = update_many_tuned(tuning, &mut streams);
    drop(streams);
    (hashers, stats)
}

/// Digests of `messages`, each absorbed whole by one `update_many` call with
/// the given single-stream threshold (1 forces every round onto the lanes).
fn digests_many(platform: Platform, min_lanes: usize, messages: &[Vec<u8>]) -> Vec<[u8; 16]> {
    let (hashers, _) = absorb_all(&tuning_with(platform, min_lanes), messages);
    hashers.into_iter().map(Md5::finalize).collect()
}

fn check_all(platform: Platform, messages: &[Vec<u8>], what: &str) {
    for min_lanes in [1, platform.min_lanes()] {
        let got = digests_many(platform, min_lanes, messages);
        for (i, (m, d)) in messages.iter().zip(&got).enumerate() {
            assert_eq!(
                hex(d),
                hex(&reference(m)),
                "{platform}, {what}: stream {i} of {} ({} bytes), min_lanes {min_lanes}",
                messages.len(),
                m.len()
            );
        }
    }
}

const RFC1321: [(&str, &str); 7] = crate::algo::RFC1321_MD5;

#[test]
fn rfc1321_single_stream() {
    assert!(Md5::default().is_empty());
    for (input, want) in RFC1321 {
        let mut h = Md5::new();
        h.update(input.as_bytes());
        assert_eq!(h.len(), input.len() as u64);
        assert_eq!(hex(&h.finalize()), want, "md5({input:?})");
    }
}

#[test]
fn rfc1321_every_backend() {
    for platform in platforms() {
        // Repeated so that every vector lands in many lanes of a full call.
        let messages: Vec<Vec<u8>> = (0..platform.max_lanes() * 2)
            .map(|i| RFC1321[i % RFC1321.len()].0.as_bytes().to_vec())
            .collect();
        for min_lanes in [1, platform.min_lanes()] {
            let got = digests_many(platform, min_lanes, &messages);
            for (i, d) in got.iter().enumerate() {
                let (input, want) = RFC1321[i % RFC1321.len()];
                assert_eq!(hex(d), want, "{platform}: md5({input:?}) in lane {i}");
            }
        }
    }
}

fn boundary_lengths() -> Vec<usize> {
    let mut lengths: Vec<usize> = (0..=8).collect();
    lengths.extend([55, 56, 57, 63, 64, 65, 119, 120, 121, 127, 128, 129]);
    for lanes in [8, 16, 24, 32, 48, 64] {
        lengths.extend([lanes * 64 - 1, lanes * 64, lanes * 64 + 1]);
    }
    lengths
}

#[test]
fn boundary_lengths_every_backend() {
    let mut rng = XorShift(0x0b0d_a1e5);
    for platform in platforms() {
        // All boundary lengths side by side, unequal lanes.
        let messages: Vec<Vec<u8>> = boundary_lengths()
            .into_iter()
            .map(|n| rng.bytes(n))
            .collect();
        check_all(platform, &messages, "boundary lengths together");
        // Each length in a full call of equal lanes with different contents.
        for n in boundary_lengths() {
            let messages: Vec<Vec<u8>> = (0..platform.max_lanes()).map(|_| rng.bytes(n)).collect();
            check_all(platform, &messages, &format!("{n}-byte lanes"));
        }
    }
}

#[test]
fn one_mebibyte_every_backend() {
    let mut rng = XorShift(0x1_0000_0000);
    for platform in platforms() {
        let mut messages: Vec<Vec<u8>> = (0..3).map(|_| rng.bytes(1 << 20)).collect();
        messages.push(rng.bytes((1 << 20) + 1));
        messages.push(rng.bytes((1 << 20) - 1));
        check_all(platform, &messages, "1 MiB lanes");
    }
}

#[test]
fn kernels_match_portable() {
    let mut rng = XorShift(0x5eed_0001);
    for platform in platforms() {
        for _ in 0..ITERATIONS * 4 {
            let lanes = rng.range(1, platform.max_lanes());
            let blocks = rng.range(0, 6);
            let data: Vec<Vec<u8>> = (0..lanes)
                .map(|_| {
                    let spare = rng.range(0, 2);
                    rng.bytes((blocks + spare) * BLOCK_LEN)
                })
                .collect();
            let states: Vec<[u32; 4]> = (0..lanes)
                .map(|_| [0; 4].map(|_: u32| rng.next() as u32))
                .collect();
            let run = |compress: &dyn Fn(&mut [Lane<'_>])| -> Vec<[u32; 4]> {
                let mut lanes: Vec<Lane<'_>> = states
                    .iter()
                    .zip(&data)
                    .map(|(&state, data)| Lane { state, data })
                    .collect();
                compress(&mut lanes);
                lanes.iter().map(|l| l.state).collect()
            };
            assert_eq!(
                run(&|lanes| platform.compress_lanes(lanes, blocks)),
                run(&|lanes| portable::compress(lanes, blocks)),
                "{platform}: {lanes} lanes, {blocks} blocks"
            );
        }
    }
}

#[test]
fn portable_kernel_matches_md5_crate() {
    // Hash on the portable lanes only: every round a kernel call.
    let mut rng = XorShift(0x5eed_0002);
    for _ in 0..ITERATIONS {
        let count = rng.range(1, 64);
        let messages: Vec<Vec<u8>> = (0..count).map(|_| rng.message()).collect();
        let got = digests_many(Platform::Portable, 1, &messages);
        for (m, d) in messages.iter().zip(&got) {
            assert_eq!(
                hex(d),
                hex(&reference(m)),
                "portable lanes, {} bytes",
                m.len()
            );
        }
    }
}

#[test]
fn opaque_returns_its_input() {
    let mut rng = XorShift(0x5eed_0007);
    for x in [0, 1, u32::MAX, 0x8000_0000]
        .into_iter()
        .chain((0..1000).map(|_| rng.next() as u32))
    {
        assert_eq!(single::opaque(x), x);
    }
}

#[test]
fn single_stream_matches_md5_crate_over_random_splits() {
    let mut rng = XorShift(0x5eed_0003);
    for _ in 0..ITERATIONS * 4 {
        let message = rng.message();
        let mut h = Md5::new();
        let mut rest = &message[..];
        while !rest.is_empty() {
            let take = rng.range(0, rest.len().min(300));
            h.update(&rest[..take]);
            rest = &rest[take..];
        }
        assert_eq!(h.len(), message.len() as u64);
        assert_eq!(hex(&h.clone().finalize()), hex(&reference(&message)));
    }
}

#[test]
fn random_streams_every_backend() {
    let mut rng = XorShift(0x5eed_0004);
    for platform in platforms() {
        for _ in 0..ITERATIONS {
            let count = rng.range(1, 64);
            let messages: Vec<Vec<u8>> = (0..count).map(|_| rng.message()).collect();
            check_all(platform, &messages, "random lengths");
        }
    }
}

#[test]
fn more_streams_than_any_kernel_has_lanes() {
    let mut rng = XorShift(0x5eed_0008);
    for platform in platforms() {
        for _ in 0..4 {
            let count = rng.range(65, 200);
            let messages: Vec<Vec<u8>> = (0..count).map(|_| rng.message()).collect();
            check_all(platform, &messages, "many streams");
        }
    }
}

/// Streams fed over several calls with random chunk splits; each stream joins
/// at a random call and leaves when its message is done, and sometimes sits a
/// call out in between.
#[test]
fn streams_join_and_leave_across_calls_every_backend() {
    let mut rng = XorShift(0x5eed_0005);
    for platform in platforms() {
        for _ in 0..ITERATIONS {
            let count = rng.range(1, 64);
            let messages: Vec<Vec<u8>> = (0..count).map(|_| rng.message()).collect();
            let joins: Vec<usize> = (0..count).map(|_| rng.range(0, 3)).collect();
            let mut hashers: Vec<Md5> = (0..count).map(|_| Md5::new()).collect();
            let mut fed = vec![0usize; count];
            let min_lanes = if rng.range(0, 1) == 0 {
                1
            } else {
                platform.min_lanes()
            };
            let mut call = 0;
            while fed.iter().zip(&messages).any(|(f, m)| *f < m.len()) || call <= 3 {
                let mut streams: Vec<(&mut Md5, &[u8])> = Vec::new();
                for (i, h) in hashers.iter_mut().enumerate() {
                    let left = messages[i].len() - fed[i];
                    if call < joins[i] || rng.range(0, 5) == 0 {
                        continue;
                    }
                    let take = match rng.range(0, 3) {
                        0 => left,
                        1 => rng.range(0, left.min(100)),
                        _ => rng.range(0, left),
                    };
                    streams.push((h, &messages[i][fed[i]..fed[i] + take]));
                    fed[i] += take;
                }
                let stats = update_many_with(platform, min_lanes, &mut streams);
                assert!(stats.lane_blocks <= stats.lane_slots);
                call += 1;
            }
            for (i, h) in hashers.into_iter().enumerate() {
                assert_eq!(h.len(), messages[i].len() as u64);
                assert_eq!(
                    hex(&h.finalize()),
                    hex(&reference(&messages[i])),
                    "{platform}: stream {i} of {count} ({} bytes) over {call} calls",
                    messages[i].len()
                );
            }
        }
    }
}

#[test]
fn lane_stats_count_kernel_work() {
    for platform in platforms() {
        let messages: Vec<Vec<u8>> = (0..platform.max_lanes())
            .map(|_| vec![7; 10 * 64])
            .collect();
        let mut hashers: Vec<Md5> = messages.iter().map(|_| Md5::new()).collect();
        let mut streams: Vec<(&mut Md5, &[u8])> = hashers
            .iter_mut()
            .zip(&messages)
            .map(|(h, m)| (h, &m[..]))
            .collect();
        let stats = update_many_with(platform, 1, &mut streams);
        let lanes = platform.max_lanes() as u64;
        assert_eq!(
            stats,
            LaneStats {
                kernel_calls: 1,
                lane_blocks: 10 * lanes,
                lane_slots: 10 * lanes,
            },
            "{platform}"
        );
    }
}

#[test]
fn one_stream_takes_the_single_stream_path() {
    for platform in platforms() {
        let mut h = Md5::new();
        let data = vec![1u8; 4096];
        let stats = update_many(platform, &mut [(&mut h, &data[..])]);
        assert_eq!(stats, LaneStats::default(), "{platform}");
        assert_eq!(hex(&h.finalize()), hex(&reference(&data)));
    }
}

#[test]
fn unavailable_backend_panics_before_touching_streams() {
    for platform in Platform::ALL.into_iter().filter(|p| !p.is_available()) {
        let mut h = Md5::new();
        let data = vec![3u8; 1000];
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            update_many(
                platform,
                &mut [(&mut h, &data[..]), (&mut Md5::new(), &data[..])],
            )
        }));
        assert!(result.is_err(), "{platform}");
        assert!(h.is_empty(), "{platform}: stream touched");
    }
}

#[test]
fn platform_names_round_trip() {
    for platform in Platform::ALL {
        match Platform::from_name(platform.name()) {
            Ok(p) => assert_eq!(p, platform),
            Err(e) => {
                assert!(!platform.is_available());
                assert_eq!(e.unavailable(), Some(platform));
                assert_eq!(e.name(), platform.name());
                assert!(e.to_string().contains(platform.name()), "{e}");
            }
        }
    }
    assert_eq!(Platform::from_name("auto"), Ok(Platform::detect()));
    assert!(Platform::detect().is_available());
    let err = Platform::from_name("sse9").unwrap_err();
    assert_eq!((err.name(), err.unavailable()), ("sse9", None));
    assert!(err.to_string().contains("\"sse9\""), "{err}");
}

/// The backend the CPU's own feature flags and this build's cargo features
/// call for, worked out without [`Platform::is_available`], so that a
/// feature that stopped forcing its fallback makes
/// `cargo_features_force_fallbacks` fail. CI runs the tests once per feature
/// set (`.ci/run`).
fn expected_platform() -> Platform {
    #[cfg(target_arch = "x86_64")]
    let (avx2, avx512) = {
        let avx2 = std::arch::is_x86_feature_detected!("avx2");
        let avx512 = avx2
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl");
        (avx2, avx512)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let (avx2, avx512) = (false, false);
    if avx512 && !cfg!(feature = "no_avx512") {
        Platform::Avx512
    } else if avx2 && !cfg!(feature = "no_avx2") {
        Platform::Avx2
    } else {
        Platform::Portable
    }
}

#[test]
fn cargo_features_force_fallbacks() {
    let want = expected_platform();
    if cfg!(all(feature = "no_avx2", feature = "no_avx512")) {
        // Whatever the CPU has: only the portable kernel is left.
        assert_eq!(want, Platform::Portable);
    }
    if cfg!(feature = "no_avx512") {
        assert!(!Platform::Avx512.is_available());
    }
    if cfg!(feature = "no_avx2") {
        assert!(!Platform::Avx2.is_available());
    }
    // Detection, configuration's `auto`, the pool's default and a running
    // pool all select exactly that backend.
    assert_eq!(Platform::detect(), want);
    assert_eq!(Platform::from_name("auto"), Ok(want));
    let config = crate::pool::PoolConfig {
        hashers: 1,
        pin: false,
        ..crate::pool::PoolConfig::default()
    };
    assert_eq!(config.md5.platform(), want);
    let pool = crate::pool::HasherPool::start(config).unwrap();
    assert_eq!(pool.md5_platform(), want);
    println!("md5 platform selected: {want}");
}

fn round(path: Path, jobs: &[usize], blocks: usize) -> Round {
    Round {
        path,
        jobs: jobs.to_vec(),
        blocks,
    }
}

#[test]
fn planner_table() {
    use Path::{Lanes, Single};
    #[allow(clippy::type_complexity)]
    let table: Vec<(&[usize], usize, usize, Vec<Round>)> = vec![
        // Nothing to do.
        (&[], 4, 2, vec![]),
        (&[0, 0], 4, 2, vec![]),
        // Equal lanes: one call.
        (&[3, 3, 3], 4, 2, vec![round(Lanes, &[0, 1, 2], 3)]),
        // Unequal lanes drop out; the last one alone goes single-stream.
        (
            &[5, 1, 3],
            4,
            2,
            vec![
                round(Lanes, &[0, 1, 2], 1),
                round(Lanes, &[0, 2], 2),
                round(Single, &[0], 2),
            ],
        ),
        // A job with no blocks takes no lane.
        (&[2, 0, 2], 4, 2, vec![round(Lanes, &[0, 2], 2)]),
        // One stream: single-stream path.
        (&[9], 4, 2, vec![round(Single, &[0], 9)]),
        // Forced lanes even for one stream.
        (&[9], 4, 1, vec![round(Lanes, &[0], 9)]),
        // More jobs than lanes, all shorter than a slice: in job order.
        (
            &[4, 4, 4, 4, 4, 4],
            4,
            2,
            vec![round(Lanes, &[0, 1, 2, 3], 4), round(Lanes, &[4, 5], 4)],
        ),
        // One long job among many short ones: short ones share the other
        // lane, the long one finishes alone on the single-stream path.
        (
            &[20, 1, 1, 1, 1],
            2,
            2,
            vec![
                round(Lanes, &[0, 1], 1),
                round(Lanes, &[0, 2], 1),
                round(Lanes, &[0, 3], 1),
                round(Lanes, &[0, 4], 1),
                round(Single, &[0], 16),
            ],
        ),
        // Long jobs take turns in slices and finish together.
        (
            &[40, 40, 40],
            2,
            2,
            vec![
                round(Lanes, &[0, 1], 16),
                round(Lanes, &[0, 2], 16),
                round(Lanes, &[1, 2], 16),
                round(Lanes, &[0, 1], 8),
                round(Single, &[2], 8),
            ],
        ),
        // A job waiting for a lane takes one as soon as it is among the longest;
        // all finish together, every lane busy throughout.
        (
            &[50, 20, 30],
            2,
            2,
            vec![
                round(Lanes, &[0, 2], 16),
                round(Lanes, &[0, 1], 16),
                round(Lanes, &[0, 2], 14),
                round(Lanes, &[0, 1], 4),
            ],
        ),
    ];
    for (blocks, max_lanes, min_lanes, want) in table {
        assert_eq!(
            plan_rounds(blocks, &Costs::flat(max_lanes, min_lanes), 16),
            want,
            "plan_rounds({blocks:?}, {max_lanes}, {min_lanes}, 16)"
        );
    }
}

#[test]
fn planner_invariants_on_random_inputs() {
    let mut rng = XorShift(0x5eed_0006);
    for _ in 0..ITERATIONS * 20 {
        let jobs = rng.range(0, 70);
        let blocks: Vec<usize> = (0..jobs)
            .map(|_| match rng.range(0, 3) {
                0 => 0,
                1 => rng.range(1, 4),
                _ => rng.range(1, 300),
            })
            .collect();
        let max_lanes = rng.range(1, 48);
        let min_lanes = rng.range(1, 4);
        let min_slice = rng.range(1, 70);
        let rounds = plan_rounds(&blocks, &Costs::flat(max_lanes, min_lanes), min_slice);
        let mut done = vec![0usize; jobs];
        for r in &rounds {
            assert!(
                r.blocks > 0 && !r.jobs.is_empty(),
                "{blocks:?}: empty round"
            );
            // A short round ends some job (or is the slice of a waiting turn).
            let ends_a_job = r.jobs.iter().any(|&j| done[j] + r.blocks == blocks[j]);
            assert!(
                ends_a_job || r.blocks >= min_slice,
                "{blocks:?}: {r:?} too short"
            );
            let mut seen = r.jobs.clone();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len(), r.jobs.len(), "{blocks:?}: job twice in {r:?}");
            assert_eq!(r.path == Path::Lanes, r.jobs.len() >= min_lanes);
            // No lane idles while a job waits.
            let unfinished = (0..jobs).filter(|&j| done[j] < blocks[j]).count();
            assert_eq!(r.jobs.len(), unfinished.min(max_lanes), "{blocks:?}: {r:?}");
            for &j in &r.jobs {
                done[j] += r.blocks;
                assert!(done[j] <= blocks[j], "{blocks:?}: job {j} overrun");
            }
        }
        assert_eq!(done, blocks, "every job gets exactly its blocks");
    }
}

/// The rounds of [`plan_slices`].
fn plan_rounds(blocks: &[usize], costs: &Costs, min_slice: usize) -> Vec<Round> {
    let priced = plan_slices(blocks, costs, min_slice, f64::INFINITY)
        .expect("no budget: planned to the end");
    let cost = plan_cost(&priced.rounds, costs);
    assert!(
        (priced.cost - cost).abs() <= cost * 1e-12,
        "{blocks:?}: priced {} against plan_cost {cost}",
        priced.cost
    );
    sorted(priced.rounds)
}

/// `rounds` with each round's jobs in ascending order, to compare plans.
fn sorted(mut rounds: Vec<Round>) -> Vec<Round> {
    for round in &mut rounds {
        round.jobs.sort_unstable();
    }
    rounds
}

/// Blocks each job gets from `rounds`, checking that no round runs a job twice.
fn blocks_planned(jobs: usize, rounds: &[Round]) -> Vec<usize> {
    let mut done = vec![0usize; jobs];
    for r in rounds {
        let mut seen = r.jobs.clone();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), r.jobs.len(), "job twice in {r:?}");
        for &j in &r.jobs {
            done[j] += r.blocks;
        }
    }
    done
}

#[test]
fn plan_prices_slices_long_where_lanes_swap_whole_and_short_where_they_balance() {
    let costs = Costs::flat(24, 1);
    // 48 equal streams in 24 lanes: two whole batches start 48 lanes, where
    // 64-block slices would start 24 lanes 32 times.
    let rounds = plan(&[1024; 48], &costs);
    assert_eq!(rounds.len(), 2, "{rounds:?}");
    assert!(rounds
        .iter()
        .all(|r| r.blocks == 1024 && r.jobs.len() == 24));
    // 25 equal streams: only short turns keep 24 lanes busy to the end.
    assert_eq!(
        sorted(plan(&[1024; 25], &costs)),
        plan_rounds(&[1024; 25], &costs, 64)
    );
    // No job waits: nothing to slice.
    assert_eq!(
        sorted(plan(&[1024; 24], &costs)),
        plan_rounds(&[1024; 24], &costs, 64)
    );
}

/// A budget abandons exactly the plans that cost more: at its cost a plan
/// comes back whole, below it not at all.
#[test]
fn plan_slices_abandons_only_plans_over_budget() {
    let mut rng = XorShift(0x5eed_000a);
    for _ in 0..ITERATIONS * 5 {
        let jobs = rng.range(1, 80);
        let blocks: Vec<usize> = (0..jobs).map(|_| rng.range(0, 1500)).collect();
        let costs = Costs::flat(rng.range(1, 48), rng.range(1, 4));
        let slice = SLICES[rng.range(0, SLICES.len() - 1)];
        let full = plan_slices(&blocks, &costs, slice, f64::INFINITY).expect("no budget");
        let at = plan_slices(&blocks, &costs, slice, full.cost).expect("within budget");
        assert_eq!(at.rounds, full.rounds, "{blocks:?}");
        if full.cost > 0.0 {
            assert!(
                plan_slices(&blocks, &costs, slice, full.cost * 0.999).is_none(),
                "{blocks:?}: kept over budget"
            );
        }
    }
}

#[test]
fn plan_costs_no_more_than_any_slice_and_covers_every_block() {
    let mut rng = XorShift(0x5eed_0009);
    for _ in 0..ITERATIONS * 5 {
        let jobs = rng.range(0, 100);
        let blocks: Vec<usize> = (0..jobs).map(|_| rng.range(0, 2000)).collect();
        let costs = match rng.range(0, 3) {
            0 => Costs::flat(rng.range(1, 48), rng.range(1, 4)),
            n => {
                let (shapes, singles) = if n == 1 { zen4() } else { sapphire_rapids() };
                *Tuning::from_measurements(Platform::Avx512, &shapes, &singles).costs()
            }
        };
        let chosen = plan(&blocks, &costs);
        assert_eq!(blocks_planned(jobs, &chosen), blocks);
        let floor = cost_floor(&blocks, &costs);
        // Including where `plan` does not price them: they plan alike there.
        for slice in SLICES {
            let other = plan_rounds(&blocks, &costs, slice);
            assert!(
                plan_cost(&chosen, &costs) <= plan_cost(&other, &costs) * (1.0 + 1e-9),
                "{blocks:?}: slice {slice} is cheaper"
            );
            assert!(
                plan_cost(&other, &costs) >= floor * (1.0 - 1e-9),
                "{blocks:?}: below the floor"
            );
        }
    }
}

#[test]
fn single_stream_kernels_match_scalar() {
    let mut rng = XorShift(0x5eed_0007);
    for platform in platforms() {
        for kernel in SingleKernel::all(platform) {
            for _ in 0..ITERATIONS {
                let blocks = rng.range(0, 40);
                let data = rng.bytes(blocks * BLOCK_LEN);
                let start = [0; 4].map(|_: u32| rng.next() as u32);
                let (mut want, mut got) = (start, start);
                single::compress(&mut want, &data);
                kernel.compress(&mut got, &data);
                assert_eq!(got, want, "{kernel}: {blocks} blocks");
            }
            // Whole messages through Md5, every boundary length.
            for len in boundary_lengths() {
                let m = rng.bytes(len);
                let mut h = Md5::new();
                h.update_with(kernel, &m);
                assert_eq!(
                    hex(&h.finalize_with(kernel)),
                    hex(&reference(&m)),
                    "{kernel}: {len} bytes"
                );
            }
        }
    }
}

/// Every kernel refuses a lane shorter than the round (the SIMD kernels load
/// through pointers on the strength of that check), whichever lane it is.
#[test]
fn every_kernel_refuses_a_lane_shorter_than_the_round() {
    for platform in platforms() {
        for shape in Shape::all(platform) {
            for short in [0, shape.lanes() - 1] {
                let data = [7u8; 3 * BLOCK_LEN];
                let caught = std::panic::catch_unwind(|| {
                    let mut lanes: Vec<Lane<'_>> = (0..shape.lanes())
                        .map(|l| Lane {
                            state: [0; 4],
                            data: if l == short {
                                &data[..BLOCK_LEN]
                            } else {
                                &data[..]
                            },
                        })
                        .collect();
                    shape.compress(platform, &mut lanes, 2);
                });
                let message = caught
                    .expect_err("a short lane was hashed")
                    .downcast::<&str>()
                    .map(|m| m.to_string())
                    .unwrap_or_default();
                assert_eq!(
                    message, "md5 lane shorter than the round",
                    "{shape}, lane {short}"
                );
            }
        }
    }
}

/// Every shape and single-stream kernel each available platform offers,
/// forced for every call, against the md5 crate: whatever a calibration
/// picks on whatever CPU has been checked.
#[test]
fn every_shape_and_single_kernel_forced() {
    let mut rng = XorShift(0x5eed_0008);
    for platform in platforms() {
        for shape in Shape::all(platform) {
            for single in SingleKernel::all(platform) {
                let tuning = Tuning::forced(platform, shape, single);
                for _ in 0..ITERATIONS / 8 + 1 {
                    let count = rng.range(1, shape.lanes() + 4);
                    let messages: Vec<Vec<u8>> = (0..count).map(|_| rng.message()).collect();
                    let (hashers, stats) = absorb_all(&tuning, &messages);
                    for (m, h) in messages.iter().zip(hashers) {
                        assert_eq!(
                            hex(&h.finalize_with(single)),
                            hex(&reference(m)),
                            "{shape} with {single}: {count} streams, {} bytes",
                            m.len()
                        );
                    }
                    if messages.iter().any(|m| m.len() >= BLOCK_LEN) {
                        assert!(stats.kernel_calls > 0, "{shape}: no kernel call");
                    }
                }
            }
        }
    }
}

#[test]
fn calibration_picks_available_kernels_that_hash_right() {
    for platform in platforms() {
        let calibration = Tuning::calibrate(platform);
        let tuning = calibration.tuning;
        println!(
            "{platform}: single {} , shapes {:?}, {} rounds in {:?}",
            tuning.single(),
            tuning
                .shapes()
                .iter()
                .map(|(n, s)| format!("..{n}: {s}"))
                .collect::<Vec<_>>(),
            calibration.rounds,
            calibration.elapsed
        );
        assert!(calibration.rounds >= 5, "{calibration:?}");
        assert_eq!(calibration.shapes.len(), Shape::all(platform).len());
        assert!(calibration
            .shapes
            .iter()
            .all(|(_, ns)| ns.is_finite() && *ns > 0.0));
        if platform == Platform::Portable {
            // The portable 8-lane kernel never runs unforced: the lanes
            // there are the scalar chains.
            assert!(tuning.max_lanes() <= 3, "{:?}", tuning.shapes());
            assert!(tuning.shapes().iter().all(|(_, s)| s.isa == Isa::Scalar));
        } else {
            assert_eq!(tuning.max_lanes(), platform.max_lanes());
        }
        for (_, shape) in tuning.shapes() {
            assert!(shape.is_on(platform), "{shape}");
        }
        let mut rng = XorShift(0x5eed_0009);
        let messages: Vec<Vec<u8>> = (0..60).map(|_| rng.message()).collect();
        let (hashers, _) = absorb_all(&tuning, &messages);
        for (m, h) in messages.iter().zip(hashers) {
            assert_eq!(hex(&h.finalize_with(tuning.single())), hex(&reference(m)));
        }
    }
}

/// Nanoseconds per block of a call of `lanes` lanes at `gb_per_s`.
fn ns(lanes: usize, gb_per_s: f64) -> f64 {
    (lanes * BLOCK_LEN) as f64 / gb_per_s
}

fn shape(isa: Isa, groups: usize) -> Shape {
    Shape { isa, groups }
}

/// Nanoseconds per block of each lane shape and single-stream kernel.
type Measured = (Vec<(Shape, f64)>, Vec<(SingleKernel, f64)>);

/// Per-kernel figures in GB/s with every lane busy, in the order of
/// `Shape::all(Platform::Avx512)`'s SIMD shapes (the scalar chains, last,
/// left unmeasured), then the scalar and AVX-512 single streams.
fn measured(lanes_gb_per_s: [f64; 9], scalar: f64, avx512: f64) -> Measured {
    let shapes: Vec<(Shape, f64)> = Shape::all(Platform::Avx512)
        .into_iter()
        .zip(lanes_gb_per_s)
        .collect();
    let shapes = figures(&shapes);
    let singles = vec![
        (SingleKernel::Scalar, ns(1, scalar)),
        (SingleKernel::Avx512, ns(1, avx512)),
    ];
    (shapes, singles)
}

/// AMD Zen 4 (EPYC, the figures at `Tuning::fixed`): AVX2 1 to 3 groups,
/// AVX-512 YMM 1 to 3, ZMM 1 to 3; the AVX-512 single stream is a guess
/// below the scalar one (two-cycle vector rotates).
fn zen4() -> Measured {
    measured([5.1, 7.6, 8.8, 4.8, 9.6, 11.1, 7.9, 11.8, 12.0], 0.81, 0.70)
}

/// An Intel Xeon (Sapphire Rapids class) as issue 17 measured it: one ZMM
/// group beats two YMM groups, 32 lanes beat 48, and md5-many's AVX-512VL
/// single stream (0.74 GB/s) beats the scalar one (0.66). The shapes the
/// issue did not measure are guesses of the same character.
fn sapphire_rapids() -> Measured {
    measured([4.6, 6.9, 7.5, 4.9, 7.4, 8.0, 8.3, 10.7, 10.3], 0.66, 0.74)
}

#[test]
fn measured_choices_follow_the_cpu() {
    use Isa::*;
    let (shapes, singles) = zen4();
    let tuning = Tuning::from_measurements(Platform::Avx512, &shapes, &singles);
    // Zen 4's figures are the fixed choice's: nothing changes.
    assert_eq!(tuning.shapes(), Tuning::fixed(Platform::Avx512).shapes());
    assert_eq!(tuning.single(), SingleKernel::Scalar);
    assert_eq!(tuning.min_lanes(), 2);

    let (shapes, singles) = sapphire_rapids();
    let tuning = Tuning::from_measurements(Platform::Avx512, &shapes, &singles);
    assert_eq!(
        tuning.shapes(),
        vec![
            // One AVX-512 YMM group's chain (one-cycle VPROLD) beats AVX2's.
            (8, shape(Avx512Ymm, 1)),
            (16, shape(Avx512Zmm, 1)),
            (24, shape(Avx512Ymm, 3)),
            (32, shape(Avx512Zmm, 2)),
            (48, shape(Avx512Zmm, 3)),
        ]
    );
    assert_eq!(tuning.single(), SingleKernel::Avx512);
    assert_eq!(tuning.min_lanes(), 2);

    // Within the margin, the fixed choice stays: noise does not flip it.
    let (mut shapes, mut singles) = zen4();
    shapes[6].1 = shapes[4].1 * (1.0 - MARGIN / 2.0); // 16x1 a hair ahead of 8x2
    singles[1].1 = singles[0].1 * (1.0 - MARGIN / 2.0);
    let tuning = Tuning::from_measurements(Platform::Avx512, &shapes, &singles);
    assert_eq!(tuning.shapes(), Tuning::fixed(Platform::Avx512).shapes());
    assert_eq!(tuning.single(), SingleKernel::Scalar);

    // The AVX2 platform chooses among its own shapes only.
    let (shapes, singles) = sapphire_rapids();
    let avx2: Vec<_> = shapes.into_iter().filter(|(s, _)| s.isa == Avx2).collect();
    let tuning = Tuning::from_measurements(Platform::Avx2, &avx2, &singles[..1]);
    assert_eq!(tuning.shapes(), Tuning::fixed(Platform::Avx2).shapes());
    assert_eq!(tuning.max_lanes(), 24);
}

/// Figures of `shapes` in GB/s with every lane busy, as nanoseconds per
/// block.
fn figures(shapes: &[(Shape, f64)]) -> Vec<(Shape, f64)> {
    shapes
        .iter()
        .map(|&(s, gbps)| (s, ns(s.lanes(), gbps)))
        .collect()
}

/// Two scalar chains take the busy-lane counts where a call of theirs beats
/// the fixed shape's call by the margin, on a SIMD backend and on the
/// portable one, whose 8-lane kernel never runs unforced.
#[test]
fn scalar_chains_take_the_lanes_they_win() {
    use Isa::*;
    // Zen 3 (EPYC family 25 model 1), the start-up calibration's figures.
    let zen3 = |scalar_x2: f64| {
        figures(&[
            (shape(Avx2, 1), 4.33),
            (shape(Avx2, 2), 7.15),
            (shape(Avx2, 3), 8.02),
            (shape(Scalar, 2), scalar_x2),
            (shape(Scalar, 3), 1.47),
        ])
    };
    let single = [(SingleKernel::Scalar, ns(1, 0.72))];
    let tuning = Tuning::from_measurements(Platform::Avx2, &zen3(1.26), &single);
    assert_eq!(
        tuning.shapes(),
        vec![
            (2, shape(Scalar, 2)),
            (8, shape(Avx2, 1)),
            (16, shape(Avx2, 2)),
            (24, shape(Avx2, 3)),
        ]
    );
    assert_eq!(tuning.min_lanes(), 2);
    let first = |tuning: &Tuning, jobs: usize| {
        let rounds = plan_rounds(&vec![100; jobs], tuning.costs(), 16);
        (rounds[0].path, rounds[0].jobs.len())
    };
    assert_eq!(first(&tuning, 1), (Path::Single, 1));
    assert_eq!(first(&tuning, 2), (Path::Lanes, 2));
    assert_eq!(first(&tuning, 3), (Path::Lanes, 3));
    // A call of two chains within the margin of one AVX2 group's: no change.
    let tuning = Tuning::from_measurements(Platform::Avx2, &zen3(1.10), &single);
    assert_eq!(tuning.shapes(), Tuning::fixed(Platform::Avx2).shapes());

    // The portable backend: its 8-lane kernel and the two scalar shapes.
    let portable = |eight_lanes: f64, two_chains: f64, three_chains: f64| {
        figures(&[
            (shape(Portable, 1), eight_lanes),
            (shape(Scalar, 2), two_chains),
            (shape(Scalar, 3), three_chains),
        ])
    };
    let tuning =
        Tuning::from_measurements(Platform::Portable, &portable(0.59, 1.26, 1.47), &single);
    assert_eq!(
        tuning.shapes(),
        vec![(2, shape(Scalar, 2)), (3, shape(Scalar, 3))]
    );
    assert_eq!((tuning.min_lanes(), tuning.max_lanes()), (2, 3));
    assert_eq!(first(&tuning, 2), (Path::Lanes, 2));
    assert_eq!(first(&tuning, 5), (Path::Lanes, 3));
    // A noisy calibration (these are from a loaded CI machine) that makes a
    // call of two chains look cheaper than one stream's block still leaves
    // a lone stream on the single-stream path.
    let noisy_single = [(SingleKernel::Scalar, ns(1, 0.559))];
    let noisy = portable(0.309, 1.136, 1.262);
    let tuning = Tuning::from_measurements(Platform::Portable, &noisy, &noisy_single);
    assert_eq!(tuning.min_lanes(), 2);
    assert_eq!(first(&tuning, 1), (Path::Single, 1));
    assert_eq!(first(&tuning, 2), (Path::Lanes, 2));
    // Were the chains slower than one stream, lanes would never beat the
    // single-stream path there, as before the chains existed.
    let slow = portable(0.59, 0.5, 0.6);
    let tuning = Tuning::from_measurements(Platform::Portable, &slow, &single);
    assert_eq!(tuning.min_lanes(), usize::MAX);
    // Were the portable 8-lane kernel measured faster than the chains, no
    // lane shape would be left: everything runs on the single-stream path.
    // (Found by a differential fuzzer: the planner indexed costs[max - 1].)
    let fast_portable = portable(6.0, 1.26, 1.47);
    let tuning = Tuning::from_measurements(Platform::Portable, &fast_portable, &single);
    assert_eq!((tuning.max_lanes(), tuning.min_lanes()), (0, usize::MAX));
    let mut rng = XorShift(0x5eed_000a);
    let messages: Vec<Vec<u8>> = (0..5).map(|_| rng.message()).collect();
    let (hashers, stats) = absorb_all(&tuning, &messages);
    for (m, h) in messages.iter().zip(hashers) {
        assert_eq!(hex(&h.finalize()), hex(&reference(m)));
    }
    assert_eq!(stats.kernel_calls, 0);
}

/// The planner under both machines' measured costs: both fill 48 lanes when
/// 48 jobs wait (on Sapphire Rapids 32 lanes are faster, but by less than
/// the margin) but run 40 as 32 lanes taking turns (32 lanes give clearly
/// more blocks per nanosecond than 40 of 48).
#[test]
fn planner_table_under_measured_costs() {
    let zen4 = {
        let (s, k) = zen4();
        *Tuning::from_measurements(Platform::Avx512, &s, &k).costs()
    };
    let spr = {
        let (s, k) = sapphire_rapids();
        *Tuning::from_measurements(Platform::Avx512, &s, &k).costs()
    };
    let busy_first = |costs: &Costs, jobs: usize| {
        let rounds = plan_rounds(&vec![100; jobs], costs, 16);
        (rounds[0].path, rounds[0].jobs.len())
    };
    assert_eq!(busy_first(&zen4, 1), (Path::Single, 1));
    assert_eq!(busy_first(&zen4, 2), (Path::Lanes, 2));
    assert_eq!(busy_first(&zen4, 40), (Path::Lanes, 32));
    assert_eq!(busy_first(&zen4, 48), (Path::Lanes, 48));
    assert_eq!(busy_first(&zen4, 64), (Path::Lanes, 48));
    assert_eq!(busy_first(&spr, 1), (Path::Single, 1));
    assert_eq!(busy_first(&spr, 40), (Path::Lanes, 32));
    assert_eq!(busy_first(&spr, 48), (Path::Lanes, 48));
    assert_eq!(busy_first(&spr, 64), (Path::Lanes, 48));
    // Every job still gets exactly its blocks, in turns.
    for costs in [zen4, spr] {
        for jobs in [1, 2, 7, 40, 48, 70] {
            let blocks: Vec<usize> = (0..jobs).map(|j| 10 + 37 * j % 200).collect();
            let mut done = vec![0; jobs];
            for r in plan_rounds(&blocks, &costs, 16) {
                for j in r.jobs {
                    done[j] += r.blocks;
                }
            }
            assert_eq!(done, blocks);
        }
    }
}
