//! What a transfer is, and how the engine that runs them is tuned.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tessera_storage::TableId;

use crate::exec::StorageRunner;
use crate::transport::NodeId;

/// Which partition a transfer moves, for which ring epoch: a transfer's identity. The same
/// (table, partition) moves at most once per epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TransferKey {
    /// The ring epoch that moves the partition here.
    pub epoch: u64,
    /// The table.
    pub table: TableId,
    /// The partition.
    pub partition: u16,
}

impl fmt::Display for TransferKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "epoch {} table {} partition {}",
            self.epoch, self.table, self.partition
        )
    }
}

/// One partition to pull to this node: every cell of (`table`, `partition`) from each of
/// `sources` in turn, merged into the local store.
///
/// Usually one source (the replica that is leaving, or any current one); several when the data
/// must be gathered from every surviving replica because the node that held it is gone. Every
/// source listed is read to its end before the transfer completes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// The ring epoch that moves the partition here.
    pub epoch: u64,
    /// The table.
    pub table: TableId,
    /// The partition.
    pub partition: u16,
    /// The replicas to read it from, in order.
    pub sources: Vec<NodeId>,
}

impl Transfer {
    /// The transfer's identity.
    pub fn key(&self) -> TransferKey {
        TransferKey {
            epoch: self.epoch,
            table: self.table,
            partition: self.partition,
        }
    }
}

/// Tuning of the transfer engine. `Default` is what a node runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferConfig {
    /// Most transfers pulling at once (`rebalance.max_concurrent`, Riak's transfer limit).
    pub max_concurrent: usize,
    /// About the most bytes per chunk. A chunk is one engine batch on the receiver and one
    /// frame on the wire: small enough that neither the row locks nor a link are held for long.
    pub chunk_bytes: u32,
    /// Most cells per chunk.
    pub chunk_cells: u32,
    /// How long one chunk request may take before it counts as failed.
    pub call_timeout: Duration,
    /// The first backoff after a source failed; it doubles with each failure in a row.
    pub backoff_base: Duration,
    /// The longest backoff.
    pub backoff_cap: Duration,
    /// Where storage calls run.
    pub storage: StorageRunner,
}

impl Default for TransferConfig {
    fn default() -> Self {
        Self {
            max_concurrent: 2,
            chunk_bytes: 256 << 10,
            chunk_cells: 8192,
            call_timeout: Duration::from_secs(30),
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(60),
            storage: StorageRunner::Blocking,
        }
    }
}
