//! Availability and latency per kind of fault window, and the per-node time series the plot
//! draws. An operation belongs to the window in force when it started.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Indexed;
use crate::history::{Op, Outcome, PhaseName};

/// Ops of client 0 set the keys up before the faults; they are not part of the measurement.
pub const INIT_CLIENT: u32 = 0;

/// Outcomes of some operations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Tally {
    pub ok: usize,
    pub fail: usize,
    pub info: usize,
}

impl Tally {
    pub fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::Fail => self.fail += 1,
            Outcome::Info => self.info += 1,
        }
    }

    pub fn total(&self) -> usize {
        self.ok + self.fail + self.info
    }

    /// Share of operations that succeeded, if there were any.
    pub fn availability(&self) -> Option<f64> {
        (self.total() > 0).then(|| self.ok as f64 / self.total() as f64)
    }
}

/// What clients saw during one kind of window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WindowStats {
    /// A nemesis (`isolate`, `kill`, ...), or `no fault`, `after heal`, `healthy`.
    pub label: String,
    pub windows: usize,
    pub seconds: f64,
    pub writes: Tally,
    pub reads: Tally,
    /// Latency of the successful operations.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Seconds from the heal of each window until every member was alive, the rings agreed
    /// and no node held hints: the mean and the longest, over the windows where it was seen.
    pub recovery_mean_s: Option<f64>,
    pub recovery_max_s: Option<f64>,
    /// Windows after whose heal no recovery was seen before the next fault.
    pub unrecovered: usize,
}

/// The `p` quantile (0..=1) of sorted values.
pub fn quantile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

struct Bin {
    label: String,
    intervals: Vec<(u64, u64)>,
    recoveries: Vec<f64>,
    unrecovered: usize,
    writes: Tally,
    reads: Tally,
    latencies: Vec<f64>,
}

impl Bin {
    fn new(label: &str) -> Self {
        Bin {
            label: label.to_owned(),
            intervals: Vec::new(),
            recoveries: Vec::new(),
            unrecovered: 0,
            writes: Tally::default(),
            reads: Tally::default(),
            latencies: Vec::new(),
        }
    }

    fn contains(&self, t: u64) -> bool {
        self.intervals.iter().any(|&(a, b)| a <= t && t < b)
    }

    fn take(&mut self, op: &Op) {
        if op.f.is_write() {
            self.writes.add(op.outcome);
        } else {
            self.reads.add(op.outcome);
        }
        if op.outcome == Outcome::Ok {
            self.latencies.push(op.latency_us() as f64 / 1000.0);
        }
    }

    fn finish(mut self) -> WindowStats {
        self.latencies.sort_by(f64::total_cmp);
        WindowStats {
            label: self.label,
            windows: self.intervals.len(),
            seconds: self
                .intervals
                .iter()
                .map(|(a, b)| b.saturating_sub(*a) as f64 / 1e6)
                .sum(),
            writes: self.writes,
            reads: self.reads,
            p50_ms: quantile(&self.latencies, 0.5),
            p99_ms: quantile(&self.latencies, 0.99),
            recovery_mean_s: (!self.recoveries.is_empty())
                .then(|| self.recoveries.iter().sum::<f64>() / self.recoveries.len() as f64),
            recovery_max_s: self.recoveries.iter().copied().reduce(f64::max),
            unrecovered: self.unrecovered,
        }
    }
}

