//! `tessera-bench report`: a run's summaries as markdown tables, the node's figures as ratios to
//! its ceilings, and whether the targets were met.
//!
//! Summaries are found by name, whatever tool made them:
//! - `node-get`, `node-put`: the node under load;
//! - `ceiling-get`, `ceiling-put`: the empty-handler server under the same load;
//! - `engine-get`, `engine-put`, `cell-read`, `cell-overwrite` (and the rest of the storage
//!   phases): the storage ceiling;
//! - `blocking-*`, `capped-*`, `inline-*` (`get`, `put`): the ceiling server doing only the node's
//!   storage calls (`http-ceiling --storage`): on `spawn_blocking` with tokio's default pool, on
//!   `spawn_blocking` with the pool capped at one thread per core, or inline. They split the gap
//!   between ceiling and node into layers.
//!
//! Node and request ceiling are compared only when the same tool measured both.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::error::BenchError;
use crate::summary::{errors_text, latency, thousands, Summary};

/// `tessera-bench report`.
#[derive(Clone, Debug, Args)]
pub struct ReportArgs {
    /// Files holding summary lines (any line starting with `{`; other lines are skipped).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Lowest acceptable node throughput, as a fraction of the empty-handler ceiling.
    #[arg(long, default_value_t = 0.70)]
    pub target_ratio: f64,
    /// Highest acceptable node p99, in milliseconds.
    #[arg(long, default_value_t = 5.0)]
    pub target_p99_ms: f64,
}

/// The targets a node is held to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Targets {
    /// Lowest node/ceiling throughput ratio.
    pub ratio: f64,
    /// Highest p99, µs.
    pub p99_us: f64,
}

/// Every summary line of `path`.
pub fn read_summaries(path: &Path) -> Result<Vec<Summary>, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|source| BenchError::ReadSummary {
        path: path.to_path_buf(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| line.trim_start().starts_with('{'))
        .map(|(i, line)| {
            serde_json::from_str(line.trim()).map_err(|source| BenchError::ParseSummary {
                path: path.to_path_buf(),
                line: i + 1,
                source,
            })
        })
        .collect()
}

/// Reads every file and renders the report.
pub fn run(args: &ReportArgs) -> Result<String, BenchError> {
    let mut summaries = Vec::new();
    for file in &args.files {
        summaries.extend(read_summaries(file)?);
    }
    Ok(render(
        &summaries,
        Targets {
            ratio: args.target_ratio,
            p99_us: args.target_p99_ms * 1_000.0,
        },
    ))
}

fn find<'a>(summaries: &'a [Summary], name: &str, tool: Option<&str>) -> Option<&'a Summary> {
    // The last one wins, so a rerun appended to a file replaces the earlier figure.
    summaries
        .iter()
        .rev()
        .find(|s| s.name == name && tool.is_none_or(|tool| s.tool == tool))
}

fn percent(ratio: f64) -> String {
    format!("{:.0}%", ratio * 100.0)
}

fn ratio(numerator: f64, denominator: f64) -> Option<f64> {
    (denominator > 0.0).then(|| numerator / denominator)
}

fn ops(summary: &Summary) -> String {
    thousands(summary.ops_per_sec.round() as u64)
}

/// The tools that measured the node, in order of first appearance.
fn node_tools(summaries: &[Summary]) -> Vec<&str> {
    let mut tools: Vec<&str> = Vec::new();
    for s in summaries {
        if s.name.starts_with("node-") && !tools.contains(&s.tool.as_str()) {
            tools.push(&s.tool);
        }
    }
    tools
}

