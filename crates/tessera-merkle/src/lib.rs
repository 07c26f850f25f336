//! Anti-entropy trees: find what two replicas of a partition disagree on, cheaply.
//!
//! Replicas drift (a lost hint, a replica cut off or wiped) and nothing but a read of the very key
//! brings them back. This crate is the pure core of the repair: a hash tree per (table, partition)
//! kept up to date by every write, a diff of two trees, and the exchange by which two replicas
//! find the cells to move. It does no I/O, keeps no clock and draws no random numbers; the
//! storage and cluster crates drive it.
//!
//! # Trees (Riak's TicTac AAE)
//! - [`TreeShape`]: fixed and versioned. A partition's token range is cut into equal *segments*
//!   (1024 by default) under *branches* (32) under a root. A segment is one contiguous key range
//!   on disk ([`TreeShape::segment_range`]), because tokens lead the storage key.
//! - [`cell_digest`]: SHA-256 of (partition key, column, encoded cell), truncated to 128 bits
//!   (see *Why 128 bits* below).
//! - A node is the XOR of the cell digests below it, so a write changes its segment, branch and
//!   root by the same [`Delta`] (`old ^ new`), in O(1), in any order, without reading other
//!   cells. The storage applies it in the write's own batch ([`NodeRef`],
//!   [`merge_node_values`] for a RocksDB XOR merge operator), so the tree never drifts from the
//!   data; [`MerkleTree`] is the in-memory form: kept by deltas, rebuilt from a scan
//!   ([`MerkleTree::from_cells`]), loaded from stored nodes, and compared whole
//!   ([`MerkleTree::differences`]) by the periodic check.
//!
//! # Diffs
//! - [`diff_trees`] walks two trees level by level and returns the segments that differ.
//! - [`compare_cells`] merges two segments' cell digest lists and returns what to pull, push and
//!   merge ([`CellDiff`]).
//!
//! # Exchanges
//! [`Initiator`] and [`Responder`] are the two sides of one exchange of one (table, partition):
//! roots, then differing branches, then differing segments, then the cell digests of those
//! segments, page by page. They take [`Message`]s, scan results and timeouts and return
//! [`Action`]s; they survive lost, repeated and reordered messages, can be abandoned and
//! restarted, and count what they cost ([`ExchangeStats`]). Replicas that agree exchange two
//! messages of a few dozen bytes, whatever the number of cells. See [`exchange`] for the
//! protocol.
//!
//! # Why XOR, and why 128 bits
//! XOR is associative, commutative and its own inverse: a node does not depend on the order of
//! writes, a write needs only its own old and new digest (which the write path has, since it
//! reads the old cell to merge it), and removing a cell (a purged tombstone) is the same
//! operation as adding it. Within one partition a (key, column) appears once, so no cell can
//! cancel itself out.
//!
//! A digest only has to tell different cells, and different sets of cells, apart: with 128 bits
//! two differing sets look equal with probability 2^-128 per comparison, far below the rate of
//! undetected disk or memory errors, at half the bytes of full SHA-256 in every stored node and
//! every message. More bits would not make XOR trees resist an adversary: a client that writes
//! many chosen cells can search for a set whose XOR cancels (Wagner's generalised birthday
//! problem) at any width, and the most it gains is that its own cells are not repaired by
//! anti-entropy (read repair still sees them). Once a segment differs, its cells are compared one
//! by one, where nothing can cancel. SHA-256 itself is a workspace dependency already and runs
//! with the CPU's SHA extensions where present.
//!
//! Everything that crosses the network or reaches the disk carries [`MERKLE_FORMAT_VERSION`]:
//! in the shape of every message, and first in every encoding.

mod cells;
mod delta;
mod diff;
mod digest;
mod error;
pub mod exchange;
mod node;
mod shape;
mod tree;
mod wire;

pub use cells::{check_sorted, compare_cells, CellDiff, CellDigest, CellId};
pub use delta::Delta;
pub use diff::{diff_trees, TreeDiff};
pub use digest::{cell_digest, Digest, DIGEST_LEN};
pub use error::MerkleError;
pub use exchange::{
    Action, ExchangeConfig, ExchangeReport, ExchangeState, ExchangeStats, Initiator, Responder,
    ScanRequest,
};
pub use node::{
    decode_node_value, encode_node_value, merge_node_values, NodeRef, NODE_KEY_LEN, NODE_VALUE_LEN,
};
pub use shape::{
    BranchId, PartitionId, SegmentId, Token, TreeShape, DEFAULT_BRANCHES,
    DEFAULT_SEGMENTS_PER_BRANCH, MAX_PARTITION_BITS, MAX_SEGMENT_BITS, MERKLE_FORMAT_VERSION,
};
pub use tree::MerkleTree;
pub use wire::{Body, ExchangeId, Message};
