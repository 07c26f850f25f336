//! What callers ask the coordinator and what it answers.
//!
//! Consistency levels are already numbers here (the server resolves `quorum`
//! and friends), and the replica list is the key's preference list, computed
//! by the caller from the ring.

use serde::{Deserialize, Serialize};
use tessera_storage::{Cell, Context, RowKey};

use crate::transport::NodeId;

/// A client write of one or more cells of one row, applied atomically on each replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteRequest {
    /// The row.
    #[serde(with = "crate::wire::RowKeyDef")]
    pub row: RowKey,
    /// The cells, each column at most once.
    pub writes: Vec<ClientWrite>,
    /// W: acks needed, the coordinator's own included.
    pub required: u32,
    /// The preference list, N long, computed by the caller from the ring.
    pub replicas: Vec<NodeId>,
}

/// One cell of a [`WriteRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientWrite {
    /// The column.
    pub column: Vec<u8>,
    /// The new value; `None` deletes (writes a tombstone).
    pub value: Option<Vec<u8>>,
    /// The causal context of the client's read; `None` supersedes what the
    /// coordinating replica holds when the write arrives.
    pub context: Option<Context>,
}

/// An acknowledged write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteOutcome {
    /// The cells as the coordinator stored them (the new dot included), in write order.
    pub cells: Vec<(Vec<u8>, Cell)>,
    /// Replicas that had acknowledged when the coordinator answered, itself included.
    pub acked: u32,
    /// W.
    pub required: u32,
    /// N, the length of the replica list.
    pub replication: u32,
    /// The replica that coordinated (minted the dot); differs from the
    /// receiving node when the write was forwarded.
    pub coordinator: NodeId,
}

/// A successful quorum read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadOutcome<T> {
    /// The merged answer.
    pub value: T,
    /// Replicas that had answered when the coordinator answered (the fewest
    /// over the rounds of a paged row read).
    pub acked: u32,
    /// R.
    pub required: u32,
    /// N, the length of the replica list.
    pub replication: u32,
}
