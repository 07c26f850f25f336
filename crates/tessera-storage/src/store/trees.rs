//! The anti-entropy trees of the cell store: load a kept tree, rebuild one from a scan, check
//! one against the other (and repair it), and the reads an exchange needs.
//!
//! The writes that keep the trees are in `batch.rs`, `delete_row` and `partitions.rs`; the key
//! layout is in [`crate::merkle`]. Everything here reads; only a repair writes, and it writes
//! XOR merge operands like every cell write, so it needs no lock: `kept ^ rebuilt` taken from
//! one snapshot is exactly the error of the kept tree at that moment, and writes after the
//! snapshot change both the same way, so merging the correction in fixes the tree whatever ran
//! since.

use tessera_merkle::{
    decode_node_value, encode_node_value, CellDigest, CellId, Digest, MerkleTree, NodeRef,
    ScanRequest, TreeShape,
};

use super::CellStore;
use crate::cell::Cell;
use crate::engine::{ColumnFamily, Engine, EngineRead, WriteBatch};
use crate::error::StorageError;
use crate::keys::{cell_key, decode_cell_key, key_successor, partition_range, RowKey, TableId};
use crate::merkle::{node_key, stored_cell_digest, tree_range, TREE_PREFIX_LEN};

/// Cells read between checks that the caller still wants the scan (none do yet: a partition's
/// rebuild reads it whole). Exposed so that callers can size their throttle's unit.
pub const TREE_SCAN_CHUNK: usize = 1024;

/// What [`CellStore::check_tree`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeCheck {
    /// The tree as kept by writes, as of the check's snapshot.
    pub kept: MerkleTree,
    /// The tree rebuilt from the cells of the same snapshot.
    pub rebuilt: MerkleTree,
    /// Nodes where they differ, in storage order.
    pub differing: Vec<NodeRef>,
    /// Cells scanned.
    pub cells: u64,
    /// Whether the kept tree was corrected.
    pub repaired: bool,
}

fn tree_error(
    table: TableId,
    partition: u16,
) -> impl Fn(tessera_merkle::MerkleError) -> StorageError {
    move |e| StorageError::Tree {
        table,
        partition,
        reason: e.to_string(),
    }
}

/// The kept tree of one partition as `view` holds it: its stored segments, with branches and
/// root computed from them (only segments are stored, see [`crate::merkle`]). A stored inner
/// node (none is written) is ignored.
fn kept_tree(
    view: &impl EngineRead,
    shape: TreeShape,
    table: TableId,
    partition: u16,
) -> Result<MerkleTree, StorageError> {
    let (start, end) = tree_range(table, partition);
    let mut segments = vec![Digest::ZERO; shape.segments() as usize];
    for pair in view.iter(ColumnFamily::Merkle, &start, Some(&end)) {
        let (key, value) = pair?;
        let suffix = key.get(TREE_PREFIX_LEN..).unwrap_or_default();
        let node = NodeRef::decode(suffix, &shape).map_err(tree_error(table, partition))?;
        if let NodeRef::Segment(segment) = node {
            let digest = decode_node_value(&value).map_err(tree_error(table, partition))?;
            if let Some(slot) = segments.get_mut(segment as usize) {
                *slot = digest;
            }
        }
    }
    MerkleTree::from_segments(shape, partition, segments).map_err(tree_error(table, partition))
}

/// The tree of the cells `view` holds in one partition, and how many there are.
fn rebuilt_tree(
    view: &impl EngineRead,
    shape: TreeShape,
    table: TableId,
    partition: u16,
) -> Result<(MerkleTree, u64), StorageError> {
    let (start, end) = partition_range(table, partition);
    let mut segments = vec![Digest::ZERO; shape.segments() as usize];
    let mut cells = 0u64;
    for pair in view.iter(ColumnFamily::Data, &start, Some(&end)) {
        let (key, value) = pair?;
        let (row, column) = decode_cell_key(&key)?;
        let segment = shape.segment_of(row.token) as usize;
        if let Some(slot) = segments.get_mut(segment) {
            *slot ^= stored_cell_digest(&row, &column, &value);
        }
        cells += 1;
    }
    let tree = MerkleTree::from_segments(shape, partition, segments)
        .map_err(tree_error(table, partition))?;
    Ok((tree, cells))
}

impl<E: Engine> CellStore<E> {
    fn shape(&self) -> Result<TreeShape, StorageError> {
        self.trees.ok_or(StorageError::NoTrees)
    }

