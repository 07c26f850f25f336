//! `tessera cluster watch`: a layout change, live, across the whole cluster.
//!
//! Every `--interval` it asks the node it was given for the ring (`GET /v1/cluster/ring`: epoch,
//! step, owners before and after) and the members (`GET /v1/cluster`), then asks every member for
//! the partitions it is pulling (`GET /v1/cluster/transfers`, the typed [`TransfersReport`]):
//! - at a terminal, a header with the epoch, the step of the move and each node's partitions
//!   before -> after, then one progress bar per transfer (table/partition, from -> to, bytes of the
//!   estimated total, keys, rate, ETA);
//! - otherwise (a pipe, a log file), plain lines: the header when it changes, one line when a
//!   transfer changes state, and one per running transfer every ten looks.
//!
//! It stops once the epoch is fully applied (the ring no longer moves) and no member has a
//! transfer pending, after showing the last state; or never with `--follow`. A member that does
//! not answer is named in the header and looked at again next time.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::time::Duration;

use anyhow::{bail, Context as _};
use indicatif::{
    HumanBytes, HumanDuration, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle,
};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tessera_cluster::transfer::{TransferState, TransferStatus, TransfersReport};

use crate::output;

/// How `watch` was asked to run.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    pub node: String,
    pub interval: Duration,
    pub follow: bool,
    pub json: bool,
}

/// Failed looks in a row before giving up (without `--follow`).
const MAX_FAILURES: u32 = 5;

/// A transfer's identity across the cluster: (receiver, epoch, table, partition).
type Key = (String, u64, u32, u16);

fn key_of(t: &TransferStatus) -> Key {
    (t.to.clone(), t.epoch, t.table, t.partition)
}

/// One look at the cluster.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The epoch of the ring the asked node holds.
    pub epoch: u64,
    /// Whether that epoch's move is still under way.
    pub moving: bool,
    /// Its step: `ack`, `sync`, `read`, or `stable`.
    pub step: String,
    /// Partitions per node: (before the move, after it). Equal when nothing moves.
    pub partitions: BTreeMap<String, (usize, usize)>,
    /// Every answering member's transfers.
    pub reports: Vec<TransfersReport>,
    /// Members that did not answer, with why.
    pub unanswered: Vec<(String, String)>,
}

impl Snapshot {
    fn pending(&self) -> u32 {
        self.reports.iter().map(|r| r.pending).sum()
    }

    fn running(&self) -> u32 {
        self.reports.iter().map(|r| r.running).sum()
    }

    fn transfers(&self) -> impl Iterator<Item = &TransferStatus> {
        self.reports.iter().flat_map(|r| r.transfers.iter())
    }

    /// Transfers of the epoch being applied that are done.
    fn done_this_epoch(&self) -> usize {
        self.transfers()
            .filter(|t| t.epoch == self.epoch && !t.state.is_pending())
            .count()
    }

    /// Whether `t` belongs on screen when first seen: pending, or part of the move under way
    /// (a transfer can finish between two looks); an earlier epoch's finished ones are not news.
    fn is_news(&self, t: &TransferStatus) -> bool {
        t.state.is_pending() || (self.moving && t.epoch == self.epoch)
    }

    /// The epoch is fully applied and nothing is left to pull anywhere.
    fn settled(&self) -> bool {
        !self.moving && self.pending() == 0 && self.unanswered.is_empty()
    }
}

pub async fn run(options: WatchOptions) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let base = options.node.trim_end_matches('/').to_owned();
    if options.json {
        let snapshot = look(&client, &base).await?;
        let reports: BTreeMap<&str, &TransfersReport> = snapshot
            .reports
            .iter()
            .map(|r| (r.node.as_str(), r))
            .collect();
        let json = serde_json::json!({
            "epoch": snapshot.epoch,
            "moving": snapshot.moving,
            "step": snapshot.step,
            "partitions": snapshot.partitions.iter()
                .map(|(node, (before, after))| (node.clone(), serde_json::json!({"before": before, "after": after})))
                .collect::<BTreeMap<_, _>>(),
            "transfers": reports,
            "unanswered": snapshot.unanswered.iter().map(|(node, why)| (node.clone(), why.clone())).collect::<BTreeMap<_, _>>(),
        });
        return output::emit(&mut (serde_json::to_string_pretty(&json)? + "\n"));
    }
    let mut view: Box<dyn View> = if std::io::stdout().is_terminal() {
        Box::new(Bars::new())
    } else {
        Box::new(Lines::default())
    };
    let mut failures = 0;
    let mut looks = 0u64;
    loop {
        match look(&client, &base).await {
            Ok(snapshot) => {
                failures = 0;
                view.show(&snapshot, looks)?;
                looks += 1;
                if snapshot.settled() && !options.follow {
                    view.finish(&snapshot)?;
                    return Ok(());
                }
            }
            Err(error) if looks == 0 => return Err(error),
            Err(error) => {
                failures += 1;
                view.note(&format!("cannot ask {}: {error:#}", options.node))?;
                if failures >= MAX_FAILURES && !options.follow {
                    bail!("{} did not answer {failures} times in a row", options.node);
                }
            }
        }
        tokio::time::sleep(options.interval).await;
    }
}

