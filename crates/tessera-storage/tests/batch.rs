//! `CellStore::apply`: many row writes and merges in one engine write must mean exactly what
//! applying them one at a time, in order, means, op by op and in what is stored.

mod common;

use std::sync::atomic::Ordering;

use common::{owned_op, row, Owned, Probe};
use proptest::prelude::*;
use tessera_storage::{
    CellStore, CellWrite, ColumnFamily, Context, EngineRead, KvPairs, RowOp, RowOutcome,
    StorageError, StoreOptions, MAX_COLUMN_LEN,
};

const MAX_SIBLINGS: usize = 3;

fn store() -> CellStore<Probe> {
    let mut options = StoreOptions::new(1);
    options.max_siblings = MAX_SIBLINGS;
    CellStore::new(Probe::default(), options)
}

/// Everything the data column family holds.
fn contents(store: &CellStore<Probe>) -> KvPairs {
    store
        .engine()
        .scan(ColumnFamily::Data, &[], None, usize::MAX)
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The model: one op at a time, in order, on a store of the same replica (what one op alone
    /// means is pinned down by tests/store.rs, through write_row and merge_row).
    #[test]
    fn a_batch_means_its_ops_applied_one_at_a_time(
        prefix in prop::collection::vec(owned_op(), 0..4),
        ops in prop::collection::vec(owned_op(), 1..12),
    ) {
        let batched = store();
        let sequential = store();
        for op in &prefix {
            let _ = batched.apply(&[op.op()]);
            let _ = sequential.apply(&[op.op()]);
        }
        let writes_before = batched.engine().writes.load(Ordering::SeqCst);

        let views: Vec<RowOp<'_>> = ops.iter().map(Owned::op).collect();
        let together = batched.apply(&views);
        let one_by_one: Vec<_> = views
            .iter()
            .map(|op| sequential.apply(std::slice::from_ref(op)).pop().unwrap())
            .collect();

        prop_assert_eq!(&together, &one_by_one);
        prop_assert_eq!(contents(&batched), contents(&sequential));
        prop_assert!(batched.engine().writes.load(Ordering::SeqCst) - writes_before <= 1);
    }
}

fn blind(column: &str, value: &str) -> CellWrite {
    CellWrite::Set {
        column: column.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
        context: Context::new(),
    }
}

#[test]
fn an_op_that_fails_takes_no_other_op_down() {
    let store = store();
    let hot = row(1);
    let cold = row(2);
    // Fill `hot`'s column to the sibling cap.
    for i in 0..MAX_SIBLINGS {
        store
            .write_row(&hot, &[blind("c", &i.to_string())], 1)
            .unwrap();
    }
    let too_many = [blind("c", "one too many"), blind("d", "would be new")];
    let fine = [blind("c", "cold")];
    let results = store.apply(&[
        RowOp::Write {
            row: &hot,
            writes: &too_many,
            now_ms: 2,
        },
        RowOp::Write {
            row: &cold,
            writes: &fine,
            now_ms: 2,
        },
    ]);
    assert!(
        matches!(
            results[0],
            Err(StorageError::TooManySiblings {
                siblings: 4,
                max: 3,
                ..
            })
        ),
        "{:?}",
        results[0]
    );
    assert!(matches!(&results[1], Ok(RowOutcome::Written(cells)) if cells.len() == 1));
    // The failed op wrote nothing, not even its second column.
    assert_eq!(store.read_cell(&hot, b"d").unwrap(), None);
    assert_eq!(
        store
            .read_cell(&hot, b"c")
            .unwrap()
            .unwrap()
            .sibling_count(),
        3
    );
    assert!(store.read_cell(&cold, b"c").unwrap().is_some());
}

#[test]
fn a_failed_engine_write_fails_every_op_and_stores_nothing() {
    let store = store();
    let invalid = [blind(&"x".repeat(MAX_COLUMN_LEN + 1), "v")];
    let valid = [blind("c", "v")];
    let (a, b) = (row(1), row(2));
    store.engine().fail_writes.store(true, Ordering::SeqCst);
    let results = store.apply(&[
        RowOp::Write {
            row: &a,
            writes: &valid,
            now_ms: 1,
        },
        RowOp::Write {
            row: &b,
            writes: &invalid,
            now_ms: 1,
        },
        RowOp::Write {
            row: &b,
            writes: &valid,
            now_ms: 1,
        },
    ]);
    for index in [0, 2] {
        assert!(
            matches!(&results[index], Err(StorageError::Engine { message, .. }) if message.contains("injected")),
            "{:?}",
            results[index]
        );
    }
    // The invalid op reports its own error, not the engine's.
    assert!(matches!(
        results[1],
        Err(StorageError::ColumnTooLong { .. })
    ));
    assert!(contents(&store).is_empty());
}

#[test]
fn ops_on_one_cell_in_one_batch_see_each_other() {
    let store = store();
    let r = row(1);
    let first = [blind("c", "first")];
    let results = store.apply(&[
        RowOp::Write {
            row: &r,
            writes: &first,
            now_ms: 1,
        },
        RowOp::Write {
            row: &r,
            writes: &first,
            now_ms: 1,
        },
    ]);
    // The second blind write did not see the first, so both stay, as they would one by one.
    let Ok(RowOutcome::Written(cells)) = &results[1] else {
        panic!("{:?}", results[1]);
    };
    assert_eq!(cells[0].1.sibling_count(), 2);
    assert_eq!(store.engine().writes.load(Ordering::SeqCst), 1);
    assert_eq!(
        store.read_cell(&r, b"c").unwrap().unwrap().sibling_count(),
        2
    );
}
