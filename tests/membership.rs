//! Membership with real processes: nodes that know only a seed find each other, a killed node is
//! declared dead and routed around, a restarted one returns and gets its hints, a paused one is
//! suspected and refutes, and tables spread by gossip.

use serde_json::{json, Value};
use tessera_tests::{get_json, metric, Opts, TestCluster};

const T: &str = "t";
const REPLICATION_SENT: &str = "tessera_coordinator_events_total{event=\"replication_sent\"}";

/// Starts 3 nodes from one seed and waits until each sees the other two alive.
async fn converged() -> TestCluster {
    let cluster = TestCluster::start_seeded(3);
    cluster
        .wait_for_states(&[1, 2, 3], &[(1, "alive"), (2, "alive"), (3, "alive")])
        .await;
    for i in 1..=3 {
        let url = cluster.node(i).url("/v1/cluster/ring");
        tessera_tests::wait_until(&format!("n{i} to hold the 3-node ring"), || {
            let url = url.clone();
            async move {
                let ring = get_json(&url).await;
                ring["nodes"].as_object().map(|n| n.len()) == Some(3) && ring["moving"] == false
            }
        })
        .await;
    }
    // A member's status (joining -> normal) travels by gossip after its move completes, so each
    // node may learn it a moment after the ring settles.
    let view = &cluster;
    for asker in 1..=3 {
        for member in ["n1", "n2", "n3"] {
            tessera_tests::wait_until(&format!("n{asker} to see {member} normal"), || async move {
                seen(view, asker, member).await["status"] == "normal"
            })
            .await;
        }
    }
    cluster
}

/// What `asker` believes about `member`.
async fn seen(cluster: &TestCluster, asker: usize, member: &str) -> Value {
    let view = get_json(&cluster.node(asker).url("/v1/cluster")).await;
    view["members"]
        .as_array()
        .and_then(|members| members.iter().find(|m| m["id"] == member))
        .cloned()
        .unwrap_or(Value::Null)
}

