//! The recorded history of a chaos run: one JSON object per line (`history.jsonl`).
//!
//! Everything the checker judges is in it: what every client asked and was told (operations
//! with their start and end times), when each fault was in force, the phases of the run (final
//! heal, recovery, workload stop), the read-back at `all`, and each replica's own copy of every
//! key before and after that read-back. So `tessera-chaos --check history.jsonl` reaches the
//! same verdict as the run that wrote it, and a history can be made by hand for a test.
//!
//! Times are microseconds since the run started (a monotonic clock).

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::ChaosError;

/// Version of this format, in [`Meta::format`]; bump it when a field changes meaning.
pub const HISTORY_FORMAT: u32 = 1;

/// One line of the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Meta(Meta),
    Op(Op),
    Fault(Fault),
    Phase(Phase),
    Placement(Placement),
    Final(FinalRead),
    Local(LocalRead),
    Note(Note),
}

/// Something the reader must know that arose during the run: a crash, a recovery that did not
/// happen, a check not judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Note {
    pub t_us: u64,
    pub text: String,
}

/// What the run was: the first line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub format: u32,
    pub seed: u64,
    /// The command that replays this run.
    pub command: String,
    pub nodes: Vec<NodeInfo>,
    /// The tables' replication factor N.
    pub replication: u32,
    pub read_level: String,
    pub write_level: String,
    /// R and W as numbers of replicas.
    pub read_quorum: u32,
    pub write_quorum: u32,
    pub workloads: Vec<Workload>,
    /// Wall-clock start (ms since the Unix epoch), for people reading logs.
    pub started_at_ms: u64,
    /// With `--converge-within`: the replicas must agree this long after the clients stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub converge_within_secs: Option<u64>,
    /// Things the reader must know: a nemesis skipped, a check not judged, and why.
    #[serde(default)]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: String,
    /// `IP:PORT`.
    pub address: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// Unique adds to a set (one cell per element, in a few rows).
    Set,
    /// Read-modify-write of registers through causal contexts, with some deletes.
    Register,
    /// Read-modify-write of whole rows with atomic batches.
    Batch,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Set => "set",
            Workload::Register => "register",
            Workload::Batch => "batch",
        }
    }

    pub fn parse(text: &str) -> Option<Workload> {
        match text {
            "set" => Some(Workload::Set),
            "register" => Some(Workload::Register),
            "batch" => Some(Workload::Batch),
            _ => None,
        }
    }
}

/// What an operation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// A set element added (a cell written).
    Add,
    /// A read (a cell, or a row).
    Read,
    /// A register written with the context of a read.
    Write,
    /// A register deleted with the context of a read.
    Delete,
    /// A row batch written with the contexts of a read.
    Batch,
}

impl OpKind {
    pub fn is_write(self) -> bool {
        !matches!(self, OpKind::Read)
    }
}

/// What the client was told, Jepsen's way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Acknowledged (a write) or answered (a read).
    Ok,
    /// Certainly not applied: refused before anything was written (4xx, `503 unavailable`, the
    /// connection was never made).
    Fail,
    /// Unknown: the write may or may not be applied (timeout, `504`, `503 quorum_failed`, a
    /// connection broken mid-request).
    Info,
}

/// One client operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    pub id: u64,
    /// The client that ran it (`init` ops use client 0 and run before the faults).
    pub client: u32,
    /// The node the request was sent to (its coordinator or forwarder).
    pub node: String,
    pub workload: Workload,
    pub f: OpKind,
    /// The register, set row or batch row.
    pub key: String,
    pub start_us: u64,
    pub end_us: u64,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The error code or transport error, for failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What a write wrote: the set element, the register value, the batch id. Unique per run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// For writes, deletes and batches: the values the read whose context the write carried
    /// saw. The write supersedes exactly those (and what they superseded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<String>,
    /// For reads: what the read returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<Observation>,
    /// `X-Hinted` of a write's answer: acks that were hints held for down replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hinted: Option<u32>,
}

impl Op {
    pub fn latency_us(&self) -> u64 {
        self.end_us.saturating_sub(self.start_us)
    }
}

/// What a read returned, in the shape of its workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "shape", rename_all = "snake_case")]
pub enum Observation {
    /// A register: its live sibling values, and whether a tombstone was among the versions
    /// (a `404` with a context, or a deleted sibling).
    Cell {
        values: Vec<String>,
        #[serde(default)]
        tombstone: bool,
    },
    /// A set row: the elements (columns) present.
    Members { elements: Vec<String> },
    /// A batch row: each column's live values (batch ids).
    Row {
        columns: BTreeMap<String, Vec<String>>,
    },
}

