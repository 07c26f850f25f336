//! Anti-entropy: every replica of every partition converges, with no client reads.
//!
//! Hints and read repair fix what they see; nothing else brings back a write a replica missed
//! while hints were off, expired or over their cap, a replica cut off with no fallback, or a data
//! dir that was wiped. This module closes that gap, continuously, as the worker
//! `anti-entropy` ([`AntiEntropyWorker`]):
//!
//! - **What it compares:** the hash tree storage keeps per (table, partition), updated in the
//!   batch of every cell write (`tessera_storage::merkle`), with the pure exchange of
//!   `tessera_merkle`: roots, then only the branches and segments that differ, then the cell
//!   digests of differing segments, page by page. Replicas that agree exchange two messages of a
//!   few dozen bytes per partition, whatever they hold.
//! - **How it repairs:** whole cells, merged with DVV sync on both sides through the write
//!   path's own merge (`exchange`): nothing is overwritten, so a repair can never lose a write,
//!   and repairing twice or concurrently with client writes is harmless.
//! - **Sweeps:** a sweep visits every partition this node replicates (per the topology, both
//!   replica sets during a move) and runs one exchange with each other replica that membership
//!   believes alive, one exchange at a time for the whole node (so at most one per peer).
//!   Replicas that join a partition in a move are left out until the move is over: their
//!   transfer fills them, and exchanging meanwhile would send the same cells twice. A
//!   sweep starts `sweep_interval` after the previous one started, or at once when asked
//!   ([`AntiEntropy::request_sweep`], `POST /v1/node/repair`). The worker's unit is keys
//!   (cells scanned and moved, at least one per exchange), so its rate limit is
//!   `anti_entropy.max_keys_per_s`.
//! - **Tree checks:** the first visit of a partition after start, and one every
//!   `verify_interval` after that, rebuilds its tree from a scan and compares it with the kept
//!   one; differences are counted, logged and repaired (`CellStore::check_tree`). Data written
//!   before trees were kept (an upgrade) is covered by the same check.
//! - **Replica side:** [`Responders`], fed by the replica's `AntiEntropy` requests.
//!
//! Every node initiates with every other replica, so each pair meets twice per sweep: the cost
//! of an exchange between replicas in sync is a few dozen bytes, and no node depends on another's
//! worker being enabled or running.
//!
//! Tombstones are not purged yet: see `docs/cluster.md` for the rule a purge must follow.

mod exchange;
mod responder;
mod worker;

pub use responder::{Responders, ServeError, MAX_RESPONDERS, RESPONDER_IDLE};
pub use worker::{
    AntiEntropy, AntiEntropyConfig, AntiEntropyStatus, AntiEntropyWorker, PartitionTables,
    SweepReport, TableRepairStatus, ANTI_ENTROPY,
};
