//! A 3-node cluster of real `tessera` processes on their own loopback addresses: quorums, failures,
//! read repair and concurrent writers through different coordinators.

use serde_json::json;
use tessera_tests::{get_json, metric, Opts, TestCluster, Version};

const T: &str = "t";

async fn cluster() -> TestCluster {
    let cluster = TestCluster::start(3);
    cluster.create_table(T, json!({})).await;
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_at_all_is_readable_at_one_from_every_node() {
    let cluster = cluster().await;
    let r = cluster
        .client(1)
        .put(T, "k", "c", "v1", &Opts::level("all"))
        .await;
    r.expect(204);
    assert_eq!(r.replicas().as_deref(), Some("3/3/3"));
    for i in 1..=3 {
        let r = cluster
            .client(i)
            .get(T, "k", "c", &Opts::level("one"))
            .await;
        r.expect(200);
        assert_eq!(r.body, b"v1", "node n{i}");
        assert_eq!(r.replicas().as_deref(), Some("1/1/3"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_down_quorum_works_and_all_names_the_dead_replica() {
    let mut cluster = cluster().await;
    cluster.node_mut(3).kill9();
    let c1 = cluster.client(1);
    for i in 0..20 {
        let key = format!("k{i}");
        c1.put(T, &key, "c", "v", &Opts::level("quorum"))
            .await
            .expect(204);
        let r = cluster
            .client(2)
            .get(T, &key, "c", &Opts::level("quorum"))
            .await;
        r.expect(200);
        assert_eq!(r.body, b"v");
    }
    let r = c1.put(T, "k0", "c", "w", &Opts::level("all")).await;
    let error = r.expect_any_error(503);
    let text = error.to_string();
    assert!(
        text.contains("n3"),
        "the 503 must name the dead replica: {text}"
    );
    assert_eq!(error["required"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_down_quorum_fails_cleanly() {
    let mut cluster = cluster().await;
    cluster
        .client(1)
        .put(T, "k", "c", "before", &Opts::level("all"))
        .await
        .expect(204);
    cluster.node_mut(2).kill9();
    cluster.node_mut(3).kill9();
    let c1 = cluster.client(1);
    let error = c1
        .put(T, "k", "c", "after", &Opts::level("quorum"))
        .await
        .expect_any_error(503);
    assert_eq!(error["required"], 2);
    let error = c1
        .get(T, "k", "c", &Opts::level("quorum"))
        .await
        .expect_any_error(503);
    assert_eq!(error["required"], 2);
    // `one` still answers from the survivor, with what it has.
    let r = c1.get(T, "k", "c", &Opts::level("one")).await;
    r.expect(200);
    assert!(r.body == b"before" || r.body == b"after", "{:?}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_repair_brings_a_restarted_replica_up_to_date() {
    let mut cluster = cluster().await;
    cluster.node_mut(3).kill9();
    cluster
        .client(1)
        .put(T, "k", "c", "fresh", &Opts::level("quorum"))
        .await
        .expect(204);
    cluster.node_mut(3).restart();

    let r = cluster
        .client(1)
        .get(T, "k", "c", &Opts::level("all"))
        .await;
    r.expect(200);
    assert_eq!(r.body, b"fresh");

    // Read repair runs after the answer: wait (bounded) until n3's own store holds the value,
    // read through the replica-local route, which asks no other node.
    let local = cluster.node(3).url("/internal/v1/local/tables/t/rows/k/c");
    let http = reqwest::Client::new();
    tessera_tests::wait_until("n3 to hold the repaired value in its own store", || {
        let request = http
            .get(&local)
            .header("x-tessera-secret", "tessera-local-secret")
            .send();
        async move {
            match request.await {
                Ok(response) if response.status() == 200 => response
                    .json::<serde_json::Value>()
                    .await
                    .map(|cell| cell["siblings"][0]["value"] == "fresh")
                    .unwrap_or(false),
                _ => false,
            }
        }
    })
    .await;

    // And it was read repair that did it: n1, the read's coordinator, counts the repair it sent.
    let repairs = metric(
        cluster.node(1),
        "tessera_coordinator_events_total{event=\"repairs_sent\"}",
    )
    .await;
    assert!(repairs >= 1.0, "n1 sent no read repair");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_through_different_coordinators_keep_every_value() {
    let cluster = cluster().await;
    let c1 = cluster.client(1);
    c1.put(T, "k", "c", "base", &Opts::level("all"))
        .await
        .expect(204);
    let seen = c1.get(T, "k", "c", &Opts::level("all")).await;
    seen.expect(200);
    let context = seen.ctx();

    // Eight writers, each through a different coordinator in turn, each having read "base".
    let mut writers = Vec::new();
    for w in 0..8 {
        let client = cluster.client(w % 3 + 1);
        let context = context.clone();
        writers.push(tokio::spawn(async move {
            let value = format!("writer-{w}");
            client
                .put(
                    T,
                    "k",
                    "c",
                    &value,
                    &Opts::level("quorum").with_ctx(context),
                )
                .await
                .expect(204);
            value
        }));
    }
    let mut written = Vec::new();
    for writer in writers {
        written.push(writer.await.expect("writer task"));
    }
    written.sort();

    let r = cluster
        .client(2)
        .get(T, "k", "c", &Opts::level("quorum"))
        .await;
    r.expect(300);
    let mut values: Vec<String> = r
        .versions()
        .into_iter()
        .map(|v| match v {
            Version::Value(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Version::Deleted => "<deleted>".to_string(),
        })
        .collect();
    values.sort();
    assert_eq!(
        values, written,
        "every acknowledged write survives as a sibling, and the version they all saw is gone"
    );

    // A write with the merged context resolves them, seen from every node.
    cluster
        .client(3)
        .put(
            T,
            "k",
            "c",
            "resolved",
            &Opts::level("all").with_ctx(r.ctx()),
        )
        .await
        .expect(204);
    for i in 1..=3 {
        let r = cluster
            .client(i)
            .get(T, "k", "c", &Opts::level("one"))
            .await;
        r.expect(200);
        assert_eq!(r.body, b"resolved", "node n{i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_routes_report_members_ring_and_reachability() {
    let mut cluster = cluster().await;
    let view = get_json(&cluster.node(1).url("/v1/cluster")).await;
    let members = view["members"].as_array().expect("members");
    assert_eq!(members.len(), 3);
    assert!(members.iter().all(|m| m["reachable"] == true), "{view}");
    let owned: u64 = members
        .iter()
        .map(|m| m["partitions"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(owned, 256, "every partition has one owner");

    let ring = get_json(&cluster.node(2).url("/v1/cluster/ring")).await;
    assert_eq!(ring["partitions"], 256);
    assert_eq!(ring["owners"].as_array().map(Vec::len), Some(256));

    cluster.node_mut(3).kill9();
    let view = get_json(&cluster.node(1).url("/v1/cluster")).await;
    let n3 = view["members"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["id"] == "n3"))
        .cloned()
        .expect("n3 listed");
    assert_eq!(n3["reachable"], false, "{view}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_routes_need_the_cluster_secret_and_survive_garbage() {
    let cluster = TestCluster::start(1);
    let http = reqwest::Client::new();
    let rpc = cluster.node(1).url("/internal/v1/rpc");
    for secret in [None, Some("wrong")] {
        let mut request = http.post(&rpc).body(vec![1u8, 4]);
        if let Some(secret) = secret {
            request = request.header("x-tessera-secret", secret);
        }
        let response = request.send().await.expect("rpc");
        assert_eq!(response.status(), 401, "secret {secret:?}");
    }
    let schema = http
        .get(cluster.node(1).url("/internal/v1/schema"))
        .send()
        .await
        .expect("schema");
    assert_eq!(schema.status(), 401);

    // The right secret with garbage: a clear 400, and the node lives on.
    for body in [vec![], vec![99u8, 1, 2, 3], vec![1u8; 64], vec![0xff; 1000]] {
        let response = http
            .post(&rpc)
            .header("x-tessera-secret", "tessera-local-secret")
            .body(body.clone())
            .send()
            .await
            .expect("rpc");
        assert_eq!(response.status(), 400, "body {body:?}");
    }
    let health = http
        .get(cluster.node(1).url("/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), 200);
}
