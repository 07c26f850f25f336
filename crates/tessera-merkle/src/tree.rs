//! The in-memory tree of one (table, partition).
//!
//! A [`MerkleTree`] holds every node (root, branches, segments; 16.5 KiB with the default shape),
//! so it can be kept by deltas, rebuilt from a scan, loaded from persisted nodes, compared whole
//! for the periodic check, and handed to an exchange as a snapshot. Trees of the same contents
//! are equal (`==`) however they were built.

use crate::delta::Delta;
use crate::digest::Digest;
use crate::error::MerkleError;
use crate::node::NodeRef;
use crate::shape::{BranchId, PartitionId, SegmentId, Token, TreeShape};

/// Root, branches and segments of the tree of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerkleTree {
    shape: TreeShape,
    partition: PartitionId,
    root: Digest,
    branches: Vec<Digest>,
    segments: Vec<Digest>,
}

impl MerkleTree {
    /// The tree of an empty partition: every node zero.
    pub fn new(shape: TreeShape, partition: PartitionId) -> Result<Self, MerkleError> {
        shape.check_partition(partition)?;
        Ok(Self {
            shape,
            partition,
            root: Digest::ZERO,
            branches: vec![Digest::ZERO; shape.branches() as usize],
            segments: vec![Digest::ZERO; shape.segments() as usize],
        })
    }

    /// The tree of a partition holding exactly `cells`, as `(token, cell digest)`, in any order:
    /// a rebuild from a scan.
    pub fn from_cells(
        shape: TreeShape,
        partition: PartitionId,
        cells: impl IntoIterator<Item = (Token, Digest)>,
    ) -> Result<Self, MerkleError> {
        let mut tree = Self::new(shape, partition)?;
        for (token, digest) in cells {
            tree.update(token, None, Some(digest))?;
        }
        Ok(tree)
    }

    /// The tree whose segments are `segments` (all of them, in order), branches and root
    /// computed: a load from persisted leaves alone.
    pub fn from_segments(
        shape: TreeShape,
        partition: PartitionId,
        segments: Vec<Digest>,
    ) -> Result<Self, MerkleError> {
        let mut tree = Self::new(shape, partition)?;
        if segments.len() != tree.segments.len() {
            return Err(MerkleError::WrongLength {
                what: "segment digests",
                found: segments.len(),
                expected: tree.segments.len(),
            });
        }
        tree.segments = segments;
        tree.recompute_inner_nodes();
        Ok(tree)
    }

    /// The tree made of persisted nodes, as a prefix scan of the `merkle` column family yields
    /// them; absent nodes are zero. Nodes are taken as stored, not recomputed, so that
    /// [`MerkleTree::inconsistencies`] and [`MerkleTree::differences`] can report a stored tree
    /// that has drifted.
    pub fn from_nodes(
        shape: TreeShape,
        partition: PartitionId,
        nodes: impl IntoIterator<Item = (NodeRef, Digest)>,
    ) -> Result<Self, MerkleError> {
        let mut tree = Self::new(shape, partition)?;
        for (node, digest) in nodes {
            *tree.node_mut(node)? = digest;
        }
        Ok(tree)
    }

    /// The shape.
    pub fn shape(&self) -> TreeShape {
        self.shape
    }

    /// The partition this tree covers.
    pub fn partition(&self) -> PartitionId {
        self.partition
    }

    /// The root digest.
    pub fn root(&self) -> Digest {
        self.root
    }

    /// Every branch digest, in order.
    pub fn branches(&self) -> &[Digest] {
        &self.branches
    }

    /// Every segment digest, in order.
    pub fn segments(&self) -> &[Digest] {
        &self.segments
    }

    /// One branch digest.
    pub fn branch(&self, branch: BranchId) -> Result<Digest, MerkleError> {
        self.node(NodeRef::Branch(branch))
    }

    /// One segment digest.
    pub fn segment(&self, segment: SegmentId) -> Result<Digest, MerkleError> {
        self.node(NodeRef::Segment(segment))
    }

