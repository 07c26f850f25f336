//! A write-through cache of decoded cells, in front of the engine's point reads.
//!
//! Every write in a cluster reads its cells first: the coordinator for the blind write's snapshot
//! and again under the row lock, each replica to merge. Under a cluster write load those engine
//! reads were an eighth of a node's CPU (a memtable skiplist search and a decode each). Hot cells
//! are read again and again, so the store keeps the cells it has just read or written, decoded.
//!
//! **Why it cannot serve a stale cell.** The engine stays the truth; the cache only ever holds
//! what the engine holds, and only for keys whose stripe lock the writer holds:
//! - an entry is inserted or replaced only under its row's stripe *write* lock: either the value
//!   just read from the engine (which nobody can change while the lock is held), or, after the
//!   engine write succeeded, the value just written;
//! - when an engine write fails, every key of the batch is dropped from the cache, since what the
//!   engine holds afterwards is not known here;
//! - a reader without the lock ([`CellStore::read_cell`](super::CellStore::read_cell)) may take
//!   an entry but never inserts one, so a read can only see a value that was in the engine at some
//!   point during the read, exactly as an engine read can. (Between the engine write and the
//!   cache update it sees the value before the write, which nobody has acknowledged yet.)
//!
//! Scans (row reads, anti-entropy, streaming) go to the engine, which holds everything.
//!
//! All of this rests on one rule: **every write of the data column family goes through the
//! store** ([`CellStore::apply`](super::CellStore::apply) and
//! [`CellStore::delete_row`](super::CellStore::delete_row)), under the row locks. Code that wrote
//! cells to the engine directly (a bulk load, a streaming receiver) would leave entries the engine
//! no longer agrees with: it must go through the store, or clear the cache.
//!
//! **Eviction:** one shard per lock stripe, each with an even share of the byte budget, evicting
//! by CLOCK (second chance): a read or write marks an entry, and the hand passes over marked
//! entries once before it evicts them. That keeps hot cells at the cost of a bit per entry, without
//! an LRU list to update on every read.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::cell::{approx_cell_bytes, Cell};

/// What an entry costs beyond its key and values: the map slot, the clock slot and the cell's
/// own vectors, roughly.
const ENTRY_OVERHEAD: usize = 128;

/// The cache: one shard per lock stripe.
pub(crate) struct CellCache {
    shards: Box<[Mutex<Shard>]>,
    shard_budget: usize,
}

impl CellCache {
    /// A cache of about `budget` bytes over `shards` shards; 0 disables it.
    pub(crate) fn new(budget: usize, shards: usize) -> Self {
        let shard_budget = budget / shards.max(1);
        let shards = if shard_budget == 0 { 0 } else { shards };
        Self {
            shards: (0..shards).map(|_| Mutex::new(Shard::default())).collect(),
            shard_budget,
        }
    }

