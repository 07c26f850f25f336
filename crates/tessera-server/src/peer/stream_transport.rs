//! The calling side of the internal RPC stream (see [`super::stream`]): a `Transport` that keeps
//! one multiplexed connection per peer, opened on first use and reopened after it breaks.
//!
//! Each call takes the next id on its peer's link, registers where its answer goes, and queues
//! its frame for the link's writer; the link's reader hands each response to the call with its
//! id. A link that breaks fails every call waiting on it at once, with the reason, and the next
//! call opens a new one. A call whose caller gives up (the coordinator's deadline) unregisters
//! itself, so a late answer is dropped.
//!
//! Every connection leaves from this node's own IP (see [`super::transport`] for why).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tessera_cluster::messages::{decode_response, Request, Response};
use tessera_cluster::{BoxFuture, NodeId, Transport, TransportError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};

use super::frame::{FrameKind, STREAM_PROTOCOL};
use super::stream::{write_frames, FrameReader, OutFrame, StreamError, STREAM_PATH};
use super::{addressed, ClusterSecret, Directory, FROM_HEADER, SECRET_HEADER};

/// Frames a link queues before callers wait for its writer.
const QUEUE_FRAMES: usize = 4096;
/// Longest upgrade answer read before giving up on a peer.
const MAX_HANDSHAKE_BYTES: usize = 16 * 1024;

/// Settings of a [`StreamTransport`].
#[derive(Clone, Debug)]
pub struct StreamSettings {
    /// Bound on connecting and upgrading one connection.
    pub connect_timeout: Duration,
    /// Largest response accepted from a peer.
    pub max_message_bytes: usize,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(1),
            max_message_bytes: 512 * 1024 * 1024,
        }
    }
}

/// Sends internal requests to peers by node id, over one stream per peer.
pub struct StreamTransport {
    local: NodeId,
    source: Option<IpAddr>,
    secret: ClusterSecret,
    settings: StreamSettings,
    peers: Directory,
    links: Mutex<HashMap<NodeId, Link>>,
}

/// The calls waiting on one connection, and whether it is gone.
#[derive(Default)]
struct Waiting {
    /// Why the connection ended; set once, after which no call registers.
    closed: Option<String>,
    answers: HashMap<u64, oneshot::Sender<Bytes>>,
}

/// What the callers and the connection task share.
#[derive(Default)]
struct LinkState {
    next_id: AtomicU64,
    waiting: Mutex<Waiting>,
}

impl LinkState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        // Only ids and channel ends live here, valid even if a holder panicked.
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn closed_reason(&self) -> Option<String> {
        self.lock().closed.clone()
    }

    /// Registers a call, or says why the link cannot take one.
    fn register(&self) -> Result<(u64, oneshot::Receiver<Bytes>), String> {
        let mut waiting = self.lock();
        if let Some(reason) = &waiting.closed {
            return Err(reason.clone());
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        waiting.answers.insert(id, tx);
        Ok((id, rx))
    }

    fn forget(&self, id: u64) {
        self.lock().answers.remove(&id);
    }

    fn deliver(&self, id: u64, payload: Bytes) {
        let answer = self.lock().answers.remove(&id);
        // No one waiting: the caller gave up before the answer came.
        if let Some(answer) = answer {
            let _ = answer.send(payload);
        }
    }

    /// Ends the link: every waiting call fails now (its sender is dropped) with `reason`.
    fn close(&self, reason: String) {
        let mut waiting = self.lock();
        waiting.closed.get_or_insert(reason);
        waiting.answers.clear();
    }
}

/// One peer's connection, as callers see it. The connection task holds the state but not the
/// queue's sender, so once the transport replaces or drops the link, the task ends.
#[derive(Clone)]
struct Link {
    addr: SocketAddr,
    queue: mpsc::Sender<OutFrame>,
    state: Arc<LinkState>,
}

/// Unregisters a call whose caller stopped waiting.
struct Registered {
    state: Arc<LinkState>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.state.forget(self.id);
    }
}

impl StreamTransport {
    /// A transport for node `local`, whose connections leave from `source`.
    pub fn new(
        local: NodeId,
        source: Option<IpAddr>,
        secret: ClusterSecret,
        peers: Directory,
        settings: StreamSettings,
    ) -> Self {
        Self {
            local,
            source,
            secret,
            settings,
            peers,
            links: Mutex::new(HashMap::new()),
        }
    }

