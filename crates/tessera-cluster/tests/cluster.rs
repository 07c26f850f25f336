//! Scenario tests of the coordinator over a simulated network: quorum
//! writes and reads, read repair (including late answers and row pages),
//! forwarding, and how failures are reported.

mod common;

use std::time::Duration;

use common::{live, node_name, row, set, write, Cluster, Options};
use tessera_cluster::{
    CoordinatorError, CutMode, ErrorKind, Handler, LinkConfig, NodeId, Request, Response, Transport,
};
use tessera_storage::{Cell, Context, RowSlice, StorageError};

#[tokio::test(start_paused = true)]
async fn quorum_write_then_quorum_read() {
    let c = Cluster::new(3, 1);
    let r = row("k");
    let replicas = c.replicas_of(&r);
    let out = c.nodes[0]
        .coordinator
        .write(set(&r, "col", "v1", 2, replicas.clone()))
        .await
        .unwrap();
    assert_eq!((out.required, out.replication), (2, 3));
    assert!(out.acked >= 2);
    assert_eq!(out.coordinator, "n0");
    let read = c.nodes[1]
        .coordinator
        .read_cell(r.clone(), b"col".to_vec(), 2, replicas.clone())
        .await
        .unwrap();
    assert_eq!(live(read.value.as_ref()), ["v1"]);
    assert!(read.acked >= 2);
    c.settle().await;
    // Stragglers finished: every replica has it.
    for n in &replicas {
        assert_eq!(live(c.stored(n, &r, b"col").as_ref()), ["v1"], "{n}");
    }
}

#[tokio::test(start_paused = true)]
async fn contexts_decide_siblings() {
    let c = Cluster::new(3, 2);
    let r = row("k");
    let replicas = c.replicas_of(&r);
    let (a, b) = (&c.nodes[0].coordinator, &c.nodes[1].coordinator);
    a.write(set(&r, "x", "v1", 3, replicas.clone()))
        .await
        .unwrap();
    let seen = a
        .read_cell(r.clone(), b"x".to_vec(), 3, replicas.clone())
        .await
        .unwrap();
    let context = seen.value.as_ref().map(Cell::join);
    // Two writes from the same context are concurrent: both stay.
    a.write(write(
        &r,
        "x",
        Some("a"),
        context.clone(),
        3,
        replicas.clone(),
    ))
    .await
    .unwrap();
    b.write(write(&r, "x", Some("b"), context, 3, replicas.clone()))
        .await
        .unwrap();
    let both = b
        .read_cell(r.clone(), b"x".to_vec(), 2, replicas.clone())
        .await
        .unwrap();
    assert_eq!(live(both.value.as_ref()), ["a", "b"]);
    // A context-less write supersedes what its coordinator holds.
    c.nodes[2]
        .coordinator
        .write(set(&r, "x", "last", 3, replicas.clone()))
        .await
        .unwrap();
    let last = a
        .read_cell(r.clone(), b"x".to_vec(), 2, replicas.clone())
        .await
        .unwrap();
    assert_eq!(live(last.value.as_ref()), ["last"]);
    // A delete with the read's context leaves a tombstone only.
    let context = last.value.as_ref().map(Cell::join);
    a.write(write(&r, "x", None, context, 2, replicas.clone()))
        .await
        .unwrap();
    let gone = b
        .read_cell(r.clone(), b"x".to_vec(), 2, replicas.clone())
        .await
        .unwrap();
    assert!(live(gone.value.as_ref()).is_empty());
    assert!(
        gone.value.is_some(),
        "the tombstone is returned to the caller"
    );
}

#[tokio::test(start_paused = true)]
async fn read_repair_fixes_a_replica_that_missed_a_write() {
    let c = Cluster::new(3, 3);
    let r = row("k");
    let replicas = c.replicas_of(&r);
    c.net.cut("n0", "n2");
    let out = c.nodes[0]
        .coordinator
        .write(set(&r, "col", "v1", 2, replicas.clone()))
        .await
        .unwrap();
    assert_eq!(out.acked, 2);
    c.settle().await;
    assert_eq!(c.stored("n2", &r, b"col"), None, "n2 missed the write");
    c.net.heal("n0", "n2");

    let read = c.nodes[0]
        .coordinator
        .read_cell(r.clone(), b"col".to_vec(), 3, replicas.clone())
        .await
        .unwrap();
    assert_eq!(read.acked, 3);
    c.settle().await;
    assert_eq!(c.stored("n2", &r, b"col"), c.stored("n0", &r, b"col"));
    assert_eq!(live(c.stored("n2", &r, b"col").as_ref()), ["v1"]);
    let stats = c.nodes[0].coordinator.stats().snapshot();
    assert_eq!(stats.repairs_sent, 1);
    assert_eq!(stats.repair_cells, 1);
    assert_eq!(stats.repairs_failed, 0);
}

