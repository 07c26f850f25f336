//! SWIM's round-robin probe order.
//!
//! Members are probed in the order of a shuffled list, reshuffled after every full pass, and a
//! new member is inserted at a random position. Random choice would leave some member unprobed
//! for arbitrarily long; round robin probes each member once per pass, so a member is probed at
//! least once every 2(n − 1) − 1 slots, which is what bounds worst-case detection time.

use rand::seq::SliceRandom;
use rand::Rng;

#[derive(Debug, Clone, Default)]
pub(crate) struct ProbeOrder {
    list: Vec<String>,
    pos: usize,
}

impl ProbeOrder {
    pub(crate) fn insert(&mut self, node: &str, rng: &mut impl Rng) {
        if self.list.iter().any(|n| n == node) {
            return;
        }
        let i = rng.random_range(0..=self.list.len());
        self.list.insert(i, node.to_string());
        if i < self.pos {
            self.pos += 1;
        }
    }

    pub(crate) fn remove(&mut self, node: &str) {
        if let Some(i) = self.list.iter().position(|n| n == node) {
            self.list.remove(i);
            if i < self.pos {
                self.pos -= 1;
            }
        }
    }

    /// The next member to probe that `eligible` accepts.
    pub(crate) fn next(
        &mut self,
        rng: &mut impl Rng,
        eligible: impl Fn(&str) -> bool,
    ) -> Option<String> {
        for _ in 0..=self.list.len() {
            if self.pos >= self.list.len() {
                self.list.shuffle(rng);
                self.pos = 0;
            }
            let node = self.list.get(self.pos)?.clone();
            self.pos += 1;
            if eligible(&node) {
                return Some(node);
            }
        }
        None
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn every_member_is_probed_within_two_passes() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut order = ProbeOrder::default();
        let names: Vec<String> = (0..10).map(|i| format!("n{i}")).collect();
        for n in &names {
            order.insert(n, &mut rng);
        }
        let slots: Vec<String> = (0..1000)
            .map(|_| order.next(&mut rng, |_| true).unwrap())
            .collect();
        for n in &names {
            let at: Vec<usize> = (0..slots.len()).filter(|&i| &slots[i] == n).collect();
            assert_eq!(at.len(), 100, "each member once per pass");
            // At most 2m − 1 slots apart for m members.
            assert!(at.windows(2).all(|w| w[1] - w[0] < 2 * 10));
        }
    }

    #[test]
    fn insert_and_remove_keep_the_pass_going() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut order = ProbeOrder::default();
        assert_eq!(order.next(&mut rng, |_| true), None);
        order.insert("a", &mut rng);
        order.insert("a", &mut rng);
        order.insert("b", &mut rng);
        assert_eq!(order.len(), 2);
        order.remove("a");
        assert_eq!(order.next(&mut rng, |_| true).as_deref(), Some("b"));
        assert_eq!(order.next(&mut rng, |n| n != "b"), None);
    }
}
