//! A conformance suite that every [`Engine`] must pass.
//!
//! The in-memory engine stands in for RocksDB in simulations, which is only
//! sound if the two behave identically; running this one suite against both
//! is how we know they do. It is public, behind the `test-support` feature, so
//! engines written elsewhere (for example a fault-injecting wrapper) can be
//! held to the same contract; product builds do not compile it. Failures
//! panic, as in any test.

use crate::cell::{Cell, CellValue};
use crate::engine::{ColumnFamily, Engine, EngineRead, KvPairs as Pairs, WriteBatch};
use crate::keys::{partition_range, RowKey};
use crate::store::{CellStore, StoreOptions};

type Check<E> = fn(&E);

/// Runs every check, each on a fresh engine from `make`.
pub fn run_all<E: Engine>(make: &mut dyn FnMut() -> E) {
    let checks: &[(&str, Check<E>)] = &[
        ("get_put_overwrite_delete", get_put_overwrite_delete),
        ("later_ops_in_a_batch_win", later_ops_in_a_batch_win),
        ("delete_range", delete_range),
        ("xor_merges_of_tree_nodes", xor_merges_of_tree_nodes),
        ("scan_bounds", scan_bounds),
        ("scan_limit", scan_limit),
        ("big_batch_is_all_visible", big_batch_is_all_visible),
        (
            "batches_are_atomic_to_concurrent_scans",
            batches_are_atomic_to_concurrent_scans,
        ),
        ("column_families_are_isolated", column_families_are_isolated),
        ("empty_keys_and_values", empty_keys_and_values),
        ("large_values", large_values),
        ("binary_keys_sort_bytewise", binary_keys_sort_bytewise),
        ("stats", stats),
        ("iter_order_and_bounds", iter_order_and_bounds),
        (
            "iter_reads_as_of_its_creation",
            iter_reads_as_of_its_creation,
        ),
        (
            "snapshot_sees_exactly_what_was_there",
            snapshot_sees_exactly_what_was_there,
        ),
        (
            "snapshot_is_isolated_from_later_writes",
            snapshot_is_isolated_from_later_writes,
        ),
        (
            "snapshot_dropped_after_more_writes",
            snapshot_dropped_after_more_writes,
        ),
        (
            "iterating_a_snapshot_while_writing",
            iterating_a_snapshot_while_writing,
        ),
        (
            "estimate_range_sizes_ranges_on_disk_and_in_memory",
            estimate_range_sizes_ranges_on_disk_and_in_memory,
        ),
    ];
    for (name, check) in checks {
        // Shown with the panic message when a check fails.
        eprintln!("engine conformance: {name}");
        let engine = make();
        check(&engine);
    }
    eprintln!("engine conformance: snapshot_outlives_its_engine");
    snapshot_outlives_its_engine(make());
    eprintln!("engine conformance: dropping_a_partition_removes_exactly_its_cells");
    dropping_a_partition_removes_exactly_its_cells(make());
}

fn put<E: Engine>(engine: &E, cf: ColumnFamily, key: &[u8], value: &[u8]) {
    let mut batch = WriteBatch::new();
    batch.put(cf, key, value);
    engine.write(batch).unwrap();
}

fn scan_all<E: Engine>(engine: &E, cf: ColumnFamily) -> Pairs {
    engine.scan(cf, &[], None, usize::MAX).unwrap()
}

fn keys(pairs: &Pairs) -> Vec<Vec<u8>> {
    pairs.iter().map(|(k, _)| k.clone()).collect()
}

fn owned(keys: &[&[u8]]) -> Vec<Vec<u8>> {
    keys.iter().map(|k| k.to_vec()).collect()
}

fn fill<E: Engine>(engine: &E, cf: ColumnFamily, keys: &[&[u8]]) {
    let mut batch = WriteBatch::new();
    for key in keys {
        batch.put(cf, *key, [b"v:".as_slice(), key].concat());
    }
    engine.write(batch).unwrap();
}

fn get_put_overwrite_delete<E: Engine>(engine: &E) {
    let cf = ColumnFamily::Data;
    assert_eq!(engine.get(cf, b"k").unwrap(), None);
    put(engine, cf, b"k", b"one");
    assert_eq!(engine.get(cf, b"k").unwrap(), Some(b"one".to_vec()));
    put(engine, cf, b"k", b"two");
    assert_eq!(engine.get(cf, b"k").unwrap(), Some(b"two".to_vec()));

    let mut batch = WriteBatch::new();
    batch.delete(cf, b"k".as_slice());
    batch.delete(cf, b"never-written".as_slice());
    engine.write(batch).unwrap();
    assert_eq!(engine.get(cf, b"k").unwrap(), None);
    assert!(scan_all(engine, cf).is_empty());

    // An empty batch is a valid no-op.
    engine.write(WriteBatch::new()).unwrap();
}

