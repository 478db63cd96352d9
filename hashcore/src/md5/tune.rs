//! Which kernel runs where, chosen by measurement on the machine at hand.
//!
//! The lane kernels come in shapes (an instruction set, a register width and
//! a number of interleaved register groups, or two or three scalar chains),
//! and which shape is fastest for a given number of busy lanes depends on
//! the CPU: on AMD Zen 4 a ZMM
//! instruction is split into two 256-bit halves and vector rotates take two
//! cycles, so several YMM groups beat one ZMM group; on Intel cores neither
//! holds. Likewise the single-stream path has a scalar kernel and an
//! AVX-512VL one ([`super::x86::single512`]), and which is faster is the
//! CPU's business.
//!
//! [`Tuning::fixed`] is the choice measured once on Zen 4 (the constants the
//! kernels were tuned with); [`Tuning::calibrate`] times every available
//! shape and single-stream kernel on L1-resident data for about a millisecond
//! and replaces a fixed choice only where another wins by [`MARGIN`], so that
//! noise on a shared machine does not flip choices from one start to the
//! next. The planner ([`super::plan`]) then uses the measured costs.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use super::{portable, Lane, Platform, BLOCK_LEN};

/// Busy lanes a kernel call can hold at most, over every shape.
pub const MAX_LANES: usize = 48;

/// How much faster (as a fraction of the fixed choice's time) a measured
/// alternative must be to replace it: the real differences this guards are
/// 5% or more (the Zen 4 figures at [`Tuning::fixed`]: AVX2's chain 5% ahead
/// of one AVX-512 YMM group; Intel's AVX-512VL single stream 12% ahead of
/// the scalar one); a smaller lead in a 1 ms calibration on a shared
/// machine is as likely the moment's load as the CPU.
pub const MARGIN: f64 = 0.05;

/// Bytes of each lane's input while calibrating: 16 blocks, the same for
/// every lane, so that even 48 lanes read one L1-resident KiB.
const CALIBRATION_BLOCKS: usize = 16;

/// Calibration stops after this long (or [`CALIBRATION_MAX_ROUNDS`]), having
/// timed every kernel at least [`CALIBRATION_MIN_ROUNDS`] times.
const CALIBRATION_TIME: Duration = Duration::from_millis(1);
const CALIBRATION_MIN_ROUNDS: usize = 5;
const CALIBRATION_MAX_ROUNDS: usize = 200;

/// The instruction set and register width of a lane kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Plain Rust over arrays of 8 lanes.
    Portable,
    /// AVX2, 8 lanes per YMM register.
    Avx2,
    /// AVX-512VL on YMM registers, 8 lanes each (`VPTERNLOGD`, `VPROLD`).
    Avx512Ymm,
    /// AVX-512F on ZMM registers, 16 lanes each.
    Avx512Zmm,
    /// Plain Rust in general-purpose registers, one lane per MD5 chain, the
    /// groups being chains interleaved step by step (`single.rs`): they fill
    /// the integer pipes one chain leaves idle. Two or three chains, on
    /// every platform.
    Scalar,
}

/// A lane kernel: an instruction set and how many register groups it
/// interleaves, which together fix the lanes one call computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shape {
    /// Instruction set and register width.
    pub isa: Isa,
    /// Register groups (scalar chains) interleaved: 1 to 3 for the SIMD
    /// kernels, 1 for the portable one, 2 or 3 for the scalar one.
    pub groups: usize,
}

impl Shape {
    const fn new(isa: Isa, groups: usize) -> Shape {
        Shape { isa, groups }
    }

    /// Lanes one call computes, busy or idle.
    pub fn lanes(self) -> usize {
        self.groups
            * match self.isa {
                Isa::Scalar => 1,
                Isa::Portable | Isa::Avx2 | Isa::Avx512Ymm => 8,
                Isa::Avx512Zmm => 16,
            }
    }

    /// Whether `platform` offers this shape (whether the CPU has the
    /// platform is [`Platform::is_available`]'s business).
    pub fn is_on(self, platform: Platform) -> bool {
        let isa = match self.isa {
            Isa::Scalar => true,
            Isa::Portable => platform == Platform::Portable,
            Isa::Avx2 => matches!(platform, Platform::Avx2 | Platform::Avx512),
            Isa::Avx512Ymm | Isa::Avx512Zmm => platform == Platform::Avx512,
        };
        let groups = match self.isa {
            // One scalar chain is the single-stream path, not a lane shape.
            Isa::Scalar => 2..=3,
            Isa::Portable => 1..=1,
            Isa::Avx2 | Isa::Avx512Ymm | Isa::Avx512Zmm => 1..=3,
        };
        isa && groups.contains(&self.groups)
    }

