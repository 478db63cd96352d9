//! MD5 for one stream and for many streams at once in SIMD lanes.
//!
//! MD5 is serial within one stream: every block needs the previous block's
//! chaining value, so one stream runs at about 0.65-0.9 GB/s per core whatever
//! the CPU. A hasher holding many uploads can instead put independent streams
//! side by side in SIMD lanes: 16 per AVX-512 register, 8 per AVX2 register,
//! and two or three such groups interleaved to hide instruction latency.
//!
//! Layout:
//! - this file: the public API ([`Md5`], [`update_many`], [`Platform`]), CPU
//!   dispatch, and the round planner (`plan`) that decides which
//!   streams share which kernel call;
//! - `tune.rs`: which kernel shape runs a call with a given number of busy
//!   lanes, which single-stream kernel runs, and what each costs: fixed
//!   choices measured on one CPU, or measured at start-up ([`Tuning`]);
//! - `single.rs`: the scalar single-stream compression function (the fast
//!   path for one stream, and for rounds where too few lanes would be busy);
//!   `x86/single512.rs` the AVX-512VL one;
//! - `portable.rs`: portable multi-lane MD5, the reference for the kernels;
//! - `x86/avx2.rs`, `x86/avx512.rs`: the SIMD lane kernels.
//!
//! Every lane kernel has the same contract: given up to `max_lanes` `Lane`s
//! and a block count, hash that many blocks of each lane's data into its
//! chaining value. Partial blocks never reach a kernel: [`Md5`] buffers them.
//!
//! Throughput, measured with `cargo bench -p hashd-benches --bench md5` on
//! AMD EPYC machines of the Zen 4 (AVX-512) and Zen 3 (AVX2) kinds: see the
//! tables in `benches/benches/md5.rs`.

mod consts;
mod portable;
mod single;
mod tune;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use tune::{single_kernel, Calibration, Isa, Shape, SingleKernel, Tuning, MARGIN};
use tune::{Costs, MAX_LANES};

#[cfg(test)]
mod tests;

use std::fmt;

use consts::INITIAL_STATE;

/// Bytes in one MD5 block.
pub const BLOCK_LEN: usize = 64;

/// Bytes in one MD5 digest.
pub const DIGEST_LEN: usize = 16;

/// Which lane kernel hashes the streams of [`update_many`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    /// Plain Rust, any CPU.
    Portable,
    /// AVX2: 8 lanes per register.
    Avx2,
    /// AVX-512F and VL (and AVX2): 16 lanes per register.
    Avx512,
}

impl Platform {
    /// Every platform, most portable first.
    pub const ALL: [Platform; 3] = [Platform::Portable, Platform::Avx2, Platform::Avx512];

    /// The best platform this CPU has, honouring the test-only cargo features
    /// `no_avx512` and `no_avx2`.
    pub fn detect() -> Platform {
        if Platform::Avx512.is_available() {
            Platform::Avx512
        } else if Platform::Avx2.is_available() {
            Platform::Avx2
        } else {
            Platform::Portable
        }
    }

    /// Parses a backend name as given in configuration: `auto` (the same as
    /// [`Platform::detect`]), `portable`, `avx2` or `avx512`. Naming a backend
    /// this CPU (or this build) lacks is an error.
    pub fn from_name(name: &str) -> Result<Platform, BackendError> {
        let platform = match name {
            "auto" => return Ok(Platform::detect()),
            "portable" => Platform::Portable,
            "avx2" => Platform::Avx2,
            "avx512" => Platform::Avx512,
            _ => {
                return Err(BackendError {
                    name: name.to_owned(),
                    unavailable: None,
                })
            }
        };
        if platform.is_available() {
            Ok(platform)
        } else {
            Err(BackendError {
                name: name.to_owned(),
                unavailable: Some(platform),
            })
        }
    }

