//! Hinted handoff: delivering the hints this node keeps to their targets.
//!
//! A node keeps a hint when it stood in for a replica that was down (sloppy
//! quorum, see `write.rs`), or when it coordinated a write that a replica
//! missed. [`HintDelivery`] hands those writes over once the target is back:
//!
//! - **When:** every `tick`, for each target with hints that membership says
//!   is alive and that is not backing off. [`HintDelivery::deliver_now`]
//!   (called when a target turns alive) skips both the wait and the backoff.
//! - **How:** oldest first, as ordinary `Merge` requests, which are idempotent
//!   and commutative, so a hint delivered twice or out of order is harmless.
//!   Hints are read in batches (at most `batch_hints` hints or about
//!   `batch_bytes` bytes), consecutive hints of one row go in one `Merge`, and
//!   a hint is deleted only after its `Merge` was acknowledged. A crash in
//!   between means delivering it again, never losing it.
//! - **Failures:** a failed `Merge` stops that target's delivery and backs it
//!   off exponentially with full jitter (a random wait between 0 and
//!   `base * 2^(failures - 1)`, capped), so a flapping node is not hammered
//!   and several stand-ins do not retry in lockstep.
//! - **Throttle:** the worker's rate limit (hints per second, set from
//!   `hints.delivery_per_second` and changeable while it runs), so a node
//!   coming back after hours of hints is not flooded while it also serves
//!   clients.
//! - **Removed targets:** hints for a node that has left the ring are turned
//!   into hints for the row's current owners (see `handoff_redirect`).
//! - **Expiry:** hints older than `hint_window` (3 h by default, as in
//!   Cassandra) are deleted, counted and logged with `warn!`: the writes they
//!   carried must then be repaired by read repair or anti-entropy. A node
//!   down that long is better rebuilt than replayed.
//!
//! It runs as the worker `hint-delivery` ([`HintDeliveryWorker`]): each step
//! either starts a round (expiry, the list of targets) or delivers one batch
//! to one target, so pausing, throttling and stopping take effect between
//! batches; [`HandoffStatus`] is its snapshot for the API and metrics. One
//! round can also be run by hand ([`HintDelivery::run_once`]), which is what
//! deterministic tests do.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tessera_storage::cell::approx_cell_bytes;
use tessera_storage::{Engine, Hint, HintKey, HintStore, HintTargetStats};
use tessera_worker::{Step, StepContext, Worker, WorkerError, WorkerStatus};
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::call::unexpected;
use crate::clock::{system_clock, Clock};
use crate::exec::StorageRunner;
use crate::handoff_redirect::HintRoutes;
use crate::membership::MembershipView;
use crate::messages::{Request, Response};
use crate::transport::{NodeId, Transport};

/// Tuning of hint delivery. `Default` is what a node runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandoffConfig {
    /// How often targets are looked at.
    pub tick: Duration,
    /// Most hints read and sent per batch.
    pub batch_hints: usize,
    /// About the most payload bytes (keys, columns, values) per batch; a
    /// single larger hint still goes, alone.
    pub batch_bytes: usize,
    /// Hints older than this are deleted undelivered.
    pub hint_window: Duration,
    /// The first backoff ceiling after a failed delivery.
    pub backoff_base: Duration,
    /// The largest backoff ceiling.
    pub backoff_cap: Duration,
    /// How long one `Merge` may take before it counts as failed.
    pub call_timeout: Duration,
    /// Where storage calls run.
    pub storage: StorageRunner,
    /// Seed of the jitter; `None` draws one from the OS (tests pass one).
    pub rng_seed: Option<u64>,
}

impl Default for HandoffConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(1),
            batch_hints: 64,
            batch_bytes: 1 << 20,
            hint_window: Duration::from_secs(3 * 60 * 60),
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(60),
            call_timeout: Duration::from_secs(10),
            storage: StorageRunner::Blocking,
            rng_seed: None,
        }
    }
}

/// The backoff ceiling after `failures` consecutive failed deliveries:
/// `base * 2^(failures - 1)`, at most `cap`; zero without failures.
pub fn backoff_ceiling(base: Duration, cap: Duration, failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32.checked_shl(failures - 1).unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(cap).min(cap)
}

