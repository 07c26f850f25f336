//! Settling a ring after a change: repairs that may move partitions between nodes that stay,
//! used only where the change itself left a load outside the band or a window that must be
//! distinct with a repeated node.
//!
//! The first tool is an ejection chain: a path of moves `p0: a → b1, p1: b1 → b2, …, pk: bk → e`
//! through distinct nodes. Every node inside the path gains one partition and gives one up, so
//! only the two ends change load: `a` loses one (it must stay at or above the band's floor) and
//! `e` gains one (it must stay at or below its top), or the path returns to `a` and no load
//! changes at all. A node takes a partition only where it owns nothing else within a window of
//! it, or where it owns exactly one such partition and gives that one up as the next move of the
//! chain (an ejection). So a chain never makes a repeat: each node's own partitions are all it is
//! checked against, and each node on the path changes only by its own two moves. Breadth-first
//! search finds the shortest chain, which is the fewest extra moves for that one repair.
//!
//! Where no chain exists (few nodes for the window), exactly N nodes take the nearest strict
//! rotation (`rotation.rs`), and more nodes a rewrite of the smallest stretch around a repeat
//! that ends it (`rewrite.rs`), its loads put back into band by chains, and where chains cannot,
//! by rewriting again with prices on the nodes left out of band.
//!
//! Repairs run one at a time, loads first, then windows, and each applied repair lowers
//! `(band, conflicts)`, so they end. Repeats are repaired only where claim must keep windows
//! distinct ([`windows_required`]): with fewer nodes than N, or where every ring repeats
//! somewhere, moving partitions would buy nothing a preference list of N can use.

use super::layout::{windows_required, Layout, Node};
use super::rewrite::{rewrite, Prices, CHANGE};
use super::rotation::nearest_rotation;

/// Longest chain searched. Real repairs take one to four moves; the bound keeps a search that
/// cannot succeed from walking every node of a large ring many times.
const MAX_CHAIN: usize = 12;

/// Most repeated partitions tried as the start of a chain in one round; the shortest chain among
/// them is applied.
const MAX_STARTS: usize = 64;

/// The evenness weights a rewrite tries in turn (see `rewrite.rs`): first the fewest changes, then
/// more and more changes traded for loads that the chains can put back into band.
const EVENNESS: [i64; 4] = [1, CHANGE / 8, CHANGE / 2, 2 * CHANGE];

/// Rounds of node prices a rewrite tries after [`EVENNESS`], each raising the price of the nodes
/// the last rewrite left above the band and lowering it for those left below, by
/// [`PRICE_STEP`] per partition out of band, shrinking by a quarter each round (a fixed step kept
/// overshooting a single-value band).
const PRICE_ROUNDS: usize = 12;

/// The first price step of [`PRICE_ROUNDS`], per partition out of band.
const PRICE_STEP: i64 = CHANGE / 8;

/// What a node on the chain must give up next.
#[derive(Debug, Clone, Copy)]
enum Eject {
    /// This partition: it is the node's one partition within a window of the one it took.
    Forced(usize),
    /// Any one of its partitions: it took one without room to keep it (at the band's top), or it
    /// starts a chain that sheds load.
    Any,
}

/// Repairs `layout` until every load is in band and, where claim must keep windows distinct
/// ([`windows_required`]), no window repeats a node, or until nothing more helps. Returns how
/// many owner changes it made (a partition changed twice counts twice). `base` is the ring before
/// the change, for preferring moves that undo one of it.
///
/// In order: chains for loads out of band; with exactly as many nodes as the window, the nearest
/// strict rotation (`rotation.rs`); otherwise chains for repeated windows, and where no chain
/// exists, the fewest changes to a stretch around a repeat (`rewrite.rs`), widened until one is
/// found, with chains after it to put loads back into band.
pub(crate) fn settle(layout: &mut Layout, base: &[Node], target_n: u32) -> usize {
    let repair_windows = windows_required(target_n, layout.nodes(), layout.len());
    let mut changed = 0;
    // Once no chain ends a repeat, rewrites end them one stretch at a time; a rewrite changes
    // nothing far from its stretch, so chains are not searched again for the repeats left.
    let mut chains_failed = false;
    // Every applied repair lowers (band, conflicts), which start below 2·Q·w; the budget is a
    // second bound on time.
    for _ in 0..4 * layout.len() + layout.nodes() {
        let score = layout.score(base);
        let before = (score.band, score.conflicts);
        if score.band > 0 {
            match band_chain(layout, base) {
                Some(chain) => changed += apply(layout, &chain),
                None => break,
            }
        } else if repair_windows && score.conflicts > 0 {
            if let Some(changes) = nearest_rotation(layout, base) {
                changed += apply(layout, &changes);
            } else if let Some(chain) = (!chains_failed)
                .then(|| window_chain(layout, base))
                .flatten()
            {
                changed += apply(layout, &chain);
            } else if let Some(rewritten) = {
                chains_failed = true;
                window_rewrite(layout, base)
            } {
                changed += rewritten.1;
                *layout = rewritten.0;
            } else {
                break;
            }
        } else {
            break;
        }
        let after = layout.score(base);
        debug_assert!(
            (after.band, after.conflicts) < before,
            "{before:?} -> {after:?}"
        );
        if (after.band, after.conflicts) >= before {
            break;
        }
    }
    changed
}

