//! Metrics of partition transfers (`tessera_transfer_*`): what this node pulled as a receiver,
//! what it served as a source, and how many transfers are under way. Gathered at scrape time from
//! the transfer engine's counters and status, which only ever grow or are current.

use std::sync::atomic::Ordering::Relaxed;

use prometheus::{IntCounter, IntGauge, Registry};
use tessera_cluster::transfer::{SourceStats, TransferStats, TransfersReport};

/// See the module docs.
pub struct TransferMetrics {
    bytes_received: IntCounter,
    keys_received: IntCounter,
    chunks_received: IntCounter,
    bytes_sent: IntCounter,
    keys_sent: IntCounter,
    chunks_sent: IntCounter,
    resent_chunks: IntCounter,
    failures: IntCounter,
    completed: IntCounter,
    active: IntGauge,
    pending: IntGauge,
}

fn catch_up(counter: &IntCounter, total: u64) {
    counter.inc_by(total.saturating_sub(counter.get()));
}

impl TransferMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let counter = IntCounter::new(name, help)?;
            registry.register(Box::new(counter.clone()))?;
            Ok(counter)
        };
        let gauge = |name: &str, help: &str| -> Result<IntGauge, prometheus::Error> {
            let gauge = IntGauge::new(name, help)?;
            registry.register(Box::new(gauge.clone()))?;
            Ok(gauge)
        };
        Ok(Self {
            bytes_received: counter(
                "tessera_transfer_bytes_received_total",
                "Bytes of cells (keys and stored values) this node pulled from other nodes and merged.",
            )?,
            keys_received: counter(
                "tessera_transfer_keys_received_total",
                "Cells this node pulled from other nodes and merged.",
            )?,
            chunks_received: counter(
                "tessera_transfer_chunks_received_total",
                "Chunks this node pulled and merged.",
            )?,
            bytes_sent: counter(
                "tessera_transfer_bytes_sent_total",
                "Bytes of cells this node sent to nodes pulling its partitions.",
            )?,
            keys_sent: counter(
                "tessera_transfer_keys_sent_total",
                "Cells this node sent to nodes pulling its partitions.",
            )?,
            chunks_sent: counter(
                "tessera_transfer_chunks_sent_total",
                "Chunks this node served to nodes pulling its partitions.",
            )?,
            resent_chunks: counter(
                "tessera_transfer_chunk_resends_total",
                "Chunks this node asked for again: after a failed request or merge, or first after a restart.",
            )?,
            failures: counter(
                "tessera_transfer_failures_total",
                "Chunk requests or merges that failed (each retried after a backoff, maybe from another source).",
            )?,
            completed: counter(
                "tessera_transfer_completed_total",
                "Transfers this node completed.",
            )?,
            active: gauge(
                "tessera_transfer_active",
                "Transfers pulling now (at most rebalance.max_concurrent).",
            )?,
            pending: gauge(
                "tessera_transfer_pending",
                "Transfers not done yet: queued, pulling or backing off.",
            )?,
        })
    }

    /// Brings the metrics up to the engine's counters and status.
    pub fn record(&self, received: &TransferStats, sent: &SourceStats, report: &TransfersReport) {
        for (counter, value) in [
            (&self.bytes_received, received.bytes.load(Relaxed)),
            (&self.keys_received, received.keys.load(Relaxed)),
            (&self.chunks_received, received.chunks.load(Relaxed)),
            (&self.bytes_sent, sent.bytes.load(Relaxed)),
            (&self.keys_sent, sent.keys.load(Relaxed)),
            (&self.chunks_sent, sent.chunks.load(Relaxed)),
            (&self.resent_chunks, received.resent_chunks.load(Relaxed)),
            (&self.failures, received.failures.load(Relaxed)),
            (&self.completed, received.completed.load(Relaxed)),
        ] {
            catch_up(counter, value);
        }
        self.active.set(i64::from(report.running));
        self.pending.set(i64::from(report.pending));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::Encoder as _;

    #[test]
    fn counters_catch_up_with_the_engine() {
        let registry = Registry::new();
        let metrics = TransferMetrics::new(&registry).unwrap();
        let received = TransferStats::default();
        received.bytes.store(1000, Relaxed);
        received.resent_chunks.store(1, Relaxed);
        let sent = SourceStats::default();
        sent.keys.store(7, Relaxed);
        let report = TransfersReport {
            node: "n1".into(),
            max_concurrent: 2,
            max_bytes_per_second: None,
            running: 1,
            pending: 3,
            transfers: Vec::new(),
        };
        metrics.record(&received, &sent, &report);
        received.bytes.store(1500, Relaxed);
        metrics.record(&received, &sent, &report);
        let mut text = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&registry.gather(), &mut text)
            .unwrap();
        let text = String::from_utf8(text).unwrap();
        for line in [
            "tessera_transfer_bytes_received_total 1500",
            "tessera_transfer_keys_sent_total 7",
            "tessera_transfer_chunk_resends_total 1",
            "tessera_transfer_active 1",
            "tessera_transfer_pending 3",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
