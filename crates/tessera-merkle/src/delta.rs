//! The change one write makes to a tree, computed once and applied anywhere.
//!
//! A write that replaces a cell whose digest was `old` by one whose digest is `new` changes its
//! segment, that segment's branch and the root by the same `old ^ new` (absent is
//! [`Digest::ZERO`]). The integration computes the [`Delta`] once per write, next to the cell, and
//! applies it to the persisted nodes in the same write batch (three XOR merge operands, see
//! [`crate::node`]), or to an in-memory [`MerkleTree`](crate::MerkleTree). Applying deltas in any
//! order gives the same tree, and applying one twice undoes it, so a delta must be applied exactly
//! once: which the shared batch guarantees.

use crate::digest::Digest;
use crate::node::NodeRef;
use crate::shape::{BranchId, PartitionId, SegmentId, TreeShape};

/// The XOR change of one write to the tree of one partition. Made by [`TreeShape::delta`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Delta {
    shape: TreeShape,
    partition: PartitionId,
    segment: SegmentId,
    branch: BranchId,
    xor: Digest,
}

impl Delta {
    pub(crate) fn new(
        shape: TreeShape,
        partition: PartitionId,
        segment: SegmentId,
        branch: BranchId,
        xor: Digest,
    ) -> Self {
        Self {
            shape,
            partition,
            segment,
            branch,
            xor,
        }
    }

    /// The shape of the tree this delta is for.
    pub fn shape(&self) -> TreeShape {
        self.shape
    }

    /// The partition whose tree changes.
    pub fn partition(&self) -> PartitionId {
        self.partition
    }

    /// The segment that changes.
    pub fn segment(&self) -> SegmentId {
        self.segment
    }

    /// The branch that changes.
    pub fn branch(&self) -> BranchId {
        self.branch
    }

    /// `old ^ new`, the value XORed into each changed node.
    pub fn xor(&self) -> Digest {
        self.xor
    }

    /// Whether the write left the cell's digest unchanged, so no node changes.
    pub fn is_noop(&self) -> bool {
        self.xor.is_zero()
    }

    /// The three nodes the write changes, leaf first, each with the value to XOR into it.
    pub fn nodes(&self) -> [(NodeRef, Digest); 3] {
        [
            (NodeRef::Segment(self.segment), self.xor),
            (NodeRef::Branch(self.branch), self.xor),
            (NodeRef::Root, self.xor),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::cell_digest;

    #[test]
    fn delta_names_the_nodes_of_its_token() {
        let shape = TreeShape::new(256, 4, 8).unwrap();
        let token = 0x0345_6789_abcd_ef01;
        let old = cell_digest(b"k", b"c", b"v1");
        let new = cell_digest(b"k", b"c", b"v2");
        let delta = shape.delta(token, Some(old), Some(new));
        let (partition, segment) = shape.locate(token);
        assert_eq!(delta.partition(), partition);
        assert_eq!(delta.segment(), segment);
        assert_eq!(delta.branch(), shape.branch_of(segment).unwrap());
        assert_eq!(delta.xor(), old ^ new);
        assert_eq!(
            delta.nodes(),
            [
                (NodeRef::Segment(segment), old ^ new),
                (NodeRef::Branch(delta.branch()), old ^ new),
                (NodeRef::Root, old ^ new),
            ]
        );
        assert!(!delta.is_noop());
        assert!(shape.delta(token, Some(old), Some(old)).is_noop());
        assert!(shape.delta(token, None, None).is_noop());
        assert_eq!(shape.delta(token, None, Some(new)).xor(), new);
        assert_eq!(shape.delta(token, Some(old), None).xor(), old);
    }
}
