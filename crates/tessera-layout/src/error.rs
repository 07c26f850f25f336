//! Errors of layouts, plans and commits.

use tessera_ring::RingError;

/// Why a layout could not be made, decoded or changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error(transparent)]
    Ring(#[from] RingError),
    #[error("encoded layout is empty")]
    Empty,
    #[error("encoded layout has format version {found}, this build reads version {supported}")]
    UnsupportedVersion { found: u8, supported: u8 },
    #[error("encoded layout is malformed ({len} bytes): {reason}")]
    Malformed { len: usize, reason: String },
    #[error("layout of epoch {epoch} is inconsistent: {reason}")]
    Inconsistent { epoch: u64, reason: String },
    #[error(
        "the change planned at epoch {planned} cannot apply: the cluster is at epoch {current}"
    )]
    StaleEpoch { planned: u64, current: u64 },
    #[error("epoch {epoch} is still being applied (data is moving); wait for it to finish, then plan again")]
    MoveInProgress { epoch: u64 },
    #[error("{reason}")]
    InvalidChange { reason: String },
}
