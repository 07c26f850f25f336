//! `tessera`: the database's one binary.
//!
//! - `tessera serve` runs a node.
//! - `tessera config` prints the configuration a node would run with.
//! - `tessera cluster status` shows the members and what each of them can reach.

mod cluster_cmd;
mod serve_args;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use serve_args::ServeArgs;

/// Many small, short-lived allocations per request (headers, messages, futures) are where glibc
/// malloc is slowest; mimalloc's thread-local free lists serve them without locks.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version,
    about = "A Dynamo-style leaderless wide-column database"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node: serve the HTTP API over its own RocksDB store.
    Serve(ServeArgs),
    /// Print the effective configuration (defaults, file, environment and flags) as TOML.
    Config(ServeArgs),
    /// Operate a running cluster.
    #[command(subcommand)]
    Cluster(cluster_cmd::ClusterCommand),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            init_logging();
            let config = args.resolve()?;
            // Storage calls run on tokio's blocking pool. Its default of up to 512 threads turns
            // 64 concurrent requests into 64 threads fighting over the cores; a pool the size of
            // the machine serves them faster (docs/performance.md has the measurements).
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .max_blocking_threads(config.storage.blocking_threads())
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(tessera_server::serve(config, shutdown_signal()))?;
            Ok(())
        }
        Command::Cluster(command) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(cluster_cmd::run(command))
        }
        Command::Config(args) => {
            let config = args.resolve()?;
            print!("{}", toml::to_string_pretty(&config)?);
            Ok(())
        }
    }
}

fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only help a person at a terminal; in log files they are noise.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Completes on Ctrl-C or SIGTERM, whichever comes first.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl-C received; shutting down"),
        _ = terminate => tracing::info!("SIGTERM received; shutting down"),
    }
}
