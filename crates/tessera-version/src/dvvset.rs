//! Dotted version vector sets: the per-cell clock, ported from Riak's `dvvset.erl`.
//!
//! A clock is `(entries, anonymous)`. `entries` is sorted by actor (a replica
//! id); each entry holds the actor's counter and the values of its most recent
//! dots. `anonymous` holds values with no dot yet, which is how a client's write
//! arrives: [`DvvSet::from_context`] wraps the value with the causal context of
//! the read it follows, and [`DvvSet::update_against`] gives it a dot at the
//! coordinating replica while discarding every stored value that the context
//! covers. [`DvvSet::sync`] merges replicas' clocks and is commutative,
//! associative and idempotent, which is what makes read repair and
//! anti-entropy safe to repeat in any order.

use serde::{Deserialize, Deserializer, Serialize};

use crate::entry::{self, Entry};
use crate::invalid::{check_sorted, Invalid};
use crate::version_vector::VersionVector;

/// A dotted version vector set: the versions (siblings) of one cell and their causal history.
///
/// `A` is the actor (replica) id, `V` the stored value (for Tessera: bytes or a
/// tombstone). Equality compares entries exactly and the anonymous values as a
/// set, as in `dvvset.erl`.
#[derive(Clone, Debug, Serialize)]
pub struct DvvSet<A, V> {
    entries: Vec<Entry<A, V>>,
    anonymous: Vec<V>,
}

impl<A, V> Default for DvvSet<A, V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            anonymous: Vec::new(),
        }
    }
}

impl<A: Ord + Clone, V: Clone + PartialEq> DvvSet<A, V> {
    /// No history, no values.
    pub fn new() -> Self {
        Self::default()
    }

    /// `dvvset:new/1`: a value written with no causal context.
    pub fn from_value(value: V) -> Self {
        Self {
            entries: Vec::new(),
            anonymous: vec![value],
        }
    }

    /// `dvvset:new/2`: a value written by a client that had seen `context`.
    pub fn from_context(context: &VersionVector<A>, value: V) -> Self {
        Self {
            entries: context
                .iter()
                .map(|(actor, counter)| Entry {
                    actor: actor.clone(),
                    counter,
                    values: Vec::new(),
                })
                .collect(),
            anonymous: vec![value],
        }
    }

    /// `dvvset:update/3`: `self` is a client clock from [`from_value`](Self::from_value)
    /// or [`from_context`](Self::from_context), `server` is the replica's stored clock and
    /// `actor` the replica's id. Returns the new stored clock: the server's values that
    /// the client's context does not cover, plus the client's value under a new dot of
    /// `actor`.
    ///
    /// Riak requires exactly one anonymous value; here each anonymous value gets its own
    /// dot (none leaves only the synced history), so no input can panic.
    pub fn update_against(self, server: &Self, actor: &A) -> Self {
        let client = Self {
            entries: self.entries,
            anonymous: Vec::new(),
        };
        let mut synced = client.sync(server);
        for value in self.anonymous {
            entry::event(&mut synced.entries, actor, value);
        }
        synced
    }

    /// `dvvset:update/2`: gives the anonymous value(s) of `self` a dot of `actor`
    /// without consulting any stored clock.
    pub fn update(self, actor: &A) -> Self {
        let mut entries = self.entries;
        for value in self.anonymous {
            entry::event(&mut entries, actor, value);
        }
        Self {
            entries,
            anonymous: Vec::new(),
        }
    }

    /// The coordinator's write: a client that had seen `context` writes `value`;
    /// `self` is what this replica stores. Same as
    /// `DvvSet::from_context(context, value).update_against(self, actor)`.
    pub fn write(&self, context: &VersionVector<A>, actor: &A, value: V) -> Self {
        Self::from_context(context, value).update_against(self, actor)
    }

    /// `dvvset:sync/2`: merges two replicas' clocks. Commutative, associative and idempotent.
    pub fn sync(&self, other: &Self) -> Self {
        let anonymous = if self.less(other) {
            other.anonymous.clone()
        } else if other.less(self) {
            self.anonymous.clone()
        } else {
            let mut union: Vec<V> =
                Vec::with_capacity(self.anonymous.len() + other.anonymous.len());
            for value in self.anonymous.iter().chain(&other.anonymous) {
                if !union.contains(value) {
                    union.push(value.clone());
                }
            }
            union
        };
        Self {
            entries: entry::sync_entries(&self.entries, &other.entries),
            anonymous,
        }
    }