    /// The shard of stripe `stripe`; `None` if the cache is disabled.
    fn shard(&self, stripe: usize) -> Option<std::sync::MutexGuard<'_, Shard>> {
        // Only plain data lives under the lock, and every operation leaves it consistent before
        // anything that could panic, so a poisoned shard is still valid.
        self.shards
            .get(stripe)
            .map(|shard| shard.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The cached cell of `key` (in stripe `stripe`), if any: `Some(None)` caches "no cell".
    pub(crate) fn get(&self, stripe: usize, key: &[u8]) -> Option<Option<Cell>> {
        self.get_with(stripe, key, |cell| cell.cloned())
    }

    /// `f` of the cached cell of `key`, if cached, without copying the cell.
    pub(crate) fn get_with<R>(
        &self,
        stripe: usize,
        key: &[u8],
        f: impl FnOnce(Option<&Cell>) -> R,
    ) -> Option<R> {
        self.shard(stripe)?.get_with(key, f)
    }

    /// Caches what the engine holds for `key`. The caller holds the stripe's write lock.
    pub(crate) fn insert(&self, stripe: usize, key: &[u8], cell: Option<Cell>) {
        if let Some(mut shard) = self.shard(stripe) {
            shard.insert(key, cell, self.shard_budget);
        }
    }

    /// Forgets `key`. The caller holds the stripe's write lock.
    pub(crate) fn remove(&self, stripe: usize, key: &[u8]) {
        if let Some(mut shard) = self.shard(stripe) {
            shard.remove(key);
        }
    }

    /// Forgets every key in `[start, end)`, in every shard. The caller holds the write lock of
    /// every stripe whose rows may have keys there.
    pub(crate) fn remove_range(&self, start: &[u8], end: &[u8]) {
        for shard in self.shards.iter() {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            let doomed: Vec<Box<[u8]>> = shard
                .slots
                .iter()
                .filter(|slot| &*slot.key >= start && &*slot.key < end)
                .map(|slot| slot.key.clone())
                .collect();
            for key in doomed {
                shard.remove(&key);
            }
        }
    }

    /// What the cache holds and how it has served, summed over the shards.
    pub(crate) fn stats(&self) -> CellCacheStats {
        let mut stats = CellCacheStats::default();
        for shard in self.shards.iter() {
            let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            stats.hits += shard.hits;
            stats.misses += shard.misses;
            stats.entries += shard.slots.len() as u64;
            stats.bytes += shard.bytes as u64;
        }
        stats
    }

    #[cfg(test)]
    fn usage(&self) -> (usize, usize) {
        let stats = self.stats();
        (stats.entries as usize, stats.bytes as usize)
    }
}

/// How the cell cache is doing (see [`CellStore::cell_cache_stats`](super::CellStore::cell_cache_stats)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CellCacheStats {
    /// Lookups it answered, since the store opened.
    pub hits: u64,
    /// Lookups that went to the engine.
    pub misses: u64,
    /// Cells held now.
    pub entries: u64,
    /// Their estimated bytes (values, keys and overhead).
    pub bytes: u64,
}

struct Slot {
    key: Box<[u8]>,
    cell: Option<Cell>,
    cost: usize,
    /// Read or written since the clock hand last passed.
    referenced: bool,
}

#[derive(Default)]
struct Shard {
    /// Key to index in `slots`.
    index: HashMap<Box<[u8]>, usize>,
    slots: Vec<Slot>,
    hand: usize,
    bytes: usize,
    hits: u64,
    misses: u64,
}

fn cost(key: &[u8], cell: &Option<Cell>) -> usize {
    ENTRY_OVERHEAD + 2 * key.len() + cell.as_ref().map_or(0, approx_cell_bytes)
}

impl Shard {
    fn get_with<R>(&mut self, key: &[u8], f: impl FnOnce(Option<&Cell>) -> R) -> Option<R> {
        let Some(slot) = self.index.get(key).and_then(|&at| self.slots.get_mut(at)) else {
            self.misses += 1;
            return None;
        };
        slot.referenced = true;
        self.hits += 1;
        Some(f(slot.cell.as_ref()))
    }

    fn insert(&mut self, key: &[u8], cell: Option<Cell>, budget: usize) {
        let cost = cost(key, &cell);
        if cost > budget {
            // Larger than the whole shard: keeping it would evict everything else.
            self.remove(key);
            return;
        }
        if let Some(&at) = self.index.get(key) {
            if let Some(slot) = self.slots.get_mut(at) {
                self.bytes = self.bytes - slot.cost + cost;
                slot.cell = cell;
                slot.cost = cost;
                slot.referenced = true;
            }
        } else {
            self.bytes += cost;
            self.index.insert(key.into(), self.slots.len());
            self.slots.push(Slot {
                key: key.into(),
                cell,
                cost,
                referenced: false,
            });
        }
        self.evict_to(budget);
    }

    fn remove(&mut self, key: &[u8]) {
        if let Some(at) = self.index.remove(key) {
            self.take(at);
        }
    }

