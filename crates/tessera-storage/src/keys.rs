//! The key layout of the `data` column family.
//!
//! ```text
//! table id (u32 BE) | partition (u16 BE) | token (u64 BE) | key length (u16 BE) | key | column
//! ```
//!
//! Big-endian integers sort like the numbers they encode, so one (table,
//! partition) is one contiguous key range: streaming, dropping and rebuilding a
//! partition's Merkle tree are range operations. The key length comes before
//! the key so that a key which is a prefix of another ("ab" and "abc") cannot
//! interleave their cells; the column is last and unprefixed, so a row's cells
//! sort by column bytes and a column slice is a plain key range.

use crate::error::{hex_key, StorageError};

/// A table's numeric id, assigned by the schema.
pub type TableId = u32;

/// Largest usable table id. `u32::MAX` is reserved so that every row and
/// partition range has a finite upper bound.
pub const MAX_TABLE_ID: TableId = u32::MAX - 1;

/// Longest partition key, in bytes (its length is stored as a u16).
pub const MAX_KEY_LEN: usize = 65_535;

/// Longest column name, in bytes.
pub const MAX_COLUMN_LEN: usize = 65_535;

/// Bytes of `table | partition`.
pub const PARTITION_PREFIX_LEN: usize = 4 + 2;

/// Bytes of `table | partition | token | key length`, before the key.
pub const ROW_HEADER_LEN: usize = PARTITION_PREFIX_LEN + 8 + 2;

/// The address of a row: where it lives (table, partition, token) and its key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RowKey {
    /// The table.
    pub table: TableId,
    /// The ring partition the token falls in.
    pub partition: u16,
    /// The partition key's token on the ring.
    pub token: u64,
    /// The partition key.
    pub key: Vec<u8>,
}

impl RowKey {
    /// A row key.
    pub fn new(table: TableId, partition: u16, token: u64, key: impl Into<Vec<u8>>) -> Self {
        Self {
            table,
            partition,
            token,
            key: key.into(),
        }
    }

    /// Checks that the row can be encoded.
    pub fn validate(&self) -> Result<(), StorageError> {
        if self.table > MAX_TABLE_ID {
            return Err(StorageError::ReservedTable {
                table: self.table,
                max: MAX_TABLE_ID,
            });
        }
        if self.key.len() > MAX_KEY_LEN {
            return Err(StorageError::KeyTooLong {
                len: self.key.len(),
                max: MAX_KEY_LEN,
            });
        }
        Ok(())
    }
}

/// Checks that a column name can be stored.
pub fn validate_column(column: &[u8]) -> Result<(), StorageError> {
    if column.len() > MAX_COLUMN_LEN {
        return Err(StorageError::ColumnTooLong {
            len: column.len(),
            max: MAX_COLUMN_LEN,
        });
    }
    Ok(())
}

fn partition_prefix(table: TableId, partition: u16) -> [u8; PARTITION_PREFIX_LEN] {
    let mut out = [0u8; PARTITION_PREFIX_LEN];
    out[..4].copy_from_slice(&table.to_be_bytes());
    out[4..].copy_from_slice(&partition.to_be_bytes());
    out
}

/// Row prefix without validation; callers have validated `row`.
fn encode_row_prefix(row: &RowKey, extra: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(ROW_HEADER_LEN + row.key.len() + extra);
    out.extend_from_slice(&partition_prefix(row.table, row.partition));
    out.extend_from_slice(&row.token.to_be_bytes());
    // Validated to fit; saturating only guards against a caller that skipped validation.
    out.extend_from_slice(
        &u16::try_from(row.key.len())
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(&row.key);
    out
}

/// The prefix shared by every cell of `row`.
pub fn row_prefix(row: &RowKey) -> Result<Vec<u8>, StorageError> {
    row.validate()?;
    Ok(encode_row_prefix(row, 0))
}

/// The key of one cell.
pub fn cell_key(row: &RowKey, column: &[u8]) -> Result<Vec<u8>, StorageError> {
    row.validate()?;
    validate_column(column)?;
    let mut out = encode_row_prefix(row, column.len());
    out.extend_from_slice(column);
    Ok(out)
}

/// `[start, end)` covering exactly the cells of `row`.
pub fn row_range(row: &RowKey) -> Result<(Vec<u8>, Vec<u8>), StorageError> {
    let start = row_prefix(row)?;
    let end = prefix_successor(&start);
    Ok((start, end))
}

/// `[start, end)` covering exactly one partition of one table.
///
/// For the reserved table id `u32::MAX` with partition `u16::MAX` the range is
/// empty, which is accurate: nothing can be stored there.
pub fn partition_range(table: TableId, partition: u16) -> (Vec<u8>, Vec<u8>) {
    let start = partition_prefix(table, partition).to_vec();
    let end = prefix_successor(&start);
    (start, end)
}

/// `[start, end)` covering exactly one table.
pub fn table_range(table: TableId) -> (Vec<u8>, Vec<u8>) {
    let start = table.to_be_bytes().to_vec();
    let end = prefix_successor(&start);
    (start, end)
}

/// The smallest key greater than every key starting with `prefix`, or
/// `prefix` itself when there is none (all bytes 0xFF), making the range empty.
pub fn prefix_successor(prefix: &[u8]) -> Vec<u8> {
    let mut out = prefix.to_vec();
    while let Some(last) = out.pop() {
        if last < u8::MAX {
            out.push(last + 1);
            return out;
        }
    }
    prefix.to_vec()
}

/// The smallest key greater than `key`: the exclusive start after `key`.
pub fn key_successor(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 1);
    out.extend_from_slice(key);
    out.push(0);
    out
}

