//! Quorum bookkeeping as pure state machines: no async, no clocks, no I/O.
//!
//! The coordinator feeds them replica events in whatever order the network
//! delivers them and asks for a verdict. Keeping them pure makes the verdict
//! logic exhaustively testable (every order of every outcome), and keeps the
//! async code in the coordinator down to plumbing.
//!
//! Both machines decide as early as possible: success once `required`
//! replicas acked or answered, failure as soon as the replicas still silent
//! could no longer make up the difference. The first event from a replica
//! counts; repeats and events from replicas outside the list are ignored.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::answer::ReadAnswer;
use crate::transport::NodeId;

/// Why a quorum was not reached, with the numbers to debug it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumFailure {
    /// Acks (writes) or answers (reads) needed.
    pub required: u32,
    /// Acks or answers received.
    pub acked: u32,
    /// Who acked or answered.
    pub acked_by: Vec<NodeId>,
    /// Who failed, and how.
    pub failed: Vec<(NodeId, String)>,
    /// N, the number of replicas asked for.
    pub replication: u32,
}

impl fmt::Display for QuorumFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} required replicas acked (replication {}); acked by [{}]; failed: [",
            self.acked,
            self.required,
            self.replication,
            self.acked_by.join(", ")
        )?;
        for (i, (node, reason)) in self.failed.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{node}: {reason}")?;
        }
        f.write_str("]")
    }
}

/// The verdict of a [`WriteQuorum`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuorumState {
    /// Still possible, not yet reached.
    Pending,
    /// `required` replicas acked.
    Succeeded,
    /// Can no longer be reached.
    Failed(QuorumFailure),
}

/// Who acked and who failed, shared by both machines.
#[derive(Clone, Debug)]
struct Tally {
    required: u32,
    replicas: Vec<NodeId>,
    acked: Vec<NodeId>,
    failed: Vec<(NodeId, String)>,
}

fn count(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

impl Tally {
    fn new(required: u32, replicas: Vec<NodeId>) -> Self {
        let mut unique: Vec<NodeId> = Vec::with_capacity(replicas.len());
        for node in replicas {
            if !unique.contains(&node) {
                unique.push(node);
            }
        }
        Self {
            required,
            replicas: unique,
            acked: Vec::new(),
            failed: Vec::new(),
        }
    }

    /// True if `node` is a replica that has not reported yet.
    fn awaits(&self, node: &str) -> bool {
        self.replicas.iter().any(|n| n == node)
            && !self.acked.iter().any(|n| n == node)
            && !self.failed.iter().any(|(n, _)| n == node)
    }

    fn ack(&mut self, node: &str) -> bool {
        let accepted = self.awaits(node);
        if accepted {
            self.acked.push(node.to_owned());
        }
        accepted
    }

    fn fail(&mut self, node: &str, reason: String) -> bool {
        let accepted = self.awaits(node);
        if accepted {
            self.failed.push((node.to_owned(), reason));
        }
        accepted
    }

    fn pending(&self) -> Vec<NodeId> {
        self.replicas
            .iter()
            .filter(|n| self.awaits(n))
            .cloned()
            .collect()
    }

    fn silent(&self) -> usize {
        self.replicas.len() - self.acked.len() - self.failed.len()
    }

    fn failure(&self) -> QuorumFailure {
        QuorumFailure {
            required: self.required,
            acked: count(self.acked.len()),
            acked_by: self.acked.clone(),
            failed: self.failed.clone(),
            replication: count(self.replicas.len()),
        }
    }

    fn state(&self) -> QuorumState {
        let required = self.required as usize;
        if self.acked.len() >= required {
            QuorumState::Succeeded
        } else if self.acked.len() + self.silent() < required {
            QuorumState::Failed(self.failure())
        } else {
            QuorumState::Pending
        }
    }
}

/// Counts a write's acks until `required` of `replicas` acked or that became impossible.
///
/// A replica's slot can also be filled by a hint a fallback stored for it
/// ([`on_hinted`](Self::on_hinted), sloppy quorum); failure reports then name
/// the fallback among those who acked, since it is the node that did.
#[derive(Clone, Debug)]
pub struct WriteQuorum {
    tally: Tally,
    /// (replica, fallback that stored its hint)
    hinted: Vec<(NodeId, NodeId)>,
}

impl WriteQuorum {
    /// `required` acks out of `replicas` (duplicates are ignored).
    pub fn new(required: u32, replicas: Vec<NodeId>) -> Self {
        Self {
            tally: Tally::new(required, replicas),
            hinted: Vec::new(),
        }
    }

    /// `fallback` stored a hint for `replica`, which counts as `replica`'s ack.
    /// Returns false (and changes nothing) if `replica` already reported or is
    /// not a replica.
    pub fn on_hinted(&mut self, replica: &str, fallback: &str) -> bool {
        let accepted = self.tally.ack(replica);
        if accepted {
            self.hinted.push((replica.to_owned(), fallback.to_owned()));
        }
        accepted
    }

    /// Acks that were hints.
    pub fn hinted(&self) -> u32 {
        count(self.hinted.len())
    }

    /// (replica, fallback) for every ack that was a hint, in order of arrival.
    pub fn hinted_by(&self) -> &[(NodeId, NodeId)] {
        &self.hinted
    }

    /// `node` acked. Returns false (and changes nothing) if it already
    /// reported or is not a replica.
    pub fn on_ack(&mut self, node: &str) -> bool {
        self.tally.ack(node)
    }

    /// `node` failed, for `reason`. Returns false (and changes nothing) if it
    /// already reported or is not a replica.
    pub fn on_failure(&mut self, node: &str, reason: impl Into<String>) -> bool {
        self.tally.fail(node, reason.into())
    }

    /// The verdict so far.
    pub fn state(&self) -> QuorumState {
        match self.tally.state() {
            QuorumState::Failed(_) => QuorumState::Failed(self.failure()),
            other => other,
        }
    }

    /// W.
    pub fn required(&self) -> u32 {
        self.tally.required
    }

    /// N, the number of distinct replicas.
    pub fn replication(&self) -> u32 {
        count(self.tally.replicas.len())
    }

    /// Acks so far.
    pub fn acked(&self) -> u32 {
        count(self.tally.acked.len())
    }

    /// Who acked, in order of arrival.
    pub fn acked_by(&self) -> &[NodeId] {
        &self.tally.acked
    }

    /// Who failed and how, in order of arrival.
    pub fn failed(&self) -> &[(NodeId, String)] {
        &self.tally.failed
    }

    /// Replicas that have not reported yet, in replica order.
    pub fn pending(&self) -> Vec<NodeId> {
        self.tally.pending()
    }

    /// The numbers so far, as a failure report (a hinted replica's ack is
    /// listed under the fallback that stored the hint).
    pub fn failure(&self) -> QuorumFailure {
        let mut failure = self.tally.failure();
        for node in &mut failure.acked_by {
            if let Some((_, fallback)) = self.hinted.iter().find(|(replica, _)| replica == node) {
                *node = fallback.clone();
            }
        }
        failure
    }
}

/// The verdict of a [`ReadQuorum`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadState<A> {
    /// Still possible, not yet reached.
    Pending,
    /// `required` replicas answered; the merge of every answer so far.
    Succeeded(A),
    /// Can no longer be reached.
    Failed(QuorumFailure),
}

