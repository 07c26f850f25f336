//! The cell store: versioned rows on top of an [`Engine`].
//!
//! This is where a replica's local reads and writes happen. Coordinator writes
//! ([`CellStore::write_row`]) mint a new dot for this replica; replica merges
//! ([`CellStore::merge_row`]) fold in sibling sets from other replicas. Both are
//! read-modify-write cycles over several cells that must be atomic and must
//! not lose concurrent updates, so each holds a striped per-row lock across its
//! reads and its single [`WriteBatch`]. Both are one case of [`CellStore::apply`]
//! (in [`batch`]), which applies the writes of many rows in one engine write.

mod batch;
mod cache;
mod partitions;
mod trees;

pub use batch::{RowOp, RowOutcome};
pub use cache::CellCacheStats;
pub use trees::{TreeCheck, TREE_SCAN_CHUNK};

use cache::CellCache;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::cell::{
    decode_cell, encode_cell, is_deleted, Actor, Cell, CellValue, CellWrite, Context,
};
use crate::engine::{CfStats, ColumnFamily, Engine, WriteBatch};
use crate::error::{hex_key, StorageError};
use crate::keys::{cell_key, key_successor, prefix_successor, row_range, RowKey};
use crate::merkle::{stored_cell_digest, TreeDeltas};
use tessera_merkle::TreeShape;

/// Default cap on siblings a coordinator write may create.
pub const DEFAULT_MAX_SIBLINGS: usize = 100;

/// Number of row lock stripes. Rows sharing a stripe only serialise each other's
/// writes, which at this count is rare enough not to matter.
pub const LOCK_STRIPES: usize = 1024;

/// Default size of the cell cache (see [`CellStore::with_cell_cache_bytes`]).
pub const DEFAULT_CELL_CACHE_BYTES: usize = 64 << 20;

/// Most cells read from the engine in one scan; bounds memory while paging.
const MAX_SCAN_CHUNK: usize = 256;

/// Fewest cells per scan when tombstones are skipped, so a row full of them
/// does not cost one engine call per tombstone.
const MIN_SKIPPING_CHUNK: usize = 16;

/// Configuration of a [`CellStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// This replica's id in version vectors.
    pub actor: Actor,
    /// Most siblings a coordinator write may leave in a cell.
    pub max_siblings: usize,
}

impl StoreOptions {
    /// Options for replica `actor` with the default sibling cap.
    pub fn new(actor: Actor) -> Self {
        Self {
            actor,
            max_siblings: DEFAULT_MAX_SIBLINGS,
        }
    }
}

/// Which cells of a row to read. `Default` reads the whole row, without tombstones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowSlice {
    /// First column, inclusive.
    pub from: Option<Vec<u8>>,
    /// Exclusive start from a paging cursor; if both it and `from` are given, the later bound wins.
    pub after: Option<Vec<u8>>,
    /// Column to stop before, exclusive.
    pub to: Option<Vec<u8>>,
    /// Most cells returned.
    pub limit: usize,
    /// Return cells whose every version is a tombstone (replication and repair need them; clients don't).
    pub include_tombstones: bool,
}

impl Default for RowSlice {
    fn default() -> Self {
        Self {
            from: None,
            after: None,
            to: None,
            limit: usize::MAX,
            include_tombstones: false,
        }
    }
}

/// One page of a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowPage {
    /// `(column, cell)` in column order.
    pub cells: Vec<(Vec<u8>, Cell)>,
    /// True iff the page was cut by the limit and at least one more matching cell follows.
    pub more: bool,
}

impl RowPage {
    /// The cursor for the next page (pass it as [`RowSlice::after`]), if there is one.
    pub fn next_cursor(&self) -> Option<&[u8]> {
        if self.more {
            self.cells.last().map(|(column, _)| column.as_slice())
        } else {
            None
        }
    }
}

/// The result of merging one incoming cell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergeOutcome {
    /// The column.
    pub column: Vec<u8>,
    /// What the replica holds after the merge.
    pub cell: Cell,
    /// Whether the merge changed what the replica held.
    pub changed: bool,
}

