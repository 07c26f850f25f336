//! The anti-entropy tree kept by writes equals the tree rebuilt from a scan, after any mix of
//! coordinator writes, replica merges, row deletes, batches and partition drops, on both
//! engines; and a store written without trees is repaired by one check.
//!
//! The property draws new cases on every run (no pinned seed); proptest keeps any failure it
//! finds in `trees.proptest-regressions`, which is replayed first.

use proptest::prelude::*;
use tempfile::TempDir;
use tessera_merkle::TreeShape;
use tessera_storage::{
    Cell, CellStore, CellValue, CellWrite, Context, Engine, MemoryEngine, RocksEngine,
    RocksOptions, RowKey, RowOp, StoreOptions,
};

/// 4 partitions of 4 x 4 segments: few enough that cells share segments and branches.
fn shape() -> TreeShape {
    TreeShape::new(4, 4, 4).unwrap()
}

const TABLES: [u32; 2] = [1, 9];

fn row(table: u32, token: u64, key: u8) -> RowKey {
    RowKey::new(table, shape().partition_of(token), token, vec![key])
}

#[derive(Clone, Debug)]
enum Op {
    /// A coordinator write of `value` (None: a delete), with the cell's context or blind.
    Write {
        table: u32,
        token: u64,
        key: u8,
        column: u8,
        value: Option<u8>,
        with_context: bool,
    },
    /// A replica merge of a cell written by another actor.
    Merge {
        table: u32,
        token: u64,
        key: u8,
        column: u8,
        value: Option<u8>,
    },
    /// Tombstones a whole row.
    DeleteRow { table: u32, token: u64, key: u8 },
    /// Two writes of different rows in one batch.
    Batch {
        table: u32,
        tokens: (u64, u64),
        column: u8,
    },
    /// Drops one partition.
    Drop { table: u32, partition: u16 },
}

fn token() -> impl Strategy<Value = u64> {
    // Few distinct tokens, so that rows are written more than once, spread over partitions.
    (0u64..4, 0u64..6).prop_map(|(p, t)| (p << 62) | (t << 40))
}

fn op() -> impl Strategy<Value = Op> {
    let table = prop::sample::select(TABLES.to_vec());
    prop_oneof![
        5 => (table.clone(), token(), 0u8..3, 0u8..3, prop::option::of(any::<u8>()), any::<bool>())
            .prop_map(|(table, token, key, column, value, with_context)| Op::Write {
                table, token, key, column, value, with_context
            }),
        3 => (table.clone(), token(), 0u8..3, 0u8..3, prop::option::of(any::<u8>()))
            .prop_map(|(table, token, key, column, value)| Op::Merge {
                table, token, key, column, value
            }),
        1 => (table.clone(), token(), 0u8..3)
            .prop_map(|(table, token, key)| Op::DeleteRow { table, token, key }),
        1 => (table.clone(), token(), token(), 0u8..3)
            .prop_map(|(table, a, b, column)| Op::Batch { table, tokens: (a, b), column }),
        1 => (table, 0u16..4).prop_map(|(table, partition)| Op::Drop { table, partition }),
    ]
}

fn write(column: u8, value: Option<u8>, context: Context) -> CellWrite {
    match value {
        Some(v) => CellWrite::Set {
            column: vec![column],
            value: vec![v],
            context,
        },
        None => CellWrite::Delete {
            column: vec![column],
            context,
        },
    }
}

fn apply<E: Engine>(store: &CellStore<E>, other: &CellStore<MemoryEngine>, op: &Op, now: u64) {
    match op {
        Op::Write {
            table,
            token,
            key,
            column,
            value,
            with_context,
        } => {
            let row = row(*table, *token, *key);
            let context = if *with_context {
                store.read_context(&row, &[*column]).unwrap()
            } else {
                Context::new()
            };
            // A write past the sibling cap is refused and changes nothing; that is fine here.
            let _ = store.write_row(&row, &[write(*column, *value, context)], now);
        }
        Op::Merge {
            table,
            token,
            key,
            column,
            value,
        } => {
            let row = row(*table, *token, *key);
            let written = other
                .write_row(&row, &[write(*column, *value, Context::new())], now)
                .unwrap();
            store.merge_row(&row, &written).unwrap();
        }
        Op::DeleteRow { table, token, key } => {
            store.delete_row(&row(*table, *token, *key), now).unwrap();
        }
        Op::Batch {
            table,
            tokens,
            column,
        } => {
            let (a, b) = (row(*table, tokens.0, 0), row(*table, tokens.1, 1));
            let writes = [write(*column, Some(1), Context::new())];
            let merged = [(
                vec![*column],
                Cell::from_value(CellValue::value(vec![2], now)),
            )];
            store.apply(&[
                RowOp::Write {
                    row: &a,
                    writes: &writes,
                    now_ms: now,
                },
                RowOp::Merge {
                    row: &b,
                    cells: &merged,
                },
            ]);
        }
        Op::Drop { table, partition } => store.drop_partition(*table, *partition).unwrap(),
    }
}

