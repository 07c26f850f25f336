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

use tessera_cluster::Transfer;
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

/// The transfers this node must pull for `layout`: every (table, partition) it joins.
fn my_transfers(node: &Node, layout: &Layout) -> Vec<Transfer> {
    let me = node.id().to_owned();
    let partitions = layout.ring().scheme().count() as u16;
    let mut transfers = Vec::new();
    for table in node.schema.list() {
        for partition in 0..partitions {
            if layout.joining(partition, table.replication).contains(&me) {
                transfers.push(Transfer {
                    epoch: layout.epoch(),
                    table: table.id,
                    partition,
                    sources: layout.sources(partition, table.replication, &me),
                });
            }
        }
    }
    transfers
}

/// Step 2: gives the transfers this node joins to the engine (again, when tables were created:
/// the engine skips what it has), and publishes every partition whose transfers all completed.
fn sync(node: &Node, layout: &Layout) -> Result<Option<String>, WorkerError> {
    let transfers = my_transfers(node, layout);
    let engine = &node.cluster.transfers;
    let report = engine.enqueue(transfers.clone());
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
    let mut complete: std::collections::BTreeMap<u16, bool> = std::collections::BTreeMap::new();
    for transfer in &transfers {
        let done = engine.is_completed(&transfer.key());
        complete
            .entry(transfer.partition)
            .and_modify(|all| *all &= done)
            .or_insert(done);
    }
    let synced: Vec<u16> = complete
        .into_iter()
        .filter_map(|(partition, done)| done.then_some(partition))
        .collect();
    let epoch = layout.epoch();
    let own = node.cluster.layout.own_progress();
    let new: Vec<u16> = synced
        .into_iter()
        .filter(|p| !own.has_synced(epoch, *p))
        .collect();
    if new.is_empty() {
        return Ok(None);
    }
    node.cluster
        .layout
        .update_progress(|p| {
            if p.synced_epoch != epoch {
                p.synced_epoch = epoch;
                p.synced = Default::default();
            }
            for partition in &new {
                p.synced.insert(*partition);
            }
        })
        .map_err(WorkerError::new)?;
    Ok(Some(format!(
        "holds {} more partitions of epoch {epoch}",
        new.len()
    )))
}

/// Step 4: drops every (table, partition) this node replicated in the previous ring and does not
/// in this one.
fn cleanup(node: &Node, layout: &Layout) -> Result<usize, WorkerError> {
    let Some(previous) = layout.previous() else {
        return Ok(0);
    };
    let me = node.id().to_owned();
    let partitions = layout.ring().scheme().count() as u16;
    let mut dropped = 0;
    for table in node.schema.list() {
        let n = table.replication as usize;
        for partition in 0..partitions {
            let kept = layout.ring().preference_list(partition, n).contains(&me);
            let held = previous.preference_list(partition, n).contains(&me);
            if held && !kept {
                node.store
                    .drop_partition(table.id, partition)
                    .map_err(WorkerError::new)?;
                dropped += 1;
            }
        }
    }
    node.cluster.transfers.forget_epochs_before(layout.epoch());
    Ok(dropped)
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
    if state.complete() {
        return Ok(None);
    }
    if state.progress.all_acked(layout) {
        if let Some(done) = sync(node, layout)? {
            return Ok(Some(done));
        }
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
    /// The epoch whose move this node saw complete, and when.
    complete_since: Option<(u64, Instant)>,
    /// The last epoch whose leftovers were dropped.
    cleaned: u64,
    next_join: Instant,
    join_attempts: u64,
    last_step: String,
}

impl RebalanceWorker {
    pub fn new(node: Arc<Node>) -> Self {
        Self {
            nudge: node.cluster.rebalance_nudge.clone(),
            cleaned: node.cluster.layout.cleaned_epoch(),
            complete_since: None,
            node,
            next_join: Instant::now() + AUTO_JOIN_RETRY,
            join_attempts: 0,
            last_step: "idle".to_owned(),
        }
    }

    /// Step 4, once the move is complete everywhere and the grace period has passed.
    async fn cleanup_when_due(&mut self, layout: &Layout) -> Result<Option<String>, WorkerError> {
        let epoch = layout.epoch();
        if !layout.is_move()
            || self.cleaned >= epoch
            || !self.node.cluster.topology.state().complete()
        {
            return Ok(None);
        }
        let since = match self.complete_since {
            Some((seen, at)) if seen == epoch => at,
            _ => {
                self.complete_since = Some((epoch, Instant::now()));
                return Ok(None);
            }
        };
        let grace = Duration::from_secs(self.node.config.rebalance.cleanup_grace_secs);
        if since.elapsed() < grace {
            return Ok(None);
        }
        let (node, layout) = (self.node.clone(), layout.clone());
        let dropped = tokio::task::spawn_blocking(move || {
            let dropped = cleanup(&node, &layout)?;
            node.cluster
                .layout
                .set_cleaned_epoch(layout.epoch())
                .map_err(WorkerError::new)?;
            Ok::<_, WorkerError>(dropped)
        })
        .await
        .map_err(WorkerError::new)??;
        self.cleaned = epoch;
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
        .counter("cleaned_epoch", self.cleaned)
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
