//! An in-memory [`Engine`] over `BTreeMap`s, for deterministic simulation tests.
//!
//! It has the same semantics as the RocksDB engine (checked by the
//! `conformance` suite) but no disk, no background threads and no
//! nondeterminism. Clones share the same data, so a simulated node can
//! "restart" by building a new store on a clone of its old engine.
//!
//! Each column family's tree is copy-on-write (`Arc<Tree>`): a snapshot or an
//! iterator holds the trees as they are, and the first write to a tree that one
//! of them still holds copies that tree. A snapshot is therefore cheap to take,
//! but each snapshot can cost a copy of every column family written while it
//! lives: fine for the tests this engine is for, not for production.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, PoisonError, RwLock};

use crate::engine::{
    is_empty_range, BatchOp, CfStats, ColumnFamily, Engine, EngineRead, KvItem, KvIter, KvPairs,
    WriteBatch,
};
use crate::error::StorageError;

type Tree = BTreeMap<Vec<u8>, Vec<u8>>;

/// Every column family's tree, indexed by [`ColumnFamily::index`].
type Trees = [Arc<Tree>; ColumnFamily::ALL.len()];

/// Pairs an iterator copies out of its tree at a time: it holds no lock between them.
const ITER_CHUNK: usize = 64;

/// An in-memory engine. Cheap to clone; clones share data.
#[derive(Clone, Debug, Default)]
pub struct MemoryEngine {
    // One lock over every column family so a batch spanning several is atomic.
    // Nothing that runs under it can panic (allocation failure aborts), so a
    // poisoned lock still guards consistent data and is recovered, not propagated.
    trees: Arc<RwLock<Trees>>,
}

/// A snapshot of a [`MemoryEngine`]: the trees as they were (see the module docs for the cost).
#[derive(Clone, Debug)]
pub struct MemorySnapshot {
    trees: Trees,
}

impl MemoryEngine {
    /// An empty engine.
    pub fn new() -> Self {
        Self::default()
    }

    fn read_trees(&self) -> std::sync::RwLockReadGuard<'_, Trees> {
        self.trees.read().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Removes `[start, end)` from `tree`.
fn remove_range(tree: &mut Tree, start: &[u8], end: &[u8]) {
    if start >= end {
        return;
    }
    // split_off twice keeps this O(log n + removed) rather than a key-by-key walk.
    let mut tail = tree.split_off(start);
    let mut kept_tail = tail.split_off(end);
    drop(tail);
    tree.append(&mut kept_tail);
}

fn scan_tree(tree: &Tree, start: &[u8], end: Option<&[u8]>, limit: usize) -> KvPairs {
    if limit == 0 || is_empty_range(start, end) {
        return Vec::new();
    }
    let upper = match end {
        Some(end) => Bound::Excluded(end),
        None => Bound::Unbounded,
    };
    tree.range::<[u8], _>((Bound::Included(start), upper))
        .take(limit)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Walks one tree a chunk at a time. It owns its tree (an `Arc`), so it borrows nothing, and it
/// copies at most [`ITER_CHUNK`] pairs ahead.
struct TreeIter {
    tree: Arc<Tree>,
    /// Where the next chunk starts; `None` once the range is done.
    next: Option<Bound<Vec<u8>>>,
    end: Option<Vec<u8>>,
    chunk: std::vec::IntoIter<(Vec<u8>, Vec<u8>)>,
}

impl TreeIter {
    fn new(tree: Arc<Tree>, start: &[u8], end: Option<&[u8]>) -> Self {
        Self {
            tree,
            next: (!is_empty_range(start, end)).then(|| Bound::Included(start.to_vec())),
            end: end.map(<[u8]>::to_vec),
            chunk: Vec::new().into_iter(),
        }
    }
}

impl Iterator for TreeIter {
    type Item = KvItem;

    fn next(&mut self) -> Option<KvItem> {
        if let Some(pair) = self.chunk.next() {
            return Some(Ok(pair));
        }
        let lower = self.next.take()?;
        let upper = match &self.end {
            Some(end) => Bound::Excluded(end.clone()),
            None => Bound::Unbounded,
        };
        let chunk: KvPairs = self
            .tree
            .range((lower, upper))
            .take(ITER_CHUNK)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if chunk.len() == ITER_CHUNK {
            self.next = chunk.last().map(|(key, _)| Bound::Excluded(key.clone()));
        }
        self.chunk = chunk.into_iter();
        self.chunk.next().map(Ok)
    }
}

impl EngineRead for MemoryEngine {
    fn get(&self, cf: ColumnFamily, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.read_trees()[cf.index()].get(key).cloned())
    }

    fn scan(
        &self,
        cf: ColumnFamily,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<KvPairs, StorageError> {
        Ok(scan_tree(&self.read_trees()[cf.index()], start, end, limit))
    }

    fn iter(&self, cf: ColumnFamily, start: &[u8], end: Option<&[u8]>) -> KvIter<'_> {
        // The tree as it is now, like RocksDB's implicit snapshot of a live iterator.
        let tree = self.read_trees()[cf.index()].clone();
        Box::new(TreeIter::new(tree, start, end))
    }
}

impl Engine for MemoryEngine {
    type Snapshot = MemorySnapshot;

