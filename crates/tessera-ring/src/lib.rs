//! Placement: where a partition key lives.
//!
//! This crate is pure (no I/O, no async). It maps a partition key to a 64-bit murmur3 token and the
//! token to one of Q equal partitions of the token space (Dynamo's strategy 3). Partitions are the
//! virtual nodes: later they are claimed by physical nodes, and a partition is the unit that moves
//! between nodes. Because a partition is a contiguous token range, and tokens lead the storage key,
//! one partition is one contiguous range on disk.

mod error;
mod partition;
mod token;

pub use error::RingError;
pub use partition::{PartitionId, PartitionScheme, DEFAULT_PARTITIONS, MAX_PARTITIONS};
pub use token::{token_of, Token};
