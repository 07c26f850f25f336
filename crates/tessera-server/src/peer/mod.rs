//! Talking to other nodes: the transports for internal RPCs and the shared-secret check.
//!
//! Two transports implement `tessera_cluster::Transport`, chosen by `cluster.transport`:
//! - `stream` (the default, [`StreamTransport`]): one persistent connection per peer, upgraded
//!   from HTTP/1.1 on the peer's own port to multiplexed binary frames ([`stream`], [`frame`]);
//! - `http` ([`HttpTransport`]): one `POST /internal/v1/rpc` per call over pooled keep-alive
//!   connections, with the same binary message bodies.
//!
//! Both carry the versioned postcard encoding of `tessera_cluster::messages`, and both require
//! the cluster secret. docs/performance.md measures one against the other.

pub mod directory;
pub mod frame;
pub mod secret;
pub mod stream;
pub mod stream_transport;
pub mod transport;

pub use directory::Directory;
pub use secret::ClusterSecret;
pub use stream::{StreamGate, STREAM_PATH};
pub use stream_transport::{StreamSettings, StreamTransport};
pub use transport::HttpTransport;

/// Path of the internal RPC route.
pub const RPC_PATH: &str = "/internal/v1/rpc";
/// Path of the internal schema listing (pulled by peers until schemas are gossiped).
pub const SCHEMA_PATH: &str = "/internal/v1/schema";
/// Header that carries the cluster secret.
pub const SECRET_HEADER: &str = "x-tessera-secret";
/// Header that names the calling node.
pub const FROM_HEADER: &str = "x-tessera-from";

/// What every call starts with: the peer's address, and the request's encoding.
fn addressed(
    peers: &Directory,
    to: &tessera_cluster::NodeId,
    request: &tessera_cluster::messages::Request,
) -> Result<(std::net::SocketAddr, Vec<u8>), tessera_cluster::TransportError> {
    let Some(addr) = peers.get(to) else {
        return Err(tessera_cluster::TransportError::Unreachable {
            reason: format!("no address known for node {to}"),
            node: to.clone(),
        });
    };
    let payload = tessera_cluster::messages::encode_request(request).map_err(|e| {
        tessera_cluster::TransportError::Protocol {
            node: to.clone(),
            reason: e.to_string(),
        }
    })?;
    Ok((addr, payload))
}
