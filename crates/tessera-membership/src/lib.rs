//! Membership for Tessera: who is in the cluster, who has failed, and what each member publishes.
//!
//! This crate is pure: no I/O, no async, no clocks. Like `foca`, it is a state machine that takes
//! incoming datagrams and timer ticks (with the caller's `now` in milliseconds) and returns
//! datagrams to send and events; a runtime owns the UDP socket and the clock. All randomness comes
//! from a seed, so a whole cluster can be simulated and replayed exactly (module `sim`, behind the
//! `sim` feature).
//!
//! - [`Swim`] runs SWIM (round-robin probing, ping-req through k relays, suspicion, incarnation
//!   refutation, piggybacked dissemination with a λ·log n retransmit limit, and deaths and leaves
//!   also sent straight to every live member) with Lifeguard's local health multiplier, NACKs and
//!   dynamic suspicion timeouts; identities carry a generation so a restarted node supersedes its
//!   dead self; joins need only seed addresses; dead members are remembered so stale rumours
//!   cannot revive them.
//! - [`phi`] is a phi-accrual detector per peer, fed by every message and gossip heartbeat; it
//!   expedites probes and answers [`Swim::is_likely_dead`] for the coordinator.
//! - [`metadata`] is scuttlebutt gossip of versioned key/value state per node, exchanged by the
//!   same state machine over the same socket.
//! - [`Config`] holds the parameters, documents how the defaults were chosen, and computes the
//!   detection-time bound ([`Config::detection_bound_ms`]) and idle message rate.
//!
//! Every datagram is a [`Message`]: a format version byte, then postcard, never more than
//! `Config::max_payload` bytes; [`Message::decode`] never panics.

mod broadcast;
mod codec;
mod config;
mod error;
mod health;
mod member;
mod message;
pub mod metadata;
mod output;
pub mod phi;
mod probe_order;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
mod suspicion;
mod swim;

pub use codec::{MAX_DATAGRAM, MESSAGE_FORMAT_VERSION};
pub use config::{Config, MIN_PAYLOAD};
pub use error::MembershipError;
pub use member::{Member, MemberId, State, Update};
pub use message::{Body, Message};
pub use output::{Counters, Datagram, Event, Output};
pub use suspicion::lifeguard_timeout_ms;
pub use swim::{Swim, EXPEDITE_EVERY, MAX_ID_LEN};
