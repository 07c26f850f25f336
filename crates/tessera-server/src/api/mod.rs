//! The HTTP API of a node (DESIGN.md section 4, docs/api.md): routes, extractors and error mapping.

mod cells;
mod cluster;
mod data;
pub mod error;
mod extract;
mod internal;
mod node;
mod ops;
mod repair;
mod rows;
mod tables;
mod transfers;
mod values;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, patch, post};
use axum::Router;

use crate::node::Node;

/// Every route of the client and operations API, with metrics on each.
pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/v1/tables", get(tables::list_tables))
        .route(
            "/v1/tables/{table}",
            get(tables::show_table).put(tables::create_table),
        )
        .route(
            "/v1/tables/{table}/rows/{key}",
            get(rows::get_row)
                .post(rows::post_row)
                .delete(rows::delete_row),
        )
        .route(
            "/v1/tables/{table}/rows/{key}/{column}",
            get(cells::get_cell)
                .put(cells::put_cell)
                .delete(cells::delete_cell),
        )
        .route(crate::peer::RPC_PATH, post(internal::rpc))
        .route(crate::peer::STREAM_PATH, get(internal::stream))
        .route(
            crate::peer::SCHEMA_PATH,
            get(internal::schema).put(internal::take_table),
        )
        .route(
            "/internal/v1/local/tables/{table}/rows/{key}/{column}",
            get(internal::local_cell),
        )
        .route("/v1/node/workers", get(node::workers))
        .route("/v1/node/repair", get(repair::status).post(repair::now))
        .route("/v1/node/workers/{name}", patch(node::configure))
        .route("/v1/node/workers/{name}/pause", post(node::pause))
        .route("/v1/node/workers/{name}/resume", post(node::resume))
        .route("/v1/cluster", get(cluster::members))
        .route("/v1/cluster/ring", get(cluster::ring))
        .route("/v1/cluster/transfers", get(transfers::list))
        .route("/internal/v1/transfers", post(transfers::pull))
        .route("/v1/cluster/plan", get(cluster::staged).post(cluster::plan))
        .route("/v1/cluster/commit", post(cluster::commit))
        .route("/v1/cluster/abort", post(cluster::abort))
        .route("/v1/cluster/locate", get(cluster::locate))
        .route("/health", get(ops::health))
        .route("/metrics", get(ops::metrics))
        .method_not_allowed_fallback(ops::method_not_allowed)
        .route_layer(middleware::from_fn_with_state(node.clone(), track))
        .fallback(ops::fallback)
        // Bodies are limited per route by our own checks (413 with a JSON body).
        .layer(DefaultBodyLimit::disable())
        .with_state(node)
}

/// Counts and times every routed request, labelled by its route template (not the raw path, so
/// that keys do not explode the label space).
async fn track(State(node): State<Arc<Node>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    node.metrics.observe_request(
        method.as_str(),
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
