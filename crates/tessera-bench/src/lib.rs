//! Tessera's benchmark tooling (DESIGN.md section 7, docs/performance.md).
//!
//! A node is measured against ceilings taken on the same machine in the same run, because
//! absolute numbers from a shared two-core VM mean little on their own:
//! - [`ceiling`]: the same axum/tokio stack answering with empty handlers (the request-layer ceiling);
//! - [`storage`]: raw RocksDB puts and gets through `tessera-storage`, and the versioned cell path
//!   on top of it (the storage ceiling);
//! - [`load`]: a closed-loop HTTP load generator with HDR histograms, seeded, able to spread load
//!   over several nodes (the cluster workloads reuse it), and to drive etcd through its JSON
//!   gateway or its native gRPC for the comparison;
//! - [`rawcopy`]: a raw RocksDB scan of a data dir's cells written into another, the ceiling of
//!   streaming partitions between nodes;
//! - [`report`]: the markdown table that puts a run's summaries side by side as ratios.
//!
//! Every measurement ends as a [`summary::Summary`]: one JSON line for scripts, one line for people.

pub mod ceiling;
pub mod error;
pub mod load;
pub mod rawcopy;
pub mod report;
pub mod storage;
pub mod summary;
pub mod zipf;

pub use error::BenchError;
pub use summary::Summary;
