//! Cluster routes: `GET /v1/cluster` (members and what this node sees of them) and
//! `GET /v1/cluster/ring` (the partition map).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use tessera_cluster::messages::{Request, Response};
use tessera_cluster::{MembershipView, Transport};

use crate::node::Node;

/// How long `/v1/cluster` waits for a peer's pong.
const PING_TIMEOUT: Duration = Duration::from_millis(500);

/// Every member, with this node's view of it: whether membership counts it alive, and whether it
/// answered a ping just now (and how fast).
pub async fn members(State(node): State<Arc<Node>>) -> Json<Value> {
    let cluster = &node.cluster;
    let pings = cluster.members.iter().map(|member| {
        let node = node.clone();
        let id = member.id.clone();
        async move {
            if id == node.id() {
                return (true, Some(0.0));
            }
            let started = Instant::now();
            let call = node.cluster.transport.call(&id, Request::Ping);
            match tokio::time::timeout(PING_TIMEOUT, call).await {
                Ok(Ok(Response::Pong)) => (true, Some(started.elapsed().as_secs_f64() * 1000.0)),
                _ => (false, None),
            }
        }
    });
    // Ping every peer at once; a ping that fails in any way reads as unreachable.
    let handles: Vec<_> = pings.map(tokio::spawn).collect();
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        results.push(handle.await.unwrap_or((false, None)));
    }
    let members: Vec<Value> = cluster
        .members
        .iter()
        .zip(results)
        .map(|(member, (reachable, rtt_ms))| {
            json!({
                "id": member.id,
                "address": member.addr.to_string(),
                "status": "normal",
                "state": if cluster.membership.is_alive(&member.id) { "alive" } else { "down" },
                "reachable": reachable,
                "rtt_ms": rtt_ms,
                "incarnation": null,
                "phi": null,
                "partitions": cluster.ring.partitions_of(&member.id).len(),
            })
        })
        .collect();
    Json(json!({
        "node": node.id(),
        "membership": "static",
        "ring_epoch": cluster.ring.epoch(),
        "members": members,
    }))
}

/// The ring: who owns each partition, and how many partitions each node owns.
pub async fn ring(State(node): State<Arc<Node>>) -> Json<Value> {
    let ring = &node.cluster.ring;
    let owners: Vec<&String> = ring.owners().collect();
    let mut owned: BTreeMap<&String, usize> = BTreeMap::new();
    for owner in &owners {
        *owned.entry(owner).or_default() += 1;
    }
    Json(json!({
        "epoch": ring.epoch(),
        "partitions": ring.scheme().count(),
        "ring_replicas": ring.target_n(),
        "nodes": owned,
        "owners": owners,
        "pending_moves": [],
    }))
}
