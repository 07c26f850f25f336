//! The node's settings as flags and environment variables, applied over the config file.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use tessera_server::Config;

/// Each flag overrides the config file; each has an environment variable of the same meaning.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML file read over the embedded defaults (config/tessera.toml).
    #[arg(long, env = "TESSERA_CONFIG")]
    config: Option<PathBuf>,
    /// Stable node name (node.id). Empty: generated on first start.
    #[arg(long, env = "TESSERA_NODE_ID")]
    node_id: Option<String>,
    /// HTTP listen address (node.listen). Port 0 picks a free port.
    #[arg(long, env = "TESSERA_LISTEN")]
    listen: Option<SocketAddr>,
    /// Data directory (node.data_dir).
    #[arg(long, env = "TESSERA_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Largest cell value in bytes (limits.max_value_bytes).
    #[arg(long, env = "TESSERA_MAX_VALUE_BYTES")]
    max_value_bytes: Option<usize>,
    /// Largest batch body in bytes (limits.max_batch_bytes).
    #[arg(long, env = "TESSERA_MAX_BATCH_BYTES")]
    max_batch_bytes: Option<usize>,
    /// Most versions a cell may hold before writes without a resolving context are refused (limits.max_siblings).
    #[arg(long, env = "TESSERA_MAX_SIBLINGS")]
    max_siblings: Option<usize>,
    /// Sibling count from which writes are counted and logged as warnings (limits.sibling_warning).
    #[arg(long, env = "TESSERA_SIBLING_WARNING")]
    sibling_warning: Option<usize>,
    /// fsync the WAL before acknowledging each write (storage.sync_writes).
    #[arg(long, env = "TESSERA_SYNC_WRITES", num_args = 0..=1, default_missing_value = "true")]
    sync_writes: Option<bool>,
    /// Threads for storage calls, 0 for one per core (storage.blocking_threads).
    #[arg(long, env = "TESSERA_BLOCKING_THREADS")]
    blocking_threads: Option<usize>,
    /// Most hints kept for one unreachable node (hints.max_per_target).
    #[arg(long, env = "TESSERA_MAX_HINTS_PER_TARGET")]
    max_hints_per_target: Option<u64>,
    /// Hints older than this many seconds are dropped undelivered (hints.window_secs).
    #[arg(long, env = "TESSERA_HINT_WINDOW_SECS")]
    hint_window_secs: Option<u64>,
    /// Most hints delivered per second, 0 for no limit (hints.delivery_per_second).
    #[arg(long, env = "TESSERA_HINT_DELIVERY_PER_SECOND")]
    hint_delivery_per_second: Option<u32>,
    /// Deadline of each data request in milliseconds (requests.timeout_ms).
    #[arg(long, env = "TESSERA_REQUEST_TIMEOUT_MS")]
    request_timeout_ms: Option<u64>,
    /// How long a client may take to send a request body, in milliseconds
    /// (requests.body_timeout_ms).
    #[arg(long, env = "TESSERA_BODY_TIMEOUT_MS")]
    body_timeout_ms: Option<u64>,
    /// Every cluster member as id@ip:port, comma-separated, this node included (cluster.nodes).
    #[arg(long, env = "TESSERA_NODES", value_delimiter = ',')]
    nodes: Option<Vec<String>>,
    /// Shared secret of internal requests between nodes (cluster.secret).
    #[arg(long, env = "TESSERA_CLUSTER_SECRET", hide_env_values = true)]
    cluster_secret: Option<String>,
    /// How internal requests travel between nodes: stream or http (cluster.transport).
    #[arg(long, env = "TESSERA_TRANSPORT")]
    transport: Option<tessera_server::config::TransportKind>,
    /// Add this node to the cluster once it has learned its layout, rather than waiting for an
    /// operator's `tessera cluster plan add` and `commit` (cluster.auto_join).
    #[arg(long, env = "TESSERA_AUTO_JOIN", num_args = 0..=1, default_missing_value = "true")]
    auto_join: Option<bool>,
    /// Nodes to join through, as ip:port, comma-separated or repeated (membership.seeds).
    #[arg(long = "seed", env = "TESSERA_SEEDS", value_delimiter = ',')]
    seeds: Option<Vec<String>>,
    /// Partitions of the token space, a power of two fixed at creation (cluster.partitions).
    #[arg(long, env = "TESSERA_PARTITIONS")]
    partitions: Option<u64>,
}

impl ServeArgs {
    /// Defaults, then the file, then these overrides; validated.
    pub fn resolve(self) -> Result<Config, tessera_server::ConfigError> {
        let mut config = Config::load(self.config.as_deref())?;
        let Self {
            config: _,
            node_id,
            listen,
            data_dir,
            max_value_bytes,
            max_batch_bytes,
            max_siblings,
            sibling_warning,
            sync_writes,
            request_timeout_ms,
            body_timeout_ms,
            partitions,
            nodes,
            cluster_secret,
            transport,
            auto_join,
            seeds,
            blocking_threads,
            max_hints_per_target,
            hint_window_secs,
            hint_delivery_per_second,
        } = self;
        set(&mut config.node.id, node_id);
        set(&mut config.node.listen, listen);
        set(&mut config.node.data_dir, data_dir);
        set(&mut config.limits.max_value_bytes, max_value_bytes);
        set(&mut config.limits.max_batch_bytes, max_batch_bytes);
        set(&mut config.limits.max_siblings, max_siblings);
        set(&mut config.limits.sibling_warning, sibling_warning);
        set(&mut config.storage.sync_writes, sync_writes);
        set(&mut config.storage.blocking_threads, blocking_threads);
        set(&mut config.hints.max_per_target, max_hints_per_target);
        set(&mut config.hints.window_secs, hint_window_secs);
        set(
            &mut config.hints.delivery_per_second,
            hint_delivery_per_second,
        );
        set(&mut config.requests.timeout_ms, request_timeout_ms);
        set(&mut config.requests.body_timeout_ms, body_timeout_ms);
        set(&mut config.cluster.partitions, partitions);
        set(&mut config.cluster.nodes, nodes);
        set(&mut config.cluster.secret, cluster_secret);
        set(&mut config.cluster.transport, transport);
        set(&mut config.cluster.auto_join, auto_join);
        set(&mut config.membership.seeds, seeds);
        config.validate()?;
        Ok(config)
    }
}

fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *field = value;
    }
}
