//! Test harness: in-memory replicas and a driver that runs one exchange between two of them,
//! over a perfect channel or over a seeded queue that drops, duplicates and reorders messages.
//!
//! A [`Replica`] plays the storage's part: it keeps its tree by deltas on every write and answers
//! scans through [`ScanRequest::token_ranges`], as a range scan of the data column family would.
//! The driver plays the cluster's part: it routes messages, creates a responder per new exchange,
//! answers scans, fires timeouts when nothing else can happen, and applies repairs as they come
//! (pull, push, and pull-merge-push with a commutative merge standing in for DVV sync).

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use tessera_merkle::{
    Action, CellDigest, CellId, ExchangeConfig, ExchangeId, ExchangeReport, ExchangeState,
    ExchangeStats, Initiator, MerkleError, MerkleTree, Message, PartitionId, Responder,
    ScanRequest, Token, TreeShape,
};

/// One replica of one (table, partition).
#[derive(Debug, Clone)]
pub struct Replica {
    pub shape: TreeShape,
    pub partition: PartitionId,
    pub cells: BTreeMap<CellId, Vec<u8>>,
    /// Kept by deltas, never rebuilt.
    pub tree: MerkleTree,
}

impl Replica {
    pub fn new(shape: TreeShape, partition: PartitionId) -> Self {
        Self {
            shape,
            partition,
            cells: BTreeMap::new(),
            tree: MerkleTree::new(shape, partition).unwrap(),
        }
    }

    fn digest(id: &CellId, bytes: &[u8]) -> tessera_merkle::Digest {
        tessera_merkle::cell_digest(&id.key, &id.column, bytes)
    }

    pub fn put(&mut self, id: CellId, bytes: Vec<u8>) {
        let old = self.cells.get(&id).map(|b| Self::digest(&id, b));
        let new = Some(Self::digest(&id, &bytes));
        self.tree.update(id.token, old, new).unwrap();
        self.cells.insert(id, bytes);
    }

    pub fn remove(&mut self, id: &CellId) {
        if let Some(bytes) = self.cells.remove(id) {
            let old = Some(Self::digest(id, &bytes));
            self.tree.update(id.token, old, None).unwrap();
        }
    }

    pub fn rebuilt(&self) -> MerkleTree {
        MerkleTree::from_cells(
            self.shape,
            self.partition,
            self.cells
                .iter()
                .map(|(id, bytes)| (id.token, Self::digest(id, bytes))),
        )
        .unwrap()
    }

    /// The scan contract: cells of the requested segments' token ranges, after `after`, in
    /// order, stopping after `limit` cells or at the cell that reaches the byte budget.
    pub fn scan(&self, request: &ScanRequest) -> Vec<CellDigest> {
        let mut out = Vec::new();
        let mut bytes_so_far = 0;
        for (start, end) in request.token_ranges() {
            let from = CellId::new(start, Vec::new(), Vec::new());
            for (id, bytes) in self.cells.range(from..) {
                if id.token > end {
                    break;
                }
                if request.after.as_ref().is_some_and(|after| id <= after) {
                    continue;
                }
                let entry = CellDigest::new(id.clone(), Self::digest(id, bytes));
                bytes_so_far += entry.page_bytes();
                out.push(entry);
                if out.len() == request.limit as usize
                    || bytes_so_far >= u64::from(request.max_bytes)
                {
                    return out;
                }
            }
        }
        out
    }
}

/// The merge both sides apply to a diverged cell: commutative, associative and idempotent, like
/// DVV sync, so both replicas end with the same bytes.
pub fn merge(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.max(b).to_vec()
}

/// Cells whose bytes differ between the two replicas (present on one side only, or different).
pub fn differing_cells(a: &Replica, b: &Replica) -> BTreeSet<CellId> {
    a.cells
        .keys()
        .chain(b.cells.keys())
        .filter(|id| a.cells.get(*id) != b.cells.get(*id))
        .cloned()
        .collect()
}

/// Faults of the channel between the two replicas.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    pub seed: u64,
    /// Per mille of messages dropped.
    pub drop: u64,
    /// Per mille of messages delivered twice.
    pub duplicate: u64,
    /// Deliver a random queued event instead of the oldest.
    pub reorder: bool,
    /// Per mille of steps at which the initiator's timer fires early, while messages are in flight.
    pub early_timeout: u64,
}

/// SplitMix64: a tiny seeded generator, so a failing seed replays exactly.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn per_mille(&mut self, p: u64) -> bool {
        self.below(1000) < p
    }
}

