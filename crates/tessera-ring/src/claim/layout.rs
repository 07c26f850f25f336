//! A ring under construction and the score that every claim step minimises.
//!
//! Claim works on plain indices (node `i` is the i-th node in name order) so that the search loops
//! touch only integers. A [`Layout`] keeps the owner of each partition and each node's load up to
//! date, and prices a change before it is made, so the searches can compare candidates cheaply.

/// A node as the claim sees it: its index among the ring's nodes, in name order.
pub(crate) type Node = u32;

/// Marks a partition whose owner is leaving and has not been reassigned yet. It never conflicts
/// with anything and carries no load.
pub(crate) const UNASSIGNED: Node = Node::MAX;

/// How good a ring is; smaller is better, compared field by field in this order.
///
/// - `band`: partitions outside the ±10 % load band, summed over nodes. A hard limit, first: a node
///   10 % or more off its share skews every request it serves, while a repeated node in a window
///   only makes one preference list reach one partition further.
/// - `conflicts`: pairs of partitions less than `window` apart with the same owner. Zero means that
///   every `window` consecutive partitions are owned by distinct nodes.
/// - `squares`: the sum of squared loads; for a fixed total it is smallest when loads are even.
/// - `moves`: partitions whose owner differs from the ring we started from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct Score {
    pub band: i64,
    pub conflicts: i64,
    pub squares: i64,
    pub moves: i64,
}

impl Score {
    /// Whether this score, read as a change, makes things strictly better.
    pub fn improves(&self) -> bool {
        *self < Score::default()
    }
}

impl std::ops::Add for Score {
    type Output = Score;
    fn add(self, o: Score) -> Score {
        Score {
            band: self.band + o.band,
            conflicts: self.conflicts + o.conflicts,
            squares: self.squares + o.squares,
            moves: self.moves + o.moves,
        }
    }
}

/// The loads a ring of `nodes` nodes over `partitions` partitions should keep: the whole numbers
/// within ±10 % of even, widened only where that leaves out the floor or ceiling of the even share
/// (which no ring can beat), and at least one partition each, since a node that owns nothing would
/// never be a replica.
pub(crate) fn load_band(partitions: usize, nodes: usize) -> (u32, u32) {
    let (q, s) = (partitions as u64, nodes.max(1) as u64);
    let lo = (9 * q).div_ceil(10 * s).min(q / s).max(1);
    let hi = ((11 * q) / (10 * s)).max(q.div_ceil(s));
    (lo as u32, hi as u32)
}

/// The window that claim keeps free of repeated owners: `target_n`, but no more than there are nodes
/// (a window cannot hold more distinct nodes than exist) or partitions.
pub(crate) fn window(target_n: u32, nodes: usize, partitions: usize) -> usize {
    (target_n as usize).min(nodes).min(partitions).max(1)
}

/// Whether `nodes` nodes can own `partitions` partitions in a cycle so that every `window`
/// consecutive partitions have distinct owners (`window` as [`window`] makes it, so at most
/// `nodes` and at most `partitions`).
///
/// With exactly `window` nodes every window holds every node, so the ring must be a strict
/// rotation and `window` must divide Q. With more nodes this is the chromatic number of the
/// (w−1)-th power of a cycle of length Q (Prowse and Woodall, 2003): writing Q = q·w + r with
/// 0 ≤ r < w, it takes w + ⌈r/q⌉ nodes. Once Q ≥ w·(w−1) that is w + 1 at most, so any S > N
/// will do; below that, for example Q = 8 with N = 5 takes 8 nodes.
pub(crate) fn distinct_windows_possible(partitions: usize, nodes: usize, window: usize) -> bool {
    let w = window.max(1);
    if nodes <= w {
        return partitions.is_multiple_of(w);
    }
    let (q, r) = (partitions / w, partitions % w);
    q >= 1 && nodes >= w + r.div_ceil(q)
}

/// Whether claim must keep every window distinct, moving partitions between nodes that stay if
/// need be: when the windows are N long (at least N nodes, so at least N partitions) and a ring
/// without repeats exists ([`distinct_windows_possible`]). With fewer nodes than N every
/// preference list of N holds every node whatever the owners, so claim only prefers distinct
/// windows of S and never moves other partitions for them.
pub(crate) fn windows_required(target_n: u32, nodes: usize, partitions: usize) -> bool {
    nodes >= target_n as usize
        && distinct_windows_possible(partitions, nodes, window(target_n, nodes, partitions))
}

/// Owners and loads of a ring being claimed, with prices for changes.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    owners: Vec<Node>,
    loads: Vec<u32>,
    window: usize,
    lo: u32,
    hi: u32,
}

impl Layout {
    /// A layout of `nodes` nodes; `owners` may contain [`UNASSIGNED`].
    pub fn new(owners: Vec<Node>, nodes: usize, window: usize) -> Layout {
        let mut loads = vec![0; nodes];
        for &o in &owners {
            if o != UNASSIGNED {
                loads[o as usize] += 1;
            }
        }
        let (lo, hi) = load_band(owners.len(), nodes);
        Layout {
            owners,
            loads,
            window,
            lo,
            hi,
        }
    }

    pub fn len(&self) -> usize {
        self.owners.len()
    }

    pub fn owner(&self, p: usize) -> Node {
        self.owners[p]
    }

    pub fn owners(&self) -> &[Node] {
        &self.owners
    }

