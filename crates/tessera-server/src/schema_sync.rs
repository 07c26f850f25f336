//! Pushes a new table to every peer before its create answers, so that the table is usable
//! through any node as soon as the create returns. Peers that are down or slow miss the push and
//! learn the table by membership gossip instead (the `table:<name>` metadata every node
//! publishes, see `crate::gossip::metadata`), within seconds of being reachable again.
//!
//! The pushes run on the `schema-push` worker ([`SchemaPusher`]), one table at a time, each to
//! every peer at once; a create queues its table ([`SchemaPushes::push`]) and waits for the
//! outcome, under a deadline of its own.

use std::sync::Arc;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::join_all;
use tessera_worker::{Step, StepContext, Worker, WorkerError, WorkerStatus};
use tokio::sync::{mpsc, oneshot};

use crate::node::Node;
use crate::peer::{FROM_HEADER, SCHEMA_PATH, SECRET_HEADER};
use crate::schema::TableSchema;

/// How long a create waits for each peer to take the new table.
const PUSH_TIMEOUT: Duration = Duration::from_secs(1);
/// Most tables waiting to be pushed; a create past it leaves the table to gossip.
const QUEUE_CAPACITY: usize = 64;

/// The worker's name.
pub const SCHEMA_PUSH: &str = "schema-push";

struct PushJob {
    table: TableSchema,
    /// The peers that did not take it, each with why.
    reply: oneshot::Sender<Vec<String>>,
}

/// Where creates queue their tables for the `schema-push` worker.
pub struct SchemaPushes {
    jobs: mpsc::Sender<PushJob>,
    receiver: Mutex<Option<mpsc::Receiver<PushJob>>>,
}

impl Default for SchemaPushes {
    fn default() -> Self {
        let (jobs, receiver) = mpsc::channel(QUEUE_CAPACITY);
        Self {
            jobs,
            receiver: Mutex::new(Some(receiver)),
        }
    }
}

impl SchemaPushes {
    /// Sends `table` to every peer; returns the peers that did not take it (they learn it by
    /// gossip).
    pub async fn push(&self, table: &TableSchema) -> Vec<String> {
        let (reply, answer) = oneshot::channel();
        let job = PushJob {
            table: table.clone(),
            reply,
        };
        let missed = match self.jobs.try_send(job) {
            Ok(()) => match tokio::time::timeout(PUSH_TIMEOUT * 2, answer).await {
                Ok(Ok(missed)) => missed,
                _ => vec!["the push did not finish in time".to_owned()],
            },
            Err(_) => vec!["the schema-push worker is busy or stopped".to_owned()],
        };
        if !missed.is_empty() {
            tracing::info!(table = %table.name, missed = ?missed, "some peers will learn the new table by gossip");
        }
        missed
    }
}

/// The `schema-push` worker; see the module docs.
pub struct SchemaPusher {
    node: Arc<Node>,
    jobs: mpsc::Receiver<PushJob>,
    waiting: Option<PushJob>,
    pushed: u64,
    missed: u64,
}

impl SchemaPusher {
    /// The pusher of `node`'s queue; `None` if it was already taken.
    pub fn new(node: Arc<Node>) -> Option<Self> {
        let jobs = node
            .cluster
            .schema_pushes
            .receiver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        Some(Self {
            node,
            jobs,
            waiting: None,
            pushed: 0,
            missed: 0,
        })
    }
}

impl Worker for SchemaPusher {
    fn name(&self) -> String {
        SCHEMA_PUSH.to_owned()
    }

    fn status(&self) -> WorkerStatus {
        WorkerStatus {
            queued: Some(self.jobs.len() as u64),
            ..WorkerStatus::default()
        }
        .counter("pushed", self.pushed)
        .counter("missed", self.missed)
    }

    async fn step(&mut self, _ctx: &StepContext) -> Result<Step, WorkerError> {
        let job = match self.waiting.take() {
            Some(job) => job,
            None => match self.jobs.try_recv() {
                Ok(job) => job,
                Err(_) => return Ok(Step::Idle),
            },
        };
        let missed = push_to_peers(&self.node, &job.table).await;
        self.pushed += 1;
        self.missed += missed.len() as u64;
        // The create may have given up waiting; the push happened anyway.
        let _ = job.reply.send(missed);
        Ok(Step::Busy { units: 1 })
    }

    async fn wait_for_work(&mut self) {
        match self.jobs.recv().await {
            Some(job) => self.waiting = Some(job),
            // The node holds the sender for its whole life.
            None => std::future::pending().await,
        }
    }
}

/// Sends `table` to every peer at once; returns the peers that did not take it.
async fn push_to_peers(node: &Node, table: &TableSchema) -> Vec<String> {
    let client = match internal_client(node) {
        Ok(client) => client,
        Err(err) => return vec![format!("no HTTP client: {err}")],
    };
    let sends = node
        .cluster
        .peers(node.id())
        .into_iter()
        .map(|(peer, addr)| {
            let request = client
                .put(format!("http://{addr}{SCHEMA_PATH}"))
                .header(SECRET_HEADER, node.cluster.secret.as_str())
                .header(FROM_HEADER, node.id())
                .timeout(PUSH_TIMEOUT)
                .json(table)
                .send();
            async move {
                match request.await {
                    Ok(response) if response.status().is_success() => None,
                    Ok(response) => Some(format!("{peer}: HTTP {}", response.status())),
                    Err(err) => Some(format!("{peer}: {err}")),
                }
            }
        });
    join_all(sends).await.into_iter().flatten().collect()
}

/// A client whose sockets leave from this node's address, like every internal connection.
fn internal_client(node: &Node) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .local_address(crate::cluster::source_ip(node.config.node.listen.ip()))
        .build()
}