#[derive(Debug, Clone)]
enum Event {
    ToInitiator(Message),
    ToResponder(Message),
    InitiatorScan(ScanRequest),
    ResponderScan(ExchangeId, ScanRequest),
}

impl Event {
    fn is_message(&self) -> bool {
        matches!(self, Event::ToInitiator(_) | Event::ToResponder(_))
    }
}

/// How one run ended.
#[derive(Debug)]
pub struct Run {
    pub state: ExchangeState,
    pub report: Option<ExchangeReport>,
    pub initiator: ExchangeStats,
    pub responder: Option<ExchangeStats>,
    /// Every cell a repair named, once.
    pub repaired: BTreeSet<CellId>,
    pub steps: u64,
}

/// A driver for exchanges between `local` (the initiator's replica) and `remote`.
pub struct Driver<'a> {
    pub local: &'a mut Replica,
    pub remote: &'a mut Replica,
    pub config: ExchangeConfig,
    /// The responder's limits, which may be stricter than the initiator's.
    pub responder_config: ExchangeConfig,
    pub table: u32,
    queue: VecDeque<Event>,
    responders: BTreeMap<u64, Responder>,
    rng: Rng,
    faults: Option<Faults>,
    repaired: BTreeSet<CellId>,
}

impl<'a> Driver<'a> {
    pub fn new(
        local: &'a mut Replica,
        remote: &'a mut Replica,
        config: ExchangeConfig,
        faults: Option<Faults>,
    ) -> Self {
        Self {
            local,
            remote,
            config,
            responder_config: config,
            table: 7,
            queue: VecDeque::new(),
            responders: BTreeMap::new(),
            rng: Rng::new(faults.map_or(0, |f| f.seed)),
            faults,
            repaired: BTreeSet::new(),
        }
    }

    pub fn start(&mut self, session: u64) -> Initiator {
        let exchange = ExchangeId {
            table: self.table,
            partition: self.local.partition,
            session,
        };
        let (initiator, actions) =
            Initiator::start(exchange, self.local.tree.clone(), self.config).unwrap();
        self.initiator_actions(actions);
        initiator
    }

    /// Runs `initiator` until it is over and nothing is in flight, at most `max_steps` events.
    /// `interrupt` is called before each step and may abandon the initiator.
    pub fn run(&mut self, initiator: &mut Initiator, max_steps: u64) -> Run {
        self.run_with(initiator, max_steps, |_, _| false)
    }

    pub fn run_with(
        &mut self,
        initiator: &mut Initiator,
        max_steps: u64,
        mut interrupt: impl FnMut(u64, &mut Initiator) -> bool,
    ) -> Run {
        let mut report = None;
        let mut steps = 0;
        while steps < max_steps {
            steps += 1;
            if interrupt(steps, initiator) {
                let actions = initiator.abandon();
                report = self.initiator_actions(actions).or(report);
                break;
            }
            if initiator.is_over() && self.queue.is_empty() {
                break;
            }
            let early = self
                .faults
                .is_some_and(|f| self.rng.per_mille(f.early_timeout));
            if self.queue.is_empty() || early {
                let actions = initiator.on_timeout();
                report = self.initiator_actions(actions).or(report);
                if self.queue.is_empty() && !initiator.awaits_reply() {
                    // Nothing in flight and nothing awaited: the run is stuck.
                    break;
                }
                continue;
            }
            let index = match self.faults {
                Some(f) if f.reorder => self.rng.below(self.queue.len() as u64) as usize,
                _ => 0,
            };
            let Some(event) = self.queue.remove(index) else {
                break;
            };
            if event.is_message() {
                if let Some(f) = self.faults {
                    if self.rng.per_mille(f.drop) {
                        continue;
                    }
                    if self.rng.per_mille(f.duplicate) {
                        let at = self.rng.below(self.queue.len() as u64 + 1) as usize;
                        self.queue.insert(at, event.clone());
                    }
                }
            }
            match event {
                Event::ToInitiator(msg) => {
                    let actions = initiator.on_message(&msg);
                    report = self.initiator_actions(actions).or(report);
                }
                Event::InitiatorScan(request) => {
                    let cells = self.local.scan(&request);
                    let actions = initiator.on_scan(&request, cells);
                    report = self.initiator_actions(actions).or(report);
                }
                Event::ToResponder(msg) => self.deliver_to_responder(msg),
                Event::ResponderScan(exchange, request) => {
                    let cells = self.remote.scan(&request);
                    if let Some(responder) = self.responders.get_mut(&exchange.session) {
                        let actions = responder.on_scan(&request, cells);
                        self.responder_actions(exchange, actions);
                    }
                }
            }
        }
        Run {
            state: initiator.state().clone(),
            report,
            initiator: initiator.stats(),
            responder: self
                .responders
                .get(&initiator.exchange().session)
                .map(|r| r.stats()),
            repaired: std::mem::take(&mut self.repaired),
            steps,
        }
    }