    /// The lower-case name [`Platform::from_name`] accepts.
    pub fn name(self) -> &'static str {
        match self {
            Platform::Portable => "portable",
            Platform::Avx2 => "avx2",
            Platform::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run the platform's kernel and this build allows it.
    pub fn is_available(self) -> bool {
        match self {
            Platform::Portable => true,
            Platform::Avx2 => {
                #[cfg(all(target_arch = "x86_64", not(feature = "no_avx2")))]
                {
                    std::arch::is_x86_feature_detected!("avx2")
                }
                #[cfg(not(all(target_arch = "x86_64", not(feature = "no_avx2"))))]
                {
                    false
                }
            }
            Platform::Avx512 => {
                #[cfg(all(target_arch = "x86_64", not(feature = "no_avx512")))]
                {
                    std::arch::is_x86_feature_detected!("avx2")
                        && std::arch::is_x86_feature_detected!("avx512f")
                        && std::arch::is_x86_feature_detected!("avx512vl")
                }
                #[cfg(not(all(target_arch = "x86_64", not(feature = "no_avx512"))))]
                {
                    false
                }
            }
        }
    }

    /// Lanes per kernel call at most, with the [`Tuning::fixed`] shapes.
    pub fn max_lanes(self) -> usize {
        Tuning::fixed(self).max_lanes()
    }

    /// The fewest busy lanes for which a kernel call beats hashing each of
    /// those streams on the single-stream path, per [`Tuning::fixed`]
    /// (`usize::MAX` for the portable platform, whose lanes never do).
    pub fn min_lanes(self) -> usize {
        Tuning::fixed(self).min_lanes()
    }

    /// Hashes `blocks` blocks of every lane's data into its state, with the
    /// [`Tuning::fixed`] shape for that many lanes.
    ///
    /// # Panics
    /// If the CPU lacks the platform, if there are more than
    /// [`Platform::max_lanes`] lanes, or if a lane holds fewer than `blocks`
    /// blocks.
    #[cfg(test)]
    fn compress_lanes(self, lanes: &mut [Lane<'_>], blocks: usize) {
        Tuning::fixed(self).compress_lanes(lanes, blocks);
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A backend name that is unknown, or names a backend this CPU lacks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendError {
    /// The name as given.
    name: String,
    /// The backend it names, if it names one (which this CPU or build lacks).
    unavailable: Option<Platform>,
}

impl BackendError {
    /// The backend name as given in configuration.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The backend named, when the name is known but the backend is not
    /// available; `None` when the name is unknown.
    pub fn unavailable(&self) -> Option<Platform> {
        self.unavailable
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.unavailable {
            None => write!(
                f,
                "unknown md5 backend {:?}; expected one of auto, portable, avx2, avx512",
                self.name
            ),
            Some(platform) => write!(
                f,
                "md5 backend {platform} is not available on this cpu (or disabled in this build)"
            ),
        }
    }
}

impl std::error::Error for BackendError {}

/// One stream's MD5 state: chaining value, partial block, total length.
#[derive(Clone)]
pub struct Md5 {
    /// The chaining value after every whole block absorbed so far.
    state: [u32; 4],
    /// Bytes of the current partial block; the first `buffered` are valid.
    buf: [u8; BLOCK_LEN],
    /// How many bytes of `buf` are valid; always below [`BLOCK_LEN`].
    buffered: usize,
    /// Bytes absorbed so far, for the length in the padding.
    len: u64,
}

impl Md5 {
    /// A stream that has absorbed nothing.
    pub fn new() -> Md5 {
        Md5 {
            state: INITIAL_STATE,
            buf: [0; BLOCK_LEN],
            buffered: 0,
            len: 0,
        }
    }

    /// Absorbs `data` on the single-stream path, with the kernel the last
    /// [`Tuning::install`] chose (scalar until then).
    pub fn update(&mut self, data: &[u8]) {
        self.update_with(tune::single_kernel(), data);
    }

    /// Absorbs `data` with the given single-stream kernel.
    ///
    /// # Panics
    /// If the kernel needs a backend this CPU or build lacks.
    pub fn update_with(&mut self, kernel: SingleKernel, data: &[u8]) {
        let (head, bulk) = self.absorb(data);
        if let Some(head) = head {
            kernel.compress(&mut self.state, &head);
        }
        kernel.compress(&mut self.state, bulk);
    }

    /// Pads, hashes the last block(s) and returns the digest.
    pub fn finalize(self) -> [u8; DIGEST_LEN] {
        self.finalize_with(tune::single_kernel())
    }

    /// [`Md5::finalize`] with the given single-stream kernel.
    ///
    /// # Panics
    /// If the kernel needs a backend this CPU or build lacks.
    pub fn finalize_with(mut self, kernel: SingleKernel) -> [u8; DIGEST_LEN] {
        let bit_len = self.len.wrapping_mul(8);
        let mut tail = [0u8; 2 * BLOCK_LEN];
        tail[..self.buffered].copy_from_slice(&self.buf[..self.buffered]);
        tail[self.buffered] = 0x80;
        let tail_len = if self.buffered < BLOCK_LEN - 8 {
            BLOCK_LEN
        } else {
            2 * BLOCK_LEN
        };
        tail[tail_len - 8..tail_len].copy_from_slice(&bit_len.to_le_bytes());
        kernel.compress(&mut self.state, &tail[..tail_len]);
        let mut digest = [0u8; DIGEST_LEN];
        for (out, word) in digest.chunks_exact_mut(4).zip(self.state) {
            out.copy_from_slice(&word.to_le_bytes());
        }
        digest
    }

    /// Bytes absorbed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing has been absorbed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Takes `data` into the stream's bookkeeping without hashing anything:
    /// returns the partial block completed by `data` (if any) and the
    /// block-aligned bulk that follows it, both still to be hashed, in that
    /// order; keeps the remainder in the buffer.
    fn absorb<'d>(&mut self, mut data: &'d [u8]) -> (Option<[u8; BLOCK_LEN]>, &'d [u8]) {
        self.len = self.len.wrapping_add(data.len() as u64);
        let mut head = None;
        if self.buffered > 0 {
            let take = (BLOCK_LEN - self.buffered).min(data.len());
            self.buf[self.buffered..self.buffered + take].copy_from_slice(&data[..take]);
            self.buffered += take;
            data = &data[take..];
            if self.buffered < BLOCK_LEN {
                return (None, &[]);
            }
            head = Some(self.buf);
            self.buffered = 0;
        }
        let bulk_len = data.len() - data.len() % BLOCK_LEN;
        let (bulk, rest) = data.split_at(bulk_len);
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buffered = rest.len();
        (head, bulk)
    }
}

impl Default for Md5 {
    fn default() -> Md5 {
        Md5::new()
    }
}

impl fmt::Debug for Md5 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Md5")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// Occupancy of the lane kernels over one or more [`update_many`] calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LaneStats {
    /// Kernel calls made.
    pub kernel_calls: u64,
    /// Blocks hashed in busy lanes.
    pub lane_blocks: u64,
    /// Lane-blocks the kernels computed, busy or idle; `lane_blocks /
    /// lane_slots` is the occupancy. Blocks hashed on the single-stream path
    /// appear in neither.
    pub lane_slots: u64,
}

impl std::ops::AddAssign for LaneStats {
    fn add_assign(&mut self, other: LaneStats) {
        self.kernel_calls += other.kernel_calls;
        self.lane_blocks += other.lane_blocks;
        self.lane_slots += other.lane_slots;
    }
}

/// One lane of a kernel call: a stream's chaining value and the data to hash
/// into it, of which the kernel hashes a prefix of whole blocks.
pub(crate) struct Lane<'d> {
    /// The chaining value, updated in place.
    pub(crate) state: [u32; 4],
    /// The stream's data from the next block on.
    pub(crate) data: &'d [u8],
}

/// Checks that every lane holds `blocks` blocks: every lane kernel's first
/// step, and what the SIMD kernels' unchecked loads rest on.
///
/// # Panics
/// If a lane holds fewer than `blocks` blocks ("md5 lane shorter than the
/// round").
pub(crate) fn assert_lanes_hold(lanes: &[Lane<'_>], blocks: usize) {
    assert!(
        lanes
            .iter()
            .all(|lane| lane.data.len() >= blocks * BLOCK_LEN),
        "md5 lane shorter than the round"
    );
}

/// Absorbs each stream's data into that stream, with the [`Tuning::fixed`]
/// kernels of `platform`; see [`update_many_tuned`].
///
/// # Panics
/// If `platform` is not available on this CPU (see [`Platform::is_available`]).
pub fn update_many(platform: Platform, streams: &mut [(&mut Md5, &[u8])]) -> LaneStats {
    update_many_tuned(&Tuning::fixed(platform), streams)
}

/// Absorbs each stream's data into that stream.
///
/// The block-aligned bulk of all streams is hashed together in SIMD lanes;
/// partial blocks are buffered in the [`Md5`]. Streams may have very unequal
/// lengths: a planner decides which streams share each kernel call, and
/// rounds where lanes would not beat the single-stream path (per the
/// tuning's costs) run on the tuning's single-stream kernel instead. Returns
/// occupancy figures for `/stats`.
///
/// Each call has a fixed cost (planning, and each kernel call's start and
/// drain), so feed several KiB per stream per call: on Zen 4, 32 streams over
/// AVX-512 fed 16 KiB per call ran at 10.3 GB/s, 4 KiB at 9.6, 1 KiB at 8.0,
/// 256 B at 4.8.
///
/// # Panics
/// If the tuning's platform is not available on this CPU.
pub fn update_many_tuned(tuning: &Tuning, streams: &mut [(&mut Md5, &[u8])]) -> LaneStats {
    let platform = tuning.platform();
    // Before any stream is touched, so that a panic leaves them consistent.
    assert!(
        platform.is_available(),
        "md5 backend {platform} is not available on this cpu"
    );
    let mut states: Vec<[u32; 4]> = Vec::with_capacity(streams.len());
    let mut heads: Vec<(usize, [u8; BLOCK_LEN])> = Vec::new();
    let mut bulks: Vec<(usize, &[u8])> = Vec::with_capacity(streams.len());
    for (i, (md5, data)) in streams.iter_mut().enumerate() {
        let (head, bulk) = md5.absorb(data);
        states.push(md5.state);
        if let Some(head) = head {
            heads.push((i, head));
        }
        if !bulk.is_empty() {
            bulks.push((i, bulk));
        }
    }

    let mut stats = LaneStats::default();
    // The completed partial blocks come first: each precedes its stream's bulk.
    let head_jobs: Vec<(usize, &[u8])> = heads.iter().map(|(i, head)| (*i, &head[..])).collect();
    run_jobs(tuning, &mut states, &head_jobs, &mut stats);
    run_jobs(tuning, &mut states, &bulks, &mut stats);

    for ((md5, _), state) in streams.iter_mut().zip(states) {
        md5.state = state;
    }
    stats
}

/// Hashes each job's block-aligned data into `states[job's stream]`, following
/// the plan of [`plan`]. No two jobs may name the same stream.
fn run_jobs(
    tuning: &Tuning,
    states: &mut [[u32; 4]],
    jobs: &[(usize, &[u8])],
    stats: &mut LaneStats,
) {
    let blocks: Vec<usize> = jobs
        .iter()
        .map(|(_, data)| data.len() / BLOCK_LEN)
        .collect();
    let rounds = plan(&blocks, tuning.costs());
    // Blocks of each job hashed so far: rounds run each job's blocks in order.
    let mut done = vec![0usize; jobs.len()];
    let mut lanes: Vec<Lane<'_>> = Vec::with_capacity(tuning.max_lanes());
    for round in &rounds {
        match round.path {
            Path::Lanes => {
                lanes.clear();
                lanes.extend(round.jobs.iter().map(|&j| Lane {
                    state: states[jobs[j].0],
                    data: &jobs[j].1[done[j] * BLOCK_LEN..],
                }));
                tuning.compress_lanes(&mut lanes, round.blocks);
                for (lane, &j) in lanes.iter().zip(&round.jobs) {
                    states[jobs[j].0] = lane.state;
                    done[j] += round.blocks;
                }
                let blocks = round.blocks as u64;
                let slots = tuning.shape(lanes.len()).map_or(0, Shape::lanes);
                stats.kernel_calls += 1;
                stats.lane_blocks += lanes.len() as u64 * blocks;
                stats.lane_slots += slots as u64 * blocks;
            }
            Path::Single => {
                for &j in &round.jobs {
                    let (stream, data) = jobs[j];
                    let run = &data[done[j] * BLOCK_LEN..(done[j] + round.blocks) * BLOCK_LEN];
                    tuning.single().compress(&mut states[stream], run);
                    done[j] += round.blocks;
                }
            }
        }
    }
    debug_assert_eq!(done, blocks, "md5 plan left blocks unhashed");
}

/// Where a round runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Path {
    /// One kernel call with one lane per job.
    Lanes,
    /// Each job on the single-stream path: too few lanes would be busy.
    Single,
}

/// One step of a plan: run `blocks` blocks of each of `jobs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Round {
    /// Kernel call or single-stream path.
    pub(crate) path: Path,
    /// The jobs, by index into the planner's input, each in its own lane;
    /// in no particular order (lanes are alike).
    pub(crate) jobs: Vec<usize>,
    /// Blocks each job advances by.
    pub(crate) blocks: usize,
}

