//! Cell digests and the XOR that combines them into tree nodes.
//!
//! A cell's digest is SHA-256 over a domain tag and the length-prefixed partition key, column and
//! encoded cell, truncated to 128 bits. Nodes are the XOR of the digests below them, as in Riak's
//! TicTac AAE: XOR is associative, commutative and its own inverse, so a node is independent of
//! the order cells were written in, and a write changes its segment, branch and root by the same
//! `old ^ new` without reading any other cell.
//!
//! Why 128 bits: a digest only has to tell different cells apart. Two different cells (or two
//! different sets of cells under a node) look equal with probability 2^-128 per comparison, far
//! below the rate of undetected disk or memory corruption, and half the bytes of SHA-256 in every
//! persisted node and every message. A longer digest would not make XOR trees resist an
//! adversary either: a client that writes many chosen cells can search for a set whose XOR
//! cancels (Wagner's generalised birthday attack) at any width; the worst it achieves is that its
//! own cells are not repaired by anti-entropy on one replica (read repair still sees them), so
//! the tree trusts clients no further than it must. Once a segment is found to differ, its cells
//! are compared one by one, where no cancellation is possible.
//!
//! Why the key and column are hashed in: the same bytes under another key or column are another
//! cell, and must change the tree. Lengths are prefixed so that ("ab", "c") and ("a", "bc") differ.

use std::fmt;
use std::ops::{BitXor, BitXorAssign};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Bytes in a digest.
pub const DIGEST_LEN: usize = 16;

/// Separates cell digests of this format from any other use of SHA-256.
const CELL_DOMAIN: &[u8] = b"tessera-merkle cell v1\0";

/// A 128-bit digest of a cell, or the XOR of the digests under a tree node.
///
/// [`Digest::ZERO`] is the digest of nothing: an empty segment, an absent cell.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Digest([u8; DIGEST_LEN]);

impl Digest {
    /// The digest of nothing, the identity of XOR.
    pub const ZERO: Digest = Digest([0; DIGEST_LEN]);

    /// A digest from its bytes.
    pub const fn from_bytes(bytes: [u8; DIGEST_LEN]) -> Self {
        Self(bytes)
    }

    /// The digest's bytes.
    pub const fn to_bytes(self) -> [u8; DIGEST_LEN] {
        self.0
    }

    /// The digest's bytes, borrowed.
    pub fn as_bytes(&self) -> &[u8; DIGEST_LEN] {
        &self.0
    }

    /// Whether this is [`Digest::ZERO`].
    pub fn is_zero(&self) -> bool {
        self.0 == [0; DIGEST_LEN]
    }
}

impl BitXor for Digest {
    type Output = Digest;

    fn bitxor(mut self, rhs: Digest) -> Digest {
        self ^= rhs;
        self
    }
}

impl BitXorAssign for Digest {
    fn bitxor_assign(&mut self, rhs: Digest) {
        for (a, b) in self.0.iter_mut().zip(rhs.0) {
            *a ^= b;
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

/// The digest of one cell: its partition key, its column and its canonical encoded bytes (the
/// DVVSet as storage holds it; replicas that agree hold the same bytes).
pub fn cell_digest(key: &[u8], column: &[u8], cell: &[u8]) -> Digest {
    let mut hasher = Sha256::new();
    hasher.update(CELL_DOMAIN);
    // usize -> u64 never loses bits on supported targets; the prefixes only need to be unambiguous.
    hasher.update((key.len() as u64).to_be_bytes());
    hasher.update(key);
    hasher.update((column.len() as u64).to_be_bytes());
    hasher.update(column);
    hasher.update((cell.len() as u64).to_be_bytes());
    hasher.update(cell);
    let full = hasher.finalize();
    let mut out = [0u8; DIGEST_LEN];
    out.copy_from_slice(&full[..DIGEST_LEN]);
    Digest(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_answer() {
        // Pinned (computed independently with Python hashlib) so that a change of hashing cannot
        // slip in without a format version bump.
        assert_eq!(
            cell_digest(b"k", b"c", b"v").to_string(),
            "325518610aeb187d4ccfd9db7b2fcdd5"
        );
    }

    #[test]
    fn fields_are_delimited() {
        let ab_c = cell_digest(b"ab", b"c", b"");
        let a_bc = cell_digest(b"a", b"bc", b"");
        let a_b_c = cell_digest(b"a", b"b", b"c");
        assert_ne!(ab_c, a_bc);
        assert_ne!(a_bc, a_b_c);
        assert_ne!(ab_c, a_b_c);
        assert!(!cell_digest(b"", b"", b"").is_zero());
    }

    #[test]
    fn display_is_hex() {
        let d = Digest::from_bytes([0xab; DIGEST_LEN]);
        assert_eq!(d.to_string(), "ab".repeat(DIGEST_LEN));
        assert_eq!(
            format!("{:?}", Digest::ZERO),
            format!("Digest({})", "0".repeat(32))
        );
    }

    proptest! {
        #[test]
        fn xor_is_a_group(a: [u8; 16], b: [u8; 16], c: [u8; 16]) {
            let (a, b, c) = (Digest::from_bytes(a), Digest::from_bytes(b), Digest::from_bytes(c));
            prop_assert_eq!(a ^ b, b ^ a);
            prop_assert_eq!((a ^ b) ^ c, a ^ (b ^ c));
            prop_assert_eq!(a ^ Digest::ZERO, a);
            prop_assert_eq!(a ^ a, Digest::ZERO);
        }
    }
}
