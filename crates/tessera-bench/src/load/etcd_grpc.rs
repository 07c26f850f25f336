//! etcd's native gRPC API, hand-encoded: the two request messages, gRPC's framing, and the checks
//! that make an answer a success (`grpc-status: 0`, one well-framed message).
//!
//! `--protocol etcd` goes through etcd's grpc-gateway, a JSON proxy inside etcd that re-dials
//! etcd's own gRPC server; this module lets the benchmark skip it and compare against etcd at its
//! best. The keys, values and mix are those of the gateway run:
//! - write: `/etcdserverpb.KV/Put` with `PutRequest { key: 1, value: 2 }`;
//! - read: `/etcdserverpb.KV/Range` with `RangeRequest { key: 1 }`. `serializable` (field 7) is
//!   left false, its default, so it is not encoded and the read is linearizable, as through the
//!   gateway.
//!
//! The messages are two `bytes` fields, so they are written by hand rather than through
//! tonic/prost and a protoc build step: a field is its tag byte `(number << 3) | 2`, a varint
//! length and the bytes. gRPC prefixes each message with a compressed flag (0) and its length as a
//! 4-byte big-endian integer. The value is the same for every write, so its field is encoded once.
//!
//! A reply is judged by its `grpc-status` (in the trailers, or in the headers of a trailers-only
//! error reply) and by its framing; its message is not decoded, since the benchmark only needs to
//! know that etcd did the operation.

use bytes::Bytes;
use hyper::HeaderMap;

use super::etcd;

/// The write method's path.
pub const PUT_PATH: &str = "/etcdserverpb.KV/Put";
/// The read method's path.
pub const RANGE_PATH: &str = "/etcdserverpb.KV/Range";
/// The request and reply content type; etcd also uses it to tell gRPC from its HTTP routes.
pub const CONTENT_TYPE: &str = "application/grpc";

/// Tag of field 1 (`key`), wire type 2 (length-delimited).
const KEY_TAG: u8 = (1 << 3) | 2;
/// Tag of field 2 (`value`), wire type 2.
const VALUE_TAG: u8 = (2 << 3) | 2;
/// The compressed flag and the 4-byte length before every message.
const FRAME_HEADER: usize = 5;
/// The most a frame's 4-byte length can say, less room for the key field.
const MAX_VALUE: usize = u32::MAX as usize - 64;

