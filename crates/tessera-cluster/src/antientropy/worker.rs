//! The anti-entropy worker: sweeps, their plan, one partition per step, and what they found.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tessera_merkle::{ExchangeConfig, ExchangeId};
use tessera_storage::{CellStore, Engine, TableId};
use tessera_worker::{Step, StepContext, Worker, WorkerError, WorkerStatus};
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::exchange::{run_exchange, ExchangeContext, ExchangeOutcome};
use crate::clock::system_now_ms;
use crate::commit::RowWriter;
use crate::exec::StorageRunner;
use crate::membership::MembershipView;
use crate::topology::Topology;
use crate::transport::{NodeId, Transport};

/// The worker's name.
pub const ANTI_ENTROPY: &str = "anti-entropy";

/// The tables to sweep, with their replication factors: asked at the start of every sweep, so
/// tables created since are swept.
pub type PartitionTables = Arc<dyn Fn() -> Vec<(TableId, u32)> + Send + Sync>;

/// Tuning of anti-entropy. `Default` is what a node runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AntiEntropyConfig {
    /// A sweep starts this long after the previous one started (at once if that one took
    /// longer).
    pub sweep_interval: Duration,
    /// How long one request of an exchange or a repair may take.
    pub call_timeout: Duration,
    /// How often each partition's kept tree is checked against one rebuilt from a scan (and on
    /// its first visit after start).
    pub verify_interval: Duration,
    /// Limits of one exchange.
    pub exchange: ExchangeConfig,
    /// Where storage calls run.
    pub storage: StorageRunner,
}

impl Default for AntiEntropyConfig {
    fn default() -> Self {
        Self {
            sweep_interval: Duration::from_secs(300),
            call_timeout: Duration::from_secs(10),
            verify_interval: Duration::from_secs(3600),
            exchange: ExchangeConfig::default(),
            storage: StorageRunner::Blocking,
        }
    }
}

/// One table as the last sweeps saw it on this node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableRepairStatus {
    /// The table.
    pub table: TableId,
    /// Partitions of it this node replicates (as of the last visit of each).
    pub partitions: u64,
    /// Of those, the ones whose last visit found every replica's root equal to this one's.
    pub in_sync: u64,
    /// How long ago the last full sweep of the table ended, in ms; `None` before the first.
    pub last_full_sweep_age_ms: Option<u64>,
    /// How long ago the partition least recently synced with every replica was (its last visit
    /// whose exchanges all completed), in ms; since start for one never synced.
    pub oldest_unsynced_age_ms: u64,
}

/// A snapshot of anti-entropy on this node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AntiEntropyStatus {
    /// A sweep is under way.
    pub sweeping: bool,
    /// Partitions visited of the sweep under way, and in it.
    pub sweep_done: u64,
    /// Partitions in the sweep under way.
    pub sweep_total: u64,
    /// Sweeps completed since start.
    pub sweeps: u64,
    /// Exchanges completed (in sync or repaired).
    pub exchanges: u64,
    /// Exchanges that found the roots equal.
    pub exchanges_in_sync: u64,
    /// Exchanges that failed (peer down or unreachable, timeouts, storage).
    pub exchanges_failed: u64,
    /// Tree nodes (root, branches, segments) compared.
    pub segments_compared: u64,
    /// Segments found to differ.
    pub segments_differing: u64,
    /// Cells fetched from peers that changed this replica.
    pub keys_pulled: u64,
    /// Cells sent to peers that changed them.
    pub keys_pushed: u64,
    /// Cells both sides held differently, merged on both.
    pub keys_repaired: u64,
    /// Bytes of exchange messages sent and received, plus the cells moved by repairs.
    pub bytes: u64,
    /// Kept trees checked against a rebuild.
    pub tree_checks: u64,
    /// Tree nodes found wrong by those checks (and repaired).
    pub tree_nodes_repaired: u64,
    /// Tombstones purged (always 0: not implemented yet).
    pub tombstones_purged: u64,
    /// The last failure.
    pub last_error: Option<String>,
    /// Every table seen by a sweep, by id.
    pub tables: Vec<TableRepairStatus>,
}

