//! Who a data dir belongs to: the identity record in `meta`, written on the first start and
//! checked on every later one.
//!
//! The record ties a data dir to one node id for life, and holds the replica's *actor*, a random
//! 64-bit id that names this replica in version vectors. The actor is new for every new data dir:
//! a node that lost its disk and comes back under the same name must not reissue dots (actor,
//! counter) that other replicas already hold for different values.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tessera_storage::{
    decode_versioned, encode_versioned, Actor, ColumnFamily, Engine, StorageError, WriteBatch,
};

use crate::config::{is_valid_node_id, Config};

const IDENTITY_KEY: &str = "node";

/// Who this data dir belongs to. Written once, on the first start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeIdentity {
    pub node_id: String,
    pub actor: Actor,
    pub partitions: u64,
    pub created_at_ms: u64,
}

/// Why a data dir cannot be used by this configuration.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
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
    Storage(#[from] StorageError),
}

/// Reads the identity record, or writes a new one for a new data dir. This runs on the bare engine
/// because the store cannot be built before the actor is known.
pub fn load_or_create<E: Engine>(
    engine: &E,
    config: &Config,
) -> Result<NodeIdentity, IdentityError> {
    let data_dir = config.node.data_dir.clone();
    if let Some(bytes) = engine.get(ColumnFamily::Meta, IDENTITY_KEY.as_bytes())? {
        let identity: NodeIdentity =
            decode_versioned("node identity", IDENTITY_KEY.as_bytes(), &bytes)?;
        if !config.node.id.is_empty() && config.node.id != identity.node_id {
            return Err(IdentityError::WrongNode {
                data_dir,
                stored: identity.node_id,
                configured: config.node.id.clone(),
            });
        }
        if identity.partitions != config.cluster.partitions {
            return Err(IdentityError::WrongPartitions {
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