fn later_ops_in_a_batch_win<E: Engine>(engine: &E) {
    let cf = ColumnFamily::Data;
    let mut batch = WriteBatch::new();
    batch.put(cf, b"a".as_slice(), b"1".as_slice());
    batch.delete(cf, b"a".as_slice());
    batch.delete(cf, b"b".as_slice());
    batch.put(cf, b"b".as_slice(), b"2".as_slice());
    batch.put(cf, b"c".as_slice(), b"3".as_slice());
    batch.put(cf, b"c".as_slice(), b"4".as_slice());
    batch.put(cf, b"d".as_slice(), b"5".as_slice());
    batch.delete_range(cf, b"d".as_slice(), b"e".as_slice());
    engine.write(batch).unwrap();
    assert_eq!(
        scan_all(engine, cf),
        vec![
            (b"b".to_vec(), b"2".to_vec()),
            (b"c".to_vec(), b"4".to_vec())
        ]
    );
}

fn delete_range<E: Engine>(engine: &E) {
    let cf = ColumnFamily::Data;
    let all: &[&[u8]] = &[b"a", b"b", b"b\x00", b"ba", b"c", b"d", b"e"];
    fill(engine, cf, all);
    fill(engine, ColumnFamily::Meta, all);

    let mut batch = WriteBatch::new();
    batch.delete_range(cf, b"b".as_slice(), b"d".as_slice());
    // Inverted and empty ranges are no-ops, not errors.
    batch.delete_range(cf, b"e".as_slice(), b"a".as_slice());
    batch.delete_range(cf, b"a".as_slice(), b"a".as_slice());
    engine.write(batch).unwrap();

    assert_eq!(keys(&scan_all(engine, cf)), owned(&[b"a", b"d", b"e"]));
    // The same keys in another family are untouched.
    assert_eq!(keys(&scan_all(engine, ColumnFamily::Meta)), owned(all));

    // A range past every key, and one covering all of them.
    let mut batch = WriteBatch::new();
    batch.delete_range(cf, b"x".as_slice(), b"z".as_slice());
    engine.write(batch).unwrap();
    assert_eq!(scan_all(engine, cf).len(), 3);
    let mut batch = WriteBatch::new();
    batch.delete_range(cf, b"".as_slice(), b"\xff\xff".as_slice());
    engine.write(batch).unwrap();
    assert!(scan_all(engine, cf).is_empty());

    // Keys can be written again after a range delete.
    put(engine, cf, b"c", b"again");
    assert_eq!(engine.get(cf, b"c").unwrap(), Some(b"again".to_vec()));
}

fn scan_bounds<E: Engine>(engine: &E) {
    let cf = ColumnFamily::Data;
    fill(engine, cf, &[b"a", b"b", b"c", b"d", b"e"]);
    let scan = |start: &[u8], end: Option<&[u8]>| keys(&engine.scan(cf, start, end, 100).unwrap());

    assert_eq!(
        scan(b"b", Some(b"d")),
        owned(&[b"b", b"c"]),
        "start inclusive, end exclusive"
    );
    assert_eq!(
        scan(b"bb", Some(b"dd")),
        owned(&[b"c", b"d"]),
        "absent bounds"
    );
    assert_eq!(scan(b"c", None), owned(&[b"c", b"d", b"e"]), "open end");
    assert_eq!(scan(b"", None).len(), 5, "everything");
    assert_eq!(
        scan(b"", Some(b"a")),
        Vec::<Vec<u8>>::new(),
        "before the first key"
    );
    assert_eq!(
        scan(b"f", None),
        Vec::<Vec<u8>>::new(),
        "after the last key"
    );
    assert_eq!(scan(b"c", Some(b"c")), Vec::<Vec<u8>>::new(), "empty range");
    assert_eq!(
        scan(b"d", Some(b"b")),
        Vec::<Vec<u8>>::new(),
        "inverted range"
    );

    let pairs = engine.scan(cf, b"a", Some(b"b"), 10).unwrap();
    assert_eq!(
        pairs,
        vec![(b"a".to_vec(), b"v:a".to_vec())],
        "values come back"
    );
}

fn scan_limit<E: Engine>(engine: &E) {
    let cf = ColumnFamily::Data;
    let mut batch = WriteBatch::new();
    for i in 0u16..100 {
        batch.put(cf, i.to_be_bytes(), i.to_le_bytes());
    }
    engine.write(batch).unwrap();

    assert!(engine.scan(cf, &[], None, 0).unwrap().is_empty());
    assert_eq!(
        keys(&engine.scan(cf, &[], None, 1).unwrap()),
        vec![vec![0, 0]]
    );
    let ten = engine.scan(cf, &5u16.to_be_bytes(), None, 10).unwrap();
    assert_eq!(ten.len(), 10);
    assert_eq!(ten[0].0, 5u16.to_be_bytes().to_vec());
    assert_eq!(ten[9].0, 14u16.to_be_bytes().to_vec());
    assert_eq!(engine.scan(cf, &[], None, 100).unwrap().len(), 100);
    assert_eq!(engine.scan(cf, &[], None, 1000).unwrap().len(), 100);
    // Limit and end bound together: whichever stops first.
    let bounded = engine.scan(cf, &[], Some(&3u16.to_be_bytes()), 10).unwrap();
    assert_eq!(bounded.len(), 3);
}

