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
//! The decisions are `tessera_cluster::rebalance`'s (shared with the deterministic simulation);
//! this worker performs them: it persists and publishes progress, drops partitions, and records
//! the cleaned epoch. Progress is published by gossip (the membership worker reads it from the
//! layout manager).

use std::sync::Arc;
use std::time::Duration;

use tessera_cluster::rebalance::{MoveDriver, MoveStep, TableReplicas};
use tessera_layout::{Change, Layout};
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

/// The tables as moves see them.
fn tables(node: &Node) -> Vec<TableReplicas> {
    node.schema
        .list()
        .iter()
        .map(|t| TableReplicas {
            id: t.id,
            replication: t.replication,
        })
        .collect()
}

/// Steps 1 to 3 (blocking: publishing progress writes `meta`): asks the driver what is due and
/// publishes it; returns what it did, if anything.
fn advance(
    node: &Node,
    driver: &MoveDriver,
    layout: &Layout,
) -> Result<Option<String>, WorkerError> {
    let manager = &node.cluster.layout;
    let own = manager.own_progress();
    let drained = !layout.is_move() || manager.adopted_at().elapsed() >= drain(node);
    let state = node.cluster.topology.state();
    let advance = driver.advance(
        layout,
        &state,
        &own,
        &tables(node),
        drained,
        &node.cluster.transfers,
    );
    if let Some(report) = &advance.enqueued {
        if !report.queued.is_empty() {
            info!(
                node = node.id(),
                epoch = layout.epoch(),
                transfers = report.queued.len(),
                "pulling the partitions this node joins"
            );
        }
        for (key, why) in &report.refused {
            tracing::warn!(node = node.id(), %key, %why, "a transfer has no source");
        }
    }
    let Some(step) = advance.step else {
        return Ok(None);
    };
    if !manager
        .update_progress(|p| step.apply(p))
        .map_err(WorkerError::new)?
    {
        return Ok(None);
    }
    let epoch = layout.epoch();
    match step {
        MoveStep::Ack { .. } => info!(
            node = node.id(),
            epoch, "writing under the new layout (acknowledged)"
        ),
        MoveStep::Read { .. } => info!(
            node = node.id(),
            epoch, "every partition is held by its new replicas: reading from the new ring"
        ),
        MoveStep::Synced { .. } => {}
    }
    Ok(Some(step.describe()))
}

/// See the module docs.
pub struct RebalanceWorker {
    node: Arc<Node>,
    nudge: Arc<Notify>,
    /// The decisions of every step (see `tessera_cluster::rebalance`).
    driver: MoveDriver,
    next_join: Instant,
    join_attempts: u64,
    last_step: String,
}

impl RebalanceWorker {
    pub fn new(node: Arc<Node>) -> Self {
        Self {
            nudge: node.cluster.rebalance_nudge.clone(),
            driver: MoveDriver::new(node.id(), node.cluster.layout.cleaned_epoch()),
            node,
            next_join: Instant::now() + AUTO_JOIN_RETRY,
            join_attempts: 0,
            last_step: "idle".to_owned(),
        }
    }

    /// Step 4, once the move is complete everywhere and the grace period has passed.
    async fn cleanup_when_due(&mut self, layout: &Layout) -> Result<Option<String>, WorkerError> {
        let epoch = layout.epoch();
        let grace = Duration::from_secs(self.node.config.rebalance.cleanup_grace_secs);
        let state = self.node.cluster.topology.state();
        let Some(doomed) =
            self.driver
                .cleanup_due(layout, &state, &tables(&self.node), Instant::now(), grace)
        else {
            return Ok(None);
        };
        let node = self.node.clone();
        let dropped = tokio::task::spawn_blocking(move || {
            for (table, partition) in &doomed {
                node.store
                    .drop_partition(*table, *partition)
                    .map_err(WorkerError::new)?;
            }
            node.cluster.transfers.forget_epochs_before(epoch);
            node.cluster
                .layout
                .set_cleaned_epoch(epoch)
                .map_err(WorkerError::new)?;
            Ok::<_, WorkerError>(doomed.len())
        })
        .await
        .map_err(WorkerError::new)??;
        self.driver.cleaned_up(epoch);
        info!(
            node = self.node.id(),
            epoch, dropped, "dropped the partitions this node no longer replicates"
        );
        Ok(Some(format!(
            "epoch {epoch} done; dropped {dropped} partitions"
        )))
    }

    /// Adds this node to the cluster if `cluster.auto_join` says so and it is not in the ring.
    async fn auto_join(&mut self, layout: &Layout) -> Option<String> {
        let node = &self.node;
        if !node.config.cluster.auto_join
            || layout.ring().contains(&node.id().to_owned())
            || node.cluster.layout.was_member()
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
        .counter("cleaned_epoch", self.driver.cleaned())
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
            let (node, driver, layout) = (self.node.clone(), self.driver.clone(), layout.clone());
            tokio::task::spawn_blocking(move || advance(&node, &driver, &layout))
                .await
                .map_err(WorkerError::new)??
        };
        if let Some(done) = advanced {
            self.last_step = done;
            return Ok(Step::Busy { units: 1 });
        }
        if let Some(done) = self.cleanup_when_due(&layout).await? {
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
