//! A node: its identity, its store and its schema, assembled from a [`Config`].
//!
//! The identity record in `meta` ties a data dir to one node id for life, and holds the replica's
//! *actor*, a random 64-bit id that names this replica in version vectors. The actor is new for every
//! new data dir: a node that lost its disk and comes back under the same name must not reissue dots
//! (actor, counter) that other replicas already hold for different values.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tessera_ring::{token_of, PartitionScheme};
use tessera_storage::{
    decode_versioned, encode_versioned, Actor, CellStore, ColumnFamily, Engine, HintStore,
    RocksEngine, RocksOptions, RowKey, StorageError, StoreOptions, WriteBatch,
};

use crate::cluster::ClusterState;
use crate::config::{is_valid_node_id, Config};
use crate::metrics::Metrics;
use crate::peer::StreamGate;
use crate::schema::{Schema, SchemaError};
use tessera_worker::Runner;

/// The store type of a running node.
pub type Store = CellStore<RocksEngine>;

/// The hint store of a running node, over the same engine as its [`Store`].
pub type Hints = HintStore<RocksEngine>;

const IDENTITY_KEY: &str = "node";

/// Who this data dir belongs to. Written once, on the first start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeIdentity {
    pub node_id: String,
    pub actor: Actor,
    pub partitions: u64,
    pub created_at_ms: u64,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot create data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("data dir {data_dir} belongs to node {stored:?}, not {configured:?}; use its own data dir or the same node id")]
    WrongNode {
        data_dir: PathBuf,
        stored: String,
        configured: String,
    },
    #[error("data dir {data_dir} was created with {stored} partitions, but the config says {configured}; the partition count is fixed for the life of a cluster")]
    WrongPartitions {
        data_dir: PathBuf,
        stored: u64,
        configured: u64,
    },
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot build the ring: {0}")]
    Ring(String),
    #[error("cannot set up the internal transport: {0}")]
    Transport(String),
    #[error("cannot set up membership: {0}")]
    Membership(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("cannot set up metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot start a background worker: {0}")]
    Workers(String),
}

/// Everything a request handler needs, shared behind an `Arc`.
pub struct Node {
    pub identity: NodeIdentity,
    pub config: Config,
    pub store: Arc<Store>,
    pub hints: Arc<Hints>,
    pub schema: Schema,
    pub metrics: Metrics,
    pub partitions: PartitionScheme,
    pub cluster: ClusterState,
    /// The internal streams peers opened to this node, stopped when it stops.
    pub streams: StreamGate,
    /// Every background job of the node (group commit, membership, hint delivery, ...).
    pub workers: Runner,
}