fn big_batch_is_all_visible<E: Engine>(engine: &E) {
    let mut batch = WriteBatch::new();
    for i in 0u32..5_000 {
        batch.put(ColumnFamily::Data, i.to_be_bytes(), i.to_le_bytes());
        batch.put(ColumnFamily::Meta, i.to_be_bytes(), b"m".as_slice());
    }
    assert_eq!(batch.len(), 10_000);
    engine.write(batch).unwrap();

    let data = scan_all(engine, ColumnFamily::Data);
    assert_eq!(data.len(), 5_000);
    for (i, (key, value)) in (0u32..).zip(&data) {
        assert_eq!(key, &i.to_be_bytes().to_vec());
        assert_eq!(value, &i.to_le_bytes().to_vec());
    }
    assert_eq!(scan_all(engine, ColumnFamily::Meta).len(), 5_000);
}

/// Writers replace a group of keys together; a scan must never see a mix of
/// two generations.
fn batches_are_atomic_to_concurrent_scans<E: Engine>(engine: &E) {
    const KEYS: u8 = 20;
    const WRITERS: u32 = 4;
    const ROUNDS: u32 = 100;
    let cf = ColumnFamily::Data;
    let write_generation = |generation: u32| {
        let mut batch = WriteBatch::new();
        for k in 0..KEYS {
            batch.put(cf, [b'k', k], generation.to_be_bytes());
        }
        engine.write(batch).unwrap();
    };
    write_generation(0);
    std::thread::scope(|scope| {
        for writer in 0..WRITERS {
            scope.spawn(move || {
                for round in 0..ROUNDS {
                    write_generation(1 + writer * ROUNDS + round);
                }
            });
        }
        for _ in 0..2 {
            scope.spawn(|| {
                for _ in 0..200 {
                    let pairs = engine.scan(cf, b"k", Some(b"l"), usize::MAX).unwrap();
                    assert_eq!(pairs.len(), KEYS as usize);
                    let first = &pairs[0].1;
                    assert!(
                        pairs.iter().all(|(_, v)| v == first),
                        "a scan saw a partially applied batch"
                    );
                }
            });
        }
    });
}

fn column_families_are_isolated<E: Engine>(engine: &E) {
    put(engine, ColumnFamily::Data, b"same", b"data");
    put(engine, ColumnFamily::Meta, b"same", b"meta");
    put(engine, ColumnFamily::Meta, b"only-meta", b"x");
    put(engine, ColumnFamily::Hints, b"same", b"hint");
    assert_eq!(
        engine.get(ColumnFamily::Hints, b"same").unwrap(),
        Some(b"hint".to_vec())
    );
    assert_eq!(
        engine.get(ColumnFamily::Data, b"same").unwrap(),
        Some(b"data".to_vec())
    );
    assert_eq!(
        engine.get(ColumnFamily::Meta, b"same").unwrap(),
        Some(b"meta".to_vec())
    );
    assert_eq!(engine.get(ColumnFamily::Data, b"only-meta").unwrap(), None);
    assert_eq!(
        keys(&scan_all(engine, ColumnFamily::Data)),
        owned(&[b"same"])
    );

    let mut batch = WriteBatch::new();
    batch.delete(ColumnFamily::Data, b"same".as_slice());
    engine.write(batch).unwrap();
    assert_eq!(
        engine.get(ColumnFamily::Meta, b"same").unwrap(),
        Some(b"meta".to_vec())
    );
}

fn empty_keys_and_values<E: Engine>(engine: &E) {
    let cf = ColumnFamily::Data;
    put(engine, cf, b"", b"empty key");
    put(engine, cf, b"k", b"");
    assert_eq!(engine.get(cf, b"").unwrap(), Some(b"empty key".to_vec()));
    assert_eq!(engine.get(cf, b"k").unwrap(), Some(Vec::new()));
    assert_eq!(
        scan_all(engine, cf),
        vec![
            (Vec::new(), b"empty key".to_vec()),
            (b"k".to_vec(), Vec::new())
        ]
    );
    // An empty end bound excludes everything.
    assert!(engine.scan(cf, b"", Some(b""), 10).unwrap().is_empty());
    let mut batch = WriteBatch::new();
    batch.delete(cf, b"".as_slice());
    engine.write(batch).unwrap();
    assert_eq!(engine.get(cf, b"").unwrap(), None);
    assert_eq!(engine.get(cf, b"k").unwrap(), Some(Vec::new()));
}

fn large_values<E: Engine>(engine: &E) {
    let cf = ColumnFamily::Data;
    let patterned = |len: usize, seed: u8| -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    };
    let four_mib = patterned(4 << 20, 1);
    let sixteen_mib = patterned(16 << 20, 2);
    let mut batch = WriteBatch::new();
    batch.put(cf, b"four".as_slice(), four_mib.clone());
    batch.put(cf, b"sixteen".as_slice(), sixteen_mib.clone());
    engine.write(batch).unwrap();
    assert!(engine.get(cf, b"four").unwrap() == Some(four_mib.clone()));
    assert!(engine.get(cf, b"sixteen").unwrap() == Some(sixteen_mib));
    let scanned = engine.scan(cf, b"four", None, 1).unwrap();
    assert!(scanned[0].1 == four_mib);
    engine.flush().unwrap();
    assert!(engine.get(cf, b"four").unwrap() == Some(four_mib));
}

