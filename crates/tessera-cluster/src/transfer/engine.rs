//! The transfer engine: the transfers a node was given, pulled a chunk at a time by the
//! `transfers` worker.
//!
//! [`Transfers`] is the handle the layout side holds: it gives transfers ([`Transfers::enqueue`]),
//! cancels an epoch's ([`Transfers::cancel_epoch`]), learns which completed
//! ([`Transfers::take_completed`], [`Transfers::completions`]) and reads their status.
//! [`TransferWorker`] runs them:
//! - **Admission:** at most `max_concurrent` transfers pull at once, first come first served
//!   (Riak's transfer limit). A transfer whose sources all fail gives its slot up while it backs
//!   off.
//! - **One chunk per step:** each running transfer has one chunk request in flight; a step takes
//!   one answer, asks for the next chunk of that transfer at once (so the source reads and sends
//!   it while this node merges), then merges the chunk and its progress record as one engine
//!   batch ([`super::receive`]). The step's units are the chunk's bytes, so the runner's rate
//!   limit is the byte throttle (`rebalance.max_mb_per_s`), adjustable while it runs.
//! - **Failures:** a source that fails (no answer within `call_timeout`, an error, a bad chunk)
//!   backs off, doubling from `backoff_base` to `backoff_cap`, and the transfer goes on with its
//!   next unfinished source, if any. The step reports the failure to the runner, so it shows as
//!   the worker's last error; the transfer's own status keeps it too.
//! - **Persistence:** progress is written with each chunk; new, changed and cancelled transfers
//!   are written by the worker's next step. A node that restarts loads every record: finished
//!   transfers are not redone, unfinished ones resume after their last merged chunk.
//!
//! The worker is the only writer of transfer records, so records and memory cannot race; the
//! handle only changes memory and wakes the worker.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tessera_storage::{CellStore, ColumnFamily, Engine, StorageError, WriteBatch};
use tessera_worker::{Step, StepContext, Worker, WorkerError, WorkerStatus};
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::error::TransferError;
use super::progress::{self, Progress, SourceProgress};
use super::receive::{merge_rows, rows_of_chunk, ChunkRows, Merged};
use super::spec::{Transfer, TransferConfig, TransferKey};
use super::status::{SourceStatus, TransferState, TransferStatus, TransfersReport};
use crate::call::{call, unexpected};
use crate::handoff::backoff_ceiling;
use crate::messages::{PartitionSize, Request, Response};
use crate::transport::{NodeId, Transport};

/// The worker's name.
pub const TRANSFERS: &str = "transfers";

/// How long the rate of a transfer is measured over.
const RATE_WINDOW: Duration = Duration::from_secs(10);

/// What the receiving side did since it started; exported as metrics.
#[derive(Debug, Default)]
pub struct TransferStats {
    /// Chunks merged.
    pub chunks: AtomicU64,
    /// Cells merged.
    pub keys: AtomicU64,
    /// Bytes merged (keys plus stored cells, as the sources read them).
    pub bytes: AtomicU64,
    /// Cells that changed what this node held.
    pub changed: AtomicU64,
    /// Chunks asked for again: after a failed request or merge, or first after a restart.
    pub resent_chunks: AtomicU64,
    /// Chunk requests or merges that failed.
    pub failures: AtomicU64,
    /// Transfers completed.
    pub completed: AtomicU64,
}

/// What [`Transfers::enqueue`] did with each transfer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnqueueReport {
    /// New transfers, queued.
    pub queued: Vec<TransferKey>,
    /// Transfers already known and not done, whose sources were replaced.
    pub updated: Vec<TransferKey>,
    /// Transfers already known and not done, unchanged.
    pub unchanged: Vec<TransferKey>,
    /// Transfers that already completed: not redone, reported completed again.
    pub already_done: Vec<TransferKey>,
    /// Transfers refused, and why (no source other than this node).
    pub refused: Vec<(TransferKey, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Queued,
    Running,
    Backoff(Instant),
    Done,
}

/// What the worker knows of one source beyond its persisted progress.
#[derive(Debug, Default)]
struct SourceRuntime {
    failures: u32,
    retry_at: Option<Instant>,
    /// The position last asked for, if any was: asking for it again is a re-send.
    last_requested: Option<Option<Vec<u8>>>,
}

struct Entry {
    progress: Progress,
    phase: Phase,
    /// Index in `progress.sources` of the source being read.
    current: usize,
    /// Bumped whenever what is in flight no longer counts (sources replaced, a merge failed).
    generation: u64,
    in_flight: bool,
    /// The record must be written.
    dirty: bool,
    runtime: BTreeMap<NodeId, SourceRuntime>,
    last_error: Option<String>,
    resent: u64,
    /// `(when, bytes merged so far)` over the last [`RATE_WINDOW`].
    samples: VecDeque<(Instant, u64)>,
}

