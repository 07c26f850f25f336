//! Turns an [`Op`] into the HTTP request of the system under test: Tessera's cell API, etcd's
//! JSON gateway, or etcd's native gRPC (so that all three can be driven by the same workers, keys,
//! values and seed), and says which transport each protocol needs.

use bytes::Bytes;
use clap::ValueEnum;

use super::etcd::{self, EtcdBodies};
use super::etcd_grpc::{self, GrpcBodies};
use super::target::{Target, Transport};
use super::workload::{Op, Paths};

/// The API the targets speak.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    // Not `k{n}` in these docs: they are the `--help` text, and clap prints `{n}` as a line break.
    /// Tessera's HTTP API: `GET`/`PUT /v1/tables/T/rows/kN/COLUMN`.
    #[default]
    Tessera,
    /// etcd 3.4's grpc-gateway: `POST /v3/kv/range` and `POST /v3/kv/put` with JSON bodies.
    Etcd,
    /// etcd's native gRPC over HTTP/2: `/etcdserverpb.KV/Range` and `/etcdserverpb.KV/Put`.
    EtcdGrpc,
}

impl Protocol {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tessera => "tessera",
            Protocol::Etcd => "etcd",
            Protocol::EtcdGrpc => "etcd-grpc",
        }
    }

    /// Whether the targets are etcd (no tables, no consistency levels).
    pub fn is_etcd(self) -> bool {
        matches!(self, Protocol::Etcd | Protocol::EtcdGrpc)
    }

    /// The HTTP version its connections speak.
    pub fn transport(self) -> Transport {
        match self {
            Protocol::Tessera | Protocol::Etcd => Transport::Http1,
            Protocol::EtcdGrpc => Transport::Http2,
        }
    }
}

/// Builds every request of a run.
#[derive(Clone, Debug)]
pub enum Requests {
    /// Tessera: paths of the table and column; writes send the value as the body.
    Tessera {
        /// Cell paths.
        paths: Paths,
        /// The value every write sends (shared, so a write copies no bytes).
        value: Bytes,
    },
    /// etcd's gateway: JSON bodies.
    Etcd(EtcdBodies),
    /// etcd's gRPC: framed protobuf bodies.
    EtcdGrpc(GrpcBodies),
}

/// One request, ready for its connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wire {
    /// A whole HTTP/1.1 request, head and body, as it goes on the socket.
    Http1(Vec<u8>),
    /// A unary gRPC call: the method's path and the framed message.
    Grpc {
        /// `/etcdserverpb.KV/Put` or `/etcdserverpb.KV/Range`.
        path: &'static str,
        /// The length-prefixed protobuf message.
        body: Bytes,
    },
}

