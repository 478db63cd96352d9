//! The hash algorithms hashd offers, behind one small interface.
//!
//! Adding an algorithm means one variant in [`Algorithm`], one row in
//! [`Algorithm::spec`] and one variant in [`Hasher`]; every front end learns
//! it from [`Algorithm::ALL`] and the table.
//!
//! Every algorithm but MD5 comes from a maintained crate with its own CPU
//! dispatch: `sha1`/`sha2` (RustCrypto; SHA-NI where the CPU has it),
//! `sha3` (RustCrypto), `blake3` (the BLAKE3 team's; SSE4.1/AVX2/AVX-512),
//! `crc-fast` (CRC32, CRC32C, CRC64/NVME with carry-less multiplication:
//! PCLMULQDQ, VPCLMULQDQ). MD5 is hashcore's own (see [`crate::md5`]).

use std::fmt;
use std::str::FromStr;

use digest::Digest as _;

use crate::md5;

/// A hash algorithm a client may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub enum Algorithm {
    #[default]
    Md5,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
    Sha3_256,
    Sha3_512,
    Blake3,
    Crc32,
    Crc32c,
    Crc64Nvme,
}

/// One row of the algorithm table: how an algorithm is named in each place
/// it appears, and how long its digest is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlgorithmSpec {
    /// The lower-case name used on the wire (`?algo=`), in the store and
    /// on the command line (`hashd sum -a`).
    pub name: &'static str,
    /// Digest length in bytes.
    pub digest_len: usize,
    /// The tag of a BSD-style line (`TAG (file) = hex`), as coreutils'
    /// `cksum --tag` writes it where coreutils has the algorithm.
    pub bsd_tag: &'static str,
    /// The key in RFC 9530's Hash Algorithms for HTTP Digest Fields
    /// registry (`Repr-Digest: sha-256=:…:`), where it has one (md5, sha and
    /// crc32c are registered as deprecated, still accepted).
    pub rfc9530: Option<&'static str>,
    /// The S3 checksum header (`x-amz-checksum-…`), where S3 has one. S3's
    /// MD5 is the standard `Content-MD5` header instead.
    pub s3_header: Option<&'static str>,
    /// The key in GCS's `x-goog-hash` header (`crc32c=…,md5=…`).
    pub gcs_key: Option<&'static str>,
}

/// The algorithm table, in [`Algorithm::ALL`] order. CRCs are given as
/// big-endian bytes, as S3, GCS and RFC 9530 (crc32c) transmit them and as
/// `crc32`-style tools print them in hex.
const SPECS: [AlgorithmSpec; Algorithm::COUNT] = {
    const fn row(
        name: &'static str,
        digest_len: usize,
        bsd_tag: &'static str,
        rfc9530: Option<&'static str>,
        s3_header: Option<&'static str>,
        gcs_key: Option<&'static str>,
    ) -> AlgorithmSpec {
        AlgorithmSpec {
            name,
            digest_len,
            bsd_tag,
            rfc9530,
            s3_header,
            gcs_key,
        }
    }
    [
        row("md5", 16, "MD5", Some("md5"), None, Some("md5")),
        row(
            "sha1",
            20,
            "SHA1",
            Some("sha"),
            Some("x-amz-checksum-sha1"),
            None,
        ),
        row("sha224", 28, "SHA224", None, None, None),
        row(
            "sha256",
            32,
            "SHA256",
            Some("sha-256"),
            Some("x-amz-checksum-sha256"),
            None,
        ),
        row("sha384", 48, "SHA384", None, None, None),
        row("sha512", 64, "SHA512", Some("sha-512"), None, None),
        row("sha3-256", 32, "SHA3-256", None, None, None),
        row("sha3-512", 64, "SHA3-512", None, None, None),
        row("blake3", 32, "BLAKE3", None, None, None),
        row(
            "crc32",
            4,
            "CRC32",
            None,
            Some("x-amz-checksum-crc32"),
            None,
        ),
        row(
            "crc32c",
            4,
            "CRC32C",
            Some("crc32c"),
            Some("x-amz-checksum-crc32c"),
            Some("crc32c"),
        ),
        row(
            "crc64nvme",
            8,
            "CRC64NVME",
            None,
            Some("x-amz-checksum-crc64nvme"),
            None,
        ),
    ]
};

