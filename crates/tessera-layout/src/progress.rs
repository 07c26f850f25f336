//! How far a move has got, from the facts each node publishes, and where a partition's reads
//! and writes go meanwhile (see the crate docs for the three steps).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tessera_ring::{NodeId, PartitionId};

use crate::layout::Layout;
use crate::plan::Change;

/// A set of partitions, as a bitmap (Q is at most 2^16).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PartitionSet {
    words: Vec<u64>,
}

impl PartitionSet {
    /// Adds `partition`; returns whether it was new.
    pub fn insert(&mut self, partition: PartitionId) -> bool {
        let (word, bit) = (usize::from(partition) / 64, partition % 64);
        if self.words.len() <= word {
            self.words.resize(word + 1, 0);
        }
        let had = self.words[word] & (1 << bit) != 0;
        self.words[word] |= 1 << bit;
        !had
    }

    /// Whether `partition` is in the set.
    pub fn contains(&self, partition: PartitionId) -> bool {
        let (word, bit) = (usize::from(partition) / 64, partition % 64);
        self.words.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }

    /// How many partitions the set holds.
    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// True for the empty set.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every partition in the set, in order.
    pub fn iter(&self) -> impl Iterator<Item = PartitionId> + '_ {
        self.words.iter().enumerate().flat_map(|(i, word)| {
            (0..64u16)
                .filter(move |bit| word & (1 << bit) != 0)
                .map(move |bit| (i as u16) * 64 + bit)
        })
    }

    /// Adds every partition of `other`.
    pub fn union_with(&mut self, other: &PartitionSet) {
        if self.words.len() < other.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        for (mine, theirs) in self.words.iter_mut().zip(&other.words) {
            *mine |= theirs;
        }
    }
}

impl FromIterator<PartitionId> for PartitionSet {
    fn from_iter<I: IntoIterator<Item = PartitionId>>(iter: I) -> Self {
        let mut set = PartitionSet::default();
        for partition in iter {
            set.insert(partition);
        }
        set
    }
}

/// What one node publishes about the moves it takes part in. Every field only grows, so the
/// freshest publication of a node is simply its highest one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeProgress {
    /// The highest epoch this node writes under, published once the writes it planned under
    /// older epochs have passed their deadline.
    pub acked: u64,
    /// The epoch `synced` is about.
    pub synced_epoch: u64,
    /// The partitions of `synced_epoch` this node has received whole, for every table it joins.
    pub synced: PartitionSet,
    /// The highest epoch whose every partition this node reads from the new ring.
    pub reading: u64,
}

impl NodeProgress {
    /// Whether this node holds `partition` whole for `epoch`.
    pub fn has_synced(&self, epoch: u64, partition: PartitionId) -> bool {
        self.synced_epoch > epoch || (self.synced_epoch == epoch && self.synced.contains(partition))
    }

    /// The freshest of two publications of one node.
    pub fn merge(&mut self, other: &NodeProgress) {
        self.acked = self.acked.max(other.acked);
        self.reading = self.reading.max(other.reading);
        match other.synced_epoch.cmp(&self.synced_epoch) {
            std::cmp::Ordering::Greater => {
                self.synced_epoch = other.synced_epoch;
                self.synced = other.synced.clone();
            }
            std::cmp::Ordering::Equal => self.synced.union_with(&other.synced),
            std::cmp::Ordering::Less => {}
        }
    }

    /// The form gossiped as metadata: `acked.reading.synced_epoch.hex` (the hex of the bitmap's
    /// words, 16 digits each).
    pub fn to_metadata(&self) -> String {
        let mut out = format!("{}.{}.{}.", self.acked, self.reading, self.synced_epoch);
        for word in &self.synced.words {
            out.push_str(&format!("{word:016x}"));
        }
        out
    }

    /// Reads [`NodeProgress::to_metadata`]; `None` for anything malformed.
    pub fn from_metadata(text: &str) -> Option<Self> {
        let mut parts = text.splitn(4, '.');
        let acked = parts.next()?.parse().ok()?;
        let reading = parts.next()?.parse().ok()?;
        let synced_epoch = parts.next()?.parse().ok()?;
        let hex = parts.next()?;
        if hex.len() % 16 != 0 || hex.len() > 16 * 1024 {
            return None;
        }
        let words = hex
            .as_bytes()
            .chunks(16)
            .map(|chunk| u64::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok())
            .collect::<Option<Vec<u64>>>()?;
        Some(Self {
            acked,
            synced_epoch,
            synced: PartitionSet { words },
            reading,
        })
    }
}

/// What this node knows of every node's progress.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    nodes: BTreeMap<NodeId, NodeProgress>,
}