impl Entry {
    fn new(progress: Progress, phase: Phase, generation: u64) -> Self {
        let runtime = progress
            .sources
            .iter()
            .map(|source| {
                let runtime = SourceRuntime {
                    // A chunk was asked for before the restart: asking again re-sends it.
                    last_requested: source.requested.then(|| source.after.clone()),
                    ..SourceRuntime::default()
                };
                (source.node.clone(), runtime)
            })
            .collect();
        let current = progress
            .sources
            .iter()
            .position(|s| !s.finished)
            .unwrap_or(0);
        Self {
            progress,
            phase,
            current,
            generation,
            in_flight: false,
            dirty: false,
            runtime,
            last_error: None,
            resent: 0,
            samples: VecDeque::new(),
        }
    }

    /// The first unfinished source from `current` on (wrapping) that may be asked now.
    fn ready_source(&self, now: Instant) -> Option<usize> {
        let count = self.progress.sources.len();
        (0..count)
            .map(|offset| (self.current + offset) % count)
            .find(|&i| {
                let source = &self.progress.sources[i];
                !source.finished
                    && self
                        .runtime
                        .get(&source.node)
                        .and_then(|r| r.retry_at)
                        .is_none_or(|at| at <= now)
            })
    }

    /// When the earliest backing-off unfinished source may be asked again.
    fn earliest_retry(&self) -> Option<Instant> {
        self.progress
            .sources
            .iter()
            .filter(|s| !s.finished)
            .filter_map(|s| self.runtime.get(&s.node).and_then(|r| r.retry_at))
            .min()
    }

    fn rate(&self) -> f64 {
        match (self.samples.front(), self.samples.back()) {
            (Some((from, first)), Some((to, last))) if to > from => {
                (last - first) as f64 / to.duration_since(*from).as_secs_f64()
            }
            _ => 0.0,
        }
    }

    fn record_sample(&mut self, now: Instant) {
        self.samples.push_back((now, self.progress.bytes()));
        // Keep one sample older than the window, so the rate spans all of it.
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|(at, _)| now.duration_since(*at) > RATE_WINDOW)
        {
            self.samples.pop_front();
        }
    }
}

#[derive(Default)]
struct State {
    entries: BTreeMap<TransferKey, Entry>,
    /// Queued transfers, in arrival order.
    queue: VecDeque<TransferKey>,
    /// Completed transfers not taken yet.
    completed: Vec<TransferKey>,
    /// Records to delete.
    removed: BTreeSet<TransferKey>,
    next_generation: u64,
}

impl State {
    fn generation(&mut self) -> u64 {
        self.next_generation += 1;
        self.next_generation
    }

    fn running(&self) -> usize {
        self.entries
            .values()
            .filter(|e| e.phase == Phase::Running)
            .count()
    }
}

/// An answer to a chunk request, tagged with what it answers.
struct Fetched {
    key: TransferKey,
    generation: u64,
    source: NodeId,
    after: Option<Vec<u8>>,
    answer: Result<Response, String>,
}

/// A chunk request to start.
struct Fetch {
    key: TransferKey,
    generation: u64,
    source: NodeId,
    after: Option<Vec<u8>>,
    estimate: bool,
}

/// A chunk ready to merge.
struct MergeJob {
    key: TransferKey,
    generation: u64,
    source: NodeId,
    rows: ChunkRows,
    progress: Progress,
    bytes: u64,
}

struct Inner<T, E: Engine> {
    local: NodeId,
    store: Arc<CellStore<E>>,
    transport: T,
    config: TransferConfig,
    max_concurrent: AtomicUsize,
    state: Mutex<State>,
    work: Notify,
    completions: watch::Sender<u64>,
    stats: TransferStats,
    answers: mpsc::UnboundedSender<Fetched>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<Fetched>>>,
}

/// The transfers of this node, and the handle on them (see the module docs). Cheap to clone.
pub struct Transfers<T, E: Engine> {
    inner: Arc<Inner<T, E>>,
}

