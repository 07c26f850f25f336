//! Errors of the chaos harness. Each carries what is needed to act on it: the command that
//! failed and what it printed, the file and line, the node and the address.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ChaosError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{file}:{line}: not a history event: {reason}")]
    BadHistory {
        file: String,
        line: usize,
        reason: String,
    },

    #[error("encoding JSON: {0}")]
    Encode(String),

    /// The harness lacks a right it needs (root, CAP_NET_ADMIN, iptables).
    #[error("{0}")]
    Privileges(String),

    /// A command (iptables, tc) failed.
    #[error("`{command}` failed ({}): {stderr}", exit_text(*.code))]
    Command {
        command: String,
        code: Option<i32>,
        stderr: String,
    },

    /// An address outside what the harness may touch.
    #[error("refusing to touch {address}: {reason}")]
    ForbiddenAddress { address: String, reason: String },

    /// Bad settings from the command line.
    #[error("{0}")]
    Usage(String),

    /// A node did not start, or the cluster did not come together.
    #[error("{0}")]
    Cluster(String),

    /// Another chaos run holds the lock of these addresses.
    #[error("another chaos run is using {range} (lock {lock} is held); wait for it or pick other addresses with --base-ip")]
    Busy { range: String, lock: String },

    #[error("plotting: {0}")]
    Plot(String),
}

fn exit_text(code: Option<i32>) -> String {
    code.map(|c| format!("exit {c}"))
        .unwrap_or_else(|| "could not run".into())
}

impl ChaosError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        ChaosError::Io {
            what: what.into(),
            source,
        }
    }
}
