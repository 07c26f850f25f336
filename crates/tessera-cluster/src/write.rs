//! The write path: forward to a replica, apply locally, replicate, count acks.
//!
//! The coordinating replica mints the write's dot with
//! [`CellStore::write_row`] and sends the resulting cells (the whole sibling
//! set, not the client's value) to the other replicas as a `Merge`, which is
//! idempotent and commutative, so late or repeated deliveries are harmless.
//!
//! Sloppy quorum (Dynamo's hinted handoff): a replica that membership says is
//! down, or whose `Merge` fails for a reason other than the data itself, is
//! replaced by the next unused live fallback from the ring, which stores the
//! copy as a hint (`StoreHint`) and hands it over when the replica is back
//! (see [`crate::handoff`]). A fallback's hint fills the replica's slot in
//! the quorum unless the write is `strict`. If no fallback takes it, the
//! coordinator keeps the hint itself: it already holds the data, but it has
//! acked once already, so that hint never counts towards W. A replica that
//! stays silent until the deadline also gets a local hint, since it may or may
//! not have applied the write.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use tessera_storage::cell::approx_cell_bytes;
use tessera_storage::{Cell, CellStore, CellWrite, Engine, Hint, RowKey, StorageError};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::availability::{Access, DOWN};
use crate::call::{unexpected, CallFailure};
use crate::clock::system_now_ms;
use crate::error::CoordinatorError;
use crate::membership::MembershipView;
use crate::messages::{ErrorKind, Request, Response};
use crate::ops::{validate, ClientWrite, WriteOutcome, WriteRequest};
use crate::quorum::{QuorumState, WriteQuorum};
use crate::shared::Shared;
use crate::stats::{CoordinatorStats, InFlight};
use crate::transport::{NodeId, Transport, TransportError};

/// Whether a write that reaches a non-replica may be forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Forwarding {
    /// A client's write: forward it if this node is not a replica.
    Allowed,
    /// A forwarded write: coordinate it here or refuse, so forwarding cannot loop.
    Forbidden,
}

/// Milliseconds since the Unix epoch; informational only (see `CellValue`).
fn now_ms() -> u64 {
    system_now_ms()
}

pub(crate) async fn write<T: Transport, M: MembershipView, E: Engine>(
    inner: Arc<Shared<T, M, E>>,
    req: WriteRequest,
    forwarding: Forwarding,
) -> Result<WriteOutcome, CoordinatorError> {
    let stats = inner.stats.clone();
    CoordinatorStats::inc(&stats.writes);
    let result = coordinate(inner, req, forwarding).await;
    let counter = match &result {
        Ok(_) => &stats.writes_succeeded,
        Err(CoordinatorError::Unavailable(_)) => &stats.writes_unavailable,
        Err(CoordinatorError::Timeout { .. }) => &stats.writes_timed_out,
        Err(_) => &stats.writes_failed,
    };
    CoordinatorStats::inc(counter);
    result
}

/// Checks the fallbacks: none may be a replica (of either set) or appear twice.
fn validate_fallbacks(req: &WriteRequest) -> Result<(), CoordinatorError> {
    for (i, node) in req.fallbacks.iter().enumerate() {
        let reason = if req.replicas.contains(node) || req.also.contains(node) {
            format!("fallback {node} is also a replica")
        } else if req.fallbacks[..i].contains(node) {
            format!("fallback {node} appears more than once")
        } else {
            continue;
        };
        return Err(CoordinatorError::InvalidRequest { reason });
    }
    Ok(())
}

/// Completes once the sender of `answered` is gone.
async fn closed(answered: &mut watch::Receiver<()>) {
    while answered.changed().await.is_ok() {}
}

/// The live fallbacks a write has not used yet, in ring order. The replica
/// slots share it, so each fallback stands in for at most one replica.
type FallbackPool = Arc<Mutex<VecDeque<NodeId>>>;

fn next_fallback(pool: &FallbackPool) -> Option<NodeId> {
    // Only node names live under the lock, so a poisoned one is still valid.
    pool.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .pop_front()
}

/// How one replica's copy of a write ended, as the quorum counts it.
#[derive(Debug)]
enum SlotOutcome {
    /// The replica merged it.
    Acked,
    /// `fallback` stored a hint for it; `cause` is why the replica did not take it.
    Hinted { fallback: NodeId, cause: String },
    /// Neither the replica nor a fallback took it: why, every attempt included.
    Failed(String),
    /// The deadline passed while the replica was silent (it may still apply it).
    Deadline,
}

