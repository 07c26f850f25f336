//! Row routes: read a row or a slice of it, apply a batch atomically, delete a row.

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tessera_cluster::ClientWrite;
use tessera_storage::RowSlice;
use tessera_version::encode_context;

use super::cells::coordinate;
use super::data::{self, Access};
use super::error::ApiError;
use super::extract::{self, ApiQuery, Name, RowPath};
use super::values::{self, Encoding};
use crate::node::Node;

pub const DEFAULT_LIMIT: usize = 1_000;
pub const MAX_LIMIT: usize = 10_000;
pub const MAX_BATCH_OPS: usize = 10_000;
/// Cells tombstoned per batch by a row delete.
const DELETE_PAGE: usize = 1_000;
const CURSOR_FORMAT: u8 = 1;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowQuery {
    consistency: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    encoding: Option<String>,
    strict: Option<String>,
}

pub async fn get_row(
    State(node): State<Arc<Node>>,
    path: RowPath,
    ApiQuery(query): ApiQuery<RowQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let table = data::table(&node, &path.table)?;
    let level = extract::consistency(query.consistency.as_deref(), &headers)?;
    let limit = parse_limit(query.limit.as_deref())?;
    let encoding = Encoding::parse(query.encoding.as_deref())?;
    let from = bound(query.from, "from")?;
    let to = bound(query.to, "to")?;
    let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let unbounded = from.is_none() && to.is_none() && after.is_none();
    let slice = RowSlice {
        from,
        after,
        to,
        limit,
        include_tombstones: false,
    };
    let strict = data::parse_strict(query.strict.as_deref())?;
    let plan = data::plan(&node, &table, path.key, level, Access::Read, strict)?;
    let outcome = node
        .cluster
        .coordinator
        .read_row(
            plan.row.clone(),
            slice,
            plan.required,
            plan.replicas.clone(),
        )
        .await?;
    let page = outcome.value;
    let replicas_header = plan.header(outcome.acked);
    if unbounded && page.cells.is_empty() {
        let mut response = ApiError::not_found("no such row").into_response();
        response.headers_mut().insert("x-replicas", replicas_header);
        return Ok(response);
    }

    let cells: Vec<Value> = page
        .cells
        .iter()
        .map(|(column, cell)| {
            let mut object = Map::new();
            object.insert("column".into(), json!(String::from_utf8_lossy(column)));
            match values::single_value(cell) {
                Some(bytes) => values::insert_value(&mut object, bytes, encoding),
                None => {
                    object.insert("siblings".into(), values::siblings_json(cell, encoding));
                }
            }
            object.insert("context".into(), json!(encode_context(&cell.join())));
            Value::Object(object)
        })
        .collect();
    let mut body = json!({ "cells": cells });
    if page.more {
        if let Some((last, _)) = page.cells.last() {
            body["next"] = json!(encode_cursor(last));
        }
    }
    let mut response = Json(body).into_response();
    response.headers_mut().insert("x-replicas", replicas_header);
    Ok(response)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    ops: Vec<BatchOp>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase", tag = "op")]
enum BatchOp {
    Set {
        column: String,
        value: Option<String>,
        value_base64: Option<String>,
        context: Option<String>,
    },
    Delete {
        column: String,
        context: Option<String>,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteQuery {
    consistency: Option<String>,
    strict: Option<String>,
}

pub async fn post_row(
    State(node): State<Arc<Node>>,
    path: RowPath,
    ApiQuery(query): ApiQuery<WriteQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let table = data::table(&node, &path.table)?;
    let level = extract::consistency(query.consistency.as_deref(), &headers)?;
    let strict = data::parse_strict(query.strict.as_deref())?;
    let plan = data::plan(&node, &table, path.key, level, Access::Write, strict)?;
    let max_batch = node.config.limits.max_batch_bytes;
    let bytes = extract::read_body(
        body,
        &headers,
        max_batch,
        "body_too_large",
        "the batch body",
        node.body_timeout(),
    )
    .await?;
    let batch: BatchRequest = serde_json::from_slice(&bytes).map_err(ApiError::invalid_json)?;
    if batch.ops.is_empty() || batch.ops.len() > MAX_BATCH_OPS {
        return Err(ApiError::invalid_json(format!(
            "a batch holds 1 to {MAX_BATCH_OPS} ops, this one has {}",
            batch.ops.len()
        )));
    }

    let max_value = node.config.limits.max_value_bytes;
    let mut seen = HashSet::new();
    let mut writes = Vec::with_capacity(batch.ops.len());
    for op in batch.ops {
        let (column, value, context) = match op {
            BatchOp::Set {
                column,
                value,
                value_base64,
                context,
            } => {
                let bytes = values::decode_json_value(value, value_base64, &column)?;
                if bytes.len() > max_value {
                    return Err(ApiError::too_large(
                        "value_too_large",
                        &format!("the value of column {column:?}"),
                        bytes.len(),
                        max_value,
                    ));
                }
                (column, Some(bytes), context)
            }
            BatchOp::Delete { column, context } => (column, None, context),
        };
        extract::validate_name(column.as_bytes(), Name::Column)?;
        if !seen.insert(column.clone()) {
            return Err(ApiError::bad_request(
                "invalid_batch",
                format!("column {column:?} appears more than once in the batch"),
            ));
        }
        let context = context
            .as_deref()
            .map(extract::decode_context)
            .transpose()?;
        writes.push(ClientWrite {
            column: column.into_bytes(),
            value,
            context,
        });
    }

    // Ops without a context supersede what the coordinating replica holds when it applies them.
    let outcome = coordinate(&node, &table.name, &plan, writes).await?;
    let cells: Vec<Value> = outcome
        .cells
        .iter()
        .map(|(column, cell)| {
            json!({
                "column": String::from_utf8_lossy(column),
                "context": encode_context(&cell.join()),
                "siblings": cell.sibling_count(),
            })
        })
        .collect();
    let mut response = Json(json!({ "cells": cells })).into_response();
    response
        .headers_mut()
        .insert("x-replicas", plan.header(outcome.acked));
    Ok(response)
}

/// Deletes every live cell of a row: reads the row page by page at the write level, and writes a
/// tombstone with each cell's merged context, so the delete supersedes exactly the versions the
/// quorum saw. Each page is one atomic batch per replica.
pub async fn delete_row(
    State(node): State<Arc<Node>>,
    path: RowPath,
    ApiQuery(query): ApiQuery<WriteQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let table = data::table(&node, &path.table)?;
    let level = extract::consistency(query.consistency.as_deref(), &headers)?;
    let strict = data::parse_strict(query.strict.as_deref())?;
    let plan = data::plan(&node, &table, path.key, level, Access::Write, strict)?;
    let mut deleted = 0usize;
    let mut acked = plan.required;
    let mut after = None;
    loop {
        let slice = RowSlice {
            from: None,
            after: after.take(),
            to: None,
            limit: DELETE_PAGE,
            include_tombstones: false,
        };
        let page = node
            .cluster
            .coordinator
            .read_row(
                plan.row.clone(),
                slice,
                plan.required,
                plan.replicas.clone(),
            )
            .await?
            .value;
        let writes: Vec<ClientWrite> = page
            .cells
            .iter()
            .map(|(column, cell)| ClientWrite {
                column: column.clone(),
                value: None,
                context: Some(cell.join()),
            })
            .collect();
        if !writes.is_empty() {
            deleted += writes.len();
            acked = acked.min(coordinate(&node, &table.name, &plan, writes).await?.acked);
        }
        match (page.more, page.cells.last()) {
            (true, Some((last, _))) => after = Some(last.clone()),
            _ => break,
        }
    }
    let mut response = (StatusCode::OK, Json(json!({ "deleted": deleted }))).into_response();
    response
        .headers_mut()
        .insert("x-replicas", plan.header(acked));
    Ok(response)
}

fn parse_limit(text: Option<&str>) -> Result<usize, ApiError> {
    let Some(text) = text else {
        return Ok(DEFAULT_LIMIT);
    };
    match text.parse::<usize>() {
        Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
        _ => Err(ApiError::invalid_parameter(
            "limit",
            format!("limit must be a whole number from 1 to {MAX_LIMIT}, got {text:?}"),
        )),
    }
}

fn bound(text: Option<String>, parameter: &str) -> Result<Option<Vec<u8>>, ApiError> {
    match text {
        None => Ok(None),
        Some(text) if text.is_empty() => Err(ApiError::invalid_parameter(
            parameter,
            format!("{parameter} must not be empty; leave it out for an open bound"),
        )),
        Some(text) => Ok(Some(text.into_bytes())),
    }
}

/// A paging cursor names the last column returned; it is opaque to clients.
fn encode_cursor(column: &[u8]) -> String {
    let mut bytes = Vec::with_capacity(column.len() + 1);
    bytes.push(CURSOR_FORMAT);
    bytes.extend_from_slice(column);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn decode_cursor(token: &str) -> Result<Vec<u8>, ApiError> {
    let bad = || {
        ApiError::invalid_parameter(
            "cursor",
            "cursor is not one this server issued: pass back the \"next\" of the previous page",
        )
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(token.as_bytes())
        .map_err(|_| bad())?;
    match bytes.split_first() {
        Some((&CURSOR_FORMAT, column)) if !column.is_empty() => Ok(column.to_vec()),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let column = b"col\xff\x00umn".to_vec();
        assert_eq!(decode_cursor(&encode_cursor(&column)).unwrap(), column);
        for bad in ["", "!!!", "AA", &URL_SAFE_NO_PAD.encode([9u8, 1, 2])] {
            assert!(decode_cursor(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn limits_are_checked() {
        assert_eq!(parse_limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(parse_limit(Some("10000")).unwrap(), 10_000);
        for bad in ["0", "10001", "abc", "-1", ""] {
            assert!(parse_limit(Some(bad)).is_err(), "{bad:?}");
        }
    }
}
