//! Deterministic simulation of rebalancing under network faults (issue 11): ring changes
//! interleaved with cut links, isolated nodes, message loss and delays keep
//! - **no acknowledged write lost**: once faults heal and the last move completes, every write
//!   acknowledged by W replicas is held by W of the final replicas and readable at R through every
//!   member (its value, or a value whose version descends it);
//! - **reads descend earlier writes**: with R + W > N, a read that began after such a write was
//!   acknowledged returns a cell whose version descends that write's (siblings allowed).
//!
//! A write acknowledged with hints (sloppy quorum) is promised less, and checked for less: one
//! copy on the final replicas, unless a node crashed for good since it was written.
//!
//! What runs is the real thing wherever the product has it: coordinators, replicas, hint delivery
//! (with redirects for nodes that left), the topology's placements, the transfer engine, and the
//! move decisions of `tessera_cluster::rebalance` (the ones the server's `rebalance` worker
//! performs). The harness stands in for what lives in the server: it commits layouts as an
//! operator would (a compare-and-set on the epoch, without Paxos) and announces them, spreads
//! layouts and progress by a pull gossip over the simulated network (so that cuts, loss and
//! delays make nodes learn epochs and progress at different times), and keeps a shared membership
//! view (nodes marked down a moment after they are cut off).
//!
//! A run: 3 to 5 nodes, 2 to 4 changes (add, remove, remove --dead, replace, replace a dead node;
//! at most 6 nodes in the ring, at least 3), each committed once the previous move is complete,
//! while clients write and read through every node that is not dead (a node removed alive
//! included), and faults come in storms with calm spells between them. Hot keys are read and
//! written; cold keys are mostly written, so that read repair leaves replicas that missed a write
//! behind and only the transfers can carry such writes to the new owners. Some runs keep hints,
//! some let them expire within seconds, some never deliver them; some throttle transfers.
//!
//! Every seed replays: all randomness draws from it and time is virtual (a current-thread runtime
//! with paused time); only hint expiry can differ, as hints are stamped with the wall clock. Each
//! run draws fresh seeds besides the named ones; `TESSERA_SIM_SEEDS=n` runs `n` fresh seeds,
//! `TESSERA_SIM_SEED=s` replays one, `TESSERA_SIM_VERBOSE=1` logs every node's view every 10 s
//! into the report of a failure. A failure prints its seed, what happened, and every node's view.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tessera_cluster::handoff_redirect::HintRoutes;
use tessera_cluster::rebalance::{MoveDriver, MoveStep, TableReplicas};
use tessera_cluster::transfer::{TransferConfig, Transfers};
use tessera_cluster::{
    BoxFuture, ClientWrite, CoordinatorConfig, CutMode, HandoffConfig, HintDelivery,
    HintDeliveryWorker, LayoutService, LinkConfig, NodeId, Replica, Request, Response, SimNetwork,
    SimTransport, StaticMembership, StorageRunner, Topology, Transport, WriteRequest,
};
use tessera_layout::{Change, Layout, LayoutMessage, NodeProgress};
use tessera_ring::{token_of, PartitionScheme, Ring};
use tessera_storage::{Cell, CellStore, HintStore, MemoryEngine, RowKey, StoreOptions};
use tessera_worker::{Runner, WorkerOptions};
use tokio::time::Instant;

/// Replicas per key, and the quorums: R + W > N.
const N: u32 = 3;
const W: u32 = 2;
const R: u32 = 2;
const TABLE: u32 = 1;
const TABLES: [TableReplicas; 1] = [TableReplicas {
    id: TABLE,
    replication: N,
}];
/// Partitions of the ring (few, so that moves are quick and every node has several).
const PARTITIONS: u64 = 32;
/// Keys the clients write and read.
const KEYS: usize = 100;
/// Keys the clients mostly write and seldom read (after `KEYS`): read repair hardly ever mends
/// a replica one of them missed, so many sit on exactly W replicas when a move starts, and only
/// the transfers keep them on W replicas of the new ring; the few reads of them during moves
/// are the ones that find a replica set missing a write.
const COLD_KEYS: usize = 300;
const COLUMN: &[u8] = b"c";
/// Every node name a run may use; membership knows them all from the start.
const MAX_NODES: usize = 8;

/// The coordinators' timeout; a forwarded write gets twice as long at its coordinator.
const TIMEOUT: Duration = Duration::from_secs(1);
/// How long after adopting an epoch a node acks it (as the server: three request timeouts).
const DRAIN: Duration = Duration::from_secs(3);
/// How long a node waits after a move completed before dropping what it no longer replicates.
const GRACE: Duration = Duration::from_secs(4);
/// How often each node's move driver looks.
const DRIVER_TICK: Duration = Duration::from_millis(100);

use common::{SimCoordinator, SimDelivery};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn name(i: usize) -> NodeId {
    format!("n{i}")
}

/// What a node knows of layouts and publishes of its own move progress: the harness's stand-in
/// for the server's layout manager.
struct NodeLayout {
    me: NodeId,
    topology: Arc<Topology>,
    own: Mutex<NodeProgress>,
    adopted_at: Mutex<Instant>,
}

impl NodeLayout {
    fn new(me: &NodeId, layout: Option<Layout>) -> Self {
        let topology = Arc::new(Topology::new(layout.clone()));
        topology.set_replication_factors(vec![N]);
        // A first layout has nothing to move: its nodes write under it from the start.
        let own = NodeProgress {
            acked: layout.as_ref().map_or(0, Layout::epoch),
            ..NodeProgress::default()
        };
        topology.record_progress(me, &own);
        Self {
            me: me.clone(),
            topology,
            own: Mutex::new(own),
            adopted_at: Mutex::new(Instant::now()),
        }
    }

