//! Where blocking storage calls run.
//!
//! `CellStore` calls block: RocksDB does I/O, a write can wait on an fsync or on
//! RocksDB's write controller when compaction falls behind, and a row read can
//! decode thousands of cells. They must not hold up the async workers' other
//! tasks, but handing each call to another thread (tokio's blocking pool: two
//! context switches and a wakeup) cost more than many of the calls themselves
//! in the cluster benchmark. Real nodes use one of two policies:
//! - [`StorageRunner::InPlace`] (no fsync per write): point reads of one cell,
//!   memtable or block-cache lookups of microseconds that never wait on the
//!   write controller, run on the calling task; everything else runs on the
//!   calling worker thread inside `block_in_place`, which first hands the
//!   worker's other tasks to another thread, so a stalled write holds up only
//!   itself. Measured +33% quorum writes over the pool (docs/performance.md).
//!   The group committer is the exception: its batches, tens of microseconds of
//!   CPU each, run on its worker without the hand-off (see `commit`).
//! - [`StorageRunner::PointReadsInline`] (fsync per write): the same point
//!   reads on the task, the rest on the blocking pool, which is sized so that
//!   many writers wait on the disk together and share each fsync.
//!
//! Simulations over the in-memory engine run every call inline: a thread
//! finishing at a nondeterministic moment would make a seeded simulation
//! unrepeatable.

use tessera_storage::StorageError;

/// How storage calls are run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StorageRunner {
    /// Every call on tokio's blocking pool (`spawn_blocking`).
    #[default]
    Blocking,
    /// Point reads on the calling task, everything else on the blocking pool.
    PointReadsInline,
    /// Every call on the calling task, for in-memory engines in deterministic tests.
    Inline,
    /// Point reads on the calling task, everything else on the calling worker thread inside
    /// `block_in_place`. Only on a multi-thread runtime: `block_in_place` panics on a
    /// current-thread one.
    InPlace,
}

impl StorageRunner {
    /// Runs `call` (a write, or a read of more than one cell) and returns its result.
    pub async fn run<R, F>(self, call: F) -> Result<R, StorageError>
    where
        R: Send + 'static,
        F: FnOnce() -> Result<R, StorageError> + Send + 'static,
    {
        match self {
            StorageRunner::Inline => call(),
            StorageRunner::InPlace => tokio::task::block_in_place(call),
            StorageRunner::Blocking | StorageRunner::PointReadsInline => on_pool(call).await,
        }
    }

    /// Runs `call`, a read of one cell, and returns its result.
    pub async fn run_point_read<R, F>(self, call: F) -> Result<R, StorageError>
    where
        R: Send + 'static,
        F: FnOnce() -> Result<R, StorageError> + Send + 'static,
    {
        match self {
            StorageRunner::Inline | StorageRunner::PointReadsInline | StorageRunner::InPlace => {
                call()
            }
            StorageRunner::Blocking => on_pool(call).await,
        }
    }
}

async fn on_pool<R, F>(call: F) -> Result<R, StorageError>
where
    R: Send + 'static,
    F: FnOnce() -> Result<R, StorageError> + Send + 'static,
{
    match tokio::task::spawn_blocking(call).await {
        Ok(result) => result,
        // The closure panicked or the runtime is shutting down; either
        // way the storage call did not complete.
        Err(join) => Err(StorageError::Engine {
            op: "spawn_blocking",
            message: join.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // InPlace needs a multi-thread runtime.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_runner_returns_the_result() {
        for runner in [
            StorageRunner::Blocking,
            StorageRunner::PointReadsInline,
            StorageRunner::InPlace,
            StorageRunner::Inline,
        ] {
            assert_eq!(runner.run(|| Ok(7)).await, Ok(7));
            assert_eq!(runner.run_point_read(|| Ok(8)).await, Ok(8));
            let failed: Result<(), _> = runner
                .run(|| Err(StorageError::InvalidBatch { reason: "x".into() }))
                .await;
            assert!(failed.is_err());
        }
    }

    #[tokio::test]
    async fn a_panicking_call_is_an_error() {
        let result: Result<(), _> = StorageRunner::Blocking.run(|| panic!("boom")).await;
        assert!(matches!(
            result,
            Err(StorageError::Engine {
                op: "spawn_blocking",
                ..
            })
        ));
    }
}
