//! The internal RPC messages nodes exchange, and their versioned encoding.
//!
//! Every encoded message is `[PROTOCOL_VERSION] ++ postcard(message)`, so a
//! later release can change the protocol and still recognise an old peer.
//! Decoding is defensive: bytes from the network can be anything, and the
//! answer to garbage is a [`MessageError`], never a panic. Postcard never
//! preallocates more than the input can hold, so a forged length cannot make
//! decoding allocate without bound.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tessera_layout::LayoutMessage;
use tessera_merkle::CellId;
use tessera_storage::{Cell, RowKey, RowPage, RowSlice, TableId};

use crate::ops::{WriteOutcome, WriteRequest};
use crate::quorum::QuorumFailure;
use crate::transport::NodeId;

/// The version byte that starts every message of this protocol. Version 2: writes carry the
/// other replica set of a move, and layouts travel between nodes.
pub const PROTOCOL_VERSION: u8 = 2;

/// A request from one node to another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// One cell of a row as this replica stores it (tombstones included).
    ReadCell {
        /// The row.
        #[serde(with = "crate::wire::RowKeyDef")]
        row: RowKey,
        /// The column.
        column: Vec<u8>,
    },
    /// A slice of a row as this replica stores it; coordinators ask with
    /// `include_tombstones`, so a delete is seen and wins the merge.
    ReadRow {
        /// The row.
        #[serde(with = "crate::wire::RowKeyDef")]
        row: RowKey,
        /// Which cells.
        #[serde(with = "crate::wire::RowSliceDef")]
        slice: RowSlice,
    },
    /// Merge these cells into the replica's (replication and read repair);
    /// answered once the merge is durable.
    Merge {
        /// The row.
        #[serde(with = "crate::wire::RowKeyDef")]
        row: RowKey,
        /// `(column, cell)` pairs.
        cells: Vec<(Vec<u8>, Cell)>,
    },
    /// Coordinate this client write (sent by a node that is not a replica of the key).
    Coordinate {
        /// The write, exactly as the client's node received it.
        request: WriteRequest,
    },
    /// Liveness check.
    Ping,
    /// Keep these cells for `target`, a replica that could not take them
    /// (sloppy quorum); answered with [`Response::HintStored`] once durable.
    /// The receiver delivers them as a `Merge` when `target` is back.
    StoreHint {
        /// The replica the cells are for.
        target: NodeId,
        /// The row.
        #[serde(with = "crate::wire::RowKeyDef")]
        row: RowKey,
        /// `(column, cell)` pairs, as the coordinator would have merged them.
        cells: Vec<(Vec<u8>, Cell)>,
    },
    /// A step of the layout consensus, or a request for the receiver's layout.
    Layout {
        /// The message.
        message: LayoutMessage,
    },
    /// The next cells of one (table, partition) as this replica stores them now (no snapshot),
    /// in key order, for streaming the partition to a new owner; answered with
    /// [`Response::PartitionChunk`]. The replica caps both limits (see `transfer::source`).
    PartitionChunk {
        /// The table.
        table: TableId,
        /// The partition.
        partition: u16,
        /// Start after this data key (exclusive); `None` starts at the partition's first cell.
        after: Option<Vec<u8>>,
        /// Most cells in the answer (at least one is always sent).
        max_cells: u32,
        /// About the most bytes (data keys plus stored cells) in the answer; the cell that
        /// reaches it is the last one.
        max_bytes: u32,
        /// Whether to answer with an estimate of the whole partition's size too.
        estimate: bool,
    },
    /// Estimates of how much these (table, partition)s hold on this replica, cheap (from the
    /// storage engine's index): for plans and progress bars. Answered with
    /// [`Response::PartitionSizes`], in the same order.
    EstimatePartitions {
        /// `(table, partition)` pairs.
        partitions: Vec<(TableId, u16)>,
    },
    /// One message of an anti-entropy exchange ([`tessera_merkle::Message::encode`]: its own
    /// format version first, so the tree format can change apart from this protocol); answered
    /// with [`Response::AntiEntropy`]. Appended after every other variant, so nodes that predate
    /// it still decode every older request.
    AntiEntropy {
        /// The encoded exchange message.
        message: Vec<u8>,
    },
    /// Cells of one (table, partition) as this replica stores them, tombstones included, for an
    /// anti-entropy repair; answered with [`Response::Cells`].
    ReadCells {
        /// The table.
        table: TableId,
        /// The partition.
        partition: u16,
        /// The cells, as an exchange names them.
        ids: Vec<CellId>,
    },
}