/// Asks `base` for the ring and the members, then every member for its transfers (together).
async fn look(client: &reqwest::Client, base: &str) -> anyhow::Result<Snapshot> {
    let ring: Value = fetch(client, &format!("{base}/v1/cluster/ring")).await?;
    let members: Value = fetch(client, &format!("{base}/v1/cluster")).await?;
    let mut snapshot = Snapshot {
        epoch: ring["epoch"].as_u64().unwrap_or(0),
        moving: ring["moving"].as_bool().unwrap_or(false),
        step: ring["step"].as_str().unwrap_or("stable").to_owned(),
        partitions: partitions_per_node(&ring),
        ..Snapshot::default()
    };
    let addresses: Vec<(String, String)> = members["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["state"] != "dead" && m["state"] != "left")
        .filter_map(|m| {
            let id = m["id"].as_str()?.to_owned();
            let address = m["address"].as_str()?.to_owned();
            Some((id, address))
        })
        .collect();
    let scheme = if base.starts_with("https://") {
        "https"
    } else {
        "http"
    };
    let asks = addresses.into_iter().map(|(id, address)| {
        let client = client.clone();
        let url = format!("{scheme}://{address}/v1/cluster/transfers");
        async move {
            let answer = fetch::<TransfersReport>(&client, &url).await;
            (id, answer)
        }
    });
    let handles: Vec<_> = asks.map(tokio::spawn).collect();
    for handle in handles {
        match handle.await {
            Ok((_, Ok(report))) => snapshot.reports.push(report),
            Ok((id, Err(error))) => snapshot.unanswered.push((id, format!("{error:#}"))),
            Err(error) => bail!("asking a member failed: {error}"),
        }
    }
    snapshot.reports.sort_by(|a, b| a.node.cmp(&b.node));
    Ok(snapshot)
}

/// Partitions per node before and after the move, from the ring's owners (and previous owners
/// while it moves).
fn partitions_per_node(ring: &Value) -> BTreeMap<String, (usize, usize)> {
    let count = |owners: &Value| {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for owner in owners.as_array().into_iter().flatten() {
            if let Some(owner) = owner.as_str() {
                *counts.entry(owner.to_owned()).or_default() += 1;
            }
        }
        counts
    };
    let after = count(&ring["owners"]);
    let before = if ring["previous_owners"].is_array() {
        count(&ring["previous_owners"])
    } else {
        after.clone()
    };
    let mut both: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (node, n) in &before {
        both.entry(node.clone()).or_default().0 = *n;
    }
    for (node, n) in &after {
        both.entry(node.clone()).or_default().1 = *n;
    }
    both
}

async fn fetch<T: DeserializeOwned>(client: &reqwest::Client, url: &str) -> anyhow::Result<T> {
    let response = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        bail!("{url} answered {status}: {body}");
    }
    response
        .json()
        .await
        .with_context(|| format!("{url} did not answer as expected"))
}

/// How a report is shown.
trait View {
    fn show(&mut self, snapshot: &Snapshot, look: u64) -> anyhow::Result<()>;
    fn note(&mut self, line: &str) -> anyhow::Result<()>;
    fn finish(&mut self, snapshot: &Snapshot) -> anyhow::Result<()>;
}

/// The cluster's state, in a few lines: the epoch and step, partitions per node before -> after,
/// the transfer totals, and who did not answer.
fn headline(snapshot: &Snapshot) -> String {
    let state = if snapshot.moving {
        format!("moving (step: {})", snapshot.step)
    } else {
        "applied".to_owned()
    };
    let partitions: Vec<String> = snapshot
        .partitions
        .iter()
        .map(|(node, (before, after))| {
            if before == after {
                format!("{node} {after}")
            } else {
                format!("{node} {before}->{after}")
            }
        })
        .collect();
    let done = snapshot.done_this_epoch();
    let throttles: Vec<String> = snapshot
        .reports
        .iter()
        .filter(|r| r.pending > 0)
        .map(|r| {
            let throttle = r.max_bytes_per_second.map_or_else(
                || "unthrottled".to_owned(),
                |rate| format!("{}/s", HumanBytes(rate)),
            );
            format!(
                "{} at most {} at once, {throttle}",
                r.node, r.max_concurrent
            )
        })
        .collect();
    let mut text = format!(
        "epoch {} {state}; partitions {}\ntransfers: {} running, {} pending, {} done in this epoch",
        snapshot.epoch,
        partitions.join(", "),
        snapshot.running(),
        snapshot.pending(),
        done,
    );
    if !throttles.is_empty() {
        text.push_str(&format!(" ({})", throttles.join("; ")));
    }
    for (node, why) in &snapshot.unanswered {
        text.push_str(&format!("\n{node} did not answer: {why}"));
    }
    text
}