/// What one whole sweep did (for tests that run sweeps by hand).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Partitions visited.
    pub partitions: u64,
    /// Exchanges completed.
    pub exchanges: u64,
    /// Of those, in sync.
    pub in_sync: u64,
    /// Exchanges failed.
    pub failed: u64,
    /// Cells pulled, pushed and repaired.
    pub moved: u64,
}

#[derive(Clone, Debug)]
struct Visit {
    table: TableId,
    /// The table's replication factor.
    n: u32,
    partition: u16,
}

#[derive(Debug, Default)]
struct PartitionState {
    last_synced: Option<Instant>,
    in_sync: bool,
    verified_at: Option<Instant>,
}

#[derive(Debug)]
struct Sweep {
    total: u64,
    done: u64,
    tables: Vec<TableId>,
    report: SweepReport,
}

struct State {
    status: AntiEntropyStatus,
    plan: VecDeque<Visit>,
    sweep: Option<Sweep>,
    next_sweep: Option<Instant>,
    requested: Option<Option<TableId>>,
    partitions: BTreeMap<(TableId, u16), PartitionState>,
    last_full_sweep: BTreeMap<TableId, Instant>,
    session: u64,
    started: Instant,
    last_report: Option<SweepReport>,
}

/// Anti-entropy on one node: its sweeps and their status. Shared by the worker, the API and the
/// metrics.
pub struct AntiEntropy<T, M, E: Engine> {
    local: NodeId,
    ctx: ExchangeContext<T, E>,
    membership: M,
    topology: Arc<Topology>,
    tables: PartitionTables,
    config: AntiEntropyConfig,
    state: Mutex<State>,
    nudge: Notify,
}

impl<T, M, E: Engine> std::fmt::Debug for AntiEntropy<T, M, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AntiEntropy")
            .field("local", &self.local)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What one step did.
enum Stepped {
    Idle,
    Visited(u64),
}

