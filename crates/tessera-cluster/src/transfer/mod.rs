//! Streaming partitions between nodes: the transfer engine that rebalancing drives.
//!
//! When a ring change gives this node a partition, the node pulls it: every cell of the
//! (table, partition), a chunk at a time, from a current replica (or, when the node that held it
//! is gone, from every surviving replica in turn), each chunk merged into the local store with
//! the version vectors' sync, never overwritten. The pieces:
//! - [`source`]: the sending side, a replica reading a chunk of its live store (and estimating
//!   a partition's size), served by [`crate::Replica`] for [`crate::Request::PartitionChunk`]
//!   and [`crate::Request::EstimatePartitions`];
//! - [`receive`]: checking a chunk and merging it, with its progress record, as one batch;
//! - [`progress`]: the persisted progress of each transfer, so that either side can restart;
//! - [`engine`]: [`Transfers`], the handle the layout gives transfers to and learns completions
//!   from, and [`TransferWorker`], the worker (`transfers`) that runs them under the
//!   `rebalance.max_concurrent` limit and the byte throttle;
//! - [`status`]: the typed status the API, the CLI and metrics show.
//!
//! Which partitions move, when, and what a completion means for reads and writes is the
//! layout's business (ring epochs); this module only moves data, for the transfers it is given.

pub mod engine;
pub mod error;
pub mod progress;
pub mod receive;
pub mod source;
pub mod spec;
pub mod status;

pub use engine::{estimate_on, EnqueueReport, TransferStats, TransferWorker, Transfers, TRANSFERS};
pub use error::TransferError;
pub use progress::{Progress, SourceProgress};
pub use source::{SourceStats, MAX_CHUNK_BYTES, MAX_CHUNK_CELLS};
pub use spec::{Transfer, TransferConfig, TransferKey};
pub use status::{SourceStatus, TransferState, TransferStatus, TransfersReport};
