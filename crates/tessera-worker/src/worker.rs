//! What a worker is: a named job stepped by the [`Runner`](crate::Runner).

use std::future::Future;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::error::WorkerError;
use crate::info::WorkerStatus;

/// What one step did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Did `units` of work (hints sent, writes committed, keys compared: the worker's unit) and
    /// may have more: the runner steps again, after any throttle.
    Busy {
        /// Work done in this step, in the worker's unit; drives the rate limit and the
        /// measured rate.
        units: u64,
    },
    /// Nothing to do: the runner waits on [`Worker::wait_for_work`].
    Idle,
    /// The job is complete: the runner stops stepping it and lists it as done.
    Done,
}

/// When a worker stops during shutdown, relative to the others.
///
/// A node stops its services first (membership says goodbye, hint delivery and repair stop),
/// then its storage workers (the group committer drains what is queued), then closes storage.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    /// Stops first: jobs that use storage through the workers of [`Group::Storage`].
    #[default]
    Service,
    /// Stops last, once nothing else writes: the jobs that write to storage for the others.
    Storage,
}

/// What a step can ask of its runner.
#[derive(Clone, Debug)]
pub struct StepContext {
    pub(crate) exit: watch::Receiver<bool>,
}

impl StepContext {
    /// True once the runner asked this worker to stop: a long step should end early, leaving
    /// its work in a state the next start can resume from.
    pub fn exit_requested(&self) -> bool {
        *self.exit.borrow()
    }

    /// Completes once the runner asks this worker to stop (for `select!` in long steps).
    pub async fn exiting(&self) {
        let mut exit = self.exit.clone();
        let _ = exit.wait_for(|exit| *exit).await;
    }
}

/// A background job. The runner owns it on a task of its own and calls, in a loop:
/// [`step`](Worker::step) while it returns [`Step::Busy`], [`wait_for_work`](Worker::wait_for_work)
/// after [`Step::Idle`], and [`finish`](Worker::finish) once when it stops.
///
/// A step does a *bounded* amount of work (one batch, one round), so that pausing, throttling and
/// stopping take effect between steps. [`status`](Worker::status) is read between steps, so it
/// costs nothing while a step runs.
pub trait Worker: Send + 'static {
    /// The worker's name, unique on the node (`group-commit`, `hint-delivery`, ...).
    fn name(&self) -> String;

    /// What the worker reports beyond what the runner measures (progress, queue, counters).
    fn status(&self) -> WorkerStatus {
        WorkerStatus::default()
    }

    /// Does a bounded amount of work. An error is recorded and the step retried after a backoff.
    fn step(&mut self, ctx: &StepContext)
        -> impl Future<Output = Result<Step, WorkerError>> + Send;

    /// Waits until there may be work (a timer, a queue, a nudge). Called after [`Step::Idle`];
    /// the runner also stops waiting when it pauses or stops the worker.
    fn wait_for_work(&mut self) -> impl Future<Output = ()> + Send;

    /// Called once when the worker stops (not after [`Step::Done`]), within the exit deadline:
    /// drain a queue, say goodbye. Not called again if the deadline cuts it short.
    fn finish(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
}
