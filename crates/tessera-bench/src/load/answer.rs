//! Judges one complete HTTP/1.1 answer, so that the worker only sends and counts.
//!
//! - Tessera and etcd's gateway (HTTP/1.1): a 2xx or `300 Multiple Choices` is a success; any
//!   other status is [`Failure::Status`]. `X-Siblings` above 1 marks a success as having siblings.
//! - etcd's gRPC (HTTP/2) is judged as it is read, by `grpc_conn`: gRPC answers errors with HTTP
//!   200 and a non-zero `grpc-status`, so the HTTP status alone would count every refused call as
//!   done. A success is HTTP 200, `grpc-status: 0` and one complete message; a non-zero status is
//!   [`Failure::Grpc`], anything else [`Failure::Malformed`].
//!
//! Every answer's body is read to its end (frames and trailers included) before it is judged, so
//! that the next request finds the connection ready and the latency covers the whole answer.

use super::etcd_grpc::GrpcError;
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

/// An HTTP/1.1 answer with `status` and `X-Siblings: siblings`.
pub fn judge_http(status: u16, siblings: Option<u64>) -> Result<Answer, Failure> {
    if (200..300).contains(&status) || status == 300 {
        Ok(Answer {
            siblings: siblings.is_some_and(|n| n > 1),
        })
    } else {
        Err(Failure::Status(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successes_are_2xx_and_300() {
        assert!(judge_http(200, None).is_ok());
        assert!(judge_http(204, None).is_ok());
        assert!(judge_http(300, Some(2)).is_ok_and(|a| a.siblings));
        assert!(judge_http(200, Some(1)).is_ok_and(|a| !a.siblings));
        assert_eq!(judge_http(503, None).err(), Some(Failure::Status(503)));
        assert_eq!(judge_http(404, None).err(), Some(Failure::Status(404)));
        assert_eq!(judge_http(301, None).err(), Some(Failure::Status(301)));
    }
}
