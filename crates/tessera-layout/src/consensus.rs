//! Committing the next layout: single-decree Paxos per epoch among the nodes of the current
//! ring.
//!
//! Every node is an [`Acceptor`] for the epoch after the one it holds. A node asked to commit a
//! plan runs a [`Proposer`]: it asks the current ring's nodes to promise its ballot (prepare),
//! then to accept a layout (accept); a layout accepted by a majority is chosen, and the proposer
//! announces it. Because a promise carries what the acceptor already accepted, and a proposer
//! must propose the highest such layout instead of its own, at most one layout is ever chosen for
//! an epoch, whatever messages are lost, delayed or repeated, and however many operators commit at
//! once. A proposer that had to adopt another layout reports that its own change lost.
//!
//! The commit is also a compare-and-set: an acceptor that already holds a later epoch than the
//! plan's base rejects it as stale, so a plan computed on an old layout never commits.
//!
//! The acceptor's state must be persisted before it answers (the server does): a node that
//! forgot a promise after a restart could let two layouts be chosen.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tessera_ring::NodeId;

use crate::layout::Layout;

/// A proposal number: higher wins; the node breaks ties, so two proposers never share one.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ballot {
    pub round: u64,
    pub node: NodeId,
}

/// Why an acceptor refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rejection {
    /// It already holds this epoch or a later one: the plan's base is stale.
    Stale { current: u64 },
    /// It does not hold the plan's base epoch yet (gossip will bring it).
    Behind { current: u64 },
    /// It promised a higher ballot: another commit of this epoch is under way.
    Outbid { promised: Ballot },
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::Stale { current } => write!(f, "the cluster is already at epoch {current}"),
            Rejection::Behind { current } => write!(f, "it is still at epoch {current}"),
            Rejection::Outbid { promised } => write!(
                f,
                "another commit (ballot {} of {}) is under way",
                promised.round, promised.node
            ),
        }
    }
}

/// What proposers and acceptors send each other. `epoch` is the epoch being decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LayoutMessage {
    Prepare {
        epoch: u64,
        ballot: Ballot,
    },
    Promise {
        epoch: u64,
        ballot: Ballot,
        accepted: Option<(Ballot, Layout)>,
    },
    Accept {
        epoch: u64,
        ballot: Ballot,
        layout: Layout,
    },
    Accepted {
        epoch: u64,
        ballot: Ballot,
    },
    Reject {
        epoch: u64,
        ballot: Ballot,
        why: Rejection,
    },
    /// A chosen layout, announced (gossip spreads it too).
    Commit {
        layout: Layout,
    },
    /// The answer to a `Commit`.
    Committed {
        epoch: u64,
    },
    /// Asks for the committed layout the receiver holds (a node that hears of a later epoch by
    /// gossip fetches it: a layout is too large for a gossip datagram).
    Fetch,
    /// The answer to a `Fetch`.
    Current {
        layout: Option<Layout>,
    },
}

/// One node's acceptor: the epoch it holds, and for the next one what it promised and accepted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acceptor {
    epoch: u64,
    promised: Option<Ballot>,
    accepted: Option<(Ballot, Layout)>,
}

impl Acceptor {
    /// An acceptor holding `epoch` (0: none yet).
    pub fn new(epoch: u64) -> Self {
        Self {
            epoch,
            ..Self::default()
        }
    }

    /// The epoch it holds.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// What it accepted for the next epoch, if anything.
    pub fn accepted(&self) -> Option<&(Ballot, Layout)> {
        self.accepted.as_ref()
    }

