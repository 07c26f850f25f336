//! The coordinator's error type, and its translation to and from the wire.
//!
//! Every variant carries the numbers an operator (and the HTTP layer, which
//! maps them to 503/504 bodies) needs: required, acked, and which replicas
//! failed and how. A forwarded write that fails at the coordinating replica
//! travels back as an [`ErrorKind`] with the same numbers and is rebuilt
//! here, so the client sees the real cause, not "forwarding failed".

use tessera_storage::StorageError;

use crate::messages::ErrorKind;
use crate::quorum::QuorumFailure;
use crate::transport::NodeId;

/// Why a coordinated read or write failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CoordinatorError {
    /// Too few replicas were alive to try; nothing was written or read.
    #[error("not enough replicas alive, nothing attempted: {0}")]
    Unavailable(QuorumFailure),

    /// Replicas failed until the quorum became impossible. A write may still
    /// have been applied by the replicas that acked.
    #[error("quorum failed: {0}")]
    Failed(QuorumFailure),

    /// The deadline passed before the quorum was reached. A write may still
    /// be applied by the replicas that acked or are pending.
    #[error("timed out after {timeout_ms} ms with {acked} of {required} required replicas acked (replication {replication}); no answer from [{}]", pending.join(", "))]
    Timeout {
        /// Acks or answers needed.
        required: u32,
        /// Acks or answers received.
        acked: u32,
        /// N.
        replication: u32,
        /// Replicas that had not answered.
        pending: Vec<NodeId>,
        /// The deadline that passed, in milliseconds.
        timeout_ms: u64,
    },

    /// Local storage failed or rejected the write (including
    /// [`StorageError::TooManySiblings`]).
    #[error("storage: {0}")]
    Storage(#[from] StorageError),

    /// A write for which this node is not a replica could not be forwarded
    /// to any replica, or the replica failed in a way that has no variant here.
    #[error("forwarding the write to {to} failed: {reason}")]
    Forward {
        /// The first replica tried.
        to: NodeId,
        /// What happened, for every replica tried.
        reason: String,
    },

    /// The request itself is unusable (no replicas, a quorum of 0 or above N,
    /// no cells, input storage rejects on a remote replica).
    #[error("invalid request: {reason}")]
    InvalidRequest {
        /// What is wrong.
        reason: String,
    },
}

impl CoordinatorError {
    /// The wire form of this error, for [`crate::Response::Error`].
    pub fn to_wire(&self) -> (ErrorKind, String) {
        let kind = match self {
            CoordinatorError::Unavailable(failure) => ErrorKind::Unavailable(failure.clone()),
            CoordinatorError::Failed(failure) => ErrorKind::QuorumFailed(failure.clone()),
            CoordinatorError::Timeout {
                required,
                acked,
                replication,
                pending,
                timeout_ms,
            } => ErrorKind::Timeout {
                required: *required,
                acked: *acked,
                replication: *replication,
                pending: pending.clone(),
                timeout_ms: *timeout_ms,
            },
            CoordinatorError::Storage(error) => storage_kind(error),
            CoordinatorError::Forward { to, .. } => ErrorKind::Forward { to: to.clone() },
            CoordinatorError::InvalidRequest { .. } => ErrorKind::InvalidInput,
        };
        (kind, self.to_string())
    }

