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
//! `write.rs` and `read.rs`; this module holds the shared state and the API.

use std::sync::Arc;
use std::time::Duration;

use tessera_storage::{Cell, CellStore, Engine, HintStore, RowKey, RowPage, RowSlice};
use tokio::time::Instant;

use crate::commit::RowWriter;
use crate::error::CoordinatorError;
use crate::exec::StorageRunner;
use crate::membership::MembershipView;
use crate::messages::{Request, Response};
use crate::ops::{ReadOutcome, WriteOutcome, WriteRequest};
use crate::stats::CoordinatorStats;
use crate::transport::{BoxFuture, NodeId, Transport, TransportError};
use crate::{read, write};

/// Failure reason recorded for a replica that membership says is down (a
/// fallback may then store a hint for it; see `write.rs`).
pub(crate) const DOWN: &str = "down (membership)";

/// How long the coordinator waits, and where storage calls run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoordinatorConfig {
    /// Deadline of a read or write quorum, and of its background work
    /// (replication stragglers, late read answers, each read-repair merge).
    pub timeout: Duration,
    /// How long a forwarded write may take at one replica before the next is
    /// tried; longer than `timeout`, since that replica waits for its own quorum.
    pub forward_timeout: Duration,
    /// Where blocking storage calls run.
    pub storage: StorageRunner,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(2),
            forward_timeout: Duration::from_secs(5),
            storage: StorageRunner::Blocking,
        }
    }
}

/// What a coordinator shares with its background tasks.
pub(crate) struct Inner<T, M, E: Engine> {
    pub(crate) local: NodeId,
    pub(crate) store: Arc<CellStore<E>>,
    /// Where this node keeps hints for replicas that missed a write.
    pub(crate) hints: Arc<HintStore<E>>,
    /// Where this node's own row writes go (group commit), shared with its replica.
    pub(crate) writer: Arc<RowWriter<E>>,
    pub(crate) transport: T,
    pub(crate) membership: M,
    pub(crate) config: CoordinatorConfig,
    pub(crate) stats: Arc<CoordinatorStats>,
}

impl<T: Transport, M: MembershipView, E: Engine> Inner<T, M, E> {
    /// Splits `replicas` into those believed alive and those believed down.
    /// This node is always alive to itself.
    pub(crate) fn split_alive(&self, replicas: &[NodeId]) -> (Vec<NodeId>, Vec<NodeId>) {
        replicas
            .iter()
            .cloned()
            .partition(|node| *node == self.local || self.membership.is_alive(node))
    }

    /// Starts `request` to `node` now and returns a future of its answer by
    /// `deadline`, or of why there is none. A [`Response::Error`] is an answer.
    pub(crate) fn call(
        &self,
        node: &NodeId,
        request: Request,
        deadline: Instant,
    ) -> impl std::future::Future<Output = Result<Response, CallFailure>> + Send + 'static {
        let call = self.transport.call(node, request);
        let waited = deadline.saturating_duration_since(Instant::now());
        async move {
            match tokio::time::timeout_at(deadline, call).await {
                Ok(Ok(response)) => Ok(response),
                Ok(Err(error)) => Err(CallFailure::Failed(transport_reason(&error))),
                Err(_) => Err(CallFailure::Deadline(format!(
                    "no answer within {} ms",
                    waited.as_millis()
                ))),
            }
        }
    }
}

/// Why a call to a replica produced no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CallFailure {
    /// The replica failed or could not be reached.
    Failed(String),
    /// The deadline passed first. For a quorum this is not a failure but a
    /// replica still pending when time ran out, so the verdict is a timeout.
    Deadline(String),
}

impl CallFailure {
    pub(crate) fn reason(self) -> String {
        match self {
            CallFailure::Failed(reason) | CallFailure::Deadline(reason) => reason,
        }
    }
}

/// A short failure reason; the node is named next to it already.
fn transport_reason(error: &TransportError) -> String {
    match error {
        TransportError::Unreachable { reason, .. } => format!("unreachable: {reason}"),
        TransportError::Timeout { .. } => "transport timeout".to_owned(),
        TransportError::Remote { message, .. } => format!("remote failure: {message}"),
        TransportError::Protocol { reason, .. } => format!("protocol error: {reason}"),
    }
}

/// Checks what every request needs: a replica list without duplicates and
/// `1 <= required <= N`.
pub(crate) fn validate(required: u32, replicas: &[NodeId]) -> Result<(), CoordinatorError> {
    let invalid = |reason: String| Err(CoordinatorError::InvalidRequest { reason });
    if replicas.is_empty() {
        return invalid("the replica list is empty".to_owned());
    }
    for (i, node) in replicas.iter().enumerate() {
        if replicas[..i].contains(node) {
            return invalid(format!("replica {node} appears more than once"));
        }
    }
    if required == 0 || required as usize > replicas.len() {
        return invalid(format!(
            "{required} replicas required, but the replica list has {}",
            replicas.len()
        ));
    }
    Ok(())
}

/// Coordinates reads and writes for one node. Cheap to clone (shared state).
pub struct Coordinator<T, M, E: Engine> {
    inner: Arc<Inner<T, M, E>>,
}

impl<T, M, E: Engine> Clone for Coordinator<T, M, E> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<T: Transport, M: MembershipView, E: Engine> Coordinator<T, M, E> {
    /// The coordinator of node `local`, whose replica data is `store` and whose hints are kept
    /// in `hints`.
    pub fn new(
        local: impl Into<NodeId>,
        store: Arc<CellStore<E>>,
        hints: Arc<HintStore<E>>,
        transport: T,
        membership: M,
        config: CoordinatorConfig,
    ) -> Self {
        let writer = Arc::new(RowWriter::new(store.clone(), config.storage));
        Self {
            inner: Arc::new(Inner {
                local: local.into(),
                store,
                hints,
                writer,
                transport,
                membership,
                config,
                stats: Arc::new(CoordinatorStats::default()),
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

    /// Where this node's row writes and merges are group-committed; give it to the node's
    /// [`Replica`](crate::Replica) too, so that both share batches.
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

    #[test]
    fn validation_names_the_problem() {
        let nodes = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert!(validate(2, &nodes(&["a", "b", "c"])).is_ok());
        assert!(validate(3, &nodes(&["a", "b", "c"])).is_ok());
        for (required, replicas, needle) in [
            (1, nodes(&[]), "empty"),
            (
                1,
                nodes(&["a", "b", "a"]),
                "replica a appears more than once",
            ),
            (0, nodes(&["a"]), "0 replicas required"),
            (
                4,
                nodes(&["a", "b", "c"]),
                "4 replicas required, but the replica list has 3",
            ),
        ] {
            match validate(required, &replicas) {
                Err(CoordinatorError::InvalidRequest { reason }) => {
                    assert!(reason.contains(needle), "{reason}")
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
