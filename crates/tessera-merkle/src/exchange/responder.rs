//! The responder: answers the initiator's requests from its tree snapshot and its scans.

use crate::cells::CellDigest;
use crate::error::MerkleError;
use crate::exchange::check::{
    branch_out_of_range, check_format, check_ids, check_page, check_route, segment_out_of_range,
};
use crate::exchange::{
    cut_page, Action, ExchangeConfig, ExchangeReport, ExchangeState, ExchangeStats, ScanRequest,
};
use crate::tree::MerkleTree;
use crate::wire::{Body, ExchangeId, Message};

/// The side that answers an exchange. See the [module docs](crate::exchange).
///
/// The caller keeps responders by [`ExchangeId`] (and peer). For a message of an exchange it has
/// no responder for, it makes one, with a fresh snapshot of its tree, if
/// [`Message::starts_exchange`] holds, and drops the message otherwise; every other message of
/// the exchange, a repeated `Root` included, goes to the existing responder. A new session of the
/// same peer, table and partition replaces the old one's responder. The caller drops a responder
/// once it is over or has been idle past the caller's timeout.
#[derive(Debug, Clone)]
pub struct Responder {
    table: u32,
    tree: MerkleTree,
    config: ExchangeConfig,
    exchange: Option<ExchangeId>,
    /// Number of the latest request taken.
    last_seq: Option<u32>,
    /// The reply to it, sent again if the request is repeated.
    reply: Option<Message>,
    /// The scan that will answer it.
    pending_scan: Option<ScanRequest>,
    state: ExchangeState,
    stats: ExchangeStats,
    in_sync: bool,
}

impl Responder {
    /// A responder for `tree`, a snapshot of this replica's tree of one partition of `table`.
    pub fn new(table: u32, tree: MerkleTree, config: ExchangeConfig) -> Result<Self, MerkleError> {
        config.validate()?;
        Ok(Self {
            table,
            tree,
            config,
            exchange: None,
            last_seq: None,
            reply: None,
            pending_scan: None,
            state: ExchangeState::Running,
            stats: ExchangeStats::default(),
            in_sync: false,
        })
    }

