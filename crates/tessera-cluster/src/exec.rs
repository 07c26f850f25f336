//! Where blocking storage calls run.
//!
//! `CellStore` calls block (RocksDB does I/O), so real nodes run them on
//! tokio's blocking pool. Simulations over the in-memory engine run them
//! inline instead: a blocking-pool thread finishing at a nondeterministic
//! moment would make a seeded simulation unrepeatable.

use tessera_storage::StorageError;

/// How storage calls are run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StorageRunner {
    /// On tokio's blocking pool (`spawn_blocking`), for real engines.
    #[default]
    Blocking,
    /// On the calling task, for in-memory engines in deterministic tests.
    Inline,
}

impl StorageRunner {
    /// Runs `call` and returns its result.
    pub async fn run<R, F>(self, call: F) -> Result<R, StorageError>
    where
        R: Send + 'static,
        F: FnOnce() -> Result<R, StorageError> + Send + 'static,
    {
        match self {
            StorageRunner::Inline => call(),
            StorageRunner::Blocking => match tokio::task::spawn_blocking(call).await {
                Ok(result) => result,
                // The closure panicked or the runtime is shutting down; either
                // way the storage call did not complete.
                Err(join) => Err(StorageError::Engine {
                    op: "spawn_blocking",
                    message: join.to_string(),
                }),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn both_runners_return_the_result() {
        for runner in [StorageRunner::Blocking, StorageRunner::Inline] {
            assert_eq!(runner.run(|| Ok(7)).await, Ok(7));
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
