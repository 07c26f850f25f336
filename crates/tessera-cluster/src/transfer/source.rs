//! The sending side of a transfer: a replica reads the next chunk of a (table, partition) from
//! its live store, and estimates a partition's size.
//!
//! A chunk is read from the live store, not a snapshot: writes made while a partition moves also
//! reach its new owner directly (it is a pending replica), and merges are idempotent, so a cell
//! read before or after such a write is fine either way. Each chunk is one range iterator over
//! the partition's contiguous key range (`tessera_storage::keys`), from just after the key the
//! previous chunk ended on, cut at a cell count and a byte budget. Both limits are capped here,
//! whatever a peer asks, so that one request cannot make this node build a huge answer.

use std::sync::atomic::{AtomicU64, Ordering};

use tessera_storage::cell::decode_cell;
use tessera_storage::keys::key_successor;
use tessera_storage::{partition_range, Cell, CellStore, ColumnFamily, Engine, StorageError};

use crate::messages::PartitionSize;

/// Most cells one chunk holds, whatever is asked.
pub const MAX_CHUNK_CELLS: u32 = 65_536;
/// Most bytes (keys plus stored cells) one chunk holds, whatever is asked; a single larger cell
/// still goes, alone.
pub const MAX_CHUNK_BYTES: u32 = 16 << 20;

/// One chunk of a partition, as read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chunk {
    /// `(data key, cell)` in key order.
    pub cells: Vec<(Vec<u8>, Cell)>,
    /// The last key sent, if more cells follow it; `None` at the partition's end.
    pub next: Option<Vec<u8>>,
    /// Bytes of the chunk's keys and stored cells.
    pub bytes: u64,
}

/// What this node served to receivers of its partitions, since it started.
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Chunks answered.
    pub chunks: AtomicU64,
    /// Cells in them.
    pub keys: AtomicU64,
    /// Bytes of their keys and stored cells.
    pub bytes: AtomicU64,
}

impl SourceStats {
    pub(crate) fn record(&self, chunk: &Chunk) {
        self.chunks.fetch_add(1, Ordering::Relaxed);
        self.keys
            .fetch_add(chunk.cells.len() as u64, Ordering::Relaxed);
        self.bytes.fetch_add(chunk.bytes, Ordering::Relaxed);
    }
}

/// Reads the cells of `partition` of `table` after `after` (exclusive), at most `max_cells` of
/// them and about `max_bytes` (both capped, and at least one cell is read). Blocking.
pub fn read_chunk<E: Engine>(
    store: &CellStore<E>,
    table: u32,
    partition: u16,
    after: Option<&[u8]>,
    max_cells: u32,
    max_bytes: u32,
) -> Result<Chunk, StorageError> {
    let (first, end) = partition_range(table, partition);
    let start = match after {
        Some(after) => key_successor(after).max(first),
        None => first,
    };
    let max_cells = max_cells.clamp(1, MAX_CHUNK_CELLS) as usize;
    let max_bytes = u64::from(max_bytes.clamp(1, MAX_CHUNK_BYTES));
    let mut chunk = Chunk::default();
    let mut pairs = store
        .engine()
        .iter(ColumnFamily::Data, &start, Some(&end))
        .peekable();
    while let Some(pair) = pairs.next() {
        let (key, value) = pair?;
        chunk.bytes += (key.len() + value.len()) as u64;
        let cell = decode_cell(&key, &value)?;
        chunk.cells.push((key, cell));
        if chunk.cells.len() >= max_cells || chunk.bytes >= max_bytes {
            // Peeking costs one step of the iterator and tells the receiver it is done, instead
            // of an extra round trip for an empty chunk.
            if pairs.peek().is_some() {
                chunk.next = chunk.cells.last().map(|(key, _)| key.clone());
            }
            break;
        }
    }
    Ok(chunk)
}

