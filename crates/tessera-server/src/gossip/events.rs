//! What membership learns that needs the disk, applied off the gossip loop.
//!
//! The membership worker answers probes within milliseconds or peers suspect this node, so it
//! must never wait on storage: a RocksDB stall would turn a slow node into a "dead" one. What it
//! learns that must be written (a later layout, a table for the schema) goes
//! on a bounded [`EventQueue`] instead, and the `membership-events` worker ([`EventApplier`])
//! applies it (a later layout is fetched from the member that published its epoch, then
//! persisted). The queue never blocks the gossip loop: when it is full the event is dropped and
//! the applier is told to resynchronise, reading every member's metadata from the state machine
//! and applying whatever it does not have yet. Both kinds of facts are idempotent (a node is
//! added to the roster once; a table known is kept), so a resync repeats nothing.
//!
//! The applier also refreshes the load figures this node publishes (RocksDB's size estimates),
//! another storage call kept off the gossip loop.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tessera_storage::ColumnFamily;
use tessera_worker::{Step, StepContext, Worker, WorkerError, WorkerStatus};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tracing::{info, warn};

use super::metadata::{self, TABLE_PREFIX};
use crate::node::Node;

/// Most events waiting for the applier; past it they are dropped and a resync is asked for.
const QUEUE_CAPACITY: usize = 1024;
/// Most events applied in one step.
const STEP_EVENTS: usize = 64;
/// How often the load figures are refreshed (RocksDB's estimates are cheap, not free).
const LOAD_INTERVAL: Duration = Duration::from_secs(10);

/// The worker's name.
pub const MEMBERSHIP_EVENTS: &str = "membership-events";

/// A metadata key that a member published and this node must act on with a disk write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataEvent {
    /// The member that published it.
    pub from: String,
    /// The key (`created`, `table:<name>`).
    pub key: String,
    /// Its value.
    pub value: String,
}

impl MetadataEvent {
    /// Whether applying `key` needs the disk or the network (and so belongs on the queue).
    pub fn needs_disk(key: &str) -> bool {
        key == metadata::LAYOUT_EPOCH || key.starts_with(TABLE_PREFIX)
    }
}

/// The load figures this node publishes: keys and bytes of its data, as RocksDB estimates them.
#[derive(Debug, Default)]
pub struct LoadFigures {
    known: AtomicBool,
    keys: AtomicU64,
    bytes: AtomicU64,
}

impl LoadFigures {
    /// (keys, bytes), once measured.
    pub fn get(&self) -> Option<(u64, u64)> {
        self.known.load(Ordering::Relaxed).then(|| {
            (
                self.keys.load(Ordering::Relaxed),
                self.bytes.load(Ordering::Relaxed),
            )
        })
    }

    fn set(&self, keys: u64, bytes: u64) {
        self.keys.store(keys, Ordering::Relaxed);
        self.bytes.store(bytes, Ordering::Relaxed);
        self.known.store(true, Ordering::Relaxed);
    }
}

/// The gossip loop's side of the queue: never waits.
#[derive(Debug)]
pub struct EventQueue {
    events: mpsc::Sender<MetadataEvent>,
    receiver: std::sync::Mutex<Option<mpsc::Receiver<MetadataEvent>>>,
    resync: AtomicBool,
    dropped: AtomicU64,
    nudge: Notify,
    load: LoadFigures,
}

impl Default for EventQueue {
    fn default() -> Self {
        let (events, receiver) = mpsc::channel(QUEUE_CAPACITY);
        Self {
            events,
            receiver: std::sync::Mutex::new(Some(receiver)),
            resync: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            nudge: Notify::new(),
            load: LoadFigures::default(),
        }
    }
}