/// Versioned rows of cells over an engine, which it may share with other owners (a
/// [`HintStore`](crate::HintStore), Merkle trees): each owns its own key space.
pub struct CellStore<E: Engine> {
    engine: Arc<E>,
    options: StoreOptions,
    // RwLock so that multi-chunk row reads see a row between writes, never in the middle of one.
    locks: Box<[RwLock<()>]>,
    // Decoded cells recently read or written under the locks above; see `cache` for why it never
    // serves what the engine does not hold.
    cache: CellCache,
    // The shape of the anti-entropy trees every cell write keeps (`trees`); `None` keeps none.
    trees: Option<TreeShape>,
}

impl<E: Engine> std::fmt::Debug for CellStore<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CellStore")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn lossy(column: &[u8]) -> String {
    String::from_utf8_lossy(column).into_owned()
}

/// Rejects a batch that names a column twice: its meaning would depend on op order.
fn reject_duplicates<'a>(columns: impl Iterator<Item = &'a [u8]>) -> Result<(), StorageError> {
    let mut sorted: Vec<&[u8]> = columns.collect();
    sorted.sort_unstable();
    match sorted.windows(2).find(|pair| pair[0] == pair[1]) {
        Some(pair) => Err(StorageError::InvalidBatch {
            reason: format!("column {:?} appears more than once", lossy(pair[0])),
        }),
        None => Ok(()),
    }
}

impl<E: Engine> CellStore<E> {
    /// A store of replica `options.actor` over `engine` (an engine, or an `Arc` of one shared
    /// with other owners). Given an `Arc`, name the engine type (`CellStore::<E>::new`): an
    /// `Arc` of an engine is an engine too, so it could mean either.
    pub fn new(engine: impl Into<Arc<E>>, options: StoreOptions) -> Self {
        let locks = (0..LOCK_STRIPES).map(|_| RwLock::new(())).collect();
        Self {
            engine: engine.into(),
            options,
            locks,
            cache: CellCache::new(DEFAULT_CELL_CACHE_BYTES, LOCK_STRIPES),
            trees: None,
        }
    }

    /// Keeps an anti-entropy tree of `shape` per (table, partition), updated by every cell write
    /// in the write's own batch (see [`crate::merkle`]). The shape's partition count must be the
    /// ring's. Set it before the first write: trees of data written without it are wrong until
    /// [`Self::check_tree`] repairs them.
    pub fn with_trees(mut self, shape: TreeShape) -> Self {
        self.trees = Some(shape);
        self
    }

    /// The shape of the trees kept, if any.
    pub fn tree_shape(&self) -> Option<TreeShape> {
        self.trees
    }

    /// Sizes the cell cache: about `bytes` of decoded cells (0 turns it off).
    pub fn with_cell_cache_bytes(mut self, bytes: usize) -> Self {
        self.cache = CellCache::new(bytes, LOCK_STRIPES);
        self
    }

    /// What the cell cache holds, and its hits and misses so far.
    pub fn cell_cache_stats(&self) -> CellCacheStats {
        self.cache.stats()
    }

    /// The engine underneath, shared: for range operations and snapshots (streaming, dropping
    /// partitions), and for other owners of the same engine. Writes to the `data` column family
    /// must go through the store (the cell cache relies on it).
    pub fn engine(&self) -> &Arc<E> {
        &self.engine
    }

    /// This replica's actor id.
    pub fn actor(&self) -> Actor {
        self.options.actor
    }

    /// The store's options.
    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    fn stripe_index(&self, row: &RowKey) -> usize {
        let mut hasher = DefaultHasher::new();
        row.hash(&mut hasher);
        (hasher.finish() % self.locks.len() as u64) as usize
    }

    fn stripe(&self, row: &RowKey) -> &RwLock<()> {
        &self.locks[self.stripe_index(row)]
    }