/// What a replica slot needs to deliver its copy.
struct Slot<T, M, E: Engine> {
    inner: Arc<Shared<T, M, E>>,
    node: NodeId,
    row: RowKey,
    cells: Vec<(Vec<u8>, Cell)>,
    deadline: Instant,
    pool: FallbackPool,
    /// Whether a fallback may stand in (only for the first replica set).
    stand_in: bool,
}

impl<T: Transport, M: MembershipView, E: Engine> Slot<T, M, E> {
    /// [`Slot::run`] while the client waits; once `answered` closes, a straggler that goes on
    /// only under the coordinator's background budget. One the budget refuses, or one still
    /// running when a stopping node gives up on its background tasks, keeps its copy as a hint
    /// on this node instead (harmless if the replica applies it too: merges are idempotent).
    async fn run_or_straggle(
        &self,
        alive: bool,
        mut answered: watch::Receiver<()>,
        bytes: usize,
    ) -> SlotOutcome {
        let run = self.run(alive);
        tokio::pin!(run);
        tokio::select! {
            biased;
            outcome = &mut run => return outcome,
            () = closed(&mut answered) => {}
        }
        let stats = &self.inner.stats;
        CoordinatorStats::inc(&stats.stragglers);
        let cause = match self.inner.background.try_acquire(bytes) {
            Some(permit) => {
                let given_up = permit.given_up();
                tokio::select! {
                    biased;
                    outcome = &mut run => return outcome,
                    () = given_up => "still running when the node stopped",
                }
            }
            None => "over the background budget",
        };
        CoordinatorStats::inc(&stats.stragglers_hinted);
        debug!(node = %self.inner.local, replica = %self.node, partition = self.row.partition, cause, "straggler kept as a hint");
        let _ = self.keep_locally(cause).await;
        SlotOutcome::Deadline
    }

    /// Merges into the replica if it is alive; otherwise, or if that fails
    /// for a reason a stand-in can cover, hands a hint to the next fallback.
    async fn run(&self, alive: bool) -> SlotOutcome {
        let stats = &self.inner.stats;
        if !alive {
            return self.hint(DOWN.to_owned()).await;
        }
        CoordinatorStats::inc(&stats.replication_sent);
        let request = Request::Merge {
            row: self.row.clone(),
            cells: self.cells.clone(),
        };
        let cause = match self.inner.call(&self.node, request, self.deadline).await {
            Ok(Response::Merged { .. }) => return SlotOutcome::Acked,
            // The data itself was refused: a stand-in would refuse it too.
            Ok(
                response @ Response::Error {
                    kind: ErrorKind::InvalidInput | ErrorKind::BadRequest,
                    ..
                },
            ) => {
                CoordinatorStats::inc(&stats.replication_failed);
                return SlotOutcome::Failed(unexpected(&response));
            }
            Ok(other) => unexpected(&other),
            Err(CallFailure::Failed(reason)) => reason,
            Err(CallFailure::Deadline(reason)) => {
                CoordinatorStats::inc(&stats.replication_failed);
                // The replica may have applied it or not; a hint kept here
                // covers the second case (as Cassandra does for timeouts),
                // and merging it again later is harmless.
                let _ = self.keep_locally(&reason).await;
                return SlotOutcome::Deadline;
            }
        };
        CoordinatorStats::inc(&stats.replication_failed);
        self.hint(cause).await
    }

    /// Offers the replica's copy to unused live fallbacks in ring order until
    /// one stores it; as a last resort keeps it here, which never counts.
    async fn hint(&self, cause: String) -> SlotOutcome {
        let stats = &self.inner.stats;
        let mut attempts: Vec<String> = Vec::new();
        while let Some(fallback) = self.stand_in.then(|| next_fallback(&self.pool)).flatten() {
            CoordinatorStats::inc(&stats.hints_sent);
            let request = Request::StoreHint {
                target: self.node.clone(),
                row: self.row.clone(),
                cells: self.cells.clone(),
            };
            let reason = match self.inner.call(&fallback, request, self.deadline).await {
                Ok(Response::HintStored) => {
                    debug!(
                        node = %self.inner.local,
                        replica = %self.node,
                        %fallback,
                        partition = self.row.partition,
                        %cause,
                        "hinted"
                    );
                    return SlotOutcome::Hinted { fallback, cause };
                }
                Ok(other) => unexpected(&other),
                Err(failure) => failure.reason(),
            };
            CoordinatorStats::inc(&stats.hints_failed);
            attempts.push(format!("hint to {fallback} failed: {reason}"));
        }
        if attempts.is_empty() {
            attempts.push("no live fallback left".to_owned());
        }
        let kept = match self.keep_locally(&cause).await {
            Ok(()) => format!(
                "hint kept on {} (the coordinator; does not count towards W)",
                self.inner.local
            ),
            Err(reason) => format!("no hint kept anywhere: {reason}"),
        };
        SlotOutcome::Failed(format!("{cause}; {}; {kept}", attempts.join("; ")))
    }

