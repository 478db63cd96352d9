use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use heavy_load::{Algo, Config, SizeSpec};

/// Uploads N files of random content and known digest with C concurrent
/// clients to a server speaking the original API, polls each id until it is
/// final and checks every hash. Exits 0 only if every started file verified.
#[derive(Parser, Debug)]
#[command(name = "heavy-load", version)]
struct Args {
    /// Server base URL; loopback only (127.0.0.0/8, [::1], localhost)
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    base: String,
    /// Number of files to upload
    #[arg(short = 'n', long = "files", default_value_t = 1000)]
    files: u64,
    /// File size: fixed (100, 64K, 1M, 2G) or a range LO..HI drawn log-uniformly
    #[arg(long, default_value = "64K")]
    size: SizeSpec,
    /// Concurrent clients (each uploads, then polls its id until final)
    #[arg(short = 'c', long, default_value_t = 16)]
    concurrency: usize,
    /// Digest requested with ?algo= and checked
    #[arg(long, value_enum, default_value_t = Algo::Md5)]
    algo: Algo,
    /// Upload with ?wait=true and expect the final hash in the upload answer
    #[arg(long)]
    wait: bool,
    /// Stop issuing uploads after SECS; in-flight files get --pending-timeout
    /// more, then count as failures (cut_off)
    #[arg(long, value_name = "SECS")]
    time_limit: Option<f64>,
    /// Longest pause between polls of one id, in ms (polls back off 1, 2, 4... ms up to this)
    #[arg(long, value_name = "MS", default_value_t = 50.0)]
    poll_interval: f64,
    /// An id still PENDING this many seconds after its upload is "hung PENDING"
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pending_timeout: f64,
    /// Limit for one HTTP request and its answer, in seconds
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    request_timeout: f64,
    /// Seed for sizes and content (same seed, same files); random if absent,
    /// and reported in the summary
    #[arg(long)]
    seed: Option<u64>,
    /// Print only the one-line JSON summary
    #[arg(long)]
    json_only: bool,
    /// Write `ID EXPECTED_HEX` to FILE for every upload answered with an id,
    /// as the answers arrive (kept when the run fails): a test can check
    /// afterwards every id any client was given
    #[arg(long, value_name = "FILE")]
    ids_out: Option<std::path::PathBuf>,
}

fn secs(name: &str, v: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(v).map_err(|_| format!("--{name} must be a non-negative number"))
}

fn main() -> ExitCode {
    let a = Args::parse();
    let cfg = (|| -> Result<Config, String> {
        Ok(Config {
            base: a.base.clone(),
            files: a.files,
            size: a.size,
            concurrency: a.concurrency,
            algo: a.algo,
            wait: a.wait,
            time_limit: a.time_limit.map(|t| secs("time-limit", t)).transpose()?,
            poll_interval: secs("poll-interval", a.poll_interval / 1e3)?,
            pending_timeout: secs("pending-timeout", a.pending_timeout)?,
            request_timeout: secs("request-timeout", a.request_timeout)?,
            seed: match a.seed {
                Some(s) => s,
                None => {
                    let mut b = [0u8; 8];
                    getrandom::getrandom(&mut b).map_err(|e| format!("getrandom: {e}"))?;
                    u64::from_le_bytes(b) >> 11 // fits a JSON double exactly
                }
            },
            ids_out: a.ids_out.clone(),
        })
    })();
    let cfg = match cfg {
        Ok(c) => c,
        Err(e) => {
            eprintln!("heavy-load: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let summary = match rt.block_on(heavy_load::run(cfg)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("heavy-load: {e:#}");
            return ExitCode::from(2);
        }
    };
    if !a.json_only {
        println!("{}", summary.human());
    }
    println!(
        "{}",
        serde_json::to_string(&summary).expect("summary serializes")
    );
    if summary.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
