//! The initiator: asks, compares, and ends with the cells to pull and push.

use std::collections::VecDeque;
use std::mem;

use crate::cells::{compare_cells, CellDigest, CellId};
use crate::diff::{differing, differing_segments};
use crate::digest::Digest;
use crate::error::MerkleError;
use crate::exchange::check::{check_format, check_page, check_route};
use crate::exchange::{
    cut_page, Action, ExchangeConfig, ExchangeReport, ExchangeState, ExchangeStats, ScanRequest,
};
use crate::shape::{BranchId, SegmentId};
use crate::tree::MerkleTree;
use crate::wire::{Body, ExchangeId, Message};

/// The side that starts an exchange. See the [module docs](crate::exchange).
#[derive(Debug, Clone)]
pub struct Initiator {
    exchange: ExchangeId,
    tree: MerkleTree,
    config: ExchangeConfig,
    /// Number of the latest request.
    seq: u32,
    /// The latest request while its reply is awaited, for retransmission.
    outstanding: Option<Message>,
    retries: u32,
    phase: Phase,
    /// Differing segments not yet asked about.
    pending: VecDeque<SegmentId>,
    state: ExchangeState,
    stats: ExchangeStats,
    in_sync: bool,
}

#[derive(Debug, Clone)]
enum Phase {
    AwaitRoot,
    AwaitLeaves { branches: Vec<BranchId> },
    Page(Page),
    Over,
}

impl Phase {
    fn expects(&self) -> &'static str {
        match self {
            Phase::AwaitRoot => "InSync or Branches",
            Phase::AwaitLeaves { .. } => "Leaves",
            Phase::Page(_) => "Cells",
            Phase::Over => "nothing",
        }
    }
}

/// One page of cell digests: the same scan on both sides, then a comparison.
#[derive(Debug, Clone)]
struct Page {
    request: ScanRequest,
    /// A side's cells and whether they are complete (nothing follows in the segments).
    remote: Option<(Vec<CellDigest>, bool)>,
    local: Option<(Vec<CellDigest>, bool)>,
}

impl Initiator {
    /// Starts an exchange of `tree` (a snapshot of the local tree of `exchange.partition`) with
    /// one peer. The actions send the root.
    pub fn start(
        exchange: ExchangeId,
        tree: MerkleTree,
        config: ExchangeConfig,
    ) -> Result<(Self, Vec<Action>), MerkleError> {
        config.validate()?;
        if tree.partition() != exchange.partition {
            return Err(MerkleError::PartitionMismatch {
                local: tree.partition(),
                remote: exchange.partition,
            });
        }
        let root = tree.root();
        let mut initiator = Self {
            exchange,
            tree,
            config,
            seq: 0,
            outstanding: None,
            retries: 0,
            phase: Phase::AwaitRoot,
            pending: VecDeque::new(),
            state: ExchangeState::Running,
            stats: ExchangeStats::default(),
            in_sync: false,
        };
        let message = initiator.message(0, Body::Root { root });
        initiator.outstanding = Some(message.clone());
        let actions = vec![initiator.send(message)];
        Ok((initiator, actions))
    }

    /// The exchange.
    pub fn exchange(&self) -> ExchangeId {
        self.exchange
    }

    /// Where the exchange is.
    pub fn state(&self) -> &ExchangeState {
        &self.state
    }

    /// Whether the exchange has finished or failed.
    pub fn is_over(&self) -> bool {
        self.state != ExchangeState::Running
    }

    /// The counts so far.
    pub fn stats(&self) -> ExchangeStats {
        self.stats
    }

    /// Whether a reply is awaited, so that a timeout would retransmit.
    pub fn awaits_reply(&self) -> bool {
        !self.is_over() && self.outstanding.is_some()
    }

    /// Takes a message from the peer.
    pub fn on_message(&mut self, msg: &Message) -> Vec<Action> {
        self.stats.messages_received += 1;
        self.stats.bytes_received += msg.encoded_len() as u64;
        if self.is_over() {
            self.stats.ignored += 1;
            return Vec::new();
        }
        match self.handle_message(msg) {
            Ok(actions) => actions,
            Err(error) => self.fail(error),
        }
    }

    /// Takes the result of an [`Action::Scan`], with the request it answers. A result of another
    /// exchange is ignored; any other result but that of the pending scan fails the exchange.
    pub fn on_scan(&mut self, request: &ScanRequest, cells: Vec<CellDigest>) -> Vec<Action> {
        if self.is_over() || request.exchange != self.exchange {
            self.stats.ignored += 1;
            return Vec::new();
        }
        match self.handle_scan(request, cells) {
            Ok(actions) => actions,
            Err(error) => self.fail(error),
        }
    }