    /// Every shape a platform offers: its SIMD shapes, then the scalar ones.
    pub fn all(platform: Platform) -> Vec<Shape> {
        let isas: &[Isa] = match platform {
            Platform::Portable => &[Isa::Portable],
            Platform::Avx2 => &[Isa::Avx2],
            Platform::Avx512 => &[Isa::Avx2, Isa::Avx512Ymm, Isa::Avx512Zmm],
        };
        isas.iter()
            .chain(&[Isa::Scalar])
            .flat_map(|&isa| (1..=3).map(move |g| Shape::new(isa, g)))
            .filter(|shape| shape.is_on(platform))
            .collect()
    }

    /// Hashes `blocks` blocks of each lane's data into its state, in one
    /// call of this shape.
    ///
    /// # Panics
    /// If `platform` lacks the shape's instruction set or is not available
    /// on this CPU, if there are more lanes than [`Shape::lanes`], or if a
    /// lane holds fewer than `blocks` blocks.
    pub(crate) fn compress(self, platform: Platform, lanes: &mut [Lane<'_>], blocks: usize) {
        assert!(
            self.is_on(platform) && platform.is_available(),
            "md5 kernel {self} is not available on the {platform} backend"
        );
        assert!(
            lanes.len() <= self.lanes(),
            "{} md5 lanes exceed kernel {self}",
            lanes.len()
        );
        // Each kernel checks that every lane holds the blocks: the SIMD ones
        // load through pointers on the strength of that check.
        if lanes.is_empty() || blocks == 0 {
            return;
        }
        match self.isa {
            Isa::Scalar => return super::single::compress_lanes(lanes, blocks),
            Isa::Portable => return portable::compress(lanes, blocks),
            Isa::Avx2 | Isa::Avx512Ymm | Isa::Avx512Zmm => {}
        }
        #[cfg(target_arch = "x86_64")]
        {
            use super::x86::{avx2, avx512};
            // SAFETY: `platform` is available (checked above) and includes
            // this shape's instruction set: Avx2 shapes need AVX2, which both
            // the avx2 and avx512 platforms check; Avx512Ymm and Avx512Zmm
            // shapes need AVX2, AVX-512F and AVX-512VL, which only the avx512
            // platform offers and checks. Lanes and blocks were checked above.
            unsafe {
                match (self.isa, self.groups) {
                    (Isa::Portable | Isa::Scalar, _) => unreachable!("run above"),
                    (Isa::Avx2, 1) => avx2::compress_groups::<1>(lanes, blocks),
                    (Isa::Avx2, 2) => avx2::compress_groups::<2>(lanes, blocks),
                    (Isa::Avx2, _) => avx2::compress_groups::<3>(lanes, blocks),
                    (Isa::Avx512Ymm, 1) => avx512::compress_ymm::<1>(lanes, blocks),
                    (Isa::Avx512Ymm, 2) => avx512::compress_ymm::<2>(lanes, blocks),
                    (Isa::Avx512Ymm, _) => avx512::compress_ymm::<3>(lanes, blocks),
                    (Isa::Avx512Zmm, 1) => avx512::compress_zmm::<1>(lanes, blocks),
                    (Isa::Avx512Zmm, 2) => avx512::compress_zmm::<2>(lanes, blocks),
                    (Isa::Avx512Zmm, _) => avx512::compress_zmm::<3>(lanes, blocks),
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!(
            "the SIMD backends are not available off x86-64: the assert above stops their shapes"
        );
    }
}

impl fmt::Display for Shape {
    /// `avx2/8x3`: instruction set, lanes per register, groups
    /// (`scalar/1x2`: two scalar chains).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (isa, width) = match self.isa {
            Isa::Scalar => ("scalar", 1),
            Isa::Portable => ("portable", 8),
            Isa::Avx2 => ("avx2", 8),
            Isa::Avx512Ymm => ("avx512", 8),
            Isa::Avx512Zmm => ("avx512", 16),
        };
        write!(f, "{isa}/{width}x{}", self.groups)
    }
}

/// A single-stream compression function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SingleKernel {
    /// Plain Rust, scheduled for a short dependency chain (`single.rs`).
    Scalar,
    /// One chain in an XMM register with `VPTERNLOGD` and `VPROLD`
    /// (`x86/single512.rs`); needs the avx512 backend.
    Avx512,
}

impl SingleKernel {
    /// The name in logs and `/stats`.
    pub fn name(self) -> &'static str {
        match self {
            SingleKernel::Scalar => "scalar",
            SingleKernel::Avx512 => "avx512/1",
        }
    }

