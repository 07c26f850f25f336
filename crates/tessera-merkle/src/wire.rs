//! The messages of an exchange and their versioned encoding.
//!
//! Every message names its exchange (table, partition, session), carries the sender's
//! [`TreeShape`] (which holds the format version) and a sequence number: the initiator numbers its
//! requests 0, 1, 2, ... and the responder echoes the number in its reply, which is how both sides
//! recognise duplicates and stale messages on a network that loses, repeats and reorders them.
//!
//! The types derive serde, so the cluster's RPC can carry them inside its own versioned envelope;
//! [`Message::encode`] and [`Message::decode`] are the standalone form, `[MERKLE_FORMAT_VERSION]
//! ++ postcard(message)`. Decoding never panics and never allocates more than its input holds.

use serde::{Deserialize, Serialize};

use crate::cells::{CellDigest, CellId};
use crate::digest::Digest;
use crate::error::MerkleError;
use crate::shape::{BranchId, PartitionId, SegmentId, TreeShape, MERKLE_FORMAT_VERSION};

/// Which exchange a message belongs to. The initiator picks `session` (a counter or a random
/// number), unique among its exchanges of this (table, partition) with this peer, so that a
/// restarted exchange never mistakes the previous one's late messages for its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ExchangeId {
    /// The table's numeric id.
    pub table: u32,
    /// The ring partition whose trees are compared.
    pub partition: PartitionId,
    /// The initiator's session number.
    pub session: u64,
}

/// One message of an exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The sender's tree shape, format version included.
    pub shape: TreeShape,
    /// The exchange.
    pub exchange: ExchangeId,
    /// The request's number; a reply carries the number of the request it answers.
    pub seq: u32,
    /// What the message says.
    pub body: Body,
}

/// What a message says. Requests go from initiator to responder, replies back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// Request 0: the initiator's root. Starts an exchange at the responder.
    Root {
        /// The initiator's root digest.
        root: Digest,
    },
    /// Reply to `Root`: the roots are equal, the exchange is over.
    InSync,
    /// Reply to `Root`: the roots differ; every branch digest of the responder, in order.
    Branches {
        /// The responder's branch digests.
        digests: Vec<Digest>,
    },
    /// Request: the segment digests under these branches (strictly ascending).
    LeavesRequest {
        /// Branches whose digests differ.
        branches: Vec<BranchId>,
    },
    /// Reply to `LeavesRequest`: the responder's segment digests under the requested branches,
    /// branch after branch.
    Leaves {
        /// The responder's segment digests.
        digests: Vec<Digest>,
    },
    /// Request: the cell digests of these segments (strictly ascending), in storage order,
    /// strictly after `after`, at most `limit` of them.
    CellsRequest {
        /// Segments whose digests differ.
        segments: Vec<SegmentId>,
        /// Where the previous page ended.
        after: Option<CellId>,
        /// Most cells wanted.
        limit: u32,
    },
    /// Reply to `CellsRequest`.
    Cells {
        /// The cells, in storage order.
        cells: Vec<CellDigest>,
        /// No cell of the requested segments follows the last one sent.
        complete: bool,
    },
    /// The initiator has all it needs; sent without expecting a reply.
    Done,
    /// Either side gives up on the exchange; the other stops too.
    Abort {
        /// Why, for the logs.
        reason: String,
    },
}

impl Body {
    /// The variant's name, for errors and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Body::Root { .. } => "Root",
            Body::InSync => "InSync",
            Body::Branches { .. } => "Branches",
            Body::LeavesRequest { .. } => "LeavesRequest",
            Body::Leaves { .. } => "Leaves",
            Body::CellsRequest { .. } => "CellsRequest",
            Body::Cells { .. } => "Cells",
            Body::Done => "Done",
            Body::Abort { .. } => "Abort",
        }
    }
}

impl Message {
    /// Whether this message starts an exchange at the responder: the integration creates a
    /// [`Responder`](crate::Responder), with a fresh tree snapshot, when such a message names an
    /// exchange it has no responder for.
    pub fn starts_exchange(&self) -> bool {
        matches!(self.body, Body::Root { .. }) && self.seq == 0
    }

