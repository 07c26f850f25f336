//! Anti-entropy on this node (`tessera repair`):
//!
//! - `GET /v1/node/repair`: per table, the partitions this node replicates and how many were in
//!   sync with every replica at their last visit, the age of the last full sweep and of the
//!   partition least recently synced; totals of exchanges, keys pulled, pushed and repaired,
//!   bytes, tree checks and tombstones purged; the settings and the sweep under way;
//! - `POST /v1/node/repair[?table=T]`: start a sweep now (of one table, or all), cutting short the
//!   one under way. Answers 202: the sweep runs in the background, `GET` shows its progress.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract;
use crate::cluster::NodeAntiEntropy;
use crate::node::Node;

fn antientropy(node: &Node) -> Result<&Arc<NodeAntiEntropy>, ApiError> {
    node.antientropy.get().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "starting",
            "anti-entropy is not set up yet: the node is starting",
        )
    })
}

/// `GET /v1/node/repair`.
pub async fn status(State(node): State<Arc<Node>>) -> Result<Json<Value>, ApiError> {
    let status = antientropy(&node)?.status();
    let names: std::collections::BTreeMap<u32, String> = node
        .schema
        .list()
        .iter()
        .map(|t| (t.id, t.name.clone()))
        .collect();
    let tables: Vec<Value> = status
        .tables
        .iter()
        .map(|t| {
            json!({
                "table": names.get(&t.table),
                "id": t.table,
                "partitions": t.partitions,
                "in_sync": t.in_sync,
                "last_full_sweep_age_ms": t.last_full_sweep_age_ms,
                "oldest_unsynced_age_ms": t.oldest_unsynced_age_ms,
            })
        })
        .collect();
    let settings = &node.config.anti_entropy;
    Ok(Json(json!({
        "node": node.id(),
        "enabled": settings.enabled,
        "sweep_interval_secs": settings.sweep_interval_secs,
        "max_keys_per_s": settings.max_keys_per_s,
        "sweeping": status.sweeping,
        "sweep": {"done": status.sweep_done, "total": status.sweep_total},
        "sweeps": status.sweeps,
        "exchanges": status.exchanges,
        "exchanges_in_sync": status.exchanges_in_sync,
        "exchanges_failed": status.exchanges_failed,
        "segments_compared": status.segments_compared,
        "segments_differing": status.segments_differing,
        "keys_pulled": status.keys_pulled,
        "keys_pushed": status.keys_pushed,
        "keys_repaired": status.keys_repaired,
        "bytes": status.bytes,
        "tree_checks": status.tree_checks,
        "tree_nodes_repaired": status.tree_nodes_repaired,
        "tombstones_purged": status.tombstones_purged,
        "last_error": status.last_error,
        "tables": tables,
    })))
}

/// The query of `POST /v1/node/repair`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepairQuery {
    table: Option<String>,
}

/// `POST /v1/node/repair[?table=T]`.
pub async fn now(
    State(node): State<Arc<Node>>,
    extract::ApiQuery(query): extract::ApiQuery<RepairQuery>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let antientropy = antientropy(&node)?;
    if !node.config.anti_entropy.enabled {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "disabled",
            "anti-entropy is disabled on this node (anti_entropy.enabled = false)",
        ));
    }
    let table = match &query.table {
        Some(name) => Some(super::data::table(&node, name)?.id),
        None => None,
    };
    antientropy.request_sweep(table);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"node": node.id(), "sweep": "started", "table": query.table})),
    ))
}
