//! Deterministic simulation: random clients against a simulated cluster with
//! seeded message loss and delays, in paused (virtual) time.
//!
//! Every run is a pure function of its plan (node count, R/W, faults, seed),
//! so a failure message names the plan and replays exactly. Properties:
//! - (a) no acknowledged write is lost: after healing the network and a final
//!   read at `all` (which read-repairs everything), every replica of a cell
//!   holds the same cell; its history includes every acknowledged dot; and every
//!   acknowledged value is still there unless a later write's context
//!   superseded it. No value appears that nobody wrote.
//! - (b) without failures (delays only) and with R + W > N, every operation
//!   succeeds and every read descends every write acknowledged before it began.
//! - (c) with one node isolated, quorum operations at the other nodes succeed,
//!   and `all` operations on its keys fail naming it.
//!
//! Sloppy plans add hinted handoff: writes carry the ring's fallbacks, one
//! node is cut off (and, for some seeds, known down) for a while during the
//! run, and every node's hint delivery loop runs throughout. After healing,
//! the loops must empty every hint store, and then, before any final read
//! repairs anything, every replica must hold every acknowledged write:
//! handoff alone brought them up to date. Property (a) is then checked as above.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{row, runtime, stop_workers, Cluster, N};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tessera_cluster::{
    ClientWrite, CoordinatorError, CutMode, LinkConfig, NodeId, WriteOutcome, WriteRequest,
};
use tessera_storage::{Actor, Cell, Context, RowKey, RowPage, RowSlice};

const ROWS: [&str; 3] = ["alpha", "beta", "gamma"];
const COLUMNS: [&str; 2] = ["x", "y"];
const CLIENTS: u64 = 4;
const OPS_PER_CLIENT: usize = 40;
/// Seeds per (nodes, R/W, faults) combination.
const SEEDS: u64 = 40;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Faults {
    /// 20% of messages (requests or responses) lost, 0-50 ms delays.
    Lossy,
    /// No loss, 0-50 ms delays.
    DelaysOnly,
}

#[derive(Clone, Copy, Debug)]
struct Plan {
    nodes: usize,
    read: u32,
    write: u32,
    faults: Faults,
    seed: u64,
    /// Fallbacks in writes, a node cut off for a while, hint delivery running.
    sloppy: bool,
}

#[derive(Debug)]
enum Kind {
    Write {
        value: Option<String>,
        context: Option<Context>,
        forwarded: bool,
        result: Result<WriteOutcome, CoordinatorError>,
    },
    ReadCell {
        result: Result<Option<Cell>, CoordinatorError>,
    },
    ReadRow {
        include_tombstones: bool,
        result: Result<RowPage, CoordinatorError>,
    },
}

#[derive(Debug)]
struct Op {
    row: usize,
    /// The column of a cell read or write (a row read covers both).
    column: usize,
    /// Logical times: every op start and end takes the next tick.
    start: u64,
    end: u64,
    kind: Kind,
}

#[derive(Default)]
struct History {
    clock: u64,
    ops: Vec<Op>,
}

impl History {
    fn tick(history: &Mutex<History>) -> u64 {
        let mut h = history.lock().unwrap();
        h.clock += 1;
        h.clock
    }
}

fn column_bytes(column: usize) -> Vec<u8> {
    COLUMNS[column].as_bytes().to_vec()
}

