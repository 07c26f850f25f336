//! The messages members exchange, all on one socket.
//!
//! Every message names its sender (identity and current incarnation: a message from a member is
//! itself evidence that it is alive at that incarnation) and carries piggybacked membership
//! [`Update`]s in whatever space its body leaves. SWIM probing, joins and anti-entropy syncs,
//! and the scuttlebutt metadata exchange are bodies of the same [`Message`], so the runtime
//! drives everything through one socket and one decoder.

use crate::metadata::{Delta, Digest};
use crate::{MemberId, Update};
use serde::{Deserialize, Serialize};

/// One datagram's worth of protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub from: MemberId,
    /// The sender's own incarnation when it sent this.
    pub incarnation: u64,
    pub body: Body,
    /// Piggybacked dissemination, most urgent first.
    pub updates: Vec<Update>,
}

/// What a message asks or answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// SWIM probe: answer with `Ack { seq }` to the sender's address.
    Ping { seq: u64 },
    /// Answer to a `Ping`, or a relay's forward of the target's answer to a `PingReq`.
    Ack { seq: u64 },
    /// Ask the receiver to ping `target` and forward its ack (`Ack { seq }`), or send
    /// `Nack { seq }` if the target stays silent (Lifeguard).
    PingReq { seq: u64, target: MemberId },
    /// A relay could not reach the target of `PingReq { seq }`: the relay itself is fine.
    Nack { seq: u64 },
    /// From a process that knows only the receiver's address: answer with `Sync`.
    Join,
    /// Part of a full membership list. `reply`: the receiver sends its own list back.
    Sync { members: Vec<Update>, reply: bool },
    /// Nothing but the piggybacked updates (a refutation or a suspicion sent straight to its
    /// subject, a death or leave notice sent to every live member).
    Updates,
    /// Scuttlebutt, step 1: what versions the sender holds.
    GossipSyn { digest: Digest },
    /// Step 2: what the receiver of the SYN holds, and what the SYN's sender is missing.
    GossipSynAck { digest: Digest, delta: Delta },
    /// Step 3: what the SYN-ACK's sender is missing.
    GossipAck { delta: Delta },
}
