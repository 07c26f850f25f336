//! Cell store behaviour, run against both the in-memory engine and RocksDB.
//!
//! Each test is a function generic over the engine; the macro at the bottom
//! instantiates it once per engine so the two cannot drift apart.

use std::collections::BTreeSet;

use tempfile::TempDir;
use tessera_storage::cell::{is_deleted, live_values};
use tessera_storage::{
    cell_key, Cell, CellStore, CellValue, CellWrite, ColumnFamily, Context, Engine, MemoryEngine,
    RocksEngine, RocksOptions, RowKey, RowSlice, StorageError, StoreOptions, WriteBatch,
};

/// A store and whatever must outlive it (RocksDB's directory).
struct Fixture<E: Engine> {
    store: CellStore<E>,
    _dir: Option<TempDir>,
}

type Open<E> = dyn Fn(StoreOptions) -> Fixture<E>;

fn memory(options: StoreOptions) -> Fixture<MemoryEngine> {
    Fixture {
        store: CellStore::new(MemoryEngine::new(), options),
        _dir: None,
    }
}

fn rocks(options: StoreOptions) -> Fixture<RocksEngine> {
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
    Fixture {
        store: CellStore::new(engine, options),
        _dir: Some(dir),
    }
}

fn row(key: &str) -> RowKey {
    RowKey::new(7, 3, 0xdead_beef, key.as_bytes())
}

fn set(column: &str, value: &str) -> CellWrite {
    set_with(column, value, Context::new())
}

fn set_with(column: &str, value: &str, context: Context) -> CellWrite {
    CellWrite::Set {
        column: column.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
        context,
    }
}

fn delete_with(column: &str, context: Context) -> CellWrite {
    CellWrite::Delete {
        column: column.as_bytes().to_vec(),
        context,
    }
}

/// The live values of a cell as sorted strings, for order-free comparison.
fn values(cell: &Cell) -> Vec<String> {
    let mut out: Vec<String> = live_values(cell)
        .into_iter()
        .map(|v| String::from_utf8(v.to_vec()).unwrap())
        .collect();
    out.sort();
    out
}

fn columns(page: &tessera_storage::RowPage) -> Vec<String> {
    page.cells
        .iter()
        .map(|(c, _)| String::from_utf8(c.clone()).unwrap())
        .collect()
}

fn write_then_read<E: Engine>(open: &Open<E>) {
    let f = open(StoreOptions::new(1));
    let r = row("user:1");
    assert_eq!(f.store.read_cell(&r, b"name").unwrap(), None);
    let written = f
        .store
        .write_row(&r, &[set("name", "ada"), set("lang", "rust")], 1_000)
        .unwrap();
    assert_eq!(written.len(), 2);
    assert_eq!(written[0].0, b"name");
    assert_eq!(written[1].0, b"lang");

    let cell = f.store.read_cell(&r, b"name").unwrap().unwrap();
    assert_eq!(cell, written[0].1);
    assert_eq!(values(&cell), vec!["ada"]);
    assert_eq!(cell.values()[0].written_at_ms, 1_000);
    assert_eq!(cell.join().get(&1), 1);

    // Other rows, including one whose key extends this one's, are unaffected.
    assert_eq!(f.store.read_cell(&row("user:10"), b"name").unwrap(), None);
    let page = f.store.read_row(&r, &RowSlice::default()).unwrap();
    assert_eq!(columns(&page), vec!["lang", "name"]);
    assert!(!page.more);
    assert_eq!(f.store.actor(), 1);
}