/// Delivery state of one target, as [`HandoffStatus`] shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetStatus {
    /// The target node.
    pub target: NodeId,
    /// Hints waiting for it (as of the last round or delivery).
    pub pending: u64,
    /// Their size in storage.
    pub pending_bytes: u64,
    /// Hints delivered to it since start.
    pub delivered: u64,
    /// Hints whose delivery failed (and that stay for a later attempt).
    pub failed: u64,
    /// Hints for it that expired undelivered.
    pub expired: u64,
    /// Failed deliveries in a row; 0 once one succeeds.
    pub consecutive_failures: u32,
    /// The current backoff ceiling, in ms (0 when not backing off).
    pub backoff_ms: u64,
    /// When the next attempt may start, in ms from now; `None` if it may now.
    pub retry_in_ms: Option<u64>,
    /// Why the last delivery failed.
    pub last_error: Option<String>,
}

/// A snapshot of hint delivery on this node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HandoffStatus {
    /// True while [`HintDelivery::run`] is running.
    pub running: bool,
    /// Rounds completed.
    pub rounds: u64,
    /// Hints waiting, over every target.
    pub pending: u64,
    /// Hints delivered since start.
    pub delivered: u64,
    /// Hints whose delivery failed since start (retried later).
    pub failed: u64,
    /// Hints expired undelivered since start.
    pub expired: u64,
    /// Hints for nodes that left the ring, handed to the rows' current owners since start.
    pub redirected: u64,
    /// The last error of any kind (delivery or storage).
    pub last_error: Option<String>,
    /// Every target that has or had hints, in name order.
    pub targets: Vec<TargetStatus>,
}

/// What one round did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// Hints delivered (and deleted).
    pub delivered: u64,
    /// Hints whose delivery failed.
    pub failed: u64,
    /// Hints expired.
    pub expired: u64,
    /// Targets skipped because membership says they are down.
    pub skipped_down: u32,
    /// Targets skipped because they are backing off.
    pub skipped_backoff: u32,
}

#[derive(Debug, Default)]
struct TargetState {
    pending: u64,
    pending_bytes: u64,
    delivered: u64,
    failed: u64,
    expired: u64,
    consecutive_failures: u32,
    backoff: Duration,
    retry_at: Option<Instant>,
    last_error: Option<String>,
}

struct State {
    rng: StdRng,
    targets: BTreeMap<NodeId, TargetState>,
    rounds: u64,
    delivered: u64,
    failed: u64,
    expired: u64,
    redirected: u64,
    last_error: Option<String>,
    running: bool,
    /// The round under way.
    round: Option<Round>,
    /// When the next round starts (`None`: now).
    next_round: Option<Instant>,
}

/// Why a target's delivery stopped early.
enum Stop {
    /// A `Merge` (or a storage call) failed; `hints` were not delivered.
    Failed { hints: u64, reason: String },
}

/// A round under way: the targets still to deliver to, the first one current.
#[derive(Debug, Default)]
struct Round {
    targets: VecDeque<NodeId>,
    delivered_to_current: u64,
    report: RoundReport,
}

impl Round {
    fn next_target(&mut self) {
        self.targets.pop_front();
        self.delivered_to_current = 0;
    }
}

/// What [`HintDelivery::step`] did.
enum Stepped {
    /// Delivered this many hints (0 for a step that started a round or finished a target).
    Delivered(u64),
    /// Finished the round.
    RoundDone(RoundReport),
}

/// Delivers this node's hints to their targets; see the module docs.
pub struct HintDelivery<T, M, E: Engine> {
    local: NodeId,
    hints: Arc<HintStore<E>>,
    transport: T,
    membership: M,
    config: HandoffConfig,
    clock: Clock,
    state: Mutex<State>,
    nudge: Notify,
    /// Where hints for nodes that left go; unset, they wait for their target (or expire).
    routes: OnceLock<Arc<dyn HintRoutes>>,
}

impl<T, M, E: Engine> std::fmt::Debug for HintDelivery<T, M, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HintDelivery")
            .field("local", &self.local)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// About how many bytes a hint carries (row key, columns and values).
fn payload_bytes(hint: &Hint) -> usize {
    hint.row.key.len()
        + hint
            .cells
            .iter()
            .map(|(column, cell)| column.len() + approx_cell_bytes(cell))
            .sum::<usize>()
}

