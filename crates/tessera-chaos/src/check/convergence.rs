//! How far the replicas' own copies agree: measured from the local reads taken before the
//! read-back at `all` (once the clients stopped and hints drained) and after it (its read repairs
//! done), and from the run's phases.
//!
//! Today Tessera has no anti-entropy, so replicas converge only through hinted handoff and read
//! repair: a cell that a replica missed without a hint (a write that failed part-way, a
//! coordinator killed before its background sends) stays different until a read repairs it.
//! With `--converge-within SECS` the checker fails a run whose replicas did not agree that many
//! seconds after the clients stopped: the check for when anti-entropy exists.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{Indexed, Violation, ViolationKind};
use crate::history::{LocalRound, Meta, Observation, PhaseName, Workload};

/// How the replicas agreed in one snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Agreement {
    /// Cells compared: set elements, registers, batch rows.
    pub cells: usize,
    /// Cells whose replicas did not all hold the same versions.
    pub divergent: usize,
    /// Replica copies that could not be read.
    pub unreadable: usize,
    /// A few divergent cells, for people.
    pub examples: Vec<String>,
}

/// Convergence after the final heal.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Convergence {
    /// From the final heal until every member was alive, rings agreed and no hints were left.
    pub heal_to_recovered_s: Option<f64>,
    /// From the clients' stop until no node had hints or background work.
    pub stop_to_quiesced_s: Option<f64>,
    /// From the clients' stop until every replica's own copy agreed (before the read-back).
    pub stop_to_converged_s: Option<f64>,
    pub before: Agreement,
    pub after: Agreement,
}

/// The deadline `--converge-within` set, if any.
pub fn required_within(meta: &Meta) -> Option<u64> {
    meta.converge_within_secs
}

fn seconds(from: Option<u64>, to: Option<u64>) -> Option<f64> {
    match (from, to) {
        (Some(a), Some(b)) if b >= a => Some((b - a) as f64 / 1e6),
        _ => None,
    }
}

pub fn measure(history: &Indexed) -> Convergence {
    let phase = |name| history.phases.get(&name).copied();
    Convergence {
        heal_to_recovered_s: seconds(phase(PhaseName::Heal), phase(PhaseName::Recovered)),
        stop_to_quiesced_s: seconds(phase(PhaseName::WorkloadStop), phase(PhaseName::Quiesced)),
        stop_to_converged_s: seconds(phase(PhaseName::WorkloadStop), phase(PhaseName::Converged)),
        before: agreement(history, LocalRound::Before),
        after: agreement(history, LocalRound::After),
    }
}

/// A replica's copy as a comparable shape.
fn normal(observation: Option<&Observation>) -> BTreeMap<String, BTreeSet<String>> {
    match observation {
        None => BTreeMap::new(),
        Some(Observation::Cell { values, tombstone }) => {
            let mut cell: BTreeSet<String> = values.iter().cloned().collect();
            if *tombstone {
                cell.insert("(tombstone)".into());
            }
            [(String::new(), cell)].into()
        }
        Some(Observation::Members { elements }) => elements
            .iter()
            .map(|e| (e.clone(), BTreeSet::new()))
            .collect(),
        Some(Observation::Row { columns }) => columns
            .iter()
            .map(|(c, ids)| (c.clone(), ids.iter().cloned().collect()))
            .collect(),
    }
}

pub fn agreement(history: &Indexed, round: LocalRound) -> Agreement {
    let mut out = Agreement::default();
    for ((r, workload, key), locals) in &history.locals {
        if *r != round {
            continue;
        }
        let replicas = history.placements.get(&(*workload, key.clone()));
        let copies: Vec<_> = locals
            .iter()
            .filter(|l| replicas.is_none_or(|r| r.contains(&l.node)))
            .collect();
        out.unreadable += copies.iter().filter(|l| l.error.is_some()).count();
        let shapes: Vec<(&str, BTreeMap<String, BTreeSet<String>>)> = copies
            .iter()
            .filter(|l| l.error.is_none())
            .map(|l| (l.node.as_str(), normal(l.observed.as_ref())))
            .collect();
        if *workload == Workload::Set {
            // One cell per element that any replica holds.
            let elements: BTreeSet<&String> = shapes.iter().flat_map(|(_, s)| s.keys()).collect();
            out.cells += elements.len();
            for element in elements {
                let holders: Vec<&str> = shapes
                    .iter()
                    .filter(|(_, s)| s.contains_key(element))
                    .map(|(n, _)| *n)
                    .collect();
                if holders.len() != shapes.len() {
                    out.divergent += 1;
                    if out.examples.len() < 5 {
                        out.examples
                            .push(format!("set {key}/{element}: only on {holders:?}"));
                    }
                }
            }
        } else {
            out.cells += 1;
            if shapes.windows(2).any(|w| w[0].1 != w[1].1) {
                out.divergent += 1;
                if out.examples.len() < 5 {
                    let each: Vec<String> = shapes
                        .iter()
                        .map(|(n, s)| format!("{n}: {:?}", s.values().collect::<Vec<_>>()))
                        .collect();
                    out.examples
                        .push(format!("{} {key}: {}", workload.name(), each.join("; ")));
                }
            }
        }
    }
    out
}

/// With a deadline set: a violation unless the replicas agreed within it.
pub fn judge(
    history: &Indexed,
    within_secs: u64,
    convergence: &Convergence,
    violations: &mut Vec<Violation>,
) {
    let on_time = convergence
        .stop_to_converged_s
        .is_some_and(|s| s <= within_secs as f64);
    if !on_time {
        let workload = history
            .meta
            .workloads
            .first()
            .copied()
            .unwrap_or(Workload::Set);
        violations.push(Violation {
            kind: ViolationKind::NotConverged,
            workload,
            key: String::new(),
            detail: format!(
                "the replicas did not agree within {within_secs} s of the clients' stop \
                 ({} of {} cells still differed before the read-back: {})",
                convergence.before.divergent,
                convergence.before.cells,
                convergence.before.examples.join("; ")
            ),
            ops: vec![],
        });
    }
}