    /// The reply to the latest request is overdue: send the request again, or give up after
    /// `max_retries` retransmissions. Does nothing while no reply is awaited (a scan is the
    /// caller's own business).
    pub fn on_timeout(&mut self) -> Vec<Action> {
        if self.is_over() {
            return Vec::new();
        }
        let Some(request) = self.outstanding.clone() else {
            return Vec::new();
        };
        if self.retries >= self.config.max_retries {
            return self.fail(MerkleError::TimedOut {
                seq: self.seq,
                retries: self.retries,
            });
        }
        self.retries += 1;
        self.stats.retransmits += 1;
        vec![self.send(request)]
    }

    /// Gives up on the exchange and tells the peer.
    pub fn abandon(&mut self) -> Vec<Action> {
        if self.is_over() {
            return Vec::new();
        }
        self.fail(MerkleError::Abandoned)
    }

    fn handle_message(&mut self, msg: &Message) -> Result<Vec<Action>, MerkleError> {
        check_route(msg, self.exchange.table, self.exchange.partition)?;
        if msg.exchange.session != self.exchange.session {
            self.stats.ignored += 1;
            return Ok(Vec::new());
        }
        if let Body::Abort { reason } = &msg.body {
            return Err(MerkleError::PeerAborted {
                reason: reason.clone(),
            });
        }
        check_format(msg, &self.tree.shape())?;
        if msg.seq > self.seq {
            return Err(MerkleError::UnexpectedSequence {
                expected: self.seq,
                found: msg.seq,
            });
        }
        if msg.seq < self.seq || self.outstanding.is_none() {
            // A duplicate, or the reply to a request already answered.
            self.stats.ignored += 1;
            return Ok(Vec::new());
        }
        self.outstanding = None;
        self.retries = 0;
        match (mem::replace(&mut self.phase, Phase::Over), &msg.body) {
            (Phase::AwaitRoot, Body::InSync) => {
                self.in_sync = true;
                Ok(self.finish(false))
            }
            (Phase::AwaitRoot, Body::Branches { digests }) => self.on_branches(digests),
            (Phase::AwaitLeaves { branches }, Body::Leaves { digests }) => {
                self.on_leaves(&branches, digests)
            }
            (Phase::Page(mut page), Body::Cells { cells, complete }) if page.remote.is_none() => {
                check_page("peer's cells", &page.request, cells)?;
                if !complete && cells.is_empty() {
                    return Err(MerkleError::Malformed {
                        what: "Cells message",
                        len: msg.encoded_len(),
                        reason: "an incomplete page must hold at least one cell".to_owned(),
                    });
                }
                self.stats.cell_digests_received += cells.len() as u64;
                page.remote = Some((cells.clone(), *complete));
                self.try_compare_page(page)
            }
            (phase, body) => Err(MerkleError::UnexpectedMessage {
                expected: phase.expects(),
                found: body.name(),
                seq: msg.seq,
            }),
        }
    }

    fn on_branches(&mut self, remote: &[Digest]) -> Result<Vec<Action>, MerkleError> {
        let local = self.tree.branches();
        if remote.len() != local.len() {
            return Err(MerkleError::WrongLength {
                what: "peer's branch digests",
                found: remote.len(),
                expected: local.len(),
            });
        }
        self.stats.nodes_compared += local.len() as u64;
        let branches = differing(local, remote);
        if branches.is_empty() {
            // Only the roots differ: one of the stored trees is inconsistent; the periodic check
            // finds which. Nothing to descend into.
            return Ok(self.finish(true));
        }
        let message = self.next_request(Body::LeavesRequest {
            branches: branches.clone(),
        })?;
        self.phase = Phase::AwaitLeaves { branches };
        Ok(vec![self.send(message)])
    }

    fn on_leaves(
        &mut self,
        branches: &[BranchId],
        remote: &[Digest],
    ) -> Result<Vec<Action>, MerkleError> {
        let local = self.tree.segments_under(branches)?;
        if remote.len() != local.len() {
            return Err(MerkleError::WrongLength {
                what: "peer's segment digests",
                found: remote.len(),
                expected: local.len(),
            });
        }
        self.stats.nodes_compared += local.len() as u64;
        let segments = differing_segments(&self.tree.shape(), branches, &local, remote);
        self.stats.segments_differing = segments.len() as u64;
        self.pending = segments.into();
        self.next_batch()
    }

    fn next_batch(&mut self) -> Result<Vec<Action>, MerkleError> {
        if self.pending.is_empty() {
            return Ok(self.finish(true));
        }
        let take = self
            .pending
            .len()
            .min(self.config.max_segments_per_request as usize);
        let segments: Vec<SegmentId> = self.pending.drain(..take).collect();
        self.start_page(segments, None)
    }