/// The slices [`plan`] tries: blocks a round runs at least while streams wait
/// for a lane (unless a lane's job ends sooner), so that waiting streams take
/// turns in slices rather than shattering the plan into rounds of a block or
/// two. `usize::MAX` runs the lanes' jobs to their ends: whole batches.
///
/// Short slices balance the lanes' work best (25 equal streams in 24 lanes
/// need slices of 1/24 of a stream to finish together); long ones start fewer
/// lanes on new streams ([`LANE_START_BLOCKS`]). Measured on Zen 3 (EPYC
/// family 25 model 1), AVX2, staggered 64 KiB streams, each slice forced for
/// every call by a temporary switch, interleaved in one process
/// (`md5_side_by_side`, medians of 5, two runs), GB/s:
///
/// | streams | 32 | 64 | 256 | whole | what [`plan`] picks |
/// |---:|---:|---:|---:|---:|---|
/// | 25 | 6.73-6.81 | 7.04-7.10 | 6.58-6.61 | 5.34-5.39 | 64 |
/// | 32 | 6.78-6.87 | 6.92-7.02 | 6.85-6.94 | 5.99-6.06 | 64 |
/// | 40 | 6.74-6.76 | 6.99-7.04 | 7.20 | 7.09-7.16 | 256 |
/// | 48 | 6.76-6.78 | 7.02-7.06 | 7.25-7.28 | 7.35 | whole |
/// | 64 | 6.72-6.75 | 6.97-7.01 | 7.18-7.25 | 7.20-7.21 | 256 |
/// | 96 | 6.62-6.67 | 6.91-6.99 | 7.15-7.23 | 7.22-7.29 | whole |
///
/// No one slice wins everywhere, so [`plan`] prices each; 32 never won.
/// The table is the intrinsics AVX2 kernel's. Measured the same way with the
/// `asm!` kernel (two runs, 7.0 to 7.8 GB/s): the same pattern, 64-block
/// slices fastest at 25 and 32 streams and 256 or whole batches from 40 on,
/// and `plan`'s choice within 1.7% of the fastest forced slice in every row
/// (its own planning, up to 1% of a call, included).
const SLICES: [usize; 3] = [64, 256, usize::MAX];