    /// The kernels a platform may use.
    pub fn all(platform: Platform) -> Vec<SingleKernel> {
        match platform {
            Platform::Avx512 => vec![SingleKernel::Scalar, SingleKernel::Avx512],
            _ => vec![SingleKernel::Scalar],
        }
    }

    /// Hashes `blocks` (whole 64-byte blocks) into `state`.
    ///
    /// # Panics
    /// If the kernel needs a backend this CPU or build lacks, or if
    /// `blocks.len()` is not a multiple of [`BLOCK_LEN`].
    pub(crate) fn compress(self, state: &mut [u32; 4], blocks: &[u8]) {
        match self {
            SingleKernel::Scalar => super::single::compress(state, blocks),
            SingleKernel::Avx512 => {
                assert!(
                    Platform::Avx512.is_available(),
                    "md5 single-stream kernel avx512/1 is not available"
                );
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the avx512 platform is available, so the CPU has
                // AVX-512F and AVX-512VL.
                unsafe {
                    super::x86::single512::compress(state, blocks)
                }
            }
        }
    }
}

impl fmt::Display for SingleKernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The process-wide single-stream kernel of [`super::Md5::update`]:
/// 0 scalar, 1 AVX-512. Every kernel gives the same digests, so which one a
/// concurrent update sees is a matter of speed only.
static SINGLE: AtomicU8 = AtomicU8::new(0);

/// The single-stream kernel [`Tuning::install`] chose last (scalar until then).
pub fn single_kernel() -> SingleKernel {
    match SINGLE.load(Ordering::Relaxed) {
        1 => SingleKernel::Avx512,
        _ => SingleKernel::Scalar,
    }
}

/// What the planner knows of a machine, in nanoseconds per block: a kernel
/// call with `n` busy lanes costs `lanes[n - 1]` per block however many of
/// its lanes are busy (infinite past the largest shape); a block on the
/// single-stream path costs `single`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Costs {
    pub(crate) lanes: [f64; MAX_LANES],
    pub(crate) single: f64,
}

impl Costs {
    /// The cost model of a machine where every call costs the same up to
    /// `max_lanes` lanes and lanes beat the single stream from `min_lanes`
    /// busy lanes on (`usize::MAX`: never): the planner then fills
    /// `max_lanes` lanes whenever it can.
    pub(crate) fn flat(max_lanes: usize, min_lanes: usize) -> Costs {
        let mut lanes = [f64::INFINITY; MAX_LANES];
        for cost in lanes.iter_mut().take(max_lanes) {
            *cost = 1.0;
        }
        // n lanes win when n * single > 1, that is from n = min_lanes on.
        let single = match min_lanes {
            usize::MAX => 0.0,
            n => 1.0 / (n as f64 - 0.5),
        };
        Costs { lanes, single }
    }

    /// The most lanes any call may have.
    pub(crate) fn max_lanes(&self) -> usize {
        self.lanes.iter().take_while(|c| c.is_finite()).count()
    }

    /// With `waiting` jobs to run, how many should share a kernel call, and
    /// whether that beats running them on the single-stream path.
    ///
    /// The count is the most lanes whose blocks per nanosecond are within
    /// [`MARGIN`] of the best count's: fewer lanes mean more turns for the
    /// waiting jobs, worth it only for a clear gain (on Zen 4, 40 jobs run
    /// as 32 lanes taking turns: 18% more than 40 of 48 lanes).
    pub(crate) fn best_lanes(&self, waiting: usize) -> (usize, bool) {
        let most = waiting.min(self.max_lanes());
        let rate = |n: usize| n as f64 / self.lanes[n - 1];
        let best = (1..=most).map(rate).fold(0.0, f64::max);
        let n = (1..=most)
            .rev()
            .find(|&n| rate(n) >= best * (1.0 - MARGIN))
            .unwrap_or(most);
        // Equal rates: the single stream (no lanes idle, no transposes).
        (n, rate(n) * self.single > 1.0)
    }
}