    fn snapshot(&self) -> MemorySnapshot {
        MemorySnapshot {
            trees: self.read_trees().clone(),
        }
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        // Checked before anything is applied, so a bad merge leaves the batch unapplied.
        batch.check_merges()?;
        let mut trees = self.trees.write().unwrap_or_else(PoisonError::into_inner);
        for op in batch.into_ops() {
            match op {
                BatchOp::Put { cf, key, value } => {
                    Arc::make_mut(&mut trees[cf.index()]).insert(key, value);
                }
                BatchOp::Delete { cf, key } => {
                    Arc::make_mut(&mut trees[cf.index()]).remove(&key);
                }
                BatchOp::Merge { cf, key, value } => {
                    let tree = Arc::make_mut(&mut trees[cf.index()]);
                    let existing = tree.get(&key).map(Vec::as_slice);
                    // An existing value that does not decode (never written by a merge) is
                    // replaced by the operand, as RocksDB's operator below does.
                    let merged = tessera_merkle::merge_node_values(existing, [value.as_slice()])
                        .or_else(|_| tessera_merkle::merge_node_values(None, [value.as_slice()]))
                        .map_err(|e| StorageError::Corrupt {
                            what: "tree node merge operand",
                            key: crate::error::hex_key(&key),
                            reason: e.to_string(),
                        })?;
                    tree.insert(key, merged.to_vec());
                }
                BatchOp::DeleteRange { cf, start, end } => {
                    remove_range(Arc::make_mut(&mut trees[cf.index()]), &start, &end);
                }
            }
        }
        Ok(())
    }

    fn stats(&self, cf: ColumnFamily) -> Result<CfStats, StorageError> {
        let trees = self.read_trees();
        let tree = &trees[cf.index()];
        let live_bytes = tree.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
        Ok(CfStats {
            live_bytes,
            keys: tree.len() as u64,
        })
    }

    fn flush(&self) -> Result<(), StorageError> {
        Ok(())
    }
}

impl EngineRead for MemorySnapshot {
    fn get(&self, cf: ColumnFamily, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.trees[cf.index()].get(key).cloned())
    }

    fn scan(
        &self,
        cf: ColumnFamily,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<KvPairs, StorageError> {
        Ok(scan_tree(&self.trees[cf.index()], start, end, limit))
    }

    fn iter(&self, cf: ColumnFamily, start: &[u8], end: Option<&[u8]>) -> KvIter<'_> {
        Box::new(TreeIter::new(self.trees[cf.index()].clone(), start, end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conformance() {
        crate::conformance::run_all(&mut MemoryEngine::new);
    }

    #[test]
    fn clones_share_data() {
        let engine = MemoryEngine::new();
        let clone = engine.clone();
        let mut batch = WriteBatch::new();
        batch.put(ColumnFamily::Data, b"k".to_vec(), b"v".to_vec());
        engine.write(batch).unwrap();
        assert_eq!(
            clone.get(ColumnFamily::Data, b"k").unwrap(),
            Some(b"v".to_vec())
        );
    }
}
