//! Unit and property tests of the quorum state machines and answer merging.

use std::collections::BTreeMap;

use proptest::prelude::*;
use tessera_storage::{Cell, CellValue, Context, RowPage};

use super::*;

fn nodes(names: &[&str]) -> Vec<NodeId> {
    names.iter().map(|n| n.to_string()).collect()
}

fn value(actor: u64, bytes: &[u8], context: &Context, base: &Cell) -> Cell {
    base.write(context, &actor, CellValue::value(bytes.to_vec(), 0))
}

#[test]
fn write_quorum_succeeds_at_required_acks() {
    let mut q = WriteQuorum::new(2, nodes(&["a", "b", "c"]));
    assert_eq!(q.state(), QuorumState::Pending);
    assert!(q.on_ack("a"));
    assert!(!q.on_ack("a"), "a repeated ack is ignored");
    assert!(!q.on_ack("zz"), "a stranger is ignored");
    assert_eq!(q.state(), QuorumState::Pending);
    assert_eq!(q.pending(), nodes(&["b", "c"]));
    assert!(q.on_ack("c"));
    assert_eq!(q.state(), QuorumState::Succeeded);
    assert_eq!(q.acked(), 2);
    assert_eq!(q.acked_by(), nodes(&["a", "c"]).as_slice());
    // A late failure does not undo success.
    assert!(q.on_failure("b", "timeout"));
    assert_eq!(q.state(), QuorumState::Succeeded);
}

#[test]
fn write_quorum_fails_as_soon_as_success_is_impossible() {
    let mut q = WriteQuorum::new(2, nodes(&["a", "b", "c"]));
    q.on_failure("b", "unreachable");
    assert_eq!(q.state(), QuorumState::Pending);
    assert!(!q.on_ack("b"), "a node that failed cannot ack later");
    q.on_failure("c", "timeout");
    let expected = QuorumFailure {
        required: 2,
        acked: 0,
        acked_by: vec![],
        failed: vec![
            ("b".into(), "unreachable".into()),
            ("c".into(), "timeout".into()),
        ],
        replication: 3,
    };
    assert_eq!(q.state(), QuorumState::Failed(expected));
    // `a` can still ack, but one ack cannot make two.
    q.on_ack("a");
    assert!(matches!(q.state(), QuorumState::Failed(f) if f.acked == 1 && f.acked_by == ["a"]));
}

#[test]
fn hinted_acks_fill_the_replicas_slot_and_name_the_fallback() {
    let mut q = WriteQuorum::new(3, nodes(&["a", "b", "c"]));
    assert!(q.on_ack("a"));
    assert!(q.on_hinted("b", "d"));
    assert!(!q.on_hinted("b", "e"), "one slot, one hint");
    assert!(!q.on_ack("b"), "a hinted replica cannot ack again");
    assert!(!q.on_hinted("zz", "e"), "only replicas have slots");
    assert_eq!((q.acked(), q.hinted()), (2, 1));
    assert_eq!(q.hinted_by(), [("b".to_owned(), "d".to_owned())]);
    q.on_failure("c", "unreachable");
    match q.state() {
        QuorumState::Failed(f) => {
            assert_eq!((f.acked, f.required), (2, 3));
            assert_eq!(f.acked_by, nodes(&["a", "d"]));
            assert_eq!(f.failed, [("c".to_owned(), "unreachable".to_owned())]);
        }
        other => panic!("{other:?}"),
    }
    let mut q = WriteQuorum::new(2, nodes(&["a", "b", "c"]));
    q.on_ack("a");
    q.on_hinted("c", "d");
    assert_eq!(q.state(), QuorumState::Succeeded);
}

