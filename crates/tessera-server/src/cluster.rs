//! This node's view of the cluster: its members, the ring over them, and the coordinator that
//! runs every data request against the key's replicas.
//!
//! Membership is static for now (the `cluster.nodes` list, every node alive); the coordinator
//! only asks a `MembershipView` who is alive, so SWIM can replace it without touching the data
//! path.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tessera_cluster::handoff::{HandoffConfig, HintDelivery};
use tessera_cluster::{
    Coordinator, CoordinatorConfig, NodeId, Replica, StaticMembership, StorageRunner, Transport,
};
use tessera_ring::{PartitionId, PartitionScheme, Ring};
use tessera_storage::RocksEngine;

use crate::config::{Config, Member, TransportKind};
use crate::node::{NodeError, Store};
use crate::peer::{ClusterSecret, HttpTransport, StreamSettings, StreamTransport};

/// How a running node reaches its peers (`cluster.transport` picks the implementation).
pub type PeerTransport = Arc<dyn Transport>;

/// The coordinator of a running node.
pub type NodeCoordinator = Coordinator<PeerTransport, Arc<StaticMembership>, RocksEngine>;

/// The hint delivery of a running node.
pub type NodeHandoff = HintDelivery<PeerTransport, Arc<StaticMembership>, RocksEngine>;

/// Everything a node knows and uses about the other nodes.
pub struct ClusterState {
    pub secret: ClusterSecret,
    pub members: Vec<Member>,
    pub ring: Ring,
    pub membership: Arc<StaticMembership>,
    pub transport: PeerTransport,
    pub coordinator: Arc<NodeCoordinator>,
    pub replica: Arc<Replica<RocksEngine>>,
    pub handoff: Arc<NodeHandoff>,
}

impl ClusterState {
    /// Builds the ring from the configured members (this node alone when none are listed), and the
    /// coordinator and replica that serve data requests over it.
    pub fn new(
        config: &Config,
        node_id: &str,
        scheme: PartitionScheme,
        store: Arc<Store>,
    ) -> Result<Self, NodeError> {
        let mut members = config.cluster.members().map_err(NodeError::Config)?;
        if members.is_empty() {
            members.push(Member {
                id: node_id.to_string(),
                addr: config.node.listen,
            });
        }
        let ids: Vec<NodeId> = members.iter().map(|m| m.id.clone()).collect();
        let ring = Ring::new(scheme, ids.iter().cloned(), config.cluster.ring_replicas)
            .map_err(|e| NodeError::Ring(e.to_string()))?;
        let peers: HashMap<NodeId, _> = members.iter().map(|m| (m.id.clone(), m.addr)).collect();
        let secret = ClusterSecret::new(config.cluster.secret.clone());
        let source = source_ip(config.node.listen.ip());
        let transport: PeerTransport = match config.cluster.transport {
            TransportKind::Stream => Arc::new(StreamTransport::new(
                node_id.to_string(),
                source,
                secret.clone(),
                peers,
                StreamSettings {
                    max_message_bytes: config.limits.max_internal_message_bytes,
                    ..StreamSettings::default()
                },
            )),
            TransportKind::Http => Arc::new(
                HttpTransport::new(node_id.to_string(), source, secret.clone(), peers)
                    .map_err(|e| NodeError::Transport(e.to_string()))?,
            ),
        };
        let membership = Arc::new(StaticMembership::new(ids));
        let timeout = Duration::from_millis(config.requests.timeout_ms);
        let coordinator = Arc::new(Coordinator::new(
            node_id,
            store.clone(),
            transport.clone(),
            membership.clone(),
            CoordinatorConfig {
                timeout,
                forward_timeout: timeout * 2,
                storage: StorageRunner::Blocking,
            },
        ));
        let handoff = Arc::new(HintDelivery::new(
            node_id,
            store.clone(),
            transport.clone(),
            membership.clone(),
            HandoffConfig {
                hint_window: Duration::from_secs(config.hints.window_secs),
                max_hints_per_second: config.hints.delivery_per_second,
                ..HandoffConfig::default()
            },
        ));
        let replica = Arc::new(Replica::new(node_id, store, StorageRunner::Blocking));
        replica.set_coordinator(&coordinator);
        Ok(Self {
            secret,
            members,
            ring,
            membership,
            transport,
            coordinator,
            replica,
            handoff,
        })
    }

    /// The replicas of a partition for a table of replication `n`, in preference order.
    pub fn replicas(&self, partition: PartitionId, n: u32) -> Vec<NodeId> {
        self.ring.preference_list(partition, n as usize)
    }

    /// The nodes that stand in for down replicas of a partition (sloppy quorum), in ring order.
    pub fn fallbacks(&self, partition: PartitionId, n: u32) -> Vec<NodeId> {
        self.ring.fallbacks(partition, n as usize)
    }
}

/// Outgoing sockets leave from the address this node listens on, unless that is a wildcard.
pub fn source_ip(listen: IpAddr) -> Option<IpAddr> {
    (!listen.is_unspecified()).then_some(listen)
}
