//! `tessera-chaos`: partitions, kills and pauses a local Tessera cluster under a workload,
//! checks the history and draws what happened (`docs/chaos.md`). `scripts/chaos.sh` wraps it.
//!
//! Exit codes: 0 no violation, 1 violations found, 2 the run could not be carried out,
//! 3 missing rights (iptables needs root or CAP_NET_ADMIN), 130/143 interrupted.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use tessera_chaos::check;
use tessera_chaos::cleanup;
use tessera_chaos::error::ChaosError;
use tessera_chaos::history::{read_history, Workload};
use tessera_chaos::report;
use tessera_chaos::run::{run, RunConfig};
use tessera_chaos::schedule::{NemesisKind, ScheduleConfig};
use tessera_chaos::workload::Route;

const EXIT_VIOLATIONS: u8 = 1;
const EXIT_ERROR: u8 = 2;
const EXIT_PRIVILEGES: u8 = 3;

#[derive(Debug, Parser)]
#[command(
    name = "tessera-chaos",
    about = "Partition, kill and pause a local Tessera cluster under a workload, check what every client was told against what the cluster holds, and draw what happened.",
    after_help = "Every run prints its seed; --seed replays the same faults, victims and timings. Exit codes: 0 no violation, 1 violations, 2 could not run, 3 missing rights (run as root for iptables)."
)]
struct Args {
    /// Re-check a saved history instead of running (writes the report beside it, or to --out).
    #[arg(long, value_name = "HISTORY")]
    check: Option<PathBuf>,

    /// Seed of the schedule and the workload's choices (default: from the clock, printed).
    #[arg(long)]
    seed: Option<u64>,

    /// Nodes to start (3 to 7).
    #[arg(long, default_value_t = 5)]
    nodes: usize,

    /// Address of the first node; node i gets the next addresses (loopback only).
    #[arg(long, default_value = "127.0.0.101")]
    base_ip: Ipv4Addr,

    #[arg(long, default_value_t = 7000)]
    port: u16,

    /// Use these running nodes (IP:PORT,...) instead of starting a cluster, e.g. the one of
    /// `make run`: 127.0.0.11:7000,127.0.0.12:7000,127.0.0.13:7000.
    #[arg(long, value_delimiter = ',')]
    target: Option<Vec<SocketAddrV4>>,

    /// The tessera binary (default: $TESSERA_BIN, else ~/.cache/tessera/target/debug/tessera).
    #[arg(long, env = "TESSERA_BIN")]
    bin: Option<PathBuf>,

    /// The cluster secret (with --target: that cluster's; run-local.sh uses tessera-local-secret).
    #[arg(long)]
    secret: Option<String>,

    /// Length of the chaos phase in seconds (faults happen in it).
    #[arg(long, default_value_t = 300)]
    duration: u64,

    /// Nemeses: all, partition, process, link, none, or names: isolate, majority,
    /// majorities-ring, bridge, halves, kill, pause, slow, lossy, wipe.
    #[arg(long, default_value = "all")]
    nemesis: String,

    /// Fault windows last MIN-MAX seconds.
    #[arg(long, default_value = "10-20")]
    fault_secs: String,

    /// Quiet gaps between faults last MIN-MAX seconds.
    #[arg(long, default_value = "8-15")]
    gap_secs: String,

    /// Quiet seconds before the first fault.
    #[arg(long, default_value_t = 5)]
    warmup: u64,

    /// Seconds the clients keep running after the recovery (their reads are judged).
    #[arg(long, default_value_t = 15)]
    healthy_secs: u64,

    /// Workloads: set, register, batch.
    #[arg(long, default_value = "set,register,batch", value_delimiter = ',')]
    workloads: Vec<String>,

    /// Consistency level of reads and writes (one, two, three, quorum, all, or a number).
    #[arg(long, default_value = "quorum")]
    level: String,

    /// Overrides --level for reads.
    #[arg(long)]
    read_level: Option<String>,

    /// Overrides --level for writes.
    #[arg(long)]
    write_level: Option<String>,

    /// The tables' replication factor.
    #[arg(long, default_value_t = 3)]
    replication: u32,

    /// Clients per workload (client c talks to node c mod n).
    #[arg(long, default_value_t = 10)]
    clients: usize,

    /// Operations per second, all clients together.
    #[arg(long, default_value_t = 120.0)]
    rate: f64,

    /// Registers of the register workload.
    #[arg(long, default_value_t = 16)]
    registers: usize,

