//! The workloads' clients, and the recorder that writes what they did to the history.
//!
//! Each client is pinned to one node (client c talks to node c mod n, as in Jepsen), runs one
//! step at a time, and keeps to its share of `--rate`. Every request is recorded with its start
//! and end time and what the client was told:
//! - **set:** adds of unique elements (a cell each, in a few rows), and row reads;
//! - **register:** a read, then a write of a new unique value with the read's context (or, now
//!   and then, a delete with it); the write records the values the read saw as its parents;
//! - **batch:** a row read, then one batch setting every column to a new unique id, each with its
//!   column's context.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;

use crate::client::{Api, CellRead, Read, Written};
use crate::cluster::NodeSpec;
use crate::error::ChaosError;
use crate::history::{write_event, Event, Observation, Op, OpKind, Outcome, Workload};

/// The tables the workloads use (created with the run's replication and levels).
pub fn table(workload: Workload) -> &'static str {
    match workload {
        Workload::Set => "chaos_set",
        Workload::Register => "chaos_register",
        Workload::Batch => "chaos_batch",
    }
}

/// The column of a register.
pub const REGISTER_COLUMN: &str = "v";

/// Writes events to `history.jsonl` from a thread of its own, so clients never wait on the disk.
pub struct Recorder {
    tx: Mutex<Option<mpsc::Sender<Event>>>,
    writer: Mutex<Option<std::thread::JoinHandle<Result<(), ChaosError>>>>,
    epoch: Instant,
    ids: AtomicU64,
}

impl Recorder {
    pub fn create(path: &Path) -> Result<Arc<Recorder>, ChaosError> {
        let file = std::fs::File::create(path)
            .map_err(|e| ChaosError::io(format!("creating {}", path.display()), e))?;
        let (tx, rx) = mpsc::channel::<Event>();
        let writer = std::thread::spawn(move || {
            let mut out = std::io::BufWriter::new(file);
            for event in rx {
                write_event(&mut out, &event)?;
            }
            std::io::Write::flush(&mut out).map_err(|e| ChaosError::io("flushing the history", e))
        });
        Ok(Arc::new(Recorder {
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            epoch: Instant::now(),
            ids: AtomicU64::new(1),
        }))
    }

    /// Microseconds since the run started.
    pub fn now_us(&self) -> u64 {
        self.at_us(Instant::now())
    }

    pub fn at_us(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_micros() as u64
    }

    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    pub fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    pub fn record(&self, event: Event) {
        let guard = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = guard.as_ref() {
            // The writer only stops once every sender is gone, so a send cannot fail before
            // `close`; after it, events are dropped on purpose.
            let _ = tx.send(event);
        }
    }

    /// Flushes and closes the history.
    pub fn close(&self) -> Result<(), ChaosError> {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        match writer {
            Some(handle) => handle
                .join()
                .map_err(|_| ChaosError::Encode("the history writer panicked".into()))?,
            None => Ok(()),
        }
    }
}

/// Where a client sends each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Always to the client's own node, which forwards a write it is no replica of (what a
    /// client that knows nothing of placement does, and the default).
    Node,
    /// To one of the key's replicas (a token-aware client): no write is ever forwarded.
    Replica,
}

impl Route {
    pub fn parse(text: &str) -> Option<Route> {
        match text {
            "node" => Some(Route::Node),
            "replica" => Some(Route::Replica),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Route::Node => "node",
            Route::Replica => "replica",
        }
    }
}

/// What the clients share.
#[derive(Debug)]
pub struct Settings {
    /// Prefix of every key of this run, so runs against one cluster never mix.
    pub run: String,
    pub read_level: String,
    pub write_level: String,
    pub registers: usize,
    pub set_rows: usize,
    pub batch_rows: usize,
    pub batch_columns: usize,
    /// Each client's pause between the starts of two steps.
    pub interval: Duration,
    /// Every element any add tried to write, per set row (for the replica reads at the end).
    pub elements: Mutex<HashMap<String, Vec<String>>>,
    pub route: Route,
    /// With [`Route::Replica`]: each key's replicas (node specs), from the ring at the start.
    pub replicas: HashMap<String, Vec<NodeSpec>>,
}

impl Settings {
    pub fn keys(&self, workload: Workload) -> Vec<String> {
        let (letter, count) = match workload {
            Workload::Set => ("s", self.set_rows),
            Workload::Register => ("r", self.registers),
            Workload::Batch => ("b", self.batch_rows),
        };
        (0..count)
            .map(|i| format!("{}-{letter}{i}", self.run))
            .collect()
    }

    pub fn batch_column_names(&self) -> Vec<String> {
        (0..self.batch_columns).map(|i| format!("c{i}")).collect()
    }
}

/// One client.
pub struct Client {
    pub id: u32,
    pub workload: Workload,
    pub node: NodeSpec,
    pub api: Api,
    pub recorder: Arc<Recorder>,
    pub settings: Arc<Settings>,
    pub rng: StdRng,
    seq: u64,
}