    /// The digests of every segment under `branches`, branch after branch.
    pub fn segments_under(&self, branches: &[BranchId]) -> Result<Vec<Digest>, MerkleError> {
        let mut out =
            Vec::with_capacity(branches.len() * self.shape.segments_per_branch() as usize);
        for &branch in branches {
            let range = self.shape.segments_of_branch(branch)?;
            out.extend_from_slice(&self.segments[range.start as usize..range.end as usize]);
        }
        Ok(out)
    }

    /// One node's digest.
    pub fn node(&self, node: NodeRef) -> Result<Digest, MerkleError> {
        node.check(&self.shape)?;
        Ok(match node {
            NodeRef::Root => self.root,
            NodeRef::Branch(b) => self.branches[b as usize],
            NodeRef::Segment(s) => self.segments[s as usize],
        })
    }

    fn node_mut(&mut self, node: NodeRef) -> Result<&mut Digest, MerkleError> {
        node.check(&self.shape)?;
        Ok(match node {
            NodeRef::Root => &mut self.root,
            NodeRef::Branch(b) => &mut self.branches[b as usize],
            NodeRef::Segment(s) => &mut self.segments[s as usize],
        })
    }

    /// Every node with its digest, in storage order (root, branches, segments), zeros included:
    /// what to persist after a rebuild.
    pub fn nodes(&self) -> impl Iterator<Item = (NodeRef, Digest)> + '_ {
        std::iter::once((NodeRef::Root, self.root))
            .chain(
                self.branches
                    .iter()
                    .enumerate()
                    .map(|(b, d)| (NodeRef::Branch(b as BranchId), *d)),
            )
            .chain(
                self.segments
                    .iter()
                    .enumerate()
                    .map(|(s, d)| (NodeRef::Segment(s as SegmentId), *d)),
            )
    }

    /// Applies one write's delta: O(1), three XORs.
    pub fn apply(&mut self, delta: &Delta) -> Result<(), MerkleError> {
        if delta.shape() != self.shape {
            return Err(MerkleError::ShapeMismatch {
                local: self.shape,
                remote: delta.shape(),
            });
        }
        if delta.partition() != self.partition {
            return Err(MerkleError::PartitionMismatch {
                local: self.partition,
                remote: delta.partition(),
            });
        }
        let xor = delta.xor();
        self.segments[delta.segment() as usize] ^= xor;
        self.branches[delta.branch() as usize] ^= xor;
        self.root ^= xor;
        Ok(())
    }

    /// Records that the cell at `token` went from digest `old` to `new` (`None` for absent).
    pub fn update(
        &mut self,
        token: Token,
        old: Option<Digest>,
        new: Option<Digest>,
    ) -> Result<(), MerkleError> {
        let found = self.shape.partition_of(token);
        if found != self.partition {
            return Err(MerkleError::TokenOutsidePartition {
                token,
                partition: self.partition,
                found,
            });
        }
        self.apply(&self.shape.delta(token, old, new))
    }

    /// Inner nodes (root and branches) that are not the XOR of their children: a stored tree
    /// damaged by a lost write or a bug. Empty for any tree built by this crate.
    pub fn inconsistencies(&self) -> Vec<NodeRef> {
        let mut out = Vec::new();
        let per_branch = self.shape.segments_per_branch() as usize;
        let mut root = Digest::ZERO;
        for (b, chunk) in self.segments.chunks(per_branch).enumerate() {
            let computed = chunk.iter().fold(Digest::ZERO, |acc, d| acc ^ *d);
            if computed != self.branches[b] {
                out.push(NodeRef::Branch(b as BranchId));
            }
            root ^= computed;
        }
        if root != self.root {
            out.insert(0, NodeRef::Root);
        }
        out
    }

    /// Every node whose digest differs between the two trees, in storage order: the periodic
    /// check of a kept tree against one rebuilt from a scan. O(tree size).
    pub fn differences(&self, other: &MerkleTree) -> Result<Vec<NodeRef>, MerkleError> {
        self.check_comparable(other)?;
        Ok(self
            .nodes()
            .zip(other.nodes())
            .filter(|((_, a), (_, b))| a != b)
            .map(|((node, _), _)| node)
            .collect())
    }

    /// Checks that `other` has the same shape and partition.
    pub fn check_comparable(&self, other: &MerkleTree) -> Result<(), MerkleError> {
        if self.shape != other.shape {
            return Err(MerkleError::ShapeMismatch {
                local: self.shape,
                remote: other.shape,
            });
        }
        if self.partition != other.partition {
            return Err(MerkleError::PartitionMismatch {
                local: self.partition,
                remote: other.partition,
            });
        }
        Ok(())
    }

    fn recompute_inner_nodes(&mut self) {
        let per_branch = self.shape.segments_per_branch() as usize;
        self.root = Digest::ZERO;
        for (branch, chunk) in self
            .branches
            .iter_mut()
            .zip(self.segments.chunks(per_branch))
        {
            *branch = chunk.iter().fold(Digest::ZERO, |acc, d| acc ^ *d);
            self.root ^= *branch;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::cell_digest;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn shape() -> TreeShape {
        TreeShape::new(4, 4, 4).unwrap()
    }

    /// A cell in partition 1 of `shape()`: the top two bits are 01.
    fn token(low: u64) -> Token {
        (1u64 << 62) | (low & ((1 << 62) - 1))
    }

    #[test]
    fn empty_trees_are_zero_and_equal() {
        let a = MerkleTree::new(shape(), 1).unwrap();
        assert_eq!(a.root(), Digest::ZERO);
        assert_eq!(a, MerkleTree::from_cells(shape(), 1, []).unwrap());
        assert_eq!(a, MerkleTree::from_nodes(shape(), 1, []).unwrap());
        assert!(a.inconsistencies().is_empty());
        assert_eq!(a.nodes().count(), shape().nodes());
        assert!(MerkleTree::new(shape(), 4).is_err());
    }

    #[test]
    fn one_write_changes_leaf_branch_and_root_alike() {
        let mut tree = MerkleTree::new(shape(), 1).unwrap();
        let t = token(0x1234_5678_9abc_def0);
        let d = cell_digest(b"k", b"c", b"v");
        tree.update(t, None, Some(d)).unwrap();
        let segment = shape().segment_of(t);
        let branch = shape().branch_of(segment).unwrap();
        assert_eq!(tree.segment(segment).unwrap(), d);
        assert_eq!(tree.branch(branch).unwrap(), d);
        assert_eq!(tree.root(), d);
        assert_eq!(
            tree.differences(&MerkleTree::new(shape(), 1).unwrap())
                .unwrap(),
            vec![
                NodeRef::Root,
                NodeRef::Branch(branch),
                NodeRef::Segment(segment)
            ]
        );
        tree.update(t, Some(d), None).unwrap();
        assert_eq!(tree, MerkleTree::new(shape(), 1).unwrap());
    }

    #[test]
    fn rejects_foreign_tokens_and_deltas() {
        let mut tree = MerkleTree::new(shape(), 1).unwrap();
        let d = Digest::from_bytes([1; 16]);
        assert_eq!(
            tree.update(0, None, Some(d)),
            Err(MerkleError::TokenOutsidePartition {
                token: 0,
                partition: 1,
                found: 0
            })
        );
        let other_shape = TreeShape::new(4, 2, 2).unwrap();
        assert!(matches!(
            tree.apply(&other_shape.delta(token(0), None, Some(d))),
            Err(MerkleError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            tree.apply(&shape().delta(0, None, Some(d))),
            Err(MerkleError::PartitionMismatch {
                local: 1,
                remote: 0
            })
        ));
        assert_eq!(tree, MerkleTree::new(shape(), 1).unwrap());
        assert!(matches!(
            MerkleTree::from_segments(shape(), 1, vec![d; 3]),
            Err(MerkleError::WrongLength { found: 3, .. })
        ));
        assert!(MerkleTree::from_nodes(shape(), 1, [(NodeRef::Segment(16), d)]).is_err());
        assert!(tree
            .differences(&MerkleTree::new(shape(), 2).unwrap())
            .is_err());
    }

    #[test]
    fn drifted_stored_trees_are_reported() {
        let built =
            MerkleTree::from_cells(shape(), 1, [(token(5), Digest::from_bytes([3; 16]))]).unwrap();
        // A stored tree that lost the branch and root updates of that write.
        let segment = shape().segment_of(token(5));
        let stored = MerkleTree::from_nodes(
            shape(),
            1,
            [(NodeRef::Segment(segment), Digest::from_bytes([3; 16]))],
        )
        .unwrap();
        let branch = shape().branch_of(segment).unwrap();
        assert_eq!(
            stored.inconsistencies(),
            vec![NodeRef::Root, NodeRef::Branch(branch)]
        );
        assert_eq!(
            stored.differences(&built).unwrap(),
            vec![NodeRef::Root, NodeRef::Branch(branch)]
        );
        let reloaded = MerkleTree::from_nodes(shape(), 1, built.nodes()).unwrap();
        assert_eq!(reloaded, built);
        let from_leaves = MerkleTree::from_segments(shape(), 1, built.segments().to_vec()).unwrap();
        assert_eq!(from_leaves, built);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Put { cell: u8, value: u8 },
        Delete { cell: u8 },
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (any::<u8>(), any::<u8>()).prop_map(|(cell, value)| Op::Put { cell, value }),
            1 => any::<u8>().prop_map(|cell| Op::Delete { cell }),
        ]
    }

    /// Cell `n`: few distinct tokens so that segments hold several cells and rows hold several
    /// columns; the tree must still count each cell once.
    fn cell(n: u8) -> (Token, Vec<u8>, Vec<u8>) {
        let row = n / 4;
        let t = token(u64::from(row).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        (t, vec![b'k', row], vec![b'c', n % 4])
    }

    proptest! {
        /// Random puts, overwrites and deletes kept by deltas give the tree rebuilt from the final
        /// contents, whatever the order the deltas are applied in.
        #[test]
        fn incremental_equals_rebuilt(
            ops in proptest::collection::vec(arb_op(), 0..200),
            seed in any::<u64>(),
        ) {
            let mut contents: BTreeMap<u8, Vec<u8>> = BTreeMap::new();
            let mut kept = MerkleTree::new(shape(), 1).unwrap();
            let mut deltas = Vec::new();
            for op in ops {
                let (n, new_value) = match op {
                    Op::Put { cell, value } => (cell, Some(vec![value])),
                    Op::Delete { cell } => (cell, None),
                };
                let (t, key, column) = cell(n);
                let old = contents.get(&n).map(|v| cell_digest(&key, &column, v));
                let new = new_value.as_ref().map(|v| cell_digest(&key, &column, v));
                let delta = shape().delta(t, old, new);
                kept.apply(&delta).unwrap();
                deltas.push(delta);
                match new_value {
                    Some(v) => { contents.insert(n, v); }
                    None => { contents.remove(&n); }
                }
            }
            let rebuilt = MerkleTree::from_cells(
                shape(),
                1,
                contents.iter().map(|(n, v)| {
                    let (t, key, column) = cell(*n);
                    (t, cell_digest(&key, &column, v))
                }),
            ).unwrap();
            prop_assert_eq!(&kept, &rebuilt);
            prop_assert!(kept.inconsistencies().is_empty());

            // Deltas commute: a deterministic shuffle drawn from `seed`.
            let mut state = seed;
            for i in (1..deltas.len()).rev() {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let j = (state >> 33) as usize % (i + 1);
                deltas.swap(i, j);
            }
            let mut shuffled = MerkleTree::new(shape(), 1).unwrap();
            for delta in &deltas {
                shuffled.apply(delta).unwrap();
            }
            prop_assert_eq!(&shuffled, &rebuilt);
        }
    }
}
