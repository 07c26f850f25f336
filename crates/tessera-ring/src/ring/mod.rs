//! The ring: which physical node owns each partition, and the preference lists that follow.
//!
//! A [`Ring`] is immutable. A membership change makes a new ring with the next epoch (see
//! `change.rs`), so a ring can be shared, compared, diffed against its successor and sent between
//! nodes as a value.

mod change;
mod codec;
mod replace;

pub use codec::RING_FORMAT_VERSION;

use crate::{PartitionId, PartitionScheme};

/// A node's stable name, such as `"n1"`.
pub type NodeId = String;

/// Owners of the Q partitions of one epoch, claimed by the ring's nodes.
///
/// Invariants, checked wherever a ring is made or decoded: the nodes are non-empty, sorted and
/// unique; there is one owner per partition; every owner is a node of the ring; and every node
/// owns at least one partition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "codec::RingRepr", into = "codec::RingRepr")]
pub struct Ring {
    epoch: u64,
    scheme: PartitionScheme,
    /// Sorted by name; claim refers to nodes by their index in this list.
    nodes: Vec<NodeId>,
    /// Owner of each partition, as an index into `nodes`.
    owners: Vec<u32>,
    target_n: u32,
}

impl Ring {
    /// The ring's epoch: 1 for a new cluster, one more for every change.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// How the token space is cut into partitions.
    pub fn scheme(&self) -> PartitionScheme {
        self.scheme
    }

    /// The replica count the claim keeps windows distinct for.
    pub fn target_n(&self) -> u32 {
        self.target_n
    }

