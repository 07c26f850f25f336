//! Deliberate faults, compiled only with the `fault-injection` feature: a broken build that
//! the chaos harness must catch (`scripts/chaos.sh`, docs/chaos.md).
//!
//! `TESSERA_FAULT=drop-replication`: a coordinator acknowledges a write once its own copy is
//! committed and sends no copy to the other replicas, nor hints: a write acknowledged at
//! `quorum` then lives on one node, and is lost with it.

use std::sync::OnceLock;

/// True when the process was started with `TESSERA_FAULT=drop-replication`.
pub(crate) fn drop_replication() -> bool {
    static ACTIVE: OnceLock<bool> = OnceLock::new();
    *ACTIVE.get_or_init(|| {
        let active = std::env::var("TESSERA_FAULT").is_ok_and(|f| f == "drop-replication");
        if active {
            tracing::warn!("fault injection: writes are acknowledged without replication");
        }
        active
    })
}
