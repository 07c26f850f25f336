//! Phi-accrual failure detection (Hayashibara et al.), one small pure detector per peer.
//!
//! A detector keeps a window of inter-arrival times of "evidence of life" from one peer (any
//! message from it, or a rise of its gossip heartbeat heard from anyone) and turns the time since
//! the last one into phi = −log10 P(an interval this long or longer), so phi 8 means "this silence
//! happens once in 10^8 intervals". As in Akka:
//!
//! - the window starts with `prior_samples` synthetic intervals around
//!   `first_interval_estimate_ms`, so the first real samples are not trusted alone;
//! - intervals are capped at `max_interval_ms`, so one outage does not inflate the mean and blind
//!   the detector afterwards;
//! - the standard deviation has a floor, `min_std_dev_ms`, so perfectly regular arrivals do not
//!   make the slightest jitter look fatal;
//! - the normal tail uses Akka's logistic approximation, here in the stable form
//!   phi = log10(1 + e^z), z = y(1.5976 + 0.070566 y²), y = (t − mean) / std, which is finite,
//!   non-negative and non-decreasing in t for every input.
//!
//! Sums are kept exactly in integers (milliseconds), so a long-lived detector does not drift.

use crate::MembershipError;
use std::collections::VecDeque;

/// Parameters of every phi detector.
#[derive(Debug, Clone, PartialEq)]
pub struct PhiConfig {
    /// Phi at which a peer is "likely dead" (Akka's default 8).
    pub threshold: f64,
    /// How many inter-arrival times are kept.
    pub window: usize,
    /// The interval the window is seeded with before any real sample.
    pub first_interval_estimate_ms: u64,
    /// How many synthetic intervals seed the window.
    pub prior_samples: usize,
    /// Longer intervals are recorded as this.
    pub max_interval_ms: u64,
    /// Floor of the standard deviation.
    pub min_std_dev_ms: f64,
    /// Arrivals closer than this to the previous one are not recorded (a message and the
    /// heartbeat it carries are one piece of evidence, not two).
    pub min_interval_ms: u64,
}

impl Default for PhiConfig {
    fn default() -> PhiConfig {
        PhiConfig {
            threshold: 8.0,
            window: 64,
            first_interval_estimate_ms: 1000,
            prior_samples: 4,
            max_interval_ms: 10_000,
            min_std_dev_ms: 250.0,
            min_interval_ms: 20,
        }
    }
}

impl PhiConfig {
    /// Checks the parameters make a usable detector.
    pub fn validate(&self) -> Result<(), MembershipError> {
        let ok = self.threshold.is_finite()
            && self.threshold > 0.0
            && self.window > 0
            && self.first_interval_estimate_ms > 0
            && self.max_interval_ms >= self.first_interval_estimate_ms
            && self.min_std_dev_ms.is_finite()
            && self.min_std_dev_ms > 0.0;
        if ok {
            Ok(())
        } else {
            Err(MembershipError::InvalidConfig {
                reason: "phi: threshold, window, intervals and min_std_dev_ms must be positive, \
                         max_interval_ms at least the first estimate"
                    .to_string(),
            })
        }
    }
}

/// The arrival history of one peer.
#[derive(Debug, Clone)]
pub struct PhiDetector {
    intervals: VecDeque<u64>,
    sum: u64,
    sum_sq: u128,
    last: u64,
    window: usize,
    max_interval: u64,
    min_interval: u64,
    min_std: f64,
}

impl PhiDetector {
    /// A detector whose first arrival is `now`, seeded with the configured prior.
    pub fn new(config: &PhiConfig, now: u64) -> PhiDetector {
        let window = config.window.max(1);
        let max_interval = config.max_interval_ms.max(1);
        let mut d = PhiDetector {
            intervals: VecDeque::with_capacity(window),
            sum: 0,
            sum_sq: 0,
            last: now,
            window,
            max_interval,
            min_interval: config.min_interval_ms,
            min_std: if config.min_std_dev_ms.is_finite() && config.min_std_dev_ms > 0.0 {
                config.min_std_dev_ms
            } else {
                1.0
            },
        };
        // Akka seeds mean ± mean/4; alternating keeps the prior's mean exact.
        let m = config.first_interval_estimate_ms.clamp(1, max_interval);
        for i in 0..config.prior_samples.min(window) {
            d.record(if i % 2 == 0 { m - m / 4 } else { m + m / 4 });
        }
        d
    }

    /// Evidence of life at `now`.
    pub fn heartbeat(&mut self, now: u64) {
        if now < self.last.saturating_add(self.min_interval) {
            return;
        }
        let interval = now - self.last;
        self.record(interval);
        self.last = now;
    }

    /// Forget the silence up to `now` without recording it: used when *this* process stalled,
    /// so the gap says nothing about the peer.
    pub fn forgive(&mut self, now: u64) {
        self.last = self.last.max(now);
    }

    fn record(&mut self, interval: u64) {
        let interval = interval.min(self.max_interval);
        if self.intervals.len() == self.window {
            if let Some(old) = self.intervals.pop_front() {
                self.sum -= old;
                self.sum_sq -= u128::from(old) * u128::from(old);
            }
        }
        self.intervals.push_back(interval);
        self.sum += interval;
        self.sum_sq += u128::from(interval) * u128::from(interval);
    }

