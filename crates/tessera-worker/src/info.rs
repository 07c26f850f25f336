//! The typed status of workers: one model for the JSON API, the CLI and metrics.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::budget::BudgetStats;
use crate::worker::Group;

/// Where a worker is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    /// Running a step, or about to run the next one.
    Busy,
    /// Throttled: resting between steps (tranquility or rate limit).
    Throttled,
    /// Waiting for work.
    Idle,
    /// Paused by an operator; steps again once resumed.
    Paused,
    /// Its last step failed or panicked; waiting out a backoff before the next.
    Backoff,
    /// Asked to stop; finishing.
    Stopping,
    /// Stopped by the runner.
    Stopped,
    /// Completed its job.
    Done,
}

impl WorkerState {
    /// Every state, for metrics that export one gauge per state.
    pub const ALL: [WorkerState; 8] = [
        WorkerState::Busy,
        WorkerState::Throttled,
        WorkerState::Idle,
        WorkerState::Paused,
        WorkerState::Backoff,
        WorkerState::Stopping,
        WorkerState::Stopped,
        WorkerState::Done,
    ];

    /// The state's name, as the API shows it.
    pub fn name(self) -> &'static str {
        match self {
            WorkerState::Busy => "busy",
            WorkerState::Throttled => "throttled",
            WorkerState::Idle => "idle",
            WorkerState::Paused => "paused",
            WorkerState::Backoff => "backoff",
            WorkerState::Stopping => "stopping",
            WorkerState::Stopped => "stopped",
            WorkerState::Done => "done",
        }
    }

    /// True while the runner still steps or will step the worker.
    pub fn is_live(self) -> bool {
        !matches!(self, WorkerState::Stopped | WorkerState::Done)
    }
}

impl std::fmt::Display for WorkerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a worker says about itself (see [`crate::Worker::status`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStatus {
    /// A short human line: what it is doing or how far it got.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// Work waiting (queued writes, pending hints), in the worker's unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued: Option<u64>,
    /// Counters the worker chooses (delivered, expired, ...), exported as metrics too.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<String, u64>,
}

impl WorkerStatus {
    /// Adds a counter.
    pub fn counter(mut self, name: &str, value: u64) -> Self {
        self.counters.insert(name.to_owned(), value);
        self
    }
}

/// One worker as the runner sees it: identity, settings, what it did, and its own status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// Unique name on the node.
    pub name: String,
    /// When it stops during shutdown.
    pub group: Group,
    /// Where it is now.
    pub state: WorkerState,
    /// Whether an operator has paused it: a paused worker finishes its current step, then
    /// waits in [`WorkerState::Paused`] until resumed.
    pub paused: bool,
    /// Rest after each busy step, as a multiple of the time the step took (0: none).
    pub tranquility: u32,
    /// Most units of work per second (`None`: unlimited).
    pub max_rate: Option<u64>,
    /// Steps run since start.
    pub steps: u64,
    /// Units of work done since start.
    pub units: u64,
    /// Units per second over the last measured second (0 when it has not worked lately).
    pub rate: f64,
    /// Failed steps since start (errors and panics).
    pub errors: u64,
    /// Steps that panicked; the worker was restarted after each.
    pub panics: u64,
    /// Failed steps in a row (0 once a step succeeds).
    pub consecutive_errors: u32,
    /// The last failure, and how long ago it was.
    pub last_error: Option<String>,
    /// Milliseconds since the last failure.
    pub last_error_age_ms: Option<u64>,
    /// The worker's own status, as of its last step.
    pub status: WorkerStatus,
}

/// A node's workers and background budgets: what `GET /v1/node/workers` answers and
/// `tessera node workers` shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerReport {
    /// The node.
    pub node: String,
    /// Every worker, in the order they were started.
    pub workers: Vec<WorkerInfo>,
    /// The budgets of short background tasks.
    pub budgets: Vec<BudgetStats>,
}

/// A change to a worker's throttle (`PATCH /v1/node/workers/{name}`); absent fields are kept.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    /// Rest after each busy step, as a multiple of the step's time (0: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tranquility: Option<u32>,
    /// Most units of work per second (0: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rate: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_round_trips_through_json() {
        let info = WorkerInfo {
            name: "hint-delivery".into(),
            group: Group::Service,
            state: WorkerState::Backoff,
            paused: false,
            tranquility: 2,
            max_rate: Some(5000),
            steps: 10,
            units: 640,
            rate: 12.5,
            errors: 1,
            panics: 0,
            consecutive_errors: 1,
            last_error: Some("n2: unreachable".into()),
            last_error_age_ms: Some(300),
            status: WorkerStatus {
                progress: Some("3 targets".into()),
                queued: Some(12),
                counters: BTreeMap::new(),
            }
            .counter("delivered", 640),
        };
        let json = serde_json::to_string(&info).unwrap();
        assert!(json.contains(r#""state":"backoff""#), "{json}");
        assert!(json.contains(r#""group":"service""#), "{json}");
        let back: WorkerInfo = serde_json::from_str(&json).unwrap();
        assert_eq!(back, info);
    }

    #[test]
    fn states_have_distinct_names() {
        for (i, a) in WorkerState::ALL.iter().enumerate() {
            for b in &WorkerState::ALL[i + 1..] {
                assert_ne!(a.name(), b.name());
            }
            let json = serde_json::to_string(a).unwrap();
            assert_eq!(json, format!("\"{a}\""));
        }
    }
}
