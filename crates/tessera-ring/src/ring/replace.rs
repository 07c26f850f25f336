//! Replacing one node by another: the new node takes exactly the old one's partitions, so
//! nothing else moves (Riak's `cluster replace`).

use super::{NodeId, Ring};
use crate::RingError;

impl Ring {
    /// The next ring with `new` in place of `old`: every partition `old` owned is `new`'s, and no
    /// other partition changes owner.
    pub fn with_node_replaced(&self, old: &NodeId, new: NodeId) -> Result<Ring, RingError> {
        if new.is_empty() {
            return Err(RingError::EmptyNodeId);
        }
        let Some(old_index) = self.index_of(old) else {
            return Err(RingError::UnknownNode {
                node: old.clone(),
                epoch: self.epoch,
            });
        };
        if self.index_of(&new).is_some() {
            return Err(RingError::NodeExists {
                node: new,
                epoch: self.epoch,
            });
        }
        let epoch = self
            .epoch
            .checked_add(1)
            .ok_or(RingError::EpochExhausted { epoch: self.epoch })?;
        // Nodes stay sorted by name, so the new node's index may differ from the old one's.
        let mut nodes = self.nodes.clone();
        nodes.remove(old_index as usize);
        let new_index = match nodes.binary_search(&new) {
            Ok(i) | Err(i) => i,
        };
        nodes.insert(new_index, new);
        let owner_name = |i: u32| -> &NodeId {
            if i == old_index {
                &nodes[new_index]
            } else {
                &self.nodes[i as usize]
            }
        };
        let owners = self
            .owners
            .iter()
            .map(|&i| {
                let name = owner_name(i);
                nodes
                    .binary_search(name)
                    .map(|j| j as u32)
                    .unwrap_or_default()
            })
            .collect();
        Ok(Ring {
            epoch,
            scheme: self.scheme,
            nodes,
            owners,
            target_n: self.target_n,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::{PartitionScheme, Ring};

    #[test]
    fn the_new_node_takes_exactly_the_old_ones_partitions() {
        let scheme = PartitionScheme::new(64).unwrap();
        let ring = Ring::new(
            scheme,
            ["a", "c", "e", "g"].iter().map(|n| n.to_string()),
            3,
        )
        .unwrap();
        for (old, new) in [("a", "b"), ("c", "z"), ("g", "0"), ("e", "f")] {
            let next = ring.with_node_replaced(&old.into(), new.into()).unwrap();
            assert_eq!(next.epoch(), ring.epoch() + 1);
            assert!(!next.contains(&old.into()) && next.contains(&new.into()));
            for p in 0..64 {
                let before = ring.owner(p);
                let expected = if before == old { new } else { before.as_str() };
                assert_eq!(next.owner(p), expected, "partition {p}");
            }
            assert_eq!(next.target_n_violations(), ring.target_n_violations());
        }
        assert!(ring.with_node_replaced(&"x".into(), "y".into()).is_err());
        assert!(ring.with_node_replaced(&"a".into(), "c".into()).is_err());
        assert!(ring.with_node_replaced(&"a".into(), String::new()).is_err());
    }
}
