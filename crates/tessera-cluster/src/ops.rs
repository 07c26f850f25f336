//! What callers ask the coordinator and what it answers.
//!
//! Consistency levels are already numbers here (the server resolves `quorum`
//! and friends), and the replica list is the key's preference list, computed
//! by the caller from the ring, as are the fallbacks that stand in for
//! replicas that are down (sloppy quorum).
//!
//! The fields added for sloppy quorum are `#[serde(default)]`, which helps
//! self-describing encodings only: postcard is positional, so nodes on both
//! sides of a `Coordinate` must run this release.

use serde::{Deserialize, Serialize};
use tessera_storage::{Cell, Context, RowKey};

use crate::error::CoordinatorError;
use crate::transport::NodeId;

/// Checks what every request needs: a replica list without duplicates and
/// `1 <= required <= N`.
pub(crate) fn validate(required: u32, replicas: &[NodeId]) -> Result<(), CoordinatorError> {
    let invalid = |reason: String| Err(CoordinatorError::InvalidRequest { reason });
    if replicas.is_empty() {
        return invalid("the replica list is empty".to_owned());
    }
    for (i, node) in replicas.iter().enumerate() {
        if replicas[..i].contains(node) {
            return invalid(format!("replica {node} appears more than once"));
        }
    }
    if required == 0 || required as usize > replicas.len() {
        return invalid(format!(
            "{required} replicas required, but the replica list has {}",
            replicas.len()
        ));
    }
    Ok(())
}

/// A client write of one or more cells of one row, applied atomically on each replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteRequest {
    /// The row.
    #[serde(with = "crate::wire::RowKeyDef")]
    pub row: RowKey,
    /// The cells, each column at most once.
    pub writes: Vec<ClientWrite>,
    /// W: acks needed, the coordinator's own included.
    pub required: u32,
    /// The preference list, N long, computed by the caller from the ring.
    pub replicas: Vec<NodeId>,
    /// The ring's nodes after the preference list, in ring order (none of
    /// them a replica): stand-ins for replicas that are down or fail, each
    /// keeping a hint for at most one replica (sloppy quorum). Empty
    /// disables stand-ins.
    #[serde(default)]
    pub fallbacks: Vec<NodeId>,
    /// Count only real replicas towards W (Riak's `pw`): hints are still
    /// stored for failed replicas, but do not make the write succeed.
    #[serde(default)]
    pub strict: bool,
    /// While data moves between rings, the other replica set: the write also
    /// needs W acks among these nodes (real ones: hints do not count here), so
    /// that both sets hold it. Empty otherwise.
    #[serde(default)]
    pub also: Vec<NodeId>,
}

impl WriteRequest {
    /// Every node that gets a copy: the replicas, then the other set's nodes that are not
    /// replicas.
    pub fn targets(&self) -> Vec<NodeId> {
        let mut targets = self.replicas.clone();
        targets.extend(
            self.also
                .iter()
                .filter(|n| !self.replicas.contains(n))
                .cloned(),
        );
        targets
    }
}

/// One cell of a [`WriteRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientWrite {
    /// The column.
    pub column: Vec<u8>,
    /// The new value; `None` deletes (writes a tombstone).
    pub value: Option<Vec<u8>>,
    /// The causal context of the client's read; `None` supersedes what the
    /// coordinating replica holds when the write arrives.
    pub context: Option<Context>,
}

/// An acknowledged write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteOutcome {
    /// The cells as the coordinator stored them (the new dot included), in write order.
    pub cells: Vec<(Vec<u8>, Cell)>,
    /// Replicas that had acknowledged when the coordinator answered, itself
    /// included, counting replicas whose copy a fallback took as a hint.
    pub acked: u32,
    /// W.
    pub required: u32,
    /// N, the length of the replica list.
    pub replication: u32,
    /// The replica that coordinated (minted the dot); differs from the
    /// receiving node when the write was forwarded.
    pub coordinator: NodeId,
    /// How many of `acked` were hints stored on fallbacks for replicas that
    /// were down or failed (always 0 for a strict write).
    #[serde(default)]
    pub hinted: u32,
}

/// A successful quorum read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadOutcome<T> {
    /// The merged answer.
    pub value: T,
    /// Replicas that had answered when the coordinator answered (the fewest
    /// over the rounds of a paged row read).
    pub acked: u32,
    /// R.
    pub required: u32,
    /// N, the length of the replica list.
    pub replication: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_problem() {
        let nodes = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert!(validate(2, &nodes(&["a", "b", "c"])).is_ok());
        assert!(validate(3, &nodes(&["a", "b", "c"])).is_ok());
        for (required, replicas, needle) in [
            (1, nodes(&[]), "empty"),
            (
                1,
                nodes(&["a", "b", "a"]),
                "replica a appears more than once",
            ),
            (0, nodes(&["a"]), "0 replicas required"),
            (
                4,
                nodes(&["a", "b", "c"]),
                "4 replicas required, but the replica list has 3",
            ),
        ] {
            match validate(required, &replicas) {
                Err(CoordinatorError::InvalidRequest { reason }) => {
                    assert!(reason.contains(needle), "{reason}")
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
