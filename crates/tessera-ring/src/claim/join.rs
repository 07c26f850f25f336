//! Claim for a joining node: it takes partitions from the others, and nothing else moves here.

use super::layout::{window, Layout, Node, Score};
use super::search::Best;

/// Most steps [`Join::refine`] takes. Each step scans every (taken, candidate) pair, so this
/// bounds the time spent where the greedy did nearly well (it typically needs a few steps) and
/// where repeats cannot be removed at all (steps there rarely help).
const REFINE_STEPS: usize = 32;

/// Owners after a node joins the `nodes_before` nodes of `owners`: the newcomer is node index
/// `nodes_before`, and every partition that moves, moves to it. Moves are priced against `origin`,
/// the ring before the whole change (where a change also removes nodes, their partitions are
/// [`UNASSIGNED`](super::layout::UNASSIGNED) there, so taking one of those costs nothing more).
/// No repair that moves other partitions runs here; see `settle.rs`.
pub(crate) fn join(
    owners: Vec<Node>,
    origin: &[Node],
    nodes_before: usize,
    target_n: u32,
) -> Vec<Node> {
    let partitions = owners.len();
    let nodes = nodes_before + 1;
    let newcomer = nodes_before as Node;
    let prior = owners.clone();
    let mut layout = Layout::new(owners, nodes, window(target_n, nodes, partitions));
    let (ideal_squares, share) = water_fill(&prior, nodes);
    let mut join = Join {
        layout: &mut layout,
        prior: &prior,
        origin,
        newcomer,
        share,
    };
    join.repair();
    join.sweep();
    join.greedy();
    let score = join.layout.score(origin);
    if score.band > 0 || score.conflicts > 0 || score.squares > ideal_squares {
        join.refine();
    }
    layout.into_owners()
}

struct Join<'a> {
    layout: &'a mut Layout,
    /// The ring this join starts from: a partition the newcomer gives back returns to its owner
    /// here.
    prior: &'a [Node],
    /// The ring the whole change starts from, which moves are counted against.
    origin: &'a [Node],
    newcomer: Node,
    /// How many partitions the newcomer takes when loads end as even as they can.
    share: usize,
}

