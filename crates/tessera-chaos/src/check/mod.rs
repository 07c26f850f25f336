//! The checker: judges a recorded history (what every client was told, against what the
//! cluster holds at the end) and returns a verdict. Pure: no I/O, so it is tested on hand-made
//! histories, and `--check` re-judges a saved one.
//!
//! What it claims to catch, per workload:
//! - set ([`set`]): lost adds, adds that were refused yet applied, stale reads while healthy,
//!   acknowledged adds held by fewer than W replicas once hints drained;
//! - register and batch ([`causal`], [`register`]): lost updates, resurrected (deleted) values,
//!   siblings of causally related writes, stale reads while healthy, torn batches;
//! - and, for every workload, availability and latency per fault window ([`stats`]) and how the
//!   replicas' own copies agree before and after the read-back ([`convergence`]).

pub mod causal;
pub mod convergence;
pub mod register;
pub mod set;
pub mod stats;

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::error::ChaosError;
use crate::history::{
    Event, Fault, FinalRead, LocalRead, LocalRound, Meta, Op, OpKind, Outcome, PhaseName, Workload,
};

/// What the checker found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    /// An acknowledged set add is missing from the read-back.
    LostAdd,
    /// An acknowledged write is gone, and no write that read it replaced it.
    LostUpdate,
    /// A batch is visible in some columns of a row and not in others.
    TornBatch,
    /// A value that an acknowledged delete superseded came back.
    Resurrected,
    /// A read that began after a write was acknowledged (with R+W>N, the cluster healed and
    /// hints delivered) missed it, or returned what it superseded.
    StaleRead,
    /// Two values where one superseded the other were returned as siblings.
    CausalSiblings,
    /// A write refused with "nothing was written" was found applied.
    AppliedDespiteFailure,
    /// An acknowledged add was held by fewer than W of its replicas once hints drained.
    UnderReplicated,
    /// A key could not be read back at all, so nothing about it could be verified.
    Unverified,
    /// The replicas did not agree within the convergence deadline (`--converge-within`).
    NotConverged,
}

impl ViolationKind {
    pub fn name(self) -> &'static str {
        match self {
            ViolationKind::LostAdd => "lost add",
            ViolationKind::LostUpdate => "lost update",
            ViolationKind::TornBatch => "torn batch",
            ViolationKind::Resurrected => "resurrection",
            ViolationKind::StaleRead => "stale read",
            ViolationKind::CausalSiblings => "siblings of related writes",
            ViolationKind::AppliedDespiteFailure => "applied despite a definite failure",
            ViolationKind::UnderReplicated => "under-replicated",
            ViolationKind::Unverified => "unverified key",
            ViolationKind::NotConverged => "not converged",
        }
    }

    /// Whether the write it concerns is gone: what "lost" counts.
    pub fn is_loss(self) -> bool {
        matches!(self, ViolationKind::LostAdd | ViolationKind::LostUpdate)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    pub kind: ViolationKind,
    pub workload: Workload,
    pub key: String,
    /// For people: what was expected and what was found, with times and nodes.
    pub detail: String,
    /// The operations concerned (ids in the history).
    pub ops: Vec<u64>,
}

/// Counts of one workload.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WorkloadCounts {
    /// Writes (adds, writes, deletes, batches) acknowledged.
    pub acked: usize,
    /// Writes with an unknown outcome.
    pub indeterminate: usize,
    /// Writes certainly refused.
    pub failed: usize,
    /// Of the indeterminate writes, those found applied (allowed).
    pub indeterminate_found: usize,
    /// Acknowledged writes that are gone.
    pub lost: usize,
    pub reads_ok: usize,
    pub reads_failed: usize,
    /// Reads that began after the recovery, judged for staleness.
    pub reads_judged: usize,
}

/// The verdict on one history.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verdict {
    pub violations: Vec<Violation>,
    pub counts: BTreeMap<Workload, WorkloadCounts>,
    pub availability: Vec<stats::WindowStats>,
    pub convergence: convergence::Convergence,
    /// What was not judged, and why.
    pub notes: Vec<String>,
}

impl Verdict {
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }

    pub fn lost(&self) -> usize {
        self.counts.values().map(|c| c.lost).sum()
    }

    pub fn acked(&self) -> usize {
        self.counts.values().map(|c| c.acked).sum()
    }

    pub fn count(&self, kind: ViolationKind) -> usize {
        self.violations.iter().filter(|v| v.kind == kind).count()
    }
}

/// A history, indexed for the checks.
pub struct Indexed<'a> {
    pub meta: &'a Meta,
    pub ops: Vec<&'a Op>,
    pub faults: Vec<&'a Fault>,
    pub phases: HashMap<PhaseName, u64>,
    pub placements: HashMap<(Workload, String), Vec<String>>,
    pub finals: HashMap<(Workload, String), &'a FinalRead>,
    pub locals: HashMap<(LocalRound, Workload, String), Vec<&'a LocalRead>>,
    /// Every key of each workload that any op, read-back or local read names.
    pub keys: BTreeMap<Workload, Vec<String>>,
    /// The run's notes (the meta's, then those recorded during the run).
    pub notes: Vec<String>,
}

