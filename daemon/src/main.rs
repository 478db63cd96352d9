//! The `hashd` binary: parses flags, sets up logging, and maps errors to exit
//! codes. Exit codes: 0 success; 1 runtime error (the whole cause chain is
//! printed); 2 invalid usage or configuration.
#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hashd::{config, ServeArgs};

/// hashd: a high-throughput hashing daemon.
///
/// Clients upload files over HTTP (the original FastAPI service's API:
/// POST /uploadfile/, GET /gethash/?file_id=ID) and get their MD5 (or SHA-1,
/// SHA-256, SHA-512) back. Settings come from flags, then environment
/// variables, then a .env file in the working directory.
#[derive(Parser, Debug)]
#[command(
    name = "hashd",
    version,
    propagate_version = true,
    args_conflicts_with_subcommands = true,
    after_help = "Logging: HASHD_LOG sets the log filter (tracing EnvFilter syntax, e.g. debug or hashd=debug); logs go to stderr. [default: info,deadpool=error]"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the daemon (the default when no subcommand is given).
    Serve(Box<ServeArgs>),
    /// Print or check checksums, like md5sum (sha256sum with -a sha256).
    ///
    /// Uses the running daemon through its unix socket when there is one
    /// (passing file descriptors, so the daemon reads the files), otherwise
    /// hashes in this process with the same engine.
    Sum {
        #[command(flatten)]
        args: hashd::cli::SumArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Upload files to a hashd server over HTTP; print their hashes
    /// (md5sum format, with --wait) or job ids.
    Upload {
        #[command(flatten)]
        args: hashd::cli::UploadArgs,
    },
    /// Look jobs up on a hashd server over HTTP: prints `ID STATUS HASH`.
    Get {
        #[command(flatten)]
        args: hashd::cli::GetArgs,
    },
    /// Verify a checksum file (same as `hashd sum -c`).
    Check {
        #[command(flatten)]
        args: hashd::cli::CheckArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// How `sum` and `check` reach an engine.
#[derive(clap::Args, Debug)]
struct ClientArgs {
    /// The daemon's unix socket. [env: HASHD_SOCKET] [default: HASHD_DATA_DIR/hashd.sock, else ./hashd-data/hashd.sock]
    #[arg(long, value_name = "PATH")]
    socket: Option<std::path::PathBuf>,

    /// Hash in this process even if a daemon is running.
    #[arg(long)]
    no_daemon: bool,

    /// In-process only: read files with pread instead of io_uring.
    #[arg(long)]
    no_uring: bool,

    /// Say on stderr when the daemon is not used (none running, or it
    /// failed and the files were hashed in this process).
    #[arg(short = 'v', long)]
    verbose: bool,

    /// Draw a progress line (percent, bytes, files, rate, ETA) on stderr
    /// while hashing, when stderr is a terminal (from 0.5 s on, cleared at
    /// the end); through the daemon too, which then reports how far each
    /// file has got. Standard output is the same with or without it.
    #[arg(long)]
    progress: bool,
}

impl ClientArgs {
    /// The daemon if one answers on the socket, else the in-process engine,
    /// with a reader of the bytes either has hashed (for `--progress`;
    /// `progress` asks the daemon for its PROGRESS frames).
    fn digests(
        &self,
        stderr: &mut dyn Write,
        progress: bool,
    ) -> std::io::Result<(Box<dyn hashd::cli::Digests>, hashd::client::HashedSoFar)> {
        use hashd::client::{DaemonDigests, Limits, PoolDigests};
        if !self.no_daemon {
            let path = self
                .socket
                .clone()
                .or_else(|| std::env::var_os("HASHD_SOCKET").map(Into::into))
                // The daemon's default socket lives in its data directory.
                .or_else(|| {
                    std::env::var_os("HASHD_DATA_DIR")
                        .map(|d| std::path::PathBuf::from(d).join("hashd.sock"))
                })
                .unwrap_or_else(|| "hashd-data/hashd.sock".into());
            let uring = !self.no_uring;
            match DaemonDigests::connect(&path, Limits::from_env(), uring, self.verbose, progress) {
                Ok(d) => {
                    let live = d.bytes_hashed();
                    return Ok((Box::new(d), live));
                }
                Err(e) if self.verbose => {
                    let _ = writeln!(
                        stderr,
                        "hashd: no usable daemon at {} ({e}); hashing in this process",
                        path.display()
                    );
                }
                Err(_) => {}
            }
        }
        let pool = PoolDigests::new(!self.no_uring)?;
        let live = pool.bytes_hashed();
        Ok((Box::new(pool), live))
    }
}

/// Standard output or error of `sum` and `check`: a write to a closed pipe
/// ends the process by SIGPIPE, silently, as it ends `md5sum` (as in
/// `hashd sum *.iso | head -1`), instead of a `write error: Broken pipe`
/// message. Every byte either command writes goes through one of these.
struct DieOnBrokenPipe<W>(W);

impl<W: Write> DieOnBrokenPipe<W> {
    fn check<T>(result: std::io::Result<T>) -> std::io::Result<T> {
        match result {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                hashcore::sigpipe::die_of_sigpipe()
            }
            other => other,
        }
    }
}

impl<W: Write> Write for DieOnBrokenPipe<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Self::check(self.0.write(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Self::check(self.0.flush())
    }
}

/// `upload` and `get`: the same output handling as `sum`, without an
/// engine (the server hashes).
fn run_remote(run: impl FnOnce(&mut dyn Write, &mut dyn Write) -> i32) -> ExitCode {
    init_logging(config::LogFormat::Text);
    let mut stderr = DieOnBrokenPipe(std::io::stderr());
    let stdout = std::io::stdout();
    let mut out = std::io::LineWriter::new(DieOnBrokenPipe(stdout.lock()));
    let code = run(&mut out, &mut stderr);
    ExitCode::from(code.clamp(0, 255) as u8)
}

fn run_client(
    client: &ClientArgs,
    run: impl FnOnce(&mut dyn hashd::cli::Digests, &mut dyn Write, &mut dyn Write) -> i32,
) -> ExitCode {
    use hashd::cli::{ProgressDigests, Screen, Suspending};
    use std::io::IsTerminal;
    let progress = client.progress && std::io::stderr().is_terminal();
    let screen = Screen::default();
    // With the bar drawn, what goes to the terminal is written around it.
    let mut stderr: Box<dyn Write> = match progress {
        true => Box::new(Suspending::new(
            DieOnBrokenPipe(std::io::stderr()),
            screen.clone(),
        )),
        false => Box::new(DieOnBrokenPipe(std::io::stderr())),
    };
    let mut digests = match client.digests(&mut stderr, progress) {
        Ok((b, live)) if progress => Box::new(ProgressDigests::new(b, Some(live), screen.clone())),
        Ok((b, _)) => b,
        Err(e) => {
            let _ = writeln!(stderr, "hashd: cannot start the hashing engine: {e}");
            return ExitCode::from(1);
        }
    };
    let stdout = std::io::stdout();
    let mut out: Box<dyn Write> = match progress && stdout.is_terminal() {
        true => Box::new(std::io::LineWriter::new(Suspending::new(
            DieOnBrokenPipe(stdout.lock()),
            screen,
        ))),
        false => Box::new(std::io::LineWriter::new(DieOnBrokenPipe(stdout.lock()))),
    };
    let code = run(digests.as_mut(), &mut out, &mut stderr);
    drop(out);
    ExitCode::from(code.clamp(0, 255) as u8)
}

/// Whether the command line asks for `sum` or `check`, which report usage
/// errors with exit code 1, as md5sum does, rather than the daemon's 2.
fn is_client_command() -> bool {
    std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == "sum" || a == "check" || a == "upload" || a == "get")
}

