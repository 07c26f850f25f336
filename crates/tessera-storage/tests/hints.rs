//! Hint store behaviour, run against both the in-memory engine and RocksDB:
//! per-target ordering, the per-target bound, deletion, expiry, counts that
//! survive a reopen, an old database without a `hints` column family, and a
//! hint store sharing its engine with a cell store.

use std::sync::Arc;

use tempfile::TempDir;
use tessera_storage::{
    Cell, CellStore, CellValue, CellWrite, ColumnFamily, Context, Engine, EngineRead, Hint,
    HintKey, HintStore, HintTargetStats, MemoryEngine, RocksEngine, RocksOptions, RowKey, RowSlice,
    StorageError, StoreOptions, WriteBatch, DEFAULT_MAX_HINTS_PER_TARGET,
};

/// An engine factory and whatever must outlive it (RocksDB's directory).
trait Fixture {
    type E: Engine;
    fn engine(&mut self) -> Self::E;
}

struct Memory(MemoryEngine);

impl Fixture for Memory {
    type E = MemoryEngine;
    /// Clones share data, so a second call "reopens" the same engine.
    fn engine(&mut self) -> MemoryEngine {
        self.0.clone()
    }
}

struct Rocks(TempDir);

fn rocks_options() -> RocksOptions {
    RocksOptions {
        sync_writes: false,
        block_cache_bytes: 8 << 20,
        write_buffer_bytes: 4 << 20,
        ..RocksOptions::default()
    }
}

impl Fixture for Rocks {
    type E = RocksEngine;
    /// Opens the directory; drop the previous engine first to "reopen".
    fn engine(&mut self) -> RocksEngine {
        RocksEngine::open(self.0.path(), &rocks_options()).unwrap()
    }
}

fn memory() -> Memory {
    Memory(MemoryEngine::new())
}

fn rocks() -> Rocks {
    Rocks(tempfile::tempdir().unwrap())
}

fn store<E: Engine>(engine: E) -> HintStore<E> {
    HintStore::new(engine)
}

fn hint(target: &str, key: &str, value: &str, at: u64) -> Hint {
    let cell = Cell::new().write(
        &Context::new(),
        &7,
        CellValue::value(value.as_bytes().to_vec(), at),
    );
    Hint {
        target: target.to_owned(),
        row: RowKey::new(3, 9, 0xfeed, key.as_bytes().to_vec()),
        cells: vec![(b"col".to_vec(), cell)],
        stored_at_ms: at,
    }
}

fn values(hints: &[(HintKey, Hint)]) -> Vec<String> {
    hints
        .iter()
        .map(|(_, h)| String::from_utf8(h.row.key.clone()).unwrap())
        .collect()
}

fn stored_then_read_oldest_first<F: Fixture>(mut f: F) {
    let s = store(f.engine());
    assert!(s.targets().unwrap().is_empty());
    // Stored out of time order, and interleaved with a target whose name
    // extends this one's: neither may leak into the other's range.
    s.store(&hint("n1", "b", "v", 200)).unwrap();
    s.store(&hint("n10", "x", "v", 50)).unwrap();
    s.store(&hint("n1", "a", "v", 100)).unwrap();
    s.store(&hint("n1", "c", "v", 200)).unwrap();
    s.store(&hint("n0", "y", "v", 300)).unwrap();
    let n1 = s.oldest("n1", usize::MAX).unwrap();
    // Oldest first; equal times in the order they were stored.
    assert_eq!(values(&n1), ["a", "b", "c"]);
    assert!(n1.iter().all(|(k, h)| k.target == "n1" && h.target == "n1"));
    assert_eq!(n1[0].1, hint("n1", "a", "v", 100));
    assert_eq!(values(&s.oldest("n1", 2).unwrap()), ["a", "b"]);
    assert_eq!(values(&s.oldest("n10", 10).unwrap()), ["x"]);
    assert!(s.oldest("n2", 10).unwrap().is_empty());
    let targets: Vec<(String, u64)> = s
        .targets()
        .unwrap()
        .into_iter()
        .map(|t| (t.target, t.count))
        .collect();
    assert_eq!(
        targets,
        [("n0".into(), 1), ("n1".into(), 3), ("n10".into(), 1)]
    );
    assert!(s.targets().unwrap().iter().all(|t| t.bytes > 20));
    assert_eq!(s.count("n1").unwrap(), 3);
    assert_eq!(s.count("nobody").unwrap(), 0);
    // Hints do not show up as data.
    assert!(s
        .engine()
        .scan(ColumnFamily::Data, &[], None, 10)
        .unwrap()
        .is_empty());
}

