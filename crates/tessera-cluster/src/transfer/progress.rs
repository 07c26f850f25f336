//! How far a transfer got, persisted in `meta`, so that a restart of either side resumes where
//! it stopped.
//!
//! One record per transfer, under `transfer/{epoch:020}/{table:010}/{partition:05}` (fixed
//! widths, so the records of an epoch are one contiguous, ordered range of keys), holding for
//! each source the last data key merged, what was merged, and whether it is finished, and
//! whether the whole transfer is done. The receiver writes it in the same engine batch as each
//! chunk's cells ([`tessera_storage::CellStore::apply_atomically`]), so the record never says
//! more or less than what the store holds: after a crash, the transfer asks again for the chunk
//! after the last one merged, and at most the one chunk that was in flight is sent twice.
//!
//! Records start with a format version byte ([`tessera_storage::encode_versioned`]).

use serde::{Deserialize, Serialize};
use tessera_storage::{decode_versioned, encode_versioned, StorageError};

use super::spec::TransferKey;
use crate::messages::PartitionSize;
use crate::transport::NodeId;

/// Prefix of every transfer record in `meta`.
pub const RECORD_PREFIX: &str = "transfer/";

/// How far one source of a transfer got.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceProgress {
    /// The source.
    pub node: NodeId,
    /// The last data key merged from it; `None` before the first chunk.
    pub after: Option<Vec<u8>>,
    /// Read to the partition's end.
    pub finished: bool,
    /// Cells merged from it.
    pub keys: u64,
    /// Bytes of their keys and stored cells.
    pub bytes: u64,
    /// Chunks merged from it.
    pub chunks: u64,
    /// Its estimate of the partition, once known.
    pub estimate: Option<PartitionSize>,
    /// Whether the chunk after `after` was already asked for when this was written (the
    /// receiver asks for the next chunk before it merges the last one): asking again after a
    /// restart counts as a re-sent chunk.
    pub requested: bool,
}

impl SourceProgress {
    /// A source nothing was read from yet.
    pub fn new(node: NodeId) -> Self {
        Self {
            node,
            ..Self::default()
        }
    }
}

/// A transfer's persisted state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Every source, in the order they are read.
    pub sources: Vec<SourceProgress>,
    /// Every source was read to its end, and merged.
    pub done: bool,
}

impl Progress {
    /// Cells merged, over every source.
    pub fn keys(&self) -> u64 {
        self.sources.iter().map(|s| s.keys).sum()
    }

    /// Bytes merged, over every source.
    pub fn bytes(&self) -> u64 {
        self.sources.iter().map(|s| s.bytes).sum()
    }

    /// The source named `node`.
    pub fn source_mut(&mut self, node: &str) -> Option<&mut SourceProgress> {
        self.sources.iter_mut().find(|s| s.node == node)
    }

    /// The estimated bytes and keys of the whole transfer: each source's own estimate, and for
    /// a source that has given none yet, the first estimate known (replicas hold about the same
    /// data). `None` until some source has given one.
    pub fn estimate(&self) -> Option<PartitionSize> {
        let known = self.sources.iter().find_map(|s| s.estimate)?;
        Some(
            self.sources
                .iter()
                .map(|s| s.estimate.unwrap_or(known))
                .fold(PartitionSize::default(), |sum, one| PartitionSize {
                    keys: sum.keys.saturating_add(one.keys),
                    bytes: sum.bytes.saturating_add(one.bytes),
                }),
        )
    }
}

/// The `meta` key of a transfer's record.
pub fn record_key(key: &TransferKey) -> String {
    format!(
        "{RECORD_PREFIX}{:020}/{:010}/{:05}",
        key.epoch, key.table, key.partition
    )
}

/// The transfer a `meta` key names, if it is a transfer record's key.
pub fn parse_record_key(text: &str) -> Option<TransferKey> {
    let rest = text.strip_prefix(RECORD_PREFIX)?;
    let mut parts = rest.split('/');
    let key = TransferKey {
        epoch: parts.next()?.parse().ok()?,
        table: parts.next()?.parse().ok()?,
        partition: parts.next()?.parse().ok()?,
    };
    parts.next().is_none().then_some(key)
}

/// The stored form of a record.
pub fn encode(progress: &Progress) -> Result<Vec<u8>, StorageError> {
    encode_versioned("transfer progress", progress)
}

/// Decodes a stored record; `key` only labels errors.
pub fn decode(key: &str, bytes: &[u8]) -> Result<Progress, StorageError> {
    decode_versioned("transfer progress", key.as_bytes(), bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sort_by_epoch_then_table_then_partition() {
        let keys = [
            TransferKey {
                epoch: 2,
                table: 9,
                partition: 1,
            },
            TransferKey {
                epoch: 10,
                table: 1,
                partition: 300,
            },
            TransferKey {
                epoch: 10,
                table: 1,
                partition: 65_535,
            },
            TransferKey {
                epoch: u64::MAX,
                table: u32::MAX,
                partition: 0,
            },
        ];
        let texts: Vec<String> = keys.iter().map(record_key).collect();
        let mut sorted = texts.clone();
        sorted.sort();
        assert_eq!(texts, sorted);
        for (key, text) in keys.iter().zip(&texts) {
            assert_eq!(parse_record_key(text), Some(*key));
        }
        for bad in [
            "transfer/1/2",
            "transfer/1/2/3/4",
            "transfer/x/2/3",
            "other/1/2/3",
            "transfer/1/2/70000",
        ] {
            assert_eq!(parse_record_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn records_round_trip_and_garbage_is_an_error() {
        let progress = Progress {
            sources: vec![
                SourceProgress {
                    node: "n2".into(),
                    after: Some(vec![1, 2, 3]),
                    finished: false,
                    keys: 10,
                    bytes: 1000,
                    chunks: 2,
                    estimate: Some(PartitionSize {
                        keys: 40,
                        bytes: 4000,
                    }),
                    requested: true,
                },
                SourceProgress::new("n3".into()),
            ],
            done: false,
        };
        let bytes = encode(&progress).unwrap();
        assert_eq!(decode("k", &bytes).unwrap(), progress);
        assert!(decode("k", &bytes[..bytes.len() - 1]).is_err());
        assert!(decode("k", &[9, 1, 2]).is_err());
        assert_eq!(progress.keys(), 10);
        // The second source has no estimate yet: it is taken to be like the first.
        assert_eq!(
            progress.estimate(),
            Some(PartitionSize {
                keys: 80,
                bytes: 8000
            })
        );
        assert_eq!(Progress::default().estimate(), None);
    }
}
