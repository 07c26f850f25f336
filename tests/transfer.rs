//! Streaming partitions between real processes, driven through the operator route
//! `POST /internal/v1/transfers` (no ring change): a replica that missed writes pulls every
//! partition of the table from another, over the transfer connections, and ends up holding every
//! write without any read, hint or repair; progress shows in `GET /v1/cluster/transfers`, the
//! metrics and `tessera cluster watch`.

use serde_json::{json, Value};
use tessera_tests::{metric, Opts, TestCluster};

const T: &str = "t";
const KEYS: usize = 2_000;
const SECRET: &str = "tessera-local-secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_pulls_the_partitions_it_missed_from_another() {
    let mut cluster = TestCluster::start(3);
    cluster.create_table(T, json!({})).await;
    let http = reqwest::Client::new();
    // n3 is down while the data is written, and n1 keeps its hints for n3 to itself.
    let pause = http
        .post(cluster.node(1).url("/v1/node/workers/hint-delivery/pause"))
        .send()
        .await
        .expect("pause hint delivery");
    assert_eq!(pause.status(), 200);
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
    cluster.node_mut(3).restart();

    // n3 pulls every partition of the table from n1.
    let partitions: Vec<u32> = (0..256).collect();
    let answer: Value = http
        .post(cluster.node(3).url("/internal/v1/transfers"))
        .header("x-tessera-secret", SECRET)
        .json(&json!({"table": T, "partitions": partitions, "sources": ["n1"]}))
        .send()
        .await
        .expect("pull")
        .json()
        .await
        .expect("pull answer");
    assert_eq!(
        answer["queued"].as_array().map(Vec::len),
        Some(256),
        "{answer}"
    );
    // Without the secret, nothing.
    let refused = http
        .post(cluster.node(3).url("/internal/v1/transfers"))
        .json(&json!({"table": T, "partitions": [1], "sources": ["n1"]}))
        .send()
        .await
        .expect("pull without the secret");
    assert_eq!(refused.status(), 401);

    // `tessera cluster watch` (not at a terminal: plain lines) follows them until none is pending.
    let watch = tokio::process::Command::new(tessera_tests::binary::tessera_bin())
        .args(["cluster", "watch", "--interval", "0.2", "--node"])
        .arg(cluster.node(3).url(""))
        .output();
    let watched = tokio::time::timeout(tessera_tests::DEADLINE, watch)
        .await
        .expect("watch ends once nothing is pending")
        .expect("watch runs");
    let out = String::from_utf8_lossy(&watched.stdout);
    assert!(
        watched.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&watched.stderr)
    );
    assert!(
        out.contains("transfers: 0 running, 0 pending") && out.matches(" -> n3 ").count() >= 256,
        "{out}"
    );

    let report: Value =
        tessera_tests::get_json(&cluster.node(3).url("/v1/cluster/transfers")).await;
    assert_eq!(report["pending"], 0, "{report}");
    let transfers = report["transfers"].as_array().expect("transfers");
    assert_eq!(transfers.len(), 256);
    let keys_done: u64 = transfers
        .iter()
        .map(|t| t["keys_done"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(keys_done, KEYS as u64, "{report}");
    assert!(transfers
        .iter()
        .all(|t| t["state"] == "done" && t["from"] == "n1" && t["table_name"] == T));

    // n3's own store, read without asking any other node, holds every write.
    for i in 0..KEYS {
        let url = cluster
            .node(3)
            .url(&format!("/internal/v1/local/tables/{T}/rows/k{i}/c"));
        let cell: Value = http
            .get(&url)
            .header("x-tessera-secret", SECRET)
            .send()
            .await
            .expect("local read")
            .json()
            .await
            .expect("local read JSON");
        assert_eq!(
            cell["siblings"][0]["value"],
            format!("v{i}"),
            "k{i} on n3: {cell}"
        );
    }
    assert_eq!(
        metric(cluster.node(3), "tessera_transfer_keys_received_total").await,
        KEYS as f64
    );
    assert_eq!(
        metric(cluster.node(3), "tessera_transfer_completed_total").await,
        256.0
    );
    assert_eq!(
        metric(cluster.node(3), "tessera_transfer_pending").await,
        0.0
    );
    assert_eq!(
        metric(cluster.node(1), "tessera_transfer_keys_sent_total").await,
        KEYS as f64
    );
    assert_eq!(
        metric(cluster.node(3), "tessera_hints_delivered_total").await,
        0.0
    );

    // Asked again for the same epoch: nothing is redone.
    let again: Value = http
        .post(cluster.node(3).url("/internal/v1/transfers"))
        .header("x-tessera-secret", SECRET)
        .json(&json!({"table": T, "partitions": [0, 1], "sources": ["n1"]}))
        .send()
        .await
        .expect("pull again")
        .json()
        .await
        .expect("pull again answer");
    assert_eq!(
        again["already_done"].as_array().map(Vec::len),
        Some(2),
        "{again}"
    );
}
