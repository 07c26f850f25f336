//! What a cell is: a DVVSet of timestamped values, where a missing value is a tombstone.
//!
//! Deletes are writes of a tombstone so that they take part in causality like
//! any other write: a delete supersedes exactly what its context saw, and a
//! concurrent write survives it as a sibling.

use serde::{Deserialize, Serialize};

use crate::codec::{decode_versioned, encode_versioned};
use crate::error::StorageError;

/// A replica's id in version vectors.
pub type Actor = u64;

/// A causal context: what a client saw when it read, handed back when it writes.
pub type Context = tessera_version::VersionVector<Actor>;

/// A cell: every concurrent version of one column of one row.
pub type Cell = tessera_version::DvvSet<Actor, CellValue>;

/// One version of a cell.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellValue {
    /// The value's bytes; `None` is a tombstone.
    pub data: Option<Vec<u8>>,
    /// Coordinator wall clock at the write, in ms since the Unix epoch. Informational
    /// (shown to clients, used to age tombstones); never used to order versions.
    pub written_at_ms: u64,
}

impl CellValue {
    /// A live value.
    pub fn value(data: impl Into<Vec<u8>>, written_at_ms: u64) -> Self {
        Self {
            data: Some(data.into()),
            written_at_ms,
        }
    }

    /// A tombstone.
    pub fn tombstone(written_at_ms: u64) -> Self {
        Self {
            data: None,
            written_at_ms,
        }
    }

    /// True for a tombstone.
    pub fn is_tombstone(&self) -> bool {
        self.data.is_none()
    }
}

/// One operation of a coordinator write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CellWrite {
    /// Set `column` to `value`, superseding what `context` saw.
    Set {
        /// The column.
        column: Vec<u8>,
        /// The new value.
        value: Vec<u8>,
        /// The causal context of the client's read (empty for a blind write).
        context: Context,
    },
    /// Tombstone `column`, superseding what `context` saw.
    Delete {
        /// The column.
        column: Vec<u8>,
        /// The causal context of the client's read (empty for a blind delete).
        context: Context,
    },
}

impl CellWrite {
    /// The column written.
    pub fn column(&self) -> &[u8] {
        match self {
            CellWrite::Set { column, .. } | CellWrite::Delete { column, .. } => column,
        }
    }

    /// The context the write supersedes.
    pub fn context(&self) -> &Context {
        match self {
            CellWrite::Set { context, .. } | CellWrite::Delete { context, .. } => context,
        }
    }

    /// The version this write stores.
    pub fn to_value(&self, now_ms: u64) -> CellValue {
        match self {
            CellWrite::Set { value, .. } => CellValue::value(value.clone(), now_ms),
            CellWrite::Delete { .. } => CellValue::tombstone(now_ms),
        }
    }
}

/// True when the cell holds no live value (every sibling is a tombstone, or there are none).
pub fn is_deleted(cell: &Cell) -> bool {
    cell.values().iter().all(|v| v.is_tombstone())
}

/// The live (non-tombstone) values of a cell.
pub fn live_values(cell: &Cell) -> Vec<&[u8]> {
    cell.values()
        .into_iter()
        .filter_map(|v| v.data.as_deref())
        .collect()
}

/// About how many bytes a cell's versions carry: their values, plus 16 for each version's
/// timestamp and dot. An estimate for sizing batches and hints, not the encoded size.
pub fn approx_cell_bytes(cell: &Cell) -> usize {
    cell.values()
        .iter()
        .map(|v| v.data.as_ref().map_or(0, Vec::len) + 16)
        .sum()
}

/// The stored form of a cell.
pub fn encode_cell(cell: &Cell) -> Result<Vec<u8>, StorageError> {
    encode_versioned("cell", cell)
}

/// Decodes a stored cell; `key` only labels errors.
pub fn decode_cell(key: &[u8], bytes: &[u8]) -> Result<Cell, StorageError> {
    decode_versioned("cell", key, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_round_trip() {
        let cell = Cell::from_value(CellValue::value(b"v".to_vec(), 5));
        let cell = cell.write(&cell.join(), &1, CellValue::tombstone(6));
        let bytes = encode_cell(&cell).unwrap();
        assert_eq!(decode_cell(b"k", &bytes).unwrap(), cell);
    }

    #[test]
    fn tombstones() {
        let live = Cell::from_value(CellValue::value(b"v".to_vec(), 1));
        assert!(!is_deleted(&live));
        assert_eq!(live_values(&live), vec![b"v".as_slice()]);
        let dead = Cell::from_value(CellValue::tombstone(1));
        assert!(is_deleted(&dead));
        assert!(live_values(&dead).is_empty());
        assert!(is_deleted(&Cell::new()));
    }
}
