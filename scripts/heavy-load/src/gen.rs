//! Deterministic, fast pseudo-random content and sizes.
//!
//! Every file is a pure function of `(seed, index)`: its size and its bytes can
//! be regenerated at any time, so nothing has to be kept in memory to know what
//! was sent.

/// splitmix64: turns any 64-bit value into a well-mixed one (used for seeding).
pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Four independent xorshift64 lanes, so the fill loop has no serial
/// dependency chain (several GB/s when optimised). Not cryptographic.
#[derive(Clone, Debug)]
pub struct ContentGen {
    s: [u64; 4],
}

impl ContentGen {
    pub fn new(seed: u64, index: u64) -> Self {
        let base = splitmix64(seed ^ splitmix64(index.wrapping_add(0x1234_5678)));
        let mut s = [0u64; 4];
        for (k, lane) in s.iter_mut().enumerate() {
            // xorshift state must be non-zero
            *lane = splitmix64(base.wrapping_add(k as u64)) | 1;
        }
        ContentGen { s }
    }

    #[inline(always)]
    fn step(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    /// Fills `out` with the next `out.len()` bytes of the stream. Calls must use
    /// lengths that are multiples of 32 except for the last one, so that
    /// chunking never changes the content.
    pub fn fill(&mut self, out: &mut [u8]) {
        let mut blocks = out.chunks_exact_mut(32);
        let [mut a, mut b, mut c, mut d] = self.s;
        for blk in &mut blocks {
            blk[0..8].copy_from_slice(&Self::step(&mut a).to_le_bytes());
            blk[8..16].copy_from_slice(&Self::step(&mut b).to_le_bytes());
            blk[16..24].copy_from_slice(&Self::step(&mut c).to_le_bytes());
            blk[24..32].copy_from_slice(&Self::step(&mut d).to_le_bytes());
        }
        let rest = blocks.into_remainder();
        if !rest.is_empty() {
            let mut tail = [0u8; 32];
            tail[0..8].copy_from_slice(&Self::step(&mut a).to_le_bytes());
            tail[8..16].copy_from_slice(&Self::step(&mut b).to_le_bytes());
            tail[16..24].copy_from_slice(&Self::step(&mut c).to_le_bytes());
            tail[24..32].copy_from_slice(&Self::step(&mut d).to_le_bytes());
            let n = rest.len();
            rest.copy_from_slice(&tail[..n]);
        }
        self.s = [a, b, c, d];
    }
}

/// Size of each file: fixed, or drawn log-uniformly from an inclusive range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeSpec {
    Fixed(u64),
    Range(u64, u64),
}

fn parse_one_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'B' => 1,
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                _ => return Err(format!("bad size unit in {s:?} (use B, K, M or G)")),
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("bad size {s:?} (examples: 100, 64K, 1M, 2G)"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} too large"))
}

impl std::str::FromStr for SizeSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once("..") {
            None => Ok(SizeSpec::Fixed(parse_one_size(s)?)),
            Some((lo, hi)) => {
                let lo = parse_one_size(lo)?;
                let hi = parse_one_size(hi)?;
                if lo > hi {
                    return Err(format!("size range {s:?} is empty"));
                }
                Ok(SizeSpec::Range(lo, hi))
            }
        }
    }
}

impl std::fmt::Display for SizeSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SizeSpec::Fixed(n) => write!(f, "{n}"),
            SizeSpec::Range(a, b) => write!(f, "{a}..{b}"),
        }
    }
}

impl SizeSpec {
    /// The size of file `index`: a pure function of `(seed, index)`.
    pub fn size_of(&self, seed: u64, index: u64) -> u64 {
        match *self {
            SizeSpec::Fixed(n) => n,
            SizeSpec::Range(lo, hi) if lo == hi => lo,
            SizeSpec::Range(lo, hi) => {
                let r = splitmix64(seed.rotate_left(17) ^ splitmix64(index));
                // 53 random bits -> [0, 1)
                let u = (r >> 11) as f64 / (1u64 << 53) as f64;
                // log-uniform over [max(lo,1), hi+1), then shifted so lo=0 works
                let a = (lo.max(1) as f64).ln();
                let b = ((hi + 1) as f64).ln();
                let v = (a + u * (b - a)).exp().floor() as u64;
                v.clamp(lo, hi)
            }
        }
    }

    pub fn max(&self) -> u64 {
        match *self {
            SizeSpec::Fixed(n) => n,
            SizeSpec::Range(_, hi) => hi,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunking_does_not_change_content() {
        let mut whole = vec![0u8; 100_003];
        ContentGen::new(7, 3).fill(&mut whole);
        let mut parts = vec![0u8; 100_003];
        let mut g = ContentGen::new(7, 3);
        let (a, rest) = parts.split_at_mut(32 * 100);
        g.fill(a);
        let (b, c) = rest.split_at_mut(32 * 1000);
        g.fill(b);
        g.fill(c);
        assert_eq!(whole, parts);
        let mut other = vec![0u8; 100_003];
        ContentGen::new(7, 4).fill(&mut other);
        assert_ne!(whole, other);
    }

    #[test]
    fn sizes_parse_and_draw() {
        assert_eq!("64K".parse(), Ok(SizeSpec::Fixed(65536)));
        assert_eq!("1m".parse(), Ok(SizeSpec::Fixed(1 << 20)));
        assert_eq!("100".parse(), Ok(SizeSpec::Fixed(100)));
        assert_eq!("4K..16M".parse(), Ok(SizeSpec::Range(4096, 16 << 20)));
        assert!("16M..4K".parse::<SizeSpec>().is_err());
        assert!("12Q".parse::<SizeSpec>().is_err());
        assert!("x".parse::<SizeSpec>().is_err());
        let s: SizeSpec = "4K..16M".parse().unwrap();
        let sizes: Vec<u64> = (0..2000).map(|i| s.size_of(1, i)).collect();
        assert!(sizes.iter().all(|&v| (4096..=16 << 20).contains(&v)));
        // log-uniform: about half below the geometric mean (256K)
        let below = sizes.iter().filter(|&&v| v < 256 << 10).count();
        assert!((800..1200).contains(&below), "{below}");
        assert_eq!(
            sizes,
            (0..2000).map(|i| s.size_of(1, i)).collect::<Vec<_>>()
        );
        let z: SizeSpec = "0..10".parse().unwrap();
        assert!((0..100).all(|i| z.size_of(3, i) <= 10));
    }
}

#[cfg(test)]
mod speed {
    /// `cargo test -p heavy-load --release -- --ignored --nocapture generator_speed`
    #[test]
    #[ignore]
    fn generator_speed() {
        let mut buf = vec![0u8; 256 << 10];
        let mut g = super::ContentGen::new(1, 1);
        let t = std::time::Instant::now();
        let rounds = 8192; // 2 GiB
        for _ in 0..rounds {
            g.fill(&mut buf);
            std::hint::black_box(&buf);
        }
        let gbs = (rounds * buf.len()) as f64 / t.elapsed().as_secs_f64() / 1e9;
        eprintln!("content generator: {gbs:.2} GB/s");
    }
}
