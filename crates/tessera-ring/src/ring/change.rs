//! Making rings: the first ring of a cluster, and the next ring when a node joins or leaves.
//!
//! Each change hands the owner indices to `claim` and maps its answer back to node names; the
//! claim module describes how partitions are chosen.

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

    /// The next ring with `node` added. Only partitions given to `node` move: it takes about Q/S of
    /// them from the most loaded nodes, keeping windows distinct.
    pub fn with_node_added(&self, node: NodeId) -> Result<Ring, RingError> {
        if node.is_empty() {
            return Err(RingError::EmptyNodeId);
        }
        let position = match self.nodes.binary_search(&node) {
            Ok(_) => {
                return Err(RingError::NodeExists {
                    node,
                    epoch: self.epoch,
                })
            }
            Err(position) => position as u32,
        };
        let partitions = self.scheme.count();
        if self.nodes.len() + 1 > partitions as usize {
            return Err(RingError::TooManyNodes {
                nodes: self.nodes.len() + 1,
                partitions,
            });
        }
        let epoch = self.next_epoch()?;
        // Claim numbers the newcomer after the existing nodes; renumber into name order.
        let newcomer = self.nodes.len() as u32;
        let owners = claim::join(self.owners.clone(), self.nodes.len(), self.target_n)
            .into_iter()
            .map(|i| match i {
                i if i == newcomer => position,
                i if i >= position => i + 1,
                i => i,
            })
            .collect();
        let mut nodes = self.nodes.clone();
        nodes.insert(position as usize, node);
        Ok(Ring {
            epoch,
            scheme: self.scheme,
            nodes,
            owners,
            target_n: self.target_n,
        })
    }

    /// The next ring without `node`. Only `node`'s partitions move, each to a node that keeps its
    /// window distinct, the least loaded first.
    pub fn with_node_removed(&self, node: &NodeId) -> Result<Ring, RingError> {
        let Some(index) = self.index_of(node) else {
            return Err(RingError::UnknownNode {
                node: node.clone(),
                epoch: self.epoch,
            });
        };
        if self.nodes.len() == 1 {
            return Err(RingError::LastNode { node: node.clone() });
        }
        let epoch = self.next_epoch()?;
        let owners = claim::leave(&self.owners, self.nodes.len(), self.target_n, index);
        let mut nodes = self.nodes.clone();
        nodes.remove(index as usize);
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
