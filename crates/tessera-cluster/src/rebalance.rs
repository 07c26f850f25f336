//! What one node does, step by step, to move through a layout change: the decisions of the
//! server's `rebalance` worker, without its I/O or its clock.
//!
//! The steps are those of `tessera-layout` (see its crate docs):
//! 1. **ack**: once the writes this node planned under the previous epoch have passed their
//!    deadline (the caller says so: `drained`), publish that it writes under the new one;
//! 2. **sync**: once every node has acked, give the transfer engine the (table, partition)s this
//!    node joins, and publish each partition whose transfers all completed;
//! 3. **read**: once every partition is held whole by its new replicas, publish that this node
//!    reads from the new ring;
//! 4. **cleanup**: once every node reads from the new ring and a grace period has passed, drop
//!    the partitions this node no longer replicates.
//!
//! Why a module of its own: the server drives these steps with persisted progress, gossip and
//! RocksDB, and the deterministic simulation (`tests/layout_sim.rs`) drives the very same
//! decisions over in-memory nodes and a simulated network, so that what the simulation checks is
//! what a real node does. The caller performs each [`MoveStep`] (persisting and publishing the
//! progress it changes) and each cleanup, then asks again.

use std::collections::BTreeMap;
use std::time::Duration;

use tessera_layout::{Layout, NodeProgress};
use tessera_storage::{Engine, TableId};
use tokio::time::Instant;

use crate::topology::TopologyState;
use crate::transfer::{EnqueueReport, Transfer, TransferKey, Transfers};
use crate::transport::{NodeId, Transport};

/// A table as moves see it: its id and replication factor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableReplicas {
    /// The table.
    pub id: TableId,
    /// Its replication factor (N).
    pub replication: u32,
}

/// What the move steps need of the transfer engine: [`Transfers`] in a node.
pub trait TransferQueue {
    /// Gives the engine these transfers (it skips what it has; see [`Transfers::enqueue`]).
    fn enqueue(&self, transfers: Vec<Transfer>) -> EnqueueReport;
    /// Whether the transfer `key` completed.
    fn is_completed(&self, key: &TransferKey) -> bool;
}

impl<T: Transport, E: Engine> TransferQueue for Transfers<T, E> {
    fn enqueue(&self, transfers: Vec<Transfer>) -> EnqueueReport {
        Transfers::enqueue(self, transfers)
    }

    fn is_completed(&self, key: &TransferKey) -> bool {
        Transfers::is_completed(self, key)
    }
}

/// A change of this node's published progress, decided by [`MoveDriver::advance`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MoveStep {
    /// Step 1: this node writes under `epoch`.
    Ack { epoch: u64 },
    /// Step 2: this node holds `partitions` of `epoch` whole (for every table).
    Synced { epoch: u64, partitions: Vec<u16> },
    /// Step 3: this node reads from `epoch`'s ring everywhere.
    Read { epoch: u64 },
}

impl MoveStep {
    /// Applies the step to this node's progress (only ever growing it).
    pub fn apply(&self, progress: &mut NodeProgress) {
        match self {
            MoveStep::Ack { epoch } => progress.acked = progress.acked.max(*epoch),
            MoveStep::Synced { epoch, partitions } => {
                if progress.synced_epoch < *epoch {
                    progress.synced_epoch = *epoch;
                    progress.synced = Default::default();
                }
                if progress.synced_epoch == *epoch {
                    for partition in partitions {
                        progress.synced.insert(*partition);
                    }
                }
            }
            MoveStep::Read { epoch } => progress.reading = progress.reading.max(*epoch),
        }
    }

    /// One line for logs and the worker's status.
    pub fn describe(&self) -> String {
        match self {
            MoveStep::Ack { epoch } => format!("acknowledged epoch {epoch}"),
            MoveStep::Synced { epoch, partitions } => format!(
                "holds {} more partitions of epoch {epoch}",
                partitions.len()
            ),
            MoveStep::Read { epoch } => format!("reading epoch {epoch}"),
        }
    }
}

