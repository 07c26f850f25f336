//! The layout in force, and the placement questions everything else asks it.
//!
//! One [`Topology`] per node holds the committed layout of the highest epoch it knows (the ring of
//! that epoch and, while data moves to it, the ring before; see `tessera-layout`), the move
//! progress every node has published, and the replication factors of the tables. Every placement
//! question goes through it: the API's plan of a request, the coordinator, transfers and
//! anti-entropy, so that all of them agree on where a partition lives at any moment, and a change
//! of layout is one swap of an `Arc` here.
//!
//! For a partition and a replication factor N, a [`Placement`] gives:
//! - the **replicas** reads ask and writes count W in: the old ring's preference list until the
//!   partition's new replicas hold it whole, the new ring's after;
//! - during a move, the **other set** writes must also count W in, so that both sets hold every
//!   write acknowledged while data moves;
//! - the **fallbacks**: the nodes after them, in neither set, which keep hints for replicas that
//!   are down;
//! - the **joining** nodes: the new ring's replicas that were not replicas in the old one.
//!
//! A node that has not joined a cluster yet (started with seeds, no layout learned) has no
//! layout: every placement is empty, and requests are refused until gossip brings one.

use std::sync::{Arc, PoisonError, RwLock};

use tessera_layout::{Layout, NodeProgress, Progress};
use tessera_ring::{PartitionId, PartitionScheme, Ring};

use crate::transport::NodeId;

/// Where one partition's data lives now; see the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    /// The epoch of the layout these sets come from (0: no layout yet).
    pub epoch: u64,
    /// Replicas reads ask and writes count W in, in preference order: at most N.
    pub replicas: Vec<NodeId>,
    /// During a move, the other replica set writes must also count W in.
    pub also: Vec<NodeId>,
    /// Stand-ins for down replicas (sloppy quorum), in ring order, in neither set.
    pub fallbacks: Vec<NodeId>,
    /// Replicas of the new ring that were not replicas of the old one.
    pub joining: Vec<NodeId>,
}

/// What a topology holds at one moment.
#[derive(Clone, Debug, Default)]
pub struct TopologyState {
    /// The committed layout of the highest epoch known, if any.
    pub layout: Option<Layout>,
    /// What every node has published about moves.
    pub progress: Progress,
    /// The replication factors of the tables (a partition moves for every one of them).
    pub replication_factors: Vec<u32>,
}

impl TopologyState {
    /// Whether the layout's move, if any, is finished everywhere.
    pub fn complete(&self) -> bool {
        self.layout
            .as_ref()
            .is_none_or(|layout| self.progress.complete(layout))
    }

    /// The ring reads settle on once the move is over (the layout's own).
    pub fn ring(&self) -> Option<&Ring> {
        self.layout.as_ref().map(Layout::ring)
    }

    /// Whether `node` has left the cluster: neither the ring nor, while a move is under way, the
    /// ring before lists it (hints for it then go to the rows' owners). False without a layout.
    pub fn has_left(&self, node: &NodeId) -> bool {
        let Some(layout) = &self.layout else {
            return false;
        };
        let in_previous = !self.complete()
            && layout
                .previous()
                .is_some_and(|previous| previous.contains(node));
        !layout.ring().contains(node) && !in_previous
    }

    /// Every node that must hold `partition`'s writes now for replication `n`: the replicas, then
    /// the other set's nodes during a move. `None` without a layout (nobody can be told).
    pub fn owners(&self, partition: PartitionId, n: u32) -> Option<Vec<NodeId>> {
        let placement = self.placement(partition, n);
        if placement.epoch == 0 || placement.replicas.is_empty() {
            return None;
        }
        let mut owners = placement.replicas;
        for node in placement.also {
            if !owners.contains(&node) {
                owners.push(node);
            }
        }
        Some(owners)
    }

    /// See [`Topology::placement`].
    pub fn placement(&self, partition: PartitionId, n: u32) -> Placement {
        let Some(layout) = &self.layout else {
            return Placement::default();
        };
        if u32::from(partition) >= layout.ring().scheme().count() {
            return Placement {
                epoch: layout.epoch(),
                ..Placement::default()
            };
        }
        let mut ns = self.replication_factors.clone();
        if !ns.contains(&n) {
            ns.push(n);
        }
        let route = self.progress.route(layout, partition, n, &ns);
        Placement {
            epoch: layout.epoch(),
            replicas: route.read,
            also: route.write_also.unwrap_or_default(),
            fallbacks: route.fallbacks,
            joining: layout.joining(partition, n),
        }
    }
}

/// The node's layout and what it knows of moves; cheap to read from any thread (one `Arc` clone
/// under a read lock).
#[derive(Debug, Default)]
pub struct Topology {
    state: RwLock<Arc<TopologyState>>,
}

