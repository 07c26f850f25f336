//! The initiator side of one exchange: drive an [`Initiator`] against one peer over the
//! transport, and carry out its repairs.
//!
//! Every request waits for its answer (the initiator has at most one outstanding) up to the call
//! timeout; a missing or failed answer is a timeout to the machine, which retransmits a few times
//! and then fails the exchange. Repairs move whole cells and merge them with DVV sync on both
//! sides, through the same merge as replication: cells only the peer has are fetched
//! ([`Request::ReadCells`]) and merged here; cells only this node has are sent to the peer
//! ([`Request::Merge`]); cells both hold differently are fetched, merged here, and the merge is
//! sent back, so both end with the join of the two. Nothing is ever overwritten.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tessera_merkle::{
    Action, Body, CellDiff, CellId, ExchangeConfig, ExchangeId, ExchangeStats, Initiator, Message,
};
use tessera_storage::cell::approx_cell_bytes;
use tessera_storage::{Cell, CellStore, Engine, RowKey, TableId};
use tokio::time::Instant;

use crate::call::{call, unexpected};
use crate::commit::RowWriter;
use crate::exec::StorageRunner;
use crate::messages::{Request, Response};
use crate::transport::{NodeId, Transport};

/// Most cells fetched in one request of a repair. Their sizes are unknown until they arrive, and
/// a cell may hold 16 MiB values: 16 of them stay well under the internal message limit.
const FETCH_CHUNK: usize = 16;
/// Most cells sent in one merge of a repair...
const PUSH_CELLS: usize = 256;
/// ...and about the most bytes of values (the cell that reaches it is the last).
const PUSH_BYTES: usize = 8 << 20;

/// What the initiator side needs to run exchanges.
pub(crate) struct ExchangeContext<T, E: Engine> {
    pub(crate) store: Arc<CellStore<E>>,
    pub(crate) writer: Arc<RowWriter<E>>,
    pub(crate) runner: StorageRunner,
    pub(crate) transport: T,
    pub(crate) config: ExchangeConfig,
    pub(crate) call_timeout: Duration,
}

/// What one exchange did, as the initiator counts it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ExchangeOutcome {
    /// The roots were equal.
    pub(crate) in_sync: bool,
    /// The machine's counts.
    pub(crate) stats: ExchangeStats,
    /// Cells fetched from the peer that changed this replica.
    pub(crate) pulled: u64,
    /// Cells sent to the peer that changed it.
    pub(crate) pushed: u64,
    /// Cells both held differently, merged on both sides.
    pub(crate) repaired: u64,
    /// Approximate bytes of the cells moved by repairs.
    pub(crate) repair_bytes: u64,
}

/// Why an exchange did not finish.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("exchange of table {table} partition {partition} with {peer} failed: {reason}")]
pub(crate) struct ExchangeFailure {
    pub(crate) peer: NodeId,
    pub(crate) table: TableId,
    pub(crate) partition: u16,
    pub(crate) reason: String,
    /// What the exchange had done before it failed (repairs stay done).
    pub(crate) partial: ExchangeOutcome,
}

/// Runs one exchange of (`table`, `partition`) with `peer`, session `session`.
pub(crate) async fn run_exchange<T: Transport, E: Engine>(
    ctx: &ExchangeContext<T, E>,
    peer: &NodeId,
    exchange: ExchangeId,
) -> Result<ExchangeOutcome, ExchangeFailure> {
    let mut outcome = ExchangeOutcome::default();
    let fail = |outcome: &ExchangeOutcome, reason: String| ExchangeFailure {
        peer: peer.clone(),
        table: exchange.table,
        partition: exchange.partition,
        reason,
        partial: outcome.clone(),
    };
    let store = ctx.store.clone();
    let (table, partition) = (exchange.table, exchange.partition);
    let tree = ctx
        .runner
        .run(move || store.load_tree(table, partition))
        .await
        .map_err(|e| fail(&outcome, e.to_string()))?;
    let (mut initiator, actions) =
        Initiator::start(exchange, tree, ctx.config).map_err(|e| fail(&outcome, e.to_string()))?;
    let mut queue: VecDeque<Action> = actions.into();
    while let Some(action) = queue.pop_front() {
        match action {
            Action::Send(message) => {
                let expects_reply = !matches!(message.body, Body::Done | Body::Abort { .. });
                let deadline = Instant::now() + ctx.call_timeout;
                let request = Request::AntiEntropy {
                    message: message.encode(),
                };
                let answer = call(&ctx.transport, peer, request, deadline).await;
                if !expects_reply {
                    continue;
                }
                match answer {
                    Ok(Response::AntiEntropy {
                        message: Some(bytes),
                    }) => match Message::decode(&bytes) {
                        Ok(reply) => queue.extend(initiator.on_message(&reply)),
                        Err(error) => return Err(fail(&outcome, error.to_string())),
                    },
                    // No answer counts as a lost reply: the machine retransmits or gives up.
                    Ok(Response::AntiEntropy { message: None }) | Err(_) => {
                        queue.extend(initiator.on_timeout())
                    }
                    Ok(other) => return Err(fail(&outcome, unexpected(&other))),
                }
            }
            Action::Scan(request) => {
                let store = ctx.store.clone();
                let scan = request.clone();
                let cells = ctx
                    .runner
                    .run(move || store.scan_cell_digests(table, &scan))
                    .await
                    .map_err(|e| fail(&outcome, e.to_string()))?;
                queue.extend(initiator.on_scan(&request, cells));
            }
            Action::Repair(diff) => {
                repair(ctx, peer, table, partition, diff, &mut outcome)
                    .await
                    .map_err(|reason| fail(&outcome, reason))?;
            }
            Action::Finished(report) => {
                outcome.in_sync = report.in_sync;
                outcome.stats = report.stats;
                return Ok(outcome);
            }
            Action::Failed(error) => {
                outcome.stats = initiator.stats();
                return Err(fail(&outcome, error.to_string()));
            }
        }
    }
    outcome.stats = initiator.stats();
    Err(fail(
        &outcome,
        "the exchange stopped without an end".to_owned(),
    ))
}

