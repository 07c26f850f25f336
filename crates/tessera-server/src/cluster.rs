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
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tessera_cluster::handoff::{HandoffConfig, HintDelivery};
use tessera_cluster::transfer::{TransferConfig, Transfers};
use tessera_cluster::Topology;
use tessera_cluster::{
    Coordinator, CoordinatorConfig, NodeId, Replica, RowWriter, StorageRunner, Transport,
};
use tessera_membership::MemberId;
use tessera_ring::{PartitionScheme, Ring};
use tessera_storage::RocksEngine;
use tessera_worker::Runner;

use crate::config::{Config, TransportKind};
use crate::gossip::events::EventQueue;
use crate::gossip::Gossip;
use crate::identity::NodeIdentity;
use crate::peer::{ClusterSecret, Directory, HttpTransport, StreamSettings, StreamTransport};
use crate::roster::Roster;
use crate::schema_sync::SchemaPushes;
use crate::storage::{Hints, Store};

/// How a running node reaches its peers (`cluster.transport` picks the implementation).
pub type PeerTransport = Arc<dyn Transport>;

/// The coordinator of a running node.
pub type NodeCoordinator = Coordinator<PeerTransport, Arc<Gossip>, RocksEngine>;

/// The hint delivery of a running node.
pub type NodeHandoff = HintDelivery<PeerTransport, Arc<Gossip>, RocksEngine>;

/// The partitions a running node pulls from others (rebalancing).
pub type NodeTransfers = Transfers<PeerTransport, RocksEngine>;

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
    #[error("cannot load the transfers: {0}")]
    Transfers(#[from] tessera_cluster::transfer::TransferError),
}

/// Everything a node knows and uses about the other nodes.
pub struct ClusterState {
    pub(crate) secret: ClusterSecret,
    pub(crate) directory: Directory,
    pub(crate) gossip: Arc<Gossip>,
    pub(crate) transport: PeerTransport,
    pub(crate) coordinator: Arc<NodeCoordinator>,
    pub(crate) replica: Arc<Replica<RocksEngine>>,
    pub(crate) handoff: Arc<NodeHandoff>,
    /// The partitions this node pulls, over connections of their own (`transfer_transport`), so
    /// that a chunk never queues ahead of quorum traffic on the main ones.
    pub(crate) transfers: NodeTransfers,
    /// The rings in force: where every partition lives.
    pub(crate) topology: Topology,
    /// What membership learned that needs the disk, for the `membership-events` worker.
    pub(crate) events: EventQueue,
    /// New tables, for the `schema-push` worker.
    pub(crate) schema_pushes: SchemaPushes,
    /// True when the ring is the fixed `cluster.nodes` list.
    static_ring: bool,
    scheme: PartitionScheme,
    ring_replicas: u32,
    store: Arc<Store>,
    roster: Mutex<Roster>,
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
        let roster = if static_ring {
            let mut roster = Roster::default();
            for member in &members {
                roster.add(&member.id, 0);
            }
            roster
        } else {
            let mut roster = Roster::load(&store)?;
            if roster.add(node_id, identity.created_at_ms) {
                roster.save(&store)?;
            }
            roster
        };
        let ring = if static_ring {
            let ids = members.iter().map(|m| m.id.clone());
            Ring::new(scheme, ids, config.cluster.ring_replicas)
        } else {
            roster.ring(scheme, config.cluster.ring_replicas)
        }?;

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
        let source = source_ip(listen.ip());
        // Each instance keeps connections of its own (one stream per peer, or its own pool).
        let new_transport = || -> Result<PeerTransport, ClusterError> {
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
        };
        let transport = new_transport()?;
        let transfer_transport = new_transport()?;
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
        let transfers = Transfers::open(
            node_id,
            store.clone(),
            transfer_transport,
            TransferConfig {
                max_concurrent: config.rebalance.max_concurrent as usize,
                chunk_bytes: config.rebalance.chunk_kb.saturating_mul(1024),
                storage: runner,
                ..TransferConfig::default()
            },
        )?;
        let replica = Arc::new(Replica::new(node_id, writer, hints, runner));
        replica.set_coordinator(&coordinator);
        Ok(Self {
            secret,
            directory,
            gossip,
            transport,
            coordinator,
            replica,
            handoff,
            transfers,
            events: EventQueue::default(),
            schema_pushes: SchemaPushes::default(),
            static_ring,
            scheme,
            ring_replicas: config.cluster.ring_replicas,
            store,
            roster: Mutex::new(roster),
            topology: Topology::new(ring),
        })
    }

    /// The current ring.
    pub fn ring(&self) -> Arc<Ring> {
        self.topology.current()
    }

    /// Whether the ring is the fixed `cluster.nodes` list (else: discovered by membership).
    pub fn is_static(&self) -> bool {
        self.static_ring
    }

    /// Adds a node membership has shown to the roster (when the ring is discovered), persists
    /// the roster, and moves to the ring that includes it. Returns whether the node was new.
    /// Blocking: it writes `meta`.
    pub fn learn_node(&self, node: &str, created_at_ms: u64) -> Result<bool, ClusterError> {
        if self.static_ring {
            return Ok(false);
        }
        let mut roster = self.roster.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = roster.clone();
        if !next.add(node, created_at_ms) {
            return Ok(false);
        }
        let ring = next.ring(self.scheme, self.ring_replicas)?;
        next.save(&self.store)?;
        *roster = next;
        self.topology.set_current(ring);
        Ok(true)
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
