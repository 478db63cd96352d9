//! The `hashd` binary: parses flags, sets up logging, and maps errors to exit
//! codes. Exit codes: 0 success; 1 runtime error (the whole cause chain is
//! printed); 2 invalid usage or configuration.
#![forbid(unsafe_code)]

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
#[command(name = "hashd", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the daemon (the default when no subcommand is given).
    Serve(ServeArgs),
}

fn main() -> ExitCode {
    if let Err(e) = config::load_dotenv(std::path::Path::new(".env")) {
        eprintln!("hashd: {e:#}");
        return ExitCode::from(2);
    }
    let cli = Cli::parse();
    init_logging();
    let args = match cli.command {
        Some(Command::Serve(args)) => args,
        None => cli.serve,
    };
    let config = match args.resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hashd: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hashd: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(hashd::run(config, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hashd: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers; stop hashd with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("HASHD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}
