//! Committing the staged plan: the proposer of `tessera_layout::consensus`, driven over the
//! internal transport.
//!
//! The current ring's nodes are the acceptors; this node answers its own messages directly. The
//! plan commits only if a majority accepts it for the epoch after its base, so:
//! - a plan made against an older epoch is refused (`Stale`: the compare-and-set);
//! - of two operators committing at once, one wins everywhere; the other, having helped the
//!   winner's layout to completion, is told which epoch it lost and to what.
//!
//! Once chosen, the layout is adopted here, announced to every node of both rings, and spread by
//! gossip to any node the announcement missed.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tessera_cluster::messages::{Request, Response};
use tessera_cluster::{NodeId, Transport};
use tessera_layout::{Ballot, Layout, LayoutMessage, Proposer, ProposerOutcome, Rejection};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{LayoutFailure, LayoutManager};
use crate::cluster::PeerTransport;
use crate::identity::now_ms;

/// Why a commit did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Layout(#[from] LayoutFailure),
    #[error(
        "the plan was made at epoch {planned}, but the cluster is at epoch {current}; plan again"
    )]
    Stale { planned: u64, current: u64 },
    #[error("epoch {epoch} was committed by another change first ({winner}); plan again")]
    Lost { epoch: u64, winner: String },
    #[error("epoch {epoch} was not committed: {why}")]
    Refused { epoch: u64, why: Rejection },
    #[error("epoch {epoch} was not committed: {answered} of {acceptors} nodes answered within {timeout_ms} ms, and a majority ({majority}) must accept")]
    NoMajority {
        epoch: u64,
        answered: usize,
        acceptors: usize,
        majority: usize,
        timeout_ms: u64,
    },
}

/// Describes what a layout changed, for an operator who lost to it.
fn describe(layout: &Layout) -> String {
    let Some(previous) = layout.previous() else {
        return format!("a first layout of {} nodes", layout.ring().node_count());
    };
    let added: Vec<&String> = layout
        .ring()
        .nodes()
        .filter(|n| !previous.contains(n))
        .collect();
    let removed: Vec<&String> = previous
        .nodes()
        .filter(|n| !layout.ring().contains(n))
        .collect();
    format!("added {added:?}, removed {removed:?}")
}

/// Commits the plan staged on `manager` (if `expected` is given, only if the plan was made at
/// that epoch). Returns the committed layout.
pub async fn commit(
    manager: &Arc<LayoutManager>,
    transport: &PeerTransport,
    expected: Option<u64>,
    timeout: Duration,
) -> Result<Layout, CommitError> {
    let plan = manager.staged_for_commit()?;
    let held = manager.layout().ok_or(LayoutFailure::NoLayout)?;
    let base = expected.unwrap_or(plan.base_epoch);
    if base != plan.base_epoch || held.epoch() != plan.base_epoch {
        return Err(CommitError::Stale {
            planned: base.min(plan.base_epoch),
            current: held.epoch(),
        });
    }
    let acceptors: BTreeSet<NodeId> = held.ring().nodes().cloned().collect();
    let ballot = Ballot {
        round: now_ms(),
        node: manager.node.clone(),
    };
    let epoch = plan.next.epoch();
    info!(node = %manager.node, epoch, change = %plan.change, acceptors = acceptors.len(), "committing a layout");
    let (mut proposer, sends) = Proposer::start(acceptors.clone(), plan.next.clone(), ballot);
    let deadline = Instant::now() + timeout;
    let (answers, mut answered) = mpsc::unbounded_channel::<(NodeId, LayoutMessage)>();
    let mut heard: BTreeSet<NodeId> = BTreeSet::new();
    dispatch(manager, transport, sends, &answers, deadline);
    let outcome = loop {
        let Ok(Some((from, answer))) = tokio::time::timeout_at(deadline, answered.recv()).await
        else {
            let majority = acceptors.len() / 2 + 1;
            return Err(CommitError::NoMajority {
                epoch,
                answered: heard.len(),
                acceptors: acceptors.len(),
                majority,
                timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            });
        };
        heard.insert(from.clone());
        match proposer.handle(&from, &answer) {
            ProposerOutcome::Pending => {}
            ProposerOutcome::Send(sends) => dispatch(manager, transport, sends, &answers, deadline),
            done => break done,
        }
    };
    match outcome {
        ProposerOutcome::Chosen { layout, ours } => {
            let adopted = {
                let manager = manager.clone();
                let layout = layout.clone();
                tokio::task::spawn_blocking(move || manager.adopt(layout)).await
            };
            match adopted {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    warn!(node = %manager.node, %error, "chose a layout but cannot persist it; gossip will bring it back")
                }
                Err(error) => {
                    warn!(node = %manager.node, %error, "adopting the chosen layout failed")
                }
            }
            announce(manager, transport, &layout);
            manager.unstage(&plan);
            if ours {
                info!(node = %manager.node, epoch, change = %plan.change, "layout committed");
                Ok(layout)
            } else {
                Err(CommitError::Lost {
                    epoch,
                    winner: describe(&layout),
                })
            }
        }
        ProposerOutcome::Failed { why } => {
            if let Rejection::Stale { current } = why {
                manager.unstage(&plan);
                return Err(CommitError::Stale {
                    planned: plan.base_epoch,
                    current,
                });
            }
            Err(CommitError::Refused { epoch, why })
        }
        ProposerOutcome::Pending | ProposerOutcome::Send(_) => Err(CommitError::NoMajority {
            epoch,
            answered: heard.len(),
            acceptors: acceptors.len(),
            majority: acceptors.len() / 2 + 1,
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        }),
    }
}

