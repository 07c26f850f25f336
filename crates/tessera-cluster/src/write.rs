//! The write path: forward to a replica, apply locally, replicate, count acks.
//!
//! The coordinating replica mints the write's dot with
//! [`CellStore::write_row`] and sends the resulting cells (the whole sibling
//! set, not the client's value) to the other replicas as a `Merge`, which is
//! idempotent and commutative, so late or repeated deliveries are harmless.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tessera_storage::{Cell, CellStore, CellWrite, Engine, RowKey, StorageError};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::debug;

use crate::coordinator::{validate, CallFailure, Inner, DOWN};
use crate::error::CoordinatorError;
use crate::membership::MembershipView;
use crate::messages::{ErrorKind, Request, Response};
use crate::ops::{ClientWrite, WriteOutcome, WriteRequest};
use crate::quorum::{QuorumFailure, QuorumState, WriteQuorum};
use crate::stats::{CoordinatorStats, InFlight};
use crate::transport::{NodeId, Transport};

/// Whether a write that reaches a non-replica may be forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Forwarding {
    /// A client's write: forward it if this node is not a replica.
    Allowed,
    /// A forwarded write: coordinate it here or refuse, so forwarding cannot loop.
    Forbidden,
}

fn count(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// Milliseconds since the Unix epoch; informational only (see `CellValue`).
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

pub(crate) async fn write<T: Transport, M: MembershipView, E: Engine>(
    inner: Arc<Inner<T, M, E>>,
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

/// The failure of a request that could not start: only the down replicas failed.
fn unavailable(required: u32, replicas: &[NodeId], down: &[NodeId]) -> CoordinatorError {
    CoordinatorError::Unavailable(QuorumFailure {
        required,
        acked: 0,
        acked_by: Vec::new(),
        failed: down.iter().map(|n| (n.clone(), DOWN.to_owned())).collect(),
        replication: count(replicas.len()),
    })
}

async fn coordinate<T: Transport, M: MembershipView, E: Engine>(
    inner: Arc<Inner<T, M, E>>,
    req: WriteRequest,
    forwarding: Forwarding,
) -> Result<WriteOutcome, CoordinatorError> {
    validate(req.required, &req.replicas)?;
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
        "write"
    );
    let (alive, down) = inner.split_alive(&req.replicas);
    // Seam for sloppy quorum: hinted handoff would replace `down` replicas
    // with stand-ins here; for now they simply count as failed.
    if (alive.len() as u64) < u64::from(req.required) {
        return Err(unavailable(req.required, &req.replicas, &down));
    }
    if !req.replicas.contains(&inner.local) {
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
    let mut quorum = WriteQuorum::new(req.required, req.replicas.clone());
    for node in &down {
        quorum.on_failure(node, DOWN);
    }

    let store = inner.store.clone();
    let row = req.row.clone();
    let writes = req.writes;
    let cells = inner
        .config
        .storage
        .run(move || apply_locally(&store, &row, writes))
        .await?;
    quorum.on_ack(&inner.local);

    let (tx, mut rx) = mpsc::unbounded_channel::<(NodeId, Result<(), CallFailure>)>();
    for node in alive.into_iter().filter(|n| *n != inner.local) {
        let request = Request::Merge {
            row: req.row.clone(),
            cells: cells.clone(),
        };
        let call = inner.call(&node, request, deadline);
        let stats = inner.stats.clone();
        let tx = tx.clone();
        CoordinatorStats::inc(&stats.replication_sent);
        // Each send runs to completion or the deadline even after the client
        // has its answer: those are the stragglers finishing in the background.
        let in_flight = InFlight::new(stats.clone());
        tokio::spawn(async move {
            let _in_flight = in_flight;
            let result = match call.await {
                Ok(Response::Merged { .. }) => Ok(()),
                Ok(other) => Err(CallFailure::Failed(unexpected(&other))),
                Err(failure) => Err(failure),
            };
            if result.is_err() {
                CoordinatorStats::inc(&stats.replication_failed);
            }
            // The coordinator may have answered already; then nobody listens.
            let _ = tx.send((node, result));
        });
    }
    drop(tx);

    loop {
        match quorum.state() {
            QuorumState::Succeeded => {
                return Ok(WriteOutcome {
                    cells,
                    acked: quorum.acked(),
                    required: quorum.required(),
                    replication: quorum.replication(),
                    coordinator: inner.local.clone(),
                })
            }
            QuorumState::Failed(failure) => return Err(CoordinatorError::Failed(failure)),
            QuorumState::Pending => {}
        }
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((node, Ok(())))) => {
                quorum.on_ack(&node);
            }
            Ok(Some((node, Err(CallFailure::Failed(reason))))) => {
                quorum.on_failure(&node, reason);
            }
            // Still pending at the deadline: the timeout branch reports it.
            Ok(Some((_, Err(CallFailure::Deadline(_))))) => {}
            // Every send reports once, so the channel only closes early if a
            // task died; either way nothing more will come.
            Ok(None) | Err(_) => {
                return Err(CoordinatorError::Timeout {
                    required: quorum.required(),
                    acked: quorum.acked(),
                    replication: quorum.replication(),
                    pending: quorum.pending(),
                    timeout_ms: u64::try_from(inner.config.timeout.as_millis()).unwrap_or(u64::MAX),
                })
            }
        }
    }
}

