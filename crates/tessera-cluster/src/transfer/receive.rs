//! The receiving side of a transfer: a chunk from a source, checked and merged into the local
//! store as one engine batch, together with the progress record that says it arrived.
//!
//! Every cell is merged as a replica merges (the version vectors' sync: what the receiver holds
//! and what arrives are joined, never overwritten), under the row locks, through
//! [`CellStore::apply_atomically`], so a cell a client wrote on the receiver while the partition
//! moved stays, and the cell cache stays true. Bulk chunks do not go through the group
//! committer: its queue serves client latency, and a chunk is a batch already.
//!
//! A chunk is checked before anything is written: every key must be a cell key of the
//! transfer's (table, partition), after the position the chunk was asked from, in strictly
//! ascending order, and the next position must be the last key. A source that breaks this is a
//! failed source, not data to store.

use tessera_storage::{decode_cell_key, Cell, CellStore, Engine, RowKey, RowOp, WriteBatch};

use super::error::TransferError;
use super::progress::{self, Progress};
use super::spec::TransferKey;
use crate::transport::NodeId;

/// A chunk's cells grouped by row, in key order: `(row, [(column, cell)])`.
pub type ChunkRows = Vec<(RowKey, Vec<(Vec<u8>, Cell)>)>;

/// What merging one chunk did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Merged {
    /// Cells in the chunk.
    pub keys: u64,
    /// Cells that changed what this node held (new cells, or versions it lacked).
    pub changed: u64,
}

/// Checks `cells` (the chunk asked from `source` after `after`, continuing after `next`) and
/// groups them into rows, in key order.
pub fn rows_of_chunk(
    key: &TransferKey,
    source: &NodeId,
    after: Option<&[u8]>,
    cells: Vec<(Vec<u8>, Cell)>,
    next: Option<&[u8]>,
) -> Result<ChunkRows, TransferError> {
    let bad = |reason: String| TransferError::BadChunk {
        source_node: source.clone(),
        reason,
    };
    if let Some(next) = next {
        if cells.last().map(|(k, _)| k.as_slice()) != Some(next) {
            return Err(bad(
                "the chunk goes on from a key other than its last one".to_owned()
            ));
        }
    }
    let mut rows: ChunkRows = Vec::new();
    let mut previous: Option<Vec<u8>> = after.map(<[u8]>::to_vec);
    for (data_key, cell) in cells {
        if previous.as_ref().is_some_and(|p| data_key <= *p) {
            return Err(bad(format!(
                "key {} is not after the one before it",
                hex(&data_key)
            )));
        }
        let (row, column) = decode_cell_key(&data_key).map_err(|e| bad(e.to_string()))?;
        if row.table != key.table || row.partition != key.partition {
            return Err(bad(format!(
                "a cell of table {} partition {} in a transfer of table {} partition {}",
                row.table, row.partition, key.table, key.partition
            )));
        }
        match rows.last_mut() {
            Some((last, cells)) if *last == row => cells.push((column, cell)),
            _ => rows.push((row, vec![(column, cell)])),
        }
        previous = Some(data_key);
    }
    Ok(rows)
}

/// A key for an error message: its first bytes in hex.
fn hex(key: &[u8]) -> String {
    let shown: String = key.iter().take(32).map(|b| format!("{b:02x}")).collect();
    if key.len() > 32 {
        format!("{shown}... ({} bytes)", key.len())
    } else {
        shown
    }
}