impl<T: Transport, M: MembershipView, E: Engine> HintDelivery<T, M, E> {
    /// Delivery of the hints in `hints`, on node `local`, with the system clock.
    pub fn new(
        local: impl Into<NodeId>,
        hints: Arc<HintStore<E>>,
        transport: T,
        membership: M,
        config: HandoffConfig,
    ) -> Self {
        let rng = match config.rng_seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Self {
            local: local.into(),
            hints,
            transport,
            membership,
            config,
            clock: system_clock(),
            state: Mutex::new(State {
                rng,
                targets: BTreeMap::new(),
                rounds: 0,
                delivered: 0,
                failed: 0,
                expired: 0,
                redirected: 0,
                last_error: None,
                running: false,
                round: None,
                next_round: None,
            }),
            nudge: Notify::new(),
            routes: OnceLock::new(),
        }
    }

    /// Sets how hints for nodes that left the ring find the rows' owners (once; later calls
    /// are ignored). Until then such hints wait for their target, or expire.
    pub fn set_routes(&self, routes: Arc<dyn HintRoutes>) {
        let _ = self.routes.set(routes);
    }

    /// Whether `target` has left the ring, so its hints go to the current owners.
    fn has_left(&self, target: &NodeId) -> bool {
        self.routes
            .get()
            .is_some_and(|routes| *target != self.local && routes.has_left(target))
    }

