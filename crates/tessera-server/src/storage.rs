//! A running node's storage: one RocksDB engine in the data dir, shared by the cell store (data
//! and metadata) and the hint store, and the identity record that says whose data dir it is.

use std::path::PathBuf;
use std::sync::Arc;

use tessera_storage::{CellStore, HintStore, RocksEngine, RocksOptions, StoreOptions};

use crate::config::Config;
use crate::identity::{self, IdentityError, NodeIdentity};

/// The cell store of a running node.
pub type Store = CellStore<RocksEngine>;

/// The hint store of a running node, over the same engine as its [`Store`].
pub type Hints = HintStore<RocksEngine>;

/// Why a node's storage could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Storage(#[from] tessera_storage::StorageError),
    #[error("cannot shape the anti-entropy trees: {0}")]
    Trees(String),
}

/// What [`open`] opened.
pub struct Opened {
    pub identity: NodeIdentity,
    pub store: Arc<Store>,
    pub hints: Arc<Hints>,
}

/// Opens (or creates) the data dir of `config`, checks or writes its identity, and builds the
/// stores over its engine.
pub fn open(config: &Config) -> Result<Opened, OpenError> {
    let data_dir = &config.node.data_dir;
    std::fs::create_dir_all(data_dir).map_err(|source| OpenError::DataDir {
        path: data_dir.clone(),
        source,
    })?;
    let engine = Arc::new(RocksEngine::open(
        &data_dir.join("rocksdb"),
        &RocksOptions {
            sync_writes: config.storage.sync_writes,
            block_cache_bytes: config.storage.block_cache_mb << 20,
            write_buffer_bytes: config.storage.memtable_mb << 20,
            ..RocksOptions::default()
        },
    )?);
    let identity = identity::load_or_create(&*engine, config)?;
    let store = Store::new(
        engine.clone(),
        StoreOptions {
            actor: identity.actor,
            max_siblings: config.limits.max_siblings,
        },
    )
    .with_cell_cache_bytes(config.storage.cell_cache_mb << 20)
    // Every cell write keeps its partition's anti-entropy tree, in the write's own batch.
    .with_trees(
        tessera_merkle::TreeShape::with_default_fanout(identity.partitions)
            .map_err(|e| OpenError::Trees(e.to_string()))?,
    );
    let hints = Hints::new(engine).with_max_per_target(config.hints.max_per_target);
    Ok(Opened {
        identity,
        store: Arc::new(store),
        hints: Arc::new(hints),
    })
}
