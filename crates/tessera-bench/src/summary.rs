//! The result of one measurement, in one shape whatever produced it (our generator, the storage
//! benchmark, or wrk through the Lua script of `scripts/bench-node.sh`), so that the report can put
//! any two side by side.
//!
//! Latencies are recorded in nanoseconds into HDR histograms (3 significant digits) and reported
//! in microseconds.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::error::BenchError;

/// Highest latency a histogram records (100 s); slower operations are recorded as 100 s.
const MAX_LATENCY_NS: u64 = 100_000_000_000;

/// An empty latency histogram, in nanoseconds.
pub fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts: a failure here is a bug, not bad input.
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("constant histogram bounds are valid")
}

/// Records one latency.
pub fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX).max(1);
    histogram.saturating_record(ns);
}

/// Adds `other` into `into`.
pub fn merge(
    into: &mut Histogram<u64>,
    other: &Histogram<u64>,
    phase: &str,
) -> Result<(), BenchError> {
    into.add(other).map_err(|e| BenchError::Histogram {
        phase: phase.to_owned(),
        message: format!("{e:?}"),
    })
}

/// One measurement: throughput and latency percentiles of one phase.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// What was measured: `node-put`, `ceiling-get`, `engine-put`, ...
    pub name: String,
    /// What measured it: `tessera-bench`, `wrk`, `tessera-bench storage`.
    pub tool: String,
    /// The operation mix (`put`, `get`, `ycsb-a`, ...).
    #[serde(default)]
    pub workload: String,
    /// Connections (HTTP) or threads (storage) kept busy.
    #[serde(default)]
    pub concurrency: u64,
    /// Length of the measured window, in seconds.
    pub duration_s: f64,
    /// Successful operations in the window.
    pub ops: u64,
    /// `ops / duration_s`.
    pub ops_per_sec: f64,
    /// Median latency of successful operations, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// 99.9th percentile, µs.
    #[serde(default)]
    pub p999_us: f64,
    /// Slowest operation, µs.
    #[serde(default)]
    pub max_us: f64,
    /// Failures by kind: an HTTP status (`"404"`, `"503"`), or `connect`, `io`, `timeout`.
    #[serde(default)]
    pub errors: BTreeMap<String, u64>,
    /// Successful answers that reported more than one version of the cell (siblings).
    #[serde(default)]
    pub siblings: u64,
    /// CPU seconds the server process used during the measured window, when the harness
    /// measured it (`scripts/bench-node.sh` does for wrk runs). Unlike throughput, CPU per
    /// operation hardly moves when neighbours compete for the machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cpu_s: Option<f64>,
    /// CPU seconds the load generator used during the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cpu_s: Option<f64>,
    /// CPU seconds every other process on the machine used during the window: the noise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_cpu_s: Option<f64>,
}

/// Everything needed to build a [`Summary`] except the latencies.
#[derive(Clone, Debug)]
pub struct Labels {
    /// See [`Summary::name`].
    pub name: String,
    /// See [`Summary::tool`].
    pub tool: String,
    /// See [`Summary::workload`].
    pub workload: String,
    /// See [`Summary::concurrency`].
    pub concurrency: u64,
}

impl Summary {
    /// A summary of the operations in `histogram` (nanoseconds) over `duration`.
    pub fn from_histogram(
        labels: Labels,
        duration: Duration,
        histogram: &Histogram<u64>,
        errors: BTreeMap<String, u64>,
        siblings: u64,
    ) -> Self {
        let ops = histogram.len();
        let seconds = duration.as_secs_f64();
        let us = |ns: u64| ns as f64 / 1_000.0;
        let empty = ops == 0;
        let at = |q: f64| {
            if empty {
                0.0
            } else {
                us(histogram.value_at_quantile(q))
            }
        };
        Self {
            name: labels.name,
            tool: labels.tool,
            workload: labels.workload,
            concurrency: labels.concurrency,
            duration_s: seconds,
            ops,
            ops_per_sec: if seconds > 0.0 {
                ops as f64 / seconds
            } else {
                0.0
            },
            p50_us: at(0.50),
            p99_us: at(0.99),
            p999_us: at(0.999),
            max_us: if empty { 0.0 } else { us(histogram.max()) },
            errors,
            siblings,
            server_cpu_s: None,
            client_cpu_s: None,
            other_cpu_s: None,
        }
    }

    /// Server CPU per successful operation, µs, when measured.
    pub fn server_cpu_us_per_op(&self) -> Option<f64> {
        let cpu = self.server_cpu_s?;
        (self.ops > 0).then(|| cpu * 1e6 / self.ops as f64)
    }

