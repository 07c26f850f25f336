//! Errors of configuration, identity and message decoding.
//!
//! Everything that comes off the network is decoded into a [`crate::Message`] or one of these
//! errors; the state machine never panics on a datagram, whatever its bytes.

/// What can be wrong with a configuration, an identity, or an encoded message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    #[error("encoded message is empty")]
    EmptyEncoding,
    #[error("encoded message has format version {found}, this build reads version {supported}")]
    UnsupportedVersion { found: u8, supported: u8 },
    #[error("encoded message is {len} bytes, more than the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("encoded message is malformed ({len} bytes): {reason}")]
    Malformed { len: usize, reason: String },
    #[error("invalid configuration: {reason}")]
    InvalidConfig { reason: String },
    #[error("invalid identity: {reason}")]
    InvalidIdentity { reason: String },
}
