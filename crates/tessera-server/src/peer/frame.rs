//! The framing of the internal RPC stream: many requests and responses interleaved on one
//! connection, each tagged with the id of the call it belongs to.
//!
//! A frame is `len: u32 BE | kind: u8 | id: u64 BE | payload`, where `len` counts everything
//! after itself. The payload is an encoded `tessera_cluster` message, which carries its own
//! protocol version byte; the stream's own version is negotiated once, in the HTTP upgrade
//! (`Upgrade: tessera-rpc/1`, see [`super::stream`]). Ids let answers come back out of order, so
//! a slow read on one replica never holds up the acks of writes behind it.
//!
//! Decoding never trusts the peer: a length beyond the configured maximum, or an unknown kind, is
//! an error that closes the connection, before any of the payload is buffered.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The protocol token of the stream, as sent in the `Upgrade` header.
pub const STREAM_PROTOCOL: &str = "tessera-rpc/1";

/// Bytes of a frame header after the length prefix: kind and id.
const HEADER_AFTER_LEN: usize = 1 + 8;
/// Bytes of the length prefix.
const LEN_BYTES: usize = 4;

/// Which way a frame goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// A call, from the node that opened the stream.
    Request,
    /// The answer to the call with the same id.
    Response,
}

impl FrameKind {
    fn byte(self) -> u8 {
        match self {
            FrameKind::Request => 1,
            FrameKind::Response => 2,
        }
    }

    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(FrameKind::Request),
            2 => Some(FrameKind::Response),
            _ => None,
        }
    }
}

/// One decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub kind: FrameKind,
    pub id: u64,
    pub payload: Bytes,
}

/// Why a stream's bytes are not frames.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes is larger than the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("frame of {len} bytes is shorter than its {HEADER_AFTER_LEN}-byte header")]
    TooShort { len: usize },
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
}

/// Appends one frame to `out`.
pub fn encode_frame(kind: FrameKind, id: u64, payload: &[u8], out: &mut BytesMut) {
    let len = HEADER_AFTER_LEN + payload.len();
    out.reserve(LEN_BYTES + len);
    // Payloads are bounded by max_internal_message_bytes, far below 4 GiB; a longer one is a bug
    // upstream, and saturating makes the peer reject it as too large rather than misframe.
    out.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    out.put_u8(kind.byte());
    out.put_u64(id);
    out.put_slice(payload);
}

/// Takes the next whole frame off the front of `buf`, if it holds one. `max_payload` bounds
/// what a peer can make this node buffer.
pub fn decode_frame(buf: &mut BytesMut, max_payload: usize) -> Result<Option<Frame>, FrameError> {
    if buf.len() < LEN_BYTES {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let max = max_payload.saturating_add(HEADER_AFTER_LEN);
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    if len < HEADER_AFTER_LEN {
        return Err(FrameError::TooShort { len });
    }
    let kind = match buf.get(LEN_BYTES) {
        Some(&byte) => FrameKind::from_byte(byte).ok_or(FrameError::UnknownKind(byte))?,
        None => return Ok(None),
    };
    if buf.len() < LEN_BYTES + len {
        // Ask for the rest in one allocation rather than many small ones.
        buf.reserve(LEN_BYTES + len - buf.len());
        return Ok(None);
    }
    buf.advance(LEN_BYTES + 1);
    let id = buf.get_u64();
    let payload = buf.split_to(len - HEADER_AFTER_LEN).freeze();
    Ok(Some(Frame { kind, id, payload }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_round_trip_one_by_one_and_back_to_back() {
        let mut buf = BytesMut::new();
        encode_frame(FrameKind::Request, 7, b"hello", &mut buf);
        encode_frame(FrameKind::Response, u64::MAX, b"", &mut buf);
        let first = decode_frame(&mut buf, 1024).unwrap().unwrap();
        assert_eq!(
            first,
            Frame {
                kind: FrameKind::Request,
                id: 7,
                payload: Bytes::from_static(b"hello")
            }
        );
        let second = decode_frame(&mut buf, 1024).unwrap().unwrap();
        assert_eq!(second.kind, FrameKind::Response);
        assert_eq!(second.id, u64::MAX);
        assert!(second.payload.is_empty());
        assert_eq!(decode_frame(&mut buf, 1024), Ok(None));
    }

    #[test]
    fn a_partial_frame_waits_for_the_rest() {
        let mut whole = BytesMut::new();
        encode_frame(FrameKind::Request, 1, &[9; 100], &mut whole);
        let mut buf = BytesMut::new();
        for (i, byte) in whole.iter().enumerate() {
            buf.put_u8(*byte);
            let decoded = decode_frame(&mut buf, 1024).unwrap();
            assert_eq!(decoded.is_some(), i == whole.len() - 1);
        }
    }

    #[test]
    fn oversized_short_and_unknown_frames_are_refused() {
        let mut buf = BytesMut::new();
        encode_frame(FrameKind::Request, 1, &[0; 65], &mut buf);
        assert!(matches!(
            decode_frame(&mut buf.clone(), 64),
            Err(FrameError::TooLarge { .. })
        ));
        // The length alone is enough to refuse: nothing of the payload need have arrived.
        let mut header_only = BytesMut::from(&u32::MAX.to_be_bytes()[..]);
        assert!(matches!(
            decode_frame(&mut header_only, 64),
            Err(FrameError::TooLarge { .. })
        ));
        let mut short = BytesMut::from(&[0, 0, 0, 3, 1, 0, 0][..]);
        assert_eq!(
            decode_frame(&mut short, 64),
            Err(FrameError::TooShort { len: 3 })
        );
        let mut unknown = BytesMut::from(&[0, 0, 0, 9, 7][..]);
        assert_eq!(
            decode_frame(&mut unknown, 64),
            Err(FrameError::UnknownKind(7))
        );
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut buf = BytesMut::from(&bytes[..]);
            // Either frames, a wait for more, or an error: never a panic or a loop.
            for _ in 0..bytes.len() + 1 {
                match decode_frame(&mut buf, 128) {
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => break,
                }
            }
        }

        #[test]
        fn any_frames_round_trip(frames in proptest::collection::vec(
            (any::<bool>(), any::<u64>(), proptest::collection::vec(any::<u8>(), 0..64)), 0..16)
        ) {
            let mut buf = BytesMut::new();
            for (request, id, payload) in &frames {
                let kind = if *request { FrameKind::Request } else { FrameKind::Response };
                encode_frame(kind, *id, payload, &mut buf);
            }
            for (request, id, payload) in &frames {
                let frame = decode_frame(&mut buf, 64).unwrap().unwrap();
                prop_assert_eq!(frame.kind == FrameKind::Request, *request);
                prop_assert_eq!(frame.id, *id);
                prop_assert_eq!(&frame.payload[..], &payload[..]);
            }
            prop_assert!(buf.is_empty());
        }
    }
}