    /// Total failures of every kind.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The machine-readable form: one line of JSON.
    pub fn json_line(&self) -> String {
        // Serialising a struct of strings, numbers and a string map cannot fail.
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The human form: one line.
    pub fn human_line(&self) -> String {
        let mut line = format!(
            "{}: {} ops/s, p50 {}, p99 {}, p999 {}, max {} ({} ops in {:.1} s, concurrency {}, {})",
            self.name,
            thousands(self.ops_per_sec.round() as u64),
            latency(self.p50_us),
            latency(self.p99_us),
            latency(self.p999_us),
            latency(self.max_us),
            thousands(self.ops),
            self.duration_s,
            self.concurrency,
            self.tool,
        );
        line.push_str(&format!("; errors: {}", errors_text(&self.errors)));
        if self.siblings > 0 {
            line.push_str(&format!(
                "; answers with siblings: {}",
                thousands(self.siblings)
            ));
        }
        line
    }
}

/// `none`, or `404×3, io×1` in key order.
pub fn errors_text(errors: &BTreeMap<String, u64>) -> String {
    let listed: Vec<String> = errors
        .iter()
        .filter(|(_, count)| **count > 0)
        .map(|(kind, count)| format!("{kind}×{count}"))
        .collect();
    if listed.is_empty() {
        "none".to_owned()
    } else {
        listed.join(", ")
    }
}

/// A latency in µs, shown in the unit that keeps three significant digits readable.
pub fn latency(us: f64) -> String {
    if us >= 1_000_000.0 {
        format!("{:.2} s", us / 1_000_000.0)
    } else if us >= 1_000.0 {
        format!("{:.2} ms", us / 1_000.0)
    } else if us >= 10.0 {
        format!("{us:.0} µs")
    } else {
        format!("{us:.2} µs")
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Labels {
        Labels {
            name: "node-put".to_owned(),
            tool: "tessera-bench".to_owned(),
            workload: "put".to_owned(),
            concurrency: 64,
        }
    }

    fn sample() -> Summary {
        let mut histogram = new_histogram();
        for us in 1..=1000u64 {
            record(&mut histogram, Duration::from_micros(us));
        }
        let errors = BTreeMap::from([("503".to_owned(), 2), ("io".to_owned(), 1)]);
        Summary::from_histogram(labels(), Duration::from_secs(2), &histogram, errors, 0)
    }

    #[test]
    fn percentiles_and_throughput_come_from_the_histogram() {
        let summary = sample();
        assert_eq!(summary.ops, 1000);
        assert_eq!(summary.ops_per_sec, 500.0);
        // Three significant digits: within 0.1% of the exact values.
        assert!((summary.p50_us - 500.0).abs() <= 1.0, "{}", summary.p50_us);
        assert!((summary.p99_us - 990.0).abs() <= 1.0, "{}", summary.p99_us);
        assert!(
            (summary.p999_us - 999.0).abs() <= 1.0,
            "{}",
            summary.p999_us
        );
        assert!((summary.max_us - 1000.0).abs() <= 1.0, "{}", summary.max_us);
        assert_eq!(summary.error_count(), 3);
    }

    #[test]
    fn an_empty_histogram_reports_zeros() {
        let summary = Summary::from_histogram(
            labels(),
            Duration::ZERO,
            &new_histogram(),
            BTreeMap::new(),
            0,
        );
        assert_eq!(
            (summary.ops, summary.ops_per_sec, summary.p99_us),
            (0, 0.0, 0.0)
        );
        assert!(summary.human_line().contains("errors: none"));
    }

    #[test]
    fn json_line_is_one_line_and_round_trips() {
        let summary = sample();
        let line = summary.json_line();
        assert!(!line.contains('\n'));
        assert!(line.starts_with('{'));
        let back: Summary = serde_json::from_str(&line).unwrap();
        assert_eq!(back, summary);
    }

    #[test]
    fn cpu_per_operation_needs_a_measurement() {
        let mut summary = sample();
        assert_eq!(summary.server_cpu_us_per_op(), None);
        assert!(!summary.json_line().contains("cpu"));
        summary.server_cpu_s = Some(0.05);
        assert_eq!(summary.server_cpu_us_per_op(), Some(50.0));
    }

    #[test]
    fn wrk_style_lines_with_missing_fields_parse() {
        let line = r#"{"name":"ceiling-get","tool":"wrk","duration_s":15.0,"ops":300000,"ops_per_sec":20000.0,"p50_us":900.0,"p99_us":2500.0}"#;
        let summary: Summary = serde_json::from_str(line).unwrap();
        assert_eq!(summary.p999_us, 0.0);
        assert!(summary.errors.is_empty());
    }

    #[test]
    fn human_line_reads_well() {
        let line = sample().human_line();
        assert!(
            line.starts_with("node-put: 500 ops/s, p50 500 µs, p99 990 µs"),
            "{line}"
        );
        assert!(
            line.contains("1,000 ops in 2.0 s, concurrency 64, tessera-bench"),
            "{line}"
        );
        assert!(line.ends_with("errors: 503×2, io×1"), "{line}");
    }

    #[test]
    fn numbers_are_formatted_for_people() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(latency(0.5), "0.50 µs");
        assert_eq!(latency(12.3), "12 µs");
        assert_eq!(latency(1234.0), "1.23 ms");
        assert_eq!(latency(2_500_000.0), "2.50 s");
        assert_eq!(errors_text(&BTreeMap::new()), "none");
    }
}
