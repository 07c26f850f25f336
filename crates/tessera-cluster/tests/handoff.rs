//! Sloppy quorum and hinted handoff over a simulated network, in paused time:
//! which node takes a hint, when hints count towards W, how failures are
//! reported, and how delivery hands hints over (order, deletion, backoff,
//! throttle, expiry, shutdown).

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{live, row, set, sloppy, stop_workers, Cluster, Options};
use tessera_cluster::{
    system_now_ms, CoordinatorError, ErrorKind, HandoffConfig, HintDelivery, HintDeliveryWorker,
    Request, Response, StorageRunner, Transport,
};
use tessera_storage::{Cell, CellValue, Context, Hint, RowKey};

/// A 5-node cluster and a key whose replicas are `r[0..3]` and fallbacks `f[0..2]`.
fn setup(seed: u64) -> (Cluster, RowKey, Vec<String>, Vec<String>) {
    setup_with(seed, Options::default())
}

fn setup_with(seed: u64, options: Options) -> (Cluster, RowKey, Vec<String>, Vec<String>) {
    let c = Cluster::with_options(5, seed, options);
    let key = row("handoff");
    let replicas = c.replicas_of(&key);
    let fallbacks = c.fallbacks_of(&key);
    assert_eq!((replicas.len(), fallbacks.len()), (3, 2));
    (c, key, replicas, fallbacks)
}

fn columns(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("c{i:02}")).collect()
}