    /// `dvvset:sync/1`: folds [`sync`](Self::sync) over any number of clocks
    /// (the empty clock for none).
    pub fn sync_all<'a>(clocks: impl IntoIterator<Item = &'a Self>) -> Self
    where
        Self: 'a,
    {
        let mut clocks = clocks.into_iter();
        match clocks.next() {
            Some(first) => clocks.fold(first.clone(), |acc, clock| acc.sync(clock)),
            None => Self::new(),
        }
    }

    /// `dvvset:join/1`: the causal context of everything in the clock.
    pub fn join(&self) -> VersionVector<A> {
        VersionVector::from_sorted_unchecked(
            self.entries
                .iter()
                .filter(|e| e.counter > 0)
                .map(|e| (e.actor.clone(), e.counter))
                .collect(),
        )
    }

    /// Every sibling: entries in actor order (oldest first within an actor), then
    /// the anonymous values.
    pub fn values(&self) -> Vec<&V> {
        self.entries
            .iter()
            .flat_map(|e| e.values.iter().rev().flatten())
            .chain(&self.anonymous)
            .collect()
    }

    /// The siblings by value, in the order of [`values`](Self::values).
    pub fn into_values(self) -> Vec<V> {
        self.entries
            .into_iter()
            .flat_map(|e| e.values.into_iter().rev().flatten())
            .chain(self.anonymous)
            .collect()
    }

    /// Number of siblings (`dvvset:size/1`, not counting purged values).
    pub fn sibling_count(&self) -> usize {
        self.entries
            .iter()
            .map(|e| e.values.iter().flatten().count())
            .sum::<usize>()
            + self.anonymous.len()
    }

    /// No history and no values.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.anonymous.is_empty()
    }

    /// `dvvset:less/2`: `self`'s history is strictly dominated by `other`'s.
    pub fn less(&self, other: &Self) -> bool {
        entry::greater(&other.entries, &self.entries)
    }

    /// `self`'s history includes everything in `other`'s (equal or greater).
    pub fn descends(&self, other: &Self) -> bool {
        entry::descends(&self.entries, &other.entries)
    }

    /// Keeps only values for which `keep` is true (used to purge tombstones); the
    /// history is kept, so a purged value stays purged when synced with a replica
    /// that still holds it.
    pub fn retain_values(&mut self, mut keep: impl FnMut(&V) -> bool) {
        for e in &mut self.entries {
            for slot in &mut e.values {
                if slot.as_ref().is_some_and(|v| !keep(v)) {
                    *slot = None;
                }
            }
            e.trim();
        }
        self.anonymous.retain(|v| keep(v));
    }
}

impl<A: PartialEq, V: PartialEq> PartialEq for DvvSet<A, V> {
    fn eq(&self, other: &Self) -> bool {
        // Anonymous values are a set in dvvset.erl; their order depends on sync's argument order.
        self.entries == other.entries
            && self.anonymous.iter().all(|v| other.anonymous.contains(v))
            && other.anonymous.iter().all(|v| self.anonymous.contains(v))
    }
}

impl<A: Eq, V: Eq> Eq for DvvSet<A, V> {}

/// The wire shape of [`DvvSet`], decoded before its invariants are checked.
#[derive(Deserialize)]
#[serde(rename = "DvvSet")]
struct RawDvvSet<A, V> {
    entries: Vec<Entry<A, V>>,
    anonymous: Vec<V>,
}

impl<A: Ord, V> RawDvvSet<A, V> {
    fn check(&self) -> Result<(), Invalid> {
        check_sorted(self.entries.iter().map(|e| &e.actor))?;
        self.entries
            .iter()
            .enumerate()
            .try_for_each(|(index, e)| e.check(index))
    }
}