    /// Stores the replica's copy as a hint on this node.
    async fn keep_locally(&self, cause: &str) -> Result<(), String> {
        let hints = self.inner.hints.clone();
        let hint = Hint {
            target: self.node.clone(),
            row: self.row.clone(),
            cells: self.cells.clone(),
            stored_at_ms: now_ms(),
        };
        match self
            .inner
            .config
            .storage
            .run(move || hints.store(&hint))
            .await
        {
            Ok(_) => {
                CoordinatorStats::inc(&self.inner.stats.hints_stored_locally);
                Ok(())
            }
            Err(error) => {
                CoordinatorStats::inc(&self.inner.stats.hints_lost);
                warn!(
                    node = %self.inner.local,
                    replica = %self.node,
                    partition = self.row.partition,
                    %cause,
                    %error,
                    "a replica missed a write and no hint could be stored for it; read repair or anti-entropy must fix it"
                );
                Err(error.to_string())
            }
        }
    }
}

async fn coordinate<T: Transport, M: MembershipView, E: Engine>(
    inner: Arc<Shared<T, M, E>>,
    req: WriteRequest,
    forwarding: Forwarding,
) -> Result<WriteOutcome, CoordinatorError> {
    validate(req.required, &req.replicas)?;
    validate_fallbacks(&req)?;
    if req.writes.is_empty() {
        return Err(CoordinatorError::InvalidRequest {
            reason: "a write needs at least one cell".to_owned(),
        });
    }
    let partition = req.row.partition;
    debug!(
        node = %inner.local,
        partition,
        cells = req.writes.len(),
        required = req.required,
        strict = req.strict,
        "write"
    );
    // Sloppy quorum: a live fallback can stand in for each down replica, unless the write is
    // strict; someone alive must still be a replica, since only a replica may mint the dot.
    let liveness = inner.liveness(&req.replicas, &req.fallbacks);
    liveness
        .check(req.required, Access::Write { strict: req.strict })
        .map_err(CoordinatorError::Unavailable)?;
    // The other set of a move counts real acks only.
    let also_liveness = inner.liveness(&req.also, &[]);
    if !req.also.is_empty() {
        also_liveness
            .check(req.required, Access::Write { strict: true })
            .map_err(CoordinatorError::Unavailable)?;
    }
    let targets = req.targets();
    let alive: Vec<NodeId> = targets
        .iter()
        .filter(|n| liveness.alive.contains(n) || also_liveness.alive.contains(n))
        .cloned()
        .collect();
    if !targets.contains(&inner.local) {
        return match forwarding {
            Forwarding::Allowed => forward(&inner, req, alive).await,
            Forwarding::Forbidden => Err(CoordinatorError::InvalidRequest {
                reason: format!(
                    "{} received a forwarded write but is not one of its replicas [{}]",
                    inner.local,
                    req.replicas.join(", ")
                ),
            }),
        };
    }

    let deadline = Instant::now() + inner.config.timeout;
    let mut quorum = Quorums::new(req.required, &req.replicas, &req.also);
    let local_timeout = || CoordinatorError::Timeout {
        required: req.required,
        acked: 0,
        replication: quorum_size(&req.replicas),
        pending: vec![inner.local.clone()],
        timeout_ms: inner.timeout_ms(),
    };

    let writes = if req.writes.iter().all(|write| write.context.is_some()) {
        with_contexts::<E>(None, &req.row, req.writes)?
    } else {
        let store = inner.store.clone();
        let row = req.row.clone();
        let writes = req.writes;
        inner
            .config
            .storage
            .run_point_read(move || with_contexts(Some(&store), &row, writes))
            .await?
    };
    // The local commit waits under the deadline too: a stalled disk must give the client a
    // timeout (the write may still be applied), never a request that hangs.
    let committed = inner.writer.write_row(req.row.clone(), writes, now_ms());
    let cells = match tokio::time::timeout_at(deadline, committed).await {
        Ok(cells) => cells?,
        Err(_) => return Err(local_timeout()),
    };
    quorum.on_ack(&inner.local);

    #[cfg(feature = "fault-injection")]
    if crate::fault::drop_replication() {
        // A deliberately broken build (chaos tests): acknowledge on the local copy alone.
        return Ok(WriteOutcome {
            cells,
            acked: req.required,
            required: req.required,
            replication: quorum.first.replication(),
            coordinator: inner.local.clone(),
            hinted: 0,
        });
    }

    let pool: FallbackPool = Arc::new(Mutex::new(liveness.live_fallbacks.into()));
    let (tx, mut rx) = mpsc::unbounded_channel::<(NodeId, SlotOutcome)>();
    // Closed when this function returns: the slots still running become stragglers.
    let (answered, answered_rx) = watch::channel(());
    let copy_bytes = cells
        .iter()
        .map(|(column, cell)| column.len() + approx_cell_bytes(cell))
        .sum::<usize>()
        + req.row.key.len();
    for node in targets.iter().filter(|n| **n != inner.local) {
        let slot = Slot {
            inner: inner.clone(),
            node: node.clone(),
            row: req.row.clone(),
            cells: cells.clone(),
            deadline,
            pool: pool.clone(),
            stand_in: req.replicas.contains(node),
        };
        let node = node.clone();
        let is_alive = alive.contains(&node);
        let tx = tx.clone();
        let answered = answered_rx.clone();
        let in_flight = InFlight::new(inner.stats.clone());
        tokio::spawn(async move {
            let _in_flight = in_flight;
            let outcome = slot.run_or_straggle(is_alive, answered, copy_bytes).await;
            // The coordinator may have answered already; then nobody listens.
            let _ = tx.send((node, outcome));
        });
    }
    drop(tx);
    // Dropped with this frame, whichever way it returns.
    let _answered = answered;

    loop {
        match quorum.state() {
            QuorumState::Succeeded => {
                return Ok(WriteOutcome {
                    cells,
                    acked: quorum.first.acked(),
                    required: quorum.first.required(),
                    replication: quorum.first.replication(),
                    coordinator: inner.local.clone(),
                    hinted: quorum.first.hinted(),
                })
            }
            QuorumState::Failed(failure) => return Err(CoordinatorError::Failed(failure)),
            QuorumState::Pending => {}
        }
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((node, SlotOutcome::Acked))) => {
                quorum.on_ack(&node);
            }
            Ok(Some((node, SlotOutcome::Hinted { fallback, cause }))) => {
                if req.strict {
                    quorum.on_failure(
                        &node,
                        format!(
                            "{cause}; hinted to {fallback}, which does not count towards W (strict)"
                        ),
                    );
                } else {
                    CoordinatorStats::inc(&inner.stats.hints_counted);
                    quorum.on_hinted(&node, &fallback, &cause);
                }
            }
            Ok(Some((node, SlotOutcome::Failed(reason)))) => {
                quorum.on_failure(&node, reason);
            }
            // Still pending at the deadline: the timeout branch reports it.
            Ok(Some((_, SlotOutcome::Deadline))) => {}
            // Every slot reports once, so the channel only closes early if a
            // task died; either way nothing more will come.
            Ok(None) | Err(_) => {
                return Err(CoordinatorError::Timeout {
                    required: quorum.first.required(),
                    acked: quorum.first.acked(),
                    replication: quorum.first.replication(),
                    pending: quorum.pending(),
                    timeout_ms: inner.timeout_ms(),
                })
            }
        }
    }
}