fn binary_keys_sort_bytewise<E: Engine>(engine: &E) {
    let cf = ColumnFamily::Data;
    let sorted: &[&[u8]] = &[
        b"\x00",
        b"\x00\x00",
        b"\x00\xff",
        b"\x01",
        b"\x7f",
        b"\x80",
        b"\xfe\xff",
        b"\xff",
        b"\xff\x00",
        b"\xff\xff",
        b"\xff\xff\xff",
    ];
    let mut shuffled = sorted.to_vec();
    shuffled.reverse();
    shuffled.swap(2, 7);
    fill(engine, cf, &shuffled);

    assert_eq!(keys(&scan_all(engine, cf)), owned(sorted));
    for key in sorted {
        assert_eq!(
            engine.get(cf, key).unwrap(),
            Some([b"v:".as_slice(), key].concat())
        );
    }
    assert_eq!(
        keys(&engine.scan(cf, b"\x00\x00", Some(b"\xff"), 100).unwrap()),
        owned(&sorted[1..7])
    );
    assert_eq!(
        keys(&engine.scan(cf, b"\xff\x00", None, 100).unwrap()),
        owned(&sorted[8..])
    );
    let mut batch = WriteBatch::new();
    batch.delete_range(cf, b"\x00".as_slice(), b"\x00\xff".as_slice());
    batch.delete_range(cf, b"\xff".as_slice(), b"\xff\xff".as_slice());
    engine.write(batch).unwrap();
    assert_eq!(
        keys(&scan_all(engine, cf)),
        owned(&[
            b"\x00\xff",
            b"\x01",
            b"\x7f",
            b"\x80",
            b"\xfe\xff",
            b"\xff\xff",
            b"\xff\xff\xff"
        ])
    );
}

fn stats<E: Engine>(engine: &E) {
    let empty = engine.stats(ColumnFamily::Meta).unwrap();
    assert_eq!(empty.keys, 0);
    let mut batch = WriteBatch::new();
    for i in 0u32..1_000 {
        batch.put(ColumnFamily::Data, i.to_be_bytes(), vec![7u8; 100]);
    }
    engine.write(batch).unwrap();
    // Estimates: only their order of magnitude is part of the contract, before a flush (the
    // cells in memtables) as after. 1,000 cells of 104 bytes: not the megabytes a memtable's
    // arena takes.
    let unflushed = engine.stats(ColumnFamily::Data).unwrap();
    assert!(
        (50_000..=500_000).contains(&unflushed.live_bytes),
        "estimated bytes before a flush: {}",
        unflushed.live_bytes
    );
    engine.flush().unwrap();
    let data = engine.stats(ColumnFamily::Data).unwrap();
    assert!(
        (500..=2_000).contains(&data.keys),
        "estimated keys: {}",
        data.keys
    );
    assert!(
        (10_000..=500_000).contains(&data.live_bytes),
        "estimated bytes: {}",
        data.live_bytes
    );
    assert_eq!(engine.stats(ColumnFamily::Meta).unwrap().keys, 0);
}

/// Everything `view` holds in `cf`, read with `iter`.
fn iter_all<R: EngineRead + ?Sized>(view: &R, cf: ColumnFamily) -> Pairs {
    iter_range(view, cf, &[], None)
}

fn iter_range<R: EngineRead + ?Sized>(
    view: &R,
    cf: ColumnFamily,
    start: &[u8],
    end: Option<&[u8]>,
) -> Pairs {
    view.iter(cf, start, end)
        .collect::<Result<Pairs, _>>()
        .unwrap()
}

/// What every column family of `view` holds, by all three reads, which must agree.
fn contents<R: EngineRead + ?Sized>(view: &R) -> Vec<Pairs> {
    ColumnFamily::ALL
        .iter()
        .map(|&cf| {
            let scanned = view.scan(cf, &[], None, usize::MAX).unwrap();
            assert_eq!(iter_all(view, cf), scanned, "iter and scan of {cf:?}");
            for (key, value) in &scanned {
                assert_eq!(
                    view.get(cf, key).unwrap().as_ref(),
                    Some(value),
                    "get of {cf:?}"
                );
            }
            scanned
        })
        .collect()
}

/// Puts `keys` into every column family, each value naming its family.
fn fill_all<E: Engine>(engine: &E, keys: &[&[u8]]) {
    let mut batch = WriteBatch::new();
    for cf in ColumnFamily::ALL {
        for key in keys {
            batch.put(cf, *key, [cf.name().as_bytes(), b":", key].concat());
        }
    }
    engine.write(batch).unwrap();
}

/// A snapshot must be an owned value a job can move to another thread or keep across awaits.
fn assert_owned<T: Send + Sync + 'static>(_: &T) {}

