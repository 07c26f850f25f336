//! Placement: where a partition key lives, and which nodes hold it.
//!
//! This crate is pure (no I/O, no async, no randomness). It maps a partition key to a 64-bit
//! murmur3 token and the token to one of Q equal partitions of the token space (Dynamo's
//! strategy 3). Partitions are the virtual nodes: a [`Ring`] records which physical node owns each
//! of them at one epoch, and a partition is the unit that moves between nodes. Because a partition
//! is a contiguous token range, and tokens lead the storage key, one partition is one contiguous
//! range on disk.
//!
//! - [`Ring::new`], [`Ring::with_node_added`], [`Ring::with_node_removed`],
//!   [`Ring::with_node_replaced`] and [`Ring::with_changes`] (several nodes in one epoch) run the
//!   claim algorithm (module `claim`, which documents it and its guarantees precisely): loads within
//!   ±10 % of even, or at the floor or ceiling of Q/S where ±10 % holds no whole number; with at
//!   least N nodes, the owners of any N consecutive partitions distinct whenever any ring of that
//!   Q and S can have that ([`Ring::distinct_windows_guaranteed`]); and a change moves the
//!   partitions of the nodes that join or leave, about Q/S each, plus partitions between nodes that
//!   stay only where that is the only way to keep the first two ([`move_counts`] counts them). A
//!   replacement moves exactly the old node's partitions.
//! - [`Ring::preference_list`] and [`Ring::fallbacks`] give the replicas of a partition and the
//!   nodes that stand in for them (sloppy quorum).
//! - [`diff()`] and [`replica_changes`] say what a ring change moves; [`Ring::encode`] and
//!   [`Ring::decode`] carry a ring between nodes and to disk.

mod claim;
mod diff;
mod error;
mod partition;
mod ring;
mod token;

pub use diff::{diff, move_counts, replica_changes, MoveCounts, PartitionMove, ReplicaChange};
pub use error::RingError;
pub use partition::{PartitionId, PartitionScheme, DEFAULT_PARTITIONS, MAX_PARTITIONS};
pub use ring::{NodeId, Ring, RING_FORMAT_VERSION};
pub use token::{token_of, Token};