/// The markdown report.
pub fn render(summaries: &[Summary], targets: Targets) -> String {
    let mut out = String::new();
    let tools = node_tools(summaries);
    let ops_names = [
        ("GET", "get", "cell-read"),
        ("PUT", "put", "cell-overwrite"),
    ];

    let _ = writeln!(
        out,
        "#### Node against the request-layer ceiling (target: ≥ {} of the ceiling's throughput, p99 < {})\n",
        percent(targets.ratio),
        latency(targets.p99_us)
    );
    let _ = writeln!(
        out,
        "| op | load from | node ops/s | ceiling ops/s | node ÷ ceiling | node p50 | ceiling p50 | node p99 | ceiling p99 | node p999 | target |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for tool in &tools {
        for (label, op, _) in ops_names {
            let node = find(summaries, &format!("node-{op}"), Some(tool));
            let ceiling = find(summaries, &format!("ceiling-{op}"), Some(tool));
            let (Some(node), Some(ceiling)) = (node, ceiling) else {
                continue;
            };
            let throughput = ratio(node.ops_per_sec, ceiling.ops_per_sec).unwrap_or(0.0);
            let mut misses = Vec::new();
            if throughput < targets.ratio {
                misses.push(format!("throughput {}", percent(throughput)));
            }
            if node.p99_us >= targets.p99_us {
                misses.push(format!("p99 {}", latency(node.p99_us)));
            }
            if node.error_count() > 0 {
                misses.push(format!("errors {}", errors_text(&node.errors)));
            }
            let verdict = if misses.is_empty() {
                "met".to_owned()
            } else {
                format!("**not met**: {}", misses.join(", "))
            };
            let _ = writeln!(
                out,
                "| {label} | {tool} | {} | {} | {} | {} | {} | {} | {} | {} | {verdict} |",
                ops(node),
                ops(ceiling),
                percent(throughput),
                latency(node.p50_us),
                latency(ceiling.p50_us),
                latency(node.p99_us),
                latency(ceiling.p99_us),
                latency(node.p999_us),
            );
        }
    }

    let _ = writeln!(out, "\n#### Node against the storage ceiling\n");
    let _ = writeln!(
        out,
        "| op | load from | node ops/s | raw engine ops/s | node ÷ engine | cell store ops/s | node ÷ cell store | node p50 | engine p50 | cell store p50 |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for tool in &tools {
        for (label, op, cell) in ops_names {
            let Some(node) = find(summaries, &format!("node-{op}"), Some(tool)) else {
                continue;
            };
            let engine = find(summaries, &format!("engine-{op}"), None);
            let cell = find(summaries, cell, None);
            let cells = |s: Option<&Summary>| match s {
                Some(s) => (
                    ops(s),
                    ratio(node.ops_per_sec, s.ops_per_sec).map_or("-".to_owned(), percent),
                    latency(s.p50_us),
                ),
                None => ("-".to_owned(), "-".to_owned(), "-".to_owned()),
            };
            let (engine_ops, engine_ratio, engine_p50) = cells(engine);
            let (cell_ops, cell_ratio, cell_p50) = cells(cell);
            let _ = writeln!(
                out,
                "| {label} | {tool} | {} | {engine_ops} | {engine_ratio} | {cell_ops} | {cell_ratio} | {} | {engine_p50} | {cell_p50} |",
                ops(node),
                latency(node.p50_us),
            );
        }
    }

    let ops_pairs = ops_names.map(|(label, op, _)| (label, op));
    layers(&mut out, summaries, &tools, ops_pairs);
    cpu(&mut out, summaries, &tools, ops_pairs);

    let _ = writeln!(out, "\n#### Every measurement\n");
    let _ = writeln!(
        out,
        "| measurement | tool | concurrency | seconds | ops/s | p50 | p99 | p999 | max | errors |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for s in summaries {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.1} | {} | {} | {} | {} | {} | {} |",
            s.name,
            s.tool,
            s.concurrency,
            s.duration_s,
            ops(s),
            latency(s.p50_us),
            latency(s.p99_us),
            latency(s.p999_us),
            latency(s.max_us),
            errors_text(&s.errors),
        );
    }
    out
}