/// `table/partition from -> to`.
fn label(t: &TransferStatus) -> String {
    let table = t
        .table_name
        .clone()
        .unwrap_or_else(|| format!("table {}", t.table));
    format!("{table}/{} {} -> {}", t.partition, t.from, t.to)
}

/// Keys, rate, ETA or what it waits on.
fn detail(t: &TransferStatus) -> String {
    let keys = match t.keys_estimated {
        Some(total) => format!("{}/{} keys", t.keys_done, total.max(t.keys_done)),
        None => format!("{} keys", t.keys_done),
    };
    match t.state {
        TransferState::Running => {
            let eta = t
                .eta_seconds
                .map(|s| {
                    format!(
                        ", ETA {}",
                        HumanDuration(Duration::from_secs_f64(s.max(0.0)))
                    )
                })
                .unwrap_or_default();
            format!("{keys}, {}/s{eta}", HumanBytes(t.bytes_per_second as u64))
        }
        TransferState::Backoff => format!(
            "{keys}, retrying in {:.1}s: {}",
            t.retry_in_ms.unwrap_or(0) as f64 / 1000.0,
            t.last_error.as_deref().unwrap_or("a source failed")
        ),
        TransferState::Queued => format!("{keys}, queued"),
        TransferState::Done => format!("{keys}, done"),
    }
}

fn percent(t: &TransferStatus) -> Option<f64> {
    if t.state == TransferState::Done {
        return Some(100.0);
    }
    let total = t.bytes_estimated.filter(|b| *b > 0)?;
    Some((t.bytes_done as f64 / total as f64 * 100.0).min(100.0))
}

/// One progress bar per transfer, at a terminal.
struct Bars {
    multi: MultiProgress,
    header: ProgressBar,
    bars: BTreeMap<Key, ProgressBar>,
    style: ProgressStyle,
}

impl Bars {
    fn new() -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
        let header = multi.add(ProgressBar::new_spinner());
        header.set_style(
            ProgressStyle::with_template("{msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        let style = ProgressStyle::with_template(
            "{prefix:<28} [{bar:30.cyan/blue}] {bytes:>10}/{total_bytes:<10} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        Self {
            multi,
            header,
            bars: BTreeMap::new(),
            style,
        }
    }
}

impl View for Bars {
    fn show(&mut self, snapshot: &Snapshot, _look: u64) -> anyhow::Result<()> {
        self.header.set_message(headline(snapshot));
        for transfer in snapshot.transfers() {
            let key = key_of(transfer);
            if !snapshot.is_news(transfer) && !self.bars.contains_key(&key) {
                continue;
            }
            let bar = self.bars.entry(key).or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::new(0));
                bar.set_style(self.style.clone());
                bar.set_prefix(label(transfer));
                bar
            });
            let total = transfer
                .bytes_estimated
                .unwrap_or(0)
                .max(transfer.bytes_done);
            bar.set_length(total);
            bar.set_position(transfer.bytes_done);
            bar.set_prefix(label(transfer));
            bar.set_message(detail(transfer));
            if transfer.state == TransferState::Done && !bar.is_finished() {
                bar.set_length(transfer.bytes_done);
                bar.finish_with_message(detail(transfer));
            }
        }
        Ok(())
    }

    fn note(&mut self, line: &str) -> anyhow::Result<()> {
        self.multi.println(line)?;
        Ok(())
    }

    fn finish(&mut self, snapshot: &Snapshot) -> anyhow::Result<()> {
        self.header.finish_with_message(headline(snapshot));
        for bar in self.bars.values() {
            if !bar.is_finished() {
                bar.finish();
            }
        }
        if self.bars.is_empty() {
            self.multi.println("no transfers pending")?;
        }
        Ok(())
    }
}

/// Plain lines, when stdout is not a terminal.
#[derive(Default)]
struct Lines {
    states: BTreeMap<Key, TransferState>,
    /// The header last printed: printed again only when it changes.
    header: String,
}

/// Every this many looks, a line per running transfer even if its state did not change.
const LINE_EVERY: u64 = 10;

