//! Changing the cluster's shape with real processes (issue 11): adding and decommissioning a node
//! under a read-modify-write workload, removing a dead node, two operators racing to commit, a
//! receiver killed mid-transfer, and five nodes forming a cluster while clients write.
//!
//! Every check is on data, never on time: after each move, every key is on every replica of the
//! final ring (read with the replica-local route, before any quorum read could repair it), the
//! workload saw no failed request, and every acknowledged write reads back at `quorum`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tessera_tests::cluster::TestCluster;
use tessera_tests::node::NodeOptions;
use tessera_tests::{get_json, metric, wait_until_within, Client, Opts};

const T: &str = "kv";
const COLUMN: &str = "c";
const SECRET: &str = "tessera-local-secret";
/// How long a whole move may take on a busy 2-core machine with debug builds.
const MOVE_DEADLINE: Duration = Duration::from_secs(300);

/// A config file with a short cleanup grace (so a test sees partitions dropped) and any extra
/// settings; the file lives as long as the returned directory.
fn config(extra: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("tessera.toml");
    std::fs::write(
        &path,
        format!("[rebalance]\ncleanup_grace_secs = 2\n{extra}\n"),
    )
    .expect("write config");
    (dir, path)
}

fn with_config(path: &std::path::Path) -> impl Fn(NodeOptions) -> NodeOptions + '_ {
    move |options| NodeOptions {
        config: Some(path.to_path_buf()),
        ..options
    }
}

fn key(i: usize) -> String {
    format!("k{i:06}")
}

/// The ring as node `i` holds it.
async fn ring(cluster: &TestCluster, i: usize) -> Value {
    get_json(&cluster.node(i).url("/v1/cluster/ring")).await
}

/// Waits until node `i` shows member `id` with layout status `want` (`normal`, `left`, ...).
async fn wait_for_member_status(cluster: &TestCluster, i: usize, id: &str, want: &str) {
    let url = cluster.node(i).url("/v1/cluster");
    let (url, id_ref) = (&url, id);
    wait_until_within(
        &format!("n{i} to show {id} as {want}"),
        MOVE_DEADLINE,
        || async move {
            let members = get_json(url).await;
            members["members"].as_array().is_some_and(|list| {
                list.iter()
                    .any(|m| m["id"] == id_ref && m["status"] == want)
            })
        },
    )
    .await;
}

/// Waits until every node in `asked` holds a settled ring at `epoch` or later whose members are
/// exactly `members`.
async fn wait_for_settled_ring(cluster: &TestCluster, asked: &[usize], members: &[&str]) {
    let want: BTreeSet<String> = members.iter().map(|m| m.to_string()).collect();
    for &i in asked {
        let url = cluster.node(i).url("/v1/cluster/ring");
        let want = &want;
        wait_until_within(
            &format!("n{i} to hold a settled ring of {members:?}"),
            MOVE_DEADLINE,
            || {
                let url = url.clone();
                async move {
                    let Ok(response) = reqwest::get(&url).await else {
                        return false;
                    };
                    let Ok(ring) = response.json::<Value>().await else {
                        return false;
                    };
                    let nodes: BTreeSet<String> = ring["nodes"]
                        .as_object()
                        .map(|n| n.keys().cloned().collect())
                        .unwrap_or_default();
                    &nodes == want && ring["moving"] == false
                }
            },
        )
        .await;
    }
}