/// Collects a read's answers until `required` of `replicas` answered or that
/// became impossible, and works out which replicas need read repair.
#[derive(Clone, Debug)]
pub struct ReadQuorum<A> {
    tally: Tally,
    answers: Vec<(NodeId, A)>,
}

impl<A: ReadAnswer> ReadQuorum<A> {
    /// `required` answers out of `replicas` (duplicates are ignored).
    pub fn new(required: u32, replicas: Vec<NodeId>) -> Self {
        Self {
            tally: Tally::new(required, replicas),
            answers: Vec::new(),
        }
    }

    /// `node` answered. Returns false (and keeps nothing) if it already
    /// reported or is not a replica.
    pub fn on_answer(&mut self, node: &str, answer: A) -> bool {
        let accepted = self.tally.ack(node);
        if accepted {
            self.answers.push((node.to_owned(), answer));
        }
        accepted
    }

    /// `node` failed, for `reason`. Returns false (and changes nothing) if it
    /// already reported or is not a replica.
    pub fn on_failure(&mut self, node: &str, reason: impl Into<String>) -> bool {
        self.tally.fail(node, reason.into())
    }

    /// The verdict so far; on success, the merge of every answer so far.
    pub fn state(&self) -> ReadState<A> {
        match self.tally.state() {
            QuorumState::Pending => ReadState::Pending,
            QuorumState::Succeeded => ReadState::Succeeded(self.merged()),
            QuorumState::Failed(failure) => ReadState::Failed(failure),
        }
    }

    /// The merge of every answer so far.
    pub fn merged(&self) -> A {
        let answers: Vec<&A> = self.answers.iter().map(|(_, a)| a).collect();
        A::merge(&answers)
    }

    /// The answers so far, in order of arrival.
    pub fn answers(&self) -> &[(NodeId, A)] {
        &self.answers
    }

    /// What each answering replica must be sent to hold everything answered
    /// so far; replicas that are up to date are left out.
    pub fn repairs(&self) -> Vec<(NodeId, A::Repair)> {
        A::repairs(&self.answers)
    }

    /// Replicas whose answer does not descend (or differs from) the merge of every answer.
    pub fn stale(&self) -> Vec<NodeId> {
        self.repairs().into_iter().map(|(node, _)| node).collect()
    }

    /// R.
    pub fn required(&self) -> u32 {
        self.tally.required
    }

    /// N, the number of distinct replicas.
    pub fn replication(&self) -> u32 {
        count(self.tally.replicas.len())
    }

    /// Answers so far.
    pub fn answered(&self) -> u32 {
        count(self.tally.acked.len())
    }

    /// Who failed and how, in order of arrival.
    pub fn failed(&self) -> &[(NodeId, String)] {
        &self.tally.failed
    }

    /// Replicas that have not reported yet, in replica order.
    pub fn pending(&self) -> Vec<NodeId> {
        self.tally.pending()
    }

    /// The numbers so far, as a failure report.
    pub fn failure(&self) -> QuorumFailure {
        self.tally.failure()
    }
}

#[cfg(test)]
mod tests;