fn context_supersedes<E: Engine>(open: &Open<E>) {
    let f = open(StoreOptions::new(1));
    let r = row("k");
    f.store.write_row(&r, &[set("c", "one")], 1).unwrap();
    let seen = f.store.read_cell(&r, b"c").unwrap().unwrap().join();
    // A blind write is concurrent with what is stored...
    f.store.write_row(&r, &[set("c", "two")], 2).unwrap();
    let cell = f.store.read_cell(&r, b"c").unwrap().unwrap();
    assert_eq!(values(&cell), vec!["one", "two"]);
    // ...a write with the context of the first read supersedes only "one"...
    f.store
        .write_row(&r, &[set_with("c", "three", seen)], 3)
        .unwrap();
    let cell = f.store.read_cell(&r, b"c").unwrap().unwrap();
    assert_eq!(values(&cell), vec!["three", "two"]);
    // ...and a write with the full context resolves everything.
    f.store
        .write_row(&r, &[set_with("c", "final", cell.join())], 4)
        .unwrap();
    let cell = f.store.read_cell(&r, b"c").unwrap().unwrap();
    assert_eq!(values(&cell), vec!["final"]);
    assert_eq!(cell.sibling_count(), 1);

    // A delete with context leaves a lone tombstone, hidden from row reads.
    f.store
        .write_row(&r, &[delete_with("c", cell.join())], 5)
        .unwrap();
    let cell = f.store.read_cell(&r, b"c").unwrap().unwrap();
    assert!(is_deleted(&cell));
    assert_eq!(cell.sibling_count(), 1);
    assert!(f
        .store
        .read_row(&r, &RowSlice::default())
        .unwrap()
        .cells
        .is_empty());
}

fn concurrent_blind_writes_are_all_kept<E: Engine>(open: &Open<E>) {
    const THREADS: usize = 8;
    const WRITES: usize = 25;
    let f = open(StoreOptions {
        actor: 9,
        max_siblings: THREADS * WRITES,
    });
    let r = row("hot");
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let store = &f.store;
            let r = &r;
            scope.spawn(move || {
                for i in 0..WRITES {
                    store
                        .write_row(r, &[set("c", &format!("{t}:{i}"))], 0)
                        .unwrap();
                }
            });
        }
    });
    let cell = f.store.read_cell(&r, b"c").unwrap().unwrap();
    assert_eq!(cell.sibling_count(), THREADS * WRITES);
    assert_eq!(cell.join().get(&9), (THREADS * WRITES) as u64);
    let expected: BTreeSet<String> = (0..THREADS)
        .flat_map(|t| (0..WRITES).map(move |i| format!("{t}:{i}")))
        .collect();
    assert_eq!(values(&cell).into_iter().collect::<BTreeSet<_>>(), expected);
}

fn concurrent_writes_with_context_lose_nothing<E: Engine>(open: &Open<E>) {
    const THREADS: usize = 8;
    const WRITES: usize = 25;
    let f = open(StoreOptions::new(9));
    let r = row("hot");
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let store = &f.store;
            let r = &r;
            scope.spawn(move || {
                for i in 0..WRITES {
                    let context = store
                        .read_cell(r, b"c")
                        .unwrap()
                        .map(|c| c.join())
                        .unwrap_or_default();
                    store
                        .write_row(r, &[set_with("c", &format!("{t}:{i}"), context)], 0)
                        .unwrap();
                }
            });
        }
    });
    let cell = f.store.read_cell(&r, b"c").unwrap().unwrap();
    // Every write got its own dot: none was overwritten by a racing one.
    assert_eq!(cell.join().get(&9), (THREADS * WRITES) as u64);
    // Each thread's writes supersede its own earlier ones, so at most one per thread survives.
    assert!((1..=THREADS).contains(&cell.sibling_count()));
}

fn sibling_cap_leaves_storage_unchanged<E: Engine>(open: &Open<E>) {
    let f = open(StoreOptions {
        actor: 1,
        max_siblings: 3,
    });
    let r = row("k");
    for v in ["a", "b", "c"] {
        f.store.write_row(&r, &[set("c", v)], 0).unwrap();
    }
    f.store.write_row(&r, &[set("other", "x")], 0).unwrap();
    let before = f.store.read_row(&r, &RowSlice::default()).unwrap();

    let err = f
        .store
        .write_row(&r, &[set("other", "y"), set("c", "d")], 0)
        .unwrap_err();
    assert_eq!(
        err,
        StorageError::TooManySiblings {
            column: "c".to_owned(),
            siblings: 4,
            max: 3
        }
    );
    // Not even the op that was fine on its own was written.
    assert_eq!(f.store.read_row(&r, &RowSlice::default()).unwrap(), before);

    // Resolving with the full context is always allowed.
    let context = f.store.read_cell(&r, b"c").unwrap().unwrap().join();
    let written = f
        .store
        .write_row(&r, &[set_with("c", "resolved", context)], 0)
        .unwrap();
    assert_eq!(written[0].1.sibling_count(), 1);
}