#[test]
fn write_quorum_edge_sizes() {
    assert_eq!(
        WriteQuorum::new(0, nodes(&["a"])).state(),
        QuorumState::Succeeded
    );
    match WriteQuorum::new(4, nodes(&["a", "b", "c"])).state() {
        QuorumState::Failed(f) => assert_eq!((f.required, f.replication), (4, 3)),
        other => panic!("{other:?}"),
    }
    let q = WriteQuorum::new(2, nodes(&["a", "a", "b"]));
    assert_eq!(q.replication(), 2, "duplicate replicas count once");
    let mut all = WriteQuorum::new(3, nodes(&["a", "b", "c"]));
    all.on_ack("a");
    all.on_ack("b");
    all.on_failure("c", "down");
    assert!(matches!(all.state(), QuorumState::Failed(f) if f.acked == 2 && f.failed[0].0 == "c"));
}

#[test]
fn failure_display_states_the_numbers() {
    let f = QuorumFailure {
        required: 3,
        acked: 2,
        acked_by: nodes(&["a", "b"]),
        failed: vec![("c".into(), "unreachable: link cut".into())],
        replication: 3,
    };
    assert_eq!(
        f.to_string(),
        "2 of 3 required replicas acked (replication 3); acked by [a, b]; failed: [c: unreachable: link cut]"
    );
}

#[test]
fn read_quorum_merges_and_finds_stale_replicas() {
    let v1 = value(1, b"v1", &Context::new(), &Cell::new());
    let v2 = value(2, b"v2", &v1.join(), &v1);
    let concurrent = value(3, b"x", &Context::new(), &Cell::new());
    let mut q = ReadQuorum::<Option<Cell>>::new(2, nodes(&["a", "b", "c"]));
    assert!(q.on_answer("a", Some(v1.clone())));
    assert!(!q.on_answer("a", Some(v2.clone())), "repeat ignored");
    assert_eq!(q.state(), ReadState::Pending);
    q.on_answer("b", Some(v2.clone()));
    assert_eq!(q.state(), ReadState::Succeeded(Some(v2.clone())));
    assert_eq!(q.stale(), nodes(&["a"]));
    q.on_answer("c", None);
    assert_eq!(q.stale(), nodes(&["a", "c"]));
    assert_eq!(q.answered(), 3);

    let mut q = ReadQuorum::<Option<Cell>>::new(2, nodes(&["a", "b"]));
    q.on_answer("a", Some(v2.clone()));
    q.on_answer("b", Some(concurrent.clone()));
    let merged = v2.sync(&concurrent);
    assert_eq!(q.state(), ReadState::Succeeded(Some(merged.clone())));
    assert_eq!(
        q.repairs(),
        vec![("a".to_owned(), merged.clone()), ("b".to_owned(), merged)]
    );
}

#[test]
fn read_quorum_of_nothing_needs_no_repair() {
    let mut q = ReadQuorum::<Option<Cell>>::new(1, nodes(&["a", "b"]));
    q.on_answer("a", None);
    q.on_answer("b", None);
    assert_eq!(q.state(), ReadState::Succeeded(None));
    assert!(q.repairs().is_empty());
}