/// Availability and latency per kind of window, in a fixed order: quiet periods first, then
/// each nemesis, then after the heal and healthy.
pub fn windows(history: &Indexed) -> Vec<WindowStats> {
    let start = history
        .phases
        .get(&PhaseName::WorkloadStart)
        .copied()
        .unwrap_or(0);
    let end = history
        .phases
        .get(&PhaseName::WorkloadStop)
        .copied()
        .or_else(|| history.ops.iter().map(|o| o.end_us).max())
        .unwrap_or(0);
    let heal = history.phases.get(&PhaseName::Heal).copied().unwrap_or(end);
    let recovered = history
        .recovered_at()
        .unwrap_or(end)
        .clamp(heal, end.max(heal));

    let mut faults: BTreeMap<String, Bin> = BTreeMap::new();
    let last_end = history.faults.iter().map(|f| f.end_us).max();
    for fault in &history.faults {
        let bin = faults
            .entry(fault.kind.clone())
            .or_insert_with(|| Bin::new(&fault.kind));
        bin.intervals.push((fault.start_us, fault.end_us));
        // The last fault's heal is the run's heal, and its recovery the run's recovery.
        let recovered = match fault.recovered_us {
            Some(t) => Some(t),
            None if Some(fault.end_us) == last_end => history.recovered_at(),
            None => None,
        };
        match recovered {
            Some(t) => bin
                .recoveries
                .push(t.saturating_sub(fault.end_us) as f64 / 1e6),
            None => bin.unrecovered += 1,
        }
    }
    let mut quiet = Bin::new("no fault");
    let mut after_heal = Bin::new("after heal");
    after_heal.intervals.push((heal, recovered));
    let mut healthy = Bin::new("healthy");
    healthy.intervals.push((recovered, end));

    for op in history.ops.iter().filter(|o| o.client != INIT_CLIENT) {
        let t = op.start_us;
        let mut in_fault = false;
        for bin in faults.values_mut() {
            if bin.contains(t) {
                bin.take(op);
                in_fault = true;
            }
        }
        if in_fault {
            continue;
        }
        if after_heal.contains(t) {
            after_heal.take(op);
        } else if healthy.contains(t) {
            healthy.take(op);
        } else if t >= start && t < heal {
            quiet.take(op);
        }
    }
    // The quiet time: the chaos phase minus the fault windows (faults do not overlap).
    let fault_time: u64 = faults
        .values()
        .flat_map(|b| b.intervals.iter())
        .map(|(a, b)| b.saturating_sub(*a))
        .sum();
    quiet
        .intervals
        .push((0, heal.saturating_sub(start).saturating_sub(fault_time)));

    let mut out = vec![quiet.finish()];
    out.extend(faults.into_values().map(Bin::finish));
    out.push(after_heal.finish());
    out.push(healthy.finish());
    out
}

/// One second of one node, for the plot.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Bucket {
    pub ok: usize,
    pub failed: usize,
    pub p99_ms: Option<f64>,
}

/// Per node (the node each request went to), per `bucket_us` of completion time: successes,
/// failures (refused or unknown) and the p99 latency of the successes.
pub fn series(history: &Indexed, bucket_us: u64) -> BTreeMap<String, Vec<Bucket>> {
    let bucket_us = bucket_us.max(1);
    let last = history.ops.iter().map(|o| o.end_us).max().unwrap_or(0);
    let buckets = (last / bucket_us + 1) as usize;
    let mut latencies: BTreeMap<String, Vec<Vec<f64>>> = BTreeMap::new();
    let mut out: BTreeMap<String, Vec<Bucket>> = BTreeMap::new();
    for node in &history.meta.nodes {
        out.insert(node.id.clone(), vec![Bucket::default(); buckets]);
        latencies.insert(node.id.clone(), vec![Vec::new(); buckets]);
    }
    for op in history.ops.iter().filter(|o| o.client != INIT_CLIENT) {
        let index = (op.end_us / bucket_us) as usize;
        let (Some(series), Some(lat)) = (out.get_mut(&op.node), latencies.get_mut(&op.node)) else {
            continue;
        };
        if op.outcome == Outcome::Ok {
            series[index].ok += 1;
            lat[index].push(op.latency_us() as f64 / 1000.0);
        } else {
            series[index].failed += 1;
        }
    }
    for (node, series) in out.iter_mut() {
        let Some(lat) = latencies.get_mut(node) else {
            continue;
        };
        for (bucket, values) in series.iter_mut().zip(lat.iter_mut()) {
            values.sort_by(f64::total_cmp);
            bucket.p99_ms = quantile(values, 0.99);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_pick_the_ranked_value() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&values, 0.99), Some(99.0));
        assert_eq!(quantile(&values, 0.5), Some(50.0));
        assert_eq!(quantile(&[3.0], 0.99), Some(3.0));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