impl Node {
    /// Opens (or creates) the node's data dir and loads its identity and schema, and starts its
    /// storage workers (group commit). Must run within a tokio runtime.
    pub fn open(config: Config) -> Result<Self, NodeError> {
        let data_dir = config.node.data_dir.clone();
        std::fs::create_dir_all(&data_dir).map_err(|source| NodeError::DataDir {
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
        let identity = load_or_create_identity(&*engine, &config)?;
        let store = Store::new(
            engine.clone(),
            StoreOptions {
                actor: identity.actor,
                max_siblings: config.limits.max_siblings,
            },
        )
        .with_cell_cache_bytes(config.storage.cell_cache_mb << 20);
        let store = Arc::new(store);
        let hints = Arc::new(Hints::new(engine).with_max_per_target(config.hints.max_per_target));
        let schema = Schema::load(&store)?;
        let partitions =
            PartitionScheme::new(identity.partitions).map_err(|_| NodeError::WrongPartitions {
                data_dir: data_dir.clone(),
                stored: identity.partitions,
                configured: config.cluster.partitions,
            })?;
        let workers = Runner::new();
        let cluster = ClusterState::new(
            &config,
            &identity,
            partitions,
            store.clone(),
            hints.clone(),
            &workers,
        )?;
        tracing::info!(
            node = %identity.node_id,
            ring_nodes = cluster.ring().node_count(),
            actor = format_args!("{:016x}", identity.actor),
            data_dir = %data_dir.display(),
            tables = schema.list().len(),
            "node opened"
        );
        Ok(Self {
            identity,
            config,
            store,
            hints,
            schema,
            metrics: Metrics::new()?,
            partitions,
            cluster,
            streams: StreamGate::default(),
            workers,
        })
    }

    pub fn id(&self) -> &str {
        &self.identity.node_id
    }

    /// Where a partition key lives: its token and partition, and its storage key.
    pub fn row_key(&self, table: u32, key: Vec<u8>) -> RowKey {
        let token = token_of(&key);
        RowKey {
            table,
            partition: self.partitions.partition_of(token),
            token,
            key,
        }
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.config.requests.timeout_ms)
    }
}

/// Reads the identity record, or writes a new one for a new data dir. This runs on the bare engine
/// because the store cannot be built before the actor is known.
fn load_or_create_identity<E: Engine>(
    engine: &E,
    config: &Config,
) -> Result<NodeIdentity, NodeError> {
    let data_dir = config.node.data_dir.clone();
    if let Some(bytes) = engine.get(ColumnFamily::Meta, IDENTITY_KEY.as_bytes())? {
        let identity: NodeIdentity =
            decode_versioned("node identity", IDENTITY_KEY.as_bytes(), &bytes)?;
        if !config.node.id.is_empty() && config.node.id != identity.node_id {
            return Err(NodeError::WrongNode {
                data_dir,
                stored: identity.node_id,
                configured: config.node.id.clone(),
            });
        }
        if identity.partitions != config.cluster.partitions {
            return Err(NodeError::WrongPartitions {
                data_dir,
                stored: identity.partitions,
                configured: config.cluster.partitions,
            });
        }
        return Ok(identity);
    }
    let node_id = if config.node.id.is_empty() {
        format!("node-{:08x}", rand::random::<u32>())
    } else {
        config.node.id.clone()
    };
    debug_assert!(is_valid_node_id(&node_id));
    let identity = NodeIdentity {
        node_id,
        // Zero is reserved for "no actor yet".
        actor: rand::random::<u64>().max(1),
        partitions: config.cluster.partitions,
        created_at_ms: now_ms(),
    };
    let mut batch = WriteBatch::new();
    batch.put(
        ColumnFamily::Meta,
        IDENTITY_KEY.as_bytes(),
        encode_versioned("node identity", &identity)?,
    );
    engine.write(batch)?;
    tracing::info!(node = %identity.node_id, "new data dir initialised");
    Ok(identity)
}

/// Wall-clock milliseconds, for display and tombstone ages only: causality never depends on clocks.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path, id: &str) -> Config {
        let mut config = Config::load(None).unwrap();
        config.node.data_dir = dir.to_path_buf();
        config.node.id = id.to_string();
        config
    }

    /// Opens a node and closes it again as `serve` does (its workers hold the store: stopping
    /// them releases RocksDB's lock for the next open).
    async fn open_and_close(config: Config) -> Result<NodeIdentity, NodeError> {
        let node = Node::open(config)?;
        node.workers.shutdown(Duration::from_secs(5)).await;
        Ok(node.identity)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn identity_is_created_once_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let first = open_and_close(config(dir.path(), "n1")).await.unwrap();
        let again = open_and_close(config(dir.path(), "")).await.unwrap();
        assert_eq!(first, again);
        assert!(matches!(
            open_and_close(config(dir.path(), "n2")).await,
            Err(NodeError::WrongNode { .. })
        ));
        let mut other_q = config(dir.path(), "n1");
        other_q.cluster.partitions = 64;
        assert!(matches!(
            open_and_close(other_q).await,
            Err(NodeError::WrongPartitions { .. })
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_new_data_dir_gets_a_new_actor() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let first = open_and_close(config(a.path(), "n1")).await.unwrap();
        let second = open_and_close(config(b.path(), "n1")).await.unwrap();
        assert_ne!(first.actor, second.actor);
    }
}