fn assert_trees_match<E: Engine>(store: &CellStore<E>) {
    for table in TABLES {
        for partition in 0..4 {
            let check = store.check_tree(table, partition, false).unwrap();
            assert_eq!(
                check.differing,
                Vec::new(),
                "table {table} partition {partition}: kept tree differs from the rebuilt one"
            );
            assert_eq!(check.kept.inconsistencies(), Vec::new());
        }
    }
}

fn run<E: Engine>(engine: E, ops: &[Op]) {
    let store = CellStore::new(engine, StoreOptions::new(1)).with_trees(shape());
    let other = CellStore::new(MemoryEngine::new(), StoreOptions::new(2));
    for (i, op) in ops.iter().enumerate() {
        apply(&store, &other, op, 1000 + i as u64);
    }
    assert_trees_match(&store);
}

fn rocks() -> (RocksEngine, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let engine = RocksEngine::open(
        dir.path(),
        &RocksOptions {
            sync_writes: false,
            block_cache_bytes: 8 << 20,
            write_buffer_bytes: 4 << 20,
            ..RocksOptions::default()
        },
    )
    .unwrap();
    (engine, dir)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn kept_tree_equals_rebuilt_tree_in_memory(ops in prop::collection::vec(op(), 1..60)) {
        run(MemoryEngine::new(), &ops);
    }

    #[test]
    fn kept_tree_equals_rebuilt_tree_in_rocksdb(ops in prop::collection::vec(op(), 1..60)) {
        let (engine, _dir) = rocks();
        run(engine, &ops);
    }
}

#[test]
fn a_store_written_without_trees_is_repaired_by_one_check() {
    let engine = MemoryEngine::new();
    let old = CellStore::new(engine.clone(), StoreOptions::new(1));
    let other = CellStore::new(MemoryEngine::new(), StoreOptions::new(2));
    for i in 0..40u64 {
        let op = Op::Write {
            table: 1,
            token: (i % 4) << 62 | i << 20,
            key: (i % 3) as u8,
            column: (i % 2) as u8,
            value: Some(i as u8),
            with_context: false,
        };
        apply(&old, &other, &op, i);
    }
    let upgraded = CellStore::new(engine, StoreOptions::new(1)).with_trees(shape());
    let check = upgraded.check_tree(1, 0, true).unwrap();
    assert!(
        !check.differing.is_empty(),
        "no tree was kept before the upgrade"
    );
    assert!(check.repaired);
    assert!(check.cells > 0);
    assert_eq!(
        upgraded.load_tree(1, 0).unwrap(),
        upgraded.rebuild_tree(1, 0).unwrap()
    );
    assert_trees_match(&{
        for p in 1..4 {
            upgraded.check_tree(1, p, true).unwrap();
        }
        upgraded
    });
}

#[test]
fn a_repair_is_right_even_with_writes_after_its_snapshot() {
    let store = CellStore::new(MemoryEngine::new(), StoreOptions::new(1)).with_trees(shape());
    let row = row(1, 5 << 40, 1);
    store
        .write_row(&row, &[write(0, Some(1), Context::new())], 1)
        .unwrap();
    // Damage the kept tree: drop it as if it had never been written.
    let (start, end) = tessera_storage::merkle::tree_range(1, 0);
    let mut batch = tessera_storage::WriteBatch::new();
    batch.delete_range(tessera_storage::ColumnFamily::Merkle, start, end);
    store.engine().write(batch).unwrap();
    assert!(!store.check_tree(1, 0, true).unwrap().differing.is_empty());
    store
        .write_row(&row, &[write(1, Some(2), Context::new())], 2)
        .unwrap();
    assert!(store.check_tree(1, 0, false).unwrap().differing.is_empty());
}
