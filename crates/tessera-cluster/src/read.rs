//! The read path: ask every live replica, answer after R, repair the rest.
//!
//! Once R replicas answered, the merge of their answers goes to the caller.
//! A background task then keeps collecting answers until the deadline, merges
//! everything that arrived, and sends every replica whose answer differs from
//! that merge the cells it lacks (read repair). Using the merge of all answers
//! rather than only the first R means a late replica holding newer data
//! spreads it too.
//!
//! The repair task outlives the request, so it runs under the coordinator's
//! background budget: a read whose repair the budget cannot admit is answered
//! as usual and its repair skipped (counted; the next read or anti-entropy
//! repairs it), and a stopping node cuts running repairs short.

use std::sync::Arc;

use tessera_storage::cell::is_deleted;
use tessera_storage::{Cell, Engine, RowKey, RowPage, RowSlice, StorageError};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::debug;

use crate::answer::ReadAnswer;
use crate::availability::DOWN;
use crate::call::{unexpected, CallFailure};
use crate::error::CoordinatorError;
use crate::membership::MembershipView;
use crate::messages::{Request, Response};
use crate::ops::{validate, ReadOutcome};
use crate::quorum::{ReadQuorum, ReadState};
use crate::shared::Shared;
use crate::stats::{CoordinatorStats, InFlight};
use crate::transport::{NodeId, Transport};

/// Fewest cells asked of each replica per round of a row read that skips
/// tombstones, so a run of tombstones costs few rounds.
const MIN_ROUND_LIMIT: usize = 16;

type Answers<A> = mpsc::UnboundedReceiver<(NodeId, Result<A, CallFailure>)>;

/// How one kind of read is asked, answered and repaired.
struct ReadKind<L, D, R> {
    /// The local read, run through the storage runner.
    local: L,
    /// Whether the local read is of one cell (see `StorageRunner::run_point_read`).
    point: bool,
    /// What remote replicas are sent.
    request: Request,
    /// A remote replica's answer, checked.
    decode: D,
    /// The cells a stale replica is sent.
    repair_cells: R,
}

pub(crate) async fn read_cell<T: Transport, M: MembershipView, E: Engine>(
    inner: Arc<Shared<T, M, E>>,
    row: RowKey,
    column: Vec<u8>,
    required: u32,
    replicas: Vec<NodeId>,
) -> Result<ReadOutcome<Option<Cell>>, CoordinatorError> {
    let store = inner.store.clone();
    let kind = ReadKind {
        local: {
            let (row, column) = (row.clone(), column.clone());
            move || store.read_cell(&row, &column)
        },
        point: true,
        request: Request::ReadCell {
            row: row.clone(),
            column: column.clone(),
        },
        decode: |response| match response {
            Response::Cell { cell } => Ok(cell),
            other => Err(unexpected(&other)),
        },
        repair_cells: move |cell: Cell| vec![(column.clone(), cell)],
    };
    quorum_read(inner, row, required, replicas, kind).await
}

pub(crate) async fn read_row<T: Transport, M: MembershipView, E: Engine>(
    inner: Arc<Shared<T, M, E>>,
    row: RowKey,
    slice: RowSlice,
    required: u32,
    replicas: Vec<NodeId>,
) -> Result<ReadOutcome<RowPage>, CoordinatorError> {
    let live_only = !slice.include_tombstones;
    let mut cells: Vec<(Vec<u8>, Cell)> = Vec::new();
    let mut cursor = slice.after.clone();
    let mut acked = u32::MAX;
    loop {
        // One more than still fits, to learn whether the page is cut.
        let wanted = slice.limit.saturating_sub(cells.len()).saturating_add(1);
        let round = RowSlice {
            from: slice.from.clone(),
            after: cursor.clone(),
            to: slice.to.clone(),
            limit: if live_only {
                wanted.max(MIN_ROUND_LIMIT)
            } else {
                wanted
            },
            include_tombstones: true,
        };
        let store = inner.store.clone();
        let kind = ReadKind {
            local: {
                let (row, round) = (row.clone(), round.clone());
                move || store.read_row(&row, &round)
            },
            point: false,
            request: Request::ReadRow {
                row: row.clone(),
                slice: round,
            },
            decode: |response| match response {
                Response::Row { page } => check_page(page),
                other => Err(unexpected(&other)),
            },
            repair_cells: |cells| cells,
        };
        let outcome =
            quorum_read(inner.clone(), row.clone(), required, replicas.clone(), kind).await?;
        acked = acked.min(outcome.acked);
        let page = outcome.value;
        let last = page.cells.last().map(|(column, _)| column.clone());
        cells.extend(
            page.cells
                .into_iter()
                .filter(|(_, cell)| !(live_only && is_deleted(cell))),
        );
        let done = |cells: Vec<(Vec<u8>, Cell)>, more: bool| {
            Ok(ReadOutcome {
                value: RowPage { cells, more },
                acked,
                required: outcome.required,
                replication: outcome.replication,
            })
        };
        if cells.len() > slice.limit {
            cells.truncate(slice.limit);
            return done(cells, true);
        }
        match (page.more, last) {
            // The merge covers every column up to `last` and more may follow:
            // continue after it. `last` strictly grows, so this ends.
            (true, Some(last)) => cursor = Some(last),
            // A merged page that is cut always holds a cell (see `check_page`).
            _ => return done(cells, false),
        }
    }
}

