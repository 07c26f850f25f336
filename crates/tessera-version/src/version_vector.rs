//! Version vectors: a causal history summarised as the highest counter seen per actor.
//!
//! This is what a client holds as its causal context and what [`DvvSet::join`]
//! returns. Entries are kept sorted by actor with no duplicates and no zero
//! counters, so equality is structural and comparisons are linear merges.
//! Deserialisation re-checks those invariants, so a corrupt token or record
//! cannot produce a vector that the algorithms would misread.
//!
//! [`DvvSet::join`]: crate::DvvSet::join

use std::cmp::Ordering;

use serde::{Deserialize, Deserializer, Serialize};

use crate::invalid::{check_sorted, Invalid};
use crate::Counter;

/// Causal history summarised as the highest counter seen per actor.
///
/// Serialises as a plain sequence of `(actor, counter)` pairs sorted by actor.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct VersionVector<A> {
    entries: Vec<(A, Counter)>,
}

impl<A> Default for VersionVector<A> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<A: Ord + Clone> VersionVector<A> {
    /// The empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a vector from pairs in any order, keeping the maximum counter per
    /// actor and dropping zero counters (a zero counter means "nothing seen").
    pub fn from_entries(entries: impl IntoIterator<Item = (A, Counter)>) -> Self {
        let mut entries: Vec<(A, Counter)> = entries.into_iter().filter(|(_, n)| *n > 0).collect();
        // Highest counter first within an actor, so dedup keeps the maximum.
        entries.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        entries.dedup_by(|later, kept| later.0 == kept.0);
        Self { entries }
    }

    /// The counter seen for `actor`, 0 when absent.
    pub fn get(&self, actor: &A) -> Counter {
        self.entries
            .binary_search_by(|(a, _)| a.cmp(actor))
            .map_or(0, |i| self.entries[i].1)
    }

    /// The `(actor, counter)` pairs in actor order.
    pub fn iter(&self) -> impl Iterator<Item = (&A, Counter)> {
        self.entries.iter().map(|(a, n)| (a, *n))
    }

    /// Number of actors with a non-zero counter.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True for the empty history.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True when `self` has seen everything `other` has (pointwise `>=`).
    pub fn descends(&self, other: &Self) -> bool {
        let mut mine = self.entries.iter().peekable();
        for (actor, counter) in &other.entries {
            // Skip our actors that `other` does not name; they cannot hurt.
            while mine.next_if(|(a, _)| a < actor).is_some() {}
            match mine.next_if(|(a, _)| a == actor) {
                Some((_, n)) if n >= counter => {}
                _ => return false,
            }
        }
        true
    }

    /// Pointwise maximum with `other`.
    pub fn merge(&mut self, other: &Self) {
        if other.entries.is_empty() {
            return;
        }
        let mut merged = Vec::with_capacity(self.entries.len().max(other.entries.len()));
        let mut mine = std::mem::take(&mut self.entries).into_iter().peekable();
        let mut theirs = other.entries.iter().peekable();
        loop {
            let order = match (mine.peek(), theirs.peek()) {
                (Some((a, _)), Some((b, _))) => a.cmp(b),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => break,
            };
            match order {
                Ordering::Less => merged.extend(mine.next()),
                Ordering::Greater => merged.extend(theirs.next().cloned()),
                Ordering::Equal => {
                    if let (Some((actor, n)), Some((_, m))) = (mine.next(), theirs.next()) {
                        merged.push((actor, n.max(*m)));
                    }
                }
            }
        }
        self.entries = merged;
    }
}

impl<A: Ord> VersionVector<A> {
    /// Wraps pairs already known to be sorted, distinct and non-zero
    /// (the counters of a valid clock's entries).
    pub(crate) fn from_sorted_unchecked(entries: Vec<(A, Counter)>) -> Self {
        debug_assert_eq!(Self::check(&entries), Ok(()));
        Self { entries }
    }

