//! Cell against cell: the digests of a segment's cells on two replicas, merged in key order.
//!
//! Once the trees have narrowed a difference down to segments, each side lists the cells of those
//! segments as [`CellDigest`]s, in storage order, and [`compare_cells`] walks both lists once:
//! a cell only the peer has is pulled, a cell only we have is pushed, a cell both have with
//! different digests has diverged (pull it, merge with DVV sync, push the merge back; sync is
//! commutative, so both replicas end with the same cell).

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::digest::{cell_digest, Digest};
use crate::error::MerkleError;
use crate::shape::Token;

/// The address of one cell within a table: its row's token and key, and its column.
///
/// Orders as the storage keys of one partition do: by token, then key length, then key bytes,
/// then column bytes, so a range scan yields cells in this order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CellId {
    /// The token of `key`.
    pub token: Token,
    /// The partition key.
    pub key: Vec<u8>,
    /// The column.
    pub column: Vec<u8>,
}

impl CellId {
    /// A cell address.
    pub fn new(token: Token, key: impl Into<Vec<u8>>, column: impl Into<Vec<u8>>) -> Self {
        Self {
            token,
            key: key.into(),
            column: column.into(),
        }
    }
}

impl Ord for CellId {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.token, self.key.len(), &self.key, &self.column).cmp(&(
            other.token,
            other.key.len(),
            &other.key,
            &other.column,
        ))
    }
}

impl PartialOrd for CellId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A cell's address and digest: what a replica says about one cell during an exchange.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CellDigest {
    /// The cell.
    pub id: CellId,
    /// [`cell_digest`] of its key, column and encoded bytes.
    pub digest: Digest,
}

impl CellDigest {
    /// A cell's address with its digest.
    pub fn new(id: CellId, digest: Digest) -> Self {
        Self { id, digest }
    }

    /// What this entry counts for against a page's byte budget: its key, column and digest, and
    /// 16 bytes for its token and lengths (about its encoded size).
    pub fn page_bytes(&self) -> u64 {
        16 + self.id.key.len() as u64 + self.id.column.len() as u64 + 16
    }

    /// The entry of a stored cell: `cell` is its canonical encoded bytes.
    pub fn of_cell(
        token: Token,
        key: impl Into<Vec<u8>>,
        column: impl Into<Vec<u8>>,
        cell: &[u8],
    ) -> Self {
        let id = CellId::new(token, key, column);
        let digest = cell_digest(&id.key, &id.column, cell);
        Self { id, digest }
    }
}

/// What to do about the cells that differ between two replicas, each list ascending.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CellDiff {
    /// Cells only the peer has: fetch them and merge them in.
    pub pull: Vec<CellId>,
    /// Cells only we have: send them to the peer to merge.
    pub push: Vec<CellId>,
    /// Cells both have with different digests: fetch, merge, send the merge back.
    pub diverged: Vec<CellId>,
}

impl CellDiff {
    /// Whether nothing differs.
    pub fn is_empty(&self) -> bool {
        self.pull.is_empty() && self.push.is_empty() && self.diverged.is_empty()
    }

    /// Number of differing cells.
    pub fn len(&self) -> usize {
        self.pull.len() + self.push.len() + self.diverged.len()
    }

    /// Appends `other`, which must come after `self` in key order to keep the lists ascending.
    pub fn append(&mut self, mut other: CellDiff) {
        self.pull.append(&mut other.pull);
        self.push.append(&mut other.push);
        self.diverged.append(&mut other.diverged);
    }
}

/// Checks that `cells` is strictly ascending (sorted, no cell twice).
pub fn check_sorted(what: &'static str, cells: &[CellDigest]) -> Result<(), MerkleError> {
    match cells.windows(2).position(|pair| pair[0].id >= pair[1].id) {
        Some(index) => Err(MerkleError::NotSorted {
            what,
            index: index + 1,
        }),
        None => Ok(()),
    }
}

