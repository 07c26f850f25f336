//! The network implementation of `tessera_cluster::Transport`: HTTP/1.1 over pooled keep-alive
//! connections, each bound to this node's own IP as its source address.
//!
//! Binding the source matters for more than tidiness: the local cluster and the chaos tests put
//! each node on its own loopback address and partition them with iptables rules keyed on source
//! and destination. A socket that let the kernel pick its source would leave from 127.0.0.1 and
//! slip through every partition.

use std::net::IpAddr;
use std::time::Duration;

use tessera_cluster::messages::{decode_response, Request, Response};
use tessera_cluster::{BoxFuture, NodeId, Transport, TransportError};

use super::{addressed, ClusterSecret, Directory, FROM_HEADER, RPC_PATH, SECRET_HEADER};

/// Sends internal requests to peers by node id.
pub struct HttpTransport {
    client: reqwest::Client,
    local: NodeId,
    secret: ClusterSecret,
    peers: Directory,
}

impl HttpTransport {
    /// A transport for node `local`, whose sockets leave from `source`.
    pub fn new(
        local: NodeId,
        source: Option<IpAddr>,
        secret: ClusterSecret,
        peers: Directory,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .local_address(source)
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(1))
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .http1_only()
            .no_proxy()
            .build()?;
        Ok(Self {
            client,
            local,
            secret,
            peers,
        })
    }
}

impl Transport for HttpTransport {
    fn call(
        &self,
        to: &NodeId,
        request: Request,
    ) -> BoxFuture<'static, Result<Response, TransportError>> {
        let node = to.clone();
        let (addr, body) = match addressed(&self.peers, to, &request) {
            Ok(addressed) => addressed,
            Err(error) => return Box::pin(async move { Err(error) }),
        };
        let call = self
            .client
            .post(format!("http://{addr}{RPC_PATH}"))
            .header(SECRET_HEADER, self.secret.as_str())
            .header(FROM_HEADER, self.local.as_str())
            .header("content-type", "application/octet-stream")
            .body(body)
            .send();
        Box::pin(async move {
            // Only a failed connect is certain not to have reached the peer.
            let response = call.await.map_err(|e| {
                if e.is_connect() {
                    TransportError::Unreachable {
                        node: node.clone(),
                        reason: error_chain(&e),
                    }
                } else {
                    TransportError::Lost {
                        node: node.clone(),
                        reason: error_chain(&e),
                    }
                }
            })?;
            let status = response.status();
            let bytes = response.bytes().await.map_err(|e| TransportError::Lost {
                node: node.clone(),
                reason: error_chain(&e),
            })?;
            if !status.is_success() {
                return Err(TransportError::Remote {
                    message: format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes)),
                    node,
                });
            }
            decode_response(&bytes).map_err(|e| TransportError::Protocol {
                node,
                reason: e.to_string(),
            })
        })
    }
}

/// reqwest's top-level error says little ("error sending request"); the cause chain says why.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
