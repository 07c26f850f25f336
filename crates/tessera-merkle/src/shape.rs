//! The fixed, versioned shape of every tree, and the token arithmetic it implies.
//!
//! One tree covers one (table, partition). The ring cuts the 64-bit token space into Q = 2^p
//! partitions, so a partition is the top `p` bits of a token; the tree cuts its partition's token
//! range into 2^s equal *segments* (the next `s` bits), grouped under 2^b *branches* of 2^(s-b)
//! segments each, under one root. Because tokens lead the storage key, a segment is one contiguous
//! key range on disk, so the cells of a segment are one range scan.
//!
//! The shape carries the format version of the whole crate (hashing, node encodings, messages):
//! two trees are comparable only if their shapes are equal, so a node that changed either the
//! fanout or the hash cannot be compared with an older one without the exchange noticing.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::delta::Delta;
use crate::digest::Digest;
use crate::error::MerkleError;

/// A token: the 64-bit murmur3 hash of a partition key.
pub type Token = u64;
/// A ring partition, `0..Q`.
pub type PartitionId = u16;
/// A leaf segment of a tree, `0..segments`.
pub type SegmentId = u32;
/// A branch of a tree, `0..branches`.
pub type BranchId = u32;

/// The version of hashing, node encodings and messages. Stored in every [`TreeShape`].
pub const MERKLE_FORMAT_VERSION: u8 = 1;
/// Most partition bits: partition ids are `u16` in every storage key.
pub const MAX_PARTITION_BITS: u8 = 16;
/// Most segment bits: 2^16 segments of 16 bytes make a 1 MiB tree, the most an exchange or a
/// rebuild should hold in memory per partition.
pub const MAX_SEGMENT_BITS: u8 = 16;
/// Branches of the default shape.
pub const DEFAULT_BRANCHES: u32 = 32;
/// Segments per branch of the default shape: 1024 segments in all, a 16.5 KiB tree.
pub const DEFAULT_SEGMENTS_PER_BRANCH: u32 = 32;

/// Shape and format of a tree: the partition count it lives in and its fanout.
///
/// Four bytes; compare shapes for equality before comparing trees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "ShapeRepr", into = "ShapeRepr")]
pub struct TreeShape {
    format: u8,
    partition_bits: u8,
    branch_bits: u8,
    leaf_bits: u8,
}

/// The serialised fields of a [`TreeShape`], validated on the way in.
#[derive(Serialize, Deserialize)]
struct ShapeRepr {
    format: u8,
    partition_bits: u8,
    branch_bits: u8,
    leaf_bits: u8,
}

impl From<TreeShape> for ShapeRepr {
    fn from(shape: TreeShape) -> Self {
        Self {
            format: shape.format,
            partition_bits: shape.partition_bits,
            branch_bits: shape.branch_bits,
            leaf_bits: shape.leaf_bits,
        }
    }
}

impl TryFrom<ShapeRepr> for TreeShape {
    type Error = MerkleError;

    /// Checks the bit counts (so arithmetic on the shape cannot overflow) but keeps any format
    /// version: an exchange reports a foreign version as [`MerkleError::UnsupportedVersion`].
    fn try_from(repr: ShapeRepr) -> Result<Self, MerkleError> {
        let segment_bits = u32::from(repr.branch_bits) + u32::from(repr.leaf_bits);
        if repr.partition_bits > MAX_PARTITION_BITS || segment_bits > u32::from(MAX_SEGMENT_BITS) {
            return Err(MerkleError::InvalidShapeBits {
                partition_bits: repr.partition_bits,
                segment_bits,
                max_partition_bits: MAX_PARTITION_BITS,
                max_segment_bits: MAX_SEGMENT_BITS,
            });
        }
        Ok(Self {
            format: repr.format,
            partition_bits: repr.partition_bits,
            branch_bits: repr.branch_bits,
            leaf_bits: repr.leaf_bits,
        })
    }
}

fn log2_of_power_of_two(n: u64) -> Option<u8> {
    (n != 0 && n.is_power_of_two()).then(|| n.trailing_zeros() as u8)
}