    /// Rows of the set workload.
    #[arg(long, default_value_t = 8)]
    set_rows: usize,

    /// Rows of the batch workload.
    #[arg(long, default_value_t = 8)]
    batch_rows: usize,

    /// A request with no answer after this long is an unknown outcome.
    #[arg(long, default_value_t = 5000)]
    client_timeout_ms: u64,

    /// How long to wait for the replicas to agree before the read-back.
    #[arg(long, default_value_t = 10)]
    converge_timeout: u64,

    /// Fail the run unless the replicas agree within SECS of the clients' stop (for when
    /// anti-entropy exists; implies --converge-timeout SECS at least).
    #[arg(long, value_name = "SECS")]
    converge_within: Option<u64>,

    /// How long to wait after the heal for every member alive, the same ring everywhere and no
    /// hints (reads are judged for staleness only after that recovery).
    #[arg(long, default_value_t = 180)]
    recover_within: u64,

    /// The report folder (default: ./data/chaos/seed-<seed>-<time>).
    #[arg(long)]
    out: Option<PathBuf>,

    /// Where clients send requests: `node` (their own node, which forwards writes it is no
    /// replica of) or `replica` (a replica of the key, as a token-aware client does).
    #[arg(long, default_value = "node")]
    route: String,

    /// Environment for every node started (KEY=VALUE, repeatable), e.g.
    /// TESSERA_FAULT=drop-replication with a build that has the fault-injection feature.
    #[arg(long, value_name = "KEY=VALUE")]
    node_env: Vec<String>,

    /// Keep the nodes' data dirs (they are deleted after a run; logs are always kept).
    #[arg(long)]
    keep_data: bool,
}

fn range(text: &str, what: &str) -> anyhow::Result<(u64, u64)> {
    let (a, b) = text
        .split_once('-')
        .map(|(a, b)| (a.trim(), b.trim()))
        .unwrap_or((text.trim(), text.trim()));
    let (a, b): (u64, u64) = (
        a.parse()
            .with_context(|| format!("{what}: {text:?} is not MIN-MAX seconds"))?,
        b.parse()
            .with_context(|| format!("{what}: {text:?} is not MIN-MAX seconds"))?,
    );
    if a == 0 || a > b {
        bail!("{what}: {text:?} must be MIN-MAX with 0 < MIN <= MAX");
    }
    Ok((a, b))
}

fn default_bin() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/tessera/target")
        });
    target.join("debug/tessera")
}

/// The command line that replays a run: the same arguments with the seed fixed.
fn replay_command(seed: u64) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1).peekable();
    while let Some(arg) = args.next() {
        if arg == "--seed" || arg == "--out" {
            args.next();
            continue;
        }
        if arg.starts_with("--seed=") || arg.starts_with("--out=") {
            continue;
        }
        words.push(arg);
    }
    let quoted: Vec<String> = words
        .iter()
        .map(|w| {
            if w.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.,=:/".contains(c))
            {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', "'\\''"))
            }
        })
        .collect();
    format!("scripts/chaos.sh --seed {seed} {}", quoted.join(" "))
        .trim_end()
        .to_owned()
}

fn recheck(path: &std::path::Path, out: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let events = read_history(path)?;
    let verdict = check::check(&events)?;
    let dir = out.unwrap_or_else(|| {
        path.parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
    });
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    report::write(&dir, &events, &verdict)?;
    print_verdict(&verdict, &dir);
    Ok(exit_for(&verdict))
}

fn print_verdict(verdict: &check::Verdict, dir: &std::path::Path) {
    if verdict.ok() {
        println!(
            "PASS: no violation ({} acknowledged writes, 0 lost). Report: {}",
            verdict.acked(),
            dir.join("summary.md").display()
        );
    } else {
        println!(
            "FAIL: {} violation(s), {} of {} acknowledged writes lost. Report: {}",
            verdict.violations.len(),
            verdict.lost(),
            verdict.acked(),
            dir.join("summary.md").display()
        );
        for v in verdict.violations.iter().take(10) {
            println!(
                "  {} [{} {}]: {}",
                v.kind.name(),
                v.workload.name(),
                v.key,
                v.detail
            );
        }
    }
}

fn exit_for(verdict: &check::Verdict) -> ExitCode {
    if verdict.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_VIOLATIONS)
    }
}