impl Algorithm {
    /// How many algorithms there are.
    pub const COUNT: usize = 12;

    /// Every algorithm, in the order help texts list them.
    pub const ALL: [Algorithm; Algorithm::COUNT] = [
        Algorithm::Md5,
        Algorithm::Sha1,
        Algorithm::Sha224,
        Algorithm::Sha256,
        Algorithm::Sha384,
        Algorithm::Sha512,
        Algorithm::Sha3_256,
        Algorithm::Sha3_512,
        Algorithm::Blake3,
        Algorithm::Crc32,
        Algorithm::Crc32c,
        Algorithm::Crc64Nvme,
    ];

    /// This algorithm's row of the table.
    pub fn spec(self) -> &'static AlgorithmSpec {
        &SPECS[self as usize]
    }

    /// The lower-case name used on the wire, in the store and on the command line.
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// Length of the digest in bytes.
    pub fn digest_len(self) -> usize {
        self.spec().digest_len
    }

    /// The algorithm whose RFC 9530 key is `key` (case-insensitive, as
    /// the registry's keys are compared).
    pub fn from_rfc9530(key: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| {
            a.spec()
                .rfc9530
                .is_some_and(|k| k.eq_ignore_ascii_case(key))
        })
    }

    /// The algorithm whose BSD tag is `tag` (exact, as `cksum -c` matches).
    pub fn from_bsd_tag(tag: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.spec().bsd_tag == tag)
    }

    /// A fresh hasher for one stream: the same type the hasher pool runs, so
    /// every path (pool, a small upload hashed inline, the command line's
    /// standard input and pipes) hashes at the same speed.
    pub fn hasher(self) -> Hasher {
        Hasher::new(self)
    }

    /// Hashes a whole buffer in one call.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        let mut h = self.hasher();
        h.update(data);
        h.finalize()
    }

    /// Which implementation this process runs for the algorithm, for
    /// `/stats` and the start-up log: the crate and the instruction set its
    /// own dispatch picks on this CPU. MD5's lanes are reported by the pool.
    pub fn implementation(self) -> String {
        #[cfg(target_arch = "x86_64")]
        let (sha_ni, avx512, avx2, sse41) = (
            std::arch::is_x86_feature_detected!("sha"),
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl"),
            std::arch::is_x86_feature_detected!("avx2"),
            std::arch::is_x86_feature_detected!("sse4.1"),
        );
        #[cfg(not(target_arch = "x86_64"))]
        let (sha_ni, avx512, avx2, sse41) = (false, false, false, false);
        match self {
            Algorithm::Md5 => format!(
                "hashcore md5, single stream {} (lanes: /stats md5)",
                crate::md5::single_kernel()
            ),
            Algorithm::Sha1 | Algorithm::Sha224 | Algorithm::Sha256 => {
                format!(
                    "sha1/sha2 crate, {}",
                    if sha_ni { "sha-ni" } else { "soft" }
                )
            }
            Algorithm::Sha384 | Algorithm::Sha512 => "sha2 crate, soft".into(),
            Algorithm::Sha3_256 | Algorithm::Sha3_512 => "sha3 crate, soft".into(),
            Algorithm::Blake3 => {
                let isa = if avx512 {
                    "avx512"
                } else if avx2 {
                    "avx2"
                } else if sse41 {
                    "sse41"
                } else {
                    "portable"
                };
                format!("blake3 crate, {isa}")
            }
            Algorithm::Crc32 | Algorithm::Crc32c | Algorithm::Crc64Nvme => format!(
                "crc-fast crate, {}",
                crc_fast::get_calculator_target(crc_params(self))
            ),
        }
    }
}

/// The crc-fast catalogue entry of a CRC algorithm (the others never ask).
fn crc_params(algo: Algorithm) -> crc_fast::CrcAlgorithm {
    match algo {
        Algorithm::Crc32 => crc_fast::CrcAlgorithm::Crc32IsoHdlc,
        Algorithm::Crc32c => crc_fast::CrcAlgorithm::Crc32Iscsi,
        _ => crc_fast::CrcAlgorithm::Crc64Nvme,
    }
}

