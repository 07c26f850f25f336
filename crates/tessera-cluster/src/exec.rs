//! Where blocking storage calls run.
//!
//! `CellStore` calls block (RocksDB does I/O), so real nodes run writes and
//! row reads on tokio's blocking pool: a write can wait on an fsync or on
//! RocksDB's write controller when compaction falls behind, and a row read can
//! decode thousands of cells. A point read of one cell is different: it is a
//! memtable or block-cache lookup of a few microseconds and never waits on the
//! write controller, so handing it to another thread (two context switches and
//! a wakeup) costs more than the read. [`StorageRunner::PointReadsInline`] runs
//! those on the calling task. Simulations over the in-memory engine run every
//! call inline: a blocking-pool thread finishing at a nondeterministic moment
//! would make a seeded simulation unrepeatable.

use tessera_storage::StorageError;

/// How storage calls are run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StorageRunner {
    /// Every call on tokio's blocking pool (`spawn_blocking`).
    #[default]
    Blocking,
    /// Point reads on the calling task, everything else on the blocking pool:
    /// what real nodes use.
    PointReadsInline,
    /// Every call on the calling task, for in-memory engines in deterministic tests.
    Inline,
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
            StorageRunner::Inline | StorageRunner::PointReadsInline => call(),
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

    #[tokio::test]
    async fn every_runner_returns_the_result() {
        for runner in [
            StorageRunner::Blocking,
            StorageRunner::PointReadsInline,
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
