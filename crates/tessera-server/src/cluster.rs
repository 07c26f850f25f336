//! This node's view of the cluster: who the members are and where, the ring over them, and the
//! coordinator that runs every data request against the key's replicas.
//!
//! - **Liveness** comes from SWIM and phi ([`Gossip`]): the coordinator only asks its
//!   `MembershipView` who is alive.
//! - **The ring** comes from the [`Roster`]: the static `cluster.nodes` list when one is given,
//!   otherwise every node that membership has shown, in the order they joined. It is held by the
//!   [`Topology`], which every placement question asks (the API's plan, the coordinator, and later
//!   streaming and anti-entropy).
//! - **Addresses** live in the [`Directory`], from `cluster.nodes` and then from membership.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tessera_cluster::handoff::{HandoffConfig, HintDelivery};
use tessera_cluster::transfer::TransferConfig;
use tessera_cluster::{
    Coordinator, CoordinatorConfig, NodeId, Replica, RowWriter, StorageRunner, Transport,
};
use tessera_cluster::{Topology, Transfers};
use tessera_membership::MemberId;
use tessera_ring::{PartitionScheme, Ring};
use tessera_storage::RocksEngine;
use tessera_worker::Runner;
use tokio::sync::Notify;

use crate::config::{Config, TransportKind};
use crate::gossip::events::EventQueue;
use crate::gossip::Gossip;
use crate::identity::NodeIdentity;
use crate::layout::{LayoutFailure, LayoutManager};
use crate::peer::{ClusterSecret, Directory, HttpTransport, StreamSettings, StreamTransport};
use crate::schema_sync::SchemaPushes;
use crate::storage::{Hints, Store};

/// How a running node reaches its peers (`cluster.transport` picks the implementation).
pub type PeerTransport = Arc<dyn Transport>;

/// The coordinator of a running node.
pub type NodeCoordinator = Coordinator<PeerTransport, Arc<Gossip>, RocksEngine>;

/// The hint delivery of a running node.
pub type NodeHandoff = HintDelivery<PeerTransport, Arc<Gossip>, RocksEngine>;

/// The partition transfers of a running node.
pub type NodeTransfers = Transfers<PeerTransport, RocksEngine>;

/// The anti-entropy of a running node.
pub type NodeAntiEntropy = tessera_cluster::AntiEntropy<PeerTransport, Arc<Gossip>, RocksEngine>;

/// A transport to the peers in `directory`, of the kind `cluster.transport` picks, whose sockets
/// leave from this node's address.
fn peer_transport(
    config: &Config,
    node_id: &str,
    secret: &ClusterSecret,
    directory: &Directory,
) -> Result<PeerTransport, ClusterError> {
    let source = source_ip(config.node.listen.ip());
    Ok(match config.cluster.transport {
        TransportKind::Stream => Arc::new(StreamTransport::new(
            node_id.to_string(),
            source,
            secret.clone(),
            directory.clone(),
            StreamSettings {
                max_message_bytes: config.limits.max_internal_message_bytes,
                ..StreamSettings::default()
            },
        )),
        TransportKind::Http => Arc::new(
            HttpTransport::new(
                node_id.to_string(),
                source,
                secret.clone(),
                directory.clone(),
            )
            .map_err(|e| ClusterError::Transport(e.to_string()))?,
        ),
    })
}

