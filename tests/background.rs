//! Background work with real processes: every worker is listed and can be paused; a stalled
//! commit answers `504` while gossip keeps acking; a peer that accepts connections but never
//! answers keeps the coordinator's background work within its budget; and a node stopped under
//! load keeps every write it acknowledged.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tessera_tests::{get_json, metric, wait_until, NodeOptions, Opts, TestCluster, TestNode};

const T: &str = "t";
const SECRET: &str = "tessera-local-secret";

async fn post(node: &TestNode, path: &str) -> Value {
    let response = reqwest::Client::new()
        .post(node.url(path))
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    assert_eq!(response.status(), 200, "POST {path}");
    response.json().await.expect("JSON")
}

/// What node `node`'s own store holds of `key`/c (`None` when nothing), read without asking
/// any other node.
async fn local_value(http: &reqwest::Client, node: &TestNode, key: &str) -> Option<String> {
    let url = node.url(&format!("/internal/v1/local/tables/{T}/rows/{key}/c"));
    let response = http
        .get(&url)
        .header("x-tessera-secret", SECRET)
        .send()
        .await
        .ok()?;
    if response.status() != 200 {
        return None;
    }
    let cell: Value = response.json().await.ok()?;
    cell["siblings"][0]["value"].as_str().map(str::to_owned)
}