fn delete_removes_exactly_the_given_hints<F: Fixture>(mut f: F) {
    let s = store(f.engine());
    let keys: Vec<HintKey> = (0..5)
        .map(|i| s.store(&hint("n1", &format!("k{i}"), "v", 10 + i)).unwrap())
        .collect();
    s.store(&hint("n2", "other", "v", 1)).unwrap();
    let before = s.targets().unwrap();
    assert_eq!(s.delete(&keys[1..3]).unwrap(), 2);
    // Deleting again (already gone) changes nothing.
    assert_eq!(s.delete(&keys[1..3]).unwrap(), 0);
    assert_eq!(values(&s.oldest("n1", 10).unwrap()), ["k0", "k3", "k4"]);
    let after = s.targets().unwrap();
    assert_eq!(after[0].count, 3);
    assert!(after[0].bytes < before[0].bytes);
    assert_eq!(after[1], before[1], "n2 untouched");
    assert_eq!(
        s.delete(&[keys[0].clone(), keys[3].clone(), keys[4].clone()])
            .unwrap(),
        3
    );
    assert_eq!(s.count("n1").unwrap(), 0);
    let targets: Vec<String> = s.targets().unwrap().into_iter().map(|t| t.target).collect();
    assert_eq!(targets, ["n2"], "a target without hints is not listed");
}

fn the_per_target_bound_refuses_more<F: Fixture>(mut f: F) {
    let s = store(f.engine());
    assert_eq!(s.max_per_target(), DEFAULT_MAX_HINTS_PER_TARGET);
    let s = s.with_max_per_target(3);
    for i in 0..3 {
        s.store(&hint("n1", &format!("k{i}"), "v", i)).unwrap();
    }
    match s.store(&hint("n1", "k3", "v", 3)) {
        Err(StorageError::HintLimit { target, count, max }) => {
            assert_eq!((target.as_str(), count, max), ("n1", 3, 3));
        }
        other => panic!("{other:?}"),
    }
    let message = s.store(&hint("n1", "k3", "v", 3)).unwrap_err().to_string();
    assert!(
        message.contains("n1") && message.contains("3 hints"),
        "{message}"
    );
    // Other targets have their own bound; deleting makes room again.
    s.store(&hint("n2", "k", "v", 0)).unwrap();
    let oldest = s.oldest("n1", 1).unwrap();
    s.delete(&[oldest[0].0.clone()]).unwrap();
    s.store(&hint("n1", "k3", "v", 3)).unwrap();
    assert_eq!(s.count("n1").unwrap(), 3);
}

fn expired_hints_are_purged_per_target<F: Fixture>(mut f: F) {
    let s = store(f.engine());
    for at in [100, 200, 299, 300, 301, 500] {
        s.store(&hint("n1", &format!("t{at}"), "v", at)).unwrap();
    }
    s.store(&hint("n2", "t50", "v", 50)).unwrap();
    s.store(&hint("n3", "t900", "v", 900)).unwrap();
    // Window 700 at 1000: everything stored before 300 is older than that.
    let purged = s.purge_expired(1_000, 700).unwrap();
    let summary: Vec<(String, u64)> = purged.iter().map(|p| (p.target.clone(), p.count)).collect();
    assert_eq!(summary, [("n1".into(), 3), ("n2".into(), 1)]);
    assert!(purged.iter().all(|p| p.bytes > 0));
    assert_eq!(
        values(&s.oldest("n1", 10).unwrap()),
        ["t300", "t301", "t500"],
        "a hint exactly as old as the window is kept"
    );
    assert_eq!(s.count("n1").unwrap(), 3);
    assert_eq!(s.count("n2").unwrap(), 0);
    assert_eq!(s.count("n3").unwrap(), 1);
    assert!(s.purge_expired(1_000, 700).unwrap().is_empty());
    // A window longer than the clock (now < max age) expires nothing.
    assert!(s.purge_expired(10, 1_000_000).unwrap().is_empty());
    assert_eq!(
        s.purge_expired(u64::MAX, 0)
            .unwrap()
            .iter()
            .map(|p| p.count)
            .sum::<u64>(),
        4
    );
    assert!(s.targets().unwrap().is_empty());
}

fn many_hints_are_purged_in_chunks<F: Fixture>(mut f: F) {
    let s = store(f.engine());
    for i in 0..600u64 {
        s.store(&hint("n1", &format!("k{i}"), "v", i)).unwrap();
    }
    let purged = s.purge_expired(10_000, 9_500).unwrap();
    assert_eq!(purged[0].count, 500);
    assert_eq!(s.count("n1").unwrap(), 100);
    assert_eq!(s.oldest("n1", usize::MAX).unwrap().len(), 100);
}

