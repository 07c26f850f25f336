//! Lifeguard's Local Health Multiplier: how much this process distrusts itself.
//!
//! A process that misses its own acks, gets no NACKs from relays that should have sent them, or
//! has to refute suspicions of itself is probably the slow one. Its score rises, and its probe
//! interval and timeouts stretch by (1 + score), so an overloaded node stops accusing healthy
//! ones. Every successful direct probe lowers the score again.

/// The score, between 0 and the configured maximum.
#[derive(Debug, Clone)]
pub(crate) struct LocalHealth {
    score: u32,
    max: u32,
}

impl LocalHealth {
    pub(crate) fn new(max: u32) -> LocalHealth {
        LocalHealth { score: 0, max }
    }

    pub(crate) fn score(&self) -> u32 {
        self.score
    }

    pub(crate) fn raise(&mut self, by: u32) {
        self.score = self.score.saturating_add(by).min(self.max);
    }

    pub(crate) fn lower(&mut self) {
        self.score = self.score.saturating_sub(1);
    }

    /// `ms` stretched by the current score.
    pub(crate) fn scale(&self, ms: u64) -> u64 {
        ms.saturating_mul(u64::from(self.score) + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_is_bounded_and_scales_timeouts() {
        let mut h = LocalHealth::new(8);
        assert_eq!(h.scale(500), 500);
        h.raise(3);
        assert_eq!(h.scale(500), 2000);
        h.raise(100);
        assert_eq!(h.score(), 8);
        assert_eq!(h.scale(1000), 9000);
        for _ in 0..20 {
            h.lower();
        }
        assert_eq!(h.score(), 0);
    }
}