#[tokio::test(start_paused = true)]
async fn late_answers_are_repaired_both_ways() {
    let c = Cluster::new(3, 4);
    let r = row("k");
    let replicas = c.replicas_of(&r);
    // n2 misses "old"; then n2 alone gets "new" (concurrent, so both must survive).
    c.net.cut("n0", "n2");
    c.nodes[0]
        .coordinator
        .write(set(&r, "col", "old", 2, replicas.clone()))
        .await
        .unwrap();
    c.settle().await;
    c.net.heal("n0", "n2");
    c.net.cut("n2", "n0");
    c.net.cut("n2", "n1");
    c.nodes[2]
        .coordinator
        .write(set(&r, "col", "new", 1, replicas.clone()))
        .await
        .unwrap();
    c.settle().await;
    c.net.heal_all();

    // n2 answers late: the read completes with n0 and n1 only.
    c.net.set_link(
        "n0",
        "n2",
        LinkConfig::new(0.0, Duration::from_millis(500), Duration::from_millis(500)),
    );
    let read = c.nodes[0]
        .coordinator
        .read_cell(r.clone(), b"col".to_vec(), 2, replicas.clone())
        .await
        .unwrap();
    assert_eq!(read.acked, 2);
    assert_eq!(live(read.value.as_ref()), ["old"]);
    c.settle().await;
    for n in &replicas {
        assert_eq!(
            live(c.stored(n, &r, b"col").as_ref()),
            ["new", "old"],
            "{n}"
        );
    }
    // One merge to each replica: n2 lacked "old", n0 and n1 lacked "new".
    assert_eq!(c.nodes[0].coordinator.stats().snapshot().repairs_sent, 3);
}

