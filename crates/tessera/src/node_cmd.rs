//! `tessera node ...`: commands about one node itself, over its HTTP API.
//!
//! `tessera node workers` lists the node's background workers (like `garage worker list`), and
//! `pause`, `resume` and `set` change one of them. The answers are the typed
//! [`WorkerReport`]/[`WorkerInfo`] the server sends, not JSON picked apart by key.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use tessera_worker::{WorkerInfo, WorkerReport, WorkerSettings, WorkerState};

use crate::output;

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// List the node's background workers with their state, rate, queue and last error; or
    /// pause, resume or throttle one.
    Workers {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        action: Option<WorkerAction>,
    },
}

#[derive(Debug, Args)]
pub struct Target {
    /// The node to ask.
    #[arg(
        long,
        global = true,
        default_value = "http://127.0.0.11:7000",
        env = "TESSERA_NODE"
    )]
    node: String,
    /// Print the server's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
pub enum WorkerAction {
    /// List the workers (the default).
    List,
    /// Stop stepping a worker until it is resumed.
    Pause { name: String },
    /// Step a paused worker again.
    Resume { name: String },
    /// Change a worker's throttle.
    Set {
        name: String,
        /// Rest after each busy step, as a multiple of the step's time (0: none).
        #[arg(long)]
        tranquility: Option<u32>,
        /// Most units of work per second (0: unlimited).
        #[arg(long)]
        max_rate: Option<u64>,
    },
}

impl Target {
    /// The node's base URL, without a trailing slash.
    pub fn base(&self) -> &str {
        self.node.trim_end_matches('/')
    }

    /// Whether to print the server's JSON.
    pub fn json(&self) -> bool {
        self.json
    }
}

pub async fn run(command: NodeCommand) -> anyhow::Result<()> {
    match command {
        NodeCommand::Workers { target, action } => workers(&target, action).await,
    }
}

async fn workers(target: &Target, action: Option<WorkerAction>) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let base = target.node.trim_end_matches('/');
    let workers = format!("{base}/v1/node/workers");
    let changed: WorkerInfo = match action.unwrap_or(WorkerAction::List) {
        WorkerAction::List => {
            let response = client.get(&workers).send().await;
            let report: WorkerReport = answer(response, &workers).await?;
            let mut out = if target.json {
                serde_json::to_string_pretty(&report)? + "\n"
            } else {
                table(&report, base)?
            };
            return output::emit(&mut out);
        }
        WorkerAction::Pause { name } => {
            let url = format!("{workers}/{name}/pause");
            answer(client.post(&url).send().await, &url).await?
        }
        WorkerAction::Resume { name } => {
            let url = format!("{workers}/{name}/resume");
            answer(client.post(&url).send().await, &url).await?
        }
        WorkerAction::Set {
            name,
            tranquility,
            max_rate,
        } => {
            if tranquility.is_none() && max_rate.is_none() {
                bail!("give --tranquility or --max-rate (or both)");
            }
            let url = format!("{workers}/{name}");
            let settings = WorkerSettings {
                tranquility,
                max_rate,
            };
            answer(client.patch(&url).json(&settings).send().await, &url).await?
        }
    };
    let mut out = if target.json {
        serde_json::to_string_pretty(&changed)? + "\n"
    } else {
        format!(
            "{}: {}, tranquility {}, max rate {}\n",
            changed.name,
            shown_state(&changed),
            changed.tranquility,
            changed
                .max_rate
                .map_or_else(|| "unlimited".to_owned(), |rate| format!("{rate}/s")),
        )
    };
    output::emit(&mut out)
}

/// The typed answer of `url`, or one line saying why there is none.
pub(crate) async fn answer<T: serde::de::DeserializeOwned>(
    response: reqwest::Result<reqwest::Response>,
    url: &str,
) -> anyhow::Result<T> {
    let response = response.with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    if !status.is_success() {
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let message = body["error"]["message"]
            .as_str()
            .map_or_else(|| status.to_string(), str::to_owned);
        bail!("{url} answered {status}: {message}");
    }
    response
        .json()
        .await
        .with_context(|| format!("{url} answered something this command does not understand"))
}

/// The state, or the change an operator asked for that the worker has not reached yet (a
/// worker pauses after its current step).
fn shown_state(worker: &WorkerInfo) -> &'static str {
    match (worker.paused, worker.state) {
        (true, state) if state != WorkerState::Paused => "pausing",
        (false, WorkerState::Paused) => "resuming",
        (_, state) => state.name(),
    }
}

fn table(report: &WorkerReport, base: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    writeln!(out, "Workers of {} ({base})\n", report.node)?;
    writeln!(
        out,
        "{:<18} {:<8} {:<9} {:>9} {:>8} {:>7} {:>9}  PROGRESS / LAST ERROR",
        "NAME", "GROUP", "STATE", "UNITS", "RATE/s", "QUEUED", "THROTTLE"
    )?;
    for worker in &report.workers {
        let throttle = match (worker.tranquility, worker.max_rate) {
            (0, None) => "-".to_owned(),
            (t, None) => format!("t={t}"),
            (0, Some(rate)) => format!("{rate}/s"),
            (t, Some(rate)) => format!("t={t},{rate}/s"),
        };
        let note = match (&worker.last_error, worker.last_error_age_ms) {
            (Some(error), Some(age)) if worker.consecutive_errors > 0 || age < 60_000 => {
                format!("error {}s ago: {error}", age / 1000)
            }
            _ => worker.status.progress.clone().unwrap_or_default(),
        };
        writeln!(
            out,
            "{:<18} {:<8} {:<9} {:>9} {:>8.1} {:>7} {:>9}  {}",
            worker.name,
            serde_json::to_value(worker.group)?.as_str().unwrap_or("?"),
            shown_state(worker),
            worker.units,
            worker.rate,
            worker
                .status
                .queued
                .map_or_else(|| "-".to_owned(), |q| q.to_string()),
            throttle,
            note,
        )?;
    }
    for budget in &report.budgets {
        writeln!(
            out,
            "\nBackground tasks ({}): {} of {} running, holding {} of {} bytes; {} refused since start",
            budget.name, budget.tasks, budget.max_tasks, budget.bytes, budget.max_bytes, budget.refused
        )?;
    }
    Ok(out)
}