    /// The message as bytes: [`MERKLE_FORMAT_VERSION`], then postcard.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain data into a Vec cannot fail; were it to, the bytes would decode as
        // malformed, never as another message.
        postcard::to_extend(self, vec![MERKLE_FORMAT_VERSION])
            .unwrap_or_else(|_| vec![MERKLE_FORMAT_VERSION])
    }

    /// The length of [`Message::encode`]'s output, without encoding: what the exchanges count.
    pub fn encoded_len(&self) -> usize {
        let size = postcard::ser_flavors::Size::default();
        1 + postcard::serialize_with_flavor::<Self, _, usize>(self, size).unwrap_or(0)
    }

    /// A message from [`Message::encode`]'s bytes. Never panics, whatever the input.
    pub fn decode(bytes: &[u8]) -> Result<Message, MerkleError> {
        let Some((&version, body)) = bytes.split_first() else {
            return Err(MerkleError::EmptyEncoding {
                what: "exchange message",
            });
        };
        if version != MERKLE_FORMAT_VERSION {
            return Err(MerkleError::UnsupportedVersion {
                found: version,
                supported: MERKLE_FORMAT_VERSION,
            });
        }
        let malformed = |reason: String| MerkleError::Malformed {
            what: "exchange message",
            len: bytes.len(),
            reason,
        };
        let (message, rest) = postcard::take_from_bytes::<Message>(body)
            .map_err(|e| malformed(format!("cannot decode: {e}")))?;
        if !rest.is_empty() {
            return Err(malformed(format!("{} trailing bytes", rest.len())));
        }
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn message(body: Body) -> Message {
        Message {
            shape: TreeShape::with_default_fanout(256).unwrap(),
            exchange: ExchangeId {
                table: 7,
                partition: 3,
                session: 99,
            },
            seq: 2,
            body,
        }
    }

    fn samples() -> Vec<Message> {
        vec![
            message(Body::Root {
                root: Digest::from_bytes([1; 16]),
            }),
            message(Body::InSync),
            message(Body::Branches {
                digests: vec![Digest::from_bytes([2; 16]); 32],
            }),
            message(Body::LeavesRequest {
                branches: vec![1, 5],
            }),
            message(Body::Leaves {
                digests: vec![Digest::ZERO; 64],
            }),
            message(Body::CellsRequest {
                segments: vec![3, 4],
                after: Some(CellId::new(5, *b"k", *b"c")),
                limit: 100,
            }),
            message(Body::Cells {
                cells: vec![CellDigest::of_cell(5, *b"k", *b"c", b"v")],
                complete: true,
            }),
            message(Body::Done),
            message(Body::Abort {
                reason: "bye".to_owned(),
            }),
        ]
    }

    #[test]
    fn round_trips_and_counts_its_bytes() {
        for m in samples() {
            let bytes = m.encode();
            assert_eq!(bytes[0], MERKLE_FORMAT_VERSION);
            assert_eq!(bytes.len(), m.encoded_len(), "{}", m.body.name());
            assert_eq!(Message::decode(&bytes), Ok(m));
        }
    }

    #[test]
    fn bad_framing_is_an_error() {
        let bytes = message(Body::Done).encode();
        assert_eq!(
            Message::decode(&[]),
            Err(MerkleError::EmptyEncoding {
                what: "exchange message"
            })
        );
        let mut foreign = bytes.clone();
        foreign[0] = MERKLE_FORMAT_VERSION + 1;
        assert_eq!(
            Message::decode(&foreign),
            Err(MerkleError::UnsupportedVersion {
                found: MERKLE_FORMAT_VERSION + 1,
                supported: MERKLE_FORMAT_VERSION
            })
        );
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            Message::decode(&trailing),
            Err(MerkleError::Malformed { .. })
        ));
        for cut in 1..bytes.len() {
            assert!(matches!(
                Message::decode(&bytes[..cut]),
                Err(MerkleError::Malformed { .. })
            ));
        }
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Message::decode(&bytes);
        }

        /// Flipping any byte of a valid message gives an error or some valid message, never a
        /// panic.
        #[test]
        fn corrupted_messages_never_panic(which in 0usize..9, at: usize, byte: u8) {
            let mut bytes = samples()[which].encode();
            let at = at % bytes.len();
            bytes[at] = byte;
            let _ = Message::decode(&bytes);
        }
    }
}