impl Request {
    /// The variant's name, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Request::ReadCell { .. } => "ReadCell",
            Request::ReadRow { .. } => "ReadRow",
            Request::Merge { .. } => "Merge",
            Request::Coordinate { .. } => "Coordinate",
            Request::Ping => "Ping",
            Request::StoreHint { .. } => "StoreHint",
            Request::Layout { .. } => "Layout",
            Request::PartitionChunk { .. } => "PartitionChunk",
            Request::EstimatePartitions { .. } => "EstimatePartitions",
            Request::AntiEntropy { .. } => "AntiEntropy",
            Request::ReadCells { .. } => "ReadCells",
        }
    }
}

/// The answer to a [`Request`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Answers [`Request::ReadCell`]: the stored cell, if any.
    Cell {
        /// The cell.
        cell: Option<Cell>,
    },
    /// Answers [`Request::ReadRow`].
    Row {
        /// The page.
        #[serde(with = "crate::wire::RowPageDef")]
        page: RowPage,
    },
    /// Answers [`Request::Merge`] once the merged cells are durable.
    Merged {
        /// How many of the sent cells changed what the replica held.
        changed: u32,
    },
    /// Answers [`Request::Coordinate`] with the write's outcome.
    Written {
        /// The outcome.
        outcome: WriteOutcome,
    },
    /// Answers [`Request::Ping`].
    Pong,
    /// Answers [`Request::StoreHint`] once the hint is durable.
    HintStored,
    /// Answers [`Request::PartitionChunk`].
    PartitionChunk {
        /// `(data key, cell)` pairs in key order: every cell whole (all its siblings and its
        /// causal history), tombstones included, so that a merge on the receiver means exactly
        /// what a replica's merge means.
        cells: Vec<(Vec<u8>, Cell)>,
        /// Where the next chunk starts (exclusive: the last key sent), or `None` once the
        /// partition's end was reached.
        next: Option<Vec<u8>>,
        /// Bytes of the cells' keys and stored encodings, as the source holds them: the unit
        /// of progress and of the throttle.
        bytes: u64,
        /// The partition's estimated size, when asked for.
        estimate: Option<PartitionSize>,
    },
    /// Answers [`Request::EstimatePartitions`], one size per partition asked, in order.
    PartitionSizes {
        /// The estimates.
        sizes: Vec<PartitionSize>,
    },
    /// The request failed on the receiving node.
    Error {
        /// What kind of failure, with its numbers.
        kind: ErrorKind,
        /// A human-readable description.
        message: String,
    },
    /// Answers [`Request::Layout`]: the acceptor's answer or the layout asked for (`None` for a
    /// message that needs no answer).
    Layout {
        /// The answer.
        message: Option<LayoutMessage>,
    },
    /// Answers [`Request::AntiEntropy`]: the responder's encoded reply, if the message needs one.
    AntiEntropy {
        /// The encoded reply.
        message: Option<Vec<u8>>,
    },
    /// Answers [`Request::ReadCells`], one entry per cell asked, in order (`None`: absent).
    Cells {
        /// The cells.
        cells: Vec<(CellId, Option<Cell>)>,
    },
}

impl Response {
    /// The variant's name, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Response::Cell { .. } => "Cell",
            Response::Row { .. } => "Row",
            Response::Merged { .. } => "Merged",
            Response::Written { .. } => "Written",
            Response::Pong => "Pong",
            Response::Error { .. } => "Error",
            Response::HintStored => "HintStored",
            Response::Layout { .. } => "Layout",
            Response::PartitionChunk { .. } => "PartitionChunk",
            Response::PartitionSizes { .. } => "PartitionSizes",
            Response::AntiEntropy { .. } => "AntiEntropy",
            Response::Cells { .. } => "Cells",
        }
    }
}

/// About how much one (table, partition) holds on a replica: data keys (one per cell) and their
/// bytes (keys plus stored cells), estimated by the storage engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionSize {
    /// Cells.
    pub keys: u64,
    /// Bytes of their keys and stored values.
    pub bytes: u64,
}