/// Splits a `data` key back into its row and column.
pub fn decode_cell_key(key: &[u8]) -> Result<(RowKey, Vec<u8>), StorageError> {
    let corrupt = |reason: String| StorageError::Corrupt {
        what: "cell key",
        key: hex_key(key),
        reason,
    };
    let Some((header, rest)) = key.split_first_chunk::<ROW_HEADER_LEN>() else {
        return Err(corrupt(format!(
            "{} bytes is shorter than the {ROW_HEADER_LEN}-byte row header",
            key.len()
        )));
    };
    let (table, header) = split_array::<4>(header);
    let (partition, header) = split_array::<2>(header);
    let (token, header) = split_array::<8>(header);
    let (key_len, _) = split_array::<2>(header);
    let key_len = usize::from(u16::from_be_bytes(key_len));
    if rest.len() < key_len {
        return Err(corrupt(format!(
            "key length {key_len} exceeds the {} bytes that follow the header",
            rest.len()
        )));
    }
    let (row_key, column) = rest.split_at(key_len);
    Ok((
        RowKey {
            table: u32::from_be_bytes(table),
            partition: u16::from_be_bytes(partition),
            token: u64::from_be_bytes(token),
            key: row_key.to_vec(),
        },
        column.to_vec(),
    ))
}

