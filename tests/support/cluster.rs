//! A cluster of real `tessera` processes for multi-node tests.
//!
//! Each cluster gets its own loopback /24 (`127.X.Y.0`), and node i listens on `127.X.Y.(10+i):7000`
//! like `make run`, so clusters of tests that run in parallel never collide and every node has an
//! address of its own (what the partition tests will key iptables rules on).

use std::sync::atomic::{AtomicU32, Ordering};

use crate::node::{NodeOptions, TestNode};
use crate::Client;

static NEXT_SUBNET: AtomicU32 = AtomicU32::new(0);

/// A running cluster; dropping it kills every node.
pub struct TestCluster {
    pub nodes: Vec<TestNode>,
    /// The loopback /24 of this cluster (`127.X.Y`), for nodes added later.
    subnet: String,
}

impl TestCluster {
    /// Starts `size` nodes named n1..n<size> that know each other.
    pub fn start(size: usize) -> TestCluster {
        Self::start_with(size, |options| options)
    }

    /// Like [`TestCluster::start`], with a hook to adjust each node's options.
    pub fn start_with(size: usize, adjust: impl Fn(NodeOptions) -> NodeOptions) -> TestCluster {
        let addrs = addresses(size);
        let members: Vec<String> = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| format!("n{}@{a}", i + 1))
            .collect();
        let members = members.join(",");
        launch(&addrs, |_, options| {
            adjust(options.arg("--nodes").arg(&members))
        })
    }

    /// Starts `size` nodes that know only the first: node 1 starts a cluster of its own, and the
    /// others join it with `--seed --auto-join`, as `make run` does: each adds itself to the
    /// ring as a committed layout epoch.
    pub fn start_seeded(size: usize) -> TestCluster {
        Self::start_seeded_with(size, |options| options)
    }

    /// Like [`TestCluster::start_seeded`], with a hook to adjust each node's options.
    pub fn start_seeded_with(
        size: usize,
        adjust: impl Fn(NodeOptions) -> NodeOptions,
    ) -> TestCluster {
        let addrs = addresses(size);
        launch(&addrs, |i, options| {
            if i > 0 {
                adjust(options.arg("--seed").arg(&addrs[0]).arg("--auto-join"))
            } else {
                adjust(options)
            }
        })
    }

    /// Starts one more node, n<len+1>, on the next address of the cluster's /24, with node 1 as
    /// its seed. It joins membership but owns nothing until a change adds it (or `adjust` passes
    /// `--auto-join`). Returns its number.
    pub fn add_node(&mut self, adjust: impl Fn(NodeOptions) -> NodeOptions) -> usize {
        let i = self.nodes.len() + 1;
        let seed = self.node(1).addr().to_string();
        let mut options = NodeOptions::default().node_id(&format!("n{i}"));
        options.listen = Some(format!("{}.{}:7000", self.subnet, 10 + i));
        self.nodes
            .push(TestNode::start(adjust(options.arg("--seed").arg(&seed))));
        i
    }

    /// Waits (bounded) until every running node listed in `asked` sees each node of `expect`
    /// in the given SWIM state (`"alive"`, `"dead"`, ...), and returns the last views.
    pub async fn wait_for_states(&self, asked: &[usize], expect: &[(usize, &str)]) {
        for &i in asked {
            let url = self.node(i).url("/v1/cluster");
            let what = format!("n{i} to see {expect:?}");
            crate::wait_until(&what, || {
                let url = url.clone();
                async move {
                    let Ok(response) = reqwest::get(&url).await else {
                        return false;
                    };
                    let Ok(view) = response.json::<serde_json::Value>().await else {
                        return false;
                    };
                    expect
                        .iter()
                        .all(|(j, state)| member_state(&view, &format!("n{j}")) == *state)
                }
            })
            .await;
        }
    }

    /// Node i (1-based, as its name n<i>).
    pub fn node(&self, i: usize) -> &TestNode {
        &self.nodes[i - 1]
    }

    pub fn node_mut(&mut self, i: usize) -> &mut TestNode {
        &mut self.nodes[i - 1]
    }

    pub fn client(&self, i: usize) -> Client {
        self.node(i).client()
    }

    /// Waits (bounded) until every node sees every node alive, then creates a table through
    /// node 1 and waits (bounded) until every node serves it.
    pub async fn create_table(&self, table: &str, settings: serde_json::Value) {
        // Membership first: a write coordinated before a node has heard from its peers would
        // find too few live replicas.
        let all: Vec<usize> = (1..=self.nodes.len()).collect();
        let alive: Vec<(usize, &str)> = all.iter().map(|&j| (j, "alive")).collect();
        self.wait_for_states(&all, &alive).await;
        let r = self.client(1).create_table(table, settings).await;
        assert!(
            r.status == 201 || r.status == 200,
            "create table: {}",
            r.status
        );
        for i in 1..=self.nodes.len() {
            let client = self.client(i);
            crate::wait_until(&format!("table {table} known on n{i}"), || {
                let client = client.clone();
                let table = table.to_string();
                async move { client.show_table(&table).await.status == 200 }
            })
            .await;
        }
    }
}

/// The SWIM state that a `/v1/cluster` view gives `member`, or `"missing"`.
pub fn member_state(view: &serde_json::Value, member: &str) -> String {
    view["members"]
        .as_array()
        .and_then(|members| members.iter().find(|m| m["id"] == member))
        .and_then(|m| m["state"].as_str())
        .unwrap_or("missing")
        .to_owned()
}

/// Starts node n<i+1> at each address, with `options` adding what the cluster needs.
fn launch(addrs: &[String], options: impl Fn(usize, NodeOptions) -> NodeOptions) -> TestCluster {
    let nodes = addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            let mut defaults = NodeOptions::default().node_id(&format!("n{}", i + 1));
            defaults.listen = Some(addr.clone());
            TestNode::start(options(i, defaults))
        })
        .collect();
    let subnet = addrs
        .first()
        .and_then(|a| a.rsplit_once('.'))
        .map(|(subnet, _)| subnet.to_owned())
        .unwrap_or_default();
    TestCluster { nodes, subnet }
}

/// `size` addresses on a loopback /24 of their own: `127.X.Y.(10+i):7000`.
fn addresses(size: usize) -> Vec<String> {
    let n = NEXT_SUBNET.fetch_add(1, Ordering::Relaxed);
    // Spread over 127.100-199.*.* by process and counter, so parallel test binaries differ too.
    let x = 100 + (std::process::id() % 100);
    let y = n % 250 + 1;
    (1..=size)
        .map(|i| format!("127.{x}.{y}.{}:7000", 10 + i))
        .collect()
}
