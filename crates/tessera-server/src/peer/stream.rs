//! The internal RPC stream: one persistent, multiplexed connection per pair of nodes.
//!
//! A node opens it with an HTTP/1.1 upgrade on the peer's ordinary HTTP port
//! (`GET /internal/v1/stream`, `Upgrade: tessera-rpc/1`, the cluster secret and the caller's
//! node id in headers), so internal traffic needs no second port and crosses exactly the
//! iptables rules that client traffic does. After `101 Switching Protocols` the connection carries
//! [`super::frame`]s both ways: requests from the node that opened it, responses from the other.
//!
//! Why not one HTTP request per call (the `http` transport, still selectable): the cluster
//! benchmark found a quorum write bound by syscalls, wakeups and header handling, three HTTP
//! exchanges per client write (docs/performance.md). Here a call costs one frame each way, and
//! each side's writer drains every frame queued since its last write into one `write`, so under
//! load many calls share one syscall and one wakeup.
//!
//! This module holds what both ends share: the writer loop, the frame reader, and the server
//! loop ([`serve_stream`]); the calling side is [`super::stream_transport`].

use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::BytesMut;
use tessera_cluster::messages::{decode_request, encode_response, ErrorKind, Response};
use tessera_cluster::{Handler, NodeId};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch, Semaphore};

use super::frame::{decode_frame, encode_frame, Frame, FrameError, FrameKind};

/// Path of the upgrade route.
pub const STREAM_PATH: &str = "/internal/v1/stream";

/// Most requests one stream runs at once on the serving side; the reader waits for a slot
/// before reading more, which pushes back on the caller through TCP.
pub const MAX_IN_FLIGHT: usize = 4096;

/// A writer stops draining its queue into one buffer beyond this, so one write never grows
/// without bound.
const COALESCE_BYTES: usize = 256 * 1024;
/// Buffers are kept between writes, but not one a huge frame blew up.
const KEEP_BUFFER_BYTES: usize = 1024 * 1024;
const READ_CHUNK: usize = 64 * 1024;

/// A frame waiting to be written.
#[derive(Debug)]
pub struct OutFrame {
    pub kind: FrameKind,
    pub id: u64,
    pub payload: Vec<u8>,
}

/// Writes queued frames until every sender is gone, draining all that is queued into one write.
pub async fn write_frames<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut queue: mpsc::Receiver<OutFrame>,
) -> io::Result<()> {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    while let Some(frame) = queue.recv().await {
        encode_frame(frame.kind, frame.id, &frame.payload, &mut buf);
        if queue.is_empty() {
            // Let the tasks already woken on this thread (other requests' answers, the other
            // writes of a quorum) queue their frames first: under load they then share this
            // write; idle, this costs one pass of the scheduler.
            tokio::task::yield_now().await;
        }
        while buf.len() < COALESCE_BYTES {
            match queue.try_recv() {
                Ok(frame) => encode_frame(frame.kind, frame.id, &frame.payload, &mut buf),
                Err(_) => break,
            }
        }
        writer.write_all(&buf).await?;
        if buf.capacity() > KEEP_BUFFER_BYTES {
            buf = BytesMut::with_capacity(READ_CHUNK);
        } else {
            buf.clear();
        }
    }
    writer.shutdown().await
}

