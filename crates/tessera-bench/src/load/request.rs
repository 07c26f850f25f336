//! Turns an [`Op`] into the HTTP request of the system under test: Tessera's cell API, or etcd's
//! JSON gateway (so that both can be driven by the same workers, keys, values and seed).

use bytes::Bytes;
use clap::ValueEnum;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Method, Request};

use super::etcd::{self, EtcdBodies};
use super::workload::{Op, Paths};

/// The API the targets speak.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// Tessera's HTTP API: `GET`/`PUT /v1/tables/T/rows/k{n}/{column}`.
    #[default]
    Tessera,
    /// etcd 3.4's grpc-gateway: `POST /v3/kv/range` and `POST /v3/kv/put` with JSON bodies.
    Etcd,
}

impl Protocol {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tessera => "tessera",
            Protocol::Etcd => "etcd",
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
    /// etcd: JSON bodies.
    Etcd(EtcdBodies),
}

static JSON: HeaderValue = HeaderValue::from_static("application/json");

impl Requests {
    /// The request for `op`, to the node whose `Host` header is `host`.
    pub fn build(
        &self,
        op: Op,
        host: &HeaderValue,
    ) -> Result<Request<Full<Bytes>>, hyper::http::Error> {
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

    #[tokio::test]
    async fn etcd_requests_are_json_posts() {
        let host = HeaderValue::from_static("127.0.0.31:2379");
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
    async fn tessera_requests_use_the_cell_api() {
        let host = HeaderValue::from_static("127.0.0.11:7000");
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