fn iter_order_and_bounds<E: Engine>(engine: &E) {
    let cf = ColumnFamily::Data;
    // Prefixes of one another, and 0x00 / 0xff bytes, in sorted order.
    let sorted: &[&[u8]] = &[
        b"",
        b"\x00",
        b"\x00\x00",
        b"\x00\xff",
        b"a",
        b"ab",
        b"ab\x00",
        b"abc",
        b"ab\xff",
        b"b",
        b"\xff",
        b"\xff\x00",
        b"\xff\xff",
        b"\xff\xff\xff",
    ];
    let mut shuffled = sorted.to_vec();
    shuffled.reverse();
    fill(engine, cf, &shuffled);
    fill(engine, ColumnFamily::Meta, &[b"a", b"zz"]);
    let snapshot = engine.snapshot();
    let range = |view: &dyn EngineRead, start: &[u8], end: Option<&[u8]>| {
        let pairs = iter_range(view, cf, start, end);
        assert_eq!(
            pairs,
            view.scan(cf, start, end, usize::MAX).unwrap(),
            "iter and scan of {start:x?}..{end:x?}"
        );
        keys(&pairs)
    };
    let none = Vec::<Vec<u8>>::new();
    for view in [engine as &dyn EngineRead, &snapshot as &dyn EngineRead] {
        assert_eq!(
            range(view, b"", None),
            owned(sorted),
            "everything, in byte order"
        );
        assert_eq!(
            iter_all(view, cf)[7],
            (b"abc".to_vec(), b"v:abc".to_vec()),
            "values come back"
        );
        assert_eq!(
            range(view, b"ab", Some(b"ab\xff")),
            owned(&sorted[5..8]),
            "a prefix's range"
        );
        assert_eq!(range(view, b"ab", Some(b"b")), owned(&sorted[5..9]));
        assert_eq!(
            range(view, b"ab\x00", None),
            owned(&sorted[6..]),
            "open end"
        );
        assert_eq!(
            range(view, b"\x00", Some(b"\x00\xff")),
            owned(&sorted[1..3])
        );
        assert_eq!(
            range(view, b"\xff", Some(b"\xff\xff")),
            owned(&sorted[10..12])
        );
        assert_eq!(
            range(view, b"\xff\xff\xff\x00", None),
            none,
            "after the last key"
        );
        assert_eq!(
            range(view, b"", Some(b"")),
            none,
            "empty range at the start"
        );
        assert_eq!(range(view, b"ab", Some(b"ab")), none, "empty range");
        assert_eq!(range(view, b"b", Some(b"a")), none, "inverted range");
        assert_eq!(
            range(view, b"\xff\xff", Some(b"\x00")),
            none,
            "inverted range"
        );
        assert_eq!(
            keys(&iter_all(view, ColumnFamily::Meta)),
            owned(&[b"a", b"zz"]),
            "one family at a time"
        );
        assert!(iter_all(view, ColumnFamily::Hints).is_empty());
    }
    // Lazy: taking a few pairs of a long range reads only those.
    let mut batch = WriteBatch::new();
    for i in 0u32..2_000 {
        batch.put(ColumnFamily::Hints, i.to_be_bytes(), i.to_le_bytes());
    }
    engine.write(batch).unwrap();
    let first: Pairs = engine
        .iter(ColumnFamily::Hints, &[], None)
        .take(3)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        keys(&first),
        (0u32..3)
            .map(|i| i.to_be_bytes().to_vec())
            .collect::<Vec<_>>()
    );
    // Long enough to cross any chunking an engine does, and in order across it.
    let all = iter_all(engine, ColumnFamily::Hints);
    assert_eq!(all.len(), 2_000);
    for (i, (key, value)) in (0u32..).zip(&all) {
        assert_eq!(
            (key.as_slice(), value.as_slice()),
            (&i.to_be_bytes()[..], &i.to_le_bytes()[..])
        );
    }
    let middle = iter_range(
        engine,
        ColumnFamily::Hints,
        &100u32.to_be_bytes(),
        Some(&1_900u32.to_be_bytes()),
    );
    assert_eq!(middle.len(), 1_800);
    assert_eq!(middle[0].0, 100u32.to_be_bytes().to_vec());
    assert_eq!(middle[1_799].0, 1_899u32.to_be_bytes().to_vec());
}

/// A live iterator reads one consistent view, taken when it is created: writes made while it is
/// consumed (here on the same thread, which must not deadlock) are not seen.
fn iter_reads_as_of_its_creation<E: Engine>(engine: &E) {
    let cf = ColumnFamily::Data;
    let mut batch = WriteBatch::new();
    for i in 0u32..500 {
        batch.put(cf, i.to_be_bytes(), b"old".as_slice());
    }
    engine.write(batch).unwrap();
    let mut iter = engine.iter(cf, &[], None);
    let mut seen = Vec::new();
    for i in 0u32..500 {
        let (key, value) = iter.next().unwrap().unwrap();
        assert_eq!(value, b"old", "key {i}");
        seen.push(key);
        let mut batch = WriteBatch::new();
        // Overwrite what is ahead, delete a range ahead, add keys ahead.
        batch.put(cf, (i + 1).to_be_bytes(), b"new".as_slice());
        batch.delete_range(cf, (i + 2).to_be_bytes(), (i + 4).to_be_bytes());
        batch.put(
            cf,
            [(i + 2).to_be_bytes().as_slice(), b"+"].concat(),
            b"new".as_slice(),
        );
        engine.write(batch).unwrap();
    }
    assert!(iter.next().is_none());
    assert_eq!(
        seen,
        (0u32..500)
            .map(|i| i.to_be_bytes().to_vec())
            .collect::<Vec<_>>()
    );
    // A new iterator sees the writes.
    assert!(iter_all(engine, cf).iter().any(|(_, v)| v == b"new"));
}