fn invalid_writes_are_rejected<E: Engine>(open: &Open<E>) {
    let f = open(StoreOptions::new(1));
    let r = row("k");
    assert!(matches!(
        f.store
            .write_row(&r, &[set("a", "1"), set("b", "2"), set("a", "3")], 0),
        Err(StorageError::InvalidBatch { .. })
    ));
    let long_column = "c".repeat(tessera_storage::MAX_COLUMN_LEN + 1);
    assert!(matches!(
        f.store.write_row(&r, &[set(&long_column, "1")], 0),
        Err(StorageError::ColumnTooLong { .. })
    ));
    let long_row = RowKey::new(1, 0, 0, vec![0u8; tessera_storage::MAX_KEY_LEN + 1]);
    assert!(matches!(
        f.store.write_row(&long_row, &[set("a", "1")], 0),
        Err(StorageError::KeyTooLong { .. })
    ));
    assert!(f
        .store
        .read_row(&r, &RowSlice::default())
        .unwrap()
        .cells
        .is_empty());
    assert!(f.store.write_row(&r, &[], 0).unwrap().is_empty());
}

/// Two replicas take concurrent writes, then exchange cells.
fn merge_row_syncs_and_is_idempotent<E: Engine>(open: &Open<E>) {
    let a = open(StoreOptions {
        actor: 1,
        max_siblings: 2,
    });
    let b = open(StoreOptions {
        actor: 2,
        max_siblings: 2,
    });
    let r = row("k");
    let from_a = a
        .store
        .write_row(&r, &[set("x", "a1"), set("y", "a-only")], 1)
        .unwrap();
    b.store.write_row(&r, &[set("x", "b1")], 2).unwrap();
    let b_before = b.store.read_row(&r, &RowSlice::default()).unwrap();

    let outcomes = b.store.merge_row(&r, &from_a).unwrap();
    assert_eq!(outcomes.len(), 2);
    assert!(outcomes.iter().all(|o| o.changed));
    assert_eq!(values(&outcomes[0].cell), vec!["a1", "b1"]);
    assert_eq!(values(&outcomes[1].cell), vec!["a-only"]);
    assert_eq!(
        b.store.read_cell(&r, b"x").unwrap().as_ref(),
        Some(&outcomes[0].cell)
    );

    // Merging again changes nothing and writes nothing.
    let again = b.store.merge_row(&r, &from_a).unwrap();
    assert!(again.iter().all(|o| !o.changed));
    assert_eq!(again[0].cell, outcomes[0].cell);

    // Merging something older than what is stored changes nothing either.
    let stale = b.store.merge_row(&r, &b_before.cells).unwrap();
    assert!(stale.iter().all(|o| !o.changed));

    // The other direction converges to the same cells.
    let b_cells = b.store.read_row(&r, &RowSlice::default()).unwrap().cells;
    a.store.merge_row(&r, &b_cells).unwrap();
    assert_eq!(
        a.store.read_row(&r, &RowSlice::default()).unwrap(),
        b.store.read_row(&r, &RowSlice::default()).unwrap()
    );

    // Replication ignores the sibling cap: a third concurrent value is kept.
    let c = open(StoreOptions::new(3));
    let from_c = c.store.write_row(&r, &[set("x", "c1")], 3).unwrap();
    let merged = a.store.merge_row(&r, &from_c).unwrap();
    assert_eq!(values(&merged[0].cell), vec!["a1", "b1", "c1"]);
    assert_eq!(merged[0].cell.sibling_count(), 3);

    // A column given twice folds both in.
    let d = open(StoreOptions::new(4));
    let d1 = d.store.write_row(&r, &[set("z", "d1")], 4).unwrap();
    let e = open(StoreOptions::new(5));
    let e1 = e.store.write_row(&r, &[set("z", "e1")], 5).unwrap();
    let twice = a
        .store
        .merge_row(&r, &[d1[0].clone(), e1[0].clone()])
        .unwrap();
    assert!(twice[0].changed && twice[1].changed);
    assert_eq!(
        values(&a.store.read_cell(&r, b"z").unwrap().unwrap()),
        vec!["d1", "e1"]
    );
}