/// What went wrong on a remote node. Quorum outcomes keep their numbers, so a
/// forwarded write fails at the client's node exactly as it failed at the
/// coordinating replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The request could not be decoded, or is not served by this node.
    BadRequest,
    /// Storage rejected the input (key or column too long, column given twice, ...).
    InvalidInput,
    /// Local storage failed (engine error, corrupt record).
    Storage,
    /// The write would leave a cell with too many siblings.
    TooManySiblings {
        /// The column, lossily converted to UTF-8.
        column: String,
        /// Siblings the write would have produced.
        siblings: u64,
        /// The configured maximum.
        max: u64,
    },
    /// Too few replicas alive to try; nothing was written.
    Unavailable(QuorumFailure),
    /// The quorum became impossible.
    QuorumFailed(QuorumFailure),
    /// The deadline passed before the quorum was reached.
    Timeout {
        /// Acks or answers needed.
        required: u32,
        /// Acks or answers received.
        acked: u32,
        /// N.
        replication: u32,
        /// Replicas that had not answered.
        pending: Vec<NodeId>,
        /// The deadline, in milliseconds.
        timeout_ms: u64,
    },
    /// A forwarded write could not be forwarded further.
    Forward {
        /// The node it tried.
        to: NodeId,
    },
    /// This node does not coordinate writes (no coordinator attached).
    NotCoordinator,
    /// A bug or an unexpected internal failure.
    Internal,
    /// The node already holds its maximum of hints for `target`.
    HintLimit {
        /// The replica the hint was for.
        target: NodeId,
        /// Hints already stored for it.
        count: u64,
        /// The configured maximum.
        max: u64,
    },
}

/// Why bytes are not a message of this protocol.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// No bytes at all.
    #[error("empty {what}: expected a protocol version byte")]
    Empty {
        /// `request` or `response`.
        what: &'static str,
    },
    /// Another protocol version.
    #[error("{what} has protocol version {found}, but this node speaks version {supported}")]
    UnknownVersion {
        /// `request` or `response`.
        what: &'static str,
        /// The version byte received.
        found: u8,
        /// [`PROTOCOL_VERSION`].
        supported: u8,
    },
    /// The body does not decode.
    #[error("malformed {what} of {len} bytes: {reason}")]
    Malformed {
        /// `request` or `response`.
        what: &'static str,
        /// Total length, version byte included.
        len: usize,
        /// The decoder's message.
        reason: String,
    },
    /// The body decodes but bytes are left over.
    #[error("{what} of {len} bytes has {trailing} trailing bytes")]
    TrailingBytes {
        /// `request` or `response`.
        what: &'static str,
        /// Total length, version byte included.
        len: usize,
        /// Bytes after the message.
        trailing: usize,
    },
    /// A message could not be encoded (a bug in a `Serialize` impl, never bad input).
    #[error("could not encode {what}: {reason}")]
    Encode {
        /// `request` or `response`.
        what: &'static str,
        /// The encoder's message.
        reason: String,
    },
}

fn encode<T: Serialize>(what: &'static str, message: &T) -> Result<Vec<u8>, MessageError> {
    postcard::to_extend(message, vec![PROTOCOL_VERSION]).map_err(|e| MessageError::Encode {
        what,
        reason: e.to_string(),
    })
}

fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, MessageError> {
    let Some((&version, body)) = bytes.split_first() else {
        return Err(MessageError::Empty { what });
    };
    if version != PROTOCOL_VERSION {
        return Err(MessageError::UnknownVersion {
            what,
            found: version,
            supported: PROTOCOL_VERSION,
        });
    }
    let (message, rest) = postcard::take_from_bytes(body).map_err(|e| MessageError::Malformed {
        what,
        len: bytes.len(),
        reason: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(MessageError::TrailingBytes {
            what,
            len: bytes.len(),
            trailing: rest.len(),
        });
    }
    Ok(message)
}

/// Encodes a request as `[PROTOCOL_VERSION] ++ postcard(request)`.
pub fn encode_request(request: &Request) -> Result<Vec<u8>, MessageError> {
    encode("request", request)
}

/// Decodes what [`encode_request`] produced. Never panics, whatever the input.
pub fn decode_request(bytes: &[u8]) -> Result<Request, MessageError> {
    decode("request", bytes)
}

/// Encodes a response as `[PROTOCOL_VERSION] ++ postcard(response)`.
pub fn encode_response(response: &Response) -> Result<Vec<u8>, MessageError> {
    encode("response", response)
}

/// Decodes what [`encode_response`] produced. Never panics, whatever the input.
pub fn decode_response(bytes: &[u8]) -> Result<Response, MessageError> {
    decode("response", bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::ClientWrite;
    use proptest::prelude::*;
    use tessera_storage::{CellValue, Context};

    fn row() -> RowKey {
        RowKey::new(7, 3, 0xdead_beef, b"user:1".to_vec())
    }

    fn cell() -> Cell {
        let first = Cell::new().write(&Context::new(), &1, CellValue::value(b"a".to_vec(), 10));
        first.write(&Context::new(), &2, CellValue::tombstone(11))
    }

    fn failure() -> QuorumFailure {
        QuorumFailure {
            required: 3,
            acked: 2,
            acked_by: vec!["a".into(), "b".into()],
            failed: vec![("c".into(), "timeout".into())],
            replication: 3,
        }
    }

    fn requests() -> Vec<Request> {
        vec![
            Request::ReadCell {
                row: row(),
                column: b"name".to_vec(),
            },
            Request::ReadRow {
                row: row(),
                slice: RowSlice {
                    from: Some(b"a".to_vec()),
                    after: Some(b"b".to_vec()),
                    to: None,
                    limit: usize::MAX,
                    include_tombstones: true,
                },
            },
            Request::Merge {
                row: row(),
                cells: vec![(b"x".to_vec(), cell()), (Vec::new(), Cell::new())],
            },
            Request::Coordinate {
                request: WriteRequest {
                    row: row(),
                    writes: vec![
                        ClientWrite {
                            column: b"c".to_vec(),
                            value: Some(vec![0, 1, 2]),
                            context: Some(cell().join()),
                        },
                        ClientWrite {
                            column: b"d".to_vec(),
                            value: None,
                            context: None,
                        },
                    ],
                    required: 2,
                    replicas: vec!["a".into(), "b".into(), "c".into()],
                    fallbacks: vec!["d".into(), "e".into()],
                    strict: true,
                    also: vec!["a".into(), "f".into(), "g".into()],
                },
            },
            Request::Ping,
            Request::StoreHint {
                target: "c".into(),
                row: row(),
                cells: vec![(b"x".to_vec(), cell())],
            },
            Request::Layout {
                message: LayoutMessage::Fetch,
            },
            Request::Layout {
                message: LayoutMessage::Prepare {
                    epoch: 4,
                    ballot: tessera_layout::Ballot {
                        round: 2,
                        node: "a".into(),
                    },
                },
            },
            Request::PartitionChunk {
                table: 7,
                partition: 3,
                after: Some(vec![0, 0, 0, 7, 0, 3, 1]),
                max_cells: 4096,
                max_bytes: 256 << 10,
                estimate: true,
            },
            Request::PartitionChunk {
                table: 7,
                partition: 3,
                after: None,
                max_cells: 1,
                max_bytes: 1,
                estimate: false,
            },
            Request::EstimatePartitions {
                partitions: vec![(7, 3), (u32::MAX - 1, u16::MAX)],
            },
        ]
    }

    fn responses() -> Vec<Response> {
        let mut out = vec![
            Response::Cell { cell: Some(cell()) },
            Response::Cell { cell: None },
            Response::Row {
                page: RowPage {
                    cells: vec![(b"x".to_vec(), cell())],
                    more: true,
                },
            },
            Response::Merged { changed: 4 },
            Response::Written {
                outcome: WriteOutcome {
                    cells: vec![(b"x".to_vec(), cell())],
                    acked: 2,
                    required: 2,
                    replication: 3,
                    coordinator: "b".into(),
                    hinted: 1,
                },
            },
            Response::Pong,
            Response::HintStored,
            Response::Layout { message: None },
            Response::Layout {
                message: Some(LayoutMessage::Committed { epoch: 9 }),
            },
            Response::PartitionChunk {
                cells: vec![(vec![0, 0, 0, 7, 0, 3, 9], cell())],
                next: Some(vec![0, 0, 0, 7, 0, 3, 9]),
                bytes: 77,
                estimate: Some(PartitionSize {
                    keys: 10,
                    bytes: 1000,
                }),
            },
            Response::PartitionChunk {
                cells: Vec::new(),
                next: None,
                bytes: 0,
                estimate: None,
            },
            Response::PartitionSizes {
                sizes: vec![
                    PartitionSize::default(),
                    PartitionSize { keys: 1, bytes: 2 },
                ],
            },
        ];
        let kinds = [
            ErrorKind::BadRequest,
            ErrorKind::InvalidInput,
            ErrorKind::Storage,
            ErrorKind::TooManySiblings {
                column: "c".into(),
                siblings: 65,
                max: 64,
            },
            ErrorKind::Unavailable(failure()),
            ErrorKind::QuorumFailed(failure()),
            ErrorKind::Timeout {
                required: 2,
                acked: 1,
                replication: 3,
                pending: vec!["c".into()],
                timeout_ms: 2000,
            },
            ErrorKind::Forward { to: "c".into() },
            ErrorKind::NotCoordinator,
            ErrorKind::Internal,
            ErrorKind::HintLimit {
                target: "c".into(),
                count: 10,
                max: 10,
            },
        ];
        out.extend(kinds.into_iter().map(|kind| Response::Error {
            kind,
            message: "boom".into(),
        }));
        out
    }

    #[test]
    fn requests_round_trip() {
        for request in requests() {
            let bytes = encode_request(&request).unwrap();
            assert_eq!(bytes[0], PROTOCOL_VERSION);
            assert_eq!(
                decode_request(&bytes).unwrap(),
                request,
                "{}",
                request.name()
            );
        }
    }

    #[test]
    fn responses_round_trip() {
        for response in responses() {
            let bytes = encode_response(&response).unwrap();
            assert_eq!(bytes[0], PROTOCOL_VERSION);
            assert_eq!(
                decode_response(&bytes).unwrap(),
                response,
                "{}",
                response.name()
            );
        }
    }

    #[test]
    fn rejects_empty_unknown_version_and_trailing_bytes() {
        assert_eq!(
            decode_request(&[]),
            Err(MessageError::Empty { what: "request" })
        );
        let mut bytes = encode_request(&Request::Ping).unwrap();
        bytes[0] = PROTOCOL_VERSION + 1;
        assert_eq!(
            decode_request(&bytes),
            Err(MessageError::UnknownVersion {
                what: "request",
                found: PROTOCOL_VERSION + 1,
                supported: PROTOCOL_VERSION
            })
        );
        let mut bytes = encode_response(&Response::Pong).unwrap();
        bytes.push(0);
        assert!(matches!(
            decode_response(&bytes),
            Err(MessageError::TrailingBytes { trailing: 1, .. })
        ));
        assert!(matches!(
            decode_response(&[PROTOCOL_VERSION, 200]),
            Err(MessageError::Malformed { len: 2, .. })
        ));
    }

    #[test]
    fn every_truncation_is_an_error() {
        for request in requests() {
            let bytes = encode_request(&request).unwrap();
            for cut in 0..bytes.len() {
                assert!(decode_request(&bytes[..cut]).is_err(), "{cut}");
            }
        }
        for response in responses() {
            let bytes = encode_response(&response).unwrap();
            for cut in 0..bytes.len() {
                assert!(decode_response(&bytes[..cut]).is_err(), "{cut}");
            }
        }
    }

    #[test]
    fn invalid_clocks_are_rejected() {
        // A Merge of one cell whose clock entries are (actor, counter, values).
        let merge_with_entries = |entries: [u8; 6]| {
            let mut bytes = vec![PROTOCOL_VERSION, 2]; // version, Request::Merge
            bytes.extend([0, 0, 0, 0]); // row: table 0, partition 0, token 0, empty key
            bytes.extend([1, 0]); // one cell, empty column
            bytes.push(2); // two entries
            bytes.extend(entries);
            bytes.push(0); // no anonymous values
            bytes
        };
        assert!(decode_request(&merge_with_entries([3, 1, 0, 5, 1, 0])).is_ok());
        assert!(matches!(
            decode_request(&merge_with_entries([5, 1, 0, 3, 1, 0])),
            Err(MessageError::Malformed { .. })
        ));
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_request(&bytes);
            let _ = decode_response(&bytes);
            let mut versioned = vec![PROTOCOL_VERSION];
            versioned.extend(&bytes);
            let _ = decode_request(&versioned);
            let _ = decode_response(&versioned);
        }

        #[test]
        fn mutated_messages_never_panic(index in any::<usize>(), byte in any::<u8>()) {
            for request in requests() {
                let mut bytes = encode_request(&request).unwrap();
                let at = index % bytes.len();
                bytes[at] = byte;
                let _ = decode_request(&bytes);
            }
            for response in responses() {
                let mut bytes = encode_response(&response).unwrap();
                let at = index % bytes.len();
                bytes[at] = byte;
                let _ = decode_response(&bytes);
            }
        }
    }
}
