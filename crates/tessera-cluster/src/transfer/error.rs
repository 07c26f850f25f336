//! Why a transfer step failed. Each is retried (after a backoff, possibly from another source);
//! the message is what the transfer's status and the worker list show.

use tessera_storage::StorageError;

use crate::transport::NodeId;

/// What went wrong while pulling a chunk.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// The source did not answer, or answered with an error.
    #[error("source {source_node} failed: {reason}")]
    Source {
        /// The source.
        source_node: NodeId,
        /// What happened.
        reason: String,
    },
    /// The source answered with a chunk that breaks the protocol (a key outside the partition,
    /// keys out of order, a cell that does not decode).
    #[error("source {source_node} sent a bad chunk: {reason}")]
    BadChunk {
        /// The source.
        source_node: NodeId,
        /// What was wrong.
        reason: String,
    },
    /// Local storage failed.
    #[error("local storage failed: {0}")]
    Storage(#[from] StorageError),
    /// A transfer that cannot run as given.
    #[error("invalid transfer: {reason}")]
    Invalid {
        /// What is wrong.
        reason: String,
    },
}
