//! Cluster metadata by scuttlebutt gossip (van Renesse et al.; as in chitchat).
//!
//! Each process publishes key/value pairs; every write takes the next version of its owner, so a
//! node's state is summarised by one number, its max version, and "which versions of each node do
//! you hold" is a small digest. A gossip exchange sends a digest, gets back what is missing (the
//! delta) plus the peer's digest, and answers with what the peer is missing, so a node that missed
//! any number of rumours catches up in one exchange.
//!
//! - Deltas are cut to the datagram budget, each node's missing versions oldest first, and the
//!   receiver's watermark (the max version it holds all versions up to) advances only to the last
//!   version actually sent. So repeated rounds always make progress, however large the state.
//! - Digests that do not fit are cut too, starting at a random node; a cut digest is marked
//!   incomplete so the peer does not take a missing node for an empty one.
//! - Each node's heartbeat counter rises every gossip round; a rise heard from anyone is evidence
//!   the node is alive, which feeds its phi detector.
//! - Deletes are tombstones (`value: None`), versioned like writes.
//! - State is keyed by node *and* generation, so a restarted process starts from version 0 without
//!   being mistaken for stale; the state machine drops a node's state when it forgets the member.
//!
//! The keys mean nothing here: the runtime publishes its HTTP address, status, ring epoch, schema
//! version, load and `table:<name>` schemas as it likes.

use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Whose state: a node id and the generation of the process that wrote it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeKey {
    pub node: String,
    pub generation: u64,
}

impl NodeKey {
    pub fn new(node: impl Into<String>, generation: u64) -> NodeKey {
        NodeKey {
            node: node.into(),
            generation,
        }
    }
}

/// One value and the owner's version at which it was written; `None` is a deletion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionedValue {
    pub value: Option<String>,
    pub version: u64,
}

/// What this process knows of one node's metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeState {
    heartbeat: u64,
    max_version: u64,
    kvs: BTreeMap<String, VersionedValue>,
}

impl NodeState {
    /// The value of `key`, unless absent or deleted.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.kvs.get(key).and_then(|v| v.value.as_deref())
    }

    /// Every live key and value, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.kvs
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.value.as_deref()?)))
    }

    /// Every key with its version, tombstones included.
    pub fn versioned(&self) -> &BTreeMap<String, VersionedValue> {
        &self.kvs
    }

    pub fn heartbeat(&self) -> u64 {
        self.heartbeat
    }

    /// All of the owner's versions up to this one are reflected here.
    pub fn max_version(&self) -> u64 {
        self.max_version
    }
}

/// One node's line in a digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestEntry {
    pub node: NodeKey,
    pub heartbeat: u64,
    pub max_version: u64,
}

/// What the sender holds of each node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    pub entries: Vec<DigestEntry>,
    /// False when cut to fit: a node missing from it may still be known to the sender.
    pub complete: bool,
}

/// The versions `(from_version, to_version]` of one node, and its heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeDelta {
    pub node: NodeKey,
    pub heartbeat: u64,
    /// The receiver's watermark this delta starts from.
    pub from_version: u64,
    /// Every version of the owner in (from, to] is in `kvs` (or was overwritten by a later one).
    pub to_version: u64,
    pub kvs: Vec<(String, VersionedValue)>,
}

/// What the receiver of a digest is missing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    pub nodes: Vec<NodeDelta>,
}

/// What a merge changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// Nodes whose keys changed, with the keys.
    pub changed: Vec<(NodeKey, Vec<String>)>,
    /// Nodes whose heartbeat rose.
    pub beats: Vec<NodeKey>,
}

/// Every node's metadata as this process knows it, its own included.
#[derive(Debug, Clone)]
pub struct Metadata {
    own: NodeKey,
    nodes: BTreeMap<NodeKey, NodeState>,
}

/// Bytes reserved for a vector's length prefix beyond the one byte an empty vector costs.
const LEN_RESERVE: usize = 2;