    /// The tree of one partition as writes keep it, now.
    pub fn load_tree(&self, table: TableId, partition: u16) -> Result<MerkleTree, StorageError> {
        kept_tree(self.engine.as_ref(), self.shape()?, table, partition)
    }

    /// The tree of one partition rebuilt from a scan of its cells, now.
    pub fn rebuild_tree(&self, table: TableId, partition: u16) -> Result<MerkleTree, StorageError> {
        let snapshot = self.engine.snapshot();
        Ok(rebuilt_tree(&snapshot, self.shape()?, table, partition)?.0)
    }

    /// Compares the kept tree of one partition with one rebuilt from a scan, both as of one
    /// snapshot, and with `repair` corrects the kept tree where they differ (see the module
    /// docs for why that is safe while writes go on). A partition written before trees were
    /// kept (an upgrade) is repaired the same way.
    pub fn check_tree(
        &self,
        table: TableId,
        partition: u16,
        repair: bool,
    ) -> Result<TreeCheck, StorageError> {
        let shape = self.shape()?;
        let snapshot = self.engine.snapshot();
        let kept = kept_tree(&snapshot, shape, table, partition)?;
        let (rebuilt, cells) = rebuilt_tree(&snapshot, shape, table, partition)?;
        drop(snapshot);
        let differing = kept
            .differences(&rebuilt)
            .map_err(tree_error(table, partition))?;
        let mut repaired = false;
        if repair && !differing.is_empty() {
            let mut batch = WriteBatch::new();
            // Only segments are stored; the inner nodes follow from them.
            let segments = differing
                .iter()
                .filter(|node| matches!(node, NodeRef::Segment(_)));
            for node in segments {
                let error = kept.node(*node).map_err(tree_error(table, partition))?
                    ^ rebuilt.node(*node).map_err(tree_error(table, partition))?;
                batch.merge(
                    ColumnFamily::Merkle,
                    node_key(table, partition, *node),
                    encode_node_value(error).to_vec(),
                );
            }
            self.engine.write(batch)?;
            repaired = true;
        }
        Ok(TreeCheck {
            kept,
            rebuilt,
            differing,
            cells,
            repaired,
        })
    }

    /// The cell digests an exchange asks for (see [`ScanRequest`]), of table `table`, read now.
    pub fn scan_cell_digests(
        &self,
        table: TableId,
        request: &ScanRequest,
    ) -> Result<Vec<CellDigest>, StorageError> {
        let partition = request.partition;
        let (_, partition_end) = partition_range(table, partition);
        let after_key = match &request.after {
            Some(after) => Some(cell_key(
                &RowKey::new(table, partition, after.token, after.key.clone()),
                &after.column,
            )?),
            None => None,
        };
        let limit = usize::try_from(request.limit).unwrap_or(usize::MAX);
        let mut out = Vec::new();
        let mut bytes = 0u64;
        for (first, last) in request.token_ranges() {
            let mut start = token_key(table, partition, first);
            let end = match last.checked_add(1) {
                Some(next) if next != 0 => {
                    token_key(table, partition, next).min(partition_end.clone())
                }
                _ => partition_end.clone(),
            };
            if let Some(after) = &after_key {
                if *after >= end {
                    continue;
                }
                start = start.max(key_successor(after));
            }
            for pair in self.engine.iter(ColumnFamily::Data, &start, Some(&end)) {
                let (key, value) = pair?;
                let (row, column) = decode_cell_key(&key)?;
                let digest = stored_cell_digest(&row, &column, &value);
                let cell = CellDigest::new(CellId::new(row.token, row.key, column), digest);
                bytes += cell.page_bytes();
                out.push(cell);
                if out.len() >= limit || bytes >= u64::from(request.max_bytes) {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    /// The cells `ids` of one partition as stored (tombstones included; `None`: absent), in
    /// order, for an exchange's repair.
    pub fn read_cells(
        &self,
        table: TableId,
        partition: u16,
        ids: &[CellId],
    ) -> Result<Vec<(CellId, Option<Cell>)>, StorageError> {
        ids.iter()
            .map(|id| {
                let row = RowKey::new(table, partition, id.token, id.key.clone());
                let cell = self.read_cell(&row, &id.column)?;
                Ok((id.clone(), cell))
            })
            .collect()
    }
}

/// The first data key of `token` in one partition.
fn token_key(table: TableId, partition: u16, token: u64) -> Vec<u8> {
    let (mut key, _) = partition_range(table, partition);
    key.extend_from_slice(&token.to_be_bytes());
    key
}
