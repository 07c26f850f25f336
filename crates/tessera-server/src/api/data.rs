//! What every data request does around its own work: find the table, check the consistency level
//! against the replicas that can be reached, and run storage calls off the async threads with a
//! deadline.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::json;
use tessera_cluster::{Liveness, NodeId};
use tessera_storage::{Cell, RowKey, StorageError};
use tessera_version::encode_context;

use super::error::ApiError;
use crate::consistency::ConsistencyLevel;
use crate::node::Node;
use crate::schema::TableSchema;
use crate::storage::Store;

/// Where and how a data request runs: its row, the key's replicas in preference order, and how
/// many of them must answer.
#[derive(Debug, Clone)]
pub struct Plan {
    pub row: RowKey,
    pub replicas: Vec<NodeId>,
    /// During a move, the other replica set writes must also reach W in.
    pub also: Vec<NodeId>,
    /// Nodes that may hold hints for down replicas (sloppy quorum).
    pub fallbacks: Vec<NodeId>,
    /// Only real replicas count towards the level (no hints), like Riak's pw/pr.
    pub strict: bool,
    pub required: u32,
    pub replication: u32,
}

impl Plan {
    /// The `X-Replicas: acked/required/N` header value.
    pub fn header(&self, acked: u32) -> HeaderValue {
        let text = format!("{acked}/{}/{}", self.required, self.replication);
        HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("0/0/0"))
    }

    /// True when this node holds a replica of the row (in either set during a move).
    pub fn is_local(&self, node: &Node) -> bool {
        self.replicas
            .iter()
            .chain(&self.also)
            .any(|r| r == node.id())
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

/// Resolves the level for this request, finds the key's replicas, and checks that enough of them
/// are alive: a level that cannot be met fails here, before anything is written, and is never
/// silently lowered.
pub fn plan(
    node: &Node,
    table: &TableSchema,
    key: Vec<u8>,
    level: Option<ConsistencyLevel>,
    access: Access,
    strict: bool,
) -> Result<Plan, ApiError> {
    let level = level.unwrap_or(match access {
        Access::Read => table.read,
        Access::Write => table.write,
    });
    let required = level.required(table.replication)?;
    let row = node.row_key(table.id, key);
    let placement = node
        .cluster
        .topology
        .placement(row.partition, table.replication);
    if placement.epoch == 0 {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_joined",
            format!(
                "{} has not joined a cluster yet: it knows no layout (it learns one by gossip from its seeds)",
                node.id()
            ),
        ));
    }
    let membership = node.cluster.gossip.as_ref();
    let liveness = Liveness::of(
        &node.id().to_owned(),
        &placement.replicas,
        &placement.fallbacks,
        membership,
    );
    let checked = match access {
        Access::Read => tessera_cluster::Access::Read,
        Access::Write => tessera_cluster::Access::Write { strict },
    };
    if liveness.check(required, checked).is_err() {
        let alive = liveness.reachable(checked);
        let replicas = &placement.replicas;
        let members = node.cluster.ring().map_or(0, |r| r.node_count());
        let why = if (replicas.len() as u32) < table.replication {
            format!(
                "the table wants {} replicas but the cluster has {members} node{}",
                table.replication,
                if members == 1 { "" } else { "s" }
            )
        } else {
            let down = liveness.down.len();
            format!(
                "{down} of its replicas {} down",
                if down == 1 { "is" } else { "are" }
            )
        };
        let states: Vec<_> = replicas
            .iter()
            .map(|r| json!({ "node": r, "state": if liveness.down.contains(r) { "down" } else { "alive" } }))
            .collect();
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!(
                "consistency {level} needs {required} of {n} replicas, but only {alive} can be reached: {why}",
                n = table.replication
            ),
        )
        .with("level", level.to_string())
        .with("required", required)
        .with("acked", 0)
        .with("replication", table.replication)
        .with("replicas", json!(states)));
    }
    // During a move, writes need W in the other replica set too (real replicas only).
    if matches!(access, Access::Write) && !placement.also.is_empty() {
        let also = Liveness::of(&node.id().to_owned(), &placement.also, &[], membership);
        if let Err(failure) = also.check(required, tessera_cluster::Access::Write { strict: true })
        {
            return Err(ApiError::quorum(
                "unavailable",
                format!(
                    "consistency {level} needs {required} of the {} replicas data is moving to or from, but only {} can be reached",
                    placement.also.len(),
                    also.alive.len()
                ),
                &failure,
            )
            .with("level", level.to_string()));
        }
    }
    let replicas = placement.replicas;
    let also = placement.also;
    let fallbacks = placement.fallbacks;
    Ok(Plan {
        row,
        replicas,
        also,
        fallbacks,
        strict,
        required,
        replication: table.replication,
    })
}

/// The `strict` query parameter: `true` or `false` (the default).
pub fn parse_strict(text: Option<&str>) -> Result<bool, ApiError> {
    match text {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ApiError::invalid_parameter(
            "strict",
            format!("strict must be true or false, got {other:?}"),
        )),
    }
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