/// One stream's running hash, for any [`Algorithm`]: the single per-stream
/// hasher type of hashd.
///
/// MD5 is hashcore's own [`md5::Md5`], which the pool's hashers also batch
/// into SIMD lanes (they take the state out of the `Md5` variant); hashed
/// alone, it runs on the single-stream path, about a third faster than the
/// md-5 crate, which remains only as the tests' oracle. The others are the
/// crates named in the module docs; the large states are boxed so that a
/// [`Hasher`] stays small in the job maps.
#[derive(Clone)]
pub enum Hasher {
    /// MD5 (hashcore's own).
    Md5(md5::Md5),
    Sha1(sha1::Sha1),
    Sha224(sha2::Sha224),
    Sha256(sha2::Sha256),
    Sha384(Box<sha2::Sha384>),
    Sha512(Box<sha2::Sha512>),
    Sha3_256(Box<sha3::Sha3_256>),
    Sha3_512(Box<sha3::Sha3_512>),
    Blake3(Box<blake3::Hasher>),
    /// CRC32 (ISO-HDLC), CRC32C (iSCSI) or CRC64/NVME: which one is in the
    /// crc-fast state.
    Crc(Algorithm, crc_fast::Digest),
}

impl Hasher {
    /// A hasher that has absorbed nothing.
    pub fn new(algo: Algorithm) -> Hasher {
        match algo {
            Algorithm::Md5 => Hasher::Md5(md5::Md5::new()),
            Algorithm::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            Algorithm::Sha224 => Hasher::Sha224(sha2::Sha224::new()),
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha384 => Hasher::Sha384(Box::default()),
            Algorithm::Sha512 => Hasher::Sha512(Box::default()),
            Algorithm::Sha3_256 => Hasher::Sha3_256(Box::default()),
            Algorithm::Sha3_512 => Hasher::Sha3_512(Box::default()),
            Algorithm::Blake3 => Hasher::Blake3(Box::default()),
            Algorithm::Crc32 | Algorithm::Crc32c | Algorithm::Crc64Nvme => {
                Hasher::Crc(algo, crc_fast::Digest::new(crc_params(algo)))
            }
        }
    }

    /// The algorithm this hasher computes.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Hasher::Md5(_) => Algorithm::Md5,
            Hasher::Sha1(_) => Algorithm::Sha1,
            Hasher::Sha224(_) => Algorithm::Sha224,
            Hasher::Sha256(_) => Algorithm::Sha256,
            Hasher::Sha384(_) => Algorithm::Sha384,
            Hasher::Sha512(_) => Algorithm::Sha512,
            Hasher::Sha3_256(_) => Algorithm::Sha3_256,
            Hasher::Sha3_512(_) => Algorithm::Sha3_512,
            Hasher::Blake3(_) => Algorithm::Blake3,
            Hasher::Crc(a, _) => *a,
        }
    }

    /// Absorbs `data` on this thread (MD5 on the single-stream path).
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha224(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
            Hasher::Sha3_256(h) => h.update(data),
            Hasher::Sha3_512(h) => h.update(data),
            Hasher::Blake3(h) => {
                h.update(data);
            }
            Hasher::Crc(_, h) => h.update(data),
        }
    }

    /// The digest of everything absorbed, [`Algorithm::digest_len`] bytes.
    pub fn finalize(self) -> Vec<u8> {
        match self {
            Hasher::Md5(h) => h.finalize().to_vec(),
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha224(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha384(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
            Hasher::Sha3_256(h) => h.finalize().to_vec(),
            Hasher::Sha3_512(h) => h.finalize().to_vec(),
            Hasher::Blake3(h) => h.finalize().as_bytes().to_vec(),
            Hasher::Crc(a, h) => {
                let value = h.finalize().to_be_bytes();
                // crc-fast returns every width in a u64: keep the low
                // `digest_len` bytes, big-endian.
                value[8 - a.digest_len()..].to_vec()
            }
        }
    }
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Hasher").field(&self.algorithm()).finish()
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name did not match any algorithm; the message lists the ones that do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAlgorithm(pub String);

impl fmt::Display for UnknownAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Algorithm::ALL.iter().map(|a| a.name()).collect();
        write!(
            f,
            "unsupported algorithm {:?} (supported: {})",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownAlgorithm {}

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    /// A name from the table, in any case, with or without hyphens
    /// (`SHA-256`, `sha3_256` and `crc64-nvme` too).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let squash = |n: &str| -> String {
            n.trim()
                .chars()
                .filter(|c| *c != '-' && *c != '_')
                .map(|c| c.to_ascii_lowercase())
                .collect()
        };
        let wanted = squash(s);
        Algorithm::ALL
            .into_iter()
            .find(|a| squash(a.name()) == wanted)
            .ok_or_else(|| UnknownAlgorithm(s.to_string()))
    }
}