async fn client(cluster: Arc<Cluster>, plan: Plan, id: u64, history: Arc<Mutex<History>>) {
    let mut rng = StdRng::seed_from_u64(plan.seed.wrapping_mul(1_000_003).wrapping_add(id));
    // The context of this client's last read of each cell.
    let mut contexts: BTreeMap<(usize, usize), Context> = BTreeMap::new();
    for op in 0..OPS_PER_CLIENT {
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..=40))).await;
        let node = &cluster.nodes[rng.random_range(0..cluster.nodes.len())];
        let (r, c) = (
            rng.random_range(0..ROWS.len()),
            rng.random_range(0..COLUMNS.len()),
        );
        let key = row(ROWS[r]);
        let replicas = cluster.replicas_of(&key);
        let start = History::tick(&history);
        let kind = match rng.random_range(0..10) {
            0..=3 => {
                let result = node
                    .coordinator
                    .read_cell(key, column_bytes(c), plan.read, replicas)
                    .await
                    .map(|o| o.value);
                if let Ok(cell) = &result {
                    contexts.insert((r, c), cell.as_ref().map(Cell::join).unwrap_or_default());
                }
                Kind::ReadCell { result }
            }
            4 => {
                let include_tombstones = rng.random_bool(0.5);
                let limit = [1, 2, usize::MAX][rng.random_range(0..3)];
                let slice = RowSlice {
                    limit,
                    include_tombstones,
                    ..RowSlice::default()
                };
                let result = node
                    .coordinator
                    .read_row(key, slice, plan.read, replicas)
                    .await
                    .map(|o| o.value);
                if let Ok(page) = &result {
                    for (column, cell) in &page.cells {
                        if let Some(i) = COLUMNS.iter().position(|n| n.as_bytes() == column) {
                            contexts.insert((r, i), cell.join());
                        }
                    }
                }
                Kind::ReadRow {
                    include_tombstones,
                    result,
                }
            }
            kind => {
                let value = (kind != 9).then(|| format!("c{id}-{op}"));
                let context = if rng.random_bool(0.6) {
                    contexts.get(&(r, c)).cloned()
                } else {
                    None
                };
                let forwarded = !replicas.contains(&node.id);
                let fallbacks = if plan.sloppy {
                    cluster.fallbacks_of(&key)
                } else {
                    Vec::new()
                };
                let request = WriteRequest {
                    row: key,
                    writes: vec![ClientWrite {
                        column: column_bytes(c),
                        value: value.clone().map(String::into_bytes),
                        context: context.clone(),
                    }],
                    required: plan.write,
                    replicas,
                    fallbacks,
                    strict: false,
                    also: Vec::new(),
                };
                let result = node.coordinator.write(request).await;
                Kind::Write {
                    value,
                    context,
                    forwarded,
                    result,
                }
            }
        };
        let end = History::tick(&history);
        history.lock().unwrap().ops.push(Op {
            row: r,
            column: c,
            start,
            end,
            kind,
        });
    }
}

/// The dot an acknowledged write minted: the coordinator's actor and counter.
fn dot_of(cluster: &Cluster, outcome: &WriteOutcome) -> (Actor, u64, Cell) {
    let actor = cluster.actor_of(&outcome.coordinator);
    let cell = outcome.cells[0].1.clone();
    (actor, cell.join().get(&actor), cell)
}

/// What a context-less write superseded: its cell's history minus its own dot.
fn effective_context(cluster: &Cluster, outcome: &WriteOutcome) -> Context {
    let (actor, counter, cell) = dot_of(cluster, outcome);
    Context::from_entries(
        cell.join()
            .iter()
            .map(|(a, n)| (*a, if *a == actor { counter - 1 } else { n })),
    )
}

fn live_values(cell: &Cell) -> Vec<&[u8]> {
    cell.values()
        .into_iter()
        .filter_map(|v| v.data.as_deref())
        .collect()
}

/// What a run exercised, to show the properties were not checked vacuously.
#[derive(Debug, Default)]
struct Counts {
    runs: u64,
    ops: u64,
    acked_writes: u64,
    failed_ops: u64,
    /// Acknowledged values found in the final state.
    values_present: u64,
    /// Acknowledged values gone because a later write's context covered them.
    values_superseded: u64,
    /// Acknowledged values gone, and some context-less write with an unknown
    /// snapshot (failed, or forwarded) could have superseded them.
    values_possibly_superseded: u64,
    /// (read, earlier acknowledged write) pairs checked for (b).
    descends_checked: u64,
    /// Acks that were hints on fallbacks (sloppy plans).
    hinted_acks: u64,
    /// Hints delivered by the handoff loops (sloppy plans).
    hints_delivered: u64,
    /// (acknowledged write, replica) pairs found complete after handoff alone.
    handoff_checked: u64,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.runs += other.runs;
        self.ops += other.ops;
        self.acked_writes += other.acked_writes;
        self.failed_ops += other.failed_ops;
        self.values_present += other.values_present;
        self.values_superseded += other.values_superseded;
        self.values_possibly_superseded += other.values_possibly_superseded;
        self.descends_checked += other.descends_checked;
        self.hinted_acks += other.hinted_acks;
        self.hints_delivered += other.hints_delivered;
        self.handoff_checked += other.handoff_checked;
    }
}