/// What [`MoveDriver::advance`] decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Advance {
    /// The progress to publish, if any.
    pub step: Option<MoveStep>,
    /// What the transfer engine did with this node's transfers, when step 2 gave them.
    pub enqueued: Option<EnqueueReport>,
}

/// The transfers node `me` must pull for `layout`: every (table, partition) it joins, from the
/// layout's sources.
pub fn transfers_for(me: &NodeId, layout: &Layout, tables: &[TableReplicas]) -> Vec<Transfer> {
    let partitions = layout.ring().scheme().count() as u16;
    let mut transfers = Vec::new();
    for table in tables {
        for partition in 0..partitions {
            if layout.joining(partition, table.replication).contains(me) {
                transfers.push(Transfer {
                    epoch: layout.epoch(),
                    table: table.id,
                    partition,
                    sources: layout.sources(partition, table.replication, me),
                });
            }
        }
    }
    transfers
}

/// The partitions of `transfers` whose every transfer (one per table) completed.
pub fn synced_partitions(
    transfers: &[Transfer],
    completed: impl Fn(&TransferKey) -> bool,
) -> Vec<u16> {
    let mut complete: BTreeMap<u16, bool> = BTreeMap::new();
    for transfer in transfers {
        let done = completed(&transfer.key());
        complete
            .entry(transfer.partition)
            .and_modify(|all| *all &= done)
            .or_insert(done);
    }
    complete
        .into_iter()
        .filter_map(|(partition, done)| done.then_some(partition))
        .collect()
}

/// The (table, partition)s node `me` replicated in `layout`'s previous ring and does not in its
/// ring: what it drops once the move is over.
pub fn leftovers(me: &NodeId, layout: &Layout, tables: &[TableReplicas]) -> Vec<(TableId, u16)> {
    let Some(previous) = layout.previous() else {
        return Vec::new();
    };
    let partitions = layout.ring().scheme().count() as u16;
    let mut out = Vec::new();
    for table in tables {
        let n = table.replication as usize;
        for partition in 0..partitions {
            let kept = layout.ring().preference_list(partition, n).contains(me);
            let held = previous.preference_list(partition, n).contains(me);
            if held && !kept {
                out.push((table.id, partition));
            }
        }
    }
    out
}

/// One node's way through layout changes; see the module docs. Holds only what the decisions
/// must remember between calls: when the move was first seen complete, and the last epoch
/// cleaned up.
#[derive(Clone, Debug)]
pub struct MoveDriver {
    me: NodeId,
    /// The epoch whose move this node saw complete, and when.
    complete_since: Option<(u64, Instant)>,
    /// The last epoch whose leftovers were dropped.
    cleaned: u64,
}

impl MoveDriver {
    /// The driver of node `me`, whose leftovers were dropped up to epoch `cleaned` (persisted by
    /// the caller across restarts).
    pub fn new(me: impl Into<NodeId>, cleaned: u64) -> Self {
        Self {
            me: me.into(),
            complete_since: None,
            cleaned,
        }
    }

    /// The node driven.
    pub fn node(&self) -> &NodeId {
        &self.me
    }

    /// The last epoch whose leftovers were dropped.
    pub fn cleaned(&self) -> u64 {
        self.cleaned
    }