/// The estimated size of `partition` of `table` here. Blocking, but cheap.
pub fn estimate_partition<E: Engine>(
    store: &CellStore<E>,
    table: u32,
    partition: u16,
) -> Result<PartitionSize, StorageError> {
    let (start, end) = partition_range(table, partition);
    let estimate = store
        .engine()
        .estimate_range(ColumnFamily::Data, &start, &end)?;
    Ok(PartitionSize {
        keys: estimate.keys,
        bytes: estimate.bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_storage::{CellValue, MemoryEngine, RowKey, StoreOptions};

    fn store_with(rows: &[RowKey]) -> CellStore<MemoryEngine> {
        let store = CellStore::new(MemoryEngine::new(), StoreOptions::new(1));
        for row in rows {
            let cell = Cell::from_value(CellValue::value(vec![7; 100], 1));
            store
                .merge_row(row, &[(b"a".to_vec(), cell.clone()), (b"b".to_vec(), cell)])
                .unwrap();
        }
        store
    }

    fn rows(table: u32, partition: u16, count: u64) -> Vec<RowKey> {
        (0..count)
            .map(|i| RowKey::new(table, partition, i * 1000, format!("k{i}").into_bytes()))
            .collect()
    }

    /// Every chunk until the end, with the `after` each started from.
    fn read_all(store: &CellStore<MemoryEngine>, cells: u32, bytes: u32) -> Vec<Chunk> {
        let mut chunks = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let chunk = read_chunk(store, 5, 9, after.as_deref(), cells, bytes).unwrap();
            after = chunk.next.clone();
            chunks.push(chunk);
            if after.is_none() {
                return chunks;
            }
            assert!(chunks.len() < 10_000, "no end");
        }
    }

    #[test]
    fn chunks_cover_the_partition_once_in_order_and_nothing_else() {
        let mut all = rows(5, 9, 50);
        all.extend(rows(5, 8, 5));
        all.extend(rows(5, 10, 5));
        all.extend(rows(4, 9, 5));
        let store = store_with(&all);
        for (cells, bytes) in [
            (1, u32::MAX),
            (7, u32::MAX),
            (1000, 1),
            (1000, 2_000),
            (100_000, u32::MAX),
        ] {
            let chunks = read_all(&store, cells, bytes);
            let keys: Vec<Vec<u8>> = chunks
                .iter()
                .flat_map(|c| c.cells.iter().map(|(k, _)| k.clone()))
                .collect();
            assert_eq!(keys.len(), 100, "{cells} {bytes}");
            assert!(keys.windows(2).all(|w| w[0] < w[1]));
            let (start, end) = partition_range(5, 9);
            assert!(keys.iter().all(|k| *k >= start && *k < end));
            for chunk in &chunks {
                assert!(!chunk.cells.is_empty() || chunk.next.is_none());
                assert!(chunk.cells.len() <= cells as usize);
            }
        }
        // The exact fit ends without an empty extra chunk.
        assert_eq!(read_all(&store, 100, u32::MAX).len(), 1);
        assert_eq!(read_all(&store, 50, u32::MAX).len(), 2);
    }

    #[test]
    fn a_byte_budget_cuts_after_the_cell_that_reaches_it() {
        let store = store_with(&rows(5, 9, 10));
        let one = read_chunk(&store, 5, 9, None, 1000, 1).unwrap();
        assert_eq!(one.cells.len(), 1);
        let per_cell = one.bytes;
        let three = read_chunk(&store, 5, 9, None, 1000, (2 * per_cell + 1) as u32).unwrap();
        assert_eq!(three.cells.len(), 3);
        assert_eq!(three.bytes, 3 * per_cell);
    }

    #[test]
    fn an_empty_partition_or_a_start_past_its_end_reads_nothing() {
        let store = store_with(&rows(5, 10, 3));
        assert_eq!(
            read_chunk(&store, 5, 9, None, 10, 10_000).unwrap(),
            Chunk::default()
        );
        let (_, end) = partition_range(5, 9);
        assert_eq!(
            read_chunk(&store, 5, 9, Some(&end), 10, 10_000).unwrap(),
            Chunk::default()
        );
        // An `after` before the partition starts at its first cell, never before it.
        let chunk = read_chunk(&store, 5, 10, Some(b""), 10, 10_000).unwrap();
        assert_eq!(chunk.cells.len(), 6);
    }

    #[test]
    fn estimates_count_the_partition() {
        let store = store_with(&rows(5, 9, 10));
        let size = estimate_partition(&store, 5, 9).unwrap();
        assert_eq!(size.keys, 20);
        assert_eq!(
            estimate_partition(&store, 5, 8).unwrap(),
            PartitionSize::default()
        );
    }
}
