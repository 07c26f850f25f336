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

/// Every member, with this node's view of it: its SWIM state, incarnation and phi, whether the
/// coordinator counts it alive, what it publishes by gossip, and whether it answered a ping just
/// now (and how fast).
pub async fn members(State(node): State<Arc<Node>>) -> Json<Value> {
    let cluster = &node.cluster;
    let ring = cluster.ring();
    let snapshot = cluster.gossip.snapshot();
    // Ring nodes first, then anyone else membership knows (joined but not yet in the ring).
    let mut ids: Vec<String> = ring.nodes().cloned().collect();
    let mut others: Vec<String> = snapshot
        .members
        .keys()
        .filter(|id| !ring.contains(id))
        .cloned()
        .collect();
    others.sort();
    ids.extend(others);

    let pings = ids.iter().map(|id| {
        let node = node.clone();
        let id = id.clone();
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
    let (local_incarnation, local_generation, published) = {
        let swim = cluster.gossip.swim();
        let published: BTreeMap<String, BTreeMap<String, String>> = ids
            .iter()
            .filter_map(|id| {
                let state = swim.metadata_of(id)?;
                let values = state
                    .iter()
                    .filter(|(key, _)| !key.starts_with(crate::gossip::metadata::TABLE_PREFIX))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                Some((id.clone(), values))
            })
            .collect();
        (swim.incarnation(), swim.me().generation, published)
    };
    let members: Vec<Value> = ids
        .iter()
        .zip(results)
        .map(|(id, (reachable, rtt_ms))| {
            let meta = published.get(id);
            let (state, incarnation, generation, phi) = if id == node.id() {
                ("alive", Some(local_incarnation), Some(local_generation), None)
            } else {
                match snapshot.members.get(id) {
                    Some(seen) => (
                        crate::gossip::state_name(seen.state),
                        Some(seen.incarnation),
                        Some(seen.id.generation),
                        seen.phi,
                    ),
                    None => ("unknown", None, None, None),
                }
            };
            let address = cluster
                .directory
                .get(id)
                .map(|addr| addr.to_string());
            json!({
                "id": id,
                "address": address,
                "status": meta.and_then(|m| m.get("status")).cloned().unwrap_or_else(|| "unknown".into()),
                "state": state,
                "alive": cluster.gossip.is_alive(id),
                "incarnation": incarnation,
                "generation": generation,
                "phi": phi.map(|p| (p * 100.0).round() / 100.0),
                "reachable": reachable,
                "rtt_ms": rtt_ms,
                "partitions": ring.partitions_of(id).len(),
                "metadata": meta,
            })
        })
        .collect();
    Json(json!({
        "node": node.id(),
        "membership": "swim",
        "ring": if cluster.is_static() { "static" } else { "discovered" },
        "ring_epoch": ring.epoch(),
        "members": members,
    }))
}

/// The ring: who owns each partition, and how many partitions each node owns.
pub async fn ring(State(node): State<Arc<Node>>) -> Json<Value> {
    let ring = node.cluster.ring();
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