fn line(t: &TransferStatus) -> String {
    let share = percent(t).map(|p| format!(" {p:.0}%")).unwrap_or_default();
    let bytes = match t.bytes_estimated {
        Some(total) => format!(
            "{}/{}",
            HumanBytes(t.bytes_done),
            HumanBytes(total.max(t.bytes_done))
        ),
        None => format!("{}", HumanBytes(t.bytes_done)),
    };
    format!(
        "epoch {} {} {}{share} {bytes} {}\n",
        t.epoch,
        label(t),
        t.state,
        detail(t)
    )
}

impl View for Lines {
    fn show(&mut self, snapshot: &Snapshot, look: u64) -> anyhow::Result<()> {
        let mut out = String::new();
        let header = headline(snapshot);
        if header != self.header {
            out.push_str(&header);
            out.push('\n');
            self.header = header;
        }
        for transfer in snapshot.transfers() {
            let key = key_of(transfer);
            let before = self.states.insert(key, transfer.state);
            let changed = before != Some(transfer.state);
            let news = match before {
                None => snapshot.is_news(transfer),
                Some(_) => changed,
            };
            let periodic =
                transfer.state == TransferState::Running && look.is_multiple_of(LINE_EVERY);
            if news || periodic {
                out.push_str(&line(transfer));
            }
        }
        output::emit(&mut out)
    }

    fn note(&mut self, line: &str) -> anyhow::Result<()> {
        output::emit(&mut format!("{line}\n"))
    }

    fn finish(&mut self, snapshot: &Snapshot) -> anyhow::Result<()> {
        let header = headline(snapshot);
        if header == self.header {
            return Ok(());
        }
        output::emit(&mut format!("{header}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: TransferState) -> TransferStatus {
        TransferStatus {
            epoch: 3,
            table: 42,
            table_name: Some("demo".into()),
            partition: 17,
            from: "n2".into(),
            to: "n4".into(),
            state,
            keys_done: 500,
            bytes_done: 50 << 10,
            keys_estimated: Some(2000),
            bytes_estimated: Some(200 << 10),
            bytes_per_second: (10 << 10) as f64,
            eta_seconds: Some(15.0),
            chunks: 2,
            resent_chunks: 0,
            last_error: Some("source n2 failed: unreachable".into()),
            retry_in_ms: Some(1500),
            sources: Vec::new(),
        }
    }

    #[test]
    fn lines_say_where_each_transfer_is() {
        let running = line(&status(TransferState::Running));
        assert!(
            running.starts_with("epoch 3 demo/17 n2 -> n4 running 25%"),
            "{running}"
        );
        assert!(running.contains("500/2000 keys"), "{running}");
        assert!(running.contains("ETA"), "{running}");
        let backoff = line(&status(TransferState::Backoff));
        assert!(
            backoff.contains("retrying in 1.5s: source n2 failed"),
            "{backoff}"
        );
        let done = line(&status(TransferState::Done));
        assert!(done.contains("100%") && done.contains("done"), "{done}");
        let mut unnamed = status(TransferState::Queued);
        unnamed.table_name = None;
        unnamed.bytes_estimated = None;
        assert!(line(&unnamed).contains("table 42/17"), "{}", line(&unnamed));
    }

    #[test]
    fn the_headline_shows_the_move_and_counts_transfers() {
        let report = TransfersReport {
            node: "n4".into(),
            max_concurrent: 2,
            max_bytes_per_second: Some(50 << 20),
            running: 1,
            pending: 1,
            transfers: vec![status(TransferState::Running), status(TransferState::Done)],
        };
        let ring = serde_json::json!({
            "epoch": 4, "moving": true, "step": "sync",
            "owners": ["n1", "n2", "n3", "n4"],
            "previous_owners": ["n1", "n2", "n3", "n3"],
        });
        let snapshot = Snapshot {
            epoch: 4,
            moving: true,
            step: "sync".into(),
            partitions: partitions_per_node(&ring),
            reports: vec![report],
            unanswered: vec![("n2".into(), "cannot reach".into())],
        };
        assert!(!snapshot.settled());
        assert_eq!(
            headline(&snapshot),
            "epoch 4 moving (step: sync); partitions n1 1, n2 1, n3 2->1, n4 0->1\n\
             transfers: 1 running, 1 pending, 0 done in this epoch (n4 at most 2 at once, 50.00 MiB/s)\n\
             n2 did not answer: cannot reach"
        );
        let this_epoch = Snapshot {
            epoch: 3,
            ..snapshot
        };
        assert_eq!(this_epoch.done_this_epoch(), 1);
        assert!(this_epoch.is_news(&status(TransferState::Done)));
        let settled = Snapshot {
            partitions: partitions_per_node(&serde_json::json!({"owners": ["n1", "n2"]})),
            ..Snapshot::default()
        };
        assert!(settled.settled());
        assert_eq!(
            headline(&settled),
            "epoch 0 applied; partitions n1 1, n2 1\ntransfers: 0 running, 0 pending, 0 done in this epoch"
        );
    }
}
