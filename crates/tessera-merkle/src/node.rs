//! The persisted form of tree nodes: their keys and values in the `merkle` column family.
//!
//! A node's key suffix (after the storage's own `table | partition` prefix) is its level tag and
//! index, big-endian, so a prefix scan of one tree yields the root, then the branches, then the
//! segments, each in index order. A node's value is the format version and the 16 digest bytes.
//!
//! [`merge_node_values`] is an associative XOR merge of such values, meant to back a RocksDB
//! merge operator: the write path then adds a delta's three operands to its batch without reading
//! the nodes, and concurrent batches need no lock between them. An absent node is
//! [`Digest::ZERO`], so an empty tree needs no nodes at all.

use serde::{Deserialize, Serialize};

use crate::digest::{Digest, DIGEST_LEN};
use crate::error::MerkleError;
use crate::shape::{BranchId, SegmentId, TreeShape, MERKLE_FORMAT_VERSION};

/// Bytes of an encoded [`NodeRef`].
pub const NODE_KEY_LEN: usize = 5;
/// Bytes of an encoded node value.
pub const NODE_VALUE_LEN: usize = 1 + DIGEST_LEN;

const ROOT_TAG: u8 = 0;
const BRANCH_TAG: u8 = 1;
const SEGMENT_TAG: u8 = 2;

/// One node of a tree. Orders as it is stored: root, branches, segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum NodeRef {
    /// The root, the XOR of every cell of the partition.
    Root,
    /// A branch, the XOR of its segments.
    Branch(BranchId),
    /// A leaf segment, the XOR of the cells whose token is in its range.
    Segment(SegmentId),
}

impl NodeRef {
    /// The node's key suffix: level tag, then index (u32 BE).
    pub fn encode(&self) -> [u8; NODE_KEY_LEN] {
        let (tag, index) = match *self {
            NodeRef::Root => (ROOT_TAG, 0),
            NodeRef::Branch(b) => (BRANCH_TAG, b),
            NodeRef::Segment(s) => (SEGMENT_TAG, s),
        };
        let mut out = [0u8; NODE_KEY_LEN];
        out[0] = tag;
        out[1..].copy_from_slice(&index.to_be_bytes());
        out
    }

    /// A node from [`NodeRef::encode`]'s bytes, checked against `shape`.
    pub fn decode(bytes: &[u8], shape: &TreeShape) -> Result<Self, MerkleError> {
        let malformed = |reason: String| MerkleError::Malformed {
            what: "tree node key",
            len: bytes.len(),
            reason,
        };
        let [tag, a, b, c, d] = <[u8; NODE_KEY_LEN]>::try_from(bytes)
            .map_err(|_| malformed(format!("a node key is {NODE_KEY_LEN} bytes")))?;
        let index = u32::from_be_bytes([a, b, c, d]);
        let node = match tag {
            ROOT_TAG if index == 0 => NodeRef::Root,
            ROOT_TAG => return Err(malformed(format!("root with index {index}"))),
            BRANCH_TAG => NodeRef::Branch(index),
            SEGMENT_TAG => NodeRef::Segment(index),
            other => return Err(malformed(format!("unknown level tag {other}"))),
        };
        node.check(shape)?;
        Ok(node)
    }

    /// Checks that the node exists in `shape`.
    pub fn check(&self, shape: &TreeShape) -> Result<(), MerkleError> {
        match *self {
            NodeRef::Root => Ok(()),
            NodeRef::Branch(b) => shape.check_branch(b),
            NodeRef::Segment(s) => shape.check_segment(s),
        }
    }
}

/// A node's value: the format version, then the digest.
pub fn encode_node_value(digest: Digest) -> [u8; NODE_VALUE_LEN] {
    let mut out = [0u8; NODE_VALUE_LEN];
    out[0] = MERKLE_FORMAT_VERSION;
    out[1..].copy_from_slice(digest.as_bytes());
    out
}

/// A node's digest from [`encode_node_value`]'s bytes.
pub fn decode_node_value(bytes: &[u8]) -> Result<Digest, MerkleError> {
    let Some((&version, body)) = bytes.split_first() else {
        return Err(MerkleError::EmptyEncoding {
            what: "tree node value",
        });
    };
    if version != MERKLE_FORMAT_VERSION {
        return Err(MerkleError::UnsupportedVersion {
            found: version,
            supported: MERKLE_FORMAT_VERSION,
        });
    }
    let digest = <[u8; DIGEST_LEN]>::try_from(body).map_err(|_| MerkleError::Malformed {
        what: "tree node value",
        len: bytes.len(),
        reason: format!("a node value is {NODE_VALUE_LEN} bytes"),
    })?;
    Ok(Digest::from_bytes(digest))
}