impl<'de, A: Deserialize<'de> + Ord, V: Deserialize<'de>> Deserialize<'de> for DvvSet<A, V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawDvvSet::<A, V>::deserialize(deserializer)?;
        raw.check().map_err(serde::de::Error::custom)?;
        Ok(Self {
            entries: raw.entries,
            anonymous: raw.anonymous,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Counter;

    type Clock = DvvSet<char, &'static str>;

    /// Builds a clock from Riak notation, e.g. `clock(&[('a', 2, &["v2"])], &[])`.
    fn clock(entries: &[(char, Counter, &[&'static str])], anonymous: &[&'static str]) -> Clock {
        DvvSet {
            entries: entries
                .iter()
                .map(|(actor, counter, values)| Entry {
                    actor: *actor,
                    counter: *counter,
                    values: values.iter().map(|v| Some(*v)).collect(),
                })
                .collect(),
            anonymous: anonymous.to_vec(),
        }
    }

    fn vv(pairs: &[(char, Counter)]) -> VersionVector<char> {
        VersionVector::from_entries(pairs.iter().copied())
    }

    // The cases below are dvvset.erl's own EUnit tests.

    #[test]
    fn riak_join_test() {
        let a = Clock::from_value("v1");
        let a1 = a.clone().update(&'a');
        let b = Clock::from_context(&a1.join(), "v2");
        let b1 = b.update_against(&a1, &'b');
        assert_eq!(a.join(), vv(&[]));
        assert_eq!(a1.join(), vv(&[('a', 1)]));
        assert_eq!(b1.join(), vv(&[('a', 1), ('b', 1)]));
    }

    #[test]
    fn riak_update_test() {
        let a0 = Clock::from_value("v1").update(&'a');
        let a1 = Clock::from_context(&a0.join(), "v2").update_against(&a0, &'a');
        let a2 = Clock::from_context(&a1.join(), "v3").update_against(&a1, &'b');
        let a3 = Clock::from_context(&a0.join(), "v4").update_against(&a1, &'b');
        let a4 = Clock::from_context(&a0.join(), "v5").update_against(&a1, &'a');
        assert_eq!(a0, clock(&[('a', 1, &["v1"])], &[]));
        assert_eq!(a1, clock(&[('a', 2, &["v2"])], &[]));
        assert_eq!(a2, clock(&[('a', 2, &[]), ('b', 1, &["v3"])], &[]));
        assert_eq!(a3, clock(&[('a', 2, &["v2"]), ('b', 1, &["v4"])], &[]));
        assert_eq!(a4, clock(&[('a', 3, &["v5", "v2"])], &[]));
    }

    #[test]
    fn riak_sync_test() {
        let x = clock(&[('x', 1, &[])], &[]);
        let a = Clock::from_value("v1").update(&'a');
        let y = Clock::from_value("v2").update(&'b');
        let a1 = Clock::from_context(&a.join(), "v2").update(&'a');
        let a3 = Clock::from_context(&a1.join(), "v3").update_against(&a1, &'b');
        let a4 = Clock::from_context(&a1.join(), "v3").update_against(&a1, &'c');
        let w = clock(&[('a', 1, &[])], &[]);
        let z = clock(&[('a', 2, &["v2", "v1"])], &[]);
        assert_eq!(w.sync(&z), clock(&[('a', 2, &["v2"])], &[]));
        assert_eq!(w.sync(&z), z.sync(&w));
        assert_eq!(a.sync(&a1), a1.sync(&a));
        assert_eq!(a4.sync(&a3), a3.sync(&a4));
        assert_eq!(
            a4.sync(&a3),
            clock(&[('a', 2, &[]), ('b', 1, &["v3"]), ('c', 1, &["v3"])], &[])
        );
        assert_eq!(x.sync(&a), clock(&[('a', 1, &["v1"]), ('x', 1, &[])], &[]));
        assert_eq!(x.sync(&a), a.sync(&x));
        assert_eq!(
            a.sync(&y),
            clock(&[('a', 1, &["v1"]), ('b', 1, &["v2"])], &[])
        );
        assert_eq!(y.sync(&a), a.sync(&y));
        assert_eq!(Clock::sync_all([&w, &z]), clock(&[('a', 2, &["v2"])], &[]));
        assert_eq!(Clock::sync_all([]), Clock::new());
    }

    #[test]
    fn riak_less_test() {
        let a = Clock::from_value("v1").update(&'a');
        let b = Clock::from_context(&a.join(), "v2").update(&'a');
        let b2 = Clock::from_context(&a.join(), "v2").update(&'b');
        let b3 = Clock::from_context(&a.join(), "v2").update(&'z');
        let c = Clock::from_context(&b.join(), "v3").update_against(&a, &'c');
        let d = Clock::from_context(&c.join(), "v4").update_against(&b2, &'d');
        assert!(a.less(&b));
        assert!(a.less(&c));
        assert!(b.less(&c));
        assert!(b.less(&d));
        assert!(b2.less(&d));
        assert!(a.less(&d));
        assert!(!b2.less(&c));
        assert!(!b.less(&b2));
        assert!(!b2.less(&b));
        assert!(!a.less(&a));
        assert!(!c.less(&c));
        assert!(!d.less(&b2));
        assert!(!b3.less(&d));
    }

    #[test]
    fn riak_values_test() {
        let a = clock(&[('a', 4, &["v5", "v0"]), ('c', 1, &["v3"])], &["v0"]);
        assert_eq!(a.values(), vec![&"v0", &"v5", &"v3", &"v0"]);
        assert_eq!(a.sibling_count(), 4);
        assert_eq!(a.clone().into_values(), vec!["v0", "v5", "v3", "v0"]);
    }

    #[test]
    fn anonymous_values_follow_less_then_union() {
        let older = clock(&[('a', 1, &[])], &["x", "y"]);
        let newer = clock(&[('a', 2, &[])], &["z"]);
        assert_eq!(older.sync(&newer).anonymous, vec!["z"]);
        assert_eq!(newer.sync(&older).anonymous, vec!["z"]);
        let concurrent = clock(&[('b', 1, &[])], &["y", "w"]);
        let merged = older.sync(&concurrent);
        assert_eq!(merged.anonymous, vec!["x", "y", "w"]);
        assert_eq!(merged, concurrent.sync(&older));
    }

    #[test]
    fn write_is_from_context_then_update_against() {
        let stored = clock(&[('a', 2, &["v2", "v1"]), ('b', 1, &["w1"])], &[]);
        let ctx = vv(&[('a', 1)]);
        let direct = stored.write(&ctx, &'b', "w2");
        let spelled = Clock::from_context(&ctx, "w2").update_against(&stored, &'b');
        assert_eq!(direct, spelled);
        // v1 was seen and is superseded; v2 and w1 were not and survive.
        assert_eq!(direct.values(), vec![&"v2", &"w1", &"w2"]);
        assert_eq!(direct.join(), vv(&[('a', 2), ('b', 2)]));
    }

    #[test]
    fn update_against_with_zero_or_many_anonymous_values_does_not_panic() {
        let stored = clock(&[('a', 1, &["v1"])], &[]);
        let none = clock(&[('a', 1, &[])], &[]);
        assert_eq!(
            none.update_against(&stored, &'a'),
            clock(&[('a', 1, &[])], &[])
        );
        let many = clock(&[], &["x", "y"]);
        assert_eq!(
            many.update_against(&stored, &'a'),
            clock(&[('a', 3, &["y", "x", "v1"])], &[])
        );
    }

    #[test]
    fn empty_and_default() {
        assert!(Clock::new().is_empty());
        assert_eq!(Clock::default(), Clock::new());
        assert!(!Clock::from_value("v").is_empty());
        assert!(!clock(&[('a', 1, &[])], &[]).is_empty());
        assert_eq!(Clock::new().sibling_count(), 0);
    }

    #[test]
    fn descends_and_less_agree() {
        let a = clock(&[('a', 2, &["v2"])], &[]);
        let b = clock(&[('a', 2, &[]), ('b', 1, &["w"])], &[]);
        let c = clock(&[('c', 1, &["u"])], &[]);
        assert!(b.descends(&a) && !a.descends(&b) && a.less(&b));
        assert!(a.descends(&a) && !a.less(&a));
        assert!(!a.descends(&c) && !c.descends(&a));
        assert!(a.descends(&Clock::new()));
    }

    #[test]
    fn retain_values_purges_and_keeps_history() {
        let mut c = clock(
            &[('a', 3, &["v3", "t2", "v1"]), ('b', 1, &["t1"])],
            &["t0", "x"],
        );
        let before = c.join();
        c.retain_values(|v| !v.starts_with('t'));
        assert_eq!(c.values(), vec![&"v1", &"v3", &"x"]);
        assert_eq!(c.join(), before);
        // A replica that still holds the tombstones cannot bring them back.
        let other = clock(&[('a', 3, &["v3", "t2", "v1"]), ('b', 1, &["t1"])], &[]);
        assert_eq!(c.sync(&other).values(), vec![&"v1", &"v3", &"x"]);
        assert_eq!(other.sync(&c).values(), vec![&"v1", &"v3", &"x"]);
    }

    #[test]
    fn postcard_round_trip_and_validation() {
        let c: DvvSet<u8, u16> =
            DvvSet::from_value(7u16)
                .update(&1)
                .write(&VersionVector::new(), &0, 9);
        let bytes = postcard::to_allocvec(&c).unwrap();
        assert_eq!(postcard::from_bytes::<DvvSet<u8, u16>>(&bytes).unwrap(), c);

        let bad = DvvSet::<u8, u16> {
            entries: vec![
                Entry {
                    actor: 2,
                    counter: 1,
                    values: vec![],
                },
                Entry {
                    actor: 1,
                    counter: 1,
                    values: vec![],
                },
            ],
            anonymous: vec![],
        };
        let bytes = postcard::to_allocvec(&bad).unwrap();
        assert!(postcard::from_bytes::<DvvSet<u8, u16>>(&bytes).is_err());
        let bad = DvvSet::<u8, u16> {
            entries: vec![Entry {
                actor: 1,
                counter: 1,
                values: vec![Some(1), Some(2)],
            }],
            anonymous: vec![],
        };
        let bytes = postcard::to_allocvec(&bad).unwrap();
        assert!(postcard::from_bytes::<DvvSet<u8, u16>>(&bytes).is_err());
    }
}
