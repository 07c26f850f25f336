//! `tessera-bench`: measures a Tessera node against ceilings taken on the same machine.
//!
//! See `docs/performance.md` for what each subcommand measures and `scripts/bench-node.sh` for
//! how they are put together.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tessera_bench::ceiling::CeilingArgs;
use tessera_bench::load::LoadArgs;
use tessera_bench::rawcopy::RawCopyArgs;
use tessera_bench::report::ReportArgs;
use tessera_bench::storage::StorageArgs;
use tessera_bench::BenchError;

#[derive(Debug, Parser)]
#[command(
    name = "tessera-bench",
    version,
    about = "Benchmarks a Tessera node against its own ceilings",
    after_help = "Examples:\n  \
        tessera-bench http-ceiling --listen 127.0.0.12:7000\n  \
        tessera-bench storage --dir /tmp/bench-storage --ops 200000 --threads 2\n  \
        tessera-bench load --target http://127.0.0.11:7000 --create-table 1 --preload --workload get\n  \
        tessera-bench load --target http://127.0.0.11:7000,http://127.0.0.12:7000 --workload ycsb-a \\\n      \
        --distribution zipfian --consistency quorum --seed 1\n  \
        tessera-bench load --protocol etcd-grpc --target http://127.0.0.31:2379,http://127.0.0.32:2379 \\\n      \
        --workload write-only --distribution zipfian --preload\n  \
        tessera-bench report results/*.txt"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the node's cell routes with handlers that do nothing (the request-layer ceiling), or
    /// with `--storage` only the node's storage calls.
    HttpCeiling(CeilingArgs),
    /// Raw RocksDB puts and gets, and the versioned cell path: the storage ceiling.
    Storage(StorageArgs),
    /// Closed-loop HTTP load against one or more nodes (Tessera, or etcd by its gateway or gRPC).
    Load(LoadArgs),
    /// Markdown tables of summaries: the node as ratios to its ceilings.
    Report(ReportArgs),
    /// Scan every cell of a stopped node's RocksDB and write it into a new one: the ceiling of
    /// streaming partitions.
    RawCopy(RawCopyArgs),
}

fn runtime(
    threads: Option<usize>,
    max_blocking_threads: Option<usize>,
) -> Result<tokio::runtime::Runtime, BenchError> {
    // The node's runtime: multi-thread, every driver enabled, one worker per core by default.
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = threads {
        builder.worker_threads(threads.max(1));
    }
    if let Some(max) = max_blocking_threads {
        builder.max_blocking_threads(max.max(1));
    }
    builder
        .enable_all()
        .build()
        .map_err(|source| BenchError::Io {
            what: "starting the async runtime",
            source,
        })
}

fn run(cli: Cli) -> Result<(), BenchError> {
    match cli.command {
        Command::HttpCeiling(args) => runtime(None, args.max_blocking_threads)?
            .block_on(tessera_bench::ceiling::serve(&args, shutdown_signal())),
        Command::Storage(args) => tessera_bench::storage::run(&args).map(drop),
        Command::Load(args) => runtime(args.threads, None)?
            .block_on(tessera_bench::load::run(&args))
            .map(drop),
        Command::RawCopy(args) => tessera_bench::rawcopy::run(&args).map(drop),
        Command::Report(args) => {
            print!("{}", tessera_bench::report::run(&args)?);
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tessera-bench: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