#[tokio::test(start_paused = true)]
async fn a_down_replica_is_hinted_to_the_first_fallback_and_delivered_after_healing() {
    let (c, key, r, f) = setup(1);
    let down = &r[2];
    c.membership.mark_down(down);
    c.net.isolate(down);
    let coordinator = &c.node(&r[0]).coordinator;
    for (i, col) in columns(6).iter().enumerate() {
        // W=3 needs the hint; W=2 does not wait for it, but it is stored all the same.
        let w = if i % 2 == 0 { 3 } else { 2 };
        let out = coordinator
            .write(sloppy(&c, set(&key, col, "v", w, r.clone())))
            .await
            .unwrap();
        assert_eq!((out.required, out.replication), (w, 3));
        if w == 3 {
            assert_eq!((out.acked, out.hinted), (3, 1));
        }
    }
    c.settle().await;
    assert_eq!(c.node(&f[0]).hints.count(down).unwrap(), 6);
    assert_eq!(
        c.hints_on(&f[1]),
        0,
        "one fallback covers the one down replica"
    );
    assert_eq!(c.hints_on(&r[0]), 0, "the coordinator kept nothing itself");
    assert!(c.stored(down, &key, b"c00").is_none());
    let stats = coordinator.stats().snapshot();
    assert_eq!((stats.hints_sent, stats.hints_failed), (6, 0));
    assert!(stats.hints_counted >= 3);

    // Nothing is delivered while the target is down, whatever the network says.
    c.net.rejoin(down);
    let report = c.node(&f[0]).delivery.run_once().await;
    assert_eq!((report.delivered, report.skipped_down), (0, 1));

    // Healed: the delivery workers hand everything over, then stop on request.
    c.membership.mark_up(down);
    let workers = c.start_delivery();
    for _ in 0..600 {
        if c.hints_total() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(c.hints_total(), 0, "hints were not delivered");
    let status = c.node(&f[0]).delivery.status();
    assert!(status.running);
    assert_eq!((status.delivered, status.failed, status.pending), (6, 0, 0));
    assert_eq!(status.targets[0].target, *down);
    assert_eq!(status.targets[0].delivered, 6);
    stop_workers(&workers, Duration::from_secs(5)).await;
    assert!(!c.node(&f[0]).delivery.status().running);
    for col in columns(6) {
        let expected = c.stored(&r[0], &key, col.as_bytes());
        assert_eq!(live(expected.as_ref()), ["v"]);
        assert_eq!(
            c.stored(down, &key, col.as_bytes()),
            expected,
            "{col} on {down}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_replica_is_hinted_and_fallbacks_are_tried_in_order() {
    let (c, key, r, f) = setup(2);
    let coordinator = &c.node(&r[0]).coordinator;
    // Unreachable but not known down: the Merge fails, then the hint goes out.
    c.net.isolate(&r[1]);
    let out = coordinator
        .write(sloppy(&c, set(&key, "a", "v", 3, r.clone())))
        .await
        .unwrap();
    assert_eq!((out.acked, out.hinted), (3, 1));
    assert_eq!(c.node(&f[0]).hints.count(&r[1]).unwrap(), 1);

    // The first fallback is unreachable too: the second one takes it.
    c.net.isolate(&f[0]);
    let out = coordinator
        .write(sloppy(&c, set(&key, "b", "v", 3, r.clone())))
        .await
        .unwrap();
    assert_eq!((out.acked, out.hinted), (3, 1));
    assert_eq!(c.node(&f[1]).hints.count(&r[1]).unwrap(), 1);

    // Two replicas fail and only one fallback works: one hint counts, and
    // the other replica's copy is kept by the coordinator, which never counts.
    c.net.isolate(&r[2]);
    let out = coordinator
        .write(sloppy(&c, set(&key, "c", "v", 2, r.clone())))
        .await
        .unwrap();
    assert_eq!((out.acked, out.hinted), (2, 1));
    c.settle().await;
    assert_eq!(c.hints_on(&r[0]), 1, "the coordinator's last-resort hint");
    let stats = coordinator.stats().snapshot();
    assert_eq!(stats.hints_stored_locally, 1);
    assert!(stats.hints_failed >= 2, "{stats:?}");

    // With no fallback left at all, the failure names every attempt.
    c.net.isolate(&f[1]);
    match coordinator
        .write(sloppy(&c, set(&key, "d", "v", 2, r.clone())))
        .await
    {
        Err(CoordinatorError::Failed(failure)) => {
            let text = failure.to_string();
            for node in [&r[1], &r[2], &f[0], &f[1]] {
                assert!(text.contains(node.as_str()), "{text}");
            }
            assert!(text.contains("does not count towards W"), "{text}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn strict_writes_do_not_count_hints() {
    let (c, key, r, f) = setup(3);
    let coordinator = &c.node(&r[0]).coordinator;
    let strict = |col: &str, w: u32| {
        let mut request = sloppy(&c, set(&key, col, "v", w, r.clone()));
        request.strict = true;
        request
    };
    // Known down: fail fast, nothing written.
    c.membership.mark_down(&r[2]);
    match coordinator.write(strict("a", 3)).await {
        Err(CoordinatorError::Unavailable(failure)) => {
            assert_eq!((failure.acked, failure.required), (0, 3));
            assert_eq!(failure.failed[0].0, r[2]);
        }
        other => panic!("{other:?}"),
    }
    assert!(c.stored(&r[0], &key, b"a").is_none());
    // The same write without strict: the fallback makes it.
    let out = coordinator
        .write(sloppy(&c, set(&key, "a", "v", 3, r.clone())))
        .await
        .unwrap();
    assert_eq!(out.hinted, 1);
    c.membership.mark_up(&r[2]);

    // Unreachable but believed alive: the hint is stored, but does not count.
    c.net.isolate(&r[2]);
    match coordinator.write(strict("b", 3)).await {
        Err(CoordinatorError::Failed(failure)) => {
            assert_eq!(failure.acked, 2);
            let (node, reason) = &failure.failed[0];
            assert_eq!(node, &r[2]);
            assert!(
                reason.contains(&format!("hinted to {}", f[0])) && reason.contains("strict"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.node(&f[0]).hints.count(&r[2]).unwrap(), 2);
    // Strict at W=2 still works with two real replicas, and reports no hint.
    let out = coordinator.write(strict("c", 2)).await.unwrap();
    assert_eq!(out.hinted, 0);
}

#[tokio::test(start_paused = true)]
async fn fail_fast_counts_live_fallbacks_up_to_n() {
    let (c, key, r, f) = setup(4);
    let coordinator = &c.node(&r[0]).coordinator;
    c.membership.mark_down(&r[1]);
    c.membership.mark_down(&r[2]);
    c.membership.mark_down(&f[0]);
    // One live replica and one live fallback: W=2 works, W=3 is unavailable.
    let out = coordinator
        .write(sloppy(&c, set(&key, "a", "v", 2, r.clone())))
        .await
        .unwrap();
    assert_eq!((out.acked, out.hinted), (2, 1));
    assert!(matches!(
        coordinator
            .write(sloppy(&c, set(&key, "a", "v", 3, r.clone())))
            .await,
        Err(CoordinatorError::Unavailable(_))
    ));
    c.membership.mark_up(&f[0]);
    let out = coordinator
        .write(sloppy(&c, set(&key, "a", "w", 3, r.clone())))
        .await
        .unwrap();
    assert_eq!((out.acked, out.hinted), (3, 2));
    c.settle().await;
    assert_eq!(
        c.node(&f[0]).hints.count(&r[1]).unwrap() + c.node(&f[0]).hints.count(&r[2]).unwrap(),
        1
    );
    // A non-replica forwards sloppy writes; the replica it reaches hints.
    let outsider = c.non_replica_of(&key);
    assert!(f.contains(&outsider));
    let out = c
        .node(&outsider)
        .coordinator
        .write(sloppy(&c, set(&key, "b", "v", 3, r.clone())))
        .await
        .unwrap();
    assert_eq!((out.coordinator.as_str(), out.hinted), (r[0].as_str(), 2));
    // Invalid fallback lists are refused.
    let mut bad = sloppy(&c, set(&key, "b", "v", 1, r.clone()));
    bad.fallbacks.push(r[1].clone());
    assert!(matches!(
        coordinator.write(bad).await,
        Err(CoordinatorError::InvalidRequest { reason }) if reason.contains("also a replica")
    ));
    let mut twice = sloppy(&c, set(&key, "b", "v", 1, r.clone()));
    twice.fallbacks.push(f[0].clone());
    assert!(matches!(
        coordinator.write(twice).await,
        Err(CoordinatorError::InvalidRequest { reason }) if reason.contains("more than once")
    ));
}

#[tokio::test(start_paused = true)]
async fn a_full_fallback_refuses_the_hint_and_the_next_one_takes_it() {
    let (c, key, r, f) = setup_with(
        5,
        Options {
            max_hints_per_target: 2,
            ..Options::default()
        },
    );
    // StoreHint answered directly: durable, then refused past the bound.
    let transport = c.net.transport(r[0].clone());
    let store_hint = || Request::StoreHint {
        target: r[2].clone(),
        row: key.clone(),
        cells: vec![(b"x".to_vec(), Cell::new())],
    };
    for _ in 0..2 {
        assert_eq!(
            transport.call(&f[0], store_hint()).await,
            Ok(Response::HintStored)
        );
    }
    match transport.call(&f[0], store_hint()).await {
        Ok(Response::Error {
            kind: ErrorKind::HintLimit { target, count, max },
            message,
        }) => {
            assert_eq!((target.as_str(), count, max), (r[2].as_str(), 2, 2));
            assert!(message.contains("2 hints"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    c.membership.mark_down(&r[2]);
    let out = c
        .node(&r[0])
        .coordinator
        .write(sloppy(&c, set(&key, "a", "v", 3, r.clone())))
        .await
        .unwrap();
    assert_eq!(out.hinted, 1);
    assert_eq!(c.node(&f[1]).hints.count(&r[2]).unwrap(), 1);
}

/// Stores `n` hints for `target` on `node`, one row each.
fn store_hints(c: &Cluster, node: &str, target: &str, n: usize, stored_at_ms: u64) {
    for i in 0..n {
        let cell = Cell::new().write(
            &Context::new(),
            &99,
            CellValue::value(format!("h{i}").into_bytes(), 1),
        );
        c.node(node)
            .hints
            .store(&Hint {
                target: target.to_owned(),
                row: row(&format!("hinted-{i}")),
                cells: vec![(b"col".to_vec(), cell)],
                stored_at_ms,
            })
            .unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn backoff_grows_while_the_target_fails_and_deliver_now_skips_it() {
    let (c, _key, r, f) = setup(6);
    let (holder, target) = (&f[0], &r[1]);
    store_hints(&c, holder, target, 5, system_now_ms());
    // Believed alive but unreachable: every attempt fails.
    c.net.isolate(target);
    let delivery = &c.node(holder).delivery;
    let mut ceilings = Vec::new();
    for round in 1..=8u32 {
        let report = delivery.run_once().await;
        assert_eq!((report.delivered, report.failed), (0, 1), "round {round}");
        let status = delivery.status();
        let t = &status.targets[0];
        assert_eq!(t.consecutive_failures, round);
        assert!(t.retry_in_ms.unwrap_or(0) <= t.backoff_ms);
        assert!(t
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains(target.as_str()));
        assert_eq!(t.pending, 5, "nothing is deleted on failure");
        ceilings.push(t.backoff_ms / 1000);
        // Past any backoff before the next round.
        tokio::time::sleep(Duration::from_secs(61)).await;
    }
    assert_eq!(ceilings, [1, 2, 4, 8, 16, 32, 60, 60]);

    // One more failure, then the target comes back while it backs off.
    delivery.run_once().await;
    let retry_in = delivery.status().targets[0].retry_in_ms;
    c.net.rejoin(target);
    if retry_in.is_some() {
        let report = delivery.run_once().await;
        assert_eq!((report.delivered, report.skipped_backoff), (0, 1));
    }
    delivery.deliver_now(target);
    let report = delivery.run_once().await;
    assert_eq!(report.delivered, 5);
    let status = delivery.status();
    assert_eq!(
        (
            status.targets[0].consecutive_failures,
            status.targets[0].backoff_ms
        ),
        (0, 0)
    );
    assert_eq!(status.failed, 9);
    assert_eq!(c.hints_on(holder), 0);
    for i in 0..5 {
        let stored = c.stored(target, &row(&format!("hinted-{i}")), b"col");
        assert_eq!(live(stored.as_ref()), [format!("h{i}")]);
    }
}

#[tokio::test(start_paused = true)]
async fn deliver_now_wakes_the_loop() {
    let (c, _key, r, f) = setup(7);
    let (holder, target) = (&f[0], &r[1]);
    store_hints(&c, holder, target, 3, system_now_ms());
    c.membership.mark_down(target);
    let delivery = c.node(holder).delivery.clone();
    let workers = tessera_worker::Runner::new();
    workers.spawn(HintDeliveryWorker(delivery.clone())).unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(c.hints_on(holder), 3, "a down target gets nothing");
    let rounds = delivery.status().rounds;
    assert!(rounds >= 5, "{rounds}");
    c.membership.mark_up(target);
    delivery.deliver_now(target);
    // Well under one tick: only the nudge can have started this round.
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(c.hints_on(holder), 0);
    workers.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn hints_past_the_window_expire_and_are_counted() {
    let (c, _key, r, f) = setup(8);
    let holder = &f[0];
    let now = system_now_ms();
    let hour = 3_600_000;
    store_hints(&c, holder, &r[1], 4, now - 4 * hour);
    store_hints(&c, holder, &r[2], 2, now - hour);
    // Both targets down: expiry happens anyway.
    c.membership.mark_down(&r[1]);
    c.membership.mark_down(&r[2]);
    let clock_ms = Arc::new(AtomicU64::new(now));
    let delivery = HintDelivery::new(
        holder.clone(),
        c.node(holder).hints.clone(),
        c.net.transport(holder.clone()),
        c.membership.clone(),
        HandoffConfig {
            storage: StorageRunner::Inline,
            rng_seed: Some(1),
            ..HandoffConfig::default()
        },
    )
    .with_clock({
        let clock_ms = clock_ms.clone();
        Arc::new(move || clock_ms.load(Ordering::Relaxed))
    });
    let report = delivery.run_once().await;
    assert_eq!((report.expired, report.skipped_down), (4, 1));
    assert_eq!(c.node(holder).hints.count(&r[1]).unwrap(), 0);
    assert_eq!(c.node(holder).hints.count(&r[2]).unwrap(), 2);
    // Three hours later the rest goes too.
    clock_ms.store(now + 3 * hour, Ordering::Relaxed);
    assert_eq!(delivery.run_once().await.expired, 2);
    let status = delivery.status();
    assert_eq!(
        (status.expired, status.delivered, status.pending),
        (6, 0, 0)
    );
    let per_target: Vec<(String, u64)> = status
        .targets
        .iter()
        .map(|t| (t.target.clone(), t.expired))
        .collect();
    assert_eq!(per_target, [(r[1].clone(), 4), (r[2].clone(), 2)]);
}

#[tokio::test(start_paused = true)]
async fn delivery_is_throttled_by_the_worker_rate_and_batched() {
    let (c, _key, r, f) = setup_with(
        9,
        Options {
            handoff: HandoffConfig {
                batch_hints: 8,
                ..HandoffConfig::default()
            },
            ..Options::default()
        },
    );
    let (holder, target) = (&f[0], &r[1]);
    store_hints(&c, holder, target, 40, system_now_ms());
    let before = c.net.stats().delivered;
    let start = tokio::time::Instant::now();
    let workers = tessera_worker::Runner::new();
    let handle = workers
        .spawn_with(
            HintDeliveryWorker(c.node(holder).delivery.clone()),
            tessera_worker::WorkerOptions {
                max_rate: Some(10),
                ..Default::default()
            },
        )
        .unwrap();
    while c.hints_on(holder) > 0 {
        assert!(start.elapsed() < Duration::from_secs(60), "not delivered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Virtual time: after the first batch of 8, 32 hints at 10 per second take 3.2 s.
    assert!(
        start.elapsed() >= Duration::from_millis(3_200),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(handle.info().units, 40);
    workers.shutdown(Duration::from_secs(1)).await;
    // One Merge per row (each hint is its own row here).
    assert_eq!(c.net.stats().delivered - before, 40);
    assert_eq!(c.hints_on(holder), 0);
}

#[tokio::test(start_paused = true)]
async fn hints_of_one_row_are_merged_in_one_request() {
    let (c, key, r, f) = setup(10);
    let down = &r[2];
    c.membership.mark_down(down);
    let coordinator = &c.node(&r[0]).coordinator;
    // Same column three times (successive versions) and one more column.
    for (col, value) in [("a", "1"), ("a", "2"), ("b", "x"), ("a", "3")] {
        coordinator
            .write(sloppy(&c, set(&key, col, value, 2, r.clone())))
            .await
            .unwrap();
    }
    c.settle().await;
    assert_eq!(c.node(&f[0]).hints.count(down).unwrap(), 4);
    c.membership.mark_up(down);
    let before = c.net.stats().delivered;
    let report = c.node(&f[0]).delivery.run_once().await;
    assert_eq!(report.delivered, 4);
    assert_eq!(c.net.stats().delivered - before, 1, "one Merge for one row");
    for col in ["a", "b"] {
        assert_eq!(
            c.stored(down, &key, col.as_bytes()),
            c.stored(&r[0], &key, col.as_bytes())
        );
    }
    assert_eq!(live(c.stored(down, &key, b"a").as_ref()), ["3"]);
}

/// A layout where `gone` has left the ring and every row's owners are `owners`.
struct Departed {
    gone: String,
    owners: Option<Vec<String>>,
}

impl tessera_cluster::handoff_redirect::HintRoutes for Departed {
    fn has_left(&self, target: &String) -> bool {
        *target == self.gone
    }
    fn owners_of(&self, _row: &RowKey) -> Option<Vec<String>> {
        self.owners.clone()
    }
}

#[tokio::test(start_paused = true)]
async fn hints_for_a_node_that_left_go_to_the_rows_owners() {
    let (c, _key, r, f) = setup(11);
    let holder = &f[0];
    // r[2] was removed while down; its hints name it, and it will never come back. The rows'
    // owners now are r[0], r[1] and the holder itself.
    let gone = r[2].clone();
    c.membership.mark_down(&gone);
    let stored_at_ms = system_now_ms();
    store_hints(&c, holder, &gone, 5, stored_at_ms);
    let delivery = HintDelivery::new(
        holder.clone(),
        c.node(holder).hints.clone(),
        c.net.transport(holder.clone()),
        c.membership.clone(),
        HandoffConfig {
            storage: StorageRunner::Inline,
            rng_seed: Some(1),
            ..HandoffConfig::default()
        },
    );

    // Without routes, the hints wait for their target.
    assert_eq!(delivery.run_once().await.skipped_down, 1);
    assert_eq!(c.node(holder).hints.count(&gone).unwrap(), 5);

    // Owners that cannot be told yet (an unknown table): the hints stay.
    let unknown = HintDelivery::new(
        holder.clone(),
        c.node(holder).hints.clone(),
        c.net.transport(holder.clone()),
        c.membership.clone(),
        HandoffConfig {
            storage: StorageRunner::Inline,
            rng_seed: Some(1),
            ..HandoffConfig::default()
        },
    );
    unknown.set_routes(Arc::new(Departed {
        gone: gone.clone(),
        owners: None,
    }));
    unknown.run_once().await;
    assert_eq!(c.node(holder).hints.count(&gone).unwrap(), 5);

    let owners = vec![r[0].clone(), r[1].clone(), holder.clone()];
    delivery.set_routes(Arc::new(Departed {
        gone: gone.clone(),
        owners: Some(owners.clone()),
    }));
    // One round re-addresses them, the next delivers the new hints (the holder's own through
    // the same merge path).
    delivery.run_once().await;
    assert_eq!(c.node(holder).hints.count(&gone).unwrap(), 0);
    for owner in &owners {
        assert_eq!(c.node(holder).hints.count(owner).unwrap(), 5, "{owner}");
    }
    assert_eq!(delivery.status().redirected, 5);
    // They keep the original's age: a write never arrives later than its hint window allows.
    let moved = c.node(holder).hints.oldest(&owners[0], 10).unwrap();
    assert!(moved.iter().all(|(_, h)| h.stored_at_ms == stored_at_ms));
    delivery.run_once().await;
    c.settle().await;
    assert_eq!(c.hints_on(holder), 0, "every re-addressed hint delivered");
    for owner in &owners {
        for i in 0..5 {
            let cell = c.stored(owner, &row(&format!("hinted-{i}")), b"col");
            assert_eq!(live(cell.as_ref()), [format!("h{i}")], "{owner} hinted-{i}");
        }
    }
    assert!(c.stored(&gone, &row("hinted-0"), b"col").is_none());
}