/// Runs `tessera cluster ...` against node `i`; returns (success, stdout, stderr).
async fn cli(cluster: &TestCluster, i: usize, args: &[&str]) -> (bool, String, String) {
    let url = format!("http://{}", cluster.node(i).addr());
    let output = tokio::process::Command::new(tessera_tests::binary::tessera_bin())
        .arg("cluster")
        .args(args)
        .args(["--node", &url])
        .env_remove("TESSERA_NODE")
        .output()
        .await
        .expect("run the tessera CLI");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Plans `change` on node `i` with the CLI, then commits it; panics with the CLI's output if
/// either fails. Returns the plan's output.
async fn plan_and_commit(cluster: &TestCluster, i: usize, change: &[&str]) -> String {
    let mut args = vec!["plan"];
    args.extend_from_slice(change);
    let (ok, plan, err) = cli(cluster, i, &args).await;
    assert!(ok, "plan {change:?} failed:\n{plan}\n{err}");
    let (ok, out, err) = cli(cluster, i, &["commit"]).await;
    assert!(ok, "commit of {change:?} failed:\n{out}\n{err}");
    plan
}

/// Writes `count` keys at `quorum` through the nodes in turn, 16 at a time.
async fn preload(clients: &[Client], count: usize) {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in 0..16 {
        let clients = clients.to_vec();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= count {
                    return;
                }
                let client = &clients[(i + t) % clients.len()];
                let r = client
                    .put(T, &key(i), COLUMN, "v0", &Opts::level("quorum"))
                    .await;
                assert_eq!(r.status, 204, "preload {}: {}", key(i), r.describe());
            }
        }));
    }
    for task in tasks {
        task.await.expect("preload task");
    }
}

/// A YCSB-A-like workload at `quorum`: half reads of any key, half read-modify-writes with the
/// context just read. Worker `w` alone updates the keys `i % WORKERS == w`, so it knows each
/// of its keys' last acknowledged value, and checks that every read of its own keys returns
/// exactly that (R + W > N: a read sees every write acknowledged before it).
struct Workload {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Per key, the value of the last acknowledged write.
    acked: Arc<Mutex<BTreeMap<usize, String>>>,
    failures: Arc<Mutex<Vec<String>>>,
    operations: Arc<AtomicU64>,
}

const WORKERS: usize = 8;

impl Workload {
    fn start(clients: Vec<Client>, keys: usize) -> Workload {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(BTreeMap::new()));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let operations = Arc::new(AtomicU64::new(0));
        let tasks = (0..WORKERS)
            .map(|w| {
                let (stop, acked, failures, operations) = (
                    stop.clone(),
                    acked.clone(),
                    failures.clone(),
                    operations.clone(),
                );
                let clients = clients.clone();
                tokio::spawn(async move {
                    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (w as u64 + 1);
                    let mut seq = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        let client = &clients[(rng >> 40) as usize % clients.len()];
                        let result = if rng.is_multiple_of(2) {
                            let k = (rng >> 8) as usize % keys;
                            read_any(client, k).await
                        } else {
                            let k = ((rng >> 8) as usize % (keys / WORKERS)) * WORKERS + w;
                            seq += 1;
                            update_own(client, k, &format!("w{w}-{seq}"), &acked).await
                        };
                        operations.fetch_add(1, Ordering::Relaxed);
                        if let Err(failure) = result {
                            failures.lock().expect("failures").push(failure);
                        }
                    }
                })
            })
            .collect();
        Workload {
            stop,
            tasks,
            acked,
            failures,
            operations,
        }
    }

    /// Stops the workers and returns the failures they saw.
    async fn stop(self) -> (Vec<String>, BTreeMap<usize, String>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("workload task");
        }
        let failures = self.failures.lock().expect("failures").clone();
        let acked = self.acked.lock().expect("acked").clone();
        (failures, acked, self.operations.load(Ordering::Relaxed))
    }

    fn operations(&self) -> u64 {
        self.operations.load(Ordering::Relaxed)
    }
}

async fn read_any(client: &Client, k: usize) -> Result<(), String> {
    let r = client.get(T, &key(k), COLUMN, &Opts::level("quorum")).await;
    match r.status {
        200 => Ok(()),
        _ => Err(format!("read {}: {}", key(k), r.describe())),
    }
}

