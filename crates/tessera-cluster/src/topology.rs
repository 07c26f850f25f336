//! The rings in force, and the placement questions everything else asks them.
//!
//! One [`Topology`] per node holds the ring of the current epoch and, while a ring change is
//! under way, the next one (pending). Every placement question goes through it: the API's plan of
//! a request, the coordinator's availability check, and later streaming and anti-entropy, so that
//! all of them agree on where a partition lives at any moment, and a ring change is one swap of
//! an `Arc` here rather than something each of them notices on its own.
//!
//! For a partition and a replication factor N, a [`Placement`] gives:
//! - the **replicas**: the preference list of the current ring, which reads and writes count;
//! - the **fallbacks**: the nodes after them, which keep hints for replicas that are down;
//! - the **joining** nodes: replicas in the pending ring that are not replicas now. They must get
//!   every write while the partition moves to them (Cassandra's pending ranges), but do not count
//!   towards W or answer reads until the partition has switched.

use std::sync::{Arc, PoisonError, RwLock};

use tessera_ring::{PartitionId, PartitionScheme, Ring};

use crate::transport::NodeId;

/// Where one partition's data lives now; see the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    /// The epoch of the ring these replicas come from.
    pub epoch: u64,
    /// Replicas in preference order: at most N, fewer when the ring has fewer nodes.
    pub replicas: Vec<NodeId>,
    /// The ring's other nodes, in ring order: stand-ins for down replicas (sloppy quorum).
    pub fallbacks: Vec<NodeId>,
    /// Replicas of the pending ring that are not replicas now.
    pub joining: Vec<NodeId>,
}

/// The current ring and, during a change, the pending one.
#[derive(Clone, Debug)]
pub struct Rings {
    /// The ring reads and writes count on.
    pub current: Arc<Ring>,
    /// The ring being moved to, if a change is under way.
    pub pending: Option<Arc<Ring>>,
}

/// The node's rings; cheap to read from any thread (one `Arc` clone under a read lock).
#[derive(Debug)]
pub struct Topology {
    rings: RwLock<Arc<Rings>>,
}

impl Topology {
    /// A topology whose current ring is `ring`, with no change under way.
    pub fn new(ring: Ring) -> Self {
        Self {
            rings: RwLock::new(Arc::new(Rings {
                current: Arc::new(ring),
                pending: None,
            })),
        }
    }

    /// The rings as of now. Hold the returned `Arc` for a consistent view across several
    /// questions.
    pub fn rings(&self) -> Arc<Rings> {
        // Only `Arc`s live under the lock and nothing panics holding it.
        self.rings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The current ring.
    pub fn current(&self) -> Arc<Ring> {
        self.rings().current.clone()
    }

    /// How the token space is cut (the same for every ring of a cluster).
    pub fn scheme(&self) -> PartitionScheme {
        self.rings().current.scheme()
    }

    /// Makes `ring` current, keeping a pending ring only if it is newer.
    pub fn set_current(&self, ring: Ring) {
        let mut rings = self.rings.write().unwrap_or_else(PoisonError::into_inner);
        let pending = rings
            .pending
            .clone()
            .filter(|pending| pending.epoch() > ring.epoch());
        *rings = Arc::new(Rings {
            current: Arc::new(ring),
            pending,
        });
    }

    /// Starts (`Some`) or ends (`None`) a ring change.
    pub fn set_pending(&self, ring: Option<Ring>) {
        let mut rings = self.rings.write().unwrap_or_else(PoisonError::into_inner);
        *rings = Arc::new(Rings {
            current: rings.current.clone(),
            pending: ring.map(Arc::new),
        });
    }

    /// Where partition `partition` lives for a table of replication `n`. Empty for a partition
    /// outside the ring's scheme (a request naming one is refused by its caller).
    pub fn placement(&self, partition: PartitionId, n: u32) -> Placement {
        self.rings().placement(partition, n)
    }
}

impl Rings {
    /// [`Topology::placement`] over this view.
    pub fn placement(&self, partition: PartitionId, n: u32) -> Placement {
        let current = &self.current;
        if u32::from(partition) >= current.scheme().count() {
            return Placement {
                epoch: current.epoch(),
                ..Placement::default()
            };
        }
        let n = n as usize;
        let replicas = current.preference_list(partition, n);
        let joining = match &self.pending {
            Some(pending) if u32::from(partition) < pending.scheme().count() => pending
                .preference_list(partition, n)
                .into_iter()
                .filter(|node| !replicas.contains(node))
                .collect(),
            _ => Vec::new(),
        };
        Placement {
            epoch: current.epoch(),
            fallbacks: current.fallbacks(partition, n),
            replicas,
            joining,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(nodes: &[&str]) -> Ring {
        Ring::new(
            PartitionScheme::new(16).unwrap(),
            nodes.iter().map(|n| n.to_string()),
            3,
        )
        .unwrap()
    }

    #[test]
    fn placement_is_the_current_rings_preference_list_and_fallbacks() {
        let current = ring(&["a", "b", "c", "d"]);
        let topology = Topology::new(current.clone());
        for p in 0..16 {
            let placement = topology.placement(p, 3);
            assert_eq!(placement.replicas, current.preference_list(p, 3));
            assert_eq!(placement.fallbacks, current.fallbacks(p, 3));
            assert!(placement.joining.is_empty());
            assert_eq!(placement.epoch, current.epoch());
        }
    }

    #[test]
    fn a_pending_ring_adds_its_new_replicas_as_joining() {
        let current = ring(&["a", "b", "c"]);
        let next = current.with_node_added("d".to_owned()).unwrap();
        let topology = Topology::new(current.clone());
        topology.set_pending(Some(next.clone()));
        let mut joined = 0;
        for p in 0..16 {
            let placement = topology.placement(p, 3);
            assert_eq!(placement.replicas, current.preference_list(p, 3));
            let expected: Vec<_> = next
                .preference_list(p, 3)
                .into_iter()
                .filter(|n| !placement.replicas.contains(n))
                .collect();
            assert_eq!(placement.joining, expected);
            joined += placement.joining.len();
        }
        assert!(joined > 0, "d takes some partitions");
        // Making the pending ring current ends the change.
        topology.set_current(next.clone());
        assert!(topology.rings().pending.is_none());
        assert_eq!(topology.current().epoch(), next.epoch());
    }

    #[test]
    fn a_partition_outside_the_scheme_has_no_replicas() {
        let topology = Topology::new(ring(&["a"]));
        assert!(topology.placement(16, 3).replicas.is_empty());
        assert!(topology.placement(u16::MAX, 3).fallbacks.is_empty());
    }
}