fn config(args: Args) -> anyhow::Result<RunConfig> {
    if !(3..=7).contains(&args.nodes) && args.target.is_none() {
        bail!("--nodes must be 3 to 7, not {}", args.nodes);
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64 % 1_000_000)
            .unwrap_or(1)
    });
    let kinds = NemesisKind::parse_list(&args.nemesis)?;
    let workloads = args
        .workloads
        .iter()
        .map(|w| {
            Workload::parse(w.trim())
                .with_context(|| format!("unknown workload {w:?}: set, register or batch"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if workloads.is_empty() {
        bail!("--workloads needs at least one of set, register, batch");
    }
    let bin = args.bin.unwrap_or_else(default_bin);
    if args.target.is_none() && !bin.is_file() {
        bail!(
            "no tessera binary at {}: build it with `cargo build --bin tessera` (or `make build`), or pass --bin",
            bin.display()
        );
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("data/chaos/seed-{seed}-{stamp}")));
    let secret = args.secret.unwrap_or_else(|| {
        if args.target.is_some() {
            "tessera-local-secret".into()
        } else {
            "tessera-chaos-secret".into()
        }
    });
    let converge_timeout = args.converge_timeout.max(args.converge_within.unwrap_or(0));
    Ok(RunConfig {
        seed,
        nodes: args.target.as_ref().map(Vec::len).unwrap_or(args.nodes),
        base_ip: args.base_ip,
        port: args.port,
        target: args.target,
        bin,
        secret,
        out,
        schedule: ScheduleConfig {
            nodes: args.nodes,
            kinds,
            warmup: Duration::from_secs(args.warmup),
            chaos: Duration::from_secs(args.duration),
            fault_secs: range(&args.fault_secs, "--fault-secs")?,
            gap_secs: range(&args.gap_secs, "--gap-secs")?,
        },
        healthy: Duration::from_secs(args.healthy_secs),
        workloads,
        replication: args.replication,
        read_level: args.read_level.unwrap_or_else(|| args.level.clone()),
        write_level: args.write_level.unwrap_or_else(|| args.level.clone()),
        clients: args.clients.max(1),
        rate: args.rate,
        registers: args.registers,
        set_rows: args.set_rows,
        batch_rows: args.batch_rows,
        client_timeout: Duration::from_millis(args.client_timeout_ms),
        converge_timeout: Duration::from_secs(converge_timeout),
        converge_within: args.converge_within,
        recover_within: Duration::from_secs(args.recover_within.max(1)),
        keep_data: args.keep_data,
        node_env: args
            .node_env
            .iter()
            .map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .with_context(|| format!("--node-env {kv:?} is not KEY=VALUE"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?,
        route: Route::parse(&args.route)
            .with_context(|| format!("--route {:?}: node or replica", args.route))?,
        command: replay_command(seed),
    })
}

async fn main_async(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(history) = &args.check {
        return recheck(history, args.out.clone());
    }
    let config = config(args)?;
    eprintln!(
        "[chaos] seed {}; replay with: {}\n[chaos] report folder: {}",
        config.seed,
        config.command,
        config.out.display()
    );
    let outcome = run(config).await?;
    print_verdict(&outcome.verdict, &outcome.report_dir);
    Ok(exit_for(&outcome.verdict))
}

fn main() -> ExitCode {
    let args = Args::parse();
    // A panic anywhere still removes the rules and stops the nodes.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        cleanup::undo_all();
        default_hook(info);
    }));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tessera-chaos: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let code = runtime.block_on(async {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("tessera-chaos: cannot watch SIGTERM: {e}");
                    return ExitCode::from(EXIT_ERROR);
                }
            };
        tokio::select! {
            result = main_async(args) => match result {
                Ok(code) => code,
                Err(error) => {
                    cleanup::undo_all();
                    let privileges = error
                        .downcast_ref::<ChaosError>()
                        .is_some_and(|e| matches!(e, ChaosError::Privileges(_)));
                    eprintln!("tessera-chaos: {error:#}");
                    ExitCode::from(if privileges { EXIT_PRIVILEGES } else { EXIT_ERROR })
                }
            },
            _ = tokio::signal::ctrl_c() => {
                eprintln!("\ntessera-chaos: interrupted; removing rules and stopping nodes");
                cleanup::undo_all();
                ExitCode::from(130)
            }
            _ = terminate.recv() => {
                eprintln!("tessera-chaos: terminated; removing rules and stopping nodes");
                cleanup::undo_all();
                ExitCode::from(143)
            }
        }
    });
    // Child processes with kill_on_drop die as the runtime drops; rules are already gone.
    runtime.shutdown_timeout(Duration::from_secs(2));
    cleanup::undo_all();
    code
}
