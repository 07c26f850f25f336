//! Per-actor entries of a DVVSet and the list operations of `dvvset.erl`
//! (`sync2`, `merge`, `event`, `greater`) that work on them.
//!
//! An entry `(i, n, [v_n, v_{n-1}, ..])` says that actor `i` issued dots
//! `1..=n`, and that the most recent `len` of them still carry values (newest
//! first, as in Riak). Dots below `n - len` have been superseded.
//!
//! One extension over Riak: a value slot can be *purged* (`None`) by
//! [`DvvSet::retain_values`], which needs to drop, say, a tombstone in the
//! middle of an entry without renumbering the dots of the values around it.
//! [`merge`] treats a purged slot like a superseded dot (removal wins), and a
//! canonical entry never ends in a purged slot (a purged oldest slot is the same
//! as a shorter list). Without purged slots `merge` is exactly Riak's.
//!
//! [`DvvSet::retain_values`]: crate::DvvSet::retain_values

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::invalid::Invalid;
use crate::Counter;

/// One actor's counter and the values of its most recent dots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry<A, V> {
    pub(crate) actor: A,
    pub(crate) counter: Counter,
    /// Slot `k` holds the value of dot `counter - k`; `None` marks a purged value.
    pub(crate) values: Vec<Option<V>>,
}

impl<A, V> Entry<A, V> {
    /// Dots up to and including this one carry no value here.
    /// Saturating so that even a corrupt entry cannot underflow.
    fn lower(&self) -> Counter {
        self.counter.saturating_sub(len_u64(self.values.len()))
    }

    /// Drops purged slots at the old end, which carry no information there.
    pub(crate) fn trim(&mut self) {
        while matches!(self.values.last(), Some(None)) {
            self.values.pop();
        }
    }

    /// Checks one decoded entry (the caller checks actor order).
    pub(crate) fn check(&self, index: usize) -> Result<(), Invalid> {
        if self.counter == 0 {
            return Err(Invalid::ZeroCounter { index });
        }
        if len_u64(self.values.len()) > self.counter {
            return Err(Invalid::TooManyValues {
                index,
                values: self.values.len(),
                counter: self.counter,
            });
        }
        if matches!(self.values.last(), Some(None)) {
            return Err(Invalid::TrailingPurgedSlot { index });
        }
        Ok(())
    }
}

fn len_u64(len: usize) -> Counter {
    Counter::try_from(len).unwrap_or(Counter::MAX)
}

/// `dvvset:merge/5` for two entries of the same actor.
///
/// The result keeps the higher counter and the values of the dots above the
/// higher of the two lower bounds, taken from the entry with the higher counter
/// (the first one on a tie), which is Riak's `sublist` rule. A dot purged in
/// either entry stays purged.
pub(crate) fn merge<A: Clone, V: Clone>(e1: &Entry<A, V>, e2: &Entry<A, V>) -> Entry<A, V> {
    let (base, other) = if e1.counter >= e2.counter {
        (e1, e2)
    } else {
        (e2, e1)
    };
    let lower = e1.lower().max(e2.lower());
    // `lower >= base.lower()`, so this never exceeds the base list.
    let keep = usize::try_from(base.counter - lower)
        .unwrap_or(usize::MAX)
        .min(base.values.len());
    let other_lower = other.lower();
    let values = base.values[..keep]
        .iter()
        .enumerate()
        .map(|(k, slot)| {
            let dot = base.counter - len_u64(k);
            let purged_in_other = dot <= other.counter
                && dot > other_lower
                && usize::try_from(other.counter - dot)
                    .ok()
                    .and_then(|i| other.values.get(i))
                    .is_some_and(Option::is_none);
            if purged_in_other {
                None
            } else {
                slot.clone()
            }
        })
        .collect();
    let mut merged = Entry {
        actor: base.actor.clone(),
        counter: base.counter,
        values,
    };
    merged.trim();
    merged
}

/// `dvvset:sync2/2`: merges two actor-sorted entry lists.
pub(crate) fn sync_entries<A: Ord + Clone, V: Clone>(
    left: &[Entry<A, V>],
    right: &[Entry<A, V>],
) -> Vec<Entry<A, V>> {
    let mut out = Vec::with_capacity(left.len().max(right.len()));
    let (mut l, mut r) = (left.iter().peekable(), right.iter().peekable());
    loop {
        let order = match (l.peek(), r.peek()) {
            (Some(a), Some(b)) => a.actor.cmp(&b.actor),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => break,
        };
        match order {
            Ordering::Less => out.extend(l.next().cloned()),
            Ordering::Greater => out.extend(r.next().cloned()),
            Ordering::Equal => {
                if let (Some(a), Some(b)) = (l.next(), r.next()) {
                    out.push(merge(a, b));
                }
            }
        }
    }
    out
}

/// `dvvset:event/3`: a new dot for `actor` carrying `value`.
pub(crate) fn event<A: Ord + Clone, V>(entries: &mut Vec<Entry<A, V>>, actor: &A, value: V) {
    match entries.binary_search_by(|e| e.actor.cmp(actor)) {
        Ok(i) => {
            let entry = &mut entries[i];
            // Saturating: 2^64 writes cannot happen, and a corrupt counter must not panic.
            entry.counter = entry.counter.saturating_add(1);
            entry.values.insert(0, Some(value));
        }
        Err(i) => entries.insert(
            i,
            Entry {
                actor: actor.clone(),
                counter: 1,
                values: vec![Some(value)],
            },
        ),
    }
}

