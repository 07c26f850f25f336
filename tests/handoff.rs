//! Hinted handoff with real processes: writes for a dead replica are kept as hints and delivered
//! when it comes back, without any read touching the keys.

use serde_json::json;
use tessera_tests::{metric, Opts, TestCluster};

const T: &str = "t";
const KEYS: usize = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hints_for_a_dead_replica_are_delivered_when_it_returns() {
    let mut cluster = TestCluster::start(3);
    cluster.create_table(T, json!({})).await;
    cluster.node_mut(3).kill9();

    let c1 = cluster.client(1);
    for i in 0..KEYS {
        c1.put(
            T,
            &format!("k{i}"),
            "c",
            format!("v{i}"),
            &Opts::level("one"),
        )
        .await
        .expect(204);
    }
    let http = reqwest::Client::new();
    // n1 coordinated every write with n3 down, so it ends up holding a hint for each (at `one`
    // it answers before the hint is stored, so wait for them).
    tessera_tests::wait_until("n1 to hold a hint for every write", || async {
        metric(cluster.node(1), "tessera_hints_pending").await >= KEYS as f64
    })
    .await;

    cluster.node_mut(3).restart();

    // No reads: wait until n1 has delivered every hint...
    tessera_tests::wait_until("n1 to deliver its hints to n3", || async {
        metric(cluster.node(1), "tessera_hints_pending").await == 0.0
            && metric(cluster.node(1), "tessera_hints_delivered_total").await >= KEYS as f64
    })
    .await;

    // ...then n3's own store, read without asking any other node, holds all of them.
    for i in 0..KEYS {
        let url = cluster
            .node(3)
            .url(&format!("/internal/v1/local/tables/{T}/rows/k{i}/c"));
        let cell: serde_json::Value = http
            .get(&url)
            .header("x-tessera-secret", "tessera-local-secret")
            .send()
            .await
            .expect("local read")
            .json()
            .await
            .expect("local read JSON");
        assert_eq!(
            cell["siblings"][0]["value"],
            format!("v{i}"),
            "key k{i} on n3: {cell}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_writes_do_not_count_hints() {
    let mut cluster = TestCluster::start(3);
    cluster.create_table(T, json!({})).await;
    cluster.node_mut(3).kill9();
    let c1 = cluster.client(1);
    // Two live replicas: quorum is met by real replicas, strict or not.
    c1.put(
        T,
        "k",
        "c",
        "v",
        &Opts::level("quorum").with_query("strict", "true"),
    )
    .await
    .expect(204);
    // `all` needs n3 itself when strict: a 503, never a hint standing in for it.
    let error = c1
        .put(
            T,
            "k",
            "c",
            "w",
            &Opts::level("all").with_query("strict", "true"),
        )
        .await
        .expect_any_error(503);
    assert!(error.to_string().contains("n3"), "{error}");
}
