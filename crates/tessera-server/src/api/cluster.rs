//! Cluster routes: `GET /v1/cluster` (members and what this node sees of them),
//! `GET /v1/cluster/ring` (the layout: the partition map and any move under way), and the
//! operator's layout changes: `POST /v1/cluster/plan` (stage a change and see what it moves),
//! `GET /v1/cluster/plan`, `POST /v1/cluster/commit` and `POST /v1/cluster/abort`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tessera_cluster::messages::{Request, Response};
use tessera_cluster::{MembershipView, Transport};
use tessera_layout::{Change, Layout, LayoutError, Plan, PlanSummary};

use super::error::ApiError;
use super::extract;
use crate::layout::commit::{self, CommitError};
use crate::layout::LayoutFailure;
use crate::node::Node;

/// How long `/v1/cluster` waits for a peer's pong.
const PING_TIMEOUT: Duration = Duration::from_millis(500);

/// Every member, with this node's view of it: its SWIM state, incarnation and phi, whether the
/// coordinator counts it alive, what it publishes by gossip, and whether it answered a ping just
/// now (and how fast).
pub async fn members(State(node): State<Arc<Node>>) -> Json<Value> {
    let cluster = &node.cluster;
    let layout = cluster.layout.layout();
    let complete = cluster.topology.state().complete();
    let ring = layout.as_ref().map(Layout::ring);
    let in_ring = |id: &String| ring.is_some_and(|r| r.contains(id));
    let snapshot = cluster.gossip.snapshot();
    // Ring nodes first, then this node if no ring holds it (joining, or gone), then anyone else
    // membership knows.
    let mut ids: Vec<String> = ring
        .map(|r| r.nodes().cloned().collect())
        .unwrap_or_default();
    if !in_ring(&node.id().to_owned()) {
        ids.push(node.id().to_owned());
    }
    let mut others: Vec<String> = snapshot
        .members
        .keys()
        .filter(|id| !in_ring(id) && *id != node.id())
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
                (
                    "alive",
                    Some(local_incarnation),
                    Some(local_generation),
                    None,
                )
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
            let address = cluster.directory.get(id).map(|addr| addr.to_string());
            json!({
                "id": id,
                "address": address,
                "status": member_status(
                    layout.as_ref(),
                    complete,
                    id,
                    meta.and_then(|m| m.get("status")).map(String::as_str),
                ),
                "state": state,
                "alive": cluster.gossip.is_alive(id),
                "incarnation": incarnation,
                "generation": generation,
                "phi": phi.map(|p| (p * 100.0).round() / 100.0),
                "reachable": reachable,
                "rtt_ms": rtt_ms,
                "partitions": ring.map_or(0, |r| r.partitions_of(id).len()),
                "metadata": meta,
            })
        })
        .collect();
    Json(json!({
        "node": node.id(),
        "membership": "swim",
        "ring": if cluster.is_static() { "static" } else { "committed" },
        "ring_epoch": layout.as_ref().map_or(0, Layout::epoch),
        "members": members,
    }))
}

/// A member's place in the layout: `normal` (owns partitions), `joining` (known to membership,
/// not added yet, or receiving its partitions), `leaving` (handing its partitions over), `left`
/// (a change took it out: it owns nothing, and is not waiting to be added). `published` is the
/// status the member last gossiped: one that was `normal` or `left` and is in no ring now has
/// left, even if it is down and cannot say so.
fn member_status(
    layout: Option<&Layout>,
    complete: bool,
    id: &String,
    published: Option<&str>,
) -> &'static str {
    let Some(layout) = layout else {
        return "joining";
    };
    let now = layout.ring().contains(id);
    let before = layout.previous().is_some_and(|r| r.contains(id));
    match (before, now, layout.is_move() && !complete) {
        (true, false, true) => "leaving",
        (false, true, true) => "joining",
        (_, true, _) => "normal",
        _ if before || layout.dead().contains(id) => "left",
        _ if matches!(published, Some("normal" | "left")) => "left",
        _ => "joining",
    }
}