/// Describes a response of the wrong kind (or a remote failure) as a failure reason.
pub(crate) fn unexpected(response: &Response) -> String {
    match response {
        Response::Error { kind, message } => format!("remote {}: {message}", kind_name(kind)),
        other => format!("protocol error: unexpected {} response", other.name()),
    }
}

fn kind_name(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::BadRequest => "bad request",
        ErrorKind::InvalidInput => "invalid input",
        ErrorKind::Storage => "storage failure",
        ErrorKind::TooManySiblings { .. } => "too many siblings",
        ErrorKind::Unavailable(_) => "unavailable",
        ErrorKind::QuorumFailed(_) => "quorum failure",
        ErrorKind::Timeout { .. } => "timeout",
        ErrorKind::Forward { .. } => "forwarding failure",
        ErrorKind::NotCoordinator => "not a coordinator",
        ErrorKind::Internal => "internal error",
    }
}

/// Resolves context-less writes against what this replica holds (a snapshot
/// of each cell's join, so they supersede it), then writes with a new dot.
fn apply_locally<E: Engine>(
    store: &CellStore<E>,
    row: &RowKey,
    writes: Vec<ClientWrite>,
) -> Result<Vec<(Vec<u8>, Cell)>, StorageError> {
    let mut cell_writes = Vec::with_capacity(writes.len());
    for write in writes {
        let context = match write.context {
            Some(context) => context,
            None => store
                .read_cell(row, &write.column)?
                .map(|cell| cell.join())
                .unwrap_or_default(),
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
    store.write_row(row, &cell_writes, now_ms())
}

/// Hands the write to the first live replica that takes it. A replica that
/// cannot be reached (or does not answer in time) is skipped; one that
/// answers decides, success or failure.
///
/// A replica that timed out may still have applied the write, so retrying at
/// the next one can apply it twice: with a context (or with none, if the
/// second replica had seen the first copy) the second copy supersedes the
/// first; otherwise both stay as siblings, as for any client retry.
async fn forward<T: Transport, M: MembershipView, E: Engine>(
    inner: &Inner<T, M, E>,
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
        match inner.call(node, request, deadline).await {
            Ok(Response::Written { outcome }) => return Ok(outcome),
            // This node cannot coordinate at all: the write was not applied, try the next.
            Ok(Response::Error {
                kind: kind @ (ErrorKind::NotCoordinator | ErrorKind::BadRequest),
                message,
            }) => attempts.push((node.clone(), unexpected(&Response::Error { kind, message }))),
            Ok(Response::Error { kind, message }) => {
                return Err(CoordinatorError::from_remote(node, kind, message))
            }
            Ok(other) => attempts.push((node.clone(), unexpected(&other))),
            Err(failure) => attempts.push((node.clone(), failure.reason())),
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
            "none of the {} live replicas took the write ({reason}); a replica that timed out may still apply it",
            alive.len()
        ),
    })
}