/// The algorithms one job computes: at least one, each once, in the order
/// the client gave them (the first is the job's `hash`). `Copy`, at most
/// [`Algorithm::COUNT`] entries.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Algorithms {
    list: [Algorithm; Algorithm::COUNT],
    len: u8,
}

impl Algorithms {
    /// One algorithm.
    pub const fn one(algo: Algorithm) -> Algorithms {
        Algorithms {
            list: [algo; Algorithm::COUNT],
            len: 1,
        }
    }

    /// The algorithms of `iter` in order, repeats dropped; `None` if it is
    /// empty.
    pub fn from_iter_nonempty(iter: impl IntoIterator<Item = Algorithm>) -> Option<Algorithms> {
        let mut iter = iter.into_iter();
        let mut set = Algorithms::one(iter.next()?);
        for a in iter {
            set.push(a);
        }
        Some(set)
    }

    /// Adds `algo` at the end unless it is already there.
    pub fn push(&mut self, algo: Algorithm) {
        if !self.contains(algo) {
            // Distinct algorithms never exceed the array.
            self.list[usize::from(self.len)] = algo;
            self.len += 1;
        }
    }

    /// The first algorithm: the job's `hash`.
    pub fn first(&self) -> Algorithm {
        self.list[0]
    }

    /// The algorithms in order.
    pub fn as_slice(&self) -> &[Algorithm] {
        &self.list[..usize::from(self.len)]
    }

    pub fn iter(&self) -> impl Iterator<Item = Algorithm> + '_ {
        self.as_slice().iter().copied()
    }

    /// How many algorithms (1 to [`Algorithm::COUNT`]).
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Always false: a set holds at least one algorithm.
    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn contains(&self, algo: Algorithm) -> bool {
        self.as_slice().contains(&algo)
    }

    /// A fresh hasher for all of them.
    pub fn hasher(&self) -> MultiHasher {
        MultiHasher::new(*self)
    }
}

impl Default for Algorithms {
    fn default() -> Self {
        Algorithms::one(Algorithm::default())
    }
}

impl From<Algorithm> for Algorithms {
    fn from(a: Algorithm) -> Self {
        Algorithms::one(a)
    }
}

impl fmt::Debug for Algorithms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Names joined by commas: `md5,sha256`; what [`Algorithms::from_str`]
/// parses and what the store's `algorithm` column holds.
impl fmt::Display for Algorithms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(a.name())?;
        }
        Ok(())
    }
}

impl FromStr for Algorithms {
    type Err = UnknownAlgorithm;

    /// Comma-separated names (spaces around them allowed), e.g.
    /// `md5,sha256`. Errors: an empty list or entry, or an unknown name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut set: Option<Algorithms> = None;
        for name in s.split(',') {
            let a: Algorithm = name.parse()?;
            match &mut set {
                Some(set) => set.push(a),
                None => set = Some(Algorithms::one(a)),
            }
        }
        set.ok_or_else(|| UnknownAlgorithm(s.to_string()))
    }
}

/// The digests of one stream, in the order of its [`Algorithms`].
pub type Hashes = Vec<(Algorithm, Vec<u8>)>;

