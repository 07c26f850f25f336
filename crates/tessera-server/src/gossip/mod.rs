//! Membership at the edge: the UDP runtime around the pure SWIM core of `tessera-membership`.
//!
//! [`Gossip`] owns the state machine and what the rest of the node reads from it:
//! - the coordinator's [`MembershipView`]: a node is alive when SWIM has it Alive *and* its phi
//!   is under the threshold, so requests avoid a replica that stopped answering before SWIM has
//!   finished declaring it dead;
//! - the member list, states, incarnations and phi values of `GET /v1/cluster`.
//!
//! [`runtime::MembershipWorker`] is the worker that drives it: datagrams in, timer ticks,
//! datagrams out (sealed with the cluster secret, [`seal`]), and the events that the node acts on
//! in memory (addresses, hint delivery). What needs the disk (the roster and ring, table schemas)
//! goes to the `membership-events` worker ([`events`]), so the gossip loop never waits on storage. Membership uses UDP on the same address and
//! port as the node's HTTP, bound to the node's own IP (DESIGN.md section 6).

pub mod events;
pub mod metadata;
pub mod runtime;
pub mod seal;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Instant;

use tessera_cluster::{MembershipView, NodeId};
use tessera_membership::{Config as SwimConfig, MemberId, MembershipError, State, Swim};

/// What this node believes about one other member, as of the last tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub id: MemberId,
    pub state: State,
    pub incarnation: u64,
    pub phi: Option<f64>,
    /// Alive, and phi under the threshold.
    pub usable: bool,
}

/// A snapshot of the membership, rebuilt by the runtime after every change and tick, so that the
/// data path reads it without touching the state machine's lock.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub members: HashMap<NodeId, Seen>,
}

/// The node's membership: the SWIM state machine and its latest snapshot.
pub struct Gossip {
    local: NodeId,
    started: Instant,
    swim: Mutex<Swim>,
    snapshot: RwLock<Arc<Snapshot>>,
    seeds: Vec<String>,
}

impl Gossip {
    /// Membership for this node at `addr` (its UDP and HTTP address), joining through `seeds`.
    pub fn new(
        me: MemberId,
        config: SwimConfig,
        seeds: Vec<String>,
    ) -> Result<Self, MembershipError> {
        let local = me.node.clone();
        let seed = rand::random::<u64>();
        let swim = Swim::new(me, config, seed)?;
        Ok(Self {
            local,
            started: Instant::now(),
            swim: Mutex::new(swim),
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            seeds,
        })
    }

    /// Milliseconds on the state machine's clock (monotonic, from this node's start).
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The state machine, for the runtime and for reads that need more than the snapshot.
    pub fn swim(&self) -> MutexGuard<'_, Swim> {
        // A panic while holding it would be a bug in the pure core; its state is still the
        // best there is, and a node must not stop serving over it.
        self.swim.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn seeds(&self) -> &[String] {
        &self.seeds
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Rebuilds the snapshot from the state machine.
    pub fn refresh(&self, swim: &Swim) {
        let now = self.now_ms();
        let members = swim
            .members()
            .map(|m| {
                let seen = Seen {
                    id: m.id.clone(),
                    state: m.state,
                    incarnation: m.incarnation,
                    phi: swim.phi(&m.id.node, now),
                    usable: !swim.is_likely_dead(&m.id.node, now),
                };
                (m.id.node.clone(), seen)
            })
            .collect();
        *self
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(Snapshot { members });
    }
}

impl MembershipView for Gossip {
    fn is_alive(&self, node: &NodeId) -> bool {
        *node == self.local
            || self
                .snapshot
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .members
                .get(node)
                .is_some_and(|seen| seen.usable)
    }
}

/// The name of a state, as the API shows it.
pub fn state_name(state: State) -> &'static str {
    match state {
        State::Alive => "alive",
        State::Suspect => "suspect",
        State::Dead => "dead",
        State::Left => "left",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_node_is_alive_before_anyone_is_heard_from() {
        let gossip = Gossip::new(
            MemberId::new("n1", "127.0.0.1:7000", 1),
            SwimConfig::default(),
            vec!["127.0.0.2:7000".to_owned()],
        )
        .unwrap();
        assert!(gossip.is_alive(&"n1".to_owned()));
        assert!(!gossip.is_alive(&"n2".to_owned()));
        gossip.refresh(&gossip.swim());
        assert!(gossip.snapshot().members.is_empty());
        assert_eq!(gossip.seeds(), ["127.0.0.2:7000"]);
    }
}
