//! Internal routes: requests from other nodes (replication, replica reads, read repair, hints,
//! forwarded writes), either as one `POST /internal/v1/rpc` each or over a stream opened with
//! `GET /internal/v1/stream` (see `crate::peer`). Only callers that present the cluster secret
//! are served.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use tessera_cluster::messages::{decode_request, encode_response};
use tessera_cluster::Handler;

use super::error::ApiError;
use super::extract::{self, DataPath};
use super::values::{self, Encoding};
use crate::node::Node;
use crate::peer::frame::STREAM_PROTOCOL;
use crate::peer::{FROM_HEADER, SECRET_HEADER};

/// Prefix of the replica-local read route; the rest is a `/tables/...` cell path.
pub const LOCAL_PREFIX: &str = "/internal/v1/local";
use crate::schema::TableSchema;

/// Internal routes serve only callers that present the cluster secret.
pub(super) fn check_secret(node: &Node, headers: &HeaderMap) -> Result<(), ApiError> {
    let offered = headers
        .get(SECRET_HEADER)
        .map(|value| value.as_bytes())
        .unwrap_or_default();
    if node.cluster.secret.matches(offered) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "internal requests must carry this cluster's secret in X-Tessera-Secret",
        ))
    }
}

/// `GET /internal/v1/schema`: every table this node knows.
pub async fn schema(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
) -> Result<Json<Vec<TableSchema>>, ApiError> {
    check_secret(&node, &headers)?;
    Ok(Json(
        node.schema
            .list()
            .iter()
            .map(|t| t.as_ref().clone())
            .collect(),
    ))
}

/// `PUT /internal/v1/schema`: a table a peer just created.
pub async fn take_table(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_secret(&node, &headers)?;
    let bytes = extract::read_body(
        body,
        &headers,
        64 * 1024,
        "body_too_large",
        "the table",
        node.body_timeout(),
    )
    .await?;
    let table: TableSchema = serde_json::from_slice(&bytes).map_err(ApiError::invalid_json)?;
    let node2 = node.clone();
    tokio::task::spawn_blocking(move || node2.schema.apply(&node2.store, &table))
        .await
        .map_err(|e| ApiError::internal(format!("taking the table failed: {e}")))??;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /internal/v1/local/tables/{table}/rows/{key}/{column}`: this replica's own copy of a
/// cell, without asking any other node: for operators and tests checking replication and repair.
pub async fn local_cell(
    State(node): State<Arc<Node>>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_secret(&node, &headers)?;
    // The rest of the path has the shape of the public cell path, and the same rules.
    let public = format!(
        "/v1{}",
        uri.path().strip_prefix(LOCAL_PREFIX).unwrap_or_default()
    );
    let parsed =
        DataPath::parse(&public).unwrap_or_else(|| Err(extract::route_not_found(uri.path())))?;
    let (Some(key), Some(column)) = (parsed.key, parsed.column) else {
        return Err(extract::route_not_found(uri.path()));
    };
    let table = super::data::table(&node, &parsed.table)?;
    let row = node.row_key(table.id, key);
    let cell =
        super::data::blocking(&node, "read", move |store| store.read_cell(&row, &column)).await?;
    let Some(cell) = cell else {
        return Err(ApiError::not_found("this replica holds no such cell"));
    };
    Ok(Json(serde_json::json!({
        "node": node.id(),
        "siblings": values::siblings_json(&cell, Encoding::Utf8),
        "context": tessera_version::encode_context(&cell.join()),
    }))
    .into_response())
}

/// `GET /internal/v1/stream` with `Upgrade: tessera-rpc/1`: turns this connection into an
/// internal RPC stream from the calling node.
pub async fn stream(
    State(node): State<Arc<Node>>,
    mut request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let headers = request.headers();
    check_secret(&node, headers)?;
    let offered = headers
        .get(header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if offered != STREAM_PROTOCOL {
        return Err(ApiError::bad_request(
            "invalid_upgrade",
            format!("this route upgrades to {STREAM_PROTOCOL}, not {offered:?}"),
        ));
    }
    let from = caller(headers);
    let on_upgrade = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_upgrade",
                "the internal stream needs an HTTP/1.1 connection upgrade",
            )
        })?;
    let Some(pass) = node.streams.enter() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "stopping",
            "this node is stopping",
        ));
    };
    let replica = node.cluster.replica.clone();
    let max = node.config.limits.max_internal_message_bytes;
    let local = node.id().to_owned();
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let io = hyper_util::rt::TokioIo::new(upgraded);
                crate::peer::stream::serve_stream(io, from, replica, max, pass).await;
            }
            Err(error) => {
                tracing::warn!(node = %local, peer = %from, %error, "internal stream upgrade failed")
            }
        }
    });
    Ok((
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::CONNECTION, "upgrade"),
            (header::UPGRADE, STREAM_PROTOCOL),
        ],
    )
        .into_response())
}

/// The calling node, as it names itself.
fn caller(headers: &HeaderMap) -> String {
    headers
        .get(FROM_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("unknown")
        .to_string()
}

pub async fn rpc(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_secret(&node, &headers)?;
    let from = caller(&headers);
    let bytes: Bytes = extract::read_body(
        body,
        &headers,
        node.config.limits.max_internal_message_bytes,
        "body_too_large",
        "the internal message",
        node.body_timeout(),
    )
    .await?;
    let request = decode_request(&bytes).map_err(|e| {
        ApiError::bad_request(
            "invalid_message",
            format!("cannot decode the request from {from}: {e}"),
        )
    })?;
    let response = node.cluster.replica.handle(&from, request).await;
    let encoded = encode_response(&response)
        .map_err(|e| ApiError::internal(format!("cannot encode the response: {e}")))?;
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        encoded,
    )
        .into_response())
}
