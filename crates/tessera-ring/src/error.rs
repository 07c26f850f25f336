//! Errors of ring construction, ring changes and ring decoding.

/// What can be wrong with a ring's parameters, a requested change, or an encoded ring.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    #[error("partition count {count} is not a power of two between 1 and {max}")]
    InvalidPartitionCount { count: u64, max: u32 },
    #[error("a ring needs at least one node")]
    NoNodes,
    #[error("node ids must not be empty")]
    EmptyNodeId,
    #[error("node {node:?} is listed twice")]
    DuplicateNode { node: String },
    #[error("target replica count must be at least 1, got {target_n}")]
    InvalidTargetN { target_n: u32 },
    #[error("{nodes} nodes cannot each own one of only {partitions} partitions")]
    TooManyNodes { nodes: usize, partitions: u32 },
    #[error("node {node:?} is already in the ring at epoch {epoch}")]
    NodeExists { node: String, epoch: u64 },
    #[error("node {node:?} is not in the ring at epoch {epoch}")]
    UnknownNode { node: String, epoch: u64 },
    #[error("node {node:?} is the last node of the ring and cannot leave")]
    LastNode { node: String },
    #[error("a ring change at epoch {epoch} must add or remove at least one node")]
    EmptyChange { epoch: u64 },
    #[error("node {node:?} cannot be both added and removed in one change")]
    AddedAndRemoved { node: String },
    #[error("ring epoch {epoch} cannot be advanced")]
    EpochExhausted { epoch: u64 },
    #[error("encoded ring is empty")]
    EmptyEncoding,
    #[error("encoded ring has format version {found}, this build reads version {supported}")]
    UnsupportedVersion { found: u8, supported: u8 },
    #[error("encoded ring is malformed ({len} bytes): {reason}")]
    Malformed { len: usize, reason: String },
    #[error("ring has {owners} owners for {partitions} partitions")]
    OwnerCountMismatch { owners: usize, partitions: u32 },
    #[error(
        "partition {partition} is owned by node index {index}, but the ring has {nodes} nodes"
    )]
    OwnerOutOfRange {
        partition: u32,
        index: u32,
        nodes: usize,
    },
    #[error("node {node:?} owns no partition")]
    NodeWithoutPartitions { node: String },
    #[error("ring nodes are not sorted and unique at index {index} ({node:?})")]
    NodesNotSorted { index: usize, node: String },
}