/// Random writes on three replicas and random one-way merges never lose a
/// value: after a full exchange every replica holds exactly the values that
/// no write superseded.
fn merges_never_lose_values<E: Engine>(open: &Open<E>) {
    let replicas: Vec<_> = (1..=3)
        .map(|actor| {
            open(StoreOptions {
                actor,
                max_siblings: 1_000,
            })
        })
        .collect();
    let r = row("k");
    // A tiny deterministic generator, so failures replay.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for step in 0..200 {
        let i = next(3) as usize;
        if next(2) == 0 {
            // Write with the context the replica has (or blind), like a client would.
            let context = if next(2) == 0 {
                replicas[i]
                    .store
                    .read_cell(&r, b"c")
                    .unwrap()
                    .map(|c| c.join())
                    .unwrap_or_default()
            } else {
                Context::new()
            };
            replicas[i]
                .store
                .write_row(&r, &[set_with("c", &format!("v{step}"), context)], step)
                .unwrap();
        } else {
            let j = next(3) as usize;
            if let Some(cell) = replicas[i].store.read_cell(&r, b"c").unwrap() {
                let before = replicas[j].store.read_cell(&r, b"c").unwrap();
                let merged = replicas[j]
                    .store
                    .merge_row(&r, &[(b"c".to_vec(), cell.clone())])
                    .unwrap();
                // Nothing incoming or stored disappears unless something causally newer replaced it.
                let merged = &merged[0].cell;
                for source in [Some(cell), before].into_iter().flatten() {
                    assert!(merged.descends(&source));
                }
            }
        }
    }
    let cells: Vec<Cell> = replicas
        .iter()
        .filter_map(|f| f.store.read_cell(&r, b"c").unwrap())
        .collect();
    for f in &replicas {
        f.store
            .merge_row(
                &r,
                &cells
                    .iter()
                    .map(|c| (b"c".to_vec(), c.clone()))
                    .collect::<Vec<_>>(),
            )
            .unwrap();
    }
    let finals: Vec<Cell> = replicas
        .iter()
        .map(|f| f.store.read_cell(&r, b"c").unwrap().unwrap())
        .collect();
    assert_eq!(finals[0], finals[1]);
    assert_eq!(finals[1], finals[2]);
    for cell in &cells {
        assert!(finals[0].descends(cell));
    }
}

fn delete_row_tombstones_live_cells<E: Engine>(open: &Open<E>) {
    let f = open(StoreOptions::new(1));
    let r = row("k");
    let neighbour = row("k2");
    f.store
        .write_row(&r, &[set("a", "1"), set("b", "2"), set("c", "3")], 1)
        .unwrap();
    f.store.write_row(&r, &[set("b", "2'")], 1).unwrap(); // siblings
    let c = f.store.read_cell(&r, b"c").unwrap().unwrap();
    f.store
        .write_row(&r, &[delete_with("c", c.join())], 2)
        .unwrap();
    f.store.write_row(&neighbour, &[set("a", "n")], 1).unwrap();

    assert_eq!(f.store.delete_row(&r, 10).unwrap(), 2);
    for column in [b"a", b"b", b"c"] {
        let cell = f.store.read_cell(&r, column).unwrap().unwrap();
        assert!(is_deleted(&cell));
        assert_eq!(cell.sibling_count(), 1);
    }
    assert_eq!(
        f.store.read_cell(&r, b"a").unwrap().unwrap().values()[0].written_at_ms,
        10
    );
    assert!(f
        .store
        .read_row(&r, &RowSlice::default())
        .unwrap()
        .cells
        .is_empty());
    let with_tombstones = RowSlice {
        include_tombstones: true,
        ..RowSlice::default()
    };
    assert_eq!(
        f.store.read_row(&r, &with_tombstones).unwrap().cells.len(),
        3
    );
    assert_eq!(
        values(&f.store.read_cell(&neighbour, b"a").unwrap().unwrap()),
        vec!["n"]
    );
    // Nothing live is left, so a second delete deletes nothing.
    assert_eq!(f.store.delete_row(&r, 11).unwrap(), 0);
    assert_eq!(f.store.delete_row(&row("never"), 11).unwrap(), 0);
}