/// The layout: its epoch, who owns each partition, and, during a move, where from and how far
/// every node has got.
pub async fn ring(State(node): State<Arc<Node>>) -> Result<Json<Value>, ApiError> {
    let state = node.cluster.topology.state();
    let layout = state.layout.as_ref().ok_or_else(|| not_joined(&node))?;
    let ring = layout.ring();
    let owners: Vec<&String> = ring.owners().collect();
    let mut owned: BTreeMap<&String, usize> = BTreeMap::new();
    for owner in &owners {
        *owned.entry(owner).or_default() += 1;
    }
    let moving = layout.is_move() && !state.complete();
    let pending: Vec<Value> = match layout.previous() {
        Some(previous) if moving => tessera_ring::diff(previous, ring)
            .into_iter()
            .map(|m| json!({ "partition": m.partition, "from": m.from, "to": m.to }))
            .collect(),
        _ => Vec::new(),
    };
    let progress: BTreeMap<String, Value> = layout
        .participants()
        .into_iter()
        .map(|id| {
            let p = state.progress.of(&id).cloned().unwrap_or_default();
            let synced = if p.synced_epoch == layout.epoch() {
                p.synced.len()
            } else {
                0
            };
            (
                id,
                json!({ "acked": p.acked, "synced_partitions": synced, "reading": p.reading }),
            )
        })
        .collect();
    Ok(Json(json!({
        "epoch": layout.epoch(),
        "moving": moving,
        "step": if !moving { "stable" } else if !state.progress.all_acked(layout) { "ack" }
            else if !state.progress.all_synced(layout, &state.replication_factors) { "sync" }
            else { "read" },
        "partitions": ring.scheme().count(),
        "ring_replicas": ring.target_n(),
        "nodes": owned,
        "owners": owners,
        "previous_owners": layout.previous().filter(|_| moving).map(|r| r.owners().collect::<Vec<_>>()),
        "dead": layout.dead(),
        "pending_moves": pending,
        "progress": if moving { json!(progress) } else { Value::Null },
    })))
}

fn not_joined(node: &Node) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "not_joined",
        format!(
            "{} has not joined a cluster yet: it knows no layout (it learns one by gossip from its seeds)",
            node.id()
        ),
    )
}

fn view(node: &Node, plan: Plan) -> PlanSummary {
    let state = node.cluster.topology.state();
    let n = state
        .replication_factors
        .iter()
        .copied()
        .max()
        .unwrap_or(node.config.cluster.ring_replicas);
    let partitions = u64::from(plan.next.ring().scheme().count());
    let replica_moves: usize = (0..partitions)
        .map(|p| plan.next.joining(p as u16, n).len())
        .sum();
    // Every node's load counts each replica it holds: the cluster's unique data is the sum / N.
    let (mut keys, mut bytes) = (0u64, 0u64);
    {
        let swim = node.cluster.gossip.swim();
        for member in plan.next.participants() {
            let load = swim
                .metadata_of(&member)
                .and_then(|m| m.get("load").map(str::to_owned))
                .and_then(|l| {
                    let (k, b) = l.split_once(',')?;
                    Some((k.parse::<u64>().ok()?, b.parse::<u64>().ok()?))
                })
                .or_else(|| {
                    (member == node.id())
                        .then(|| node.cluster.events.load().get())
                        .flatten()
                });
            if let Some((k, b)) = load {
                keys += k;
                bytes += b;
            }
        }
    }
    let per_move = |total: u64| total / u64::from(n.max(1)) / partitions.max(1);
    PlanSummary {
        estimated_keys: per_move(keys) * replica_moves as u64,
        estimated_bytes: per_move(bytes) * replica_moves as u64,
        replica_moves,
        plan,
    }
}