fn apply(layout: &mut Layout, changes: &[(usize, Node)]) -> usize {
    for &(p, node) in changes {
        layout.set(p, node);
    }
    changes.len()
}

/// Rewrites the smallest stretch around a repeated window that ends it, then puts loads back in
/// band with chains: the new layout and how many owner changes that took, if it lowers
/// `(band, conflicts)`. Stretches grow from four windows to the whole ring; the first repeats
/// are tried in turn. At each length the rewrite first weighs evenness more and more
/// ([`EVENNESS`]), then prices the nodes it leaves out of band that chains cannot fix
/// (Lagrangian rounds, [`PRICE_ROUNDS`]).
fn window_rewrite(layout: &Layout, base: &[Node]) -> Option<(Layout, usize)> {
    let q = layout.len();
    let keep = layout.window() - 1;
    let score = layout.score(base);
    let before = (score.band, score.conflicts);
    let repeats: Vec<usize> = (0..q).filter(|&p| layout.in_conflict(p)).collect();
    for &p in repeats.iter().take(4) {
        let mut len = 4 * layout.window();
        loop {
            let (start, len_now) = if len + 2 * keep >= q {
                // The whole ring but `keep` partitions with distinct owners, opposite `p`.
                let kept = kept_block(layout, layout.step(p, q as isize / 2))?;
                (layout.step(kept, keep as isize), q - keep)
            } else {
                (layout.step(p, -(len as isize) / 2), len)
            };
            let mut prices = Prices::fewest_changes(layout.nodes());
            let mut step = PRICE_STEP;
            for round in 0..EVENNESS.len() + PRICE_ROUNDS {
                // Evenness weights first; then node prices, with evenness back to a tie-break.
                prices.evenness = EVENNESS.get(round).copied().unwrap_or(1);
                let Some(changes) = rewrite(layout, base, start, len_now, &prices) else {
                    break;
                };
                let mut trial = layout.clone();
                let mut count = apply(&mut trial, &changes);
                let rewritten = trial.clone();
                for _ in 0..trial.nodes() + 1 {
                    if trial.score(base).band == 0 {
                        break;
                    }
                    match band_chain(&trial, base) {
                        Some(chain) => count += apply(&mut trial, &chain),
                        None => break,
                    }
                }
                let after = trial.score(base);
                if (after.band, after.conflicts) < before {
                    return Some((trial, count));
                }
                // Price what the fewest-changes rewrite, then each priced one, left out of band.
                if round == 0 || round >= EVENNESS.len() {
                    let (lo, hi) = rewritten.band();
                    for n in 0..rewritten.nodes() {
                        let load = rewritten.load(n as Node);
                        let off =
                            i64::from(load.saturating_sub(hi)) - i64::from(lo.saturating_sub(load));
                        prices.node[n] += off * step;
                    }
                    if round >= EVENNESS.len() {
                        step = step * 3 / 4;
                    }
                }
            }
            if len_now + keep >= q {
                break;
            }
            len *= 2;
        }
    }
    None
}

/// The first position from `from` on where `w − 1` consecutive partitions have distinct owners,
/// to keep while the rest of the ring is rewritten.
fn kept_block(layout: &Layout, from: usize) -> Option<usize> {
    let keep = layout.window() - 1;
    (0..layout.len())
        .map(|d| layout.step(from, d as isize))
        .find(|&t| {
            let owners: Vec<Node> = (0..keep)
                .map(|d| layout.owner(layout.step(t, d as isize)))
                .collect();
            (1..owners.len()).all(|i| !owners[..i].contains(&owners[i]))
        })
}

/// A chain that brings one node back into the band: from an overloaded node to any node with
/// room, or from any node above the floor to an underloaded one.
fn band_chain(layout: &Layout, base: &[Node]) -> Option<Vec<(usize, Node)>> {
    let (lo, hi) = layout.band();
    let search = Search::new(layout, base);
    let nodes = layout.nodes() as Node;
    for node in 0..nodes {
        let load = layout.load(node);
        let chain = if load > hi {
            search.run(&[(node, Eject::Any)], |e| layout.load(e) < hi, None)
        } else if load < lo {
            let donors: Vec<(Node, Eject)> = (0..nodes)
                .filter(|&d| layout.load(d) > lo)
                .map(|d| (d, Eject::Any))
                .collect();
            search.run(&donors, |e| e == node, None)
        } else {
            continue;
        };
        if chain.is_some() {
            return chain;
        }
    }
    None
}

