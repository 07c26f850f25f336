//! `tessera cluster plan|commit|abort`: changing the cluster's layout, Riak-style.
//!
//! `plan` computes a change against the layout the node holds and stages it there, printing every
//! partition that changes owner, what would stream, and each node's partitions before and after;
//! `commit` applies the staged plan as the next epoch (refused, naming the epoch, if another
//! change got there first); `abort` discards it. Plan and commit on the same node.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tessera_layout::{Change, PlanSummary};

use crate::output;

#[derive(Debug, Args)]
pub struct Target {
    /// The node to plan and commit on.
    #[arg(
        long = "node",
        id = "endpoint",
        global = true,
        default_value = "http://127.0.0.11:7000",
        env = "TESSERA_NODE"
    )]
    endpoint: String,
    /// Print the server's JSON.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
pub enum PlanChange {
    /// A new node takes its share of partitions (start it with --seed first).
    Add { node: String },
    /// A node hands its partitions to the others, then leaves. With --dead, for a node that is
    /// down for good: its partitions are copied again from the surviving replicas.
    Remove {
        node: String,
        #[arg(long)]
        dead: bool,
    },
    /// A new node takes exactly the old one's partitions (--dead if the old one is down for good).
    Replace {
        old: String,
        new: String,
        #[arg(long)]
        dead: bool,
    },
}

impl PlanChange {
    fn change(self) -> Change {
        match self {
            PlanChange::Add { node } => Change::Add { node },
            PlanChange::Remove { node, dead: false } => Change::Remove { node },
            PlanChange::Remove { node, dead: true } => Change::RemoveDead { node },
            PlanChange::Replace { old, new, dead } => Change::Replace { old, new, dead },
        }
    }
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()?)
}

/// The typed answer of `url`, or one line saying why there is none.
async fn answer<T: DeserializeOwned>(
    response: reqwest::Result<reqwest::Response>,
    url: &str,
) -> anyhow::Result<T> {
    let response = response.with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    if !status.is_success() {
        let body: Value = response.json().await.unwrap_or_default();
        let message = body["error"]["message"]
            .as_str()
            .map_or_else(|| status.to_string(), str::to_owned);
        bail!("{message} ({status})");
    }
    response
        .json()
        .await
        .with_context(|| format!("{url} answered something unexpected"))
}

/// `tessera cluster plan ...`.
pub async fn plan(target: &Target, change: PlanChange) -> anyhow::Result<()> {
    let base = target.endpoint.trim_end_matches('/');
    let url = format!("{base}/v1/cluster/plan");
    let summary: PlanSummary = answer(
        client()?.post(&url).json(&change.change()).send().await,
        &url,
    )
    .await?;
    let mut out = if target.json {
        serde_json::to_string_pretty(&summary)? + "\n"
    } else {
        describe(&summary, base)?
    };
    output::emit(&mut out)
}

fn describe(summary: &PlanSummary, base: &str) -> anyhow::Result<String> {
    let plan = &summary.plan;
    let mut out = String::new();
    writeln!(
        out,
        "Plan at epoch {} -> {}: {}",
        plan.base_epoch,
        plan.next.epoch(),
        plan.change
    )?;
    writeln!(
        out,
        "  {} partitions change owner; {} replica copies to stream, about {} keys and {} bytes\n",
        plan.moves.len(),
        summary.replica_moves,
        summary.estimated_keys,
        summary.estimated_bytes
    )?;
    writeln!(out, "  {:<16} {:>7} {:>7}", "NODE", "BEFORE", "AFTER")?;
    for load in &plan.balance {
        writeln!(
            out,
            "  {:<16} {:>7} {:>7}",
            load.node, load.before, load.after
        )?;
    }
    if !plan.moves.is_empty() {
        writeln!(out, "\n  {:<10} {:<16} {:<16}", "PARTITION", "FROM", "TO")?;
        for moved in &plan.moves {
            writeln!(
                out,
                "  {:<10} {:<16} {:<16}",
                moved.partition, moved.from, moved.to
            )?;
        }
    }
    writeln!(
        out,
        "\nStaged on {base}: `tessera cluster commit` applies it, `tessera cluster abort` drops it."
    )?;
    Ok(out)
}

/// `tessera cluster commit`.
pub async fn commit(target: &Target, epoch: Option<u64>) -> anyhow::Result<()> {
    let base = target.endpoint.trim_end_matches('/');
    let url = format!("{base}/v1/cluster/commit");
    let body = epoch.map_or_else(|| json!({}), |epoch| json!({ "epoch": epoch }));
    let committed: Value = answer(client()?.post(&url).json(&body).send().await, &url).await?;
    let mut out = if target.json {
        serde_json::to_string_pretty(&committed)? + "\n"
    } else {
        format!(
            "Committed epoch {}: the ring is {}.{}\n",
            committed["epoch"],
            committed["nodes"],
            if committed["moving"] == true {
                " Data is moving to it: `tessera cluster watch` follows the transfers."
            } else {
                ""
            }
        )
    };
    output::emit(&mut out)
}

/// `tessera cluster abort`.
pub async fn abort(target: &Target) -> anyhow::Result<()> {
    let base = target.endpoint.trim_end_matches('/');
    let url = format!("{base}/v1/cluster/abort");
    let aborted: Value = answer(client()?.post(&url).send().await, &url).await?;
    let mut out = if target.json {
        serde_json::to_string_pretty(&aborted)? + "\n"
    } else {
        match aborted["aborted"].as_str() {
            Some(change) => format!("Dropped the staged plan ({change}).\n"),
            None => "Nothing was staged.\n".to_owned(),
        }
    };
    output::emit(&mut out)
}