    /// The exchange, once its first message was taken.
    pub fn exchange(&self) -> Option<ExchangeId> {
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

    /// Takes a message from the initiator.
    pub fn on_message(&mut self, msg: &Message) -> Vec<Action> {
        self.stats.messages_received += 1;
        self.stats.bytes_received += msg.encoded_len() as u64;
        if matches!(self.state, ExchangeState::Failed(_)) {
            self.stats.ignored += 1;
            return Vec::new();
        }
        match self.handle_message(msg) {
            Ok(actions) => actions,
            Err(error) => self.fail(error, msg),
        }
    }

    /// Takes the result of an [`Action::Scan`], with the request it answers. A result of another
    /// exchange is ignored; any other result but that of the pending scan fails the exchange.
    pub fn on_scan(&mut self, request: &ScanRequest, cells: Vec<CellDigest>) -> Vec<Action> {
        if self.is_over() || Some(request.exchange) != self.exchange {
            self.stats.ignored += 1;
            return Vec::new();
        }
        if self.pending_scan.as_ref() != Some(request) {
            return self.fail_local(MerkleError::UnexpectedScan);
        }
        self.pending_scan = None;
        if let Err(error) = check_page("local scan", request, &cells) {
            return self.fail_local(error);
        }
        self.stats.cells_scanned += cells.len() as u64;
        let mut cells = cells;
        let full = cut_page(&mut cells, request.max_bytes);
        let complete = !full && cells.len() < request.limit as usize;
        self.stats.cell_digests_sent += cells.len() as u64;
        vec![self.reply(Body::Cells { cells, complete })]
    }

    /// Gives up on the exchange and tells the initiator.
    pub fn abandon(&mut self) -> Vec<Action> {
        if self.is_over() {
            return Vec::new();
        }
        self.fail_local(MerkleError::Abandoned)
    }

    fn handle_message(&mut self, msg: &Message) -> Result<Vec<Action>, MerkleError> {
        let partition = self.tree.partition();
        match self.exchange {
            None if msg.starts_exchange() => {
                check_route(msg, self.table, partition)?;
                check_format(msg, &self.tree.shape())?;
                self.exchange = Some(msg.exchange);
            }
            Some(exchange) if exchange == msg.exchange => {}
            // Another session's message, or a late one from before this session's root.
            _ => {
                self.stats.ignored += 1;
                return Ok(Vec::new());
            }
        }
        if let Body::Abort { reason } = &msg.body {
            if self.is_over() {
                // The initiator gave up after this side finished (its `InSync` was lost): too
                // late to change the outcome here.
                self.stats.ignored += 1;
                return Ok(Vec::new());
            }
            return Err(MerkleError::PeerAborted {
                reason: reason.clone(),
            });
        }
        check_format(msg, &self.tree.shape())?;
        if let Some(last) = self.last_seq {
            if msg.seq < last {
                self.stats.ignored += 1;
                return Ok(Vec::new());
            }
            if msg.seq == last {
                // A repeated request: its reply was lost or is late. Without a reply yet (a scan
                // is pending) the reply will go out when the scan comes back.
                return Ok(match self.reply.clone() {
                    Some(reply) => {
                        self.stats.retransmits += 1;
                        vec![self.send(reply)]
                    }
                    None => {
                        self.stats.ignored += 1;
                        Vec::new()
                    }
                });
            }
        }
        if self.is_over() {
            self.stats.ignored += 1;
            return Ok(Vec::new());
        }
        let expected = match self.last_seq {
            None => 0,
            Some(last) => last.saturating_add(1),
        };
        if msg.seq != expected {
            return Err(MerkleError::UnexpectedSequence {
                expected,
                found: msg.seq,
            });
        }
        self.last_seq = Some(msg.seq);
        self.reply = None;
        let shape = self.tree.shape();
        match &msg.body {
            Body::Root { root } if msg.seq == 0 => {
                self.stats.nodes_compared += 1;
                if *root == self.tree.root() {
                    self.in_sync = true;
                    let reply = self.reply(Body::InSync);
                    let mut actions = vec![reply];
                    actions.extend(self.finish());
                    Ok(actions)
                } else {
                    let digests = self.tree.branches().to_vec();
                    Ok(vec![self.reply(Body::Branches { digests })])
                }
            }
            Body::LeavesRequest { branches } => {
                check_ids(
                    "requested branches",
                    branches,
                    shape.branches(),
                    shape.branches() as usize,
                    branch_out_of_range,
                )?;
                let digests = self.tree.segments_under(branches)?;
                Ok(vec![self.reply(Body::Leaves { digests })])
            }
            Body::CellsRequest {
                segments,
                after,
                limit,
            } => {
                check_ids(
                    "requested segments",
                    segments,
                    shape.segments(),
                    self.config.max_segments_per_request as usize,
                    segment_out_of_range,
                )?;
                if *limit == 0 {
                    return Err(MerkleError::Malformed {
                        what: "CellsRequest message",
                        len: msg.encoded_len(),
                        reason: "a page limit of 0 cells".to_owned(),
                    });
                }
                if let Some(after) = after {
                    let found = shape.partition_of(after.token);
                    if found != partition {
                        return Err(MerkleError::TokenOutsidePartition {
                            token: after.token,
                            partition,
                            found,
                        });
                    }
                }
                let request = ScanRequest {
                    exchange: msg.exchange,
                    seq: msg.seq,
                    shape,
                    partition,
                    segments: segments.clone(),
                    after: after.clone(),
                    limit: (*limit).min(self.config.max_cells_per_page),
                    max_bytes: self.config.max_page_bytes,
                };
                self.pending_scan = Some(request.clone());
                Ok(vec![Action::Scan(request)])
            }
            Body::Done => Ok(self.finish()),
            other => Err(MerkleError::UnexpectedMessage {
                expected: "a request",
                found: other.name(),
                seq: msg.seq,
            }),
        }
    }

    /// Sends `body` as the reply to the latest request, and caches it for repeats.
    fn reply(&mut self, body: Body) -> Action {
        let message = Message {
            shape: self.tree.shape(),
            // Set by the root before any reply is made.
            exchange: self.exchange.unwrap_or(ExchangeId {
                table: self.table,
                partition: self.tree.partition(),
                session: 0,
            }),
            seq: self.last_seq.unwrap_or(0),
            body,
        };
        self.reply = Some(message.clone());
        self.send(message)
    }

    fn send(&mut self, message: Message) -> Action {
        self.stats.messages_sent += 1;
        self.stats.bytes_sent += message.encoded_len() as u64;
        Action::Send(message)
    }

    fn finish(&mut self) -> Vec<Action> {
        self.state = ExchangeState::Finished;
        self.pending_scan = None;
        match self.exchange {
            Some(exchange) => vec![Action::Finished(ExchangeReport {
                exchange,
                in_sync: self.in_sync,
                stats: self.stats,
            })],
            None => Vec::new(),
        }
    }

    /// Fails on a message: the abort goes to the exchange the message named when this
    /// responder has none yet, so that an initiator with the wrong shape or version hears why.
    fn fail(&mut self, error: MerkleError, msg: &Message) -> Vec<Action> {
        let exchange = self.exchange.unwrap_or(msg.exchange);
        self.fail_to(error, Some((exchange, msg.seq)))
    }

    fn fail_local(&mut self, error: MerkleError) -> Vec<Action> {
        let target = self
            .exchange
            .map(|exchange| (exchange, self.last_seq.unwrap_or(0)));
        self.fail_to(error, target)
    }

    fn fail_to(&mut self, error: MerkleError, target: Option<(ExchangeId, u32)>) -> Vec<Action> {
        let mut actions = Vec::new();
        if let (Some((exchange, seq)), false) =
            (target, matches!(error, MerkleError::PeerAborted { .. }))
        {
            let abort = Message {
                shape: self.tree.shape(),
                exchange,
                seq,
                body: Body::Abort {
                    reason: error.to_string(),
                },
            };
            actions.push(self.send(abort));
        }
        self.pending_scan = None;
        self.state = ExchangeState::Failed(error.clone());
        actions.push(Action::Failed(error));
        actions
    }
}
