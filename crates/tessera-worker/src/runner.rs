//! The runner: starts workers, steps them, throttles, pauses and restarts them, lists them, and
//! stops them with a deadline.
//!
//! Each worker runs on a task of its own, so a slow step of one never delays another, and the
//! runner's own bookkeeping per step is a few atomics and one uncontended lock: the group
//! committer, stepped thousands of times a second, pays almost nothing for being a worker.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::FutureExt as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::error::RunnerError;
use crate::info::{WorkerInfo, WorkerState, WorkerStatus};
use crate::pace::{Pacer, RateMeter};
use crate::worker::{Group, Step, StepContext, Worker};

/// The first wait after a failed step; it doubles with each failure in a row.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest wait after failed steps.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A busy worker's status is read at most this often (an idle one's before every wait).
const STATUS_REFRESH: Duration = Duration::from_millis(200);

/// How a worker is started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerOptions {
    /// When it stops during shutdown.
    pub group: Group,
    /// Rest after each busy step, as a multiple of the step's time (0: none).
    pub tranquility: u32,
    /// Most units of work per second (`None`: unlimited).
    pub max_rate: Option<u64>,
}

impl WorkerOptions {
    /// Options for a worker of `group`, unthrottled.
    pub fn in_group(group: Group) -> Self {
        Self {
            group,
            ..Self::default()
        }
    }
}

/// What the runner records of one worker between steps.
#[derive(Debug)]
struct Record {
    steps: u64,
    units: u64,
    errors: u64,
    panics: u64,
    consecutive_errors: u32,
    last_error: Option<(String, Instant)>,
    status: WorkerStatus,
    status_at: Option<Instant>,
    meter: RateMeter,
}

/// One worker's shared state: settings the operator changes, and what the runner records.
#[derive(Debug)]
struct Slot {
    name: String,
    group: Group,
    state: AtomicU8,
    tranquility: AtomicU32,
    /// 0 means unlimited.
    max_rate: AtomicU64,
    paused: watch::Sender<bool>,
    exit: watch::Sender<bool>,
    record: Mutex<Record>,
    task: Mutex<Option<JoinHandle<()>>>,
}

fn state_code(state: WorkerState) -> u8 {
    WorkerState::ALL
        .iter()
        .position(|s| *s == state)
        .map_or(0, |i| i as u8)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Only counters and a status copy live under these locks, and nothing panics while holding
    // them, so a poisoned lock still guards valid data.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Slot {
    fn state(&self) -> WorkerState {
        WorkerState::ALL
            .get(usize::from(self.state.load(Ordering::Relaxed)))
            .copied()
            .unwrap_or(WorkerState::Busy)
    }

    fn set_state(&self, state: WorkerState) {
        self.state.store(state_code(state), Ordering::Relaxed);
    }

    /// Records a successful step, and reads the worker's status when due (or when `force`).
    fn on_step<W: Worker>(&self, worker: &W, now: Instant, units: u64, force: bool) {
        let mut record = lock(&self.record);
        record.steps += 1;
        record.units = record.units.saturating_add(units);
        record.consecutive_errors = 0;
        record.meter.record(now, units);
        let due = record
            .status_at
            .is_none_or(|at| now.saturating_duration_since(at) >= STATUS_REFRESH);
        if force || due {
            record.status = worker.status();
            record.status_at = Some(now);
        }
    }

    /// Records a failed step; returns how long to back off.
    fn on_failure<W: Worker>(&self, worker: &W, message: String, panicked: bool) -> Duration {
        let now = Instant::now();
        let mut record = lock(&self.record);
        record.steps += 1;
        record.errors += 1;
        if panicked {
            record.panics += 1;
        }
        record.consecutive_errors = record.consecutive_errors.saturating_add(1);
        let backoff = FIRST_BACKOFF
            .checked_mul(1u32 << record.consecutive_errors.saturating_sub(1).min(16))
            .unwrap_or(MAX_BACKOFF)
            .min(MAX_BACKOFF);
        if panicked {
            error!(worker = %self.name, error = %message, backoff_ms = backoff.as_millis() as u64, "worker step panicked; restarting it after a backoff");
        } else {
            warn!(worker = %self.name, error = %message, backoff_ms = backoff.as_millis() as u64, "worker step failed");
        }
        record.last_error = Some((message, now));
        record.status = worker.status();
        record.status_at = Some(now);
        backoff
    }

    fn refresh_status<W: Worker>(&self, worker: &W) {
        let mut record = lock(&self.record);
        record.status = worker.status();
        record.status_at = Some(Instant::now());
    }

    fn info(&self) -> WorkerInfo {
        let now = Instant::now();
        let record = lock(&self.record);
        let max_rate = self.max_rate.load(Ordering::Relaxed);
        WorkerInfo {
            name: self.name.clone(),
            group: self.group,
            state: self.state(),
            paused: *self.paused.borrow(),
            tranquility: self.tranquility.load(Ordering::Relaxed),
            max_rate: (max_rate > 0).then_some(max_rate),
            steps: record.steps,
            units: record.units,
            rate: record.meter.rate(now),
            errors: record.errors,
            panics: record.panics,
            consecutive_errors: record.consecutive_errors,
            last_error: record
                .last_error
                .as_ref()
                .map(|(message, _)| message.clone()),
            last_error_age_ms: record.last_error.as_ref().map(|(_, at)| {
                u64::try_from(now.saturating_duration_since(*at).as_millis()).unwrap_or(u64::MAX)
            }),
            status: record.status.clone(),
        }
    }
}