/// Which kernel runs each kernel call and single-stream block on one
/// platform, and what they cost.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tuning {
    platform: Platform,
    single: SingleKernel,
    /// The shape for `n` busy lanes at index `n - 1`; `None` past the most.
    shapes: [Option<Shape>; MAX_LANES],
    costs: Costs,
}

impl Tuning {
    /// The choice measured on AMD Zen 4 (EPYC, 2 shared cores, best of
    /// repeated `update_many` runs over equal 16 KiB streams), used where
    /// nothing was calibrated:
    /// - avx512: up to 8 lanes `avx2/8x1` (its chain ran 5% faster than one
    ///   AVX-512 YMM group: 5.1 against 4.8 GB/s); up to 16 `avx512/8x2`
    ///   (9.6 GB/s, one ZMM group 7.9); up to 24 `avx512/8x3` (11.1; two ZMM
    ///   groups with a quarter idle 8.9); up to 32 `avx512/16x2` (11.8); up to
    ///   48 `avx512/16x3` (12.0).
    /// - avx2: `avx2/8xG` with G = lanes / 8 rounded up (1 group 5.1 GB/s, 2
    ///   7.6, 3 8.8; a fourth group would not fit the 16 YMM registers).
    /// - portable: `portable/8x1`, never used unforced: its best (0.59 GB/s,
    ///   8 lanes compiled to SSE2) is below one scalar stream (0.81).
    ///
    /// Lanes replace the single stream from 2 busy lanes on the SIMD
    /// platforms (2 lanes: AVX2 1.28 GB/s, AVX-512 1.22, one scalar stream
    /// 0.81), never on the portable one. The single stream is scalar.
    pub fn fixed(platform: Platform) -> Tuning {
        let mut shapes = [None; MAX_LANES];
        for (i, slot) in shapes.iter_mut().enumerate() {
            let n = i + 1;
            *slot = match platform {
                Platform::Portable if n <= 8 => Some(Shape::new(Isa::Portable, 1)),
                Platform::Avx2 if n <= 24 => Some(Shape::new(Isa::Avx2, n.div_ceil(8))),
                Platform::Avx512 => Some(match n {
                    1..=8 => Shape::new(Isa::Avx2, 1),
                    9..=24 => Shape::new(Isa::Avx512Ymm, n.div_ceil(8)),
                    _ => Shape::new(Isa::Avx512Zmm, n.div_ceil(16)),
                }),
                _ => None,
            };
        }
        let max_lanes = shapes.iter().flatten().count();
        let min_lanes = match platform {
            Platform::Portable => usize::MAX,
            Platform::Avx2 | Platform::Avx512 => 2,
        };
        Tuning {
            platform,
            single: SingleKernel::Scalar,
            shapes,
            costs: Costs::flat(max_lanes, min_lanes),
        }
    }

    /// Every round of every call in lanes, with the fixed shapes: how the
    /// self-test and the tests exercise the lane kernels themselves.
    pub fn forced_lanes(platform: Platform) -> Tuning {
        let fixed = Tuning::fixed(platform);
        Tuning {
            costs: Costs::flat(fixed.max_lanes(), 1),
            ..fixed
        }
    }

    /// Every call in lanes, on `shape` alone, and single streams on
    /// `single`: for tests that force each kernel.
    ///
    /// # Panics
    /// If `platform` lacks `shape` or `single`.
    pub fn forced(platform: Platform, shape: Shape, single: SingleKernel) -> Tuning {
        assert!(shape.is_on(platform), "{shape} on {platform}");
        assert!(
            SingleKernel::all(platform).contains(&single),
            "{single} on {platform}"
        );
        let mut shapes = [None; MAX_LANES];
        for slot in shapes.iter_mut().take(shape.lanes()) {
            *slot = Some(shape);
        }
        Tuning {
            platform,
            single,
            shapes,
            costs: Costs::flat(shape.lanes(), 1),
        }
    }