impl<'a> Indexed<'a> {
    pub fn new(events: &'a [Event]) -> Result<Self, ChaosError> {
        let meta = events
            .iter()
            .find_map(|e| match e {
                Event::Meta(m) => Some(m),
                _ => None,
            })
            .ok_or_else(|| ChaosError::Usage("the history has no meta line".into()))?;
        let mut indexed = Indexed {
            meta,
            ops: Vec::new(),
            faults: Vec::new(),
            phases: HashMap::new(),
            placements: HashMap::new(),
            finals: HashMap::new(),
            locals: HashMap::new(),
            keys: BTreeMap::new(),
            notes: meta.notes.clone(),
        };
        let mut keys: BTreeMap<Workload, std::collections::BTreeSet<String>> = BTreeMap::new();
        for event in events {
            match event {
                Event::Meta(_) => {}
                Event::Note(n) => indexed.notes.push(n.text.clone()),
                Event::Op(op) => {
                    keys.entry(op.workload).or_default().insert(op.key.clone());
                    indexed.ops.push(op);
                }
                Event::Fault(f) => indexed.faults.push(f),
                Event::Phase(p) => {
                    indexed.phases.entry(p.name).or_insert(p.t_us);
                }
                Event::Placement(p) => {
                    indexed
                        .placements
                        .insert((p.workload, p.key.clone()), p.replicas.clone());
                }
                Event::Final(f) => {
                    keys.entry(f.workload).or_default().insert(f.key.clone());
                    indexed.finals.insert((f.workload, f.key.clone()), f);
                }
                Event::Local(l) => {
                    keys.entry(l.workload).or_default().insert(l.key.clone());
                    indexed
                        .locals
                        .entry((l.round, l.workload, l.key.clone()))
                        .or_default()
                        .push(l);
                }
            }
        }
        indexed.keys = keys
            .into_iter()
            .map(|(w, k)| (w, k.into_iter().collect()))
            .collect();
        Ok(indexed)
    }

    /// The ops of one key, in start order.
    pub fn ops_of(&self, workload: Workload, key: &str) -> Vec<&'a Op> {
        let mut ops: Vec<&Op> = self
            .ops
            .iter()
            .copied()
            .filter(|op| op.workload == workload && op.key == key)
            .collect();
        ops.sort_by_key(|op| (op.start_us, op.id));
        ops
    }

    /// When reads start to be judged for staleness: the recovery after the final heal.
    pub fn recovered_at(&self) -> Option<u64> {
        self.phases.get(&PhaseName::Recovered).copied()
    }

    /// Whether a stale-read check may hold `read` to `write`: the write was acknowledged before
    /// the read began, and the read began once the cluster had recovered; a write acknowledged
    /// after the recovery must also have been acknowledged by real replicas only (a hint may
    /// still be on its way). Batches carry no `X-Hinted`, so only those acknowledged before the
    /// recovery are judged.
    pub fn judgeable(&self, write: &Op, read_start_us: u64) -> bool {
        let Some(recovered) = self.recovered_at() else {
            return false;
        };
        // A wiped replica lost what it held, so a quorum may legitimately miss a write.
        if self.wiped() {
            return false;
        }
        if write.outcome != Outcome::Ok || !write.f.is_write() || read_start_us < recovered {
            return false;
        }
        if write.end_us >= read_start_us {
            return false;
        }
        if write.end_us < recovered {
            return true;
        }
        write.f != OpKind::Batch && write.hinted.unwrap_or(0) == 0
    }

    /// Whether a replica's disk was wiped during the run: then replica counts are not judged.
    pub fn wiped(&self) -> bool {
        self.faults.iter().any(|f| f.kind == "wipe")
    }
}

/// Judges a history.
pub fn check(events: &[Event]) -> Result<Verdict, ChaosError> {
    let history = Indexed::new(events)?;
    let mut verdict = Verdict {
        notes: history.notes.clone(),
        ..Verdict::default()
    };
    if history.recovered_at().is_none() {
        verdict.notes.push(
            "the cluster never recovered after the final heal (members alive, rings agreed, \
             hints drained), so no read was judged for staleness"
                .into(),
        );
    }
    if history.wiped() {
        verdict.notes.push(
            "a replica's data dir was wiped, so neither replica counts (under-replication) nor \
             reads (staleness) were judged: without anti-entropy nothing refills a wiped replica"
                .into(),
        );
    }
    for workload in &history.meta.workloads {
        let counts = match workload {
            Workload::Set => set::check(&history, &mut verdict.violations),
            Workload::Register | Workload::Batch => {
                register::check(&history, *workload, &mut verdict.violations)
            }
        };
        verdict.counts.insert(*workload, counts);
    }
    verdict.availability = stats::windows(&history);
    verdict.convergence = convergence::measure(&history);
    if let Some(limit) = convergence::required_within(history.meta) {
        convergence::judge(
            &history,
            limit,
            &verdict.convergence,
            &mut verdict.violations,
        );
    }
    verdict
        .violations
        .sort_by(|a, b| (a.kind, a.workload, &a.key).cmp(&(b.kind, b.workload, &b.key)));
    Ok(verdict)
}

/// Shorthand for violation details: `op 17 (n2, 3.25-3.31 s)`.
pub fn describe(op: &Op) -> String {
    format!(
        "op {} ({}, client {}, {:.3}-{:.3} s)",
        op.id,
        op.node,
        op.client,
        op.start_us as f64 / 1e6,
        op.end_us as f64 / 1e6
    )
}

#[cfg(test)]
pub(crate) mod tests;
