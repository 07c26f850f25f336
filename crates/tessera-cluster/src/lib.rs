//! Tessera's cluster layer: how one node's request becomes a quorum of replicas.
//!
//! - [`messages`]: the versioned internal RPC messages nodes exchange;
//! - [`transport`]: the [`Transport`] trait a node calls peers through, and
//!   the [`Handler`] trait a node serves peers with (the real HTTP transport
//!   lives in `tessera-server`; `sim::SimNetwork`, behind the `sim` feature,
//!   is an in-memory one for deterministic tests);
//! - [`membership`]: which peers are believed alive ([`MembershipView`]);
//! - [`quorum`]: pure state machines counting acks and merging read answers;
//! - [`topology`]: the rings in force and the placement of a partition
//!   (replicas, fallbacks, joining nodes), which every path asks;
//! - [`availability`]: whether a level can be met with the replicas believed
//!   alive, decided once for the API and the coordinator;
//! - [`coordinator`]: the API of the Dynamo write and read paths (forwarding,
//!   W/R quorums, background replication and read repair), which live in
//!   `write.rs` and `read.rs` over the state in `shared.rs`, and call peers
//!   through `call.rs`;
//! - [`replica`]: the replica side, serving reads and merges from the local
//!   [`tessera_storage::CellStore`] and keeping hints in its
//!   [`tessera_storage::HintStore`];
//! - [`commit`]: group commit, the node's row writes and merges batched into
//!   one engine write ([`RowWriter`]);
//! - [`handoff`]: hinted handoff, delivering the hints a node keeps for
//!   replicas that were down (sloppy quorum) once they are back;
//! - [`transfer`]: streaming partitions to a node that takes them over
//!   (rebalancing), chunk by chunk, throttled and resumable;
//! - [`rebalance`]: the decisions that move one node through a layout change
//!   (ack, sync, read, cleanup), free of I/O and clocks, shared by the server's
//!   `rebalance` worker and the simulation.
//! - [`antientropy`]: Merkle-tree exchanges that converge every replica of every
//!   partition without client reads, and their replica side.
//!
//! Background jobs (group commit, hint delivery) are workers of
//! [`tessera_worker`]; the short tasks that outlive a request (replication
//! stragglers, read repairs) run under the coordinator's task budget.

pub mod antientropy;
pub mod availability;
pub mod clock;
pub mod commit;
pub mod coordinator;
pub mod error;
pub mod exec;
pub mod handoff;
pub mod handoff_redirect;
pub mod membership;
pub mod messages;
pub mod ops;
pub mod quorum;
pub mod rebalance;
pub mod replica;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
pub mod stats;
pub mod topology;
pub mod transfer;
pub mod transport;

mod answer;
mod call;
#[cfg(feature = "fault-injection")]
mod fault;
mod read;
mod shared;
mod wire;
mod write;

pub use answer::ReadAnswer;
pub use antientropy::{
    AntiEntropy, AntiEntropyConfig, AntiEntropyStatus, AntiEntropyWorker, PartitionTables,
    Responders, SweepReport, TableRepairStatus, ANTI_ENTROPY,
};
pub use availability::{Access, Liveness};
pub use clock::{system_clock, system_now_ms, Clock};
pub use commit::{CommitStats, RowWriter, COMMITTER};
pub use coordinator::{Coordinator, CoordinatorConfig, WriteCoordinator};
pub use error::CoordinatorError;
pub use exec::StorageRunner;
pub use handoff::{
    backoff_ceiling, HandoffConfig, HandoffStatus, HintDelivery, HintDeliveryWorker, RoundReport,
    TargetStatus, HINT_DELIVERY,
};
pub use membership::{MembershipView, StaticMembership};
pub use messages::{
    decode_request, decode_response, encode_request, encode_response, ErrorKind, MessageError,
    PartitionSize, Request, Response, PROTOCOL_VERSION,
};
pub use ops::{ClientWrite, ReadOutcome, WriteOutcome, WriteRequest};
pub use quorum::{QuorumFailure, QuorumState, ReadQuorum, ReadState, WriteQuorum};
pub use rebalance::{MoveDriver, MoveStep, TableReplicas};
pub use replica::{LayoutService, Replica};
#[cfg(any(test, feature = "sim"))]
pub use sim::{CutMode, LinkConfig, SimNetwork, SimStats, SimTransport};
pub use stats::{CoordinatorStats, StatsSnapshot};
pub use topology::{Placement, Topology, TopologyState};
pub use transfer::{Transfer, TransferKey, TransferWorker, Transfers};
pub use transport::{BoxFuture, Handler, NodeId, Transport, TransportError};
