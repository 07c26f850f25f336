//! Counters of the coordinator's work, for the server's metrics endpoint.
//!
//! Plain relaxed atomics: each is an independent count, read for export, so
//! no ordering between them is needed.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! stats {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// Live counters, shared by a coordinator and its background tasks.
        #[derive(Debug, Default)]
        pub struct CoordinatorStats {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        /// A copy of the counters at one moment.
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct StatsSnapshot {
            $($(#[$doc])* pub $name: u64,)*
        }

        impl CoordinatorStats {
            /// Reads every counter.
            pub fn snapshot(&self) -> StatsSnapshot {
                StatsSnapshot {
                    $($name: self.$name.load(Ordering::Relaxed),)*
                }
            }
        }
    };
}

stats! {
    /// Writes received (forwarded ones included).
    writes,
    /// Writes this node forwarded because it is not a replica of the key.
    writes_forwarded,
    /// Writes acknowledged to the caller.
    writes_succeeded,
    /// Writes refused because too few replicas were alive.
    writes_unavailable,
    /// Writes whose quorum failed.
    writes_failed,
    /// Writes whose quorum was not reached before the deadline.
    writes_timed_out,
    /// `Merge` messages sent to replicate a write.
    replication_sent,
    /// `Merge` messages for a write that failed or timed out (acked late ones included).
    replication_failed,
    /// Reads received (each round of a paged row read counts).
    reads,
    /// Reads answered to the caller.
    reads_succeeded,
    /// Reads refused because too few replicas were alive.
    reads_unavailable,
    /// Reads whose quorum failed.
    reads_failed,
    /// Reads whose quorum was not reached before the deadline.
    reads_timed_out,
    /// `StoreHint` messages sent to fallbacks for replicas that were down or failed.
    hints_sent,
    /// Hints a fallback stored that counted towards W.
    hints_counted,
    /// `StoreHint` messages that failed (the next fallback was tried).
    hints_failed,
    /// Hints this coordinator kept itself because no fallback took them
    /// (or a replica timed out); they never count towards W.
    hints_stored_locally,
    /// Hints that could not be stored anywhere: that replica misses the write
    /// until read repair or anti-entropy.
    hints_lost,
    /// Read-repair merges sent (one per stale replica per read).
    repairs_sent,
    /// Cells carried by read-repair merges.
    repair_cells,
    /// Read-repair merges that failed or timed out.
    repairs_failed,
    /// Replica copies still running when their write was answered (stragglers).
    stragglers,
    /// Stragglers kept as hints on this node instead: over the background budget, or still
    /// running when the node stopped.
    stragglers_hinted,
    /// Read repairs skipped: over the background budget, or cut short when the node stopped.
    repairs_skipped,
    /// Background tasks (replication stragglers, read repair) still running.
    background_in_flight,
}

impl CoordinatorStats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dec(counter: &AtomicU64) {
        counter.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts a background task in [`CoordinatorStats::background_in_flight`] while alive.
pub(crate) struct InFlight(std::sync::Arc<CoordinatorStats>);

impl InFlight {
    pub(crate) fn new(stats: std::sync::Arc<CoordinatorStats>) -> Self {
        CoordinatorStats::inc(&stats.background_in_flight);
        Self(stats)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        CoordinatorStats::dec(&self.0.background_in_flight);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn snapshot_reads_counters_and_in_flight_is_a_gauge() {
        let stats = Arc::new(CoordinatorStats::default());
        CoordinatorStats::inc(&stats.writes);
        CoordinatorStats::add(&stats.repair_cells, 5);
        let guard = InFlight::new(stats.clone());
        let snap = stats.snapshot();
        assert_eq!(snap.writes, 1);
        assert_eq!(snap.repair_cells, 5);
        assert_eq!(snap.background_in_flight, 1);
        drop(guard);
        assert_eq!(stats.snapshot().background_in_flight, 0);
    }
}
