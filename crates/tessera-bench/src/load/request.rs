//! Turns an [`Op`] into the HTTP request of the system under test: Tessera's cell API, etcd's
//! JSON gateway, or etcd's native gRPC (so that all three can be driven by the same workers, keys,
//! values and seed), and says which transport each protocol needs.

use bytes::Bytes;
use clap::ValueEnum;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST, TE};
use hyper::{Method, Request};

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

static JSON: HeaderValue = HeaderValue::from_static("application/json");
static GRPC: HeaderValue = HeaderValue::from_static(etcd_grpc::CONTENT_TYPE);
static TRAILERS: HeaderValue = HeaderValue::from_static("trailers");

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
    pub fn build(
        &self,
        op: Op,
        target: &Target,
    ) -> Result<Request<Full<Bytes>>, hyper::http::Error> {
        let host = &target.host;
        match self {
            Requests::Tessera { paths, value } => {
                let (method, key, body) = match op {
                    Op::Read(key) => (Method::GET, key, Bytes::new()),
                    Op::Write(key) => (Method::PUT, key, value.clone()),
                };
                Request::builder()
                    .method(method)
                    .uri(paths.cell(key))
                    .header(HOST, host.clone())
                    .body(Full::new(body))
            }
            Requests::Etcd(bodies) => {
                let (path, body) = match op {
                    Op::Read(key) => (etcd::RANGE_PATH, bodies.range(key)),
                    Op::Write(key) => (etcd::PUT_PATH, bodies.put(key)),
                };
                Request::builder()
                    .method(Method::POST)
                    .uri(path)
                    .header(HOST, host.clone())
                    .header(CONTENT_TYPE, JSON.clone())
                    .body(Full::new(Bytes::from(body)))
            }
            Requests::EtcdGrpc(bodies) => {
                let (path, body) = match op {
                    Op::Read(key) => (etcd_grpc::RANGE_PATH, bodies.range(key)),
                    Op::Write(key) => (etcd_grpc::PUT_PATH, bodies.put(key)),
                };
                // HTTP/2 carries the host in `:authority`, from the absolute URI; `te: trailers`
                // is what gRPC requires of a client, to say it reads the status in the trailers.
                Request::builder()
                    .method(Method::POST)
                    .uri(target.absolute(path)?)
                    .header(CONTENT_TYPE, GRPC.clone())
                    .header(TE, TRAILERS.clone())
                    .body(Full::new(body))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body(request: Request<Full<Bytes>>) -> Bytes {
        request.into_body().collect().await.unwrap().to_bytes()
    }

    async fn target(url: &str) -> Target {
        Target::resolve(url).await.unwrap()
    }

    #[tokio::test]
    async fn etcd_requests_are_json_posts() {
        let host = target("http://127.0.0.31:2379").await;
        let requests = Requests::Etcd(EtcdBodies::new(b"v"));
        let put = requests.build(Op::Write(3), &host).unwrap();
        assert_eq!(put.method(), Method::POST);
        assert_eq!(put.uri(), "/v3/kv/put");
        assert_eq!(put.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(put.headers()[HOST], "127.0.0.31:2379");
        assert_eq!(body(put).await, r#"{"key":"azM=","value":"dg=="}"#);
        let range = requests.build(Op::Read(3), &host).unwrap();
        assert_eq!(range.method(), Method::POST);
        assert_eq!(range.uri(), "/v3/kv/range");
        assert_eq!(body(range).await, r#"{"key":"azM="}"#);
    }

    #[tokio::test]
    async fn etcd_grpc_requests_are_absolute_grpc_posts() {
        let host = target("http://127.0.0.31:2379").await;
        let requests = Requests::EtcdGrpc(GrpcBodies::new(b"v").unwrap());
        assert_eq!(requests.protocol().transport(), Transport::Http2);
        let put = requests.build(Op::Write(3), &host).unwrap();
        assert_eq!(put.method(), Method::POST);
        assert_eq!(put.uri(), "http://127.0.0.31:2379/etcdserverpb.KV/Put");
        assert_eq!(put.headers()[CONTENT_TYPE], "application/grpc");
        assert_eq!(put.headers()[TE], "trailers");
        assert!(put.headers().get(HOST).is_none());
        assert_eq!(
            body(put).await.as_ref(),
            [0, 0, 0, 0, 7, 0x0a, 2, b'k', b'3', 0x12, 1, b'v']
        );
        let range = requests.build(Op::Read(3), &host).unwrap();
        assert_eq!(range.uri(), "http://127.0.0.31:2379/etcdserverpb.KV/Range");
        assert_eq!(
            body(range).await.as_ref(),
            [0, 0, 0, 0, 4, 0x0a, 2, b'k', b'3']
        );
    }

    #[tokio::test]
    async fn tessera_requests_use_the_cell_api() {
        let host = target("http://127.0.0.11:7000").await;
        let requests = Requests::Tessera {
            paths: Paths::new("bench", "v", Some("one")).unwrap(),
            value: Bytes::from_static(b"xyz"),
        };
        let put = requests.build(Op::Write(9), &host).unwrap();
        assert_eq!(put.method(), Method::PUT);
        assert_eq!(put.uri(), "/v1/tables/bench/rows/k9/v?consistency=one");
        assert_eq!(body(put).await, "xyz");
        let get = requests.build(Op::Read(9), &host).unwrap();
        assert_eq!(get.method(), Method::GET);
        assert!(body(get).await.is_empty());
    }
}