    /// Takes `layout` if it is later than the one held.
    fn adopt(&self, layout: Layout) -> bool {
        let adopted = self.topology.adopt(layout);
        if adopted {
            *lock(&self.adopted_at) = Instant::now();
        }
        adopted
    }

    fn publish(&self, step: &MoveStep) {
        let mut own = lock(&self.own);
        step.apply(&mut own);
        self.topology.record_progress(&self.me, &own);
    }

    fn epoch(&self) -> u64 {
        self.topology.layout().map_or(0, |l| l.epoch())
    }
}

impl LayoutService for NodeLayout {
    fn handle(
        &self,
        _from: &NodeId,
        message: LayoutMessage,
    ) -> BoxFuture<'static, Option<LayoutMessage>> {
        let answer = match message {
            LayoutMessage::Fetch => Some(LayoutMessage::Current {
                layout: self.topology.layout(),
            }),
            LayoutMessage::Commit { layout } => {
                let epoch = layout.epoch();
                self.adopt(layout);
                Some(LayoutMessage::Committed { epoch })
            }
            _ => None,
        };
        Box::pin(async move { answer })
    }
}

/// Hint routes over a node's topology, as the server's (one table here).
struct Routes(Arc<Topology>);

impl HintRoutes for Routes {
    fn has_left(&self, target: &NodeId) -> bool {
        self.0.state().has_left(target)
    }

    fn owners_of(&self, row: &RowKey) -> Option<Vec<NodeId>> {
        self.0.state().owners(row.partition, N)
    }
}

struct SimNode {
    id: NodeId,
    store: Arc<CellStore<MemoryEngine>>,
    hints: Arc<HintStore<MemoryEngine>>,
    coordinator: Arc<SimCoordinator>,
    layout: Arc<NodeLayout>,
    transfers: Transfers<SimTransport, MemoryEngine>,
    driver: Mutex<MoveDriver>,
    /// Runs the transfer and hint delivery workers.
    runner: Runner,
    /// Crashed for good (removed as dead): its loops stop, the network refuses it.
    dead: std::sync::atomic::AtomicBool,
    _replica: Arc<Replica<MemoryEngine>>,
    _delivery: Arc<SimDelivery>,
}

impl SimNode {
    fn start(
        net: &SimNetwork,
        membership: &Arc<StaticMembership>,
        index: usize,
        layout: Option<Layout>,
        seed: u64,
        settings: &Settings,
    ) -> Arc<Self> {
        let hint_window = settings.hint_window;
        let id = name(index);
        let engine = Arc::new(MemoryEngine::new());
        let store = Arc::new(CellStore::new(
            engine.clone(),
            StoreOptions::new(index as u64 + 1),
        ));
        let hints = Arc::new(HintStore::new(engine));
        let (replica, coordinator) = common::serve(
            net,
            membership,
            &id,
            &store,
            &hints,
            CoordinatorConfig {
                timeout: TIMEOUT,
                forward_timeout: TIMEOUT * 2,
                storage: StorageRunner::Inline,
                ..CoordinatorConfig::default()
            },
        );
        let node_layout = Arc::new(NodeLayout::new(&id, layout));
        replica.set_layout_service(&node_layout);
        // Hint expiry on virtual time: hints are stamped with the wall clock, which hardly moves
        // in a simulation, so the clock is the wall clock at the start plus virtual time.
        let (wall, start) = (tessera_cluster::system_now_ms(), Instant::now());
        let clock: tessera_cluster::Clock =
            Arc::new(move || wall + u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX));
        let delivery = Arc::new(
            HintDelivery::new(
                id.clone(),
                hints.clone(),
                net.transport(id.clone()),
                membership.clone(),
                HandoffConfig {
                    // Slow enough that a write missing from a replica often stays missing through
                    // a move (what transfers must then carry), fast enough to settle.
                    tick: Duration::from_secs(3),
                    call_timeout: TIMEOUT,
                    backoff_base: Duration::from_secs(1),
                    backoff_cap: Duration::from_secs(8),
                    storage: StorageRunner::Inline,
                    rng_seed: Some(seed ^ (index as u64 + 1)),
                    hint_window: hint_window.unwrap_or(Duration::from_secs(3600)),
                    ..HandoffConfig::default()
                },
            )
            .with_clock(clock),
        );
        delivery.set_routes(Arc::new(Routes(node_layout.topology.clone())));
        let transfers = Transfers::open(
            id.clone(),
            store.clone(),
            net.transport(id.clone()),
            TransferConfig {
                max_concurrent: 2,
                // Small chunks, so a partition takes several and writes land between them.
                chunk_bytes: 512,
                chunk_cells: 4,
                call_timeout: TIMEOUT,
                backoff_base: Duration::from_millis(200),
                backoff_cap: Duration::from_secs(2),
                storage: StorageRunner::Inline,
            },
        )
        .expect("a memory store opens");
        let runner = Runner::new();
        runner
            .spawn_with(
                transfers.worker().expect("the first worker"),
                WorkerOptions {
                    max_rate: settings.transfer_rate,
                    ..WorkerOptions::default()
                },
            )
            .expect("a new runner");
        if hint_window.is_some() {
            runner
                .spawn(HintDeliveryWorker(delivery.clone()))
                .expect("a new runner");
        }
        Arc::new(Self {
            driver: Mutex::new(MoveDriver::new(id.clone(), 0)),
            id,
            store,
            hints,
            coordinator,
            layout: node_layout,
            transfers,
            runner,
            dead: Default::default(),
            _replica: replica,
            _delivery: delivery,
        })
    }

    fn is_dead(&self) -> bool {
        self.dead.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// One look of the move driver: publishes what is due, drops leftovers once due.
    fn drive(&self) {
        let Some(layout) = self.layout.topology.layout() else {
            return;
        };
        let state = self.layout.topology.state();
        let own = lock(&self.layout.own).clone();
        let drained = lock(&self.layout.adopted_at).elapsed() >= DRAIN;
        let mut driver = lock(&self.driver);
        let advance = driver.advance(&layout, &state, &own, &TABLES, drained, &self.transfers);
        if let Some(step) = advance.step {
            self.layout.publish(&step);
            return;
        }
        if let Some(doomed) = driver.cleanup_due(&layout, &state, &TABLES, Instant::now(), GRACE) {
            for (table, partition) in doomed {
                self.store
                    .drop_partition(table, partition)
                    .expect("memory store");
            }
            self.transfers.forget_epochs_before(layout.epoch());
            driver.cleaned_up(layout.epoch());
        }
    }

    fn hints_pending(&self) -> u64 {
        self.hints
            .targets()
            .expect("memory store")
            .iter()
            .map(|t| t.count)
            .sum()
    }
}