/// `dvvset:greater/3` with `Strict = false`: true when `c1` has seen everything
/// `c2` has and strictly more.
pub(crate) fn greater<A: Ord, V>(c1: &[Entry<A, V>], c2: &[Entry<A, V>]) -> bool {
    let (mut i, mut j, mut strict) = (0, 0, false);
    loop {
        match (c1.get(i), c2.get(j)) {
            (None, None) => return strict,
            (Some(_), None) => return true,
            (None, Some(_)) => return false,
            (Some(a), Some(b)) => match a.actor.cmp(&b.actor) {
                Ordering::Equal => {
                    match a.counter.cmp(&b.counter) {
                        Ordering::Less => return false,
                        Ordering::Greater => strict = true,
                        Ordering::Equal => {}
                    }
                    i += 1;
                    j += 1;
                }
                Ordering::Less => {
                    strict = true;
                    i += 1;
                }
                Ordering::Greater => return false,
            },
        }
    }
}

/// True when `c1`'s history includes `c2`'s (pointwise `>=` on counters).
pub(crate) fn descends<A: Ord, V>(c1: &[Entry<A, V>], c2: &[Entry<A, V>]) -> bool {
    let mut mine = c1.iter().peekable();
    c2.iter().all(|theirs| {
        while mine.next_if(|e| e.actor < theirs.actor).is_some() {}
        mine.next_if(|e| e.actor == theirs.actor)
            .is_some_and(|e| e.counter >= theirs.counter)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(counter: Counter, values: &[Option<char>]) -> Entry<u8, char> {
        Entry {
            actor: 0,
            counter,
            values: values.to_vec(),
        }
    }

    /// The reference rule from the brief, on plain lists.
    fn riak_merge(n1: Counter, l1: &[char], n2: Counter, l2: &[char]) -> (Counter, Vec<char>) {
        let (ll1, ll2) = (l1.len() as Counter, l2.len() as Counter);
        if n1 >= n2 {
            if n1 - ll1 >= n2 - ll2 {
                (n1, l1.to_vec())
            } else {
                (n1, l1[..(n1 - n2 + ll2) as usize].to_vec())
            }
        } else if n2 - ll2 >= n1 - ll1 {
            (n2, l2.to_vec())
        } else {
            (n2, l2[..(n2 - n1 + ll1) as usize].to_vec())
        }
    }

    #[test]
    fn merge_matches_riak_without_purged_slots() {
        let lists: Vec<(Counter, Vec<char>)> = vec![
            (1, vec![]),
            (1, vec!['a']),
            (2, vec!['b']),
            (2, vec!['b', 'a']),
            (3, vec![]),
            (3, vec!['c']),
            (3, vec!['c', 'b']),
            (3, vec!['c', 'b', 'a']),
            (5, vec!['e', 'd']),
        ];
        for (n1, l1) in &lists {
            for (n2, l2) in &lists {
                let as_entry =
                    |n: Counter, l: &[char]| e(n, &l.iter().map(|c| Some(*c)).collect::<Vec<_>>());
                let got = merge(&as_entry(*n1, l1), &as_entry(*n2, l2));
                let (n, l) = riak_merge(*n1, l1, *n2, l2);
                assert_eq!(got.counter, n, "{n1} {l1:?} / {n2} {l2:?}");
                assert_eq!(got.values, l.into_iter().map(Some).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn merge_examples_from_dvvset_tests() {
        // sync([W, Z]) with W = {a,1,[]}, Z = {a,2,[v2,v1]} keeps only v2.
        let m = merge(&e(1, &[]), &e(2, &[Some('2'), Some('1')]));
        assert_eq!(m, e(2, &[Some('2')]));
    }

    #[test]
    fn purged_slots_win_and_are_trimmed() {
        let full = e(3, &[Some('c'), Some('b'), Some('a')]);
        let middle_purged = e(3, &[Some('c'), None, Some('a')]);
        assert_eq!(merge(&full, &middle_purged), middle_purged);
        assert_eq!(merge(&middle_purged, &full), middle_purged);
        let oldest_purged = e(3, &[Some('c'), Some('b')]);
        assert_eq!(merge(&full, &oldest_purged), oldest_purged);
        // A newer dot elsewhere does not resurrect a purged one.
        let newer = e(4, &[Some('d'), Some('c'), Some('b'), Some('a')]);
        assert_eq!(
            merge(&middle_purged, &newer),
            e(4, &[Some('d'), Some('c'), None, Some('a')])
        );
        let all_purged = e(2, &[None, Some('a')]);
        assert_eq!(merge(&all_purged, &e(2, &[Some('b')])), e(2, &[]));
    }

    #[test]
    fn event_prepends_or_inserts_in_actor_order() {
        let mut entries: Vec<Entry<u8, char>> = Vec::new();
        event(&mut entries, &5, 'x');
        event(&mut entries, &1, 'y');
        event(&mut entries, &5, 'z');
        let shape: Vec<_> = entries
            .iter()
            .map(|e| (e.actor, e.counter, e.values.clone()))
            .collect();
        assert_eq!(
            shape,
            vec![(1, 1, vec![Some('y')]), (5, 2, vec![Some('z'), Some('x')])]
        );
    }

    #[test]
    fn check_rejects_bad_entries() {
        assert_eq!(e(0, &[]).check(3), Err(Invalid::ZeroCounter { index: 3 }));
        assert_eq!(
            e(1, &[Some('a'), Some('b')]).check(0),
            Err(Invalid::TooManyValues {
                index: 0,
                values: 2,
                counter: 1
            })
        );
        assert_eq!(
            e(2, &[Some('a'), None]).check(1),
            Err(Invalid::TrailingPurgedSlot { index: 1 })
        );
        assert_eq!(e(2, &[None, Some('a')]).check(0), Ok(()));
    }
}