    // A panic under a row lock (none is expected) cannot leave storage
    // half-written, since every change is one atomic batch, so a poisoned lock is
    // recovered rather than turned into a panic of every later caller.
    fn lock_row(&self, row: &RowKey) -> RwLockWriteGuard<'_, ()> {
        self.stripe(row)
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_row_shared(&self, row: &RowKey) -> RwLockReadGuard<'_, ()> {
        self.stripe(row)
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn load(&self, key: &[u8]) -> Result<Option<Cell>, StorageError> {
        match self.engine.get(ColumnFamily::Data, key)? {
            Some(bytes) => decode_cell(key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// [`Self::load`] through the cell cache, filling it on a miss. The caller holds the write
    /// lock of `stripe`, so what the engine returns stays true until the caller writes.
    fn load_locked(&self, stripe: usize, key: &[u8]) -> Result<Option<Cell>, StorageError> {
        if let Some(cached) = self.cache.get(stripe, key) {
            return Ok(cached);
        }
        let cell = self.load(key)?;
        self.cache.insert(stripe, key, cell.clone());
        Ok(cell)
    }

    /// One cell, if stored (tombstones included). Served from the cell cache when it holds the
    /// cell; a miss reads the engine but fills nothing, since without the row lock a writer may
    /// change the cell between the read and the fill.
    pub fn read_cell(&self, row: &RowKey, column: &[u8]) -> Result<Option<Cell>, StorageError> {
        let key = cell_key(row, column)?;
        match self.cache.get(self.stripe_index(row), &key) {
            Some(cached) => Ok(cached),
            None => self.load(&key),
        }
    }

    /// The context of one cell: the join of its versions, as a blind write's snapshot needs it
    /// (empty if there is no cell). Like [`Self::read_cell`], without copying a cached cell.
    pub fn read_context(&self, row: &RowKey, column: &[u8]) -> Result<Context, StorageError> {
        let key = cell_key(row, column)?;
        let join = |cell: Option<&Cell>| cell.map(Cell::join).unwrap_or_default();
        match self.cache.get_with(self.stripe_index(row), &key, join) {
            Some(context) => Ok(context),
            None => Ok(join(self.load(&key)?.as_ref())),
        }
    }

    /// A slice of a row, in column order.
    pub fn read_row(&self, row: &RowKey, slice: &RowSlice) -> Result<RowPage, StorageError> {
        let (row_start, row_end) = row_range(row)?;
        let prefix_len = row_start.len();
        let in_row = |column: &[u8]| [row_start.as_slice(), column].concat();

        let mut start = row_start.clone();
        if let Some(from) = &slice.from {
            start = start.max(in_row(from));
        }
        if let Some(after) = &slice.after {
            start = start.max(key_successor(&in_row(after)));
        }
        let end = match &slice.to {
            Some(to) => in_row(to).min(row_end),
            None => row_end,
        };

        let _shared = self.lock_row_shared(row);
        let mut cells = Vec::new();
        loop {
            if start >= end {
                return Ok(RowPage { cells, more: false });
            }
            // One past what the page still needs, to learn whether more follow.
            let wanted = slice.limit.saturating_sub(cells.len()).saturating_add(1);
            let chunk = if slice.include_tombstones {
                wanted.min(MAX_SCAN_CHUNK)
            } else {
                wanted.clamp(MIN_SKIPPING_CHUNK, MAX_SCAN_CHUNK)
            };
            let pairs = self
                .engine
                .scan(ColumnFamily::Data, &start, Some(&end), chunk)?;
            let exhausted = pairs.len() < chunk;
            if let Some((last, _)) = pairs.last() {
                start = key_successor(last);
            }
            for (key, value) in pairs {
                let cell = decode_cell(&key, &value)?;
                if !slice.include_tombstones && is_deleted(&cell) {
                    continue;
                }
                if cells.len() >= slice.limit {
                    return Ok(RowPage { cells, more: true });
                }
                let Some(column) = key.get(prefix_len..) else {
                    // The engine returned a key outside the requested range.
                    return Err(StorageError::Corrupt {
                        what: "cell key",
                        key: hex_key(&key),
                        reason: format!("shorter than its row prefix of {prefix_len} bytes"),
                    });
                };
                cells.push((column.to_vec(), cell));
            }
            if exhausted {
                return Ok(RowPage { cells, more: false });
            }
        }
    }

    /// Coordinator-side write of one row, atomic.
    ///
    /// Under the row's lock, each op's stored cell is read and written with a
    /// new dot of this replica, superseding what the op's context saw. If any
    /// cell would end up with more than `max_siblings` siblings, nothing is
    /// written and [`StorageError::TooManySiblings`] names the first such column.
    /// Returns the new cells in op order.
    pub fn write_row(
        &self,
        row: &RowKey,
        writes: &[CellWrite],
        now_ms: u64,
    ) -> Result<Vec<(Vec<u8>, Cell)>, StorageError> {
        self.apply_one(RowOp::Write {
            row,
            writes,
            now_ms,
        })?
        .into_written()
    }

    /// Replica-side merge (replication, read repair, anti-entropy), atomic.
    ///
    /// Each incoming cell is synced with the stored one, and only cells that
    /// changed are written. There is no sibling cap: replicated data is never
    /// dropped. A column given twice is merged twice, in order. Returns one
    /// outcome per incoming cell, in order.
    pub fn merge_row(
        &self,
        row: &RowKey,
        cells: &[(Vec<u8>, Cell)],
    ) -> Result<Vec<MergeOutcome>, StorageError> {
        self.apply_one(RowOp::Merge { row, cells })?.into_merged()
    }

    fn apply_one(&self, op: RowOp<'_>) -> Result<RowOutcome, StorageError> {
        self.apply(std::slice::from_ref(&op))
            .pop()
            .unwrap_or_else(|| {
                Err(StorageError::InvalidBatch {
                    reason: "internal error: a batch of one answered nothing".to_owned(),
                })
            })
    }

    /// Tombstones every live cell of the row, superseding everything stored,
    /// atomically. Returns how many cells were deleted.
    pub fn delete_row(&self, row: &RowKey, now_ms: u64) -> Result<usize, StorageError> {
        let (mut start, end) = row_range(row)?;
        let prefix_len = start.len();
        let _locked = self.lock_row(row);
        let mut batch = WriteBatch::new();
        let mut deltas = self.trees.map(TreeDeltas::new);
        let mut written = Vec::new();
        loop {
            let pairs = self
                .engine
                .scan(ColumnFamily::Data, &start, Some(&end), MAX_SCAN_CHUNK)?;
            let exhausted = pairs.len() < MAX_SCAN_CHUNK;
            if let Some((last, _)) = pairs.last() {
                start = key_successor(last);
            }
            for (key, value) in pairs {
                let cell = decode_cell(&key, &value)?;
                if is_deleted(&cell) {
                    continue;
                }
                let tombstone = cell.write(
                    &cell.join(),
                    &self.options.actor,
                    CellValue::tombstone(now_ms),
                );
                let encoded = encode_cell(&tombstone)?;
                if let Some(deltas) = deltas.as_mut() {
                    let column = key.get(prefix_len..).unwrap_or_default();
                    deltas.record(
                        row,
                        Some(stored_cell_digest(row, column, &value)),
                        Some(stored_cell_digest(row, column, &encoded)),
                    );
                }
                batch.put(ColumnFamily::Data, key.clone(), encoded);
                written.push(key);
            }
            if exhausted {
                break;
            }
        }
        let deleted = batch.len();
        if let Some(deltas) = deltas {
            deltas.add_to(&mut batch);
        }
        if !batch.is_empty() {
            // Forgotten whether or not the write succeeds: the next locked read refills them.
            let stripe = self.stripe_index(row);
            for key in &written {
                self.cache.remove(stripe, key);
            }
            self.engine.write(batch)?;
        }
        Ok(deleted)
    }

    /// A metadata record.
    pub fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.engine.get(ColumnFamily::Meta, key.as_bytes())
    }

    /// Stores a metadata record (durable on return, like every write).
    pub fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        let mut batch = WriteBatch::new();
        batch.put(ColumnFamily::Meta, key.as_bytes(), value);
        self.engine.write(batch)
    }

    /// Removes a metadata record, if present.
    pub fn delete_meta(&self, key: &str) -> Result<(), StorageError> {
        let mut batch = WriteBatch::new();
        batch.delete(ColumnFamily::Meta, key.as_bytes());
        self.engine.write(batch)
    }

    /// Every metadata record whose key starts with `prefix`, in key order.
    pub fn scan_meta(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let start = prefix.as_bytes();
        let successor = prefix_successor(start);
        // An empty prefix has no successor: scan to the end.
        let end = (successor.as_slice() != start).then_some(successor.as_slice());
        self.engine
            .scan(ColumnFamily::Meta, start, end, usize::MAX)?
            .into_iter()
            .map(|(key, value)| match String::from_utf8(key) {
                Ok(key) => Ok((key, value)),
                Err(e) => Err(StorageError::Corrupt {
                    what: "meta key",
                    key: hex_key(e.as_bytes()),
                    reason: format!("not UTF-8: {}", e.utf8_error()),
                }),
            })
            .collect()
    }

    /// Size estimates of one column family.
    pub fn stats(&self, cf: ColumnFamily) -> Result<CfStats, StorageError> {
        self.engine.stats(cf)
    }
}