fn snapshot_sees_exactly_what_was_there<E: Engine>(engine: &E) {
    let empty = engine.snapshot();
    assert_owned(&empty);
    assert!(
        contents(&empty).iter().all(Vec::is_empty),
        "an empty engine's snapshot"
    );

    fill_all(engine, &[b"a", b"b", b"c", b"d", b"e", b"f"]);
    let mut batch = WriteBatch::new();
    batch.put(
        ColumnFamily::Data,
        b"b".as_slice(),
        b"overwritten".as_slice(),
    );
    batch.delete(ColumnFamily::Meta, b"c".as_slice());
    batch.delete_range(ColumnFamily::Hints, b"b".as_slice(), b"e".as_slice());
    engine.write(batch).unwrap();
    let expected = contents(engine);
    let snapshot = engine.snapshot();
    assert_eq!(contents(&snapshot), expected);
    assert_eq!(
        snapshot.get(ColumnFamily::Data, b"b").unwrap(),
        Some(b"overwritten".to_vec())
    );
    assert_eq!(snapshot.get(ColumnFamily::Meta, b"c").unwrap(), None);
    assert_eq!(
        keys(
            &snapshot
                .scan(ColumnFamily::Hints, &[], None, usize::MAX)
                .unwrap()
        ),
        owned(&[b"a", b"e", b"f"])
    );
    assert_eq!(
        snapshot
            .scan(ColumnFamily::Data, b"b", Some(b"e"), 2)
            .unwrap(),
        vec![
            (b"b".to_vec(), b"overwritten".to_vec()),
            (b"c".to_vec(), b"data:c".to_vec())
        ],
        "bounded scans of a snapshot"
    );
    // The first snapshot still shows nothing.
    assert!(contents(&empty).iter().all(Vec::is_empty));
}

fn snapshot_is_isolated_from_later_writes<E: Engine>(engine: &E) {
    fill_all(engine, &[b"a", b"b", b"c", b"d", b"e", b"f", b"g"]);
    let before = contents(engine);
    let snapshot = engine.snapshot();
    // Each kind of write, in every column family.
    for cf in ColumnFamily::ALL {
        put(engine, cf, b"b", b"overwritten");
        put(engine, cf, b"new", b"added");
        put(engine, cf, b"", b"added");
        let mut batch = WriteBatch::new();
        batch.delete(cf, b"a".as_slice());
        batch.delete_range(cf, b"c".as_slice(), b"f".as_slice());
        engine.write(batch).unwrap();
    }
    assert_eq!(contents(&snapshot), before, "the snapshot");
    for cf in ColumnFamily::ALL {
        assert_eq!(
            snapshot.get(cf, b"a").unwrap(),
            Some([cf.name(), ":a"].concat().into_bytes())
        );
        assert_eq!(snapshot.get(cf, b"new").unwrap(), None);
        assert_eq!(
            keys(&engine.scan(cf, &[], None, usize::MAX).unwrap()),
            owned(&[b"", b"b", b"f", b"g", b"new"]),
            "the engine"
        );
    }
    // Flushed to disk and written over again: the snapshot still reads what it saw.
    engine.flush().unwrap();
    let mut batch = WriteBatch::new();
    batch.delete_range(ColumnFamily::Data, b"".as_slice(), b"\xff".as_slice());
    engine.write(batch).unwrap();
    engine.flush().unwrap();
    assert_eq!(contents(&snapshot), before, "the snapshot, after flushes");
    assert!(scan_all(engine, ColumnFamily::Data).is_empty());
}

fn snapshot_dropped_after_more_writes<E: Engine>(engine: &E) {
    let cf = ColumnFamily::Data;
    let write_generation = |generation: u8| {
        let mut batch = WriteBatch::new();
        for i in 0u16..300 {
            batch.put(cf, i.to_be_bytes(), [generation]);
        }
        engine.write(batch).unwrap();
    };
    write_generation(0);
    let snapshots: Vec<_> = (1u8..=3)
        .map(|generation| {
            let snapshot = engine.snapshot();
            write_generation(generation);
            snapshot
        })
        .collect();
    engine.flush().unwrap();
    write_generation(4);
    // Dropped out of order, each after more writes; each read only its own generation.
    let mut snapshots: Vec<_> = snapshots.into_iter().enumerate().collect();
    snapshots.swap(0, 1);
    for (generation, snapshot) in snapshots {
        let pairs = iter_all(&snapshot, cf);
        assert_eq!(pairs.len(), 300);
        assert!(
            pairs.iter().all(|(_, v)| v == &[generation as u8]),
            "generation {generation}"
        );
        drop(snapshot);
        write_generation(5);
    }
    // The engine is unharmed and a new snapshot reads the latest.
    let latest = engine.snapshot();
    assert!(iter_all(&latest, cf).iter().all(|(_, v)| v == &[5]));
    assert_eq!(scan_all(engine, cf).len(), 300);
}