/// A fault while it was in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    pub id: u32,
    /// The nemesis (`isolate`, `kill`, ...).
    pub kind: String,
    pub start_us: u64,
    pub end_us: u64,
    /// For people: `n3 | n1 n2 n4 n5`, `kill -9 n2`.
    pub description: String,
    /// The nodes it acted on (the victims of a process fault, every node of a partition).
    #[serde(default)]
    pub nodes: Vec<String>,
    /// Links cut or degraded, as (from, to) node pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<(String, String)>,
    /// When, after this fault was healed, every member was alive again, the rings agreed and no
    /// node held hints (`None`: not before the next fault, or the last fault, whose recovery is
    /// the run's [`PhaseName::Recovered`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered_us: Option<u64>,
}

/// A moment of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    pub name: PhaseName,
    pub t_us: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseName {
    /// Tables and initial values exist; clients start.
    WorkloadStart,
    /// The last fault was healed (every link restored, every process running again).
    Heal,
    /// After the heal: every node sees every member alive, rings agree and no node holds
    /// hints. Reads that start from here on are judged for staleness.
    Recovered,
    /// The recovery did not happen within its deadline: no read is judged for staleness.
    NotRecovered,
    /// The clients stopped.
    WorkloadStop,
    /// No hints and no background work on any node: what replicas hold is settled.
    Quiesced,
    /// Every replica's own copy agrees (local route), before the read-back.
    Converged,
    /// The read-back at `all` finished.
    ReadBack,
}

/// The replicas of one key at the end of the run (from the ring).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    pub workload: Workload,
    pub key: String,
    pub replicas: Vec<String>,
}

/// The read-back at `all` of one key after the final heal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalRead {
    pub workload: Workload,
    pub key: String,
    pub t_us: u64,
    /// `None` when every attempt failed; `error` says why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<Observation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Which snapshot of the replicas' own copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LocalRound {
    /// After the workload stopped and hints drained, before the read-back at `all`.
    Before,
    /// After the read-back at `all` (and its read repairs).
    After,
}

/// One replica's own copy of one key (`GET /internal/v1/local/...`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalRead {
    pub round: LocalRound,
    pub node: String,
    pub workload: Workload,
    pub key: String,
    /// For a set row, only the elements any add wrote were asked for; the observation lists
    /// those the replica holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<Observation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Writes one event as a JSON line.
pub fn write_event(out: &mut impl Write, event: &Event) -> Result<(), ChaosError> {
    serde_json::to_writer(&mut *out, event).map_err(|e| ChaosError::Encode(e.to_string()))?;
    out.write_all(b"\n")
        .map_err(|e| ChaosError::io("writing the history", e))
}

/// Reads a whole history; a line that does not parse is an error naming its line number.
pub fn read_history(path: &Path) -> Result<Vec<Event>, ChaosError> {
    let file = std::fs::File::open(path)
        .map_err(|e| ChaosError::io(format!("opening {}", path.display()), e))?;
    parse_history(std::io::BufReader::new(file), &path.display().to_string())
}

/// Parses history lines from any reader (`name` goes into errors).
pub fn parse_history(reader: impl BufRead, name: &str) -> Result<Vec<Event>, ChaosError> {
    let mut events = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| ChaosError::io(format!("reading {name}"), e))?;
        if line.trim().is_empty() {
            continue;
        }
        let event = serde_json::from_str(&line).map_err(|e| ChaosError::BadHistory {
            file: name.to_owned(),
            line: index + 1,
            reason: e.to_string(),
        })?;
        events.push(event);
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_json_lines() {
        let events = vec![
            Event::Op(Op {
                id: 7,
                client: 2,
                node: "n1".into(),
                workload: Workload::Register,
                f: OpKind::Write,
                key: "r1".into(),
                start_us: 10,
                end_us: 20,
                outcome: Outcome::Info,
                status: Some(504),
                error: Some("timeout".into()),
                value: Some("r2-5".into()),
                parents: vec!["r1-1".into()],
                observed: None,
                hinted: None,
            }),
            Event::Local(LocalRead {
                round: LocalRound::Before,
                node: "n2".into(),
                workload: Workload::Batch,
                key: "b0".into(),
                observed: Some(Observation::Row {
                    columns: [("c0".to_string(), vec!["b1-1".to_string()])].into(),
                }),
                error: None,
            }),
        ];
        let mut bytes = Vec::new();
        for event in &events {
            write_event(&mut bytes, event).unwrap();
        }
        let back = parse_history(bytes.as_slice(), "test").unwrap();
        assert_eq!(back, events);
    }

    #[test]
    fn a_bad_line_is_named() {
        let text = "{\"type\":\"phase\",\"name\":\"heal\",\"t_us\":1}\nnot json\n";
        let error = parse_history(text.as_bytes(), "h.jsonl").unwrap_err();
        assert!(error.to_string().contains("h.jsonl:2"), "{error}");
    }
}
