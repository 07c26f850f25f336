//! Tessera's cluster layer: how one node's request becomes a quorum of replicas.
//!
//! - [`messages`]: the versioned internal RPC messages nodes exchange;
//! - [`transport`]: the [`Transport`] trait a node calls peers through, and
//!   the [`Handler`] trait a node serves peers with (the real HTTP transport
//!   lives in `tessera-server`; `sim::SimNetwork`, behind the `sim` feature,
//!   is an in-memory one for deterministic tests);
//! - [`membership`]: which peers are believed alive ([`MembershipView`]);
//! - [`quorum`]: pure state machines counting acks and merging read answers;
//! - [`coordinator`]: the Dynamo write and read paths (forwarding, W/R
//!   quorums, background replication and read repair);
//! - [`replica`]: the replica side, serving reads and merges from the local
//!   [`tessera_storage::CellStore`] and keeping hints in its
//!   [`tessera_storage::HintStore`];
//! - [`commit`]: group commit, the node's row writes and merges batched into
//!   one engine write ([`RowWriter`]);
//! - [`handoff`]: hinted handoff, delivering the hints a node keeps for
//!   replicas that were down (sloppy quorum) once they are back.
//!
//! Replica lists (preference lists) and fallback lists are inputs: the caller
//! computes them from the ring, so this crate does not depend on how
//! placement is decided.

pub mod clock;
pub mod commit;
pub mod coordinator;
pub mod error;
pub mod exec;
pub mod handoff;
pub mod membership;
pub mod messages;
pub mod ops;
pub mod quorum;
pub mod replica;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
pub mod stats;
pub mod transport;

mod answer;
mod read;
mod wire;
mod write;

pub use answer::ReadAnswer;
pub use clock::{system_clock, system_now_ms, Clock};
pub use commit::{CommitStats, RowWriter};
pub use coordinator::{Coordinator, CoordinatorConfig, WriteCoordinator};
pub use error::CoordinatorError;
pub use exec::StorageRunner;
pub use handoff::{
    backoff_ceiling, HandoffConfig, HandoffStatus, HintDelivery, RoundReport, TargetStatus,
};
pub use membership::{MembershipView, StaticMembership};
pub use messages::{
    decode_request, decode_response, encode_request, encode_response, ErrorKind, MessageError,
    Request, Response, PROTOCOL_VERSION,
};
pub use ops::{ClientWrite, ReadOutcome, WriteOutcome, WriteRequest};
pub use quorum::{QuorumFailure, QuorumState, ReadQuorum, ReadState, WriteQuorum};
pub use replica::Replica;
#[cfg(any(test, feature = "sim"))]
pub use sim::{CutMode, LinkConfig, SimNetwork, SimStats, SimTransport};
pub use stats::{CoordinatorStats, StatsSnapshot};
pub use transport::{BoxFuture, Handler, NodeId, Transport, TransportError};