/// Why a stream ended.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("the peer closed the connection")]
    Closed,
    #[error("connection failed: {0}")]
    Io(#[from] io::Error),
    #[error("the peer broke the stream protocol: {0}")]
    Frame(#[from] FrameError),
    #[error("the peer broke the stream protocol: {0}")]
    Protocol(String),
}

/// Reads frames off one connection, keeping what is not yet a whole frame.
pub struct FrameReader<R> {
    reader: R,
    buf: BytesMut,
    max_payload: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// `already` holds bytes read past the handshake, if any.
    pub fn new(reader: R, already: BytesMut, max_payload: usize) -> Self {
        Self {
            reader,
            buf: already,
            max_payload,
        }
    }

    /// The next frame, or `Closed` at a clean end of the stream. Cancel-safe: bytes read stay
    /// in the buffer.
    pub async fn next(&mut self) -> Result<Frame, StreamError> {
        loop {
            if let Some(frame) = decode_frame(&mut self.buf, self.max_payload)? {
                return Ok(frame);
            }
            self.buf.reserve(READ_CHUNK);
            if self.reader.read_buf(&mut self.buf).await? == 0 {
                return Err(if self.buf.is_empty() {
                    StreamError::Closed
                } else {
                    StreamError::Protocol(format!(
                        "connection closed in the middle of a frame ({} bytes pending)",
                        self.buf.len()
                    ))
                });
            }
        }
    }
}

/// Serves one upgraded stream from peer `from` until it closes or the node stops. Each request
/// runs as its own task, so slow ones do not hold up the rest; a stopping node stops reading and
/// lets the requests it already took finish and answer.
pub async fn serve_stream<IO, H>(
    io: IO,
    from: NodeId,
    handler: Arc<H>,
    max_payload: usize,
    pass: StreamPass,
) where
    IO: AsyncRead + AsyncWrite + Send + 'static,
    H: Handler + ?Sized,
{
    let StreamPass {
        mut stopping,
        _open,
    } = pass;
    let (read_half, write_half) = tokio::io::split(io);
    let mut frames = FrameReader::new(read_half, BytesMut::new(), max_payload);
    let (out, queue) = mpsc::channel::<OutFrame>(MAX_IN_FLIGHT);
    let writer = tokio::spawn(write_frames(write_half, queue));
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    tracing::debug!(peer = %from, "internal stream opened");
    let ended = loop {
        let frame = tokio::select! {
            _ = stopping.wait_for(|stop| *stop) => break "this node is stopping".to_owned(),
            frame = frames.next() => frame,
        };
        let Frame { kind, id, payload } = match frame {
            Ok(frame) => frame,
            Err(StreamError::Closed) => break "closed by the peer".to_owned(),
            Err(error) => break error.to_string(),
        };
        if kind != FrameKind::Request {
            break format!("the peer sent a {kind:?} frame on a stream it opened");
        }
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break "internal error: the request slots were closed".to_owned();
        };
        let (out, handler, from) = (out.clone(), handler.clone(), from.clone());
        tokio::spawn(async move {
            let response = match decode_request(&payload) {
                Ok(request) => handler.handle(&from, request).await,
                Err(error) => Response::Error {
                    kind: ErrorKind::BadRequest,
                    message: format!("cannot decode the request from {from}: {error}"),
                },
            };
            let payload = encode_response(&response).unwrap_or_else(|error| {
                let failure = Response::Error {
                    kind: ErrorKind::Internal,
                    message: format!("cannot encode the response: {error}"),
                };
                encode_response(&failure).unwrap_or_default()
            });
            // The writer is gone only if the connection broke; the caller then learns that.
            let _ = out
                .send(OutFrame {
                    kind: FrameKind::Response,
                    id,
                    payload,
                })
                .await;
            drop(slot);
        });
    };
    tracing::debug!(peer = %from, reason = %ended, "internal stream closing");
    // Each running request holds a sender, so the writer drains their answers, then ends.
    drop(out);
    let _ = writer.await;
}

/// Lets streams open while the node runs, and lets the node wait for them when it stops.
///
/// axum's graceful shutdown tracks HTTP connections only up to an upgrade, so the node tracks
/// upgraded streams itself: every stream holds a [`StreamPass`], and [`StreamGate::close`] tells
/// them to stop and waits until the last pass is dropped.
pub struct StreamGate {
    stopping: watch::Sender<bool>,
    open: Mutex<Option<mpsc::Sender<()>>>,
    all_closed: tokio::sync::Mutex<mpsc::Receiver<()>>,
}

/// What a serving stream holds while it runs.
pub struct StreamPass {
    stopping: watch::Receiver<bool>,
    _open: mpsc::Sender<()>,
}

