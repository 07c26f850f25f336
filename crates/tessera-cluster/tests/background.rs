//! Background work that outlives a request stays bounded: replication stragglers and read
//! repairs run under the coordinator's budget, a stopping node turns its stragglers into hints,
//! and the local commit of a write waits under the request's deadline.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{live, row, set, Cluster, Options};
use tessera_cluster::{
    Coordinator, CoordinatorConfig, CoordinatorError, CutMode, Replica, RowWriter, SimNetwork,
    StaticMembership, StorageRunner, COMMITTER,
};
use tessera_storage::{CellStore, HintStore, MemoryEngine, StoreOptions};
use tokio::time::Instant;

fn silent_cluster(seed: u64, background_tasks: u32) -> Cluster {
    let c = Cluster::with_options(
        3,
        seed,
        Options {
            background_tasks,
            ..Options::default()
        },
    );
    // n2 accepts connections but never answers (a paused process), and membership still
    // believes it alive: every write's copy to it straggles until the deadline.
    c.net.set_cut_mode(CutMode::Silent);
    c.net.isolate("n2");
    c
}

fn names() -> Vec<String> {
    (0..3).map(|i| format!("n{i}")).collect()
}

#[tokio::test(start_paused = true)]
async fn a_silent_replica_turns_stragglers_into_hints_within_the_budget() {
    let c = Arc::new(silent_cluster(21, 8));
    let coordinator = c.node("n0").coordinator.clone();
    let writes: Vec<_> = (0..100)
        .map(|i| {
            let coordinator = coordinator.clone();
            tokio::spawn(async move {
                coordinator
                    .write(set(&row(&format!("k{i}")), "c", "v", 2, names()))
                    .await
            })
        })
        .collect();
    for write in writes {
        let outcome = write.await.unwrap().expect("n0 and n1 make W=2");
        assert_eq!(outcome.acked, 2);
    }
    // Let the slot tasks see that their writes were answered.
    tokio::time::sleep(Duration::from_millis(1)).await;
    // Every write has been answered; n2's copies straggle, and only 8 may do so in memory.
    let budget = coordinator.background().stats();
    assert_eq!(budget.tasks, 8, "{budget:?}");
    assert!(budget.bytes > 0);
    let stats = coordinator.stats().snapshot();
    assert_eq!(stats.stragglers, 100);
    assert_eq!(stats.stragglers_hinted, 92);
    assert_eq!(
        c.hints_on("n0"),
        92,
        "over the budget: kept as hints at once"
    );
    // At the deadline the admitted ones give up on n2 too, and keep their copies as hints.
    c.settle().await;
    assert_eq!(coordinator.background().stats().tasks, 0);
    assert_eq!(c.hints_on("n0"), 100);
    assert_eq!(coordinator.background().stats().refused, 92);
}