/// The quorums of a write: W in its replicas, and during a move W in the other set too.
struct Quorums {
    first: WriteQuorum,
    second: Option<WriteQuorum>,
}

impl Quorums {
    fn new(required: u32, replicas: &[NodeId], also: &[NodeId]) -> Self {
        Self {
            first: WriteQuorum::new(required, replicas.to_vec()),
            second: (!also.is_empty()).then(|| WriteQuorum::new(required, also.to_vec())),
        }
    }

    fn on_ack(&mut self, node: &str) {
        self.first.on_ack(node);
        if let Some(second) = &mut self.second {
            second.on_ack(node);
        }
    }

    /// A fallback's hint counts in the first set only.
    fn on_hinted(&mut self, node: &str, fallback: &str, cause: &str) {
        self.first.on_hinted(node, fallback);
        if let Some(second) = &mut self.second {
            second.on_failure(
                node,
                format!("{cause}; hinted to {fallback}, which does not count in the set data moves to or from"),
            );
        }
    }

    fn on_failure(&mut self, node: &str, reason: String) {
        if let Some(second) = &mut self.second {
            second.on_failure(node, reason.clone());
        }
        self.first.on_failure(node, reason);
    }

    fn state(&self) -> QuorumState {
        let second = self.second.as_ref().map(WriteQuorum::state);
        match (self.first.state(), second) {
            (QuorumState::Failed(failure), _) | (_, Some(QuorumState::Failed(failure))) => {
                QuorumState::Failed(failure)
            }
            (QuorumState::Succeeded, None | Some(QuorumState::Succeeded)) => QuorumState::Succeeded,
            _ => QuorumState::Pending,
        }
    }