/// Rejects pages that would break the merge: columns out of order, or a page
/// that claims more follows but holds nothing to continue from.
fn check_page(page: RowPage) -> Result<RowPage, String> {
    if page.more && page.cells.is_empty() {
        return Err("protocol error: a page cut by its limit holds no cells".to_owned());
    }
    if page.cells.windows(2).any(|pair| pair[0].0 >= pair[1].0) {
        return Err("protocol error: page columns are not strictly ascending".to_owned());
    }
    Ok(page)
}

async fn quorum_read<T, M, E, A, L, D, R>(
    inner: Arc<Shared<T, M, E>>,
    row: RowKey,
    required: u32,
    replicas: Vec<NodeId>,
    kind: ReadKind<L, D, R>,
) -> Result<ReadOutcome<A>, CoordinatorError>
where
    T: Transport,
    M: MembershipView,
    E: Engine,
    A: ReadAnswer + Send + 'static,
    A::Repair: Send,
    L: FnOnce() -> Result<A, StorageError> + Send + 'static,
    D: Fn(Response) -> Result<A, String> + Copy + Send + 'static,
    R: Fn(A::Repair) -> Vec<(Vec<u8>, Cell)> + Send + 'static,
{
    validate(required, &replicas)?;
    let stats = inner.stats.clone();
    CoordinatorStats::inc(&stats.reads);
    debug!(
        node = %inner.local,
        partition = row.partition,
        request = kind.request.name(),
        required,
        "read"
    );
    let liveness = inner.liveness(&replicas, &[]);
    let mut quorum = ReadQuorum::<A>::new(required, replicas);
    for node in &liveness.down {
        quorum.on_failure(node, DOWN);
    }
    if let ReadState::Failed(failure) = quorum.state() {
        CoordinatorStats::inc(&stats.reads_unavailable);
        return Err(CoordinatorError::Unavailable(failure));
    }

    let deadline = Instant::now() + inner.config.timeout;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut local = Some(kind.local);
    for node in liveness.alive {
        let tx = tx.clone();
        if node == inner.local {
            // `validate` rejected duplicates, so this runs at most once.
            let Some(read) = local.take() else { continue };
            let (runner, point) = (inner.config.storage, kind.point);
            tokio::spawn(async move {
                let answer = if point {
                    runner.run_point_read(read).await
                } else {
                    runner.run(read).await
                };
                let answer = answer.map_err(|e| CallFailure::Failed(format!("local storage: {e}")));
                let _ = tx.send((node, answer));
            });
        } else {
            let call = inner.call(&node, kind.request.clone(), deadline);
            let decode = kind.decode;
            tokio::spawn(async move {
                let answer = call
                    .await
                    .and_then(|response| decode(response).map_err(CallFailure::Failed));
                let _ = tx.send((node, answer));
            });
        }
    }
    drop(tx);

    let verdict = collect(&mut quorum, &mut rx, deadline).await;
    let result = match verdict {
        ReadState::Succeeded(value) => {
            CoordinatorStats::inc(&stats.reads_succeeded);
            Ok(ReadOutcome {
                value,
                acked: quorum.answered(),
                required,
                replication: quorum.replication(),
            })
        }
        ReadState::Failed(failure) => {
            CoordinatorStats::inc(&stats.reads_failed);
            Err(CoordinatorError::Failed(failure))
        }
        ReadState::Pending => {
            CoordinatorStats::inc(&stats.reads_timed_out);
            Err(CoordinatorError::Timeout {
                required,
                acked: quorum.answered(),
                replication: quorum.replication(),
                pending: quorum.pending(),
                timeout_ms: inner.timeout_ms(),
            })
        }
    };
    // Repair even after a failed read: whatever did answer can still be reconciled. What the
    // repair holds is about one answer per replica.
    let bytes = result
        .as_ref()
        .map_or(0, |outcome| outcome.value.approx_bytes())
        .saturating_mul(quorum.replication() as usize);
    match inner.background.try_acquire(bytes) {
        Some(permit) => {
            let guard = InFlight::new(stats);
            tokio::spawn(async move {
                let _in_flight = guard;
                let given_up = permit.given_up();
                tokio::select! {
                    () = repair(inner.clone(), row, quorum, rx, deadline, kind.repair_cells) => {}
                    () = given_up => CoordinatorStats::inc(&inner.stats.repairs_skipped),
                }
                drop(permit);
            });
        }
        None => CoordinatorStats::inc(&stats.repairs_skipped),
    }
    result
}

