//! The daemon's Prometheus metrics (`GET /metrics`), with prometheus-client.
//!
//! Families are counted where things happen (the HTTP front end, the job
//! owner's completions, the store writers); the hashers' and the results
//! log's state is read at scrape time by [`Gauges`], so the hot path pays
//! nothing for it. Every name has the `hashd_` prefix.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use frontends::http::observe::HttpMetrics;
use hashcore::{HasherSnapshot, JobError};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FinishedLabels {
    status: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlgorithmLabels {
    algorithm: &'static str,
}

/// Counted by the job owner as jobs end.
#[derive(Debug, Default)]
pub struct JobMetrics {
    finished: Family<FinishedLabels, Counter>,
    hashed: Family<AlgorithmLabels, Counter>,
}

impl JobMetrics {
    /// A job hashed `bytes` with each of `algorithms` and succeeded.
    pub fn succeeded(&self, algorithms: impl Iterator<Item = &'static str>, bytes: u64) {
        self.finished
            .get_or_create(&FinishedLabels {
                status: "SUCCESS",
                reason: "none",
            })
            .inc();
        for algorithm in algorithms {
            self.hashed
                .get_or_create(&AlgorithmLabels { algorithm })
                .inc_by(bytes);
        }
    }

    /// A job's digest contradicted what its client claimed.
    pub fn mismatched(&self) {
        self.finished
            .get_or_create(&FinishedLabels {
                status: "FAILURE",
                reason: "digest_mismatch",
            })
            .inc();
    }

    /// A job failed with `err`; the reason label is its kind, a fixed set.
    pub fn failed(&self, err: &JobError) {
        let reason = match err {
            JobError::Aborted(_) => "aborted",
            JobError::ShuttingDown => "shutdown",
            JobError::Read(_) => "read_error",
            JobError::Busy => "busy",
            JobError::Lost(_) => "hasher_lost",
        };
        self.finished
            .get_or_create(&FinishedLabels {
                status: "FAILURE",
                reason,
            })
            .inc();
    }
}

/// Observed by the store writers, per committed batch.
#[derive(Debug)]
pub struct StoreMetrics {
    batch_ops: Histogram,
    commit_seconds: Histogram,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        StoreMetrics {
            // 1 to 4096 operations (MAX_BATCH_OPS), powers of four.
            batch_ops: Histogram::new(exponential_buckets(1.0, 4.0, 7)),
            // 0.1 ms to about 6.5 s, powers of four.
            commit_seconds: Histogram::new(exponential_buckets(0.0001, 4.0, 9)),
        }
    }
}

impl StoreMetrics {
    /// A batch of `ops` operations committed (or failed) after `seconds`.
    pub fn batch(&self, ops: usize, seconds: f64) {
        self.batch_ops.observe(ops as f64);
        self.commit_seconds.observe(seconds);
    }
}

/// Everything `/metrics` shows; built once at start-up.
pub struct Metrics {
    pub http: Arc<HttpMetrics>,
    pub jobs: Arc<JobMetrics>,
    pub store: Arc<StoreMetrics>,
    registry: Mutex<Registry>,
    frozen: OnceLock<Registry>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("hashd");
        let http = HttpMetrics::register(&mut registry);
        let jobs = Arc::new(JobMetrics::default());
        registry.register(
            "jobs_finished",
            "Jobs ended, by status and, for failures, the kind of reason",
            jobs.finished.clone(),
        );
        registry.register(
            "hashed_bytes",
            "Bytes hashed by successful jobs, by algorithm",
            jobs.hashed.clone(),
        );
        let store = Arc::new(StoreMetrics::default());
        registry.register(
            "store_batch_ops",
            "Operations (inserts and ends) per store commit",
            store.batch_ops.clone(),
        );
        registry.register(
            "store_commit_seconds",
            "Time to commit one batch to the job store",
            store.commit_seconds.clone(),
        );
        Metrics {
            http,
            jobs,
            store,
            registry: Mutex::new(registry),
            frozen: OnceLock::new(),
        }
    }

    /// Adds the scrape-time gauges (`hashers` reads the pool's counters,
    /// `store_up` whether the store answers) and freezes the registry. Call
    /// once, after the pool has started.
    /// `log_pending` counts the results log's queued lines.
    pub fn finish(
        &self,
        hashers: Snapshot<Vec<HasherSnapshot>>,
        log_pending: Arc<AtomicU64>,
        store_up: Snapshot<bool>,
    ) {
        let mut registry =
            std::mem::take(&mut *self.registry.lock().unwrap_or_else(|p| p.into_inner()));
        registry.register_collector(Box::new(Gauges {
            hashers,
            log_pending,
            store_up,
        }));
        let _ = self.frozen.set(registry);
    }

    /// The Prometheus text format (0.0.4) of every family.
    pub fn encode(&self) -> Option<String> {
        let registry = self.frozen.get()?;
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, registry).ok()?;
        Some(out)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// A reading taken at each scrape.