impl Default for StreamGate {
    fn default() -> Self {
        let (open, all_closed) = mpsc::channel(1);
        Self {
            stopping: watch::Sender::new(false),
            open: Mutex::new(Some(open)),
            all_closed: tokio::sync::Mutex::new(all_closed),
        }
    }
}

impl StreamGate {
    /// A pass for a new stream, or `None` once the node is stopping.
    pub fn enter(&self) -> Option<StreamPass> {
        let open = self
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()?;
        Some(StreamPass {
            stopping: self.stopping.subscribe(),
            _open: open,
        })
    }

    /// Stops every stream and waits, up to `grace`, for them to finish what they took.
    /// Returns whether they all did.
    pub async fn close(&self, grace: Duration) -> bool {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.stopping.send_replace(true);
        let mut all_closed = self.all_closed.lock().await;
        tokio::time::timeout(grace, all_closed.recv()).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_cluster::messages::{encode_request, Request};
    use tessera_cluster::{decode_response, BoxFuture};

    /// Answers a ping with a pong and anything else with an error.
    struct Pong;

    impl Handler for Pong {
        fn handle(&self, _from: &NodeId, request: Request) -> BoxFuture<'static, Response> {
            Box::pin(async move {
                match request {
                    Request::Ping => Response::Pong,
                    other => Response::Error {
                        kind: ErrorKind::BadRequest,
                        message: other.name().to_owned(),
                    },
                }
            })
        }
    }

    #[tokio::test]
    async fn a_stream_answers_every_request_and_garbage_with_an_error() {
        let (client, server) = tokio::io::duplex(1024);
        let gate = StreamGate::default();
        let pass = gate.enter().unwrap();
        let serving = tokio::spawn(serve_stream(
            server,
            "peer".to_owned(),
            Arc::new(Pong),
            1 << 20,
            pass,
        ));
        let (read_half, write_half) = tokio::io::split(client);
        let (out, queue) = mpsc::channel(16);
        let writer = tokio::spawn(write_frames(write_half, queue));
        let ping = encode_request(&Request::Ping).unwrap();
        for id in 0..100u64 {
            let payload = if id == 50 {
                vec![99, 1, 2]
            } else {
                ping.clone()
            };
            out.send(OutFrame {
                kind: FrameKind::Request,
                id,
                payload,
            })
            .await
            .unwrap();
        }
        let mut frames = FrameReader::new(read_half, BytesMut::new(), 1 << 20);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..100 {
            let frame = frames.next().await.unwrap();
            assert_eq!(frame.kind, FrameKind::Response);
            let response = decode_response(&frame.payload).unwrap();
            if frame.id == 50 {
                assert!(matches!(
                    response,
                    Response::Error {
                        kind: ErrorKind::BadRequest,
                        ..
                    }
                ));
            } else {
                assert_eq!(response, Response::Pong);
            }
            assert!(seen.insert(frame.id));
        }
        drop(out);
        writer.await.unwrap().unwrap();
        assert!(matches!(frames.next().await, Err(StreamError::Closed)));
        serving.await.unwrap();
        assert!(gate.close(Duration::from_secs(5)).await);
        assert!(gate.enter().is_none());
    }

    fn serve_pong(
        server: tokio::io::DuplexStream,
        gate: &StreamGate,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(serve_stream(
            server,
            "peer".to_owned(),
            Arc::new(Pong),
            1 << 20,
            gate.enter().unwrap(),
        ))
    }

    #[tokio::test]
    async fn closing_the_gate_stops_idle_streams() {
        let (_client, server) = tokio::io::duplex(1024);
        let gate = StreamGate::default();
        let serving = serve_pong(server, &gate);
        assert!(gate.close(Duration::from_secs(5)).await);
        serving.await.unwrap();
    }

    #[tokio::test]
    async fn a_response_frame_from_the_caller_ends_the_stream() {
        let (mut client, server) = tokio::io::duplex(1024);
        let gate = StreamGate::default();
        let serving = serve_pong(server, &gate);
        let mut buf = BytesMut::new();
        encode_frame(FrameKind::Response, 1, b"x", &mut buf);
        client.write_all(&buf).await.unwrap();
        serving.await.unwrap();
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }
}
