//! The checks of the causal workloads: registers (read-modify-write of one cell, with deletes)
//! and batches (read-modify-write of a whole row in one atomic batch). Both write only with the
//! context of a read, so [`CausalGraph`] knows what each write superseded.
//!
//! - **Lost update:** an acknowledged write is in neither the read-back at `all` nor anything
//!   that superseded it, and was not superseded through a delete.
//! - **Resurrection:** the read-back shows a value that an acknowledged delete superseded.
//! - **Siblings of related writes:** any read, replica copy or read-back that shows a value
//!   together with one that superseded it.
//! - **Stale read:** a read judged (it began once the cluster had recovered, see
//!   [`Indexed::judgeable`]) that returns a value superseded by a write or delete acknowledged
//!   before it began, or that returns neither an acknowledged earlier write nor anything that
//!   superseded it.
//! - **Torn batch:** a row (read, read-back, or one replica's copy) whose columns do not all show
//!   the same batches.
//! - **Applied despite a definite failure:** a value whose write was refused is seen anywhere.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::causal::{CausalGraph, Node};
use super::{describe, Indexed, Violation, ViolationKind, WorkloadCounts};
use crate::history::{LocalRound, Observation, Op, OpKind, Outcome, Workload};

pub fn check(
    history: &Indexed,
    workload: Workload,
    violations: &mut Vec<Violation>,
) -> WorkloadCounts {
    let mut counts = WorkloadCounts::default();
    let keys = history.keys.get(&workload).cloned().unwrap_or_default();
    for key in &keys {
        check_key(history, workload, key, &mut counts, violations);
    }
    counts
}

/// The values an observation shows, and, for a row, the columns that disagree.
struct Shown {
    values: BTreeSet<String>,
    torn: Option<String>,
}

