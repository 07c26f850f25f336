//! A simulated cluster for integration tests: `n` nodes over a [`SimNetwork`],
//! each with an in-memory store, a replica handler and a coordinator, all
//! storage calls inline so that a paused-time run replays from its seed.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use tessera_cluster::{
    ClientWrite, Coordinator, CoordinatorConfig, HandoffConfig, HintDelivery, NodeId, Replica,
    RowWriter, SimNetwork, SimTransport, StaticMembership, StorageRunner, WriteRequest,
};
use tessera_storage::{
    Actor, Cell, CellStore, Context, HintStore, MemoryEngine, RowKey, StoreOptions,
};

pub type SimCoordinator = Coordinator<SimTransport, Arc<StaticMembership>, MemoryEngine>;
pub type SimDelivery = HintDelivery<SimTransport, Arc<StaticMembership>, MemoryEngine>;

/// Replicas per key.
pub const N: usize = 3;

pub struct Node {
    pub id: NodeId,
    pub actor: Actor,
    pub store: Arc<CellStore<MemoryEngine>>,
    pub hints: Arc<HintStore<MemoryEngine>>,
    pub replica: Arc<Replica<MemoryEngine>>,
    pub coordinator: Arc<SimCoordinator>,
    /// This node's hint delivery; tests run it by hand or spawn its loop.
    pub delivery: Arc<SimDelivery>,
}

pub struct Cluster {
    pub net: SimNetwork,
    pub membership: Arc<StaticMembership>,
    pub nodes: Vec<Node>,
}

pub struct Options {
    pub max_siblings: usize,
    pub timeout: Duration,
    pub forward_timeout: Duration,
    pub max_hints_per_target: u64,
    /// Hint delivery settings (storage and seed are set per node).
    pub handoff: HandoffConfig,
    /// The coordinators' background budget.
    pub background_tasks: u32,
    pub background_bytes: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_siblings: 64,
            timeout: Duration::from_secs(2),
            forward_timeout: Duration::from_secs(5),
            max_hints_per_target: tessera_storage::DEFAULT_MAX_HINTS_PER_TARGET,
            handoff: HandoffConfig {
                call_timeout: Duration::from_secs(2),
                ..HandoffConfig::default()
            },
            background_tasks: CoordinatorConfig::default().background_tasks,
            background_bytes: CoordinatorConfig::default().background_bytes,
        }
    }
}

pub fn node_name(i: usize) -> NodeId {
    format!("n{i}")
}

/// A row of table 1 whose token is a hash of its key.
pub fn row(key: &str) -> RowKey {
    // FNV-1a: stable and good enough to spread a handful of test keys.
    let token = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    RowKey::new(1, (token >> 56) as u16, token, key.as_bytes().to_vec())
}

/// Node `id`'s replica and coordinator over `store` and `hints` (storage calls inline, writes
/// and merges sharing one group-commit writer), linked to each other, the replica serving `id`
/// on `net`.
pub fn serve(
    net: &SimNetwork,
    membership: &Arc<StaticMembership>,
    id: &NodeId,
    store: &Arc<CellStore<MemoryEngine>>,
    hints: &Arc<HintStore<MemoryEngine>>,
    config: CoordinatorConfig,
) -> (Arc<Replica<MemoryEngine>>, Arc<SimCoordinator>) {
    let writer = RowWriter::inline(store.clone());
    let replica = Arc::new(Replica::new(
        id.clone(),
        writer.clone(),
        hints.clone(),
        StorageRunner::Inline,
    ));
    let coordinator = Arc::new(Coordinator::new(
        id.clone(),
        writer,
        hints.clone(),
        net.transport(id.clone()),
        membership.clone(),
        config,
    ));
    replica.set_coordinator(&coordinator);
    net.register(id.clone(), replica.clone());
    (replica, coordinator)
}

/// Stops every runner, each within `deadline`.
pub async fn stop_workers(runners: &[tessera_worker::Runner], deadline: Duration) {
    for runner in runners {
        runner.shutdown(deadline).await;
    }
}

impl Cluster {
    /// Starts every node's hint delivery as a worker, each node on a runner of its own (as real
    /// nodes have: worker names are unique per node).
    pub fn start_delivery(&self) -> Vec<tessera_worker::Runner> {
        self.nodes
            .iter()
            .map(|node| {
                let runner = tessera_worker::Runner::new();
                runner
                    .spawn(tessera_cluster::HintDeliveryWorker(node.delivery.clone()))
                    .expect("a new runner has no workers");
                runner
            })
            .collect()
    }

    pub fn new(nodes: usize, seed: u64) -> Self {
        Self::with_options(nodes, seed, Options::default())
    }

