//! The storage ceiling: what one node's RocksDB does with no HTTP in front of it.
//!
//! Phases, each over `ops` operations split across `threads` OS threads that call storage
//! directly (as the node's blocking pool does):
//! - `engine-put`, `engine-get`: one-put `WriteBatch`es and point gets through [`Engine`], with the
//!   node's key layout and 100-byte values: the floor of any write or read;
//! - `cell-write`: new cells through [`CellStore`] exactly as a blind `PUT` does it, a snapshot
//!   read (`read_cell`) and then `write_row` with that context;
//! - `cell-overwrite`: the same on cells that already exist, as the HTTP `PUT` benchmark does after
//!   its preload;
//! - `cell-read`: `read_cell`, decoding the DVVSet, as a `GET` does.
//!
//! The cell store keeps anti-entropy trees as a node's does, unless `--no-trees`.
//!
//! The engine is opened with [`RocksOptions::default`] plus the node's default
//! `storage.sync_writes = false` (config/tessera.toml), so the ceiling runs the node's settings.
//! Gets and overwrites pick keys uniformly at random from a seeded generator.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use tessera_ring::{token_of, PartitionScheme};
use tessera_storage::{
    cell_key, CellStore, CellWrite, ColumnFamily, Engine, EngineRead, RocksEngine, RocksOptions,
    RowKey, StorageError, StoreOptions, WriteBatch,
};

use crate::error::BenchError;
use crate::summary::{self, Labels, Summary};

/// The tool name in summaries.
pub const TOOL: &str = "tessera-bench storage";

/// Table ids of the two key spaces: raw engine values and versioned cells must not share keys
/// (a raw value does not decode as a cell).
const ENGINE_TABLE: u32 = 1;
const CELL_TABLE: u32 = 2;
const COLUMN: &[u8] = b"v";
/// An arbitrary, fixed replica id: the store only needs one to mint dots.
const ACTOR: u64 = 0x7e55_e7a0;

/// `tessera-bench storage`: raw and versioned storage throughput and latency.
#[derive(Clone, Debug, Args)]
pub struct StorageArgs {
    /// Directory for the database; `DIR/rocksdb` must not exist yet.
    #[arg(long)]
    pub dir: PathBuf,
    /// Operations per phase.
    #[arg(long, default_value_t = 200_000)]
    pub ops: u64,
    /// Bytes per value.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Threads calling storage at once.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// fsync the WAL on every write (the node's default is off).
    #[arg(long)]
    pub sync_writes: bool,
    /// Seed of key choices and value bytes.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Keep no anti-entropy trees (a node keeps them: every cell write also updates its
    /// partition's tree in the same batch), to measure what keeping them costs.
    #[arg(long)]
    pub no_trees: bool,
}

/// A phase's per-operation work: `(thread-local rng, op index) -> ()`.
type Op<'a> = dyn Fn(&mut StdRng, u64) -> Result<(), StorageError> + Sync + 'a;