fn read_row_slices<E: Engine>(open: &Open<E>) {
    let f = open(StoreOptions::new(1));
    let r = row("k");
    let writes: Vec<CellWrite> = ["a", "b", "c", "d", "e", "f"]
        .iter()
        .map(|c| set(c, c))
        .collect();
    f.store.write_row(&r, &writes, 1).unwrap();
    // Rows around it must never leak in.
    f.store.write_row(&row("j"), &[set("z", "z")], 1).unwrap();
    f.store.write_row(&row("k\0"), &[set("a", "a")], 1).unwrap();
    f.store.write_row(&row("kk"), &[set("a", "a")], 1).unwrap();
    let c = f.store.read_cell(&r, b"c").unwrap().unwrap();
    f.store
        .write_row(&r, &[delete_with("c", c.join())], 2)
        .unwrap();

    let read = |slice: RowSlice| {
        let page = f.store.read_row(&r, &slice).unwrap();
        (columns(&page), page.more)
    };
    let s = |c: &str| Some(c.as_bytes().to_vec());
    let all = RowSlice::default();

    assert_eq!(
        read(all.clone()),
        (
            vec!["a", "b", "d", "e", "f"]
                .into_iter()
                .map(String::from)
                .collect(),
            false
        )
    );
    let with_tombstones = RowSlice {
        include_tombstones: true,
        ..all.clone()
    };
    assert_eq!(read(with_tombstones.clone()).0.len(), 6);

    let cases: Vec<(RowSlice, Vec<&str>, bool)> = vec![
        (
            RowSlice {
                from: s("b"),
                ..all.clone()
            },
            vec!["b", "d", "e", "f"],
            false,
        ),
        (
            RowSlice {
                from: s("bb"),
                ..all.clone()
            },
            vec!["d", "e", "f"],
            false,
        ),
        (
            RowSlice {
                after: s("b"),
                ..all.clone()
            },
            vec!["d", "e", "f"],
            false,
        ),
        (
            RowSlice {
                after: s("d"),
                ..all.clone()
            },
            vec!["e", "f"],
            false,
        ),
        (
            RowSlice {
                to: s("e"),
                ..all.clone()
            },
            vec!["a", "b", "d"],
            false,
        ),
        (
            RowSlice {
                from: s("b"),
                to: s("e"),
                ..all.clone()
            },
            vec!["b", "d"],
            false,
        ),
        (
            RowSlice {
                from: s("e"),
                to: s("b"),
                ..all.clone()
            },
            vec![],
            false,
        ),
        (
            RowSlice {
                from: s("d"),
                to: s("d"),
                ..all.clone()
            },
            vec![],
            false,
        ),
        // Both bounds: the later one wins.
        (
            RowSlice {
                from: s("b"),
                after: s("d"),
                ..all.clone()
            },
            vec!["e", "f"],
            false,
        ),
        (
            RowSlice {
                from: s("e"),
                after: s("a"),
                ..all.clone()
            },
            vec!["e", "f"],
            false,
        ),
        (
            RowSlice {
                from: s("d"),
                after: s("d"),
                ..all.clone()
            },
            vec!["e", "f"],
            false,
        ),
        // Limits: `more` only when a matching cell really follows.
        (
            RowSlice {
                limit: 2,
                ..all.clone()
            },
            vec!["a", "b"],
            true,
        ),
        (
            RowSlice {
                limit: 5,
                ..all.clone()
            },
            vec!["a", "b", "d", "e", "f"],
            false,
        ),
        (
            RowSlice {
                limit: 0,
                ..all.clone()
            },
            vec![],
            true,
        ),
        (
            RowSlice {
                limit: 2,
                to: s("d"),
                ..all.clone()
            },
            vec!["a", "b"],
            false,
        ),
        (
            RowSlice {
                limit: 2,
                ..with_tombstones.clone()
            },
            vec!["a", "b"],
            true,
        ),
        (
            RowSlice {
                limit: 3,
                from: s("b"),
                ..with_tombstones.clone()
            },
            vec!["b", "c", "d"],
            true,
        ),
        (
            RowSlice {
                after: s("f"),
                ..all.clone()
            },
            vec![],
            false,
        ),
        (
            RowSlice {
                from: s("\u{7f}"),
                ..all.clone()
            },
            vec![],
            false,
        ),
    ];
    for (slice, expected, more) in cases {
        let expected: Vec<String> = expected.into_iter().map(String::from).collect();
        assert_eq!(read(slice.clone()), (expected, more), "{slice:?}");
    }
}