async fn local_value(cluster: &TestCluster, i: usize, key: &str) -> Option<String> {
    let url = cluster
        .node(i)
        .url(&format!("/internal/v1/local/tables/{T}/rows/{key}/c"));
    let response = reqwest::Client::new()
        .get(&url)
        .header("x-tessera-secret", "tessera-local-secret")
        .send()
        .await
        .ok()?;
    let cell: Value = response.json().await.ok()?;
    cell["siblings"][0]["value"].as_str().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_from_one_seed_converge_on_one_ring() {
    let cluster = converged().await;
    let rings: Vec<Value> = futures_join(&cluster, "/v1/cluster/ring").await;
    assert_eq!(rings[0]["owners"], rings[1]["owners"]);
    assert_eq!(rings[0]["owners"], rings[2]["owners"]);
    let view = get_json(&cluster.node(2).url("/v1/cluster")).await;
    assert_eq!(view["membership"], "swim");
    assert_eq!(view["ring"], "committed");
    let n1 = seen(&cluster, 2, "n1").await;
    assert_eq!(n1["status"], "normal", "{n1}");
    assert!(
        n1["incarnation"].is_u64() && n1["generation"].is_u64(),
        "{n1}"
    );
    assert!(n1["phi"].is_number(), "phi of a live peer: {n1}");

    cluster.create_table(T, json!({})).await;
    cluster
        .client(3)
        .put(T, "k", "c", "v", &Opts::level("all"))
        .await
        .expect(204);
    let r = cluster
        .client(2)
        .get(T, "k", "c", &Opts::level("all"))
        .await;
    r.expect(200);
    assert_eq!(r.body, b"v");
}

async fn futures_join(cluster: &TestCluster, path: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for i in 1..=cluster.nodes.len() {
        out.push(get_json(&cluster.node(i).url(path)).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_is_declared_dead_routed_around_and_gets_its_hints_back() {
    let mut cluster = converged().await;
    cluster.create_table(T, json!({})).await;
    cluster.node_mut(3).kill9();
    cluster.wait_for_states(&[1, 2], &[(3, "dead")]).await;

    // n3 is known dead: a quorum write through n1 replicates to n2 only, without trying n3 and
    // waiting for it, and keeps a hint for n3.
    let before = metric(cluster.node(1), REPLICATION_SENT).await;
    let c1 = cluster.client(1);
    for i in 0..20 {
        let r = c1
            .put(
                T,
                &format!("k{i}"),
                "c",
                format!("v{i}"),
                &Opts::level("quorum"),
            )
            .await;
        r.expect(204);
        assert_eq!(r.replicas().as_deref(), Some("2/2/3"));
    }
    let after = metric(cluster.node(1), REPLICATION_SENT).await;
    assert_eq!(
        after - before,
        20.0,
        "one replication per write, to n2 only"
    );
    // `all` cannot be met and says so at once (503 unavailable, nothing written).
    let error = c1
        .put(T, "k0", "c", "x", &Opts::level("all"))
        .await
        .expect_any_error(503);
    assert_eq!(error["code"], "unavailable", "{error}");

    cluster.node_mut(3).restart();
    cluster.wait_for_states(&[1, 2], &[(3, "alive")]).await;
    // Alive again, as a new generation; n1 delivers its hints without any read of the keys.
    for i in 0..20 {
        let key = format!("k{i}");
        let want = format!("v{i}");
        tessera_tests::wait_until(&format!("n3 to hold {key} from its hints"), || {
            let (cluster, key, want) = (&cluster, key.clone(), want.clone());
            async move { local_value(cluster, 3, &key).await.as_deref() == Some(want.as_str()) }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_node_is_suspected_then_refutes_without_a_restart() {
    let mut cluster = converged().await;
    let before = seen(&cluster, 1, "n3").await;
    let incarnation = before["incarnation"].as_u64().expect("incarnation");
    cluster.node_mut(3).pause();
    let paused = async {
        tessera_tests::wait_until("n1 to stop believing n3 alive", || async {
            seen(&cluster, 1, "n3").await["state"] != "alive"
        })
        .await;
    };
    paused.await;
    cluster.node_mut(3).resume();
    cluster.wait_for_states(&[1, 2], &[(3, "alive")]).await;
    let after = seen(&cluster, 1, "n3").await;
    assert_eq!(
        after["generation"], before["generation"],
        "the same process, not a restart: {after}"
    );
    assert!(
        after["incarnation"].as_u64().unwrap_or(0) > incarnation,
        "n3 refuted with a higher incarnation: {before} then {after}"
    );
    let refutations = "tessera_membership_events_total{event=\"refutations\"}";
    assert!(metric(cluster.node(3), refutations).await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_created_while_a_node_was_down_reaches_it_by_gossip() {
    let mut cluster = converged().await;
    cluster.node_mut(3).kill9();
    cluster.wait_for_states(&[1, 2], &[(3, "dead")]).await;
    let r = cluster.client(2).create_table(T, json!({})).await;
    assert_eq!(r.status, 201);
    cluster.node_mut(3).restart();
    // Nothing pushes the table to n3 now: only gossip can bring it.
    let c3 = cluster.client(3);
    tessera_tests::wait_until("n3 to learn the table by gossip", || {
        let c3 = c3.clone();
        async move { c3.show_table(T).await.status == 200 }
    })
    .await;
    cluster
        .wait_for_states(&[3], &[(1, "alive"), (2, "alive")])
        .await;
    c3.put(T, "k", "c", "through n3", &Opts::level("quorum"))
        .await
        .expect(204);
    let r = cluster
        .client(1)
        .get(T, "k", "c", &Opts::level("quorum"))
        .await;
    r.expect(200);
    assert_eq!(r.body, b"through n3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_garbage_datagrams_are_dropped_and_counted() {
    let cluster = converged().await;
    let target = cluster.node(1).addr();
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("udp");
    for datagram in [vec![], vec![1u8; 8], vec![0xff; 1200], b"ping".repeat(10)] {
        socket.send_to(&datagram, target).await.expect("send");
    }
    let forged = "tessera_membership_datagrams_rejected_total{reason=\"bad_tag\"}";
    let short = "tessera_membership_datagrams_rejected_total{reason=\"short\"}";
    tessera_tests::wait_until("n1 to count the forged and short datagrams", || async {
        metric(cluster.node(1), forged).await >= 2.0 && metric(cluster.node(1), short).await >= 2.0
    })
    .await;
    // Nothing was believed: everyone is still alive.
    cluster
        .wait_for_states(&[1], &[(2, "alive"), (3, "alive")])
        .await;
    let health = reqwest::get(cluster.node(1).url("/health"))
        .await
        .expect("health");
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_status_shows_each_members_state_incarnation_and_phi() {
    let cluster = converged().await;
    let url = format!("http://{}", cluster.node(2).addr());
    let output = tokio::process::Command::new(tessera_tests::binary::tessera_bin())
        .args(["cluster", "status", "--node", &url])
        .output()
        .await
        .expect("run tessera cluster status");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains("INCARNATION") && text.contains("PHI"),
        "{text}"
    );
    for id in ["n1", "n2", "n3"] {
        let row = text
            .lines()
            .find(|line| line.starts_with(id))
            .unwrap_or_else(|| panic!("no row for {id}:\n{text}"));
        assert!(row.contains("alive") && row.contains("normal"), "{row}");
    }
}
