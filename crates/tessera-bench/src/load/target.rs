//! Targets (`http://HOST:PORT`) and the one keep-alive connection a worker holds to each:
//! HTTP/1.1 for Tessera and etcd's JSON gateway, HTTP/2 (cleartext, prior knowledge) for etcd's
//! gRPC.
//!
//! A bare `hyper::client::conn` connection, not a pooled client: a closed-loop worker has exactly
//! one request in flight, so a pool would only add locking and bookkeeping to every request. An
//! HTTP/2 connection could multiplex more, but it also carries one request at a time, so that
//! every protocol is compared at the same concurrency and connection count.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::header::HeaderValue;
use hyper::http::uri::{Authority, InvalidUriParts, Parts, PathAndQuery, Scheme};
use hyper::{Request, Response, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::error::BenchError;

/// A node to send requests to.
#[derive(Clone, Debug)]
pub struct Target {
    /// The URL as given, for messages.
    pub url: String,
    /// Where to connect.
    pub addr: SocketAddr,
    /// The `Host` header: `host:port` as given.
    pub host: HeaderValue,
    /// The same `host:port`, for the absolute URIs that HTTP/2 requests need (`:authority`).
    pub authority: Authority,
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
        let port = authority.port_u16().unwrap_or(80);
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let authority_text = format!("{host}:{port}");
        let addr = tokio::net::lookup_host((host, port))
            .await
            .map_err(|source| BenchError::Resolve {
                authority: authority_text.clone(),
                source,
            })?
            .next()
            .ok_or_else(|| invalid("the host name resolved to no address"))?;
        let host =
            HeaderValue::from_str(authority.as_str()).map_err(|e| invalid(&format!("{e}")))?;
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            addr,
            host,
            authority: authority.clone(),
        })
    }

    /// `http://HOST:PORT{path}`: an HTTP/2 request's URI, whose scheme and authority hyper sends
    /// as the `:scheme` and `:authority` pseudo-headers. Built from parsed parts, so a request
    /// costs no parsing.
    pub fn absolute(&self, path: &'static str) -> Result<Uri, InvalidUriParts> {
        let mut parts = Parts::default();
        parts.scheme = Some(Scheme::HTTP);
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(PathAndQuery::from_static(path));
        Uri::from_parts(parts)
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

/// A connection's request sender.
enum Sender {
    Http1(http1::SendRequest<Full<Bytes>>),
    Http2(http2::SendRequest<Full<Bytes>>),
}

/// One open connection. Dropping it closes the connection.
pub struct Connection {
    sender: Sender,
    driver: JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl Connection {
    /// Connects to `target` with `transport`, with Nagle off as a server's client would have it.
    pub async fn open(target: &Target, transport: Transport) -> Result<Self, std::io::Error> {
        let stream = TcpStream::connect(target.addr).await?;
        stream.set_nodelay(true)?;
        let io = TokioIo::new(stream);
        // The connection future does the I/O; requests go through the sender. A failure shows up
        // on the next request, so its own result carries nothing more.
        let (sender, driver) = match transport {
            Transport::Http1 => {
                let (sender, connection) =
                    http1::handshake(io).await.map_err(std::io::Error::other)?;
                let driver = tokio::spawn(async move {
                    let _ = connection.await;
                });
                (Sender::Http1(sender), driver)
            }
            Transport::Http2 => {
                // The executor runs hyper's per-stream tasks (sending request bodies).
                let (sender, connection) = http2::handshake(TokioExecutor::new(), io)
                    .await
                    .map_err(std::io::Error::other)?;
                let driver = tokio::spawn(async move {
                    let _ = connection.await;
                });
                (Sender::Http2(sender), driver)
            }
        };
        Ok(Self { sender, driver })
    }

    /// Sends `request` once the connection can take it, and waits for the answer's head (the
    /// body follows in the response).
    pub async fn send(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, hyper::Error> {
        match &mut self.sender {
            Sender::Http1(sender) => {
                sender.ready().await?;
                sender.send_request(request).await
            }
            Sender::Http2(sender) => {
                sender.ready().await?;
                sender.send_request(request).await
            }
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
        assert_eq!(target.host, "127.0.0.1:7000");
        assert_eq!(
            target.absolute("/etcdserverpb.KV/Put").unwrap(),
            "http://127.0.0.1:7000/etcdserverpb.KV/Put"
        );
        assert!(Target::resolve("https://127.0.0.1:7000").await.is_err());
        assert!(Target::resolve("http://127.0.0.1:7000/v1").await.is_err());
        assert!(Target::resolve("127.0.0.1:7000").await.is_err());
    }
}