/// Where one partition's reads and writes go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The replicas reads ask, in preference order.
    pub read: Vec<NodeId>,
    /// The replicas writes count W in, in preference order.
    pub write: Vec<NodeId>,
    /// During a move, the other set writes must also count W in (B's replicas while reads
    /// still use A's, or A's after reads moved to B).
    pub write_also: Option<Vec<NodeId>>,
    /// Stand-ins for down replicas of `write` (sloppy quorum): nodes in neither set.
    pub fallbacks: Vec<NodeId>,
}

impl Progress {
    /// Takes `node`'s latest publication (merged with what was known).
    pub fn record(&mut self, node: &str, progress: &NodeProgress) {
        self.nodes
            .entry(node.to_owned())
            .or_default()
            .merge(progress);
    }

    /// What is known of `node`.
    pub fn of(&self, node: &str) -> Option<&NodeProgress> {
        self.nodes.get(node)
    }

    fn all(&self, layout: &Layout, holds: impl Fn(&NodeProgress) -> bool) -> bool {
        layout
            .participants()
            .iter()
            .all(|node| self.nodes.get(node).is_some_and(&holds))
    }

    /// Step 1 is done: every participant writes under the layout's epoch.
    pub fn all_acked(&self, layout: &Layout) -> bool {
        self.all(layout, |p| p.acked >= layout.epoch())
    }

    /// Every node joining `partition` for any of the replication factors `ns` holds it whole.
    pub fn partition_synced(&self, layout: &Layout, partition: PartitionId, ns: &[u32]) -> bool {
        if !layout.is_move() {
            return true;
        }
        ns.iter().all(|&n| {
            layout.joining(partition, n).iter().all(|node| {
                self.nodes
                    .get(node)
                    .is_some_and(|p| p.has_synced(layout.epoch(), partition))
            })
        })
    }

    /// Step 2 is done: every partition is synced.
    pub fn all_synced(&self, layout: &Layout, ns: &[u32]) -> bool {
        let partitions = layout.ring().scheme().count();
        (0..partitions).all(|p| self.partition_synced(layout, p as PartitionId, ns))
    }

    /// Step 3 is done, and with it the move: every participant reads from the new ring.
    pub fn complete(&self, layout: &Layout) -> bool {
        !layout.is_move() || self.all(layout, |p| p.reading >= layout.epoch())
    }

    /// Whether `change` may be planned on top of `layout` (see [`crate::plan`]): its move is
    /// complete, or `change` removes a dead node of its ring (`remove --dead`, or `replace` of a
    /// dead node) and every other participant reads from the new ring.
    ///
    /// A node that dies just after its part of a move may never have published it: its last
    /// progress is lost with it, the move can never complete, and without this no change could
    /// ever be planned again, not even the removal of the dead node. Every other participant
    /// reading the new ring is enough: each of them saw every partition held whole by its new
    /// replicas (the dead node's included) before it said so, so the dead node's publication
    /// would add nothing.
    pub fn allows(&self, layout: &Layout, change: &Change) -> bool {
        if self.complete(layout) {
            return true;
        }
        let dead = match change {
            Change::RemoveDead { node }
            | Change::Replace {
                old: node,
                dead: true,
                ..
            } => node,
            _ => return false,
        };
        layout.ring().contains(dead)
            && layout
                .participants()
                .iter()
                .filter(|node| *node != dead)
                .all(|node| {
                    self.nodes
                        .get(node)
                        .is_some_and(|p| p.reading >= layout.epoch())
                })
    }