/// Runs one plan and checks its properties; returns a summary for replay checks.
fn run(plan: Plan) -> Vec<String> {
    run_counted(plan, &mut Counts::default())
}

fn run_counted(plan: Plan, counts: &mut Counts) -> Vec<String> {
    runtime().block_on(async move {
        let cluster = Arc::new(Cluster::new(plan.nodes, plan.seed));
        cluster.net.set_cut_mode(CutMode::Silent);
        let drop = if plan.faults == Faults::Lossy {
            0.2
        } else {
            0.0
        };
        cluster.net.set_default_link(LinkConfig::new(
            drop,
            Duration::ZERO,
            Duration::from_millis(50),
        ));
        let history = Arc::new(Mutex::new(History::default()));
        let mut workers = Vec::new();
        let mut background = Vec::new();
        if plan.sloppy {
            background.push(tokio::spawn(cut_off_a_node(cluster.clone(), plan)));
            workers = cluster.start_delivery();
        }
        let clients: Vec<_> = (0..CLIENTS)
            .map(|id| tokio::spawn(client(cluster.clone(), plan, id, history.clone())))
            .collect();
        for c in clients {
            c.await.unwrap();
        }
        // Let stragglers and forwarded writes finish, then heal everything.
        tokio::time::sleep(Duration::from_secs(20)).await;
        cluster.net.heal_all();
        cluster.net.set_default_link(LinkConfig::PERFECT);
        if plan.sloppy {
            heal_membership(&cluster);
            for _ in 0..3_000 {
                if cluster.hints_total() == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert_eq!(
                cluster.hints_total(),
                0,
                "{plan:?}: hints left 300 s after healing"
            );
            stop_workers(&workers, Duration::from_secs(5)).await;
            for task in background {
                task.await.unwrap();
            }
            counts.hints_delivered += cluster
                .nodes
                .iter()
                .map(|n| n.delivery.status().delivered)
                .sum::<u64>();
            let history = history.lock().unwrap();
            check_handoff_completed(&cluster, plan, &history.ops, counts);
        }

        let mut finals: BTreeMap<(usize, usize), Option<Cell>> = BTreeMap::new();
        for (r, name) in ROWS.iter().enumerate() {
            let key = row(name);
            let replicas = cluster.replicas_of(&key);
            for c in 0..COLUMNS.len() {
                let read = cluster
                    .node(&replicas[0])
                    .coordinator
                    .read_cell(key.clone(), column_bytes(c), N as u32, replicas.clone())
                    .await
                    .unwrap_or_else(|e| panic!("{plan:?}: final read failed: {e}"));
                finals.insert((r, c), read.value);
            }
        }
        cluster.settle().await;

        let history = history.lock().unwrap();
        counts.runs += 1;
        counts.ops += history.ops.len() as u64;
        for op in &history.ops {
            let failed = match &op.kind {
                Kind::Write { result, .. } => {
                    counts.acked_writes += u64::from(result.is_ok());
                    result.is_err()
                }
                Kind::ReadCell { result } => result.is_err(),
                Kind::ReadRow { result, .. } => result.is_err(),
            };
            counts.failed_ops += u64::from(failed);
        }
        for ((r, c), read) in &finals {
            let key = row(ROWS[*r]);
            let stored = final_cell(&cluster, plan, &key, *c);
            assert_eq!(
                &stored, read,
                "{plan:?}: the final read is what replicas hold"
            );
            check_no_acked_write_lost(
                &cluster,
                plan,
                &history.ops,
                *r,
                *c,
                stored.as_ref(),
                counts,
            );
        }
        // Sloppy plans cut a node off, so (b)'s "no failures" does not hold;
        // and a write acknowledged through hints need not be on R real
        // replicas yet, which is exactly what sloppy quorum trades away.
        if plan.faults == Faults::DelaysOnly && !plan.sloppy {
            check_reads_see_prior_writes(plan, &history.ops, counts);
        }
        history.ops.iter().map(summary).collect()
    })
}

/// Cuts one node off for 1 to 4 virtual seconds early in the run (known
/// down for even seeds), then brings it back the way the server would.
async fn cut_off_a_node(cluster: Arc<Cluster>, plan: Plan) {
    let mut rng = StdRng::seed_from_u64(plan.seed ^ 0x5eed);
    tokio::time::sleep(Duration::from_millis(rng.random_range(100..=800))).await;
    let node = cluster.nodes[rng.random_range(0..cluster.nodes.len())]
        .id
        .clone();
    cluster.net.isolate(&node);
    if plan.seed.is_multiple_of(2) {
        cluster.membership.mark_down(&node);
    }
    tokio::time::sleep(Duration::from_millis(rng.random_range(1_000..=4_000))).await;
    cluster.net.rejoin(&node);
    heal_membership(&cluster);
}

/// Marks every node up and nudges every delivery loop, as the server does
/// when membership sees a node come back.
fn heal_membership(cluster: &Cluster) {
    for node in &cluster.nodes {
        cluster.membership.mark_up(&node.id);
    }
    for holder in &cluster.nodes {
        for target in &cluster.nodes {
            holder.delivery.deliver_now(&target.id);
        }
    }
}

/// Sloppy plans: once every hint is delivered, and before any final read
/// repairs anything, every replica holds every acknowledged write's dot.
fn check_handoff_completed(cluster: &Cluster, plan: Plan, ops: &[Op], counts: &mut Counts) {
    for op in ops {
        let Kind::Write {
            result: Ok(outcome),
            value,
            ..
        } = &op.kind
        else {
            continue;
        };
        counts.hinted_acks += u64::from(outcome.hinted);
        let (actor, counter, _) = dot_of(cluster, outcome);
        let key = row(ROWS[op.row]);
        for n in cluster.replicas_of(&key) {
            let held = cluster
                .stored(&n, &key, &column_bytes(op.column))
                .map(|cell| cell.join().get(&actor))
                .unwrap_or(0);
            assert!(
                held >= counter,
                "{plan:?}: after handoff, replica {n} lacks acknowledged write {value:?} ({actor}, {counter})"
            );
            counts.handoff_checked += 1;
        }
    }
}

/// The cell every replica holds after repair; they must agree.
fn final_cell(cluster: &Cluster, plan: Plan, key: &RowKey, column: usize) -> Option<Cell> {
    let replicas = cluster.replicas_of(key);
    let first = cluster.stored(&replicas[0], key, &column_bytes(column));
    for n in &replicas[1..] {
        assert_eq!(
            cluster.stored(n, key, &column_bytes(column)),
            first,
            "{plan:?}: replicas {} and {n} differ after repair",
            replicas[0]
        );
    }
    first
}

/// Property (a).
fn check_no_acked_write_lost(
    cluster: &Cluster,
    plan: Plan,
    ops: &[Op],
    r: usize,
    c: usize,
    last: Option<&Cell>,
    counts: &mut Counts,
) {
    let empty = Cell::new();
    let last = last.unwrap_or(&empty);
    let history = last.join();
    let writes: Vec<&Op> = ops
        .iter()
        .filter(|op| op.row == r && op.column == c && matches!(op.kind, Kind::Write { .. }))
        .collect();
    for value in live_values(last) {
        let written = writes.iter().any(
            |op| matches!(&op.kind, Kind::Write { value: Some(v), .. } if v.as_bytes() == value),
        );
        assert!(
            written,
            "{plan:?}: value {:?} was never written",
            String::from_utf8_lossy(value)
        );
    }
    for w in &writes {
        let Kind::Write {
            value,
            result: Ok(outcome),
            ..
        } = &w.kind
        else {
            continue;
        };
        let (actor, counter, _) = dot_of(cluster, outcome);
        assert!(
            history.get(&actor) >= counter,
            "{plan:?}: the dot ({actor}, {counter}) of acknowledged write {value:?} is gone from {history:?}"
        );
        let Some(value) = value else { continue };
        if live_values(last).contains(&value.as_bytes()) {
            counts.values_present += 1;
            continue;
        }
        let others = writes
            .iter()
            .filter(|other| !std::ptr::eq(**other, *w))
            .filter_map(|other| match &other.kind {
                Kind::Write {
                    context,
                    forwarded,
                    result,
                    ..
                } => Some((other, context, *forwarded, result)),
                _ => None,
            });
        // Superseded for certain: an explicit context covering the dot, or a
        // context-less write applied at one replica whose snapshot covered it.
        let exactly =
            others
                .clone()
                .any(|(_, context, forwarded, result)| match (context, result) {
                    (Some(context), _) => context.get(&actor) >= counter,
                    (None, Ok(o)) if !forwarded => {
                        effective_context(cluster, o).get(&actor) >= counter
                    }
                    (None, _) => false,
                });
        // Possibly superseded: a context-less write whose snapshot we do not
        // know (it failed, or was forwarded and may have been applied at a
        // replica that timed out too). Every copy of it was applied before
        // it ended, so it can only have seen `w` if it ended after `w` began.
        let possibly = others
            .into_iter()
            .any(|(other, context, forwarded, result)| {
                context.is_none() && (forwarded || result.is_err()) && other.end > w.start
            });
        assert!(
            exactly || possibly,
            "{plan:?}: acknowledged value {value} is lost and no write superseded it; final cell {last:?}"
        );
        if exactly {
            counts.values_superseded += 1;
        } else {
            counts.values_possibly_superseded += 1;
        }
    }
}

/// Property (b).
fn check_reads_see_prior_writes(plan: Plan, ops: &[Op], counts: &mut Counts) {
    for op in ops {
        match &op.kind {
            Kind::Write { result, .. } => {
                assert!(
                    result.is_ok(),
                    "{plan:?}: write failed without faults: {result:?}"
                )
            }
            Kind::ReadCell { result } => {
                let cell = result
                    .as_ref()
                    .unwrap_or_else(|e| panic!("{plan:?}: read failed without faults: {e}"));
                check_descends(plan, ops, op, op.column, cell.as_ref(), counts);
            }
            Kind::ReadRow {
                include_tombstones,
                result,
            } => {
                let page = result
                    .as_ref()
                    .unwrap_or_else(|e| panic!("{plan:?}: row read failed without faults: {e}"));
                for (c, name) in COLUMNS.iter().enumerate() {
                    let cell = page.cells.iter().find(|(col, _)| col == name.as_bytes());
                    let beyond_page = page.more
                        && page
                            .cells
                            .last()
                            .is_some_and(|(last, _)| name.as_bytes() > last.as_slice());
                    match cell {
                        Some((_, cell)) => check_descends(plan, ops, op, c, Some(cell), counts),
                        // Absent because deleted (hidden) or beyond the page: nothing to see.
                        None if !include_tombstones || beyond_page => {}
                        None => check_descends(plan, ops, op, c, None, counts),
                    }
                }
            }
        }
    }
}

fn check_descends(
    plan: Plan,
    ops: &[Op],
    read: &Op,
    column: usize,
    cell: Option<&Cell>,
    counts: &mut Counts,
) {
    let seen = cell.map(Cell::join).unwrap_or_default();
    for w in ops {
        if w.row != read.row || w.column != column || w.end >= read.start {
            continue;
        }
        if let Kind::Write {
            result: Ok(outcome),
            value,
            ..
        } = &w.kind
        {
            let written = outcome.cells[0].1.join();
            counts.descends_checked += 1;
            assert!(
                seen.descends(&written),
                "{plan:?}: a read starting at {} saw {seen:?}, missing write {value:?} acknowledged at {} with {written:?}",
                read.start,
                w.end
            );
        }
    }
}

/// A timestamp-free description of an op, to compare replays.
fn summary(op: &Op) -> String {
    let cell = |cell: Option<&Cell>| {
        cell.map(|c| {
            let mut values: Vec<String> = live_values(c)
                .iter()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .collect();
            values.sort();
            format!("{values:?}@{:?}", c.join())
        })
    };
    let outcome = match &op.kind {
        Kind::Write { result, .. } => match result {
            Ok(o) => format!("ok {} {:?}", o.coordinator, cell(Some(&o.cells[0].1))),
            Err(e) => format!("err {e}"),
        },
        Kind::ReadCell { result } => match result {
            Ok(c) => format!("ok {:?}", cell(c.as_ref())),
            Err(e) => format!("err {e}"),
        },
        Kind::ReadRow { result, .. } => match result {
            Ok(p) => format!(
                "ok {:?} {}",
                p.cells
                    .iter()
                    .map(|(_, c)| cell(Some(c)))
                    .collect::<Vec<_>>(),
                p.more
            ),
            Err(e) => format!("err {e}"),
        },
    };
    format!(
        "{}:{} [{}-{}] {outcome}",
        op.row, op.column, op.start, op.end
    )
}

fn plans(faults: Faults) -> Vec<Plan> {
    let mut out = Vec::new();
    for nodes in [3, 5] {
        // R + W > N: quorum/quorum, one/all, all/one.
        for (read, write) in [(2, 2), (1, 3), (3, 1)] {
            for seed in 0..SEEDS {
                out.push(Plan {
                    nodes,
                    read,
                    write,
                    faults,
                    seed: seed * 7919 + nodes as u64 * 31 + u64::from(read),
                    sloppy: false,
                });
            }
        }
    }
    out
}

#[test]
fn no_acknowledged_write_is_lost_under_loss_and_delay() {
    let mut total = Counts::default();
    for plan in plans(Faults::Lossy) {
        let mut counts = Counts::default();
        run_counted(plan, &mut counts);
        total.add(&counts);
    }
    eprintln!("lossy: {total:?}");
    // The faults must bite, and the cluster must still get work done.
    assert!(total.failed_ops > 0 && total.acked_writes > 0, "{total:?}");
    assert!(
        total.values_present > 0 && total.values_superseded > 0,
        "{total:?}"
    );
}

#[test]
fn reads_see_every_write_acknowledged_before_them_without_faults() {
    let mut total = Counts::default();
    for plan in plans(Faults::DelaysOnly) {
        let mut counts = Counts::default();
        run_counted(plan, &mut counts);
        total.add(&counts);
    }
    eprintln!("delays only: {total:?}");
    assert_eq!(total.failed_ops, 0);
    assert!(total.descends_checked > 0, "{total:?}");
}

#[test]
fn a_run_replays_exactly_from_its_seed() {
    let plan = Plan {
        nodes: 5,
        read: 2,
        write: 2,
        faults: Faults::Lossy,
        seed: 99,
        sloppy: false,
    };
    let first = run(plan);
    assert_eq!(first.len(), CLIENTS as usize * OPS_PER_CLIENT);
    assert_eq!(first, run(plan));
    let other = run(Plan { seed: 100, ..plan });
    assert_ne!(first, other);
}

fn sloppy_plans() -> Vec<Plan> {
    let mut out = Vec::new();
    for nodes in [4, 5] {
        for (read, write) in [(2, 2), (1, 3), (3, 1)] {
            for faults in [Faults::Lossy, Faults::DelaysOnly] {
                for seed in 0..SEEDS / 2 {
                    out.push(Plan {
                        nodes,
                        read,
                        write,
                        faults,
                        seed: seed * 6007 + nodes as u64 * 17 + u64::from(write),
                        sloppy: true,
                    });
                }
            }
        }
    }
    out
}

#[test]
fn no_acknowledged_write_is_lost_with_sloppy_quorum_and_handoff() {
    let mut total = Counts::default();
    for plan in sloppy_plans() {
        let mut counts = Counts::default();
        run_counted(plan, &mut counts);
        total.add(&counts);
    }
    eprintln!("sloppy: {total:?}");
    // Hints must have made writes succeed and been delivered, and the
    // handoff check must have looked at real writes.
    assert!(total.hinted_acks > 0, "{total:?}");
    assert!(total.hints_delivered > 0, "{total:?}");
    assert!(
        total.handoff_checked > 0 && total.acked_writes > 0,
        "{total:?}"
    );
}

#[test]
fn a_sloppy_run_replays_exactly_from_its_seed() {
    let plan = Plan {
        nodes: 5,
        read: 2,
        write: 2,
        faults: Faults::Lossy,
        seed: 4,
        sloppy: true,
    };
    assert_eq!(run(plan), run(plan));
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isolation {
    /// Links to the node refuse connections.
    Refused,
    /// Messages to and from the node vanish.
    Silent,
    /// Membership also knows the node is down.
    KnownDown,
}

/// Property (c).
#[test]
fn with_one_node_isolated_quorum_works_and_all_names_it() {
    for seed in 0..6u64 {
        for nodes in [3usize, 5] {
            for isolation in [Isolation::Refused, Isolation::Silent, Isolation::KnownDown] {
                runtime().block_on(isolated_run(seed, nodes, isolation));
            }
        }
    }
}

async fn isolated_run(seed: u64, nodes: usize, isolation: Isolation) {
    let ctx = format!("seed {seed}, {nodes} nodes, {isolation:?}");
    let cluster = Cluster::new(nodes, seed);
    let mut rng = StdRng::seed_from_u64(seed);
    cluster.net.set_default_link(LinkConfig::new(
        0.0,
        Duration::ZERO,
        Duration::from_millis(50),
    ));
    let isolated: NodeId = cluster.nodes[rng.random_range(0..nodes)].id.clone();
    cluster.net.set_cut_mode(if isolation == Isolation::Silent {
        CutMode::Silent
    } else {
        CutMode::Refuse
    });
    cluster.net.isolate(&isolated);
    if isolation == Isolation::KnownDown {
        cluster.membership.mark_down(&isolated);
    }
    let others: Vec<&common::Node> = cluster.nodes.iter().filter(|n| n.id != isolated).collect();
    for op in 0..20 {
        let node = others[rng.random_range(0..others.len())];
        let key = row(ROWS[rng.random_range(0..ROWS.len())]);
        let replicas = cluster.replicas_of(&key);
        let level = if rng.random_bool(0.5) { 2 } else { N as u32 };
        let result: Result<(), CoordinatorError> = if rng.random_bool(0.5) {
            let request = common::set(&key, "x", &format!("v{op}"), level, replicas.clone());
            node.coordinator.write(request).await.map(|_| ())
        } else {
            node.coordinator
                .read_cell(key.clone(), b"x".to_vec(), level, replicas.clone())
                .await
                .map(|_| ())
        };
        let affected = replicas.contains(&isolated);
        // A write forwarded (by a non-replica) to a silent replica that membership still believes
        // alive times out: that replica may apply it yet, so it is not retried elsewhere.
        let forwarded_to_silent = isolation == Isolation::Silent
            && !replicas.contains(&node.id)
            && replicas.first() == Some(&isolated);
        match result {
            Ok(()) => assert!(
                level < N as u32 || !affected,
                "{ctx}: `all` succeeded with {isolated} isolated"
            ),
            Err(CoordinatorError::Timeout { pending, .. }) if forwarded_to_silent => {
                assert_eq!(pending, vec![isolated.clone()], "{ctx}");
            }
            Err(error) => {
                assert!(
                    level == N as u32 && affected,
                    "{ctx}: quorum failed: {error}"
                );
                let named = match (&error, isolation) {
                    (CoordinatorError::Failed(f), Isolation::Refused)
                    | (CoordinatorError::Unavailable(f), Isolation::KnownDown) => {
                        f.failed.iter().any(|(n, _)| *n == isolated)
                    }
                    (CoordinatorError::Timeout { pending, .. }, Isolation::Silent) => {
                        pending.contains(&isolated)
                    }
                    _ => false,
                };
                assert!(
                    named,
                    "{ctx}: `all` failed without naming {isolated}: {error:?}"
                );
                assert!(
                    error.to_string().contains(isolated.as_str()),
                    "{ctx}: {error}"
                );
            }
        }
    }
    cluster.settle().await;
}
