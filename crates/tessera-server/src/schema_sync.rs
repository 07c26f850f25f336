//! Spreads table schemas between nodes until membership gossip carries them.
//!
//! - The node that creates a table pushes it to every peer before answering, so the table is
//!   usable through any node as soon as the create returns (peers that are down miss it).
//! - Every node also pulls its peers' schemas once a second and takes the tables it lacks, which
//!   heals a node that was down or unreachable when a table was created.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::node::Node;
use crate::peer::{FROM_HEADER, SCHEMA_PATH, SECRET_HEADER};
use crate::schema::TableSchema;

/// How often each peer is asked.
pub const SCHEMA_SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// How long a create waits for each peer to take the new table.
const PUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// Sends a new table to every peer, concurrently; returns the peers that did not take it.
pub async fn push(node: &Arc<Node>, table: &TableSchema) -> Vec<String> {
    let client = match internal_client(node) {
        Ok(client) => client,
        Err(err) => {
            tracing::warn!(%err, "cannot push a new table to peers");
            return Vec::new();
        }
    };
    let sends: Vec<_> = peers(node)
        .into_iter()
        .map(|peer| {
            let request = client
                .put(format!("http://{}{SCHEMA_PATH}", peer.addr))
                .header(SECRET_HEADER, node.cluster.secret.as_str())
                .header(FROM_HEADER, node.id())
                .timeout(PUSH_TIMEOUT)
                .json(table)
                .send();
            tokio::spawn(async move {
                match request.await {
                    Ok(response) if response.status().is_success() => None,
                    Ok(response) => Some(format!("{}: HTTP {}", peer.id, response.status())),
                    Err(err) => Some(format!("{}: {err}", peer.id)),
                }
            })
        })
        .collect();
    let mut missed = Vec::new();
    for send in sends {
        if let Ok(Some(failure)) = send.await {
            missed.push(failure);
        }
    }
    if !missed.is_empty() {
        tracing::info!(table = %table.name, missed = ?missed, "some peers will learn the new table by pulling");
    }
    missed
}

/// Runs until `shutdown` turns true.
pub async fn run(node: Arc<Node>, mut shutdown: watch::Receiver<bool>) {
    let peers = peers(&node);
    if peers.is_empty() {
        return;
    }
    let client = match internal_client(&node) {
        Ok(client) => client,
        Err(err) => {
            tracing::error!(%err, "schema sync cannot start");
            return;
        }
    };
    let mut ticker = tokio::time::interval(SCHEMA_SYNC_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        for peer in &peers {
            let url = format!("http://{}{SCHEMA_PATH}", peer.addr);
            let response = client
                .get(url)
                .header(SECRET_HEADER, node.cluster.secret.as_str())
                .header(FROM_HEADER, node.id())
                .send()
                .await;
            let tables = match response {
                Ok(response) if response.status().is_success() => {
                    response.json::<Vec<TableSchema>>().await
                }
                Ok(response) => {
                    tracing::debug!(peer = %peer.id, status = %response.status(), "schema pull refused");
                    continue;
                }
                Err(err) => {
                    tracing::trace!(peer = %peer.id, %err, "schema pull failed");
                    continue;
                }
            };
            let Ok(tables) = tables else {
                tracing::warn!(peer = %peer.id, "peer sent a schema list that does not parse");
                continue;
            };
            for table in tables
                .into_iter()
                .filter(|t| node.schema.get(&t.name).is_none())
            {
                let node = node.clone();
                let applied =
                    tokio::task::spawn_blocking(move || node.schema.apply(&node.store, &table))
                        .await;
                if let Ok(Err(err)) = applied {
                    tracing::warn!(peer = %peer.id, %err, "cannot take a table from a peer");
                }
            }
        }
    }
}

fn peers(node: &Node) -> Vec<crate::config::Member> {
    node.cluster
        .members
        .iter()
        .filter(|m| m.id != node.id())
        .cloned()
        .collect()
}

/// A client whose sockets leave from this node's address, like every internal connection.
fn internal_client(node: &Node) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .local_address(crate::cluster::source_ip(node.config.node.listen.ip()))
        .build()
}