/// One client operation, in virtual time since the start.
#[derive(Clone, Debug)]
struct Op {
    key: usize,
    start: Duration,
    end: Duration,
    coordinator: NodeId,
    epoch: u64,
    kind: OpKind,
}

#[derive(Clone, Debug)]
enum OpKind {
    /// An acknowledged write: the cell as its coordinator stored it, and whether hints counted.
    Write {
        value: String,
        cell: Cell,
        hinted: u32,
    },
    /// A successful read.
    Read { cell: Option<Cell> },
}

/// What differs between runs besides the faults.
#[derive(Clone, Debug)]
struct Settings {
    /// How long hints live; `None`: hints are never delivered. Some runs let hints expire within
    /// seconds or keep them, so that replicas a write missed stay behind and moves must carry
    /// what the others hold: nothing but W real acknowledgements may be counted on.
    hint_window: Option<Duration>,
    /// The transfers' byte throttle (`rebalance.max_mb_per_s`): slow moves leave reads and
    /// writes longer in each step.
    transfer_rate: Option<u64>,
}

/// Everything a run shares between its tasks.
struct World {
    seed: u64,
    t0: Instant,
    net: SimNetwork,
    membership: Arc<StaticMembership>,
    nodes: Mutex<BTreeMap<NodeId, Arc<SimNode>>>,
    /// The latest committed layout (the operator's compare-and-set is against it).
    committed: Mutex<Layout>,
    /// The changes committed, in order.
    changes: Mutex<Vec<String>>,
    /// When nodes crashed for good.
    crashes: Mutex<Vec<Duration>>,
    /// Every committed layout, for failure reports.
    layouts: Mutex<Vec<Layout>>,
    rng: Mutex<StdRng>,
    history: Mutex<Vec<Op>>,
    /// What happened, for a failure's report.
    events: Mutex<Vec<String>>,
    /// Nodes clients send requests to: every node that was in a ring and is not dead.
    serving: Mutex<BTreeSet<NodeId>>,
    stop_clients: std::sync::atomic::AtomicBool,
    stop_faults: std::sync::atomic::AtomicBool,
    scheme: PartitionScheme,
    settings: Settings,
}

impl World {
    fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    fn log(&self, what: String) {
        let line = format!("{:>9.3}s {what}", self.now().as_secs_f64());
        lock(&self.events).push(line);
    }

    fn rand<T>(&self, f: impl FnOnce(&mut StdRng) -> T) -> T {
        f(&mut lock(&self.rng))
    }

    fn node(&self, id: &str) -> Option<Arc<SimNode>> {
        lock(&self.nodes).get(id).cloned()
    }

    fn live_nodes(&self) -> Vec<Arc<SimNode>> {
        lock(&self.nodes)
            .values()
            .filter(|n| !n.is_dead())
            .cloned()
            .collect()
    }

    fn row(&self, key: usize) -> RowKey {
        let bytes = format!("key-{key}").into_bytes();
        let token = token_of(&bytes);
        RowKey::new(TABLE, self.scheme.partition_of(token), token, bytes)
    }

    /// Every node's view of the move and what it still has to do, for failure reports.
    fn states(&self) -> String {
        let nodes: Vec<Arc<SimNode>> = lock(&self.nodes).values().cloned().collect();
        let lines: Vec<String> = nodes
            .iter()
            .map(|n| {
                let state = n.layout.topology.state();
                let pending: Vec<String> = n
                    .transfers
                    .report()
                    .transfers
                    .into_iter()
                    .filter(|t| t.state.is_pending())
                    .map(|t| {
                        format!(
                            "p{} from {:?} {:?} chunks {} retry {:?} {:?}",
                            t.partition,
                            t.sources
                                .iter()
                                .map(|s| (&s.node, s.finished, s.keys, s.consecutive_failures))
                                .collect::<Vec<_>>(),
                            t.state,
                            t.chunks,
                            t.retry_in_ms,
                            t.last_error
                        )
                    })
                    .collect();
                format!(
                    "{}{}: epoch {} complete {} own {:?} cleaned {} hints {} known {:?} pending transfers {pending:?}",
                    n.id,
                    if n.is_dead() { " (dead)" } else { "" },
                    n.layout.epoch(),
                    state.complete(),
                    lock(&n.layout.own),
                    lock(&n.driver).cleaned(),
                    n.hints_pending(),
                    (0..MAX_NODES)
                        .filter_map(|i| state.progress.of(&name(i)).map(|p| format!("{}:{}/{}/{}", name(i), p.acked, p.synced_epoch, p.reading)))
                        .collect::<Vec<_>>(),
                )
            })
            .collect();
        lines.join("\n")
    }