impl TreeShape {
    /// A shape for trees in a ring of `partitions` partitions, with `branches` branches of
    /// `segments_per_branch` segments each. All three must be powers of two; at most
    /// 2^[`MAX_PARTITION_BITS`] partitions and 2^[`MAX_SEGMENT_BITS`] segments.
    pub fn new(
        partitions: u64,
        branches: u64,
        segments_per_branch: u64,
    ) -> Result<Self, MerkleError> {
        let partition_bits = log2_of_power_of_two(partitions)
            .filter(|bits| *bits <= MAX_PARTITION_BITS)
            .ok_or(MerkleError::InvalidPartitionCount {
                count: partitions,
                max: 1 << MAX_PARTITION_BITS,
            })?;
        let fanout_error = MerkleError::InvalidFanout {
            branches,
            segments_per_branch,
            max_segments: 1 << MAX_SEGMENT_BITS,
        };
        let (Some(branch_bits), Some(leaf_bits)) = (
            log2_of_power_of_two(branches),
            log2_of_power_of_two(segments_per_branch),
        ) else {
            return Err(fanout_error);
        };
        if u32::from(branch_bits) + u32::from(leaf_bits) > u32::from(MAX_SEGMENT_BITS) {
            return Err(fanout_error);
        }
        Ok(Self {
            format: MERKLE_FORMAT_VERSION,
            partition_bits,
            branch_bits,
            leaf_bits,
        })
    }

    /// The default fanout ([`DEFAULT_BRANCHES`] x [`DEFAULT_SEGMENTS_PER_BRANCH`]) for a ring of
    /// `partitions` partitions.
    pub fn with_default_fanout(partitions: u64) -> Result<Self, MerkleError> {
        Self::new(
            partitions,
            u64::from(DEFAULT_BRANCHES),
            u64::from(DEFAULT_SEGMENTS_PER_BRANCH),
        )
    }

    /// The format version this shape was made with ([`MERKLE_FORMAT_VERSION`] unless decoded
    /// from a foreign node).
    pub fn format(&self) -> u8 {
        self.format
    }

    /// Q, the number of ring partitions.
    pub fn partitions(&self) -> u32 {
        1 << self.partition_bits
    }

    /// Branches per tree.
    pub fn branches(&self) -> u32 {
        1 << self.branch_bits
    }

    /// Segments per branch.
    pub fn segments_per_branch(&self) -> u32 {
        1 << self.leaf_bits
    }

    /// Segments per tree.
    pub fn segments(&self) -> u32 {
        1 << self.segment_bits()
    }

    /// Nodes per tree: the root, the branches and the segments.
    pub fn nodes(&self) -> usize {
        1 + self.branches() as usize + self.segments() as usize
    }

    fn segment_bits(&self) -> u32 {
        u32::from(self.branch_bits) + u32::from(self.leaf_bits)
    }

    /// log2 of the number of tokens in one segment; at least 32 given the limits.
    fn segment_width_bits(&self) -> u32 {
        64 - u32::from(self.partition_bits) - self.segment_bits()
    }

    /// The partition that holds `token` (the same as the ring's).
    pub fn partition_of(&self, token: Token) -> PartitionId {
        if self.partition_bits == 0 {
            return 0;
        }
        (token >> (64 - u32::from(self.partition_bits))) as PartitionId
    }

    /// The segment that holds `token`, within the token's partition.
    pub fn segment_of(&self, token: Token) -> SegmentId {
        let segment_bits = self.segment_bits();
        if segment_bits == 0 {
            return 0;
        }
        // Drop the partition bits, then keep the next `segment_bits`.
        let within_partition = token << self.partition_bits;
        (within_partition >> (64 - segment_bits)) as SegmentId
    }

    /// The partition and segment of `token`.
    pub fn locate(&self, token: Token) -> (PartitionId, SegmentId) {
        (self.partition_of(token), self.segment_of(token))
    }

    /// The branch above `segment`.
    pub fn branch_of(&self, segment: SegmentId) -> Result<BranchId, MerkleError> {
        self.check_segment(segment)?;
        Ok(segment >> self.leaf_bits)
    }

    /// The segments under `branch`.
    pub fn segments_of_branch(
        &self,
        branch: BranchId,
    ) -> Result<std::ops::Range<SegmentId>, MerkleError> {
        self.check_branch(branch)?;
        let first = branch << self.leaf_bits;
        Ok(first..first + self.segments_per_branch())
    }

