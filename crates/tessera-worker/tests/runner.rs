//! The runner's contract, on tokio's paused clock so that every wait is deterministic.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tessera_worker::{
    Group, Runner, RunnerError, Step, StepContext, Worker, WorkerError, WorkerOptions, WorkerState,
    WorkerStatus,
};
use tokio::sync::Notify;

/// Does `per_step` units per step while `work` holds any, then waits for a nudge.
struct Counter {
    name: String,
    per_step: u64,
    work: Arc<AtomicU64>,
    done: Arc<AtomicU64>,
    nudge: Arc<Notify>,
    /// Fail this many steps first (returning an error), then panic this many.
    failures: u32,
    panics: u32,
    /// Where `finish` records that it ran.
    log: Arc<Mutex<Vec<String>>>,
    /// `finish` hangs for a minute (a worker that ignores its deadline).
    stubborn: bool,
}

impl Counter {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            per_step: 1,
            work: Arc::new(AtomicU64::new(0)),
            done: Arc::new(AtomicU64::new(0)),
            nudge: Arc::new(Notify::new()),
            failures: 0,
            panics: 0,
            log: Arc::new(Mutex::new(Vec::new())),
            stubborn: false,
        }
    }
}

impl Worker for Counter {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn status(&self) -> WorkerStatus {
        WorkerStatus {
            queued: Some(self.work.load(Ordering::Relaxed)),
            ..WorkerStatus::default()
        }
        .counter("done", self.done.load(Ordering::Relaxed))
    }

    async fn step(&mut self, _ctx: &StepContext) -> Result<Step, WorkerError> {
        if self.failures > 0 {
            self.failures -= 1;
            return Err(WorkerError::new("disk on fire"));
        }
        if self.panics > 0 {
            self.panics -= 1;
            panic!("a bug");
        }
        let left = self.work.load(Ordering::Relaxed);
        if left == 0 {
            return Ok(Step::Idle);
        }
        let units = left.min(self.per_step);
        self.work.fetch_sub(units, Ordering::Relaxed);
        self.done.fetch_add(units, Ordering::Relaxed);
        // A step takes time, as real ones do.
        tokio::time::sleep(Duration::from_millis(1)).await;
        Ok(Step::Busy { units })
    }

    async fn wait_for_work(&mut self) {
        self.nudge.notified().await;
    }

