//! Hints for a node that has left the ring go to the partitions' owners instead (issue 11: "hints
//! for a removed node go to the partitions' new owners").
//!
//! A node stands in for a replica that is down and keeps the write as a hint for it. If that
//! replica is then removed from the cluster (decommissioned, or removed as dead), delivering to
//! it would be pointless and keeping the hint until it expires would waste the write. Once the
//! layout no longer has the target anywhere (not in the ring, and no move under way that still
//! counts it), [`HintDelivery`](crate::HintDelivery) turns each of its hints into one hint per
//! current owner of the hint's row, then deletes the original. The new hints keep the original's
//! `stored_at_ms`, so a write is never delivered later than its hint window allowed (tombstone GC
//! counts on that bound), and they are delivered like any other hint, with merges that are
//! idempotent and commutative: an owner that already holds the write is unchanged.
//!
//! The new hints are stored before the originals are deleted, so a crash in between delivers
//! some writes twice, harmlessly, and loses none.

use tessera_storage::RowKey;

use crate::transport::NodeId;

/// What hint delivery needs to know about the layout; the node implements it over its topology
/// and schema.
pub trait HintRoutes: Send + Sync + 'static {
    /// Whether `target` has left the cluster: no ring in force (including the previous one of a
    /// move under way) lists it. Its hints then go to the current owners.
    fn has_left(&self, target: &NodeId) -> bool;

    /// The replicas of `row` now, or `None` if they cannot be told (no layout, an unknown
    /// table): the hint then stays where it is.
    fn owners_of(&self, row: &RowKey) -> Option<Vec<NodeId>>;
}