    /// The nodes, in name order.
    pub fn nodes(&self) -> impl ExactSizeIterator<Item = &NodeId> + '_ {
        self.nodes.iter()
    }

    /// How many nodes the ring has.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Whether `node` is one of the ring's nodes.
    pub fn contains(&self, node: &NodeId) -> bool {
        self.index_of(node).is_some()
    }

    /// The owner of every partition, in partition order.
    pub fn owners(&self) -> impl ExactSizeIterator<Item = &NodeId> + '_ {
        self.owners.iter().map(|&i| &self.nodes[i as usize])
    }

    /// The owner of partition `p`.
    ///
    /// # Panics
    /// If `p` is not a partition of this ring's scheme (`p >= Q`).
    pub fn owner(&self, p: PartitionId) -> &NodeId {
        &self.nodes[self.owners[usize::from(p)] as usize]
    }

    /// The replicas of partition `p`: its owner, then, walking clockwise, the owners of the next
    /// partitions, skipping nodes already listed, until `n` distinct nodes (or every node, if the
    /// ring has fewer than `n`).
    ///
    /// # Panics
    /// If `p >= Q`.
    pub fn preference_list(&self, p: PartitionId, n: usize) -> Vec<NodeId> {
        self.walk(p)
            .take(n)
            .map(|i| self.nodes[i as usize].clone())
            .collect()
    }

    /// The nodes after the first `n` distinct ones of the walk that [`Ring::preference_list`]
    /// makes, in ring order: where a write goes, as a hint, when a replica is down (sloppy quorum).
    ///
    /// # Panics
    /// If `p >= Q`.
    pub fn fallbacks(&self, p: PartitionId, n: usize) -> Vec<NodeId> {
        self.walk(p)
            .skip(n)
            .map(|i| self.nodes[i as usize].clone())
            .collect()
    }

    /// The partitions `node` owns, in order; empty for a node not in the ring.
    pub fn partitions_of(&self, node: &NodeId) -> Vec<PartitionId> {
        let Some(index) = self.index_of(node) else {
            return Vec::new();
        };
        (0..self.owners.len())
            .filter(|&p| self.owners[p] == index)
            .map(|p| p as PartitionId)
            .collect()
    }

    /// The partitions `p` whose window of `min(target_n, nodes)` consecutive partitions, starting at
    /// `p`, repeats a node. Empty for a well-claimed ring; see the `claim` module for when a change
    /// cannot avoid a repeat. A repeat never shortens a preference list (the walk skips it); it
    /// only makes the list reach one partition further.
    pub fn target_n_violations(&self) -> Vec<PartitionId> {
        let window = (self.target_n as usize)
            .min(self.nodes.len())
            .min(self.owners.len());
        let q = self.owners.len();
        (0..q)
            .filter(|&p| {
                let ids: Vec<u32> = (0..window).map(|d| self.owners[(p + d) % q]).collect();
                (1..ids.len()).any(|i| ids[..i].contains(&ids[i]))
            })
            .map(|p| p as PartitionId)
            .collect()
    }

    /// Distinct owners clockwise from `p`, as node indices.
    fn walk(&self, p: PartitionId) -> impl Iterator<Item = u32> + '_ {
        let q = self.owners.len();
        let start = usize::from(p);
        assert!(
            start < q,
            "partition {p} is not below the partition count {q}"
        );
        let mut seen = vec![false; self.nodes.len()];
        (0..q).filter_map(move |d| {
            let i = self.owners[(start + d) % q];
            let fresh = !std::mem::replace(&mut seen[i as usize], true);
            fresh.then_some(i)
        })
    }

    fn index_of(&self, node: &NodeId) -> Option<u32> {
        self.nodes.binary_search(node).ok().map(|i| i as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring with exactly these owners (indices into `nodes`).
    fn ring(owners: &[u32], nodes: &[&str], target_n: u32) -> Ring {
        Ring {
            epoch: 7,
            scheme: PartitionScheme::new(owners.len() as u64).unwrap(),
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
            owners: owners.to_vec(),
            target_n,
        }
    }

    #[test]
    fn preference_lists_walk_clockwise_skip_repeats_and_wrap() {
        // Partitions 0..4 owned by a b a c.
        let r = ring(&[0, 1, 0, 2], &["a", "b", "c"], 2);
        assert_eq!(r.preference_list(0, 2), ["a", "b"]);
        assert_eq!(r.preference_list(1, 2), ["b", "a"]);
        assert_eq!(r.preference_list(2, 2), ["a", "c"]);
        assert_eq!(r.preference_list(3, 2), ["c", "a"]);
        assert_eq!(r.preference_list(1, 3), ["b", "a", "c"]);
        assert_eq!(r.preference_list(1, 9), ["b", "a", "c"]);
        assert!(r.preference_list(1, 0).is_empty());
        assert_eq!(r.fallbacks(1, 2), ["c"]);
        assert_eq!(r.fallbacks(0, 1), ["b", "c"]);
        assert!(r.fallbacks(0, 3).is_empty());
        assert_eq!(r.fallbacks(2, 0), ["a", "c", "b"]);
    }

    #[test]
    fn ownership_queries() {
        let r = ring(&[0, 1, 0, 2], &["a", "b", "c"], 3);
        assert_eq!(r.partitions_of(&"a".into()), [0, 2]);
        assert_eq!(r.partitions_of(&"c".into()), [3]);
        assert!(r.partitions_of(&"zz".into()).is_empty());
        assert_eq!(r.owner(2), "a");
        assert_eq!(r.owners().collect::<Vec<_>>(), ["a", "b", "a", "c"]);
        assert!(r.contains(&"b".into()) && !r.contains(&"d".into()));
        assert_eq!(r.nodes().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!((r.epoch(), r.target_n(), r.node_count()), (7, 3, 3));
        // Windows of 3: a b a and a c a repeat; b a c and c a b do not.
        assert_eq!(r.target_n_violations(), [0, 2]);
        assert!(ring(&[0, 1, 0, 2], &["a", "b", "c"], 2)
            .target_n_violations()
            .is_empty());
    }

    #[test]
    #[should_panic(expected = "not below the partition count")]
    fn partitions_beyond_the_scheme_panic() {
        ring(&[0, 1, 0, 2], &["a", "b", "c"], 2).preference_list(4, 2);
    }
}
