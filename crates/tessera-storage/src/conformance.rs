//! A conformance suite that every [`Engine`] must pass.
//!
//! The in-memory engine stands in for RocksDB in simulations, which is only
//! sound if the two behave identically; running this one suite against both
//! is how we know they do. It is public so engines written elsewhere (for
//! example a fault-injecting wrapper) can be held to the same contract.
//! Failures panic, as in any test.

use crate::engine::{ColumnFamily, Engine, KvPairs as Pairs, WriteBatch};

type Check<E> = fn(&E);

/// Runs every check, each on a fresh engine from `make`.
pub fn run_all<E: Engine>(make: &mut dyn FnMut() -> E) {
    let checks: &[(&str, Check<E>)] = &[
        ("get_put_overwrite_delete", get_put_overwrite_delete),
        ("later_ops_in_a_batch_win", later_ops_in_a_batch_win),
        ("delete_range", delete_range),
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
    ];
    for (name, check) in checks {
        // Shown with the panic message when a check fails.
        eprintln!("engine conformance: {name}");
        let engine = make();
        check(&engine);
    }
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
    engine.flush().unwrap();
    // Estimates: only their order of magnitude is part of the contract.
    let data = engine.stats(ColumnFamily::Data).unwrap();
    assert!(
        (500..=2_000).contains(&data.keys),
        "estimated keys: {}",
        data.keys
    );
    assert!(
        data.live_bytes >= 10_000,
        "estimated bytes: {}",
        data.live_bytes
    );
    assert_eq!(engine.stats(ColumnFamily::Meta).unwrap().keys, 0);
}