/// Merges `rows` into `store` and writes `progress` as the transfer's record, in one engine
/// batch. Blocking.
pub fn merge_rows<E: Engine>(
    store: &CellStore<E>,
    key: &TransferKey,
    rows: &ChunkRows,
    progress: &Progress,
) -> Result<Merged, TransferError> {
    let mut record = WriteBatch::new();
    record.put(
        tessera_storage::ColumnFamily::Meta,
        progress::record_key(key).into_bytes(),
        progress::encode(progress)?,
    );
    let ops: Vec<RowOp<'_>> = rows
        .iter()
        .map(|(row, cells)| RowOp::Merge { row, cells })
        .collect();
    let outcomes = store.apply_atomically(&ops, record)?;
    let mut merged = Merged::default();
    for outcome in outcomes {
        let outcomes = outcome.into_merged()?;
        merged.keys += outcomes.len() as u64;
        merged.changed += outcomes.iter().filter(|o| o.changed).count() as u64;
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_storage::{cell_key, CellValue, MemoryEngine, StoreOptions};

    fn key() -> TransferKey {
        TransferKey {
            epoch: 3,
            table: 5,
            partition: 9,
        }
    }

    fn cell(value: &str) -> Cell {
        Cell::from_value(CellValue::value(value.as_bytes().to_vec(), 1))
    }

    fn data(row: &RowKey, column: &str) -> (Vec<u8>, Cell) {
        (cell_key(row, column.as_bytes()).unwrap(), cell(column))
    }

    #[test]
    fn cells_are_grouped_into_their_rows() {
        let a = RowKey::new(5, 9, 1, b"a".to_vec());
        let b = RowKey::new(5, 9, 2, b"b".to_vec());
        let cells = vec![data(&a, "x"), data(&a, "y"), data(&b, "x")];
        let next = cells[2].0.clone();
        let rows = rows_of_chunk(&key(), &"n2".into(), None, cells, Some(&next)).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0, a);
        assert_eq!(rows[0].1.len(), 2);
        assert_eq!(rows[1].1[0].0, b"x");
    }

    #[test]
    fn bad_chunks_are_refused() {
        let a = RowKey::new(5, 9, 1, b"a".to_vec());
        let elsewhere = RowKey::new(5, 10, 1, b"a".to_vec());
        let other_table = RowKey::new(6, 9, 1, b"a".to_vec());
        let source: NodeId = "n2".into();
        let check = |after: Option<Vec<u8>>, cells: Vec<(Vec<u8>, Cell)>, next: Option<Vec<u8>>| {
            rows_of_chunk(&key(), &source, after.as_deref(), cells, next.as_deref())
        };
        for (after, cells, next) in [
            (None, vec![data(&a, "y"), data(&a, "x")], None),
            (None, vec![data(&a, "x"), data(&a, "x")], None),
            (Some(data(&a, "y").0), vec![data(&a, "x")], None),
            (None, vec![data(&elsewhere, "x")], None),
            (None, vec![data(&other_table, "x")], None),
            (None, vec![(vec![0, 0, 0, 5, 0, 9], cell("x"))], None),
            (None, vec![data(&a, "x")], Some(data(&a, "z").0)),
            (None, Vec::new(), Some(data(&a, "z").0)),
        ] {
            assert!(
                matches!(
                    check(after, cells, next),
                    Err(TransferError::BadChunk { .. })
                ),
                "accepted"
            );
        }
        assert!(check(Some(data(&a, "a").0), vec![data(&a, "x")], None).is_ok());
    }

    #[test]
    fn a_merge_keeps_what_is_newer_here_and_writes_the_record() {
        let store = CellStore::new(MemoryEngine::new(), StoreOptions::new(1));
        let row = RowKey::new(5, 9, 1, b"a".to_vec());
        // The source's version, written by its actor 2.
        let old = Cell::new().write(
            &tessera_storage::Context::new(),
            &2,
            CellValue::value(b"old".to_vec(), 1),
        );
        // The receiver got it too, and then a client overwrote it here: newer than the source's.
        store
            .merge_row(&row, &[(b"x".to_vec(), old.clone())])
            .unwrap();
        store
            .write_row(
                &row,
                &[tessera_storage::CellWrite::Set {
                    column: b"x".to_vec(),
                    value: b"new".to_vec(),
                    context: old.join(),
                }],
                2,
            )
            .unwrap();
        let incoming = vec![(
            row.clone(),
            vec![(b"x".to_vec(), old), (b"y".to_vec(), cell("y"))],
        )];
        let mut progress = Progress::default();
        progress
            .sources
            .push(super::super::progress::SourceProgress::new("n2".into()));
        progress.sources[0].keys = 2;
        let merged = merge_rows(&store, &key(), &incoming, &progress).unwrap();
        assert_eq!(
            merged,
            Merged {
                keys: 2,
                changed: 1
            }
        );
        let x = store.read_cell(&row, b"x").unwrap().unwrap();
        let values: Vec<_> = x.values().into_iter().map(|v| v.data.clone()).collect();
        assert_eq!(values, vec![Some(b"new".to_vec())]);
        let stored = store
            .get_meta(&progress::record_key(&key()))
            .unwrap()
            .unwrap();
        assert_eq!(progress::decode("k", &stored).unwrap(), progress);
    }
}