/// The base of an op record; the caller fills in what it observed.
fn op(
    recorder: &Recorder,
    client: u32,
    node: &str,
    workload: Workload,
    f: OpKind,
    key: &str,
    start: Instant,
) -> Op {
    Op {
        id: recorder.next_id(),
        client,
        node: node.to_owned(),
        workload,
        f,
        key: key.to_owned(),
        start_us: recorder.at_us(start),
        end_us: recorder.now_us(),
        outcome: Outcome::Ok,
        status: None,
        error: None,
        value: None,
        parents: Vec::new(),
        observed: None,
        hinted: None,
    }
}

fn with_write(mut op: Op, written: &Written, value: Option<String>, parents: Vec<String>) -> Op {
    op.outcome = written.outcome;
    op.status = written.status;
    op.error = written.error.clone();
    op.hinted = written.hinted;
    op.value = value;
    op.parents = parents;
    op
}

fn with_read<T>(mut op: Op, read: &Read<T>, observed: Option<Observation>) -> Op {
    op.outcome = read.outcome;
    op.status = read.status;
    op.error = read.error.clone();
    op.observed = observed;
    op
}

fn row_observation(columns: &BTreeMap<String, CellRead>) -> Observation {
    Observation::Row {
        columns: columns
            .iter()
            .filter(|(_, cell)| !cell.values.is_empty())
            .map(|(c, cell)| (c.clone(), cell.values.clone()))
            .collect(),
    }
}