    async fn finish(&mut self) {
        if self.stubborn {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        self.log.lock().unwrap().push(self.name.clone());
    }
}

/// Waits (virtual time) until `condition` holds, failing after a generous bound.
async fn until(mut condition: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached");
}

#[tokio::test(start_paused = true)]
async fn a_worker_steps_while_busy_idles_and_wakes_on_work() {
    let runner = Runner::new();
    let counter = Counter::new("counter");
    let (work, done, nudge) = (
        counter.work.clone(),
        counter.done.clone(),
        counter.nudge.clone(),
    );
    work.store(5, Ordering::Relaxed);
    let handle = runner.spawn(counter).unwrap();
    until(|| handle.info().state == WorkerState::Idle && done.load(Ordering::Relaxed) == 5).await;
    work.store(3, Ordering::Relaxed);
    nudge.notify_one();
    until(|| done.load(Ordering::Relaxed) == 8).await;
    until(|| handle.info().state == WorkerState::Idle).await;
    let info = handle.info();
    assert_eq!(info.units, 8);
    assert_eq!(info.status.counters.get("done"), Some(&8));
    assert_eq!(info.status.queued, Some(0));
    assert_eq!(runner.list().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn pause_stops_steps_and_resume_restarts_them() {
    let runner = Runner::new();
    let counter = Counter::new("counter");
    let (work, done) = (counter.work.clone(), counter.done.clone());
    work.store(1_000_000, Ordering::Relaxed);
    let handle = runner.spawn(counter).unwrap();
    until(|| done.load(Ordering::Relaxed) > 10).await;
    handle.pause();
    until(|| handle.info().state == WorkerState::Paused).await;
    let frozen = done.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        done.load(Ordering::Relaxed),
        frozen,
        "a paused worker steps"
    );
    assert!(handle.is_paused());
    handle.resume();
    until(|| done.load(Ordering::Relaxed) > frozen + 10).await;
    assert_ne!(handle.info().state, WorkerState::Paused);
}

#[tokio::test(start_paused = true)]
async fn pausing_an_idle_worker_takes_effect_at_once() {
    let runner = Runner::new();
    let counter = Counter::new("counter");
    let (work, done, nudge) = (
        counter.work.clone(),
        counter.done.clone(),
        counter.nudge.clone(),
    );
    let handle = runner.spawn(counter).unwrap();
    until(|| handle.info().state == WorkerState::Idle).await;
    handle.pause();
    until(|| handle.info().state == WorkerState::Paused).await;
    work.store(3, Ordering::Relaxed);
    nudge.notify_one();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(done.load(Ordering::Relaxed), 0);
    handle.resume();
    until(|| done.load(Ordering::Relaxed) == 3).await;
}

#[tokio::test(start_paused = true)]
async fn the_rate_limit_paces_units_and_can_change_while_running() {
    let runner = Runner::new();
    let mut counter = Counter::new("paced");
    counter.per_step = 10;
    let (work, done) = (counter.work.clone(), counter.done.clone());
    work.store(1_000_000, Ordering::Relaxed);
    let handle = runner
        .spawn_with(
            counter,
            WorkerOptions {
                max_rate: Some(100),
                ..WorkerOptions::default()
            },
        )
        .unwrap();
    let start = done.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let in_ten_seconds = done.load(Ordering::Relaxed) - start;
    assert!(
        (990..=1010).contains(&in_ten_seconds),
        "{in_ten_seconds} units in 10 s at 100/s"
    );
    assert_eq!(handle.info().max_rate, Some(100));
    handle.set_max_rate(Some(1000));
    let start = done.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let faster = done.load(Ordering::Relaxed) - start;
    assert!((9_900..=10_010).contains(&faster), "{faster} at 1000/s");
    handle.set_max_rate(None);
    assert_eq!(handle.info().max_rate, None);
}

#[tokio::test(start_paused = true)]
async fn tranquility_rests_in_proportion_to_the_step() {
    let runner = Runner::new();
    let counter = Counter::new("calm");
    let (work, done) = (counter.work.clone(), counter.done.clone());
    work.store(1_000_000, Ordering::Relaxed);
    let handle = runner
        .spawn_with(
            counter,
            WorkerOptions {
                tranquility: 4,
                ..WorkerOptions::default()
            },
        )
        .unwrap();
    // Each step takes 1 ms, then rests 4 ms: 200 steps a second.
    let start = done.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let steps = done.load(Ordering::Relaxed) - start;
    assert!((195..=205).contains(&steps), "{steps}");
    handle.set_tranquility(0);
    assert_eq!(handle.info().tranquility, 0);
}

#[tokio::test(start_paused = true)]
async fn failures_and_panics_are_recorded_and_the_worker_restarted() {
    let runner = Runner::new();
    let mut counter = Counter::new("flaky");
    counter.failures = 2;
    counter.panics = 1;
    let (work, done) = (counter.work.clone(), counter.done.clone());
    work.store(3, Ordering::Relaxed);
    let handle = runner.spawn(counter).unwrap();
    until(|| done.load(Ordering::Relaxed) == 3).await;
    let info = handle.info();
    assert_eq!(info.errors, 3);
    assert_eq!(info.panics, 1);
    assert_eq!(info.consecutive_errors, 0);
    assert_eq!(info.last_error.as_deref(), Some("panicked: a bug"));
    assert!(info.last_error_age_ms.is_some());
}

#[tokio::test(start_paused = true)]
async fn a_failing_worker_backs_off_longer_each_time() {
    let runner = Runner::new();
    let mut counter = Counter::new("broken");
    counter.failures = u32::MAX;
    let handle = runner.spawn(counter).unwrap();
    until(|| handle.info().state == WorkerState::Backoff).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    let info = handle.info();
    // 0.5 + 1 + 2 + 4 + 8 + 16 + 30 s... : about 7 attempts in a minute, not thousands.
    assert!((5..=9).contains(&info.errors), "{}", info.errors);
    assert_eq!(info.last_error.as_deref(), Some("disk on fire"));
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_services_before_storage_and_aborts_the_stubborn() {
    let runner = Runner::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut storage = Counter::new("storage");
    storage.log = log.clone();
    let mut service = Counter::new("service");
    service.log = log.clone();
    let mut stubborn = Counter::new("stubborn");
    stubborn.stubborn = true;
    stubborn.log = log.clone();
    // Started storage first, so that order of start is not what decides.
    runner
        .spawn_with(storage, WorkerOptions::in_group(Group::Storage))
        .unwrap();
    runner.spawn(service).unwrap();
    runner.spawn(stubborn).unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let report = runner.shutdown(Duration::from_secs(1)).await;
    assert_eq!(*log.lock().unwrap(), ["service", "storage"]);
    assert_eq!(report.aborted, ["stubborn"]);
    assert_eq!(report.stopped, ["service", "storage"]);
    for info in runner.list() {
        assert_eq!(info.state, WorkerState::Stopped, "{}", info.name);
    }
    assert!(matches!(
        runner.spawn(Counter::new("late")),
        Err(RunnerError::ShuttingDown { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn names_are_unique_among_live_workers() {
    let runner = Runner::new();
    runner.spawn(Counter::new("a")).unwrap();
    assert_eq!(
        runner.spawn(Counter::new("a")).unwrap_err(),
        RunnerError::DuplicateName { name: "a".into() }
    );
    let err = runner.handle("zz").unwrap_err();
    assert_eq!(
        err.to_string(),
        "no worker is named \"zz\"; known workers: a"
    );
}

/// A one-shot job: its name may be reused once it is done.
struct OneShot(Arc<AtomicBool>);

impl Worker for OneShot {
    fn name(&self) -> String {
        "job".to_owned()
    }

    async fn step(&mut self, _ctx: &StepContext) -> Result<Step, WorkerError> {
        self.0.store(true, Ordering::Relaxed);
        Ok(Step::Done)
    }

    async fn wait_for_work(&mut self) {}
}

#[tokio::test(start_paused = true)]
async fn a_done_worker_is_listed_and_its_name_reusable() {
    let runner = Runner::new();
    let ran = Arc::new(AtomicBool::new(false));
    let handle = runner.spawn(OneShot(ran.clone())).unwrap();
    until(|| handle.info().state == WorkerState::Done).await;
    assert!(ran.load(Ordering::Relaxed));
    assert!(runner.spawn(OneShot(ran)).is_ok());
    assert_eq!(runner.list().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_runner_takes_its_workers_with_it() {
    let runner = Runner::new();
    let counter = Counter::new("orphan");
    let (work, done) = (counter.work.clone(), counter.done.clone());
    work.store(u64::MAX, Ordering::Relaxed);
    runner.spawn(counter).unwrap();
    until(|| done.load(Ordering::Relaxed) > 0).await;
    drop(runner);
    tokio::time::sleep(Duration::from_millis(10)).await;
    let stopped_at = done.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        done.load(Ordering::Relaxed),
        stopped_at,
        "the worker kept running"
    );
    // The aborted task dropped the worker, and with it its share of what it held.
    assert_eq!(Arc::strong_count(&done), 1);
}