/// Completes once `flag` is true (or its sender is gone). The watch's guard stays inside, so the
/// caller's future stays `Send`.
async fn until_true(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|value| *value).await;
}

/// Completes once `flag` is false.
async fn until_false(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|value| !*value).await;
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".to_owned());
    format!("panicked: {text}")
}

/// The loop of one worker (see the crate docs).
async fn run<W: Worker>(mut worker: W, slot: Arc<Slot>) {
    let mut exit = slot.exit.subscribe();
    let mut paused = slot.paused.subscribe();
    let ctx = StepContext { exit: exit.clone() };
    let mut pacer = Pacer::default();
    loop {
        if *exit.borrow() {
            break;
        }
        if *paused.borrow_and_update() {
            slot.set_state(WorkerState::Paused);
            slot.refresh_status(&worker);
            tokio::select! {
                () = until_true(&mut exit) => break,
                () = until_false(&mut paused) => continue,
            }
        }
        slot.set_state(WorkerState::Busy);
        let started = Instant::now();
        let stepped = AssertUnwindSafe(worker.step(&ctx)).catch_unwind().await;
        let now = Instant::now();
        let backoff = match stepped {
            Ok(Ok(Step::Busy { units })) => {
                slot.on_step(&worker, now, units, false);
                let rest = pacer.rest(
                    started,
                    now,
                    units,
                    slot.tranquility.load(Ordering::Relaxed),
                    slot.max_rate.load(Ordering::Relaxed),
                );
                if !rest.is_zero() {
                    slot.set_state(WorkerState::Throttled);
                    tokio::select! {
                        () = tokio::time::sleep(rest) => {}
                        () = until_true(&mut exit) => break,
                    }
                }
                continue;
            }
            Ok(Ok(Step::Idle)) => {
                slot.on_step(&worker, now, 0, true);
                slot.set_state(WorkerState::Idle);
                tokio::select! {
                    () = worker.wait_for_work() => {}
                    () = until_true(&mut exit) => break,
                    () = until_true(&mut paused) => {}
                }
                continue;
            }
            Ok(Ok(Step::Done)) => {
                slot.on_step(&worker, now, 0, true);
                slot.set_state(WorkerState::Done);
                info!(worker = %slot.name, "worker done");
                return;
            }
            Ok(Err(error)) => slot.on_failure(&worker, error.to_string(), false),
            Err(payload) => slot.on_failure(&worker, panic_message(payload.as_ref()), true),
        };
        slot.set_state(WorkerState::Backoff);
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = until_true(&mut exit) => break,
        }
    }
    slot.set_state(WorkerState::Stopping);
    if AssertUnwindSafe(worker.finish())
        .catch_unwind()
        .await
        .is_err()
    {
        error!(worker = %slot.name, "worker panicked while finishing");
    }
    slot.refresh_status(&worker);
    slot.set_state(WorkerState::Stopped);
    info!(worker = %slot.name, "worker stopped");
}

/// A handle on one worker: its status and its controls.
#[derive(Clone, Debug)]
pub struct WorkerHandle {
    slot: Arc<Slot>,
}

impl WorkerHandle {
    /// The worker's name.
    pub fn name(&self) -> &str {
        &self.slot.name
    }

    /// What the worker is doing and has done.
    pub fn info(&self) -> WorkerInfo {
        self.slot.info()
    }

    /// Stops stepping the worker after its current step, until [`resume`](Self::resume).
    pub fn pause(&self) {
        if !self.slot.paused.send_replace(true) {
            info!(worker = %self.slot.name, "worker paused");
        }
    }

    /// Steps the worker again.
    pub fn resume(&self) {
        if self.slot.paused.send_replace(false) {
            info!(worker = %self.slot.name, "worker resumed");
        }
    }

    /// True while paused.
    pub fn is_paused(&self) -> bool {
        *self.slot.paused.borrow()
    }

    /// Rest after each busy step, as a multiple of the step's time (0: none). Takes effect from
    /// the next step.
    pub fn set_tranquility(&self, tranquility: u32) {
        self.slot.tranquility.store(tranquility, Ordering::Relaxed);
        info!(worker = %self.slot.name, tranquility, "worker tranquility set");
    }

    /// Applies `settings` (absent fields are kept); see [`WorkerSettings`].
    ///
    /// [`WorkerSettings`]: crate::WorkerSettings
    pub fn apply(&self, settings: &crate::WorkerSettings) {
        if let Some(tranquility) = settings.tranquility {
            self.set_tranquility(tranquility);
        }
        if let Some(rate) = settings.max_rate {
            self.set_max_rate((rate > 0).then_some(rate));
        }
    }