    pub fn with_options(nodes: usize, seed: u64, options: Options) -> Self {
        let net = SimNetwork::new(seed);
        let names: Vec<NodeId> = (0..nodes).map(node_name).collect();
        let membership = Arc::new(StaticMembership::new(names.clone()));
        let nodes = names
            .into_iter()
            .enumerate()
            .map(|(i, id)| {
                let actor = i as Actor + 1;
                let mut store_options = StoreOptions::new(actor);
                store_options.max_siblings = options.max_siblings;
                let engine = Arc::new(MemoryEngine::new());
                let store = Arc::new(CellStore::new(engine.clone(), store_options));
                let hints = Arc::new(
                    HintStore::new(engine).with_max_per_target(options.max_hints_per_target),
                );
                let (replica, coordinator) = serve(
                    &net,
                    &membership,
                    &id,
                    &store,
                    &hints,
                    CoordinatorConfig {
                        timeout: options.timeout,
                        forward_timeout: options.forward_timeout,
                        storage: StorageRunner::Inline,
                        background_tasks: options.background_tasks,
                        background_bytes: options.background_bytes,
                    },
                );
                let delivery = Arc::new(HintDelivery::new(
                    id.clone(),
                    hints.clone(),
                    net.transport(id.clone()),
                    membership.clone(),
                    HandoffConfig {
                        storage: StorageRunner::Inline,
                        rng_seed: Some(seed.wrapping_mul(31).wrapping_add(i as u64)),
                        ..options.handoff.clone()
                    },
                ));
                Node {
                    id,
                    actor,
                    store,
                    hints,
                    replica,
                    coordinator,
                    delivery,
                }
            })
            .collect();
        Self {
            net,
            membership,
            nodes,
        }
    }

    pub fn node(&self, id: &str) -> &Node {
        self.nodes.iter().find(|n| n.id == id).expect("known node")
    }

    pub fn actor_of(&self, id: &str) -> Actor {
        self.node(id).actor
    }

    /// The preference list of `row`: N consecutive nodes from its token.
    pub fn replicas_of(&self, row: &RowKey) -> Vec<NodeId> {
        let n = self.nodes.len();
        let start = (row.token % n as u64) as usize;
        (0..N.min(n))
            .map(|i| self.nodes[(start + i) % n].id.clone())
            .collect()
    }

    /// The nodes after the preference list, in ring order: the fallbacks.
    pub fn fallbacks_of(&self, row: &RowKey) -> Vec<NodeId> {
        let n = self.nodes.len();
        let start = (row.token % n as u64) as usize;
        (N.min(n)..n)
            .map(|i| self.nodes[(start + i) % n].id.clone())
            .collect()
    }

    /// Hints stored on `node`, over every target.
    pub fn hints_on(&self, node: &str) -> u64 {
        self.node(node)
            .hints
            .targets()
            .expect("memory store")
            .iter()
            .map(|t| t.count)
            .sum()
    }

    /// Hints stored anywhere in the cluster.
    pub fn hints_total(&self) -> u64 {
        self.nodes.iter().map(|n| self.hints_on(&n.id)).sum()
    }

    /// Some node that is not a replica of `row` (needs more than N nodes).
    pub fn non_replica_of(&self, row: &RowKey) -> NodeId {
        let replicas = self.replicas_of(row);
        self.nodes
            .iter()
            .map(|n| n.id.clone())
            .find(|id| !replicas.contains(id))
            .expect("more nodes than replicas")
    }

    /// Waits (in virtual time) until no coordinator has background work left.
    pub async fn settle(&self) {
        for _ in 0..12_000 {
            if self
                .nodes
                .iter()
                .all(|n| n.coordinator.stats().snapshot().background_in_flight == 0)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("background work did not finish within 120 virtual seconds");
    }

    /// What `node` stores for one cell.
    pub fn stored(&self, node: &str, row: &RowKey, column: &[u8]) -> Option<Cell> {
        self.node(node)
            .store
            .read_cell(row, column)
            .expect("memory store read")
    }
}

pub fn set(
    row: &RowKey,
    column: &str,
    value: &str,
    required: u32,
    replicas: Vec<NodeId>,
) -> WriteRequest {
    write(row, column, Some(value), None, required, replicas)
}

pub fn write(
    row: &RowKey,
    column: &str,
    value: Option<&str>,
    context: Option<Context>,
    required: u32,
    replicas: Vec<NodeId>,
) -> WriteRequest {
    WriteRequest {
        row: row.clone(),
        writes: vec![ClientWrite {
            column: column.as_bytes().to_vec(),
            value: value.map(|v| v.as_bytes().to_vec()),
            context,
        }],
        required,
        replicas,
        fallbacks: Vec::new(),
        strict: false,
        also: Vec::new(),
    }
}

/// `request` with the ring's fallbacks for its row: sloppy quorum on.
pub fn sloppy(cluster: &Cluster, mut request: WriteRequest) -> WriteRequest {
    request.fallbacks = cluster.fallbacks_of(&request.row);
    request
}

/// The live values of a cell, sorted, as strings.
pub fn live(cell: Option<&Cell>) -> Vec<String> {
    let mut out: Vec<String> = cell
        .map(|c| {
            c.values()
                .into_iter()
                .filter_map(|v| v.data.as_ref())
                .map(|d| String::from_utf8_lossy(d).into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// A current-thread runtime with paused time: deterministic and fast.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime")
}