    /// Ends every fault: links whole and perfect (dead nodes stay cut off), every live node up.
    fn heal(&self) {
        self.net.heal_all();
        self.net.clear_links();
        self.net.set_default_link(LinkConfig::PERFECT);
        self.net.set_cut_mode(CutMode::Refuse);
        for node in lock(&self.nodes).values() {
            if node.is_dead() {
                self.net.isolate(&node.id);
            } else {
                self.membership.mark_up(&node.id);
            }
        }
    }

    fn stopped(&self, flag: &std::sync::atomic::AtomicBool) -> bool {
        flag.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A node's gossip: every few hundred ms it pulls a random peer's layout through the network
/// (so cuts, loss and delays apply) and, piggybacked on the answer as SWIM does with member
/// metadata, what that peer knows of every node's progress.
async fn gossip(world: Arc<World>, me: Arc<SimNode>) {
    let transport = world.net.transport(me.id.clone());
    loop {
        let pause = world.rand(|r| r.random_range(100..600));
        tokio::time::sleep(Duration::from_millis(pause)).await;
        if me.is_dead() {
            return;
        }
        let peers: Vec<NodeId> = world
            .live_nodes()
            .into_iter()
            .map(|n| n.id.clone())
            .filter(|id| *id != me.id)
            .collect();
        if peers.is_empty() {
            continue;
        }
        let peer = peers[world.rand(|r| r.random_range(0..peers.len()))].clone();
        let call = transport.call(
            &peer,
            Request::Layout {
                message: LayoutMessage::Fetch,
            },
        );
        let Ok(Ok(Response::Layout {
            message: Some(LayoutMessage::Current { layout }),
        })) = tokio::time::timeout(TIMEOUT, call).await
        else {
            continue;
        };
        if let Some(layout) = layout {
            let epoch = layout.epoch();
            if me.layout.adopt(layout) {
                world.log(format!("{} learns epoch {epoch} from {peer}", me.id));
            }
        }
        if let Some(peer) = world.node(&peer) {
            let known = peer.layout.topology.state();
            for i in 0..MAX_NODES {
                if let Some(progress) = known.progress.of(&name(i)) {
                    me.layout.topology.record_progress(&name(i), progress);
                }
            }
        }
    }
}

/// A node's move driver, looking every [`DRIVER_TICK`].
async fn drive(me: Arc<SimNode>) {
    loop {
        tokio::time::sleep(DRIVER_TICK).await;
        if me.is_dead() {
            return;
        }
        me.drive();
    }
}

/// A client: reads and writes random keys through random serving nodes, each placed by that
/// node's own topology as the API does, and records what it saw.
async fn client(world: Arc<World>, id: usize) {
    let mut sequence = 0u64;
    while !world.stopped(&world.stop_clients) {
        let pause = world.rand(|r| r.random_range(5..60));
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let serving: Vec<NodeId> = lock(&world.serving).iter().cloned().collect();
        if serving.is_empty() {
            continue;
        }
        let (via, key, write) = world.rand(|r| {
            let via = serving[r.random_range(0..serving.len())].clone();
            let dice = r.random_range(0..100);
            if dice < 25 {
                (via, KEYS + r.random_range(0..COLD_KEYS), true)
            } else if dice < 30 {
                (via, KEYS + r.random_range(0..COLD_KEYS), false)
            } else {
                (via, r.random_range(0..KEYS), r.random_bool(0.5))
            }
        });
        let Some(node) = world.node(&via) else {
            continue;
        };
        let row = world.row(key);
        let placement = node.layout.topology.placement(row.partition, N);
        if placement.replicas.len() < N as usize {
            continue;
        }
        let start = world.now();
        let epoch = placement.epoch;
        let record = |kind| {
            lock(&world.history).push(Op {
                key,
                start,
                end: world.now(),
                coordinator: via.clone(),
                epoch,
                kind,
            })
        };
        if write {
            sequence += 1;
            let value = format!("c{id}-{sequence}");
            let request = WriteRequest {
                row,
                writes: vec![ClientWrite {
                    column: COLUMN.to_vec(),
                    value: Some(value.clone().into_bytes()),
                    context: None,
                }],
                required: W,
                replicas: placement.replicas,
                fallbacks: placement.fallbacks,
                strict: false,
                also: placement.also,
            };
            let result = tokio::time::timeout(TIMEOUT * 4, node.coordinator.write(request)).await;
            if let Ok(Ok(outcome)) = result {
                let cell = outcome
                    .cells
                    .into_iter()
                    .next()
                    .expect("one column written")
                    .1;
                record(OpKind::Write {
                    value,
                    cell,
                    hinted: outcome.hinted,
                });
            }
        } else {
            let read = node
                .coordinator
                .read_cell(row, COLUMN.to_vec(), R, placement.replicas);
            if let Ok(Ok(outcome)) = tokio::time::timeout(TIMEOUT * 4, read).await {
                record(OpKind::Read {
                    cell: outcome.value,
                });
            }
        }
    }
}

/// The faults: every second or so, cuts a link or isolates a node for a few seconds, and changes
/// how lossy and slow links are and what cut links do. Nodes cut off are marked down a moment
/// later (the failure detector) and up when healed.
async fn faults(world: Arc<World>) {
    // Storms of faults, with calm spells between them in which moves catch up.
    let mut calm_at =
        Instant::now() + world.rand(|r| Duration::from_millis(r.random_range(5000..15_000)));
    while !world.stopped(&world.stop_faults) {
        let pause = world.rand(|r| r.random_range(300..1500));
        tokio::time::sleep(Duration::from_millis(pause)).await;
        if Instant::now() >= calm_at {
            let (calm, storm) = world.rand(|r| {
                (
                    Duration::from_millis(r.random_range(2000..8000)),
                    Duration::from_millis(r.random_range(5000..15_000)),
                )
            });
            world.heal();
            world.log(format!("calm for {calm:?}"));
            tokio::time::sleep(calm).await;
            calm_at = Instant::now() + storm;
            continue;
        }
        let live: Vec<NodeId> = world.live_nodes().iter().map(|n| n.id.clone()).collect();
        if live.len() < 2 {
            continue;
        }
        let (kind, a, b, lasts) = world.rand(|r| {
            let a = live[r.random_range(0..live.len())].clone();
            let mut b = live[r.random_range(0..live.len())].clone();
            if a == b {
                b = live[(live.iter().position(|x| *x == a).unwrap() + 1) % live.len()].clone();
            }
            (
                r.random_range(0..5u8),
                a,
                b,
                Duration::from_millis(r.random_range(500..4000)),
            )
        });
        match kind {
            0 => {
                world.log(format!("cut {a} - {b} for {lasts:?}"));
                world.net.cut(&a, &b);
                let w = world.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(lasts).await;
                    w.net.heal(&a, &b);
                });
            }
            1 => {
                world.log(format!("isolate {a} for {lasts:?}"));
                world.net.isolate(&a);
                let w = world.clone();
                tokio::spawn(async move {
                    let detect = Duration::from_millis(700);
                    if lasts > detect {
                        tokio::time::sleep(detect).await;
                        w.membership.mark_down(&a);
                        tokio::time::sleep(lasts - detect).await;
                    } else {
                        tokio::time::sleep(lasts).await;
                    }
                    if !w.node(&a).is_some_and(|n| n.is_dead()) {
                        w.net.rejoin(&a);
                        w.membership.mark_up(&a);
                    }
                });
            }
            2 => {
                let (loss, max_delay) =
                    world.rand(|r| (r.random_range(0.0..0.15), r.random_range(0..30u64)));
                world.log(format!("links: loss {loss:.3}, delay up to {max_delay} ms"));
                world.net.set_default_link(LinkConfig::new(
                    loss,
                    Duration::ZERO,
                    Duration::from_millis(max_delay),
                ));
            }
            3 => {
                // A lossy link: a replica behind it misses writes without being down.
                let loss = world.rand(|r| r.random_range(0.3..0.9));
                world.log(format!("link {a} - {b} loses {loss:.2} for {lasts:?}"));
                world.net.set_link(
                    &a,
                    &b,
                    LinkConfig::new(loss, Duration::ZERO, Duration::from_millis(5)),
                );
                let w = world.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(lasts).await;
                    // Back to the default link (this ends any other lossy link too).
                    w.net.clear_links();
                });
            }
            _ => {
                let silent = world.rand(|r| r.random_bool(0.5));
                world.log(format!(
                    "cut links {}",
                    if silent { "drop" } else { "refuse" }
                ));
                world.net.set_cut_mode(if silent {
                    CutMode::Silent
                } else {
                    CutMode::Refuse
                });
            }
        }
    }
}