    /// The open link to `node` at `addr`, or a new one (connecting in the background: calls
    /// queue behind the connect). A link to an address the peer has moved from is replaced.
    fn link(&self, node: &NodeId, addr: SocketAddr) -> Link {
        let mut links = self.links.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(link) = links.get(node) {
            if link.addr == addr && link.state.closed_reason().is_none() {
                return link.clone();
            }
        }
        let (queue, frames) = mpsc::channel(QUEUE_FRAMES);
        let link = Link {
            addr,
            queue,
            state: Arc::new(LinkState::default()),
        };
        let connection = Connection {
            local: self.local.clone(),
            peer: node.clone(),
            addr,
            source: self.source,
            secret: self.secret.clone(),
            settings: self.settings.clone(),
        };
        tokio::spawn(connection.run(link.state.clone(), frames));
        links.insert(node.clone(), link.clone());
        link
    }
}

impl Transport for StreamTransport {
    fn call(
        &self,
        to: &NodeId,
        request: Request,
    ) -> BoxFuture<'static, Result<Response, TransportError>> {
        let node = to.clone();
        let (addr, payload) = match addressed(&self.peers, to, &request) {
            Ok(addressed) => addressed,
            Err(error) => return Box::pin(async move { Err(error) }),
        };
        let link = self.link(to, addr);
        Box::pin(async move {
            let unreachable = |reason: String| TransportError::Unreachable {
                node: node.clone(),
                reason,
            };
            let (id, answer) = link.state.register().map_err(unreachable)?;
            let _registered = Registered {
                state: link.state.clone(),
                id,
            };
            let frame = OutFrame {
                kind: FrameKind::Request,
                id,
                payload,
            };
            let lost = || {
                link.state
                    .closed_reason()
                    .unwrap_or_else(|| "the connection closed".to_owned())
            };
            if link.queue.send(frame).await.is_err() {
                return Err(unreachable(lost()));
            }
            // Queued: the peer may have taken it, whatever happened to the answer.
            let bytes = answer.await.map_err(|_| TransportError::Lost {
                node: node.clone(),
                reason: lost(),
            })?;
            decode_response(&bytes).map_err(|e| TransportError::Protocol {
                node: node.clone(),
                reason: e.to_string(),
            })
        })
    }
}

/// Everything needed to open and run one connection.
struct Connection {
    local: NodeId,
    peer: NodeId,
    addr: SocketAddr,
    source: Option<IpAddr>,
    secret: ClusterSecret,
    settings: StreamSettings,
}

impl Connection {
    /// Connects, upgrades, then moves frames until the connection breaks or the link is dropped.
    async fn run(self, state: Arc<LinkState>, frames: mpsc::Receiver<OutFrame>) {
        let opened = tokio::time::timeout(self.settings.connect_timeout, self.open()).await;
        let (stream, already) = match opened {
            Ok(Ok(opened)) => opened,
            Ok(Err(reason)) => return state.close(reason),
            Err(_) => {
                return state.close(format!(
                    "connecting to {} took longer than {} ms",
                    self.addr,
                    self.settings.connect_timeout.as_millis()
                ))
            }
        };
        tracing::debug!(node = %self.local, peer = %self.peer, addr = %self.addr, "internal stream connected");
        let (read_half, write_half) = stream.into_split();
        let mut reader = FrameReader::new(read_half, already, self.settings.max_message_bytes);
        let reading = async {
            loop {
                match reader.next().await {
                    Ok(frame) if frame.kind == FrameKind::Response => {
                        state.deliver(frame.id, frame.payload)
                    }
                    Ok(frame) => {
                        break StreamError::Protocol(format!(
                            "the peer sent a {:?} frame",
                            frame.kind
                        ))
                    }
                    Err(error) => break error,
                }
            }
        };
        let reason = tokio::select! {
            error = reading => match error {
                StreamError::Closed => "the peer closed the connection".to_owned(),
                error => error.to_string(),
            },
            result = write_frames(write_half, frames) => match result {
                // Every sender is gone: the transport dropped this link.
                Ok(()) => "link dropped".to_owned(),
                Err(error) => format!("writing to the connection failed: {error}"),
            },
        };
        tracing::debug!(node = %self.local, peer = %self.peer, %reason, "internal stream closed");
        state.close(format!("connection to {} lost: {reason}", self.addr));
    }