    /// The same, reading the wall clock (for expiry) from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &HandoffConfig {
        &self.config
    }

    // Only counters live under the lock, and nothing under it panics, so a
    // poisoned lock still guards valid state.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A snapshot of delivery so far.
    pub fn status(&self) -> HandoffStatus {
        let now = Instant::now();
        let state = self.state();
        let targets: Vec<TargetStatus> = state
            .targets
            .iter()
            .map(|(target, t)| TargetStatus {
                target: target.clone(),
                pending: t.pending,
                pending_bytes: t.pending_bytes,
                delivered: t.delivered,
                failed: t.failed,
                expired: t.expired,
                consecutive_failures: t.consecutive_failures,
                backoff_ms: u64::try_from(t.backoff.as_millis()).unwrap_or(u64::MAX),
                retry_in_ms: t
                    .retry_at
                    .filter(|at| *at > now)
                    .map(|at| u64::try_from((at - now).as_millis()).unwrap_or(u64::MAX)),
                last_error: t.last_error.clone(),
            })
            .collect();
        HandoffStatus {
            running: state.running,
            rounds: state.rounds,
            pending: targets.iter().map(|t| t.pending).sum(),
            delivered: state.delivered,
            failed: state.failed,
            expired: state.expired,
            redirected: state.redirected,
            last_error: state.last_error.clone(),
            targets,
        }
    }

    /// Delivers to `target` at the next opportunity, skipping its backoff
    /// (call it when `target` turns alive).
    pub fn deliver_now(&self, target: &str) {
        {
            let mut state = self.state();
            if let Some(t) = state.targets.get_mut(target) {
                t.consecutive_failures = 0;
                t.backoff = Duration::ZERO;
                t.retry_at = None;
            }
            state.next_round = None;
        }
        debug!(node = %self.local, target, "hint delivery nudged");
        self.nudge.notify_one();
    }

    /// One round now, to its end: expire, then deliver to every eligible target until each has
    /// nothing left or fails (what deterministic tests run instead of the worker).
    pub async fn run_once(&self) -> RoundReport {
        self.state().next_round = None;
        loop {
            if let Stepped::RoundDone(report) = self.step().await {
                return report;
            }
        }
    }

    fn record_error(&self, error: String) {
        self.state().last_error = Some(error);
    }

    /// Whether a round is under way or due (its tick passed, or a target was nudged).
    fn has_work(&self) -> bool {
        let state = self.state();
        state.round.is_some() || state.next_round.is_none_or(|at| at <= Instant::now())
    }

    /// One bounded piece of delivery: starts a round if none is under way (expiry, the list of
    /// targets), or delivers one batch to the round's current target.
    async fn step(&self) -> Stepped {
        let round = self.state().round.take();
        let Some(mut round) = round else {
            let round = self.begin_round().await;
            self.state().round = Some(round);
            return Stepped::Delivered(0);
        };
        let Some(target) = round.targets.front().cloned() else {
            let report = round.report;
            let mut state = self.state();
            state.rounds += 1;
            state.next_round = Some(Instant::now() + self.config.tick);
            return Stepped::RoundDone(report);
        };
        if round.delivered_to_current == 0 {
            info!(node = %self.local, %target, "delivering hints");
        }
        let outcome = if self.has_left(&target) {
            self.redirect_batch(&target).await
        } else {
            self.deliver_batch(&target).await
        };
        let delivered = *outcome.as_ref().unwrap_or(&0);
        round.report.delivered += delivered;
        round.delivered_to_current += delivered;
        match outcome {
            Ok(0) => {
                self.target_done(&target, round.delivered_to_current);
                round.next_target();
            }
            Ok(_) => {}
            Err(Stop::Failed { hints, reason }) => {
                round.report.failed += hints;
                self.target_failed(&target, round.delivered_to_current, hints, reason);
                round.next_target();
            }
        }
        self.state().round = Some(round);
        Stepped::Delivered(delivered)
    }

    /// Expires old hints and lists the targets to deliver to this round.
    async fn begin_round(&self) -> Round {
        let mut round = Round {
            report: RoundReport {
                expired: self.expire().await,
                ..RoundReport::default()
            },
            ..Round::default()
        };
        let hints = self.hints.clone();
        let targets = match self.config.storage.run(move || hints.targets()).await {
            Ok(targets) => targets,
            Err(error) => {
                warn!(node = %self.local, %error, "could not list hint targets");
                self.record_error(format!("listing hint targets: {error}"));
                return round;
            }
        };
        self.refresh_pending(&targets);
        let now = Instant::now();
        for stats in targets {
            let target = stats.target;
            if self.has_left(&target) {
                // Its hints are re-addressed here, whether or not the node still runs.
                round.targets.push_back(target);
                continue;
            }
            if !self.membership.is_alive(&target) {
                round.report.skipped_down += 1;
                continue;
            }
            let backing_off = self
                .state()
                .targets
                .get(&target)
                .and_then(|t| t.retry_at)
                .is_some_and(|at| at > now);
            if backing_off {
                round.report.skipped_backoff += 1;
                continue;
            }
            round.targets.push_back(target);
        }
        round
    }

    fn target_done(&self, target: &NodeId, delivered: u64) {
        let mut state = self.state();
        let t = state.targets.entry(target.clone()).or_default();
        t.consecutive_failures = 0;
        t.backoff = Duration::ZERO;
        t.retry_at = None;
        if delivered > 0 {
            info!(node = %self.local, %target, delivered, "hints delivered");
        }
    }

    /// Backs `target` off after a failed delivery of `hints` hints.
    fn target_failed(&self, target: &NodeId, delivered: u64, hints: u64, reason: String) {
        let mut state = self.state();
        let failures = state
            .targets
            .get(target)
            .map_or(0, |t| t.consecutive_failures)
            .saturating_add(1);
        let ceiling = backoff_ceiling(self.config.backoff_base, self.config.backoff_cap, failures);
        let ceiling_ns = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        let wait = Duration::from_nanos(state.rng.random_range(0..=ceiling_ns));
        let error = format!("delivering to {target}: {reason}");
        state.last_error = Some(error.clone());
        state.failed += hints;
        let t = state.targets.entry(target.clone()).or_default();
        t.consecutive_failures = failures;
        t.backoff = ceiling;
        t.retry_at = Some(Instant::now() + wait);
        t.last_error = Some(error);
        t.failed += hints;
        info!(
            node = %self.local,
            %target,
            delivered,
            failures,
            retry_in_ms = wait.as_millis() as u64,
            %reason,
            "hint delivery failed; backing off"
        );
    }

    /// Deletes expired hints; returns how many.
    async fn expire(&self) -> u64 {
        let now_ms = (self.clock)();
        let window_ms = u64::try_from(self.config.hint_window.as_millis()).unwrap_or(u64::MAX);
        let store = self.hints.clone();
        let purged = match self
            .config
            .storage
            .run(move || store.purge_expired(now_ms, window_ms))
            .await
        {
            Ok(purged) => purged,
            Err(error) => {
                warn!(node = %self.local, %error, "could not expire hints");
                self.record_error(format!("expiring hints: {error}"));
                return 0;
            }
        };
        let mut total = 0;
        let mut state = self.state();
        for HintTargetStats {
            target,
            count,
            bytes,
        } in purged
        {
            warn!(
                node = %self.local,
                %target,
                hints = count,
                bytes,
                window_s = self.config.hint_window.as_secs(),
                "hints expired undelivered; anti-entropy or read repair must bring the target up to date"
            );
            let t = state.targets.entry(target).or_default();
            t.expired += count;
            t.pending = t.pending.saturating_sub(count);
            t.pending_bytes = t.pending_bytes.saturating_sub(bytes);
            state.expired += count;
            total += count;
        }
        total
    }

    fn refresh_pending(&self, targets: &[HintTargetStats]) {
        let mut state = self.state();
        for t in state.targets.values_mut() {
            t.pending = 0;
            t.pending_bytes = 0;
        }
        for stats in targets {
            let t = state.targets.entry(stats.target.clone()).or_default();
            t.pending = stats.count;
            t.pending_bytes = stats.bytes;
        }
    }

    /// Reads one batch, sends it as `Merge`s in order, and deletes what was
    /// acknowledged. Returns how many hints were delivered (0: none left).
    async fn deliver_batch(&self, target: &NodeId) -> Result<u64, Stop> {
        let store = self.hints.clone();
        let (who, limit) = (target.clone(), self.config.batch_hints.max(1));
        let mut hints = self
            .config
            .storage
            .run(move || store.oldest(&who, limit))
            .await
            .map_err(|error| Stop::Failed {
                hints: 0,
                reason: format!("reading hints: {error}"),
            })?;
        if hints.is_empty() {
            return Ok(0);
        }
        let mut bytes = 0;
        let keep = hints
            .iter()
            .take_while(|(_, hint)| {
                let first = bytes == 0;
                bytes += payload_bytes(hint);
                first || bytes <= self.config.batch_bytes
            })
            .count();
        hints.truncate(keep.max(1));

        // Consecutive hints of one row become one Merge (merging a column
        // twice in one request is the same as merging it twice in a row).
        let mut groups: Vec<(Vec<HintKey>, Hint)> = Vec::new();
        for (key, hint) in hints {
            match groups.last_mut() {
                Some((keys, merged)) if merged.row == hint.row => {
                    keys.push(key);
                    merged.cells.extend(hint.cells);
                }
                _ => groups.push((vec![key], hint)),
            }
        }
        let merges = groups.len();
        let mut acked: Vec<HintKey> = Vec::new();
        let mut failure = None;
        for (keys, hint) in groups {
            let request = Request::Merge {
                row: hint.row,
                cells: hint.cells,
            };
            let call = self.transport.call(target, request);
            let reason = match tokio::time::timeout(self.config.call_timeout, call).await {
                Ok(Ok(Response::Merged { .. })) => {
                    acked.extend(keys);
                    continue;
                }
                Ok(Ok(other)) => unexpected(&other),
                Ok(Err(error)) => error.to_string(),
                Err(_) => format!(
                    "no answer to Merge within {} ms",
                    self.config.call_timeout.as_millis()
                ),
            };
            failure = Some((keys.len() as u64, reason));
            break;
        }
        let delivered = acked.len() as u64;
        if !acked.is_empty() {
            let store = self.hints.clone();
            let deleted = self.config.storage.run(move || store.delete(&acked)).await;
            if let Err(error) = deleted {
                // Delivered but still stored: they will be delivered again, harmlessly.
                return Err(Stop::Failed {
                    hints: 0,
                    reason: format!("deleting {delivered} delivered hints: {error}"),
                });
            }
            let mut state = self.state();
            state.delivered += delivered;
            let t = state.targets.entry(target.clone()).or_default();
            t.delivered += delivered;
            t.pending = t.pending.saturating_sub(delivered);
        }
        debug!(node = %self.local, %target, hints = delivered, merges, "delivered a batch of hints");
        match failure {
            Some((hints, reason)) => Err(Stop::Failed { hints, reason }),
            None => Ok(delivered),
        }
    }
}

