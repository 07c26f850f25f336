//! The ordered key-value engine abstraction.
//!
//! Everything above this module talks to storage through [`Engine`], so the
//! cluster can run on RocksDB in production and on the in-memory engine in
//! deterministic simulations. The contract is deliberately small: point gets,
//! bounded ascending scans and range iterators ([`EngineRead`]), atomic batches
//! across column families, and snapshots that read every column family as of
//! one moment ([`Engine::snapshot`], for streaming and Merkle trees). Both
//! implementations are checked against the same suite in `conformance` (behind
//! the `test-support` feature).

use std::sync::Arc;

use crate::error::StorageError;

/// Key-value pairs in key order, as returned by [`EngineRead::scan`].
pub type KvPairs = Vec<(Vec<u8>, Vec<u8>)>;

/// A column family: an independent, ordered key space.
///
/// Adding one is a one-line change: a variant, plus its entry in [`ColumnFamily::ALL`]
/// and [`ColumnFamily::name`]. Both engines derive their key spaces from `ALL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ColumnFamily {
    /// Cells, keyed by the layout in [`crate::keys`].
    Data,
    /// Node metadata: node id, ring, schema, format version.
    Meta,
    /// Hinted-handoff records, keyed by target node and then time (see [`crate::hints`]).
    Hints,
    /// Anti-entropy hash trees, one per (table, partition), kept by the writes of the `data`
    /// column family in their own batches (see [`crate::merkle`]). The one family with a merge
    /// operator: XOR of tree node values ([`BatchOp::Merge`]).
    Merkle,
}

impl ColumnFamily {
    /// Every column family, in a fixed order (the order is the in-memory engine's index).
    pub const ALL: [ColumnFamily; 4] = [
        ColumnFamily::Data,
        ColumnFamily::Meta,
        ColumnFamily::Hints,
        ColumnFamily::Merkle,
    ];

    /// The column family's name on disk. Never rename one: RocksDB finds data by it.
    pub const fn name(self) -> &'static str {
        match self {
            ColumnFamily::Data => "data",
            ColumnFamily::Meta => "meta",
            ColumnFamily::Hints => "hints",
            ColumnFamily::Merkle => "merkle",
        }
    }

    /// The position of this column family in [`ColumnFamily::ALL`].
    pub fn index(self) -> usize {
        // ALL is tiny and fixed; a linear search keeps `ALL` the single source of truth.
        Self::ALL
            .iter()
            .position(|cf| *cf == self)
            .unwrap_or_default()
    }
}

/// One operation of a [`WriteBatch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchOp {
    /// Set `key` to `value`.
    Put {
        /// The column family.
        cf: ColumnFamily,
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// Remove `key`, if present.
    Delete {
        /// The column family.
        cf: ColumnFamily,
        /// The key.
        key: Vec<u8>,
    },
    /// Fold `value` into `key` with the column family's merge operator, without reading it.
    /// Only [`ColumnFamily::Merkle`] has one: the XOR of encoded tree node values
    /// ([`tessera_merkle::merge_node_values`]; an absent key is zero). Engines refuse the whole
    /// batch if a merge names another family or its value is not a node value.
    Merge {
        /// The column family (only [`ColumnFamily::Merkle`]).
        cf: ColumnFamily,
        /// The key.
        key: Vec<u8>,
        /// The operand.
        value: Vec<u8>,
    },
    /// Remove every key in `[start, end)`. An empty range (`start >= end`) is a no-op.
    DeleteRange {
        /// The column family.
        cf: ColumnFamily,
        /// First key removed.
        start: Vec<u8>,
        /// First key kept.
        end: Vec<u8>,
    },
}

