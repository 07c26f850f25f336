//! Pushes a new table to every peer before its create answers, so that the table is usable
//! through any node as soon as the create returns. Peers that are down or slow miss the push and
//! learn the table by membership gossip instead (the `table:<name>` metadata every node
//! publishes, see `crate::gossip::metadata`), within seconds of being reachable again.

use std::sync::Arc;
use std::time::Duration;

use crate::node::Node;
use crate::peer::{FROM_HEADER, SCHEMA_PATH, SECRET_HEADER};
use crate::schema::TableSchema;

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
    let sends: Vec<_> = node
        .cluster
        .peers(node.id())
        .into_iter()
        .map(|(peer, addr)| {
            let request = client
                .put(format!("http://{addr}{SCHEMA_PATH}"))
                .header(SECRET_HEADER, node.cluster.secret.as_str())
                .header(FROM_HEADER, node.id())
                .timeout(PUSH_TIMEOUT)
                .json(table)
                .send();
            tokio::spawn(async move {
                match request.await {
                    Ok(response) if response.status().is_success() => None,
                    Ok(response) => Some(format!("{peer}: HTTP {}", response.status())),
                    Err(err) => Some(format!("{peer}: {err}")),
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
        tracing::info!(table = %table.name, missed = ?missed, "some peers will learn the new table by gossip");
    }
    missed
}

/// A client whose sockets leave from this node's address, like every internal connection.
fn internal_client(node: &Node) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .local_address(crate::cluster::source_ip(node.config.node.listen.ip()))
        .build()
}