/// The cells that differ between `local` and `remote`, each listed in strictly ascending
/// [`CellId`] order (as a scan of the same segments yields them). O(local + remote).
pub fn compare_cells(local: &[CellDigest], remote: &[CellDigest]) -> Result<CellDiff, MerkleError> {
    check_sorted("local cell digests", local)?;
    check_sorted("remote cell digests", remote)?;
    let mut diff = CellDiff::default();
    let (mut l, mut r) = (local.iter().peekable(), remote.iter().peekable());
    loop {
        match (l.peek(), r.peek()) {
            (None, None) => break,
            (Some(ours), None) => {
                diff.push.push(ours.id.clone());
                l.next();
            }
            (None, Some(theirs)) => {
                diff.pull.push(theirs.id.clone());
                r.next();
            }
            (Some(ours), Some(theirs)) => match ours.id.cmp(&theirs.id) {
                Ordering::Less => {
                    diff.push.push(ours.id.clone());
                    l.next();
                }
                Ordering::Greater => {
                    diff.pull.push(theirs.id.clone());
                    r.next();
                }
                Ordering::Equal => {
                    if ours.digest != theirs.digest {
                        diff.diverged.push(ours.id.clone());
                    }
                    l.next();
                    r.next();
                }
            },
        }
    }
    Ok(diff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn entry(token: Token, key: &[u8], column: &[u8], value: u8) -> CellDigest {
        CellDigest::of_cell(token, key, column, &[value])
    }

    #[test]
    fn order_is_storage_order() {
        // Token first, then key length (a shorter key sorts first even if it is greater), then
        // key bytes, then column bytes.
        let ids = [
            CellId::new(1, *b"zz", *b"c"),
            CellId::new(2, *b"b", *b"z"),
            CellId::new(2, *b"aa", *b""),
            CellId::new(2, *b"ab", *b"a"),
            CellId::new(2, *b"ab", *b"b"),
            CellId::new(2, *b"ab", *b"ba"),
        ];
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1], "{pair:?}");
        }
    }

    #[test]
    fn compares_a_small_case() {
        let local = vec![
            entry(1, b"a", b"c", 1),
            entry(2, b"b", b"c", 1),
            entry(3, b"c", b"c", 1),
        ];
        let remote = vec![
            entry(2, b"b", b"c", 2),
            entry(3, b"c", b"c", 1),
            entry(4, b"d", b"c", 1),
        ];
        assert_eq!(
            compare_cells(&local, &remote).unwrap(),
            CellDiff {
                pull: vec![CellId::new(4, *b"d", *b"c")],
                push: vec![CellId::new(1, *b"a", *b"c")],
                diverged: vec![CellId::new(2, *b"b", *b"c")],
            }
        );
        assert!(compare_cells(&local, &local).unwrap().is_empty());
        assert_eq!(compare_cells(&[], &remote).unwrap().pull.len(), 3);
    }

    #[test]
    fn unsorted_or_duplicate_input_is_an_error() {
        let a = entry(1, b"a", b"c", 1);
        let b = entry(2, b"b", b"c", 1);
        assert_eq!(
            compare_cells(&[b.clone(), a.clone()], &[]),
            Err(MerkleError::NotSorted {
                what: "local cell digests",
                index: 1
            })
        );
        assert_eq!(
            compare_cells(&[], &[a.clone(), b, entry(2, b"b", b"c", 9)]),
            Err(MerkleError::NotSorted {
                what: "remote cell digests",
                index: 2
            })
        );
    }

    fn arb_side() -> impl Strategy<Value = BTreeMap<CellId, u8>> {
        let id = (0u64..6, proptest::collection::vec(0u8..3, 0..3), 0u8..3)
            .prop_map(|(token, key, column)| CellId::new(token, key, vec![column]));
        proptest::collection::btree_map(id, 0u8..3, 0..20)
    }

    fn entries(side: &BTreeMap<CellId, u8>) -> Vec<CellDigest> {
        side.iter()
            .map(|(id, v)| CellDigest::of_cell(id.token, id.key.clone(), id.column.clone(), &[*v]))
            .collect()
    }

    proptest! {
        /// Exactly the cells that differ, each in the right list, and the mirror image when the
        /// sides swap.
        #[test]
        fn finds_exactly_the_differing_cells(a in arb_side(), b in arb_side()) {
            let diff = compare_cells(&entries(&a), &entries(&b)).unwrap();
            let mut expected = CellDiff::default();
            let mut all: Vec<&CellId> = a.keys().chain(b.keys()).collect();
            all.sort();
            all.dedup();
            for id in all {
                match (a.get(id), b.get(id)) {
                    (Some(_), None) => expected.push.push(id.clone()),
                    (None, Some(_)) => expected.pull.push(id.clone()),
                    (Some(x), Some(y)) if x != y => expected.diverged.push(id.clone()),
                    _ => {}
                }
            }
            prop_assert_eq!(&diff, &expected);
            let mirror = compare_cells(&entries(&b), &entries(&a)).unwrap();
            prop_assert_eq!(mirror.pull, diff.push);
            prop_assert_eq!(mirror.push, diff.pull);
            prop_assert_eq!(mirror.diverged, diff.diverged);
        }
    }
}