    fn start_page(
        &mut self,
        segments: Vec<SegmentId>,
        after: Option<CellId>,
    ) -> Result<Vec<Action>, MerkleError> {
        let message = self.next_request(Body::CellsRequest {
            segments: segments.clone(),
            after: after.clone(),
            limit: self.config.max_cells_per_page,
        })?;
        let request = ScanRequest {
            exchange: self.exchange,
            seq: message.seq,
            shape: self.tree.shape(),
            partition: self.exchange.partition,
            segments,
            after,
            limit: self.config.max_cells_per_page,
            max_bytes: self.config.max_page_bytes,
        };
        self.phase = Phase::Page(Page {
            request: request.clone(),
            remote: None,
            local: None,
        });
        Ok(vec![self.send(message), Action::Scan(request)])
    }

    fn handle_scan(
        &mut self,
        request: &ScanRequest,
        cells: Vec<CellDigest>,
    ) -> Result<Vec<Action>, MerkleError> {
        match mem::replace(&mut self.phase, Phase::Over) {
            Phase::Page(mut page) if page.local.is_none() && page.request == *request => {
                check_page("local scan", &page.request, &cells)?;
                self.stats.cells_scanned += cells.len() as u64;
                let mut cells = cells;
                let full = cut_page(&mut cells, page.request.max_bytes);
                let complete = !full && cells.len() < page.request.limit as usize;
                page.local = Some((cells, complete));
                self.try_compare_page(page)
            }
            _ => Err(MerkleError::UnexpectedScan),
        }
    }

    /// Compares a page once both sides are in. Each side's list is complete up to its last cell
    /// (or to the end of the segments when it is complete), so the comparison covers cells up to
    /// the smaller of the two ends; the next page starts after it.
    fn try_compare_page(&mut self, page: Page) -> Result<Vec<Action>, MerkleError> {
        let (Some((remote, remote_complete)), Some((local, local_complete))) =
            (&page.remote, &page.local)
        else {
            self.phase = Phase::Page(page);
            return Ok(Vec::new());
        };
        let bound: Option<CellId> = [
            (!remote_complete).then(|| remote.last()).flatten(),
            (!local_complete).then(|| local.last()).flatten(),
        ]
        .into_iter()
        .flatten()
        .map(|cell| &cell.id)
        .min()
        .cloned();
        let upto = |cells: &[CellDigest]| -> usize {
            match &bound {
                Some(bound) => cells.partition_point(|cell| cell.id <= *bound),
                None => cells.len(),
            }
        };
        let diff = compare_cells(&local[..upto(local)], &remote[..upto(remote)])?;
        self.stats.pages += 1;
        self.stats.pull += diff.pull.len() as u64;
        self.stats.push += diff.push.len() as u64;
        self.stats.diverged += diff.diverged.len() as u64;
        let mut actions = Vec::new();
        if !diff.is_empty() {
            actions.push(Action::Repair(diff));
        }
        actions.extend(match bound {
            Some(after) => self.start_page(page.request.segments, Some(after))?,
            None => self.next_batch()?,
        });
        Ok(actions)
    }

    fn message(&self, seq: u32, body: Body) -> Message {
        Message {
            shape: self.tree.shape(),
            exchange: self.exchange,
            seq,
            body,
        }
    }

    /// The next request, numbered and remembered for retransmission.
    fn next_request(&mut self, body: Body) -> Result<Message, MerkleError> {
        self.seq = self.seq.checked_add(1).ok_or(MerkleError::TooMany {
            what: "requests in one exchange",
            found: u32::MAX as usize,
            max: u32::MAX as usize,
        })?;
        let message = self.message(self.seq, body);
        self.outstanding = Some(message.clone());
        Ok(message)
    }

    fn send(&mut self, message: Message) -> Action {
        self.stats.messages_sent += 1;
        self.stats.bytes_sent += message.encoded_len() as u64;
        Action::Send(message)
    }

    fn finish(&mut self, tell_peer: bool) -> Vec<Action> {
        let mut actions = Vec::new();
        if tell_peer {
            // `Done` expects no reply; a lost one only leaves the responder to the caller's
            // idle timeout.
            let done = self.message(self.seq.saturating_add(1), Body::Done);
            actions.push(self.send(done));
        }
        self.phase = Phase::Over;
        self.outstanding = None;
        self.state = ExchangeState::Finished;
        actions.push(Action::Finished(ExchangeReport {
            exchange: self.exchange,
            in_sync: self.in_sync,
            stats: self.stats,
        }));
        actions
    }

    fn fail(&mut self, error: MerkleError) -> Vec<Action> {
        let mut actions = Vec::new();
        if !matches!(error, MerkleError::PeerAborted { .. }) {
            let abort = self.message(
                self.seq,
                Body::Abort {
                    reason: error.to_string(),
                },
            );
            actions.push(self.send(abort));
        }
        self.phase = Phase::Over;
        self.outstanding = None;
        self.state = ExchangeState::Failed(error.clone());
        actions.push(Action::Failed(error));
        actions
    }
}
