//! Routes about this node itself rather than the data: its background workers.
//!
//! - `GET /v1/node/workers`: every worker with its state, progress, rate and last error, and the
//!   budgets of short background tasks ([`WorkerReport`], as `tessera node workers` shows it);
//! - `POST /v1/node/workers/{name}/pause` and `.../resume`;
//! - `PATCH /v1/node/workers/{name}` with `{"tranquility": N, "max_rate": N}` (either optional;
//!   a `max_rate` of 0 removes the limit).
//!
//! Each change answers the worker's [`WorkerInfo`] after it.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use tessera_worker::{RunnerError, WorkerHandle, WorkerInfo, WorkerReport, WorkerSettings};

use super::error::ApiError;
use super::extract;
use crate::node::Node;

/// Largest settings body accepted.
const MAX_SETTINGS_BODY: usize = 4096;

/// `GET /v1/node/workers`.
pub async fn workers(State(node): State<Arc<Node>>) -> Json<WorkerReport> {
    Json(report(&node))
}

/// The node's workers and budgets, as the API, the CLI and metrics see them.
pub fn report(node: &Node) -> WorkerReport {
    WorkerReport {
        node: node.id().to_owned(),
        workers: node.workers.list(),
        budgets: vec![node.cluster.coordinator.background().stats()],
    }
}

/// `POST /v1/node/workers/{name}/pause`.
pub async fn pause(
    State(node): State<Arc<Node>>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<WorkerInfo>, ApiError> {
    let worker = worker(&node, name)?;
    worker.pause();
    Ok(Json(worker.info()))
}

/// `POST /v1/node/workers/{name}/resume`.
pub async fn resume(
    State(node): State<Arc<Node>>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<WorkerInfo>, ApiError> {
    let worker = worker(&node, name)?;
    worker.resume();
    Ok(Json(worker.info()))
}

/// `PATCH /v1/node/workers/{name}`.
pub async fn configure(
    State(node): State<Arc<Node>>,
    name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<WorkerInfo>, ApiError> {
    let worker = worker(&node, name)?;
    let bytes = extract::read_body(
        body,
        &headers,
        MAX_SETTINGS_BODY,
        "body_too_large",
        "the worker settings",
        node.body_timeout(),
    )
    .await?;
    let settings: WorkerSettings =
        serde_json::from_slice(&bytes).map_err(ApiError::invalid_json)?;
    if settings == WorkerSettings::default() {
        return Err(ApiError::bad_request(
            "invalid_settings",
            "give at least one of \"tranquility\" and \"max_rate\" (0 removes the rate limit)",
        ));
    }
    worker.apply(&settings);
    Ok(Json(worker.info()))
}

fn worker(
    node: &Node,
    name: Result<Path<String>, PathRejection>,
) -> Result<WorkerHandle, ApiError> {
    let Path(name) = name.map_err(|rejection| {
        ApiError::bad_request("invalid_path", format!("bad worker name: {rejection}"))
    })?;
    node.workers.handle(&name).map_err(|error| match error {
        RunnerError::NoSuchWorker { name, known } => ApiError::new(
            StatusCode::NOT_FOUND,
            "worker_not_found",
            format!("no worker is named {name:?} on this node"),
        )
        .with("worker", name)
        .with("known", known),
        other => ApiError::internal(other.to_string()),
    })
}