pub type Snapshot<T> = Box<dyn Fn() -> T + Send + Sync>;

/// State read at each scrape: the hashers, the results log's queue, the
/// store's reachability.
struct Gauges {
    hashers: Snapshot<Vec<HasherSnapshot>>,
    log_pending: Arc<AtomicU64>,
    store_up: Snapshot<bool>,
}

impl std::fmt::Debug for Gauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gauges")
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HasherLabels {
    hasher: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HasherInfo {
    hasher: String,
    reader: String,
}

impl Collector for Gauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = (self.hashers)();
        let per_hasher = |encoder: &mut DescriptorEncoder,
                          name: &str,
                          help: &str,
                          gauge: bool,
                          value: &dyn Fn(&HasherSnapshot) -> u64|
         -> Result<(), std::fmt::Error> {
            let kind = if gauge {
                ConstGauge::new(0i64).metric_type()
            } else {
                ConstCounter::new(0u64).metric_type()
            };
            let mut family = encoder.encode_descriptor(name, help, None, kind)?;
            for h in &stats {
                let labels = HasherLabels {
                    hasher: h.index.to_string(),
                };
                let metric = family.encode_family(&labels)?;
                if gauge {
                    ConstGauge::new(value(h) as i64).encode(metric)?;
                } else {
                    ConstCounter::new(value(h)).encode(metric)?;
                }
            }
            Ok(())
        };
        per_hasher(
            &mut encoder,
            "hasher_up",
            "1 while the hasher thread runs, 0 once it has died",
            true,
            &|h| h.alive as u64,
        )?;
        per_hasher(
            &mut encoder,
            "hasher_jobs_active",
            "Jobs assigned to the hasher and not yet ended (its queue)",
            true,
            &|h| h.active_jobs,
        )?;
        per_hasher(
            &mut encoder,
            "hasher_reads_in_flight",
            "File reads submitted by the hasher and not yet completed",
            true,
            &|h| h.reads_in_flight,
        )?;
        per_hasher(
            &mut encoder,
            "hasher_hashed_bytes",
            "Bytes hashed by the hasher",
            false,
            &|h| h.bytes,
        )?;
        per_hasher(
            &mut encoder,
            "hasher_lane_blocks",
            "MD5 blocks hashed in SIMD lanes; over hasher_lane_slots_total, the lanes' occupancy",
            false,
            &|h| h.lane_blocks,
        )?;
        per_hasher(
            &mut encoder,
            "hasher_lane_slots",
            "MD5 lane slots the SIMD kernel calls offered (blocks it could have hashed)",
            false,
            &|h| h.lane_slots,
        )?;
        let mut info = encoder.encode_descriptor(
            "hasher_reader",
            "The file reader each hasher uses (io_uring or pread), as a label",
            None,
            ConstGauge::new(0i64).metric_type(),
        )?;
        for h in &stats {
            let labels = HasherInfo {
                hasher: h.index.to_string(),
                reader: h.reader.to_string(),
            };
            ConstGauge::new(1i64).encode(info.encode_family(&labels)?)?;
        }
        ConstGauge::new(self.log_pending.load(Ordering::Relaxed) as i64).encode(
            encoder.encode_descriptor(
                "results_log_pending_lines",
                "Results-log lines committed to the store but not yet written to the log (its lag)",
                None,
                ConstGauge::new(0i64).metric_type(),
            )?,
        )?;
        ConstGauge::new((self.store_up)() as i64).encode(encoder.encode_descriptor(
            "store_up",
            "1 while the job store answers, 0 while its database server is unreachable",
            None,
            ConstGauge::new(0i64).metric_type(),
        )?)?;
        Ok(())
    }
}
