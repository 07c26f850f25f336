//! Tree against tree: which segments differ, found level by level.
//!
//! The walk compares the roots, then the branches only if the roots differ, then the segments
//! only under branches that differ: the cost is one comparison for trees that agree and at most
//! the tree's size otherwise. The exchange runs the same walk across the network with the same
//! helpers, one level per round trip.
//!
//! Exactness: a node equals its counterpart exactly when the XOR of the cell digests below it is
//! equal. Differences below a node can cancel in its XOR only with probability 2^-128 per
//! comparison (see [`crate::digest`]), so the walk returns exactly the segments whose leaves
//! differ, except with that probability. [`MerkleTree::differences`] compares every node for
//! callers that need certainty about the tree itself.

use crate::digest::Digest;
use crate::error::MerkleError;
use crate::shape::{BranchId, SegmentId, TreeShape};
use crate::tree::MerkleTree;

/// The result of [`diff_trees`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeDiff {
    /// Segments whose digests differ, ascending.
    pub segments: Vec<SegmentId>,
    /// Node digests compared to find them.
    pub nodes_compared: u64,
}

/// The segments in which `local` and `remote` differ, found level by level.
pub fn diff_trees(local: &MerkleTree, remote: &MerkleTree) -> Result<TreeDiff, MerkleError> {
    local.check_comparable(remote)?;
    let mut diff = TreeDiff {
        segments: Vec::new(),
        nodes_compared: 1,
    };
    if local.root() == remote.root() {
        return Ok(diff);
    }
    diff.nodes_compared += local.branches().len() as u64;
    let branches = differing(local.branches(), remote.branches());
    let local_leaves = local.segments_under(&branches)?;
    let remote_leaves = remote.segments_under(&branches)?;
    diff.nodes_compared += local_leaves.len() as u64;
    diff.segments = differing_segments(&local.shape(), &branches, &local_leaves, &remote_leaves);
    Ok(diff)
}

/// Indices at which two equally long digest lists differ.
pub(crate) fn differing(local: &[Digest], remote: &[Digest]) -> Vec<u32> {
    local
        .iter()
        .zip(remote)
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, _)| i as u32)
        .collect()
}

/// The differing segments under `branches`, given both sides' segment digests under them,
/// branch after branch (as [`MerkleTree::segments_under`] lists them).
pub(crate) fn differing_segments(
    shape: &TreeShape,
    branches: &[BranchId],
    local_leaves: &[Digest],
    remote_leaves: &[Digest],
) -> Vec<SegmentId> {
    let per_branch = shape.segments_per_branch();
    differing(local_leaves, remote_leaves)
        .into_iter()
        .map(|i| {
            let branch = branches[(i / per_branch) as usize];
            branch * per_branch + i % per_branch
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::cell_digest;
    use crate::shape::Token;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn shape() -> TreeShape {
        TreeShape::new(2, 4, 4).unwrap()
    }

    #[test]
    fn equal_trees_cost_one_comparison() {
        let a = MerkleTree::from_cells(shape(), 0, [(7, Digest::from_bytes([1; 16]))]).unwrap();
        assert_eq!(
            diff_trees(&a, &a.clone()).unwrap(),
            TreeDiff {
                segments: vec![],
                nodes_compared: 1
            }
        );
    }

    #[test]
    fn one_difference_descends_one_branch() {
        let a = MerkleTree::new(shape(), 0).unwrap();
        let token: Token = 3 << 59; // below the partition bit: segment 3 of 16, branch 0
        let b = MerkleTree::from_cells(shape(), 0, [(token, Digest::from_bytes([1; 16]))]).unwrap();
        assert_eq!(
            diff_trees(&a, &b).unwrap(),
            TreeDiff {
                segments: vec![3],
                nodes_compared: 1 + 4 + 4
            }
        );
    }

    #[test]
    fn incomparable_trees_are_errors() {
        let a = MerkleTree::new(shape(), 0).unwrap();
        assert!(matches!(
            diff_trees(&a, &MerkleTree::new(shape(), 1).unwrap()),
            Err(MerkleError::PartitionMismatch { .. })
        ));
        let other = TreeShape::new(2, 2, 8).unwrap();
        assert!(matches!(
            diff_trees(&a, &MerkleTree::new(other, 0).unwrap()),
            Err(MerkleError::ShapeMismatch { .. })
        ));
    }

    /// A replica's contents: token -> value byte, one cell per token; the key is the token.
    fn arb_contents() -> impl Strategy<Value = BTreeMap<Token, u8>> {
        // Tokens in partition 0 of `shape()` (top bit clear), drawn from few segments so
        // segments hold several cells.
        let token = (0u64..16, 0u64..4).prop_map(|(segment, i)| (segment << 59) | (i << 40));
        proptest::collection::btree_map(token, 0u8..3, 0..24)
    }

    fn tree_of(contents: &BTreeMap<Token, u8>) -> MerkleTree {
        MerkleTree::from_cells(
            shape(),
            0,
            contents
                .iter()
                .map(|(t, v)| (*t, cell_digest(&t.to_be_bytes(), b"c", &[*v]))),
        )
        .unwrap()
    }

    proptest! {
        /// The walk finds exactly the segments whose cells differ, both ways round, and agrees
        /// with comparing every leaf.
        #[test]
        fn finds_exactly_the_differing_segments(a in arb_contents(), b in arb_contents()) {
            let (ta, tb) = (tree_of(&a), tree_of(&b));
            let mut expected = BTreeSet::new();
            for t in a.keys().chain(b.keys()) {
                if a.get(t) != b.get(t) {
                    expected.insert(shape().segment_of(*t));
                }
            }
            let expected: Vec<SegmentId> = expected.into_iter().collect();
            let diff = diff_trees(&ta, &tb).unwrap();
            prop_assert_eq!(&diff.segments, &expected);
            prop_assert_eq!(&diff_trees(&tb, &ta).unwrap().segments, &expected);
            let leaves: Vec<SegmentId> = ta
                .differences(&tb)
                .unwrap()
                .into_iter()
                .filter_map(|n| match n {
                    crate::NodeRef::Segment(s) => Some(s),
                    _ => None,
                })
                .collect();
            prop_assert_eq!(&leaves, &expected);
            prop_assert!(diff.nodes_compared <= shape().nodes() as u64);
        }
    }
}
