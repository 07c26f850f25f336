//! The roster of an earlier release: the nodes membership had shown, each with its data dir's
//! creation time, from which every node derived the same ring (the fold of
//! [`Ring::with_node_added`] over the roster in creation order).
//!
//! Rings are now committed layouts (`crate::layout`); the roster is only read once, to make the
//! first layout of a data dir written by that release, so that an upgraded node keeps the ring it
//! had.

use serde::{Deserialize, Serialize};
use tessera_ring::{PartitionScheme, Ring, RingError};
use tessera_storage::{decode_versioned, CellStore, Engine, StorageError};

const ROSTER_KEY: &str = "roster";

/// One node of the roster.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RosterEntry {
    /// When the node's data dir was created (ms since the epoch): the order nodes joined in.
    pub created_at_ms: u64,
    pub node: String,
}

/// The nodes that own partitions, in the order they joined.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roster {
    entries: Vec<RosterEntry>,
}

impl Roster {
    /// The roster saved in `meta`, or an empty one.
    pub fn load<E: Engine>(store: &CellStore<E>) -> Result<Self, StorageError> {
        match store.get_meta(ROSTER_KEY)? {
            Some(bytes) => decode_versioned("roster", ROSTER_KEY.as_bytes(), &bytes),
            None => Ok(Self::default()),
        }
    }

    #[cfg(test)]
    pub fn save<E: Engine>(&self, store: &CellStore<E>) -> Result<(), StorageError> {
        use tessera_storage::encode_versioned;
        store.put_meta(ROSTER_KEY, &encode_versioned("roster", self)?)
    }

    #[cfg(test)]
    pub fn entries(&self) -> &[RosterEntry] {
        &self.entries
    }

    pub fn contains(&self, node: &str) -> bool {
        self.entries.iter().any(|e| e.node == node)
    }

    /// Adds `node`; returns whether it was new. A node is in the roster once, with the creation
    /// time it first came with.
    #[cfg(test)]
    pub fn add(&mut self, node: &str, created_at_ms: u64) -> bool {
        if self.contains(node) {
            return false;
        }
        self.entries.push(RosterEntry {
            created_at_ms,
            node: node.to_owned(),
        });
        self.entries.sort();
        true
    }

    /// The ring of this roster: each node added in turn, in join order.
    pub fn ring(&self, scheme: PartitionScheme, target_n: u32) -> Result<Ring, RingError> {
        let mut nodes = self.entries.iter().map(|e| e.node.clone());
        let first = nodes.next().ok_or(RingError::NoNodes)?;
        let mut ring = Ring::new(scheme, [first], target_n)?;
        for node in nodes {
            ring = ring.with_node_added(node)?;
        }
        Ok(ring)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scheme() -> PartitionScheme {
        PartitionScheme::new(64).unwrap()
    }

    #[test]
    fn the_ring_depends_on_the_roster_not_on_the_order_nodes_were_learned() {
        let mut a = Roster::default();
        assert!(a.add("n2", 20));
        assert!(a.add("n1", 10));
        assert!(a.add("n3", 30));
        assert!(!a.add("n1", 99));
        let mut b = Roster::default();
        for (node, at) in [("n3", 30), ("n1", 10), ("n2", 20)] {
            b.add(node, at);
        }
        assert_eq!(a, b);
        let ring = a.ring(scheme(), 3).unwrap();
        assert_eq!(ring, b.ring(scheme(), 3).unwrap());
        assert_eq!(ring.node_count(), 3);
        assert_eq!(a.entries()[0].node, "n1");
    }

    #[test]
    fn a_later_node_only_takes_partitions() {
        let mut roster = Roster::default();
        for (node, at) in [("a", 1), ("b", 2), ("c", 3)] {
            roster.add(node, at);
        }
        let before = roster.ring(scheme(), 3).unwrap();
        roster.add("d", 4);
        let after = roster.ring(scheme(), 3).unwrap();
        for (old, new) in before.owners().zip(after.owners()) {
            assert!(old == new || new == "d", "{old} -> {new}");
        }
        assert!(Roster::default().ring(scheme(), 3).is_err());
    }
}