/// Runs every phase in order, printing each summary (JSON, then human) as it finishes.
pub fn run(args: &StorageArgs) -> Result<Vec<Summary>, BenchError> {
    validate(args)?;
    let path = args.dir.join("rocksdb");
    if path.exists() {
        return Err(BenchError::DirNotEmpty { path });
    }
    std::fs::create_dir_all(&args.dir).map_err(|source| BenchError::Io {
        what: "creating the storage benchmark directory",
        source,
    })?;
    let options = RocksOptions {
        sync_writes: args.sync_writes,
        ..RocksOptions::default()
    };
    let engine =
        Arc::new(
            RocksEngine::open(&path, &options).map_err(|source| BenchError::Open {
                path: path.clone(),
                source,
            })?,
        );
    let mut store = CellStore::<RocksEngine>::new(engine.clone(), StoreOptions::new(ACTOR));
    if !args.no_trees {
        let partitions = u64::from(PartitionScheme::default().count());
        // The default scheme's count is a valid tree shape; were it not, run without trees.
        if let Ok(shape) = tessera_merkle::TreeShape::with_default_fanout(partitions) {
            store = store.with_trees(shape);
        }
    }

    let mut value = vec![0u8; args.value_size];
    StdRng::seed_from_u64(args.seed).fill_bytes(&mut value);
    let engine_keys = keys(ENGINE_TABLE, args.ops)?;
    let rows = rows(CELL_TABLE, args.ops);
    let n = args.ops;

    let engine_put = |_: &mut StdRng, i: u64| {
        let mut batch = WriteBatch::new();
        batch.put(
            ColumnFamily::Data,
            engine_keys[i as usize].clone(),
            value.clone(),
        );
        engine.write(batch)
    };
    let engine_get = |rng: &mut StdRng, _: u64| {
        let key = &engine_keys[rng.random_range(0..n) as usize];
        engine.get(ColumnFamily::Data, key).map(drop)
    };
    let cell_put = |row: &RowKey| {
        let context = store
            .read_cell(row, COLUMN)?
            .map(|cell| cell.join())
            .unwrap_or_default();
        let write = CellWrite::Set {
            column: COLUMN.to_vec(),
            value: value.clone(),
            context,
        };
        store
            .write_row(row, std::slice::from_ref(&write), now_ms())
            .map(drop)
    };
    let cell_write = |_: &mut StdRng, i: u64| cell_put(&rows[i as usize]);
    let cell_overwrite =
        |rng: &mut StdRng, _: u64| cell_put(&rows[rng.random_range(0..n) as usize]);
    let cell_read = |rng: &mut StdRng, _: u64| {
        store
            .read_cell(&rows[rng.random_range(0..n) as usize], COLUMN)
            .map(drop)
    };

    let phases: [(&'static str, &'static str, &Op<'_>); 5] = [
        ("engine-put", "put", &engine_put),
        ("engine-get", "get", &engine_get),
        ("cell-write", "put", &cell_write),
        ("cell-overwrite", "put", &cell_overwrite),
        ("cell-read", "get", &cell_read),
    ];
    let mut summaries = Vec::with_capacity(phases.len());
    for (name, workload, op) in phases {
        let summary = phase(name, workload, args, op)?;
        println!("{}", summary.json_line());
        println!("{}", summary.human_line());
        summaries.push(summary);
    }
    Ok(summaries)
}

fn validate(args: &StorageArgs) -> Result<(), BenchError> {
    let invalid = |flag, value: String, reason: &str| BenchError::InvalidArgument {
        flag,
        value,
        reason: reason.to_owned(),
    };
    if args.ops == 0 || args.ops > 100_000_000 {
        return Err(invalid(
            "ops",
            args.ops.to_string(),
            "must be 1 to 100,000,000",
        ));
    }
    if args.threads == 0 || args.threads > 1024 {
        return Err(invalid(
            "threads",
            args.threads.to_string(),
            "must be 1 to 1024",
        ));
    }
    if args.value_size > 16 << 20 {
        return Err(invalid(
            "value-size",
            args.value_size.to_string(),
            "must be at most 16 MiB",
        ));
    }
    Ok(())
}

/// Runs one phase: thread `t` does operations `t, t + T, t + 2T, ...`, timing each.
fn phase(
    name: &'static str,
    workload: &'static str,
    args: &StorageArgs,
    op: &Op<'_>,
) -> Result<Summary, BenchError> {
    let threads = args.threads as u64;
    let started = Instant::now();
    let results: Vec<Result<Histogram<u64>, BenchError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut rng = StdRng::seed_from_u64(
                        args.seed ^ (t + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                    );
                    let mut histogram = summary::new_histogram();
                    let mut i = t;
                    while i < args.ops {
                        let began = Instant::now();
                        op(&mut rng, i).map_err(|source| BenchError::Storage {
                            phase: name,
                            op: i,
                            source,
                        })?;
                        summary::record(&mut histogram, began.elapsed());
                        i += threads;
                    }
                    Ok(histogram)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle.join().unwrap_or_else(|panic| {
                    Err(BenchError::Worker {
                        phase: name.to_owned(),
                        message: panic_message(&panic),
                    })
                })
            })
            .collect()
    });
    let elapsed = started.elapsed();
    let mut merged = summary::new_histogram();
    for result in results {
        summary::merge(&mut merged, &result?, name)?;
    }
    Ok(Summary::from_histogram(
        Labels {
            name: name.to_owned(),
            tool: TOOL.to_owned(),
            workload: workload.to_owned(),
            concurrency: threads,
        },
        elapsed,
        &merged,
        BTreeMap::new(),
        0,
    ))
}

/// The row of benchmark key `k{i}`, placed as a node with the default 256 partitions places it.
fn row(table: u32, i: u64, scheme: &PartitionScheme) -> RowKey {
    let key = format!("k{i}").into_bytes();
    let token = token_of(&key);
    RowKey::new(table, scheme.partition_of(token), token, key)
}

fn rows(table: u32, count: u64) -> Vec<RowKey> {
    let scheme = PartitionScheme::default();
    (0..count).map(|i| row(table, i, &scheme)).collect()
}

fn keys(table: u32, count: u64) -> Result<Vec<Vec<u8>>, BenchError> {
    rows(table, count)
        .iter()
        .enumerate()
        .map(|(i, row)| {
            cell_key(row, COLUMN).map_err(|source| BenchError::Storage {
                phase: "key-encoding",
                op: i as u64,
                source,
            })
        })
        .collect()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

/// The message of a panic payload, when it has one.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic without a message".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phase_runs_and_counts_every_operation() {
        let dir = tempfile::tempdir().unwrap();
        let args = StorageArgs {
            dir: dir.path().join("bench"),
            ops: 300,
            value_size: 100,
            threads: 2,
            sync_writes: false,
            seed: 1,
            no_trees: false,
        };
        let summaries = run(&args).unwrap();
        let names: Vec<&str> = summaries.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "engine-put",
                "engine-get",
                "cell-write",
                "cell-overwrite",
                "cell-read"
            ]
        );
        assert!(summaries.iter().all(|s| s.ops == 300 && s.concurrency == 2));
        // A second run in the same directory would measure a warm database: refused.
        assert!(matches!(run(&args), Err(BenchError::DirNotEmpty { .. })));
    }

    #[test]
    fn refuses_zero_threads() {
        let args = StorageArgs {
            dir: PathBuf::from("unused"),
            ops: 10,
            value_size: 100,
            threads: 0,
            sync_writes: false,
            seed: 1,
            no_trees: false,
        };
        assert!(matches!(
            run(&args),
            Err(BenchError::InvalidArgument {
                flag: "threads",
                ..
            })
        ));
    }
}
