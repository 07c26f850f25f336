//! What a coordinator shares with the tasks it starts: its node, storage, peers, settings,
//! counters, and the budget its background tasks run under.
//!
//! The read and write paths (`read.rs`, `write.rs`) take this, not the [`Coordinator`]
//! (`coordinator.rs`), so that the API module depends on the paths and never the other way.
//!
//! [`Coordinator`]: crate::Coordinator

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tessera_storage::{CellStore, Engine, HintStore};
use tessera_worker::TaskBudget;
use tokio::time::Instant;

use crate::availability::Liveness;
use crate::call::{self, CallFailure};
use crate::commit::RowWriter;
use crate::exec::StorageRunner;
use crate::membership::MembershipView;
use crate::messages::{Request, Response};
use crate::stats::CoordinatorStats;
use crate::transport::{NodeId, Transport};

/// How long the coordinator waits, where storage calls run, and how much background work it
/// keeps in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoordinatorConfig {
    /// Deadline of a read or write quorum (the local commit included), and of its background
    /// work (replication stragglers, late read answers, each read-repair merge).
    pub timeout: Duration,
    /// How long a forwarded write may take at one replica before the next is tried; longer than
    /// `timeout`, since that replica waits for its own quorum.
    pub forward_timeout: Duration,
    /// Where blocking storage calls run.
    pub storage: StorageRunner,
    /// Most background tasks (replication stragglers and read repairs) in flight; past it a
    /// straggler is kept as a hint and a repair is skipped.
    pub background_tasks: u32,
    /// Most bytes of cells those tasks may hold together.
    pub background_bytes: u32,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(2),
            forward_timeout: Duration::from_secs(5),
            storage: StorageRunner::Blocking,
            background_tasks: 4096,
            background_bytes: 64 << 20,
        }
    }
}

/// The state behind a [`Coordinator`](crate::Coordinator), shared with its background tasks.
pub(crate) struct Shared<T, M, E: Engine> {
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
    /// Bounds the stragglers and repairs that outlive their request.
    pub(crate) background: TaskBudget,
}

impl<T: Transport, M: MembershipView, E: Engine> Shared<T, M, E> {
    /// Which of `replicas` and `fallbacks` this node believes alive (itself always).
    pub(crate) fn liveness(&self, replicas: &[NodeId], fallbacks: &[NodeId]) -> Liveness {
        Liveness::of(&self.local, replicas, fallbacks, &self.membership)
    }

    /// Starts `request` to `node` now; see [`call::call`].
    pub(crate) fn call(
        &self,
        node: &NodeId,
        request: Request,
        deadline: Instant,
    ) -> impl Future<Output = Result<Response, CallFailure>> + Send + 'static {
        call::call(&self.transport, node, request, deadline)
    }

    /// The configured deadline, in milliseconds, for error messages.
    pub(crate) fn timeout_ms(&self) -> u64 {
        u64::try_from(self.config.timeout.as_millis()).unwrap_or(u64::MAX)
    }
}
