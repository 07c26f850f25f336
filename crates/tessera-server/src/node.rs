//! A node: its identity, storage, schema, cluster view and background workers, assembled from a
//! [`Config`], and shared by every request handler and worker behind an `Arc`.

use std::sync::Arc;
use std::time::Duration;

use tessera_ring::{token_of, PartitionScheme};
use tessera_storage::RowKey;
use tessera_worker::Runner;

use crate::cluster::{ClusterError, ClusterState};
use crate::config::Config;
use crate::identity::{IdentityError, NodeIdentity};
use crate::metrics::Metrics;
use crate::peer::StreamGate;
use crate::schema::{Schema, SchemaError};
use crate::storage::{self, Hints, OpenError, Store};

pub use crate::identity::now_ms;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("cannot set up metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot start a background worker: {0}")]
    Workers(#[from] tessera_worker::RunnerError),
    #[error("cannot start the partition transfers: {0}")]
    Transfers(#[from] tessera_cluster::transfer::TransferError),
}

/// Everything a request handler or worker needs, shared behind an `Arc`.
pub struct Node {
    pub(crate) identity: NodeIdentity,
    pub(crate) config: Config,
    pub(crate) store: Arc<Store>,
    pub(crate) hints: Arc<Hints>,
    pub(crate) schema: Schema,
    pub(crate) metrics: Metrics,
    partitions: PartitionScheme,
    pub(crate) cluster: ClusterState,
    /// The internal streams peers opened to this node, stopped when it stops.
    pub(crate) streams: StreamGate,
    /// Every background job of the node (group commit, membership, hint delivery, ...).
    pub(crate) workers: Runner,
    /// Anti-entropy, set when the workers start (its table list reads the schema through a weak
    /// link to this node).
    pub(crate) antientropy: std::sync::OnceLock<Arc<crate::cluster::NodeAntiEntropy>>,
}

impl Node {
    /// Opens (or creates) the node's data dir, loads its identity and schema, and starts its
    /// storage workers (group commit). Must run within a tokio runtime.
    pub fn open(config: Config) -> Result<Self, NodeError> {
        let storage::Opened {
            identity,
            store,
            hints,
        } = storage::open(&config)?;
        let schema = Schema::load(&store)?;
        let partitions = PartitionScheme::new(identity.partitions).map_err(|_| {
            OpenError::Identity(IdentityError::WrongPartitions {
                data_dir: config.node.data_dir.clone(),
                stored: identity.partitions,
                configured: config.cluster.partitions,
            })
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
            ring_nodes = cluster.ring().map_or(0, |r| r.node_count()),
            actor = format_args!("{:016x}", identity.actor),
            data_dir = %config.node.data_dir.display(),
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
            antientropy: std::sync::OnceLock::new(),
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

    /// How many partitions the token space is cut into (Q, fixed for the data dir).
    pub fn partition_count(&self) -> u32 {
        self.partitions.count()
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.config.requests.timeout_ms)
    }

    /// How long a client may take to send a request body.
    pub fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.config.requests.body_timeout_ms)
    }
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
            Err(NodeError::Open(OpenError::Identity(
                IdentityError::WrongNode { .. }
            )))
        ));
        let mut other_q = config(dir.path(), "n1");
        other_q.cluster.partitions = 64;
        assert!(matches!(
            open_and_close(other_q).await,
            Err(NodeError::Open(OpenError::Identity(
                IdentityError::WrongPartitions { .. }
            )))
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
