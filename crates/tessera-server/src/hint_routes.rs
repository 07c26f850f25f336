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
        self.0
            .upgrade()
            .is_some_and(|node| node.cluster.topology.state().has_left(target))
    }

    fn owners_of(&self, row: &RowKey) -> Option<Vec<NodeId>> {
        let node = self.0.upgrade()?;
        let n = node
            .schema
            .list()
            .iter()
            .find(|table| table.id == row.table)?
            .replication;
        node.cluster.topology.state().owners(row.partition, n)
    }
}