    /// The cluster's routing rule: a new responder, with a fresh tree snapshot, for the first
    /// message of a new exchange; later messages go to the responder of their exchange.
    fn deliver_to_responder(&mut self, msg: Message) {
        let session = msg.exchange.session;
        if !self.responders.contains_key(&session) {
            if !msg.starts_exchange() {
                return;
            }
            let responder =
                Responder::new(self.table, self.remote.tree.clone(), self.responder_config)
                    .unwrap();
            self.responders.insert(session, responder);
        }
        let Some(responder) = self.responders.get_mut(&session) else {
            return;
        };
        let actions = responder.on_message(&msg);
        self.responder_actions(msg.exchange, actions);
    }

    fn responder_actions(&mut self, exchange: ExchangeId, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send(msg) => self.queue.push_back(Event::ToInitiator(msg)),
                Action::Scan(request) => self
                    .queue
                    .push_back(Event::ResponderScan(exchange, request)),
                Action::Repair(_) => panic!("a responder never repairs"),
                Action::Finished(_) | Action::Failed(_) => {}
            }
        }
    }

    /// Carries out the initiator's actions; returns its report if it finished.
    fn initiator_actions(&mut self, actions: Vec<Action>) -> Option<ExchangeReport> {
        let mut report = None;
        for action in actions {
            match action {
                Action::Send(msg) => self.queue.push_back(Event::ToResponder(msg)),
                Action::Scan(request) => self.queue.push_back(Event::InitiatorScan(request)),
                Action::Repair(diff) => {
                    for id in &diff.pull {
                        let bytes = self.remote.cells[id].clone();
                        self.local.put(id.clone(), bytes);
                    }
                    for id in &diff.push {
                        let bytes = self.local.cells[id].clone();
                        self.remote.put(id.clone(), bytes);
                    }
                    for id in &diff.diverged {
                        let merged = merge(&self.local.cells[id], &self.remote.cells[id]);
                        self.local.put(id.clone(), merged.clone());
                        self.remote.put(id.clone(), merged);
                    }
                    for id in diff.pull.into_iter().chain(diff.push).chain(diff.diverged) {
                        assert!(self.repaired.insert(id.clone()), "{id:?} repaired twice");
                    }
                }
                Action::Finished(r) => report = Some(r),
                Action::Failed(_) => {}
            }
        }
        report
    }
}

/// Runs one exchange over a perfect channel and checks the outcome: both replicas end equal,
/// every tree kept by deltas equals its rebuild, and exactly the differing cells were repaired.
pub fn exchange_and_check(
    local: &mut Replica,
    remote: &mut Replica,
    config: ExchangeConfig,
    responder_config: ExchangeConfig,
) -> Run {
    let before = differing_cells(local, remote);
    let mut driver = Driver::new(local, remote, config, None);
    driver.responder_config = responder_config;
    let mut initiator = driver.start(1);
    let run = driver.run(&mut initiator, 1_000_000);
    assert_eq!(run.state, ExchangeState::Finished, "{run:?}");
    assert_eq!(run.repaired, before, "repairs are exactly the differences");
    assert_converged(local, remote);
    run
}

/// Both replicas hold the same cells and trees, and each kept tree equals its rebuild.
pub fn assert_converged(local: &Replica, remote: &Replica) {
    assert_eq!(local.cells, remote.cells);
    assert_eq!(local.tree, local.rebuilt());
    assert_eq!(remote.tree, remote.rebuilt());
    assert_eq!(local.tree, remote.tree);
}

/// The first token of `partition`.
pub fn partition_start(shape: &TreeShape, partition: PartitionId) -> Token {
    shape.partition_range(partition).unwrap().0
}

/// An error the lossy runs may end with besides success.
pub fn is_loss_failure(error: &MerkleError) -> bool {
    matches!(error, MerkleError::TimedOut { .. })
}
