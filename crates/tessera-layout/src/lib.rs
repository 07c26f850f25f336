//! Which ring is in force, and how a cluster moves from one ring to the next. Pure: no I/O, no
//! clock, no randomness; the server drives it with gossip and RPCs.
//!
//! - [`Layout`]: the value committed at one epoch: the ring of that epoch and, while data moves to
//!   it, the ring of the epoch before. Every node that holds epoch E holds the same layout
//!   (encoded with a format version, [`Layout::encode`]).
//! - [`plan`]: what a change (add, remove, remove a dead node, replace) would do: the next layout,
//!   the partitions that move, the balance before and after.
//! - [`consensus`]: single-decree Paxos per epoch among the nodes of the current ring, so that two
//!   operators committing at once cannot both win: the commit of epoch E+1 is a compare-and-set on
//!   epoch E, and the loser learns which layout won.
//! - [`progress`]: the facts each node publishes about a move (it writes under the new epoch; it
//!   holds the partitions it receives; it reads from the new ring), and [`Route`], where a
//!   partition's reads and writes go given the layout and those facts.
//!
//! A move from ring A (epoch E) to ring B (epoch E+1) runs in three steps, each waiting for every
//! node of A and B (but nodes removed as dead):
//! 1. **ack**: every node writes under E+1: a write needs W acks among A's replicas *and* W among
//!    B's, so both sets hold every new write; a node publishes its ack only once the writes it
//!    planned under E have passed their deadline.
//! 2. **sync**: the nodes that join a partition's replica set pull it (for every table) from the
//!    node that leaves the set (from every surviving replica when that node is dead), then say
//!    so; once every joining node of a partition has, reads of it go to B's replicas.
//! 3. **read**: once a node sees every partition synced it reads from B everywhere and says so;
//!    once every node does, writes go to B alone, and nodes drop what they no longer replicate.
//!
//! Why this loses nothing: a write acknowledged before step 1 completed is on W of A's replicas;
//! B's replica set is A's with each leaving node replaced by a joining one that pulled the
//! leaving node's copy after step 1, so B's set holds it on W replicas too. A write after step 1
//! is on W of each set. Reads move to B only where B has everything, and writes leave A only
//! once nobody reads A.

pub mod consensus;
mod error;
mod layout;
pub mod plan;
pub mod progress;

pub use consensus::{Acceptor, Ballot, LayoutMessage, Proposer, ProposerOutcome, Rejection};
pub use error::LayoutError;
pub use layout::{Layout, LAYOUT_FORMAT_VERSION};
pub use plan::{plan, Change, NodeLoad, Plan, PlanSummary};
pub use progress::{NodeProgress, PartitionSet, Progress, Route};
pub use tessera_ring::{NodeId, PartitionId, Ring};