/// Why the cluster side of a node could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot build the ring: {0}")]
    Ring(#[from] tessera_ring::RingError),
    #[error("cannot set up the internal transport: {0}")]
    Transport(String),
    #[error("cannot set up membership: {0}")]
    Membership(#[from] tessera_membership::MembershipError),
    #[error("cannot start the group commit: {0}")]
    Workers(#[from] tessera_worker::RunnerError),
    #[error(transparent)]
    Storage(#[from] tessera_storage::StorageError),
    #[error("cannot load the layout: {0}")]
    Layout(#[from] LayoutFailure),
    #[error("cannot load the partition transfers: {0}")]
    Transfers(#[from] tessera_cluster::transfer::TransferError),
}

/// Answers peers' layout messages with the node's layout manager, off the async workers (an
/// acceptor persists before it answers).
struct NodeLayoutService(Arc<LayoutManager>);

impl tessera_cluster::LayoutService for NodeLayoutService {
    fn handle(
        &self,
        from: &NodeId,
        message: tessera_layout::LayoutMessage,
    ) -> tessera_cluster::BoxFuture<'static, Option<tessera_layout::LayoutMessage>> {
        let (manager, from) = (self.0.clone(), from.clone());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || manager.handle(&from, &message))
                .await
                .ok()
                .flatten()
        })
    }
}

/// Everything a node knows and uses about the other nodes.
pub struct ClusterState {
    pub(crate) secret: ClusterSecret,
    pub(crate) directory: Directory,
    pub(crate) gossip: Arc<Gossip>,
    pub(crate) transport: PeerTransport,
    pub(crate) coordinator: Arc<NodeCoordinator>,
    pub(crate) replica: Arc<Replica<RocksEngine>>,
    /// The node's group commit, shared by the coordinator, the replica and anti-entropy.
    pub(crate) writer: Arc<RowWriter<RocksEngine>>,
    pub(crate) handoff: Arc<NodeHandoff>,
    /// The layout in force: where every partition lives (kept by `layout`).
    pub(crate) topology: Arc<Topology>,
    /// The committed layout, this node's acceptor and move progress, the staged plan.
    pub(crate) layout: Arc<LayoutManager>,
    /// Answers peers' layout messages: held here because the replica links to it weakly.
    _layout_service: Arc<NodeLayoutService>,
    /// Wakes the `rebalance` worker when the layout or the progress changes.
    pub(crate) rebalance_nudge: Arc<Notify>,
    /// The partitions this node pulls during moves (the `transfers` worker runs them).
    pub(crate) transfers: NodeTransfers,
    /// What membership learned that needs the disk, for the `membership-events` worker.
    pub(crate) events: EventQueue,
    /// New tables, for the `schema-push` worker.
    pub(crate) schema_pushes: SchemaPushes,
    /// True when the first layout came from the fixed `cluster.nodes` list.
    static_ring: bool,
}

impl ClusterState {
    /// Builds the roster and ring, the membership, and the coordinator and replica that serve
    /// data requests over them.
    pub fn new(
        config: &Config,
        identity: &NodeIdentity,
        scheme: PartitionScheme,
        store: Arc<Store>,
        hints: Arc<Hints>,
        workers: &Runner,
    ) -> Result<Self, ClusterError> {
        let node_id = identity.node_id.as_str();
        let members = config.cluster.members()?;
        let static_ring = !members.is_empty();
        let layout = Arc::new(LayoutManager::open(config, node_id, scheme, store.clone())?);
        let topology = layout.topology().clone();

        let listen = config.node.listen;
        let directory = Directory::new(
            members
                .iter()
                .map(|m| (m.id.clone(), m.addr))
                .chain([(node_id.to_owned(), listen)]),
        );
        let mut seeds = config.membership.seeds.clone();
        seeds.extend(
            members
                .iter()
                .filter(|m| m.id != node_id)
                .map(|m| m.addr.to_string()),
        );
        // A restarted process must outrank its previous life: its start time does, as long as
        // the clock does not run backwards across the restart.
        let generation = crate::node::now_ms();
        let gossip = Gossip::new(
            MemberId::new(node_id, listen.to_string(), generation),
            config.membership.swim(),
            seeds,
        )?;
        let gossip = Arc::new(gossip);

        let secret = ClusterSecret::new(config.cluster.secret.clone());
        let transport = peer_transport(config, node_id, &secret, &directory)?;
        // Partition transfers travel on connections of their own, so that a chunk never queues
        // ahead of quorum traffic on the same link.
        let bulk = peer_transport(config, node_id, &secret, &directory)?;
        let transfers = Transfers::open(
            node_id,
            store.clone(),
            bulk,
            TransferConfig {
                max_concurrent: config.rebalance.max_concurrent as usize,
                chunk_bytes: config.rebalance.chunk_kb.saturating_mul(1024),
                // Merges run where the node's other writes run (see `runner` below).
                storage: if config.storage.sync_writes {
                    StorageRunner::PointReadsInline
                } else {
                    StorageRunner::InPlace
                },
                ..TransferConfig::default()
            },
        )?;
        let timeout = Duration::from_millis(config.requests.timeout_ms);
        // Writes that fsync wait on the disk: the pool lets many wait together and share each
        // fsync. Writes that do not are short, and run in place (see `StorageRunner`).
        let runner = if config.storage.sync_writes {
            StorageRunner::PointReadsInline
        } else {
            StorageRunner::InPlace
        };
        let writer = RowWriter::start(store.clone(), runner, workers)?;
        let coordinator = Arc::new(Coordinator::new(
            node_id,
            writer.clone(),
            hints.clone(),
            transport.clone(),
            gossip.clone(),
            CoordinatorConfig {
                timeout,
                forward_timeout: timeout * 2,
                storage: runner,
                background_tasks: config.background.max_tasks,
                background_bytes: config.background.max_mb << 20,
            },
        ));
        let handoff = Arc::new(HintDelivery::new(
            node_id,
            hints.clone(),
            transport.clone(),
            gossip.clone(),
            HandoffConfig {
                hint_window: Duration::from_secs(config.hints.window_secs),
                ..HandoffConfig::default()
            },
        ));
        let replica = Arc::new(Replica::new(node_id, writer.clone(), hints, runner));
        replica.set_coordinator(&coordinator);
        let layout_service = Arc::new(NodeLayoutService(layout.clone()));
        replica.set_layout_service(&layout_service);
        Ok(Self {
            secret,
            directory,
            gossip,
            transport,
            coordinator,
            replica,
            writer,
            handoff,
            events: EventQueue::default(),
            schema_pushes: SchemaPushes::default(),
            static_ring,
            rebalance_nudge: layout.nudge().clone(),
            transfers,
            topology,
            layout,
            _layout_service: layout_service,
        })
    }

    /// The ring of the layout held, once the node knows one.
    pub fn ring(&self) -> Option<Ring> {
        self.topology.ring()
    }

    /// Whether the first layout was the fixed `cluster.nodes` list (else: started by the first
    /// node and grown by commits).
    pub fn is_static(&self) -> bool {
        self.static_ring
    }

    /// Every other node with a known address.
    pub fn peers(&self, local: &str) -> Vec<(NodeId, SocketAddr)> {
        self.directory
            .all()
            .into_iter()
            .filter(|(node, _)| node != local)
            .collect()
    }
}

/// Outgoing sockets leave from the address this node listens on, unless that is a wildcard.
pub fn source_ip(listen: IpAddr) -> Option<IpAddr> {
    (!listen.is_unspecified()).then_some(listen)
}