    /// Times every shape and single-stream kernel `platform` offers and
    /// returns the [`Tuning::fixed`] choice with each entry replaced where a
    /// measured alternative is faster by [`MARGIN`], the planner's costs
    /// from the same figures, and the figures themselves. Takes about a
    /// millisecond (at most `CALIBRATION_MAX_ROUNDS` rounds).
    ///
    /// # Panics
    /// If `platform` is not available on this CPU.
    pub fn calibrate(platform: Platform) -> Calibration {
        assert!(
            platform.is_available(),
            "md5 backend {platform} is not available on this cpu"
        );
        let start = Instant::now();
        let data: Vec<u8> = (0..CALIBRATION_BLOCKS * BLOCK_LEN)
            .map(|i| (i * 131 % 251) as u8)
            .collect();
        let shapes = Shape::all(platform);
        let singles = SingleKernel::all(platform);
        let mut shape_ns = vec![f64::INFINITY; shapes.len()];
        let mut single_ns = vec![f64::INFINITY; singles.len()];
        let mut lanes: Vec<Lane<'_>> = Vec::with_capacity(MAX_LANES);
        let mut rounds = 0;
        // Round 0 is a warm-up (caches, and the wider units' power-up on
        // some Intel cores): its times are dropped.
        while rounds <= CALIBRATION_MIN_ROUNDS
            || (start.elapsed() < CALIBRATION_TIME && rounds < CALIBRATION_MAX_ROUNDS)
        {
            for (shape, best) in shapes.iter().zip(&mut shape_ns) {
                lanes.clear();
                lanes.extend((0..shape.lanes()).map(|l| Lane {
                    state: [l as u32; 4],
                    data: &data,
                }));
                let t = Instant::now();
                shape.compress(platform, &mut lanes, CALIBRATION_BLOCKS);
                let ns = t.elapsed().as_nanos() as f64 / CALIBRATION_BLOCKS as f64;
                std::hint::black_box(&lanes);
                if rounds > 0 {
                    *best = best.min(ns);
                }
            }
            for (kernel, best) in singles.iter().zip(&mut single_ns) {
                let mut state = [rounds as u32; 4];
                let t = Instant::now();
                kernel.compress(&mut state, &data);
                let ns = t.elapsed().as_nanos() as f64 / CALIBRATION_BLOCKS as f64;
                std::hint::black_box(state);
                if rounds > 0 {
                    *best = best.min(ns);
                }
            }
            rounds += 1;
        }
        let shape_ns: Vec<(Shape, f64)> = shapes.into_iter().zip(shape_ns).collect();
        let single_ns: Vec<(SingleKernel, f64)> = singles.into_iter().zip(single_ns).collect();
        let tuning = Tuning::from_measurements(platform, &shape_ns, &single_ns);
        Calibration {
            tuning,
            shapes: shape_ns,
            singles: single_ns,
            rounds: rounds - 1,
            elapsed: start.elapsed(),
        }
    }

    /// The fixed choice with every entry a measured alternative beats by
    /// [`MARGIN`] replaced, and the planner's costs from the measurements.
    /// `shapes` and `singles` give nanoseconds per block of each kernel.
    pub(crate) fn from_measurements(
        platform: Platform,
        shapes: &[(Shape, f64)],
        singles: &[(SingleKernel, f64)],
    ) -> Tuning {
        let fixed = Tuning::fixed(platform);
        let ns = |want: Shape| {
            shapes
                .iter()
                .find(|(s, _)| *s == want)
                .map_or(f64::INFINITY, |&(_, ns)| ns)
        };
        let beats = |ns: f64, default_ns: f64| ns < default_ns * (1.0 - MARGIN);
        let mut tuning = fixed;
        for (n, slot) in (1..=MAX_LANES).zip(&mut tuning.shapes) {
            let Some(default) = *slot else { continue };
            let default_ns = ns(default);
            let best = shapes
                .iter()
                .filter(|(s, _)| s.lanes() >= n)
                .min_by(|x, y| x.1.total_cmp(&y.1))
                .copied();
            let choice = match best {
                Some((shape, best_ns)) if beats(best_ns, default_ns) => shape,
                _ => default,
            };
            *slot = Some(choice);
            tuning.costs.lanes[n - 1] = ns(choice);
        }
        let scalar_ns = singles
            .iter()
            .find(|(k, _)| *k == SingleKernel::Scalar)
            .map_or(f64::INFINITY, |&(_, ns)| ns);
        let (single, single_ns) = singles
            .iter()
            .copied()
            .filter(|&(_, ns)| beats(ns, scalar_ns))
            .min_by(|x, y| x.1.total_cmp(&y.1))
            .unwrap_or((SingleKernel::Scalar, scalar_ns));
        tuning.single = single;
        tuning.costs.single = single_ns;
        // A call with one busy lane costs at least what the single-stream
        // kernel does: it runs that lane through the same steps or more (a
        // scalar shape's one-lane call is the single-stream chain itself). A
        // measurement saying otherwise is noise, and would send lone streams
        // through the lanes for nothing: under CI load, two chains once
        // measured 1.14 GB/s and one 0.56, less than half.
        tuning.costs.lanes[0] = tuning.costs.lanes[0].max(single_ns);
        // The portable 8-lane kernel never beats a scalar stream (see
        // `fixed`); a measurement saying otherwise is noise or a quirk not
        // worth the transposes. So it never runs unforced: the portable
        // backend's lanes are the scalar chains where they won, or none.
        if platform == Platform::Portable {
            for (slot, cost) in tuning.shapes.iter_mut().zip(&mut tuning.costs.lanes) {
                if slot.is_some_and(|shape| shape.isa == Isa::Portable) {
                    *slot = None;
                    *cost = f64::INFINITY;
                }
            }
        }
        tuning
    }

