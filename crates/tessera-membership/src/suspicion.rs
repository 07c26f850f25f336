//! Lifeguard's dynamic suspicion timeout (Dadgar et al., "Lifeguard: Local Health Awareness for
//! More Accurate Failure Detection", 2018).
//!
//! A suspicion starts at the maximum timeout and shrinks as other members independently suspect
//! the same member: with C of K expected confirmations,
//! `timeout = max(min, max − (max − min) · log(C + 1) / log(K + 1))`. An isolated accuser (often a
//! slow or partitioned one) therefore waits long enough for the refutation, while a member that
//! many peers fail to reach is declared dead quickly.

use std::collections::BTreeSet;

/// The timeout after `confirmations` of `expected` independent confirmations.
pub fn lifeguard_timeout_ms(min: u64, max: u64, expected: usize, confirmations: usize) -> u64 {
    if expected == 0 || max <= min {
        return min;
    }
    let c = confirmations.min(expected) as f64;
    let fraction = (c + 1.0).ln() / (expected as f64 + 1.0).ln();
    let timeout = max as f64 - (max - min) as f64 * fraction;
    (timeout.floor() as u64).max(min)
}

/// One running suspicion of one member, at one incarnation.
#[derive(Debug, Clone)]
pub(crate) struct Suspicion {
    pub(crate) incarnation: u64,
    pub(crate) start: u64,
    /// Whether the timeout already ran out once and a verification probe was sent.
    pub(crate) verified: bool,
    min: u64,
    max: u64,
    expected: usize,
    /// Who raised it first: not a confirmation of itself.
    first: Option<String>,
    confirmers: BTreeSet<String>,
}

impl Suspicion {
    pub(crate) fn new(
        incarnation: u64,
        start: u64,
        (min, max): (u64, u64),
        expected: usize,
        first: Option<String>,
    ) -> Suspicion {
        Suspicion {
            incarnation,
            start,
            verified: false,
            min,
            max,
            expected,
            first,
            confirmers: BTreeSet::new(),
        }
    }

    /// Counts `by` as an independent suspecter; true if it is a new one (worth re-gossiping).
    pub(crate) fn confirm(&mut self, by: &str) -> bool {
        if self.first.as_deref() == Some(by) || self.confirmers.len() >= self.expected {
            return false;
        }
        if self.first.is_none() {
            self.first = Some(by.to_string());
            return false;
        }
        self.confirmers.insert(by.to_string())
    }

    #[cfg(test)]
    pub(crate) fn confirmations(&self) -> usize {
        self.confirmers.len()
    }

    /// Whether K independent suspecters confirmed: enough evidence to need no verification.
    pub(crate) fn fully_confirmed(&self) -> bool {
        self.confirmers.len() >= self.expected
    }

    pub(crate) fn timeout(&self) -> u64 {
        lifeguard_timeout_ms(self.min, self.max, self.expected, self.confirmers.len())
    }

    pub(crate) fn deadline(&self) -> u64 {
        self.start.saturating_add(self.timeout())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_shrinks_logarithmically_with_confirmations() {
        let t = |c| lifeguard_timeout_ms(1000, 5000, 3, c);
        assert_eq!(t(0), 5000);
        assert_eq!(t(1), 3000);
        assert_eq!(t(2), 1830);
        assert_eq!(t(3), 1000);
        assert_eq!(t(9), 1000);
        assert_eq!(lifeguard_timeout_ms(1000, 5000, 0, 0), 1000);
    }

    #[test]
    fn only_distinct_other_suspecters_confirm() {
        let mut s = Suspicion::new(0, 100, (1000, 5000), 3, Some("a".into()));
        assert_eq!(s.deadline(), 5100);
        assert!(!s.confirm("a"));
        assert!(s.confirm("b"));
        assert!(!s.confirm("b"));
        assert_eq!(s.deadline(), 3100);
        assert!(s.confirm("c"));
        assert!(s.confirm("d"));
        assert!(!s.confirm("e"), "K confirmations are enough");
        assert_eq!(s.confirmations(), 3);
        assert_eq!(s.deadline(), 1100);
    }
}