impl EventQueue {
    /// Queues `event` for the applier, or, if the queue is full, drops it and asks for a resync.
    pub fn push(&self, event: MetadataEvent) {
        if self.events.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            self.resync.store(true, Ordering::Relaxed);
            self.nudge.notify_one();
        }
    }

    /// The load figures to publish.
    pub fn load(&self) -> &LoadFigures {
        &self.load
    }

    /// Events dropped because the queue was full (each followed by a resync).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The receiving side, once: for the applier.
    fn take_receiver(&self) -> Option<mpsc::Receiver<MetadataEvent>> {
        self.receiver
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// The `membership-events` worker; see the module docs.
pub struct EventApplier {
    node: Arc<Node>,
    events: mpsc::Receiver<MetadataEvent>,
    waiting: Option<MetadataEvent>,
    next_load: Instant,
    applied: u64,
    resyncs: u64,
    failures: u64,
}

impl EventApplier {
    /// The applier of `node`'s queue; `None` if it was already taken.
    pub fn new(node: Arc<Node>) -> Option<Self> {
        let events = node.cluster.events.take_receiver()?;
        Some(Self {
            node,
            events,
            waiting: None,
            next_load: Instant::now(),
            applied: 0,
            resyncs: 0,
            failures: 0,
        })
    }

    /// Every disk-bound fact in every member's metadata, read under the state machine's lock
    /// (briefly: nothing is written while it is held).
    fn everything_published(&self) -> Vec<MetadataEvent> {
        let swim = self.node.cluster.gossip.swim();
        let mut out = Vec::new();
        for member in swim.members() {
            let Some(state) = swim.metadata_of(&member.id.node) else {
                continue;
            };
            for (key, value) in state.iter() {
                if MetadataEvent::needs_disk(key) {
                    out.push(MetadataEvent {
                        from: member.id.node.clone(),
                        key: key.to_owned(),
                        value: value.to_owned(),
                    });
                }
            }
        }
        out
    }

    async fn apply(&mut self, event: MetadataEvent) {
        if let Err(error) = apply(&self.node, &event).await {
            self.failures += 1;
            warn!(node = self.node.id(), member = %event.from, key = %event.key, %error, "cannot apply what a member published");
        }
        self.applied += 1;
    }

    async fn refresh_load(&mut self) {
        let store = self.node.store.clone();
        let stats = tokio::task::spawn_blocking(move || store.stats(ColumnFamily::Data)).await;
        if let Ok(Ok(stats)) = stats {
            self.node
                .cluster
                .events
                .load
                .set(stats.keys, stats.live_bytes);
        }
        self.next_load = Instant::now() + LOAD_INTERVAL;
    }
}

/// Applies one event: a later layout is fetched from the member that holds it, a table joins
/// the schema.
async fn apply(node: &Arc<Node>, event: &MetadataEvent) -> Result<(), String> {
    if event.key == metadata::LAYOUT_EPOCH {
        let Ok(epoch) = event.value.parse::<u64>() else {
            return Err(format!("layout epoch {:?} does not parse", event.value));
        };
        let held = node.cluster.layout.layout().map_or(0, |l| l.epoch());
        if epoch <= held {
            return Ok(());
        }
        let adopted = crate::layout::commit::fetch_from(
            &node.cluster.layout,
            &node.cluster.transport,
            &event.from,
        )
        .await?;
        if adopted {
            info!(node = node.id(), member = %event.from, epoch, "took a later layout from a member");
        }
        Ok(())
    } else if event.key.starts_with(TABLE_PREFIX) {
        let table = metadata::table(&event.value).map_err(|e| e.to_string())?;
        if node.schema.get(&table.name).is_some() {
            return Ok(());
        }
        let node2 = node.clone();
        tokio::task::spawn_blocking(move || node2.schema.apply(&node2.store, &table))
            .await
            .map_err(|e| e.to_string())?
            .map(|_| ())
            .map_err(|e| format!("cannot take the table: {e}"))
    } else {
        Ok(())
    }
}

impl Worker for EventApplier {
    fn name(&self) -> String {
        MEMBERSHIP_EVENTS.to_owned()
    }

    fn status(&self) -> WorkerStatus {
        WorkerStatus {
            queued: Some(self.events.len() as u64),
            ..WorkerStatus::default()
        }
        .counter("applied", self.applied)
        .counter("failed", self.failures)
        .counter("resyncs", self.resyncs)
        .counter("dropped", self.node.cluster.events.dropped())
    }

    async fn step(&mut self, _ctx: &StepContext) -> Result<Step, WorkerError> {
        if self
            .node
            .cluster
            .events
            .resync
            .swap(false, Ordering::Relaxed)
        {
            self.resyncs += 1;
            let everything = self.everything_published();
            info!(
                node = self.node.id(),
                facts = everything.len(),
                "membership queue overflowed: resynchronising from the state machine"
            );
            let units = everything.len() as u64;
            for event in everything {
                self.apply(event).await;
            }
            return Ok(Step::Busy { units });
        }
        let mut units = 0;
        while units < STEP_EVENTS as u64 {
            let event = match self.waiting.take() {
                Some(event) => event,
                None => match self.events.try_recv() {
                    Ok(event) => event,
                    Err(_) => break,
                },
            };
            self.apply(event).await;
            units += 1;
        }
        if units > 0 {
            return Ok(Step::Busy { units });
        }
        if Instant::now() >= self.next_load {
            self.refresh_load().await;
            return Ok(Step::Busy { units: 0 });
        }
        Ok(Step::Idle)
    }

    async fn wait_for_work(&mut self) {
        let resync = self.node.cluster.events.nudge.notified();
        tokio::select! {
            event = self.events.recv() => match event {
                Some(event) => self.waiting = Some(event),
                // The node holds the sender for its whole life: only a node being torn down
                // gets here, and then there is nothing left to wait for.
                None => std::future::pending().await,
            },
            () = tokio::time::sleep_until(self.next_load) => {}
            () = resync => {}
        }
    }
}
