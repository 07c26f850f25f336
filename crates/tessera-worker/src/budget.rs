//! A bound on short background tasks, in tasks and in bytes.
//!
//! A write's replication stragglers and a read's repairs outlive the request that started them.
//! Unbounded, a peer that is alive but slow makes them pile up, each holding a copy of its cells
//! until its deadline. A [`TaskBudget`] admits a task only while both the number of tasks and
//! the bytes they hold stay under their bounds; past them, [`TaskBudget::try_acquire`] says no
//! at once and the caller degrades (a straggler is kept as a hint on disk, a repair is skipped),
//! so memory and tasks stay bounded whatever the peers do.
//!
//! A stopping node [`drains`](TaskBudget::drain) the budget before it closes storage: it waits
//! for the admitted tasks, and at the deadline tells the rest to give up
//! ([`BudgetPermit::given_up`]), which a straggler answers by storing its hint.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tracing::{info, warn};

#[derive(Debug)]
struct Inner {
    name: &'static str,
    tasks: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    max_tasks: u32,
    max_bytes: u32,
    admitted: AtomicU64,
    refused: AtomicU64,
    in_flight_bytes: AtomicU64,
    give_up: watch::Sender<bool>,
    released: Notify,
}

/// Bounds on a kind of short background task; see the module docs. Cheap to clone (shared).
#[derive(Clone, Debug)]
pub struct TaskBudget {
    inner: Arc<Inner>,
}

/// What a budget holds and has done, for the API and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetStats {
    /// The budget's name.
    pub name: String,
    /// Tasks admitted and still running.
    pub tasks: u64,
    /// Bytes those tasks hold.
    pub bytes: u64,
    /// The bound on tasks.
    pub max_tasks: u64,
    /// The bound on bytes.
    pub max_bytes: u64,
    /// Tasks admitted since start.
    pub admitted: u64,
    /// Tasks refused since start because a bound was reached.
    pub refused: u64,
}

/// What draining did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Tasks running when the drain began.
    pub running: u64,
    /// Tasks still running at the deadline, told to give up.
    pub told_to_give_up: u64,
    /// Tasks still running after the grace that followed (abandoned).
    pub abandoned: u64,
}

/// An admitted task's share of the budget, returned when dropped.
#[derive(Debug)]
pub struct BudgetPermit {
    tasks: Option<OwnedSemaphorePermit>,
    bytes: Option<OwnedSemaphorePermit>,
    held_bytes: u64,
    give_up: watch::Receiver<bool>,
    budget: Arc<Inner>,
}

impl BudgetPermit {
    /// Completes when the node stops and the drain deadline has passed: the task should end
    /// now, in the way that loses nothing (a straggler stores its hint).
    pub fn given_up(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut give_up = self.give_up.clone();
        async move {
            let _ = give_up.wait_for(|given_up| *given_up).await;
        }
    }
}

impl Drop for BudgetPermit {
    fn drop(&mut self) {
        // Release first, then wake the drain, so that it sees the permits back.
        drop(self.bytes.take());
        drop(self.tasks.take());
        self.budget
            .in_flight_bytes
            .fetch_sub(self.held_bytes, Ordering::Relaxed);
        self.budget.released.notify_waiters();
    }
}

impl TaskBudget {
    /// A budget of at most `max_tasks` tasks holding at most `max_bytes` bytes together.
    pub fn new(name: &'static str, max_tasks: u32, max_bytes: u32) -> Self {
        let (give_up, _) = watch::channel(false);
        Self {
            inner: Arc::new(Inner {
                name,
                tasks: Arc::new(Semaphore::new(max_tasks as usize)),
                bytes: Arc::new(Semaphore::new(max_bytes as usize)),
                max_tasks,
                max_bytes,
                admitted: AtomicU64::new(0),
                refused: AtomicU64::new(0),
                in_flight_bytes: AtomicU64::new(0),
                give_up,
                released: Notify::new(),
            }),
        }
    }

    /// Admits a task holding `bytes`, or refuses at once (counted) when either bound would be
    /// passed. A task larger than the whole byte bound is always refused.
    pub fn try_acquire(&self, bytes: usize) -> Option<BudgetPermit> {
        let inner = &self.inner;
        let refuse = || {
            inner.refused.fetch_add(1, Ordering::Relaxed);
            None
        };
        if *inner.give_up.borrow() {
            return refuse();
        }
        let Ok(tasks) = inner.tasks.clone().try_acquire_owned() else {
            return refuse();
        };
        let held = match u32::try_from(bytes) {
            Ok(0) => None,
            Ok(n) if n <= inner.max_bytes => match inner.bytes.clone().try_acquire_many_owned(n) {
                Ok(permit) => Some(permit),
                Err(_) => return refuse(),
            },
            _ => return refuse(),
        };
        inner.admitted.fetch_add(1, Ordering::Relaxed);
        inner
            .in_flight_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
        Some(BudgetPermit {
            tasks: Some(tasks),
            bytes: held,
            held_bytes: bytes as u64,
            give_up: inner.give_up.subscribe(),
            budget: inner.clone(),
        })
    }

