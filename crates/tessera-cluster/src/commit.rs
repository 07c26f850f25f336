//! Group commit: the row writes of many requests in one engine write.
//!
//! Every client write costs a node one row write (as coordinator) or one merge (as replica),
//! and read repair adds more. Run one by one, each pays a whole engine write (a WAL append and
//! RocksDB's write group; with `sync_writes`, an fsync) and, off the async workers, a thread hop.
//! A [`RowWriter`] queues them instead: one committer task takes everything queued, applies it
//! with [`CellStore::apply`] (each op as if alone and in order; one engine write for all), and
//! answers each caller. Under load a batch holds the writes that arrived while the previous one
//! was being written, so the per-write costs are shared; an idle node writes a batch of one,
//! with one extra task wakeup. With fsync this is classic group commit: one fsync per batch, not
//! per write.
//!
//! The committer is a [`Worker`] (`group-commit`) started with the writer
//! ([`RowWriter::start`]) in the runner's storage group, so it stops after every job that writes
//! through it, applying what is still queued before the node closes storage. It runs storage
//! calls the way its [`StorageRunner`] says (except that with [`StorageRunner::InPlace`] it
//! applies its batches on its own task, without `block_in_place`: see `Committer::apply`). The
//! queue is bounded, so a stalled disk pushes back on requests instead of growing memory, and
//! callers wait under their own deadlines. [`RowWriter::inline`] (seeded simulations) has no
//! committer: each write is applied on the spot, so runs stay deterministic.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tessera_storage::cell::approx_cell_bytes;
use tessera_storage::{
    Cell, CellStore, CellWrite, Engine, MergeOutcome, RowKey, RowOp, RowOutcome, StorageError,
};
use tessera_worker::{
    Group, Runner, RunnerError, Step, StepContext, Worker, WorkerError, WorkerOptions, WorkerStatus,
};
use tokio::sync::{mpsc, oneshot};

use crate::exec::StorageRunner;

/// Most writes waiting for the committer; beyond it, callers wait to queue.
const QUEUE_CAPACITY: usize = 4096;
/// Most writes in one batch, so that one batch never holds the rows for long.
const MAX_BATCH_OPS: usize = 256;
/// A batch stops taking writes once their values add up to this (one write always fits).
const MAX_BATCH_BYTES: usize = 4 << 20;

/// One queued write, owned until it is applied.
enum QueuedOp {
    Write {
        row: RowKey,
        writes: Vec<CellWrite>,
        now_ms: u64,
    },
    Merge {
        row: RowKey,
        cells: Vec<(Vec<u8>, Cell)>,
    },
}

impl QueuedOp {
    fn view(&self) -> RowOp<'_> {
        match self {
            QueuedOp::Write {
                row,
                writes,
                now_ms,
            } => RowOp::Write {
                row,
                writes,
                now_ms: *now_ms,
            },
            QueuedOp::Merge { row, cells } => RowOp::Merge { row, cells },
        }
    }

    /// Roughly what the op adds to a batch: its values' bytes.
    fn approx_bytes(&self) -> usize {
        match self {
            QueuedOp::Write { writes, .. } => writes
                .iter()
                .map(|write| match write {
                    CellWrite::Set { column, value, .. } => column.len() + value.len(),
                    CellWrite::Delete { column, .. } => column.len(),
                })
                .sum(),
            QueuedOp::Merge { cells, .. } => cells
                .iter()
                .map(|(column, cell)| column.len() + approx_cell_bytes(cell))
                .sum(),
        }
    }
}

struct Job {
    op: QueuedOp,
    reply: oneshot::Sender<Result<RowOutcome, StorageError>>,
}

/// Batches and writes committed so far; their ratio is the mean batch size.
#[derive(Debug, Default)]
pub struct CommitStats {
    /// Engine batches written by the committer.
    pub batches: AtomicU64,
    /// Row writes and merges in them.
    pub ops: AtomicU64,
}

/// Where a node's row writes and merges go: queued and group-committed.
pub struct RowWriter<E: Engine> {
    store: Arc<CellStore<E>>,
    /// `None` for an inline writer.
    queue: Option<mpsc::Sender<Job>>,
    stats: Arc<CommitStats>,
}

