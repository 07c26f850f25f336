//! The seam between the cluster logic and the network.
//!
//! The coordinator talks to peers only through [`Transport`], and a node
//! serves peers only through [`Handler`]; the real HTTP transport lives in
//! `tessera-server`, and `sim::SimNetwork` (behind the `sim` feature) is an
//! in-memory one for deterministic tests. Both traits return boxed `'static`
//! futures so that they stay object-safe and callers can spawn what they get
//! back.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::messages::{Request, Response};

/// A node's name, as used in replica lists and membership.
pub type NodeId = String;

/// A boxed, sendable future (what the `futures` crate calls `BoxFuture`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a call to a peer produced no usable response.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The request was not delivered (connection refused, no route, node gone): the node did
    /// not act on it.
    #[error("node {node} is unreachable: {reason}")]
    Unreachable {
        /// The peer.
        node: NodeId,
        /// What the network said.
        reason: String,
    },
    /// The request may have reached the node, but no answer came back (the connection broke
    /// while the call waited). Unlike [`TransportError::Unreachable`], the node may have acted.
    #[error("node {node} did not answer, and may have taken the request: {reason}")]
    Lost {
        /// The peer.
        node: NodeId,
        /// What the network said.
        reason: String,
    },
    /// The transport gave up waiting (callers usually apply their own deadline too).
    #[error("node {node} did not answer in time")]
    Timeout {
        /// The peer.
        node: NodeId,
    },
    /// The peer answered with a failure outside the protocol (an HTTP 5xx, say).
    #[error("node {node} failed: {message}")]
    Remote {
        /// The peer.
        node: NodeId,
        /// The peer's message.
        message: String,
    },
    /// The peer's answer could not be decoded.
    #[error("node {node} broke the protocol: {reason}")]
    Protocol {
        /// The peer.
        node: NodeId,
        /// What was wrong with the answer.
        reason: String,
    },
}

impl TransportError {
    /// The peer the error is about.
    pub fn node(&self) -> &NodeId {
        match self {
            TransportError::Unreachable { node, .. }
            | TransportError::Lost { node, .. }
            | TransportError::Timeout { node }
            | TransportError::Remote { node, .. }
            | TransportError::Protocol { node, .. } => node,
        }
    }
}

/// How a node sends internal requests to its peers.
pub trait Transport: Send + Sync + 'static {
    /// One request to one node; the caller applies its own deadline.
    fn call(
        &self,
        to: &NodeId,
        request: Request,
    ) -> BoxFuture<'static, Result<Response, TransportError>>;
}

impl<T: Transport + ?Sized> Transport for Arc<T> {
    fn call(
        &self,
        to: &NodeId,
        request: Request,
    ) -> BoxFuture<'static, Result<Response, TransportError>> {
        (**self).call(to, request)
    }
}

/// What a node runs for incoming internal requests.
///
/// Failures are answered, not thrown: a handler returns
/// [`Response::Error`] so the caller learns why.
pub trait Handler: Send + Sync + 'static {
    /// Serves one request from peer `from`.
    fn handle(&self, from: &NodeId, request: Request) -> BoxFuture<'static, Response>;
}

impl<H: Handler + ?Sized> Handler for Arc<H> {
    fn handle(&self, from: &NodeId, request: Request) -> BoxFuture<'static, Response> {
        (**self).handle(from, request)
    }
}
