//! One closed-loop worker: a tokio task with its own connections, rng and histogram, sending the
//! next request only when the previous answer has been read in full.
//!
//! Only successful operations go into the latency histogram (a fast 503 must not make a node look
//! quick); failures are counted by kind. What makes an answer a success is `answer`'s job: for
//! Tessera, a `300 Multiple Choices` read is a success (a valid answer, with siblings), and so is
//! any answer, read or write, counted in `siblings` when its `X-Siblings` header says the cell
//! holds more than one version; for etcd's gRPC, an answer with a non-zero `grpc-status` is a
//! failure even though its HTTP status is 200.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::answer::Answer;
use super::request::Requests;
use super::target::{Connection, Target};
use super::workload::{Op, OpChooser};
use crate::summary;

/// Pause after a failed connect, so that a dead node costs a counter, not a busy loop.
const RECONNECT_PAUSE: Duration = Duration::from_millis(20);

/// What every worker shares.
#[derive(Debug)]
pub struct Shared {
    /// Nodes, used round-robin by each worker.
    pub targets: Vec<Target>,
    /// Builds each request (Tessera's API or etcd's) and names the protocol, hence the transport.
    pub requests: Requests,
    /// The operation mix.
    pub chooser: OpChooser,
    /// Longest wait for one answer before the connection is dropped.
    pub timeout: Duration,
}

/// Why an operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Failure {
    /// An HTTP status other than 2xx and 300 (other than 200 for gRPC).
    Status(u16),
    /// A gRPC answer with this non-zero `grpc-status`.
    Grpc(u32),
    /// A complete gRPC answer without a valid `grpc-status` or with broken framing.
    Malformed,
    /// The TCP connection or HTTP handshake could not be made.
    Connect,
    /// The exchange failed mid-way (reset, closed, malformed).
    Io,
    /// No full answer within the timeout.
    Timeout,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Status(code) => write!(f, "{code}"),
            Failure::Grpc(code) => write!(f, "grpc-{code}"),
            Failure::Malformed => f.write_str("malformed"),
            Failure::Connect => f.write_str("connect"),
            Failure::Io => f.write_str("io"),
            Failure::Timeout => f.write_str("timeout"),
        }
    }
}

/// What a worker measured.
#[derive(Clone, Debug)]
pub struct Stats {
    /// Latencies of successful operations, ns.
    pub histogram: Histogram<u64>,
    /// Failures by kind.
    pub failures: BTreeMap<Failure, u64>,
    /// Successful answers about cells with siblings.
    pub siblings: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            histogram: summary::new_histogram(),
            failures: BTreeMap::new(),
            siblings: 0,
        }
    }
}

/// One worker. It is moved into its task for a phase and handed back at the end, so that its
/// connections survive from the preload to the measured run.
pub struct Worker {
    index: u64,
    connections: Vec<Option<Connection>>,
    next_target: usize,
    rng: StdRng,
    /// What the current phase has measured so far.
    pub stats: Stats,
}

impl Worker {
    /// Worker number `index` of a run seeded with `seed`.
    pub fn new(index: u64, targets: usize, seed: u64) -> Self {
        // Distinct, reproducible streams per worker.
        let stream = seed ^ (index + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        Self {
            index,
            connections: (0..targets).map(|_| None).collect(),
            next_target: index as usize % targets.max(1),
            rng: StdRng::seed_from_u64(stream),
            stats: Stats::default(),
        }
    }

    /// Writes keys `index, index + workers, ...` below `keys`, once each.
    pub async fn preload(mut self, shared: Arc<Shared>, workers: u64, keys: u64) -> Self {
        let mut key = self.index;
        while key < keys {
            let began = Instant::now();
            let outcome = self.exchange(&shared, Op::Write(key)).await;
            self.count(outcome, began.elapsed());
            key += workers;
        }
        self
    }

    /// Runs the mix until `end`, counting only operations that start at or after `measure_from`.
    pub async fn measure(
        mut self,
        shared: Arc<Shared>,
        measure_from: Instant,
        end: Instant,
    ) -> Self {
        loop {
            let began = Instant::now();
            if began >= end {
                return self;
            }
            let op = shared.chooser.next(&mut self.rng);
            let outcome = self.exchange(&shared, op).await;
            if began >= measure_from {
                self.count(outcome, began.elapsed());
            }
        }
    }

    fn count(&mut self, outcome: Result<Answer, Failure>, latency: Duration) {
        match outcome {
            Ok(answer) => {
                summary::record(&mut self.stats.histogram, latency);
                self.stats.siblings += u64::from(answer.siblings);
            }
            Err(failure) => *self.stats.failures.entry(failure).or_default() += 1,
        }
    }

    /// One request and its whole answer, on the next target's connection (opened if needed,
    /// dropped after any failure but a complete answer that is not a success).
    async fn exchange(&mut self, shared: &Shared, op: Op) -> Result<Answer, Failure> {
        let t = self.next_target;
        self.next_target = (t + 1) % shared.targets.len();
        let target = &shared.targets[t];
        let protocol = shared.requests.protocol();
        let connection = match &mut self.connections[t] {
            Some(connection) => connection,
            slot => match Connection::open(target, protocol.transport()).await {
                Ok(connection) => slot.insert(connection),
                Err(_) => {
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                    return Err(Failure::Connect);
                }
            },
        };
        let wire = shared.requests.build(op, target);
        match tokio::time::timeout(shared.timeout, connection.exchange(wire)).await {
            Ok(Ok(verdict)) => {
                if !connection.reusable() {
                    self.connections[t] = None;
                }
                verdict
            }
            Ok(Err(_)) => {
                self.connections[t] = None;
                Err(Failure::Io)
            }
            Err(_) => {
                self.connections[t] = None;
                Err(Failure::Timeout)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_name_their_kind() {
        assert_eq!(Failure::Status(503).to_string(), "503");
        assert_eq!(Failure::Grpc(12).to_string(), "grpc-12");
        assert_eq!(Failure::Malformed.to_string(), "malformed");
        assert_eq!(Failure::Connect.to_string(), "connect");
    }
}
