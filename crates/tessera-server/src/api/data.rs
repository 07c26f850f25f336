//! What every data request does around its own work: find the table, check the consistency level
//! against the replicas that can be reached, and run storage calls off the async threads with a
//! deadline.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::json;
use tessera_storage::{Cell, StorageError};
use tessera_version::encode_context;

use super::error::ApiError;
use crate::consistency::ConsistencyLevel;
use crate::node::{Node, Store};
use crate::schema::TableSchema;

/// How many replicas a request needs, out of how many the table has.
#[derive(Debug, Clone, Copy)]
pub struct Quorum {
    pub required: u32,
    pub replication: u32,
}

impl Quorum {
    /// The `X-Replicas: acked/required/N` header value.
    pub fn header(&self, acked: u32) -> HeaderValue {
        let text = format!("{acked}/{}/{}", self.required, self.replication);
        HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("0/0/0"))
    }
}

#[derive(Clone, Copy)]
pub enum Access {
    Read,
    Write,
}

pub fn table(node: &Node, name: &str) -> Result<Arc<TableSchema>, ApiError> {
    node.schema
        .get(name)
        .ok_or_else(|| ApiError::table_not_found(name))
}

/// Resolves the level for this request and checks that enough replicas can be reached.
///
/// A single node holds one replica of everything, so any level that needs more fails here, before
/// anything is written: the level is never silently lowered.
pub fn quorum(
    node: &Node,
    table: &TableSchema,
    level: Option<ConsistencyLevel>,
    access: Access,
) -> Result<Quorum, ApiError> {
    let level = level.unwrap_or(match access {
        Access::Read => table.read,
        Access::Write => table.write,
    });
    let required = level.required(table.replication)?;
    let reachable = 1;
    if required > reachable {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!(
                "consistency {level} needs {required} of {n} replicas, but only {reachable} can be reached: this cluster has 1 node",
                n = table.replication
            ),
        )
        .with("level", level.to_string())
        .with("required", required)
        .with("acked", 0)
        .with("replication", table.replication)
        .with("replicas", json!([{ "node": node.id(), "state": "alive" }])));
    }
    Ok(Quorum {
        required,
        replication: table.replication,
    })
}

/// Runs a blocking storage call on the blocking pool, within the node's request deadline.
pub async fn blocking<T, F>(node: &Arc<Node>, what: &'static str, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Store) -> Result<T, StorageError> + Send + 'static,
{
    let store = node.store.clone();
    let task = tokio::task::spawn_blocking(move || work(&store));
    match tokio::time::timeout(node.request_timeout(), task).await {
        Ok(Ok(result)) => result.map_err(ApiError::from),
        Ok(Err(join)) => Err(ApiError::internal(format!("{what} failed: {join}"))),
        Err(_) => Err(ApiError::timeout(what, node.config.requests.timeout_ms)),
    }
}

/// Headers that describe a cell: its context and how many versions it has.
pub fn cell_headers(headers: &mut HeaderMap, cell: &Cell) {
    if let Ok(value) = HeaderValue::from_str(&encode_context(&cell.join())) {
        headers.insert("x-causal-context", value);
    }
    headers.insert("x-siblings", HeaderValue::from(cell.sibling_count()));
}

/// Counts sibling growth, and warns about cells that are accumulating versions.
pub fn observe_siblings(node: &Node, table: &str, column: &[u8], cell: &Cell) {
    let siblings = cell.sibling_count();
    node.metrics.cell_siblings.observe(siblings as f64);
    if siblings >= node.config.limits.sibling_warning {
        node.metrics.sibling_warnings.inc();
        tracing::warn!(
            node = node.id(),
            table,
            column = %String::from_utf8_lossy(column),
            siblings,
            "cell has many siblings: clients should read and write back with the context"
        );
    }
}
