//! The one error type of the storage crate.
//!
//! Every variant carries what an operator needs to debug the failure without
//! a debugger: the operation, the offending sizes, or the (hex, truncated) key
//! of a record that failed to decode.

use crate::keys::TableId;

/// Everything that can go wrong in `tessera-storage`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// The underlying engine (RocksDB) failed.
    #[error("storage engine failed during {op}: {message}")]
    Engine {
        /// The engine operation that failed (`get`, `scan`, `write`, `open`, ...).
        op: &'static str,
        /// The engine's own message.
        message: String,
    },

    /// A stored record (or a record received from a peer) could not be decoded.
    #[error("corrupt {what} at key {key}: {reason}")]
    Corrupt {
        /// What kind of record it was (`cell`, `cell key`, `meta record`, ...).
        what: &'static str,
        /// The record's key in hex, truncated for long keys.
        key: String,
        /// Why it did not decode.
        reason: String,
    },

    /// A coordinator write would leave a cell with more siblings than allowed.
    #[error("column {column:?} would have {siblings} siblings, more than the maximum of {max}; resolve them by writing with the causal context of a read")]
    TooManySiblings {
        /// The column, lossily converted to UTF-8.
        column: String,
        /// How many siblings the write would have produced.
        siblings: usize,
        /// The configured maximum.
        max: usize,
    },

    /// A partition key longer than the key layout can hold.
    #[error("partition key is {len} bytes, longer than the maximum of {max}")]
    KeyTooLong {
        /// The key's length in bytes.
        len: usize,
        /// The maximum length in bytes.
        max: usize,
    },

    /// A column name longer than the key layout allows.
    #[error("column name is {len} bytes, longer than the maximum of {max}")]
    ColumnTooLong {
        /// The column's length in bytes.
        len: usize,
        /// The maximum length in bytes.
        max: usize,
    },

    /// A table id that is reserved so that every row range has an upper bound.
    #[error("table id {table} is reserved (the largest usable table id is {max})")]
    ReservedTable {
        /// The rejected table id.
        table: TableId,
        /// The largest usable table id.
        max: TableId,
    },

    /// A batch of cell operations that cannot be applied as given.
    #[error("invalid batch: {reason}")]
    InvalidBatch {
        /// What is wrong with it.
        reason: String,
    },

    /// Storing another hint for `target` would exceed the per-target bound.
    #[error("node {target} already has {count} hints stored here, the maximum is {max}; the hint was not stored")]
    HintLimit {
        /// The node the hint was for.
        target: String,
        /// Hints already stored for it.
        count: u64,
        /// The configured maximum per target.
        max: u64,
    },

    /// An anti-entropy tree operation was asked of a store that keeps no trees.
    #[error(
        "this store keeps no anti-entropy trees (the cell store was opened without a tree shape)"
    )]
    NoTrees,

    /// An anti-entropy tree or exchange request did not fit the tree's shape.
    #[error("anti-entropy tree of table {table} partition {partition}: {reason}")]
    Tree {
        /// The table.
        table: TableId,
        /// The partition.
        partition: u16,
        /// What was wrong (the tree crate's error).
        reason: String,
    },

    /// A value could not be encoded (a bug in a `Serialize` impl, never bad input).
    #[error("could not encode {what}: {reason}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The encoder's message.
        reason: String,
    },
}

/// Longest key prefix shown in errors; keys can be 128 KiB.
const MAX_HEX_BYTES: usize = 48;

/// Renders a key for an error message: hex, truncated, with the full length.
pub(crate) fn hex_key(key: &[u8]) -> String {
    use std::fmt::Write as _;
    let shown = &key[..key.len().min(MAX_HEX_BYTES)];
    let mut out = String::with_capacity(shown.len() * 2 + 24);
    for byte in shown {
        // Writing into a String cannot fail.
        let _ = write!(out, "{byte:02x}");
    }
    if key.len() > MAX_HEX_BYTES {
        let _ = write!(out, "... ({} bytes)", key.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_key_truncates_long_keys() {
        assert_eq!(hex_key(&[0x00, 0xab, 0xff]), "00abff");
        let long = vec![0x11u8; 100];
        let shown = hex_key(&long);
        assert!(shown.starts_with(&"11".repeat(MAX_HEX_BYTES)));
        assert!(shown.ends_with("... (100 bytes)"));
    }
}