/// An ordered list of operations that an engine applies atomically.
///
/// Operations apply in order, so a later put of the same key wins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<BatchOp>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a put of `key` = `value`.
    pub fn put(&mut self, cf: ColumnFamily, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(BatchOp::Put {
            cf,
            key: key.into(),
            value: value.into(),
        });
    }

    /// Adds a merge of `value` into `key` (see [`BatchOp::Merge`]).
    pub fn merge(&mut self, cf: ColumnFamily, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(BatchOp::Merge {
            cf,
            key: key.into(),
            value: value.into(),
        });
    }

    /// Checks every merge of the batch: in a family with a merge operator, with a valid
    /// operand. Engines call it before applying anything, so a bad merge fails the whole batch.
    pub fn check_merges(&self) -> Result<(), StorageError> {
        for op in &self.ops {
            if let BatchOp::Merge { cf, key, value } = op {
                if *cf != ColumnFamily::Merkle {
                    return Err(StorageError::InvalidBatch {
                        reason: format!("column family {} has no merge operator", cf.name()),
                    });
                }
                tessera_merkle::decode_node_value(value).map_err(|e| StorageError::Corrupt {
                    what: "tree node merge operand",
                    key: crate::error::hex_key(key),
                    reason: e.to_string(),
                })?;
            }
        }
        Ok(())
    }

    /// Adds a delete of `key`.
    pub fn delete(&mut self, cf: ColumnFamily, key: impl Into<Vec<u8>>) {
        self.ops.push(BatchOp::Delete {
            cf,
            key: key.into(),
        });
    }

    /// Adds a delete of every key in `[start, end)`.
    pub fn delete_range(
        &mut self,
        cf: ColumnFamily,
        start: impl Into<Vec<u8>>,
        end: impl Into<Vec<u8>>,
    ) {
        self.ops.push(BatchOp::DeleteRange {
            cf,
            start: start.into(),
            end: end.into(),
        });
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when the batch has no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The operations, in order.
    pub fn ops(&self) -> &[BatchOp] {
        &self.ops
    }

    /// Consumes the batch, returning its operations in order.
    pub fn into_ops(self) -> Vec<BatchOp> {
        self.ops
    }

    /// Appends every operation of `other`, keeping order.
    pub fn extend(&mut self, other: WriteBatch) {
        self.ops.extend(other.ops);
    }
}

/// Size estimates of one column family.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CfStats {
    /// Approximate bytes of live keys and values.
    pub live_bytes: u64,
    /// Approximate number of live keys.
    pub keys: u64,
}

/// About how much a key range holds (see [`Engine::estimate_range`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RangeEstimate {
    /// Keys in the range.
    pub keys: u64,
    /// Their bytes, keys plus values, as written (before any compression on disk).
    pub bytes: u64,
}

impl RangeEstimate {
    /// The sum of two estimates.
    pub fn plus(self, other: RangeEstimate) -> RangeEstimate {
        RangeEstimate {
            keys: self.keys.saturating_add(other.keys),
            bytes: self.bytes.saturating_add(other.bytes),
        }
    }
}

/// One `(key, value)` pair of a range, or the error that ended it.
pub type KvItem = Result<(Vec<u8>, Vec<u8>), StorageError>;

/// Ascending `(key, value)` pairs of a range, yielded one at a time (see [`EngineRead::iter`]).
///
/// An error is an item, and the iterator ends after it: an iterator that stopped because of an
/// I/O error must not look like the end of the range.
pub type KvIter<'a> = Box<dyn Iterator<Item = KvItem> + Send + 'a>;

