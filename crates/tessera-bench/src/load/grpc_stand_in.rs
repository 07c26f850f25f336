//! A stand-in etcd gRPC server for the load generator's tests: a hyper HTTP/2 server that records
//! every call and answers as etcd's gRPC server does, or as a test asks.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::combinators::WithTrailers;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, TE};
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper::{HeaderMap, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use super::etcd_grpc;

/// One call the stand-in received.
#[derive(Clone, Debug)]
pub struct Call {
    pub path: String,
    pub authority: Option<String>,
    pub content_type: Option<HeaderValue>,
    pub te: Option<HeaderValue>,
    pub body: Bytes,
}

/// How the stand-in answers.
#[derive(Clone, Copy, Debug)]
pub enum Reply {
    /// As etcd: one message (a `ResponseHeader`-only reply), then `grpc-status: 0` in trailers.
    Ok,
    /// One message of this many bytes, then `grpc-status: 0` in the trailers.
    Message(u32),
    /// Trailers-only: no body, this `grpc-status` in the headers.
    TrailersOnly(&'static str),
    /// This HTTP status, with an empty body.
    Status(u16),
}

type Body = WithTrailers<Full<Bytes>, Ready<Option<Result<HeaderMap, Infallible>>>>;

/// What the stand-in saw: every call, and how many connections were opened.
#[derive(Default)]
pub struct Seen {
    pub calls: Mutex<Vec<Call>>,
    pub connections: AtomicU64,
}

/// Starts a stand-in answering every call with `reply`; returns its address.
pub async fn stand_in(reply: Reply) -> (SocketAddr, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let server_seen = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            server_seen.connections.fetch_add(1, Ordering::Relaxed);
            // As etcd (Go sets it by default): with Nagle on, the tail of a long answer waits
            // for the client's delayed ACK, some 40 ms a call.
            stream.set_nodelay(true).unwrap();
            let seen = server_seen.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| answer(request, reply, seen.clone()));
                let _ = http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

/// Headers (or trailers) holding `grpc-status: code`.
pub fn grpc_status(code: &'static str) -> HeaderMap {
    let mut map = HeaderMap::new();
    map.insert("grpc-status", HeaderValue::from_static(code));
    map
}

/// A gRPC frame holding a `len`-byte message.
fn message(len: u32) -> Bytes {
    let mut frame = vec![0];
    frame.extend_from_slice(&len.to_be_bytes());
    frame.resize(5 + len as usize, 0x5a);
    Bytes::from(frame)
}

async fn answer(
    request: Request<Incoming>,
    reply: Reply,
    seen: Arc<Seen>,
) -> Result<Response<Body>, hyper::Error> {
    let (head, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    seen.calls.lock().unwrap().push(Call {
        path: head.uri.path().to_owned(),
        authority: head.uri.authority().map(|a| a.to_string()),
        content_type: head.headers.get(CONTENT_TYPE).cloned(),
        te: head.headers.get(TE).cloned(),
        body,
    });
    let response = Response::builder().header(CONTENT_TYPE, etcd_grpc::CONTENT_TYPE);
    let ok = || ready(Some(Ok(grpc_status("0"))));
    let response = match reply {
        // Field 1 (header), empty.
        Reply::Ok => response
            .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 2, 0x0a, 0])).with_trailers(ok())),
        Reply::Message(len) => response.body(Full::new(message(len)).with_trailers(ok())),
        Reply::TrailersOnly(code) => response
            .header("grpc-status", code)
            .body(Full::new(Bytes::new()).with_trailers(ready(None))),
        Reply::Status(code) => response
            .status(code)
            .body(Full::new(Bytes::new()).with_trailers(ready(None))),
    };
    Ok(response.unwrap())
}
