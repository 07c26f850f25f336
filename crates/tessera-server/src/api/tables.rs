//! Table routes: create, list and show tables.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::data;
use super::error::ApiError;
use super::extract::{self, TablePath};
use crate::consistency::ConsistencyLevel;
use crate::node::{now_ms, Node};
use crate::schema::{Created, TableSettings};

/// A table definition is small; anything bigger is a mistake.
const MAX_TABLE_BODY: usize = 64 * 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTable {
    replication: Option<u32>,
    read: Option<ConsistencyLevel>,
    write: Option<ConsistencyLevel>,
}

pub async fn create_table(
    State(node): State<Arc<Node>>,
    path: TablePath,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = extract::read_body(
        body,
        &headers,
        MAX_TABLE_BODY,
        "body_too_large",
        "the table definition",
        node.body_timeout(),
    )
    .await?;
    let request: CreateTable = if bytes.iter().all(u8::is_ascii_whitespace) {
        CreateTable::default()
    } else {
        serde_json::from_slice(&bytes).map_err(ApiError::invalid_json)?
    };
    let defaults = TableSettings::default();
    let settings = TableSettings {
        replication: request.replication.unwrap_or(defaults.replication),
        read: request.read.unwrap_or(defaults.read),
        write: request.write.unwrap_or(defaults.write),
    };
    let name = path.table;
    let node2 = node.clone();
    let created = tokio::task::spawn_blocking(move || {
        node2.schema.create(&node2.store, &name, settings, now_ms())
    })
    .await
    .map_err(|e| ApiError::internal(format!("table creation failed: {e}")))??;
    Ok(match created {
        Created::New(schema) => {
            node.cluster.schema_pushes.push(&schema).await;
            (StatusCode::CREATED, Json(json!(schema.as_ref()))).into_response()
        }
        Created::AlreadyExists(schema) => Json(json!(schema.as_ref())).into_response(),
    })
}

pub async fn list_tables(State(node): State<Arc<Node>>) -> Json<serde_json::Value> {
    let tables: Vec<_> = node
        .schema
        .list()
        .iter()
        .map(|t| json!(t.as_ref()))
        .collect();
    Json(json!({ "tables": tables }))
}

pub async fn show_table(
    State(node): State<Arc<Node>>,
    path: TablePath,
) -> Result<Json<serde_json::Value>, ApiError> {
    let table = data::table(&node, &path.table)?;
    Ok(Json(json!(table.as_ref())))
}
