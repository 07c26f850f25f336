//! Making rings: the first ring of a cluster, and the next ring when nodes join, leave or are
//! replaced.
//!
//! Each change checks its arguments, hands the owner indices to `claim` and maps its answer back
//! to node names; the claim module describes how partitions are chosen.

use super::{NodeId, Ring};
use crate::{claim, PartitionScheme, RingError};

impl Ring {
    /// A ring of `nodes` at epoch 1, claimed so that every `target_n` consecutive partitions have
    /// distinct owners whenever that is possible (see the `claim` module), with loads within one
    /// partition of even.
    ///
    /// Errors if there are no nodes, a node id is empty or repeated, `target_n` is 0, or there are
    /// more nodes than partitions.
    pub fn new(
        scheme: PartitionScheme,
        nodes: impl IntoIterator<Item = NodeId>,
        target_n: u32,
    ) -> Result<Ring, RingError> {
        if target_n == 0 {
            return Err(RingError::InvalidTargetN { target_n });
        }
        let mut nodes: Vec<NodeId> = nodes.into_iter().collect();
        nodes.sort_unstable();
        // Sorted, so an empty id would come first.
        if nodes.first().is_some_and(|n| n.is_empty()) {
            return Err(RingError::EmptyNodeId);
        }
        if let Some(pair) = nodes.windows(2).find(|w| w[0] == w[1]) {
            return Err(RingError::DuplicateNode {
                node: pair[0].clone(),
            });
        }
        if nodes.is_empty() {
            return Err(RingError::NoNodes);
        }
        let partitions = scheme.count();
        if nodes.len() > partitions as usize {
            return Err(RingError::TooManyNodes {
                nodes: nodes.len(),
                partitions,
            });
        }
        let owners = claim::build(partitions as usize, nodes.len(), target_n);
        Ok(Ring {
            epoch: 1,
            scheme,
            nodes,
            owners,
            target_n,
        })
    }

    /// The next ring with `node` added. It takes about Q/S partitions, from the most loaded nodes,
    /// keeping windows distinct; other partitions move only where that is the only way to keep
    /// loads in band and windows distinct (see the `claim` module).
    pub fn with_node_added(&self, node: NodeId) -> Result<Ring, RingError> {
        self.with_changes([node], [])
    }

    /// The next ring without `node`. Its partitions go to the nodes that keep their windows
    /// distinct, the least loaded first; other partitions move only where that is the only way to
    /// keep loads in band and windows distinct (see the `claim` module).
    pub fn with_node_removed(&self, node: &NodeId) -> Result<Ring, RingError> {
        self.with_changes([], [node.clone()])
    }

    /// The next ring with `new` in place of `old`: `new` owns exactly the partitions `old` owned,
    /// so no other partition moves, and loads and windows stay as they were.
    ///
    /// Errors if `old` is not in the ring, or `new` is empty or already in it (including `new ==
    /// old`).
    pub fn with_node_replaced(&self, old: &NodeId, new: NodeId) -> Result<Ring, RingError> {
        let Some(index) = self.index_of(old) else {
            return Err(RingError::UnknownNode {
                node: old.clone(),
                epoch: self.epoch,
            });
        };
        if new.is_empty() {
            return Err(RingError::EmptyNodeId);
        }
        if self.contains(&new) {
            return Err(RingError::NodeExists {
                node: new,
                epoch: self.epoch,
            });
        }
        let epoch = self.next_epoch()?;
        let mut nodes = self.nodes.clone();
        nodes.remove(index as usize);
        let position = nodes.binary_search(&new).unwrap_or_else(|p| p);
        nodes.insert(position, new);
        // Old index -> new index: `old` becomes `new`'s position, the others shift around it.
        let renumber = |i: u32| -> u32 {
            if i == index {
                return position as u32;
            }
            let without = if i > index { i - 1 } else { i };
            if without as usize >= position {
                without + 1
            } else {
                without
            }
        };
        Ok(Ring {
            epoch,
            scheme: self.scheme,
            nodes,
            owners: self.owners.iter().map(|&i| renumber(i)).collect(),
            target_n: self.target_n,
        })
    }

