//! The ceiling of streaming a partition: a raw RocksDB range scan of one data dir's cells and
//! batch writes of them into another, with nothing in between (no decode, no merge, no network).
//!
//! `scripts/bench-rebalance.sh` runs it on the data a node then streams to another node through
//! the transfer engine, on the same machine and in the same run, so the two are comparable: the
//! transfer's MB/s as a share of this copy's.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use tessera_storage::{ColumnFamily, Engine, EngineRead, RocksEngine, RocksOptions, WriteBatch};

use crate::error::BenchError;

/// `tessera-bench raw-copy`: scan every cell of a data dir and write it into a fresh one.
#[derive(Clone, Debug, Args)]
pub struct RawCopyArgs {
    /// The RocksDB directory to read (a stopped node's `DATA_DIR/rocksdb`).
    #[arg(long)]
    pub from: PathBuf,
    /// A directory to create the copy in; must not exist yet.
    #[arg(long)]
    pub to: PathBuf,
    /// Bytes per write batch, in KiB (the transfer's chunk size, for a like-for-like copy).
    #[arg(long, default_value_t = 256)]
    pub chunk_kb: usize,
}

/// What the copy did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RawCopy {
    pub keys: u64,
    pub bytes: u64,
    pub seconds: f64,
}

fn storage(phase: &'static str, op: u64) -> impl Fn(tessera_storage::StorageError) -> BenchError {
    move |source| BenchError::Storage { phase, op, source }
}

/// Runs the copy and prints one summary line.
pub fn run(args: &RawCopyArgs) -> Result<RawCopy, BenchError> {
    if args.to.exists() {
        return Err(BenchError::DirNotEmpty {
            path: args.to.clone(),
        });
    }
    // The node's settings: no fsync per write (config/tessera.toml).
    let options = RocksOptions {
        sync_writes: false,
        ..RocksOptions::default()
    };
    let open = |path: &PathBuf| {
        RocksEngine::open(path, &options).map_err(|source| BenchError::Open {
            path: path.clone(),
            source,
        })
    };
    let source = open(&args.from)?;
    let target = open(&args.to)?;
    let budget = (args.chunk_kb.max(1) * 1024) as u64;
    let started = Instant::now();
    let mut copy = RawCopy {
        keys: 0,
        bytes: 0,
        seconds: 0.0,
    };
    let mut batch = WriteBatch::new();
    let mut batch_bytes = 0u64;
    for pair in source.iter(ColumnFamily::Data, &[], None) {
        let (key, value) = pair.map_err(storage("raw-copy scan", copy.keys))?;
        let size = (key.len() + value.len()) as u64;
        copy.keys += 1;
        copy.bytes += size;
        batch_bytes += size;
        batch.put(ColumnFamily::Data, key, value);
        if batch_bytes >= budget {
            target
                .write(std::mem::take(&mut batch))
                .map_err(storage("raw-copy write", copy.keys))?;
            batch_bytes = 0;
        }
    }
    if !batch.is_empty() {
        target
            .write(batch)
            .map_err(storage("raw-copy write", copy.keys))?;
    }
    copy.seconds = started.elapsed().as_secs_f64();
    println!(
        "raw-copy: {} keys, {:.1} MB in {:.2} s: {:.1} MB/s, {:.0} keys/s",
        copy.keys,
        copy.bytes as f64 / 1e6,
        copy.seconds,
        copy.bytes as f64 / 1e6 / copy.seconds.max(1e-9),
        copy.keys as f64 / copy.seconds.max(1e-9)
    );
    Ok(copy)
}
