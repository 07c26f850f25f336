//! `tessera`: the database's one binary.
//!
//! - `tessera serve` runs a node.
//! - `tessera config` prints the configuration a node would run with.
//! - `tessera cluster status` shows the members and what each of them can reach;
//!   `tessera cluster plan|commit|abort` change the layout.
//! - `tessera cluster watch` shows a layout change live: every member's transfers, until the
//!   epoch is applied.
//! - `tessera node workers` lists a node's background workers, and pauses, resumes or throttles
//!   one.
//! - `tessera repair status` shows a node's anti-entropy; `tessera repair now` starts a sweep.

mod cluster_cmd;
mod layout_cmd;
mod node_cmd;
mod output;
mod repair_cmd;
mod serve_args;
mod watch;

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
    /// Look at and operate one node: its background workers.
    #[command(subcommand)]
    Node(node_cmd::NodeCommand),
    /// Anti-entropy on one node: its status, or a sweep now.
    #[command(subcommand)]
    Repair(repair_cmd::RepairCommand),
}

/// Runs the command; an expected failure (a node that does not answer, a refused request, a bad
/// configuration) prints one line, `error: ...` with its causes, and exits 1, never a backtrace.
fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
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
            runtime.block_on(async {
                let shutdown = shutdown_signal()?;
                tessera_server::serve(config, shutdown).await?;
                Ok::<_, anyhow::Error>(())
            })?;
            Ok(())
        }
        Command::Cluster(command) => client_runtime()?.block_on(cluster_cmd::run(command)),
        Command::Node(command) => client_runtime()?.block_on(node_cmd::run(command)),
        Command::Repair(command) => client_runtime()?.block_on(repair_cmd::run(command)),
        Command::Config(args) => {
            let config = args.resolve()?;
            output::emit(&mut toml::to_string_pretty(&config)?)
        }
    }
}

/// The runtime of a client command: one thread is plenty for a few HTTP calls.
fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
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
/// Ctrl-C or SIGTERM. The handlers are installed here, before the node announces that it is
/// listening: a signal that came before the server first polled the future would otherwise get
/// the default action, and kill the node without a clean shutdown.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("Ctrl-C received; shutting down"),
            _ = terminate.recv() => tracing::info!("SIGTERM received; shutting down"),
        }
    })
}
