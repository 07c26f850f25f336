//! Errors of tree shapes, tree updates, encodings and exchanges.
//!
//! Every variant carries the numbers needed to debug it. The exchange machines report an error as
//! their terminal [`Action::Failed`](crate::Action::Failed), so the enum is `Clone` and
//! comparable.

use crate::shape::TreeShape;

/// What can go wrong in this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    #[error("partition count {count} is not a power of two between 1 and {max}")]
    InvalidPartitionCount { count: u64, max: u32 },

    #[error(
        "fanout of {branches} branches x {segments_per_branch} segments per branch is invalid: \
         both must be powers of two and there may be at most {max_segments} segments"
    )]
    InvalidFanout {
        branches: u64,
        segments_per_branch: u64,
        max_segments: u32,
    },

    #[error(
        "tree shape bits are out of range: {partition_bits} partition bits (max {max_partition_bits}), \
         {segment_bits} segment bits (max {max_segment_bits})"
    )]
    InvalidShapeBits {
        partition_bits: u8,
        segment_bits: u32,
        max_partition_bits: u8,
        max_segment_bits: u8,
    },

    #[error("partition {partition} is out of range: the shape has {partitions} partitions")]
    PartitionOutOfRange { partition: u32, partitions: u32 },

    #[error("segment {segment} is out of range: the shape has {segments} segments")]
    SegmentOutOfRange { segment: u32, segments: u32 },

    #[error("branch {branch} is out of range: the shape has {branches} branches")]
    BranchOutOfRange { branch: u32, branches: u32 },

    #[error("token {token:#018x} is in partition {found}, not in partition {partition}")]
    TokenOutsidePartition {
        token: u64,
        partition: u16,
        found: u16,
    },

    #[error("tree shapes differ: local {local}, remote {remote}")]
    ShapeMismatch { local: TreeShape, remote: TreeShape },

    #[error("trees are of different partitions: local {local}, remote {remote}")]
    PartitionMismatch { local: u16, remote: u16 },

    #[error("message is for table {remote}, this exchange is of table {local}")]
    TableMismatch { local: u32, remote: u32 },

    #[error("format version {found} is not supported, this build speaks version {supported}")]
    UnsupportedVersion { found: u8, supported: u8 },

    #[error("encoded {what} is empty")]
    EmptyEncoding { what: &'static str },

    #[error("encoded {what} is malformed ({len} bytes): {reason}")]
    Malformed {
        what: &'static str,
        len: usize,
        reason: String,
    },

    #[error("{what} is not in strictly ascending order at index {index}")]
    NotSorted { what: &'static str, index: usize },

    #[error("{what}: cell {index} (token {token:#018x}) {reason}")]
    CellOutOfRange {
        what: &'static str,
        index: usize,
        token: u64,
        reason: String,
    },

    #[error("{what} is empty")]
    EmptyRequest { what: &'static str },

    #[error("{what} holds {found} entries, the limit is {max}")]
    TooMany {
        what: &'static str,
        found: usize,
        max: usize,
    },

    #[error("{what} holds {found} entries, {expected} were expected")]
    WrongLength {
        what: &'static str,
        found: usize,
        expected: usize,
    },

    #[error("expected {expected} for request {seq}, got {found}")]
    UnexpectedMessage {
        expected: &'static str,
        found: &'static str,
        seq: u32,
    },

    #[error("message has sequence number {found}, at most {expected} was possible")]
    UnexpectedSequence { expected: u32, found: u32 },

    #[error("scan results arrived while no scan was requested")]
    UnexpectedScan,

    #[error("invalid exchange setting {field} = {value}")]
    InvalidConfig { field: &'static str, value: u64 },

    #[error("the peer aborted the exchange: {reason}")]
    PeerAborted { reason: String },

    #[error("no answer to request {seq} after {retries} retransmissions")]
    TimedOut { seq: u32, retries: u32 },

    #[error("the exchange was abandoned by its owner")]
    Abandoned,
}
