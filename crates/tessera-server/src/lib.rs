//! The Tessera node: configuration, storage assembly, the HTTP API, and the node's background
//! workers.
//!
//! [`serve`] opens a node from a [`Config`], binds its address, starts its workers, serves the API
//! until the shutdown future completes, then stops in order: requests, internal streams, the
//! background tasks of the coordinator, the workers, and finally RocksDB.
//!
//! Module map, from the outside in:
//! - [`config`]: the settings, from embedded defaults, a file, the environment and flags;
//! - `api`: the HTTP routes (client, operations, internal), their extractors and error mapping;
//! - `node`: the [`Node`] every handler and worker shares, assembled from the pieces below;
//! - `storage` and `identity`: the RocksDB engine, the cell and hint stores over it, and whose
//!   data dir it is;
//! - `schema`: tables, persisted in `meta`; `schema_sync` pushes new ones to peers;
//! - `cluster`: what a node knows of the others (the topology, the coordinator and replica, hint
//!   delivery); `hint_routes` tells hint delivery where hints for a node that left go;
//! - `layout`: the committed layout of each epoch, plans and commits, and the `rebalance` worker
//!   that moves the node through a layout change (`roster` only migrates older data dirs);
//! - `gossip`: the membership worker (SWIM over UDP) and the worker that applies what it learns;
//! - `peer`: the internal transports (a multiplexed stream, or HTTP) and the peer directory;
//! - `consistency`: levels (`one`, `quorum`, ...) resolved against a table's N;
//! - `metrics`: the Prometheus registry behind `/metrics`.

pub mod config;

mod api;
mod cluster;
mod consistency;
mod gossip;
mod hint_routes;
mod identity;
mod layout;
mod metrics;
mod node;
mod peer;
mod roster;
mod schema;
mod schema_sync;
mod storage;

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use std::time::Duration;

use axum::serve::ListenerExt as _;
use tessera_storage::Engine as _;

pub use config::{Config, ConfigError};
pub use node::{Node, NodeError};

/// Why a node stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("closing storage failed: {0}")]
    Close(#[from] tessera_storage::StorageError),
}

/// How long a stopping node lets internal streams finish the requests they already took.
const STREAM_GRACE: Duration = Duration::from_secs(5);
/// How long a stopping node waits for replication stragglers and read repairs...
const BACKGROUND_DRAIN: Duration = Duration::from_secs(2);
/// ...and then for the stragglers to store their hints.
const BACKGROUND_GRACE: Duration = Duration::from_secs(2);
/// How long each group of workers has to stop.
const WORKER_DEADLINE: Duration = Duration::from_secs(5);

/// Starts the node's service workers (its storage workers started with it): membership over
/// `udp`, what membership learns, schema pushes and hint delivery.
fn start_workers(node: &Arc<Node>, udp: tokio::net::UdpSocket) -> Result<(), NodeError> {
    let workers = &node.workers;
    node.cluster
        .handoff
        .set_routes(Arc::new(hint_routes::NodeHintRoutes::new(node)));
    workers.spawn(gossip::runtime::MembershipWorker::new(node.clone(), udp))?;
    if let Some(applier) = gossip::events::EventApplier::new(node.clone()) {
        workers.spawn(applier)?;
    }
    if let Some(pusher) = schema_sync::SchemaPusher::new(node.clone()) {
        workers.spawn(pusher)?;
    }
    workers.spawn(layout::worker::RebalanceWorker::new(node.clone()))?;
    // The transfers' unit is bytes, so their rate is the rebalancing throttle.
    let rate = u64::from(node.config.rebalance.max_mb_per_s) << 20;
    workers.spawn_with(
        node.cluster.transfers.worker()?,
        tessera_worker::WorkerOptions {
            max_rate: (rate > 0).then_some(rate),
            ..tessera_worker::WorkerOptions::default()
        },
    )?;
    start_antientropy(node)?;
    let delivery_rate = u64::from(node.config.hints.delivery_per_second);
    workers.spawn_with(
        tessera_cluster::HintDeliveryWorker(node.cluster.handoff.clone()),
        tessera_worker::WorkerOptions {
            max_rate: (delivery_rate > 0).then_some(delivery_rate),
            ..tessera_worker::WorkerOptions::default()
        },
    )?;
    Ok(())
}

