//! What the storage tests share: a probing engine, and generated ops.

// Each test binary uses its own part of this.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use proptest::prelude::*;
use tessera_storage::{
    Cell, CellValue, CellWrite, CfStats, ColumnFamily, Context, Engine, EngineRead, KvIter,
    KvPairs, MemoryEngine, MemorySnapshot, RowKey, RowOp, StorageError, WriteBatch, MAX_COLUMN_LEN,
};

/// The in-memory engine, counting reads and writes and failing writes on demand.
#[derive(Default)]
pub struct Probe {
    pub inner: MemoryEngine,
    pub gets: AtomicUsize,
    pub writes: AtomicUsize,
    pub fail_writes: AtomicBool,
}

impl EngineRead for Probe {
    fn get(&self, cf: ColumnFamily, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(cf, key)
    }

    fn scan(
        &self,
        cf: ColumnFamily,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<KvPairs, StorageError> {
        self.inner.scan(cf, start, end, limit)
    }

    fn iter(&self, cf: ColumnFamily, start: &[u8], end: Option<&[u8]>) -> KvIter<'_> {
        self.inner.iter(cf, start, end)
    }
}

impl Engine for Probe {
    type Snapshot = MemorySnapshot;

    fn snapshot(&self) -> MemorySnapshot {
        self.inner.snapshot()
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(StorageError::Engine {
                op: "write",
                message: "disk full (injected)".to_owned(),
            });
        }
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.write(batch)
    }

    fn stats(&self, cf: ColumnFamily) -> Result<CfStats, StorageError> {
        self.inner.stats(cf)
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.inner.flush()
    }
}

pub fn row(key: u8) -> RowKey {
    RowKey::new(1, 0, 42, [b'r', key])
}

/// An op, owned, so proptest can generate it.
#[derive(Clone, Debug)]
pub enum Owned {
    Write(RowKey, Vec<CellWrite>, u64),
    Merge(RowKey, Vec<(Vec<u8>, Cell)>),
}

impl Owned {
    pub fn op(&self) -> RowOp<'_> {
        match self {
            Owned::Write(row, writes, now_ms) => RowOp::Write {
                row,
                writes,
                now_ms: *now_ms,
            },
            Owned::Merge(row, cells) => RowOp::Merge { row, cells },
        }
    }
}

/// A column of a small set (so ops collide), or now and then one too long to be valid.
pub fn column() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        20 => (0u8..3).prop_map(|c| vec![b'c', c]),
        1 => Just(vec![b'x'; MAX_COLUMN_LEN + 1]),
    ]
}

/// A cell as another replica (actor 2..4) might send it: a few concurrent or successive
/// writes, so merges both add siblings and supersede them.
pub fn remote_cell() -> impl Strategy<Value = Cell> {
    prop::collection::vec((2u64..5, any::<u8>(), any::<bool>()), 1..4).prop_map(|writes| {
        let mut cell = Cell::new();
        for (actor, value, see_all) in writes {
            let context = if see_all { cell.join() } else { Context::new() };
            cell = cell.write(&context, &actor, CellValue::value(vec![value], 7));
        }
        cell
    })
}

pub fn owned_op() -> impl Strategy<Value = Owned> {
    let write = (
        0u8..3,
        prop::collection::vec((column(), any::<u8>(), any::<bool>()), 1..3),
        any::<u64>(),
    )
        .prop_map(|(key, cells, now_ms)| {
            let writes = cells
                .into_iter()
                .map(|(column, value, tombstone)| {
                    // Blind writes only: each adds a sibling until the cap refuses one.
                    if tombstone {
                        CellWrite::Delete {
                            column,
                            context: Context::new(),
                        }
                    } else {
                        CellWrite::Set {
                            column,
                            value: vec![value],
                            context: Context::new(),
                        }
                    }
                })
                .collect();
            Owned::Write(row(key), writes, now_ms)
        });
    let merge = (
        0u8..3,
        prop::collection::vec((column(), remote_cell()), 1..3),
    )
        .prop_map(|(key, cells)| Owned::Merge(row(key), cells));
    prop_oneof![write, merge]
}
