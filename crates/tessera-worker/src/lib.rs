//! One shape for every background job of a Tessera node.
//!
//! A node does a lot besides answering requests: it commits writes in groups, runs membership,
//! delivers hints, applies what gossip tells it, and (later) streams partitions and repairs
//! replicas. Each of those is a [`Worker`]: a named job that does a bounded amount of work per
//! [`Worker::step`], says whether more is waiting, and otherwise waits for work. The [`Runner`]
//! owns them all (as Garage's `BackgroundRunner` does):
//! - it starts each worker on a task of its own, and restarts one whose step fails or panics,
//!   after a backoff, recording the error;
//! - it can pause and resume a worker, and change its tranquility (rest in proportion to the time
//!   a step took) or its rate (units of work per second) while it runs;
//! - it stops them on shutdown, in [`Group`] order, each with an exit deadline, before the node
//!   closes its storage;
//! - it lists them as typed [`WorkerInfo`], the one model the API, the CLI and metrics share.
//!
//! Short background tasks that are not jobs (a write's replication stragglers, read repairs)
//! run under a [`TaskBudget`] instead: a bound in tasks and in bytes, past which the caller
//! degrades (a straggler becomes a hint, a repair is skipped), and which a stopping node drains.
//!
//! The crate knows nothing of storage or the network; it depends only on tokio.

mod budget;
mod error;
mod info;
mod pace;
mod runner;
mod worker;

pub use budget::{BudgetPermit, BudgetStats, DrainReport, TaskBudget};
pub use error::{RunnerError, WorkerError};
pub use info::{WorkerInfo, WorkerReport, WorkerSettings, WorkerState, WorkerStatus};
pub use runner::{Runner, ShutdownReport, WorkerHandle, WorkerOptions};
pub use worker::{Group, Step, StepContext, Worker};