    /// Rebuilds the error that `node` reported for a forwarded write.
    pub fn from_remote(node: &NodeId, kind: ErrorKind, message: String) -> Self {
        match kind {
            ErrorKind::Unavailable(failure) => CoordinatorError::Unavailable(failure),
            ErrorKind::QuorumFailed(failure) => CoordinatorError::Failed(failure),
            ErrorKind::Timeout {
                required,
                acked,
                replication,
                pending,
                timeout_ms,
            } => CoordinatorError::Timeout {
                required,
                acked,
                replication,
                pending,
                timeout_ms,
            },
            ErrorKind::TooManySiblings {
                column,
                siblings,
                max,
            } => CoordinatorError::Storage(StorageError::TooManySiblings {
                column,
                siblings: usize::try_from(siblings).unwrap_or(usize::MAX),
                max: usize::try_from(max).unwrap_or(usize::MAX),
            }),
            ErrorKind::InvalidInput => CoordinatorError::InvalidRequest {
                reason: format!("replica {node} rejected the write: {message}"),
            },
            ErrorKind::Forward { .. }
            | ErrorKind::BadRequest
            | ErrorKind::Storage
            | ErrorKind::NotCoordinator
            | ErrorKind::Internal
            | ErrorKind::HintLimit { .. } => CoordinatorError::Forward {
                to: node.clone(),
                reason: format!("{node} answered {kind:?}: {message}"),
            },
        }
    }
}

/// The wire kind of a storage error: whose fault it is, plus the sibling numbers.
pub(crate) fn storage_kind(error: &StorageError) -> ErrorKind {
    match error {
        StorageError::TooManySiblings {
            column,
            siblings,
            max,
        } => ErrorKind::TooManySiblings {
            column: column.clone(),
            siblings: *siblings as u64,
            max: *max as u64,
        },
        StorageError::KeyTooLong { .. }
        | StorageError::ColumnTooLong { .. }
        | StorageError::ReservedTable { .. }
        | StorageError::InvalidBatch { .. }
        | StorageError::Tree { .. } => ErrorKind::InvalidInput,
        StorageError::HintLimit { target, count, max } => ErrorKind::HintLimit {
            target: target.clone(),
            count: *count,
            max: *max,
        },
        StorageError::Engine { .. }
        | StorageError::Corrupt { .. }
        | StorageError::Encode { .. }
        | StorageError::NoTrees => ErrorKind::Storage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure() -> QuorumFailure {
        QuorumFailure {
            required: 2,
            acked: 1,
            acked_by: vec!["a".into()],
            failed: vec![("b".into(), "timeout".into()), ("c".into(), "down".into())],
            replication: 3,
        }
    }

    #[test]
    fn messages_state_the_numbers() {
        let text = CoordinatorError::Failed(failure()).to_string();
        assert!(text.contains("1 of 2 required"), "{text}");
        assert!(text.contains("replication 3"), "{text}");
        assert!(
            text.contains("b: timeout") && text.contains("c: down"),
            "{text}"
        );
        let text = CoordinatorError::Timeout {
            required: 3,
            acked: 2,
            replication: 3,
            pending: vec!["c".into()],
            timeout_ms: 2000,
        }
        .to_string();
        assert!(text.contains("2000 ms") && text.contains("2 of 3") && text.contains("[c]"));
    }

    #[test]
    fn quorum_errors_survive_the_wire() {
        let node = "b".to_owned();
        let errors = [
            CoordinatorError::Unavailable(failure()),
            CoordinatorError::Failed(failure()),
            CoordinatorError::Timeout {
                required: 3,
                acked: 2,
                replication: 3,
                pending: vec!["c".into()],
                timeout_ms: 2000,
            },
            CoordinatorError::Storage(StorageError::TooManySiblings {
                column: "x".into(),
                siblings: 65,
                max: 64,
            }),
        ];
        for error in errors {
            let (kind, message) = error.to_wire();
            assert_eq!(CoordinatorError::from_remote(&node, kind, message), error);
        }
    }

    #[test]
    fn other_remote_errors_name_the_node() {
        let (kind, message) = CoordinatorError::Storage(StorageError::Engine {
            op: "write",
            message: "disk full".into(),
        })
        .to_wire();
        assert_eq!(kind, ErrorKind::Storage);
        match CoordinatorError::from_remote(&"b".to_owned(), kind, message) {
            CoordinatorError::Forward { to, reason } => {
                assert_eq!(to, "b");
                assert!(reason.contains("disk full"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let (kind, _) =
            CoordinatorError::Storage(StorageError::KeyTooLong { len: 9, max: 8 }).to_wire();
        assert_eq!(kind, ErrorKind::InvalidInput);
    }
}
