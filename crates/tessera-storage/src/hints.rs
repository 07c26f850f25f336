//! Hinted handoff records: writes kept for a replica that could not take them.
//!
//! When a replica is down, a write's coordinator hands the replica's copy to a
//! stand-in node (sloppy quorum), which stores it here as a [`Hint`] and
//! delivers it once the replica is back. Hints live in their own column
//! family, keyed so that one target's hints are one contiguous range, oldest
//! first:
//!
//! ```text
//! target length (u16 BE) | target | stored_at_ms (u64 BE) | sequence (u64 BE)
//! ```
//!
//! - The length prefix keeps a target whose name is a prefix of another's
//!   ("n1" and "n10") from interleaving with it.
//! - Time before the sequence makes delivery oldest-first and expiry a prefix
//!   of the range; the sequence only keeps keys unique within a millisecond
//!   (it is restored from the stored maximum on open, so it never repeats).
//!
//! Every write is durable on return (one engine batch, in the WAL). The
//! number of hints per target is bounded, so a node that stays down for long
//! cannot fill the stand-in's disk: past the bound, storing fails with
//! [`StorageError::HintLimit`] and the write counts that replica as failed.
//!
//! A [`HintStore`] owns all of this over an engine it shares with the node's
//! [`CellStore`](crate::CellStore); the two use different column families and
//! neither knows of the other. Counts per target are kept in memory (loaded by
//! one scan on first use and updated by every hint operation), so checking the
//! bound does not scan up to 100,000 keys per write. That is only exact while
//! hints are written through one [`HintStore`] per engine, which is how a node
//! is built.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

use crate::cell::Cell;
use crate::codec::{decode_versioned, encode_versioned};
use crate::engine::{ColumnFamily, Engine, WriteBatch};
use crate::error::{hex_key, StorageError};
use crate::keys::{key_successor, prefix_successor, validate_column, RowKey, TableId};

/// Default bound on hints stored for one target node.
pub const DEFAULT_MAX_HINTS_PER_TARGET: u64 = 100_000;

/// Longest target node id, in bytes (its length is stored as a u16).
pub const MAX_TARGET_LEN: usize = u16::MAX as usize;

/// Most hint records read from the engine in one scan.
const SCAN_CHUNK: usize = 256;

/// A write kept for `target`, to be merged into its store when it is back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hint {
    /// The replica the cells are for.
    pub target: String,
    /// The row.
    pub row: RowKey,
    /// `(column, cell)` pairs, as the coordinator sent them (whole sibling sets).
    pub cells: Vec<(Vec<u8>, Cell)>,
    /// When this node stored the hint, in ms since the Unix epoch (for expiry).
    pub stored_at_ms: u64,
}

/// Where a hint is stored; hints of one target sort oldest first.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HintKey {
    /// The replica the hint is for.
    pub target: String,
    /// [`Hint::stored_at_ms`].
    pub stored_at_ms: u64,
    /// Unique among this store's hints.
    pub sequence: u64,
}

/// Hints stored for one target.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HintTargetStats {
    /// The target node.
    pub target: String,
    /// Number of hints.
    pub count: u64,
    /// Bytes of their keys and values.
    pub bytes: u64,
}

/// The stored form of a hint. Storage types stay free of serde, so the row is
/// spelled out here: adding a field to [`RowKey`] must not silently change it.
#[derive(Serialize, Deserialize)]
struct HintRecord {
    target: String,
    table: TableId,
    partition: u16,
    token: u64,
    key: Vec<u8>,
    cells: Vec<(Vec<u8>, Cell)>,
    stored_at_ms: u64,
}

fn validate_target(target: &str) -> Result<(), StorageError> {
    if target.is_empty() || target.len() > MAX_TARGET_LEN {
        return Err(StorageError::InvalidBatch {
            reason: format!(
                "a hint target must be 1 to {MAX_TARGET_LEN} bytes long, not {}",
                target.len()
            ),
        });
    }
    Ok(())
}

