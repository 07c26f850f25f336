//! The typed status of transfers: one model for `GET /v1/cluster/transfers`,
//! `tessera cluster watch` and metrics.

use serde::{Deserialize, Serialize};

use crate::transport::NodeId;

/// Where a transfer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferState {
    /// Waiting for a slot (`rebalance.max_concurrent`).
    Queued,
    /// Pulling chunks.
    Running,
    /// Its sources failed; it tries again after a backoff.
    Backoff,
    /// Every source was read to its end and merged.
    Done,
}

impl TransferState {
    /// The state's name, as the API shows it.
    pub fn name(self) -> &'static str {
        match self {
            TransferState::Queued => "queued",
            TransferState::Running => "running",
            TransferState::Backoff => "backoff",
            TransferState::Done => "done",
        }
    }

    /// True until the transfer is done.
    pub fn is_pending(self) -> bool {
        self != TransferState::Done
    }
}

impl std::fmt::Display for TransferState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One source of a transfer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceStatus {
    /// The source node.
    pub node: NodeId,
    /// Read to its end.
    pub finished: bool,
    /// Cells merged from it.
    pub keys: u64,
    /// Their bytes (keys plus stored cells).
    pub bytes: u64,
    /// Its estimate of the partition: cells.
    pub estimated_keys: Option<u64>,
    /// Its estimate of the partition: bytes.
    pub estimated_bytes: Option<u64>,
    /// Failed requests to it in a row (0 once one succeeds).
    pub consecutive_failures: u32,
}

/// One transfer: a partition moving to this node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransferStatus {
    /// The ring epoch that moves the partition.
    pub epoch: u64,
    /// The table's id.
    pub table: u32,
    /// The table's name, when the node knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_name: Option<String>,
    /// The partition.
    pub partition: u16,
    /// The source being read now (the last one, once done).
    pub from: NodeId,
    /// The receiving node (this one).
    pub to: NodeId,
    /// Where it is.
    pub state: TransferState,
    /// Cells merged, over every source.
    pub keys_done: u64,
    /// Their bytes.
    pub bytes_done: u64,
    /// The estimated cells of the whole transfer, once a source has said.
    pub keys_estimated: Option<u64>,
    /// The estimated bytes of the whole transfer.
    pub bytes_estimated: Option<u64>,
    /// Bytes merged per second, lately.
    pub bytes_per_second: f64,
    /// Seconds left at that rate, when both are known.
    pub eta_seconds: Option<f64>,
    /// Chunks merged.
    pub chunks: u64,
    /// Chunks asked for again (after a failure or a restart).
    pub resent_chunks: u64,
    /// The last failure, if any since it started.
    pub last_error: Option<String>,
    /// Milliseconds until it tries again, while backing off.
    pub retry_in_ms: Option<u64>,
    /// Every source, in the order they are read.
    pub sources: Vec<SourceStatus>,
}

/// A node's transfers: what `GET /v1/cluster/transfers` answers and `tessera cluster watch`
/// shows. New fields (the ring epochs in force, the partitions per node) must have serde
/// defaults, so that a newer node answers an older CLI.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransfersReport {
    /// The node asked (the receiver of every transfer listed).
    pub node: NodeId,
    /// How many may run at once.
    pub max_concurrent: u32,
    /// The throttle, in bytes per second (`None`: unlimited).
    #[serde(default)]
    pub max_bytes_per_second: Option<u64>,
    /// Transfers running now.
    pub running: u32,
    /// Transfers not done yet (queued, running or backing off).
    pub pending: u32,
    /// Every transfer the node knows, pending ones first, then done ones; each group in
    /// (epoch, table, partition) order.
    pub transfers: Vec<TransferStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip_through_json() {
        let report = TransfersReport {
            node: "n4".into(),
            max_concurrent: 2,
            max_bytes_per_second: Some(50 << 20),
            running: 1,
            pending: 1,
            transfers: vec![TransferStatus {
                epoch: 7,
                table: 42,
                table_name: Some("demo".into()),
                partition: 17,
                from: "n2".into(),
                to: "n4".into(),
                state: TransferState::Running,
                keys_done: 10,
                bytes_done: 1000,
                keys_estimated: Some(40),
                bytes_estimated: Some(4000),
                bytes_per_second: 500.0,
                eta_seconds: Some(6.0),
                chunks: 1,
                resent_chunks: 0,
                last_error: None,
                retry_in_ms: None,
                sources: vec![SourceStatus {
                    node: "n2".into(),
                    keys: 10,
                    bytes: 1000,
                    ..SourceStatus::default()
                }],
            }],
        };
        let json = serde_json::to_string(&report).unwrap();
        assert!(json.contains(r#""state":"running""#), "{json}");
        let back: TransfersReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
        // A report with fields this version does not know still reads.
        let newer = json.replacen('{', r#"{"ring":{"epoch":7},"#, 1);
        let back: TransfersReport = serde_json::from_str(&newer).unwrap();
        assert_eq!(back, report);
    }
}