    /// The inclusive token range `[start, end]` of `partition`.
    pub fn partition_range(&self, partition: PartitionId) -> Result<(Token, Token), MerkleError> {
        self.check_partition(partition)?;
        let width_bits = 64 - u32::from(self.partition_bits);
        Ok(Self::span(u128::from(partition) << width_bits, width_bits))
    }

    /// The inclusive token range `[start, end]` of `segment` of `partition`: the cells of the
    /// segment are exactly the cells whose token is in it, one contiguous key range on disk.
    pub fn segment_range(
        &self,
        partition: PartitionId,
        segment: SegmentId,
    ) -> Result<(Token, Token), MerkleError> {
        self.check_partition(partition)?;
        self.check_segment(segment)?;
        let width_bits = self.segment_width_bits();
        let partition_start = u128::from(partition) << (64 - u32::from(self.partition_bits));
        Ok(Self::span(
            partition_start + (u128::from(segment) << width_bits),
            width_bits,
        ))
    }

    /// `[start, start + 2^width_bits - 1]`; in u128 so that a width of 64 bits needs no care.
    fn span(start: u128, width_bits: u32) -> (Token, Token) {
        let end = start + (1u128 << width_bits) - 1;
        // Every range of a valid shape is inside the token space, so both fit in a u64.
        (start as Token, end as Token)
    }

    /// The change one write makes to the tree of `token`'s partition: `old` is the digest of the
    /// cell before the write (`None` if there was none), `new` after it (`None` for a removal,
    /// such as a purged tombstone). See [`Delta`].
    pub fn delta(&self, token: Token, old: Option<Digest>, new: Option<Digest>) -> Delta {
        let (partition, segment) = self.locate(token);
        let xor = old.unwrap_or(Digest::ZERO) ^ new.unwrap_or(Digest::ZERO);
        Delta::new(*self, partition, segment, segment >> self.leaf_bits, xor)
    }

    /// Checks that `partition` exists in this shape.
    pub fn check_partition(&self, partition: PartitionId) -> Result<(), MerkleError> {
        if u32::from(partition) >= self.partitions() {
            return Err(MerkleError::PartitionOutOfRange {
                partition: u32::from(partition),
                partitions: self.partitions(),
            });
        }
        Ok(())
    }

    /// Checks that `segment` exists in this shape.
    pub fn check_segment(&self, segment: SegmentId) -> Result<(), MerkleError> {
        if segment >= self.segments() {
            return Err(MerkleError::SegmentOutOfRange {
                segment,
                segments: self.segments(),
            });
        }
        Ok(())
    }

    /// Checks that `branch` exists in this shape.
    pub fn check_branch(&self, branch: BranchId) -> Result<(), MerkleError> {
        if branch >= self.branches() {
            return Err(MerkleError::BranchOutOfRange {
                branch,
                branches: self.branches(),
            });
        }
        Ok(())
    }

    /// Checks that this shape speaks this build's format and equals `local`.
    pub(crate) fn check_compatible(&self, local: &TreeShape) -> Result<(), MerkleError> {
        if self.format != MERKLE_FORMAT_VERSION {
            return Err(MerkleError::UnsupportedVersion {
                found: self.format,
                supported: MERKLE_FORMAT_VERSION,
            });
        }
        if self != local {
            return Err(MerkleError::ShapeMismatch {
                local: *local,
                remote: *self,
            });
        }
        Ok(())
    }

    /// The shape as four bytes, format version first, for the node's metadata: a node that
    /// finds a different stored shape must rebuild its trees.
    pub fn encode(&self) -> [u8; 4] {
        [
            self.format,
            self.partition_bits,
            self.branch_bits,
            self.leaf_bits,
        ]
    }

    /// A shape from [`TreeShape::encode`]'s bytes, of this build's format only.
    pub fn decode(bytes: &[u8]) -> Result<Self, MerkleError> {
        let Some((&format, _)) = bytes.split_first() else {
            return Err(MerkleError::EmptyEncoding { what: "tree shape" });
        };
        if format != MERKLE_FORMAT_VERSION {
            return Err(MerkleError::UnsupportedVersion {
                found: format,
                supported: MERKLE_FORMAT_VERSION,
            });
        }
        let [format, partition_bits, branch_bits, leaf_bits] =
            <[u8; 4]>::try_from(bytes).map_err(|_| MerkleError::Malformed {
                what: "tree shape",
                len: bytes.len(),
                reason: "a shape is 4 bytes".to_owned(),
            })?;
        TreeShape::try_from(ShapeRepr {
            format,
            partition_bits,
            branch_bits,
            leaf_bits,
        })
    }
}

