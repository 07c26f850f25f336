//! Tessera's local storage.
//!
//! Three layers:
//! - the **engine** ([`Engine`]): an ordered key-value store with column
//!   families, atomic batches, range iterators and snapshots, implemented by
//!   RocksDB ([`RocksEngine`]) for real nodes and by `BTreeMap`s
//!   ([`MemoryEngine`]) for deterministic simulations, both held to one
//!   conformance suite (`conformance`, behind the `test-support` feature);
//! - the **cell store** ([`CellStore`]): rows of DVVSet-versioned cells laid out
//!   so that a partition and a row are contiguous key ranges ([`keys`]), with
//!   atomic, lock-protected read-modify-write for coordinator writes and
//!   replica merges;
//! - the **hint store** ([`HintStore`], in [`hints`]): writes kept for a replica
//!   that was down (hinted handoff), in their own column family, bounded per
//!   target.
//!
//! The cell store and the hint store share one engine (each holds an `Arc` of
//! it) and know nothing of each other. Every value written starts with a
//! format version byte ([`codec`]). Calls block; async callers use
//! `spawn_blocking`.

pub mod cell;
pub mod codec;
#[cfg(any(test, feature = "test-support"))]
pub mod conformance;
pub mod engine;
pub mod error;
pub mod hints;
pub mod keys;
pub mod memory;
pub mod merkle;
pub mod rocks;
pub mod store;

pub use cell::{Actor, Cell, CellValue, CellWrite, Context};
pub use codec::{decode_versioned, encode_versioned, FORMAT_VERSION};
pub use engine::{
    BatchOp, CfStats, ColumnFamily, Engine, EngineRead, KvItem, KvIter, KvPairs, RangeEstimate,
    WriteBatch,
};
pub use error::StorageError;
pub use hints::{Hint, HintKey, HintStore, HintTargetStats, DEFAULT_MAX_HINTS_PER_TARGET};
pub use keys::{
    cell_key, decode_cell_key, partition_range, row_prefix, RowKey, TableId, MAX_COLUMN_LEN,
    MAX_KEY_LEN,
};
pub use memory::{MemoryEngine, MemorySnapshot};
pub use rocks::{RocksEngine, RocksOptions, RocksSnapshot};
pub use store::{
    CellCacheStats, CellStore, MergeOutcome, RowOp, RowOutcome, RowPage, RowSlice, StoreOptions,
    TreeCheck, DEFAULT_CELL_CACHE_BYTES, LOCK_STRIPES, TREE_SCAN_CHUNK,
};