/// What a lane starting on a stream it did not hash in the previous kernel
/// call costs, in blocks of that lane's work at full width (presumably the
/// stream's next blocks are not yet on their way from memory). From the
/// figures under [`SLICES`]: at 48 streams, 64-block slices start 720 more
/// lanes than whole batches and ran 4.3% slower, 3.4% once their planning
/// (about 4 us a call) is taken out: 2.3 blocks per start; 32-block slices,
/// 768 starts more again, 2.4 blocks per start.
const LANE_START_BLOCKS: f64 = 2.3;

/// Plans the kernel calls that hash `blocks[j]` blocks of each job `j`: the
/// [`plan_slices`] plan, over the [`SLICES`], that costs least under `costs`
/// plus [`LANE_START_BLOCKS`] per lane start ([`Priced::cost`]); of equal ones,
/// the shorter slice's.
///
/// Planning has a cost of its own, which grows with rounds times jobs: the
/// longest slices, which plan in the fewest rounds, go first; a plan that no
/// plan can beat ([`cost_floor`]) ends the search; and a slice's plan is
/// abandoned as soon as it cannot beat the best so far. Measured on Zen 3
/// (EPYC family 25 model 1), 64 equal jobs of 1024 blocks: planning took
/// 24 us, 4% of hashing the 4 MiB it planned, when every slice was priced to
/// the end with a fresh selection of jobs each round; 5.5 us now.
///
/// Costs with no lanes at all (a calibration in which no lane kernel won a
/// place) plan every job on the single-stream path.
pub(crate) fn plan(blocks: &[usize], costs: &Costs) -> Vec<Round> {
    if costs.max_lanes() == 0 {
        return blocks
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b > 0)
            .map(|(j, &b)| Round {
                path: Path::Single,
                jobs: vec![j],
                blocks: b,
            })
            .collect();
    }
    let floor = cost_floor(blocks, costs);
    let mut best: Option<Priced> = None;
    for &slice in SLICES.iter().rev() {
        let budget = best.as_ref().map_or(f64::INFINITY, |b| b.cost);
        let Some(priced) = plan_slices(blocks, costs, slice, budget) else {
            continue;
        };
        if !priced.waited {
            // Slices matter only to rounds that leave jobs waiting.
            return priced.rounds;
        }
        let at_floor = priced.cost <= floor * (1.0 + 1e-9);
        best = Some(priced);
        if at_floor {
            break;
        }
    }
    best.map(|b| b.rounds).unwrap_or_default()
}