    /// Where `partition`'s reads and writes go for a table of replication `n`, given the
    /// replication factors `ns` of every table (a partition's synced state covers them all).
    pub fn route(&self, layout: &Layout, partition: PartitionId, n: u32, ns: &[u32]) -> Route {
        let (old, new) = layout.replica_sets(partition, n);
        let ring = match layout.previous() {
            Some(previous) if !self.complete(layout) => previous,
            _ => layout.ring(),
        };
        let (read, other) = if !layout.is_move() || self.complete(layout) {
            (new, None)
        } else if self.all_acked(layout) && self.partition_synced(layout, partition, ns) {
            (new, Some(old))
        } else {
            (old, Some(new))
        };
        // The fallbacks come from the ring still in force, so they can include a member of
        // either set (a node the new ring makes a replica is a stand-in in the old one): neither
        // may stand in for the other.
        let fallbacks = ring
            .fallbacks(partition, n as usize)
            .into_iter()
            .filter(|node| !read.contains(node))
            .filter(|node| other.as_ref().is_none_or(|set| !set.contains(node)))
            .collect();
        Route {
            write: read.clone(),
            read,
            write_also: other,
            fallbacks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use tessera_ring::{PartitionScheme, Ring};

    #[test]
    fn partition_sets_and_metadata_round_trip() {
        let mut set: PartitionSet = [0u16, 63, 64, 255].into_iter().collect();
        assert!(!set.insert(63));
        assert!(set.contains(255) && !set.contains(1));
        assert_eq!(set.iter().collect::<Vec<_>>(), [0, 63, 64, 255]);
        assert_eq!(set.len(), 4);
        let progress = NodeProgress {
            acked: 7,
            synced_epoch: 7,
            synced: set.clone(),
            reading: 6,
        };
        let text = progress.to_metadata();
        assert_eq!(NodeProgress::from_metadata(&text), Some(progress));
        for bad in ["", "1.2", "a.b.c.d", "1.2.3.abc", "1.2.3.zzzzzzzzzzzzzzzz"] {
            assert_eq!(NodeProgress::from_metadata(bad), None, "{bad}");
        }
        set.union_with(&[1u16, 300].into_iter().collect());
        assert_eq!(set.len(), 6);
    }

    #[test]
    fn merge_keeps_the_freshest() {
        let mut a = NodeProgress {
            acked: 3,
            synced_epoch: 3,
            synced: [1u16].into_iter().collect(),
            reading: 2,
        };
        a.merge(&NodeProgress {
            acked: 2,
            synced_epoch: 3,
            synced: [2u16].into_iter().collect(),
            reading: 3,
        });
        assert_eq!((a.acked, a.reading), (3, 3));
        assert_eq!(a.synced.iter().collect::<Vec<_>>(), [1, 2]);
        a.merge(&NodeProgress {
            synced_epoch: 4,
            ..NodeProgress::default()
        });
        assert!(a.synced.is_empty() && a.synced_epoch == 4);
        assert!(a.has_synced(3, 99), "a later epoch covers earlier ones");
    }

    fn moving() -> Layout {
        let scheme = PartitionScheme::new(16).unwrap();
        let ring = Ring::new(scheme, ["a", "b", "c"].map(String::from), 3).unwrap();
        Layout::first(ring.clone())
            .moving_to(ring.with_node_added("d".into()).unwrap(), BTreeSet::new())
            .unwrap()
    }

    fn everyone(progress: &mut Progress, layout: &Layout, f: impl Fn(&mut NodeProgress)) {
        for node in layout.participants() {
            let mut p = progress.of(&node).cloned().unwrap_or_default();
            f(&mut p);
            progress.record(&node, &p);
        }
    }

    #[test]
    fn a_move_routes_through_ack_sync_and_read() {
        let layout = moving();
        let epoch = layout.epoch();
        let mut progress = Progress::default();
        let moving_partition = (0..16)
            .find(|&p| !layout.joining(p, 3).is_empty())
            .expect("d joins some partition");
        let (old, new) = layout.replica_sets(moving_partition, 3);
        // Before anyone acks: read the old set, write both.
        let route = progress.route(&layout, moving_partition, 3, &[3]);
        assert_eq!(route.read, old);
        assert_eq!(route.write_also.as_ref(), Some(&new));
        assert!(route
            .fallbacks
            .iter()
            .all(|f| !old.contains(f) && !new.contains(f)));
        // Acked and synced: reads move to the new set, writes still go to both.
        everyone(&mut progress, &layout, |p| p.acked = epoch);
        assert!(progress.all_acked(&layout));
        assert_eq!(progress.route(&layout, moving_partition, 3, &[3]).read, old);
        let joiner = layout.joining(moving_partition, 3)[0].clone();
        let mut synced = progress.of(&joiner).cloned().unwrap();
        synced.synced_epoch = epoch;
        synced.synced.insert(moving_partition);
        progress.record(&joiner, &synced);
        let route = progress.route(&layout, moving_partition, 3, &[3]);
        assert_eq!(
            (route.read, route.write_also),
            (new.clone(), Some(old.clone()))
        );
        assert!(!progress.all_synced(&layout, &[3]));
        // Everyone reads the new ring: the move is over, one set.
        everyone(&mut progress, &layout, |p| p.reading = epoch);
        assert!(progress.complete(&layout));
        let route = progress.route(&layout, moving_partition, 3, &[3]);
        assert_eq!((route.read, route.write_also), (new, None));
    }

    /// Every partition's fallbacks, at every step of `layout`'s move, are in neither set.
    fn assert_fallbacks_outside_both_sets(layout: &Layout) {
        let epoch = layout.epoch();
        let partitions = layout.ring().scheme().count() as PartitionId;
        let mut progress = Progress::default();
        let steps: [&dyn Fn(&mut NodeProgress); 3] = [
            &|p| p.acked = epoch,
            &|p| {
                p.synced_epoch = epoch;
                p.synced = (0..partitions).collect();
            },
            &|p| p.reading = epoch,
        ];
        let check = |progress: &Progress, step: &str| {
            for partition in 0..partitions {
                let route = progress.route(layout, partition, 3, &[3]);
                for fallback in &route.fallbacks {
                    assert!(
                        !route.write.contains(fallback)
                            && route
                                .write_also
                                .as_ref()
                                .is_none_or(|set| !set.contains(fallback)),
                        "{step}: partition {partition}: fallback {fallback} is a replica: {route:?}"
                    );
                }
            }
        };
        check(&progress, "before any ack");
        for (i, step) in steps.iter().enumerate() {
            everyone(&mut progress, layout, step);
            check(&progress, &format!("after step {}", i + 1));
        }
    }

    #[test]
    fn fallbacks_are_never_replicas_of_either_set() {
        let scheme = PartitionScheme::new(64).unwrap();
        let four = Ring::new(scheme, ["a", "b", "c", "d"].map(String::from), 3).unwrap();
        let five = four.with_node_added("e".into()).unwrap();
        let first = Layout::first(four.clone());
        // Adding, decommissioning (the regression: the old ring's fallbacks include nodes that
        // are replicas in the new one), removing a dead node and replacing one.
        assert_fallbacks_outside_both_sets(&first.moving_to(five, BTreeSet::new()).unwrap());
        let without_b = four.with_node_removed(&"b".into()).unwrap();
        assert_fallbacks_outside_both_sets(
            &first.moving_to(without_b.clone(), BTreeSet::new()).unwrap(),
        );
        assert_fallbacks_outside_both_sets(
            &first
                .moving_to(without_b, ["b".to_owned()].into_iter().collect())
                .unwrap(),
        );
        let replaced = four.with_node_replaced(&"c".into(), "z".into()).unwrap();
        assert_fallbacks_outside_both_sets(&first.moving_to(replaced, BTreeSet::new()).unwrap());
    }

    /// Regression (found by `tessera-cluster/tests/layout_sim.rs`, seed 3080): a node crashed
    /// right after it read from the new ring, before any other node learned it did. The move
    /// could never complete, so `remove --dead` of that node was refused (a move in progress)
    /// and the cluster could never change again.
    #[test]
    fn a_node_dead_before_its_last_step_was_heard_does_not_block_its_removal() {
        let layout = moving();
        let epoch = layout.epoch();
        let mut progress = Progress::default();
        everyone(&mut progress, &layout, |p| {
            p.acked = epoch;
            p.synced_epoch = epoch;
            p.synced = (0..16).collect();
        });
        // Everyone but b reads the new ring; b's own "reading" died with it.
        for node in ["a", "c", "d"] {
            let mut p = progress.of(node).cloned().unwrap();
            p.reading = epoch;
            progress.record(node, &p);
        }
        assert!(!progress.complete(&layout));
        let dead = |node: &str| Change::RemoveDead { node: node.into() };
        assert!(progress.allows(&layout, &dead("b")));
        assert!(progress.allows(
            &layout,
            &Change::Replace {
                old: "b".into(),
                new: "e".into(),
                dead: true
            }
        ));
        // Not for any other change, nor for a dead node other nodes still wait for.
        assert!(!progress.allows(&layout, &Change::Add { node: "e".into() }));
        assert!(!progress.allows(&layout, &Change::Remove { node: "b".into() }));
        assert!(!progress.allows(&layout, &dead("a")));
        let plan = crate::plan(&layout, progress.allows(&layout, &dead("b")), dead("b")).unwrap();
        assert_eq!(plan.next.epoch(), epoch + 1);
        assert_eq!(plan.next.dead(), &BTreeSet::from(["b".to_owned()]));
    }

    #[test]
    fn a_partition_is_synced_only_when_every_table_s_joiners_are() {
        let layout = moving();
        let mut progress = Progress::default();
        let p = (0..16)
            .find(|&p| !layout.joining(p, 3).is_empty() && layout.joining(p, 1).is_empty())
            .expect("a partition d joins at N=3 but does not own");
        assert!(progress.partition_synced(&layout, p, &[1]));
        assert!(!progress.partition_synced(&layout, p, &[1, 3]));
        let mut d = NodeProgress {
            synced_epoch: layout.epoch(),
            ..NodeProgress::default()
        };
        d.synced.insert(p);
        progress.record("d", &d);
        assert!(progress.partition_synced(&layout, p, &[1, 3]));
    }
}