/// Several algorithms over one stream: every byte is read once and fed to
/// each hasher, while it is in cache.
///
/// A stream with several algorithms that grows past [`SPREAD_AFTER_BYTES`]
/// hands all its algorithms but one (MD5 where it has MD5, which the pool
/// hashes in lanes; else the first) to a helper thread, if one of the
/// process's [`spread_limit`] helpers is free: one after another on one
/// thread, md5+sha256+crc32c took 1.53 times MD5's time alone; side by side,
/// close to MD5's. Each chunk is then copied once (a memcpy, ~10 GB/s) into
/// a bounded queue of [`SPREAD_QUEUE_CHUNKS`] chunks: the caller waits when
/// the helper is that far behind, so memory per stream stays bounded.
/// Smaller streams, and any stream when no helper is free, hash on the
/// caller's thread.
pub struct MultiHasher {
    /// The algorithms, in the job's order, to put the digests back in it.
    order: Algorithms,
    /// The hashers on the caller's thread: all of them until the stream
    /// spreads, then the one it keeps.
    parts: Vec<Hasher>,
    /// Bytes absorbed so far, to decide when to spread.
    absorbed: u64,
    /// The helper thread hashing the other algorithms, once spread.
    helper: Option<Helper>,
}

/// A stream's byte count past which its algorithms may spread over two
/// threads: a thread start (~20 µs) is then below 1% of the hashing.
pub const SPREAD_AFTER_BYTES: u64 = 1 << 20;

/// Chunks a helper may be behind before the stream's producer waits.
pub const SPREAD_QUEUE_CHUNKS: usize = 8;

/// Helper threads that may run at once in this process: one less than the
/// CPUs it may use (none on one CPU, where spreading gains nothing).
pub fn spread_limit() -> usize {
    static LIMIT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()) - 1)
}

/// Helpers running now, against [`spread_limit`].
static HELPERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A helper thread and its queue. Dropping it (a stream abandoned) closes
/// the queue; the thread hashes what is queued, ends and frees its slot.
struct Helper {
    tx: std::sync::mpsc::SyncSender<bytes::Bytes>,
    thread: std::thread::JoinHandle<Vec<Hasher>>,
}

/// Frees a helper slot when the helper thread ends, however it ends.
struct HelperSlot;

impl Drop for HelperSlot {
    fn drop(&mut self) {
        HELPERS.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl MultiHasher {
    pub fn new(algos: Algorithms) -> MultiHasher {
        MultiHasher {
            order: algos,
            parts: algos.iter().map(Hasher::new).collect(),
            absorbed: 0,
            helper: None,
        }
    }

    /// Absorbs `data` into every hasher. Once the stream has spread to a
    /// helper thread, `data` is copied to it; [`MultiHasher::update_from`]
    /// shares a refcounted chunk instead.
    pub fn update(&mut self, data: &[u8]) {
        self.update_from(data, None);
    }

    /// As [`MultiHasher::update`]; `shared` is `data` as a refcounted
    /// chunk, which a helper thread then shares rather than copies.
    pub fn update_from(&mut self, data: &[u8], shared: Option<&bytes::Bytes>) {
        self.absorb(data, shared, false);
    }

    /// Absorbs `data` into every hasher but MD5's: the pool hashes that
    /// one in SIMD lanes, through [`MultiHasher::md5_mut`]. `shared` as in
    /// [`MultiHasher::update_from`].
    pub fn update_except_md5(&mut self, data: &[u8], shared: Option<&bytes::Bytes>) {
        self.absorb(data, shared, true);
    }

    fn absorb(&mut self, data: &[u8], shared: Option<&bytes::Bytes>, skip_md5: bool) {
        self.maybe_spread(data.len());
        for h in &mut self.parts {
            if !(skip_md5 && matches!(h, Hasher::Md5(_))) {
                h.update(data);
            }
        }
        if let Some(helper) = &self.helper {
            if !data.is_empty() {
                // Upload chunks are shared (a refcount); only a borrowed
                // buffer (a file read the reader reuses) is copied.
                let chunk = shared
                    .cloned()
                    .unwrap_or_else(|| bytes::Bytes::copy_from_slice(data));
                // An error means the helper died (a panic): `finalize`
                // re-raises its panic, so the job fails, never answers.
                let _ = helper.tx.send(chunk);
            }
        }
    }

    /// Moves every hasher but the kept one to a helper thread, once the
    /// stream is large enough and a helper slot is free.
    fn maybe_spread(&mut self, more: usize) {
        use std::sync::atomic::Ordering;
        self.absorbed += more as u64;
        if self.helper.is_some() || self.parts.len() < 2 || self.absorbed < SPREAD_AFTER_BYTES {
            return;
        }
        let taken = HELPERS
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < spread_limit()).then_some(n + 1)
            })
            .is_ok();
        if !taken {
            return;
        }
        let slot = HelperSlot;
        let keep = self
            .parts
            .iter()
            .position(|h| matches!(h, Hasher::Md5(_)))
            .unwrap_or(0);
        let kept = self.parts.swap_remove(keep);
        let mut moved = std::mem::replace(&mut self.parts, vec![kept]);
        let (tx, rx) = std::sync::mpsc::sync_channel::<bytes::Bytes>(SPREAD_QUEUE_CHUNKS);
        let spawned = std::thread::Builder::new()
            .name("hash-helper".into())
            .spawn(move || {
                let _slot = slot;
                for chunk in rx {
                    for h in &mut moved {
                        h.update(&chunk);
                    }
                }
                moved
            });
        match spawned {
            Ok(thread) => self.helper = Some(Helper { tx, thread }),
            // No thread: the hashers went with the closure, which is gone,
            // so this stream cannot go on; a panic fails its job (the
            // pool's finisher reports it) rather than answer without them.
            Err(e) => panic!("cannot start a hash helper thread: {e}"),
        }
    }

    /// Whether MD5 is one of the algorithms.
    pub fn has_md5(&self) -> bool {
        self.order.contains(Algorithm::Md5)
    }

    /// The MD5 state, if MD5 is one of the algorithms (it never moves to a
    /// helper).
    pub fn md5_mut(&mut self) -> Option<&mut md5::Md5> {
        self.parts.iter_mut().find_map(|h| match h {
            Hasher::Md5(m) => Some(m),
            _ => None,
        })
    }

    /// The algorithms, in order.
    pub fn algorithms(&self) -> Algorithms {
        self.order
    }

    /// Every digest, in the order of the algorithms. Waits for the helper,
    /// if the stream spread; a helper that panicked panics here.
    pub fn finalize(self) -> Hashes {
        let mut parts = self.parts;
        if let Some(helper) = self.helper {
            drop(helper.tx);
            match helper.thread.join() {
                Ok(moved) => parts.extend(moved),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        self.order
            .iter()
            .filter_map(|a| {
                let i = parts.iter().position(|h| h.algorithm() == a)?;
                let h = parts.swap_remove(i);
                Some((a, h.finalize()))
            })
            .collect()
    }
}

impl fmt::Debug for MultiHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiHasher")
            .field("algorithms", &self.order)
            .field("spread", &self.helper.is_some())
            .finish()
    }
}

