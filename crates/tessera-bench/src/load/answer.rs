//! Reads one answer in full and judges it, so that the worker only sends and counts.
//!
//! - Tessera and etcd's gateway (HTTP/1.1): a 2xx or `300 Multiple Choices` is a success; any
//!   other status is [`Failure::Status`]. `X-Siblings` above 1 marks a success as having siblings.
//! - etcd's gRPC (HTTP/2): gRPC answers errors with HTTP 200 and a non-zero `grpc-status`, so the
//!   HTTP status alone would count every refused call as done. A success is HTTP 200,
//!   `grpc-status: 0` and one complete message; a non-zero status is [`Failure::Grpc`], anything
//!   else [`Failure::Malformed`].
//!
//! Every answer's body is read to its end (frames and trailers), so that the next request finds
//! the connection ready and the latency covers the whole answer.

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Response, StatusCode};

use super::etcd_grpc::{FrameCheck, GrpcError};
use super::request::Protocol;
use super::worker::Failure;

/// A successful answer.
pub struct Answer {
    /// The cell holds siblings (Tessera only).
    pub siblings: bool,
}

impl From<GrpcError> for Failure {
    fn from(error: GrpcError) -> Self {
        match error {
            GrpcError::Status(code) => Failure::Grpc(code),
            GrpcError::Malformed => Failure::Malformed,
        }
    }
}

/// Reads `response` to its end and judges it. The outer error is a broken exchange (the
/// connection is no longer usable); the inner one a complete answer that is not a success.
pub async fn read(
    response: Response<Incoming>,
    protocol: Protocol,
) -> Result<Result<Answer, Failure>, hyper::Error> {
    match protocol {
        Protocol::Tessera | Protocol::Etcd => read_http(response).await,
        Protocol::EtcdGrpc => read_grpc(response).await,
    }
}

async fn read_http(response: Response<Incoming>) -> Result<Result<Answer, Failure>, hyper::Error> {
    let status = response.status();
    let siblings = response
        .headers()
        .get("x-siblings")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > 1);
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        frame?;
    }
    Ok(
        if status.is_success() || status == StatusCode::MULTIPLE_CHOICES {
            Ok(Answer { siblings })
        } else {
            Err(Failure::Status(status.as_u16()))
        },
    )
}

async fn read_grpc(response: Response<Incoming>) -> Result<Result<Answer, Failure>, hyper::Error> {
    let (head, mut body) = response.into_parts();
    let mut check = FrameCheck::default();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        match frame?.into_data() {
            Ok(data) => check.data(&data),
            Err(frame) => {
                if let Ok(map) = frame.into_trailers() {
                    trailers = Some(map);
                }
            }
        }
    }
    if head.status != StatusCode::OK {
        return Ok(Err(Failure::Status(head.status.as_u16())));
    }
    Ok(check
        .finish(&head.headers, trailers.as_ref())
        .map(|()| Answer { siblings: false })
        .map_err(Failure::from))
}
