//! The first claim of a new cluster: rounds of all nodes, then a repair search for the wrap-around.
//!
//! The ring is cut into rounds; each round places every node once (a few rounds leave one node out,
//! so that the rounds add up to Q), which keeps loads within one partition of each other. What
//! differs is the order inside the rounds, chosen for what happens when a node later leaves: see
//! [`mixed`] and [`stripes`].

use super::layout::{window, Layout, Node};
use super::search;
use super::settle::settle;

/// Above this many nodes, [`mixed`] would need too large a table; plain stripes serve instead.
const MIXED_MAX_NODES: usize = 1024;

/// Owners for `partitions` partitions claimed by `nodes` nodes (1 ≤ `nodes` ≤ `partitions`).
pub(crate) fn build(partitions: usize, nodes: usize, target_n: u32) -> Vec<Node> {
    let window = window(target_n, nodes, partitions);
    let mixed = if nodes > 2 * window && nodes <= MIXED_MAX_NODES {
        mixed(partitions, nodes, window)
    } else {
        None
    };
    let owners =
        mixed.unwrap_or_else(|| stripes(partitions, nodes, rounds(partitions, nodes, window)));
    let mut layout = Layout::new(owners, nodes, window);
    if layout.conflicts() > 0 {
        search::repair_by_swaps(&mut layout);
    }
    // Whatever the swaps could not end (rings of few partitions), the repairs of a change can.
    let built = layout.owners().to_vec();
    settle(&mut layout, &built, target_n);
    layout.into_owners()
}

/// How many rounds [`stripes`] cuts the ring into.
///
/// With at least two more nodes than the window, rounds of `nodes - 1` (each round leaves one node
/// out, and the left-out node changes slowly around the ring) make the ring easier to shrink: a
/// leaving node's partition in a round can go to that round's left-out node, which is nowhere near
/// it. Otherwise plain round robin, `ceil(Q/S)` rounds of which a few are one node short.
fn rounds(partitions: usize, nodes: usize, window: usize) -> usize {
    let round_robin = partitions.div_ceil(nodes);
    if nodes >= window + 2 {
        let short = partitions / (nodes - 1);
        if short >= round_robin {
            return short;
        }
    }
    round_robin
}

/// Which nodes each of `rounds` rounds leaves out so that the rounds hold `partitions` partitions:
/// `rounds·nodes − partitions` slots, spread evenly over the rounds and over the nodes, the
/// left-out node rising with the round. Needs `partitions ≤ rounds·nodes` and at most `nodes`
/// left-out slots per round.
fn left_out(partitions: usize, nodes: usize, rounds: usize) -> Vec<Vec<Node>> {
    let omitted = (rounds * nodes - partitions) as u64;
    let mut skip = vec![Vec::new(); rounds];
    for j in 0..omitted {
        let round = j * rounds as u64 / omitted;
        skip[round as usize].push((j * nodes as u64 / omitted) as Node);
    }
    skip
}

/// Rounds of the nodes in index order.
///
/// Because the left-out node rises with the round, between two occurrences of a node at most one
/// node is left out (except where the ring wraps around), so with more nodes than the window no
/// window repeats a node. Every node's neighbours are the same few nodes, though, which is why
/// [`mixed`] is preferred when there are enough nodes.
fn stripes(partitions: usize, nodes: usize, rounds: usize) -> Vec<Node> {
    let mut owners = Vec::with_capacity(partitions);
    for round in left_out(partitions, nodes, rounds) {
        owners.extend((0..nodes as Node).filter(|n| !round.contains(n)));
    }
    owners
}

/// Round robin with the order changing every round: each next partition goes to the node, among
/// those not yet placed in this round and not in the last `window - 1` partitions, that has so far
/// been least often within a window of those last partitions.
///
/// Why: when a node leaves, each of its partitions can only go to a node outside its window. In
/// [`stripes`] a node's neighbours are always the same few nodes, which then can never take over
/// its partitions and would fall behind in load; mixing the order spreads every node's
/// neighbourhoods evenly over all the others. Returns `None` when there are too few nodes for the
/// order to change without repeating a node in a window (`nodes < 2·window − 1`).
fn mixed(partitions: usize, nodes: usize, window: usize) -> Option<Vec<Node>> {
    if nodes + 1 < 2 * window || nodes < 2 {
        return None;
    }
    let mut near = vec![0u32; nodes * nodes];
    let mut owners: Vec<Node> = Vec::with_capacity(partitions);
    for round in left_out(partitions, nodes, partitions.div_ceil(nodes)) {
        let mut remaining: Vec<Node> = (0..nodes as Node).filter(|n| !round.contains(n)).collect();
        while !remaining.is_empty() {
            let recent = &owners[owners.len().saturating_sub(window - 1)..];
            let cost = |v: Node| -> u32 {
                recent
                    .iter()
                    .map(|&u| near[u as usize * nodes + v as usize])
                    .sum()
            };
            let (i, &v) = remaining
                .iter()
                .enumerate()
                .filter(|(_, v)| !recent.contains(v))
                .min_by_key(|&(_, &v)| (cost(v), v))?;
            for &u in recent {
                near[u as usize * nodes + v as usize] += 1;
                near[v as usize * nodes + u as usize] += 1;
            }
            owners.push(v);
            remaining.remove(i);
        }
    }
    Some(owners)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loads(owners: &[Node], nodes: usize) -> Vec<usize> {
        let mut loads = vec![0; nodes];
        for &o in owners {
            loads[o as usize] += 1;
        }
        loads
    }

    #[test]
    fn constructions_fill_the_ring_and_balance_to_one() {
        for partitions in [1usize, 2, 8, 64, 256, 1024] {
            for nodes in 1..=partitions.min(70) {
                for window in 1..=5.min(nodes) {
                    let mut candidates = vec![stripes(
                        partitions,
                        nodes,
                        rounds(partitions, nodes, window),
                    )];
                    candidates.extend(mixed(partitions, nodes, window));
                    for owners in candidates {
                        assert_eq!(owners.len(), partitions, "{partitions} {nodes} {window}");
                        let l = loads(&owners, nodes);
                        let (min, max) = (l.iter().min().unwrap(), l.iter().max().unwrap());
                        assert!(max - min <= 1, "{partitions} {nodes} {window}: {l:?}");
                    }
                }
            }
        }
    }
}