impl Client {
    pub fn new(
        id: u32,
        workload: Workload,
        node: NodeSpec,
        api: Api,
        recorder: Arc<Recorder>,
        settings: Arc<Settings>,
        seed: u64,
    ) -> Self {
        Client {
            id,
            workload,
            node,
            api,
            recorder,
            settings,
            rng: StdRng::seed_from_u64(seed ^ u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            seq: 0,
        }
    }

    /// Runs steps until `stop` turns true.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        // Spread the clients' first steps over one interval.
        let jitter = self
            .rng
            .random_range(0..=self.settings.interval.as_millis() as u64);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(jitter)) => {}
            _ = stop.changed() => return,
        }
        while !*stop.borrow() {
            let started = Instant::now();
            match self.workload {
                Workload::Set => self.set_step().await,
                Workload::Register => self.register_step().await,
                Workload::Batch => self.batch_step().await,
            }
            let rest = self.settings.interval.saturating_sub(started.elapsed());
            tokio::select! {
                _ = tokio::time::sleep(rest) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// The node a request for `key` goes to.
    fn target(&self, key: &str) -> NodeSpec {
        match (self.settings.route, self.settings.replicas.get(key)) {
            (Route::Replica, Some(replicas)) if !replicas.is_empty() => {
                replicas[self.id as usize % replicas.len()].clone()
            }
            _ => self.node.clone(),
        }
    }

    fn pick(&mut self, workload: Workload) -> String {
        let keys = self.settings.keys(workload);
        keys[self.rng.random_range(0..keys.len())].clone()
    }

    fn next_value(&mut self, prefix: &str) -> String {
        self.seq += 1;
        format!("{prefix}{}-{}", self.id, self.seq)
    }

    async fn set_step(&mut self) {
        let key = self.pick(Workload::Set);
        let node = self.target(&key);
        let host = node.host();
        let t = table(Workload::Set);
        let start = Instant::now();
        if self.rng.random_bool(0.85) {
            let element = self.next_value("e");
            self.settings
                .elements
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(key.clone())
                .or_default()
                .push(element.clone());
            let written = self
                .api
                .put_cell(
                    &host,
                    t,
                    &key,
                    &element,
                    "1",
                    &self.settings.write_level,
                    None,
                )
                .await;
            let record = op(
                &self.recorder,
                self.id,
                &node.id,
                Workload::Set,
                OpKind::Add,
                &key,
                start,
            );
            self.recorder.record(Event::Op(with_write(
                record,
                &written,
                Some(element),
                vec![],
            )));
        } else {
            let read = self
                .api
                .get_row(&host, t, &key, &self.settings.read_level)
                .await;
            let observed = read.value.as_ref().map(|columns| Observation::Members {
                elements: columns.keys().cloned().collect(),
            });
            let record = op(
                &self.recorder,
                self.id,
                &node.id,
                Workload::Set,
                OpKind::Read,
                &key,
                start,
            );
            self.recorder
                .record(Event::Op(with_read(record, &read, observed)));
        }
    }

    async fn register_step(&mut self) {
        let key = self.pick(Workload::Register);
        let node = self.target(&key);
        let host = node.host();
        let t = table(Workload::Register);
        let start = Instant::now();
        let read = self
            .api
            .get_cell(&host, t, &key, REGISTER_COLUMN, &self.settings.read_level)
            .await;
        let observed = read.value.as_ref().map(|cell| Observation::Cell {
            values: cell.values.clone(),
            tombstone: cell.tombstone,
        });
        let record = op(
            &self.recorder,
            self.id,
            &node.id,
            Workload::Register,
            OpKind::Read,
            &key,
            start,
        );
        self.recorder
            .record(Event::Op(with_read(record, &read, observed)));
        let Some(cell) = read.value else { return };
        let roll: f64 = self.rng.random();
        let level = self.settings.write_level.clone();
        let start = Instant::now();
        if roll < 0.08 && !cell.values.is_empty() {
            let written = self
                .api
                .delete_cell(
                    &host,
                    t,
                    &key,
                    REGISTER_COLUMN,
                    &level,
                    cell.context.as_deref(),
                )
                .await;
            let record = op(
                &self.recorder,
                self.id,
                &node.id,
                Workload::Register,
                OpKind::Delete,
                &key,
                start,
            );
            self.recorder
                .record(Event::Op(with_write(record, &written, None, cell.values)));
        } else if roll < 0.78 {
            let value = self.next_value("r");
            let written = self
                .api
                .put_cell(
                    &host,
                    t,
                    &key,
                    REGISTER_COLUMN,
                    &value,
                    &level,
                    cell.context.as_deref(),
                )
                .await;
            let record = op(
                &self.recorder,
                self.id,
                &node.id,
                Workload::Register,
                OpKind::Write,
                &key,
                start,
            );
            self.recorder.record(Event::Op(with_write(
                record,
                &written,
                Some(value),
                cell.values,
            )));
        }
    }

    async fn batch_step(&mut self) {
        let key = self.pick(Workload::Batch);
        let node = self.target(&key);
        let host = node.host();
        let t = table(Workload::Batch);
        let start = Instant::now();
        let read = self
            .api
            .get_row(&host, t, &key, &self.settings.read_level)
            .await;
        let observed = read.value.as_ref().map(row_observation);
        let record = op(
            &self.recorder,
            self.id,
            &node.id,
            Workload::Batch,
            OpKind::Read,
            &key,
            start,
        );
        self.recorder
            .record(Event::Op(with_read(record, &read, observed)));
        let Some(columns) = read.value else { return };
        if !self.rng.random_bool(0.8) {
            return;
        }
        let mut parents: Vec<String> = columns.values().flat_map(|c| c.values.clone()).collect();
        parents.sort();
        parents.dedup();
        let ops: Vec<(String, Option<String>)> = self
            .settings
            .batch_column_names()
            .into_iter()
            .map(|c| {
                let context = columns.get(&c).and_then(|cell| cell.context.clone());
                (c, context)
            })
            .collect();
        let value = self.next_value("b");
        let start = Instant::now();
        let written = self
            .api
            .post_batch(&host, t, &key, &ops, &value, &self.settings.write_level)
            .await;
        let record = op(
            &self.recorder,
            self.id,
            &node.id,
            Workload::Batch,
            OpKind::Batch,
            &key,
            start,
        );
        self.recorder.record(Event::Op(with_write(
            record,
            &written,
            Some(value),
            parents,
        )));
    }
}

/// Gives every register and batch row a first value at `all`, before the faults, so that every
/// later write carries a context (a blind write could supersede a value no read saw). Each
/// attempt writes a value of its own, so one whose outcome is unknown is told apart.
pub async fn initialise(
    api: &Api,
    nodes: &[NodeSpec],
    recorder: &Recorder,
    settings: &Settings,
    workloads: &[Workload],
    deadline: Duration,
) -> Result<(), ChaosError> {
    let end = Instant::now() + deadline;
    for &workload in workloads {
        if workload == Workload::Set {
            continue;
        }
        for key in settings.keys(workload) {
            let mut attempt = 0u32;
            loop {
                attempt += 1;
                let target = &nodes[attempt as usize % nodes.len()];
                let (host, node) = (&target.host(), target.id.clone());
                let value = format!("init-{key}-{attempt}");
                let start = Instant::now();
                let written = match workload {
                    Workload::Register => {
                        api.put_cell(
                            host,
                            table(workload),
                            &key,
                            REGISTER_COLUMN,
                            &value,
                            "all",
                            None,
                        )
                        .await
                    }
                    _ => {
                        let columns: Vec<(String, Option<String>)> = settings
                            .batch_column_names()
                            .into_iter()
                            .map(|c| (c, None))
                            .collect();
                        api.post_batch(host, table(workload), &key, &columns, &value, "all")
                            .await
                    }
                };
                let f = if workload == Workload::Register {
                    OpKind::Write
                } else {
                    OpKind::Batch
                };
                let mut record = op(
                    recorder,
                    crate::check::stats::INIT_CLIENT,
                    &node,
                    workload,
                    f,
                    &key,
                    start,
                );
                record = with_write(record, &written, Some(value), vec![]);
                recorder.record(Event::Op(record));
                if written.outcome == Outcome::Ok {
                    break;
                }
                if Instant::now() > end {
                    return Err(ChaosError::Cluster(format!(
                        "could not give {} {key} its first value at `all` within {}s: {:?} {:?}",
                        workload.name(),
                        deadline.as_secs(),
                        written.status,
                        written.error
                    )));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    Ok(())
}