    /// The next ring with every node of `add` joined and every node of `remove` gone, in one
    /// epoch: the leaving nodes' partitions are handed out, then each newcomer (in name order)
    /// takes its share, preferring partitions that move anyway; other partitions move only where
    /// that is the only way to keep loads in band and windows distinct. The order of `add` and
    /// `remove` does not matter.
    ///
    /// Errors if both are empty, a node is listed twice or in both, a node to add is empty or
    /// already in the ring, a node to remove is not in it, no node would remain, or there would
    /// be more nodes than partitions.
    pub fn with_changes(
        &self,
        add: impl IntoIterator<Item = NodeId>,
        remove: impl IntoIterator<Item = NodeId>,
    ) -> Result<Ring, RingError> {
        let mut add: Vec<NodeId> = add.into_iter().collect();
        let mut remove: Vec<NodeId> = remove.into_iter().collect();
        add.sort_unstable();
        remove.sort_unstable();
        if add.is_empty() && remove.is_empty() {
            return Err(RingError::EmptyChange { epoch: self.epoch });
        }
        for list in [&add, &remove] {
            if let Some(pair) = list.windows(2).find(|w| w[0] == w[1]) {
                return Err(RingError::DuplicateNode {
                    node: pair[0].clone(),
                });
            }
        }
        if let Some(node) = add.iter().find(|n| remove.binary_search(n).is_ok()) {
            return Err(RingError::AddedAndRemoved { node: node.clone() });
        }
        if add.first().is_some_and(|n| n.is_empty()) {
            return Err(RingError::EmptyNodeId);
        }
        if let Some(node) = add.iter().find(|n| self.contains(n)) {
            return Err(RingError::NodeExists {
                node: node.clone(),
                epoch: self.epoch,
            });
        }
        let mut leaving = Vec::with_capacity(remove.len());
        for node in &remove {
            match self.index_of(node) {
                Some(index) => leaving.push(index),
                None => {
                    return Err(RingError::UnknownNode {
                        node: node.clone(),
                        epoch: self.epoch,
                    })
                }
            }
        }
        let remaining = self.nodes.len() - leaving.len();
        if remaining + add.len() == 0 {
            return Err(RingError::LastNode {
                node: remove[remove.len() - 1].clone(),
            });
        }
        let partitions = self.scheme.count();
        if remaining + add.len() > partitions as usize {
            return Err(RingError::TooManyNodes {
                nodes: remaining + add.len(),
                partitions,
            });
        }
        let epoch = self.next_epoch()?;
        // Claim numbers the remaining nodes first, in their order, then the newcomers in the
        // order of `add`; renumber into name order.
        let mut claimed: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|n| remove.binary_search(n).is_err())
            .cloned()
            .collect();
        claimed.extend(add);
        let mut nodes = claimed.clone();
        nodes.sort_unstable();
        let renumber: Vec<u32> = claimed
            .iter()
            .map(|n| nodes.binary_search(n).unwrap_or_default() as u32)
            .collect();
        let owners = claim::change(
            &self.owners,
            self.nodes.len(),
            self.target_n,
            &leaving,
            nodes.len() - remaining,
        )
        .into_iter()
        .map(|i| renumber[i as usize])
        .collect();
        Ok(Ring {
            epoch,
            scheme: self.scheme,
            nodes,
            owners,
            target_n: self.target_n,
        })
    }

    fn next_epoch(&self) -> Result<u64, RingError> {
        self.epoch
            .checked_add(1)
            .ok_or(RingError::EpochExhausted { epoch: self.epoch })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(names: &[&str]) -> Vec<NodeId> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn rejects_bad_parameters() {
        let scheme = PartitionScheme::new(4).unwrap();
        assert_eq!(Ring::new(scheme, nodes(&[]), 3), Err(RingError::NoNodes));
        assert_eq!(
            Ring::new(scheme, nodes(&["a", ""]), 3),
            Err(RingError::EmptyNodeId)
        );
        assert_eq!(
            Ring::new(scheme, nodes(&["b", "a", "b"]), 3),
            Err(RingError::DuplicateNode { node: "b".into() })
        );
        assert_eq!(
            Ring::new(scheme, nodes(&["a"]), 0),
            Err(RingError::InvalidTargetN { target_n: 0 })
        );
        assert_eq!(
            Ring::new(scheme, nodes(&["a", "b", "c", "d", "e"]), 3),
            Err(RingError::TooManyNodes {
                nodes: 5,
                partitions: 4
            })
        );
    }

    #[test]
    fn rejects_bad_changes() {
        let scheme = PartitionScheme::new(4).unwrap();
        let one = Ring::new(scheme, nodes(&["a"]), 3).unwrap();
        assert_eq!(
            one.with_node_removed(&"a".into()),
            Err(RingError::LastNode { node: "a".into() })
        );
        assert_eq!(
            one.with_node_removed(&"b".into()),
            Err(RingError::UnknownNode {
                node: "b".into(),
                epoch: 1
            })
        );
        assert_eq!(
            one.with_node_added("a".into()),
            Err(RingError::NodeExists {
                node: "a".into(),
                epoch: 1
            })
        );
        assert_eq!(
            one.with_node_added(String::new()),
            Err(RingError::EmptyNodeId)
        );
        let full = Ring::new(scheme, nodes(&["a", "b", "c", "d"]), 3).unwrap();
        assert!(matches!(
            full.with_node_added("e".into()),
            Err(RingError::TooManyNodes { nodes: 5, .. })
        ));
        let exhausted = Ring {
            epoch: u64::MAX,
            ..one
        };
        assert_eq!(
            exhausted.with_node_added("b".into()),
            Err(RingError::EpochExhausted { epoch: u64::MAX })
        );
    }

    #[test]
    fn tiny_rings() {
        // One partition, one node; and as many nodes as partitions.
        let scheme = PartitionScheme::new(1).unwrap();
        let r = Ring::new(scheme, nodes(&["a"]), 3).unwrap();
        assert_eq!(r.preference_list(0, 3), ["a"]);
        let scheme = PartitionScheme::new(4).unwrap();
        let r = Ring::new(scheme, nodes(&["a", "b"]), 3).unwrap();
        let r = r.with_node_added("c".into()).unwrap();
        let r = r.with_node_added("d".into()).unwrap();
        assert_eq!(r.epoch(), 3);
        for node in r.nodes() {
            assert_eq!(r.partitions_of(node).len(), 1);
        }
        let r = r.with_node_removed(&"a".into()).unwrap();
        assert_eq!(r.node_count(), 3);
        assert_eq!(r.preference_list(0, 3).len(), 3);
    }
}