#[test]
fn read_quorum_fails_with_numbers() {
    let mut q = ReadQuorum::<Option<Cell>>::new(3, nodes(&["a", "b", "c"]));
    q.on_answer("a", None);
    q.on_failure("b", "timeout");
    match q.state() {
        ReadState::Failed(f) => {
            assert_eq!((f.required, f.acked, f.replication), (3, 1, 3));
            assert_eq!(f.failed, vec![("b".to_owned(), "timeout".to_owned())]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(q.pending(), nodes(&["c"]));
}

fn page(cells: &[(&str, &Cell)], more: bool) -> RowPage {
    RowPage {
        cells: cells
            .iter()
            .map(|(c, cell)| (c.as_bytes().to_vec(), (*cell).clone()))
            .collect(),
        more,
    }
}

#[test]
fn row_merge_stops_at_the_smallest_cut() {
    let x = value(1, b"x", &Context::new(), &Cell::new());
    let y = value(2, b"y", &Context::new(), &Cell::new());
    let xy = x.sync(&y);
    // a: limit 2, cut after "c". b: complete. c: limit 3, cut after "d".
    let a = page(&[("b", &x), ("c", &x)], true);
    let b = page(&[("a", &y), ("c", &y), ("e", &y)], false);
    let c = page(&[("a", &y), ("b", &x), ("d", &y)], true);
    let merged = RowPage::merge(&[&a, &b, &c]);
    assert_eq!(merged, page(&[("a", &y), ("b", &x), ("c", &xy)], true));
    // Without the cut pages the merge is complete.
    assert_eq!(RowPage::merge(&[&b]), b);
    assert_eq!(
        RowPage::merge(&[]),
        RowPage {
            cells: vec![],
            more: false
        }
    );

    let repairs: BTreeMap<NodeId, Vec<(Vec<u8>, Cell)>> = RowPage::repairs(&[
        ("a".to_owned(), a),
        ("b".to_owned(), b),
        ("c".to_owned(), c),
    ])
    .into_iter()
    .collect();
    let cells = |list: &[(&str, &Cell)]| page(list, false).cells;
    // a covers up to "c": it lacks a, and c is stale; d and e are beyond it.
    assert_eq!(repairs["a"], cells(&[("a", &y), ("c", &xy)]));
    // b covers everything: it lacks b and d, and c is stale.
    assert_eq!(repairs["b"], cells(&[("b", &x), ("c", &xy), ("d", &y)]));
    // c covers up to "d": it lacks c.
    assert_eq!(repairs["c"], cells(&[("c", &xy)]));
}

#[test]
fn up_to_date_pages_need_no_repair() {
    let x = value(1, b"x", &Context::new(), &Cell::new());
    let p = page(&[("a", &x)], false);
    assert!(RowPage::repairs(&[("a".to_owned(), p.clone()), ("b".to_owned(), p)]).is_empty());
}

/// The expected verdict after some events.
fn expected(required: u32, replicas: usize, acks: usize, failures: usize) -> &'static str {
    if acks >= required as usize {
        "succeeded"
    } else if replicas - failures < required as usize {
        "failed"
    } else {
        "pending"
    }
}

fn verdict(state: &QuorumState) -> &'static str {
    match state {
        QuorumState::Pending => "pending",
        QuorumState::Succeeded => "succeeded",
        QuorumState::Failed(_) => "failed",
    }
}

/// Replica events: (replica index, ack?) in delivery order, with repeats.
fn events() -> impl Strategy<Value = (u32, usize, Vec<(usize, bool)>)> {
    (1usize..=5, 0u32..=6).prop_flat_map(|(n, required)| {
        let outcomes = proptest::collection::vec(
            prop_oneof![Just(Some(true)), Just(Some(false)), Just(None)],
            n,
        );
        (Just(required), Just(n), outcomes).prop_flat_map(|(required, n, outcomes)| {
            let mut list: Vec<(usize, bool)> = outcomes
                .iter()
                .enumerate()
                .filter_map(|(i, o)| o.map(|ack| (i, ack)))
                .collect();
            // Repeats with the opposite outcome must be ignored.
            let repeats: Vec<(usize, bool)> = list.iter().map(|(i, ack)| (*i, !ack)).collect();
            list.extend(repeats);
            (Just(required), Just(n), Just(list).prop_shuffle())
        })
    })
}

proptest! {
    #[test]
    fn write_verdict_follows_the_counts_in_any_order((required, n, events) in events()) {
        let names: Vec<NodeId> = (0..n).map(|i| format!("n{i}")).collect();
        let mut q = WriteQuorum::new(required, names.clone());
        let mut first: BTreeMap<usize, bool> = BTreeMap::new();
        let mut decided: Option<&'static str> = None;
        for (i, ack) in events {
            if ack { q.on_ack(&names[i]); } else { q.on_failure(&names[i], "x"); }
            first.entry(i).or_insert(ack);
            q.on_ack("stranger");
            let acks = first.values().filter(|a| **a).count();
            let failures = first.len() - acks;
            let want = expected(required, n, acks, failures);
            let got = verdict(&q.state());
            prop_assert_eq!(got, want);
            // Once decided, the verdict never changes.
            if let Some(before) = decided { prop_assert_eq!(before, got); }
            if got != "pending" { decided = Some(got); }
            prop_assert_eq!(q.acked() as usize, acks);
            prop_assert_eq!(q.failed().len(), failures);
            prop_assert_eq!(q.pending().len(), n - first.len());
        }
        if let QuorumState::Failed(f) = q.state() {
            prop_assert_eq!(f.required, required);
            prop_assert_eq!(f.replication as usize, n);
            prop_assert_eq!(f.acked as usize, f.acked_by.len());
        }
    }

    #[test]
    fn read_verdict_follows_the_counts_in_any_order((required, n, events) in events()) {
        let names: Vec<NodeId> = (0..n).map(|i| format!("n{i}")).collect();
        let mut q = ReadQuorum::<Option<Cell>>::new(required, names.clone());
        let mut first: BTreeMap<usize, bool> = BTreeMap::new();
        for (i, ack) in events {
            if ack { q.on_answer(&names[i], None); } else { q.on_failure(&names[i], "x"); }
            first.entry(i).or_insert(ack);
            let acks = first.values().filter(|a| **a).count();
            let want = expected(required, n, acks, first.len() - acks);
            let got = match q.state() {
                ReadState::Pending => "pending",
                ReadState::Succeeded(_) => "succeeded",
                ReadState::Failed(_) => "failed",
            };
            prop_assert_eq!(got, want);
        }
    }
}

/// Replica states of one cell after random writes (with and without the
/// contexts of other replicas) and syncs.
fn replica_cells(replicas: usize) -> impl Strategy<Value = Vec<Cell>> {
    proptest::collection::vec(
        (0u8..3, 0..replicas, 0..replicas, any::<bool>(), any::<u8>()),
        0..24,
    )
    .prop_map(move |ops| {
        let mut cells = vec![Cell::new(); replicas];
        for (kind, a, b, with_context, byte) in ops {
            if kind < 2 {
                let context = if with_context {
                    cells[b].join()
                } else {
                    Context::new()
                };
                cells[a] = value(a as u64 + 1, &[byte], &context, &cells[a]);
            } else {
                cells[a] = cells[a].sync(&cells[b]);
            }
        }
        cells
    })
}

fn as_answer(cell: &Cell) -> Option<Cell> {
    (!cell.is_empty()).then(|| cell.clone())
}

/// Pages of a row of four columns on three replicas, each cut at its own limit.
fn replica_pages() -> impl Strategy<Value = Vec<RowPage>> {
    (
        proptest::collection::vec(replica_cells(3), 4),
        proptest::collection::vec(1usize..=5, 3),
    )
        .prop_map(|(columns, limits)| {
            (0..3)
                .map(|r| {
                    let all: Vec<(Vec<u8>, Cell)> = columns
                        .iter()
                        .enumerate()
                        .filter(|(_, cells)| !cells[r].is_empty())
                        .map(|(c, cells)| (vec![b'a' + c as u8], cells[r].clone()))
                        .collect();
                    let more = all.len() > limits[r];
                    RowPage {
                        cells: all.into_iter().take(limits[r]).collect(),
                        more,
                    }
                })
                .collect()
        })
}

/// The last column a page speaks for; `None` for a complete page.
fn covered_to(page: &RowPage) -> Option<Vec<u8>> {
    if page.more {
        page.cells.last().map(|(c, _)| c.clone())
    } else {
        None
    }
}

fn covers(page: &RowPage, column: &[u8]) -> bool {
    covered_to(page).is_none_or(|last| column <= last.as_slice())
}

proptest! {
    #[test]
    fn cell_merge_descends_every_answer_in_any_order(cells in replica_cells(3), order in Just(vec![0usize, 1, 2]).prop_shuffle()) {
        let answers: Vec<Option<Cell>> = cells.iter().map(as_answer).collect();
        let refs: Vec<&Option<Cell>> = answers.iter().collect();
        let merged = <Option<Cell>>::merge(&refs);
        let shuffled: Vec<&Option<Cell>> = order.iter().map(|i| &answers[*i]).collect();
        prop_assert_eq!(&<Option<Cell>>::merge(&shuffled), &merged);
        for answer in answers.iter().flatten() {
            let m = merged.as_ref().expect("some answer, so some merge");
            prop_assert!(m.descends(answer));
            for v in m.values() {
                // Every merged value was some replica's.
                prop_assert!(answers.iter().flatten().any(|a| a.values().contains(&v)));
            }
        }
        // After repair every replica holds the merge.
        let named: Vec<(NodeId, Option<Cell>)> =
            answers.iter().enumerate().map(|(i, a)| (format!("n{i}"), a.clone())).collect();
        let repairs: BTreeMap<NodeId, Cell> = <Option<Cell>>::repairs(&named).into_iter().collect();
        for (node, answer) in &named {
            let after = match repairs.get(node) {
                Some(repair) => Some(answer.clone().unwrap_or_default().sync(repair)),
                None => answer.clone(),
            };
            prop_assert_eq!(&after, &merged);
        }
    }

    #[test]
    fn page_merge_is_bounded_and_descends_every_answer(pages in replica_pages(), order in Just(vec![0usize, 1, 2]).prop_shuffle()) {
        let refs: Vec<&RowPage> = pages.iter().collect();
        let merged = RowPage::merge(&refs);
        let shuffled: Vec<&RowPage> = order.iter().map(|i| &pages[*i]).collect();
        prop_assert_eq!(&RowPage::merge(&shuffled), &merged);

        let bound = pages.iter().filter_map(covered_to).min();
        prop_assert_eq!(merged.more, bound.is_some());
        let within = |c: &[u8]| bound.as_ref().is_none_or(|b| c <= b.as_slice());
        // Exactly the columns up to the bound, in order, each descending every answer.
        let mut expected: Vec<Vec<u8>> = pages
            .iter()
            .flat_map(|p| p.cells.iter().map(|(c, _)| c.clone()))
            .filter(|c| within(c))
            .collect();
        expected.sort();
        expected.dedup();
        let got: Vec<Vec<u8>> = merged.cells.iter().map(|(c, _)| c.clone()).collect();
        prop_assert_eq!(got, expected);
        for p in &pages {
            for (column, cell) in &p.cells {
                if within(column) {
                    let (_, m) = merged.cells.iter().find(|(c, _)| c == column).expect("merged column");
                    prop_assert!(m.descends(cell));
                }
            }
        }

        // After repair every replica agrees with the full merge on what its page covered.
        let named: Vec<(NodeId, RowPage)> =
            pages.iter().enumerate().map(|(i, p)| (format!("n{i}"), p.clone())).collect();
        let repairs: BTreeMap<NodeId, Vec<(Vec<u8>, Cell)>> = RowPage::repairs(&named).into_iter().collect();
        let mut full: BTreeMap<Vec<u8>, Cell> = BTreeMap::new();
        for p in &pages {
            for (c, cell) in &p.cells {
                let entry = full.entry(c.clone()).or_default();
                *entry = entry.sync(cell);
            }
        }
        for (node, p) in &named {
            let mut held: BTreeMap<Vec<u8>, Cell> = p.cells.iter().cloned().collect();
            for (c, cell) in repairs.get(node).into_iter().flatten() {
                prop_assert!(covers(p, c), "repair beyond what {} covered", node);
                let entry = held.entry(c.clone()).or_default();
                *entry = entry.sync(cell);
            }
            for (c, cell) in &full {
                if covers(p, c) {
                    prop_assert_eq!(held.get(c), Some(cell));
                }
            }
        }
    }
}