/// A cost no plan of `blocks` goes below under `costs`: each job either runs
/// on the single-stream path throughout, or starts a lane at least once and
/// runs every block at best at the cheapest cost per lane-block.
pub(crate) fn cost_floor(blocks: &[usize], costs: &Costs) -> f64 {
    let start = lane_start_cost(costs);
    let per_lane_block = cheapest_lane_block(costs);
    blocks
        .iter()
        .filter(|&&b| b > 0)
        .map(|&b| (b as f64 * costs.single).min(b as f64 * per_lane_block + start))
        .sum()
}

/// [`LANE_START_BLOCKS`] in `costs`' units.
fn lane_start_cost(costs: &Costs) -> f64 {
    let max = costs.max_lanes();
    LANE_START_BLOCKS * costs.lanes[max - 1] / max as f64
}

/// The least a block of one lane costs in any call.
fn cheapest_lane_block(costs: &Costs) -> f64 {
    (1..=costs.max_lanes())
        .map(|n| costs.lanes[n - 1] / n as f64)
        .fold(f64::INFINITY, f64::min)
}

/// The cost of a plan under `costs` (their units), counting a lane start for
/// each job of a lanes round that did not run in lanes in the round before.
/// [`plan_slices`] prices as it plans; the tests hold it to this.
#[cfg(test)]
pub(crate) fn plan_cost(rounds: &[Round], costs: &Costs) -> f64 {
    let start = lane_start_cost(costs);
    let jobs = rounds
        .iter()
        .flat_map(|r| &r.jobs)
        .max()
        .map_or(0, |&j| j + 1);
    let mut lanes = LaneStarts::new(jobs);
    let mut total = 0.0;
    for (i, round) in rounds.iter().enumerate() {
        total += round_cost(round, costs, start, |j| lanes.starts(j, i));
    }
    total
}