impl<T: Transport, M: MembershipView, E: Engine> AntiEntropy<T, M, E> {
    /// Anti-entropy of node `local`, comparing `writer`'s store with peers reached through
    /// `transport`, over the partitions `topology` places here for `tables`.
    pub fn new(
        local: impl Into<NodeId>,
        writer: Arc<RowWriter<E>>,
        transport: T,
        membership: M,
        topology: Arc<Topology>,
        tables: PartitionTables,
        config: AntiEntropyConfig,
    ) -> Arc<Self> {
        let store: Arc<CellStore<E>> = writer.store().clone();
        let now = Instant::now();
        Arc::new(Self {
            local: local.into(),
            ctx: ExchangeContext {
                store,
                writer,
                runner: config.storage,
                transport,
                config: config.exchange,
                call_timeout: config.call_timeout,
            },
            membership,
            topology,
            tables,
            config,
            state: Mutex::new(State {
                status: AntiEntropyStatus::default(),
                plan: VecDeque::new(),
                sweep: None,
                next_sweep: Some(now),
                requested: None,
                partitions: BTreeMap::new(),
                last_full_sweep: BTreeMap::new(),
                // Sessions only have to differ from this node's earlier ones, restarts included.
                session: system_now_ms().saturating_mul(1000),
                started: now,
                last_report: None,
            }),
            nudge: Notify::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The settings.
    pub fn config(&self) -> &AntiEntropyConfig {
        &self.config
    }

    /// Asks for a sweep now, of one table or all; a sweep under way is cut short and replaced.
    pub fn request_sweep(&self, table: Option<TableId>) {
        self.state().requested = Some(table);
        self.nudge.notify_one();
    }

    /// What anti-entropy did and where it is.
    pub fn status(&self) -> AntiEntropyStatus {
        let state = self.state();
        let now = Instant::now();
        let mut status = state.status.clone();
        status.sweeping = state.sweep.is_some();
        if let Some(sweep) = &state.sweep {
            status.sweep_done = sweep.done;
            status.sweep_total = sweep.total;
        }
        let mut tables: BTreeMap<TableId, TableRepairStatus> = BTreeMap::new();
        for ((table, _), partition) in &state.partitions {
            let entry = tables.entry(*table).or_insert_with(|| TableRepairStatus {
                table: *table,
                last_full_sweep_age_ms: state
                    .last_full_sweep
                    .get(table)
                    .map(|at| millis(now.duration_since(*at))),
                ..TableRepairStatus::default()
            });
            entry.partitions += 1;
            entry.in_sync += u64::from(partition.in_sync);
            let since = partition.last_synced.unwrap_or(state.started);
            entry.oldest_unsynced_age_ms = entry
                .oldest_unsynced_age_ms
                .max(millis(now.duration_since(since)));
        }
        status.tables = tables.into_values().collect();
        status
    }

    /// The age, in ms, of the partition least recently synced, over every table (0 without any).
    pub fn oldest_unsynced_age_ms(&self) -> u64 {
        self.status()
            .tables
            .iter()
            .map(|t| t.oldest_unsynced_age_ms)
            .max()
            .unwrap_or(0)
    }

    /// Runs a whole sweep now, of every table, step by step, and returns what it did: for
    /// deterministic tests, which drive nodes by hand instead of through the worker.
    pub async fn run_sweep(&self) -> SweepReport {
        {
            let mut state = self.state();
            state.requested = Some(None);
        }
        // The first step plans the sweep; stop once it has been completed.
        loop {
            match self.step().await {
                Stepped::Visited(_) => {}
                Stepped::Idle => break,
            }
            if self.state().sweep.is_none() {
                break;
            }
        }
        self.state().last_report.clone().unwrap_or_default()
    }

    /// The partitions of a sweep: every partition this node replicates now, of every table (or
    /// of `only`). Peers are chosen when each is visited, from the topology of that moment: a
    /// sweep takes minutes, and a plan made before a move completed would send cells to a node
    /// that has given the partition away since.
    fn plan(&self, only: Option<TableId>) -> Vec<Visit> {
        let Some(scheme) = self.topology.scheme() else {
            return Vec::new();
        };
        let count = scheme.count();
        let mut visits = Vec::new();
        for (table, n) in (self.tables)() {
            if only.is_some_and(|only| only != table) {
                continue;
            }
            for partition in 0..count {
                let Ok(partition) = u16::try_from(partition) else {
                    break;
                };
                if self.peers(n, partition).is_some() {
                    visits.push(Visit {
                        table,
                        n,
                        partition,
                    });
                }
            }
        }
        visits
    }

    /// The replicas to exchange a partition with, now; `None` when this node does not
    /// replicate it (or joins it in a move under way, and is filled by its transfer).
    fn peers(&self, n: u32, partition: u16) -> Option<Vec<NodeId>> {
        let state = self.topology.state();
        let placement = state.placement(partition, n);
        // The layout keeps its previous ring after its move: joining nodes matter only while
        // the move is under way. Exchanging with one meanwhile would send the cells its
        // transfer brings a second time.
        let joining = if state.complete() {
            Vec::new()
        } else {
            placement.joining
        };
        if joining.contains(&self.local) {
            return None;
        }
        let mut replicas = placement.replicas;
        replicas.extend(placement.also);
        replicas.sort();
        replicas.dedup();
        if !replicas.contains(&self.local) {
            return None;
        }
        Some(
            replicas
                .into_iter()
                .filter(|r| *r != self.local && !joining.contains(r))
                .collect(),
        )
    }

    /// Whether a sweep should start now, and of what; starts it.
    fn maybe_start_sweep(&self) -> bool {
        let (due, only) = {
            let mut state = self.state();
            match state.requested.take() {
                Some(only) => (true, only),
                None => (
                    state.sweep.is_none()
                        && state.next_sweep.is_some_and(|at| at <= Instant::now()),
                    None,
                ),
            }
        };
        if !due {
            return false;
        }
        let plan = self.plan(only);
        let mut tables: Vec<TableId> = plan.iter().map(|v| v.table).collect();
        tables.sort_unstable();
        tables.dedup();
        let mut state = self.state();
        if only.is_none() {
            // Partitions this node no longer replicates leave the status.
            let planned: std::collections::BTreeSet<(TableId, u16)> =
                plan.iter().map(|v| (v.table, v.partition)).collect();
            state.partitions.retain(|key, _| planned.contains(key));
        }
        state.next_sweep = Some(Instant::now() + self.config.sweep_interval);
        state.sweep = Some(Sweep {
            total: plan.len() as u64,
            done: 0,
            tables,
            report: SweepReport::default(),
        });
        state.plan = plan.into();
        debug!(node = %self.local, partitions = state.plan.len(), "anti-entropy sweep started");
        true
    }

    async fn step(&self) -> Stepped {
        self.maybe_start_sweep();
        let visit = {
            let mut state = self.state();
            match state.plan.pop_front() {
                Some(visit) => visit,
                None => {
                    if let Some(sweep) = state.sweep.take() {
                        let now = Instant::now();
                        for table in &sweep.tables {
                            state.last_full_sweep.insert(*table, now);
                        }
                        state.status.sweeps += 1;
                        info!(node = %self.local, partitions = sweep.total, exchanges = sweep.report.exchanges,
                            failed = sweep.report.failed, moved = sweep.report.moved, "anti-entropy sweep done");
                        state.last_report = Some(sweep.report);
                    }
                    return Stepped::Idle;
                }
            }
        };
        Stepped::Visited(self.visit(visit).await)
    }

    /// Checks the partition's tree if due, then exchanges it with each peer; returns the keys
    /// it cost.
    async fn visit(&self, visit: Visit) -> u64 {
        let key = (visit.table, visit.partition);
        let mut units = 1u64;
        let Some(peers) = self.peers(visit.n, visit.partition) else {
            // No longer a replica of it (a move completed since the plan): nothing to do, and
            // nothing to report about it any more.
            let mut state = self.state();
            state.partitions.remove(&key);
            if let Some(sweep) = state.sweep.as_mut() {
                sweep.done += 1;
            }
            return units;
        };
        let verify = {
            let state = self.state();
            state
                .partitions
                .get(&key)
                .and_then(|p| p.verified_at)
                .is_none_or(|at| at.elapsed() >= self.config.verify_interval)
        };
        if verify {
            let store = self.ctx.store.clone();
            let checked = self
                .ctx
                .runner
                .run(move || store.check_tree(visit.table, visit.partition, true))
                .await;
            let mut state = self.state();
            match checked {
                Ok(check) => {
                    units += check.cells;
                    state.status.tree_checks += 1;
                    if !check.differing.is_empty() {
                        state.status.tree_nodes_repaired += check.differing.len() as u64;
                        // Expected once after an upgrade; otherwise a bug or damage worth a look.
                        warn!(node = %self.local, table = visit.table, partition = visit.partition,
                            nodes = check.differing.len(), cells = check.cells,
                            "kept anti-entropy tree differed from a rebuild; repaired");
                    }
                    state.partitions.entry(key).or_default().verified_at = Some(Instant::now());
                }
                Err(error) => {
                    state.status.last_error = Some(format!(
                        "tree check of table {} partition {}: {error}",
                        visit.table, visit.partition
                    ));
                }
            }
        }
        let mut all_ok = true;
        let mut all_in_sync = true;
        for peer in &peers {
            if !self.membership.is_alive(peer) {
                all_ok = false;
                all_in_sync = false;
                let mut state = self.state();
                state.status.exchanges_failed += 1;
                if let Some(sweep) = state.sweep.as_mut() {
                    sweep.report.failed += 1;
                }
                continue;
            }
            let session = {
                let mut state = self.state();
                state.session += 1;
                state.session
            };
            let exchange = ExchangeId {
                table: visit.table,
                partition: visit.partition,
                session,
            };
            let result = run_exchange(&self.ctx, peer, exchange).await;
            let mut state = self.state();
            let outcome = match &result {
                Ok(outcome) => outcome.clone(),
                Err(failure) => failure.partial.clone(),
            };
            record(&mut state, &outcome);
            units +=
                outcome.stats.cells_scanned + outcome.pulled + outcome.pushed + outcome.repaired;
            let moved = outcome.pulled + outcome.pushed + outcome.repaired;
            if let Some(sweep) = state.sweep.as_mut() {
                sweep.report.moved += moved;
            }
            match result {
                Ok(outcome) => {
                    state.status.exchanges += 1;
                    state.status.exchanges_in_sync += u64::from(outcome.in_sync);
                    if let Some(sweep) = state.sweep.as_mut() {
                        sweep.report.exchanges += 1;
                        sweep.report.in_sync += u64::from(outcome.in_sync);
                    }
                    all_in_sync &= outcome.in_sync;
                    if moved > 0 {
                        debug!(node = %self.local, %peer, table = visit.table, partition = visit.partition,
                            pulled = outcome.pulled, pushed = outcome.pushed, repaired = outcome.repaired,
                            "anti-entropy repaired cells");
                    }
                }
                Err(failure) => {
                    all_ok = false;
                    all_in_sync = false;
                    state.status.exchanges_failed += 1;
                    if let Some(sweep) = state.sweep.as_mut() {
                        sweep.report.failed += 1;
                    }
                    debug!(node = %self.local, error = %failure, "anti-entropy exchange failed");
                    state.status.last_error = Some(failure.to_string());
                }
            }
        }
        let mut state = self.state();
        let partition = state.partitions.entry(key).or_default();
        partition.in_sync = all_in_sync;
        if all_ok {
            partition.last_synced = Some(Instant::now());
        }
        if let Some(sweep) = state.sweep.as_mut() {
            sweep.done += 1;
            sweep.report.partitions += 1;
        }
        units
    }
}

fn record(state: &mut State, outcome: &ExchangeOutcome) {
    let status = &mut state.status;
    status.segments_compared += outcome.stats.nodes_compared;
    status.segments_differing += outcome.stats.segments_differing;
    status.keys_pulled += outcome.pulled;
    status.keys_pushed += outcome.pushed;
    status.keys_repaired += outcome.repaired;
    status.bytes += outcome.stats.bytes_sent + outcome.stats.bytes_received + outcome.repair_bytes;
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The worker that runs [`AntiEntropy`]'s sweeps: one partition (its exchanges with every other
/// replica) per step.
pub struct AntiEntropyWorker<T, M, E: Engine>(pub Arc<AntiEntropy<T, M, E>>);

impl<T: Transport, M: MembershipView, E: Engine> Worker for AntiEntropyWorker<T, M, E> {
    fn name(&self) -> String {
        ANTI_ENTROPY.to_owned()
    }

    fn status(&self) -> WorkerStatus {
        let status = self.0.status();
        let in_sync: u64 = status.tables.iter().map(|t| t.in_sync).sum();
        let partitions: u64 = status.tables.iter().map(|t| t.partitions).sum();
        WorkerStatus {
            progress: Some(if status.sweeping {
                format!(
                    "sweeping: {}/{} partitions",
                    status.sweep_done, status.sweep_total
                )
            } else {
                format!("{in_sync}/{partitions} partitions in sync")
            }),
            queued: status
                .sweeping
                .then(|| status.sweep_total.saturating_sub(status.sweep_done)),
            ..WorkerStatus::default()
        }
        .counter("sweeps", status.sweeps)
        .counter("exchanges", status.exchanges)
        .counter("failed", status.exchanges_failed)
        .counter("pulled", status.keys_pulled)
        .counter("pushed", status.keys_pushed)
        .counter("repaired", status.keys_repaired)
    }

    async fn step(&mut self, _ctx: &StepContext) -> Result<Step, WorkerError> {
        Ok(match self.0.step().await {
            Stepped::Idle => Step::Idle,
            Stepped::Visited(units) => Step::Busy { units },
        })
    }

    async fn wait_for_work(&mut self) {
        let next = self.0.state().next_sweep;
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => {}
            () = self.0.nudge.notified() => {}
        }
    }
}
