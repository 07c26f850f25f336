//! Node configuration: the embedded defaults, an optional TOML file over them, then overrides.
//!
//! The defaults live in `config/tessera.toml` and are compiled in, so `tessera serve` needs no file.
//! A user's file is merged key by key over the defaults, so it holds only what it changes. Flags and
//! environment variables are applied last by the binary through the public fields.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The default configuration, as shipped in `config/tessera.toml`.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../../../config/tessera.toml");

/// Everything a node needs to know to start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub node: NodeConfig,
    pub limits: LimitsConfig,
    pub storage: StorageConfig,
    pub hints: HintsConfig,
    pub background: BackgroundConfig,
    pub rebalance: RebalanceConfig,
    pub requests: RequestsConfig,
    pub cluster: ClusterConfig,
    pub membership: MembershipConfig,
    pub anti_entropy: AntiEntropySettings,
}

/// Anti-entropy (`[anti_entropy]`): the sweeps that converge every replica.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AntiEntropySettings {
    /// Whether this node runs sweeps (it answers its peers' exchanges either way).
    pub enabled: bool,
    /// A sweep of every partition starts this often.
    pub sweep_interval_secs: u64,
    /// Most keys (cells scanned or moved) per second, over every exchange (0: unthrottled).
    pub max_keys_per_s: u64,
    /// How often each partition's kept tree is checked against a rebuild from a scan.
    pub verify_interval_secs: u64,
}

/// SWIM membership (`[membership]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembershipConfig {
    /// Addresses (`ip:port`) of nodes to join through; the members of `cluster.nodes` are seeds
    /// too.
    pub seeds: Vec<String>,
    /// Period between two probes of SWIM's round-robin.
    pub probe_interval_ms: u64,
    /// Phi at which a peer counts as likely dead, before SWIM has declared it.
    pub phi_threshold: f64,
}

impl MembershipConfig {
    /// The state machine's parameters: the defaults of `tessera-membership`, scaled to the probe
    /// interval (the direct ping gets half of it, a relay's NACK 80% of that, as the defaults do).
    pub fn swim(&self) -> tessera_membership::Config {
        let mut config = tessera_membership::Config {
            probe_interval_ms: self.probe_interval_ms,
            probe_timeout_ms: self.probe_interval_ms / 2,
            nack_timeout_ms: self.probe_interval_ms * 2 / 5,
            ..tessera_membership::Config::default()
        };
        config.phi.threshold = self.phi_threshold;
        config
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Empty means: generate one on first start and keep it in the data dir.
    pub id: String,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_value_bytes: usize,
    pub max_batch_bytes: usize,
    pub max_internal_message_bytes: usize,
    pub max_siblings: usize,
    pub sibling_warning: usize,
}

/// Storage threads per core when writes fsync. Row writes share fsyncs through the group commit
/// whatever the pool size, but hints, hint deletes and metadata are written one call each: a
/// thread waiting for an fsync uses no CPU, and RocksDB commits every writer waiting at once with
/// one fsync, so more waiting writers mean fewer fsyncs per write (before the group commit, 32
/// threads gave 47% more fsynced quorum writes than 2 on the benchmark machine).
pub const SYNC_THREADS_PER_CORE: usize = 16;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    pub sync_writes: bool,
    pub blocking_threads: usize,
    pub block_cache_mb: usize,
    pub memtable_mb: usize,
    pub cell_cache_mb: usize,
}

impl StorageConfig {
    /// The storage thread count, with 0 resolved from the machine: one per core, or
    /// [`SYNC_THREADS_PER_CORE`] per core when every write waits for an fsync.
    pub fn blocking_threads(&self) -> usize {
        let cores = || std::thread::available_parallelism().map_or(2, |n| n.get());
        match self.blocking_threads {
            0 if self.sync_writes => cores() * SYNC_THREADS_PER_CORE,
            0 => cores(),
            n => n,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HintsConfig {
    pub max_per_target: u64,
    pub window_secs: u64,
    pub delivery_per_second: u32,
}

/// How partitions move when the layout changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RebalanceConfig {
    pub max_concurrent: u32,
    pub max_mb_per_s: u32,
    pub cleanup_grace_secs: u64,
    /// About the most KiB per chunk: one frame on the wire, one engine batch on the receiver.
    pub chunk_kb: u32,
}

/// Bounds on the short background tasks that outlive their request: a write's replication
/// stragglers and a read's repairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackgroundConfig {
    pub max_tasks: u32,
    pub max_mb: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestsConfig {
    pub timeout_ms: u64,
    pub body_timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    pub partitions: u64,
    pub nodes: Vec<String>,
    pub ring_replicas: u32,
    pub secret: String,
    pub transport: TransportKind,
    pub auto_join: bool,
}

/// How internal requests travel between nodes (`cluster.transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// One multiplexed binary stream per peer, upgraded from HTTP/1.1 (the default).
    #[default]
    Stream,
    /// One HTTP/1.1 request per call over pooled keep-alive connections.
    Http,
}

impl std::str::FromStr for TransportKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "stream" => Ok(Self::Stream),
            "http" => Ok(Self::Http),
            other => Err(format!("expected stream or http, got {other:?}")),
        }
    }
}