impl<E: Engine> std::fmt::Debug for RowWriter<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowWriter")
            .field("inline", &self.queue.is_none())
            .finish_non_exhaustive()
    }
}

fn stopped() -> StorageError {
    StorageError::Engine {
        op: "group commit",
        message: "the committer stopped before applying the write (the node is stopping)"
            .to_owned(),
    }
}

/// The worker's name.
pub const COMMITTER: &str = "group-commit";

impl<E: Engine> RowWriter<E> {
    /// A writer to `store` whose committer runs on `workers` as [`COMMITTER`], in the storage
    /// group, running storage calls with `runner`. With [`StorageRunner::Inline`] it is
    /// [`RowWriter::inline`] and starts nothing.
    pub fn start(
        store: Arc<CellStore<E>>,
        runner: StorageRunner,
        workers: &Runner,
    ) -> Result<Arc<Self>, RunnerError> {
        if runner == StorageRunner::Inline {
            return Ok(Self::inline(store));
        }
        let (queue, jobs) = mpsc::channel(QUEUE_CAPACITY);
        let stats = Arc::new(CommitStats::default());
        workers.spawn_with(
            Committer {
                store: store.clone(),
                runner,
                queue: jobs,
                stats: stats.clone(),
                waiting: None,
                closed: false,
            },
            WorkerOptions::in_group(Group::Storage),
        )?;
        Ok(Arc::new(Self {
            store,
            queue: Some(queue),
            stats,
        }))
    }

    /// A writer that applies each write on the spot, on the caller's task: for seeded
    /// simulations over the in-memory engine, where a committer task would make runs
    /// unrepeatable.
    pub fn inline(store: Arc<CellStore<E>>) -> Arc<Self> {
        Arc::new(Self {
            store,
            queue: None,
            stats: Arc::new(CommitStats::default()),
        })
    }

    /// The store written to.
    pub fn store(&self) -> &Arc<CellStore<E>> {
        &self.store
    }

    /// Batches and writes committed so far.
    pub fn stats(&self) -> &Arc<CommitStats> {
        &self.stats
    }

    /// [`CellStore::write_row`], group-committed.
    pub async fn write_row(
        &self,
        row: RowKey,
        writes: Vec<CellWrite>,
        now_ms: u64,
    ) -> Result<Vec<(Vec<u8>, Cell)>, StorageError> {
        self.submit(QueuedOp::Write {
            row,
            writes,
            now_ms,
        })
        .await?
        .into_written()
    }

    /// [`CellStore::merge_row`], group-committed.
    pub async fn merge_row(
        &self,
        row: RowKey,
        cells: Vec<(Vec<u8>, Cell)>,
    ) -> Result<Vec<MergeOutcome>, StorageError> {
        self.submit(QueuedOp::Merge { row, cells })
            .await?
            .into_merged()
    }

