//! Whether a request can meet its level with the replicas believed alive, decided once, before
//! anything is written or sent.
//!
//! The API asks it to refuse a request with a `503` that names the down replicas; the
//! coordinator asks it again for a write forwarded from another node, whose view may differ.
//! Both ask the same [`Liveness`], so the rule is written once:
//! - a **read** needs R live replicas;
//! - a **write** needs W live replicas, counting one live fallback per down replica as a
//!   stand-in (sloppy quorum) unless the write is strict, and at least one live replica, since
//!   only a replica may mint the write's dot.

use crate::membership::MembershipView;
use crate::quorum::QuorumFailure;
use crate::transport::NodeId;

/// Failure reason recorded for a replica that membership says is down (a fallback may then
/// store a hint for it).
pub const DOWN: &str = "down (membership)";

/// Which replicas and fallbacks are believed alive, from one node's point of view.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Liveness {
    /// Live replicas, in preference order (this node is always alive to itself).
    pub alive: Vec<NodeId>,
    /// Replicas believed down, in preference order.
    pub down: Vec<NodeId>,
    /// Live fallbacks, in ring order.
    pub live_fallbacks: Vec<NodeId>,
    /// N: how many replicas were asked about.
    pub replication: u32,
}

/// Whether a request reads or writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// A read: only replicas answer.
    Read,
    /// A write: fallbacks may stand in for down replicas.
    Write {
        /// Count only real replicas (Riak's `pw`).
        strict: bool,
    },
}

fn count(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

impl Liveness {
    /// Sorts `replicas` and `fallbacks` by what `membership` believes, as seen from `local`.
    pub fn of<M: MembershipView + ?Sized>(
        local: &NodeId,
        replicas: &[NodeId],
        fallbacks: &[NodeId],
        membership: &M,
    ) -> Self {
        let is_alive = |node: &NodeId| node == local || membership.is_alive(node);
        let (alive, down) = replicas.iter().cloned().partition(|node| is_alive(node));
        Self {
            alive,
            down,
            live_fallbacks: fallbacks.iter().filter(|n| is_alive(n)).cloned().collect(),
            replication: count(replicas.len()),
        }
    }

    /// Fallbacks that may stand in for down replicas under `access`.
    pub fn stand_ins(&self, access: Access) -> u32 {
        match access {
            Access::Write { strict: false } => {
                count(self.live_fallbacks.len().min(self.down.len()))
            }
            _ => 0,
        }
    }

    /// How many acks or answers can be had: live replicas plus stand-ins.
    pub fn reachable(&self, access: Access) -> u32 {
        count(self.alive.len()).saturating_add(self.stand_ins(access))
    }

    /// Checks that `required` acks or answers can be had under `access`; if not, the failure
    /// that names the down replicas (nothing was acked).
    pub fn check(&self, required: u32, access: Access) -> Result<(), QuorumFailure> {
        let no_minter = matches!(access, Access::Write { .. }) && self.alive.is_empty();
        if no_minter || self.reachable(access) < required {
            return Err(QuorumFailure {
                required,
                acked: 0,
                acked_by: Vec::new(),
                failed: self
                    .down
                    .iter()
                    .map(|node| (node.clone(), DOWN.to_owned()))
                    .collect(),
                replication: self.replication,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::StaticMembership;

    fn names(list: &[&str]) -> Vec<NodeId> {
        list.iter().map(|n| n.to_string()).collect()
    }

    fn liveness(down: &[&str]) -> Liveness {
        let membership = StaticMembership::new(["a", "b", "c", "d", "e"]);
        for node in down {
            membership.mark_down(node);
        }
        Liveness::of(
            &"a".to_owned(),
            &names(&["a", "b", "c"]),
            &names(&["d", "e"]),
            &membership,
        )
    }

    #[test]
    fn reads_count_live_replicas_only() {
        let live = liveness(&["b", "d"]);
        assert_eq!(live.alive, names(&["a", "c"]));
        assert_eq!(live.down, names(&["b"]));
        assert_eq!(live.live_fallbacks, names(&["e"]));
        assert!(live.check(2, Access::Read).is_ok());
        let failure = live.check(3, Access::Read).unwrap_err();
        assert_eq!(failure.failed, vec![("b".to_owned(), DOWN.to_owned())]);
        assert_eq!((failure.required, failure.replication), (3, 3));
    }

    #[test]
    fn sloppy_writes_count_one_live_fallback_per_down_replica() {
        let live = liveness(&["b", "c"]);
        // Two replicas down, two live fallbacks: W=3 can be had with hints...
        assert!(live.check(3, Access::Write { strict: false }).is_ok());
        // ...but not by a strict write, nor by a read.
        assert!(live.check(2, Access::Write { strict: true }).is_err());
        assert!(live.check(2, Access::Read).is_err());
        // One fallback down too: at most 2.
        let live = liveness(&["b", "c", "d"]);
        assert_eq!(live.reachable(Access::Write { strict: false }), 2);
    }

    #[test]
    fn a_write_needs_a_live_replica_to_mint_its_dot() {
        let membership = StaticMembership::new(["a", "b", "c", "d", "e"]);
        for node in ["b", "c"] {
            membership.mark_down(node);
        }
        // Seen from d, a fallback: every replica down, but enough fallbacks alive.
        let live = Liveness::of(
            &"d".to_owned(),
            &names(&["b", "c"]),
            &names(&["d", "e"]),
            &membership,
        );
        assert_eq!(live.reachable(Access::Write { strict: false }), 2);
        assert!(live.check(1, Access::Write { strict: false }).is_err());
    }
}
