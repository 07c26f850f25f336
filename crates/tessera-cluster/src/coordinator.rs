//! The coordinator: turns one client request into a quorum of replicas.
//!
//! Any node accepts a request. For a write, the coordinator must be a replica
//! of the key, so that version vectors only ever name the key's replicas: a
//! non-replica forwards the write to the first live replica. The replica
//! applies the write locally (minting a new dot), sends the resulting sibling
//! set to the other replicas, and answers after W acks, itself included;
//! stragglers finish in the background. A replica that is down or fails is
//! replaced by a fallback node that keeps a hint for it (sloppy quorum;
//! [`crate::handoff`] delivers hints later). A read asks every live replica,
//! answers once R have answered, and repairs stale replicas in the background
//! (see [`ReadAnswer`](crate::ReadAnswer) for the merge). The paths themselves live in
//! `write.rs` and `read.rs`, over the state in `shared.rs`; this module is the API.

use std::sync::Arc;

use tessera_storage::{Cell, CellStore, Engine, HintStore, RowKey, RowPage, RowSlice};
use tessera_worker::TaskBudget;

use crate::commit::RowWriter;
use crate::error::CoordinatorError;
use crate::membership::MembershipView;
use crate::ops::{ReadOutcome, WriteOutcome, WriteRequest};
pub use crate::shared::CoordinatorConfig;
use crate::shared::Shared;
use crate::stats::CoordinatorStats;
use crate::transport::{BoxFuture, NodeId, Transport};
use crate::{read, write};

/// Coordinates reads and writes for one node. Cheap to clone (shared state).
pub struct Coordinator<T, M, E: Engine> {
    inner: Arc<Shared<T, M, E>>,
}

impl<T, M, E: Engine> Clone for Coordinator<T, M, E> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<T: Transport, M: MembershipView, E: Engine> Coordinator<T, M, E> {
    /// The coordinator of node `local`, whose replica data is the store `writer` commits to and
    /// whose hints are kept in `hints`. Give the same writer to the node's
    /// [`Replica`](crate::Replica), so that writes and merges share batches.
    pub fn new(
        local: impl Into<NodeId>,
        writer: Arc<RowWriter<E>>,
        hints: Arc<HintStore<E>>,
        transport: T,
        membership: M,
        config: CoordinatorConfig,
    ) -> Self {
        let background = TaskBudget::new(
            "coordinator",
            config.background_tasks,
            config.background_bytes,
        );
        Self {
            inner: Arc::new(Shared {
                local: local.into(),
                store: writer.store().clone(),
                hints,
                writer,
                transport,
                membership,
                config,
                stats: Arc::new(CoordinatorStats::default()),
                background,
            }),
        }
    }

    /// This node.
    pub fn local(&self) -> &NodeId {
        &self.inner.local
    }

    /// This node's replica data.
    pub fn store(&self) -> &Arc<CellStore<E>> {
        &self.inner.store
    }

    /// Where this node's row writes and merges are group-committed.
    pub fn writer(&self) -> &Arc<RowWriter<E>> {
        &self.inner.writer
    }

    /// The membership view.
    pub fn membership(&self) -> &M {
        &self.inner.membership
    }

    /// The configuration.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.inner.config
    }

    /// Counters, for metrics.
    pub fn stats(&self) -> &Arc<CoordinatorStats> {
        &self.inner.stats
    }

    /// The budget of background tasks (replication stragglers, read repairs): its figures for
    /// metrics, and `drain` for a stopping node.
    pub fn background(&self) -> &TaskBudget {
        &self.inner.background
    }

    /// Writes cells of one row with W = `req.required` acks out of `req.replicas`.
    ///
    /// Forwards to a replica when this node is not one. Fails fast with
    /// [`CoordinatorError::Unavailable`] (nothing written) when fewer than W
    /// replicas are alive, counting one live fallback per down replica unless
    /// `req.strict`. Replicas that are down or fail get hints on fallbacks
    /// (see `write.rs`); [`WriteOutcome::hinted`] says how many acks were hints. On [`CoordinatorError::Failed`] or
    /// [`CoordinatorError::Timeout`] the write may still have been applied by
    /// some replicas, as in any Dynamo-style store.
    pub async fn write(&self, req: WriteRequest) -> Result<WriteOutcome, CoordinatorError> {
        write::write(self.inner.clone(), req, write::Forwarding::Allowed).await
    }

    /// Reads one cell with R = `required` answers out of `replicas`
    /// (tombstones included: the caller decides how to show a deleted cell).
    /// Stale replicas are repaired in the background.
    pub async fn read_cell(
        &self,
        row: RowKey,
        column: Vec<u8>,
        required: u32,
        replicas: Vec<NodeId>,
    ) -> Result<ReadOutcome<Option<Cell>>, CoordinatorError> {
        read::read_cell(self.inner.clone(), row, column, required, replicas).await
    }

    /// Reads a slice of a row with R = `required` answers out of `replicas`.
    ///
    /// The page honours `slice` exactly as a local [`CellStore::read_row`]
    /// would: at most `limit` cells, tombstones only if asked for, and `more`
    /// set iff another matching cell follows. Replicas are always read with
    /// their tombstones, so a delete on one replica hides a stale value on
    /// another. Stale replicas are repaired in the background.
    pub async fn read_row(
        &self,
        row: RowKey,
        slice: RowSlice,
        required: u32,
        replicas: Vec<NodeId>,
    ) -> Result<ReadOutcome<RowPage>, CoordinatorError> {
        read::read_row(self.inner.clone(), row, slice, required, replicas).await
    }
}

/// Runs forwarded writes; what a [`crate::Replica`] calls for [`Request::Coordinate`].
pub trait WriteCoordinator: Send + Sync + 'static {
    /// Coordinates `request` on this node, which must be one of its replicas
    /// (a forwarded write is never forwarded again).
    fn coordinate(
        &self,
        request: WriteRequest,
    ) -> BoxFuture<'static, Result<WriteOutcome, CoordinatorError>>;
}

impl<T: Transport, M: MembershipView, E: Engine> WriteCoordinator for Coordinator<T, M, E> {
    fn coordinate(
        &self,
        request: WriteRequest,
    ) -> BoxFuture<'static, Result<WriteOutcome, CoordinatorError>> {
        Box::pin(write::write(
            self.inner.clone(),
            request,
            write::Forwarding::Forbidden,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compile-time check: the API futures can be spawned (e.g. by axum handlers).
    #[allow(dead_code)]
    fn futures_are_send<T: Transport, M: MembershipView, E: Engine>(
        coordinator: &Coordinator<T, M, E>,
        request: WriteRequest,
        row: RowKey,
        slice: RowSlice,
    ) {
        fn is_send<F: Send + 'static>(_: F) {}
        let c = coordinator.clone();
        is_send(async move { c.write(request).await });
        let c = coordinator.clone();
        let r = row.clone();
        is_send(async move { c.read_cell(r, Vec::new(), 1, Vec::new()).await });
        let c = coordinator.clone();
        is_send(async move { c.read_row(row, slice, 1, Vec::new()).await });
    }
}
