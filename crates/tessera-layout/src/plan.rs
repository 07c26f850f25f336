//! What a change would do: the next layout, the partitions that change owner, and each node's
//! load before and after. A plan is computed against one epoch and commits only on that epoch.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tessera_ring::{diff, NodeId, PartitionMove};

use crate::error::LayoutError;
use crate::layout::Layout;

/// A change an operator asks for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// A new node takes its share of partitions, streamed to it.
    Add { node: NodeId },
    /// A live node hands its partitions to the others (decommission), then leaves.
    Remove { node: NodeId },
    /// A node that is down for good leaves; its partitions are copied again from the surviving
    /// replicas (Cassandra's `removenode`).
    RemoveDead { node: NodeId },
    /// A new node takes exactly the old one's partitions, streamed from it (or from the surviving
    /// replicas if the old node is dead).
    Replace {
        old: NodeId,
        new: NodeId,
        /// The old node is down for good.
        #[serde(default)]
        dead: bool,
    },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Add { node } => write!(f, "add {node}"),
            Change::Remove { node } => write!(f, "remove {node}"),
            Change::RemoveDead { node } => write!(f, "remove dead {node}"),
            Change::Replace { old, new, dead } => {
                write!(
                    f,
                    "replace {}{old} by {new}",
                    if *dead { "dead " } else { "" }
                )
            }
        }
    }
}

/// Partitions a node owns before and after a change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeLoad {
    pub node: NodeId,
    pub before: u32,
    pub after: u32,
}

/// A change, computed against one epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The epoch the plan was computed against; the commit is refused at any other.
    pub base_epoch: u64,
    pub change: Change,
    /// The layout the commit proposes (epoch `base_epoch + 1`).
    pub next: Layout,
    /// Every partition whose owner changes.
    pub moves: Vec<PartitionMove>,
    /// Every node of either ring, in name order.
    pub balance: Vec<NodeLoad>,
}

/// A plan as operators see it: the plan, and what it would stream (what
/// `POST /v1/cluster/plan` answers and `tessera cluster plan` prints).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSummary {
    #[serde(flatten)]
    pub plan: Plan,
    /// (partition, joining node) pairs over the tables' replication factors: each streams one
    /// partition's data.
    pub replica_moves: usize,
    /// Keys and bytes the moves would stream, estimated from the load every node publishes.
    pub estimated_keys: u64,
    pub estimated_bytes: u64,
}