/// Feeds answers to the quorum until it decides or the deadline passes
/// (`Pending` then).
async fn collect<A: ReadAnswer>(
    quorum: &mut ReadQuorum<A>,
    answers: &mut Answers<A>,
    deadline: Instant,
) -> ReadState<A> {
    loop {
        let state = quorum.state();
        if !matches!(state, ReadState::Pending) {
            return state;
        }
        match tokio::time::timeout_at(deadline, answers.recv()).await {
            Ok(Some((node, Ok(answer)))) => {
                quorum.on_answer(&node, answer);
            }
            Ok(Some((node, Err(CallFailure::Failed(reason))))) => {
                quorum.on_failure(&node, reason);
            }
            // Still pending at the deadline: the caller reports a timeout.
            Ok(Some((_, Err(CallFailure::Deadline(_))))) => {}
            // Every replica reports once, so the channel only closes early if
            // a task died; either way nothing more will come.
            Ok(None) | Err(_) => return ReadState::Pending,
        }
    }
}

/// Waits for the remaining answers until `deadline`, then sends each stale
/// replica what it lacks.
async fn repair<T, M, E, A, R>(
    inner: Arc<Shared<T, M, E>>,
    row: RowKey,
    mut quorum: ReadQuorum<A>,
    mut answers: Answers<A>,
    deadline: Instant,
    repair_cells: R,
) where
    T: Transport,
    M: MembershipView,
    E: Engine,
    A: ReadAnswer,
    R: Fn(A::Repair) -> Vec<(Vec<u8>, Cell)>,
{
    while let Ok(Some((node, answer))) = tokio::time::timeout_at(deadline, answers.recv()).await {
        match answer {
            Ok(answer) => quorum.on_answer(&node, answer),
            Err(failure) => quorum.on_failure(&node, failure.reason()),
        };
    }
    let repairs = quorum.repairs();
    if repairs.is_empty() {
        return;
    }
    let repair_deadline = Instant::now() + inner.config.timeout;
    let mut sends = Vec::with_capacity(repairs.len());
    for (node, repair) in repairs {
        let cells = repair_cells(repair);
        let stats = inner.stats.clone();
        CoordinatorStats::inc(&stats.repairs_sent);
        CoordinatorStats::add(&stats.repair_cells, cells.len() as u64);
        debug!(
            node = %inner.local,
            partition = row.partition,
            to = %node,
            cells = cells.len(),
            "read repair"
        );
        let send: crate::transport::BoxFuture<'static, Result<(), String>> = if node == inner.local
        {
            let writer = inner.writer.clone();
            let row = row.clone();
            Box::pin(async move {
                match tokio::time::timeout_at(repair_deadline, writer.merge_row(row, cells)).await {
                    Ok(merged) => merged
                        .map(|_| ())
                        .map_err(|e| format!("local storage: {e}")),
                    Err(_) => Err("local storage: no commit within the deadline".to_owned()),
                }
            })
        } else {
            let call = inner.call(
                &node,
                Request::Merge {
                    row: row.clone(),
                    cells,
                },
                repair_deadline,
            );
            Box::pin(async move {
                match call.await {
                    Ok(Response::Merged { .. }) => Ok(()),
                    Ok(other) => Err(unexpected(&other)),
                    Err(failure) => Err(failure.reason()),
                }
            })
        };
        sends.push(tokio::spawn(async move {
            if let Err(reason) = send.await {
                CoordinatorStats::inc(&stats.repairs_failed);
                debug!(to = %node, %reason, "read repair failed");
            }
        }));
    }
    for send in sends {
        // A send that panicked is already counted as nothing; keep waiting for the rest.
        let _ = send.await;
    }
}