/// The layer table: empty handler, plus storage calls (blocking pool, inline), and the node, each
/// as a share of the empty handler's throughput. Written only when a layer was measured.
fn layers(out: &mut String, summaries: &[Summary], tools: &[&str], ops_names: [(&str, &str); 2]) {
    let layered = summaries.iter().any(|s| {
        ["blocking-", "capped-", "inline-"]
            .iter()
            .any(|p| s.name.starts_with(p))
    });
    if !layered {
        return;
    }
    let _ = writeln!(
        out,
        "\n#### Layers: the ceiling server plus only the node's storage calls\n"
    );
    let _ = writeln!(
        out,
        "| op | load from | empty handler | + storage calls on `spawn_blocking` | + the same, pool capped at one thread per core | + storage calls inline | node |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|");
    for tool in tools {
        for (label, op) in ops_names {
            let Some(ceiling) = find(summaries, &format!("ceiling-{op}"), Some(tool)) else {
                continue;
            };
            let cell = |name: String| match find(summaries, &name, Some(tool)) {
                Some(s) => format!(
                    "{} ({}), p99 {}",
                    ops(s),
                    ratio(s.ops_per_sec, ceiling.ops_per_sec).map_or("-".to_owned(), percent),
                    latency(s.p99_us)
                ),
                None => "-".to_owned(),
            };
            let _ = writeln!(
                out,
                "| {label} | {tool} | {} | {} | {} | {} | {} |",
                cell(format!("ceiling-{op}")),
                cell(format!("blocking-{op}")),
                cell(format!("capped-{op}")),
                cell(format!("inline-{op}")),
                cell(format!("node-{op}")),
            );
        }
    }
}

fn cpu_text(seconds: Option<f64>) -> String {
    seconds.map_or("-".to_owned(), |s| format!("{s:.1} s"))
}