impl<T, E: Engine> Clone for Transfers<T, E> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<T, E: Engine> std::fmt::Debug for Transfers<T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transfers")
            .field("local", &self.inner.local)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // Only plain data lives here and nothing panics while holding it.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T: Transport, E: Engine> Transfers<T, E> {
    /// The transfers of node `local`, merging into `store` and pulling through `transport` (give
    /// it connections of its own, so that chunks never queue ahead of quorum traffic). Loads
    /// every transfer record from `meta`: finished transfers are remembered, unfinished ones
    /// queued to resume. Blocking (it reads `meta`).
    pub fn open(
        local: impl Into<NodeId>,
        store: Arc<CellStore<E>>,
        transport: T,
        config: TransferConfig,
    ) -> Result<Self, TransferError> {
        let local = local.into();
        let mut state = State::default();
        for (text, bytes) in store.scan_meta(progress::RECORD_PREFIX)? {
            let Some(key) = progress::parse_record_key(&text) else {
                warn!(node = %local, key = %text, "ignoring a transfer record with a key of another shape");
                continue;
            };
            let progress = match progress::decode(&text, &bytes) {
                Ok(progress) => progress,
                Err(error) => {
                    warn!(node = %local, %key, %error, "ignoring a transfer record that does not decode");
                    continue;
                }
            };
            let phase = if progress.done {
                Phase::Done
            } else {
                state.queue.push_back(key);
                Phase::Queued
            };
            let generation = state.generation();
            state
                .entries
                .insert(key, Entry::new(progress, phase, generation));
        }
        let pending = state.queue.len();
        if !state.entries.is_empty() {
            info!(node = %local, known = state.entries.len(), pending, "loaded transfer records");
        }
        let (answers, receiver) = mpsc::unbounded_channel();
        let (completions, _) = watch::channel(0);
        Ok(Self {
            inner: Arc::new(Inner {
                local,
                store,
                transport,
                max_concurrent: AtomicUsize::new(config.max_concurrent.max(1)),
                config,
                state: Mutex::new(state),
                work: Notify::new(),
                completions,
                stats: TransferStats::default(),
                answers,
                receiver: Mutex::new(Some(receiver)),
            }),
        })
    }

    /// The worker that runs these transfers. There is one: a second call is refused.
    pub fn worker(&self) -> Result<TransferWorker<T, E>, TransferError> {
        let receiver = self
            .inner
            .receiver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| TransferError::Invalid {
                reason: "the transfer worker was already created".to_owned(),
            })?;
        Ok(TransferWorker {
            transfers: self.clone(),
            answers: receiver,
            ready: VecDeque::new(),
        })
    }

    /// Gives the worker `transfers` (see [`EnqueueReport`] for what becomes of each):
    /// - a new one is queued;
    /// - one not done yet keeps its progress; if its sources differ, they are replaced
    ///   (a source in both lists keeps how far it got);
    /// - one already done for its epoch is not redone, but reported completed again, so that a
    ///   caller that lost track (a restart) learns it.
    ///
    /// This node is never its own source; a transfer with no other source is refused.
    pub fn enqueue(&self, transfers: Vec<Transfer>) -> EnqueueReport {
        let mut report = EnqueueReport::default();
        let mut guard = lock(&self.inner.state);
        let state = &mut *guard;
        for transfer in transfers {
            let key = transfer.key();
            let mut sources: Vec<NodeId> = Vec::new();
            for source in transfer.sources {
                if source != self.inner.local && !sources.contains(&source) {
                    sources.push(source);
                }
            }
            if sources.is_empty() {
                report.refused.push((
                    key,
                    format!("no source other than this node ({})", self.inner.local),
                ));
                continue;
            }
            let generation = state.generation();
            match state.entries.get_mut(&key) {
                Some(entry) if entry.phase == Phase::Done => {
                    report.already_done.push(key);
                    state.completed.push(key);
                    self.inner.completions.send_modify(|n| *n += 1);
                }
                Some(entry) => {
                    let same = entry
                        .progress
                        .sources
                        .iter()
                        .map(|s| &s.node)
                        .eq(sources.iter());
                    if same {
                        report.unchanged.push(key);
                        continue;
                    }
                    let mut old = std::mem::take(&mut entry.progress.sources);
                    entry.progress.sources = sources
                        .into_iter()
                        .map(|node| match old.iter().position(|s| s.node == node) {
                            Some(at) => old.swap_remove(at),
                            None => SourceProgress::new(node),
                        })
                        .collect();
                    entry
                        .runtime
                        .retain(|node, _| entry.progress.sources.iter().any(|s| s.node == *node));
                    for source in &entry.progress.sources {
                        entry.runtime.entry(source.node.clone()).or_default();
                    }
                    entry.current = entry
                        .progress
                        .sources
                        .iter()
                        .position(|s| !s.finished)
                        .unwrap_or(0);
                    // An answer in flight may be from a source no longer listed: drop it.
                    entry.generation = generation;
                    entry.in_flight = false;
                    entry.dirty = true;
                    info!(node = %self.inner.local, %key, sources = ?entry.progress.sources.iter().map(|s| &s.node).collect::<Vec<_>>(), "transfer sources replaced");
                    report.updated.push(key);
                }
                None => {
                    let progress = Progress {
                        sources: sources.into_iter().map(SourceProgress::new).collect(),
                        done: false,
                    };
                    let mut entry = Entry::new(progress, Phase::Queued, generation);
                    entry.dirty = true;
                    state.entries.insert(key, entry);
                    state.removed.remove(&key);
                    state.queue.push_back(key);
                    info!(node = %self.inner.local, %key, sources = ?transfer_sources(state, &key), "transfer queued");
                    report.queued.push(key);
                }
            }
        }
        drop(guard);
        self.inner.work.notify_one();
        report
    }

    /// Stops and forgets every unfinished transfer of `epoch` (its records are deleted by the
    /// worker's next step). Cells already merged stay. Returns how many were cancelled.
    pub fn cancel_epoch(&self, epoch: u64) -> usize {
        let cancelled =
            self.remove_where(|key, entry| key.epoch == epoch && entry.phase != Phase::Done);
        if cancelled > 0 {
            info!(node = %self.inner.local, epoch, cancelled, "transfers of an epoch cancelled");
        }
        cancelled
    }

    /// Forgets every transfer of an epoch before `epoch`, done or not (once the layout no
    /// longer needs to know). Returns how many were forgotten.
    pub fn forget_epochs_before(&self, epoch: u64) -> usize {
        self.remove_where(|key, _| key.epoch < epoch)
    }

    fn remove_where(&self, doomed: impl Fn(&TransferKey, &Entry) -> bool) -> usize {
        let mut state = lock(&self.inner.state);
        let keys: Vec<TransferKey> = state
            .entries
            .iter()
            .filter(|(key, entry)| doomed(key, entry))
            .map(|(key, _)| *key)
            .collect();
        for key in &keys {
            state.entries.remove(key);
            state.removed.insert(*key);
        }
        state.queue.retain(|key| !keys.contains(key));
        drop(state);
        self.inner.work.notify_one();
        keys.len()
    }

    /// The transfers completed since the last call (or reported completed again by
    /// [`Self::enqueue`]), in completion order.
    pub fn take_completed(&self) -> Vec<TransferKey> {
        std::mem::take(&mut lock(&self.inner.state).completed)
    }

    /// A counter of completions that changes with each one: await `changed()` on it, then
    /// [`Self::take_completed`].
    pub fn completions(&self) -> watch::Receiver<u64> {
        self.inner.completions.subscribe()
    }

    /// Whether `key` completed (in this run or before a restart, unless forgotten).
    pub fn is_completed(&self, key: &TransferKey) -> bool {
        lock(&self.inner.state)
            .entries
            .get(key)
            .is_some_and(|e| e.phase == Phase::Done)
    }

    /// How many transfers may pull at once; takes effect from the worker's next step.
    pub fn set_max_concurrent(&self, max: usize) {
        self.inner
            .max_concurrent
            .store(max.max(1), Ordering::Relaxed);
        self.inner.work.notify_one();
    }

    /// What the receiving side did since start.
    pub fn stats(&self) -> &TransferStats {
        &self.inner.stats
    }

    /// The node these transfers pull to.
    pub fn local(&self) -> &NodeId {
        &self.inner.local
    }

    /// Every transfer known, pending ones first. The throttle is the worker's rate, which its
    /// runner knows: the caller fills `max_bytes_per_second` in.
    pub fn report(&self) -> TransfersReport {
        let now = Instant::now();
        let state = lock(&self.inner.state);
        let mut transfers: Vec<TransferStatus> = state
            .entries
            .iter()
            .map(|(key, entry)| self.status_of(key, entry, now))
            .collect();
        transfers.sort_by_key(|t| !t.state.is_pending());
        TransfersReport {
            node: self.inner.local.clone(),
            max_concurrent: u32::try_from(self.inner.max_concurrent.load(Ordering::Relaxed))
                .unwrap_or(u32::MAX),
            max_bytes_per_second: None,
            running: state.running() as u32,
            pending: transfers.iter().filter(|t| t.state.is_pending()).count() as u32,
            transfers,
        }
    }

    fn status_of(&self, key: &TransferKey, entry: &Entry, now: Instant) -> TransferStatus {
        let estimate = entry.progress.estimate();
        let rate = if entry.phase == Phase::Running {
            entry.rate()
        } else {
            0.0
        };
        let bytes_done = entry.progress.bytes();
        let eta = estimate
            .filter(|_| rate > 0.0)
            .map(|e| e.bytes.saturating_sub(bytes_done) as f64 / rate);
        let (state, retry_in) = match entry.phase {
            Phase::Queued => (TransferState::Queued, None),
            Phase::Running => (TransferState::Running, None),
            Phase::Backoff(at) => (
                TransferState::Backoff,
                Some(at.saturating_duration_since(now)),
            ),
            Phase::Done => (TransferState::Done, None),
        };
        TransferStatus {
            epoch: key.epoch,
            table: key.table,
            table_name: None,
            partition: key.partition,
            from: entry
                .progress
                .sources
                .get(entry.current)
                .map(|s| s.node.clone())
                .unwrap_or_default(),
            to: self.inner.local.clone(),
            state,
            keys_done: entry.progress.keys(),
            bytes_done,
            keys_estimated: estimate.map(|e| e.keys),
            bytes_estimated: estimate.map(|e| e.bytes),
            bytes_per_second: rate,
            eta_seconds: eta,
            chunks: entry.progress.sources.iter().map(|s| s.chunks).sum(),
            resent_chunks: entry.resent,
            last_error: entry.last_error.clone(),
            retry_in_ms: retry_in.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            sources: entry
                .progress
                .sources
                .iter()
                .map(|s| SourceStatus {
                    node: s.node.clone(),
                    finished: s.finished,
                    keys: s.keys,
                    bytes: s.bytes,
                    estimated_keys: s.estimate.map(|e| e.keys),
                    estimated_bytes: s.estimate.map(|e| e.bytes),
                    consecutive_failures: entry.runtime.get(&s.node).map_or(0, |r| r.failures),
                })
                .collect(),
        }
    }

    /// Writes what changed since the last step: records of new or changed transfers, and
    /// deletes of cancelled or forgotten ones, in one engine batch.
    async fn persist(&self) -> Result<(), TransferError> {
        let (batch, written, removed) = {
            let mut state = lock(&self.inner.state);
            if state.removed.is_empty() && !state.entries.values().any(|e| e.dirty) {
                return Ok(());
            }
            let mut batch = WriteBatch::new();
            let removed: Vec<TransferKey> =
                std::mem::take(&mut state.removed).into_iter().collect();
            for key in &removed {
                batch.delete(ColumnFamily::Meta, progress::record_key(key).into_bytes());
            }
            let mut written = Vec::new();
            for (key, entry) in state.entries.iter_mut().filter(|(_, e)| e.dirty) {
                batch.put(
                    ColumnFamily::Meta,
                    progress::record_key(key).into_bytes(),
                    progress::encode(&entry.progress)?,
                );
                entry.dirty = false;
                written.push(*key);
            }
            (batch, written, removed)
        };
        let store = self.inner.store.clone();
        let result = self
            .inner
            .config
            .storage
            .run(move || store.engine().write(batch))
            .await;
        if let Err(error) = result {
            // Written again by the next step.
            let mut state = lock(&self.inner.state);
            for key in written {
                if let Some(entry) = state.entries.get_mut(&key) {
                    entry.dirty = true;
                }
            }
            for key in removed {
                if !state.entries.contains_key(&key) {
                    state.removed.insert(key);
                }
            }
            return Err(error.into());
        }
        Ok(())
    }

    /// Moves transfers whose backoff is over back to the queue, admits queued ones while there
    /// are free slots, and returns the chunk requests to start: one for each running transfer
    /// with none in flight. A running transfer whose every unfinished source backs off gives its
    /// slot up until the first of them may be asked again.
    fn plan(&self, now: Instant) -> Vec<Fetch> {
        let mut state = lock(&self.inner.state);
        let state = &mut *state;
        let mut back: Vec<TransferKey> = state
            .entries
            .iter()
            .filter(|(_, e)| matches!(e.phase, Phase::Backoff(at) if at <= now))
            .map(|(key, _)| *key)
            .collect();
        back.sort();
        for key in back {
            if let Some(entry) = state.entries.get_mut(&key) {
                entry.phase = Phase::Queued;
                state.queue.push_back(key);
            }
        }
        let max = self.inner.max_concurrent.load(Ordering::Relaxed);
        let mut running = state.running();
        while running < max {
            let Some(key) = state.queue.pop_front() else {
                break;
            };
            if let Some(entry) = state.entries.get_mut(&key) {
                if entry.phase == Phase::Queued {
                    entry.phase = Phase::Running;
                    running += 1;
                    debug!(node = %self.inner.local, %key, "transfer started");
                }
            }
        }
        let mut fetches = Vec::new();
        for (key, entry) in state.entries.iter_mut() {
            if entry.phase != Phase::Running || entry.in_flight {
                continue;
            }
            if entry.progress.sources.iter().all(|s| s.finished) {
                // Finished by a source list that changed: completed on the next merge-free pass.
                continue;
            }
            let Some(index) = entry.ready_source(now) else {
                let until = entry.earliest_retry().unwrap_or(now);
                entry.phase = Phase::Backoff(until);
                continue;
            };
            entry.current = index;
            let source = &mut entry.progress.sources[index];
            let runtime = entry.runtime.entry(source.node.clone()).or_default();
            if runtime.last_requested.as_ref() == Some(&source.after) {
                entry.resent += 1;
                self.inner
                    .stats
                    .resent_chunks
                    .fetch_add(1, Ordering::Relaxed);
            }
            runtime.last_requested = Some(source.after.clone());
            // Its backoff, if it had one, is over.
            runtime.retry_at = None;
            entry.in_flight = true;
            fetches.push(Fetch {
                key: *key,
                generation: entry.generation,
                source: source.node.clone(),
                after: source.after.clone(),
                estimate: source.estimate.is_none(),
            });
        }
        fetches
    }

    /// Completes transfers whose every source is finished but that are not marked done (their
    /// source list changed to sources already read): one record write each, by the next
    /// persist.
    fn finish_complete(&self) {
        let mut state = lock(&self.inner.state);
        let done: Vec<TransferKey> = state
            .entries
            .iter()
            .filter(|(_, e)| {
                e.phase != Phase::Done
                    && !e.in_flight
                    && e.progress.sources.iter().all(|s| s.finished)
            })
            .map(|(key, _)| *key)
            .collect();
        for key in done {
            if let Some(entry) = state.entries.get_mut(&key) {
                entry.progress.done = true;
                entry.phase = Phase::Done;
                entry.dirty = true;
            }
            state.queue.retain(|k| *k != key);
            state.completed.push(key);
            self.inner.stats.completed.fetch_add(1, Ordering::Relaxed);
            self.inner.completions.send_modify(|n| *n += 1);
            info!(node = %self.inner.local, %key, "transfer complete");
        }
    }

    /// Starts one chunk request; its answer comes back on the worker's channel.
    fn start(&self, fetch: Fetch) {
        let request = Request::PartitionChunk {
            table: fetch.key.table,
            partition: fetch.key.partition,
            after: fetch.after.clone(),
            max_cells: self.inner.config.chunk_cells,
            max_bytes: self.inner.config.chunk_bytes,
            estimate: fetch.estimate,
        };
        let deadline = Instant::now() + self.inner.config.call_timeout;
        let answer = call(&self.inner.transport, &fetch.source, request, deadline);
        let answers = self.inner.answers.clone();
        tokio::spawn(async move {
            let answer = answer.await.map_err(|failure| failure.reason());
            // The worker may be gone (the node is stopping): the answer is not needed then.
            let _ = answers.send(Fetched {
                key: fetch.key,
                generation: fetch.generation,
                source: fetch.source,
                after: fetch.after,
                answer,
            });
        });
    }

    /// Records a failed request or merge of `key` from `source`: the source backs off, and the
    /// transfer goes on with its next unfinished source.
    fn failed(&self, key: &TransferKey, source: &NodeId, error: &TransferError) -> WorkerError {
        self.inner.stats.failures.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut state = lock(&self.inner.state);
        if let Some(entry) = state.entries.get_mut(key) {
            let runtime = entry.runtime.entry(source.clone()).or_default();
            runtime.failures = runtime.failures.saturating_add(1);
            let backoff = backoff_ceiling(
                self.inner.config.backoff_base,
                self.inner.config.backoff_cap,
                runtime.failures,
            );
            runtime.retry_at = Some(now + backoff);
            entry.last_error = Some(error.to_string());
            let count = entry.progress.sources.len().max(1);
            entry.current = (entry.current + 1) % count;
            warn!(node = %self.inner.local, %key, %source, %error, backoff_ms = backoff.as_millis() as u64, "transfer step failed");
        }
        WorkerError::new(format!("{key}: {error}"))
    }

    /// Takes one answer: checks it, asks for the next chunk, merges this one. Returns the
    /// chunk's bytes.
    async fn take(&self, fetched: Fetched) -> Result<u64, WorkerError> {
        let Fetched {
            key,
            generation,
            source,
            after,
            answer,
        } = fetched;
        let job = {
            let mut state = lock(&self.inner.state);
            let Some(entry) = state.entries.get_mut(&key) else {
                return Ok(0); // Cancelled while in flight.
            };
            if entry.generation != generation {
                return Ok(0); // Sources replaced while in flight.
            }
            entry.in_flight = false;
            let chunk = match answer {
                Ok(Response::PartitionChunk {
                    cells,
                    next,
                    bytes,
                    estimate,
                }) => rows_of_chunk(&key, &source, after.as_deref(), cells, next.as_deref())
                    .map(|rows| (rows, next, bytes, estimate)),
                Ok(other) => Err(TransferError::Source {
                    source_node: source.clone(),
                    reason: unexpected(&other),
                }),
                Err(reason) => Err(TransferError::Source {
                    source_node: source.clone(),
                    reason,
                }),
            };
            let (rows, next, bytes, estimate) = match chunk {
                Ok(chunk) => chunk,
                Err(error) => {
                    drop(state);
                    return Err(self.failed(&key, &source, &error));
                }
            };
            let mut progress = entry.progress.clone();
            let Some(mine) = progress.source_mut(&source) else {
                return Ok(0);
            };
            let keys: u64 = rows.iter().map(|(_, cells)| cells.len() as u64).sum();
            if next.is_some() {
                mine.after = next.clone();
            } else if let Some(last) = rows.last() {
                mine.after = last
                    .1
                    .last()
                    .and_then(|(column, _)| tessera_storage::cell_key(&last.0, column).ok());
            }
            mine.finished = next.is_none();
            mine.keys += keys;
            mine.bytes += bytes;
            mine.chunks += 1;
            if estimate.is_some() {
                mine.estimate = estimate;
            }
            mine.requested = next.is_some();
            progress.done = progress.sources.iter().all(|s| s.finished);
            // Ask for the next chunk now, so the source reads and sends it while this one merges.
            let prefetch = next.map(|next| {
                entry.in_flight = true;
                entry
                    .runtime
                    .entry(source.clone())
                    .or_default()
                    .last_requested = Some(Some(next.clone()));
                Fetch {
                    key,
                    generation,
                    source: source.clone(),
                    after: Some(next),
                    estimate: false,
                }
            });
            (
                MergeJob {
                    key,
                    generation,
                    source,
                    rows,
                    progress,
                    bytes,
                },
                prefetch,
            )
        };
        let (job, prefetch) = job;
        if let Some(fetch) = prefetch {
            self.start(fetch);
        }
        let MergeJob {
            key,
            generation,
            source,
            rows,
            progress,
            bytes,
        } = job;
        let store = self.inner.store.clone();
        let record = progress.clone();
        let merged = self
            .inner
            .config
            .storage
            .run(move || {
                merge_rows(&store, &key, &rows, &record).map_err(|error| match error {
                    TransferError::Storage(error) => error,
                    other => StorageError::InvalidBatch {
                        reason: other.to_string(),
                    },
                })
            })
            .await;
        match merged {
            Ok(merged) => {
                self.merged(key, generation, &source, progress, merged, bytes);
                Ok(bytes)
            }
            Err(error) => {
                // Not merged: what is in flight asks from past this chunk, so drop it, and ask
                // for this chunk again once the backoff is over.
                {
                    let mut state = lock(&self.inner.state);
                    let next_generation = state.generation();
                    if let Some(entry) = state.entries.get_mut(&key) {
                        entry.generation = next_generation;
                        entry.in_flight = false;
                    }
                }
                Err(self.failed(&key, &source, &TransferError::Storage(error)))
            }
        }
    }

    /// Brings memory up to a merged chunk, and completes the transfer if that was its last.
    fn merged(
        &self,
        key: TransferKey,
        generation: u64,
        source: &NodeId,
        progress: Progress,
        merged: Merged,
        bytes: u64,
    ) {
        let stats = &self.inner.stats;
        stats.chunks.fetch_add(1, Ordering::Relaxed);
        stats.keys.fetch_add(merged.keys, Ordering::Relaxed);
        stats.bytes.fetch_add(bytes, Ordering::Relaxed);
        stats.changed.fetch_add(merged.changed, Ordering::Relaxed);
        let now = Instant::now();
        let mut state = lock(&self.inner.state);
        let Some(entry) = state.entries.get_mut(&key) else {
            return; // Cancelled while merging: the next persist deletes the record.
        };
        if entry.generation == generation {
            entry.progress = progress;
        } else if let (Some(mine), Some(new)) = (
            entry.progress.source_mut(source),
            progress.sources.iter().find(|s| s.node == *source),
        ) {
            // Sources replaced while merging: keep this source's progress, rewrite the record.
            *mine = new.clone();
            entry.dirty = true;
        }
        if let Some(runtime) = entry.runtime.get_mut(source) {
            runtime.failures = 0;
            runtime.retry_at = None;
        }
        entry.record_sample(now);
        if entry.progress.sources.iter().all(|s| s.finished) {
            entry.progress.done = true;
            entry.phase = Phase::Done;
            entry.samples.clear();
            let keys = entry.progress.keys();
            let bytes = entry.progress.bytes();
            state.completed.push(key);
            stats.completed.fetch_add(1, Ordering::Relaxed);
            self.inner.completions.send_modify(|n| *n += 1);
            info!(node = %self.inner.local, %key, keys, bytes, "transfer complete");
            drop(state);
            // A slot is free.
            for fetch in self.plan(now) {
                self.start(fetch);
            }
        } else if let Some(next) = entry.progress.sources.iter().position(|s| !s.finished) {
            if entry.progress.sources[entry.current].finished {
                entry.current = next;
            }
        }
    }

    /// When the worker should look again without being woken: the first backoff to end. Only
    /// times still to come count: one already past was acted on by the last step (or waits for
    /// an answer in flight, which wakes the worker itself).
    fn next_wakeup(&self) -> Option<Instant> {
        let now = Instant::now();
        let state = lock(&self.inner.state);
        state
            .entries
            .values()
            .filter_map(|e| match e.phase {
                Phase::Backoff(at) => Some(at),
                Phase::Running => e.earliest_retry(),
                _ => None,
            })
            .filter(|at| *at > now)
            .min()
    }

    fn summary(&self) -> WorkerStatus {
        let state = lock(&self.inner.state);
        let count =
            |phase: fn(&Phase) -> bool| state.entries.values().filter(|e| phase(&e.phase)).count();
        let running = count(|p| *p == Phase::Running);
        let queued = count(|p| *p == Phase::Queued);
        let backoff = count(|p| matches!(p, Phase::Backoff(_)));
        let stats = &self.inner.stats;
        WorkerStatus {
            progress: Some(format!(
                "{running} running, {queued} queued, {backoff} backing off"
            )),
            queued: Some((queued + backoff) as u64),
            ..WorkerStatus::default()
        }
        .counter("chunks", stats.chunks.load(Ordering::Relaxed))
        .counter("keys", stats.keys.load(Ordering::Relaxed))
        .counter("bytes", stats.bytes.load(Ordering::Relaxed))
        .counter("resent_chunks", stats.resent_chunks.load(Ordering::Relaxed))
        .counter("failures", stats.failures.load(Ordering::Relaxed))
        .counter("completed", stats.completed.load(Ordering::Relaxed))
    }
}

