//! Targets (`http://HOST:PORT`) and the one keep-alive connection a worker holds to each:
//! HTTP/1.1 for Tessera and etcd's JSON gateway, HTTP/2 (cleartext, prior knowledge) for etcd's
//! gRPC.
//!
//! Both are lean clients driven by the worker's own task ([`Http1Connection`],
//! [`GrpcConnection`]), not hyper's client, whose connection task and channels cost more CPU per
//! request than the rest of the generator (see `http1`): the generator shares the machine's cores
//! with the system it measures. A closed-loop worker has exactly one request in flight, so there
//! is no pool. An HTTP/2 connection could multiplex more, but it also carries one request at a
//! time, so that every protocol is compared at the same concurrency and connection count.

use std::io;
use std::net::SocketAddr;

use hyper::Uri;

use super::answer::{self, Answer};
use super::grpc_conn::GrpcConnection;
use super::http1::Http1Connection;
use super::request::Wire;
use super::worker::Failure;
use crate::error::BenchError;

/// A node to send requests to.
#[derive(Clone, Debug)]
pub struct Target {
    /// The URL as given, for messages.
    pub url: String,
    /// Where to connect.
    pub addr: SocketAddr,
    /// `host:port` as given: the `Host` header, and HTTP/2's `:authority`.
    pub authority: String,
}

impl Target {
    /// Parses and resolves `http://HOST:PORT` (a trailing `/` is allowed; no other path).
    pub async fn resolve(url: &str) -> Result<Self, BenchError> {
        let invalid = |reason: &str| BenchError::InvalidTarget {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = url.parse().map_err(|e| invalid(&format!("{e}")))?;
        if uri.scheme_str() != Some("http") {
            return Err(invalid("only http:// targets are supported"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(invalid("give the node's base URL, without a path"));
        }
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("user info is not supported"));
        }
        let port = authority.port_u16().unwrap_or(80);
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let addr = tokio::net::lookup_host((host, port))
            .await
            .map_err(|source| BenchError::Resolve {
                authority: format!("{host}:{port}"),
                source,
            })?
            .next()
            .ok_or_else(|| invalid("the host name resolved to no address"))?;
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            addr,
            authority: authority.as_str().to_owned(),
        })
    }
}

/// The HTTP version a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// HTTP/1.1 keep-alive.
    Http1,
    /// HTTP/2 over cleartext TCP with prior knowledge (h2c, no upgrade), as gRPC clients do.
    Http2,
}

/// One open connection. Dropping it closes the connection.
pub enum Connection {
    /// Tessera or etcd's gateway.
    Http1(Http1Connection),
    /// etcd's gRPC.
    Http2(GrpcConnection),
}

impl Connection {
    /// Connects to `target` with `transport`.
    pub async fn open(target: &Target, transport: Transport) -> io::Result<Self> {
        Ok(match transport {
            Transport::Http1 => Connection::Http1(Http1Connection::open(target.addr).await?),
            Transport::Http2 => {
                Connection::Http2(GrpcConnection::open(target.addr, &target.authority).await?)
            }
        })
    }

    /// Sends `wire` and reads its whole answer. The outer error is a broken exchange (drop the
    /// connection); the inner one a complete answer that is not a success.
    pub async fn exchange(&mut self, wire: Wire) -> io::Result<Result<Answer, Failure>> {
        match (self, wire) {
            (Connection::Http1(connection), Wire::Http1(request)) => {
                let reply = connection.exchange(&request).await?;
                Ok(answer::judge_http(reply.status, reply.siblings))
            }
            (Connection::Http2(connection), Wire::Grpc { path, body }) => {
                connection.call(path, body).await
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "internal error: a request for the other transport",
            )),
        }
    }

    /// Whether another request may be sent on it (an HTTP/1.1 server may close after an answer).
    pub fn reusable(&self) -> bool {
        match self {
            Connection::Http1(connection) => connection.reusable(),
            Connection::Http2(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn parses_base_urls_only() {
        let target = Target::resolve("http://127.0.0.1:7000/").await.unwrap();
        assert_eq!(target.url, "http://127.0.0.1:7000");
        assert_eq!(target.addr, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(target.authority, "127.0.0.1:7000");
        assert!(Target::resolve("https://127.0.0.1:7000").await.is_err());
        assert!(Target::resolve("http://127.0.0.1:7000/v1").await.is_err());
        assert!(Target::resolve("127.0.0.1:7000").await.is_err());
        assert!(Target::resolve("http://me@127.0.0.1:7000").await.is_err());
    }
}