/// Lower-case hexadecimal, the form every front end answers with.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// RFC 1321, appendix A.5: (input, MD5). Shared by every MD5 test.
#[cfg(test)]
pub(crate) const RFC1321_MD5: [(&str, &str); 7] = [
    ("", "d41d8cd98f00b204e9800998ecf8427e"),
    ("a", "0cc175b9c0f1b6a831c399e269772661"),
    ("abc", "900150983cd24fb0d6963f7d28e17f72"),
    ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
    (
        "abcdefghijklmnopqrstuvwxyz",
        "c3fcd3d76192e4007dfb496cca67e13b",
    ),
    (
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        "d174ab98d277d9f5a5611c2c9f419d9f",
    ),
    (
        "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
        "57edf4a22be3c955ac49da2e2107b67a",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1321, appendix A.5.
    #[test]
    fn md5_rfc1321_vectors() {
        let cases = RFC1321_MD5;
        for (input, want) in cases {
            assert_eq!(
                to_hex(&Algorithm::Md5.digest(input.as_bytes())),
                want,
                "{input:?}"
            );
        }
    }

    /// Published vectors: FIPS 180-2/202 examples ("abc"), the BLAKE3
    /// paper's, and the CRC catalogue's check values ("123456789").
    #[test]
    fn known_answers() {
        let cases: [(Algorithm, &[u8], &str); 12] = [
            (Algorithm::Sha1, b"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"),
            (Algorithm::Sha224, b"abc", "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7"),
            (Algorithm::Sha256, b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            (Algorithm::Sha384, b"abc", "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"),
            (Algorithm::Sha512, b"abc", "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"),
            (Algorithm::Sha3_256, b"abc", "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532"),
            (Algorithm::Sha3_512, b"abc", "b751850b1a57168a5693cd924b6b096e08f621827444f70d884f5d0240d2712e10e116e9192af3c91a7ec57647e3934057340b4cf408d5a56592f8274eec53f0"),
            (Algorithm::Blake3, b"", "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"),
            (Algorithm::Blake3, b"abc", "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"),
            (Algorithm::Crc32, b"123456789", "cbf43926"),
            (Algorithm::Crc32c, b"123456789", "e3069283"),
            (Algorithm::Crc64Nvme, b"123456789", "ae8b14860a799888"),
        ];
        for (algo, input, want) in cases {
            assert_eq!(to_hex(&algo.digest(input)), want, "{algo}");
        }
        for a in Algorithm::ALL {
            assert_eq!(a.digest(b"x").len(), a.digest_len(), "{a}");
            assert_eq!(Algorithm::ALL[a as usize], a, "ALL is in table order");
        }
    }

    /// Every algorithm against independent implementations (Python's
    /// hashlib and zlib, the blake3 package, crcmod; `scripts/refdigest.py`)
    /// on 10,000 inputs: every length up to 256, then random lengths up to
    /// 1 MiB (most short), each hashed alone in random splits and all
    /// together in one [`MultiHasher`]. Skipped with a message where the
    /// references are missing, unless `HASHD_REQUIRE_REFERENCES` is set
    /// (`.ci/run` sets it once it has installed them).
    #[test]
    fn every_algorithm_matches_its_reference() {
        let dir = crate::testutil::TempDir::new("refdigest");
        let mut rng = crate::testutil::XorShift::new(0xa1_6051);
        let mut lengths: Vec<usize> = (0..=256).collect();
        while lengths.len() < 10_000 {
            let len = if rng.below(20) == 0 {
                rng.range(0, 1 << 20)
            } else {
                // Log-uniform up to 64 KiB: every block boundary is near.
                let bits = rng.range(0, 16);
                rng.below(1 << bits) + (1 << bits) - 1
            };
            lengths.push(len);
        }
        let mut data = Vec::new();
        for &len in &lengths {
            data.extend(rng.bytes(len));
        }
        let data_path = dir.path().join("data");
        let len_path = dir.path().join("lengths");
        std::fs::write(&data_path, &data).unwrap();
        let listed: String = lengths.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(&len_path, listed).unwrap();
        let all = Algorithms::from_iter_nonempty(Algorithm::ALL).unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/refdigest.py");
        let out = std::process::Command::new("python3")
            .arg(script)
            .arg(all.to_string())
            .arg(&data_path)
            .arg(&len_path)
            .output();
        let out = match out {
            Ok(out) if out.status.success() => out,
            other => {
                let why = format!("python3 scripts/refdigest.py failed: {other:?}");
                assert!(
                    std::env::var_os("HASHD_REQUIRE_REFERENCES").is_none(),
                    "{why}"
                );
                eprintln!("skipped: {why} (pip install blake3 crcmod)");
                return;
            }
        };
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines = text.lines();
        let mut at = 0;
        for &len in &lengths {
            let input = &data[at..at + len];
            at += len;
            let want: Vec<&str> = lines
                .next()
                .expect("one line per input")
                .split(' ')
                .collect();
            let mut multi = all.hasher();
            let mut rest = input;
            while !rest.is_empty() {
                let take = rng.range(1, rest.len().min(70_000));
                multi.update(&rest[..take]);
                rest = &rest[take..];
            }
            let together = multi.finalize();
            for (i, algo) in all.iter().enumerate() {
                assert_eq!(together[i].0, algo);
                assert_eq!(
                    to_hex(&together[i].1),
                    want[i],
                    "{algo} with the others, {len} bytes"
                );
                if len <= 4096 || i == usize::from(len % 7 == 0) {
                    assert_eq!(
                        to_hex(&algo.digest(input)),
                        want[i],
                        "{algo} alone, {len} bytes"
                    );
                }
            }
        }
    }

    /// Streams large enough to spread over a helper thread, fed as the pool
    /// feeds them (MD5 apart, through `md5_mut`) and as the command line
    /// does (`update`), several at once so that some find no helper free:
    /// every digest equal to the algorithm's alone, in the job's order.
    #[test]
    fn spread_streams_give_the_same_digests() {
        let data = crate::testutil::random_bytes(3 * (SPREAD_AFTER_BYTES as usize) + 12_345, 9);
        let sets: Vec<Algorithms> = ["md5,sha256,crc32c", "sha256,blake3,crc64nvme", "crc32,md5"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        std::thread::scope(|scope| {
            for (i, set) in sets.iter().enumerate() {
                let data = &data;
                scope.spawn(move || {
                    let mut h = set.hasher();
                    for piece in data.chunks(65_536 + i) {
                        if i % 2 == 0 && h.has_md5() {
                            h.update_except_md5(piece, None);
                            h.md5_mut().unwrap().update(piece);
                        } else {
                            h.update(piece);
                        }
                    }
                    let got = h.finalize();
                    let algos: Vec<Algorithm> = got.iter().map(|(a, _)| *a).collect();
                    assert_eq!(algos, set.as_slice());
                    for (a, d) in got {
                        assert_eq!(d, a.digest(data), "{a} of {set}");
                    }
                });
            }
        });
    }

    #[test]
    fn table_names_round_trip() {
        for a in Algorithm::ALL {
            assert_eq!(a.name().parse::<Algorithm>(), Ok(a));
            assert_eq!(Algorithm::from_bsd_tag(a.spec().bsd_tag), Some(a));
            if let Some(key) = a.spec().rfc9530 {
                assert_eq!(Algorithm::from_rfc9530(&key.to_uppercase()), Some(a));
            }
        }
        assert_eq!("SHA3_256".parse::<Algorithm>(), Ok(Algorithm::Sha3_256));
        assert_eq!("crc64-nvme".parse::<Algorithm>(), Ok(Algorithm::Crc64Nvme));
    }

    #[test]
    fn algorithm_lists_parse_in_order_without_repeats() {
        let set: Algorithms = "sha256, md5,sha256,blake3".parse().unwrap();
        assert_eq!(
            set.as_slice(),
            [Algorithm::Sha256, Algorithm::Md5, Algorithm::Blake3]
        );
        assert_eq!(set.to_string(), "sha256,md5,blake3");
        assert_eq!(set.first(), Algorithm::Sha256);
        assert!("md5,".parse::<Algorithms>().is_err());
        assert!("".parse::<Algorithms>().is_err());
        let err = "md5,whirlpool".parse::<Algorithms>().unwrap_err();
        assert!(err.to_string().contains("whirlpool"), "{err}");
        let all = Algorithms::from_iter_nonempty(Algorithm::ALL).unwrap();
        assert_eq!(all.len(), Algorithm::COUNT);
    }

    /// The md-5 crate is the oracle for hashcore's own MD5: pieces of every
    /// length around block boundaries, fed in uneven splits.
    #[test]
    fn md5_hasher_matches_the_md5_crate() {
        let mut rng = crate::testutil::XorShift::new(0x5eed_a160);
        for len in (0..300).chain([4095, 4096, 4097, 100_000]) {
            let data = rng.bytes(len);
            let mut h = Algorithm::Md5.hasher();
            assert!(matches!(h, Hasher::Md5(_)), "md5 is hashcore's own");
            let mut rest = &data[..];
            while !rest.is_empty() {
                let take = rng.range(0, rest.len().min(200));
                h.update(&rest[..take]);
                rest = &rest[take..];
            }
            let want: [u8; 16] = ::md5::Md5::digest(&data).into();
            assert_eq!(h.finalize(), want, "{len} bytes");
        }
    }

    #[test]
    fn hashers_report_their_algorithm_and_length() {
        for a in Algorithm::ALL {
            let h = a.hasher();
            assert_eq!(h.algorithm(), a);
            assert_eq!(format!("{h:?}"), format!("Hasher({a:?})"));
            assert_eq!(h.finalize().len(), a.digest_len());
        }
    }

    #[test]
    fn parses_names_and_rejects_others() {
        assert_eq!("MD5".parse::<Algorithm>(), Ok(Algorithm::Md5));
        assert_eq!("sha-256".parse::<Algorithm>(), Ok(Algorithm::Sha256));
        let err = "whirlpool".parse::<Algorithm>().unwrap_err();
        assert!(err.to_string().contains("whirlpool") && err.to_string().contains("crc64nvme"));
    }
}
