//! What changes between two rings: the partitions that change owner, and the replica sets that
//! change, which is what rebalancing streams.

use crate::{NodeId, PartitionId, Ring};
use serde::{Deserialize, Serialize};

/// A partition whose owner differs between two rings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PartitionMove {
    pub partition: PartitionId,
    pub from: NodeId,
    pub to: NodeId,
}

/// How the replica set (preference list) of one partition differs between two rings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReplicaChange {
    pub partition: PartitionId,
    /// Replicas in the old ring only, in old preference-list order: they may drop their copy once
    /// the new replicas have it.
    pub removed: Vec<NodeId>,
    /// Replicas in the new ring only, in new preference-list order: they must receive a copy.
    pub added: Vec<NodeId>,
}

/// The partitions whose owner differs from `old` to `new`, in partition order.
///
/// Both rings must have the same scheme (Q is fixed for a cluster's life); if they do not, only the
/// partitions both have are compared.
pub fn diff(old: &Ring, new: &Ring) -> Vec<PartitionMove> {
    let common = old.scheme().count().min(new.scheme().count());
    (0..common)
        .map(|p| p as PartitionId)
        .filter_map(|p| {
            let (from, to) = (old.owner(p), new.owner(p));
            (from != to).then(|| PartitionMove {
                partition: p,
                from: from.clone(),
                to: to.clone(),
            })
        })
        .collect()
}

/// How many partitions a change moves, by who gives and who takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MoveCounts {
    /// Partitions whose owner differs between the two rings.
    pub total: usize,
    /// Of those, partitions that move from a node leaving the ring or to a node joining it: the
    /// change itself.
    pub to_or_from_changed_nodes: usize,
    /// Of those, partitions that move between two nodes in both rings: what claim added to keep
    /// loads in band and windows distinct where the change alone could not (see the `claim`
    /// module).
    pub between_staying_nodes: usize,
}

/// Counts the moves of [`diff`] by kind: a planner shows `between_staying_nodes` as the extra
/// moves a change costs beyond the nodes it adds and removes.
pub fn move_counts(old: &Ring, new: &Ring) -> MoveCounts {
    let moves = diff(old, new);
    let between_staying_nodes = moves
        .iter()
        .filter(|m| new.contains(&m.from) && old.contains(&m.to))
        .count();
    MoveCounts {
        total: moves.len(),
        to_or_from_changed_nodes: moves.len() - between_staying_nodes,
        between_staying_nodes,
    }
}

/// For every partition whose `n`-replica set differs from `old` to `new`, the replicas lost and
/// gained, in partition order.
///
/// One owner change touches the replica sets of up to `n` partitions (every preference list whose
/// walk passes the moved partition), so this is the list data streaming works from, not [`diff`].
/// Rings of different schemes are compared as [`diff`] does.
pub fn replica_changes(old: &Ring, new: &Ring, n: usize) -> Vec<ReplicaChange> {
    let common = old.scheme().count().min(new.scheme().count());
    (0..common)
        .map(|p| p as PartitionId)
        .filter_map(|p| {
            let (before, after) = (old.preference_list(p, n), new.preference_list(p, n));
            let removed: Vec<NodeId> = before
                .iter()
                .filter(|node| !after.contains(node))
                .cloned()
                .collect();
            let added: Vec<NodeId> = after
                .iter()
                .filter(|node| !before.contains(node))
                .cloned()
                .collect();
            (!removed.is_empty() || !added.is_empty()).then_some(ReplicaChange {
                partition: p,
                removed,
                added,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PartitionScheme;

    #[test]
    fn a_join_moves_partitions_to_the_newcomer_and_changes_n_replica_sets_each() {
        let scheme = PartitionScheme::new(64).unwrap();
        let old = Ring::new(scheme, ["a", "b", "c", "d"].map(String::from), 3).unwrap();
        let new = old.with_node_added("e".into()).unwrap();
        let moves = diff(&old, &new);
        assert!(!moves.is_empty());
        assert!(moves.iter().all(|m| m.to == "e" && m.from != "e"));
        let changes = replica_changes(&old, &new, 3);
        // With distinct windows, a moved partition enters the replica sets of itself and the N-1
        // partitions before it, and the newcomer replaces exactly one replica in each.
        let touched: std::collections::BTreeSet<u16> = moves
            .iter()
            .flat_map(|m| (0..3).map(move |d| (m.partition + 64 - d) % 64))
            .collect();
        assert_eq!(
            changes.iter().map(|c| c.partition).collect::<Vec<_>>(),
            touched.into_iter().collect::<Vec<_>>()
        );
        for c in &changes {
            assert_eq!(c.added, ["e"]);
            assert_eq!(c.removed.len(), 1);
        }
        assert!(diff(&new, &new).is_empty() && replica_changes(&new, &new, 3).is_empty());
    }

    #[test]
    fn move_counts_tell_the_change_from_moves_between_staying_nodes() {
        let scheme = PartitionScheme::new(16).unwrap();
        let old = Ring::new(scheme, ["a", "b"].map(String::from), 2).unwrap();
        let replaced = old.with_node_replaced(&"a".into(), "c".into()).unwrap();
        assert_eq!(
            move_counts(&old, &replaced),
            MoveCounts {
                total: 8,
                to_or_from_changed_nodes: 8,
                between_staying_nodes: 0
            }
        );
        // Two nodes and windows of 2 must alternate: a leave into them from three nodes moves
        // the leaving node's partitions and, since 3 does not divide 16, some of the others.
        let three = Ring::new(scheme, ["a", "b", "c"].map(String::from), 2).unwrap();
        let two = three.with_node_removed(&"c".into()).unwrap();
        let counts = move_counts(&three, &two);
        assert_eq!(
            counts.to_or_from_changed_nodes,
            three.partitions_of(&"c".into()).len()
        );
        assert_eq!(counts.total, diff(&three, &two).len());
        assert_eq!(
            counts.between_staying_nodes,
            counts.total - counts.to_or_from_changed_nodes
        );
        assert!(two.target_n_violations().is_empty());
    }
}
