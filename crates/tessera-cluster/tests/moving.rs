//! Writes while data moves between rings: W acks are needed in each replica set, so both sets
//! hold every acknowledged write whichever one reads come from.

mod common;

use common::{live, row, set, Cluster};
use tessera_cluster::{CoordinatorError, WriteRequest};

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|n| n.to_string()).collect()
}

fn moving(request: WriteRequest, also: &[&str]) -> WriteRequest {
    WriteRequest {
        also: names(also),
        ..request
    }
}

#[tokio::test(start_paused = true)]
async fn a_write_during_a_move_reaches_w_in_both_sets() {
    let c = Cluster::new(5, 31);
    let key = row("k");
    // Old set n0 n1 n2, new set n0 n3 n4: the coordinator (n0) is in both.
    let outcome = c
        .node("n0")
        .coordinator
        .write(moving(
            set(&key, "c", "v", 2, names(&["n0", "n1", "n2"])),
            &["n0", "n3", "n4"],
        ))
        .await
        .expect("both sets reachable");
    // Acks of the first set, counted until both sets had W.
    assert!(outcome.acked >= 2, "{outcome:?}");
    c.settle().await;
    for node in ["n0", "n1", "n2", "n3", "n4"] {
        assert_eq!(live(c.stored(node, &key, b"c").as_ref()), ["v"], "{node}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_write_that_cannot_reach_w_in_the_new_set_fails() {
    let c = Cluster::new(5, 32);
    let key = row("k");
    // The new set's other members are down: W=2 there is out of reach, even though the old
    // set could ack, and nothing is attempted.
    c.membership.mark_down("n3");
    c.membership.mark_down("n4");
    let result = c
        .node("n0")
        .coordinator
        .write(moving(
            set(&key, "c", "v", 2, names(&["n0", "n1", "n2"])),
            &["n0", "n3", "n4"],
        ))
        .await;
    assert!(
        matches!(result, Err(CoordinatorError::Unavailable(_))),
        "{result:?}"
    );
    assert!(c.stored("n0", &key, b"c").is_none());

    // Alive for membership but cut off: the write is tried, the old set acks, and the new set's
    // quorum fails; the copies missing there are kept as hints on the coordinator.
    c.membership.mark_up("n3");
    c.membership.mark_up("n4");
    c.net.isolate("n3");
    c.net.isolate("n4");
    let result = c
        .node("n0")
        .coordinator
        .write(moving(
            set(&key, "c", "v", 2, names(&["n0", "n1", "n2"])),
            &["n0", "n3", "n4"],
        ))
        .await;
    match result {
        Err(CoordinatorError::Failed(failure)) => {
            assert_eq!(failure.required, 2);
            assert_eq!(failure.acked_by, names(&["n0"]), "{failure}");
        }
        other => panic!("{other:?}"),
    }
    c.settle().await;
    assert_eq!(c.hints_on("n0"), 2, "a hint for each of n3 and n4");
}

#[tokio::test(start_paused = true)]
async fn a_node_of_either_set_may_coordinate_and_others_forward() {
    let c = Cluster::new(5, 33);
    let key = row("k");
    // n3 is only in the new set: it coordinates. n1... is in the old set; a write received by a
    // node in neither set is forwarded.
    let request = moving(
        set(&key, "c", "v", 2, names(&["n0", "n1", "n2"])),
        &["n3", "n1", "n4"],
    );
    let outcome = c
        .node("n3")
        .coordinator
        .write(request.clone())
        .await
        .unwrap();
    assert_eq!(outcome.coordinator, "n3");
    let outside = moving(
        set(&key, "d", "v", 2, names(&["n0", "n1", "n2"])),
        &["n0", "n1", "n3"],
    );
    let outcome = c.node("n4").coordinator.write(outside).await.unwrap();
    assert_ne!(outcome.coordinator, "n4");
}
