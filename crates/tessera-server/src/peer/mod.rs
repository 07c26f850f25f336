//! Talking to other nodes: the HTTP transport for internal RPCs and the shared-secret check.
//!
//! Internal requests are `POST /internal/v1/rpc` with a binary body (the versioned postcard
//! encoding of `tessera_cluster::messages`). HTTP/1.1 with keep-alive gives us pooled,
//! persistent connections, back-pressure and deadlines from well-tested code; the framing costs a
//! few hundred bytes of headers per call, which the benchmark in docs/performance.md weighs.

pub mod secret;
pub mod transport;

pub use secret::ClusterSecret;
pub use transport::HttpTransport;

/// Path of the internal RPC route.
pub const RPC_PATH: &str = "/internal/v1/rpc";
/// Path of the internal schema listing (pulled by peers until schemas are gossiped).
pub const SCHEMA_PATH: &str = "/internal/v1/schema";
/// Header that carries the cluster secret.
pub const SECRET_HEADER: &str = "x-tessera-secret";
/// Header that names the calling node.
pub const FROM_HEADER: &str = "x-tessera-from";
