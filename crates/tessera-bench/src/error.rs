//! The one error type of the benchmark tools.
//!
//! Variants carry what is needed to see what went wrong without rerunning: the flag and value, the
//! target, the phase and operation number.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything that can stop a benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A command-line value that parses but makes no sense.
    #[error("invalid --{flag} {value:?}: {reason}")]
    InvalidArgument {
        /// The flag, without dashes.
        flag: &'static str,
        /// The value given.
        value: String,
        /// Why it is refused.
        reason: String,
    },

    /// A `--target` that is not `http://HOST:PORT`.
    #[error("invalid target {url:?}: {reason}")]
    InvalidTarget {
        /// The URL given.
        url: String,
        /// Why it is refused.
        reason: String,
    },

    /// A target's host name did not resolve.
    #[error("cannot resolve {authority}: {source}")]
    Resolve {
        /// `host:port`.
        authority: String,
        /// The resolver's error.
        source: std::io::Error,
    },

    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },

    /// Any other I/O failure, labelled by what was being done.
    #[error("I/O failed while {what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },

    /// An HTTP exchange failed outside the measured loop (where failures are counted instead).
    #[error("HTTP request to {target} failed while {what}: {message}")]
    Http {
        /// The target URL.
        target: String,
        /// What was being done.
        what: &'static str,
        /// hyper's message.
        message: String,
    },

    /// Creating the benchmark table was refused.
    #[error("creating table {table} on {target} answered {status}: {body}")]
    CreateTable {
        /// The table.
        table: String,
        /// The target URL.
        target: String,
        /// The HTTP status.
        status: u16,
        /// The response body.
        body: String,
    },

    /// The storage benchmark refuses to reuse a database: every phase must start from a known state.
    #[error("{path} already exists; give an empty or new --dir so that every phase starts fresh")]
    DirNotEmpty {
        /// The database directory.
        path: PathBuf,
    },

    /// A storage call failed during a phase.
    #[error("storage phase {phase} failed at operation {op}: {source}")]
    Storage {
        /// The phase (`engine-put`, ...).
        phase: &'static str,
        /// The operation's index within its thread.
        op: u64,
        /// The storage error.
        source: tessera_storage::StorageError,
    },

    /// Opening the storage engine failed.
    #[error("cannot open RocksDB at {path}: {source}")]
    Open {
        /// The database directory.
        path: PathBuf,
        /// The storage error.
        source: tessera_storage::StorageError,
    },

    /// A benchmark thread or task died.
    #[error("a worker of phase {phase} panicked or was cancelled: {message}")]
    Worker {
        /// The phase.
        phase: String,
        /// The panic or join message.
        message: String,
    },

    /// Histograms of different shapes cannot be merged (a bug).
    #[error("cannot merge latency histograms of phase {phase}: {message}")]
    Histogram {
        /// The phase.
        phase: String,
        /// hdrhistogram's message.
        message: String,
    },

    /// A summary file could not be read.
    #[error("cannot read summaries from {path}: {source}")]
    ReadSummary {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },

    /// A line of a summary file that starts like JSON is not a summary.
    #[error("line {line} of {path} is not a summary: {source}")]
    ParseSummary {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The JSON error.
        source: serde_json::Error,
    },
}