/// `length | target`: the prefix of every key of one target's hints.
fn target_prefix(target: &str) -> Result<Vec<u8>, StorageError> {
    validate_target(target)?;
    let len = u16::try_from(target.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(2 + target.len() + 16);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(target.as_bytes());
    Ok(out)
}

/// `[start, end)` of one target's hints stored before `before_ms` (all of them for `u64::MAX`).
fn target_range(target: &str, before_ms: Option<u64>) -> Result<(Vec<u8>, Vec<u8>), StorageError> {
    let start = target_prefix(target)?;
    let end = match before_ms {
        Some(ms) => {
            let mut end = start.clone();
            end.extend_from_slice(&ms.to_be_bytes());
            end
        }
        None => prefix_successor(&start),
    };
    Ok((start, end))
}

impl HintKey {
    /// The key's bytes in the `hints` column family.
    pub fn encode(&self) -> Result<Vec<u8>, StorageError> {
        let mut out = target_prefix(&self.target)?;
        out.extend_from_slice(&self.stored_at_ms.to_be_bytes());
        out.extend_from_slice(&self.sequence.to_be_bytes());
        Ok(out)
    }

    /// Parses what [`HintKey::encode`] produced.
    pub fn decode(key: &[u8]) -> Result<Self, StorageError> {
        let corrupt = |reason: String| StorageError::Corrupt {
            what: "hint key",
            key: hex_key(key),
            reason,
        };
        let Some((len, rest)) = key.split_first_chunk::<2>() else {
            return Err(corrupt(format!(
                "{} bytes is too short for a length",
                key.len()
            )));
        };
        let len = usize::from(u16::from_be_bytes(*len));
        if rest.len() != len + 16 {
            return Err(corrupt(format!(
                "a {len}-byte target needs {} more bytes, found {}",
                len + 16,
                rest.len()
            )));
        }
        let (target, rest) = rest.split_at(len);
        let target = String::from_utf8(target.to_vec())
            .map_err(|e| corrupt(format!("target is not UTF-8: {}", e.utf8_error())))?;
        let (time, sequence) = rest.split_at(8);
        let mut stored = [0u8; 8];
        stored.copy_from_slice(time);
        let mut seq = [0u8; 8];
        seq.copy_from_slice(sequence);
        Ok(Self {
            target,
            stored_at_ms: u64::from_be_bytes(stored),
            sequence: u64::from_be_bytes(seq),
        })
    }
}

fn encode_hint(hint: &Hint) -> Result<Vec<u8>, StorageError> {
    encode_versioned(
        "hint",
        &HintRecord {
            target: hint.target.clone(),
            table: hint.row.table,
            partition: hint.row.partition,
            token: hint.row.token,
            key: hint.row.key.clone(),
            cells: hint.cells.clone(),
            stored_at_ms: hint.stored_at_ms,
        },
    )
}

fn decode_hint(key: &[u8], bytes: &[u8]) -> Result<Hint, StorageError> {
    let record: HintRecord = decode_versioned("hint", key, bytes)?;
    Ok(Hint {
        target: record.target,
        row: RowKey::new(record.table, record.partition, record.token, record.key),
        cells: record.cells,
        stored_at_ms: record.stored_at_ms,
    })
}

/// In-memory counts of the `hints` column family.
#[derive(Debug, Default)]
struct Counts {
    /// target -> (hints, bytes)
    targets: BTreeMap<String, (u64, u64)>,
    next_sequence: u64,
}

impl Counts {
    fn add(&mut self, target: &str, bytes: u64) {
        let entry = self.targets.entry(target.to_owned()).or_default();
        entry.0 += 1;
        entry.1 += bytes;
    }

    fn remove(&mut self, target: &str, count: u64, bytes: u64) {
        if let Some(entry) = self.targets.get_mut(target) {
            entry.0 = entry.0.saturating_sub(count);
            entry.1 = entry.1.saturating_sub(bytes);
            if entry.0 == 0 {
                self.targets.remove(target);
            }
        }
    }
}

/// The hints a node keeps for other replicas, over an engine shared with its cell store.
pub struct HintStore<E: Engine> {
    engine: Arc<E>,
    max_per_target: u64,
    // None until first use. Held across each hint operation's engine calls so
    // counts and the bound stay exact under concurrent hint writers.
    counts: Mutex<Option<Counts>>,
}

impl<E: Engine> std::fmt::Debug for HintStore<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HintStore")
            .field("max_per_target", &self.max_per_target)
            .finish_non_exhaustive()
    }
}

/// Scans the whole `hints` column family once: counts and the largest sequence.
fn load_counts<E: Engine>(engine: &E) -> Result<Counts, StorageError> {
    let mut counts = Counts::default();
    let mut start = Vec::new();
    loop {
        let pairs = engine.scan(ColumnFamily::Hints, &start, None, SCAN_CHUNK)?;
        let exhausted = pairs.len() < SCAN_CHUNK;
        for (key, value) in &pairs {
            let parsed = HintKey::decode(key)?;
            counts.add(&parsed.target, (key.len() + value.len()) as u64);
            counts.next_sequence = counts.next_sequence.max(parsed.sequence.saturating_add(1));
        }
        match pairs.last() {
            Some((last, _)) if !exhausted => start = key_successor(last),
            _ => return Ok(counts),
        }
    }
}