impl<T: Transport, M: MembershipView, E: Engine> HintDelivery<T, M, E> {
    /// For a target that left the ring: reads one batch of its hints, stores each again for
    /// every current owner of its row, then deletes the originals (see `handoff_redirect`).
    /// Returns how many were handed on (0: none left, or the owners cannot be told yet).
    async fn redirect_batch(&self, target: &NodeId) -> Result<u64, Stop> {
        let Some(routes) = self.routes.get().cloned() else {
            return Ok(0);
        };
        let store = self.hints.clone();
        let (who, limit) = (target.clone(), self.config.batch_hints.max(1));
        let (redirected, copies) = self
            .config
            .storage
            .run(
                move || -> Result<(u64, u64), tessera_storage::StorageError> {
                    let hints = store.oldest(&who, limit)?;
                    let mut moved = Vec::new();
                    let mut copies = 0u64;
                    for (key, hint) in hints {
                        let Some(owners) = routes.owners_of(&hint.row) else {
                            break;
                        };
                        // When this node is an owner too, its hint is delivered to itself, through
                        // the same merge path as any other.
                        for owner in owners.into_iter().filter(|owner| *owner != who) {
                            store.store(&Hint {
                                target: owner,
                                ..hint.clone()
                            })?;
                            copies += 1;
                        }
                        moved.push(key);
                    }
                    let count = moved.len() as u64;
                    store.delete(&moved)?;
                    Ok((count, copies))
                },
            )
            .await
            .map_err(|error| Stop::Failed {
                hints: 0,
                reason: format!("re-addressing hints to the current owners: {error}"),
            })?;
        if redirected > 0 {
            info!(
                node = %self.local,
                %target,
                hints = redirected,
                copies,
                "hints for a node that left the ring handed to the rows' owners"
            );
            let mut state = self.state();
            state.redirected += redirected;
            let t = state.targets.entry(target.clone()).or_default();
            t.pending = t.pending.saturating_sub(redirected);
            // New targets' pending counts are refreshed at the next round.
            state.next_round = None;
        }
        Ok(redirected)
    }
}

