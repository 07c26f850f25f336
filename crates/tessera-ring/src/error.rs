//! Errors of ring construction.

/// What can be wrong with a ring's parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    #[error("partition count {count} is not a power of two between 1 and {max}")]
    InvalidPartitionCount { count: u64, max: u32 },
}
