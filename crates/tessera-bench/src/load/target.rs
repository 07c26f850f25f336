//! Targets (`http://HOST:PORT`) and the one keep-alive HTTP/1.1 connection a worker holds to each.
//!
//! A bare `hyper::client::conn::http1` connection, not a pooled client: a closed-loop worker has
//! exactly one request in flight, so a pool would only add locking and bookkeeping to every request.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::HeaderValue;
use hyper::Uri;
use hyper_util::rt::TokioIo;
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
        })
    }
}

/// One open HTTP/1.1 connection. Dropping it closes the connection.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    driver: JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl Connection {
    /// Connects to `target`, with Nagle off as a server's client would have it.
    pub async fn open(target: &Target) -> Result<Self, std::io::Error> {
        let stream = TcpStream::connect(target.addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        // The connection future does the I/O; requests go through `sender`. A failure shows up
        // on the next request, so its own result carries nothing more.
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self { sender, driver })
    }

    /// The request sender, once the connection can take a request.
    pub async fn ready(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, hyper::Error> {
        self.sender.ready().await?;
        Ok(&mut self.sender)
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
        assert!(Target::resolve("https://127.0.0.1:7000").await.is_err());
        assert!(Target::resolve("http://127.0.0.1:7000/v1").await.is_err());
        assert!(Target::resolve("127.0.0.1:7000").await.is_err());
    }
}