    /// Steps 1 to 3 for `layout`, the layout `state` holds: what to publish next, given this
    /// node's own progress `own` and whether the writes it planned under the previous epoch have
    /// passed their deadline (`drained`). Step 2 gives the engine this node's transfers (again:
    /// it skips what it has).
    pub fn advance(
        &self,
        layout: &Layout,
        state: &TopologyState,
        own: &NodeProgress,
        tables: &[TableReplicas],
        drained: bool,
        transfers: &impl TransferQueue,
    ) -> Advance {
        let epoch = layout.epoch();
        let mut out = Advance::default();
        if own.acked < epoch {
            if drained || !layout.is_move() {
                out.step = Some(MoveStep::Ack { epoch });
            }
            return out;
        }
        if !layout.is_move() || state.complete() || !state.progress.all_acked(layout) {
            return out;
        }
        let mine = transfers_for(&self.me, layout, tables);
        out.enqueued = Some(transfers.enqueue(mine.clone()));
        let new: Vec<u16> = synced_partitions(&mine, |key| transfers.is_completed(key))
            .into_iter()
            .filter(|p| !own.has_synced(epoch, *p))
            .collect();
        if !new.is_empty() {
            out.step = Some(MoveStep::Synced {
                epoch,
                partitions: new,
            });
        } else if own.reading < epoch
            && state
                .progress
                .all_synced(layout, &state.replication_factors)
        {
            out.step = Some(MoveStep::Read { epoch });
        }
        out
    }

    /// Step 4: the (table, partition)s to drop now, if `layout`'s move has been complete
    /// everywhere (as `state` knows) for `grace` as of `now` and its leftovers were not dropped
    /// yet. The caller drops them, then calls [`Self::cleaned_up`].
    pub fn cleanup_due(
        &mut self,
        layout: &Layout,
        state: &TopologyState,
        tables: &[TableReplicas],
        now: Instant,
        grace: Duration,
    ) -> Option<Vec<(TableId, u16)>> {
        let epoch = layout.epoch();
        if !layout.is_move() || self.cleaned >= epoch || !state.complete() {
            return None;
        }
        let since = match self.complete_since {
            Some((seen, at)) if seen == epoch => at,
            _ => {
                self.complete_since = Some((epoch, now));
                return None;
            }
        };
        if now.saturating_duration_since(since) < grace {
            return None;
        }
        Some(leftovers(&self.me, layout, tables))
    }

