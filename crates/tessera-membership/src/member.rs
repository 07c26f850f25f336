//! Who a member is, what the cluster believes about it, and which belief wins.
//!
//! A member is named by its node id, but a process is named by node id *and* generation: a node
//! that restarts picks a higher generation (the runtime uses its start time), so a record of its
//! previous life, even a Dead one, is superseded at once instead of waiting for the dead memory to
//! expire. Within one generation, SWIM's incarnation numbers order the claims, and only the member
//! itself raises its incarnation, which is how it refutes a suspicion.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The identity of one process of the cluster.
///
/// `addr` is opaque to the core (the runtime uses `"ip:port"` of its UDP socket); it is where
/// probes and gossip for this member are sent. It does not take part in precedence: a generation
/// has one address for its whole life.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MemberId {
    /// The node's stable name, such as `"n1"`.
    pub node: String,
    /// Where the node's membership socket listens.
    pub addr: String,
    /// Picked by the process at start, higher on every restart (e.g. start time in ms).
    pub generation: u64,
}

impl MemberId {
    /// An identity from its parts.
    pub fn new(node: impl Into<String>, addr: impl Into<String>, generation: u64) -> MemberId {
        MemberId {
            node: node.into(),
            addr: addr.into(),
            generation,
        }
    }

    /// Whether `other` is the same process (node and generation).
    pub fn same_process(&self, other: &MemberId) -> bool {
        self.node == other.node && self.generation == other.generation
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}#{}", self.node, self.addr, self.generation)
    }
}

/// What a member is believed to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum State {
    /// Answering probes.
    Alive,
    /// A probe failed; it has until the suspicion timeout to refute.
    Suspect,
    /// Declared failed. Remembered for `Config::dead_memory_ms` so stale rumours cannot revive it.
    Dead,
    /// Left gracefully. Final for its generation.
    Left,
}

impl State {
    /// Alive or Suspect: probed, gossiped with, counted in the cluster size.
    pub fn is_live(self) -> bool {
        matches!(self, State::Alive | State::Suspect)
    }
}

/// One rumour about a member: the unit of SWIM dissemination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    pub id: MemberId,
    pub incarnation: u64,
    pub state: State,
    /// For a suspicion, the node that raised it: Lifeguard counts distinct suspecters as
    /// independent confirmations. `None` otherwise.
    pub by: Option<String>,
}

/// What this node currently believes about another member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: MemberId,
    pub incarnation: u64,
    pub state: State,
    /// When (ms, the caller's clock) the record last changed state.
    pub since_ms: u64,
}

/// Whether a claim `(generation, incarnation, state)` replaces the record `old`.
///
/// A higher generation replaces anything, a lower one nothing. Within a generation: Left is
/// final; Alive needs a higher incarnation than whatever it replaces (so only the member itself
/// can refute); Suspect and Dead replace a live record of the same or a lower incarnation, and a
/// record in their own state only with a higher one; nothing but a higher-incarnation Alive brings
/// back the Dead.
pub(crate) fn supersedes(generation: u64, incarnation: u64, state: State, old: &Member) -> bool {
    if generation != old.id.generation {
        return generation > old.id.generation;
    }
    let (inc, old_inc) = (incarnation, old.incarnation);
    match (state, old.state) {
        (_, State::Left) => false,
        (State::Left, _) => true,
        (State::Alive, _) => inc > old_inc,
        (State::Suspect, State::Alive) => inc >= old_inc,
        (State::Suspect, State::Suspect) => inc > old_inc,
        (State::Suspect, State::Dead) => false,
        (State::Dead, State::Alive | State::Suspect) => inc >= old_inc,
        (State::Dead, State::Dead) => inc > old_inc,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(generation: u64, incarnation: u64, state: State) -> Member {
        Member {
            id: MemberId::new("a", "a:1", generation),
            incarnation,
            state,
            since_ms: 0,
        }
    }

    #[test]
    fn precedence_follows_swim_within_a_generation() {
        use State::*;
        let cases = [
            // (claim, old, wins)
            ((1, 2, Alive), (1, 1, Alive), true),
            ((1, 1, Alive), (1, 1, Alive), false),
            ((1, 1, Alive), (1, 1, Suspect), false),
            ((1, 2, Alive), (1, 1, Suspect), true),
            ((1, 1, Suspect), (1, 1, Alive), true),
            ((1, 0, Suspect), (1, 1, Alive), false),
            ((1, 1, Suspect), (1, 1, Suspect), false),
            ((1, 2, Suspect), (1, 1, Suspect), true),
            ((1, 1, Dead), (1, 1, Suspect), true),
            ((1, 1, Dead), (1, 1, Alive), true),
            ((1, 0, Dead), (1, 1, Alive), false),
            ((1, 1, Alive), (1, 1, Dead), false),
            ((1, 2, Alive), (1, 1, Dead), true),
            ((1, 5, Suspect), (1, 1, Dead), false),
            ((1, 9, Alive), (1, 1, Left), false),
            ((1, 0, Left), (1, 3, Alive), true),
            ((2, 0, Alive), (1, 9, Left), true),
            ((2, 0, Alive), (1, 9, Dead), true),
            ((1, 9, Alive), (2, 0, Dead), false),
        ];
        for ((g, i, s), (og, oi, os), wins) in cases {
            assert_eq!(
                supersedes(g, i, s, &member(og, oi, os)),
                wins,
                "{g}/{i}/{s:?} over {og}/{oi}/{os:?}"
            );
        }
    }
}