/// The shortest chain that starts by moving a partition out of a repeated window.
fn window_chain(layout: &Layout, base: &[Node]) -> Option<Vec<(usize, Node)>> {
    let (lo, hi) = layout.band();
    let search = Search::new(layout, base);
    let mut best: Option<Vec<(usize, Node)>> = None;
    let starts = (0..layout.len()).filter(|&p| layout.in_conflict(p));
    for p in starts.take(MAX_STARTS) {
        let a = layout.owner(p);
        let may_shrink = layout.load(a) > lo;
        let chain = search.run(
            &[(a, Eject::Forced(p))],
            |e| may_shrink && layout.load(e) < hi,
            Some((a, p)),
        );
        if let Some(chain) = chain {
            if best.as_ref().is_none_or(|b| chain.len() < b.len()) {
                best = Some(chain);
            }
            if best.as_ref().is_some_and(|b| b.len() == 1) {
                break;
            }
        }
    }
    best
}

/// Whether `node` is `b` or one of the nodes the chain to `b` passed through.
fn on_path(reached: &[Option<Step>], b: Node, node: Node) -> bool {
    let mut at = b;
    loop {
        if at == node {
            return true;
        }
        match reached[at as usize] {
            Some(step) => at = step.from,
            None => return false,
        }
    }
}

/// One breadth-first search for a chain over a fixed layout.
struct Search<'a> {
    layout: &'a Layout,
    base: &'a [Node],
    /// Each node's partitions, ascending.
    owned: Vec<Vec<usize>>,
}

/// How a node was reached: the partition it takes, and from whom.
#[derive(Debug, Clone, Copy)]
struct Step {
    partition: usize,
    from: Node,
}

