//! The wire form of a [`Message`]: a format version byte, then postcard.
//!
//! Messages are built to fit `Config::max_payload` (the state machine measures every piggybacked
//! item before adding it); [`Message::decode`] accepts up to [`MAX_DATAGRAM`] bytes and never
//! panics, whatever the input.

use crate::{MembershipError, Message};
use serde::Serialize;

/// The format version byte that starts every encoded message.
pub const MESSAGE_FORMAT_VERSION: u8 = 1;

/// The largest payload a UDP datagram can carry; anything longer is not ours.
pub const MAX_DATAGRAM: usize = 65_507;

/// Postcard's encoded length of `value`, for budgeting.
pub(crate) fn encoded_size<T: Serialize + ?Sized>(value: &T) -> usize {
    // Sizing plain data cannot fail; a huge answer only makes the item never fit.
    postcard::experimental::serialized_size(value).unwrap_or(usize::MAX)
}

impl Message {
    /// The message as bytes: [`MESSAGE_FORMAT_VERSION`], then postcard.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising strings and integers into a Vec cannot fail; a bare version byte would only
        // make `decode` report the message as malformed.
        postcard::to_extend(self, vec![MESSAGE_FORMAT_VERSION])
            .unwrap_or_else(|_| vec![MESSAGE_FORMAT_VERSION])
    }

    /// The length of [`Message::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        1 + encoded_size(self)
    }

    /// A message from [`Message::encode`]'s bytes.
    pub fn decode(bytes: &[u8]) -> Result<Message, MembershipError> {
        if bytes.len() > MAX_DATAGRAM {
            return Err(MembershipError::TooLarge {
                len: bytes.len(),
                max: MAX_DATAGRAM,
            });
        }
        let Some((&version, body)) = bytes.split_first() else {
            return Err(MembershipError::EmptyEncoding);
        };
        if version != MESSAGE_FORMAT_VERSION {
            return Err(MembershipError::UnsupportedVersion {
                found: version,
                supported: MESSAGE_FORMAT_VERSION,
            });
        }
        let malformed = |reason: String| MembershipError::Malformed {
            len: bytes.len(),
            reason,
        };
        let (message, rest) = postcard::take_from_bytes::<Message>(body)
            .map_err(|e| malformed(format!("cannot decode the message: {e}")))?;
        if !rest.is_empty() {
            return Err(malformed(format!(
                "{} trailing bytes after the message",
                rest.len()
            )));
        }
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{Delta, Digest, DigestEntry, NodeDelta, NodeKey, VersionedValue};
    use crate::{Body, MemberId, State, Update};
    use proptest::prelude::*;

    fn sample() -> Message {
        let id = MemberId::new("n1", "10.0.0.1:7946", 1_700_000_000_000);
        Message {
            from: id.clone(),
            incarnation: 3,
            body: Body::GossipSynAck {
                digest: Digest {
                    entries: vec![DigestEntry {
                        node: NodeKey::new("n2", 5),
                        heartbeat: 9,
                        max_version: 2,
                    }],
                    complete: true,
                },
                delta: Delta {
                    nodes: vec![NodeDelta {
                        node: NodeKey::new("n1", 1_700_000_000_000),
                        heartbeat: 4,
                        from_version: 0,
                        to_version: 1,
                        kvs: vec![(
                            "status".into(),
                            VersionedValue {
                                value: Some("normal".into()),
                                version: 1,
                            },
                        )],
                    }],
                },
            },
            updates: vec![Update {
                id,
                incarnation: 3,
                state: State::Suspect,
                by: Some("n3".into()),
            }],
        }
    }

    #[test]
    fn layout_is_version_byte_then_postcard() {
        let m = sample();
        let bytes = m.encode();
        assert_eq!(bytes[0], MESSAGE_FORMAT_VERSION);
        assert_eq!(bytes.len(), m.encoded_len());
        assert_eq!(postcard::from_bytes::<Message>(&bytes[1..]).unwrap(), m);
        assert_eq!(Message::decode(&bytes), Ok(m));
    }

    #[test]
    fn rejects_bad_framing() {
        let bytes = sample().encode();
        assert_eq!(Message::decode(&[]), Err(MembershipError::EmptyEncoding));
        let mut versioned = bytes.clone();
        versioned[0] = 2;
        assert!(matches!(
            Message::decode(&versioned),
            Err(MembershipError::UnsupportedVersion { found: 2, .. })
        ));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            Message::decode(&trailing),
            Err(MembershipError::Malformed { .. })
        ));
        for cut in 1..bytes.len() {
            assert!(Message::decode(&bytes[..cut]).is_err());
        }
        assert!(matches!(
            Message::decode(&vec![1; MAX_DATAGRAM + 1]),
            Err(MembershipError::TooLarge { .. })
        ));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = Message::decode(&bytes);
            let mut versioned = bytes;
            versioned.insert(0, MESSAGE_FORMAT_VERSION);
            let _ = Message::decode(&versioned);
        }

        #[test]
        fn mutated_messages_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
            let mut bytes = sample().encode();
            for (at, value) in flips {
                let i = at % bytes.len();
                bytes[i] = value;
            }
            let _ = Message::decode(&bytes);
        }
    }
}