async fn update_own(
    client: &Client,
    k: usize,
    value: &str,
    acked: &Mutex<BTreeMap<usize, String>>,
) -> Result<(), String> {
    let read = client.get(T, &key(k), COLUMN, &Opts::level("quorum")).await;
    if read.status != 200 {
        return Err(format!(
            "read before update {}: {}",
            key(k),
            read.describe()
        ));
    }
    let expected = acked
        .lock()
        .expect("acked")
        .get(&k)
        .cloned()
        .unwrap_or_else(|| "v0".to_owned());
    if read.text() != expected {
        return Err(format!(
            "{} read {:?} after {expected:?} was acknowledged",
            key(k),
            read.text()
        ));
    }
    let write = client
        .put(
            T,
            &key(k),
            COLUMN,
            value,
            &Opts::level("quorum").with_ctx(read.ctx()),
        )
        .await;
    if write.status != 204 {
        return Err(format!("update {}: {}", key(k), write.describe()));
    }
    acked.lock().expect("acked").insert(k, value.to_owned());
    Ok(())
}

/// The replicas of `key` in the final ring, as node `i` locates them.
async fn replicas_of(cluster: &TestCluster, i: usize, k: usize) -> Vec<String> {
    let url = cluster
        .node(i)
        .url(&format!("/v1/cluster/locate?table={T}&key={}", key(k)));
    let located = get_json(&url).await;
    assert!(
        located["also"].as_array().is_none_or(Vec::is_empty),
        "the ring still moves: {located}"
    );
    located["replicas"]
        .as_array()
        .unwrap_or_else(|| panic!("no replicas in {located}"))
        .iter()
        .filter_map(|r| r.as_str().map(str::to_owned))
        .collect()
}

/// What node `node` holds of `key` on its own disk: `Some(values)` or `None`.
async fn local(
    http: &reqwest::Client,
    cluster: &TestCluster,
    node: usize,
    k: usize,
) -> Option<Vec<String>> {
    let url = cluster.node(node).url(&format!(
        "/internal/v1/local/tables/{T}/rows/{}/{COLUMN}",
        key(k)
    ));
    let response = http
        .get(&url)
        .header("x-tessera-secret", SECRET)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    if response.status() == 404 {
        return None;
    }
    let body: Value = response.json().await.expect("local cell JSON");
    Some(
        body["siblings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["value"].as_str().map(str::to_owned))
            .collect(),
    )
}

fn number(name: &str) -> usize {
    name.trim_start_matches('n')
        .parse()
        .expect("node names are n<i>")
}

/// Before any read: every key is on every replica of the final ring (on its own disk). Returns
/// how many keys each node is a replica of.
async fn check_every_replica_holds_every_key(
    cluster: &TestCluster,
    asker: usize,
    keys: usize,
) -> BTreeMap<String, usize> {
    let http = reqwest::Client::new();
    let per_node = Arc::new(Mutex::new(BTreeMap::<String, usize>::new()));
    let missing = Arc::new(Mutex::new(Vec::new()));
    let next = AtomicU64::new(0);
    let worker = || async {
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed) as usize;
            if k >= keys {
                return;
            }
            let replicas = replicas_of(cluster, asker, k).await;
            assert_eq!(replicas.len(), 3, "{}: {replicas:?}", key(k));
            for replica in replicas {
                if local(&http, cluster, number(&replica), k).await.is_none() {
                    missing
                        .lock()
                        .expect("missing")
                        .push(format!("{} on {replica}", key(k)));
                }
                *per_node
                    .lock()
                    .expect("per node")
                    .entry(replica)
                    .or_default() += 1;
            }
        }
    };
    futures_join_all((0..16).map(|_| worker())).await;
    let missing = missing.lock().expect("missing").clone();
    assert!(
        missing.is_empty(),
        "{} key copies missing from replicas of the final ring, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let counts = per_node.lock().expect("per node").clone();
    counts
}