/// Waits until `ready` holds, polling every 100 ms of virtual time, at most `within`.
async fn until(within: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if ready() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ready()
}

/// Commits `change` as an operator on a live ring member would: planned against that node's
/// layout (which must be the latest, its move complete or, for the removal of a dead node,
/// complete but for that node: `Progress::allows`, as the server's plan), then announced to the nodes of both
/// rings (announcements may be lost: gossip spreads the layout anyway). Returns the layout, or
/// why it could not.
async fn commit(world: &Arc<World>, change: Change) -> Result<Layout, String> {
    let latest = lock(&world.committed).clone();
    let mut candidates: Vec<Arc<SimNode>> = world
        .live_nodes()
        .into_iter()
        .filter(|n| latest.ring().contains(&n.id))
        .collect();
    world.rand(|r| {
        use rand::seq::SliceRandom;
        candidates.shuffle(r)
    });
    // The operator waits (up to a minute) for some node to know the latest epoch done enough.
    let mut operator = None;
    let found = until(Duration::from_secs(60), || {
        operator = candidates
            .iter()
            .find(|n| {
                let state = n.layout.topology.state();
                state.layout.as_ref().map(Layout::epoch) == Some(latest.epoch())
                    && state.progress.allows(&latest, &change)
            })
            .cloned();
        operator.is_some()
    })
    .await;
    let Some(operator) = operator.filter(|_| found) else {
        return Err(format!(
            "no node knows epoch {} complete (or complete enough for {change}) within a minute",
            latest.epoch()
        ));
    };
    let state = operator.layout.topology.state();
    let held = state.layout.clone().expect("a layout");
    let allowed = state.progress.allows(&held, &change);
    let plan = tessera_layout::plan(&held, allowed, change.clone())
        .map_err(|e| format!("plan {change}: {e}"))?;
    let next = plan.next;
    {
        let mut committed = lock(&world.committed);
        if committed.epoch() != held.epoch() {
            return Err(format!("stale: {} vs {}", held.epoch(), committed.epoch()));
        }
        *committed = next.clone();
        lock(&world.layouts).push(next.clone());
    }
    operator.layout.adopt(next.clone());
    lock(&world.changes).push(change.to_string());
    world.log(format!(
        "{} commits epoch {}: {change}",
        operator.id,
        next.epoch()
    ));
    let transport = world.net.transport(operator.id.clone());
    for node in next.participants() {
        if node == operator.id {
            continue;
        }
        let call = transport.call(
            &node,
            Request::Layout {
                message: LayoutMessage::Commit {
                    layout: next.clone(),
                },
            },
        );
        tokio::spawn(async move {
            let _ = tokio::time::timeout(TIMEOUT, call).await;
        });
    }
    Ok(next)
}

