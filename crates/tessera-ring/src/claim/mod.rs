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
//! 3. **Small changes**: a join moves partitions only *to* the newcomer, about Q/S of them; a
//!    leave moves only the leaving node's partitions. No partition ever moves between two nodes
//!    that both stay, so a change costs the least data streaming possible.
//!
//! Every step minimises one [`Score`](layout::Score), compared field by field:
//!
//! - **band**: partitions outside `[floor(0.9·Q/S), ceil(1.1·Q/S)]` (and at least 1), a hard limit;
//! - **conflicts**: pairs of partitions closer than the window `w = min(N, S)` with the same owner;
//! - **squares**: the sum of squared loads, smallest when loads are as even as they can be;
//! - **moves**: partitions whose owner changed.
//!
//! The band comes before the windows on purpose. Where the two cannot both hold (see below), a
//! node 10 % or more off its share costs every request it serves, while a repeat in a window costs
//! one preference list one extra partition of reach. Inside the band, windows come first and
//! evenness after.
//!
//! # A new ring (`build.rs`)
//!
//! The ring is cut into rounds that each place every node once; `ceil(Q/S)·S − Q` node slots are
//! left out, spread evenly over rounds and nodes, so loads differ by at most one. With more than
//! `2w` nodes the order changes every round: the next partition goes to the node, among those not
//! yet placed this round and not among the last `w − 1` partitions, that has so far been least
//! often within a window of them. This spreads every node's neighbours over all the others, which
//! is what lets a later leave hand each freed partition to *some* node outside its window while
//! keeping loads even. With fewer nodes, plain stripes in name order are used (with at least
//! `w + 2` nodes, rounds of S − 1 whose left-out node changes slowly, so that a leaving node's
//! partition can go to its round's left-out node). A repair search that swaps owners (loads
//! unchanged) removes any repeat left where the ring wraps around.
//!
//! Result, for every Q in {64, 256, 1024}, N ≤ 5 and S ≤ 64 (checked exhaustively by the tests):
//! loads within one partition of each other, and no repeated window whenever one is possible at
//! all (S > N, or S = N dividing Q: with exactly N nodes the ring must be a strict rotation).
//!
//! # A join (`join.rs`)
//!
//! Only the newcomer gains. It takes, in order:
//! 1. partitions that end repeats the ring already has (left by earlier leaves), most first;
//! 2. in one walk around the ring, paced to land about Q/S' apart, partitions of nodes that must
//!    give in any evenest outcome (water-filling from the most loaded down), never within a window
//!    of its own partitions;
//! 3. greedily, whatever partition still improves the score most, ties to an even grid;
//! 4. if the result is short of the best the loads allow, a bounded steepest descent over taking,
//!    giving back, and trading one taken partition for another.
//!
//! The newcomer's partitions stay at least `w` apart, so a ring without repeats keeps none.
//!
//! # A leave (`leave.rs`)
//!
//! Only the leaving node's partitions move. Handing them out is a transportation problem: a
//! partition costs the repeats it would make (then how near the node's nearest other partition
//! is), and a node's k-th extra partition costs its band and squared-load increase (convex). A
//! minimum-cost flow with lexicographic costs finds the best hand-out exactly.
//!
//! # What cannot be guaranteed, and why
//!
//! - **Fewer than N + 1 nodes.** With S ≤ N every preference list holds every node anyway; claim
//!   still keeps windows of `S` distinct where it can, which helps the ring when it grows.
//! - **A leave into fewer than 2N − 1 nodes.** A freed partition's 2(N − 1) neighbours may be all
//!   S − 1 remaining nodes (any plain round robin is like that), and then only moving partitions
//!   between staying nodes could avoid a repeat; claim never does that, so a window repeats until
//!   later joins take the repeating partitions first.
//! - **A leave into exactly 2N − 1 nodes** may have one node outside a freed partition's
//!   neighbourhood only, and when the band needs a node that is never that one, the band wins.
//!   Into 2N or more nodes each freed partition has at least two choices; in tens of thousands of
//!   random histories this never forced a repeat.
//!
//! # Determinism
//!
//! Claim sees nodes as indices in name order and uses no randomness: the same ring and change
//! always give the same result, on every node that computes it.

mod build;
mod flow;
mod join;
mod layout;
mod leave;
mod search;

pub(crate) use build::build;
pub(crate) use join::join;
pub(crate) use leave::leave;
