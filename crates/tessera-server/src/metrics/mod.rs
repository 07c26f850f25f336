//! Prometheus metrics of a node: requests, latency, siblings, storage size, the coordinator, hints,
//! membership, (in [`workers`]) the background workers, (in [`transfers`]) partition
//! transfers, and (in [`antientropy`]) anti-entropy.

mod antientropy;
mod transfers;
mod workers;

use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The node's metrics, registered in one registry that `/metrics` renders.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pub cell_siblings: Histogram,
    pub sibling_warnings: IntCounter,
    pub storage_bytes: IntGaugeVec,
    pub storage_keys: IntGaugeVec,
    coordinator_events: IntCounterVec,
    coordinator_background: prometheus::IntGauge,
    hints_pending: prometheus::IntGauge,
    hints_pending_by_target: IntGaugeVec,
    hints_delivered: IntCounter,
    commit_batches: IntCounter,
    commit_writes: IntCounter,
    cell_cache_hits: IntCounter,
    cell_cache_misses: IntCounter,
    cell_cache_entries: prometheus::IntGauge,
    cell_cache_bytes: prometheus::IntGauge,
    hints_failed: IntCounter,
    hints_expired: IntCounter,
    hints_redirected: IntCounter,
    membership_events: IntCounterVec,
    membership_members: IntGaugeVec,
    membership_rejected: IntCounterVec,
    pub workers: workers::WorkerMetrics,
    pub transfers: transfers::TransferMetrics,
    pub antientropy: antientropy::AntiEntropyMetrics,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("tessera_http_requests_total", "HTTP requests answered."),
            &["method", "route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "tessera_http_request_duration_seconds",
                "HTTP request latency, from routing to response.",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5, 5.0,
            ]),
            &["method", "route", "status"],
        )?;
        let cell_siblings = Histogram::with_opts(
            HistogramOpts::new(
                "tessera_cell_siblings",
                "Versions of a cell after each write.",
            )
            .buckets(vec![1.0, 2.0, 3.0, 5.0, 10.0, 25.0, 50.0, 100.0]),
        )?;
        let sibling_warnings = IntCounter::new(
            "tessera_sibling_warnings_total",
            "Writes that left a cell at or above the sibling warning threshold.",
        )?;
        let storage_bytes = IntGaugeVec::new(
            Opts::new(
                "tessera_storage_bytes",
                "Live data size per column family (estimate).",
            ),
            &["cf"],
        )?;
        let storage_keys = IntGaugeVec::new(
            Opts::new("tessera_storage_keys", "Keys per column family (estimate)."),
            &["cf"],
        )?;
        let coordinator_events = IntCounterVec::new(
            Opts::new(
                "tessera_coordinator_events_total",
                "What this node's coordinator did: writes, replication, reads, read repairs, by outcome.",
            ),
            &["event"],
        )?;
        let coordinator_background = prometheus::IntGauge::new(
            "tessera_coordinator_background_tasks",
            "Replication stragglers and read repairs still running.",
        )?;
        let hints_pending = prometheus::IntGauge::new(
            "tessera_hints_pending",
            "Hints this node holds for other nodes, waiting for delivery.",
        )?;
        let hints_pending_by_target = IntGaugeVec::new(
            Opts::new(
                "tessera_hints_pending_by_target",
                "Hints this node holds, by the node they are for.",
            ),
            &["target"],
        )?;
        let commit_batches = IntCounter::new(
            "tessera_storage_commit_batches_total",
            "Engine writes of the group commit; writes_total divided by this is the mean batch.",
        )?;
        let commit_writes = IntCounter::new(
            "tessera_storage_commit_writes_total",
            "Row writes, merges and read repairs applied by the group commit.",
        )?;
        let cell_cache_hits = IntCounter::new(
            "tessera_cell_cache_hits_total",
            "Cell reads (for writes, merges and reads) answered by the cell cache.",
        )?;
        let cell_cache_misses = IntCounter::new(
            "tessera_cell_cache_misses_total",
            "Cell reads that went to RocksDB.",
        )?;
        let cell_cache_entries =
            prometheus::IntGauge::new("tessera_cell_cache_entries", "Cells the cell cache holds.")?;
        let cell_cache_bytes = prometheus::IntGauge::new(
            "tessera_cell_cache_bytes",
            "Estimated bytes the cell cache holds (storage.cell_cache_mb caps it).",
        )?;
        let hints_delivered = IntCounter::new(
            "tessera_hints_delivered_total",
            "Hints delivered to the node they were for.",
        )?;
        let hints_failed = IntCounter::new(
            "tessera_hint_delivery_failures_total",
            "Hint deliveries that failed and will be retried.",
        )?;
        let hints_expired = IntCounter::new(
            "tessera_hints_expired_total",
            "Hints dropped undelivered after the hint window; anti-entropy must repair their data.",
        )?;
        let hints_redirected = IntCounter::new(
            "tessera_hints_redirected_total",
            "Hints for nodes that left the ring, handed to the rows' current owners.",
        )?;
        let membership_events = IntCounterVec::new(
            Opts::new(
                "tessera_membership_events_total",
                "SWIM protocol totals of this node: probes, acks, nacks, suspicions raised, false suspicions refuted, deaths declared, stalls, datagrams and bytes sent and received.",
            ),
            &["event"],
        )?;
        let membership_members = IntGaugeVec::new(
            Opts::new(
                "tessera_membership_members",
                "Other members this node knows, by SWIM state.",
            ),
            &["state"],
        )?;
        let membership_rejected = IntCounterVec::new(
            Opts::new(
                "tessera_membership_datagrams_rejected_total",
                "Membership datagrams dropped unread: bad or missing HMAC tag, or undecodable.",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(membership_events.clone()))?;
        registry.register(Box::new(membership_members.clone()))?;
        registry.register(Box::new(membership_rejected.clone()))?;
        registry.register(Box::new(hints_pending.clone()))?;
        registry.register(Box::new(hints_pending_by_target.clone()))?;
        for metric in [
            &hints_delivered,
            &hints_failed,
            &hints_expired,
            &hints_redirected,
        ] {
            registry.register(Box::new(metric.clone()))?;
        }
        registry.register(Box::new(coordinator_events.clone()))?;
        registry.register(Box::new(coordinator_background.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(cell_siblings.clone()))?;
        registry.register(Box::new(sibling_warnings.clone()))?;
        registry.register(Box::new(storage_bytes.clone()))?;
        registry.register(Box::new(commit_batches.clone()))?;
        registry.register(Box::new(commit_writes.clone()))?;
        registry.register(Box::new(cell_cache_hits.clone()))?;
        registry.register(Box::new(cell_cache_misses.clone()))?;
        registry.register(Box::new(cell_cache_entries.clone()))?;
        registry.register(Box::new(cell_cache_bytes.clone()))?;
        registry.register(Box::new(storage_keys.clone()))?;
        let workers = workers::WorkerMetrics::new(&registry)?;
        let transfers = transfers::TransferMetrics::new(&registry)?;
        let antientropy = antientropy::AntiEntropyMetrics::new(&registry)?;
        Ok(Self {
            workers,
            transfers,
            antientropy,
            registry,
            requests,
            latency,
            cell_siblings,
            sibling_warnings,
            storage_bytes,
            storage_keys,
            coordinator_events,
            coordinator_background,
            hints_pending,
            hints_pending_by_target,
            hints_delivered,
            commit_batches,
            commit_writes,
            cell_cache_hits,
            cell_cache_misses,
            cell_cache_entries,
            cell_cache_bytes,
            hints_failed,
            hints_expired,
            hints_redirected,
            membership_events,
            membership_members,
            membership_rejected,
        })
    }

    /// Brings the membership counters up to the state machine's totals, and the member gauges
    /// to its current view.
    pub fn record_membership(&self, swim: &tessera_membership::Swim) {
        let c = swim.counters();
        let events = [
            ("probes", c.probes_sent),
            ("expedited_probes", c.expedited_probes),
            ("verification_probes", c.verification_probes),
            ("acks", c.acks_received),
            ("ping_reqs", c.ping_reqs_sent),
            ("nacks_sent", c.nacks_sent),
            ("nacks_received", c.nacks_received),
            ("probe_failures", c.probe_failures),
            ("suspicions", c.suspicions_raised),
            ("false_suspicions_refuted", c.false_suspicions_refuted),
            ("refutations", c.refutations),
            ("deaths", c.deaths_declared),
            ("stalls", c.stalls),
            ("messages_sent", c.messages_sent),
            ("bytes_sent", c.bytes_sent),
            ("messages_received", c.messages_received),
            ("bytes_received", c.bytes_received),
            ("decode_errors", c.decode_errors),
        ];
        for (event, total) in events {
            let counter = self.membership_events.with_label_values(&[event]);
            counter.inc_by(total.saturating_sub(counter.get()));
        }
        for state in [
            tessera_membership::State::Alive,
            tessera_membership::State::Suspect,
            tessera_membership::State::Dead,
            tessera_membership::State::Left,
        ] {
            let count = swim.members().filter(|m| m.state == state).count();
            self.membership_members
                .with_label_values(&[crate::gossip::state_name(state)])
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    /// Counts a membership datagram dropped before decoding.
    pub fn membership_rejected(&self, reason: &str) {
        self.membership_rejected.with_label_values(&[reason]).inc();
    }

    /// Hint gauges from the store's exact counts, and counters from the delivery task's totals.
    pub fn record_hints(
        &self,
        pending: &[tessera_storage::hints::HintTargetStats],
        delivery: &tessera_cluster::handoff::HandoffStatus,
    ) {
        self.hints_pending_by_target.reset();
        let mut total = 0u64;
        for target in pending {
            total += target.count;
            self.hints_pending_by_target
                .with_label_values(&[target.target.as_str()])
                .set(i64::try_from(target.count).unwrap_or(i64::MAX));
        }
        self.hints_pending
            .set(i64::try_from(total).unwrap_or(i64::MAX));
        for (counter, value) in [
            (&self.hints_delivered, delivery.delivered),
            (&self.hints_failed, delivery.failed),
            (&self.hints_expired, delivery.expired),
            (&self.hints_redirected, delivery.redirected),
        ] {
            counter.inc_by(value.saturating_sub(counter.get()));
        }
    }

    /// Brings the group-commit counters up to the writer's own (which only ever grow).
    pub fn record_commits(&self, stats: &tessera_cluster::CommitStats) {
        use std::sync::atomic::Ordering::Relaxed;
        for (counter, value) in [
            (&self.commit_batches, stats.batches.load(Relaxed)),
            (&self.commit_writes, stats.ops.load(Relaxed)),
        ] {
            counter.inc_by(value.saturating_sub(counter.get()));
        }
    }

    /// Brings the cell-cache counters up to the store's own, and sets its gauges.
    pub fn record_cell_cache(&self, stats: &tessera_storage::CellCacheStats) {
        for (counter, value) in [
            (&self.cell_cache_hits, stats.hits),
            (&self.cell_cache_misses, stats.misses),
        ] {
            counter.inc_by(value.saturating_sub(counter.get()));
        }
        self.cell_cache_entries
            .set(i64::try_from(stats.entries).unwrap_or(i64::MAX));
        self.cell_cache_bytes
            .set(i64::try_from(stats.bytes).unwrap_or(i64::MAX));
    }

    /// Brings the coordinator counters up to the coordinator's own (which only ever grow).
    pub fn record_coordinator(&self, stats: &tessera_cluster::StatsSnapshot) {
        let events = [
            ("writes", stats.writes),
            ("writes_forwarded", stats.writes_forwarded),
            ("writes_succeeded", stats.writes_succeeded),
            ("writes_unavailable", stats.writes_unavailable),
            ("writes_failed", stats.writes_failed),
            ("writes_timed_out", stats.writes_timed_out),
            ("replication_sent", stats.replication_sent),
            ("replication_failed", stats.replication_failed),
            ("reads", stats.reads),
            ("reads_succeeded", stats.reads_succeeded),
            ("reads_unavailable", stats.reads_unavailable),
            ("reads_failed", stats.reads_failed),
            ("reads_timed_out", stats.reads_timed_out),
            ("repairs_sent", stats.repairs_sent),
            ("repair_cells", stats.repair_cells),
            ("repairs_failed", stats.repairs_failed),
            ("hints_sent", stats.hints_sent),
            ("hints_counted", stats.hints_counted),
            ("hints_failed", stats.hints_failed),
            ("hints_stored_locally", stats.hints_stored_locally),
            ("hints_lost", stats.hints_lost),
            ("stragglers", stats.stragglers),
            ("stragglers_hinted", stats.stragglers_hinted),
            ("repairs_skipped", stats.repairs_skipped),
        ];
        for (event, total) in events {
            let counter = self.coordinator_events.with_label_values(&[event]);
            counter.inc_by(total.saturating_sub(counter.get()));
        }
        self.coordinator_background
            .set(i64::try_from(stats.background_in_flight).unwrap_or(i64::MAX));
    }

    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let status = status.to_string();
        let labels = [method, route, status.as_str()];
        self.requests.with_label_values(&labels).inc();
        self.latency
            .with_label_values(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// The registry in Prometheus text format.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        String::from_utf8(buffer).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let metrics = Metrics::new().unwrap();
        metrics.observe_request("GET", "/health", 200, Duration::from_millis(1));
        metrics.cell_siblings.observe(2.0);
        let text = metrics.render().unwrap();
        assert!(text.contains(
            "tessera_http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"} 1"
        ));
        assert!(text.contains("tessera_http_request_duration_seconds_bucket"));
        assert!(text.contains("tessera_cell_siblings_count 1"));
    }
}
