//! The dissemination queue: updates waiting to be piggybacked, with their retransmit counts.
//!
//! One entry per member (a newer rumour about a member replaces the older one and starts its
//! count again). Each outgoing message takes the least-transmitted entries that fit its remaining
//! space (newest first among equals, so fresh news overtakes old), and an entry is dropped after
//! λ·⌈log10(n + 1)⌉ transmissions, which in SWIM's analysis reaches every member with high
//! probability. The few updates that cannot wait (a death this process declared, its own leave)
//! are also sent straight to every live member (`Swim::tell_live_members`), and stay queued here
//! so a lost datagram is covered.

use crate::Update;

#[derive(Debug, Clone)]
struct Entry {
    update: Update,
    size: usize,
    sends: u32,
    order: u64,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Broadcasts {
    entries: Vec<Entry>,
    next_order: u64,
}

impl Broadcasts {
    pub(crate) fn push(&mut self, update: Update) {
        let size = crate::codec::encoded_size(&update);
        self.entries.retain(|e| e.update.id.node != update.id.node);
        self.next_order += 1;
        self.entries.push(Entry {
            update,
            size,
            sends: 0,
            order: self.next_order,
        });
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Updates to piggyback within `budget` bytes, skipping members in `skip`; each counts as one
    /// transmission, and entries that reach `limit` leave the queue.
    pub(crate) fn select(&mut self, mut budget: usize, limit: u32, skip: &[&str]) -> Vec<Update> {
        if self.entries.is_empty() {
            return Vec::new();
        }
        self.entries
            .sort_by(|a, b| a.sends.cmp(&b.sends).then(b.order.cmp(&a.order)));
        let mut picked = Vec::new();
        for e in &mut self.entries {
            if e.size > budget || skip.contains(&e.update.id.node.as_str()) {
                continue;
            }
            budget -= e.size;
            e.sends += 1;
            picked.push(e.update.clone());
        }
        self.entries.retain(|e| e.sends < limit);
        picked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemberId, State};

    fn update(node: &str, incarnation: u64) -> Update {
        Update {
            id: MemberId::new(node, "x:1", 1),
            incarnation,
            state: State::Alive,
            by: None,
        }
    }

    #[test]
    fn least_sent_first_and_dropped_at_the_limit() {
        let mut q = Broadcasts::default();
        q.push(update("a", 1));
        q.push(update("b", 1));
        q.push(update("a", 2));
        assert_eq!(q.len(), 2);
        let size = crate::codec::encoded_size(&update("a", 2));
        let first = q.select(size, 3, &[]);
        assert_eq!(first, vec![update("a", 2)], "newest first among unsent");
        let second = q.select(size, 3, &[]);
        assert_eq!(second, vec![update("b", 1)], "then the least sent");
        for _ in 0..4 {
            q.select(10 * size, 3, &[]);
        }
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn respects_budget_and_skip() {
        let mut q = Broadcasts::default();
        q.push(update("a", 1));
        q.push(update("b", 1));
        assert!(q.select(3, 3, &[]).is_empty());
        assert_eq!(q.select(1000, 3, &["b"]), vec![update("a", 1)]);
    }
}