    /// Tasks admitted and still running.
    pub fn running(&self) -> u64 {
        let inner = &self.inner;
        u64::from(inner.max_tasks).saturating_sub(inner.tasks.available_permits() as u64)
    }

    /// What the budget holds and has done.
    pub fn stats(&self) -> BudgetStats {
        let inner = &self.inner;
        BudgetStats {
            name: inner.name.to_owned(),
            tasks: self.running(),
            bytes: inner.in_flight_bytes.load(Ordering::Relaxed),
            max_tasks: u64::from(inner.max_tasks),
            max_bytes: u64::from(inner.max_bytes),
            admitted: inner.admitted.load(Ordering::Relaxed),
            refused: inner.refused.load(Ordering::Relaxed),
        }
    }

    /// Waits until no admitted task is left or `until` passes; true if none is left.
    async fn wait_empty(&self, until: Instant) -> bool {
        loop {
            let released = self.inner.released.notified();
            tokio::pin!(released);
            // Registered before the check, so a release between the check and the wait wakes it.
            released.as_mut().enable();
            if self.running() == 0 {
                return true;
            }
            tokio::select! {
                () = released => {}
                () = tokio::time::sleep_until(until) => return self.running() == 0,
            }
        }
    }

    /// Stops admitting, waits up to `deadline` for the running tasks, then tells the rest to
    /// give up and waits up to `grace` more for them to do so.
    pub async fn drain(&self, deadline: Duration, grace: Duration) -> DrainReport {
        let name = self.inner.name;
        let running = self.running();
        let mut report = DrainReport {
            running,
            ..DrainReport::default()
        };
        if running > 0 {
            info!(budget = name, running, "waiting for background tasks");
        }
        if !self.wait_empty(Instant::now() + deadline).await {
            report.told_to_give_up = self.running();
            info!(
                budget = name,
                running = report.told_to_give_up,
                "background tasks still running at the deadline: telling them to give up"
            );
        }
        // From here on nothing is admitted either.
        self.inner.give_up.send_replace(true);
        if !self.wait_empty(Instant::now() + grace).await {
            report.abandoned = self.running();
            warn!(
                budget = name,
                abandoned = report.abandoned,
                "background tasks did not give up in time"
            );
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_within_both_bounds_and_counts_refusals() {
        let budget = TaskBudget::new("test", 2, 100);
        let a = budget.try_acquire(60).expect("fits");
        assert!(budget.try_acquire(60).is_none(), "bytes bound");
        let b = budget.try_acquire(40).expect("fits exactly");
        assert!(budget.try_acquire(0).is_none(), "task bound");
        assert!(
            budget.try_acquire(1000).is_none(),
            "larger than the whole budget"
        );
        let stats = budget.stats();
        assert_eq!((stats.tasks, stats.bytes), (2, 100));
        assert_eq!((stats.admitted, stats.refused), (2, 3));
        drop(a);
        assert_eq!(budget.stats().bytes, 40);
        assert!(budget.try_acquire(60).is_some());
        drop(b);
        assert_eq!(budget.running(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn drain_waits_for_tasks_that_finish_in_time() {
        let budget = TaskBudget::new("test", 8, 1 << 20);
        let permit = budget.try_acquire(10).unwrap();
        let task = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            drop(permit);
        });
        let report = budget
            .drain(Duration::from_secs(1), Duration::from_secs(1))
            .await;
        assert_eq!(
            report,
            DrainReport {
                running: 1,
                told_to_give_up: 0,
                abandoned: 0
            }
        );
        task.await.unwrap();
        assert!(
            budget.try_acquire(1).is_none(),
            "a drained budget admits nothing"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_deadline_tasks_are_told_to_give_up() {
        let budget = TaskBudget::new("test", 8, 1 << 20);
        let mut gave_up = Vec::new();
        for slow in [false, true] {
            let permit = budget.try_acquire(10).unwrap();
            let given_up = permit.given_up();
            gave_up.push(tokio::spawn(async move {
                // One task gives up when told; the other ignores it for a minute.
                if slow {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                } else {
                    given_up.await;
                }
                drop(permit);
            }));
        }
        let report = budget
            .drain(Duration::from_millis(100), Duration::from_millis(100))
            .await;
        assert_eq!(
            report,
            DrainReport {
                running: 2,
                told_to_give_up: 2,
                abandoned: 1
            }
        );
    }
}