/// Writes unique keys through `targets` at `quorum`, from `clients` tasks, until `stop`; returns
/// every write that was acknowledged (204).
fn write_load(
    targets: Vec<String>,
    clients: usize,
    prefix: &'static str,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                let (targets, acked, stop) = (targets.clone(), acked.clone(), stop.clone());
                tokio::spawn(async move {
                    let http = reqwest::Client::builder()
                        .timeout(Duration::from_secs(10))
                        .build()
                        .expect("client");
                    let mut i = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        let key = format!("{prefix}-{c}-{i}");
                        let base = &targets[i % targets.len()];
                        i += 1;
                        let url = format!("{base}/v1/tables/{T}/rows/{key}/c?consistency=quorum");
                        match http.put(&url).body(key.clone()).send().await {
                            Ok(r) if r.status() == 204 => {
                                acked.lock().expect("lock").push(key);
                            }
                            // A node that is stopping or stopped: not acknowledged, move on.
                            _ => tokio::time::sleep(Duration::from_millis(5)).await,
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("writer");
        }
        let acked = acked.lock().expect("lock").clone();
        acked
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_worker_is_listed_and_pausing_hint_delivery_holds_hints_back() {
    let mut cluster = TestCluster::start(3);
    cluster.create_table(T, json!({})).await;
    let report = get_json(&cluster.node(1).url("/v1/node/workers")).await;
    assert_eq!(report["node"], "n1");
    let workers = report["workers"].as_array().expect("workers");
    for expected in [
        "group-commit",
        "membership",
        "membership-events",
        "schema-push",
        "hint-delivery",
    ] {
        let worker = workers
            .iter()
            .find(|w| w["name"] == expected)
            .unwrap_or_else(|| panic!("{expected} is not listed: {report}"));
        assert!(worker["state"].is_string(), "{worker}");
        assert!(worker["steps"].is_u64(), "{worker}");
    }
    assert_eq!(report["budgets"][0]["name"], "coordinator");

    // n3 misses 100 writes; n1, their coordinator, keeps a hint for each.
    cluster.node_mut(3).kill9();
    let c1 = cluster.client(1);
    for i in 0..100 {
        c1.put(
            T,
            &format!("k{i}"),
            "c",
            format!("k{i}"),
            &Opts::level("quorum"),
        )
        .await
        .expect(204);
    }
    wait_until("n1 to hold 100 hints", || async {
        metric(cluster.node(1), "tessera_hints_pending").await >= 100.0
    })
    .await;

    // Paused, hint delivery hands nothing over, even once n3 is back.
    let paused = post(cluster.node(1), "/v1/node/workers/hint-delivery/pause").await;
    assert_eq!(paused["paused"], true, "{paused}");
    cluster.node_mut(3).restart();
    cluster.wait_for_states(&[1], &[(3, "alive")]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        metric(cluster.node(1), "tessera_hints_pending").await,
        100.0
    );
    assert_eq!(
        metric(cluster.node(1), "tessera_hints_delivered_total").await,
        0.0
    );
    let listed = get_json(&cluster.node(1).url("/v1/node/workers")).await;
    let delivery = listed["workers"]
        .as_array()
        .and_then(|w| w.iter().find(|w| w["name"] == "hint-delivery"))
        .cloned()
        .expect("hint-delivery");
    assert_eq!(delivery["state"], "paused", "{delivery}");

    // Resumed, it delivers everything, and n3's own store holds every write.
    let resumed = post(cluster.node(1), "/v1/node/workers/hint-delivery/resume").await;
    assert_eq!(resumed["paused"], false, "{resumed}");
    wait_until("n1 to deliver its hints", || async {
        metric(cluster.node(1), "tessera_hints_pending").await == 0.0
    })
    .await;
    let http = reqwest::Client::new();
    for i in 0..100 {
        let key = format!("k{i}");
        assert_eq!(
            local_value(&http, cluster.node(3), &key).await.as_deref(),
            Some(key.as_str())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_commit_answers_504_in_time_and_gossip_keeps_acking() {
    let cluster = TestCluster::start_with(3, |options| options.request_timeout_ms(1000));
    cluster.create_table(T, json!({})).await;
    // n1's disk work stops: its group commit (every data write) and the worker that writes what
    // membership learns. Neither may hold up its answers to probes.
    post(cluster.node(1), "/v1/node/workers/group-commit/pause").await;
    post(cluster.node(1), "/v1/node/workers/membership-events/pause").await;
    let c1 = cluster.client(1);
    for i in 0..3 {
        let r = c1
            .put(T, &format!("k{i}"), "c", "v", &Opts::level("quorum"))
            .await;
        r.expect_error(504, "timeout");
        let body = r.json();
        assert_eq!(body["error"]["pending"], json!(["n1"]), "{body}");
        assert_eq!(body["error"]["timeout_ms"], 1000, "{body}");
    }
    // For longer than it takes to declare a silent node dead (about 3 s), n2 and n3 keep seeing
    // n1 alive and never suspect it: its gossip loop never waits on the stalled storage.
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(8) {
        for peer in [2, 3] {
            let view = get_json(&cluster.node(peer).url("/v1/cluster")).await;
            assert_eq!(
                tessera_tests::cluster::member_state(&view, "n1"),
                "alive",
                "n{peer} sees: {view}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Once the disk moves again, writes succeed.
    post(cluster.node(1), "/v1/node/workers/group-commit/resume").await;
    post(cluster.node(1), "/v1/node/workers/membership-events/resume").await;
    c1.put(T, "after", "c", "v", &Opts::level("quorum"))
        .await
        .expect(204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_keeps_background_work_within_its_budget() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("tessera.toml");
    // A small budget, a short deadline (a straggler lives until it), and slow failure detection,
    // so that the paused peer stays "alive" and keeps being written to for the whole run.
    std::fs::write(
        &config,
        "[background]\nmax_tasks = 8\nmax_mb = 1\n\n[requests]\ntimeout_ms = 1000\n\n\
         [membership]\nprobe_interval_ms = 5000\n",
    )
    .expect("write config");
    let mut cluster = TestCluster::start_with(3, |options: NodeOptions| NodeOptions {
        config: Some(config.clone()),
        ..options
    });
    cluster.create_table(T, json!({})).await;
    // n3 accepts connections (the kernel does) but never answers.
    cluster.node_mut(3).pause();

    let stop = Arc::new(AtomicBool::new(false));
    let load = write_load(vec![cluster.node(1).url("")], 16, "silent", stop.clone());
    let (mut most_tasks, mut most_bytes) = (0.0f64, 0.0f64);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        let tasks = metric(
            cluster.node(1),
            "tessera_background_tasks{budget=\"coordinator\"}",
        )
        .await;
        let bytes = metric(
            cluster.node(1),
            "tessera_background_bytes{budget=\"coordinator\"}",
        )
        .await;
        most_tasks = most_tasks.max(tasks);
        most_bytes = most_bytes.max(bytes);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let acked = load.await.expect("load");
    assert!(acked.len() > 50, "only {} writes acknowledged", acked.len());
    assert!(most_tasks <= 8.0, "{most_tasks} background tasks");
    assert!(most_bytes <= f64::from(1u32 << 20), "{most_bytes} bytes");
    let hinted = metric(
        cluster.node(1),
        "tessera_coordinator_events_total{event=\"stragglers_hinted\"}",
    )
    .await;
    let refused = metric(
        cluster.node(1),
        "tessera_background_refused_total{budget=\"coordinator\"}",
    )
    .await;
    assert!(
        hinted > 0.0 && refused > 0.0,
        "hinted {hinted}, refused {refused}"
    );

    // Awake again, n3 gets every acknowledged write from the hints, with no read.
    cluster.node_mut(3).resume();
    let http = reqwest::Client::new();
    for key in &acked {
        wait_until(&format!("{key} on n3"), || async {
            local_value(&http, cluster.node(3), key).await.as_deref() == Some(key.as_str())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_under_load_keeps_every_acknowledged_write() {
    let mut cluster = TestCluster::start(3);
    cluster.create_table(T, json!({})).await;
    let targets = (1..=3).map(|i| cluster.node(i).url("")).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let load = write_load(targets, 12, "load", stop.clone());
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // SIGTERM in the middle of the load: the node drains requests, streams, stragglers (or
    // turns them into hints) and its workers, then flushes RocksDB, within its deadlines
    // (5 s for streams, 2 + 2 s for background tasks, 5 s per group of workers).
    let signalled = Instant::now();
    let status = cluster.node_mut(1).terminate();
    let took = signalled.elapsed();
    assert!(status.success(), "exit status {status}");
    assert!(took < Duration::from_secs(30), "took {took:?} to stop");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let acked = load.await.expect("load");
    assert!(
        acked.len() > 100,
        "only {} writes acknowledged",
        acked.len()
    );

    // Back up: every acknowledged write is on all three replicas, read from each one's own store
    // (what n1 missed while down arrives as hints from the others).
    cluster.node_mut(1).restart();
    let http = reqwest::Client::new();
    for key in &acked {
        for node in 1..=3 {
            wait_until(&format!("{key} on n{node}"), || async {
                local_value(&http, cluster.node(node), key).await.as_deref() == Some(key.as_str())
            })
            .await;
        }
    }
}