    /// Most units of work per second (`None` or `Some(0)`: unlimited). Takes effect from the
    /// next step.
    pub fn set_max_rate(&self, max_rate: Option<u64>) {
        self.slot
            .max_rate
            .store(max_rate.unwrap_or(0), Ordering::Relaxed);
        info!(worker = %self.slot.name, max_rate = max_rate.unwrap_or(0), "worker rate limit set");
    }
}

/// What a shutdown did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Workers that stopped within their deadline.
    pub stopped: Vec<String>,
    /// Workers that did not, and were aborted.
    pub aborted: Vec<String>,
}

#[derive(Debug, Default)]
struct Registry {
    slots: Vec<Arc<Slot>>,
    shutting_down: bool,
}

impl Drop for Registry {
    /// A runner dropped without [`Runner::shutdown`] (a failed start, a test) takes its workers
    /// with it rather than leaving them running with nobody to stop them.
    fn drop(&mut self) {
        for slot in &self.slots {
            if let Some(task) = lock(&slot.task).take() {
                task.abort();
            }
        }
    }
}

/// Owns a node's workers. Cheap to clone (shared).
#[derive(Clone, Debug, Default)]
pub struct Runner {
    registry: Arc<Mutex<Registry>>,
}

impl Runner {
    /// A runner with no workers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts `worker` with default options (group [`Group::Service`], unthrottled). Must be
    /// called within a tokio runtime.
    pub fn spawn<W: Worker>(&self, worker: W) -> Result<WorkerHandle, RunnerError> {
        self.spawn_with(worker, WorkerOptions::default())
    }

    /// Starts `worker` with `options`. Must be called within a tokio runtime. A worker whose
    /// name is taken by a stopped or done one replaces it; a live one's name is refused.
    pub fn spawn_with<W: Worker>(
        &self,
        worker: W,
        options: WorkerOptions,
    ) -> Result<WorkerHandle, RunnerError> {
        let name = worker.name();
        let mut registry = lock(&self.registry);
        if registry.shutting_down {
            return Err(RunnerError::ShuttingDown { name });
        }
        if registry
            .slots
            .iter()
            .any(|slot| slot.name == name && slot.state().is_live())
        {
            return Err(RunnerError::DuplicateName { name });
        }
        registry.slots.retain(|slot| slot.name != name);
        let (paused, _) = watch::channel(false);
        let (exit, _) = watch::channel(false);
        let slot = Arc::new(Slot {
            name: name.clone(),
            group: options.group,
            state: AtomicU8::new(state_code(WorkerState::Busy)),
            tranquility: AtomicU32::new(options.tranquility),
            max_rate: AtomicU64::new(options.max_rate.unwrap_or(0)),
            paused,
            exit,
            record: Mutex::new(Record {
                steps: 0,
                units: 0,
                errors: 0,
                panics: 0,
                consecutive_errors: 0,
                last_error: None,
                status: worker.status(),
                status_at: None,
                meter: RateMeter::new(Instant::now()),
            }),
            task: Mutex::new(None),
        });
        let task = tokio::spawn(run(worker, slot.clone()));
        *lock(&slot.task) = Some(task);
        registry.slots.push(slot.clone());
        info!(worker = %name, group = ?options.group, "worker started");
        Ok(WorkerHandle { slot })
    }

    /// Every worker, in the order they were started.
    pub fn list(&self) -> Vec<WorkerInfo> {
        lock(&self.registry)
            .slots
            .iter()
            .map(|slot| slot.info())
            .collect()
    }

    /// The worker named `name`.
    pub fn handle(&self, name: &str) -> Result<WorkerHandle, RunnerError> {
        let registry = lock(&self.registry);
        match registry.slots.iter().find(|slot| slot.name == name) {
            Some(slot) => Ok(WorkerHandle { slot: slot.clone() }),
            None => Err(RunnerError::NoSuchWorker {
                name: name.to_owned(),
                known: registry
                    .slots
                    .iter()
                    .map(|slot| slot.name.clone())
                    .collect(),
            }),
        }
    }

    /// Stops every worker: the [`Group::Service`] ones, then the [`Group::Storage`] ones, each
    /// group within `deadline` of its stop request. A worker still running at its deadline is
    /// aborted. Starts nothing afterwards.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        let slots = {
            let mut registry = lock(&self.registry);
            registry.shutting_down = true;
            registry.slots.clone()
        };
        let mut report = ShutdownReport::default();
        for group in [Group::Service, Group::Storage] {
            let members: Vec<&Arc<Slot>> = slots.iter().filter(|s| s.group == group).collect();
            for slot in &members {
                slot.exit.send_replace(true);
            }
            let until = Instant::now() + deadline;
            for slot in members {
                let task = lock(&slot.task).take();
                let Some(mut task) = task else { continue };
                match tokio::time::timeout_at(until, &mut task).await {
                    Ok(_) => report.stopped.push(slot.name.clone()),
                    Err(_) => {
                        task.abort();
                        slot.set_state(WorkerState::Stopped);
                        warn!(worker = %slot.name, deadline_ms = deadline.as_millis() as u64, "worker did not stop within its deadline; aborted");
                        report.aborted.push(slot.name.clone());
                    }
                }
            }
        }
        report
    }
}