fn counts_and_sequences_survive_a_reopen<F: Fixture>(mut f: F) {
    let first_keys: Vec<HintKey>;
    let before: Vec<HintTargetStats>;
    {
        let s = store(f.engine());
        first_keys = (0..3)
            .map(|i| s.store(&hint("n1", &format!("k{i}"), "v", 5)).unwrap())
            .collect();
        s.store(&hint("n2", "k", "v", 5)).unwrap();
        before = s.targets().unwrap();
    }
    let s = store(f.engine()).with_max_per_target(4);
    assert_eq!(s.targets().unwrap(), before);
    // Same millisecond as before the reopen: the sequence must not repeat.
    let key = s.store(&hint("n1", "k3", "v", 5)).unwrap();
    assert!(first_keys.iter().all(|k| k.sequence < key.sequence));
    assert_eq!(s.count("n1").unwrap(), 4);
    assert!(matches!(
        s.store(&hint("n1", "k4", "v", 5)),
        Err(StorageError::HintLimit { count: 4, .. })
    ));
}

fn invalid_and_corrupt_hints_are_errors<F: Fixture>(mut f: F) {
    let s = store(f.engine());
    assert!(matches!(
        s.store(&hint("", "k", "v", 1)),
        Err(StorageError::InvalidBatch { .. })
    ));
    let mut long_key = hint("n1", "k", "v", 1);
    long_key.row.key = vec![0; 70_000];
    assert!(matches!(
        s.store(&long_key),
        Err(StorageError::KeyTooLong { .. })
    ));
    let key = s.store(&hint("n1", "k", "v", 1)).unwrap();
    let mut batch = WriteBatch::new();
    batch.put(
        ColumnFamily::Hints,
        key.encode().unwrap(),
        b"\x01garbage".to_vec(),
    );
    s.engine().write(batch).unwrap();
    assert!(matches!(
        s.oldest("n1", 10),
        Err(StorageError::Corrupt { what: "hint", .. })
    ));
}

/// The node's layout: a cell store and a hint store over one engine, each in its own column
/// family, neither seeing the other's records.
fn cells_and_hints_share_one_engine<F: Fixture>(mut f: F) {
    let engine = Arc::new(f.engine());
    let cells: CellStore<F::E> = CellStore::new(engine.clone(), StoreOptions::new(1));
    let hints: HintStore<F::E> = HintStore::new(engine.clone());
    let row = RowKey::new(3, 9, 0xfeed, b"k".to_vec());
    cells
        .write_row(
            &row,
            &[CellWrite::Set {
                column: b"col".to_vec(),
                value: b"cell".to_vec(),
                context: Context::new(),
            }],
            1,
        )
        .unwrap();
    hints.store(&hint("n1", "k", "hinted", 1)).unwrap();
    let page = cells.read_row(&row, &RowSlice::default()).unwrap();
    assert_eq!(page.cells.len(), 1);
    assert_eq!(hints.count("n1").unwrap(), 1);
    assert_eq!(values(&hints.oldest("n1", 10).unwrap()), ["k"]);
    // A snapshot of the shared engine holds both, each in its own family.
    let snapshot = engine.snapshot();
    drop((cells, hints));
    assert_eq!(
        snapshot
            .scan(ColumnFamily::Data, &[], None, 10)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        snapshot
            .scan(ColumnFamily::Hints, &[], None, 10)
            .unwrap()
            .len(),
        1
    );
}

macro_rules! for_each_engine {
    ($($test:ident),* $(,)?) => {
        mod memory_engine {
            $( #[test] fn $test() { super::$test(super::memory()) } )*
        }
        mod rocksdb_engine {
            $( #[test] fn $test() { super::$test(super::rocks()) } )*
        }
    };
}

for_each_engine!(
    stored_then_read_oldest_first,
    delete_removes_exactly_the_given_hints,
    the_per_target_bound_refuses_more,
    expired_hints_are_purged_per_target,
    many_hints_are_purged_in_chunks,
    counts_and_sequences_survive_a_reopen,
    invalid_and_corrupt_hints_are_errors,
    cells_and_hints_share_one_engine,
);

/// A database written before the `hints` column family existed opens, keeps
/// its data, and takes hints.
#[test]
fn an_old_database_gains_the_hints_column_family() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut options = rocksdb::Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let db = rocksdb::DB::open_cf(&options, dir.path(), ["data", "meta"]).unwrap();
        db.put_cf(db.cf_handle("meta").unwrap(), b"node", b"7")
            .unwrap();
    }
    let s = store(RocksEngine::open(dir.path(), &rocks_options()).unwrap());
    assert_eq!(
        s.engine().get(ColumnFamily::Meta, b"node").unwrap(),
        Some(b"7".to_vec())
    );
    s.store(&hint("n1", "k", "v", 1)).unwrap();
    assert_eq!(s.count("n1").unwrap(), 1);
}
