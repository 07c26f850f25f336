//! An in-memory [`Engine`] over `BTreeMap`s, for deterministic simulation tests.
//!
//! It has the same semantics as the RocksDB engine (checked by
//! [`crate::conformance`]) but no disk, no background threads and no
//! nondeterminism. Clones share the same data, so a simulated node can
//! "restart" by building a new store on a clone of its old engine.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, PoisonError, RwLock};

use crate::engine::{BatchOp, CfStats, ColumnFamily, Engine, KvPairs, WriteBatch};
use crate::error::StorageError;

type Tree = BTreeMap<Vec<u8>, Vec<u8>>;

/// An in-memory engine. Cheap to clone; clones share data.
#[derive(Clone, Debug, Default)]
pub struct MemoryEngine {
    // One lock over every column family so a batch spanning several is atomic.
    // Nothing that runs under it can panic (allocation failure aborts), so a
    // poisoned lock still guards consistent data and is recovered, not propagated.
    trees: Arc<RwLock<[Tree; ColumnFamily::ALL.len()]>>,
}

impl MemoryEngine {
    /// An empty engine.
    pub fn new() -> Self {
        Self::default()
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

impl Engine for MemoryEngine {
    fn get(&self, cf: ColumnFamily, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let trees = self.trees.read().unwrap_or_else(PoisonError::into_inner);
        Ok(trees[cf.index()].get(key).cloned())
    }

    fn scan(
        &self,
        cf: ColumnFamily,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<KvPairs, StorageError> {
        if limit == 0 || end.is_some_and(|end| end <= start) {
            return Ok(Vec::new());
        }
        let trees = self.trees.read().unwrap_or_else(PoisonError::into_inner);
        let upper = match end {
            Some(end) => Bound::Excluded(end),
            None => Bound::Unbounded,
        };
        Ok(trees[cf.index()]
            .range::<[u8], _>((Bound::Included(start), upper))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let mut trees = self.trees.write().unwrap_or_else(PoisonError::into_inner);
        for op in batch.into_ops() {
            match op {
                BatchOp::Put { cf, key, value } => {
                    trees[cf.index()].insert(key, value);
                }
                BatchOp::Delete { cf, key } => {
                    trees[cf.index()].remove(&key);
                }
                BatchOp::DeleteRange { cf, start, end } => {
                    remove_range(&mut trees[cf.index()], &start, &end);
                }
            }
        }
        Ok(())
    }

    fn stats(&self, cf: ColumnFamily) -> Result<CfStats, StorageError> {
        let trees = self.trees.read().unwrap_or_else(PoisonError::into_inner);
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