impl<'a> Search<'a> {
    fn new(layout: &'a Layout, base: &'a [Node]) -> Search<'a> {
        let mut owned = vec![Vec::new(); layout.nodes()];
        for p in 0..layout.len() {
            owned[layout.owner(p) as usize].push(p);
        }
        Search {
            layout,
            base,
            owned,
        }
    }

    /// The shortest chain from one of `starts` (each giving up what its [`Eject`] says) to a node
    /// for which `ends` holds and that takes its partition without a repeat; or, with `cycle =
    /// Some((a, p0))`, back to `a`, which gave up `p0` first. Ties go to the chain that moves
    /// fewest partitions away from `base`, then to the end with the smallest load, then to the
    /// smallest indices.
    fn run(
        &self,
        starts: &[(Node, Eject)],
        ends: impl Fn(Node) -> bool,
        cycle: Option<(Node, usize)>,
    ) -> Option<Vec<(usize, Node)>> {
        let layout = self.layout;
        let nodes = layout.nodes();
        let mut reached: Vec<Option<Step>> = vec![None; nodes];
        let mut visited = vec![false; nodes];
        // (node, what it gives up, moves away from base so far)
        let mut frontier: Vec<(Node, Eject, i64)> = Vec::new();
        for &(node, eject) in starts {
            visited[node as usize] = true;
            frontier.push((node, eject, 0));
        }
        for _ in 0..MAX_CHAIN {
            // The best end of this round: (cost, load, end, partition, from).
            let mut end: Option<(i64, u32, Node, usize, Node)> = None;
            // The best way to reach each new node this round: (cost, step, what it then gives up).
            let mut next: Vec<Option<(i64, Step, Eject)>> = vec![None; nodes];
            for &(b, eject, cost) in &frontier {
                let forced = match eject {
                    Eject::Forced(p) => Some(p),
                    Eject::Any => None,
                };
                for c in 0..nodes as Node {
                    if c == b {
                        continue;
                    }
                    let is_cycle = cycle.is_some_and(|(a, _)| a == c);
                    // A node reached this round or before may still end a chain that does not
                    // pass through it; it may not be passed through twice.
                    if !is_cycle && on_path(&reached, b, c) {
                        continue;
                    }
                    let Some((p, taken)) = self.placement(b, forced, c, cycle) else {
                        continue;
                    };
                    let cost = cost + self.moved(p, b, c);
                    let step = Step {
                        partition: p,
                        from: b,
                    };
                    let closes = match taken {
                        None => is_cycle || ends(c),
                        Some(_) => false,
                    };
                    if closes {
                        let key = (cost, layout.load(c), c, p, b);
                        if end.is_none_or(|e| key < e) {
                            end = Some(key);
                        }
                    } else if !is_cycle && !visited[c as usize] {
                        let gives = match taken {
                            Some(q) => Eject::Forced(q),
                            None => Eject::Any,
                        };
                        let slot = &mut next[c as usize];
                        if slot.is_none_or(|(k, _, _)| cost < k) {
                            *slot = Some((cost, step, gives));
                        }
                    }
                }
            }
            if let Some((_, _, c, partition, from)) = end {
                return Some(self.path(&reached, Step { partition, from }, c));
            }
            frontier.clear();
            for (c, slot) in next.into_iter().enumerate() {
                if let Some((cost, step, gives)) = slot {
                    visited[c] = true;
                    reached[c] = Some(step);
                    frontier.push((c as Node, gives, cost));
                }
            }
            if frontier.is_empty() {
                return None;
            }
        }
        None
    }

    /// Which partition `b` gives to `c`, and what `c` must then give up: `Some((p, None))` when
    /// `c` owns nothing within a window of `p`; `Some((p, Some(q)))` when it owns exactly `q`
    /// there; `None` when no partition `b` may give fits `c`. For the cycle's start `a`, the
    /// partition it gave up first does not count against it.
    fn placement(
        &self,
        b: Node,
        forced: Option<usize>,
        c: Node,
        cycle: Option<(Node, usize)>,
    ) -> Option<(usize, Option<usize>)> {
        let given_up = cycle.filter(|&(a, _)| a == c).map(|(_, p0)| p0);
        let candidates: &[usize] = match forced {
            Some(ref p) => std::slice::from_ref(p),
            None => &self.owned[b as usize],
        };
        let mut fallback = None;
        for &p in candidates {
            match self.near(p, c, given_up) {
                (0, _) => return Some((p, None)),
                (1, Some(q)) if given_up.is_none() && fallback.is_none() => {
                    fallback = Some((p, Some(q)));
                }
                _ => {}
            }
        }
        fallback
    }

    /// How many of `c`'s partitions lie within a window of `p` (leaving out `skip`), and one of
    /// them.
    fn near(&self, p: usize, c: Node, skip: Option<usize>) -> (u32, Option<usize>) {
        let layout = self.layout;
        let mut count = 0;
        let mut found = None;
        for d in 1..layout.window() as isize {
            for q in [layout.step(p, d), layout.step(p, -d)] {
                if q != p && Some(q) != skip && layout.owner(q) == c && found != Some(q) {
                    count += 1;
                    found = Some(q);
                }
            }
        }
        (count, found)
    }

    /// How moving `p` from `from` to `to` changes the count of partitions away from `base`.
    fn moved(&self, p: usize, from: Node, to: Node) -> i64 {
        let was = self.base[p];
        i64::from(to != was) - i64::from(from != was)
    }

    /// The moves of the chain that ends with `last` into `end`, in the order they are made.
    fn path(&self, reached: &[Option<Step>], last: Step, end: Node) -> Vec<(usize, Node)> {
        let mut moves = vec![(last.partition, end)];
        let mut node = last.from;
        while let Some(step) = reached[node as usize] {
            moves.push((step.partition, node));
            node = step.from;
        }
        moves.reverse();
        moves
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeat_with_no_free_node_is_ended_by_a_chain() {
        // Windows of 3 over 4 nodes: 0 1 0 2 3 1 2 3 … The window at 0 repeats 0, and 0's
        // neighbours (3 at the wrap, 1, 1's neighbour 0, 2) leave no node free for partition 0.
        let owners: Vec<Node> = vec![0, 1, 0, 2, 3, 1, 2, 3, 0, 1, 2, 3];
        let mut layout = Layout::new(owners.clone(), 4, 3);
        assert!(layout.conflicts() > 0);
        let moved = settle(&mut layout, &owners, 3);
        assert_eq!(layout.conflicts(), 0, "{:?}", layout.owners());
        assert_eq!(layout.score(&owners).band, 0);
        assert!((1..=4).contains(&moved), "{moved}");
    }

    #[test]
    fn an_overloaded_node_hands_a_partition_on_without_repeats() {
        // Node 0 owns 4 of 8 with windows of 2 over 3 nodes; the band is [2, 3].
        let owners: Vec<Node> = vec![0, 1, 0, 2, 0, 1, 0, 2];
        let mut layout = Layout::new(owners.clone(), 3, 2);
        assert_eq!(layout.score(&owners).band, 1);
        settle(&mut layout, &owners, 2);
        let score = layout.score(&owners);
        assert_eq!(
            (score.band, score.conflicts),
            (0, 0),
            "{:?}",
            layout.owners()
        );
    }

    #[test]
    fn repeats_that_no_ring_avoids_are_left_alone() {
        // 3 nodes with windows of 3 over 4 partitions: every ring repeats somewhere.
        let owners: Vec<Node> = vec![0, 1, 2, 0];
        let mut layout = Layout::new(owners.clone(), 3, 3);
        assert_eq!(settle(&mut layout, &owners, 3), 0);
        assert_eq!(layout.owners(), &owners[..]);
    }
}