    /// Mean inter-arrival time (ms) of the window.
    pub fn mean_ms(&self) -> f64 {
        if self.intervals.is_empty() {
            return self.max_interval as f64;
        }
        self.sum as f64 / self.intervals.len() as f64
    }

    /// Standard deviation (ms) of the window, at least the configured floor.
    pub fn std_dev_ms(&self) -> f64 {
        let n = self.intervals.len() as f64;
        if n == 0.0 {
            return self.min_std;
        }
        let mean = self.mean_ms();
        let variance = (self.sum_sq as f64 / n - mean * mean).max(0.0);
        variance.sqrt().max(self.min_std)
    }

    /// When the last evidence of life arrived.
    pub fn last_arrival_ms(&self) -> u64 {
        self.last
    }

    /// Phi at `now`: about 0 right after an arrival, rising with the silence.
    pub fn phi(&self, now: u64) -> f64 {
        let elapsed = now.saturating_sub(self.last) as f64;
        let y = (elapsed - self.mean_ms()) / self.std_dev_ms();
        let z = y * (1.5976 + 0.070566 * y * y);
        // log10(1 + e^z) without overflow: max(z, 0) + ln(1 + e^-|z|).
        let softplus = z.max(0.0) + (-z.abs()).exp().ln_1p();
        let phi = softplus / std::f64::consts::LN_10;
        if phi.is_finite() {
            phi
        } else {
            f64::MAX
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn prior_seeds_the_expected_interval() {
        let d = PhiDetector::new(&PhiConfig::default(), 0);
        assert_eq!(d.mean_ms(), 1000.0);
        assert!(d.phi(0) < 0.01);
        assert!(d.phi(1000) < 1.0);
        assert!(d.phi(5000) > 8.0);
    }

    #[test]
    fn an_outage_is_capped() {
        let c = PhiConfig::default();
        let mut d = PhiDetector::new(&c, 0);
        d.heartbeat(3_600_000);
        assert!(d.mean_ms() <= c.max_interval_ms as f64);
        assert!(d.phi(3_600_000) < 0.5);
    }

    #[test]
    fn a_stall_is_forgiven() {
        let mut d = PhiDetector::new(&PhiConfig::default(), 0);
        assert!(d.phi(20_000) > 8.0);
        d.forgive(20_000);
        assert!(d.phi(20_000) < 0.01);
        assert_eq!(d.mean_ms(), 1000.0);
    }

    fn config() -> impl Strategy<Value = PhiConfig> {
        (
            1usize..200,
            1u64..5000,
            0usize..10,
            1u64..20_000,
            1.0f64..2000.0,
        )
            .prop_map(|(window, first, prior, extra, min_std)| PhiConfig {
                window,
                first_interval_estimate_ms: first,
                prior_samples: prior,
                max_interval_ms: first + extra,
                min_std_dev_ms: min_std,
                ..PhiConfig::default()
            })
    }

    proptest! {
        #[test]
        fn phi_is_finite_non_negative_and_monotone(
            c in config(),
            arrivals in proptest::collection::vec(0u64..100_000, 0..50),
            probes in proptest::collection::vec(any::<u64>(), 1..20),
        ) {
            let mut d = PhiDetector::new(&c, 0);
            let mut now = 0u64;
            for gap in arrivals {
                now += gap;
                d.heartbeat(now);
            }
            let mut probes = probes;
            probes.sort_unstable();
            let mut previous = 0.0;
            for t in probes {
                let phi = d.phi(t);
                prop_assert!(phi.is_finite() && phi >= 0.0, "phi {phi} at {t}");
                prop_assert!(phi >= previous, "phi fell from {previous} to {phi}");
                previous = phi;
            }
        }

        #[test]
        fn phi_is_about_zero_right_after_a_heartbeat(
            arrivals in proptest::collection::vec(100u64..10_000, 1..100),
        ) {
            let mut d = PhiDetector::new(&PhiConfig::default(), 0);
            let mut now = 0;
            for gap in arrivals {
                now += gap;
                d.heartbeat(now);
                prop_assert!(d.phi(now) < 0.5, "phi {} just after a heartbeat", d.phi(now));
            }
        }

        #[test]
        fn regular_heartbeats_never_cross_the_threshold(
            interval in 100u64..10_000,
            jitter_pct in 0u64..20,
            seeds in proptest::collection::vec(any::<bool>(), 200),
        ) {
            // Up to ±20 % jitter around a fixed interval; the window first fills with real samples
            // (a rate far from the prior may rightly look suspicious until then).
            let c = PhiConfig::default();
            let mut d = PhiDetector::new(&c, 0);
            let mut now = 0;
            let jitter = interval * jitter_pct / 100;
            for (i, up) in seeds.into_iter().enumerate() {
                let gap = if up { interval + jitter } else { interval - jitter };
                if i >= c.window {
                    prop_assert!(d.phi(now + gap) < c.threshold,
                        "phi {} before beat {i}", d.phi(now + gap));
                }
                now += gap;
                d.heartbeat(now);
            }
        }

        #[test]
        fn intervals_are_capped(c in config(), gaps in proptest::collection::vec(any::<u32>(), 1..300)) {
            let mut d = PhiDetector::new(&c, 0);
            let mut now = 0u64;
            for gap in gaps {
                now += u64::from(gap);
                d.heartbeat(now);
                prop_assert!(d.mean_ms() <= c.max_interval_ms as f64);
                prop_assert!(d.std_dev_ms().is_finite());
            }
        }
    }
}
