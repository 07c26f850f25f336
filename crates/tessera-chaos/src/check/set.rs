//! The set workload's checks. Each add writes a cell of its own (the element is the column), so
//! adds never conflict and every acknowledged add must be in the read-back at `all`.

use std::collections::BTreeSet;

use super::{describe, Indexed, Violation, ViolationKind, WorkloadCounts};
use crate::history::{LocalRound, Observation, Op, OpKind, Outcome, Workload};

pub fn check(history: &Indexed, violations: &mut Vec<Violation>) -> WorkloadCounts {
    let mut counts = WorkloadCounts::default();
    let keys = history
        .keys
        .get(&Workload::Set)
        .cloned()
        .unwrap_or_default();
    for key in &keys {
        check_key(history, key, &mut counts, violations);
    }
    counts
}

fn members(observation: Option<&Observation>) -> Option<BTreeSet<&str>> {
    match observation {
        Some(Observation::Members { elements }) => {
            Some(elements.iter().map(String::as_str).collect())
        }
        _ => None,
    }
}

fn check_key(
    history: &Indexed,
    key: &str,
    counts: &mut WorkloadCounts,
    violations: &mut Vec<Violation>,
) {
    let ops = history.ops_of(Workload::Set, key);
    let adds: Vec<&Op> = ops
        .iter()
        .copied()
        .filter(|op| op.f == OpKind::Add && op.value.is_some())
        .collect();
    for add in &adds {
        match add.outcome {
            Outcome::Ok => counts.acked += 1,
            Outcome::Info => counts.indeterminate += 1,
            Outcome::Fail => counts.failed += 1,
        }
    }
    let violation = |kind, detail: String, ops: Vec<u64>| Violation {
        kind,
        workload: Workload::Set,
        key: key.to_owned(),
        detail,
        ops,
    };

    // Every observation that shows an add refused with "nothing was written".
    let mut reads: Vec<(&Op, BTreeSet<&str>)> = Vec::new();
    for op in ops.iter().filter(|op| op.f == OpKind::Read) {
        match (op.outcome, members(op.observed.as_ref())) {
            (Outcome::Ok, Some(seen)) => {
                counts.reads_ok += 1;
                reads.push((op, seen));
            }
            _ => counts.reads_failed += 1,
        }
    }

    // The read-back at `all`.
    let final_read = history.finals.get(&(Workload::Set, key.to_owned()));
    let final_members = final_read.and_then(|f| members(f.observed.as_ref()));
    match &final_members {
        None => {
            let why = final_read
                .and_then(|f| f.error.clone())
                .unwrap_or_else(|| "no read-back was recorded".into());
            violations.push(violation(
                ViolationKind::Unverified,
                format!("the read-back at `all` of set row {key} failed: {why}"),
                vec![],
            ));
        }
        Some(present) => {
            for add in &adds {
                let value = add.value.as_deref().unwrap_or_default();
                let found = present.contains(value);
                match add.outcome {
                    Outcome::Ok if !found => {
                        counts.lost += 1;
                        violations.push(violation(
                            ViolationKind::LostAdd,
                            format!(
                                "{value} was acknowledged by {} but is not in the read-back at `all`",
                                describe(add)
                            ),
                            vec![add.id],
                        ));
                    }
                    Outcome::Info if found => counts.indeterminate_found += 1,
                    _ => {}
                }
            }
        }
    }

    // Adds refused with "nothing was written" must stay unwritten.
    let mut seen_anywhere: BTreeSet<&str> = final_members.clone().unwrap_or_default();
    for (_, seen) in &reads {
        seen_anywhere.extend(seen.iter().copied());
    }
    for round in [LocalRound::Before, LocalRound::After] {
        for local in history
            .locals
            .get(&(round, Workload::Set, key.to_owned()))
            .into_iter()
            .flatten()
        {
            if let Some(seen) = members(local.observed.as_ref()) {
                seen_anywhere.extend(seen);
            }
        }
    }
    for add in adds.iter().filter(|a| a.outcome == Outcome::Fail) {
        let value = add.value.as_deref().unwrap_or_default();
        if seen_anywhere.contains(value) {
            violations.push(violation(
                ViolationKind::AppliedDespiteFailure,
                format!(
                    "{value} was refused ({} {}) by {} but was found written",
                    add.status.map(|s| s.to_string()).unwrap_or_default(),
                    add.error.as_deref().unwrap_or("error"),
                    describe(add)
                ),
                vec![add.id],
            ));
        }
    }

    // Reads while healthy see every add acknowledged before they began.
    for (read, seen) in &reads {
        if history.wiped() || history.recovered_at().is_none_or(|t| read.start_us < t) {
            continue;
        }
        counts.reads_judged += 1;
        let missing: Vec<&Op> = adds
            .iter()
            .copied()
            .filter(|add| history.judgeable(add, read.start_us))
            .filter(|add| !seen.contains(add.value.as_deref().unwrap_or_default()))
            .collect();
        if !missing.is_empty() {
            let names: Vec<String> = missing
                .iter()
                .take(5)
                .map(|a| {
                    format!(
                        "{} ({})",
                        a.value.as_deref().unwrap_or_default(),
                        describe(a)
                    )
                })
                .collect();
            let mut ids = vec![read.id];
            ids.extend(missing.iter().map(|a| a.id));
            violations.push(violation(
                ViolationKind::StaleRead,
                format!(
                    "{} missed {} add(s) acknowledged before it began: {}{}",
                    describe(read),
                    missing.len(),
                    names.join(", "),
                    if missing.len() > 5 { ", ..." } else { "" }
                ),
                ids,
            ));
        }
    }

    // Once hints drained, every acknowledged add is on at least W of its replicas.
    if history.wiped() {
        return;
    }
    let Some(replicas) = history.placements.get(&(Workload::Set, key.to_owned())) else {
        return;
    };
    let locals = history
        .locals
        .get(&(LocalRound::Before, Workload::Set, key.to_owned()));
    let Some(locals) = locals else { return };
    let held: Vec<(&str, Option<BTreeSet<&str>>)> = locals
        .iter()
        .filter(|l| replicas.contains(&l.node))
        .map(|l| (l.node.as_str(), members(l.observed.as_ref())))
        .collect();
    if held.iter().any(|(_, seen)| seen.is_none()) {
        // A replica could not be read: its count is unknown, not zero.
        return;
    }
    let w = history.meta.write_quorum as usize;
    for add in adds.iter().filter(|a| a.outcome == Outcome::Ok) {
        let value = add.value.as_deref().unwrap_or_default();
        let holders: Vec<&str> = held
            .iter()
            .filter(|(_, seen)| seen.as_ref().is_some_and(|s| s.contains(value)))
            .map(|(node, _)| *node)
            .collect();
        if holders.len() < w {
            violations.push(violation(
                ViolationKind::UnderReplicated,
                format!(
                    "{value}, acknowledged at W={w} by {}, was held by {} of its replicas {replicas:?} \
                     once hints drained (holders: {holders:?})",
                    describe(add),
                    holders.len()
                ),
                vec![add.id],
            ));
        }
    }
}