fn read_row_skips_many_tombstones<E: Engine>(open: &Open<E>) {
    let f = open(StoreOptions::new(1));
    let r = row("k");
    let columns_written: Vec<String> = (0..1_000).map(|i| format!("c{i:04}")).collect();
    let writes: Vec<CellWrite> = columns_written.iter().map(|c| set(c, "v")).collect();
    f.store.write_row(&r, &writes, 1).unwrap();
    f.store.write_row(&r, &[set("zz-live", "v")], 1).unwrap();
    // Tombstone all but the last cell.
    let deletes: Vec<CellWrite> = columns_written
        .iter()
        .map(|c| {
            let context = f.store.read_cell(&r, c.as_bytes()).unwrap().unwrap().join();
            delete_with(c, context)
        })
        .collect();
    f.store.write_row(&r, &deletes, 2).unwrap();

    let page = f
        .store
        .read_row(
            &r,
            &RowSlice {
                limit: 1,
                ..RowSlice::default()
            },
        )
        .unwrap();
    assert_eq!(columns(&page), vec!["zz-live"]);
    assert!(!page.more);
    let page = f
        .store
        .read_row(
            &r,
            &RowSlice {
                limit: 0,
                ..RowSlice::default()
            },
        )
        .unwrap();
    assert!(page.cells.is_empty() && page.more);
}

fn paging_reaches_every_cell_once<E: Engine>(open: &Open<E>) {
    let f = open(StoreOptions::new(1));
    let r = row("wide");
    let all: Vec<String> = (0..10_000).map(|i| format!("col{i:05}")).collect();
    for chunk in all.chunks(500) {
        let writes: Vec<CellWrite> = chunk.iter().map(|c| set(c, c)).collect();
        f.store.write_row(&r, &writes, 1).unwrap();
    }
    // Tombstone every seventh cell: pages must skip them without miscounting.
    let deletes: Vec<CellWrite> = all
        .iter()
        .step_by(7)
        .map(|c| {
            delete_with(
                c,
                f.store.read_cell(&r, c.as_bytes()).unwrap().unwrap().join(),
            )
        })
        .collect();
    f.store.write_row(&r, &deletes, 2).unwrap();
    let live: Vec<String> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 7 != 0)
        .map(|(_, c)| c.clone())
        .collect();

    for include_tombstones in [false, true] {
        let expected = if include_tombstones { &all } else { &live };
        let mut seen = Vec::new();
        let mut cursor: Option<Vec<u8>> = None;
        let mut pages = 0;
        loop {
            let page = f
                .store
                .read_row(
                    &r,
                    &RowSlice {
                        after: cursor.clone(),
                        limit: 97,
                        include_tombstones,
                        ..RowSlice::default()
                    },
                )
                .unwrap();
            pages += 1;
            assert!(page.cells.len() <= 97);
            seen.extend(columns(&page));
            match page.next_cursor() {
                Some(next) => cursor = Some(next.to_vec()),
                None => break,
            }
        }
        assert_eq!(&seen, expected);
        assert_eq!(pages, expected.len().div_ceil(97));
    }
}