/// Polls a set of futures to completion together (the tests crate has no `futures` dependency).
async fn futures_join_all<F: std::future::Future<Output = ()>>(futures: impl Iterator<Item = F>) {
    let mut set: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    std::future::poll_fn(|cx| {
        set.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if set.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}

/// After the workload: every key reads back at `quorum` as exactly its last acknowledged value.
async fn check_acknowledged_writes(client: &Client, keys: usize, acked: &BTreeMap<usize, String>) {
    let next = AtomicU64::new(0);
    let wrong = Mutex::new(Vec::new());
    let worker = || async {
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed) as usize;
            if k >= keys {
                return;
            }
            let expected = acked.get(&k).map_or("v0", String::as_str);
            let r = client.get(T, &key(k), COLUMN, &Opts::level("quorum")).await;
            if r.status != 200 || r.text() != expected {
                wrong.lock().expect("wrong").push(format!(
                    "{}: expected {expected:?}, got {}",
                    key(k),
                    r.describe()
                ));
            }
        }
    };
    futures_join_all((0..16).map(|_| worker())).await;
    let wrong = wrong.into_inner().expect("wrong");
    assert!(
        wrong.is_empty(),
        "{} acknowledged writes do not read back, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
}

/// Hints the nodes `on` hold for `target`, from their metrics.
async fn hints_for(cluster: &TestCluster, target: &str, on: &[usize]) -> f64 {
    let name = format!("tessera_hints_pending_by_target{{target=\"{target}\"}}");
    let mut total = 0.0;
    for &i in on {
        total += metric(cluster.node(i), &name).await;
    }
    total
}

fn assert_share(counts: &BTreeMap<String, usize>, node: &str, keys: usize, nodes: usize) {
    let share = (keys * 3) as f64 / nodes as f64;
    let held = counts.get(node).copied().unwrap_or(0) as f64;
    assert!(
        (held - share).abs() <= share * 0.10,
        "{node} replicates {held} keys, its share is {share:.0} (±10%): {counts:?}"
    );
}

/// Lets the workload run at least `operations` more operations (so the move really happens
/// under load, however slow the machine).
async fn run_at_least(workload: &Workload, operations: u64) {
    let target = workload.operations() + operations;
    wait_until_within("the workload to make progress", MOVE_DEADLINE, || async {
        workload.operations() >= target
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn adding_then_decommissioning_a_node_under_load_loses_nothing() {
    const KEYS: usize = 20_000;
    let (_dir, path) = config("");
    let mut cluster = TestCluster::start_seeded_with(3, with_config(&path));
    wait_for_settled_ring(&cluster, &[1, 2, 3], &["n1", "n2", "n3"]).await;
    cluster.create_table(T, json!({"replication": 3})).await;
    let clients: Vec<Client> = (1..=3).map(|i| cluster.client(i)).collect();
    preload(&clients, KEYS).await;

    // Add n4 while the workload runs through n1..n3.
    let n4 = cluster.add_node(with_config(&path));
    let workload = Workload::start(clients.clone(), KEYS);
    run_at_least(&workload, 200).await;
    let plan = plan_and_commit(&cluster, 1, &["add", "n4"]).await;
    assert!(plan.contains("n4"), "the plan names n4:\n{plan}");
    // `tessera cluster watch` (plain lines: not a terminal) follows the move to its end.
    let watch = tokio::process::Command::new(tessera_tests::binary::tessera_bin())
        .args(["cluster", "watch", "--interval", "0.5", "--node"])
        .arg(cluster.node(2).url(""))
        .output();
    let watched = tokio::time::timeout(MOVE_DEADLINE, watch)
        .await
        .expect("watch ends once the epoch is applied")
        .expect("watch runs");
    let out = String::from_utf8_lossy(&watched.stdout);
    assert!(watched.status.success(), "{out}");
    assert!(
        out.contains("moving (step:") && out.contains("n4 0->") && out.contains(" -> n4 "),
        "watch shows the move, the balance and the transfers:\n{out}"
    );
    assert!(out.lines().any(|l| l.contains("applied")), "{out}");
    wait_for_settled_ring(&cluster, &[1, 2, 3, n4], &["n1", "n2", "n3", "n4"]).await;
    run_at_least(&workload, 200).await;
    let (failures, acked, operations) = workload.stop().await;
    assert!(
        failures.is_empty(),
        "{} of {operations} requests failed while n4 joined, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let counts = check_every_replica_holds_every_key(&cluster, 2, KEYS).await;
    assert_share(&counts, "n4", KEYS, 4);
    let partitions = ring(&cluster, 1).await["nodes"]["n4"].as_u64().unwrap_or(0) as f64;
    assert!(
        (partitions - 64.0).abs() <= 6.4,
        "n4 owns {partitions} of 256 partitions"
    );
    check_acknowledged_writes(&cluster.client(4), KEYS, &acked).await;

    // Decommission n2 under the same workload, through every node.
    let clients: Vec<Client> = (1..=4).map(|i| cluster.client(i)).collect();
    let workload = Workload::start(clients, KEYS);
    {
        // The workload continues from the values the first phase acknowledged.
        let mut map = workload.acked.lock().expect("acked");
        map.extend(acked);
    }
    run_at_least(&workload, 200).await;
    plan_and_commit(&cluster, 3, &["remove", "n2"]).await;
    wait_for_settled_ring(&cluster, &[1, 2, 3, 4], &["n1", "n3", "n4"]).await;
    wait_for_member_status(&cluster, 1, "n2", "left").await;
    wait_for_member_status(&cluster, 2, "n2", "left").await;
    run_at_least(&workload, 200).await;
    let (failures, acked, operations) = workload.stop().await;
    assert!(
        failures.is_empty(),
        "{} of {operations} requests failed while n2 left, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let counts = check_every_replica_holds_every_key(&cluster, 4, KEYS).await;
    assert_eq!(
        counts.get("n2"),
        None,
        "n2 still replicates keys: {counts:?}"
    );
    check_acknowledged_writes(&cluster.client(1), KEYS, &acked).await;

    // After the cleanup grace, n2's store no longer holds the partitions it gave away.
    let http = reqwest::Client::new();
    let (cluster_ref, http_ref) = (&cluster, &http);
    wait_until_within(
        "n2 to drop the partitions it handed over",
        MOVE_DEADLINE,
        || async move {
            local(http_ref, cluster_ref, 2, 0).await.is_none()
                && local(http_ref, cluster_ref, 2, KEYS - 1).await.is_none()
        },
    )
    .await;
    let mut still_held = 0;
    for k in (0..KEYS).step_by(7) {
        if local(&http, &cluster, 2, k).await.is_some() {
            still_held += 1;
        }
    }
    assert_eq!(still_held, 0, "n2 still holds keys it no longer replicates");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn removing_a_dead_node_copies_its_partitions_again_from_the_survivors() {
    const KEYS: usize = 3_000;
    const HINTED: usize = 300;
    let (_dir, path) = config("");
    let mut cluster = TestCluster::start_seeded_with(4, with_config(&path));
    wait_for_settled_ring(&cluster, &[1, 2, 3, 4], &["n1", "n2", "n3", "n4"]).await;
    cluster.create_table(T, json!({"replication": 3})).await;
    let clients: Vec<Client> = (1..=4).map(|i| cluster.client(i)).collect();
    preload(&clients, KEYS).await;

    cluster.node_mut(3).kill9();
    cluster.wait_for_states(&[1, 2, 4], &[(3, "dead")]).await;
    // Writes while n3 is down leave hints for it on the nodes that stood in.
    let survivors: Vec<Client> = [1, 2, 4].iter().map(|&i| cluster.client(i)).collect();
    for i in KEYS..KEYS + HINTED {
        let r = survivors[i % 3]
            .put(T, &key(i), COLUMN, "v0", &Opts::level("quorum"))
            .await;
        assert_eq!(r.status, 204, "{}", r.describe());
    }
    let held_for_n3 = hints_for(&cluster, "n3", &[1, 2, 4]).await;
    assert!(held_for_n3 > 0.0, "no hints for n3 were kept");
    let (ok, out, err) = cli(&cluster, 1, &["plan", "remove", "n3"]).await;
    assert!(!ok, "a plain remove of a dead node must be refused:\n{out}");
    assert!(err.contains("--dead") || err.contains("dead"), "{err}");
    plan_and_commit(&cluster, 1, &["remove", "n3", "--dead"]).await;
    wait_for_settled_ring(&cluster, &[1, 2, 4], &["n1", "n2", "n4"]).await;
    wait_for_member_status(&cluster, 1, "n3", "left").await;
    let counts = check_every_replica_holds_every_key(&cluster, 1, KEYS + HINTED).await;
    for node in ["n1", "n2", "n4"] {
        assert_eq!(counts.get(node), Some(&(KEYS + HINTED)), "{counts:?}");
    }
    check_acknowledged_writes(&cluster.client(2), KEYS + HINTED, &BTreeMap::new()).await;
    // The hints kept for n3 went to the rows' owners instead of waiting to expire.
    let cluster_ref = &cluster;
    wait_until_within(
        "the hints for n3 to be handed on",
        MOVE_DEADLINE,
        || async move { hints_for(cluster_ref, "n3", &[1, 2, 4]).await == 0.0 },
    )
    .await;
    let mut redirected = 0.0;
    for i in [1, 2, 4] {
        redirected += metric(cluster.node(i), "tessera_hints_redirected_total").await;
    }
    assert!(
        redirected >= held_for_n3,
        "{redirected} hints redirected, {held_for_n3} were held"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_two_conflicting_commits_one_wins_everywhere_and_the_other_names_the_epoch() {
    let mut cluster = TestCluster::start_seeded(3);
    wait_for_settled_ring(&cluster, &[1, 2, 3], &["n1", "n2", "n3"]).await;
    let n4 = cluster.add_node(|o| o);
    let n5 = cluster.add_node(|o| o);
    cluster
        .wait_for_states(&[1, 2], &[(n4, "alive"), (n5, "alive")])
        .await;
    let epoch = ring(&cluster, 1).await["epoch"].as_u64().expect("epoch");
    let http = reqwest::Client::new();
    for (i, change) in [(1, "n4"), (2, "n5")] {
        let r = http
            .post(cluster.node(i).url("/v1/cluster/plan"))
            .json(&json!({"kind": "add", "node": change}))
            .send()
            .await
            .expect("plan");
        assert_eq!(r.status(), 200, "{:?}", r.text().await);
    }
    let commit = |i: usize| {
        let (http, url) = (http.clone(), cluster.node(i).url("/v1/cluster/commit"));
        async move {
            let r = http.post(url).send().await.expect("commit");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or_default())
        }
    };
    let (first, second) = tokio::join!(commit(1), commit(2));
    let (won, lost) = match (first.0, second.0) {
        (200, 409) => ("n4", second.1),
        (409, 200) => ("n5", first.1),
        other => panic!("expected one 200 and one 409, got {other:?}: {first:?} {second:?}"),
    };
    let message = lost["error"]["message"].as_str().unwrap_or_default();
    let named = lost["error"]["epoch"].as_u64();
    assert!(
        named.is_some_and(|e| e > epoch) && message.contains(&format!("{}", epoch + 1)),
        "the refusal names the epoch: {lost}"
    );
    let expected: Vec<&str> = vec!["n1", "n2", "n3", won];
    wait_for_settled_ring(&cluster, &[1, 2, 3, n4, n5], &expected).await;
    let epochs: BTreeSet<u64> = {
        let mut set = BTreeSet::new();
        for i in 1..=5 {
            set.insert(ring(&cluster, i).await["epoch"].as_u64().unwrap_or(0));
        }
        set
    };
    assert_eq!(
        epochs.len(),
        1,
        "every node holds the same epoch: {epochs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_receiver_killed_mid_transfer_resumes_where_it_stopped() {
    const KEYS: usize = 4_000;
    // 1 MiB/s on the receiver: the move takes long enough to kill it in the middle.
    let (_dir, path) = config("max_mb_per_s = 1\nchunk_kb = 32");
    let mut cluster = TestCluster::start_seeded_with(3, with_config(&path));
    wait_for_settled_ring(&cluster, &[1, 2, 3], &["n1", "n2", "n3"]).await;
    cluster.create_table(T, json!({"replication": 3})).await;
    let clients: Vec<Client> = (1..=3).map(|i| cluster.client(i)).collect();
    // ~4 KB per key: n4 joins about 3/4 of ~16 MB.
    let value = "x".repeat(4000);
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(200) {
        let tasks: Vec<_> = chunk
            .iter()
            .map(|&i| {
                let (client, value) = (clients[i % 3].clone(), value.clone());
                tokio::spawn(async move {
                    let r = client
                        .put(T, &key(i), COLUMN, &value, &Opts::level("quorum"))
                        .await;
                    assert_eq!(r.status, 204, "{}", r.describe());
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("load");
        }
    }

    let n4 = cluster.add_node(with_config(&path));
    cluster.wait_for_states(&[1], &[(n4, "alive")]).await;
    plan_and_commit(&cluster, 1, &["add", "n4"]).await;
    let node = cluster.node(n4);
    wait_until_within("n4 to receive a few MB", MOVE_DEADLINE, || async {
        metric(node, "tessera_transfer_bytes_received_total").await > 3e6
    })
    .await;
    cluster.node_mut(n4).kill9();
    cluster.node_mut(n4).restart();
    wait_for_settled_ring(&cluster, &[1, 2, 3, n4], &["n1", "n2", "n3", "n4"]).await;

    // Re-sent bytes: what the sources sent, less what the receiver's persisted progress counts
    // as merged (once per chunk, across the restart).
    let mut sent = 0.0;
    for i in 1..=3 {
        sent += metric(cluster.node(i), "tessera_transfer_bytes_sent_total").await;
    }
    let report = get_json(&cluster.node(n4).url("/v1/cluster/transfers")).await;
    let transfers = report["transfers"].as_array().cloned().unwrap_or_default();
    let merged: f64 = transfers
        .iter()
        .filter_map(|t| t["bytes_done"].as_u64())
        .sum::<u64>() as f64;
    assert!(!transfers.is_empty() && merged > 0.0, "{report}");
    let largest = transfers
        .iter()
        .filter_map(|t| t["bytes_done"].as_u64())
        .max()
        .unwrap_or(0) as f64;
    eprintln!(
        "sources sent {sent} bytes, n4 merged {merged} in {} transfers (largest {largest})",
        transfers.len()
    );
    assert!(
        sent - merged < largest,
        "re-sent {} bytes after the restart, more than one partition ({largest} bytes); sent {sent}, merged {merged}",
        sent - merged
    );
    assert!(sent >= merged, "sources sent {sent} < merged {merged}");
    check_every_replica_holds_every_key(&cluster, 1, KEYS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_nodes_started_at_once_keep_every_write_acknowledged_from_the_first_second() {
    let cluster = TestCluster::start_seeded(5);
    let clients: Vec<Client> = (1..=5).map(|i| cluster.client(i)).collect();
    // The table exists as soon as node 1 answers; the others learn it by gossip.
    let created = clients[0].create_table(T, json!({"replication": 3})).await;
    assert!(
        matches!(created.status, 200 | 201),
        "{}",
        created.describe()
    );

    let acked = Arc::new(Mutex::new(Vec::<usize>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (clients, acked, stop) = (clients.clone(), acked.clone(), stop.clone());
            tokio::spawn(async move {
                let mut i = w;
                while !stop.load(Ordering::Relaxed) {
                    let client = &clients[i % clients.len()];
                    let r = client
                        .put(T, &key(i), COLUMN, format!("v{i}"), &Opts::level("quorum"))
                        .await;
                    if r.status == 204 {
                        acked.lock().expect("acked").push(i);
                    } else {
                        // Refusals before the cluster has formed are expected; they are not acks.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    i += 4;
                }
            })
        })
        .collect();
    wait_for_settled_ring(&cluster, &[1, 2, 3, 4, 5], &["n1", "n2", "n3", "n4", "n5"]).await;
    let stop_after = acked.lock().expect("acked").len() + 500;
    wait_until_within("writes after the ring settled", MOVE_DEADLINE, || async {
        acked.lock().expect("acked").len() >= stop_after
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.expect("writer");
    }
    let acked = acked.lock().expect("acked").clone();
    let reader = cluster.client(3);
    let mut lost = Vec::new();
    for &i in &acked {
        let r = reader.get(T, &key(i), COLUMN, &Opts::level("quorum")).await;
        if r.status != 200 || r.text() != format!("v{i}") {
            lost.push(format!("{}: {}", key(i), r.describe()));
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost, e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
}