    /// A TCP connection from this node's address, upgraded to the stream protocol. Returns it
    /// with any bytes read past the upgrade answer.
    async fn open(&self) -> Result<(TcpStream, BytesMut), String> {
        let socket = match self.addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(|e| format!("cannot create a socket: {e}"))?;
        if let Some(ip) = self.source {
            socket
                .bind(SocketAddr::new(ip, 0))
                .map_err(|e| format!("cannot bind the source address {ip}: {e}"))?;
        }
        let mut stream = socket
            .connect(self.addr)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", self.addr))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("cannot set TCP_NODELAY: {e}"))?;
        let upgrade = format!(
            "GET {STREAM_PATH} HTTP/1.1\r\nhost: {addr}\r\nconnection: upgrade\r\nupgrade: {STREAM_PROTOCOL}\r\n{SECRET_HEADER}: {secret}\r\n{FROM_HEADER}: {local}\r\n\r\n",
            addr = self.addr,
            secret = self.secret.as_str(),
            local = self.local,
        );
        stream
            .write_all(upgrade.as_bytes())
            .await
            .map_err(|e| format!("cannot send the upgrade to {}: {e}", self.addr))?;
        let mut buf = BytesMut::with_capacity(1024);
        let head_len = loop {
            if let Some(end) = find_head_end(&buf) {
                break end;
            }
            if buf.len() > MAX_HANDSHAKE_BYTES {
                return Err(format!(
                    "{} answered the upgrade with over {MAX_HANDSHAKE_BYTES} bytes of headers",
                    self.addr
                ));
            }
            let read = stream.read_buf(&mut buf).await.map_err(|e| {
                format!("reading the upgrade answer from {} failed: {e}", self.addr)
            })?;
            if read == 0 {
                return Err(format!(
                    "{} closed the connection during the upgrade",
                    self.addr
                ));
            }
        };
        let head = buf.split_to(head_len);
        let status_line = head[..].split(|b| *b == b'\r').next().unwrap_or_default();
        if !status_line.starts_with(b"HTTP/1.1 101") {
            // The refusal's body (a JSON error) may have come along; say what there is of it.
            let body = String::from_utf8_lossy(&buf[..buf.len().min(300)]).into_owned();
            return Err(format!(
                "{} refused the internal stream: {} {body}",
                self.addr,
                String::from_utf8_lossy(status_line)
            ));
        }
        Ok((stream, buf))
    }
}

/// The length of an HTTP head (through the blank line), if `buf` holds all of it.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_of_an_http_head_is_found() {
        assert_eq!(find_head_end(b"HTTP/1.1 101 OK\r\n\r\nrest"), Some(19));
        assert_eq!(find_head_end(b"HTTP/1.1 101 OK\r\n"), None);
    }

    #[test]
    fn a_closed_link_takes_no_calls_and_fails_the_waiting_ones() {
        let state = LinkState::default();
        let (id, mut answer) = state.register().unwrap();
        let (other, _kept) = state.register().unwrap();
        assert_ne!(id, other);
        state.close("gone".to_owned());
        assert!(answer.try_recv().is_err());
        assert_eq!(state.register().unwrap_err(), "gone");
        // The first reason stays.
        state.close("later".to_owned());
        assert_eq!(state.closed_reason().as_deref(), Some("gone"));
    }

    #[test]
    fn answers_reach_their_own_call_and_late_ones_are_dropped() {
        let state = LinkState::default();
        let (a, mut answer_a) = state.register().unwrap();
        let (b, mut answer_b) = state.register().unwrap();
        state.deliver(b, Bytes::from_static(b"b"));
        state.deliver(a, Bytes::from_static(b"a"));
        assert_eq!(answer_a.try_recv().unwrap(), Bytes::from_static(b"a"));
        assert_eq!(answer_b.try_recv().unwrap(), Bytes::from_static(b"b"));
        let (c, _answer_c) = state.register().unwrap();
        state.forget(c);
        state.deliver(c, Bytes::from_static(b"late"));
        assert!(state.lock().answers.is_empty());
    }
}