/// An HTTP/1.1 request's bytes. `path` must be a valid request target (the paths built here are:
/// percent-encoded by `Paths`, or constants).
pub fn http1_request(
    method: &str,
    path: &str,
    host: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Vec<u8> {
    use std::io::Write as _;
    let mut out = Vec::with_capacity(96 + path.len() + host.len() + body.len());
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{method} {path} HTTP/1.1\r\nhost: {host}\r\n");
    if let Some(content_type) = content_type {
        let _ = write!(out, "content-type: {content_type}\r\n");
    }
    if !body.is_empty() || method != "GET" {
        let _ = write!(out, "content-length: {}\r\n", body.len());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

impl Requests {
    /// The protocol these requests speak.
    pub fn protocol(&self) -> Protocol {
        match self {
            Requests::Tessera { .. } => Protocol::Tessera,
            Requests::Etcd(_) => Protocol::Etcd,
            Requests::EtcdGrpc(_) => Protocol::EtcdGrpc,
        }
    }

    /// The request for `op`, to `target`.
    pub fn build(&self, op: Op, target: &Target) -> Wire {
        let host = &target.authority;
        match self {
            Requests::Tessera { paths, value } => match op {
                Op::Read(key) => {
                    Wire::Http1(http1_request("GET", &paths.cell(key), host, None, b""))
                }
                Op::Write(key) => {
                    Wire::Http1(http1_request("PUT", &paths.cell(key), host, None, value))
                }
            },
            Requests::Etcd(bodies) => {
                let (path, body) = match op {
                    Op::Read(key) => (etcd::RANGE_PATH, bodies.range(key)),
                    Op::Write(key) => (etcd::PUT_PATH, bodies.put(key)),
                };
                Wire::Http1(http1_request(
                    "POST",
                    path,
                    host,
                    Some("application/json"),
                    body.as_bytes(),
                ))
            }
            Requests::EtcdGrpc(bodies) => match op {
                Op::Read(key) => Wire::Grpc {
                    path: etcd_grpc::RANGE_PATH,
                    body: bodies.range(key),
                },
                Op::Write(key) => Wire::Grpc {
                    path: etcd_grpc::PUT_PATH,
                    body: bodies.put(key),
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn target(url: &str) -> Target {
        Target::resolve(url).await.unwrap()
    }

    fn http1(wire: Wire) -> String {
        match wire {
            Wire::Http1(bytes) => String::from_utf8(bytes).unwrap(),
            other => panic!("not HTTP/1.1: {other:?}"),
        }
    }

    #[tokio::test]
    async fn etcd_requests_are_json_posts() {
        let host = target("http://127.0.0.31:2379").await;
        let requests = Requests::Etcd(EtcdBodies::new(b"v"));
        assert_eq!(requests.protocol().transport(), Transport::Http1);
        assert_eq!(
            http1(requests.build(Op::Write(3), &host)),
            "POST /v3/kv/put HTTP/1.1\r\nhost: 127.0.0.31:2379\r\n\
             content-type: application/json\r\ncontent-length: 29\r\n\r\n\
             {\"key\":\"azM=\",\"value\":\"dg==\"}"
        );
        assert_eq!(
            http1(requests.build(Op::Read(3), &host)),
            "POST /v3/kv/range HTTP/1.1\r\nhost: 127.0.0.31:2379\r\n\
             content-type: application/json\r\ncontent-length: 14\r\n\r\n{\"key\":\"azM=\"}"
        );
    }

    #[tokio::test]
    async fn etcd_grpc_requests_are_framed_messages() {
        let host = target("http://127.0.0.31:2379").await;
        let requests = Requests::EtcdGrpc(GrpcBodies::new(b"v").unwrap());
        assert_eq!(requests.protocol().transport(), Transport::Http2);
        assert_eq!(
            requests.build(Op::Write(3), &host),
            Wire::Grpc {
                path: "/etcdserverpb.KV/Put",
                body: Bytes::from_static(&[0, 0, 0, 0, 7, 0x0a, 2, b'k', b'3', 0x12, 1, b'v']),
            }
        );
        assert_eq!(
            requests.build(Op::Read(3), &host),
            Wire::Grpc {
                path: "/etcdserverpb.KV/Range",
                body: Bytes::from_static(&[0, 0, 0, 0, 4, 0x0a, 2, b'k', b'3']),
            }
        );
    }

    #[tokio::test]
    async fn tessera_requests_use_the_cell_api() {
        let host = target("http://127.0.0.11:7000").await;
        let requests = Requests::Tessera {
            paths: Paths::new("bench", "v", Some("one")).unwrap(),
            value: Bytes::from_static(b"xyz"),
        };
        assert_eq!(
            http1(requests.build(Op::Write(9), &host)),
            "PUT /v1/tables/bench/rows/k9/v?consistency=one HTTP/1.1\r\n\
             host: 127.0.0.11:7000\r\ncontent-length: 3\r\n\r\nxyz"
        );
        assert_eq!(
            http1(requests.build(Op::Read(9), &host)),
            "GET /v1/tables/bench/rows/k9/v?consistency=one HTTP/1.1\r\n\
             host: 127.0.0.11:7000\r\n\r\n"
        );
    }
}
