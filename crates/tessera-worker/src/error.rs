//! Errors of workers and of the runner.

use std::fmt;

/// Why one step of a worker failed. The runner records it, backs off and steps again, so a
/// worker returns it for failures it expects to recover from (a peer that does not answer, a
/// storage call that failed); the message is what operators see in the worker list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerError {
    message: String,
}

impl WorkerError {
    /// An error with this message.
    pub fn new(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for WorkerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for WorkerError {}

/// Why the runner refused a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RunnerError {
    /// No worker has this name.
    #[error("no worker is named {name:?}; known workers: {}", known.join(", "))]
    NoSuchWorker {
        /// The name asked for.
        name: String,
        /// Every worker's name.
        known: Vec<String>,
    },
    /// A running worker already has this name.
    #[error("a worker named {name:?} is already running")]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// The runner is stopping and starts nothing new.
    #[error("the node is shutting down: worker {name:?} was not started")]
    ShuttingDown {
        /// The worker that was not started.
        name: String,
    },
    /// A setting out of its range.
    #[error("invalid {setting} for worker {name:?}: {reason}")]
    InvalidSetting {
        /// The worker.
        name: String,
        /// Which setting.
        setting: &'static str,
        /// What was wrong.
        reason: String,
    },
}
