//! The end of a run: each replica's own copy of every key (the replica-local route, asking no
//! other node), and the read-back of every key at `all`, which also repairs the replicas.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::client::Api;
use crate::health::RingView;
use crate::history::{FinalRead, LocalRead, LocalRound, Observation, Placement, Workload};
use crate::workload::{table, Settings, REGISTER_COLUMN};

/// Replica reads in flight at once.
const PARALLEL: usize = 24;

/// The replicas of every key, from the ring.
pub fn placements(
    ring: &RingView,
    replication: usize,
    settings: &Settings,
    workloads: &[Workload],
) -> Vec<Placement> {
    workloads
        .iter()
        .flat_map(|&w| {
            settings.keys(w).into_iter().map(move |key| Placement {
                workload: w,
                replicas: ring.replicas(&key, replication),
                key,
            })
        })
        .collect()
}

/// One replica's own copy of one key.
async fn local_copy(
    api: &Api,
    host: &str,
    workload: Workload,
    key: &str,
    columns: &[String],
) -> (Option<Observation>, Option<String>) {
    let t = table(workload);
    match workload {
        Workload::Register => {
            let read = api.local_cell(host, t, key, REGISTER_COLUMN).await;
            match read.value {
                Some(cell) => (
                    Some(Observation::Cell {
                        values: cell.values,
                        tombstone: cell.tombstone,
                    }),
                    None,
                ),
                None => (None, read.error.or(Some("no answer".into()))),
            }
        }
        Workload::Batch => {
            let mut row = BTreeMap::new();
            for column in columns {
                let read = api.local_cell(host, t, key, column).await;
                match read.value {
                    Some(cell) if !cell.values.is_empty() => {
                        row.insert(column.clone(), cell.values);
                    }
                    Some(_) => {}
                    None => return (None, read.error.or(Some("no answer".into()))),
                }
            }
            (Some(Observation::Row { columns: row }), None)
        }
        Workload::Set => {
            let mut held = Vec::new();
            let mut failures = 0usize;
            let mut last_error = None;
            for element in columns {
                let read = api.local_cell(host, t, key, element).await;
                match read.value {
                    Some(cell) if !cell.values.is_empty() => held.push(element.clone()),
                    Some(_) => {}
                    None => {
                        failures += 1;
                        last_error = read.error;
                    }
                }
            }
            if failures > 0 {
                let why = format!(
                    "{failures} of {} element reads failed (last: {})",
                    columns.len(),
                    last_error.unwrap_or_default()
                );
                (None, Some(why))
            } else {
                (Some(Observation::Members { elements: held }), None)
            }
        }
    }
}

/// Every replica's own copy of every key.
pub async fn local_snapshot(
    api: &Api,
    hosts: &BTreeMap<String, String>,
    placements: &[Placement],
    settings: &Settings,
    round: LocalRound,
) -> Vec<LocalRead> {
    let gate = Arc::new(Semaphore::new(PARALLEL));
    let mut tasks = JoinSet::new();
    let elements = settings
        .elements
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    for placement in placements {
        let columns: Vec<String> = match placement.workload {
            Workload::Set => elements.get(&placement.key).cloned().unwrap_or_default(),
            Workload::Batch => settings.batch_column_names(),
            Workload::Register => vec![],
        };
        for node in &placement.replicas {
            let Some(host) = hosts.get(node).cloned() else {
                continue;
            };
            let (api, gate, columns) = (api.clone(), gate.clone(), columns.clone());
            let (node, workload, key) = (node.clone(), placement.workload, placement.key.clone());
            tasks.spawn(async move {
                let _permit = gate.acquire_owned().await;
                let (observed, error) = local_copy(&api, &host, workload, &key, &columns).await;
                LocalRead {
                    round,
                    node,
                    workload,
                    key,
                    observed,
                    error,
                }
            });
        }
    }
    let mut out = Vec::new();
    while let Some(done) = tasks.join_next().await {
        if let Ok(read) = done {
            out.push(read);
        }
    }
    out.sort_by(|a, b| (a.workload, &a.key, &a.node).cmp(&(b.workload, &b.key, &b.node)));
    out
}

fn comparable(observation: &Option<Observation>) -> BTreeSet<String> {
    match observation {
        None => ["(unreadable)".to_string()].into(),
        Some(Observation::Cell { values, tombstone }) => {
            let mut out: BTreeSet<String> = values.iter().cloned().collect();
            if *tombstone {
                out.insert("(tombstone)".into());
            }
            out
        }
        Some(Observation::Members { elements }) => elements.iter().cloned().collect(),
        Some(Observation::Row { columns }) => columns
            .iter()
            .flat_map(|(c, ids)| ids.iter().map(move |id| format!("{c}={id}")))
            .collect(),
    }
}

/// The keys whose replicas do not all hold the same thing.
pub fn divergent(reads: &[LocalRead]) -> BTreeSet<(Workload, String)> {
    let mut by_key: BTreeMap<(Workload, String), Vec<BTreeSet<String>>> = BTreeMap::new();
    for read in reads {
        by_key
            .entry((read.workload, read.key.clone()))
            .or_default()
            .push(comparable(&read.observed));
    }
    by_key
        .into_iter()
        .filter(|(_, copies)| copies.windows(2).any(|w| w[0] != w[1]))
        .map(|(key, _)| key)
        .collect()
}

/// Reads every key back at `all`, each up to `attempts` times through successive nodes.
pub async fn read_back(
    api: &Api,
    hosts: &[String],
    settings: &Settings,
    workloads: &[Workload],
    attempts: usize,
    now_us: impl Fn() -> u64,
) -> Vec<FinalRead> {
    let mut out = Vec::new();
    for &workload in workloads {
        for key in settings.keys(workload) {
            let mut error = None;
            let mut observed = None;
            for attempt in 0..attempts.max(1) {
                let host = &hosts[attempt % hosts.len()];
                let t = table(workload);
                let (value, why) = match workload {
                    Workload::Register => {
                        let read = api.get_cell(host, t, &key, REGISTER_COLUMN, "all").await;
                        (
                            read.value.map(|c| Observation::Cell {
                                values: c.values,
                                tombstone: c.tombstone,
                            }),
                            read.error,
                        )
                    }
                    Workload::Set => {
                        let read = api.get_row(host, t, &key, "all").await;
                        (
                            read.value.map(|columns| Observation::Members {
                                elements: columns.into_keys().collect(),
                            }),
                            read.error,
                        )
                    }
                    Workload::Batch => {
                        let read = api.get_row(host, t, &key, "all").await;
                        (
                            read.value.map(|columns| Observation::Row {
                                columns: columns
                                    .into_iter()
                                    .filter(|(_, c)| !c.values.is_empty())
                                    .map(|(name, c)| (name, c.values))
                                    .collect(),
                            }),
                            read.error,
                        )
                    }
                };
                if value.is_some() {
                    observed = value;
                    error = None;
                    break;
                }
                error = Some(format!(
                    "attempt {} through {host}: {}",
                    attempt + 1,
                    why.unwrap_or_default()
                ));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            out.push(FinalRead {
                workload,
                key,
                t_us: now_us(),
                observed,
                error,
            });
        }
    }
    out
}