/// The CPU table: server CPU per operation, for every run where the harness measured it.
fn cpu(out: &mut String, summaries: &[Summary], tools: &[&str], ops_names: [(&str, &str); 2]) {
    if !summaries.iter().any(|s| s.server_cpu_s.is_some()) {
        return;
    }
    let _ = writeln!(
        out,
        "\n#### Server CPU per request (robust to neighbours; ceiling ÷ node is the throughput ratio a CPU-bound server would reach)\n"
    );
    let _ = writeln!(
        out,
        "| op | load from | server | server CPU µs/op | ceiling ÷ this | server CPU | load generator CPU | other processes' CPU |"
    );
    let _ = writeln!(out, "|---|---|---|---:|---:|---:|---:|---:|");
    for tool in tools {
        for (label, op) in ops_names {
            let ceiling = find(summaries, &format!("ceiling-{op}"), Some(tool))
                .and_then(Summary::server_cpu_us_per_op);
            for server in ["ceiling", "blocking", "capped", "inline", "node"] {
                let Some(s) = find(summaries, &format!("{server}-{op}"), Some(tool)) else {
                    continue;
                };
                let Some(per_op) = s.server_cpu_us_per_op() else {
                    continue;
                };
                let share = ceiling
                    .and_then(|c| ratio(c, per_op))
                    .map_or("-".to_owned(), percent);
                let _ = writeln!(
                    out,
                    "| {label} | {tool} | {server} | {per_op:.1} | {share} | {} | {} | {} |",
                    cpu_text(s.server_cpu_s),
                    cpu_text(s.client_cpu_s),
                    cpu_text(s.other_cpu_s),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn summary(name: &str, tool: &str, ops_per_sec: f64, p99_us: f64) -> Summary {
        Summary {
            name: name.to_owned(),
            tool: tool.to_owned(),
            workload: String::new(),
            concurrency: 64,
            duration_s: 15.0,
            ops: (ops_per_sec * 15.0) as u64,
            ops_per_sec,
            p50_us: p99_us / 4.0,
            p99_us,
            p999_us: p99_us * 2.0,
            max_us: p99_us * 3.0,
            errors: BTreeMap::new(),
            siblings: 0,
            server_cpu_s: None,
            client_cpu_s: None,
            other_cpu_s: None,
        }
    }

    const TARGETS: Targets = Targets {
        ratio: 0.70,
        p99_us: 5_000.0,
    };

    #[test]
    fn compares_each_tool_against_its_own_ceiling() {
        let summaries = vec![
            summary("engine-get", "tessera-bench storage", 1_000_000.0, 5.0),
            summary("cell-read", "tessera-bench storage", 500_000.0, 8.0),
            summary("ceiling-get", "wrk", 40_000.0, 3_000.0),
            summary("node-get", "wrk", 30_000.0, 4_000.0),
            summary("ceiling-put", "wrk", 40_000.0, 3_000.0),
            summary("node-put", "wrk", 20_000.0, 6_000.0),
            // Another tool's ceiling must not be used for wrk's node figures.
            summary("ceiling-get", "tessera-bench", 10_000.0, 3_000.0),
        ];
        let report = render(&summaries, TARGETS);
        assert!(
            report.contains("| GET | wrk | 30,000 | 40,000 | 75% | 1.00 ms | 750 µs | 4.00 ms | 3.00 ms | 8.00 ms | met |"),
            "{report}"
        );
        assert!(
            report.contains("| PUT | wrk | 20,000 | 40,000 | 50% |")
                && report.contains("**not met**: throughput 50%, p99 6.00 ms |"),
            "{report}"
        );
        assert!(
            report.contains("| GET | wrk | 30,000 | 1,000,000 | 3% | 500,000 | 6% |"),
            "{report}"
        );
        assert!(
            report.contains("| PUT | wrk | 20,000 | - | - | - | - |"),
            "{report}"
        );
        // No node-get from tessera-bench: no comparison row for it.
        assert!(!report.contains("| GET | tessera-bench |"), "{report}");
        assert!(
            report.contains("| ceiling-get | tessera-bench | 64 | 15.0 | 10,000 |"),
            "{report}"
        );
    }

    #[test]
    fn layers_are_shares_of_the_empty_handler() {
        let summaries = vec![
            summary("ceiling-get", "wrk", 40_000.0, 3_000.0),
            summary("blocking-get", "wrk", 20_000.0, 4_000.0),
            summary("inline-get", "wrk", 30_000.0, 3_000.0),
            summary("node-get", "wrk", 10_000.0, 6_000.0),
        ];
        let report = render(&summaries, TARGETS);
        assert!(
            report.contains("| GET | wrk | 40,000 (100%), p99 3.00 ms | 20,000 (50%), p99 4.00 ms | - | 30,000 (75%), p99 3.00 ms | 10,000 (25%), p99 6.00 ms |"),
            "{report}"
        );
        let without = render(&summaries[..1], TARGETS);
        assert!(!without.contains("Layers"), "{without}");
    }

    #[test]
    fn cpu_per_request_is_compared_with_the_ceiling() {
        let with_cpu = |name: &str, ops_per_sec: f64, cpu: f64| Summary {
            server_cpu_s: Some(cpu),
            client_cpu_s: Some(10.0),
            other_cpu_s: Some(0.5),
            ..summary(name, "wrk", ops_per_sec, 1_000.0)
        };
        // 600,000 ops in 15 s on 12 s of CPU: 20 µs/op; the node, 150,000 ops on 15 s: 100 µs/op.
        let summaries = vec![
            with_cpu("ceiling-get", 40_000.0, 12.0),
            with_cpu("node-get", 10_000.0, 15.0),
        ];
        let report = render(&summaries, TARGETS);
        assert!(
            report.contains("| GET | wrk | ceiling | 20.0 | 100% | 12.0 s | 10.0 s | 0.5 s |"),
            "{report}"
        );
        assert!(
            report.contains("| GET | wrk | node | 100.0 | 20% | 15.0 s | 10.0 s | 0.5 s |"),
            "{report}"
        );
        assert!(
            !render(&[summary("node-get", "wrk", 1.0, 1.0)], TARGETS).contains("CPU per request")
        );
    }

    #[test]
    fn errors_fail_the_target() {
        let mut node = summary("node-get", "wrk", 40_000.0, 1_000.0);
        node.errors.insert("503".to_owned(), 4);
        let report = render(
            &[summary("ceiling-get", "wrk", 40_000.0, 1_000.0), node],
            TARGETS,
        );
        assert!(report.contains("**not met**: errors 503×4"), "{report}");
    }

    #[test]
    fn reads_only_json_lines_and_the_last_figure_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        let first = summary("node-get", "wrk", 1.0, 1.0).json_line();
        let second = summary("node-get", "wrk", 2.0, 1.0).json_line();
        std::fs::write(
            &path,
            format!("Running 15s test\n{first}\n  Latency 1ms\n{second}\n"),
        )
        .unwrap();
        let summaries = read_summaries(&path).unwrap();
        assert_eq!(summaries.len(), 2);
        assert_eq!(
            find(&summaries, "node-get", Some("wrk"))
                .unwrap()
                .ops_per_sec,
            2.0
        );
        std::fs::write(&path, "{not json\n").unwrap();
        assert!(matches!(
            read_summaries(&path),
            Err(BenchError::ParseSummary { line: 1, .. })
        ));
    }
}
