//! `tessera cluster ...`: operator commands that talk to a running cluster over its HTTP API.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::{layout_cmd, output};
use clap::Subcommand;
use serde_json::Value;

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// List the members as one node sees them (SWIM state, incarnation, phi), then what every
    /// member can reach.
    Status {
        /// Any node of the cluster.
        #[arg(long, default_value = "http://127.0.0.11:7000", env = "TESSERA_NODE")]
        node: String,
    },
    /// Show a layout change live across the cluster: the epoch and step, partitions per node
    /// before and after, and a progress bar per transfer on every member (plain lines when stdout
    /// is not a terminal), until the epoch is fully applied.
    Watch {
        /// Any node of the cluster (it names the others).
        #[arg(long, default_value = "http://127.0.0.11:7000", env = "TESSERA_NODE")]
        node: String,
        /// Seconds between two looks.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
        /// Keep watching once the epoch is applied and no transfer is pending.
        #[arg(long)]
        follow: bool,
        /// Print the ring's state and every member's transfer report as JSON once, and exit.
        #[arg(long)]
        json: bool,
    },
    /// Plan a layout change and stage it on the node: print what moves, and the balance.
    Plan {
        #[command(flatten)]
        target: layout_cmd::Target,
        #[command(subcommand)]
        change: layout_cmd::PlanChange,
    },
    /// Apply the plan staged on the node as the next epoch.
    Commit {
        #[command(flatten)]
        target: layout_cmd::Target,
        /// Commit only if the plan was made at this epoch.
        #[arg(long)]
        epoch: Option<u64>,
    },
    /// Drop the plan staged on the node.
    Abort {
        #[command(flatten)]
        target: layout_cmd::Target,
    },
}

pub async fn run(command: ClusterCommand) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Status { node } => status(&node).await,
        ClusterCommand::Watch {
            node,
            interval,
            follow,
            json,
        } => {
            if !(interval.is_finite() && interval > 0.0) {
                bail!("--interval must be a positive number of seconds, not {interval}");
            }
            crate::watch::run(crate::watch::WatchOptions {
                node,
                interval: Duration::from_secs_f64(interval),
                follow,
                json,
            })
            .await
        }
        ClusterCommand::Plan { target, change } => layout_cmd::plan(&target, change).await,
        ClusterCommand::Commit { target, epoch } => layout_cmd::commit(&target, epoch).await,
        ClusterCommand::Abort { target } => layout_cmd::abort(&target).await,
    }
}

async fn status(node: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()?;
    let view = fetch(&client, node)
        .await
        .with_context(|| format!("cannot ask {node} for the cluster"))?;
    let members = view["members"].as_array().cloned().unwrap_or_default();
    // Each piece is written whole once it is known; the rows wait on other nodes' answers.
    let mut out = String::new();
    writeln!(
        out,
        "Cluster as seen from {} ({node}): {} members, ring epoch {} ({}), membership {}\n",
        view["node"].as_str().unwrap_or("?"),
        members.len(),
        view["ring_epoch"],
        view["ring"].as_str().unwrap_or("?"),
        view["membership"].as_str().unwrap_or("?"),
    )?;
    writeln!(
        out,
        "{:<10} {:<22} {:<8} {:<8} {:>11} {:>6} {:<10} {:>10}",
        "ID", "ADDRESS", "STATE", "STATUS", "INCARNATION", "PHI", "REACHABLE", "PARTITIONS"
    )?;
    for member in &members {
        let phi = member["phi"]
            .as_f64()
            .map_or_else(|| "-".to_owned(), |phi| format!("{phi:.2}"));
        writeln!(
            out,
            "{:<10} {:<22} {:<8} {:<8} {:>11} {:>6} {:<10} {:>10}",
            text(&member["id"]),
            text(&member["address"]),
            text(&member["state"]),
            text(&member["status"]),
            text(&member["incarnation"]),
            phi,
            if member["reachable"].as_bool() == Some(true) {
                "yes"
            } else {
                "no"
            },
            member["partitions"],
        )?;
    }

    // What each member can reach: one row per member asked.
    let ids: Vec<String> = members.iter().map(|m| text(&m["id"])).collect();
    writeln!(out, "\nWhat each node can reach (row: the node asked):")?;
    write!(out, "{:<10}", "")?;
    for id in &ids {
        write!(out, " {id:<8}")?;
    }
    writeln!(out)?;
    output::emit(&mut out)?;
    let mut unreachable = 0;
    for member in &members {
        let id = text(&member["id"]);
        write!(out, "{id:<10}")?;
        match fetch(&client, &format!("http://{}", text(&member["address"]))).await {
            Ok(seen) => {
                let seen = seen["members"].as_array().cloned().unwrap_or_default();
                for target in &ids {
                    let mark = seen
                        .iter()
                        .find(|m| text(&m["id"]) == *target)
                        .map(|m| {
                            if m["reachable"].as_bool() == Some(true) {
                                "ok"
                            } else {
                                "--"
                            }
                        })
                        .unwrap_or("?");
                    write!(out, " {mark:<8}")?;
                }
                writeln!(out)?;
            }
            Err(err) => {
                unreachable += 1;
                writeln!(out, " (cannot ask it: {err:#})")?;
            }
        }
        output::emit(&mut out)?;
    }
    if unreachable > 0 {
        bail!("{unreachable} of {} members did not answer", members.len());
    }
    Ok(())
}

async fn fetch(client: &reqwest::Client, base: &str) -> anyhow::Result<Value> {
    let url = format!("{}/v1/cluster", base.trim_end_matches('/'));
    let response = client.get(&url).send().await?;
    if !response.status().is_success() {
        bail!("{url} answered {}", response.status());
    }
    Ok(response.json().await?)
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| value.to_string())
}