/// Which jobs start a lane: those that did not run in lanes the round before.
struct LaneStarts {
    /// The last lanes round that ran each job.
    last: Vec<Option<usize>>,
}

impl LaneStarts {
    fn new(jobs: usize) -> LaneStarts {
        LaneStarts {
            last: vec![None; jobs],
        }
    }

    /// Whether `job`, running in lanes in round `round`, starts a lane.
    fn starts(&mut self, job: usize, round: usize) -> bool {
        let started = self.last[job].is_none_or(|l| l + 1 != round);
        self.last[job] = Some(round);
        started
    }
}

/// The cost of one round: its blocks at the rate of its path, plus `start`
/// for each job of a lanes round for which `starts(job)` says it starts a
/// lane.
fn round_cost(
    round: &Round,
    costs: &Costs,
    start: f64,
    mut starts: impl FnMut(usize) -> bool,
) -> f64 {
    let blocks = round.blocks as f64;
    match round.path {
        Path::Lanes => {
            let started = round.jobs.iter().filter(|&&j| starts(j)).count();
            blocks * costs.lanes[round.jobs.len() - 1] + start * started as f64
        }
        Path::Single => blocks * costs.single * round.jobs.len() as f64,
    }
}

/// A plan of [`plan_slices`] with its cost.
#[derive(Debug)]
pub(crate) struct Priced {
    /// The rounds, in order.
    pub(crate) rounds: Vec<Round>,
    /// The rounds' blocks at their paths' costs, plus [`LANE_START_BLOCKS`]
    /// for each job of a lanes round that did not run in lanes in the round
    /// before.
    pub(crate) cost: f64,
    /// Whether any round left a job waiting.
    pub(crate) waited: bool,
}