    /// The platform whose kernels this tuning uses.
    pub fn platform(&self) -> Platform {
        self.platform
    }

    /// The single-stream kernel.
    pub fn single(&self) -> SingleKernel {
        self.single
    }

    /// The shape that runs a call with `busy` busy lanes, if any may.
    pub fn shape(&self, busy: usize) -> Option<Shape> {
        busy.checked_sub(1)
            .and_then(|i| self.shapes.get(i).copied().flatten())
    }

    /// The most lanes one kernel call holds.
    pub fn max_lanes(&self) -> usize {
        self.costs.max_lanes()
    }

    /// The fewest busy lanes for which a kernel call beats the single-stream
    /// path, per the costs; `usize::MAX` if none does.
    pub fn min_lanes(&self) -> usize {
        (1..=self.max_lanes())
            .find(|&n| n as f64 * self.costs.single > self.costs.lanes[n - 1])
            .unwrap_or(usize::MAX)
    }

    /// Distinct shapes in use, by busy lanes: `(up to this many lanes, shape)`.
    pub fn shapes(&self) -> Vec<(usize, Shape)> {
        let mut out: Vec<(usize, Shape)> = Vec::new();
        for (n, shape) in (1..=MAX_LANES).zip(self.shapes) {
            let Some(shape) = shape else { break };
            match out.last_mut() {
                Some(last) if last.1 == shape => last.0 = n,
                _ => out.push((n, shape)),
            }
        }
        out
    }

    pub(crate) fn costs(&self) -> &Costs {
        &self.costs
    }

    /// Makes this tuning's single-stream kernel the one every
    /// [`super::Md5::update`] in the process uses.
    pub fn install(&self) {
        let code = match self.single {
            SingleKernel::Scalar => 0,
            SingleKernel::Avx512 => 1,
        };
        SINGLE.store(code, Ordering::Relaxed);
    }

    /// Hashes `blocks` blocks of every lane's data into its state, in one
    /// call of the shape for `lanes.len()` busy lanes.
    ///
    /// # Panics
    /// If there are more lanes than [`Tuning::max_lanes`], or as
    /// [`Shape::compress`].
    pub(crate) fn compress_lanes(&self, lanes: &mut [Lane<'_>], blocks: usize) {
        let shape = self.shape(lanes.len().max(1)).unwrap_or_else(|| {
            panic!(
                "{} md5 lanes exceed the {} backend's {}",
                lanes.len(),
                self.platform,
                self.max_lanes()
            )
        });
        shape.compress(self.platform, lanes, blocks);
    }
}

/// What [`Tuning::calibrate`] measured and chose.
#[derive(Clone, Debug)]
pub struct Calibration {
    /// The choice.
    pub tuning: Tuning,
    /// Nanoseconds per block of one call of each shape (all lanes busy),
    /// best of the rounds.
    pub shapes: Vec<(Shape, f64)>,
    /// Nanoseconds per block of each single-stream kernel, best of the rounds.
    pub singles: Vec<(SingleKernel, f64)>,
    /// Rounds timed (each kernel once per round), after one warm-up round.
    pub rounds: usize,
    /// Wall time of the whole calibration.
    pub elapsed: Duration,
}

impl Calibration {
    /// Throughput in GB/s (10^9 bytes per second) of `ns` nanoseconds per
    /// block over `lanes` lanes.
    pub fn gb_per_s(lanes: usize, ns: f64) -> f64 {
        (lanes * BLOCK_LEN) as f64 / ns
    }
}