impl Join<'_> {
    fn price(&self, p: usize) -> Score {
        self.layout.price(p, self.newcomer, self.origin)
    }

    fn take(&mut self, p: usize) {
        self.layout.set(p, self.newcomer);
    }

    fn taken(&self) -> usize {
        self.layout.load(self.newcomer) as usize
    }

    /// First, take partitions that end repeats the ring already has (left by an earlier leave),
    /// the one that ends most first; among equals, the one whose window covers the fewest other
    /// partitions that are still in a repeat (taking it would bar the newcomer from those).
    fn repair(&mut self) {
        let z = self.newcomer;
        loop {
            // (band, repeats, barred, squares, grid distance), then the partition.
            type Key = (i64, i64, usize, i64, u64);
            let mut best: Option<(Key, usize)> = None;
            for p in 0..self.layout.len() {
                if self.layout.owner(p) == z || !self.layout.in_conflict(p) {
                    continue;
                }
                let price = self.price(p);
                if price.conflicts >= 0 || price.band > 0 {
                    continue;
                }
                let key = (
                    price.band,
                    price.conflicts,
                    self.barred(p),
                    price.squares,
                    self.grid_distance(p),
                );
                if best.is_none_or(|(k, _)| key < k) {
                    best = Some((key, p));
                }
            }
            let Some((_, p)) = best else { break };
            self.take(p);
        }
    }

    /// How many partitions within a window of `p` would still be in a repeat after the newcomer
    /// takes `p`, and could then not be taken by it.
    fn barred(&self, p: usize) -> usize {
        let layout = &*self.layout;
        let taken_owner = layout.owner(p);
        (1..layout.window() as isize)
            .flat_map(|d| [layout.step(p, d), layout.step(p, -d)])
            .filter(|&q| {
                let o = layout.owner(q);
                let ended = i64::from(o == taken_owner);
                o != self.newcomer && layout.conflicts_at(q, o) - ended > 0
            })
            .count()
    }

    /// Then walk the ring once, taking the first partition that helps at or after each of `share`
    /// evenly spaced points. The newcomer's partitions end up about Q/share apart, which is more
    /// than a window, so they never crowd out each other; and consecutive picks land on different
    /// donors, as the ring's stripes rotate.
    fn sweep(&mut self) {
        let partitions = self.layout.len();
        for p in 0..partitions {
            let due = ((p as u64 + 1) * self.share as u64).div_ceil(partitions as u64) as usize;
            if self.taken() >= due || self.layout.owner(p) == self.newcomer {
                continue;
            }
            // Only from nodes that must give in any evenest outcome: the greedy settles the rest.
            if self.layout.load(self.layout.owner(p)) < self.share as u32 + 2 {
                continue;
            }
            let price = self.price(p);
            if price.improves() && price.conflicts <= 0 {
                self.take(p);
            }
        }
    }

    /// Then keep taking whichever partition helps most (from the most loaded node, without
    /// repeats), ties to the partition nearest an even grid, until nothing helps.
    fn greedy(&mut self) {
        loop {
            let mut best = Best::new();
            for p in 0..self.layout.len() {
                if self.layout.owner(p) != self.newcomer {
                    best.offer(self.price(p), self.grid_distance(p), &[(p, self.newcomer)]);
                }
            }
            if !best.apply(self.layout) {
                break;
            }
        }
    }

    /// Last, if the result is not as good as the loads allow, steepest descent over taking, giving
    /// back, and trading a taken partition for another: this repairs what taking partitions one at
    /// a time boxed in.
    fn refine(&mut self) {
        let partitions = self.layout.len();
        let window = self.layout.window();
        let z = self.newcomer;
        for _ in 0..REFINE_STEPS {
            let score = self.layout.score(self.origin);
            // With no repeats and loads in band, only evenness can improve, and trading `p` for
            // `q` helps evenness only if q's owner is at least two heavier than p's.
            let evenness_only = score.band == 0 && score.conflicts == 0;
            let crowd: Vec<i64> = (0..partitions)
                .map(|q| self.layout.conflicts_at(q, z))
                .collect();
            let taken: Vec<usize> = (0..partitions)
                .filter(|&p| self.layout.owner(p) == z)
                .collect();
            let mut best = Best::new();
            for q in 0..partitions {
                if self.layout.owner(q) != z {
                    best.offer(self.price(q), self.grid_distance(q), &[(q, z)]);
                }
            }
            for &p in &taken {
                let back = self.prior[p];
                best.offer(self.layout.price(p, back, self.origin), 0, &[(p, back)]);
                for (q, &crowded) in crowd.iter().enumerate() {
                    let owner = self.layout.owner(q);
                    if owner == z {
                        continue;
                    }
                    let near = distance(p, q, partitions) < window;
                    if crowded > i64::from(near) {
                        continue;
                    }
                    if evenness_only && self.layout.load(owner) < self.layout.load(back) + 2 {
                        continue;
                    }
                    let changes = [(p, back), (q, z)];
                    let price = self.layout.price_all(&changes, self.origin);
                    best.offer(price, self.grid_distance(q), &changes);
                }
            }
            if !best.apply(self.layout) {
                break;
            }
        }
    }

    /// How far `p` is from the nearest of `share` evenly spaced grid points (scaled by `share`).
    fn grid_distance(&self, p: usize) -> u64 {
        let partitions = self.layout.len() as u64;
        let x = (p as u64 * self.share as u64) % partitions;
        x.min(partitions - x)
    }
}

/// Distance between two positions on a ring of `len`.
fn distance(a: usize, b: usize, len: usize) -> usize {
    let d = a.abs_diff(b);
    d.min(len - d)
}

/// The best evenness reachable when only the newcomer gains, by water-filling from the most loaded
/// node down: the sum of squared loads, and how many partitions the newcomer ends with.
fn water_fill(base: &[Node], nodes: usize) -> (i64, usize) {
    let mut donors = vec![0i64; nodes - 1];
    for &o in base {
        donors[o as usize] += 1;
    }
    let mut mine = 0i64;
    while let Some(max) = donors.iter_mut().max().filter(|max| **max > mine + 1) {
        *max -= 1;
        mine += 1;
    }
    let squares = donors.iter().map(|l| l * l).sum::<i64>() + mine * mine;
    (squares, mine.max(1) as usize)
}