/// `POST /v1/cluster/plan`: plans a change against the layout held, stages it on this node (a
/// later plan replaces it), and shows what it would move.
pub async fn plan(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<PlanSummary>, ApiError> {
    let bytes = extract::read_body(
        body,
        &headers,
        4096,
        "body_too_large",
        "the plan",
        node.body_timeout(),
    )
    .await?;
    // One change: {"kind": "add" | "remove" | "remove_dead", "node": ...} or
    // {"kind": "replace", "old": ..., "new": ..., "dead": false}.
    let change: Change = serde_json::from_slice(&bytes).map_err(ApiError::invalid_json)?;
    check_liveness(&node, &change)?;
    let plan = node
        .cluster
        .layout
        .stage(change)
        .map_err(|e| layout_error(&node, e))?;
    Ok(Json(view(&node, plan)))
}

/// Refuses a change that membership says cannot work: a node to add (or a replacement) that is
/// not a live member would never receive its partitions or acknowledge the move, so the move
/// would never end; a plain remove of a node that is down would wait for it to stream its data
/// away; and `remove --dead` of a node that is alive would copy again what it could stream.
fn check_liveness(node: &Node, change: &Change) -> Result<(), ApiError> {
    let snapshot = node.cluster.gossip.snapshot();
    let state = |id: &String| {
        if id == node.id() {
            Some("alive")
        } else {
            snapshot
                .members
                .get(id)
                .map(|seen| crate::gossip::state_name(seen.state))
        }
    };
    let up = |id: &String| matches!(state(id), Some("alive" | "suspect"));
    let refuse = |reason: String, id: &String| {
        Err(ApiError::new(StatusCode::CONFLICT, "member_state", reason)
            .with("node", id.clone())
            .with("state", state(id).unwrap_or("unknown")))
    };
    match change {
        Change::Add { node: id } | Change::Replace { new: id, .. } if !up(id) => refuse(
            format!(
                "{id} is not a live member ({}): start it with --seed pointing at this cluster, \
                 wait until `tessera cluster status` shows it alive, then plan again",
                state(id).unwrap_or("unknown to membership")
            ),
            id,
        ),
        Change::Remove { node: id }
        | Change::Replace {
            old: id,
            dead: false,
            ..
        } if !up(id) => refuse(
            format!(
                "{id} is {}: it cannot stream its partitions away; if it is gone for good, \
                     use `remove {id} --dead` (or `replace ... --dead`) to copy them again from \
                     the surviving replicas",
                state(id).unwrap_or("unknown to membership")
            ),
            id,
        ),
        Change::RemoveDead { node: id }
        | Change::Replace {
            old: id,
            dead: true,
            ..
        } if state(id) == Some("alive") => refuse(
            format!(
                "{id} is alive: remove it without --dead so that it streams its partitions \
                     away (stop it first if it is really gone)"
            ),
            id,
        ),
        _ => Ok(()),
    }
}

/// `GET /v1/cluster/plan`: the plan staged on this node.
pub async fn staged(State(node): State<Arc<Node>>) -> Result<Json<PlanSummary>, ApiError> {
    let plan = node.cluster.layout.staged().ok_or_else(|| {
        ApiError::not_found("nothing is staged on this node: POST /v1/cluster/plan first")
    })?;
    Ok(Json(view(&node, plan)))
}

/// `POST /v1/cluster/abort`: discards the plan staged on this node.
pub async fn abort(State(node): State<Arc<Node>>) -> Json<Value> {
    let aborted = node.cluster.layout.abort();
    Json(json!({ "aborted": aborted.map(|p| p.change.to_string()) }))
}

/// The body of `POST /v1/cluster/commit`: the epoch the plan must have been made at.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitRequest {
    epoch: Option<u64>,
}

/// How long a commit may take to gather a majority.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

/// `POST /v1/cluster/commit`: commits the plan staged on this node (only at the epoch given, if
/// one is). Answers the new epoch, or `409 epoch_conflict` naming the epoch when another change
/// got there first or the plan is stale.
pub async fn commit(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let bytes = extract::read_body(
        body,
        &headers,
        1024,
        "body_too_large",
        "the commit",
        node.body_timeout(),
    )
    .await?;
    let request: CommitRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        CommitRequest::default()
    } else {
        serde_json::from_slice(&bytes).map_err(ApiError::invalid_json)?
    };
    let committed = commit::commit(
        &node.cluster.layout,
        &node.cluster.transport,
        request.epoch,
        COMMIT_TIMEOUT,
    )
    .await
    .map_err(|error| match error {
        CommitError::Layout(error) => layout_error(&node, error),
        CommitError::Stale { planned, current } => {
            ApiError::new(StatusCode::CONFLICT, "epoch_conflict", error.to_string())
                .with("planned_at", planned)
                .with("epoch", current)
        }
        CommitError::Lost { epoch, .. } => {
            ApiError::new(StatusCode::CONFLICT, "epoch_conflict", error.to_string())
                .with("epoch", epoch)
        }
        CommitError::Refused { epoch, .. } => {
            ApiError::new(StatusCode::CONFLICT, "commit_refused", error.to_string())
                .with("epoch", epoch)
        }
        CommitError::NoMajority {
            epoch,
            answered,
            acceptors,
            majority,
            ..
        } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_majority",
            error.to_string(),
        )
        .with("epoch", epoch)
        .with("answered", answered)
        .with("acceptors", acceptors)
        .with("majority", majority),
    })?;
    Ok(Json(json!({
        "epoch": committed.epoch(),
        "nodes": committed.ring().nodes().collect::<Vec<_>>(),
        "moving": committed.is_move(),
    })))
}

