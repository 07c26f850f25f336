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
}