/// Sets up the node's anti-entropy and, when `anti_entropy.enabled`, starts its worker, throttled
/// to `anti_entropy.max_keys_per_s` (its unit is keys). The API shows its status either way.
fn start_antientropy(node: &Arc<Node>) -> Result<(), NodeError> {
    let settings = &node.config.anti_entropy;
    let weak = Arc::downgrade(node);
    let tables: tessera_cluster::PartitionTables = Arc::new(move || {
        weak.upgrade()
            .map(|node| {
                node.schema
                    .list()
                    .iter()
                    .map(|table| (table.id, table.replication))
                    .collect()
            })
            .unwrap_or_default()
    });
    // Repairs merge where the node's other writes run (see `cluster`).
    let storage = if node.config.storage.sync_writes {
        tessera_cluster::StorageRunner::PointReadsInline
    } else {
        tessera_cluster::StorageRunner::Blocking
    };
    let antientropy = tessera_cluster::AntiEntropy::new(
        node.id(),
        node.cluster.writer.clone(),
        node.cluster.transport.clone(),
        node.cluster.gossip.clone(),
        node.cluster.topology.clone(),
        tables,
        tessera_cluster::AntiEntropyConfig {
            sweep_interval: Duration::from_secs(settings.sweep_interval_secs),
            verify_interval: Duration::from_secs(settings.verify_interval_secs),
            storage,
            ..tessera_cluster::AntiEntropyConfig::default()
        },
    );
    let _ = node.antientropy.set(antientropy.clone());
    if settings.enabled {
        let rate = settings.max_keys_per_s;
        node.workers.spawn_with(
            tessera_cluster::AntiEntropyWorker(antientropy),
            tessera_worker::WorkerOptions {
                max_rate: (rate > 0).then_some(rate),
                ..tessera_worker::WorkerOptions::default()
            },
        )?;
    }
    Ok(())
}

/// Runs a node until `shutdown` completes.
///
/// Once listening, it prints `tessera listening on http://ADDR` on stdout (tests and scripts wait
/// for that line; with port 0 it tells which port was picked).
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = config.node.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let local = listener.local_addr()?;
    // Membership listens on UDP at the same address and port (port 0 resolves to the TCP one).
    let udp = std::net::UdpSocket::bind(local)
        .and_then(|socket| {
            socket.set_nonblocking(true)?;
            tokio::net::UdpSocket::from_std(socket)
        })
        .map_err(|source| ServeError::Bind {
            addr: local,
            source,
        })?;
    let mut config = config;
    config.node.listen = local;
    let node = Arc::new(tokio::task::block_in_place(|| Node::open(config))?);
    tracing::info!(node = node.id(), addr = %local, "serving HTTP and membership (UDP)");
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "tessera listening on http://{local}")?;
        stdout.flush()?;
    }
    start_workers(&node, udp)?;
    // Internal streams interleave small frames in both directions: Nagle's algorithm would hold
    // each answer back until the previous one is acknowledged.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, api::router(node.clone()))
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!(
        node = node.id(),
        "stopped serving; stopping background tasks"
    );
    if !node.streams.close(STREAM_GRACE).await {
        tracing::warn!(
            node = node.id(),
            "internal streams still busy after the grace period"
        );
    }
    // Replication stragglers and read repairs first: those still running at the deadline keep
    // their copies as hints, which needs the storage workers still running.
    node.cluster
        .coordinator
        .background()
        .drain(BACKGROUND_DRAIN, BACKGROUND_GRACE)
        .await;
    let stopped = node.workers.shutdown(WORKER_DEADLINE).await;
    if !stopped.aborted.is_empty() {
        tracing::warn!(node = node.id(), aborted = ?stopped.aborted, "workers did not stop in time");
    }
    tracing::info!(node = node.id(), "closing storage");
    node.store.engine().flush()?;
    Ok(())
}
