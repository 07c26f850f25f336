//! A lean gRPC client connection for `--protocol etcd-grpc`: unary calls over one HTTP/2
//! connection (cleartext, prior knowledge), spoken with `h2` directly.
//!
//! hyper's HTTP/2 client runs the connection in a task of its own, spawns another per request to
//! send its body, and hands every request and answer across channels between them. On the 2-core
//! machines the benchmark runs on, where the load generator shares the cores with the database
//! under test, that came to 36-50 µs of the generator's CPU per operation. Here nothing is
//! spawned: the worker's own task polls the connection future while it waits for its answer, so
//! the socket is read and written by the task that wants the bytes, and a call costs no task
//! switch. This fits a closed-loop worker, which has exactly one call in flight per connection and
//! nothing to do between calls; the connection is idle (not polled) between them, so frames the
//! server sends then (a PING, a GOAWAY) are handled at the start of the next call.
//!
//! An answer is judged as `answer` describes: HTTP 200, `grpc-status: 0` and one complete message
//! is a success (see [`FrameCheck`]).

use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::task::Poll;

use bytes::Bytes;
use h2::client::{Connection, SendRequest};
use h2::RecvStream;
use hyper::header::{HeaderValue, CONTENT_TYPE, TE};
use hyper::http::uri::{Authority, Parts, PathAndQuery, Scheme};
use hyper::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use tokio::net::TcpStream;

use super::answer::Answer;
use super::etcd_grpc::{self, FrameCheck};
use super::worker::Failure;

/// The future that does the connection's I/O.
type Driver = Connection<TcpStream, Bytes>;

/// One HTTP/2 connection carrying one unary gRPC call at a time. Dropping it closes the
/// connection.
pub struct GrpcConnection {
    /// Opens the calls' streams.
    sender: SendRequest<Bytes>,
    /// Reads and writes the socket whenever it is polled, which [`GrpcConnection::call`] does
    /// while it waits. `None` once it has ended: polling it again would be polling a completed
    /// future. Boxed so that moving the connection around moves a pointer, not h2's state.
    driver: Option<Pin<Box<Driver>>>,
    /// `host:port`, parsed once, for every request's `:authority`.
    authority: Authority,
}

impl GrpcConnection {
    /// Connects (TCP_NODELAY on) and does the HTTP/2 handshake (prior knowledge, h2c).
    /// `authority` is "host:port" for the :authority pseudo-header.
    ///
    /// The handshake only sends the client's preface: a server that does not speak HTTP/2 is found
    /// out by the first call, as with hyper.
    pub async fn open(addr: SocketAddr, authority: &str) -> io::Result<Self> {
        let authority = Authority::try_from(authority)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let stream = TcpStream::connect(addr).await?;
        // A call is a few small frames written at once; Nagle would hold them back for the ACK of
        // the previous answer.
        stream.set_nodelay(true)?;
        let (sender, driver) = h2::client::handshake(stream)
            .await
            .map_err(io::Error::other)?;
        Ok(Self {
            sender,
            driver: Some(Box::pin(driver)),
            authority,
        })
    }

    /// One unary gRPC call: POST `path` (e.g. "/etcdserverpb.KV/Put") with headers
    /// `content-type: application/grpc` and `te: trailers`, and `body` (an already
    /// length-prefixed gRPC message, see etcd_grpc::GrpcBodies) as the only DATA, end of stream.
    /// Reads the whole answer (all DATA frames, releasing flow-control capacity for each, then
    /// the trailers) and judges it.
    ///
    /// The outer error means the connection is no longer usable (an h2 error, a reset stream, a
    /// GOAWAY, the connection closed): drop it and reconnect. The inner one is a complete answer
    /// that is not a success.
    pub async fn call(
        &mut self,
        path: &'static str,
        body: Bytes,
    ) -> io::Result<Result<Answer, Failure>> {
        if self.driver.is_none() {
            return Err(ended());
        }
        let request = self.request(path)?;
        // Split borrows: the exchange holds the sender while `drive` polls the driver.
        let Self { sender, driver, .. } = self;
        let exchange = async move {
            poll_fn(|cx| sender.poll_ready(cx)).await?;
            let (response, mut send) = sender.send_request(request, false)?;
            // Queued, not written: the driver writes it (with the headers) when polled next.
            send.send_data(body, true)?;
            read(response.await?).await
        };
        drive(driver, exchange).await?.map_err(io::Error::other)
    }

