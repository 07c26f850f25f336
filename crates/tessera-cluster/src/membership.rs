//! Which peers the coordinator believes are alive.
//!
//! The coordinator only asks [`MembershipView::is_alive`]: it skips peers
//! believed down (and fails fast when too few are left) instead of waiting for
//! their timeouts. [`StaticMembership`] is a fixed list with manual up/down
//! marks, enough for tests and single-datacenter bring-up; SWIM replaces it
//! later behind the same tiny trait.

use std::collections::BTreeSet;
use std::sync::{Arc, PoisonError, RwLock};

use tracing::info;

use crate::transport::NodeId;

/// The coordinator's view of which nodes are alive.
pub trait MembershipView: Send + Sync + 'static {
    /// True if `node` is believed to be up.
    fn is_alive(&self, node: &NodeId) -> bool;
}

impl<M: MembershipView + ?Sized> MembershipView for Arc<M> {
    fn is_alive(&self, node: &NodeId) -> bool {
        (**self).is_alive(node)
    }
}

/// A fixed set of nodes, all alive unless marked down.
///
/// A node outside the set is never alive: a replica list naming it is stale.
#[derive(Debug, Default)]
pub struct StaticMembership {
    nodes: Vec<NodeId>,
    down: RwLock<BTreeSet<NodeId>>,
}

impl StaticMembership {
    /// Membership of exactly `nodes`, all alive.
    pub fn new<I, S>(nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<NodeId>,
    {
        let mut nodes: Vec<NodeId> = nodes.into_iter().map(Into::into).collect();
        nodes.sort();
        nodes.dedup();
        Self {
            nodes,
            down: RwLock::new(BTreeSet::new()),
        }
    }

    /// Every node, in name order.
    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }

    /// Marks `node` down. Returns whether that changed anything.
    pub fn mark_down(&self, node: &str) -> bool {
        if !self.nodes.iter().any(|n| n == node) {
            return false;
        }
        let changed = self
            .down
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(node.to_owned());
        if changed {
            info!(node, "marked down");
        }
        changed
    }

    /// Marks `node` up again. Returns whether that changed anything.
    pub fn mark_up(&self, node: &str) -> bool {
        let changed = self
            .down
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(node);
        if changed {
            info!(node, "marked up");
        }
        changed
    }
}

impl MembershipView for StaticMembership {
    fn is_alive(&self, node: &NodeId) -> bool {
        // The set only holds plain strings, so a poisoned lock still guards valid data.
        self.nodes.binary_search(node).is_ok()
            && !self
                .down
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_nodes_down_and_up() {
        let m = StaticMembership::new(["b", "a", "c", "a"]);
        assert_eq!(m.nodes(), ["a", "b", "c"]);
        assert!(m.is_alive(&"a".to_owned()));
        assert!(!m.is_alive(&"z".to_owned()));
        assert!(m.mark_down("b"));
        assert!(!m.mark_down("b"));
        assert!(!m.mark_down("z"));
        assert!(!m.is_alive(&"b".to_owned()));
        assert!(m.mark_up("b"));
        assert!(!m.mark_up("b"));
        assert!(m.is_alive(&"b".to_owned()));
        let shared: Arc<StaticMembership> = Arc::new(m);
        assert!(shared.is_alive(&"c".to_owned()));
    }
}
