//! The `rebalance` worker: moves this node through the steps of a layout change (see
//! `tessera-layout`), and adds the node to the cluster when `cluster.auto_join` asks it to.
//!
//! Each step looks at the layout and the progress the topology holds, and does what is due:
//! 1. **ack**: once the writes this node planned under the previous epoch have passed their
//!    deadline (the longest a forwarded write can take), it publishes that it writes under the new
//!    one;
//! 2. **sync**: once every node has acked, it pulls the partitions it joins (for every table) from
//!    their sources, and publishes each partition it holds whole;
//! 3. **read**: once it sees every partition held whole, it publishes that it reads from the new
//!    ring;
//! 4. **cleanup**: once every node reads from the new ring and a grace period has passed, it drops
//!    the partitions it no longer replicates.
//!
//! Progress is published by gossip (the membership worker reads it from the layout manager).

use std::sync::Arc;
use std::time::Duration;

use tessera_layout::{Change, Layout, NodeProgress};
use tessera_worker::{Step, StepContext, Worker, WorkerError, WorkerStatus};
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, info};

use super::commit::{self, CommitError};
use crate::node::Node;

/// The worker's name.
pub const REBALANCE: &str = "rebalance";

/// How often the worker looks again when nothing wakes it.
const TICK: Duration = Duration::from_secs(1);
/// How long after joining membership a node with `auto_join` waits before adding itself, and
/// between attempts.
const AUTO_JOIN_RETRY: Duration = Duration::from_secs(2);

/// How long writes planned under an epoch may still be running after it changed: a forwarded
/// write gets twice the timeout at its coordinator, on top of its own.
fn drain(node: &Node) -> Duration {
    node.request_timeout() * 3
}

/// Steps 1 and 3 (blocking: publishing progress writes `meta`); returns what it did, if anything.
fn advance(node: &Node, layout: &Layout) -> Result<Option<String>, WorkerError> {
    let epoch = layout.epoch();
    let manager = &node.cluster.layout;
    let update = |change: &dyn Fn(&mut NodeProgress)| {
        manager
            .update_progress(|p| change(p))
            .map_err(WorkerError::new)
    };
    let own = manager.own_progress();
    if own.acked < epoch {
        let drained = !layout.is_move() || manager.adopted_at().elapsed() >= drain(node);
        if drained && update(&|p| p.acked = p.acked.max(epoch))? {
            info!(
                node = node.id(),
                epoch, "writing under the new layout (acknowledged)"
            );
            return Ok(Some(format!("acknowledged epoch {epoch}")));
        }
        return Ok(None);
    }
    if !layout.is_move() {
        return Ok(None);
    }
    let state = node.cluster.topology.state();
    let ns = &state.replication_factors;
    if own.reading < epoch
        && state.progress.all_acked(layout)
        && state.progress.all_synced(layout, ns)
    {
        update(&|p| p.reading = p.reading.max(epoch))?;
        info!(
            node = node.id(),
            epoch, "every partition is held by its new replicas: reading from the new ring"
        );
        return Ok(Some(format!("reading epoch {epoch}")));
    }
    Ok(None)
}

/// See the module docs.
pub struct RebalanceWorker {
    node: Arc<Node>,
    nudge: Arc<Notify>,
    next_join: Instant,
    join_attempts: u64,
    last_step: String,
}

impl RebalanceWorker {
    pub fn new(node: Arc<Node>) -> Self {
        Self {
            nudge: node.cluster.rebalance_nudge.clone(),
            node,
            next_join: Instant::now() + AUTO_JOIN_RETRY,
            join_attempts: 0,
            last_step: "idle".to_owned(),
        }
    }

    /// Adds this node to the cluster if `cluster.auto_join` says so and it is not in the ring.
    async fn auto_join(&mut self, layout: &Layout) -> Option<String> {
        let node = &self.node;
        if !node.config.cluster.auto_join
            || layout.ring().contains(&node.id().to_owned())
            || Instant::now() < self.next_join
            || !node.cluster.topology.state().complete()
        {
            return None;
        }
        self.next_join = Instant::now() + AUTO_JOIN_RETRY;
        self.join_attempts += 1;
        let manager = &node.cluster.layout;
        if let Err(error) = manager.stage(Change::Add {
            node: node.id().to_owned(),
        }) {
            return Some(format!("cannot plan to add itself: {error}"));
        }
        let result = commit::commit(
            manager,
            &node.cluster.transport,
            None,
            Duration::from_secs(5),
        )
        .await;
        Some(match result {
            Ok(layout) => {
                info!(
                    node = node.id(),
                    epoch = layout.epoch(),
                    "added itself to the cluster (auto_join)"
                );
                format!("added itself at epoch {}", layout.epoch())
            }
            Err(error @ (CommitError::Lost { .. } | CommitError::Stale { .. })) => {
                debug!(node = node.id(), %error, "auto_join raced another change; retrying");
                format!("retrying: {error}")
            }
            Err(error) => format!("retrying: {error}"),
        })
    }
}

impl Worker for RebalanceWorker {
    fn name(&self) -> String {
        REBALANCE.to_owned()
    }

    fn status(&self) -> WorkerStatus {
        let own = self.node.cluster.layout.own_progress();
        WorkerStatus {
            progress: Some(self.last_step.clone()),
            ..WorkerStatus::default()
        }
        .counter("acked_epoch", own.acked)
        .counter("reading_epoch", own.reading)
        .counter("synced_partitions", own.synced.len() as u64)
        .counter("auto_join_attempts", self.join_attempts)
    }

    async fn step(&mut self, _ctx: &StepContext) -> Result<Step, WorkerError> {
        let tables: Vec<u32> = self
            .node
            .schema
            .list()
            .iter()
            .map(|t| t.replication)
            .collect();
        self.node.cluster.topology.set_replication_factors(tables);
        let Some(layout) = self.node.cluster.layout.layout() else {
            return Ok(Step::Idle);
        };
        let advanced = {
            let (node, layout) = (self.node.clone(), layout.clone());
            tokio::task::spawn_blocking(move || advance(&node, &layout))
                .await
                .map_err(WorkerError::new)??
        };
        if let Some(done) = advanced {
            self.last_step = done;
            return Ok(Step::Busy { units: 1 });
        }
        if let Some(done) = self.auto_join(&layout).await {
            self.last_step = done;
            return Ok(Step::Busy { units: 1 });
        }
        Ok(Step::Idle)
    }

    async fn wait_for_work(&mut self) {
        tokio::select! {
            () = tokio::time::sleep(TICK) => {}
            () = self.nudge.notified() => {}
        }
    }
}
