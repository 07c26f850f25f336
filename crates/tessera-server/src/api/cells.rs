//! Cell routes: `PUT`, `GET` and `DELETE /v1/tables/{table}/rows/{key}/{column}`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tessera_storage::{CellWrite, Context, RowKey};

use super::data::{self, Access};
use super::error::ApiError;
use super::extract::{self, ApiQuery, CellPath};
use super::values::{self, Encoding};
use crate::node::{now_ms, Node};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellQuery {
    consistency: Option<String>,
    encoding: Option<String>,
}

pub async fn get_cell(
    State(node): State<Arc<Node>>,
    path: CellPath,
    ApiQuery(query): ApiQuery<CellQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let table = data::table(&node, &path.table)?;
    let level = extract::consistency(query.consistency.as_deref(), &headers)?;
    let quorum = data::quorum(&node, &table, level, Access::Read)?;
    let encoding = Encoding::parse(query.encoding.as_deref())?;
    let row = node.row_key(table.id, path.key);
    let column = path.column;
    let cell = data::blocking(&node, "read", move |store| store.read_cell(&row, &column)).await?;

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
    out.insert("x-replicas", quorum.header(1));
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
    let quorum = data::quorum(&node, &table, level, Access::Write)?;
    let explicit = extract::context_header(&headers)?;
    let max = node.config.limits.max_value_bytes;
    extract::check_declared_length(&headers, max, "value_too_large", "the value")?;
    let row = node.row_key(table.id, path.key);
    // The implicit context is taken before the body is read: a blind write supersedes only what
    // existed when it arrived, so two writes in flight together both survive as siblings.
    let context = match explicit {
        Some(context) => context,
        None => snapshot(&node, &row, &path.column).await?,
    };
    let value = extract::read_body(body, &headers, max, "value_too_large", "the value").await?;
    let write = CellWrite::Set {
        column: path.column,
        value: value.to_vec(),
        context,
    };
    write_one(&node, &table.name, row, write, quorum).await
}

pub async fn delete_cell(
    State(node): State<Arc<Node>>,
    path: CellPath,
    ApiQuery(query): ApiQuery<CellQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let table = data::table(&node, &path.table)?;
    let level = extract::consistency(query.consistency.as_deref(), &headers)?;
    let quorum = data::quorum(&node, &table, level, Access::Write)?;
    let row = node.row_key(table.id, path.key);
    let context = match extract::context_header(&headers)? {
        Some(context) => context,
        None => snapshot(&node, &row, &path.column).await?,
    };
    let write = CellWrite::Delete {
        column: path.column,
        context,
    };
    write_one(&node, &table.name, row, write, quorum).await
}

/// What this replica holds of a cell now, as a context: the implicit context of a blind write.
pub async fn snapshot(node: &Arc<Node>, row: &RowKey, column: &[u8]) -> Result<Context, ApiError> {
    let (row, column) = (row.clone(), column.to_vec());
    let cell = data::blocking(node, "read", move |store| store.read_cell(&row, &column)).await?;
    Ok(cell.map(|cell| cell.join()).unwrap_or_default())
}

async fn write_one(
    node: &Arc<Node>,
    table: &str,
    row: RowKey,
    write: CellWrite,
    quorum: data::Quorum,
) -> Result<Response, ApiError> {
    let written = data::blocking(node, "write", move |store| {
        store.write_row(&row, std::slice::from_ref(&write), now_ms())
    })
    .await?;
    let (column, cell) = written
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::internal("the store returned no cell for a write"))?;
    data::observe_siblings(node, table, &column, &cell);
    let mut response = StatusCode::NO_CONTENT.into_response();
    let out = response.headers_mut();
    data::cell_headers(out, &cell);
    out.insert("x-replicas", quorum.header(1));
    Ok(response)
}
