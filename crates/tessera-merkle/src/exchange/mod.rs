//! The exchange: two replicas of one (table, partition) find the cells they disagree on.
//!
//! Two machines, an [`Initiator`] and a [`Responder`], with no I/O, no clock and no randomness.
//! The caller feeds them messages from the peer, the results of local scans and timeouts, and
//! carries out the [`Action`]s they return: send a message, scan some segments, repair some
//! cells, record the end of the exchange.
//!
//! ```text
//! initiator                                       responder
//!   Root(root)                        seq 0  ->
//!                                            <-   InSync                  (roots equal: done)
//!                                            <-   Branches(all branches)  (roots differ)
//!   LeavesRequest(differing branches) seq 1  ->
//!                                            <-   Leaves(their segments)
//!   CellsRequest(<= N segments, after, limit)
//!                                     seq 2  ->   Scan -> Cells(page, complete)
//!   Scan (same segments, after, limit) locally, in parallel
//!   compare the two pages up to where both are known -> Repair(pull, push, diverged)
//!   ... next page or next batch of segments, seq 3, 4, ...
//!   Done                                     ->
//! ```
//!
//! The trees are snapshots taken when each machine is created (a tree is small: 16.5 KiB with the
//! default shape). Cells are scanned from live storage, so a write that lands during the exchange
//! shows up either as a difference (repaired harmlessly: repairs are merges) or not at all (the
//! next exchange finds it). Replicas that agree exchange two small messages whatever the number
//! of cells; replicas that differ exchange at most the tree and the cell digests of the differing
//! segments, paged so that no message holds more than `max_cells_per_page` cells.
//!
//! Loss, duplication and reordering: the initiator has at most one request outstanding; a reply
//! carries its request's number; anything older or from another session is ignored and counted.
//! The caller calls [`Initiator::on_timeout`] when a reply is overdue: the request is sent again,
//! up to `max_retries` times, after which the exchange fails with
//! [`MerkleError::TimedOut`]. The responder answers a repeated
//! request from its cached reply. Either side can [`abandon`](Initiator::abandon) an exchange,
//! which tells the peer; a new exchange with a new session number restarts from the root.

mod check;
mod initiator;
mod responder;

pub use initiator::Initiator;
pub use responder::Responder;

use serde::{Deserialize, Serialize};

use crate::cells::{CellDiff, CellDigest, CellId};
use crate::error::MerkleError;
use crate::shape::{PartitionId, SegmentId, Token, TreeShape};
use crate::wire::{ExchangeId, Message};

/// Limits of an exchange, for both roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeConfig {
    /// Most segments in one `CellsRequest` (and one scan). A responder refuses more.
    pub max_segments_per_request: u32,
    /// Most cells in one page (one `Cells` message, one scan). A responder serves at most this
    /// many whatever the initiator asks for.
    pub max_cells_per_page: u32,
    /// Most bytes of cell digests in one page ([`CellDigest::page_bytes`], about the encoded
    /// size; keys and columns can be 64 KiB each). A page ends with the cell that reaches it, so
    /// it always holds at least one cell and the exchange always progresses.
    pub max_page_bytes: u32,
    /// Retransmissions of one request before the initiator gives up.
    pub max_retries: u32,
}

impl Default for ExchangeConfig {
    fn default() -> Self {
        Self {
            max_segments_per_request: 64,
            max_cells_per_page: 1024,
            max_page_bytes: 1 << 20,
            max_retries: 3,
        }
    }
}

impl ExchangeConfig {
    /// Checks that the limits allow progress.
    pub fn validate(&self) -> Result<(), MerkleError> {
        for (field, value) in [
            ("max_segments_per_request", self.max_segments_per_request),
            ("max_cells_per_page", self.max_cells_per_page),
            ("max_page_bytes", self.max_page_bytes),
        ] {
            if value == 0 {
                return Err(MerkleError::InvalidConfig {
                    field,
                    value: u64::from(value),
                });
            }
        }
        Ok(())
    }
}