/// Crashes `id` for good: its loops and workers stop, the network refuses it, membership marks
/// it down.
async fn crash(world: &Arc<World>, id: &str) {
    let node = world.node(id).expect("a node");
    node.dead.store(true, std::sync::atomic::Ordering::SeqCst);
    lock(&world.serving).remove(id);
    world.net.isolate(id);
    world.net.unregister(id);
    world.membership.mark_down(id);
    node.runner.shutdown(Duration::from_secs(1)).await;
    lock(&world.crashes).push(world.now());
    world.log(format!("{id} crashes"));
}

/// Starts node `index` with no layout (it learns one by gossip), with its loops.
fn boot(world: &Arc<World>, index: usize) -> Arc<SimNode> {
    let node = SimNode::start(
        &world.net,
        &world.membership,
        index,
        None,
        world.seed.wrapping_add(index as u64),
        &world.settings,
    );
    spawn_loops(world, &node);
    lock(&world.nodes).insert(node.id.clone(), node.clone());
    node
}

fn spawn_loops(world: &Arc<World>, node: &Arc<SimNode>) {
    tokio::spawn(gossip(world.clone(), node.clone()));
    tokio::spawn(drive(node.clone()));
}

/// The operator's script: a few ring changes, each once the previous one is complete.
async fn operator(world: Arc<World>, changes: usize) -> Result<(), String> {
    for _ in 0..changes {
        let pause = world.rand(|r| r.random_range(1000..4000));
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let latest = lock(&world.committed).clone();
        let members: Vec<NodeId> = latest.ring().nodes().cloned().collect();
        let unused = (0..MAX_NODES).find(|i| world.node(&name(*i)).is_none());
        let size = members.len();
        // 0 add, 1 remove, 2 remove --dead, 3 replace, 4 replace a dead node.
        let mut kinds = Vec::new();
        if size < 6 && unused.is_some() {
            kinds.push(0);
        }
        if size > 4 {
            kinds.extend([1, 2]);
        }
        if unused.is_some() {
            kinds.extend([3, 4]);
        }
        let (kind, victim) = world.rand(|r| {
            (
                kinds[r.random_range(0..kinds.len())],
                members[r.random_range(0..members.len())].clone(),
            )
        });
        let change = match kind {
            0 => {
                let node = boot(&world, unused.expect("checked"));
                Change::Add {
                    node: node.id.clone(),
                }
            }
            1 => Change::Remove { node: victim },
            2 | 4 => {
                // The node dies first; the cluster runs without it for a while (a dead node
                // blocks any move, so the operator's next change removes it).
                if !until(Duration::from_secs(60), || {
                    world.node(&victim).is_some_and(|n| {
                        let state = n.layout.topology.state();
                        state.complete()
                            && state.layout.as_ref().map(Layout::epoch) == Some(latest.epoch())
                    })
                })
                .await
                {
                    return Err(format!(
                        "{victim} never saw epoch {} complete",
                        latest.epoch()
                    ));
                }
                crash(&world, &victim).await;
                let pause = world.rand(|r| r.random_range(500..3000));
                tokio::time::sleep(Duration::from_millis(pause)).await;
                if kind == 2 {
                    Change::RemoveDead { node: victim }
                } else {
                    let node = boot(&world, unused.expect("checked"));
                    Change::Replace {
                        old: victim,
                        new: node.id.clone(),
                        dead: true,
                    }
                }
            }
            _ => {
                let node = boot(&world, unused.expect("checked"));
                Change::Replace {
                    old: victim,
                    new: node.id.clone(),
                    dead: false,
                }
            }
        };
        let next = commit(&world, change.clone()).await?;
        // Clients go to the new ring's nodes too. A node removed alive keeps taking requests
        // (a load balancer may still list it): it coordinates by the layouts it learns.
        lock(&world.serving).extend(next.ring().nodes().cloned());
        // Wait for the move to complete somewhere before the next change is planned.
        let epoch = next.epoch();
        let done = until(Duration::from_secs(120), || {
            world.live_nodes().iter().any(|n| {
                let state = n.layout.topology.state();
                state.layout.as_ref().map(Layout::epoch) == Some(epoch) && state.complete()
            })
        })
        .await;
        if !done {
            return Err(format!(
                "the move to epoch {epoch} ({change}) did not complete"
            ));
        }
        world.log(format!("epoch {epoch} complete"));
    }
    Ok(())
}

/// Outcome of one seed.
struct Run {
    changes: Vec<String>,
    /// Transfers completed, and chunk requests or merges that failed, over every node.
    transfers: (u64, u64),
    writes: usize,
    reads: usize,
    epochs: u64,
    hinted: usize,
    stats: tessera_cluster::SimStats,
}

