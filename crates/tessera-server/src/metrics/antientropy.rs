//! Metrics of anti-entropy (`tessera_antientropy_*`), gathered at scrape time from its status,
//! whose counters only ever grow.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use tessera_cluster::AntiEntropyStatus;

/// See the module docs.
pub struct AntiEntropyMetrics {
    exchanges: IntCounterVec,
    segments_compared: IntCounter,
    segments_differing: IntCounter,
    keys: IntCounterVec,
    bytes: IntCounter,
    tombstones_purged: IntCounter,
    tree_nodes_repaired: IntCounter,
    sweeps: IntCounter,
    oldest_unsynced: IntGauge,
}

fn catch_up(counter: &IntCounter, total: u64) {
    counter.inc_by(total.saturating_sub(counter.get()));
}

impl AntiEntropyMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let counter = IntCounter::new(name, help)?;
            registry.register(Box::new(counter.clone()))?;
            Ok(counter)
        };
        let exchanges = IntCounterVec::new(
            Opts::new(
                "tessera_antientropy_exchanges_total",
                "Exchanges this node started, by result: in_sync (roots equal), repaired (differences found and merged), failed.",
            ),
            &["result"],
        )?;
        registry.register(Box::new(exchanges.clone()))?;
        let keys = IntCounterVec::new(
            Opts::new(
                "tessera_antientropy_keys_total",
                "Cells moved by exchanges this node started: pulled (fetched and changed this replica), pushed (sent and changed the peer), repaired (held differently by both, merged on both).",
            ),
            &["direction"],
        )?;
        registry.register(Box::new(keys.clone()))?;
        let oldest_unsynced = IntGauge::new(
            "tessera_antientropy_oldest_unsynced_age_seconds",
            "Seconds since the partition least recently synced with every replica was (since start for one never synced).",
        )?;
        registry.register(Box::new(oldest_unsynced.clone()))?;
        Ok(Self {
            exchanges,
            keys,
            oldest_unsynced,
            segments_compared: counter(
                "tessera_antientropy_segments_compared_total",
                "Tree nodes (root, branches, segments) compared by exchanges this node started.",
            )?,
            segments_differing: counter(
                "tessera_antientropy_segments_differing_total",
                "Segments found to differ by exchanges this node started.",
            )?,
            bytes: counter(
                "tessera_antientropy_bytes_total",
                "Bytes of exchange messages sent and received, and of cells moved by repairs.",
            )?,
            tombstones_purged: counter(
                "tessera_antientropy_tombstones_purged_total",
                "Tombstones purged after every replica had them (not implemented yet: always 0).",
            )?,
            tree_nodes_repaired: counter(
                "tessera_antientropy_tree_nodes_repaired_total",
                "Nodes of kept trees found to differ from a rebuild from a scan, and corrected.",
            )?,
            sweeps: counter(
                "tessera_antientropy_sweeps_total",
                "Sweeps of every partition this node replicates, completed.",
            )?,
        })
    }

    /// Brings the metrics up to `status`.
    pub fn record(&self, status: &AntiEntropyStatus) {
        let repaired = status.exchanges.saturating_sub(status.exchanges_in_sync);
        for (result, total) in [
            ("in_sync", status.exchanges_in_sync),
            ("repaired", repaired),
            ("failed", status.exchanges_failed),
        ] {
            catch_up(&self.exchanges.with_label_values(&[result]), total);
        }
        for (direction, total) in [
            ("pulled", status.keys_pulled),
            ("pushed", status.keys_pushed),
            ("repaired", status.keys_repaired),
        ] {
            catch_up(&self.keys.with_label_values(&[direction]), total);
        }
        for (counter, total) in [
            (&self.segments_compared, status.segments_compared),
            (&self.segments_differing, status.segments_differing),
            (&self.bytes, status.bytes),
            (&self.tombstones_purged, status.tombstones_purged),
            (&self.tree_nodes_repaired, status.tree_nodes_repaired),
            (&self.sweeps, status.sweeps),
        ] {
            catch_up(counter, total);
        }
        let oldest = status
            .tables
            .iter()
            .map(|t| t.oldest_unsynced_age_ms / 1000)
            .max()
            .unwrap_or(0);
        self.oldest_unsynced
            .set(i64::try_from(oldest).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::Encoder as _;

    #[test]
    fn counters_follow_the_status() {
        let registry = Registry::new();
        let metrics = AntiEntropyMetrics::new(&registry).unwrap();
        let mut status = AntiEntropyStatus {
            exchanges: 10,
            exchanges_in_sync: 7,
            keys_pulled: 5,
            ..AntiEntropyStatus::default()
        };
        metrics.record(&status);
        status.keys_pulled = 9;
        metrics.record(&status);
        let mut text = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&registry.gather(), &mut text)
            .unwrap();
        let text = String::from_utf8(text).unwrap();
        for line in [
            "tessera_antientropy_exchanges_total{result=\"in_sync\"} 7",
            "tessera_antientropy_exchanges_total{result=\"repaired\"} 3",
            "tessera_antientropy_keys_total{direction=\"pulled\"} 9",
            "tessera_antientropy_tombstones_purged_total 0",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