    /// The request head for `path`. The URI is built from parts, so a call parses nothing but its
    /// static path; it is absolute so that h2 sends `:scheme` and `:authority`.
    fn request(&self, path: &'static str) -> io::Result<Request<()>> {
        let mut parts = Parts::default();
        parts.scheme = Some(Scheme::HTTP);
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(PathAndQuery::from_static(path));
        let uri =
            Uri::from_parts(parts).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut headers = HeaderMap::with_capacity(2);
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(etcd_grpc::CONTENT_TYPE),
        );
        // gRPC servers refuse a call that does not say it accepts trailers, where the status is.
        headers.insert(TE, HeaderValue::from_static("trailers"));
        let mut request = Request::new(());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        Ok(request)
    }
}

/// The error of a call on a connection whose driver has ended (closed or failed).
fn ended() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "the HTTP/2 connection has ended",
    )
}

/// Runs `operation` to its end on the calling task, polling the connection's driver alongside it
/// so that the operation's frames are written and its answer read. The operation goes first: it
/// queues frames and takes what has arrived; the driver then does the I/O, and the operation is
/// polled again at once, since the driver may just have delivered what it waits for, which saves
/// a trip through the scheduler.
///
/// If the driver ends, the operation gets one last poll (the answer may have arrived in full just
/// before the server closed) and otherwise fails with the driver's end: it would wait forever.
/// The driver is then dropped, so that later calls fail at once instead of polling it again.
async fn drive<F: Future>(
    driver: &mut Option<Pin<Box<Driver>>>,
    operation: F,
) -> io::Result<F::Output> {
    let mut operation = pin!(operation);
    poll_fn(|cx| {
        if let Poll::Ready(output) = operation.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
        }
        let end = match driver.as_mut() {
            None => Some(ended()),
            Some(running) => match running.as_mut().poll(cx) {
                Poll::Pending => None,
                // It ends cleanly only after a GOAWAY with no stream left, ours included.
                Poll::Ready(Ok(())) => Some(ended()),
                Poll::Ready(Err(error)) => Some(io::Error::other(error)),
            },
        };
        let output = operation.as_mut().poll(cx);
        if end.is_some() {
            *driver = None;
        }
        match (output, end) {
            (Poll::Ready(output), _) => Poll::Ready(Ok(output)),
            (Poll::Pending, Some(error)) => Poll::Ready(Err(error)),
            (Poll::Pending, None) => Poll::Pending,
        }
    })
    .await
}

