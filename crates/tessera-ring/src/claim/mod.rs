//! Claim: which physical node owns each of the Q partitions (Dynamo's strategy 3).
//!
//! # What a good ring is
//!
//! The preference list of a partition is its owner followed by the owners of the next partitions
//! clockwise, skipping repeats, until N distinct nodes. Claim aims for three things:
//!
//! 1. **Even load**: every node owns close to Q/S partitions.
//! 2. **Distinct windows**: the owners of any N consecutive partitions are distinct, so every
//!    preference list is exactly the owners of N consecutive partitions. (The walk never returns a
//!    repeated node, so a repeat does not break replication; it only makes one preference list
//!    reach a partition further, and the replica load slightly uneven.)
//! 3. **Small changes**: a join moves about Q/S partitions, to the newcomer; a leave moves the
//!    leaving node's partitions; a replacement moves exactly the old node's partitions, to the new
//!    one. Partitions move between two nodes that both stay only where the change itself cannot
//!    keep loads in band and windows distinct, and those extra moves are counted
//!    ([`move_counts`](crate::move_counts)).
//!
//! # What claim guarantees
//!
//! For every ring it makes, new or after any sequence of changes (checked by the tests, the
//! window and load rules for every ring of every random history):
//!
//! - **Loads.** Every node owns between `lo = max(1, min(⌈0.9·Q/S⌉, ⌊Q/S⌋))` and
//!   `hi = max(⌊1.1·Q/S⌋, ⌈Q/S⌉)` partitions: within ±10 % of Q/S, or at the floor or ceiling of
//!   Q/S where ±10 % holds no whole number. Once Q/S ≥ 10 that is exactly ±10 %; below, a load
//!   is within ±10 % or less than one partition from Q/S (so within 12.5 % once Q/S ≥ 8, and
//!   exactly 8 each for Q = 64 on 8 nodes). A new ring's loads differ by at most one.
//! - **Windows, with at least N nodes.** The owners of every N consecutive partitions are
//!   distinct whenever any ring of this Q and S can have that ([`possible`]): with S > N nodes
//!   once Q ≥ N(N − 1) (for every Q ≥ 32 with N ≤ 5), and with exactly N nodes when N divides Q,
//!   as a strict rotation. Below Q = N(N − 1) it takes N + ⌈r/q⌉ nodes, writing Q = q·N + r
//!   (Q = 8 with N = 5: 8 nodes). [`Ring::distinct_windows_guaranteed`] says which rings these
//!   are, and claim moves partitions between staying nodes if that is the only way.
//! - **Windows, with fewer than N nodes (N > S, which includes Q < N).** No window of N can be
//!   distinct. Every preference list of n ≥ S replicas holds every node whatever the owners, so
//!   claim never moves a partition between staying nodes for windows here: a change keeps windows
//!   of S distinct only as far as moving the joining or leaving nodes' partitions allows (a new
//!   ring has them whenever S divides Q). The same holds where S ≥ N but no ring can have
//!   distinct windows (S = N not dividing Q; tiny Q): repeats are unavoidable, and claim only
//!   avoids adding them with the partitions that move anyway.
//! - **Moves.** A join moves the newcomer's load to it, a leave the leaving node's load away from
//!   it (each at most `hi`, so at most ⌈1.2·Q/S⌉ once Q/S ≥ 8), a replacement exactly the old
//!   node's partitions; a batch of changes does both for each node. Moves between staying nodes
//!   come on top, only where windows must be distinct or a load left the band; how many depends
//!   on how many nodes the ring has for its window (see "What windows cost" below).
//! - **Determinism.** Claim sees nodes as indices in name order and uses no randomness: the same
//!   ring and change always give the same result, on every node that computes it, whatever order
//!   the nodes of a change are given in.
//!
//! # How: a new ring (`build.rs`)
//!
//! The ring is cut into rounds that each place every node once; `ceil(Q/S)·S − Q` node slots are
//! left out, spread evenly over rounds and nodes, so loads differ by at most one. With more than
//! `2w` nodes (w = min(N, S)) the order changes every round: the next partition goes to the node,
//! among those not yet placed this round and not among the last `w − 1` partitions, that has so
//! far been least often within a window of them. This spreads every node's neighbours over all
//! the others, which is what lets a later leave hand each freed partition to *some* node outside
//! its window while keeping loads even. With fewer nodes, plain stripes in name order are used
//! (with at least `w + 2` nodes, rounds of S − 1 whose left-out node changes slowly, so that a
//! leaving node's partition can go to its round's left-out node). A repair search that swaps
//! owners (loads unchanged) removes any repeat left where the ring wraps around, and the repairs
//! of a change (below) finish rings of few partitions.
//!
//! # How: a change (`change` below)
//!
//! Each step minimises one [`Score`](layout::Score), compared field by field: **band** (partitions
//! outside `[lo, hi]`, a hard limit), **conflicts** (pairs of partitions closer than the window
//! with the same owner), **squares** (the sum of squared loads, smallest when loads are even),
//! **moves** (partitions whose owner differs from the ring before the change).
//!
//! 1. **Leaving nodes** (`leave.rs`). Handing their partitions out is a transportation problem: a
//!    partition costs the repeats it would make (then how near the node's nearest other partition
//!    is), and a node's k-th extra partition costs its band and squared-load increase (convex). A
//!    minimum-cost flow with lexicographic costs finds the best hand-out exactly; a local search
//!    finishes freed partitions that sit within a window of each other.
//! 2. **Joining nodes** (`join.rs`), one at a time. Only the newcomer gains. It takes partitions
//!    that end repeats the ring already has, then, in one walk paced to land about Q/S apart,
//!    partitions of nodes that must give in any evenest outcome, then greedily whatever still
//!    improves the score, then a bounded descent over taking, giving back and trading. Its
//!    partitions stay at least a window apart, so a ring without repeats keeps none.
//! 3. **Settling** (`settle.rs`), only if a load is out of band, or a window that must be distinct
//!    repeats a node. The steps above cannot always avoid that: a freed partition's 2(N − 1)
//!    neighbours may be every other node (into fewer than 2N − 1 nodes), the band may leave it
//!    one node to go to, or the ring had repeats before (a ring of N nodes where N does not
//!    divide Q). Repairs run one at a time, each lowering (band, conflicts):
//!    - **ejection chains**: the shortest path of moves `a → b → … → e` through distinct nodes,
//!      each node taking one partition where it owns nothing else within a window (or giving up
//!      the one it does own there as the next move), so only the ends change load and no repeat
//!      is made; found by breadth-first search (Riak's claim moves one partition at a time in the
//!      same spirit, but restarts from a full rebalance when it fails);
//!    - with exactly N nodes, the **nearest strict rotation** (`rotation.rs`): the order of nodes
//!      that keeps the most owners, by the Hungarian algorithm;
//!    - where no chain exists (few nodes for the window, where every partition's window already
//!      holds every other node), a **stretch rewrite** (`rewrite.rs`): dynamic programming over
//!      the last N − 1 owners finds the fewest owner changes that make a stretch of the ring
//!      distinct, the stretch widened from 4N partitions to the whole ring until one exists, with
//!      more and more weight on evenness, then prices on the nodes it leaves out of band
//!      (Lagrangian rounds), until chains can put the loads back into band.
//!
//!    Moves in all three are counted against the ring before the change, so a partition that
//!    moves anyway (a leaving node's) moves again for free.
//!
//! # What windows cost
//!
//! Moves between staying nodes per change, from 10,000 random histories of up to 8 joins and
//! leaves (44,404 changes; Q in {64, 256, 1024}, N ≤ 5, up to 64 nodes), by the node count after
//! the change, in units of Q/S (S the larger node count):
//!
//! | nodes after     | changes with extra moves | most extra moves in one change              |
//! |-----------------|--------------------------|---------------------------------------------|
//! | fewer than N    | 0 of 1,382 (by rule)     | 0                                           |
//! | N, N divides Q  | 181 of 670               | 3.0·Q/S (a strict rotation; ≤ (N−1)/N·Q)    |
//! | N + 1 to 2N − 2 | 442 of 814               | 2.9·Q/S                                     |
//! | 2N − 1          | 35 of 536                | 0.4·Q/S with Q/S ≥ 8; 49 partitions at most |
//! | 2N or more      | 11 of 41,002             | 2 partitions                                |
//!
//! With few nodes for the window, repeats are structural: in a ring of N + 1 nodes with windows
//! of N, each window misses one node, so the nodes follow nearly the same order round after
//! round, and a ring that loses a node, or one whose order a history has mixed, can only end its
//! repeats by shifting whole stretches. The stretch rewrite finds the fewest changes for each
//! stretch, not the fewest for the whole ring (a whole-ring rewrite, tried while writing this,
//! was within about 10 % either way). With the default N = 3 this is a cluster of 4 nodes: from
//! a new 3-node ring over 256 partitions, adding n4 and then n5 moves 64 and 51 partitions and no
//! others; removing n2 from those 5 moves its 51 and 26 more, and removing n2 from the 4 none
//! more. Replacing a node ([`Ring::with_node_replaced`]) never costs extra moves.
//!
//! [`possible`]: layout::distinct_windows_possible
//! [`Ring::distinct_windows_guaranteed`]: crate::Ring::distinct_windows_guaranteed
//! [`Ring::with_node_replaced`]: crate::Ring::with_node_replaced