// Postcard's sizes, computed directly: gossip sizes every digest entry and key it might send,
// and walking serde for each is most of a round's cost in a debug build. `wire_sizes_match_postcard`
// checks them against the real encoder.

/// Bytes of a postcard varint.
fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn str_len(s: &str) -> usize {
    varint_len(s.len() as u64) + s.len()
}

fn key_len(k: &NodeKey) -> usize {
    str_len(&k.node) + varint_len(k.generation)
}

/// The encoded size of a digest.
pub(crate) fn digest_len(d: &Digest) -> usize {
    varint_len(d.entries.len() as u64) + d.entries.iter().map(entry_len).sum::<usize>() + 1
}

fn entry_len(e: &DigestEntry) -> usize {
    key_len(&e.node) + varint_len(e.heartbeat) + varint_len(e.max_version)
}

/// A node delta without its key/values (but with their empty length prefix).
fn header_len(d: &NodeDelta) -> usize {
    key_len(&d.node)
        + varint_len(d.heartbeat)
        + varint_len(d.from_version)
        + varint_len(d.to_version)
        + 1
}

fn kv_len(key: &str, v: &VersionedValue) -> usize {
    str_len(key) + 1 + v.value.as_deref().map_or(0, str_len) + varint_len(v.version)
}

impl Metadata {
    pub fn new(own: NodeKey) -> Metadata {
        let mut nodes = BTreeMap::new();
        nodes.insert(own.clone(), NodeState::default());
        Metadata { own, nodes }
    }

    /// Whose state this process writes.
    pub fn own(&self) -> &NodeKey {
        &self.own
    }

    fn own_state(&mut self) -> &mut NodeState {
        self.nodes.entry(self.own.clone()).or_default()
    }

