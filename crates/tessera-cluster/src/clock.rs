//! Wall-clock time in milliseconds, injectable where tests need to move it.
//!
//! Only informational timestamps and hint expiry use the wall clock; nothing
//! orders versions by it. Expiry tests replace the clock rather than wait
//! hours, so components that expire things take a [`Clock`].

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of "now" in milliseconds since the Unix epoch.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Milliseconds since the Unix epoch (0 if the system clock is before it).
pub fn system_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The system clock as a [`Clock`].
pub fn system_clock() -> Clock {
    Arc::new(system_now_ms)
}