/// The plan of `change` against `current`, which must not be moving any more (`complete`: its
/// move, if any, has finished everywhere, or may be treated so for this change: see
/// [`crate::Progress::allows`]).
pub fn plan(current: &Layout, complete: bool, change: Change) -> Result<Plan, LayoutError> {
    if current.is_move() && !complete {
        return Err(LayoutError::MoveInProgress {
            epoch: current.epoch(),
        });
    }
    let ring = current.ring();
    let invalid = |reason: String| Err(LayoutError::InvalidChange { reason });
    let (next, dead) = match &change {
        Change::Add { node } => {
            if ring.contains(node) {
                return invalid(format!(
                    "{node} already owns partitions at epoch {}",
                    ring.epoch()
                ));
            }
            (ring.with_node_added(node.clone())?, BTreeSet::new())
        }
        Change::Remove { node } | Change::RemoveDead { node } => {
            if !ring.contains(node) {
                return invalid(format!(
                    "{node} owns no partitions at epoch {}",
                    ring.epoch()
                ));
            }
            let dead = match change {
                Change::RemoveDead { .. } => BTreeSet::from([node.clone()]),
                _ => BTreeSet::new(),
            };
            (ring.with_node_removed(node)?, dead)
        }
        Change::Replace { old, new, dead } => {
            if !ring.contains(old) {
                return invalid(format!(
                    "{old} owns no partitions at epoch {}",
                    ring.epoch()
                ));
            }
            if ring.contains(new) {
                return invalid(format!(
                    "{new} already owns partitions at epoch {}",
                    ring.epoch()
                ));
            }
            let dead = if *dead {
                BTreeSet::from([old.clone()])
            } else {
                BTreeSet::new()
            };
            (ring.with_node_replaced(old, new.clone())?, dead)
        }
    };
    let moves = diff(ring, &next);
    let mut loads: BTreeMap<NodeId, NodeLoad> = BTreeMap::new();
    let mut count = |owner: &NodeId, after: bool| {
        let load = loads.entry(owner.clone()).or_insert_with(|| NodeLoad {
            node: owner.clone(),
            before: 0,
            after: 0,
        });
        if after {
            load.after += 1;
        } else {
            load.before += 1;
        }
    };
    for owner in ring.owners() {
        count(owner, false);
    }
    for owner in next.owners() {
        count(owner, true);
    }
    Ok(Plan {
        base_epoch: current.epoch(),
        next: current.moving_to(next, dead)?,
        change,
        moves,
        balance: loads.into_values().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_ring::{PartitionScheme, Ring};

    fn layout(nodes: &[&str]) -> Layout {
        Layout::first(
            Ring::new(
                PartitionScheme::new(64).unwrap(),
                nodes.iter().map(|n| n.to_string()),
                3,
            )
            .unwrap(),
        )
    }

    #[test]
    fn each_change_plans_the_next_epoch() {
        let current = layout(&["a", "b", "c"]);
        let add = plan(&current, true, Change::Add { node: "d".into() }).unwrap();
        assert_eq!((add.base_epoch, add.next.epoch()), (1, 2));
        assert!(add.moves.iter().all(|m| m.to == "d"));
        assert_eq!(add.balance.len(), 4);
        assert_eq!(
            add.balance.iter().map(|l| l.after).sum::<u32>(),
            64,
            "{:?}",
            add.balance
        );
        let d = add.balance.iter().find(|l| l.node == "d").unwrap();
        assert_eq!((d.before, d.after as usize), (0, add.moves.len()));

        let remove = plan(&current, true, Change::Remove { node: "b".into() }).unwrap();
        assert!(remove.moves.iter().all(|m| m.from == "b"));
        assert!(remove.next.dead().is_empty());
        let dead = plan(&current, true, Change::RemoveDead { node: "b".into() }).unwrap();
        assert_eq!(dead.next.dead().len(), 1);
        assert_eq!(dead.moves, remove.moves);

        let replace = plan(
            &current,
            true,
            Change::Replace {
                old: "a".into(),
                new: "z".into(),
                dead: false,
            },
        )
        .unwrap();
        assert!(replace.moves.iter().all(|m| m.from == "a" && m.to == "z"));
        let owned_by_a = current.ring().owners().filter(|o| *o == "a").count();
        assert_eq!(replace.moves.len(), owned_by_a);
    }

    #[test]
    fn bad_changes_and_moves_in_progress_are_refused() {
        let current = layout(&["a", "b", "c"]);
        for change in [
            Change::Add { node: "a".into() },
            Change::Remove { node: "x".into() },
            Change::RemoveDead { node: "x".into() },
            Change::Replace {
                old: "x".into(),
                new: "y".into(),
                dead: false,
            },
            Change::Replace {
                old: "a".into(),
                new: "b".into(),
                dead: false,
            },
        ] {
            assert!(
                matches!(
                    plan(&current, true, change.clone()),
                    Err(LayoutError::InvalidChange { .. })
                ),
                "{change}"
            );
        }
        let moving = plan(&current, true, Change::Add { node: "d".into() })
            .unwrap()
            .next;
        assert_eq!(
            plan(&moving, false, Change::Add { node: "e".into() }),
            Err(LayoutError::MoveInProgress { epoch: 2 })
        );
        assert!(plan(&moving, true, Change::Add { node: "e".into() }).is_ok());
        let lone = layout(&["a"]);
        assert!(plan(&lone, true, Change::Remove { node: "a".into() }).is_err());
    }
}