fn main() -> ExitCode {
    if let Err(e) = config::load_dotenv(std::path::Path::new(".env")) {
        eprintln!("hashd: {e:#}");
        return ExitCode::from(2);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and --version go to stdout and succeed; usage errors go
            // to stderr and fail.
            let code = match (e.use_stderr(), is_client_command()) {
                (false, _) => 0,
                (true, true) => 1,
                (true, false) => 2,
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let args = match cli.command {
        Some(Command::Serve(args)) => *args,
        None => cli.serve,
        Some(Command::Sum { args, client }) => {
            return run_client(&client, |b, out, err| {
                hashd::cli::run_sum(&args, b, out, err)
            })
        }
        Some(Command::Upload { args }) => {
            return run_remote(|out, err| hashd::cli::run_upload(&args, out, err))
        }
        Some(Command::Get { args }) => {
            return run_remote(|out, err| hashd::cli::run_get(&args, out, err))
        }
        Some(Command::Check { args, client }) => {
            return run_client(&client, |b, out, err| {
                hashd::cli::run_check(&args, b, out, err)
            })
        }
    };
    let format = match args.log_format() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("hashd: {e:#}");
            return ExitCode::from(2);
        }
    };
    init_logging(format);
    let config = match args.resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hashd: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hashd: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    // Handlers are installed before the daemon announces its address, so a
    // SIGTERM sent the moment it is listening already shuts it down cleanly.
    let shutdown = {
        let _in_runtime = runtime.enter();
        shutdown_signal()
    };
    match runtime.block_on(hashd::run(config, shutdown)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hashd: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Installs SIGINT and SIGTERM handlers now (inside a runtime context) and
/// returns a future that resolves on the first of them. A second one, while
/// the daemon drains, exits at once (status 1): every acknowledged job is
/// already committed, and the next start ends the ones still PENDING.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        let (Ok(mut term), Ok(mut int)) = handlers else {
            tracing::error!("cannot install signal handlers; stop hashd with SIGKILL");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down (a second signal exits at once)"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down (a second signal exits at once)"),
        }
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::warn!("second signal: exiting without draining");
            std::process::exit(1);
        });
    }
}

fn init_logging(format: config::LogFormat) {
    use tracing_subscriber::EnvFilter;
    // deadpool warns once per pooled connection it drops; the store logs
    // an outage of the database once itself, so the default keeps it quiet.
    let filter = EnvFilter::try_from_env("HASHD_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,deadpool=error"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    match format {
        config::LogFormat::Text => builder.init(),
        // One object per line; the request's span (its request_id) is in
        // "span", the event's fields at the top level.
        config::LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}
