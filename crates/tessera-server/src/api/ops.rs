//! Operational routes: liveness, metrics, and JSON answers for routes that do not exist.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tessera_storage::ColumnFamily;

use super::error::ApiError;
use super::extract::{route_not_found, DataPath};
use crate::node::Node;

pub async fn health(State(node): State<Arc<Node>>) -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "node": node.id() }))
}

pub async fn metrics(State(node): State<Arc<Node>>) -> Result<Response, ApiError> {
    let store = node.store.clone();
    let hint_store = node.hints.clone();
    let (stats, hints) = tokio::task::spawn_blocking(move || {
        let stats = ColumnFamily::ALL
            .iter()
            .map(|cf| store.stats(*cf).map(|stats| (*cf, stats)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok::<_, tessera_storage::StorageError>((stats, hint_store.targets()?))
    })
    .await
    .map_err(|e| ApiError::internal(format!("reading storage stats failed: {e}")))??;
    node.metrics
        .record_hints(&hints, &node.cluster.handoff.status());
    for (cf, stats) in stats {
        let bytes = i64::try_from(stats.live_bytes).unwrap_or(i64::MAX);
        let keys = i64::try_from(stats.keys).unwrap_or(i64::MAX);
        node.metrics
            .storage_bytes
            .with_label_values(&[cf.name()])
            .set(bytes);
        node.metrics
            .storage_keys
            .with_label_values(&[cf.name()])
            .set(keys);
    }
    node.metrics
        .record_coordinator(&node.cluster.coordinator.stats().snapshot());
    node.metrics
        .record_commits(node.cluster.coordinator.writer().stats());
    node.metrics
        .record_cell_cache(&node.store.cell_cache_stats());
    node.metrics.transfers.record(
        node.cluster.transfers.stats(),
        node.cluster.replica.transfer_source_stats(),
        &node.cluster.transfers.report(),
    );
    if let Some(antientropy) = node.antientropy.get() {
        node.metrics.antientropy.record(&antientropy.status());
    }
    let workers = super::node::report(&node);
    node.metrics
        .workers
        .record(&workers.workers, &workers.budgets);
    let text = node
        .metrics
        .render()
        .map_err(|e| ApiError::internal(format!("rendering metrics failed: {e}")))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// Requests that match no route. A data path with an empty key or column lands here (the router
/// does not match empty segments), and deserves the same 400 as any other bad key.
pub async fn fallback(uri: Uri) -> ApiError {
    match DataPath::parse(uri.path()) {
        Some(Err(error)) => error,
        _ => route_not_found(uri.path()),
    }
}

pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}; see docs/api.md", uri.path()),
    )
}
