//! A 3-node cluster of real `tessera` processes on their own loopback addresses: quorums, failures,
//! read repair and concurrent writers through different coordinators.

use std::time::Duration;

use serde_json::json;
use tessera_tests::{get_json, metric, raw, Opts, TestCluster, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const T: &str = "t";

async fn cluster() -> TestCluster {
    let cluster = TestCluster::start(3);
    cluster.create_table(T, json!({})).await;
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_at_all_is_readable_at_one_from_every_node() {
    write_at_all_read_at_one(cluster().await).await;
}

/// The same over the per-call HTTP transport, which `cluster.transport = "http"` still selects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_transport_replicates_too() {
    let cluster = TestCluster::start_with(3, |o| o.arg("--transport").arg("http"));
    cluster.create_table(T, json!({})).await;
    write_at_all_read_at_one(cluster).await;
}

async fn write_at_all_read_at_one(cluster: TestCluster) {
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
    // Hints expire after a second here, so that n3 cannot get the write by hinted handoff when
    // it returns (membership would deliver it at once): only read repair can bring it.
    let mut cluster = TestCluster::start_with(3, |o| o.arg("--hint-window-secs").arg("1"));
    cluster.create_table(T, json!({})).await;
    cluster.node_mut(3).kill9();
    cluster
        .client(1)
        .put(T, "k", "c", "fresh", &Opts::level("quorum"))
        .await
        .expect(204);
    tessera_tests::wait_until("n1's hint for n3 to expire", || async {
        metric(cluster.node(1), "tessera_hints_expired_total").await >= 1.0
    })
    .await;
    cluster.node_mut(3).restart();
    cluster.wait_for_states(&[1], &[(3, "alive")]).await;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_internal_stream_needs_the_secret_and_an_upgrade_and_survives_garbage() {
    let cluster = TestCluster::start(1);
    let addr = cluster.node(1).addr();
    let secret = ("x-tessera-secret", "tessera-local-secret");
    let upgrade = [("connection", "upgrade"), ("upgrade", "tessera-rpc/1")];
    let no_secret = raw::request(addr, "GET", "/internal/v1/stream", &upgrade, b"").await;
    assert_eq!(no_secret.status, 401);
    let wrong = [("upgrade", "websocket"), ("connection", "upgrade"), secret];
    let response = raw::request(addr, "GET", "/internal/v1/stream", &wrong, b"").await;
    assert_eq!(response.status, 400);
    assert_eq!(response.error_code().as_deref(), Some("invalid_upgrade"));

    // An upgraded stream fed frames of garbage answers each with an error frame, and one fed a
    // broken frame is closed; the node lives on either way.
    for (garbage, answered) in [
        // A well-framed request whose payload is not a message: an error answer.
        (frame(1, 7, &[99, 1, 2]), true),
        // A frame kind that does not exist, and a length past the limit: closed.
        (frame(9, 1, b"x"), false),
        ([&u32::MAX.to_be_bytes()[..], &[1u8; 9]].concat(), false),
    ] {
        let mut conn = TcpStream::connect(addr).await.expect("connect");
        let head = format!(
            "GET /internal/v1/stream HTTP/1.1\r\nhost: {addr}\r\nconnection: upgrade\r\nupgrade: tessera-rpc/1\r\nx-tessera-secret: tessera-local-secret\r\nx-tessera-from: test\r\n\r\n"
        );
        conn.write_all(head.as_bytes()).await.expect("upgrade");
        conn.write_all(&garbage).await.expect("garbage");
        let head_end = |got: &[u8]| {
            got.windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|at| at + 4)
        };
        let mut got = Vec::new();
        // Read until the answer frame is in (the stream then stays open) or the node closes it.
        let read = tokio::time::timeout(Duration::from_secs(30), async {
            let mut buf = [0u8; 4096];
            loop {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
                if answered && head_end(&got).is_some_and(|end| got.len() >= end + 13) {
                    break;
                }
            }
        })
        .await;
        assert!(
            read.is_ok(),
            "the node neither answered nor closed the stream"
        );
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 101"), "{text}");
        let rest = &got[head_end(&got).unwrap_or(got.len())..];
        if answered {
            // A response frame (kind 2) for call 7.
            assert!(rest.len() >= 13, "no answer frame: {rest:?}");
            assert_eq!(rest[4], 2);
            assert_eq!(u64::from_be_bytes(rest[5..13].try_into().unwrap()), 7);
        } else {
            assert!(rest.is_empty(), "a broken stream got an answer: {rest:?}");
        }
    }
    let health = reqwest::get(cluster.node(1).url("/health"))
        .await
        .expect("health");
    assert_eq!(health.status(), 200);
}

/// One stream frame: length, kind, id, payload.
fn frame(kind: u8, id: u64, payload: &[u8]) -> Vec<u8> {
    let len = (1 + 8 + payload.len()) as u32;
    [&len.to_be_bytes()[..], &[kind], &id.to_be_bytes(), payload].concat()
}