fn shown(observation: &Observation) -> Shown {
    match observation {
        Observation::Cell { values, .. } => Shown {
            values: values.iter().cloned().collect(),
            torn: None,
        },
        Observation::Members { elements } => Shown {
            values: elements.iter().cloned().collect(),
            torn: None,
        },
        Observation::Row { columns } => {
            let values: BTreeSet<String> = columns.values().flatten().cloned().collect();
            let partial: BTreeMap<&String, Vec<&String>> = columns
                .iter()
                .map(|(column, ids)| {
                    let missing: Vec<&String> =
                        values.iter().filter(|v| !ids.contains(v)).collect();
                    (column, missing)
                })
                .filter(|(_, missing)| !missing.is_empty())
                .collect();
            let torn = (!partial.is_empty()).then(|| {
                partial
                    .iter()
                    .map(|(column, missing)| format!("{column} lacks {missing:?}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            });
            Shown { values, torn }
        }
    }
}

/// Where an observation came from, for violation details and the stale-read check.
struct Seen<'a> {
    what: String,
    /// The read op, if a client read.
    read: Option<&'a Op>,
    shown: Shown,
}

fn check_key(
    history: &Indexed,
    workload: Workload,
    key: &str,
    counts: &mut WorkloadCounts,
    violations: &mut Vec<Violation>,
) {
    let ops = history.ops_of(workload, key);
    let writes: Vec<&Op> = ops.iter().copied().filter(|op| op.f.is_write()).collect();
    let graph = CausalGraph::new(writes.iter().copied());
    let by_node: HashMap<Node, &Op> = writes
        .iter()
        .filter_map(|op| match (op.f, &op.value) {
            (OpKind::Delete, _) => Some((Node::Delete(op.id), *op)),
            (_, Some(v)) => Some((Node::Value(v.clone()), *op)),
            _ => None,
        })
        .collect();
    for write in &writes {
        match write.outcome {
            Outcome::Ok => counts.acked += 1,
            Outcome::Info => counts.indeterminate += 1,
            Outcome::Fail => counts.failed += 1,
        }
    }
    let violation = |kind, detail: String, ops: Vec<u64>| Violation {
        kind,
        workload,
        key: key.to_owned(),
        detail,
        ops,
    };

    // Every observation of the key.
    let mut seen: Vec<Seen> = Vec::new();
    for op in ops.iter().filter(|op| op.f == OpKind::Read) {
        match (op.outcome, &op.observed) {
            (Outcome::Ok, Some(observation)) => {
                counts.reads_ok += 1;
                seen.push(Seen {
                    what: describe(op),
                    read: Some(op),
                    shown: shown(observation),
                });
            }
            _ => counts.reads_failed += 1,
        }
    }
    let final_read = history.finals.get(&(workload, key.to_owned()));
    let final_shown = final_read.and_then(|f| f.observed.as_ref()).map(shown);
    if let Some(shown) = &final_shown {
        seen.push(Seen {
            what: "the read-back at `all`".into(),
            read: None,
            shown: Shown {
                values: shown.values.clone(),
                torn: shown.torn.clone(),
            },
        });
    }
    for round in [LocalRound::Before, LocalRound::After] {
        for local in history
            .locals
            .get(&(round, workload, key.to_owned()))
            .into_iter()
            .flatten()
        {
            if let Some(observation) = &local.observed {
                let when = match round {
                    LocalRound::Before => "before",
                    LocalRound::After => "after",
                };
                seen.push(Seen {
                    what: format!("{}'s own copy {when} the read-back", local.node),
                    read: None,
                    shown: shown(observation),
                });
            }
        }
    }

    // Checks that hold for every observation, at any time.
    for s in &seen {
        if let Some(torn) = &s.shown.torn {
            violations.push(violation(
                ViolationKind::TornBatch,
                format!("{} shows a batch in some columns only: {torn}", s.what),
                s.read.map(|r| vec![r.id]).unwrap_or_default(),
            ));
        }
        let values: Vec<String> = s.shown.values.iter().cloned().collect();
        for (older, newer) in graph.related_pairs(&values) {
            let mut ids: Vec<u64> = s.read.map(|r| vec![r.id]).unwrap_or_default();
            ids.extend(
                [&older, &newer]
                    .iter()
                    .filter_map(|v| by_node.get(&Node::Value((*v).clone())).map(|o| o.id)),
            );
            violations.push(violation(
                ViolationKind::CausalSiblings,
                format!(
                    "{} shows {older} and {newer} as siblings, but {newer} superseded {older}",
                    s.what
                ),
                ids,
            ));
        }
    }
    let mut anywhere: HashSet<&String> = HashSet::new();
    for s in &seen {
        anywhere.extend(s.shown.values.iter());
    }
    for write in writes.iter().filter(|w| w.f != OpKind::Delete) {
        let Some(value) = &write.value else { continue };
        match write.outcome {
            Outcome::Fail if anywhere.contains(value) => violations.push(violation(
                ViolationKind::AppliedDespiteFailure,
                format!(
                    "{value} was refused ({} {}) by {} but was found written",
                    write.status.map(|s| s.to_string()).unwrap_or_default(),
                    write.error.as_deref().unwrap_or("error"),
                    describe(write)
                ),
                vec![write.id],
            )),
            Outcome::Info if anywhere.contains(value) => counts.indeterminate_found += 1,
            _ => {}
        }
    }

    // Descendants of each value, computed once.
    let mut below: HashMap<String, HashSet<Node>> = HashMap::new();
    let mut descendants = |value: &String| -> HashSet<Node> {
        below
            .entry(value.clone())
            .or_insert_with(|| graph.descendants(value))
            .clone()
    };

    // The read-back: lost updates and resurrections.
    match &final_shown {
        None => {
            let why = final_read
                .and_then(|f| f.error.clone())
                .unwrap_or_else(|| "no read-back was recorded".into());
            violations.push(violation(
                ViolationKind::Unverified,
                format!(
                    "the read-back at `all` of {} {key} failed: {why}",
                    workload.name()
                ),
                vec![],
            ));
        }
        Some(present) => {
            for write in writes.iter().filter(|w| w.outcome == Outcome::Ok) {
                let Some(value) = &write.value else { continue };
                if write.f == OpKind::Delete || present.values.contains(value) {
                    continue;
                }
                let below_value = descendants(value);
                let replaced = below_value.iter().any(|n| match n {
                    Node::Value(v) => present.values.contains(v),
                    Node::Delete(_) => true,
                });
                if !replaced {
                    counts.lost += 1;
                    let read_by: Vec<String> = below_value
                        .iter()
                        .filter_map(|n| by_node.get(n))
                        .map(|o| format!("op {} ({:?})", o.id, o.outcome))
                        .collect();
                    violations.push(violation(
                        ViolationKind::LostUpdate,
                        format!(
                            "{value}, acknowledged by {}, is not in the read-back at `all` {:?}, \
                             and nothing that superseded it is (superseded by: {})",
                            describe(write),
                            present.values,
                            if read_by.is_empty() {
                                "no write".to_string()
                            } else {
                                read_by.join(", ")
                            }
                        ),
                        vec![write.id],
                    ));
                }
            }
            for value in &present.values {
                for node in descendants(value) {
                    let Some(delete) = by_node.get(&node) else {
                        continue;
                    };
                    if delete.f == OpKind::Delete && delete.outcome == Outcome::Ok {
                        violations.push(violation(
                            ViolationKind::Resurrected,
                            format!(
                                "{value} is in the read-back at `all`, but the delete {} superseded it",
                                describe(delete)
                            ),
                            vec![delete.id],
                        ));
                    }
                }
            }
        }
    }

    // Reads while healthy.
    let acked: Vec<&Op> = writes
        .iter()
        .copied()
        .filter(|w| w.outcome == Outcome::Ok && w.f != OpKind::Delete)
        .collect();
    for s in &seen {
        let Some(read) = s.read else { continue };
        if history.wiped() || history.recovered_at().is_none_or(|t| read.start_us < t) {
            continue;
        }
        counts.reads_judged += 1;
        // It returned something an earlier acknowledged write or delete superseded.
        for value in &s.shown.values {
            let newer = descendants(value)
                .iter()
                .filter_map(|node| by_node.get(node).copied())
                .filter(|newer| history.judgeable(newer, read.start_us))
                .min_by_key(|newer| newer.end_us);
            if let Some(newer) = newer {
                violations.push(violation(
                    ViolationKind::StaleRead,
                    format!(
                        "{} returned {value}, which {} superseded before the read began",
                        describe(read),
                        describe(newer)
                    ),
                    vec![read.id, newer.id],
                ));
            }
        }
        // It missed an earlier acknowledged write and everything that superseded it.
        for write in &acked {
            let Some(value) = &write.value else { continue };
            if !history.judgeable(write, read.start_us) || s.shown.values.contains(value) {
                continue;
            }
            let below_value = descendants(value);
            let covered = below_value.iter().any(|n| match n {
                Node::Value(v) => s.shown.values.contains(v),
                Node::Delete(_) => true,
            });
            if !covered {
                violations.push(violation(
                    ViolationKind::StaleRead,
                    format!(
                        "{} returned {:?}, missing {value} acknowledged by {} before it began",
                        describe(read),
                        s.shown.values,
                        describe(write)
                    ),
                    vec![read.id, write.id],
                ));
            }
        }
    }
}
