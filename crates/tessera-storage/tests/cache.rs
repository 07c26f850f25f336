//! The cell cache: a store with it must mean exactly what a store without it means, op by op
//! and in what is stored, through evictions and failed engine writes; and it must actually serve
//! reads.

mod common;

use std::sync::atomic::Ordering;

use common::{column, owned_op, row, Owned, Probe};
use proptest::prelude::*;
use tessera_storage::{
    Cell, CellStore, CellValue, CellWrite, ColumnFamily, Context, EngineRead, KvPairs,
    StoreOptions, LOCK_STRIPES,
};

/// A cache so small (a few hundred bytes per shard) that it evicts all the time.
const TINY_CACHE: usize = LOCK_STRIPES * 600;

fn store(cache_bytes: usize) -> CellStore<Probe> {
    let mut options = StoreOptions::new(1);
    options.max_siblings = 3;
    CellStore::new(Probe::default(), options).with_cell_cache_bytes(cache_bytes)
}

fn contents(store: &CellStore<Probe>) -> KvPairs {
    store
        .engine()
        .scan(ColumnFamily::Data, &[], None, usize::MAX)
        .unwrap()
}

#[derive(Clone, Debug)]
enum Step {
    Apply(Vec<Owned>),
    DeleteRow(u8),
    Read(u8, Vec<u8>),
    /// Engine writes fail (true) or succeed from here on.
    FailWrites(bool),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => prop::collection::vec(owned_op(), 1..5).prop_map(Step::Apply),
        1 => (0u8..3).prop_map(Step::DeleteRow),
        4 => (0u8..3, column()).prop_map(|(key, column)| Step::Read(key, column)),
        1 => any::<bool>().prop_map(Step::FailWrites),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn a_cached_store_means_what_an_uncached_one_means(
        steps in prop::collection::vec(step(), 1..40),
        cache_bytes in prop_oneof![Just(TINY_CACHE), Just(64 << 20)],
    ) {
        let cached = store(cache_bytes);
        let plain = store(0);
        for step in &steps {
            match step {
                Step::Apply(ops) => {
                    let views: Vec<_> = ops.iter().map(Owned::op).collect();
                    prop_assert_eq!(cached.apply(&views), plain.apply(&views));
                }
                Step::DeleteRow(key) => {
                    let r = row(*key);
                    prop_assert_eq!(
                        format!("{:?}", cached.delete_row(&r, 9)),
                        format!("{:?}", plain.delete_row(&r, 9))
                    );
                }
                Step::Read(key, column) => {
                    let r = row(*key);
                    prop_assert_eq!(
                        format!("{:?}", cached.read_cell(&r, column)),
                        format!("{:?}", plain.read_cell(&r, column))
                    );
                    prop_assert_eq!(
                        format!("{:?}", cached.read_context(&r, column)),
                        format!("{:?}", plain.read_context(&r, column))
                    );
                }
                Step::FailWrites(fail) => {
                    cached.engine().fail_writes.store(*fail, Ordering::SeqCst);
                    plain.engine().fail_writes.store(*fail, Ordering::SeqCst);
                }
            }
            prop_assert_eq!(contents(&cached), contents(&plain));
        }
        // Every cell the cache may hold reads back as the engine holds it.
        for key in 0..3 {
            for c in 0..3 {
                let column = [b'c', c];
                prop_assert_eq!(
                    cached.read_cell(&row(key), &column).unwrap(),
                    plain.read_cell(&row(key), &column).unwrap()
                );
            }
        }
    }
}

fn set(column: &str, value: &str, context: Context) -> CellWrite {
    CellWrite::Set {
        column: column.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
        context,
    }
}

fn gets(store: &CellStore<Probe>) -> usize {
    store.engine().gets.load(Ordering::SeqCst)
}

#[test]
fn written_cells_are_read_from_the_cache_not_the_engine() {
    let cached = store(64 << 20);
    let r = row(1);
    let written = cached
        .write_row(&r, &[set("c", "v1", Context::new())], 1)
        .unwrap();
    let before = gets(&cached);
    for _ in 0..10 {
        let cell = cached.read_cell(&r, b"c").unwrap();
        assert_eq!(cell.as_ref(), Some(&written[0].1));
        assert_eq!(cached.read_context(&r, b"c").unwrap(), written[0].1.join());
    }
    // The coordinator's next write and a replica's merge of it read the cached cell too.
    let context = written[0].1.join();
    let rewritten = cached.write_row(&r, &[set("c", "v2", context)], 2).unwrap();
    cached.merge_row(&r, &rewritten).unwrap();
    assert_eq!(gets(&cached), before, "every read was served by the cache");

    let plain = store(0);
    plain
        .write_row(&r, &[set("c", "v1", Context::new())], 1)
        .unwrap();
    let before = gets(&plain);
    plain.read_cell(&r, b"c").unwrap();
    assert_eq!(
        gets(&plain),
        before + 1,
        "without the cache, reads go to the engine"
    );
}

#[test]
fn a_failed_write_leaves_the_cache_saying_what_the_engine_holds() {
    let cached = store(64 << 20);
    let r = row(2);
    let first = cached
        .write_row(&r, &[set("c", "v1", Context::new())], 1)
        .unwrap();
    cached.engine().fail_writes.store(true, Ordering::SeqCst);
    let context = first[0].1.join();
    assert!(cached
        .write_row(&r, &[set("c", "v2", context.clone())], 2)
        .is_err());
    let remote = Cell::new().write(&Context::new(), &7, CellValue::value(b"r".to_vec(), 3));
    assert!(cached.merge_row(&r, &[(b"c".to_vec(), remote)]).is_err());
    cached.engine().fail_writes.store(false, Ordering::SeqCst);
    assert_eq!(
        cached.read_cell(&r, b"c").unwrap().as_ref(),
        Some(&first[0].1)
    );
    // And the next write builds on what is stored, not on the failed write.
    let next = cached.write_row(&r, &[set("c", "v3", context)], 4).unwrap();
    assert_eq!(next[0].1.sibling_count(), 1);
}