/// Reads `response` to its end (so that the stream is closed and the next call's latency is its
/// own) and judges it: HTTP 200, then [`FrameCheck`] on the message and the status.
async fn read(response: Response<RecvStream>) -> Result<Result<Answer, Failure>, h2::Error> {
    let (head, mut body) = response.into_parts();
    let mut check = FrameCheck::default();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        // h2 gives back received bytes' window only when told to (or, for the connection's
        // window, when the stream is dropped): without this an answer longer than the stream's
        // 64 KiB window would stall half-way, the server waiting for a WINDOW_UPDATE.
        body.flow_control().release_capacity(chunk.len())?;
        check.data(&chunk);
    }
    let trailers = body.trailers().await?;
    if head.status != StatusCode::OK {
        return Ok(Err(Failure::Status(head.status.as_u16())));
    }
    Ok(check
        .finish(&head.headers, trailers.as_ref())
        .map(|()| Answer { siblings: false })
        .map_err(Failure::from))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use tokio::net::TcpListener;

    use super::*;
    use crate::load::etcd_grpc::{GrpcBodies, PUT_PATH, RANGE_PATH};
    use crate::load::grpc_stand_in::{stand_in, Reply};

    /// Only a guard against a hang: no test should come near it.
    const HANG_GUARD: Duration = Duration::from_secs(10);

    async fn open(addr: SocketAddr) -> GrpcConnection {
        GrpcConnection::open(addr, &addr.to_string()).await.unwrap()
    }

    async fn call(
        connection: &mut GrpcConnection,
        path: &'static str,
        body: Bytes,
    ) -> io::Result<Result<Answer, Failure>> {
        tokio::time::timeout(HANG_GUARD, connection.call(path, body))
            .await
            .expect("the call hung")
    }

    #[tokio::test]
    async fn a_normal_reply_is_a_success_and_the_server_sees_the_call() {
        let (addr, seen) = stand_in(Reply::Message(2)).await;
        let mut connection = open(addr).await;
        let body = GrpcBodies::new(b"hello").unwrap().put(42);
        let answer = call(&mut connection, PUT_PATH, body.clone()).await.unwrap();
        assert!(matches!(answer, Ok(Answer { siblings: false })));
        let calls = seen.calls.lock().unwrap();
        assert_eq!(calls.len(), 1);
        let call = &calls[0];
        assert_eq!(call.path, PUT_PATH);
        assert_eq!(call.authority, Some(addr.to_string()));
        assert_eq!(call.content_type.as_ref().unwrap(), "application/grpc");
        assert_eq!(call.te.as_ref().unwrap(), "trailers");
        assert_eq!(call.body, body);
    }

    /// Every answer is longer than the stream's and the connection's initial window (65,535
    /// bytes), so that the calls only get through if each chunk's capacity is released. (Small
    /// answers would not show it: h2 returns a dropped stream's unreleased bytes to the
    /// connection's window by itself.)
    #[tokio::test]
    async fn many_calls_share_one_connection() {
        let (addr, seen) = stand_in(Reply::Message(100 * 1024)).await;
        let mut connection = open(addr).await;
        let bodies = GrpcBodies::new(b"value").unwrap();
        for n in 0..200 {
            let (path, body) = if n % 2 == 0 {
                (PUT_PATH, bodies.put(n))
            } else {
                (RANGE_PATH, bodies.range(n))
            };
            let answer = call(&mut connection, path, body).await.unwrap();
            assert!(answer.is_ok(), "call {n}: {:?}", answer.err());
        }
        assert_eq!(seen.calls.lock().unwrap().len(), 200);
        assert_eq!(seen.connections.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_trailers_only_error_is_its_grpc_status() {
        let (addr, _) = stand_in(Reply::TrailersOnly("5")).await;
        let mut connection = open(addr).await;
        let body = GrpcBodies::new(b"").unwrap().range(1);
        for _ in 0..3 {
            let answer = call(&mut connection, RANGE_PATH, body.clone()).await;
            assert_eq!(answer.unwrap().err(), Some(Failure::Grpc(5)));
        }
    }

    #[tokio::test]
    async fn an_http_error_is_its_status() {
        let (addr, _) = stand_in(Reply::Status(503)).await;
        let mut connection = open(addr).await;
        let body = GrpcBodies::new(b"").unwrap().range(1);
        let answer = call(&mut connection, RANGE_PATH, body).await;
        assert_eq!(answer.unwrap().err(), Some(Failure::Status(503)));
    }

    /// A server that closes the connection once it has the call's headers, without an answer.
    #[tokio::test]
    async fn a_closed_connection_fails_the_call_and_the_next() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut server = h2::server::handshake(stream).await.unwrap();
            let call = server.accept().await;
            drop(call);
            drop(server);
        });
        let mut connection = open(addr).await;
        let body = GrpcBodies::new(b"").unwrap().range(1);
        assert!(call(&mut connection, RANGE_PATH, body.clone())
            .await
            .is_err());
        assert!(call(&mut connection, RANGE_PATH, body).await.is_err());
    }

    /// A server that closes the TCP connection once the client's preface has arrived, before any
    /// HTTP/2 frame of its own.
    #[tokio::test]
    async fn a_connection_closed_at_once_fails_the_call() {
        use tokio::io::AsyncReadExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            // Waiting for the preface makes sure `open` has written it before the close.
            let mut preface = [0; 24];
            stream.read_exact(&mut preface).await.unwrap();
            drop(stream);
        });
        let mut connection = open(addr).await;
        let body = GrpcBodies::new(b"").unwrap().range(1);
        assert!(call(&mut connection, RANGE_PATH, body).await.is_err());
    }
}