#[tokio::test(start_paused = true)]
async fn a_stopping_node_turns_its_stragglers_into_hints_before_their_deadline() {
    let c = silent_cluster(22, 4096);
    let coordinator = &c.node("n0").coordinator;
    for i in 0..10 {
        coordinator
            .write(set(&row(&format!("k{i}")), "c", "v", 2, names()))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(coordinator.background().running(), 10);
    let started = Instant::now();
    let report = coordinator
        .background()
        .drain(Duration::from_millis(100), Duration::from_secs(1))
        .await;
    assert_eq!((report.running, report.told_to_give_up), (10, 10));
    assert_eq!(report.abandoned, 0);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the drain waited for the request deadline"
    );
    assert_eq!(c.hints_on("n0"), 10, "every straggler left a hint");
    assert_eq!(coordinator.stats().snapshot().stragglers_hinted, 10);
    // A drained budget admits nothing more: later stragglers are hinted at once.
    coordinator
        .write(set(&row("late"), "c", "v", 2, names()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(c.hints_on("n0"), 11);
}

#[tokio::test(start_paused = true)]
async fn read_repairs_over_the_budget_are_skipped_and_counted() {
    let c = Cluster::with_options(
        3,
        23,
        Options {
            background_tasks: 0,
            ..Options::default()
        },
    );
    let key = row("stale");
    // n2 misses the write.
    c.net.isolate("n2");
    c.node("n0")
        .coordinator
        .write(set(&key, "c", "v", 2, names()))
        .await
        .unwrap();
    c.settle().await;
    c.net.heal_all();
    let read = c
        .node("n0")
        .coordinator
        .read_cell(key.clone(), b"c".to_vec(), 3, names())
        .await
        .unwrap();
    assert_eq!(live(read.value.as_ref()), ["v"]);
    c.settle().await;
    assert_eq!(
        c.node("n0").coordinator.stats().snapshot().repairs_skipped,
        1
    );
    assert!(c.stored("n2", &key, b"c").is_none(), "no repair was sent");
}

/// A one-node "cluster" on a real runtime, with its committer on `workers`.
fn lone_node(
    workers: &tessera_worker::Runner,
    timeout: Duration,
) -> Arc<Coordinator<tessera_cluster::SimTransport, Arc<StaticMembership>, MemoryEngine>> {
    let net = SimNetwork::new(24);
    let engine = Arc::new(MemoryEngine::new());
    let store = Arc::new(CellStore::<MemoryEngine>::new(
        engine.clone(),
        StoreOptions::new(1),
    ));
    let hints = Arc::new(HintStore::<MemoryEngine>::new(engine));
    let writer = RowWriter::start(store, StorageRunner::Blocking, workers).unwrap();
    let coordinator = Arc::new(Coordinator::new(
        "n0",
        writer.clone(),
        hints.clone(),
        net.transport("n0"),
        Arc::new(StaticMembership::new(["n0"])),
        CoordinatorConfig {
            timeout,
            ..CoordinatorConfig::default()
        },
    ));
    let replica = Arc::new(Replica::new("n0", writer, hints, StorageRunner::Blocking));
    replica.set_coordinator(&coordinator);
    net.register("n0", replica);
    coordinator
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_commit_times_out_within_the_deadline() {
    let workers = tessera_worker::Runner::new();
    let coordinator = lone_node(&workers, Duration::from_millis(300));
    let key = row("k");
    let one = || vec!["n0".to_owned()];
    coordinator
        .write(set(&key, "c", "v1", 1, one()))
        .await
        .unwrap();
    // The committer stops taking batches, as a stalled disk would.
    let committer = workers.handle(COMMITTER).unwrap();
    committer.pause();
    while committer.info().state != tessera_worker::WorkerState::Paused {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    match coordinator.write(set(&key, "c", "v2", 1, one())).await {
        Err(CoordinatorError::Timeout {
            acked: 0, pending, ..
        }) => assert_eq!(pending, one()),
        other => panic!("{other:?}"),
    }
    // The write stayed queued: its outcome was unknown, and it is applied once the disk moves.
    committer.resume();
    for _ in 0..500 {
        let cell = coordinator.store().read_cell(&key, b"c").unwrap();
        if live(cell.as_ref()) == ["v2"] {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the queued write was never applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_committer_applies_what_is_queued_before_it_stops() {
    let workers = tessera_worker::Runner::new();
    let coordinator = lone_node(&workers, Duration::from_secs(30));
    workers.handle(COMMITTER).unwrap().pause();
    let writes: Vec<_> = (0..10)
        .map(|i| {
            let coordinator = coordinator.clone();
            tokio::spawn(async move {
                coordinator
                    .write(set(&row(&format!("k{i}")), "c", "v", 1, vec!["n0".into()]))
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let report = workers.shutdown(Duration::from_secs(10)).await;
    assert_eq!(report.stopped, [COMMITTER]);
    for write in writes {
        write
            .await
            .unwrap()
            .expect("applied by the stopping committer");
    }
    for i in 0..10 {
        let cell = coordinator
            .store()
            .read_cell(&row(&format!("k{i}")), b"c")
            .unwrap();
        assert_eq!(live(cell.as_ref()), ["v"]);
    }
    // Later writes learn that the node is stopping.
    assert!(coordinator
        .write(set(&row("late"), "c", "v", 1, vec!["n0".into()]))
        .await
        .is_err());
}