impl Topology {
    /// A topology holding `layout` (none: the node has not joined a cluster yet).
    pub fn new(layout: Option<Layout>) -> Self {
        Self {
            state: RwLock::new(Arc::new(TopologyState {
                layout,
                ..TopologyState::default()
            })),
        }
    }

    /// Everything as of now. Hold the returned `Arc` for a consistent view across questions.
    pub fn state(&self) -> Arc<TopologyState> {
        // Only an `Arc` lives under the lock and nothing panics holding it.
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn update(&self, change: impl FnOnce(&mut TopologyState) -> bool) -> bool {
        let mut guard = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let mut next = (**guard).clone();
        let changed = change(&mut next);
        if changed {
            *guard = Arc::new(next);
        }
        changed
    }

    /// The committed layout, if any.
    pub fn layout(&self) -> Option<Layout> {
        self.state().layout.clone()
    }

    /// The ring of the layout, if any.
    pub fn ring(&self) -> Option<Ring> {
        self.state().ring().cloned()
    }

    /// How the token space is cut, once a layout is known.
    pub fn scheme(&self) -> Option<PartitionScheme> {
        self.state().ring().map(Ring::scheme)
    }

    /// Takes `layout` if its epoch is higher than the one held; returns whether it did.
    pub fn adopt(&self, layout: Layout) -> bool {
        self.update(|state| {
            let newer = state
                .layout
                .as_ref()
                .is_none_or(|held| layout.epoch() > held.epoch());
            if newer {
                state.layout = Some(layout);
            }
            newer
        })
    }

    /// Takes `node`'s published progress; returns whether anything changed.
    pub fn record_progress(&self, node: &str, progress: &NodeProgress) -> bool {
        self.update(|state| {
            let before = state.progress.of(node).cloned();
            state.progress.record(node, progress);
            state.progress.of(node).cloned() != before
        })
    }

    /// Sets the tables' replication factors (distinct, any order).
    pub fn set_replication_factors(&self, mut ns: Vec<u32>) -> bool {
        ns.sort_unstable();
        ns.dedup();
        self.update(|state| {
            let changed = state.replication_factors != ns;
            state.replication_factors = ns;
            changed
        })
    }

    /// Where partition `partition` lives for a table of replication `n`. Empty without a layout,
    /// or for a partition outside the ring's scheme (a request naming one is refused).
    pub fn placement(&self, partition: PartitionId, n: u32) -> Placement {
        self.state().placement(partition, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn ring(nodes: &[&str]) -> Ring {
        Ring::new(
            PartitionScheme::new(16).unwrap(),
            nodes.iter().map(|n| n.to_string()),
            3,
        )
        .unwrap()
    }

    #[test]
    fn a_stable_layout_places_on_its_ring() {
        let current = ring(&["a", "b", "c", "d"]);
        let topology = Topology::new(Some(Layout::first(current.clone())));
        for p in 0..16 {
            let placement = topology.placement(p, 3);
            assert_eq!(placement.replicas, current.preference_list(p, 3));
            assert_eq!(placement.fallbacks, current.fallbacks(p, 3));
            assert!(placement.also.is_empty() && placement.joining.is_empty());
            assert_eq!(placement.epoch, 1);
        }
        assert!(topology.placement(16, 3).replicas.is_empty());
    }

    #[test]
    fn a_move_writes_both_sets_until_everyone_reads_the_new_ring() {
        let first = Layout::first(ring(&["a", "b", "c"]));
        let topology = Topology::new(Some(first.clone()));
        let moving = first
            .moving_to(
                first.ring().with_node_added("d".into()).unwrap(),
                BTreeSet::new(),
            )
            .unwrap();
        assert!(topology.adopt(moving.clone()));
        assert!(!topology.adopt(first), "an older layout is ignored");
        topology.set_replication_factors(vec![3]);
        let p = (0..16)
            .find(|&p| !moving.joining(p, 3).is_empty())
            .expect("d joins a partition");
        let (old, new) = moving.replica_sets(p, 3);
        let placement = topology.placement(p, 3);
        assert_eq!((placement.replicas, placement.also), (old, new.clone()));
        assert_eq!(placement.joining, vec!["d".to_owned()]);
        // Once every node reads from the new ring, one set.
        for node in moving.participants() {
            topology.record_progress(
                &node,
                &NodeProgress {
                    acked: 2,
                    reading: 2,
                    ..NodeProgress::default()
                },
            );
        }
        assert!(topology.state().complete());
        let placement = topology.placement(p, 3);
        assert_eq!((placement.replicas, placement.also), (new, Vec::new()));
    }

    #[test]
    fn no_layout_places_nothing() {
        let topology = Topology::new(None);
        assert_eq!(topology.placement(0, 3), Placement::default());
        assert!(topology.ring().is_none());
    }
}
