//! Where the anti-entropy trees live, and how a write changes them.
//!
//! One tree per (table, partition), in the `merkle` column family:
//!
//! ```text
//! table id (u32 BE) | partition (u16 BE) | node (NodeRef::encode: level tag, index u32 BE)
//! ```
//!
//! so one tree is one contiguous key range, ordered root, branches, segments, and dropping a
//! partition drops its tree with one range delete. A node's value is
//! [`tessera_merkle::encode_node_value`] (format version, digest); an absent node is zero.
//!
//! The write path never reads a node: every cell it writes changes the cell's segment by
//! `old digest ^ new digest`, and [`TreeDeltas`] adds that as an XOR merge operand
//! ([`crate::BatchOp::Merge`]) to the very batch that writes the cell. The tree therefore changes
//! exactly when the data does, whatever crashes in between, and concurrent batches need no lock
//! on the tree. Deltas of one batch that hit the same segment are folded into one operand.
//!
//! Only the segments are stored: branches and root are the XOR of the segments below them,
//! computed when a tree is loaded (1,024 segments with the default shape, 16 KiB). Storing them
//! too would triple the merge operands of every write for a saving of microseconds per
//! exchange; measured in `docs/performance.md`.
//!
//! A cell's digest is [`tessera_merkle::cell_digest`] of its partition key, column and stored
//! bytes: what a rebuild from a scan computes, and what a peer computes for the same cell.

use std::collections::HashMap;

use tessera_merkle::{cell_digest, encode_node_value, Digest, NodeRef, TreeShape, NODE_KEY_LEN};

use crate::engine::{ColumnFamily, WriteBatch};
use crate::keys::{RowKey, TableId};

/// Bytes of `table | partition` before a node.
pub const TREE_PREFIX_LEN: usize = 4 + 2;

/// The prefix of every node of one tree.
pub fn tree_prefix(table: TableId, partition: u16) -> [u8; TREE_PREFIX_LEN] {
    let mut out = [0u8; TREE_PREFIX_LEN];
    out[..4].copy_from_slice(&table.to_be_bytes());
    out[4..].copy_from_slice(&partition.to_be_bytes());
    out
}

/// `[start, end)` of one tree's nodes.
pub fn tree_range(table: TableId, partition: u16) -> (Vec<u8>, Vec<u8>) {
    let start = tree_prefix(table, partition).to_vec();
    let end = crate::keys::prefix_successor(&start);
    (start, end)
}

/// The key of one node.
pub fn node_key(table: TableId, partition: u16, node: NodeRef) -> Vec<u8> {
    let mut out = Vec::with_capacity(TREE_PREFIX_LEN + NODE_KEY_LEN);
    out.extend_from_slice(&tree_prefix(table, partition));
    out.extend_from_slice(&node.encode());
    out
}

/// The digest of a stored cell: its row's key, its column and its stored bytes.
pub fn stored_cell_digest(row: &RowKey, column: &[u8], stored: &[u8]) -> Digest {
    cell_digest(&row.key, column, stored)
}

/// The tree changes of one batch, folded per node, turned into merge operands at the end.
#[derive(Debug)]
pub struct TreeDeltas {
    shape: TreeShape,
    nodes: HashMap<Vec<u8>, Digest>,
}

impl TreeDeltas {
    /// No changes yet, for trees of `shape`.
    pub fn new(shape: TreeShape) -> Self {
        Self {
            shape,
            nodes: HashMap::new(),
        }
    }

    /// Records that the cell of `row` and `column` went from digest `old` to `new` (`None`:
    /// absent). The tree is the row's own partition's; the segment comes from its token.
    pub fn record(&mut self, row: &RowKey, old: Option<Digest>, new: Option<Digest>) {
        let xor = old.unwrap_or(Digest::ZERO) ^ new.unwrap_or(Digest::ZERO);
        if xor.is_zero() {
            return;
        }
        let segment = NodeRef::Segment(self.shape.segment_of(row.token));
        *self
            .nodes
            .entry(node_key(row.table, row.partition, segment))
            .or_insert(Digest::ZERO) ^= xor;
    }

    /// Adds the folded changes to `batch` as merge operands.
    pub fn add_to(self, batch: &mut WriteBatch) {
        for (key, xor) in self.nodes {
            if !xor.is_zero() {
                batch.merge(ColumnFamily::Merkle, key, encode_node_value(xor).to_vec());
            }
        }
    }
}