/// Appends `n` as a protobuf varint: 7 bits a byte, least significant first, high bit = more.
fn varint_into(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Appends a length-delimited field: tag, varint length, bytes.
fn bytes_field_into(tag: u8, bytes: &[u8], out: &mut Vec<u8>) {
    out.push(tag);
    varint_into(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// Appends `message` as one uncompressed gRPC frame. `message` must be shorter than 4 GiB, which
/// [`GrpcBodies::new`] ensures.
fn frame_into(message: &[u8], out: &mut Vec<u8>) {
    out.push(0);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
}

/// The value was too large for one gRPC frame.
#[derive(Debug, thiserror::Error)]
#[error("a {0}-byte value does not fit in one gRPC frame")]
pub struct ValueTooLarge(pub usize);

/// Builds the framed gRPC request bodies for one value.
#[derive(Clone, Debug)]
pub struct GrpcBodies {
    /// The encoded `value` field of `PutRequest`, computed once.
    value_field: Vec<u8>,
}

impl GrpcBodies {
    /// Bodies whose writes all carry `value`.
    pub fn new(value: &[u8]) -> Result<Self, ValueTooLarge> {
        if value.len() > MAX_VALUE {
            return Err(ValueTooLarge(value.len()));
        }
        let mut value_field = Vec::with_capacity(value.len() + 6);
        bytes_field_into(VALUE_TAG, value, &mut value_field);
        Ok(Self { value_field })
    }

    /// The framed `PutRequest { key: "k{n}", value }`.
    pub fn put(&self, n: u64) -> Bytes {
        self.framed(n, &self.value_field)
    }

    /// The framed `RangeRequest { key: "k{n}" }`.
    pub fn range(&self, n: u64) -> Bytes {
        self.framed(n, &[])
    }

    /// One frame holding the key field of `k{n}` followed by `rest` (already encoded fields).
    fn framed(&self, n: u64, rest: &[u8]) -> Bytes {
        // The gateway's keys, so that both runs touch the same data.
        let key = etcd::key(n);
        let mut message = Vec::with_capacity(2 + key.len() + rest.len());
        bytes_field_into(KEY_TAG, key.as_bytes(), &mut message);
        message.extend_from_slice(rest);
        let mut body = Vec::with_capacity(FRAME_HEADER + message.len());
        frame_into(&message, &mut body);
        Bytes::from(body)
    }
}

/// Why a gRPC answer is not a success.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GrpcError {
    /// etcd answered with this non-zero `grpc-status` (e.g. 12, unimplemented, for a wrong path).
    #[error("grpc-status {0}")]
    Status(u32),
    /// The answer had no valid `grpc-status`, or its body was not one complete gRPC message.
    #[error("malformed gRPC answer")]
    Malformed,
}

/// The `grpc-status` of an answer: from the trailers, or from the headers when the answer was
/// trailers-only (how gRPC sends an error without a message). `None` if absent or not a number.
pub fn grpc_status(headers: &HeaderMap, trailers: Option<&HeaderMap>) -> Option<u32> {
    trailers
        .and_then(|t| t.get("grpc-status"))
        .or_else(|| headers.get("grpc-status"))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Follows the frames of a reply body as its chunks arrive, without buffering it, so that the
/// gRPC run drains its answers as cheaply as the HTTP/1.1 runs do.
#[derive(Clone, Debug, Default)]
pub struct FrameCheck {
    /// The frame header being read, and how much of it has arrived.
    header: [u8; FRAME_HEADER],
    header_len: usize,
    /// Bytes of the current message still to come.
    payload_left: u64,
    /// Messages whose header has arrived.
    messages: u64,
    /// A compressed flag other than 0 or 1 was seen.
    bad_flag: bool,
}

impl FrameCheck {
    /// Follows the next chunk of the body.
    pub fn data(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            if self.payload_left > 0 {
                let take = chunk.len().min(self.payload_left as usize);
                self.payload_left -= take as u64;
                chunk = &chunk[take..];
                continue;
            }
            let take = chunk.len().min(FRAME_HEADER - self.header_len);
            self.header[self.header_len..self.header_len + take].copy_from_slice(&chunk[..take]);
            self.header_len += take;
            chunk = &chunk[take..];
            if self.header_len == FRAME_HEADER {
                let [flag, a, b, c, d] = self.header;
                self.bad_flag |= flag > 1;
                self.payload_left = u64::from(u32::from_be_bytes([a, b, c, d]));
                self.header_len = 0;
                self.messages += 1;
            }
        }
    }

    /// Judges the whole answer once the body has ended: `grpc-status` 0 and exactly one complete
    /// message (a unary call's reply) is a success.
    pub fn finish(
        &self,
        headers: &HeaderMap,
        trailers: Option<&HeaderMap>,
    ) -> Result<(), GrpcError> {
        match grpc_status(headers, trailers) {
            None => Err(GrpcError::Malformed),
            Some(0) => {
                let complete = self.header_len == 0 && self.payload_left == 0;
                if complete && self.messages == 1 && !self.bad_flag {
                    Ok(())
                } else {
                    Err(GrpcError::Malformed)
                }
            }
            Some(code) => Err(GrpcError::Status(code)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn varints_follow_protobuf() {
        let encode = |n| {
            let mut out = Vec::new();
            varint_into(n, &mut out);
            out
        };
        assert_eq!(encode(0), [0]);
        assert_eq!(encode(1), [1]);
        assert_eq!(encode(127), [0x7f]);
        assert_eq!(encode(128), [0x80, 0x01]);
        assert_eq!(encode(300), [0xac, 0x02]);
        assert_eq!(encode(16_384), [0x80, 0x80, 0x01]);
    }

    #[test]
    fn put_is_a_framed_put_request() {
        let bodies = GrpcBodies::new(b"hello").unwrap();
        assert_eq!(
            bodies.put(42).as_ref(),
            [
                0, 0, 0, 0, 12, // uncompressed, 12-byte message
                0x0a, 3, b'k', b'4', b'2', // key = "k42"
                0x12, 5, b'h', b'e', b'l', b'l', b'o', // value = "hello"
            ]
        );
    }

    #[test]
    fn range_is_a_framed_range_request_with_the_key_only() {
        let bodies = GrpcBodies::new(b"hello").unwrap();
        // No field 7 (serializable): false is the default, so the read is linearizable.
        assert_eq!(
            bodies.range(7).as_ref(),
            [0, 0, 0, 0, 4, 0x0a, 2, b'k', b'7']
        );
        let long = bodies.range(u64::MAX);
        assert_eq!(&long[..7], [0, 0, 0, 0, 23, 0x0a, 21]);
        assert_eq!(&long[7..], format!("k{}", u64::MAX).as_bytes());
    }

    #[test]
    fn value_lengths_are_varints() {
        let value = [b'a'; 100];
        let put = GrpcBodies::new(&value).unwrap().put(1);
        // key field 4 bytes, value field 2 + 100.
        assert_eq!(&put[..5], [0, 0, 0, 0, 106]);
        assert_eq!(&put[5..11], [0x0a, 2, b'k', b'1', 0x12, 100]);
        assert_eq!(&put[11..], value);
        let value = vec![b'b'; 300];
        let put = GrpcBodies::new(&value).unwrap().put(1);
        assert_eq!(&put[..5], [0, 0, 0, 1, 51]); // 4 + 3 + 300 = 307
        assert_eq!(&put[5..12], [0x0a, 2, b'k', b'1', 0x12, 0xac, 0x02]);
        assert_eq!(put.len(), 5 + 307);
    }

    fn with_status(status: &'static str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert("grpc-status", HeaderValue::from_static(status));
        map
    }

    #[test]
    fn grpc_status_comes_from_trailers_or_a_trailers_only_reply() {
        let empty = HeaderMap::new();
        assert_eq!(grpc_status(&empty, Some(&with_status("0"))), Some(0));
        assert_eq!(grpc_status(&with_status("12"), None), Some(12));
        assert_eq!(
            grpc_status(&with_status("5"), Some(&with_status("0"))),
            Some(0)
        );
        assert_eq!(grpc_status(&empty, None), None);
        assert_eq!(grpc_status(&empty, Some(&empty)), None);
        assert_eq!(grpc_status(&empty, Some(&with_status("ok"))), None);
    }

    /// The body of a reply holding one message of `len` bytes.
    fn reply(len: u32) -> Vec<u8> {
        let mut body = vec![0];
        body.extend_from_slice(&len.to_be_bytes());
        body.extend(std::iter::repeat_n(7, len as usize));
        body
    }

    #[test]
    fn one_complete_message_with_status_0_is_a_success() {
        let empty = HeaderMap::new();
        let ok = with_status("0");
        let mut check = FrameCheck::default();
        check.data(&reply(30));
        assert_eq!(check.finish(&empty, Some(&ok)), Ok(()));
        // However the body is cut into chunks.
        let body = reply(30);
        for cut in [1, 2, 4, 5, 6, 34] {
            let mut check = FrameCheck::default();
            for chunk in body.chunks(cut) {
                check.data(chunk);
            }
            assert_eq!(check.finish(&empty, Some(&ok)), Ok(()), "chunks of {cut}");
        }
        let mut check = FrameCheck::default();
        check.data(&reply(0));
        assert_eq!(check.finish(&empty, Some(&ok)), Ok(()));
    }

    #[test]
    fn bad_framing_or_a_missing_status_is_malformed() {
        let empty = HeaderMap::new();
        let ok = with_status("0");
        let judge = |body: &[u8], trailers: Option<&HeaderMap>| {
            let mut check = FrameCheck::default();
            check.data(body);
            check.finish(&empty, trailers)
        };
        let malformed = Err(GrpcError::Malformed);
        assert_eq!(judge(&[], Some(&ok)), malformed, "no message");
        assert_eq!(judge(&reply(30)[..20], Some(&ok)), malformed, "cut message");
        assert_eq!(judge(&reply(30)[..3], Some(&ok)), malformed, "cut header");
        let two = [reply(3), reply(4)].concat();
        assert_eq!(judge(&two, Some(&ok)), malformed, "two messages");
        let mut flagged = reply(3);
        flagged[0] = 2;
        assert_eq!(judge(&flagged, Some(&ok)), malformed, "bad flag");
        assert_eq!(judge(&reply(3), None), malformed, "no trailers");
        assert_eq!(judge(&reply(3), Some(&empty)), malformed, "no status");
    }

    #[test]
    fn a_non_zero_status_is_that_status() {
        let empty = HeaderMap::new();
        // Trailers-only: the status in the headers, no body.
        let check = FrameCheck::default();
        assert_eq!(
            check.finish(&with_status("12"), None),
            Err(GrpcError::Status(12))
        );
        let mut check = FrameCheck::default();
        check.data(&reply(3));
        assert_eq!(
            check.finish(&empty, Some(&with_status("14"))),
            Err(GrpcError::Status(14))
        );
    }
}
