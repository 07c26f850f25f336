//! Steepest-descent helpers shared by the claim steps.
//!
//! Each step of a search prices every candidate change (one or two partitions given to new owners)
//! and applies the best strict improvement, with deterministic tie-breaks, until nothing improves.
//! Every applied change lowers the score, which is bounded below, so the searches end; a step
//! budget bounds their time as well.

use super::layout::{Layout, Node, Score};

/// The best candidate change seen so far in one step.
pub(crate) struct Best {
    found: Option<(Score, u64, usize)>,
    changes: [(usize, Node); 2],
}

impl Best {
    pub fn new() -> Best {
        Best {
            found: None,
            changes: [(0, 0); 2],
        }
    }

    /// Offers a change with its price; `key` breaks ties (smaller wins), then the first offer wins.
    pub fn offer(&mut self, price: Score, key: u64, changes: &[(usize, Node)]) {
        if !price.improves() {
            return;
        }
        if let Some((score, k, _)) = self.found {
            if (price, key) >= (score, k) {
                return;
            }
        }
        self.found = Some((price, key, changes.len()));
        self.changes[..changes.len()].copy_from_slice(changes);
    }

    /// Makes the best change, if any was offered; says whether one was.
    pub fn apply(self, layout: &mut Layout) -> bool {
        let Some((_, _, len)) = self.found else {
            return false;
        };
        for &(p, node) in &self.changes[..len] {
            layout.set(p, node);
        }
        true
    }
}

/// Swaps owners of two partitions (loads stay as they are) to remove conflicts.
pub(crate) fn repair_by_swaps(layout: &mut Layout) {
    let partitions = layout.len();
    let base = layout.owners().to_vec();
    for _ in 0..4 * partitions {
        let mut best = Best::new();
        for p in 0..partitions {
            if !layout.in_conflict(p) {
                continue;
            }
            for q in 0..partitions {
                let (a, b) = (layout.owner(p), layout.owner(q));
                if a == b {
                    continue;
                }
                let price = layout.price_all(&[(p, b), (q, a)], &base);
                // Moves do not matter when a ring is first built; only conflicts do.
                let price = Score { moves: 0, ..price };
                best.offer(price, 0, &[(p, b), (q, a)]);
            }
        }
        if !best.apply(layout) {
            break;
        }
    }
}
