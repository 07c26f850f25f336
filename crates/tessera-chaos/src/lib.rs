//! Tessera's chaos harness, as a library: it starts (or targets) a local cluster, drives
//! workloads against it while a seeded schedule of nemeses partitions, kills, pauses and slows
//! its nodes, records every operation in a history, heals, reads everything back, and judges the
//! history. `scripts/chaos.sh` and `make chaos` run its binary; `docs/chaos.md` explains it all.
//!
//! Pure parts (no I/O, unit-tested): [`history`] (the JSON-lines format), [`check`] (the
//! checker), [`schedule`] (the seeded schedule), [`grudge`] (partition shapes). The rest acts on
//! the machine: [`cluster`] (node processes), [`net`] (iptables and tc), [`client`] (HTTP),
//! [`workload`], [`run`] (the phases of a run) and [`report`] (summary and plot).

pub mod check;
pub mod cleanup;
pub mod client;
pub mod cluster;
pub mod error;
pub mod grudge;
pub mod health;
pub mod history;
pub mod nemesis;
pub mod net;
pub mod readback;
pub mod report;
pub mod run;
pub mod schedule;
pub mod workload;

pub use error::ChaosError;
