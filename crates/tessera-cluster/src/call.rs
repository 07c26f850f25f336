//! One call to one peer, with a deadline, and how its failures read.
//!
//! The read and write paths, hint delivery and (later) streaming and anti-entropy all call peers
//! the same way: start the request now, wait until a deadline, and turn whatever went wrong into
//! a short reason that names the cause, for quorum failures and worker status. They share this
//! module instead of each other.

use std::future::Future;

use tokio::time::Instant;

use crate::messages::{ErrorKind, Request, Response};
use crate::transport::{NodeId, Transport, TransportError};

/// Why a call to a peer produced no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CallFailure {
    /// The peer failed or could not be reached.
    Failed(String),
    /// The deadline passed first. For a quorum this is not a failure but a replica still
    /// pending when time ran out, so the verdict is a timeout.
    Deadline(String),
}

impl CallFailure {
    pub(crate) fn reason(self) -> String {
        match self {
            CallFailure::Failed(reason) | CallFailure::Deadline(reason) => reason,
        }
    }
}

/// Starts `request` to `node` now and returns a future of its answer by `deadline`, or of why
/// there is none. A [`Response::Error`] is an answer.
pub(crate) fn call<T: Transport + ?Sized>(
    transport: &T,
    node: &NodeId,
    request: Request,
    deadline: Instant,
) -> impl Future<Output = Result<Response, CallFailure>> + Send + 'static {
    let call = transport.call(node, request);
    let waited = deadline.saturating_duration_since(Instant::now());
    async move {
        match tokio::time::timeout_at(deadline, call).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(CallFailure::Failed(transport_reason(&error))),
            Err(_) => Err(CallFailure::Deadline(format!(
                "no answer within {} ms",
                waited.as_millis()
            ))),
        }
    }
}

/// A short failure reason; the node is named next to it already.
fn transport_reason(error: &TransportError) -> String {
    match error {
        TransportError::Unreachable { reason, .. } => format!("unreachable: {reason}"),
        TransportError::Lost { reason, .. } => format!("answer lost: {reason}"),
        TransportError::Timeout { .. } => "transport timeout".to_owned(),
        TransportError::Remote { message, .. } => format!("remote failure: {message}"),
        TransportError::Protocol { reason, .. } => format!("protocol error: {reason}"),
    }
}

/// Describes a response of the wrong kind (or a remote failure) as a failure reason.
pub(crate) fn unexpected(response: &Response) -> String {
    match response {
        Response::Error { kind, message } => format!("remote {}: {message}", kind_name(kind)),
        other => format!("protocol error: unexpected {} response", other.name()),
    }
}

fn kind_name(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::BadRequest => "bad request",
        ErrorKind::InvalidInput => "invalid input",
        ErrorKind::Storage => "storage failure",
        ErrorKind::TooManySiblings { .. } => "too many siblings",
        ErrorKind::Unavailable(_) => "unavailable",
        ErrorKind::QuorumFailed(_) => "quorum failure",
        ErrorKind::Timeout { .. } => "timeout",
        ErrorKind::Forward { .. } => "forwarding failure",
        ErrorKind::NotCoordinator => "not a coordinator",
        ErrorKind::Internal => "internal error",
        ErrorKind::HintLimit { .. } => "hint limit reached",
    }
}