    pub fn into_owners(self) -> Vec<Node> {
        self.owners
    }

    pub fn load(&self, node: Node) -> u32 {
        self.loads[node as usize]
    }

    pub fn nodes(&self) -> usize {
        self.loads.len()
    }

    pub fn window(&self) -> usize {
        self.window
    }

    /// The load band `(lo, hi)` of this layout's size.
    pub fn band(&self) -> (u32, u32) {
        (self.lo, self.hi)
    }

    /// The position `d` steps clockwise of `p` (d may be negative).
    pub fn step(&self, p: usize, d: isize) -> usize {
        let q = self.owners.len() as isize;
        (p as isize + d).rem_euclid(q) as usize
    }

    /// How many partitions less than `window` away from `p` (either side, `p` excluded) `node` owns.
    pub fn conflicts_at(&self, p: usize, node: Node) -> i64 {
        if node == UNASSIGNED {
            return 0;
        }
        let mut count = 0;
        for d in 1..self.window as isize {
            count += i64::from(self.owners[self.step(p, d)] == node);
            count += i64::from(self.owners[self.step(p, -d)] == node);
        }
        count
    }

    /// Whether `p` is part of a conflict.
    pub fn in_conflict(&self, p: usize) -> bool {
        self.conflicts_at(p, self.owners[p]) > 0
    }

    /// Pairs of partitions less than `window` apart with the same owner.
    pub fn conflicts(&self) -> i64 {
        let mut count = 0;
        for p in 0..self.owners.len() {
            let o = self.owners[p];
            if o == UNASSIGNED {
                continue;
            }
            for d in 1..self.window as isize {
                count += i64::from(self.owners[self.step(p, d)] == o);
            }
        }
        count
    }

    /// How far `load` lies outside the band.
    pub fn band_of(&self, load: u32) -> i64 {
        i64::from(self.lo.saturating_sub(load)) + i64::from(load.saturating_sub(self.hi))
    }

    /// The score of the layout, with `moves` counted against `base`.
    pub fn score(&self, base: &[Node]) -> Score {
        Score {
            band: self.loads.iter().map(|&l| self.band_of(l)).sum(),
            conflicts: self.conflicts(),
            squares: self
                .loads
                .iter()
                .map(|&l| i64::from(l) * i64::from(l))
                .sum(),
            moves: self.owners.iter().zip(base).filter(|(a, b)| a != b).count() as i64,
        }
    }

    /// What giving `p` to `node` would change, with `moves` counted against `base`.
    pub fn price(&self, p: usize, node: Node, base: &[Node]) -> Score {
        let old = self.owners[p];
        if old == node {
            return Score::default();
        }
        let mut delta = Score {
            conflicts: self.conflicts_at(p, node) - self.conflicts_at(p, old),
            moves: i64::from(node != base[p]) - i64::from(old != base[p]),
            ..Score::default()
        };
        for (n, change) in [(old, -1i64), (node, 1i64)] {
            if n == UNASSIGNED {
                continue;
            }
            let load = self.loads[n as usize];
            let after = (i64::from(load) + change) as u32;
            delta.band += self.band_of(after) - self.band_of(load);
            delta.squares +=
                i64::from(after) * i64::from(after) - i64::from(load) * i64::from(load);
        }
        delta
    }

    /// Gives `p` to `node`.
    pub fn set(&mut self, p: usize, node: Node) {
        let old = self.owners[p];
        if old != UNASSIGNED {
            self.loads[old as usize] -= 1;
        }
        if node != UNASSIGNED {
            self.loads[node as usize] += 1;
        }
        self.owners[p] = node;
    }

    /// What giving every `(p, node)` in turn would change; the layout is left as it was.
    pub fn price_all(&mut self, changes: &[(usize, Node)], base: &[Node]) -> Score {
        let mut total = Score::default();
        let mut undo = Vec::with_capacity(changes.len());
        for &(p, node) in changes {
            total = total + self.price(p, node, base);
            undo.push((p, self.owners[p]));
            self.set(p, node);
        }
        for &(p, node) in undo.iter().rev() {
            self.set(p, node);
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_is_ten_percent_rounded_outwards() {
        // 85.3 even: [76.8, 93.9] holds the whole numbers 77 to 93.
        assert_eq!(load_band(256, 3), (77, 93));
        // One each is the only even ring; ±10 % of 1 holds no other whole number.
        assert_eq!(load_band(64, 64), (1, 1));
        assert_eq!(load_band(1024, 1), (922, 1126));
        // 1.9 even: ±10 % holds no whole number, so the band is the floor and ceiling.
        assert_eq!(load_band(64, 33), (1, 2));
    }

    #[test]
    fn prices_match_rescoring() {
        let base: Vec<Node> = vec![0, 1, 2, 0, 1, 2, 0, 1];
        let mut layout = Layout::new(base.clone(), 4, 3);
        for p in 0..base.len() {
            for node in 0..4 {
                let before = layout.score(&base);
                let price = layout.price(p, node, &base);
                let old = layout.owner(p);
                layout.set(p, node);
                let after = layout.score(&base);
                assert_eq!(after.conflicts - before.conflicts, price.conflicts);
                assert_eq!(after.band - before.band, price.band);
                assert_eq!(after.squares - before.squares, price.squares);
                assert_eq!(after.moves - before.moves, price.moves);
                layout.set(p, old);
            }
        }
    }
}
