//! `tessera repair ...`: anti-entropy on one node, over its HTTP API (`/v1/node/repair`).
//!
//! `tessera repair status` shows, per table, the partitions in sync with every replica, the age
//! of the last full sweep and of the partition least recently synced, and the node's totals;
//! `tessera repair now [--table T]` starts a sweep at once.

use std::fmt::Write as _;
use std::time::Duration;

use clap::Subcommand;
use serde_json::Value;

use crate::node_cmd::{answer, Target};
use crate::output;

#[derive(Debug, Subcommand)]
pub enum RepairCommand {
    /// Per table: partitions in sync, age of the last full sweep, keys repaired, tombstones
    /// purged.
    Status {
        #[command(flatten)]
        target: Target,
    },
    /// Start a sweep now (of one table, or all), instead of waiting for the next one.
    Now {
        #[command(flatten)]
        target: Target,
        /// Sweep only this table.
        #[arg(long)]
        table: Option<String>,
    },
}

pub async fn run(command: RepairCommand) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    match command {
        RepairCommand::Status { target } => {
            let url = format!("{}/v1/node/repair", target.base());
            let status: Value = answer(client.get(&url).send().await, &url).await?;
            let mut out = if target.json() {
                serde_json::to_string_pretty(&status)? + "\n"
            } else {
                render(&status)?
            };
            output::emit(&mut out)
        }
        RepairCommand::Now { target, table } => {
            let mut url = format!("{}/v1/node/repair", target.base());
            if let Some(table) = &table {
                write!(url, "?table={}", encode_query(table))?;
            }
            let started: Value = answer(client.post(&url).send().await, &url).await?;
            let mut out = if target.json() {
                serde_json::to_string_pretty(&started)? + "\n"
            } else {
                format!(
                    "{}: sweep of {} started; follow it with `tessera repair status`\n",
                    started["node"].as_str().unwrap_or("?"),
                    table.as_deref().unwrap_or("every table")
                )
            };
            output::emit(&mut out)
        }
    }
}

/// `text` with everything but unreserved characters percent-encoded, for a query value.
fn encode_query(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            // Writing into a String cannot fail.
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// An age in ms as a short human string.
fn age(ms: &Value) -> String {
    match ms.as_u64() {
        None => "never".to_owned(),
        Some(ms) if ms < 1000 => format!("{ms}ms ago"),
        Some(ms) if ms < 120_000 => format!("{}s ago", ms / 1000),
        Some(ms) if ms < 7_200_000 => format!("{}m ago", ms / 60_000),
        Some(ms) => format!("{}h ago", ms / 3_600_000),
    }
}

fn render(status: &Value) -> anyhow::Result<String> {
    let mut out = String::new();
    let n = |key: &str| status[key].as_u64().unwrap_or(0);
    writeln!(
        out,
        "node {}: anti-entropy {}{}, a sweep every {}s, at most {} keys/s",
        status["node"].as_str().unwrap_or("?"),
        if status["enabled"].as_bool() == Some(true) {
            "enabled"
        } else {
            "disabled"
        },
        if status["sweeping"].as_bool() == Some(true) {
            format!(
                " (sweeping: {}/{} partitions)",
                status["sweep"]["done"], status["sweep"]["total"]
            )
        } else {
            String::new()
        },
        n("sweep_interval_secs"),
        n("max_keys_per_s"),
    )?;
    writeln!(
        out,
        "{:<24} {:>10} {:>8} {:>16} {:>16}",
        "TABLE", "PARTITIONS", "IN SYNC", "LAST FULL SWEEP", "OLDEST UNSYNCED"
    )?;
    for table in status["tables"].as_array().into_iter().flatten() {
        let name = table["table"]
            .as_str()
            .map_or_else(|| format!("#{}", table["id"]), str::to_owned);
        writeln!(
            out,
            "{:<24} {:>10} {:>8} {:>16} {:>16}",
            name,
            table["partitions"],
            table["in_sync"],
            age(&table["last_full_sweep_age_ms"]),
            age(&table["oldest_unsynced_age_ms"]),
        )?;
    }
    writeln!(
        out,
        "sweeps {}, exchanges {} ({} in sync, {} failed), keys pulled {}, pushed {}, repaired {}, tombstones purged {}, {} bytes",
        n("sweeps"),
        n("exchanges"),
        n("exchanges_in_sync"),
        n("exchanges_failed"),
        n("keys_pulled"),
        n("keys_pushed"),
        n("keys_repaired"),
        n("tombstones_purged"),
        n("bytes"),
    )?;
    if let Some(error) = status["last_error"].as_str() {
        writeln!(out, "last error: {error}")?;
    }
    Ok(out)
}
