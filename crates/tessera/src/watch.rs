//! `tessera cluster watch`: the partitions a node is pulling, live.
//!
//! It reads `GET /v1/cluster/transfers` (the typed [`TransfersReport`]) every `--interval`:
//! - at a terminal, one progress bar per transfer (table/partition, from -> to, bytes of the
//!   estimated total, keys, rate, ETA), under a line with the node's totals;
//! - otherwise (a pipe, a log file), plain lines: one when a transfer changes state, and one per
//!   running transfer every ten looks.
//!
//! It stops once no transfer is pending (after showing the last state), or never with
//! `--follow`.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::time::Duration;

use anyhow::{bail, Context as _};
use indicatif::{
    HumanBytes, HumanDuration, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle,
};
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

/// A transfer's identity in the report.
type Key = (u64, u32, u16);

fn key_of(t: &TransferStatus) -> Key {
    (t.epoch, t.table, t.partition)
}

pub async fn run(options: WatchOptions) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let url = format!(
        "{}/v1/cluster/transfers",
        options.node.trim_end_matches('/')
    );
    if options.json {
        let report = fetch(&client, &url).await?;
        return output::emit(&mut (serde_json::to_string_pretty(&report)? + "\n"));
    }
    let mut view: Box<dyn View> = if std::io::stdout().is_terminal() {
        Box::new(Bars::new())
    } else {
        Box::new(Lines::default())
    };
    let mut failures = 0;
    let mut looks = 0u64;
    loop {
        match fetch(&client, &url).await {
            Ok(report) => {
                failures = 0;
                view.show(&report, looks)?;
                looks += 1;
                if report.pending == 0 && !options.follow {
                    view.finish(&report)?;
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

async fn fetch(client: &reqwest::Client, url: &str) -> anyhow::Result<TransfersReport> {
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
        .with_context(|| format!("{url} did not answer with a transfer report"))
}

/// How a report is shown.
trait View {
    fn show(&mut self, report: &TransfersReport, look: u64) -> anyhow::Result<()>;
    fn note(&mut self, line: &str) -> anyhow::Result<()>;
    fn finish(&mut self, report: &TransfersReport) -> anyhow::Result<()>;
}

/// The node's totals, in one line.
fn headline(report: &TransfersReport) -> String {
    let throttle = report.max_bytes_per_second.map_or_else(
        || "unthrottled".to_owned(),
        |rate| format!("{}/s", HumanBytes(rate)),
    );
    let done = report.transfers.len() as u32 - report.pending;
    format!(
        "{}: {} running, {} pending, {} done (at most {} at once, {throttle})",
        report.node, report.running, report.pending, done, report.max_concurrent
    )
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
    fn show(&mut self, report: &TransfersReport, _look: u64) -> anyhow::Result<()> {
        self.header.set_message(headline(report));
        for transfer in &report.transfers {
            let key = key_of(transfer);
            // Done transfers get a bar only if they were seen running: an old epoch's finished
            // transfers are not news.
            if !transfer.state.is_pending() && !self.bars.contains_key(&key) {
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

    fn finish(&mut self, report: &TransfersReport) -> anyhow::Result<()> {
        self.header.finish_with_message(headline(report));
        for bar in self.bars.values() {
            if !bar.is_finished() {
                bar.finish();
            }
        }
        if self.bars.is_empty() {
            self.multi
                .println(format!("{}: no transfers pending", report.node))?;
        }
        Ok(())
    }
}

/// Plain lines, when stdout is not a terminal.
#[derive(Default)]
struct Lines {
    states: BTreeMap<Key, TransferState>,
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
    fn show(&mut self, report: &TransfersReport, look: u64) -> anyhow::Result<()> {
        let mut out = String::new();
        if look == 0 {
            out.push_str(&headline(report));
            out.push('\n');
        }
        for transfer in &report.transfers {
            let key = key_of(transfer);
            let before = self.states.insert(key, transfer.state);
            let changed = before != Some(transfer.state);
            let news = match before {
                // First seen: pending ones are news, done ones from earlier are not.
                None => transfer.state.is_pending(),
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

    fn finish(&mut self, report: &TransfersReport) -> anyhow::Result<()> {
        output::emit(&mut format!("{}\n", headline(report)))
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
    fn the_headline_counts_done_transfers() {
        let report = TransfersReport {
            node: "n4".into(),
            max_concurrent: 2,
            max_bytes_per_second: Some(50 << 20),
            running: 1,
            pending: 1,
            transfers: vec![status(TransferState::Running), status(TransferState::Done)],
        };
        let text = headline(&report);
        assert_eq!(
            text,
            "n4: 1 running, 1 pending, 1 done (at most 2 at once, 50.00 MiB/s)"
        );
    }
}