impl<E: Engine> HintStore<E> {
    /// The hints stored in `engine` (an engine, or an `Arc` of one shared with the cell store),
    /// bounded at [`DEFAULT_MAX_HINTS_PER_TARGET`] per target. Given an `Arc`, name the engine
    /// type (`HintStore::<E>::new`), as for [`CellStore::new`](crate::CellStore::new).
    pub fn new(engine: impl Into<Arc<E>>) -> Self {
        Self {
            engine: engine.into(),
            max_per_target: DEFAULT_MAX_HINTS_PER_TARGET,
            counts: Mutex::new(None),
        }
    }

    /// The same store, bounding hints per target at `max` instead.
    pub fn with_max_per_target(mut self, max: u64) -> Self {
        self.max_per_target = max;
        self
    }

    /// The bound on hints stored per target.
    pub fn max_per_target(&self) -> u64 {
        self.max_per_target
    }

    /// The engine underneath.
    pub fn engine(&self) -> &Arc<E> {
        &self.engine
    }

    // Only counts live under the lock, and every change to them happens after
    // the engine call succeeded, so a poisoned lock still guards valid counts.
    fn lock_counts(&self) -> Result<MutexGuard<'_, Option<Counts>>, StorageError> {
        let mut guard = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if guard.is_none() {
            *guard = Some(load_counts(&*self.engine)?);
        }
        Ok(guard)
    }

    /// Stores a hint durably (in the WAL on return) and returns its key.
    ///
    /// Fails with [`StorageError::HintLimit`] when `hint.target` already has
    /// [`max_per_target`](Self::max_per_target) hints here.
    pub fn store(&self, hint: &Hint) -> Result<HintKey, StorageError> {
        validate_target(&hint.target)?;
        hint.row.validate()?;
        for (column, _) in &hint.cells {
            validate_column(column)?;
        }
        let value = encode_hint(hint)?;
        let mut guard = self.lock_counts()?;
        let Some(counts) = guard.as_mut() else {
            return Err(StorageError::Engine {
                op: "store_hint",
                message: "hint counts were not loaded".to_owned(),
            });
        };
        let count = counts.targets.get(&hint.target).map_or(0, |c| c.0);
        let max = self.max_per_target;
        if count >= max {
            return Err(StorageError::HintLimit {
                target: hint.target.clone(),
                count,
                max,
            });
        }
        let key = HintKey {
            target: hint.target.clone(),
            stored_at_ms: hint.stored_at_ms,
            sequence: counts.next_sequence,
        };
        let encoded = key.encode()?;
        let bytes = (encoded.len() + value.len()) as u64;
        let mut batch = WriteBatch::new();
        batch.put(ColumnFamily::Hints, encoded, value);
        self.engine.write(batch)?;
        counts.next_sequence += 1;
        counts.add(&hint.target, bytes);
        Ok(key)
    }

    /// Up to `limit` hints for `target`, oldest first: the next batch to deliver.
    pub fn oldest(&self, target: &str, limit: usize) -> Result<Vec<(HintKey, Hint)>, StorageError> {
        let (start, end) = target_range(target, None)?;
        self.engine
            .scan(ColumnFamily::Hints, &start, Some(&end), limit)?
            .into_iter()
            .map(|(key, value)| Ok((HintKey::decode(&key)?, decode_hint(&key, &value)?)))
            .collect()
    }

    /// Deletes these hints (delivered ones) in one batch; returns how many were stored.
    pub fn delete(&self, keys: &[HintKey]) -> Result<u64, StorageError> {
        let mut guard = self.lock_counts()?;
        let mut batch = WriteBatch::new();
        let mut removed: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for key in keys {
            let encoded = key.encode()?;
            // Sizes keep the byte counts exact; a key already gone is skipped.
            let Some(value) = self.engine.get(ColumnFamily::Hints, &encoded)? else {
                continue;
            };
            let entry = removed.entry(key.target.as_str()).or_default();
            entry.0 += 1;
            entry.1 += (encoded.len() + value.len()) as u64;
            batch.delete(ColumnFamily::Hints, encoded);
        }
        if batch.is_empty() {
            return Ok(0);
        }
        self.engine.write(batch)?;
        let mut total = 0;
        if let Some(counts) = guard.as_mut() {
            for (target, (count, bytes)) in removed {
                counts.remove(target, count, bytes);
                total += count;
            }
        }
        Ok(total)
    }

    /// Every target with hints stored here, in name order.
    pub fn targets(&self) -> Result<Vec<HintTargetStats>, StorageError> {
        let guard = self.lock_counts()?;
        Ok(guard
            .iter()
            .flat_map(|counts| counts.targets.iter())
            .map(|(target, (count, bytes))| HintTargetStats {
                target: target.clone(),
                count: *count,
                bytes: *bytes,
            })
            .collect())
    }

    /// Hints stored for `target`.
    pub fn count(&self, target: &str) -> Result<u64, StorageError> {
        let guard = self.lock_counts()?;
        Ok(guard
            .as_ref()
            .and_then(|counts| counts.targets.get(target))
            .map_or(0, |c| c.0))
    }

    /// Deletes every hint older than `max_age_ms` at `now_ms` (stored before
    /// `now_ms - max_age_ms`), and returns what was deleted per target.
    pub fn purge_expired(
        &self,
        now_ms: u64,
        max_age_ms: u64,
    ) -> Result<Vec<HintTargetStats>, StorageError> {
        let cutoff = now_ms.saturating_sub(max_age_ms);
        let mut guard = self.lock_counts()?;
        let targets: Vec<String> = guard
            .iter()
            .flat_map(|counts| counts.targets.keys().cloned())
            .collect();
        let mut purged = Vec::new();
        for target in targets {
            let (mut start, end) = target_range(&target, Some(cutoff))?;
            let mut stats = HintTargetStats {
                target: target.clone(),
                ..HintTargetStats::default()
            };
            loop {
                let pairs =
                    self.engine
                        .scan(ColumnFamily::Hints, &start, Some(&end), SCAN_CHUNK)?;
                let exhausted = pairs.len() < SCAN_CHUNK;
                let mut batch = WriteBatch::new();
                let (mut count, mut bytes) = (0, 0);
                for (key, value) in &pairs {
                    count += 1;
                    bytes += (key.len() + value.len()) as u64;
                    batch.delete(ColumnFamily::Hints, key.clone());
                }
                if !batch.is_empty() {
                    self.engine.write(batch)?;
                    if let Some(counts) = guard.as_mut() {
                        counts.remove(&target, count, bytes);
                    }
                    stats.count += count;
                    stats.bytes += bytes;
                }
                match pairs.last() {
                    Some((last, _)) if !exhausted => start = key_successor(last),
                    _ => break,
                }
            }
            if stats.count > 0 {
                purged.push(stats);
            }
        }
        Ok(purged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sort_by_target_then_time() {
        let key = |target: &str, at: u64, seq: u64| HintKey {
            target: target.to_owned(),
            stored_at_ms: at,
            sequence: seq,
        };
        let keys = [
            key("n1", 5, 9),
            key("n1", 6, 0),
            key("n1", 6, 1),
            key("n10", 0, 0),
            key("n2", 0, 3),
        ];
        let encoded: Vec<Vec<u8>> = keys.iter().map(|k| k.encode().unwrap()).collect();
        for (k, bytes) in keys.iter().zip(&encoded) {
            assert_eq!(&HintKey::decode(bytes).unwrap(), k);
        }
        // "n1" before "n10" whatever the time: the length prefix groups targets.
        let mut sorted = encoded.clone();
        sorted.sort();
        let order: Vec<HintKey> = sorted.iter().map(|b| HintKey::decode(b).unwrap()).collect();
        let n1: Vec<&HintKey> = order.iter().filter(|k| k.target == "n1").collect();
        assert_eq!(n1, [&keys[0], &keys[1], &keys[2]]);
    }

    #[test]
    fn bad_keys_are_corrupt() {
        for bytes in [&b""[..], b"\x00", b"\x00\x02n1", b"\x00\x01n\x00"] {
            assert!(matches!(
                HintKey::decode(bytes),
                Err(StorageError::Corrupt {
                    what: "hint key",
                    ..
                })
            ));
        }
        let too_long = "x".repeat(MAX_TARGET_LEN + 1);
        assert!(target_prefix(&too_long).is_err());
        assert!(target_prefix("").is_err());
    }
}