mod build;
mod flow;
mod join;
mod layout;
mod leave;
mod rewrite;
mod rotation;
mod search;
mod settle;

pub(crate) use build::build;
pub(crate) use layout::windows_required;

use layout::window;

use layout::{Layout, Node};

/// Owners after a change to the `nodes_before` nodes of `owners`: the `leaving` nodes (indices,
/// sorted, unique) leave and `joining` new nodes join. In the result the remaining nodes keep
/// their order, numbered from 0 (indices above a leaving node shift down), and the newcomers
/// follow, numbered in the order they joined. At least one node must remain or join.
///
/// The leaving nodes' partitions are handed out first (`leave.rs`), then each newcomer takes its
/// share (`join.rs`), moves priced against the ring before the change; then `settle.rs` repairs
/// what those steps could not, moving partitions between nodes that stay only where a load is
/// out of band or a window that must be distinct repeats a node.
pub(crate) fn change(
    owners: &[Node],
    nodes_before: usize,
    target_n: u32,
    leaving: &[Node],
    joining: usize,
) -> Vec<Node> {
    let partitions = owners.len();
    let remaining = nodes_before - leaving.len();
    if remaining == 0 {
        // Every partition moves anyway: the newcomers claim a new ring.
        return build(partitions, joining, target_n);
    }
    let (mut current, origin) = if leaving.is_empty() {
        (owners.to_vec(), owners.to_vec())
    } else {
        let (layout, origin) = leave::hand_out(owners, nodes_before, target_n, leaving);
        (layout.into_owners(), origin)
    };
    let mut nodes = remaining;
    for _ in 0..joining {
        current = join::join(current, &origin, nodes, target_n);
        nodes += 1;
    }
    let mut layout = Layout::new(current, nodes, window(target_n, nodes, partitions));
    settle::settle(&mut layout, &origin, target_n);
    layout.into_owners()
}
