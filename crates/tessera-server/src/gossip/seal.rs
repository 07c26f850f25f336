//! Authenticates membership datagrams with the cluster secret.
//!
//! Every datagram is `payload | tag`, where the tag is HMAC-SHA256 of the payload keyed by the
//! cluster secret, cut to [`TAG_BYTES`]. A datagram whose tag does not verify is dropped before
//! its payload is decoded, so a stray packet or one forged without the secret cannot mark nodes
//! dead or inject metadata. (It does not stop replays of a captured datagram; SWIM's incarnation
//! and generation ordering makes a replayed, older claim lose to what the cluster already knows.)

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Bytes of the tag appended to every datagram: 128 bits, as in TLS's truncated HMACs.
pub const TAG_BYTES: usize = 16;

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("datagram of {0} bytes is too short to carry a tag")]
    TooShort(usize),
    #[error("datagram tag does not verify (wrong cluster secret, or tampered)")]
    BadTag,
}

impl Rejected {
    /// The metrics label of the reason.
    pub fn label(self) -> &'static str {
        match self {
            Rejected::TooShort(_) => "short",
            Rejected::BadTag => "bad_tag",
        }
    }
}

/// Seals and opens datagrams with one key.
#[derive(Clone)]
pub struct Sealer {
    mac: Hmac<Sha256>,
}

impl Sealer {
    pub fn new(secret: &[u8]) -> Self {
        // HMAC takes keys of any length, so this cannot fail.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        Self { mac }
    }

    /// `payload` with its tag appended.
    pub fn seal(&self, payload: &[u8]) -> Vec<u8> {
        let mut mac = self.mac.clone();
        mac.update(payload);
        let tag = mac.finalize().into_bytes();
        let mut sealed = Vec::with_capacity(payload.len() + TAG_BYTES);
        sealed.extend_from_slice(payload);
        sealed.extend_from_slice(&tag[..TAG_BYTES]);
        sealed
    }

    /// The payload of a datagram whose tag verifies (in constant time).
    pub fn open<'a>(&self, datagram: &'a [u8]) -> Result<&'a [u8], Rejected> {
        let Some(split) = datagram.len().checked_sub(TAG_BYTES) else {
            return Err(Rejected::TooShort(datagram.len()));
        };
        let (payload, tag) = datagram.split_at(split);
        let mut mac = self.mac.clone();
        mac.update(payload);
        mac.verify_truncated_left(tag)
            .map_err(|_| Rejected::BadTag)?;
        Ok(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_sealed_datagram_opens_with_the_same_secret_only() {
        let sealer = Sealer::new(b"secret");
        let sealed = sealer.seal(b"hello");
        assert_eq!(sealed.len(), 5 + TAG_BYTES);
        assert_eq!(sealer.open(&sealed), Ok(&b"hello"[..]));
        assert_eq!(Sealer::new(b"other").open(&sealed), Err(Rejected::BadTag));
        let mut flipped = sealed.clone();
        flipped[0] ^= 1;
        assert_eq!(sealer.open(&flipped), Err(Rejected::BadTag));
        assert_eq!(sealer.open(&sealed[..3]), Err(Rejected::TooShort(3)));
        // An empty payload is sealed too (the tag alone).
        assert_eq!(sealer.open(&sealer.seal(b"")), Ok(&b""[..]));
    }

    proptest! {
        #[test]
        fn garbage_is_rejected_not_panicked_on(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert!(Sealer::new(b"secret").open(&bytes).is_err());
        }
    }
}