fn layout_error(node: &Node, error: LayoutFailure) -> ApiError {
    match error {
        LayoutFailure::NoLayout => not_joined(node),
        LayoutFailure::NothingStaged => ApiError::bad_request("nothing_staged", error.to_string()),
        LayoutFailure::Layout(LayoutError::MoveInProgress { epoch }) => {
            ApiError::new(StatusCode::CONFLICT, "move_in_progress", error.to_string())
                .with("epoch", epoch)
        }
        LayoutFailure::Layout(LayoutError::StaleEpoch { current, .. }) => {
            ApiError::new(StatusCode::CONFLICT, "epoch_conflict", error.to_string())
                .with("epoch", current)
        }
        LayoutFailure::Layout(LayoutError::InvalidChange { .. } | LayoutError::Ring(_)) => {
            ApiError::bad_request("invalid_change", error.to_string())
        }
        other => ApiError::internal(other.to_string()),
    }
}

/// The query of `GET /v1/cluster/locate`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocateQuery {
    table: Option<String>,
    key: Option<String>,
}

/// `GET /v1/cluster/locate?table=T&key=K`: where a row lives (like Cassandra's
/// `nodetool getendpoints`): its token and partition, the replicas reads ask and writes count W
/// in, during a move the other set writes also need, and the fallbacks.
pub async fn locate(
    State(node): State<Arc<Node>>,
    extract::ApiQuery(query): extract::ApiQuery<LocateQuery>,
) -> Result<Json<Value>, ApiError> {
    let table = query
        .table
        .ok_or_else(|| ApiError::invalid_parameter("table", "give the table: ?table=T&key=K"))?;
    let key = query
        .key
        .filter(|k| !k.is_empty() && k.len() <= tessera_storage::MAX_KEY_LEN)
        .ok_or_else(|| {
            ApiError::invalid_parameter("key", "give a key of 1 to 65,535 bytes: ?table=T&key=K")
        })?;
    let schema = super::data::table(&node, &table)?;
    let row = node.row_key(schema.id, key.clone().into_bytes());
    let placement = node
        .cluster
        .topology
        .placement(row.partition, schema.replication);
    if placement.epoch == 0 {
        return Err(not_joined(&node));
    }
    Ok(Json(json!({
        "table": table,
        "key": key,
        "token": row.token,
        "partition": row.partition,
        "epoch": placement.epoch,
        "replicas": placement.replicas,
        "also": placement.also,
        "fallbacks": placement.fallbacks,
    })))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use tessera_ring::{PartitionScheme, Ring};

    use super::*;

    #[test]
    fn member_status_follows_the_layout_and_what_members_published() {
        let scheme = PartitionScheme::new(16).unwrap();
        let ring = Ring::new(scheme, ["a", "b", "c"].map(String::from), 3).unwrap();
        let status = |layout: &Layout, complete: bool, id: &str, published: Option<&str>| {
            member_status(Some(layout), complete, &id.to_owned(), published)
        };
        let first = Layout::first(ring.clone());
        assert_eq!(status(&first, true, "a", Some("normal")), "normal");
        assert_eq!(status(&first, true, "d", None), "joining");
        assert_eq!(status(&first, true, "d", Some("joining")), "joining");

        let adding = first
            .moving_to(ring.with_node_added("d".into()).unwrap(), BTreeSet::new())
            .unwrap();
        assert_eq!(status(&adding, false, "d", Some("joining")), "joining");
        assert_eq!(status(&adding, true, "d", Some("joining")), "normal");

        let removing = first
            .moving_to(
                ring.with_node_removed(&"b".into()).unwrap(),
                BTreeSet::new(),
            )
            .unwrap();
        assert_eq!(status(&removing, false, "b", Some("normal")), "leaving");
        assert_eq!(status(&removing, true, "b", Some("normal")), "left");
        // Epochs later, the previous ring no longer names it: what it published says it left,
        // even when it is down and could not publish `left`.
        let later = Layout::first(ring.with_node_removed(&"b".into()).unwrap());
        assert_eq!(status(&later, true, "b", Some("left")), "left");
        assert_eq!(status(&later, true, "b", Some("normal")), "left");
        assert_eq!(status(&later, true, "b", None), "joining");
        assert_eq!(status(&later, true, "b", Some("joining")), "joining");
    }
}