#[tokio::test(start_paused = true)]
async fn row_reads_page_merge_and_hide_deletes() {
    let c = Cluster::new(3, 5);
    let r = row("row");
    let replicas = c.replicas_of(&r);
    let a = &c.nodes[0].coordinator;
    for col in ["a", "b", "c", "d", "e", "f"] {
        a.write(set(&r, col, &format!("{col}1"), 3, replicas.clone()))
            .await
            .unwrap();
    }
    // n2 misses the delete of "b" and the new "c0"; n1 misses "e2".
    c.net.cut("n0", "n2");
    let b = a
        .read_cell(r.clone(), b"b".to_vec(), 2, replicas.clone())
        .await
        .unwrap();
    a.write(write(
        &r,
        "b",
        None,
        b.value.as_ref().map(Cell::join),
        2,
        replicas.clone(),
    ))
    .await
    .unwrap();
    a.write(set(&r, "c0", "new", 2, replicas.clone()))
        .await
        .unwrap();
    c.settle().await;
    c.net.heal_all();
    c.net.cut("n0", "n1");
    a.write(set(&r, "e", "e2", 2, replicas.clone()))
        .await
        .unwrap();
    c.settle().await;
    c.net.heal_all();

    // Whole row at all: the stale live "b" on n2 must not win over the tombstone.
    let page = a
        .read_row(r.clone(), RowSlice::default(), 3, replicas.clone())
        .await
        .unwrap()
        .value;
    let columns: Vec<&[u8]> = page.cells.iter().map(|(c, _)| c.as_slice()).collect();
    assert_eq!(columns, [&b"a"[..], b"c", b"c0", b"d", b"e", b"f"]);
    assert!(!page.more);
    let e = &page.cells[4].1;
    assert_eq!(live(Some(e)), ["e2"]);

    // Paging with limit 2 and cursors walks exactly the same columns.
    let mut seen = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    for round in 0.. {
        assert!(round < 10, "paging does not end");
        let slice = RowSlice {
            after: after.clone(),
            limit: 2,
            ..RowSlice::default()
        };
        let page = a
            .read_row(r.clone(), slice, 2, replicas.clone())
            .await
            .unwrap()
            .value;
        assert!(page.cells.len() <= 2);
        seen.extend(page.cells.iter().map(|(c, _)| c.clone()));
        match page.next_cursor() {
            Some(cursor) => after = Some(cursor.to_vec()),
            None => break,
        }
    }
    let seen: Vec<&[u8]> = seen.iter().map(Vec::as_slice).collect();
    assert_eq!(seen, [&b"a"[..], b"c", b"c0", b"d", b"e", b"f"]);

    // With tombstones and a limit: exactly `limit` cells and `more`.
    let slice = RowSlice {
        limit: 3,
        include_tombstones: true,
        ..RowSlice::default()
    };
    let page = a
        .read_row(r.clone(), slice, 2, replicas.clone())
        .await
        .unwrap()
        .value;
    let columns: Vec<&[u8]> = page.cells.iter().map(|(c, _)| c.as_slice()).collect();
    assert_eq!(columns, [&b"a"[..], b"b", b"c"]);
    assert!(page.more);

    // The full read repaired every replica.
    c.settle().await;
    for col in ["a", "b", "c", "c0", "d", "e", "f"] {
        let expected = c.stored("n0", &r, col.as_bytes());
        for n in &replicas {
            assert_eq!(c.stored(n, &r, col.as_bytes()), expected, "{n} {col}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_row_cut_short_on_one_replica_is_merged_up_to_its_cut() {
    // n0 and n1 hold 20 tombstones and then "c20"; n2 never saw any of it and
    // holds only "c30". n0's page (tombstones count on replicas) is cut inside
    // the tombstones while n2's is complete: merging past n0's cut would jump
    // to "c30" and skip "c20" forever.
    let c = Cluster::new(3, 6);
    let r = row("row");
    let replicas = c.replicas_of(&r);
    let a = &c.nodes[0].coordinator;
    c.net.isolate("n2");
    for i in 0..20 {
        let col = format!("c{i:02}");
        a.write(set(&r, &col, "v", 2, replicas.clone()))
            .await
            .unwrap();
        a.write(write(&r, &col, None, None, 2, replicas.clone()))
            .await
            .unwrap();
    }
    a.write(set(&r, "c20", "v", 2, replicas.clone()))
        .await
        .unwrap();
    c.nodes[2]
        .coordinator
        .write(set(&r, "c30", "v", 1, replicas.clone()))
        .await
        .unwrap();
    c.settle().await;
    c.net.heal_all();

    let columns = |page: &tessera_storage::RowPage| -> Vec<String> {
        page.cells
            .iter()
            .map(|(c, _)| String::from_utf8_lossy(c).into_owned())
            .collect()
    };
    let page = a
        .read_row(
            r.clone(),
            RowSlice {
                limit: 5,
                ..RowSlice::default()
            },
            3,
            replicas.clone(),
        )
        .await
        .unwrap()
        .value;
    assert_eq!(columns(&page), ["c20", "c30"]);
    assert!(!page.more);
    let page = a
        .read_row(
            r.clone(),
            RowSlice {
                limit: 1,
                ..RowSlice::default()
            },
            3,
            replicas.clone(),
        )
        .await
        .unwrap()
        .value;
    assert_eq!(columns(&page), ["c20"]);
    assert!(page.more);
    let page = a
        .read_row(
            r.clone(),
            RowSlice {
                after: Some(b"c20".to_vec()),
                limit: 1,
                ..RowSlice::default()
            },
            3,
            replicas.clone(),
        )
        .await
        .unwrap()
        .value;
    assert_eq!(columns(&page), ["c30"]);
    assert!(!page.more);
    // The reads repaired n2 up to where they looked: it now has every tombstone.
    c.settle().await;
    for i in 0..20 {
        let col = format!("c{i:02}");
        assert_eq!(
            c.stored("n2", &r, col.as_bytes()),
            c.stored("n0", &r, col.as_bytes()),
            "{col}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_non_replica_forwards_the_write() {
    let c = Cluster::new(5, 7);
    let r = row("forwarded");
    let replicas = c.replicas_of(&r);
    let outsider = c.non_replica_of(&r);
    let out = c
        .node(&outsider)
        .coordinator
        .write(set(&r, "col", "v", 2, replicas.clone()))
        .await
        .unwrap();
    assert_eq!(out.coordinator, replicas[0]);
    assert!(out.acked >= 2);
    // The dot is the coordinating replica's, not the outsider's.
    let actor = c.actor_of(&replicas[0]);
    assert_eq!(out.cells[0].1.join().get(&actor), 1);
    c.settle().await;
    for n in &replicas {
        assert_eq!(live(c.stored(n, &r, b"col").as_ref()), ["v"], "{n}");
    }
    assert_eq!(c.stored(&outsider, &r, b"col"), None);
    assert_eq!(
        c.node(&outsider)
            .coordinator
            .stats()
            .snapshot()
            .writes_forwarded,
        1
    );

    // The first replica down (membership) or unreachable: the next one coordinates.
    c.membership.mark_down(&replicas[0]);
    let out = c
        .node(&outsider)
        .coordinator
        .write(set(&r, "col", "w", 2, replicas.clone()))
        .await
        .unwrap();
    assert_eq!(out.coordinator, replicas[1]);
    c.membership.mark_up(&replicas[0]);
    c.net.isolate(&replicas[0]);
    let out = c
        .node(&outsider)
        .coordinator
        .write(set(&r, "col", "x", 2, replicas.clone()))
        .await
        .unwrap();
    assert_eq!(out.coordinator, replicas[1]);
}

/// Found by the chaos harness: a forward retried at a second replica after the first stayed
/// silent made both apply the write under two dots, and a value a later write had superseded came
/// back as its sibling. A silent replica may still apply the write, so the forward ends in a
/// timeout (outcome unknown) and is never retried elsewhere.
#[tokio::test(start_paused = true)]
async fn a_forward_to_a_silent_replica_times_out_and_is_not_applied_twice() {
    let c = Cluster::new(5, 8);
    let r = row("silent-forward");
    let replicas = c.replicas_of(&r);
    let outsider = c.non_replica_of(&r);
    c.net.set_cut_mode(CutMode::Silent);
    c.net.cut(&outsider, &replicas[0]);
    let result = c
        .node(&outsider)
        .coordinator
        .write(set(&r, "col", "a", 2, replicas.clone()))
        .await;
    match result {
        Err(CoordinatorError::Timeout {
            pending, acked: 0, ..
        }) => {
            assert_eq!(pending, vec![replicas[0].clone()])
        }
        other => panic!("{other:?}"),
    }
    c.settle().await;
    for n in &replicas {
        assert_eq!(
            c.stored(n, &r, b"col"),
            None,
            "{n} applied a forward nobody answered"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_forwarded_write_fails_with_the_replicas_numbers() {
    let c = Cluster::new(5, 8);
    let r = row("forwarded");
    let replicas = c.replicas_of(&r);
    let outsider = c.non_replica_of(&r);
    c.net.isolate(&replicas[0]);
    c.net.isolate(&replicas[1]);
    match c
        .node(&outsider)
        .coordinator
        .write(set(&r, "col", "v", 2, replicas.clone()))
        .await
    {
        Err(CoordinatorError::Failed(f)) => {
            assert_eq!((f.required, f.acked, f.replication), (2, 1, 3));
            assert_eq!(f.acked_by, [replicas[2].clone()]);
            let failed: Vec<&NodeId> = f.failed.iter().map(|(n, _)| n).collect();
            assert!(
                failed.contains(&&replicas[0]) && failed.contains(&&replicas[1]),
                "{failed:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Nobody reachable at all: a Forward error listing every attempt.
    c.net.isolate(&replicas[2]);
    match c
        .node(&outsider)
        .coordinator
        .write(set(&r, "col", "v", 1, replicas.clone()))
        .await
    {
        Err(CoordinatorError::Forward { to, reason }) => {
            assert_eq!(to, replicas[0]);
            for n in &replicas {
                assert!(reason.contains(n.as_str()), "{reason}");
            }
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn too_few_live_replicas_is_unavailable_and_writes_nothing() {
    let c = Cluster::new(3, 9);
    let r = row("k");
    let replicas = c.replicas_of(&r);
    c.membership.mark_down("n1");
    c.membership.mark_down("n2");
    match c.nodes[0]
        .coordinator
        .write(set(&r, "col", "v", 2, replicas.clone()))
        .await
    {
        Err(CoordinatorError::Unavailable(f)) => {
            assert_eq!((f.required, f.acked, f.replication), (2, 0, 3));
            assert_eq!(f.failed.len(), 2);
            assert!(f.failed.iter().all(|(_, why)| why.contains("down")));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.stored("n0", &r, b"col"), None);
    match c.nodes[0]
        .coordinator
        .read_cell(r.clone(), b"col".to_vec(), 2, replicas.clone())
        .await
    {
        Err(CoordinatorError::Unavailable(f)) => assert_eq!(f.acked, 0),
        other => panic!("{other:?}"),
    }
    // W=1 still works with only the coordinator alive.
    let out = c.nodes[0]
        .coordinator
        .write(set(&r, "col", "v", 1, replicas.clone()))
        .await
        .unwrap();
    assert_eq!(out.acked, 1);
    let stats = c.nodes[0].coordinator.stats().snapshot();
    assert_eq!(
        (
            stats.writes_unavailable,
            stats.reads_unavailable,
            stats.writes_succeeded
        ),
        (1, 1, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn a_silent_replica_times_out_with_the_numbers() {
    let c = Cluster::new(3, 10);
    let r = row("k");
    let replicas = c.replicas_of(&r);
    c.net.set_cut_mode(CutMode::Silent);
    c.net.isolate("n2");
    let start = tokio::time::Instant::now();
    match c.nodes[0]
        .coordinator
        .write(set(&r, "col", "v", 3, replicas.clone()))
        .await
    {
        Err(CoordinatorError::Timeout {
            required,
            acked,
            replication,
            pending,
            timeout_ms,
        }) => {
            assert_eq!((required, acked, replication, timeout_ms), (3, 2, 3, 2000));
            assert_eq!(pending, ["n2"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(start.elapsed() >= Duration::from_secs(2));
    match c.nodes[0]
        .coordinator
        .read_cell(r.clone(), b"col".to_vec(), 3, replicas.clone())
        .await
    {
        Err(CoordinatorError::Timeout { acked, pending, .. }) => {
            assert_eq!(acked, 2);
            assert_eq!(pending, ["n2"]);
        }
        other => panic!("{other:?}"),
    }
    // Quorum still works.
    c.nodes[0]
        .coordinator
        .write(set(&r, "col", "w", 2, replicas.clone()))
        .await
        .unwrap();
    c.settle().await;
}

/// A client that hangs up drops the coordinator's future while its replica copies are in flight:
/// they must still go on to their end, as they would after an answer, or an applied write would
/// reach fewer replicas and leave no hint. (A design that ran the copies inside that future would
/// fail this.)
#[tokio::test(start_paused = true)]
async fn a_write_whose_caller_gives_up_still_reaches_every_replica() {
    let c = Cluster::new(3, 1);
    let r = row("k");
    let replicas = c.replicas_of(&r);
    c.net.set_cut_mode(CutMode::Silent);
    c.net.isolate("n2");
    c.net.set_default_link(LinkConfig::new(
        0.0,
        Duration::from_millis(5),
        Duration::from_millis(5),
    ));
    let write = c.nodes[0]
        .coordinator
        .write(set(&r, "col", "v", 2, replicas.clone()));
    // Given up once the local write is done and the copies are sent, before any answer.
    let gave_up = tokio::time::timeout(Duration::from_micros(1), write).await;
    assert!(gave_up.is_err(), "{gave_up:?}");
    assert_eq!(live(c.stored("n0", &r, b"col").as_ref()), ["v"]);
    c.settle().await;
    assert_eq!(live(c.stored("n1", &r, b"col").as_ref()), ["v"]);
    // n2's slot waited out its deadline, then kept a hint for it here.
    assert_eq!(c.hints_on("n0"), 1);
    assert_eq!(c.stored("n2", &r, b"col"), None);
}

#[tokio::test(start_paused = true)]
async fn too_many_siblings_passes_through_a_forward() {
    let c = Cluster::with_options(
        5,
        11,
        Options {
            max_siblings: 2,
            ..Options::default()
        },
    );
    let r = row("siblings");
    let replicas = c.replicas_of(&r);
    let outsider = c.non_replica_of(&r);
    let blind = || {
        write(
            &r,
            "col",
            Some("v"),
            Some(Context::new()),
            2,
            replicas.clone(),
        )
    };
    c.node(&outsider).coordinator.write(blind()).await.unwrap();
    c.node(&outsider).coordinator.write(blind()).await.unwrap();
    match c.node(&outsider).coordinator.write(blind()).await {
        Err(CoordinatorError::Storage(StorageError::TooManySiblings { siblings, max, .. })) => {
            assert_eq!((siblings, max), (3, 2));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn invalid_requests_are_refused() {
    let c = Cluster::new(3, 12);
    let r = row("k");
    let a = &c.nodes[0].coordinator;
    for (required, replicas) in [
        (0, vec![node_name(0)]),
        (2, vec![node_name(0)]),
        (1, vec![]),
        (1, vec![node_name(0), node_name(0)]),
    ] {
        assert!(matches!(
            a.write(set(&r, "col", "v", required, replicas.clone()))
                .await,
            Err(CoordinatorError::InvalidRequest { .. })
        ));
        assert!(matches!(
            a.read_cell(r.clone(), b"col".to_vec(), required, replicas)
                .await,
            Err(CoordinatorError::InvalidRequest { .. })
        ));
    }
    let mut empty = set(&r, "col", "v", 1, vec![node_name(0)]);
    empty.writes.clear();
    assert!(matches!(
        a.write(empty).await,
        Err(CoordinatorError::InvalidRequest { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn replicas_answer_pings_and_refuse_foreign_or_uncoordinated_writes() {
    let c = Cluster::new(3, 13);
    let transport = c.net.transport("n0");
    assert_eq!(
        transport.call(&node_name(1), Request::Ping).await,
        Ok(Response::Pong)
    );
    // A forwarded write must not be forwarded again.
    let r = row("k");
    let request = set(&r, "col", "v", 1, vec![node_name(2)]);
    match transport
        .call(
            &node_name(1),
            Request::Coordinate {
                request: request.clone(),
            },
        )
        .await
    {
        Ok(Response::Error {
            kind: ErrorKind::InvalidInput,
            message,
        }) => {
            assert!(message.contains("not one of its replicas"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // A replica without a coordinator says so.
    let lone = tessera_cluster::Replica::new(
        "lone",
        tessera_cluster::RowWriter::inline(c.nodes[0].store.clone()),
        c.nodes[0].hints.clone(),
        tessera_cluster::StorageRunner::Inline,
    );
    match lone
        .handle(&node_name(1), Request::Coordinate { request })
        .await
    {
        Response::Error {
            kind: ErrorKind::NotCoordinator,
            ..
        } => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_blocking_runner_works_on_a_real_runtime() {
    use std::sync::Arc;
    use tessera_cluster::{
        Coordinator, CoordinatorConfig, Replica, RowWriter, SimNetwork, StaticMembership,
        StorageRunner,
    };
    use tessera_storage::{CellStore, HintStore, MemoryEngine, StoreOptions};
    // One runner per node, as each node has its own.
    let workers: Vec<_> = (0..3).map(|_| tessera_worker::Runner::new()).collect();
    let net = SimNetwork::new(14);
    let names: Vec<NodeId> = (0..3).map(node_name).collect();
    let membership = Arc::new(StaticMembership::new(names.clone()));
    let mut coordinators = Vec::new();
    for (i, id) in names.iter().enumerate() {
        let engine = Arc::new(MemoryEngine::new());
        let store = Arc::new(CellStore::<MemoryEngine>::new(
            engine.clone(),
            StoreOptions::new(i as u64 + 1),
        ));
        let hints = Arc::new(HintStore::<MemoryEngine>::new(engine));
        let writer = RowWriter::start(store, StorageRunner::Blocking, &workers[i]).unwrap();
        let replica = Arc::new(Replica::new(
            id.clone(),
            writer.clone(),
            hints.clone(),
            StorageRunner::Blocking,
        ));
        let coordinator = Arc::new(Coordinator::new(
            id.clone(),
            writer,
            hints,
            net.transport(id.clone()),
            membership.clone(),
            CoordinatorConfig::default(),
        ));
        replica.set_coordinator(&coordinator);
        net.register(id.clone(), replica);
        coordinators.push(coordinator);
    }
    let r = row("k");
    coordinators[0]
        .write(set(&r, "col", "v", 3, names.clone()))
        .await
        .unwrap();
    let read = coordinators[2]
        .read_cell(r.clone(), b"col".to_vec(), 3, names.clone())
        .await
        .unwrap();
    assert_eq!(live(read.value.as_ref()), ["v"]);
}