fn transfer_sources(state: &State, key: &TransferKey) -> Vec<NodeId> {
    state
        .entries
        .get(key)
        .map(|e| e.progress.sources.iter().map(|s| s.node.clone()).collect())
        .unwrap_or_default()
}

/// The `transfers` worker (see the module docs). Its unit is bytes merged.
pub struct TransferWorker<T, E: Engine> {
    transfers: Transfers<T, E>,
    answers: mpsc::UnboundedReceiver<Fetched>,
    ready: VecDeque<Fetched>,
}

impl<T: Transport, E: Engine> Worker for TransferWorker<T, E> {
    fn name(&self) -> String {
        TRANSFERS.to_owned()
    }

    fn status(&self) -> WorkerStatus {
        self.transfers.summary()
    }

    async fn step(&mut self, _ctx: &StepContext) -> Result<Step, WorkerError> {
        self.transfers
            .persist()
            .await
            .map_err(|e| WorkerError::new(format!("writing transfer records failed: {e}")))?;
        self.transfers.finish_complete();
        while let Ok(fetched) = self.answers.try_recv() {
            self.ready.push_back(fetched);
        }
        for fetch in self.transfers.plan(Instant::now()) {
            self.transfers.start(fetch);
        }
        let Some(fetched) = self.ready.pop_front() else {
            return Ok(Step::Idle);
        };
        let bytes = self.transfers.take(fetched).await?;
        Ok(Step::Busy { units: bytes })
    }