/// Runs one seed to the end and checks both properties; `Err` describes the first violation.
fn run(seed: u64) -> Result<Run, String> {
    common::runtime().block_on(async move {
        let mut rng = StdRng::seed_from_u64(seed);
        let start_nodes = rng.random_range(3..=5usize);
        let changes = rng.random_range(2..=4usize);
        let clients = rng.random_range(3..=5usize);
        let settings = Settings {
            hint_window: match rng.random_range(0..3) {
                0 => Some(Duration::from_millis(rng.random_range(1000..10_000))),
                1 => Some(Duration::from_secs(3600)),
                _ => None,
            },
            transfer_rate: rng.random_bool(0.5).then(|| rng.random_range(2048..32_768)),
        };
        let scheme = PartitionScheme::new(PARTITIONS).expect("a power of two");
        let names: Vec<NodeId> = (0..start_nodes).map(name).collect();
        let first = Layout::first(Ring::new(scheme, names, N).expect("a ring"));
        let net = SimNetwork::new(rng.random());
        let world = Arc::new(World {
            seed,
            t0: Instant::now(),
            net,
            membership: Arc::new(StaticMembership::new((0..MAX_NODES).map(name))),
            nodes: Mutex::new(BTreeMap::new()),
            committed: Mutex::new(first.clone()),
            layouts: Mutex::new(vec![first.clone()]),
            crashes: Mutex::new(Vec::new()),
            changes: Mutex::new(Vec::new()),
            rng: Mutex::new(rng),
            history: Mutex::new(Vec::new()),
            events: Mutex::new(Vec::new()),
            serving: Mutex::new((0..start_nodes).map(name).collect()),
            stop_clients: Default::default(),
            stop_faults: Default::default(),
            scheme,
            settings: settings.clone(),
        });
        for i in 0..start_nodes {
            let node = SimNode::start(
                &world.net,
                &world.membership,
                i,
                Some(first.clone()),
                seed.wrapping_add(i as u64),
                &world.settings,
            );
            spawn_loops(&world, &node);
            lock(&world.nodes).insert(node.id.clone(), node);
        }
        world.log(format!(
            "{start_nodes} nodes, {changes} changes, {clients} clients, {settings:?}"
        ));
        let client_tasks: Vec<_> = (0..clients)
            .map(|i| tokio::spawn(client(world.clone(), i)))
            .collect();
        let fault_task = tokio::spawn(faults(world.clone()));
        if std::env::var_os("TESSERA_SIM_VERBOSE").is_some() {
            let w = world.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    let states = w.states();
                    w.log(states);
                }
            });
        }
        let script = operator(world.clone(), changes).await;
        // Heal: no more faults, every link whole (dead nodes stay cut off), everyone up.
        world
            .stop_faults
            .store(true, std::sync::atomic::Ordering::SeqCst);
        fault_task.await.expect("the fault task");
        tokio::time::sleep(Duration::from_secs(5)).await;
        world.heal();
        world.log("healed".to_owned());
        world
            .stop_clients
            .store(true, std::sync::atomic::Ordering::SeqCst);
        for task in client_tasks {
            task.await.expect("a client");
        }
        let report = |why: String| {
            let events = lock(&world.events).join("\n");
            format!(
                "seed {seed}: {why}\nevents:\n{events}\nnodes:\n{}",
                world.states()
            )
        };
        script.map_err(&report)?;
        // The last move completes everywhere, leftovers are dropped, hints are delivered.
        let latest = lock(&world.committed).clone();
        let settled = until(Duration::from_secs(300), || {
            world.live_nodes().iter().all(|n| {
                let state = n.layout.topology.state();
                state.layout.as_ref().map(Layout::epoch) == Some(latest.epoch())
                    && state.complete()
                    && lock(&n.driver).cleaned() >= latest.epoch()
                    && (world.settings.hint_window.is_none() || n.hints_pending() == 0)
                    && n.coordinator.stats().snapshot().background_in_flight == 0
            })
        })
        .await;
        if !settled {
            return Err(report(format!(
                "the cluster did not settle on epoch {}:\n{}",
                latest.epoch(),
                world.states()
            )));
        }
        let history = lock(&world.history).clone();
        check_reads(&history).map_err(&report)?;
        check_final(&world, &history, &latest)
            .await
            .map_err(&report)?;
        let writes: Vec<&Op> = history
            .iter()
            .filter(|op| matches!(op.kind, OpKind::Write { .. }))
            .collect();
        let changes = lock(&world.changes).clone();
        let transfers = lock(&world.nodes)
            .values()
            .fold((0, 0), |(done, failed), n| {
                let stats = n.transfers.stats();
                (
                    done + stats.completed.load(std::sync::atomic::Ordering::Relaxed),
                    failed + stats.failures.load(std::sync::atomic::Ordering::Relaxed),
                )
            });
        Ok(Run {
            writes: writes.len(),
            reads: history.len() - writes.len(),
            hinted: writes
                .iter()
                .filter(|op| matches!(op.kind, OpKind::Write { hinted, .. } if hinted > 0))
                .count(),
            epochs: latest.epoch(),
            stats: world.net.stats(),
            changes,
            transfers,
        })
    })
}

fn values(cell: Option<&Cell>) -> Vec<String> {
    common::live(cell)
}

/// Property 2: every read returns a cell descending each write (acknowledged by W real
/// replicas, no hints counted) of its key that was acknowledged before the read began.
fn check_reads(history: &[Op]) -> Result<(), String> {
    let mut writes: BTreeMap<usize, Vec<&Op>> = BTreeMap::new();
    for op in history {
        if matches!(op.kind, OpKind::Write { hinted: 0, .. }) {
            writes.entry(op.key).or_default().push(op);
        }
    }
    for read in history {
        let OpKind::Read { cell } = &read.kind else {
            continue;
        };
        for write in writes.get(&read.key).into_iter().flatten() {
            let OpKind::Write {
                value,
                cell: written,
                ..
            } = &write.kind
            else {
                continue;
            };
            if write.end >= read.start {
                continue;
            }
            if !cell.as_ref().is_some_and(|c| c.descends(written)) {
                return Err(format!(
                    "a read of key-{} through {} (epoch {}) at {:?}..{:?} returned {:?}, missing the write of {value} through {} (epoch {}) acknowledged at {:?}",
                    read.key,
                    read.coordinator,
                    read.epoch,
                    read.start,
                    read.end,
                    values(cell.as_ref()),
                    write.coordinator,
                    write.epoch,
                    write.end
                ));
            }
        }
    }
    Ok(())
}

