//! Transfer routes: what partitions this node is pulling, and a way to make it pull one.
//!
//! - `GET /v1/cluster/transfers`: every transfer this node knows ([`TransfersReport`]), pending
//!   ones first, with progress, rate, ETA and last error: what `tessera cluster watch` shows.
//! - `POST /internal/v1/transfers` (cluster secret): pull partitions of a table from the nodes
//!   named, outside any ring change: `{"table": "demo", "partitions": [3, 17], "sources":
//!   ["n2"], "epoch": 0}` (`epoch` defaults to 0, which ring changes never use). For operators
//!   and tests, like Cassandra's `nodetool rebuild` of a range; ring changes give transfers to
//!   the node themselves.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tessera_cluster::transfer::{TransferKey, TransfersReport, TRANSFERS};
use tessera_cluster::{NodeId, Transfer};

use super::error::ApiError;
use super::extract;
use super::internal::check_secret;
use crate::node::Node;

/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024;

/// `GET /v1/cluster/transfers`.
pub async fn list(State(node): State<Arc<Node>>) -> Json<TransfersReport> {
    Json(report(&node))
}

/// This node's transfers, with table names and the throttle in force.
pub fn report(node: &Node) -> TransfersReport {
    let mut report = node.cluster.transfers.report();
    let tables = node.schema.list();
    for transfer in &mut report.transfers {
        transfer.table_name = tables
            .iter()
            .find(|t| t.id == transfer.table)
            .map(|t| t.name.clone());
    }
    report.max_bytes_per_second = node
        .workers
        .handle(TRANSFERS)
        .ok()
        .and_then(|worker| worker.info().max_rate);
    report
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PullRequest {
    table: String,
    partitions: Vec<u16>,
    sources: Vec<NodeId>,
    #[serde(default)]
    epoch: u64,
}

fn keys_json(keys: &[TransferKey]) -> Value {
    keys.iter()
        .map(|k| json!({"epoch": k.epoch, "table": k.table, "partition": k.partition}))
        .collect()
}

/// `POST /internal/v1/transfers`.
pub async fn pull(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    check_secret(&node, &headers)?;
    let bytes = extract::read_body(
        body,
        &headers,
        MAX_BODY,
        "body_too_large",
        "the transfer request",
        node.body_timeout(),
    )
    .await?;
    let request: PullRequest = serde_json::from_slice(&bytes).map_err(ApiError::invalid_json)?;
    let table = super::data::table(&node, &request.table)?;
    let count = node.partition_count();
    if let Some(bad) = request.partitions.iter().find(|p| u32::from(**p) >= count) {
        return Err(ApiError::bad_request(
            "invalid_partition",
            format!("partition {bad} does not exist: this cluster has {count} partitions"),
        ));
    }
    if request.partitions.is_empty() || request.sources.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_transfer",
            "give at least one partition and one source",
        ));
    }
    let transfers = request
        .partitions
        .iter()
        .map(|partition| Transfer {
            epoch: request.epoch,
            table: table.id,
            partition: *partition,
            sources: request.sources.clone(),
        })
        .collect();
    let report = node.cluster.transfers.enqueue(transfers);
    Ok(Json(json!({
        "queued": keys_json(&report.queued),
        "updated": keys_json(&report.updated),
        "unchanged": keys_json(&report.unchanged),
        "already_done": keys_json(&report.already_done),
        "refused": report
            .refused
            .iter()
            .map(|(k, reason)| json!({"epoch": k.epoch, "table": k.table, "partition": k.partition, "reason": reason}))
            .collect::<Vec<_>>(),
    })))
}
