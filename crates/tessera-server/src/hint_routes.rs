//! Where hints for a node that left the ring go: the node's answer to
//! [`HintRoutes`](tessera_cluster::handoff_redirect::HintRoutes), from its topology (which rings
//! are in force) and its schema (each table's replication factor).

use std::sync::{Arc, Weak};

use tessera_cluster::handoff_redirect::HintRoutes;
use tessera_cluster::NodeId;
use tessera_storage::RowKey;

use crate::node::Node;

/// Holds the node weakly: the node owns hint delivery, which owns this.
pub struct NodeHintRoutes(Weak<Node>);

impl NodeHintRoutes {
    pub fn new(node: &Arc<Node>) -> Self {
        Self(Arc::downgrade(node))
    }
}

impl HintRoutes for NodeHintRoutes {
    fn has_left(&self, target: &NodeId) -> bool {
        let Some(node) = self.0.upgrade() else {
            return false;
        };
        let state = node.cluster.topology.state();
        let Some(layout) = &state.layout else {
            return false;
        };
        let in_previous = !state.complete()
            && layout
                .previous()
                .is_some_and(|previous| previous.contains(target));
        !layout.ring().contains(target) && !in_previous
    }

    fn owners_of(&self, row: &RowKey) -> Option<Vec<NodeId>> {
        let node = self.0.upgrade()?;
        let n = node
            .schema
            .list()
            .iter()
            .find(|table| table.id == row.table)?
            .replication;
        let placement = node.cluster.topology.placement(row.partition, n);
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
}
