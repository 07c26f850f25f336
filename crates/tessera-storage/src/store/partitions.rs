//! Whole partitions at once: dropping the cells of a (table, partition) this node no longer
//! replicates.
//!
//! A partition is one contiguous key range ([`crate::keys`]), so dropping it is one range delete,
//! whatever it holds. The cell cache is the one index that must follow: its entries are spread
//! over every shard (a shard is a row's lock stripe), so the drop takes every stripe's write lock,
//! in stripe order as every batch does, deletes the range, and removes the range's entries from
//! every shard before letting go. No write can run in between, so none can put a dropped cell
//! back into the cache, and a reader never sees one afterwards.

use std::sync::PoisonError;

use super::CellStore;
use crate::engine::{ColumnFamily, Engine, WriteBatch};
use crate::error::StorageError;
use crate::keys::{partition_range, TableId};
use crate::merkle::tree_range;

impl<E: Engine> CellStore<E> {
    /// Removes every cell of `partition` of `table`, as one range delete, and forgets them from
    /// the cell cache. Durable on return, like every write.
    ///
    /// Every row write of the node waits while it runs (it holds every row lock): it is for the
    /// rare moment a node hands a partition over, not for a hot path. The partition's
    /// anti-entropy tree is dropped with it; other indexes of the partition kept beside the
    /// cells in other column families are their owners' to drop.
    pub fn drop_partition(&self, table: TableId, partition: u16) -> Result<(), StorageError> {
        let (start, end) = partition_range(table, partition);
        let _every_row = self
            .locks
            .iter()
            .map(|stripe| stripe.write().unwrap_or_else(PoisonError::into_inner))
            .collect::<Vec<_>>();
        let mut batch = WriteBatch::new();
        batch.delete_range(ColumnFamily::Data, start.clone(), end.clone());
        // The partition's tree goes with its cells, in the same batch: an empty partition's
        // tree is all zeros, which is no node at all.
        let (tree_start, tree_end) = tree_range(table, partition);
        batch.delete_range(ColumnFamily::Merkle, tree_start, tree_end);
        let written = self.engine.write(batch);
        // Forgotten whether or not the write succeeded: the next locked read refills what the
        // engine still holds.
        self.cache.remove_range(&start, &end);
        if written.is_ok() {
            tracing::info!(table, partition, "dropped a partition");
        }
        written
    }
}