/// A request to the caller for the digests of local cells; answer with `on_scan(&request,
/// cells)` on the machine that asked.
///
/// The answer is the cells of the partition whose token lies in one of `segments` (see
/// [`ScanRequest::token_ranges`]) and whose [`CellId`] is greater than `after`, in storage order,
/// as [`CellDigest`]s, stopping after `limit` cells or right after the cell at which the running
/// sum of [`CellDigest::page_bytes`] reaches `max_bytes`, whichever comes first. A page that
/// stops at neither means there are no more cells. In storage terms: for each segment's token
/// range, scan from the segment's first key (or, in the segment of `after`, from the successor of
/// `after`'s cell key) to the segment's last key.
///
/// The request is handed back with its answer so that a late answer meant for an abandoned
/// exchange cannot be taken for the current one's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanRequest {
    /// The exchange that asks.
    pub exchange: ExchangeId,
    /// The number of the request the scan serves.
    pub seq: u32,
    /// The tree shape, to map segments to token ranges.
    pub shape: TreeShape,
    /// The partition.
    pub partition: PartitionId,
    /// The segments, strictly ascending.
    pub segments: Vec<SegmentId>,
    /// Only cells after this one.
    pub after: Option<CellId>,
    /// Most cells to return.
    pub limit: u32,
    /// Byte budget of the page (see [`CellDigest::page_bytes`]).
    pub max_bytes: u32,
}

impl ScanRequest {
    /// The inclusive token range of each requested segment, ascending: the key ranges to scan.
    pub fn token_ranges(&self) -> Vec<(Token, Token)> {
        self.segments
            .iter()
            // The machines only build requests of segments they checked against the shape.
            .filter_map(|s| self.shape.segment_range(self.partition, *s).ok())
            .collect()
    }
}

/// Cuts `cells` after the first cell at which their [`CellDigest::page_bytes`] reach
/// `max_bytes`; returns whether the budget was reached, that is whether the page is full.
pub(crate) fn cut_page(cells: &mut Vec<CellDigest>, max_bytes: u32) -> bool {
    let mut total = 0u64;
    for (index, cell) in cells.iter().enumerate() {
        total += cell.page_bytes();
        if total >= u64::from(max_bytes) {
            cells.truncate(index + 1);
            return true;
        }
    }
    false
}

/// What the caller must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this message to the peer.
    Send(Message),
    /// Scan local cells and call `on_scan` with the request and the result.
    Scan(ScanRequest),
    /// Move these cells between the replicas (initiator only): fetch `pull` from the peer, send
    /// `push` to it, and for `diverged` fetch, merge with DVV sync and send the merge back. The
    /// union of every `Repair` of an exchange is everything that differed.
    Repair(CellDiff),
    /// The exchange is over; the report says what it cost.
    Finished(ExchangeReport),
    /// The exchange failed and is over; nothing more will happen.
    Failed(MerkleError),
}

/// Where a machine is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExchangeState {
    /// Waiting for messages, scans or timeouts.
    Running,
    /// Over, successfully.
    Finished,
    /// Over, with this error.
    Failed(MerkleError),
}

/// What an exchange cost, counted by each side for itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeStats {
    /// Messages sent, retransmissions included.
    pub messages_sent: u64,
    /// Messages received, duplicates and stale ones included.
    pub messages_received: u64,
    /// Encoded bytes of the messages sent ([`Message::encoded_len`]).
    pub bytes_sent: u64,
    /// Encoded bytes of the messages received.
    pub bytes_received: u64,
    /// Tree node digests compared (root, branches, segments).
    pub nodes_compared: u64,
    /// Segments found to differ.
    pub segments_differing: u64,
    /// Cell digests sent to the peer.
    pub cell_digests_sent: u64,
    /// Cell digests received from the peer.
    pub cell_digests_received: u64,
    /// Cell digests read by local scans.
    pub cells_scanned: u64,
    /// Pages of cell digests compared.
    pub pages: u64,
    /// Cells only the peer has.
    pub pull: u64,
    /// Cells only this side has.
    pub push: u64,
    /// Cells both have with different digests.
    pub diverged: u64,
    /// Requests sent again after a timeout, or replies sent again for a repeated request.
    pub retransmits: u64,
    /// Messages ignored as duplicates, stale or from another session, and scan results of
    /// another exchange.
    pub ignored: u64,
}

/// The end of a successful exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeReport {
    /// The exchange.
    pub exchange: ExchangeId,
    /// The roots were equal: nothing was descended into.
    pub in_sync: bool,
    /// This side's counts.
    pub stats: ExchangeStats,
}