/// Splits a fixed-size prefix off a slice known to be long enough.
fn split_array<const N: usize>(bytes: &[u8]) -> ([u8; N], &[u8]) {
    let mut head = [0u8; N];
    head.copy_from_slice(&bytes[..N]);
    (head, &bytes[N..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn row(table: TableId, partition: u16, token: u64, key: &[u8]) -> RowKey {
        RowKey::new(table, partition, token, key)
    }

    #[test]
    fn layout_is_as_documented() {
        let key = cell_key(
            &row(0x0102_0304, 0x0506, 0x0708_090a_0b0c_0d0e, b"ab"),
            b"col",
        )
        .unwrap();
        assert_eq!(
            key,
            [
                &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0, 2][..],
                b"ab",
                b"col"
            ]
            .concat()
        );
    }

    #[test]
    fn limits_are_enforced() {
        let long = vec![b'k'; MAX_KEY_LEN + 1];
        assert!(matches!(
            row_prefix(&row(1, 0, 0, &long)),
            Err(StorageError::KeyTooLong { len, max }) if len == MAX_KEY_LEN + 1 && max == MAX_KEY_LEN
        ));
        assert!(row_prefix(&row(1, 0, 0, &long[1..])).is_ok());
        assert!(matches!(
            cell_key(&row(1, 0, 0, b"k"), &vec![b'c'; MAX_COLUMN_LEN + 1]),
            Err(StorageError::ColumnTooLong { .. })
        ));
        assert!(cell_key(&row(1, 0, 0, b"k"), &vec![b'c'; MAX_COLUMN_LEN]).is_ok());
        assert!(matches!(
            cell_key(&row(u32::MAX, 0, 0, b"k"), b"c"),
            Err(StorageError::ReservedTable { .. })
        ));
    }

    #[test]
    fn maximal_keys_round_trip() {
        let r = row(MAX_TABLE_ID, u16::MAX, u64::MAX, &vec![0xff; MAX_KEY_LEN]);
        let column = vec![0xff; MAX_COLUMN_LEN];
        let key = cell_key(&r, &column).unwrap();
        assert_eq!(decode_cell_key(&key).unwrap(), (r.clone(), column));
        let (start, end) = row_range(&r).unwrap();
        assert!(start < key && key < end);
    }

    #[test]
    fn successors() {
        assert_eq!(prefix_successor(b"ab"), b"ac");
        assert_eq!(prefix_successor(b"a\xff"), b"b");
        assert_eq!(prefix_successor(b"\xff\xff"), b"\xff\xff");
        assert_eq!(key_successor(b"a"), b"a\x00");
        assert_eq!(partition_range(1, u16::MAX).1, vec![0, 0, 0, 2]);
        let (start, end) = partition_range(u32::MAX, u16::MAX);
        assert_eq!(start, end);
    }

    #[test]
    fn garbage_keys_are_corrupt_not_panics() {
        for bad in [
            &[][..],
            &[1, 2, 3],
            &[0; ROW_HEADER_LEN - 1],
            &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, b'a'],
        ] {
            assert!(matches!(
                decode_cell_key(bad),
                Err(StorageError::Corrupt {
                    what: "cell key",
                    ..
                })
            ));
        }
        // A header with an empty key and column is a valid (if odd) key.
        assert!(decode_cell_key(&[0; ROW_HEADER_LEN]).is_ok());
    }

    fn arb_row() -> impl Strategy<Value = RowKey> {
        (
            0u32..4,
            0u16..4,
            prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()],
            proptest::collection::vec(prop_oneof![Just(0u8), Just(0xff), any::<u8>()], 0..6),
        )
            .prop_map(|(table, partition, token, key)| RowKey::new(table, partition, token, key))
    }

    fn arb_column() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(prop_oneof![Just(0u8), Just(0xff), any::<u8>()], 0..6)
    }

    proptest! {
        #[test]
        fn round_trip(r in arb_row(), column in arb_column()) {
            let key = cell_key(&r, &column).unwrap();
            prop_assert_eq!(decode_cell_key(&key).unwrap(), (r, column));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = decode_cell_key(&bytes);
        }

        /// Within a row, key order is column byte order.
        #[test]
        fn cells_of_a_row_sort_by_column(r in arb_row(), a in arb_column(), b in arb_column()) {
            let ka = cell_key(&r, &a).unwrap();
            let kb = cell_key(&r, &b).unwrap();
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
        }

        /// A row's cells are inside its range and nothing of another row is,
        /// including rows whose key is a prefix of this one's.
        #[test]
        fn rows_do_not_interleave(
            r in arb_row(),
            other in arb_row(),
            suffix in arb_column(),
            a in arb_column(),
            b in arb_column(),
        ) {
            let (start, end) = row_range(&r).unwrap();
            let own = cell_key(&r, &a).unwrap();
            prop_assert!(start <= own && own < end);

            let mut extended = r.clone();
            extended.key.extend_from_slice(&suffix);
            for candidate in [other, extended] {
                if candidate == r {
                    continue;
                }
                let foreign = cell_key(&candidate, &b).unwrap();
                prop_assert!(foreign < start || foreign >= end, "{:?} falls inside {:?}", candidate, r);
            }
        }

        /// Every cell of a (table, partition) is inside its range, every other cell outside.
        #[test]
        fn partitions_are_contiguous(r in arb_row(), column in arb_column(), table in 0u32..4, partition in 0u16..4) {
            let key = cell_key(&r, &column).unwrap();
            let (start, end) = partition_range(table, partition);
            let inside = start <= key && key < end;
            prop_assert_eq!(inside, r.table == table && r.partition == partition);
            let (start, end) = table_range(table);
            prop_assert_eq!(start <= key && key < end, r.table == table);
        }

        /// Order of cells is (table, partition, token, key length, key, column).
        #[test]
        fn global_order(r1 in arb_row(), c1 in arb_column(), r2 in arb_row(), c2 in arb_column()) {
            let k1 = cell_key(&r1, &c1).unwrap();
            let k2 = cell_key(&r2, &c2).unwrap();
            let t1 = (r1.table, r1.partition, r1.token, r1.key.len(), &r1.key, &c1);
            let t2 = (r2.table, r2.partition, r2.token, r2.key.len(), &r2.key, &c2);
            prop_assert_eq!(k1.cmp(&k2), t1.cmp(&t2));
        }
    }
}