    /// Accepts decoded pairs only if they satisfy the invariants.
    pub(crate) fn try_from_raw(entries: Vec<(A, Counter)>) -> Result<Self, Invalid> {
        Self::check(&entries)?;
        Ok(Self { entries })
    }

    fn check(entries: &[(A, Counter)]) -> Result<(), Invalid> {
        check_sorted(entries.iter().map(|(a, _)| a))?;
        match entries.iter().position(|(_, n)| *n == 0) {
            Some(index) => Err(Invalid::ZeroCounter { index }),
            None => Ok(()),
        }
    }
}

impl<A: Ord + Clone> FromIterator<(A, Counter)> for VersionVector<A> {
    fn from_iter<I: IntoIterator<Item = (A, Counter)>>(iter: I) -> Self {
        Self::from_entries(iter)
    }
}

impl<'de, A: Deserialize<'de> + Ord> Deserialize<'de> for VersionVector<A> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entries = Vec::<(A, Counter)>::deserialize(deserializer)?;
        Self::try_from_raw(entries).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vv(pairs: &[(u8, Counter)]) -> VersionVector<u8> {
        VersionVector::from_entries(pairs.iter().copied())
    }

    #[test]
    fn from_entries_sorts_keeps_max_and_drops_zeros() {
        let v = vv(&[(3, 1), (1, 4), (3, 7), (2, 0), (1, 2)]);
        assert_eq!(v.iter().collect::<Vec<_>>(), vec![(&1, 4), (&3, 7)]);
        assert_eq!(v.get(&3), 7);
        assert_eq!(v.get(&2), 0);
        assert_eq!(v.len(), 2);
        assert!(!v.is_empty());
        assert!(VersionVector::<u8>::new().is_empty());
    }

    #[test]
    fn descends_is_pointwise_greater_or_equal() {
        let a = vv(&[(1, 2), (2, 1)]);
        let b = vv(&[(1, 1)]);
        let c = vv(&[(1, 1), (3, 1)]);
        assert!(a.descends(&b));
        assert!(!b.descends(&a));
        assert!(a.descends(&a));
        assert!(!a.descends(&c));
        assert!(!c.descends(&a));
        assert!(a.descends(&VersionVector::new()));
        assert!(!VersionVector::new().descends(&a));
    }

    #[test]
    fn merge_is_pointwise_max() {
        let mut a = vv(&[(1, 2), (3, 1)]);
        a.merge(&vv(&[(0, 5), (1, 1), (2, 2), (3, 4)]));
        assert_eq!(a, vv(&[(0, 5), (1, 2), (2, 2), (3, 4)]));
        let mut empty = VersionVector::new();
        empty.merge(&a);
        assert_eq!(empty, a);
    }

    #[test]
    fn deserialize_rejects_broken_invariants() {
        let decode = |pairs: &[(u8, Counter)]| {
            let bytes = postcard::to_allocvec(&pairs.to_vec()).unwrap();
            postcard::from_bytes::<VersionVector<u8>>(&bytes)
        };
        assert_eq!(decode(&[(1, 1), (2, 3)]).unwrap(), vv(&[(1, 1), (2, 3)]));
        assert!(decode(&[(2, 1), (1, 3)]).is_err());
        assert!(decode(&[(1, 1), (1, 3)]).is_err());
        assert!(decode(&[(1, 0)]).is_err());
        assert_eq!(
            VersionVector::try_from_raw(vec![(1u8, 1), (1, 2)]),
            Err(Invalid::DuplicateActor { index: 1 })
        );
        assert_eq!(
            VersionVector::try_from_raw(vec![(1u8, 1), (2, 0)]),
            Err(Invalid::ZeroCounter { index: 1 })
        );
    }

    #[test]
    fn serde_form_is_a_plain_sequence() {
        let v = vv(&[(1, 1), (2, 300)]);
        let bytes = postcard::to_allocvec(&v).unwrap();
        assert_eq!(
            bytes,
            postcard::to_allocvec(&vec![(1u8, 1u64), (2, 300)]).unwrap()
        );
    }
}
