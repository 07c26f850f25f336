//! Exchanges between two in-memory replicas over a perfect channel: they converge, they repair
//! exactly what differed, and replicas that agree cost the tree, not the keys.

mod common;

use common::{exchange_and_check, partition_start, Driver, Replica, Rng};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use tessera_merkle::{CellId, ExchangeConfig, ExchangeState, PartitionId, Token, TreeShape};

/// A token in `partition` for row `row`, spread over the partition's range.
pub fn token_in(shape: &TreeShape, partition: PartitionId, row: u32) -> Token {
    let bits = shape.partitions().trailing_zeros();
    let offset = Rng::new(u64::from(row)).next();
    partition_start(shape, partition) | offset.checked_shr(bits).unwrap_or(0)
}

pub fn cell_id(shape: &TreeShape, partition: PartitionId, row: u32, column: u8) -> CellId {
    CellId::new(
        token_in(shape, partition, row),
        format!("row{row}").into_bytes(),
        vec![b'c', column],
    )
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    /// A shared base, then independent edits on each side.
    Shared,
    LocalEmpty,
    RemoteEmpty,
    BothEmpty,
    /// Every shared cell has another value on each side, plus cells only one side has.
    AllDifferent,
    Equal,
}

type Cells = Vec<(u32, u8, u8)>;
type Edits = Vec<(u32, u8, Option<u8>)>;

fn arb_mode() -> impl Strategy<Value = Mode> {
    prop_oneof![
        4 => Just(Mode::Shared),
        1 => Just(Mode::LocalEmpty),
        1 => Just(Mode::RemoteEmpty),
        1 => Just(Mode::BothEmpty),
        1 => Just(Mode::AllDifferent),
        1 => Just(Mode::Equal),
    ]
}

fn arb_cells() -> impl Strategy<Value = Cells> {
    proptest::collection::vec((0u32..60, 0u8..4, 0u8..4), 0..120)
}

fn arb_edits() -> impl Strategy<Value = Edits> {
    proptest::collection::vec((0u32..70, 0u8..4, proptest::option::of(0u8..8)), 0..30)
}

fn arb_shape() -> impl Strategy<Value = (TreeShape, PartitionId)> {
    prop_oneof![
        Just((1u64, 1u64, 1u64)),
        Just((1, 4, 4)),
        Just((2, 2, 8)),
        Just((4, 4, 4)),
        Just((256, 32, 32)),
        Just((1 << 16, 2, 8)),
    ]
    .prop_flat_map(|(q, b, l)| {
        let shape = TreeShape::new(q, b, l).unwrap();
        (Just(shape), 0..=(q - 1) as PartitionId)
    })
}

fn arb_config() -> impl Strategy<Value = ExchangeConfig> {
    (
        prop_oneof![1u32..=3, Just(64)],
        prop_oneof![1u32..=5, Just(1024)],
        prop_oneof![Just(1u32 << 20), 1u32..200],
    )
        .prop_map(|(segments, cells, bytes)| ExchangeConfig {
            max_segments_per_request: segments,
            max_cells_per_page: cells,
            max_page_bytes: bytes,
            max_retries: 3,
        })
}

fn apply(replica: &mut Replica, edits: &Edits) {
    for (row, column, value) in edits {
        let id = cell_id(&replica.shape, replica.partition, *row, *column);
        match value {
            Some(v) => replica.put(id, vec![*v]),
            None => replica.remove(&id),
        }
    }
}