/// The XOR of an existing node value (absent is zero) and merge operands, each an encoded node
/// value: a RocksDB merge operator's full and partial merge alike, since XOR is associative.
pub fn merge_node_values<'a>(
    existing: Option<&[u8]>,
    operands: impl IntoIterator<Item = &'a [u8]>,
) -> Result<[u8; NODE_VALUE_LEN], MerkleError> {
    let mut acc = match existing {
        Some(bytes) => decode_node_value(bytes)?,
        None => Digest::ZERO,
    };
    for operand in operands {
        acc ^= decode_node_value(operand)?;
    }
    Ok(encode_node_value(acc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn shape() -> TreeShape {
        TreeShape::new(256, 4, 8).unwrap()
    }

    #[test]
    fn keys_round_trip_and_sort_as_stored() {
        let nodes = [
            NodeRef::Root,
            NodeRef::Branch(0),
            NodeRef::Branch(3),
            NodeRef::Segment(0),
            NodeRef::Segment(31),
        ];
        for pair in nodes.windows(2) {
            assert!(pair[0] < pair[1]);
            assert!(pair[0].encode() < pair[1].encode());
        }
        for node in nodes {
            assert_eq!(NodeRef::decode(&node.encode(), &shape()), Ok(node));
        }
    }

    #[test]
    fn bad_keys_are_errors() {
        let s = shape();
        assert!(matches!(
            NodeRef::decode(&[], &s),
            Err(MerkleError::Malformed { .. })
        ));
        assert!(matches!(
            NodeRef::decode(&[0, 0, 0, 0, 1], &s),
            Err(MerkleError::Malformed { .. })
        ));
        assert!(matches!(
            NodeRef::decode(&[7, 0, 0, 0, 0], &s),
            Err(MerkleError::Malformed { .. })
        ));
        assert_eq!(
            NodeRef::decode(&NodeRef::Branch(4).encode(), &s),
            Err(MerkleError::BranchOutOfRange {
                branch: 4,
                branches: 4
            })
        );
        assert_eq!(
            NodeRef::decode(&NodeRef::Segment(32).encode(), &s),
            Err(MerkleError::SegmentOutOfRange {
                segment: 32,
                segments: 32
            })
        );
    }

    #[test]
    fn values_round_trip_and_reject() {
        let d = Digest::from_bytes([7; DIGEST_LEN]);
        assert_eq!(decode_node_value(&encode_node_value(d)), Ok(d));
        assert!(matches!(
            decode_node_value(&[]),
            Err(MerkleError::EmptyEncoding { .. })
        ));
        let mut foreign = encode_node_value(d);
        foreign[0] = 2;
        assert_eq!(
            decode_node_value(&foreign),
            Err(MerkleError::UnsupportedVersion {
                found: 2,
                supported: MERKLE_FORMAT_VERSION
            })
        );
        assert!(matches!(
            decode_node_value(&encode_node_value(d)[..10]),
            Err(MerkleError::Malformed { len: 10, .. })
        ));
        assert!(merge_node_values(Some(&[1, 2]), []).is_err());
        assert!(merge_node_values(None, [&[9u8][..]]).is_err());
    }

    proptest! {
        /// Folding operands one at a time, all at once, or in partial groups gives the same node:
        /// RocksDB may call the merge operator with any grouping.
        #[test]
        fn merge_is_xor_in_any_grouping(
            base in proptest::option::of(any::<[u8; 16]>()),
            ops in proptest::collection::vec(any::<[u8; 16]>(), 0..8),
            split in 0usize..8,
        ) {
            let base = base.map(|b| encode_node_value(Digest::from_bytes(b)));
            let ops: Vec<[u8; NODE_VALUE_LEN]> =
                ops.iter().map(|b| encode_node_value(Digest::from_bytes(*b))).collect();
            let all = merge_node_values(base.as_ref().map(|b| &b[..]), ops.iter().map(|o| &o[..])).unwrap();

            let split = split.min(ops.len());
            let partial = merge_node_values(None, ops[split..].iter().map(|o| &o[..])).unwrap();
            let head = merge_node_values(base.as_ref().map(|b| &b[..]), ops[..split].iter().map(|o| &o[..])).unwrap();
            prop_assert_eq!(merge_node_values(Some(&head), [&partial[..]]).unwrap(), all);

            let expected = ops.iter().fold(
                base.map(|b| decode_node_value(&b).unwrap()).unwrap_or(Digest::ZERO),
                |acc, o| acc ^ decode_node_value(o).unwrap(),
            );
            prop_assert_eq!(decode_node_value(&all).unwrap(), expected);
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..24)) {
            let _ = NodeRef::decode(&bytes, &shape());
            let _ = decode_node_value(&bytes);
            let _ = merge_node_values(Some(&bytes), [&bytes[..]]);
        }
    }
}