/// One member of a statically configured cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub addr: SocketAddr,
}

impl ClusterConfig {
    /// The members named in `nodes`, each checked.
    pub fn members(&self) -> Result<Vec<Member>, ConfigError> {
        let mut members: Vec<Member> = Vec::with_capacity(self.nodes.len());
        for entry in &self.nodes {
            let bad = |reason: &str| invalid("cluster.nodes", entry, reason);
            let (id, addr) = entry
                .split_once('@')
                .ok_or_else(|| bad("write each member as id@ip:port"))?;
            if !is_valid_node_id(id) {
                return Err(bad("node ids use 1 to 64 characters from [A-Za-z0-9_.-]"));
            }
            let addr: SocketAddr = addr
                .parse()
                .map_err(|_| bad("the address must be ip:port"))?;
            if members.iter().any(|m| m.id == id || m.addr == addr) {
                return Err(bad("a node id or address appears twice"));
            }
            members.push(Member {
                id: id.to_string(),
                addr,
            });
        }
        Ok(members)
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid setting {setting} = {value}: {reason}")]
    Invalid {
        setting: &'static str,
        value: String,
        reason: String,
    },
}

impl Config {
    /// The embedded defaults, with `file` (if any) merged over them.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut merged = parse_table(DEFAULT_CONFIG_TOML, Path::new("<embedded default>"))?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            merge_tables(&mut merged, parse_table(&text, path)?);
        }
        let origin = file.unwrap_or(Path::new("<embedded default>"));
        toml::Value::Table(merged)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse {
                path: origin.to_path_buf(),
                message: e.message().to_string(),
            })
    }

    /// Checks the settings that no type can express. Call after applying overrides.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.node.id.is_empty() && !is_valid_node_id(&self.node.id) {
            return Err(invalid(
                "node.id",
                &self.node.id,
                "use 1 to 64 characters from [A-Za-z0-9_.-]",
            ));
        }
        if self.node.listen.ip().is_unspecified() {
            // The address a node listens on is the one it gives its peers (gossip, the ring,
            // internal calls), and no peer can reach a node at 0.0.0.0.
            return Err(invalid(
                "node.listen",
                &self.node.listen,
                "must be a specific IP address: peers reach the node at the address it listens on",
            ));
        }
        if self.limits.max_value_bytes == 0 {
            return Err(invalid("limits.max_value_bytes", &0, "must be at least 1"));
        }
        if self.limits.max_batch_bytes < self.limits.max_value_bytes {
            return Err(invalid(
                "limits.max_batch_bytes",
                &self.limits.max_batch_bytes,
                "must be at least limits.max_value_bytes",
            ));
        }
        if self.limits.max_siblings == 0 {
            return Err(invalid("limits.max_siblings", &0, "must be at least 1"));
        }
        if self.storage.block_cache_mb == 0 {
            return Err(invalid("storage.block_cache_mb", &0, "must be at least 1"));
        }
        if !(1..=4096).contains(&self.storage.memtable_mb) {
            return Err(invalid(
                "storage.memtable_mb",
                &self.storage.memtable_mb,
                "must be from 1 to 4096",
            ));
        }
        if self.storage.cell_cache_mb > 65_536 {
            return Err(invalid(
                "storage.cell_cache_mb",
                &self.storage.cell_cache_mb,
                "must be from 0 (off) to 65536",
            ));
        }
        if self.cluster.secret.is_empty() {
            return Err(invalid("cluster.secret", &"\"\"", "must not be empty"));
        }
        if self.cluster.ring_replicas == 0 {
            return Err(invalid("cluster.ring_replicas", &0, "must be at least 1"));
        }
        let members = self.cluster.members()?;
        if !members.is_empty() {
            let me = members.iter().find(|m| m.id == self.node.id);
            match me {
                None => {
                    return Err(invalid(
                        "cluster.nodes",
                        &self.cluster.nodes.join(","),
                        format!("must include this node ({:?}) by its node.id", self.node.id),
                    ))
                }
                Some(me) if me.addr != self.node.listen => {
                    return Err(invalid(
                        "cluster.nodes",
                        &me.addr,
                        format!(
                            "lists {} at another address than node.listen ({})",
                            me.id, self.node.listen
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
        if self.hints.max_per_target == 0 {
            return Err(invalid("hints.max_per_target", &0, "must be at least 1"));
        }
        if self.hints.window_secs == 0 {
            return Err(invalid("hints.window_secs", &0, "must be at least 1"));
        }
        if !(1..=64).contains(&self.rebalance.max_concurrent) {
            return Err(invalid(
                "rebalance.max_concurrent",
                &self.rebalance.max_concurrent,
                "must be from 1 to 64",
            ));
        }
        if !(1..=16_384).contains(&self.rebalance.chunk_kb) {
            return Err(invalid(
                "rebalance.chunk_kb",
                &self.rebalance.chunk_kb,
                "must be from 1 to 16384",
            ));
        }
        if !(1..4096).contains(&self.background.max_mb) {
            return Err(invalid(
                "background.max_mb",
                &self.background.max_mb,
                "must be from 1 to 4095",
            ));
        }
        if self.requests.body_timeout_ms == 0 {
            return Err(invalid(
                "requests.body_timeout_ms",
                &0,
                "must be at least 1",
            ));
        }
        if self.requests.timeout_ms == 0 {
            return Err(invalid("requests.timeout_ms", &0, "must be at least 1"));
        }
        for seed in &self.membership.seeds {
            if seed.parse::<SocketAddr>().is_err() {
                return Err(invalid(
                    "membership.seeds",
                    seed,
                    "each seed is the ip:port of a node",
                ));
            }
        }
        self.membership.swim().validate().map_err(|e| {
            invalid(
                "membership.probe_interval_ms",
                &self.membership.probe_interval_ms,
                e.to_string(),
            )
        })?;
        if !(self.membership.phi_threshold.is_finite() && self.membership.phi_threshold > 0.0) {
            return Err(invalid(
                "membership.phi_threshold",
                &self.membership.phi_threshold,
                "must be a positive number",
            ));
        }
        if self.anti_entropy.sweep_interval_secs == 0 {
            return Err(invalid(
                "anti_entropy.sweep_interval_secs",
                &self.anti_entropy.sweep_interval_secs,
                "must be at least 1",
            ));
        }
        tessera_ring::PartitionScheme::new(self.cluster.partitions).map_err(|e| {
            invalid(
                "cluster.partitions",
                &self.cluster.partitions,
                e.to_string(),
            )
        })?;
        Ok(())
    }
}

/// Node ids appear in logs, metrics labels and file names, so they are kept plain.
pub fn is_valid_node_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn invalid(
    setting: &'static str,
    value: &dyn std::fmt::Display,
    reason: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid {
        setting,
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn parse_table(text: &str, path: &Path) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>().map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.message().to_string(),
    })
}

/// Merges `over` into `base`: tables merge recursively, anything else replaces.
fn merge_tables(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base_table)), toml::Value::Table(over_table)) => {
                merge_tables(base_table, over_table)
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_threads_follow_the_cores_and_fsync() {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut storage = StorageConfig {
            sync_writes: false,
            blocking_threads: 0,
            block_cache_mb: 256,
            memtable_mb: 64,
            cell_cache_mb: 64,
        };
        assert_eq!(storage.blocking_threads(), cores);
        storage.sync_writes = true;
        assert_eq!(storage.blocking_threads(), cores * SYNC_THREADS_PER_CORE);
        storage.blocking_threads = 3;
        assert_eq!(storage.blocking_threads(), 3);
    }

    #[test]
    fn bad_membership_settings_are_refused() {
        let mut config = Config::load(None).unwrap();
        config.membership.seeds = vec!["not-an-address".into()];
        assert!(config.validate().is_err());
        let mut config = Config::load(None).unwrap();
        config.membership.phi_threshold = f64::NAN;
        assert!(config.validate().is_err());
        let mut config = Config::load(None).unwrap();
        config.membership.probe_interval_ms = 0;
        assert!(config.validate().is_err());
    }

    #[test]
    fn bad_storage_sizes_are_refused() {
        let config = Config::load(None).unwrap();
        assert_eq!(config.storage.block_cache_mb, 256);
        assert_eq!(config.storage.memtable_mb, 64);
        assert_eq!(config.storage.cell_cache_mb, 64);
        for (cache, memtable, cells) in [
            (0, 64, 64),
            (256, 0, 64),
            (256, 4097, 64),
            (256, 64, 65_537),
        ] {
            let mut config = Config::load(None).unwrap();
            config.storage.block_cache_mb = cache;
            config.storage.memtable_mb = memtable;
            config.storage.cell_cache_mb = cells;
            assert!(config.validate().is_err(), "{cache} {memtable} {cells}");
        }
        let mut off = Config::load(None).unwrap();
        off.storage.cell_cache_mb = 0;
        assert!(off.validate().is_ok(), "0 turns the cell cache off");
    }

    #[test]
    fn a_wildcard_listen_address_is_refused() {
        for wildcard in ["0.0.0.0:7000", "[::]:7000"] {
            let mut config = Config::load(None).unwrap();
            config.node.listen = wildcard.parse().unwrap();
            let error = config.validate().unwrap_err().to_string();
            assert!(error.contains("node.listen"), "{error}");
            assert!(error.contains("specific IP"), "{error}");
        }
        let mut config = Config::load(None).unwrap();
        config.node.listen = "127.0.0.1:0".parse().unwrap();
        config.validate().unwrap();
    }

    #[test]
    fn embedded_default_is_valid() {
        let config = Config::load(None).unwrap();
        config.validate().unwrap();
        assert_eq!(config.node.listen, "127.0.0.11:7000".parse().unwrap());
        assert_eq!(config.limits.max_value_bytes, 16 * 1024 * 1024);
        assert_eq!(config.limits.max_siblings, 100);
        assert_eq!(config.cluster.partitions, 256);
    }

    #[test]
    fn rebalance_chunks_have_bounds() {
        let config = Config::load(None).unwrap();
        assert_eq!(config.rebalance.chunk_kb, 256);
        for chunk in [0, 16_385] {
            let mut config = Config::load(None).unwrap();
            config.rebalance.chunk_kb = chunk;
            assert!(config.validate().is_err(), "{chunk}");
        }
    }

    #[test]
    fn file_overrides_only_what_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(&path, "[limits]\nmax_value_bytes = 1024\n").unwrap();
        let config = Config::load(Some(&path)).unwrap();
        assert_eq!(config.limits.max_value_bytes, 1024);
        assert_eq!(config.limits.max_siblings, 100);
    }

    #[test]
    fn unknown_settings_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(&path, "[limits]\nmax_valu_bytes = 1024\n").unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("max_valu_bytes"), "{err}");

        let mut config = Config::load(None).unwrap();
        config.cluster.partitions = 100;
        assert!(config.validate().is_err());
        config.cluster.partitions = 256;
        config.node.id = "bad id".into();
        assert!(config.validate().is_err());
    }

    #[test]
    fn cluster_members_are_parsed_and_checked() {
        let mut config = Config::load(None).unwrap();
        config.node.id = "n1".into();
        config.cluster.nodes = vec!["n1@127.0.0.11:7000".into(), "n2@127.0.0.12:7000".into()];
        config.validate().unwrap();
        assert_eq!(config.cluster.members().unwrap()[1].id, "n2");
        for bad in [
            vec!["n1@127.0.0.11:7000", "n1@127.0.0.12:7000"],
            vec!["n1@127.0.0.11:7000", "n2@127.0.0.11:7000"],
            vec!["n1@127.0.0.11:7000", "n2"],
            vec!["n2@127.0.0.12:7000"],
            vec!["n1@127.0.0.99:7000"],
        ] {
            config.cluster.nodes = bad.iter().map(|s| s.to_string()).collect();
            assert!(config.validate().is_err(), "{bad:?}");
        }
    }
}