    async fn wait_for_work(&mut self) {
        let wakeup = self.transfers.next_wakeup();
        let sleep = async {
            match wakeup {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            answer = self.answers.recv() => {
                if let Some(answer) = answer {
                    self.ready.push_back(answer);
                }
            }
            () = self.transfers.inner.work.notified() => {}
            () = sleep => {}
        }
    }

    async fn finish(&mut self) {
        // Progress is written with every chunk; what changed since (new or cancelled
        // transfers) is written now, if the disk lets us.
        if let Err(error) = self.transfers.persist().await {
            warn!(node = %self.transfers.inner.local, %error, "could not write transfer records while stopping");
        }
        info!(node = %self.transfers.inner.local, "transfers stopped");
    }
}

/// Estimates how much each of `partitions` holds on `node`, through `transport`.
pub async fn estimate_on<T: Transport + ?Sized>(
    transport: &T,
    node: &NodeId,
    partitions: Vec<(u32, u16)>,
    timeout: Duration,
) -> Result<Vec<PartitionSize>, TransferError> {
    let asked = partitions.len();
    let deadline = Instant::now() + timeout;
    let answer = call(
        transport,
        node,
        Request::EstimatePartitions { partitions },
        deadline,
    )
    .await;
    let source = |reason: String| TransferError::Source {
        source_node: node.clone(),
        reason,
    };
    match answer {
        Ok(Response::PartitionSizes { sizes }) if sizes.len() == asked => Ok(sizes),
        Ok(Response::PartitionSizes { sizes }) => Err(source(format!(
            "answered {} sizes for {asked} partitions",
            sizes.len()
        ))),
        Ok(other) => Err(source(unexpected(&other))),
        Err(failure) => Err(source(failure.reason())),
    }
}