impl fmt::Display for TreeShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "format {} / {} partitions / {} branches x {} segments",
            self.format,
            self.partitions(),
            self.branches(),
            self.segments_per_branch()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tessera_ring::PartitionScheme;

    const RING_SIZES: [u64; 4] = [1, 2, 256, 1 << 16];

    fn shapes() -> Vec<TreeShape> {
        let mut out = Vec::new();
        for q in RING_SIZES {
            for (b, l) in [(1, 1), (32, 32), (1, 1 << 16), (1 << 16, 1), (4, 8)] {
                out.push(TreeShape::new(q, b, l).unwrap());
            }
        }
        out
    }

    #[test]
    fn rejects_bad_parameters() {
        for q in [0, 3, 100, 1 << 17] {
            assert!(matches!(
                TreeShape::new(q, 32, 32),
                Err(MerkleError::InvalidPartitionCount { count, .. }) if count == q
            ));
        }
        for (b, l) in [(0, 32), (32, 0), (3, 32), (32, 7), (1 << 9, 1 << 8)] {
            assert!(
                matches!(
                    TreeShape::new(256, b, l),
                    Err(MerkleError::InvalidFanout { .. })
                ),
                "{b} x {l}"
            );
        }
        let shape = TreeShape::with_default_fanout(256).unwrap();
        assert_eq!(
            (
                shape.partitions(),
                shape.branches(),
                shape.segments(),
                shape.nodes()
            ),
            (256, 32, 1024, 1057)
        );
        assert!(shape.segment_range(255, 1023).is_ok());
        assert_eq!(
            shape.segment_range(0, 1024),
            Err(MerkleError::SegmentOutOfRange {
                segment: 1024,
                segments: 1024
            })
        );
        assert!(shape.branch_of(1024).is_err());
        assert!(shape.segments_of_branch(32).is_err());
        let small = TreeShape::new(2, 2, 2).unwrap();
        assert_eq!(
            small.segment_range(2, 0),
            Err(MerkleError::PartitionOutOfRange {
                partition: 2,
                partitions: 2
            })
        );
    }

    /// Token 0, u64::MAX and both sides of every partition boundary at the ends of the ring and
    /// in its middle: the round trip token -> segment -> range contains the token, and segments
    /// tile their partition with no gap.
    #[test]
    fn edges_round_trip() {
        for shape in shapes() {
            let scheme = PartitionScheme::new(u64::from(shape.partitions())).unwrap();
            let q = shape.partitions();
            let mut boundary_partitions = vec![0u32, 1, q / 2, q - 1];
            boundary_partitions.retain(|p| *p < q);
            let mut tokens = vec![0, u64::MAX];
            for p in boundary_partitions {
                let (start, end) = shape.partition_range(p as u16).unwrap();
                assert_eq!(start, scheme.first_token(p as u16), "{shape}");
                tokens.extend([start, end, start.wrapping_sub(1), end.wrapping_add(1)]);
            }
            for token in tokens {
                let (partition, segment) = shape.locate(token);
                assert_eq!(partition, scheme.partition_of(token), "{shape} {token:#x}");
                let (start, end) = shape.segment_range(partition, segment).unwrap();
                assert!(start <= token && token <= end, "{shape} {token:#x}");
                assert_eq!(shape.locate(start), (partition, segment));
                assert_eq!(shape.locate(end), (partition, segment));
            }
            // First and last segment of the first and last partition reach the ring's ends.
            let last_p = (q - 1) as u16;
            let last_s = shape.segments() - 1;
            assert_eq!(shape.segment_range(0, 0).unwrap().0, 0);
            assert_eq!(shape.segment_range(last_p, last_s).unwrap().1, u64::MAX);
            for p in [0, last_p] {
                let (p_start, p_end) = shape.partition_range(p).unwrap();
                assert_eq!(shape.segment_range(p, 0).unwrap().0, p_start);
                assert_eq!(shape.segment_range(p, last_s).unwrap().1, p_end);
            }
        }
    }

    #[test]
    fn segments_tile_a_partition_exactly() {
        for shape in [
            TreeShape::new(1, 4, 4).unwrap(),
            TreeShape::new(256, 32, 32).unwrap(),
            TreeShape::new(1 << 16, 8, 2).unwrap(),
        ] {
            for p in [0u16, (shape.partitions() - 1) as u16] {
                let (p_start, p_end) = shape.partition_range(p).unwrap();
                let mut next = p_start;
                for s in 0..shape.segments() {
                    let (start, end) = shape.segment_range(p, s).unwrap();
                    assert_eq!(start, next);
                    assert!(end >= start);
                    next = end.wrapping_add(1);
                    if s == shape.segments() - 1 {
                        assert_eq!(end, p_end);
                    }
                }
            }
        }
    }

    #[test]
    fn branches_group_consecutive_segments() {
        let shape = TreeShape::new(256, 4, 8).unwrap();
        for b in 0..4 {
            let range = shape.segments_of_branch(b).unwrap();
            assert_eq!(range, b * 8..b * 8 + 8);
            for s in range {
                assert_eq!(shape.branch_of(s).unwrap(), b);
            }
        }
    }

    #[test]
    fn encoding_round_trips_and_rejects() {
        let shape = TreeShape::new(256, 32, 32).unwrap();
        assert_eq!(shape.encode(), [MERKLE_FORMAT_VERSION, 8, 5, 5]);
        assert_eq!(TreeShape::decode(&shape.encode()), Ok(shape));
        assert_eq!(
            TreeShape::decode(&[]),
            Err(MerkleError::EmptyEncoding { what: "tree shape" })
        );
        assert_eq!(
            TreeShape::decode(&[9, 8, 5, 5]),
            Err(MerkleError::UnsupportedVersion {
                found: 9,
                supported: MERKLE_FORMAT_VERSION
            })
        );
        assert!(matches!(
            TreeShape::decode(&[MERKLE_FORMAT_VERSION, 8, 5]),
            Err(MerkleError::Malformed { len: 3, .. })
        ));
        assert!(matches!(
            TreeShape::decode(&[MERKLE_FORMAT_VERSION, 17, 5, 5]),
            Err(MerkleError::InvalidShapeBits { .. })
        ));
        assert!(matches!(
            TreeShape::decode(&[MERKLE_FORMAT_VERSION, 8, 9, 8]),
            Err(MerkleError::InvalidShapeBits { .. })
        ));
        // Serde validates too, so a shape from the network cannot make the arithmetic overflow.
        let bytes = postcard::to_allocvec(&ShapeRepr {
            format: 1,
            partition_bits: 40,
            branch_bits: 40,
            leaf_bits: 40,
        })
        .unwrap();
        assert!(postcard::from_bytes::<TreeShape>(&bytes).is_err());
    }

    proptest! {
        #[test]
        fn token_round_trips(
            q_bits in 0u32..=16,
            b_bits in 0u32..=8,
            l_bits in 0u32..=8,
            token in prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()],
        ) {
            let shape = TreeShape::new(1 << q_bits, 1 << b_bits, 1 << l_bits).unwrap();
            let scheme = PartitionScheme::new(1 << q_bits).unwrap();
            let (partition, segment) = shape.locate(token);
            prop_assert_eq!(partition, scheme.partition_of(token));
            prop_assert!(segment < shape.segments());
            let (start, end) = shape.segment_range(partition, segment).unwrap();
            prop_assert!(start <= token && token <= end);
            let branch = shape.branch_of(segment).unwrap();
            prop_assert!(shape.segments_of_branch(branch).unwrap().contains(&segment));
            let (p_start, p_end) = shape.partition_range(partition).unwrap();
            prop_assert!(p_start <= start && end <= p_end);
        }

        #[test]
        fn segments_are_monotonic_in_token(a: u64, b: u64) {
            let shape = TreeShape::with_default_fanout(256).unwrap();
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(shape.locate(lo) <= shape.locate(hi));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..8)) {
            let _ = TreeShape::decode(&bytes);
            let _ = postcard::from_bytes::<TreeShape>(&bytes);
        }
    }
}