/// The worker's name.
pub const HINT_DELIVERY: &str = "hint-delivery";

/// [`HintDelivery`] as a worker: a step is [`HintDelivery::step`]; between rounds it waits for
/// the next tick or a nudge ([`HintDelivery::deliver_now`]). Its unit is hints delivered.
pub struct HintDeliveryWorker<T, M, E: Engine>(pub Arc<HintDelivery<T, M, E>>);

impl<T: Transport, M: MembershipView, E: Engine> Worker for HintDeliveryWorker<T, M, E> {
    fn name(&self) -> String {
        HINT_DELIVERY.to_owned()
    }

    fn status(&self) -> WorkerStatus {
        let status = self.0.status();
        let waiting = status.targets.iter().filter(|t| t.pending > 0).count();
        WorkerStatus {
            progress: Some(format!(
                "{waiting} target{} with hints",
                if waiting == 1 { "" } else { "s" }
            )),
            queued: Some(status.pending),
            ..WorkerStatus::default()
        }
        .counter("delivered", status.delivered)
        .counter("failed", status.failed)
        .counter("expired", status.expired)
        .counter("rounds", status.rounds)
    }

    async fn step(&mut self, _ctx: &StepContext) -> Result<Step, WorkerError> {
        self.0.state().running = true;
        if !self.0.has_work() {
            return Ok(Step::Idle);
        }
        Ok(match self.0.step().await {
            Stepped::Delivered(units) => Step::Busy { units },
            Stepped::RoundDone(_) => Step::Busy { units: 0 },
        })
    }

    async fn wait_for_work(&mut self) {
        let next = self.0.state().next_round;
        let sleep = async {
            if let Some(at) = next {
                tokio::time::sleep_until(at).await;
            }
        };
        tokio::select! {
            () = sleep => {}
            () = self.0.nudge.notified() => {}
        }
    }

    async fn finish(&mut self) {
        self.0.state().running = false;
        info!(node = %self.0.local, "hint delivery stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let (base, cap) = (Duration::from_secs(1), Duration::from_secs(60));
        let ceilings: Vec<u64> = (0..10)
            .map(|f| backoff_ceiling(base, cap, f).as_secs())
            .collect();
        assert_eq!(ceilings, [0, 1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff_ceiling(base, cap, u32::MAX), cap);
        assert_eq!(
            backoff_ceiling(Duration::from_millis(300), cap, 3),
            Duration::from_millis(1200)
        );
    }

    #[test]
    fn defaults_match_the_design() {
        let c = HandoffConfig::default();
        assert_eq!(c.tick, Duration::from_secs(1));
        assert_eq!((c.batch_hints, c.batch_bytes), (64, 1 << 20));
        assert_eq!(c.hint_window, Duration::from_secs(10_800));
        assert_eq!(
            (c.backoff_base, c.backoff_cap),
            (Duration::from_secs(1), Duration::from_secs(60))
        );
    }
}