/// A snapshot is read, on this thread and others, while writers change every key it holds.
fn iterating_a_snapshot_while_writing<E: Engine>(engine: &E) {
    const KEYS: u32 = 1_000;
    let cf = ColumnFamily::Data;
    let mut batch = WriteBatch::new();
    for i in 0..KEYS {
        batch.put(cf, i.to_be_bytes(), b"before".as_slice());
    }
    engine.write(batch).unwrap();
    let snapshot = engine.snapshot();
    let check = |pairs: Pairs| {
        assert_eq!(pairs.len(), KEYS as usize);
        for (i, (key, value)) in (0..KEYS).zip(&pairs) {
            assert_eq!(key, &i.to_be_bytes().to_vec());
            assert_eq!(value, b"before");
        }
    };
    std::thread::scope(|scope| {
        let snapshot = &snapshot;
        for writer in 0u32..2 {
            scope.spawn(move || {
                for round in 0u32..50 {
                    let mut batch = WriteBatch::new();
                    for i in (writer..KEYS).step_by(7) {
                        batch.put(cf, i.to_be_bytes(), round.to_be_bytes());
                    }
                    batch.delete_range(
                        cf,
                        (round * 10).to_be_bytes(),
                        (round * 10 + 5).to_be_bytes(),
                    );
                    engine.write(batch).unwrap();
                }
            });
        }
        scope.spawn(move || {
            for _ in 0..5 {
                check(iter_all(snapshot, cf));
            }
        });
        // And here, writing between steps of the iterator.
        let mut pairs = Vec::new();
        for (step, pair) in (0u32..).zip(snapshot.iter(cf, &[], None)) {
            pairs.push(pair.unwrap());
            if step % 100 == 0 {
                let mut batch = WriteBatch::new();
                batch.delete_range(cf, step.to_be_bytes(), KEYS.to_be_bytes());
                engine.write(batch).unwrap();
            }
        }
        check(pairs);
    });
    check(snapshot.scan(cf, &[], None, usize::MAX).unwrap());
}

/// A snapshot owns what it reads: it outlives the engine it was taken from.
fn snapshot_outlives_its_engine<E: Engine>(engine: E) {
    fill_all(&engine, &[b"k"]);
    let snapshot = engine.snapshot();
    drop(engine);
    let held = std::thread::spawn(move || {
        assert_eq!(
            contents(&snapshot)[0],
            vec![(b"k".to_vec(), b"data:k".to_vec())]
        );
        snapshot
    })
    .join()
    .unwrap();
    assert_eq!(
        held.get(ColumnFamily::Meta, b"k").unwrap(),
        Some(b"meta:k".to_vec())
    );
}

/// `count` keys `prefix ++ i (u32 BE)`, each with a 100-byte value that differs per key.
fn fill_prefixed<E: Engine>(engine: &E, prefix: &[u8], count: u32) {
    let mut batch = WriteBatch::new();
    for i in 0..count {
        let key = [prefix, &i.to_be_bytes()].concat();
        let value: Vec<u8> = (0..100u32)
            .map(|j| (i.wrapping_mul(31) ^ j) as u8)
            .collect();
        batch.put(ColumnFamily::Data, key, value);
    }
    engine.write(batch).unwrap();
}

/// Keys of `prefix ++ (u32 BE)`: the range `[prefix, prefix ++ 0xff...)`.
fn prefix_range(prefix: &[u8]) -> (Vec<u8>, Vec<u8>) {
    (prefix.to_vec(), [prefix, &[0xff; 5]].concat())
}

fn estimate_range_sizes_ranges_on_disk_and_in_memory<E: Engine>(engine: &E) {
    let cf = ColumnFamily::Data;
    // Flushed ranges are estimated from the files, the last one from the memtables.
    fill_prefixed(engine, b"a", 1_000);
    fill_prefixed(engine, b"c", 3_000);
    engine.flush().unwrap();
    fill_prefixed(engine, b"e", 500);
    // Key: 1-byte prefix + 4 bytes; value: 100 bytes.
    let per_key = 105u64;
    for (prefix, keys) in [(b"a", 1_000u64), (b"c", 3_000), (b"e", 500)] {
        let (start, end) = prefix_range(prefix);
        let estimate = engine.estimate_range(cf, &start, &end).unwrap();
        assert!(
            (keys / 2..=keys * 2).contains(&estimate.keys),
            "{}: estimated {} keys of {keys}",
            prefix[0] as char,
            estimate.keys
        );
        let bytes = keys * per_key;
        assert!(
            (bytes / 2..=bytes * 2).contains(&estimate.bytes),
            "{}: estimated {} bytes of {bytes}",
            prefix[0] as char,
            estimate.bytes
        );
    }
    // The whole column family is about the sum of its ranges.
    let all = engine.estimate_range(cf, &[], &[0xff; 8]).unwrap();
    assert!((2_250..=9_000).contains(&all.keys), "{all:?}");
    // Ranges that hold nothing: between the prefixes, after them, and inverted or empty.
    for (start, end) in [
        (b"b".to_vec(), b"c".to_vec()),
        (b"f".to_vec(), b"g".to_vec()),
    ] {
        let estimate = engine.estimate_range(cf, &start, &end).unwrap();
        assert!(estimate.keys <= 100, "{start:?}..{end:?}: {estimate:?}");
    }
    assert_eq!(
        engine.estimate_range(cf, b"d", b"a").unwrap(),
        Default::default()
    );
    assert_eq!(
        engine.estimate_range(cf, b"a", b"a").unwrap(),
        Default::default()
    );
    assert_eq!(
        engine
            .estimate_range(ColumnFamily::Meta, &[], &[0xff; 8])
            .unwrap()
            .keys,
        0
    );
}