fn build(
    shape: TreeShape,
    partition: PartitionId,
    mode: Mode,
    base: &Cells,
    local_edits: &Edits,
    remote_edits: &Edits,
) -> (Replica, Replica) {
    let mut seeded = Replica::new(shape, partition);
    for (row, column, value) in base {
        seeded.put(cell_id(&shape, partition, *row, *column), vec![*value]);
    }
    let empty = Replica::new(shape, partition);
    match mode {
        Mode::Shared => {
            let (mut local, mut remote) = (seeded.clone(), seeded);
            apply(&mut local, local_edits);
            apply(&mut remote, remote_edits);
            (local, remote)
        }
        Mode::LocalEmpty => (empty, seeded),
        Mode::RemoteEmpty => (seeded, empty),
        Mode::BothEmpty => (empty.clone(), empty),
        Mode::AllDifferent => {
            let mut remote = empty;
            for (id, bytes) in &seeded.cells {
                remote.put(id.clone(), vec![bytes[0] + 100]);
            }
            let mut local = seeded;
            local.put(cell_id(&shape, partition, 1000, 0), vec![1]);
            remote.put(cell_id(&shape, partition, 1001, 0), vec![1]);
            (local, remote)
        }
        Mode::Equal => (seeded.clone(), seeded),
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    /// Random differences, including one side empty, both empty and everything different, in
    /// every tree shape and with pages and batches down to one cell and one segment: the exchange
    /// repairs exactly the cells that differ, after which both replicas and their kept trees are
    /// equal, and a second exchange finds them in sync at the root.
    #[test]
    fn exchanges_converge(
        (shape, partition) in arb_shape(),
        mode in arb_mode(),
        base in arb_cells(),
        local_edits in arb_edits(),
        remote_edits in arb_edits(),
        config in arb_config(),
        responder_page in prop_oneof![Just(None), (1u32..4).prop_map(Some)],
    ) {
        let (mut local, mut remote) =
            build(shape, partition, mode, &base, &local_edits, &remote_edits);
        let mut responder_config = config;
        if let Some(page) = responder_page {
            responder_config.max_cells_per_page = page;
        }
        exchange_and_check(&mut local, &mut remote, config, responder_config);
        let again = exchange_and_check(&mut local, &mut remote, config, responder_config);
        prop_assert!(again.report.unwrap().in_sync);
        prop_assert_eq!(again.initiator.messages_sent + again.initiator.messages_received, 2);
    }
}

fn default_shape() -> TreeShape {
    TreeShape::with_default_fanout(256).unwrap()
}

fn filled(shape: TreeShape, partition: PartitionId, rows: u32, columns: u8) -> Replica {
    let mut replica = Replica::new(shape, partition);
    for row in 0..rows {
        for column in 0..columns {
            replica.put(
                cell_id(&shape, partition, row, column),
                format!("value {row} {column}").into_bytes(),
            );
        }
    }
    replica
}

#[test]
fn both_empty_is_in_sync() {
    let mut local = Replica::new(default_shape(), 0);
    let mut remote = Replica::new(default_shape(), 0);
    let run = exchange_and_check(
        &mut local,
        &mut remote,
        ExchangeConfig::default(),
        ExchangeConfig::default(),
    );
    assert!(run.report.unwrap().in_sync);
    assert_eq!(run.initiator.messages_sent, 1);
    assert_eq!(run.initiator.messages_received, 1);
}

#[test]
fn an_empty_side_pulls_or_pushes_everything() {
    let full = filled(default_shape(), 9, 500, 3);
    let mut empty = Replica::new(default_shape(), 9);
    let mut local = full.clone();
    let run = exchange_and_check(
        &mut empty,
        &mut local,
        ExchangeConfig::default(),
        ExchangeConfig::default(),
    );
    assert_eq!(run.initiator.pull, 1500);
    assert_eq!((run.initiator.push, run.initiator.diverged), (0, 0));

    let mut local = full;
    let mut empty = Replica::new(default_shape(), 9);
    let run = exchange_and_check(
        &mut local,
        &mut empty,
        ExchangeConfig::default(),
        ExchangeConfig::default(),
    );
    assert_eq!(run.initiator.push, 1500);
    assert_eq!((run.initiator.pull, run.initiator.diverged), (0, 0));
}

/// One wide row (one token, so one segment) of 200 columns, compared in pages of 7 cells, with
/// the responder serving at most 5: the pages stay bounded and still cover every cell once.
#[test]
fn wide_rows_are_paged() {
    let shape = default_shape();
    let mut local = filled(shape, 4, 1, 200);
    let mut remote = local.clone();
    for column in (0..200).step_by(3) {
        remote.put(cell_id(&shape, 4, 0, column), b"changed".to_vec());
    }
    for column in (1..200).step_by(10) {
        local.remove(&cell_id(&shape, 4, 0, column));
    }
    let config = ExchangeConfig {
        max_cells_per_page: 7,
        ..ExchangeConfig::default()
    };
    let responder_config = ExchangeConfig {
        max_cells_per_page: 5,
        ..config
    };
    let run = exchange_and_check(&mut local, &mut remote, config, responder_config);
    let stats = run.initiator;
    assert_eq!(stats.segments_differing, 1);
    assert!(stats.pages >= 200 / 5, "{stats:?}");
    // 67 columns changed remotely, 20 removed locally, 6 of them among the changed.
    assert_eq!(stats.diverged, 61);
    assert_eq!(stats.pull, 20);
    let responder = run.responder.unwrap();
    // Every page overlaps the previous by at most one page of cells.
    assert!(responder.cell_digests_sent <= 2 * 200, "{responder:?}");
}

/// Cells with kilobyte keys and columns, pages of at most 4 KiB: every `Cells` message stays
/// within the budget plus one cell, and the replicas still converge.
#[test]
fn pages_respect_the_byte_budget() {
    let shape = default_shape();
    let mut local = Replica::new(shape, 5);
    let mut remote = Replica::new(shape, 5);
    for row in 0..30u32 {
        for column in 0..20u8 {
            let token = token_in(&shape, 5, row % 3);
            let id = CellId::new(token, vec![b'k'; 1000 + row as usize], vec![column; 1000]);
            if (row + u32::from(column)) % 3 != 0 {
                local.put(id.clone(), vec![1]);
            }
            if (row + u32::from(column)) % 4 != 0 {
                remote.put(id, vec![2]);
            }
        }
    }
    let config = ExchangeConfig {
        max_page_bytes: 4096,
        ..ExchangeConfig::default()
    };
    let mut driver = Driver::new(&mut local, &mut remote, config, None);
    let mut initiator = driver.start(1);
    let run = driver.run(&mut initiator, 1_000_000);
    drop(driver);
    assert_eq!(run.state, ExchangeState::Finished);
    common::assert_converged(&local, &remote);
    let (i, r) = (run.initiator, run.responder.unwrap());
    // Cells of about 2 KiB: a page ends with the third, which reaches 4 KiB.
    assert!(r.cell_digests_sent <= 3 * i.pages, "{i:?} {r:?}");
    let mean = r.bytes_sent / r.messages_sent.max(1);
    assert!(mean < 4096 + 2100, "{mean}");
    // Scans stop at the budget too: each reads one page, not `max_cells_per_page` cells.
    assert_eq!(r.cells_scanned, r.cell_digests_sent);
    assert!(i.cells_scanned <= 3 * i.pages, "{i:?}");
}

/// The numbers: replicas that agree exchange two messages of the same few bytes whatever the
/// number of cells; one differing cell costs the branch and leaf levels plus the cell digests of
/// one segment, nowhere near the digests of every cell.
#[test]
fn agreeing_replicas_cost_the_tree_not_the_keys() {
    let shape = default_shape();
    let tree_bytes = shape.nodes() as u64 * 16;
    let mut in_sync_bytes = Vec::new();
    println!(
        "shape: {shape}; one tree is {} nodes, {tree_bytes} bytes of digests",
        shape.nodes()
    );
    println!("cells    | case          | messages | bytes  | nodes compared | cell digests");
    for rows in [0u32, 1_000, 100_000] {
        let mut local = filled(shape, 3, rows, 1);
        let mut remote = local.clone();
        let run = exchange_and_check(
            &mut local,
            &mut remote,
            ExchangeConfig::default(),
            ExchangeConfig::default(),
        );
        let (i, r) = (run.initiator, run.responder.unwrap());
        let messages = i.messages_sent + i.messages_received;
        let bytes = i.bytes_sent + i.bytes_received;
        let nodes = i.nodes_compared + r.nodes_compared;
        let digests = i.cell_digests_received + r.cell_digests_sent;
        println!(
            "{rows:>8} | in sync       | {messages:>8} | {bytes:>6} | {nodes:>14} | {digests}"
        );
        assert_eq!((messages, nodes, digests), (2, 1, 0));
        assert!(bytes < tree_bytes);
        in_sync_bytes.push(bytes);

        if rows == 100_000 {
            remote.put(cell_id(&shape, 3, 77, 0), b"changed".to_vec());
            let run = exchange_and_check(
                &mut local,
                &mut remote,
                ExchangeConfig::default(),
                ExchangeConfig::default(),
            );
            let (i, r) = (run.initiator, run.responder.unwrap());
            let messages = i.messages_sent + i.messages_received;
            let bytes = i.bytes_sent + i.bytes_received;
            let nodes = i.nodes_compared + r.nodes_compared;
            let digests = i.cell_digests_received;
            println!(
                "{rows:>8} | one differs   | {messages:>8} | {bytes:>6} | {nodes:>14} | {digests}"
            );
            assert_eq!(i.segments_differing, 1);
            assert_eq!(i.diverged, 1);
            assert_eq!(nodes, 1 + 32 + 32);
            // Only the cells of one segment travel: about rows / 1024 of them.
            let per_segment = u64::from(rows) / u64::from(shape.segments());
            assert!(
                digests < 2 * per_segment,
                "{digests} digests for one segment"
            );
            let all_digests_bytes = u64::from(rows) * 16;
            assert!(
                bytes < tree_bytes / 4 + 2 * per_segment * 60,
                "{bytes} bytes for one difference"
            );
            assert!(bytes * 50 < all_digests_bytes);
        }
    }
    assert!(
        in_sync_bytes.windows(2).all(|w| w[0] == w[1]),
        "bytes of an in-sync exchange must not grow with cells: {in_sync_bytes:?}"
    );
}

/// The first segments differ, then the rest agree: the batches cover every differing segment.
#[test]
fn many_differing_segments_are_batched() {
    let shape = default_shape();
    let mut local = filled(shape, 200, 3_000, 1);
    let mut remote = Replica::new(shape, 200);
    let mut differing = std::collections::BTreeSet::new();
    for (i, (id, bytes)) in local.cells.clone().into_iter().enumerate() {
        if i % 2 == 0 {
            remote.put(id, bytes);
        } else {
            differing.insert(shape.segment_of(id.token));
        }
    }
    let config = ExchangeConfig {
        max_segments_per_request: 16,
        ..ExchangeConfig::default()
    };
    let run = exchange_and_check(&mut local, &mut remote, config, config);
    let stats = run.initiator;
    assert_eq!(stats.segments_differing, differing.len() as u64);
    assert!(stats.segments_differing > 500, "{stats:?}");
    assert_eq!(stats.push, 1_500);
    // One page per batch of 16 segments: each holds fewer than 1024 cells.
    assert_eq!(stats.pages, stats.segments_differing.div_ceil(16));
}

#[test]
fn replicas_in_distinct_partitions_of_the_largest_ring() {
    let shape = TreeShape::new(1 << 16, 32, 32).unwrap();
    for partition in [0, 1, u16::MAX] {
        let mut local = filled(shape, partition, 50, 2);
        let mut remote = filled(shape, partition, 40, 2);
        remote.put(cell_id(&shape, partition, 3, 0), b"x".to_vec());
        let run = exchange_and_check(
            &mut local,
            &mut remote,
            ExchangeConfig::default(),
            ExchangeConfig::default(),
        );
        assert_eq!(run.initiator.push, 20);
        assert_eq!(run.initiator.diverged, 1);
    }
}

/// The driver on its own: a run that never starts the responder times out, not hangs.
#[test]
fn a_silent_peer_times_out() {
    let mut local = filled(default_shape(), 0, 10, 1);
    let mut remote = Replica::new(default_shape(), 0);
    let mut driver = Driver::new(
        &mut local,
        &mut remote,
        ExchangeConfig::default(),
        Some(common::Faults {
            seed: 1,
            drop: 1000,
            duplicate: 0,
            reorder: false,
            early_timeout: 0,
        }),
    );
    let mut initiator = driver.start(1);
    let run = driver.run(&mut initiator, 1_000);
    assert!(
        matches!(
            run.state,
            ExchangeState::Failed(tessera_merkle::MerkleError::TimedOut { seq: 0, retries: 3 })
        ),
        "{run:?}"
    );
    assert_eq!(run.initiator.retransmits, 3);
    assert_eq!(run.initiator.messages_sent, 1 + 3 + 1);
}