    fn pending(&self) -> Vec<NodeId> {
        let mut pending = self.first.pending();
        if let Some(second) = &self.second {
            for node in second.pending() {
                if !pending.contains(&node) {
                    pending.push(node);
                }
            }
        }
        pending
    }
}

fn quorum_size(replicas: &[NodeId]) -> u32 {
    u32::try_from(replicas.len()).unwrap_or(u32::MAX)
}

/// The cell writes of a client write. A context-less one supersedes what this replica holds
/// now (a snapshot of the cell's join, read from `store`, which is needed only if some write has
/// no context); the write itself then gets a new dot in the group commit.
fn with_contexts<E: Engine>(
    store: Option<&CellStore<E>>,
    row: &RowKey,
    writes: Vec<ClientWrite>,
) -> Result<Vec<CellWrite>, StorageError> {
    let mut cell_writes = Vec::with_capacity(writes.len());
    for write in writes {
        let context = match (write.context, store) {
            (Some(context), _) => context,
            (None, Some(store)) => store.read_context(row, &write.column)?,
            (None, None) => {
                return Err(StorageError::InvalidBatch {
                    reason: "internal error: a blind write reached the store without a snapshot"
                        .to_owned(),
                })
            }
        };
        cell_writes.push(match write.value {
            Some(value) => CellWrite::Set {
                column: write.column,
                value,
                context,
            },
            None => CellWrite::Delete {
                column: write.column,
                context,
            },
        });
    }
    Ok(cell_writes)
}

/// Hands the write to the first live replica that takes it. Only a replica the request
/// certainly did not reach (connection refused, or one that refuses to coordinate) is skipped
/// for the next one: a replica that does not answer in time, or whose answer is lost, may still
/// apply the write, and trying another would apply it twice under two dots (a client that read
/// the first copy's value would then see the second come back as a sibling of its own write).
/// Such a write ends in a timeout, whose outcome is unknown, as for any client.
async fn forward<T: Transport, M: MembershipView, E: Engine>(
    inner: &Shared<T, M, E>,
    req: WriteRequest,
    alive: Vec<NodeId>,
) -> Result<WriteOutcome, CoordinatorError> {
    CoordinatorStats::inc(&inner.stats.writes_forwarded);
    let partition = req.row.partition;
    let mut attempts: Vec<(NodeId, String)> = Vec::new();
    for node in &alive {
        debug!(node = %inner.local, partition, to = %node, "forwarding write");
        let deadline = Instant::now() + inner.config.forward_timeout;
        let request = Request::Coordinate {
            request: req.clone(),
        };
        let unknown = |reason: String| {
            debug!(node = %inner.local, partition, to = %node, %reason, "forwarded write: outcome unknown");
            CoordinatorError::Timeout {
                required: req.required,
                acked: 0,
                replication: quorum_size(&req.replicas),
                pending: vec![node.clone()],
                timeout_ms: u64::try_from(inner.config.forward_timeout.as_millis())
                    .unwrap_or(u64::MAX),
            }
        };
        let call = inner.transport.call(node, request);
        match tokio::time::timeout_at(deadline, call).await {
            Ok(Ok(Response::Written { outcome })) => return Ok(outcome),
            // This node cannot coordinate at all: the write was not applied, try the next.
            Ok(Ok(Response::Error {
                kind: kind @ (ErrorKind::NotCoordinator | ErrorKind::BadRequest),
                message,
            })) => attempts.push((node.clone(), unexpected(&Response::Error { kind, message }))),
            Ok(Ok(Response::Error { kind, message })) => {
                return Err(CoordinatorError::from_remote(node, kind, message))
            }
            Ok(Ok(other)) => return Err(unknown(unexpected(&other))),
            // Never delivered: the next replica may take it.
            Ok(Err(error @ TransportError::Unreachable { .. })) => {
                attempts.push((node.clone(), error.to_string()))
            }
            Ok(Err(error)) => return Err(unknown(error.to_string())),
            Err(_) => return Err(unknown("no answer in time".to_owned())),
        }
    }
    let reason = attempts
        .iter()
        .map(|(node, reason)| format!("{node}: {reason}"))
        .collect::<Vec<_>>()
        .join("; ");
    Err(CoordinatorError::Forward {
        to: alive.first().cloned().unwrap_or_default(),
        reason: format!(
            "none of the {} live replicas took the write ({reason})",
            alive.len()
        ),
    })
}