/// Cells grouped by row, for merges.
type ByRow = BTreeMap<(u64, Vec<u8>), Vec<(Vec<u8>, Cell)>>;

fn group(cells: impl IntoIterator<Item = (CellId, Cell)>) -> ByRow {
    let mut rows = ByRow::new();
    for (id, cell) in cells {
        rows.entry((id.token, id.key))
            .or_default()
            .push((id.column, cell));
    }
    rows
}

/// One row's cells cut into merges of at most [`PUSH_CELLS`] cells and about [`PUSH_BYTES`].
fn push_chunks(cells: Vec<(Vec<u8>, Cell)>) -> Vec<Vec<(Vec<u8>, Cell)>> {
    let mut chunks = Vec::new();
    let mut chunk = Vec::new();
    let mut bytes = 0usize;
    for (column, cell) in cells {
        bytes += approx_cell_bytes(&cell) + column.len();
        chunk.push((column, cell));
        if chunk.len() >= PUSH_CELLS || bytes >= PUSH_BYTES {
            chunks.push(std::mem::take(&mut chunk));
            bytes = 0;
        }
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    chunks
}

/// Carries out one `Repair` action.
async fn repair<T: Transport, E: Engine>(
    ctx: &ExchangeContext<T, E>,
    peer: &NodeId,
    table: TableId,
    partition: u16,
    diff: CellDiff,
    outcome: &mut ExchangeOutcome,
) -> Result<(), String> {
    let row = |token: u64, key: Vec<u8>| RowKey::new(table, partition, token, key);
    // Fetch what the peer has of `pull` and `diverged`, and merge it here.
    let diverged: std::collections::BTreeSet<CellId> = diff.diverged.iter().cloned().collect();
    let mut to_send: Vec<(CellId, Cell)> = Vec::new();
    let wanted: Vec<CellId> = diff.pull.into_iter().chain(diff.diverged).collect();
    for chunk in wanted.chunks(FETCH_CHUNK) {
        let request = Request::ReadCells {
            table,
            partition,
            ids: chunk.to_vec(),
        };
        let deadline = Instant::now() + ctx.call_timeout;
        let cells = match call(&ctx.transport, peer, request, deadline).await {
            Ok(Response::Cells { cells }) => cells,
            Ok(other) => return Err(unexpected(&other)),
            Err(failure) => return Err(failure.reason()),
        };
        let present = cells
            .into_iter()
            .filter_map(|(id, cell)| cell.map(|cell| (id, cell)));
        for ((token, key), cells) in group(present) {
            outcome.repair_bytes += cells
                .iter()
                .map(|(_, c)| approx_cell_bytes(c) as u64)
                .sum::<u64>();
            let merged = ctx
                .writer
                .merge_row(row(token, key.clone()), cells)
                .await
                .map_err(|e| e.to_string())?;
            for merge in merged {
                let id = CellId::new(token, key.clone(), merge.column);
                if diverged.contains(&id) {
                    outcome.repaired += 1;
                    // The join of both goes back, so the peer ends where this node did.
                    to_send.push((id, merge.cell));
                } else if merge.changed {
                    outcome.pulled += 1;
                }
            }
        }
    }
    // Read what this node has of `push`, and send it with the merges above.
    let store = ctx.store.clone();
    let push = diff.push;
    let local = ctx
        .runner
        .run(move || store.read_cells(table, partition, &push))
        .await
        .map_err(|e| e.to_string())?;
    to_send.extend(
        local
            .into_iter()
            .filter_map(|(id, cell)| cell.map(|cell| (id, cell))),
    );
    for ((token, key), cells) in group(to_send) {
        for chunk in push_chunks(cells) {
            outcome.repair_bytes += chunk
                .iter()
                .map(|(_, c)| approx_cell_bytes(c) as u64)
                .sum::<u64>();
            let request = Request::Merge {
                row: row(token, key.clone()),
                cells: chunk,
            };
            let deadline = Instant::now() + ctx.call_timeout;
            match call(&ctx.transport, peer, request, deadline).await {
                Ok(Response::Merged { changed }) => outcome.pushed += u64::from(changed),
                Ok(other) => return Err(unexpected(&other)),
                Err(failure) => return Err(failure.reason()),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_storage::CellValue;

    fn cell(bytes: usize) -> Cell {
        Cell::from_value(CellValue::value(vec![0u8; bytes], 1))
    }

    #[test]
    fn pushes_are_cut_by_cells_and_by_bytes() {
        let small: Vec<_> = (0..600u32)
            .map(|i| (i.to_be_bytes().to_vec(), cell(10)))
            .collect();
        let sizes: Vec<usize> = push_chunks(small).iter().map(Vec::len).collect();
        assert_eq!(sizes, [PUSH_CELLS, PUSH_CELLS, 600 - 2 * PUSH_CELLS]);

        let big: Vec<_> = (0..5u32)
            .map(|i| (i.to_be_bytes().to_vec(), cell(3 << 20)))
            .collect();
        let sizes: Vec<usize> = push_chunks(big).iter().map(Vec::len).collect();
        // 3 MiB each: the third reaches 8 MiB and ends its merge.
        assert_eq!(sizes, [3, 2]);
        assert!(push_chunks(Vec::new()).is_empty());
    }
}