    async fn submit(&self, op: QueuedOp) -> Result<RowOutcome, StorageError> {
        let Some(queue) = &self.queue else {
            return apply_guarded(&self.store, std::slice::from_ref(&op.view()))
                .pop()
                .unwrap_or_else(|| Err(stopped()));
        };
        let (reply, answer) = oneshot::channel();
        queue.send(Job { op, reply }).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// [`CellStore::apply`], with a panic (a bug: none is expected) failing the batch's writes
/// instead of the committer, which would leave every later write of the node unanswered.
fn apply_guarded<E: Engine>(
    store: &CellStore<E>,
    ops: &[RowOp<'_>],
) -> Vec<Result<RowOutcome, StorageError>> {
    std::panic::catch_unwind(AssertUnwindSafe(|| store.apply(ops))).unwrap_or_else(|_| {
        ops.iter()
            .map(|_| {
                Err(StorageError::Engine {
                    op: "group commit",
                    message: "internal error: applying the batch panicked".to_owned(),
                })
            })
            .collect()
    })
}

/// Applies `jobs` as one batch; their results, in order.
fn apply_jobs<E: Engine>(
    store: &CellStore<E>,
    jobs: Vec<Job>,
) -> (Vec<Job>, Vec<Result<RowOutcome, StorageError>>) {
    let ops: Vec<RowOp<'_>> = jobs.iter().map(|job| job.op.view()).collect();
    let results = apply_guarded(store, &ops);
    drop(ops);
    (jobs, results)
}

/// The committer: takes what is queued, applies it as one batch, answers, repeats.
struct Committer<E: Engine> {
    store: Arc<CellStore<E>>,
    runner: StorageRunner,
    queue: mpsc::Receiver<Job>,
    stats: Arc<CommitStats>,
    /// The job that ended the last wait, first of the next batch.
    waiting: Option<Job>,
    /// Every writer is gone: nothing more can come.
    closed: bool,
}

impl<E: Engine> Committer<E> {
    /// The next batch: `first` and whatever else is queued, within the batch bounds.
    fn batch(&mut self, first: Job) -> Vec<Job> {
        let mut bytes = first.op.approx_bytes();
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH_OPS && bytes < MAX_BATCH_BYTES {
            match self.queue.try_recv() {
                Ok(job) => {
                    bytes += job.op.approx_bytes();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        jobs
    }

    /// Applies `jobs` as one engine batch and answers each caller.
    async fn apply(&self, jobs: Vec<Job>) {
        let applied = match self.runner {
            // Without fsync a batch is some tens of microseconds of CPU, less than what
            // `block_in_place` costs to hand this worker's other tasks to another thread, which
            // it did for every batch: applying here took a fifth off a node's CPU per write
            // (docs/performance.md). What it gives up: while RocksDB stalls writes (compaction
            // far behind), this worker thread waits with the committer, where `block_in_place`
            // would have lent it out. The other workers steal its queued tasks meanwhile, and
            // every write waits on the committer anyway (under its request's deadline).
            StorageRunner::InPlace => Ok(apply_jobs(&self.store, jobs)),
            // Fsynced batches wait on the disk for milliseconds: never on a worker.
            _ => {
                let store = self.store.clone();
                self.runner.run(move || Ok(apply_jobs(&store, jobs))).await
            }
        };
        // If the storage call itself failed (the pool is gone), the jobs were dropped with it
        // and each caller learns from its closed reply channel.
        if let Ok((jobs, results)) = applied {
            self.stats.batches.fetch_add(1, Ordering::Relaxed);
            self.stats
                .ops
                .fetch_add(jobs.len() as u64, Ordering::Relaxed);
            for (job, result) in jobs.into_iter().zip(results) {
                // A caller that gave up (its request timed out) no longer listens.
                let _ = job.reply.send(result);
            }
        }
    }
}

impl<E: Engine> Worker for Committer<E> {
    fn name(&self) -> String {
        COMMITTER.to_owned()
    }

    fn status(&self) -> WorkerStatus {
        WorkerStatus {
            queued: Some(self.queue.len() as u64),
            ..WorkerStatus::default()
        }
        .counter("batches", self.stats.batches.load(Ordering::Relaxed))
        .counter("writes", self.stats.ops.load(Ordering::Relaxed))
    }

    async fn step(&mut self, _ctx: &StepContext) -> Result<Step, WorkerError> {
        let first = match self.waiting.take() {
            Some(job) => job,
            None => match self.queue.try_recv() {
                Ok(job) => job,
                Err(mpsc::error::TryRecvError::Empty) => return Ok(Step::Idle),
                Err(mpsc::error::TryRecvError::Disconnected) => return Ok(Step::Done),
            },
        };
        let jobs = self.batch(first);
        let units = jobs.len() as u64;
        self.apply(jobs).await;
        Ok(Step::Busy { units })
    }

    async fn wait_for_work(&mut self) {
        if self.closed {
            return std::future::pending().await;
        }
        match self.queue.recv().await {
            Some(job) => {
                if self.queue.is_empty() {
                    // Let the tasks already woken (other requests, the merges of one stream
                    // read) queue their writes first: under load they then share this batch;
                    // idle, this costs one pass of the scheduler.
                    tokio::task::yield_now().await;
                }
                self.waiting = Some(job);
            }
            None => self.closed = true,
        }
    }

    /// Refuses new writes, then applies everything already queued.
    async fn finish(&mut self) {
        self.queue.close();
        loop {
            let first = match self.waiting.take() {
                Some(job) => job,
                None => match self.queue.recv().await {
                    Some(job) => job,
                    None => break,
                },
            };
            let jobs = self.batch(first);
            self.apply(jobs).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_storage::{Context, MemoryEngine, StoreOptions};

    fn store() -> Arc<CellStore<MemoryEngine>> {
        Arc::new(CellStore::new(MemoryEngine::new(), StoreOptions::new(1)))
    }

    /// A writer, and the runner its committer runs on (dropping it stops the committer).
    fn writer(runner: StorageRunner) -> (Arc<RowWriter<MemoryEngine>>, Runner) {
        let workers = Runner::new();
        (
            RowWriter::start(store(), runner, &workers).unwrap(),
            workers,
        )
    }

    fn blind(value: &str) -> Vec<CellWrite> {
        vec![CellWrite::Set {
            column: b"c".to_vec(),
            value: value.as_bytes().to_vec(),
            context: Context::new(),
        }]
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_batches_and_all_land() {
        for runner in [
            StorageRunner::InPlace,
            StorageRunner::Blocking,
            StorageRunner::PointReadsInline,
        ] {
            let (writer, _workers) = writer(runner);
            let mut tasks = Vec::new();
            for i in 0..500u32 {
                let writer = writer.clone();
                tasks.push(tokio::spawn(async move {
                    let row = RowKey::new(1, 0, 1, format!("r{}", i % 50).into_bytes());
                    writer.write_row(row, blind(&i.to_string()), 1).await
                }));
            }
            for task in tasks {
                assert_eq!(task.await.unwrap().unwrap().len(), 1);
            }
            let store = writer.store();
            let mut siblings = 0;
            for r in 0..50 {
                let row = RowKey::new(1, 0, 1, format!("r{r}").into_bytes());
                siblings += store
                    .read_cell(&row, b"c")
                    .unwrap()
                    .unwrap()
                    .sibling_count();
            }
            // Every blind write stays, as a sibling, whatever batch it went in.
            assert_eq!(siblings, 500, "{runner:?}");
            let ops = writer.stats().ops.load(Ordering::Relaxed);
            let batches = writer.stats().batches.load(Ordering::Relaxed);
            assert_eq!(ops, 500);
            assert!((1..=500).contains(&batches), "{batches}");
        }
    }

    #[tokio::test]
    async fn inline_writes_apply_on_the_spot_and_merges_report_changes() {
        let writer = RowWriter::inline(store());
        let row = RowKey::new(1, 0, 1, b"r".to_vec());
        let cells = writer.write_row(row.clone(), blind("v"), 1).await.unwrap();
        assert!(writer.queue.is_none());
        let again = writer.merge_row(row.clone(), cells.clone()).await.unwrap();
        assert!(!again[0].changed);
        let other = Cell::new().write(
            &Context::new(),
            &9,
            tessera_storage::CellValue::value(b"w".to_vec(), 2),
        );
        let merged = writer
            .merge_row(row, vec![(b"c".to_vec(), other)])
            .await
            .unwrap();
        assert!(merged[0].changed);
        assert_eq!(merged[0].cell.sibling_count(), 2);
        assert_eq!(writer.stats().batches.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bad_write_fails_alone() {
        let (writer, _workers) = writer(StorageRunner::InPlace);
        let good = RowKey::new(1, 0, 1, b"good".to_vec());
        let bad = RowKey::new(1, 0, 1, vec![b'k'; tessera_storage::MAX_KEY_LEN + 1]);
        let (a, b) = tokio::join!(
            writer.write_row(good.clone(), blind("v"), 1),
            writer.write_row(bad, blind("v"), 1)
        );
        assert!(a.is_ok());
        assert!(matches!(b, Err(StorageError::KeyTooLong { .. })));
        assert!(writer.store().read_cell(&good, b"c").unwrap().is_some());
    }
}