    /// Publishes `key = value` at the next version.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.write(key.into(), Some(value.into()));
    }

    /// Publishes the deletion of `key` at the next version.
    pub fn delete(&mut self, key: impl Into<String>) {
        self.write(key.into(), None);
    }

    fn write(&mut self, key: String, value: Option<String>) {
        let state = self.own_state();
        if state.kvs.get(&key).map(|v| &v.value) == Some(&value) {
            return;
        }
        state.max_version += 1;
        let version = state.max_version;
        state.kvs.insert(key, VersionedValue { value, version });
    }

    /// One gossip round passed: the own heartbeat rises.
    pub fn beat(&mut self) {
        self.own_state().heartbeat += 1;
    }

    pub fn get(&self, node: &NodeKey) -> Option<&NodeState> {
        self.nodes.get(node)
    }

    pub fn nodes(&self) -> impl Iterator<Item = (&NodeKey, &NodeState)> + '_ {
        self.nodes.iter()
    }

    /// Forgets a node's state (its member is forgotten, or superseded by a new generation).
    pub fn remove(&mut self, node: &NodeKey) {
        if node != &self.own {
            self.nodes.remove(node);
        }
    }

    /// A digest of at most `budget` encoded bytes.
    pub fn digest(&self, budget: usize, rng: &mut impl Rng) -> Digest {
        let entries: Vec<DigestEntry> = self
            .nodes
            .iter()
            .map(|(node, s)| DigestEntry {
                node: node.clone(),
                heartbeat: s.heartbeat,
                max_version: s.max_version,
            })
            .collect();
        let sizes: Vec<usize> = entries.iter().map(entry_len).collect();
        // Length prefix and the `complete` flag.
        let overhead = 1 + LEN_RESERVE + 1;
        let total: usize = sizes.iter().sum();
        if total + overhead <= budget {
            return Digest {
                entries,
                complete: true,
            };
        }
        let mut left = budget.saturating_sub(overhead);
        let start = rng.random_range(0..entries.len().max(1));
        let mut cut = Vec::new();
        for i in (0..entries.len()).map(|i| (i + start) % entries.len()) {
            if sizes[i] <= left {
                left -= sizes[i];
                cut.push(entries[i].clone());
            }
        }
        Digest {
            entries: cut,
            complete: false,
        }
    }

    /// What the sender of `digest` is missing, in at most `budget` encoded bytes: nodes with
    /// missing versions first (oldest versions first within a node), then heartbeat news.
    pub fn delta_for(&self, digest: &Digest, budget: usize, rng: &mut impl Rng) -> Delta {
        let theirs: BTreeMap<&NodeKey, (u64, u64)> = digest
            .entries
            .iter()
            .map(|e| (&e.node, (e.heartbeat, e.max_version)))
            .collect();
        let mut stale = Vec::new();
        let mut beats = Vec::new();
        for (node, state) in &self.nodes {
            let (hb, version) = match theirs.get(node) {
                Some(&seen) => seen,
                None if digest.complete => (0, 0),
                None => continue,
            };
            if state.max_version > version {
                stale.push((node, state, version));
            } else if state.heartbeat > hb {
                beats.push((node, state));
            }
        }
        stale.shuffle(rng);
        beats.shuffle(rng);
        let mut left = budget.saturating_sub(1 + LEN_RESERVE);
        let mut nodes = Vec::new();
        for (node, state, from) in stale {
            let mut delta = NodeDelta {
                node: node.clone(),
                heartbeat: state.heartbeat,
                from_version: from,
                to_version: state.max_version,
                kvs: Vec::new(),
            };
            // The header with the largest `to_version` bounds the final one's size.
            let header = header_len(&delta) + LEN_RESERVE;
            if header > left {
                continue;
            }
            let mut room = left - header;
            let mut missing: Vec<(&String, &VersionedValue)> =
                state.kvs.iter().filter(|(_, v)| v.version > from).collect();
            missing.sort_by_key(|(_, v)| v.version);
            let mut cut = false;
            for (key, value) in missing {
                let size = kv_len(key, value);
                if size > room {
                    cut = true;
                    break;
                }
                room -= size;
                delta.kvs.push((key.clone(), value.clone()));
            }
            if cut {
                delta.to_version = delta.kvs.last().map_or(from, |(_, v)| v.version);
            }
            left = room;
            nodes.push(delta);
        }
        for (node, state) in beats {
            let delta = NodeDelta {
                node: node.clone(),
                heartbeat: state.heartbeat,
                from_version: 0,
                to_version: 0,
                kvs: Vec::new(),
            };
            let size = header_len(&delta);
            if size <= left {
                left -= size;
                nodes.push(delta);
            }
        }
        Delta { nodes }
    }

    /// Applies a delta, for nodes `accept` admits (the state machine admits the processes it
    /// knows). Idempotent, and order-independent for deltas from any snapshots of the owners'
    /// histories: per key the highest version wins, heartbeats and watermarks only rise, and a
    /// watermark rises only when the delta starts at or below it.
    pub fn merge(&mut self, delta: Delta, accept: impl Fn(&NodeKey) -> bool) -> MergeReport {
        let mut report = MergeReport::default();
        for d in delta.nodes {
            if d.node == self.own || !accept(&d.node) {
                continue;
            }
            let state = self.nodes.entry(d.node.clone()).or_default();
            if d.heartbeat > state.heartbeat {
                state.heartbeat = d.heartbeat;
                report.beats.push(d.node.clone());
            }
            let mut keys = Vec::new();
            for (key, value) in d.kvs {
                if value.version <= d.from_version || value.version > d.to_version {
                    continue;
                }
                if state
                    .kvs
                    .get(&key)
                    .is_some_and(|v| v.version >= value.version)
                {
                    continue;
                }
                state.kvs.insert(key.clone(), value);
                keys.push(key);
            }
            if d.from_version <= state.max_version && d.to_version > state.max_version {
                state.max_version = d.to_version;
            }
            if !keys.is_empty() {
                report.changed.push((d.node, keys));
            }
        }
        report
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
use crate::codec::encoded_size;