    /// Removes slot `at` (already out of the index), moving the last slot into its place.
    fn take(&mut self, at: usize) {
        if at >= self.slots.len() {
            return;
        }
        let slot = self.slots.swap_remove(at);
        self.bytes -= slot.cost;
        if let Some(moved) = self.slots.get(at) {
            if let Some(index) = self.index.get_mut(&moved.key) {
                *index = at;
            }
        }
    }

    /// Evicts by CLOCK until the shard fits `budget`. Each pass over a marked slot clears its
    /// mark, so this ends within two turns of the hand.
    fn evict_to(&mut self, budget: usize) {
        while self.bytes > budget && !self.slots.is_empty() {
            if self.hand >= self.slots.len() {
                self.hand = 0;
            }
            let slot = &mut self.slots[self.hand];
            if slot.referenced {
                slot.referenced = false;
                self.hand += 1;
            } else {
                let key = slot.key.clone();
                self.index.remove(&key);
                // The last slot moves under the hand, so the hand stays.
                self.take(self.hand);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cell::CellValue;

    fn cell(bytes: usize) -> Option<Cell> {
        Some(Cell::new().write(&Default::default(), &1, CellValue::value(vec![7; bytes], 0)))
    }

    #[test]
    fn holds_what_was_inserted_until_replaced_or_removed() {
        let cache = CellCache::new(1 << 20, 4);
        assert_eq!(cache.get(0, b"k"), None);
        cache.insert(0, b"k", cell(10));
        assert_eq!(cache.get(0, b"k"), Some(cell(10)));
        cache.insert(0, b"k", None);
        assert_eq!(cache.get(0, b"k"), Some(None), "no cell is cached too");
        cache.insert(0, b"k", cell(20));
        assert_eq!(cache.get(0, b"k"), Some(cell(20)));
        assert_eq!(cache.get(1, b"k"), None, "shards are separate");
        cache.remove(0, b"k");
        assert_eq!(cache.get(0, b"k"), None);
        assert_eq!(cache.usage(), (0, 0));
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (3, 3));
    }

    #[test]
    fn stays_within_budget_and_keeps_what_is_read() {
        let budget = 20 * cost(b"k000", &cell(100));
        let cache = CellCache::new(budget, 1);
        cache.insert(0, b"hot", cell(100));
        for i in 0..1000 {
            cache.insert(0, format!("k{i:03}").as_bytes(), cell(100));
            // Read on every round: the hand must keep passing it over.
            assert!(
                cache.get(0, b"hot").is_some(),
                "the hot cell was evicted at {i}"
            );
            let (entries, bytes) = cache.usage();
            assert!(bytes <= budget, "{bytes} > {budget}");
            assert!(entries <= 21);
        }
        let (entries, _) = cache.usage();
        assert!(
            entries >= 15,
            "evicted far more than needed: {entries} left"
        );
    }

    #[test]
    fn a_range_is_forgotten_in_every_shard() {
        let cache = CellCache::new(1 << 20, 4);
        for (stripe, key) in [(0, b"a1"), (1, b"b1"), (2, b"b2"), (3, b"c1"), (3, b"b3")] {
            cache.insert(stripe, key, cell(10));
        }
        cache.remove_range(b"b", b"c");
        assert!(cache.get(0, b"a1").is_some());
        assert!(cache.get(3, b"c1").is_some());
        for (stripe, key) in [(1, b"b1"), (2, b"b2"), (3, b"b3")] {
            assert_eq!(cache.get(stripe, key), None);
        }
        assert_eq!(cache.usage().0, 2);
    }

    #[test]
    fn disabled_or_oversized_caches_hold_nothing() {
        let off = CellCache::new(0, 1024);
        off.insert(3, b"k", cell(1));
        assert_eq!(off.get(3, b"k"), None);
        let small = CellCache::new(1024, 1);
        small.insert(0, b"k", cell(10));
        assert!(small.get(0, b"k").is_some());
        small.insert(0, b"k", cell(4096));
        assert_eq!(
            small.get(0, b"k"),
            None,
            "too large: dropped, not kept stale"
        );
    }
}
