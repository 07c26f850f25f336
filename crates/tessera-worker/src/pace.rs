//! Throttling between steps, and the measured rate.
//!
//! Two knobs, both changeable while a worker runs:
//! - **tranquility** (Garage's word): after a busy step that took `d`, rest `tranquility * d`,
//!   so a worker uses at most `1 / (1 + tranquility)` of the time it runs on;
//! - **rate**: at most `max_rate` units per second, paced step by step: each step's units are
//!   given their share of time from the later of the step's start and the previous step's share,
//!   so time the step itself took counts, and idle time earns no burst.
//!
//! The longer of the two rests applies.

use std::time::Duration;

use tokio::time::Instant;

/// The pacing state of one worker.
#[derive(Debug, Default)]
pub(crate) struct Pacer {
    /// When the units paced so far have used up their time.
    paid_until: Option<Instant>,
}

impl Pacer {
    /// How long to rest after a busy step that started at `started`, ended at `now` and did
    /// `units`.
    pub(crate) fn rest(
        &mut self,
        started: Instant,
        now: Instant,
        units: u64,
        tranquility: u32,
        max_rate: u64,
    ) -> Duration {
        let calm = now.saturating_duration_since(started) * tranquility;
        let paced = if max_rate == 0 || units == 0 {
            self.paid_until = None;
            Duration::ZERO
        } else {
            let cost = Duration::from_secs_f64(units as f64 / max_rate as f64);
            let from = self.paid_until.map_or(started, |paid| paid.max(started));
            let paid = from + cost;
            self.paid_until = Some(paid);
            paid.saturating_duration_since(now)
        };
        calm.max(paced)
    }
}

/// Units per second, measured over windows of about a second.
#[derive(Debug)]
pub(crate) struct RateMeter {
    window_start: Instant,
    window_units: u64,
    last_rate: f64,
    last_window_end: Instant,
}

/// A window closes once it is this long.
const WINDOW: Duration = Duration::from_secs(1);

impl RateMeter {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            window_start: now,
            window_units: 0,
            last_rate: 0.0,
            last_window_end: now,
        }
    }

    /// Counts `units` done at `now`.
    pub(crate) fn record(&mut self, now: Instant, units: u64) {
        self.window_units = self.window_units.saturating_add(units);
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed >= WINDOW {
            self.last_rate = self.window_units as f64 / elapsed.as_secs_f64();
            self.window_start = now;
            self.window_units = 0;
            self.last_window_end = now;
        }
    }

    /// The rate of the last closed window, or 0 if nothing closed one lately.
    pub(crate) fn rate(&self, now: Instant) -> f64 {
        if now.saturating_duration_since(self.last_window_end) > 2 * WINDOW {
            // Busy windows close only when work is recorded: a worker gone quiet shows 0, not
            // its last busy rate forever.
            let open = now.saturating_duration_since(self.window_start);
            return self.window_units as f64 / open.as_secs_f64().max(1.0);
        }
        self.last_rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn tranquility_rests_a_multiple_of_the_step() {
        let mut pacer = Pacer::default();
        let t0 = Instant::now();
        assert_eq!(pacer.rest(t0, t0 + 10 * MS, 5, 0, 0), Duration::ZERO);
        assert_eq!(pacer.rest(t0, t0 + 10 * MS, 5, 2, 0), 20 * MS);
    }

    #[test]
    fn rate_paces_units_and_counts_the_steps_own_time() {
        let mut pacer = Pacer::default();
        let t0 = Instant::now();
        // 100 units at 1000/s take 100 ms; the step took 10 ms of them.
        assert_eq!(pacer.rest(t0, t0 + 10 * MS, 100, 0, 1000), 90 * MS);
        // The next step starts when the rest ends and is paced from there.
        let t1 = t0 + 100 * MS;
        assert_eq!(pacer.rest(t1, t1 + 50 * MS, 100, 0, 1000), 50 * MS);
        // A slow step (longer than its share) rests nothing.
        let t2 = t1 + 100 * MS;
        assert_eq!(pacer.rest(t2, t2 + 300 * MS, 100, 0, 1000), Duration::ZERO);
        // Idle time earns no burst: after a long pause the next step is paced from its start.
        let t3 = t2 + Duration::from_secs(60);
        assert_eq!(pacer.rest(t3, t3, 100, 0, 1000), 100 * MS);
    }

    #[test]
    fn the_longer_rest_wins_and_no_rate_means_no_pacing() {
        let mut pacer = Pacer::default();
        let t0 = Instant::now();
        assert_eq!(pacer.rest(t0, t0 + 10 * MS, 1, 5, 1000), 50 * MS);
        assert_eq!(pacer.rest(t0, t0 + 10 * MS, 1000, 0, 0), Duration::ZERO);
    }

    #[test]
    fn the_meter_reports_closed_windows_and_decays_when_quiet() {
        let t0 = Instant::now();
        let mut meter = RateMeter::new(t0);
        meter.record(t0 + 500 * MS, 50);
        assert_eq!(meter.rate(t0 + 500 * MS), 0.0);
        meter.record(t0 + 1000 * MS, 50);
        assert!((meter.rate(t0 + 1000 * MS) - 100.0).abs() < 1e-9);
        // Quiet for a long time: the rate falls to what the open window saw.
        assert!(meter.rate(t0 + Duration::from_secs(10)) < 1.0);
    }
}