/// Which nodes hold `cell` (or a descendant), and the row's replicas at every epoch.
fn whereabouts(world: &World, row: &RowKey, cell: &Cell) -> String {
    let holders: Vec<String> = lock(&world.nodes)
        .values()
        .filter(|n| {
            n.store
                .read_cell(row, COLUMN)
                .expect("memory store")
                .is_some_and(|held| held.descends(cell))
        })
        .map(|n| format!("{}{}", n.id, if n.is_dead() { " (dead)" } else { "" }))
        .collect();
    let epochs: Vec<String> = lock(&world.layouts)
        .iter()
        .map(|l| {
            format!(
                "epoch {}: {:?}",
                l.epoch(),
                l.ring().preference_list(row.partition, N as usize)
            )
        })
        .collect();
    format!("held by {holders:?}; replicas {}", epochs.join(", "))
}

/// Property 1, once healed and settled: every acknowledged write is held by W of the final
/// replicas, then readable at R through every live member. A write that counted hints is
/// only required on one final replica (see below): sloppy quorum promises no more.
async fn check_final(world: &Arc<World>, history: &[Op], latest: &Layout) -> Result<(), String> {
    for op in history {
        let OpKind::Write {
            value,
            cell,
            hinted,
        } = &op.kind
        else {
            continue;
        };
        let row = world.row(op.key);
        let replicas = latest.ring().preference_list(row.partition, N as usize);
        let holders: Vec<&NodeId> = replicas
            .iter()
            .filter(|r| {
                world.node(r).is_some_and(|n| {
                    n.store
                        .read_cell(&row, COLUMN)
                        .expect("memory store")
                        .is_some_and(|held| held.descends(cell))
                })
            })
            .collect();
        // A write acknowledged with hints is on fewer than W replicas until its hints are
        // delivered, and hints may expire: it must survive on one replica at least, unless a
        // node crashed for good since (its one copy may have been there).
        let needed = if *hinted == 0 {
            W as usize
        } else if lock(&world.crashes).iter().all(|at| *at < op.start) {
            1
        } else {
            0
        };
        if holders.len() < needed {
            return Err(format!(
                "the write of {value} to key-{} through {} (epoch {}, {hinted} hinted) acknowledged at {:?} is held by {holders:?} of the final replicas {replicas:?} (partition {}), {needed} needed\n{}",
                op.key, op.coordinator, op.epoch, op.end, row.partition, whereabouts(world, &row, cell)
            ));
        }
    }
    let members: Vec<Arc<SimNode>> = world
        .live_nodes()
        .into_iter()
        .filter(|n| latest.ring().contains(&n.id))
        .collect();
    let mut last: BTreeMap<usize, Vec<&Op>> = BTreeMap::new();
    for op in history {
        // A quorum read finds a write that W replicas acknowledged (hints do not count).
        if matches!(op.kind, OpKind::Write { hinted: 0, .. }) {
            last.entry(op.key).or_default().push(op);
        }
    }
    for (key, writes) in last {
        for node in &members {
            let row = world.row(key);
            let placement = node.layout.topology.placement(row.partition, N);
            let outcome = node
                .coordinator
                .read_cell(row, COLUMN.to_vec(), R, placement.replicas)
                .await
                .map_err(|e| format!("final read of key-{key} through {}: {e}", node.id))?;
            for write in &writes {
                let OpKind::Write { value, cell, .. } = &write.kind else {
                    continue;
                };
                if !outcome.value.as_ref().is_some_and(|c| c.descends(cell)) {
                    return Err(format!(
                        "after healing, a read of key-{key} through {} returned {:?}, missing the write of {value} through {} (epoch {}, {:?}) acknowledged at {:?}\n{}",
                        node.id,
                        values(outcome.value.as_ref()),
                        write.coordinator,
                        write.epoch,
                        write.kind,
                        write.end,
                        whereabouts(world, &world.row(key), cell)
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Seeds replayed on every run besides the fresh ones: together they take every kind of change
/// through the faults. A seed that finds a problem is added here, with what it found.
const NAMED_SEEDS: &[u64] = &[
    // remove --dead n2, then three dead nodes replaced in turn; 804 writes counted hints.
    1,
    // Regression: n1 crashed right after it read from the new ring of epoch 2, before any node
    // heard it did; the move could never complete, and `remove --dead n1` was refused forever
    // (fixed by `Progress::allows`).
    3080, // remove n3 (decommission), add n5, add n6.
    4,    // replace n1 by n4 (alive), add n5, remove n3.
    9,
];

fn seeds() -> Vec<u64> {
    if let Some(seed) = std::env::var("TESSERA_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return vec![seed];
    }
    let fresh: usize = std::env::var("TESSERA_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let mut seeds = NAMED_SEEDS.to_vec();
    let mut entropy = StdRng::from_os_rng();
    seeds.extend((0..fresh).map(|_| entropy.random::<u64>()));
    seeds
}

#[test]
fn ring_changes_under_faults_lose_no_acknowledged_write() {
    for seed in seeds() {
        let started = std::time::Instant::now();
        match std::panic::catch_unwind(|| run(seed)) {
            Ok(Ok(run)) => eprintln!(
                "seed {seed}: ok: {:?}; {} writes ({} hinted), {} reads, epoch {}, {} transfers ({} failed steps), {:?}, {:?} of wall time",
                run.changes,
                run.writes,
                run.hinted,
                run.reads,
                run.epochs,
                run.transfers.0,
                run.transfers.1,
                run.stats,
                started.elapsed()
            ),
            Ok(Err(why)) => panic!("{why}\nreplay with TESSERA_SIM_SEED={seed}"),
            Err(panic) => {
                eprintln!("seed {seed} panicked; replay with TESSERA_SIM_SEED={seed}");
                std::panic::resume_unwind(panic);
            }
        }
    }
}
