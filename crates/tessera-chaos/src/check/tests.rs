//! The checker on hand-made histories: each violation it claims to catch, and clean histories
//! that must pass (including the cases a careless checker would flag).

use std::collections::BTreeMap;

use super::*;
use crate::history::{
    Fault, FinalRead, LocalRead, Meta, NodeInfo, Observation, Phase, Placement, HISTORY_FORMAT,
};

/// Builds a history of a 3-node cluster at N=3, R=W=2. Times are in seconds.
pub(crate) struct Builder {
    pub events: Vec<Event>,
    next: u64,
}

fn us(seconds: f64) -> u64 {
    (seconds * 1e6) as u64
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

impl Builder {
    pub fn new(workloads: &[Workload]) -> Self {
        let meta = Meta {
            format: HISTORY_FORMAT,
            seed: 1,
            command: "tessera-chaos --seed 1".into(),
            nodes: (1..=3)
                .map(|i| NodeInfo {
                    id: format!("n{i}"),
                    address: format!("127.0.0.10{i}:7000"),
                })
                .collect(),
            replication: 3,
            read_level: "quorum".into(),
            write_level: "quorum".into(),
            read_quorum: 2,
            write_quorum: 2,
            workloads: workloads.to_vec(),
            started_at_ms: 0,
            converge_within_secs: None,
            notes: vec![],
        };
        Builder {
            events: vec![Event::Meta(meta)],
            next: 1,
        }
    }

    fn meta_mut(&mut self) -> &mut Meta {
        match &mut self.events[0] {
            Event::Meta(m) => m,
            _ => unreachable!("the first event is the meta"),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn op(
        &mut self,
        workload: Workload,
        f: OpKind,
        key: &str,
        value: Option<&str>,
        parents: &[&str],
        start: f64,
        end: f64,
        outcome: Outcome,
        observed: Option<Observation>,
    ) -> u64 {
        let id = self.next;
        self.next += 1;
        self.events.push(Event::Op(Op {
            id,
            client: 1,
            node: "n1".into(),
            workload,
            f,
            key: key.into(),
            start_us: us(start),
            end_us: us(end),
            outcome,
            status: match outcome {
                Outcome::Ok => Some(204),
                Outcome::Fail => Some(503),
                Outcome::Info => Some(504),
            },
            error: match outcome {
                Outcome::Fail => Some("unavailable".into()),
                Outcome::Info => Some("timeout".into()),
                Outcome::Ok => None,
            },
            value: value.map(str::to_owned),
            parents: strings(parents),
            observed,
            hinted: None,
        }));
        id
    }

    pub fn add(&mut self, key: &str, element: &str, start: f64, end: f64, outcome: Outcome) -> u64 {
        self.op(
            Workload::Set,
            OpKind::Add,
            key,
            Some(element),
            &[],
            start,
            end,
            outcome,
            None,
        )
    }

    pub fn hinted(&mut self, id: u64, hinted: u32) {
        for event in &mut self.events {
            if let Event::Op(op) = event {
                if op.id == id {
                    op.hinted = Some(hinted);
                }
            }
        }
    }

    pub fn read_set(&mut self, key: &str, start: f64, end: f64, elements: &[&str]) -> u64 {
        let observed = Observation::Members {
            elements: strings(elements),
        };
        let w = Workload::Set;
        self.op(
            w,
            OpKind::Read,
            key,
            None,
            &[],
            start,
            end,
            Outcome::Ok,
            Some(observed),
        )
    }

    pub fn write(
        &mut self,
        key: &str,
        value: &str,
        parents: &[&str],
        start: f64,
        end: f64,
        outcome: Outcome,
    ) -> u64 {
        let (w, f) = (Workload::Register, OpKind::Write);
        self.op(w, f, key, Some(value), parents, start, end, outcome, None)
    }

    pub fn delete(
        &mut self,
        key: &str,
        parents: &[&str],
        start: f64,
        end: f64,
        outcome: Outcome,
    ) -> u64 {
        let (w, f) = (Workload::Register, OpKind::Delete);
        self.op(w, f, key, None, parents, start, end, outcome, None)
    }

    pub fn read_register(&mut self, key: &str, start: f64, end: f64, values: &[&str]) -> u64 {
        let observed = Observation::Cell {
            values: strings(values),
            tombstone: false,
        };
        let w = Workload::Register;
        self.op(
            w,
            OpKind::Read,
            key,
            None,
            &[],
            start,
            end,
            Outcome::Ok,
            Some(observed),
        )
    }

    pub fn batch(
        &mut self,
        key: &str,
        id: &str,
        parents: &[&str],
        start: f64,
        end: f64,
        outcome: Outcome,
    ) -> u64 {
        let (w, f) = (Workload::Batch, OpKind::Batch);
        self.op(w, f, key, Some(id), parents, start, end, outcome, None)
    }

    pub fn phase(&mut self, name: PhaseName, t: f64) {
        self.events.push(Event::Phase(Phase {
            name,
            t_us: us(t),
            detail: String::new(),
        }));
    }

    /// The usual end of a run: heal at `heal`, recovered 2 s later, clients stop at `stop`.
    pub fn phases(&mut self, heal: f64, stop: f64) {
        self.phase(PhaseName::WorkloadStart, 0.0);
        self.phase(PhaseName::Heal, heal);
        self.phase(PhaseName::Recovered, heal + 2.0);
        self.phase(PhaseName::WorkloadStop, stop);
        self.phase(PhaseName::Quiesced, stop + 1.0);
    }

    pub fn final_read(&mut self, workload: Workload, key: &str, observed: Option<Observation>) {
        let error = observed.is_none().then(|| "503 unavailable".to_string());
        self.events.push(Event::Final(FinalRead {
            workload,
            key: key.into(),
            t_us: us(1000.0),
            observed,
            error,
        }));
    }

    pub fn final_members(&mut self, key: &str, elements: &[&str]) {
        let observed = Observation::Members {
            elements: strings(elements),
        };
        self.final_read(Workload::Set, key, Some(observed));
    }

    pub fn final_cell(&mut self, key: &str, values: &[&str]) {
        let observed = Observation::Cell {
            values: strings(values),
            tombstone: false,
        };
        self.final_read(Workload::Register, key, Some(observed));
    }

    pub fn local(
        &mut self,
        round: LocalRound,
        node: &str,
        workload: Workload,
        key: &str,
        observed: Observation,
    ) {
        self.events.push(Event::Local(LocalRead {
            round,
            node: node.into(),
            workload,
            key: key.into(),
            observed: Some(observed),
            error: None,
        }));
    }

    pub fn placement(&mut self, workload: Workload, key: &str, replicas: &[&str]) {
        self.events.push(Event::Placement(Placement {
            workload,
            key: key.into(),
            replicas: strings(replicas),
        }));
    }

    pub fn fault(&mut self, kind: &str, start: f64, end: f64) {
        self.events.push(Event::Fault(Fault {
            id: 1,
            kind: kind.into(),
            start_us: us(start),
            end_us: us(end),
            description: kind.into(),
            nodes: vec!["n2".into()],
            links: vec![],
            recovered_us: Some(us(end + 1.5)),
        }));
    }

    pub fn verdict(&self) -> Verdict {
        check(&self.events).expect("the history is well formed")
    }
}

fn row(columns: &[(&str, &[&str])]) -> Observation {
    Observation::Row {
        columns: columns
            .iter()
            .map(|(c, ids)| (c.to_string(), strings(ids)))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn kinds(verdict: &Verdict) -> Vec<ViolationKind> {
    verdict.violations.iter().map(|v| v.kind).collect()
}

// ---- set ----

fn clean_set() -> Builder {
    let mut h = Builder::new(&[Workload::Set]);
    h.phases(20.0, 30.0);
    h.fault("isolate", 5.0, 15.0);
    h.add("s0", "e1", 1.0, 1.1, Outcome::Ok);
    h.add("s0", "e2", 6.0, 8.0, Outcome::Info); // unknown, and found: allowed
    h.add("s0", "e3", 7.0, 7.1, Outcome::Info); // unknown, and absent: allowed
    h.add("s0", "e4", 8.0, 8.1, Outcome::Fail); // refused, and absent
    h.add("s0", "e5", 9.0, 9.1, Outcome::Ok);
    // Before the recovery a read may miss e5 (it may sit as a hint): not judged.
    h.read_set("s0", 10.0, 10.1, &["e1"]);
    // After it, it must not.
    h.read_set("s0", 23.0, 23.1, &["e1", "e2", "e5"]);
    h.final_members("s0", &["e1", "e2", "e5"]);
    h.placement(Workload::Set, "s0", &["n1", "n2", "n3"]);
    for node in ["n1", "n2"] {
        let all = Observation::Members {
            elements: strings(&["e1", "e2", "e5"]),
        };
        h.local(LocalRound::Before, node, Workload::Set, "s0", all);
    }
    let some = Observation::Members {
        elements: strings(&["e1"]),
    };
    h.local(LocalRound::Before, "n3", Workload::Set, "s0", some);
    h
}

#[test]
fn a_clean_set_history_passes() {
    let verdict = clean_set().verdict();
    assert!(verdict.ok(), "{:#?}", verdict.violations);
    let counts = &verdict.counts[&Workload::Set];
    assert_eq!(
        (counts.acked, counts.indeterminate, counts.failed),
        (2, 2, 1)
    );
    assert_eq!(counts.indeterminate_found, 1);
    assert_eq!(counts.reads_judged, 1);
    assert_eq!(verdict.lost(), 0);
    // n3 lacked e2 and e5: the replicas did not agree before the read-back.
    assert_eq!(verdict.convergence.before.divergent, 2);
}

#[test]
fn a_lost_add_is_caught() {
    let mut h = clean_set();
    h.add("s0", "e9", 2.0, 2.1, Outcome::Ok);
    let verdict = h.verdict();
    assert!(
        kinds(&verdict).contains(&ViolationKind::LostAdd),
        "{:#?}",
        verdict.violations
    );
    assert_eq!(verdict.lost(), 1);
    let lost = verdict
        .violations
        .iter()
        .find(|v| v.kind == ViolationKind::LostAdd)
        .unwrap();
    assert!(lost.detail.contains("e9"), "{}", lost.detail);
}

#[test]
fn a_refused_add_found_written_is_caught() {
    let mut h = Builder::new(&[Workload::Set]);
    h.phases(20.0, 30.0);
    h.add("s0", "e1", 1.0, 1.1, Outcome::Fail);
    h.final_members("s0", &["e1"]);
    assert_eq!(
        kinds(&h.verdict()),
        vec![ViolationKind::AppliedDespiteFailure]
    );
}

#[test]
fn a_stale_set_read_while_healthy_is_caught() {
    let mut h = clean_set();
    h.read_set("s0", 24.0, 24.1, &["e1"]); // misses e5, acknowledged at 9.1
    assert_eq!(kinds(&h.verdict()), vec![ViolationKind::StaleRead]);
}

#[test]
fn a_hinted_add_after_the_recovery_is_not_held_against_reads() {
    let mut h = clean_set();
    let late = h.add("s0", "e6", 24.0, 24.1, Outcome::Ok);
    h.hinted(late, 1);
    h.read_set("s0", 25.0, 25.1, &["e1", "e5"]); // misses the hinted e6: not judged
    let plain = h.add("s0", "e7", 26.0, 26.1, Outcome::Ok);
    h.read_set("s0", 27.0, 27.1, &["e1", "e5", "e6"]); // misses e7, acked by real replicas
    h.final_members("s0", &["e1", "e2", "e5", "e6", "e7"]);
    let verdict = h.verdict();
    let stale: Vec<&Violation> = verdict
        .violations
        .iter()
        .filter(|v| v.kind == ViolationKind::StaleRead)
        .collect();
    assert_eq!(stale.len(), 1, "{stale:#?}");
    assert!(stale[0].ops.contains(&plain));
}

#[test]
fn an_under_replicated_add_is_caught_unless_a_disk_was_wiped() {
    let mut h = clean_set();
    let only_n1 = Observation::Members {
        elements: strings(&["e1", "e5", "e8"]),
    };
    h.add("s0", "e8", 25.0, 25.1, Outcome::Ok);
    h.final_members("s0", &["e1", "e2", "e5", "e8"]);
    // Replace n1's copy: e8 only on n1.
    h.events
        .retain(|e| !matches!(e, Event::Local(l) if l.node == "n1"));
    h.local(LocalRound::Before, "n1", Workload::Set, "s0", only_n1);
    let verdict = h.verdict();
    // e2 is on n2 only too, but it was never acknowledged.
    assert_eq!(
        kinds(&verdict),
        vec![ViolationKind::UnderReplicated],
        "{:#?}",
        verdict.violations
    );

    h.fault("wipe", 11.0, 12.0);
    assert!(h.verdict().ok());
    // Nor are reads judged for staleness.
    let mut h = clean_set();
    h.read_set("s0", 24.0, 24.1, &["e1"]);
    h.fault("wipe", 11.0, 12.0);
    assert!(h.verdict().ok(), "{:#?}", h.verdict().violations);
}

#[test]
fn a_key_that_cannot_be_read_back_is_unverified() {
    let mut h = Builder::new(&[Workload::Set]);
    h.phases(20.0, 30.0);
    h.add("s0", "e1", 1.0, 1.1, Outcome::Ok);
    h.final_read(Workload::Set, "s0", None);
    assert_eq!(kinds(&h.verdict()), vec![ViolationKind::Unverified]);
}

// ---- register ----

fn clean_register() -> Builder {
    let mut h = Builder::new(&[Workload::Register]);
    h.phases(20.0, 30.0);
    h.write("r0", "a", &[], 0.1, 0.2, Outcome::Ok);
    h.read_register("r0", 1.0, 1.1, &["a"]);
    h.write("r0", "b", &["a"], 1.2, 1.3, Outcome::Ok);
    // Two clients read b and write concurrently: both survive as siblings.
    h.write("r0", "c", &["b"], 2.0, 2.1, Outcome::Ok);
    h.write("r0", "d", &["b"], 2.0, 2.2, Outcome::Ok);
    // A write whose outcome is unknown, superseded by a later one that read it.
    h.write("r0", "e", &["c", "d"], 3.0, 5.0, Outcome::Info);
    h.write("r0", "f", &["e"], 6.0, 6.1, Outcome::Ok);
    // A write refused before anything was written, never seen.
    h.write("r0", "g", &["f"], 7.0, 7.1, Outcome::Fail);
    h.read_register("r0", 23.0, 23.1, &["f"]);
    h.final_cell("r0", &["f"]);
    h
}

#[test]
fn a_clean_register_history_passes() {
    let verdict = clean_register().verdict();
    assert!(verdict.ok(), "{:#?}", verdict.violations);
    let counts = &verdict.counts[&Workload::Register];
    assert_eq!(
        (counts.acked, counts.indeterminate, counts.failed),
        (5, 1, 1)
    );
    assert_eq!(counts.indeterminate_found, 0);
}

#[test]
fn concurrent_writes_may_be_siblings() {
    let mut h = Builder::new(&[Workload::Register]);
    h.phases(20.0, 30.0);
    h.write("r0", "a", &[], 0.1, 0.2, Outcome::Ok);
    h.write("r0", "c", &["a"], 2.0, 2.1, Outcome::Ok);
    h.write("r0", "d", &["a"], 2.0, 2.2, Outcome::Ok);
    h.read_register("r0", 23.0, 23.1, &["c", "d"]);
    h.final_cell("r0", &["c", "d"]);
    assert!(h.verdict().ok());
}

#[test]
fn a_lost_update_is_caught() {
    let mut h = Builder::new(&[Workload::Register]);
    h.phases(20.0, 30.0);
    h.write("r0", "a", &[], 0.1, 0.2, Outcome::Ok);
    h.write("r0", "b", &["a"], 1.0, 1.1, Outcome::Ok);
    // c read b, but its outcome is unknown and it is not there: b should be.
    h.write("r0", "c", &["b"], 2.0, 4.0, Outcome::Info);
    h.final_cell("r0", &["a"]);
    let verdict = h.verdict();
    assert_eq!(
        kinds(&verdict),
        vec![ViolationKind::LostUpdate],
        "{:#?}",
        verdict.violations
    );
    assert!(verdict.violations[0].detail.contains("b, acknowledged"));
    assert_eq!(verdict.lost(), 1);
}

#[test]
fn a_resurrection_is_caught() {
    let mut h = Builder::new(&[Workload::Register]);
    h.phases(20.0, 30.0);
    h.write("r0", "a", &[], 0.1, 0.2, Outcome::Ok);
    h.write("r0", "b", &["a"], 1.0, 1.1, Outcome::Ok);
    h.delete("r0", &["b"], 2.0, 2.1, Outcome::Ok);
    h.final_cell("r0", &["b"]);
    assert_eq!(kinds(&h.verdict()), vec![ViolationKind::Resurrected]);
    // A delete that read b and whose outcome is unknown proves nothing.
    let mut h = Builder::new(&[Workload::Register]);
    h.phases(20.0, 30.0);
    h.write("r0", "b", &[], 1.0, 1.1, Outcome::Ok);
    h.delete("r0", &["b"], 2.0, 2.1, Outcome::Info);
    h.final_cell("r0", &["b"]);
    assert!(h.verdict().ok());
}

#[test]
fn siblings_of_related_writes_are_caught() {
    let mut h = clean_register();
    h.read_register("r0", 8.0, 8.1, &["b", "c"]);
    assert_eq!(kinds(&h.verdict()), vec![ViolationKind::CausalSiblings]);
}

#[test]
fn stale_register_reads_while_healthy_are_caught() {
    // Returns a value that an earlier acknowledged write superseded.
    let mut h = clean_register();
    h.read_register("r0", 24.0, 24.1, &["d"]);
    let found = kinds(&h.verdict());
    assert!(
        !found.is_empty() && found.iter().all(|k| *k == ViolationKind::StaleRead),
        "{found:?}"
    );
    // Returns something unrelated, missing f.
    let mut h = clean_register();
    h.write("r0", "x", &[], 21.0, 21.1, Outcome::Info);
    h.read_register("r0", 24.0, 24.1, &["x"]);
    assert!(kinds(&h.verdict()).contains(&ViolationKind::StaleRead));
    // The same read during the faults is not judged.
    let mut h = clean_register();
    h.read_register("r0", 6.5, 6.6, &["d"]);
    assert!(h.verdict().ok());
}

#[test]
fn a_refused_register_write_found_is_caught() {
    let mut h = clean_register();
    h.read_register("r0", 8.0, 8.1, &["g"]);
    assert!(kinds(&h.verdict()).contains(&ViolationKind::AppliedDespiteFailure));
}

// ---- batch ----

fn clean_batch() -> Builder {
    let mut h = Builder::new(&[Workload::Batch]);
    h.phases(20.0, 30.0);
    h.batch("b0", "x", &[], 0.1, 0.2, Outcome::Ok);
    h.batch("b0", "y", &["x"], 1.0, 1.1, Outcome::Ok);
    h.batch("b0", "z", &["x"], 1.0, 1.2, Outcome::Ok);
    let both = row(&[("c0", &["y", "z"]), ("c1", &["y", "z"])]);
    h.final_read(Workload::Batch, "b0", Some(both.clone()));
    for node in ["n1", "n2", "n3"] {
        h.local(LocalRound::After, node, Workload::Batch, "b0", both.clone());
    }
    h
}

#[test]
fn a_clean_batch_history_passes() {
    let verdict = clean_batch().verdict();
    assert!(verdict.ok(), "{:#?}", verdict.violations);
    assert_eq!(verdict.convergence.after.divergent, 0);
}

#[test]
fn a_torn_batch_is_caught_in_reads_and_in_replica_copies() {
    let mut h = clean_batch();
    let torn = row(&[("c0", &["y", "z"]), ("c1", &["z"])]);
    let w = Workload::Batch;
    h.op(
        w,
        OpKind::Read,
        "b0",
        None,
        &[],
        5.0,
        5.1,
        Outcome::Ok,
        Some(torn.clone()),
    );
    h.local(LocalRound::Before, "n2", w, "b0", torn);
    let verdict = h.verdict();
    assert_eq!(
        verdict.count(ViolationKind::TornBatch),
        2,
        "{:#?}",
        verdict.violations
    );
}

#[test]
fn a_lost_batch_is_caught() {
    let mut h = clean_batch();
    h.batch("b0", "w", &["y", "z"], 2.0, 2.1, Outcome::Ok);
    let verdict = h.verdict();
    assert_eq!(kinds(&verdict), vec![ViolationKind::LostUpdate]);
}

// ---- convergence, availability, files ----

#[test]
fn a_convergence_deadline_fails_a_run_that_did_not_converge() {
    let mut h = clean_set();
    h.meta_mut().converge_within_secs = Some(60);
    assert_eq!(kinds(&h.verdict()), vec![ViolationKind::NotConverged]);
    h.phase(PhaseName::Converged, 40.0);
    assert!(h.verdict().ok());
}

#[test]
fn availability_is_counted_per_kind_of_window() {
    let verdict = clean_set().verdict();
    let by_label: BTreeMap<&str, &stats::WindowStats> = verdict
        .availability
        .iter()
        .map(|w| (w.label.as_str(), w))
        .collect();
    let isolate = by_label["isolate"];
    assert_eq!(isolate.writes.total(), 4);
    assert_eq!(isolate.writes.ok, 1);
    assert_eq!(isolate.reads.ok, 1);
    assert_eq!(by_label["no fault"].writes.ok, 1);
    assert_eq!(by_label["healthy"].reads.ok, 1);
    assert_eq!(isolate.recovery_mean_s, Some(1.5));
    assert_eq!(isolate.unrecovered, 0);
}

#[test]
fn a_saved_history_is_judged_the_same() {
    let h = a_lost_history();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let mut file = std::fs::File::create(&path).unwrap();
    for event in &h.events {
        crate::history::write_event(&mut file, event).unwrap();
    }
    drop(file);
    let events = crate::history::read_history(&path).unwrap();
    let again = check(&events).unwrap();
    assert_eq!(again.violations, h.verdict().violations);
    assert!(!again.ok());
}

fn a_lost_history() -> Builder {
    let mut h = clean_set();
    h.add("s0", "lost", 2.0, 2.1, Outcome::Ok);
    h
}