/// The reads every view of an engine offers: the live engine, and a [`Engine::snapshot`].
///
/// Calls block; async callers run them in `spawn_blocking`.
pub trait EngineRead: Send + Sync {
    /// The value of `key`, if present.
    fn get(&self, cf: ColumnFamily, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;

    /// Ascending scan of `[start, end)` (end `None` = to the end of the CF), at most `limit` pairs.
    fn scan(
        &self,
        cf: ColumnFamily,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<KvPairs, StorageError>;

    /// Ascending `(key, value)` pairs of `[start, end)` (end `None` = to the end of the CF),
    /// read one at a time rather than collected, so a range of any size costs the memory of one
    /// pair. An empty or inverted range yields nothing.
    ///
    /// On a snapshot it reads the snapshot. On the live engine it reads one consistent view,
    /// taken when the iterator is created (writes made while it runs are not seen), and holds no
    /// lock that a writer waits on.
    fn iter(&self, cf: ColumnFamily, start: &[u8], end: Option<&[u8]>) -> KvIter<'_>;
}

/// An ordered key-value store with column families, atomic batches and snapshots.
///
/// Calls block; async callers run them in `spawn_blocking`.
pub trait Engine: EngineRead + 'static {
    /// A consistent, point-in-time read view of every column family.
    ///
    /// It owns what it needs (`'static`), so a job can keep it across `.await`s and read it a
    /// chunk at a time, and it is unaffected by every write made after it was taken. While it
    /// lives, the engine keeps what it sees (RocksDB: old versions are not compacted away), so
    /// drop it when done.
    type Snapshot: EngineRead + 'static;

    /// A snapshot of everything written so far.
    fn snapshot(&self) -> Self::Snapshot;

    /// Applies the whole batch atomically; on return it is in the WAL (and fsynced when
    /// the engine was opened with `sync_writes`).
    fn write(&self, batch: WriteBatch) -> Result<(), StorageError>;

    /// Size estimates of one column family.
    fn stats(&self, cf: ColumnFamily) -> Result<CfStats, StorageError>;

    /// Makes everything written so far durable and compact on disk (memtables flushed).
    fn flush(&self) -> Result<(), StorageError>;

    /// About how many keys `[start, end)` of `cf` holds, and their bytes (keys plus values, as
    /// written), for progress bars and plans (a partition's size before it is streamed). Only
    /// the order of magnitude is part of the contract, and it is meant to be cheap: RocksDB
    /// answers from its file index and walks only its memtables. This default walks the range,
    /// which is exact and costs a read of the range.
    fn estimate_range(
        &self,
        cf: ColumnFamily,
        start: &[u8],
        end: &[u8],
    ) -> Result<RangeEstimate, StorageError> {
        let mut estimate = RangeEstimate::default();
        for pair in self.iter(cf, start, Some(end)) {
            let (key, value) = pair?;
            estimate.keys += 1;
            estimate.bytes += (key.len() + value.len()) as u64;
        }
        Ok(estimate)
    }
}

impl<R: EngineRead + ?Sized> EngineRead for Arc<R> {
    fn get(&self, cf: ColumnFamily, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        (**self).get(cf, key)
    }

    fn scan(
        &self,
        cf: ColumnFamily,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<KvPairs, StorageError> {
        (**self).scan(cf, start, end, limit)
    }

    fn iter(&self, cf: ColumnFamily, start: &[u8], end: Option<&[u8]>) -> KvIter<'_> {
        (**self).iter(cf, start, end)
    }
}

/// Lets an engine shared behind an `Arc` be passed where an engine is expected.
impl<E: Engine> Engine for Arc<E> {
    type Snapshot = E::Snapshot;

    fn snapshot(&self) -> Self::Snapshot {
        (**self).snapshot()
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        (**self).write(batch)
    }

    fn stats(&self, cf: ColumnFamily) -> Result<CfStats, StorageError> {
        (**self).stats(cf)
    }

    fn flush(&self) -> Result<(), StorageError> {
        (**self).flush()
    }

    fn estimate_range(
        &self,
        cf: ColumnFamily,
        start: &[u8],
        end: &[u8],
    ) -> Result<RangeEstimate, StorageError> {
        (**self).estimate_range(cf, start, end)
    }
}

/// True when `[start, end)` holds no key.
pub(crate) fn is_empty_range(start: &[u8], end: Option<&[u8]>) -> bool {
    end.is_some_and(|end| end <= start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_family_names_and_indexes_are_unique() {
        for (i, cf) in ColumnFamily::ALL.iter().enumerate() {
            assert_eq!(cf.index(), i);
            for other in &ColumnFamily::ALL[i + 1..] {
                assert_ne!(cf.name(), other.name());
            }
        }
    }

    #[test]
    fn batch_keeps_operations_in_order() {
        let mut batch = WriteBatch::new();
        assert!(batch.is_empty());
        batch.put(ColumnFamily::Data, b"k".as_slice(), b"v".as_slice());
        batch.delete(ColumnFamily::Meta, b"m".to_vec());
        batch.delete_range(ColumnFamily::Data, b"a".to_vec(), b"b".to_vec());
        assert_eq!(batch.len(), 3);
        assert!(matches!(batch.ops()[0], BatchOp::Put { .. }));
        assert!(matches!(batch.ops()[1], BatchOp::Delete { .. }));
        assert!(matches!(batch.ops()[2], BatchOp::DeleteRange { .. }));
    }
}
