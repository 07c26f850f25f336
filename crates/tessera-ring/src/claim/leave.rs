//! Claim for leaving nodes: their partitions are handed to the others, and nothing else moves here.

use super::flow::Network;
use super::layout::{window, Layout, Node, UNASSIGNED};
use super::search::Best;

/// Most steps [`refine`] takes; each removes at least one repeat or evens loads.
const REFINE_STEPS: usize = 64;

/// The `leaving` nodes' partitions (indices into the `nodes_before` nodes of `owners`, sorted)
/// handed to the others, before any repair that moves other partitions: the layout over the
/// remaining nodes (indices above a leaving node shift down, past each one), and the ring it
/// started from in those indices, the freed partitions [`UNASSIGNED`]. At least one node must
/// remain.
pub(crate) fn hand_out(
    owners: &[Node],
    nodes_before: usize,
    target_n: u32,
    leaving: &[Node],
) -> (Layout, Vec<Node>) {
    let partitions = owners.len();
    let nodes = nodes_before - leaving.len();
    let base: Vec<Node> = owners
        .iter()
        .map(|&o| match leaving.binary_search(&o) {
            Ok(_) => UNASSIGNED,
            Err(below) => o - below as Node,
        })
        .collect();
    let mut layout = Layout::new(base.clone(), nodes, window(target_n, nodes, partitions));
    let free: Vec<usize> = (0..partitions).filter(|&p| base[p] == UNASSIGNED).collect();
    assign(&mut layout, &free);

    // The flow priced each freed partition against the settled ones only. Freed partitions closer
    // than a window (a ring that already repeated a leaving node, or two leaving nodes near each
    // other) interact, and a local search finishes the job.
    let window = layout.window();
    let interacting = free.windows(2).any(|w| w[1] - w[0] < window)
        || (free.len() > 1 && free[0] + partitions - free[free.len() - 1] < window);
    if interacting {
        refine(&mut layout, &base, &free);
    }
    (layout, base)
}

/// Hands every freed partition to a node by minimum-cost flow: a partition costs the repeats it
/// would make in its window (then how close the node's nearest other partition is), and a node's
/// k-th new partition costs its load band and squared-load increase. This finds the assignment that
/// is best for band, then repeats, then evenness, exactly.
fn assign(layout: &mut Layout, free: &[usize]) {
    let nodes = layout.nodes();
    let items = free.len();
    let (source, sink) = (0, 1 + items + nodes);
    let node_vertex = |n: usize| 1 + items + n;
    let mut net = Network::new(2 + items + nodes);
    let mut choices = Vec::with_capacity(items * nodes);
    for (i, &p) in free.iter().enumerate() {
        net.add_edge(source, 1 + i, 1, [0; 4]);
        let keys = spread_keys(layout, p);
        for (n, &key) in keys.iter().enumerate() {
            let repeats = layout.conflicts_at(p, n as Node);
            choices.push(net.add_edge(1 + i, node_vertex(n), 1, [0, repeats, 0, key]));
        }
    }
    // A node never needs more new partitions than fit under the band's top, plus two spare so that
    // going over it can still be priced; fall back to unlimited if that leaves too little room.
    let (_, hi) = layout.band();
    let room = |n: usize| (hi.saturating_sub(layout.load(n as Node)) as usize + 2).min(items);
    let limited = (0..nodes).map(room).sum::<usize>() >= items;
    for n in 0..nodes {
        let load = layout.load(n as Node);
        let units = if limited { room(n) } else { items };
        for k in 0..units as u32 {
            let l = load + k;
            let band = layout.band_of(l + 1) - layout.band_of(l);
            net.add_edge(node_vertex(n), sink, 1, [band, 0, 2 * i64::from(l) + 1, 0]);
        }
    }
    net.send(source, sink, items as u32);
    for (i, &p) in free.iter().enumerate() {
        if let Some(n) = (0..nodes).find(|&n| net.flow(choices[i * nodes + n]) > 0) {
            layout.set(p, n as Node);
        }
    }
}

/// Steepest descent over giving one freed partition to another node and trading the owners of two
/// freed partitions.
fn refine(layout: &mut Layout, base: &[Node], free: &[usize]) {
    let nodes = layout.nodes() as Node;
    for _ in 0..REFINE_STEPS {
        let mut best = Best::new();
        for (i, &p) in free.iter().enumerate() {
            for n in 0..nodes {
                if n != layout.owner(p) {
                    best.offer(layout.price(p, n, base), 0, &[(p, n)]);
                }
            }
            for &q in &free[i + 1..] {
                let (a, b) = (layout.owner(p), layout.owner(q));
                if a != b {
                    let changes = [(p, b), (q, a)];
                    best.offer(layout.price_all(&changes, base), 0, &changes);
                }
            }
        }
        if !best.apply(layout) {
            break;
        }
    }
}

/// For each node, a key that is smaller the farther its nearest partition is from `p`: repeats of
/// a node just outside the window are legal but leave no slack for later changes.
fn spread_keys(layout: &Layout, p: usize) -> Vec<i64> {
    let radius = (4 * layout.window()).min(layout.len() / 2);
    let mut keys = vec![0; layout.nodes()];
    for d in (1..=radius as isize).rev() {
        for q in [layout.step(p, d), layout.step(p, -d)] {
            let o = layout.owner(q);
            if o != UNASSIGNED {
                keys[o as usize] = radius as i64 + 1 - d as i64;
            }
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The best score over every way to hand out the freed partitions.
    fn brute_force(base: &[Node], nodes: usize, window: usize) -> super::super::layout::Score {
        let free: Vec<usize> = (0..base.len()).filter(|&p| base[p] == UNASSIGNED).collect();
        let mut best = None;
        let combos = nodes.pow(free.len() as u32);
        for mut c in 0..combos {
            let mut owners = base.to_vec();
            for &p in &free {
                owners[p] = (c % nodes) as Node;
                c /= nodes;
            }
            let score = Layout::new(owners, nodes, window).score(base);
            if best.is_none_or(|b| score < b) {
                best = Some(score);
            }
        }
        best.unwrap()
    }

    proptest! {
        #[test]
        fn flow_matches_brute_force(
            owners in proptest::collection::vec(0u32..5, 8..16),
            target_n in 1u32..4,
        ) {
            // Node 4 leaves; skip rings where it repeats within a window (the flow's premise).
            let nodes_before = 5;
            prop_assume!(owners.iter().filter(|&&o| o == 4).count() <= 4);
            prop_assume!((0..4u32).all(|n| owners.contains(&n)));
            let q = owners.len();
            let w = window(target_n, 4, q);
            let free: Vec<usize> = (0..q).filter(|&p| owners[p] == 4).collect();
            prop_assume!(free.iter().all(|&a| free.iter().all(|&b| a == b || {
                let d = a.abs_diff(b); d.min(q - d) >= w
            })));
            let (result, base) = hand_out(&owners, nodes_before, target_n, &[4]);
            let got = result.score(&base);
            let want = brute_force(&base, 4, w);
            prop_assert_eq!((got.band, got.conflicts, got.squares), (want.band, want.conflicts, want.squares));
        }
    }
}