fn corrupt_cells_are_errors<E: Engine>(open: &Open<E>) {
    let f = open(StoreOptions::new(1));
    let r = row("k");
    f.store.write_row(&r, &[set("good", "v")], 1).unwrap();
    let mut batch = WriteBatch::new();
    batch.put(
        ColumnFamily::Data,
        cell_key(&r, b"bad").unwrap(),
        vec![1, 0xff, 0xff, 0xff],
    );
    batch.put(
        ColumnFamily::Data,
        cell_key(&r, b"future").unwrap(),
        vec![200, 0],
    );
    f.store.engine().write(batch).unwrap();

    for column in [b"bad".as_slice(), b"future"] {
        match f.store.read_cell(&r, column) {
            Err(StorageError::Corrupt { what, key, .. }) => {
                assert_eq!(what, "cell");
                assert!(!key.is_empty());
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
    assert!(matches!(
        f.store.read_row(&r, &RowSlice::default()),
        Err(StorageError::Corrupt { .. })
    ));
    // A write touching a corrupt cell fails without writing anything.
    assert!(matches!(
        f.store
            .write_row(&r, &[set("good", "new"), set("bad", "x")], 2),
        Err(StorageError::Corrupt { .. })
    ));
    assert_eq!(
        values(&f.store.read_cell(&r, b"good").unwrap().unwrap()),
        vec!["v"]
    );
    assert!(matches!(
        f.store.delete_row(&r, 3),
        Err(StorageError::Corrupt { .. })
    ));
    // Reads that don't touch the bad cells still work.
    let page = f
        .store
        .read_row(
            &r,
            &RowSlice {
                from: s_vec("good"),
                to: s_vec("h"),
                ..RowSlice::default()
            },
        )
        .unwrap();
    assert_eq!(columns(&page), vec!["good"]);
}

fn s_vec(s: &str) -> Option<Vec<u8>> {
    Some(s.as_bytes().to_vec())
}

fn meta_records<E: Engine>(open: &Open<E>) {
    let f = open(StoreOptions::new(1));
    assert_eq!(f.store.get_meta("node/id").unwrap(), None);
    f.store.put_meta("node/id", b"7").unwrap();
    f.store.put_meta("ring/epoch", b"3").unwrap();
    f.store.put_meta("ring/owners", b"...").unwrap();
    f.store.put_meta("ringside", b"x").unwrap();
    assert_eq!(f.store.get_meta("node/id").unwrap(), Some(b"7".to_vec()));
    let ring: Vec<String> = f
        .store
        .scan_meta("ring/")
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(ring, vec!["ring/epoch", "ring/owners"]);
    assert_eq!(f.store.scan_meta("").unwrap().len(), 4);
    f.store.delete_meta("ring/epoch").unwrap();
    assert_eq!(f.store.scan_meta("ring/").unwrap().len(), 1);
    // Meta records are not cells.
    assert_eq!(f.store.stats(ColumnFamily::Data).unwrap().keys, 0);

    // Versioned records round-trip through the shared codec.
    let bytes = tessera_storage::encode_versioned("epoch", &42u64).unwrap();
    f.store.put_meta("ring/epoch", &bytes).unwrap();
    let stored = f.store.get_meta("ring/epoch").unwrap().unwrap();
    let epoch: u64 = tessera_storage::decode_versioned("epoch", b"ring/epoch", &stored).unwrap();
    assert_eq!(epoch, 42);
}

fn tombstone_values_carry_timestamps<E: Engine>(open: &Open<E>) {
    let f = open(StoreOptions::new(1));
    let r = row("k");
    let written = f
        .store
        .write_row(&r, &[delete_with("gone", Context::new())], 77)
        .unwrap();
    assert_eq!(
        written[0].1.values(),
        vec![&CellValue {
            data: None,
            written_at_ms: 77
        }]
    );
}

macro_rules! for_each_engine {
    ($($test:ident),* $(,)?) => {
        mod memory_engine {
            $( #[test] fn $test() { super::$test(&super::memory) } )*
        }
        mod rocksdb_engine {
            $( #[test] fn $test() { super::$test(&super::rocks) } )*
        }
    };
}

for_each_engine!(
    write_then_read,
    context_supersedes,
    concurrent_blind_writes_are_all_kept,
    concurrent_writes_with_context_lose_nothing,
    sibling_cap_leaves_storage_unchanged,
    invalid_writes_are_rejected,
    merge_row_syncs_and_is_idempotent,
    merges_never_lose_values,
    delete_row_tombstones_live_cells,
    read_row_slices,
    read_row_skips_many_tombstones,
    paging_reaches_every_cell_once,
    corrupt_cells_are_errors,
    meta_records,
    tombstone_values_carry_timestamps,
);
