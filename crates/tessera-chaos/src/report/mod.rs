//! The report of a run, in its folder beside `history.jsonl`: `summary.md` (the verdict, the
//! faults, availability and latency per kind of fault, convergence, and the command that
//! replays the run), `plot.svg` (linked from the summary) and `verdict.json`.

pub mod plot;

use std::fmt::Write as _;
use std::path::Path;

use crate::check::{Indexed, Verdict, ViolationKind};
use crate::error::ChaosError;
use crate::history::Event;

/// Violations listed per kind in the summary (all are in `verdict.json`).
const LISTED: usize = 20;

fn percent(value: Option<f64>) -> String {
    value
        .map(|v| format!("{:.1}%", v * 100.0))
        .unwrap_or_else(|| "-".into())
}

fn ms(value: Option<f64>) -> String {
    value
        .map(|v| format!("{v:.1}"))
        .unwrap_or_else(|| "-".into())
}

fn secs(value: Option<f64>) -> String {
    value
        .map(|v| format!("{v:.1} s"))
        .unwrap_or_else(|| "never".into())
}

/// The summary as Markdown.
pub fn summary(history: &Indexed, verdict: &Verdict, plot: Option<&str>) -> String {
    let meta = history.meta;
    let mut out = String::new();
    let status = if verdict.ok() {
        "PASS: no violation".to_string()
    } else {
        format!("FAIL: {} violation(s)", verdict.violations.len())
    };
    let _ = writeln!(out, "# Chaos run, seed {}: {status}\n", meta.seed);
    let _ = writeln!(out, "Replay it with:\n\n```sh\n{}\n```\n", meta.command);
    let nodes: Vec<String> = meta
        .nodes
        .iter()
        .map(|n| format!("{} `{}`", n.id, n.address))
        .collect();
    let workloads: Vec<&str> = meta.workloads.iter().map(|w| w.name()).collect();
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| nodes | {} |", nodes.join(", "));
    let _ = writeln!(
        out,
        "| tables | N={}, reads `{}` (R={}), writes `{}` (W={}) |",
        meta.replication, meta.read_level, meta.read_quorum, meta.write_level, meta.write_quorum
    );
    let _ = writeln!(out, "| workloads | {} |", workloads.join(", "));
    let _ = writeln!(
        out,
        "| acknowledged writes | {} |\n| lost | {} |\n",
        verdict.acked(),
        verdict.lost()
    );
    if let Some(plot) = plot {
        let _ = writeln!(
            out,
            "![successes, failures and p99 latency per node, fault windows shaded]({plot})\n"
        );
    }

    let _ = writeln!(out, "## Verdict\n");
    let _ = writeln!(
        out,
        "| workload | acknowledged writes | lost | unknown outcome (found applied) | refused | reads ok / failed | reads judged for staleness |\n|---|---|---|---|---|---|---|"
    );
    for (w, c) in &verdict.counts {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} ({}) | {} | {} / {} | {} |",
            w.name(),
            c.acked,
            c.lost,
            c.indeterminate,
            c.indeterminate_found,
            c.failed,
            c.reads_ok,
            c.reads_failed,
            c.reads_judged
        );
    }
    let _ = writeln!(out);
    if verdict.ok() {
        let _ = writeln!(out, "No violation: no acknowledged write was lost, no deleted value came back, no batch was torn, no read while healthy was stale, no siblings of related writes.\n");
    } else {
        let mut kinds: Vec<ViolationKind> = verdict.violations.iter().map(|v| v.kind).collect();
        kinds.dedup();
        for kind in kinds {
            let of_kind: Vec<_> = verdict
                .violations
                .iter()
                .filter(|v| v.kind == kind)
                .collect();
            let _ = writeln!(out, "### {} ({})\n", kind.name(), of_kind.len());
            for v in of_kind.iter().take(LISTED) {
                let _ = writeln!(
                    out,
                    "- {} `{}`: {} (ops {:?})",
                    v.workload.name(),
                    v.key,
                    v.detail,
                    v.ops
                );
            }
            if of_kind.len() > LISTED {
                let _ = writeln!(
                    out,
                    "- ... and {} more in `verdict.json`",
                    of_kind.len() - LISTED
                );
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(out, "To read one: `grep '\"id\":OP,' history.jsonl` shows what the client sent and was told; the `local` lines of the key show what each replica held before and after the read-back.\n");
    }

    let _ = writeln!(out, "## Faults\n");
    if history.faults.is_empty() {
        let _ = writeln!(out, "None.\n");
    } else {
        let _ = writeln!(
            out,
            "| # | nemesis | from (s) | to (s) | what |\n|---|---|---|---|---|"
        );
        for f in &history.faults {
            let _ = writeln!(
                out,
                "| {} | {} | {:.1} | {:.1} | {} |",
                f.id,
                f.kind,
                f.start_us as f64 / 1e6,
                f.end_us as f64 / 1e6,
                f.description
            );
        }
        let _ = writeln!(out);
    }

    let _ = writeln!(out, "## Availability and latency per window\n");
    let _ = writeln!(out, "An operation counts in the window in force when it started. Availability is the share of operations that succeeded; latency is of the successes. Recovery is the time from a fault's heal until every member was alive, the rings agreed and no node held hints.\n");
    let _ = writeln!(
        out,
        "| window | count | seconds | writes | write availability | reads | read availability | p50 ms | p99 ms | recovery after the heal, mean / max |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    for w in &verdict.availability {
        let recovery = match (w.recovery_mean_s, w.recovery_max_s) {
            (Some(mean), Some(max)) => format!(
                "{mean:.1} s / {max:.1} s{}",
                if w.unrecovered > 0 {
                    format!(" ({} not before the next fault)", w.unrecovered)
                } else {
                    String::new()
                }
            ),
            _ if w.unrecovered > 0 => format!("not before the next fault ({})", w.unrecovered),
            _ => "-".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {recovery} |",
            w.label,
            w.windows,
            w.seconds,
            w.writes.total(),
            percent(w.writes.availability()),
            w.reads.total(),
            percent(w.reads.availability()),
            ms(w.p50_ms),
            ms(w.p99_ms)
        );
    }
    let _ = writeln!(out);

    let c = &verdict.convergence;
    let _ = writeln!(out, "## Convergence\n");
    let _ = writeln!(
        out,
        "- heal to recovery (members alive, rings agreed, no hints): {}",
        secs(c.heal_to_recovered_s)
    );
    let _ = writeln!(
        out,
        "- clients stopped to quiet (no hints, no background work): {}",
        secs(c.stop_to_quiesced_s)
    );
    let _ = writeln!(
        out,
        "- clients stopped to every replica agreeing, before any read-back: {}",
        secs(c.stop_to_converged_s)
    );
    let _ = writeln!(
        out,
        "- replicas' own copies before the read-back at `all`: {} of {} cells differ, {} copies unreadable{}",
        c.before.divergent,
        c.before.cells,
        c.before.unreadable,
        if c.before.examples.is_empty() { String::new() } else { format!(" (e.g. {})", c.before.examples.join("; ")) }
    );
    let _ = writeln!(
        out,
        "- after the read-back (its read repairs): {} of {} cells differ, {} copies unreadable{}",
        c.after.divergent,
        c.after.cells,
        c.after.unreadable,
        if c.after.examples.is_empty() {
            String::new()
        } else {
            format!(" (e.g. {})", c.after.examples.join("; "))
        }
    );
    let _ = writeln!(
        out,
        "\nWithout anti-entropy, replicas converge only through hinted handoff and read repair.\n"
    );

    if !verdict.notes.is_empty() {
        let _ = writeln!(out, "## Notes\n");
        for note in &verdict.notes {
            let _ = writeln!(out, "- {note}");
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "## Files\n\n- `history.jsonl`: every operation, fault, phase, read-back and replica copy (`tessera-chaos --check history.jsonl` judges it again)\n- `verdict.json`: every violation and figure above\n- `plot.svg`\n- `nodes/nI.log`: each node's log");
    out
}

/// Writes `summary.md`, `plot.svg` and `verdict.json` into `dir`.
pub fn write(dir: &Path, events: &[Event], verdict: &Verdict) -> Result<(), ChaosError> {
    let history = Indexed::new(events)?;
    let plot_path = dir.join("plot.svg");
    let plot = match plot::draw(&history, &plot_path) {
        Ok(()) => Some("plot.svg"),
        Err(e) => {
            eprintln!("[chaos] the plot could not be drawn: {e}");
            None
        }
    };
    let text = summary(&history, verdict, plot);
    std::fs::write(dir.join("summary.md"), text)
        .map_err(|e| ChaosError::io("writing summary.md", e))?;
    let json = serde_json::to_vec_pretty(verdict).map_err(|e| ChaosError::Encode(e.to_string()))?;
    std::fs::write(dir.join("verdict.json"), json)
        .map_err(|e| ChaosError::io("writing verdict.json", e))
}