    fn check(&self, epoch: u64, ballot: &Ballot) -> Result<(), Rejection> {
        if epoch <= self.epoch {
            return Err(Rejection::Stale {
                current: self.epoch,
            });
        }
        if epoch > self.epoch.saturating_add(1) {
            return Err(Rejection::Behind {
                current: self.epoch,
            });
        }
        match &self.promised {
            Some(promised) if promised > ballot => Err(Rejection::Outbid {
                promised: promised.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Handles a proposer's message; returns the answer (persist `self` before sending it).
    /// Messages meant for proposers are ignored.
    pub fn handle(&mut self, message: &LayoutMessage) -> Option<LayoutMessage> {
        match message {
            LayoutMessage::Prepare { epoch, ballot } => Some(match self.check(*epoch, ballot) {
                Ok(()) => {
                    self.promised = Some(ballot.clone());
                    LayoutMessage::Promise {
                        epoch: *epoch,
                        ballot: ballot.clone(),
                        accepted: self.accepted.clone(),
                    }
                }
                Err(why) => LayoutMessage::Reject {
                    epoch: *epoch,
                    ballot: ballot.clone(),
                    why,
                },
            }),
            LayoutMessage::Accept {
                epoch,
                ballot,
                layout,
            } => Some(match self.check(*epoch, ballot) {
                Ok(()) if layout.epoch() == *epoch => {
                    self.promised = Some(ballot.clone());
                    self.accepted = Some((ballot.clone(), layout.clone()));
                    LayoutMessage::Accepted {
                        epoch: *epoch,
                        ballot: ballot.clone(),
                    }
                }
                Ok(()) => LayoutMessage::Reject {
                    epoch: *epoch,
                    ballot: ballot.clone(),
                    why: Rejection::Stale {
                        current: self.epoch,
                    },
                },
                Err(why) => LayoutMessage::Reject {
                    epoch: *epoch,
                    ballot: ballot.clone(),
                    why,
                },
            }),
            LayoutMessage::Commit { layout } => {
                self.adopt(layout.epoch());
                Some(LayoutMessage::Committed {
                    epoch: layout.epoch(),
                })
            }
            _ => None,
        }
    }

    /// The node now holds `epoch` (committed here, or learned by gossip): a fresh slot.
    pub fn adopt(&mut self, epoch: u64) {
        if epoch > self.epoch {
            *self = Self::new(epoch);
        }
    }
}

/// Where a proposal stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProposerOutcome {
    /// Waiting for answers.
    Pending,
    /// Send these.
    Send(Vec<(NodeId, LayoutMessage)>),
    /// A layout was chosen for the epoch: the proposer's own (`ours`), or one another proposer
    /// had already got accepted, which it had to complete instead. Announce it to every node.
    Chosen { layout: Layout, ours: bool },
    /// No majority can be had: why (from the acceptors that refused).
    Failed { why: Rejection },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Preparing,
    Accepting,
    Done,
}

/// One attempt to commit a layout; see the module docs.
#[derive(Clone, Debug)]
pub struct Proposer {
    epoch: u64,
    ballot: Ballot,
    acceptors: BTreeSet<NodeId>,
    proposal: Layout,
    value: Option<Layout>,
    phase: Phase,
    promises: BTreeMap<NodeId, Option<(Ballot, Layout)>>,
    accepted: BTreeSet<NodeId>,
    rejected: BTreeMap<NodeId, Rejection>,
}

impl Proposer {
    /// Proposes `proposal` (for its epoch) to `acceptors` under `ballot`; returns the prepares
    /// to send.
    pub fn start(
        acceptors: BTreeSet<NodeId>,
        proposal: Layout,
        ballot: Ballot,
    ) -> (Self, Vec<(NodeId, LayoutMessage)>) {
        let epoch = proposal.epoch();
        let prepares = acceptors
            .iter()
            .map(|node| {
                (
                    node.clone(),
                    LayoutMessage::Prepare {
                        epoch,
                        ballot: ballot.clone(),
                    },
                )
            })
            .collect();
        let proposer = Self {
            epoch,
            ballot,
            acceptors,
            proposal,
            value: None,
            phase: Phase::Preparing,
            promises: BTreeMap::new(),
            accepted: BTreeSet::new(),
            rejected: BTreeMap::new(),
        };
        (proposer, prepares)
    }

    /// The epoch being decided.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    fn majority(&self) -> usize {
        self.acceptors.len() / 2 + 1
    }

    /// Handles an acceptor's answer.
    pub fn handle(&mut self, from: &NodeId, message: &LayoutMessage) -> ProposerOutcome {
        if self.phase == Phase::Done || !self.acceptors.contains(from) {
            return ProposerOutcome::Pending;
        }
        match message {
            LayoutMessage::Promise {
                epoch,
                ballot,
                accepted,
            } if *epoch == self.epoch && *ballot == self.ballot => {
                if self.phase != Phase::Preparing {
                    return ProposerOutcome::Pending;
                }
                self.rejected.remove(from);
                self.promises.insert(from.clone(), accepted.clone());
                if self.promises.len() < self.majority() {
                    return ProposerOutcome::Pending;
                }
                // The highest accepted layout among the promises must be proposed, not ours.
                let value = self
                    .promises
                    .values()
                    .flatten()
                    .max_by(|a, b| a.0.cmp(&b.0))
                    .map(|(_, layout)| layout.clone())
                    .unwrap_or_else(|| self.proposal.clone());
                self.value = Some(value.clone());
                self.phase = Phase::Accepting;
                ProposerOutcome::Send(
                    self.acceptors
                        .iter()
                        .map(|node| {
                            (
                                node.clone(),
                                LayoutMessage::Accept {
                                    epoch: self.epoch,
                                    ballot: self.ballot.clone(),
                                    layout: value.clone(),
                                },
                            )
                        })
                        .collect(),
                )
            }
            LayoutMessage::Accepted { epoch, ballot }
                if *epoch == self.epoch && *ballot == self.ballot =>
            {
                if self.phase != Phase::Accepting {
                    return ProposerOutcome::Pending;
                }
                self.rejected.remove(from);
                self.accepted.insert(from.clone());
                if self.accepted.len() < self.majority() {
                    return ProposerOutcome::Pending;
                }
                self.phase = Phase::Done;
                let layout = self.value.clone().unwrap_or_else(|| self.proposal.clone());
                ProposerOutcome::Chosen {
                    ours: layout == self.proposal,
                    layout,
                }
            }
            LayoutMessage::Reject { epoch, ballot, why }
                if *epoch == self.epoch && *ballot == self.ballot =>
            {
                self.rejected.insert(from.clone(), why.clone());
                let answered_yes = match self.phase {
                    Phase::Preparing => self.promises.len(),
                    _ => self.accepted.len(),
                };
                // A stale base can never succeed; otherwise fail once a majority is out of reach.
                let stale = self
                    .rejected
                    .values()
                    .find(|why| matches!(why, Rejection::Stale { .. }))
                    .cloned();
                let unreachable =
                    self.acceptors.len() - self.rejected.len() + answered_yes < self.majority();
                if stale.is_some() || unreachable {
                    self.phase = Phase::Done;
                    let why = stale.unwrap_or_else(|| {
                        self.rejected
                            .values()
                            .find(|why| matches!(why, Rejection::Outbid { .. }))
                            .cloned()
                            .unwrap_or_else(|| why.clone())
                    });
                    return ProposerOutcome::Failed { why };
                }
                ProposerOutcome::Pending
            }
            _ => ProposerOutcome::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use tessera_ring::{PartitionScheme, Ring};

    fn base() -> Layout {
        let ring = Ring::new(
            PartitionScheme::new(16).unwrap(),
            ["a", "b", "c"].map(String::from),
            3,
        )
        .unwrap();
        Layout::first(ring)
    }

    fn adding(node: &str) -> Layout {
        let base = base();
        base.moving_to(
            base.ring().with_node_added(node.into()).unwrap(),
            BTreeSet::new(),
        )
        .unwrap()
    }

    fn ballot(round: u64, node: &str) -> Ballot {
        Ballot {
            round,
            node: node.into(),
        }
    }

    fn names() -> BTreeSet<NodeId> {
        ["a", "b", "c"].map(String::from).into()
    }

    /// Delivers every message at once, in order, to acceptors at epoch 1.
    fn run(
        proposer: &mut Proposer,
        first: Vec<(NodeId, LayoutMessage)>,
        acceptors: &mut BTreeMap<NodeId, Acceptor>,
    ) -> ProposerOutcome {
        let mut queue = first;
        while let Some((to, message)) = queue.pop() {
            let Some(answer) = acceptors.get_mut(&to).and_then(|a| a.handle(&message)) else {
                continue;
            };
            match proposer.handle(&to, &answer) {
                ProposerOutcome::Send(more) => queue.extend(more),
                ProposerOutcome::Pending => {}
                done => return done,
            }
        }
        ProposerOutcome::Pending
    }

    #[test]
    fn a_lone_proposer_gets_its_layout_chosen() {
        let mut acceptors: BTreeMap<_, _> =
            names().into_iter().map(|n| (n, Acceptor::new(1))).collect();
        let (mut proposer, prepares) = Proposer::start(names(), adding("d"), ballot(1, "a"));
        assert_eq!(
            run(&mut proposer, prepares, &mut acceptors),
            ProposerOutcome::Chosen {
                layout: adding("d"),
                ours: true
            }
        );
    }

    #[test]
    fn a_later_proposer_completes_the_layout_already_accepted_and_learns_it_lost() {
        let mut acceptors: BTreeMap<_, _> =
            names().into_iter().map(|n| (n, Acceptor::new(1))).collect();
        // The first proposer gets "d" accepted by a and b, then goes quiet.
        for node in ["a", "b"] {
            let acceptor = acceptors.get_mut(node).unwrap();
            acceptor.handle(&LayoutMessage::Prepare {
                epoch: 2,
                ballot: ballot(1, "a"),
            });
            acceptor.handle(&LayoutMessage::Accept {
                epoch: 2,
                ballot: ballot(1, "a"),
                layout: adding("d"),
            });
        }
        let (mut second, prepares) = Proposer::start(names(), adding("e"), ballot(2, "c"));
        assert_eq!(
            run(&mut second, prepares, &mut acceptors),
            ProposerOutcome::Chosen {
                layout: adding("d"),
                ours: false
            }
        );
    }

    #[test]
    fn a_stale_base_fails_at_once() {
        let mut acceptors: BTreeMap<_, _> =
            names().into_iter().map(|n| (n, Acceptor::new(1))).collect();
        acceptors.get_mut("b").unwrap().adopt(2);
        let (mut proposer, prepares) = Proposer::start(names(), adding("d"), ballot(1, "a"));
        let outcome = run(&mut proposer, prepares, &mut acceptors);
        assert_eq!(
            outcome,
            ProposerOutcome::Failed {
                why: Rejection::Stale { current: 2 }
            }
        );
    }

    #[test]
    fn an_outbid_proposer_fails_once_no_majority_is_left() {
        let mut acceptors: BTreeMap<_, _> =
            names().into_iter().map(|n| (n, Acceptor::new(1))).collect();
        for node in ["b", "c"] {
            acceptors
                .get_mut(node)
                .unwrap()
                .handle(&LayoutMessage::Prepare {
                    epoch: 2,
                    ballot: ballot(9, "b"),
                });
        }
        let (mut proposer, prepares) = Proposer::start(names(), adding("d"), ballot(1, "a"));
        assert!(matches!(
            run(&mut proposer, prepares, &mut acceptors),
            ProposerOutcome::Failed {
                why: Rejection::Outbid { .. }
            }
        ));
    }

    #[test]
    fn commit_moves_an_acceptor_to_a_fresh_slot() {
        let mut acceptor = Acceptor::new(1);
        acceptor.handle(&LayoutMessage::Accept {
            epoch: 2,
            ballot: ballot(1, "a"),
            layout: adding("d"),
        });
        assert!(acceptor.accepted().is_some());
        assert_eq!(
            acceptor.handle(&LayoutMessage::Commit {
                layout: adding("d")
            }),
            Some(LayoutMessage::Committed { epoch: 2 })
        );
        assert_eq!((acceptor.epoch(), acceptor.accepted()), (2, None));
        // An accept for the epoch it now holds is stale.
        assert!(matches!(
            acceptor.handle(&LayoutMessage::Accept {
                epoch: 2,
                ballot: ballot(5, "b"),
                layout: adding("e")
            }),
            Some(LayoutMessage::Reject {
                why: Rejection::Stale { current: 2 },
                ..
            })
        ));
    }
}