    /// Records that `epoch`'s leftovers were dropped.
    pub fn cleaned_up(&mut self, epoch: u64) {
        self.cleaned = self.cleaned.max(epoch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::{BTreeSet, HashSet};
    use tessera_ring::{PartitionScheme, Ring};

    /// A transfer queue that completes whatever the test says.
    #[derive(Default)]
    struct Queue {
        given: RefCell<Vec<Transfer>>,
        done: RefCell<HashSet<TransferKey>>,
    }

    impl TransferQueue for Queue {
        fn enqueue(&self, transfers: Vec<Transfer>) -> EnqueueReport {
            *self.given.borrow_mut() = transfers;
            EnqueueReport::default()
        }

        fn is_completed(&self, key: &TransferKey) -> bool {
            self.done.borrow().contains(key)
        }
    }

    const TABLES: [TableReplicas; 1] = [TableReplicas {
        id: 1,
        replication: 3,
    }];

    fn moving() -> Layout {
        let scheme = PartitionScheme::new(16).unwrap();
        let ring = Ring::new(scheme, ["a", "b", "c"].map(String::from), 3).unwrap();
        Layout::first(ring.clone())
            .moving_to(ring.with_node_added("d".into()).unwrap(), BTreeSet::new())
            .unwrap()
    }

    fn state(layout: &Layout, progress: &[(&str, &NodeProgress)]) -> TopologyState {
        let mut state = TopologyState {
            layout: Some(layout.clone()),
            replication_factors: vec![3],
            ..TopologyState::default()
        };
        for (node, p) in progress {
            state.progress.record(node, p);
        }
        state
    }

    #[test]
    fn a_joining_node_acks_syncs_reads_and_cleans_up_in_order() {
        let layout = moving();
        let epoch = layout.epoch();
        let d = MoveDriver::new("d", 0);
        let queue = Queue::default();
        let mut own = NodeProgress::default();
        let others = NodeProgress {
            acked: epoch,
            ..NodeProgress::default()
        };
        let view = |own: &NodeProgress| {
            state(
                &layout,
                &[("a", &others), ("b", &others), ("c", &others), ("d", own)],
            )
        };
        // Not drained: nothing yet.
        assert_eq!(
            d.advance(&layout, &view(&own), &own, &TABLES, false, &queue),
            Advance::default()
        );
        let step = d
            .advance(&layout, &view(&own), &own, &TABLES, true, &queue)
            .step
            .unwrap();
        assert_eq!(step, MoveStep::Ack { epoch });
        step.apply(&mut own);
        // Acked everywhere: the transfers go to the engine; none done, nothing to publish.
        let advance = d.advance(&layout, &view(&own), &own, &TABLES, true, &queue);
        assert!(advance.step.is_none() && advance.enqueued.is_some());
        let given = queue.given.borrow().clone();
        assert!(!given.is_empty());
        assert_eq!(given, transfers_for(&"d".to_owned(), &layout, &TABLES));
        for transfer in &given {
            queue.done.borrow_mut().insert(transfer.key());
        }
        let step = d
            .advance(&layout, &view(&own), &own, &TABLES, true, &queue)
            .step
            .unwrap();
        let partitions: Vec<u16> = given.iter().map(|t| t.partition).collect();
        assert_eq!(
            step,
            MoveStep::Synced {
                epoch,
                partitions: partitions.clone()
            }
        );
        step.apply(&mut own);
        // d is the only joiner: every partition is synced, so it reads the new ring.
        let step = d
            .advance(&layout, &view(&own), &own, &TABLES, true, &queue)
            .step
            .unwrap();
        assert_eq!(step, MoveStep::Read { epoch });
        step.apply(&mut own);
        assert_eq!(
            d.advance(&layout, &view(&own), &own, &TABLES, true, &queue)
                .step,
            None
        );
        // Cleanup waits for everyone to read, then for the grace.
        let mut a = MoveDriver::new("a", 0);
        let t0 = Instant::now();
        let grace = Duration::from_secs(10);
        assert_eq!(
            a.cleanup_due(&layout, &view(&own), &TABLES, t0, grace),
            None
        );
        let reading = NodeProgress {
            acked: epoch,
            reading: epoch,
            ..NodeProgress::default()
        };
        let done = state(
            &layout,
            &[
                ("a", &reading),
                ("b", &reading),
                ("c", &reading),
                ("d", &own),
            ],
        );
        assert_eq!(a.cleanup_due(&layout, &done, &TABLES, t0, grace), None);
        assert_eq!(
            a.cleanup_due(&layout, &done, &TABLES, t0 + grace / 2, grace),
            None
        );
        let dropped = a
            .cleanup_due(&layout, &done, &TABLES, t0 + grace, grace)
            .unwrap();
        assert_eq!(dropped, leftovers(&"a".to_owned(), &layout, &TABLES));
        assert!(dropped
            .iter()
            .all(|(_, p)| !layout.ring().preference_list(*p, 3).contains(&"a".into())));
        a.cleaned_up(epoch);
        assert_eq!(
            a.cleanup_due(&layout, &done, &TABLES, t0 + grace * 2, grace),
            None
        );
    }

    #[test]
    fn synced_needs_every_table_and_steps_only_grow_progress() {
        let key = |table, partition| Transfer {
            epoch: 2,
            table,
            partition,
            sources: vec!["a".into()],
        };
        let transfers = [key(1, 3), key(2, 3), key(1, 5)];
        let done = [transfers[0].key(), transfers[2].key()];
        assert_eq!(synced_partitions(&transfers, |k| done.contains(k)), [5]);
        let mut p = NodeProgress {
            acked: 4,
            reading: 4,
            synced_epoch: 4,
            ..NodeProgress::default()
        };
        for step in [
            MoveStep::Ack { epoch: 2 },
            MoveStep::Read { epoch: 3 },
            MoveStep::Synced {
                epoch: 3,
                partitions: vec![1],
            },
        ] {
            step.apply(&mut p);
        }
        assert_eq!((p.acked, p.reading, p.synced_epoch), (4, 4, 4));
        assert!(p.synced.is_empty());
    }
}
