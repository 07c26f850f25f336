//! What the state machine hands back to its runtime: datagrams to send, events, counters.

use crate::metadata::NodeKey;
use crate::MemberId;

/// One datagram to send: `payload` is an encoded [`crate::Message`], at most
/// `Config::max_payload` bytes, for the membership socket at `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    pub to: String,
    pub payload: Vec<u8>,
}

/// A change in this process's view of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A process became Alive: new, returned from Dead, or a new generation of a node.
    MemberUp(MemberId),
    /// A process is suspected; it may still refute.
    MemberSuspect(MemberId),
    /// A suspected process refuted with a higher incarnation: the suspicion was false.
    MemberRefuted(MemberId),
    /// A process was declared Dead, or was replaced by a new generation of its node.
    MemberDown(MemberId),
    /// A process left gracefully.
    MemberLeft(MemberId),
    /// Keys of a node's metadata changed.
    MetadataChanged { node: NodeKey, keys: Vec<String> },
}

/// The result of one call into the state machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub send: Vec<Datagram>,
    pub events: Vec<Event>,
}

impl Output {
    pub fn is_empty(&self) -> bool {
        self.send.is_empty() && self.events.is_empty()
    }
}

/// Running totals since the state machine was made, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Probes started (round-robin and phi-expedited).
    pub probes_sent: u64,
    /// Probes started out of turn because the target's phi crossed the threshold.
    pub expedited_probes: u64,
    /// Probes of a member whose unconfirmed suspicion timed out, before declaring it Dead.
    pub verification_probes: u64,
    /// Probes answered, directly or through a relay.
    pub acks_received: u64,
    pub ping_reqs_sent: u64,
    pub nacks_sent: u64,
    pub nacks_received: u64,
    /// Probes that got no answer at all.
    pub probe_failures: u64,
    /// Suspicions this process raised from its own failed probes.
    pub suspicions_raised: u64,
    /// Suspected members later proven alive by a higher incarnation.
    pub false_suspicions_refuted: u64,
    /// Times this process refuted a suspicion (or death) of itself.
    pub refutations: u64,
    /// Members this process's suspicion timers declared Dead.
    pub deaths_declared: u64,
    /// Ticks that came after a stall of this process (see `Config::stall_threshold_ms`).
    pub stalls: u64,
    pub messages_sent: u64,
    pub bytes_sent: u64,
    pub messages_received: u64,
    pub bytes_received: u64,
    pub decode_errors: u64,
    /// Updates piggybacked on outgoing messages.
    pub updates_sent: u64,
}