/// Sends each message (this node's own to its acceptor directly); answers come back on `answers`
/// until `deadline`.
fn dispatch(
    manager: &Arc<LayoutManager>,
    transport: &PeerTransport,
    sends: Vec<(NodeId, LayoutMessage)>,
    answers: &mpsc::UnboundedSender<(NodeId, LayoutMessage)>,
    deadline: Instant,
) {
    for (to, message) in sends {
        let answers = answers.clone();
        if to == manager.node {
            let manager = manager.clone();
            tokio::spawn(async move {
                let from = manager.node.clone();
                let answer =
                    tokio::task::spawn_blocking(move || manager.handle(&from, &message)).await;
                if let Ok(Some(answer)) = answer {
                    let _ = answers.send((to, answer));
                }
            });
        } else {
            let call = transport.call(&to, Request::Layout { message });
            tokio::spawn(async move {
                if let Ok(Ok(Response::Layout {
                    message: Some(answer),
                })) = tokio::time::timeout_at(deadline, call).await
                {
                    let _ = answers.send((to, answer));
                }
            });
        }
    }
}

/// Tells every node of both rings about `layout` (best effort: gossip carries it too).
fn announce(manager: &LayoutManager, transport: &PeerTransport, layout: &Layout) {
    for node in layout.participants() {
        if node == manager.node {
            continue;
        }
        let call = transport.call(
            &node,
            Request::Layout {
                message: LayoutMessage::Commit {
                    layout: layout.clone(),
                },
            },
        );
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(2), call).await;
        });
    }
}

/// Fetches the layout `peer` holds (it published a later epoch than ours) and adopts it.
pub async fn fetch_from(
    manager: &Arc<LayoutManager>,
    transport: &Arc<dyn Transport>,
    peer: &NodeId,
) -> Result<bool, String> {
    let call = transport.call(
        peer,
        Request::Layout {
            message: LayoutMessage::Fetch,
        },
    );
    let layout = match tokio::time::timeout(Duration::from_secs(2), call).await {
        Ok(Ok(Response::Layout {
            message:
                Some(LayoutMessage::Current {
                    layout: Some(layout),
                }),
        })) => layout,
        Ok(Ok(other)) => return Err(format!("{peer} answered {}", other.name())),
        Ok(Err(error)) => return Err(error.to_string()),
        Err(_) => return Err(format!("{peer} did not answer")),
    };
    let manager = manager.clone();
    tokio::task::spawn_blocking(move || manager.adopt(layout))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}