/// Dropping a partition through the cell store removes its cells, from the engine and from the
/// cell cache, and nothing else: not its neighbours in the same table, not the same partition of
/// the neighbouring tables, not a row at the partition's very edge.
fn dropping_a_partition_removes_exactly_its_cells<E: Engine>(engine: E) {
    let store = CellStore::<E>::new(engine, StoreOptions::new(1));
    let cell = |value: &str| Cell::from_value(CellValue::value(value.as_bytes().to_vec(), 1));
    let rows = [
        RowKey::new(5, 9, 0, b"first".to_vec()),
        RowKey::new(5, 9, 77, b"middle".to_vec()),
        RowKey::new(5, 9, u64::MAX, vec![0xff; 40]),
        RowKey::new(5, 8, u64::MAX, vec![0xff; 40]),
        RowKey::new(5, 10, 0, Vec::new()),
        RowKey::new(4, 9, 77, b"middle".to_vec()),
        RowKey::new(6, 9, 77, b"middle".to_vec()),
    ];
    for row in &rows {
        for column in ["a", "b"] {
            store
                .merge_row(row, &[(column.as_bytes().to_vec(), cell(column))])
                .unwrap();
        }
        // Cached now (a merge caches what it wrote): the drop must not leave it to be served.
        assert!(store.read_cell(row, b"a").unwrap().is_some());
    }
    store.drop_partition(5, 9).unwrap();
    for row in &rows {
        let dropped = row.table == 5 && row.partition == 9;
        for column in [b"a", b"b"] {
            assert_eq!(
                store.read_cell(row, column).unwrap().is_none(),
                dropped,
                "{row:?}"
            );
        }
    }
    let (start, end) = partition_range(5, 9);
    assert!(store
        .engine()
        .scan(ColumnFamily::Data, &start, Some(&end), usize::MAX)
        .unwrap()
        .is_empty());
    assert_eq!(
        scan_all(store.engine().as_ref(), ColumnFamily::Data).len(),
        8
    );
    // Writes to the partition work again afterwards (the node may come to own it again).
    store
        .merge_row(&rows[1], &[(b"a".to_vec(), cell("again"))])
        .unwrap();
    assert_eq!(
        store.read_cell(&rows[1], b"a").unwrap(),
        Some(cell("again"))
    );
    // Dropping a partition that holds nothing is fine.
    store.drop_partition(7, 0).unwrap();
}

/// Merges in the `merkle` family XOR node values (absent is zero), see what a snapshot saw, are
/// undone by a delete, and a merge elsewhere or of a bad operand fails the whole batch.
fn xor_merges_of_tree_nodes<E: Engine>(engine: &E) {
    use tessera_merkle::{decode_node_value, encode_node_value, Digest};
    let value = |b: u8| encode_node_value(Digest::from_bytes([b; 16])).to_vec();
    let read = |view: &dyn EngineRead| {
        view.get(ColumnFamily::Merkle, b"n")
            .unwrap()
            .map(|v| decode_node_value(&v).unwrap())
    };
    let mut batch = WriteBatch::new();
    batch.merge(ColumnFamily::Merkle, b"n".to_vec(), value(0x0f));
    batch.merge(ColumnFamily::Merkle, b"n".to_vec(), value(0xf0));
    engine.write(batch).unwrap();
    assert_eq!(read(engine), Some(Digest::from_bytes([0xff; 16])));
    let before = engine.snapshot();
    let mut batch = WriteBatch::new();
    batch.merge(ColumnFamily::Merkle, b"n".to_vec(), value(0x0f));
    engine.write(batch).unwrap();
    assert_eq!(read(engine), Some(Digest::from_bytes([0xf0; 16])));
    assert_eq!(read(&before), Some(Digest::from_bytes([0xff; 16])));

    let mut bad = WriteBatch::new();
    bad.put(ColumnFamily::Meta, b"m".to_vec(), b"v".to_vec());
    bad.merge(ColumnFamily::Data, b"n".to_vec(), value(1));
    assert!(engine.write(bad).is_err());
    let mut bad = WriteBatch::new();
    bad.put(ColumnFamily::Meta, b"m".to_vec(), b"v".to_vec());
    bad.merge(ColumnFamily::Merkle, b"n".to_vec(), b"garbage".to_vec());
    assert!(engine.write(bad).is_err());
    assert_eq!(engine.get(ColumnFamily::Meta, b"m").unwrap(), None);

    let mut batch = WriteBatch::new();
    batch.delete(ColumnFamily::Merkle, b"n".to_vec());
    batch.merge(ColumnFamily::Merkle, b"n".to_vec(), value(0x01));
    engine.write(batch).unwrap();
    assert_eq!(read(engine), Some(Digest::from_bytes([0x01; 16])));
}
