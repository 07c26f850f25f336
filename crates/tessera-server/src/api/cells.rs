//! Cell routes: `PUT`, `GET` and `DELETE /v1/tables/{table}/rows/{key}/{column}`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tessera_cluster::{ClientWrite, WriteOutcome, WriteRequest};
use tessera_storage::{Context, RowKey};

use super::data::{self, Access, Plan};
use super::error::ApiError;
use super::extract::{self, ApiQuery, CellPath};
use super::values::{self, Encoding};
use crate::node::Node;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellQuery {
    consistency: Option<String>,
    encoding: Option<String>,
    strict: Option<String>,
}

pub async fn get_cell(
    State(node): State<Arc<Node>>,
    path: CellPath,
    ApiQuery(query): ApiQuery<CellQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let table = data::table(&node, &path.table)?;
    let level = extract::consistency(query.consistency.as_deref(), &headers)?;
    let encoding = Encoding::parse(query.encoding.as_deref())?;
    let strict = data::parse_strict(query.strict.as_deref())?;
    let plan = data::plan(&node, &table, path.key, level, Access::Read, strict)?;
    let outcome = node
        .cluster
        .coordinator
        .read_cell(
            plan.row.clone(),
            path.column,
            plan.required,
            plan.replicas.clone(),
        )
        .await?;
    let cell = outcome.value;

    let mut response = match &cell {
        None => ApiError::not_found("no such cell").into_response(),
        Some(cell) if values::is_deleted(cell) => {
            ApiError::not_found("the cell is deleted").into_response()
        }
        Some(cell) => match values::single_value(cell) {
            Some(bytes) => (
                [(header::CONTENT_TYPE, "application/octet-stream")],
                bytes.to_vec(),
            )
                .into_response(),
            None => (
                StatusCode::MULTIPLE_CHOICES,
                axum::Json(values::siblings_json(cell, encoding)),
            )
                .into_response(),
        },
    };
    let out = response.headers_mut();
    match &cell {
        Some(cell) => data::cell_headers(out, cell),
        None => {
            out.insert("x-siblings", 0.into());
        }
    }
    out.insert("x-replicas", plan.header(outcome.acked));
    Ok(response)
}

pub async fn put_cell(
    State(node): State<Arc<Node>>,
    path: CellPath,
    ApiQuery(query): ApiQuery<CellQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let table = data::table(&node, &path.table)?;
    let level = extract::consistency(query.consistency.as_deref(), &headers)?;
    Encoding::parse(query.encoding.as_deref())?;
    let explicit = extract::context_header(&headers)?;
    let max = node.config.limits.max_value_bytes;
    extract::check_declared_length(&headers, max, "value_too_large", "the value")?;
    let strict = data::parse_strict(query.strict.as_deref())?;
    let plan = data::plan(&node, &table, path.key, level, Access::Write, strict)?;
    let context = implicit_context(&node, &plan, &path.column, explicit)?;
    let value = extract::read_body(
        body,
        &headers,
        max,
        "value_too_large",
        "the value",
        node.body_timeout(),
    )
    .await?;
    let write = ClientWrite {
        column: path.column,
        value: Some(value.to_vec()),
        context,
    };
    let outcome = coordinate(&node, &table.name, &plan, vec![write]).await?;
    cell_written(&plan, &outcome)
}

pub async fn delete_cell(
    State(node): State<Arc<Node>>,
    path: CellPath,
    ApiQuery(query): ApiQuery<CellQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let table = data::table(&node, &path.table)?;
    let level = extract::consistency(query.consistency.as_deref(), &headers)?;
    Encoding::parse(query.encoding.as_deref())?;
    let explicit = extract::context_header(&headers)?;
    let strict = data::parse_strict(query.strict.as_deref())?;
    let plan = data::plan(&node, &table, path.key, level, Access::Write, strict)?;
    let context = implicit_context(&node, &plan, &path.column, explicit)?;
    let write = ClientWrite {
        column: path.column,
        value: None,
        context,
    };
    let outcome = coordinate(&node, &table.name, &plan, vec![write]).await?;
    cell_written(&plan, &outcome)
}

/// The context of a write. A blind write supersedes what its coordinating replica held when it
/// arrived: when this node is a replica, the snapshot is taken here, before the body is read, so
/// that two writes in flight together both survive as siblings. Otherwise the replica the write is
/// forwarded to takes it on arrival.
fn implicit_context(
    node: &Node,
    plan: &Plan,
    column: &[u8],
    explicit: Option<Context>,
) -> Result<Option<Context>, ApiError> {
    match explicit {
        Some(context) => Ok(Some(context)),
        None if plan.is_local(node) => snapshot(node, &plan.row, column).map(Some),
        None => Ok(None),
    }
}

/// What this replica holds of a cell now, as a context. A point read, so it runs on this task
/// rather than the storage pool (see `tessera_cluster::StorageRunner`).
fn snapshot(node: &Node, row: &RowKey, column: &[u8]) -> Result<Context, ApiError> {
    node.store.read_context(row, column).map_err(ApiError::from)
}

/// Runs a write of one row through the coordinator, and counts the siblings it left.
pub async fn coordinate(
    node: &Arc<Node>,
    table: &str,
    plan: &Plan,
    writes: Vec<ClientWrite>,
) -> Result<WriteOutcome, ApiError> {
    let outcome = node
        .cluster
        .coordinator
        .write(WriteRequest {
            row: plan.row.clone(),
            writes,
            required: plan.required,
            replicas: plan.replicas.clone(),
            fallbacks: plan.fallbacks.clone(),
            strict: plan.strict,
            also: plan.also.clone(),
        })
        .await?;
    for (column, cell) in &outcome.cells {
        data::observe_siblings(node, table, column, cell);
    }
    Ok(outcome)
}

fn cell_written(plan: &Plan, outcome: &WriteOutcome) -> Result<Response, ApiError> {
    let (_, cell) = outcome
        .cells
        .first()
        .ok_or_else(|| ApiError::internal("the coordinator returned no cell for a write"))?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    let out = response.headers_mut();
    data::cell_headers(out, cell);
    out.insert("x-replicas", plan.header(outcome.acked));
    if outcome.hinted > 0 {
        out.insert("x-hinted", outcome.hinted.into());
    }
    Ok(response)
}