/// Plans the kernel calls that hash `blocks[j]` blocks of each job `j` on a
/// machine with the given costs.
///
/// A kernel call costs about the same whether all its lanes are busy or not,
/// and a job can change lanes between calls for free (its chaining value is
/// reloaded every call), so the planner keeps lanes busy for as long as it
/// can, and makes the long jobs finish together rather than one by one:
/// - each round takes as many jobs as give the most blocks per nanosecond
///   ([`Costs::best_lanes`]: with flat costs, every lane it can fill), the
///   ones with the most blocks left (ties: the earlier job), so a long job is
///   never left to run alone at the end while short ones had lanes earlier;
/// - the round runs in lanes if that beats the single-stream path for those
///   jobs, on the single-stream path otherwise;
/// - with no job waiting, a round runs until its shortest job ends: lanes drop
///   out one length at a time;
/// - with jobs waiting, it runs until its shortest job is down to the longest
///   waiting one, but at least `min_slice` blocks (or to that job's end),
///   so that waiting jobs take turns without the plan shattering into rounds of
///   a block or two.
///
/// A job of zero blocks appears in no round.
///
/// Returns `None` as soon as the plan's cost is sure to exceed `budget` (the
/// cost so far, plus the remaining blocks at the cheapest rate any path has);
/// `f64::INFINITY` plans to the end.
pub(crate) fn plan_slices(
    blocks: &[usize],
    costs: &Costs,
    min_slice: usize,
    budget: f64,
) -> Option<Priced> {
    let max_lanes = costs.max_lanes();
    assert!(max_lanes > 0, "md5 planner needs at least one lane");
    let start = lane_start_cost(costs);
    let cheapest = cheapest_lane_block(costs).min(costs.single);
    // Jobs with blocks left, kept in round order: most blocks left first,
    // ties the earlier job. A round takes a prefix and, having run, merges it
    // back: linear in the jobs, where selecting afresh each round was not.
    let mut left: Vec<(usize, usize)> = blocks
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b > 0)
        .map(|(job, &b)| (job, b))
        .collect();
    let order = |x: &(usize, usize), y: &(usize, usize)| y.1.cmp(&x.1).then(x.0.cmp(&y.0));
    left.sort_unstable_by(order);
    let mut remaining: usize = left.iter().map(|&(_, b)| b).sum();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(left.len());
    let mut lanes = LaneStarts::new(blocks.len());
    let mut rounds = Vec::new();
    let mut cost = 0.0;
    let mut waited = false;
    // `Costs::best_lanes` by job count (capped at `max_lanes`), each
    // computed once: it weighs every lane count.
    let mut best_lanes: [Option<(usize, bool)>; MAX_LANES + 1] = [None; MAX_LANES + 1];
    while !left.is_empty() {
        let count = left.len().min(max_lanes);
        let (best, in_lanes) = *best_lanes[count].get_or_insert_with(|| costs.best_lanes(count));
        // On the single-stream path, lanes do not matter: take every job a
        // call could.
        let busy = if in_lanes { best } else { count };
        let shortest = left[busy - 1].1;
        let run = match left.get(busy) {
            None => shortest,
            Some(&(_, waiting)) => {
                waited = true;
                (shortest - waiting).max(min_slice).min(shortest)
            }
        };
        let jobs: Vec<usize> = left[..busy].iter().map(|&(job, _)| job).collect();
        let path = if in_lanes { Path::Lanes } else { Path::Single };
        let round = Round {
            path,
            jobs,
            blocks: run,
        };
        let index = rounds.len();
        cost += round_cost(&round, costs, start, |j| lanes.starts(j, index));
        remaining -= run * busy;
        if cost + remaining as f64 * cheapest > budget * (1.0 + 1e-9) {
            return None;
        }
        rounds.push(round);

        // The prefix, less `run` each, keeps its order, and its finished jobs
        // are its tail: merge what is left of it with the waiting jobs.
        for entry in &mut left[..busy] {
            entry.1 -= run;
        }
        let ran = left[..busy].iter().take_while(|&&(_, b)| b > 0).count();
        let (head, waiting) = (&left[..ran], &left[busy..]);
        if head.is_empty() || waiting.is_empty() || order(&head[ran - 1], &waiting[0]).is_le() {
            // Still in order (no job waits, or the ones that ran still lead).
            left.drain(ran..busy);
            continue;
        }
        merged.clear();
        if order(&waiting[waiting.len() - 1], &head[0]).is_le() {
            // Every job that ran goes behind every waiting one: turns.
            merged.extend_from_slice(waiting);
            merged.extend_from_slice(head);
            std::mem::swap(&mut left, &mut merged);
            continue;
        }
        let (mut i, mut k) = (0, 0);
        while i < head.len() && k < waiting.len() {
            if order(&head[i], &waiting[k]).is_le() {
                merged.push(head[i]);
                i += 1;
            } else {
                merged.push(waiting[k]);
                k += 1;
            }
        }
        merged.extend_from_slice(&head[i..]);
        merged.extend_from_slice(&waiting[k..]);
        std::mem::swap(&mut left, &mut merged);
    }
    Some(Priced {
        rounds,
        cost,
        waited,
    })
}
