//! The value committed at one epoch.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use tessera_ring::{NodeId, PartitionId, Ring};

use crate::error::LayoutError;

/// Version of [`Layout::encode`]'s format: a version byte, then postcard.
pub const LAYOUT_FORMAT_VERSION: u8 = 1;

/// The layout committed at one epoch: its ring, and while data moves to it, the ring before.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    ring: Ring,
    previous: Option<Ring>,
    /// Nodes this epoch removed as dead: never waited for, never a source.
    dead: BTreeSet<NodeId>,
}

impl Layout {
    /// The first layout of a cluster: `ring`, with nothing to move from.
    pub fn first(ring: Ring) -> Self {
        Self {
            ring,
            previous: None,
            dead: BTreeSet::new(),
        }
    }

    /// The layout that moves from `self`'s ring to `ring`, whose epoch must be one more;
    /// `dead` are nodes of `self`'s ring removed without their data.
    pub fn moving_to(&self, ring: Ring, dead: BTreeSet<NodeId>) -> Result<Self, LayoutError> {
        let layout = Self {
            previous: Some(self.ring.clone()),
            ring,
            dead,
        };
        layout.check()?;
        Ok(layout)
    }

    /// Checks what no type can: epochs follow each other, rings share a scheme, dead nodes were
    /// in the previous ring and are not in this one.
    pub fn check(&self) -> Result<(), LayoutError> {
        let epoch = self.epoch();
        let inconsistent = |reason: String| Err(LayoutError::Inconsistent { epoch, reason });
        match &self.previous {
            None if !self.dead.is_empty() => {
                return inconsistent("a first layout names dead nodes".to_owned())
            }
            None => {}
            Some(previous) => {
                if previous.epoch().checked_add(1) != Some(epoch) {
                    return inconsistent(format!(
                        "the previous ring has epoch {}",
                        previous.epoch()
                    ));
                }
                if previous.scheme() != self.ring.scheme() {
                    return inconsistent("the rings have different partition counts".to_owned());
                }
                for node in &self.dead {
                    if !previous.contains(node) || self.ring.contains(node) {
                        return inconsistent(format!(
                            "dead node {node} must be in the previous ring only"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The epoch: that of this layout's ring.
    pub fn epoch(&self) -> u64 {
        self.ring.epoch()
    }

    /// The ring of this epoch.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// The ring data moves from, while it does.
    pub fn previous(&self) -> Option<&Ring> {
        self.previous.as_ref()
    }

    /// Whether this epoch moves data (it has a previous ring).
    pub fn is_move(&self) -> bool {
        self.previous.is_some()
    }

    /// Nodes removed as dead by this epoch.
    pub fn dead(&self) -> &BTreeSet<NodeId> {
        &self.dead
    }

    /// The nodes a move waits for: those of both rings, but the dead.
    pub fn participants(&self) -> BTreeSet<NodeId> {
        let mut nodes: BTreeSet<NodeId> = self.ring.nodes().cloned().collect();
        if let Some(previous) = &self.previous {
            nodes.extend(previous.nodes().cloned());
        }
        nodes.retain(|node| !self.dead.contains(node));
        nodes
    }

    /// Replicas of `partition` for replication `n`: in the previous ring (or this one when
    /// nothing moves) and in this one.
    pub fn replica_sets(&self, partition: PartitionId, n: u32) -> (Vec<NodeId>, Vec<NodeId>) {
        let n = n as usize;
        let new = self.ring.preference_list(partition, n);
        let old = match &self.previous {
            Some(previous) => previous.preference_list(partition, n),
            None => new.clone(),
        };
        (old, new)
    }

    /// The nodes that join `partition`'s replica set for replication `n`.
    pub fn joining(&self, partition: PartitionId, n: u32) -> Vec<NodeId> {
        let (old, new) = self.replica_sets(partition, n);
        new.into_iter().filter(|node| !old.contains(node)).collect()
    }

    /// Where `node`, joining `partition`'s replica set for replication `n`, pulls its copy from:
    /// the node it replaces in the set (the leaving node paired with it in preference-list
    /// order) when that node is not dead; otherwise every replica of the old set that is not
    /// dead, so that the copy holds whatever any surviving replica holds. Empty when `node` is
    /// not joining.
    pub fn sources(&self, partition: PartitionId, n: u32, node: &NodeId) -> Vec<NodeId> {
        let (old, new) = self.replica_sets(partition, n);
        let joining: Vec<&NodeId> = new.iter().filter(|x| !old.contains(x)).collect();
        let leaving: Vec<&NodeId> = old.iter().filter(|x| !new.contains(x)).collect();
        let Some(position) = joining.iter().position(|x| *x == node) else {
            return Vec::new();
        };
        match leaving.get(position) {
            Some(&paired) if !self.dead.contains(paired) => vec![paired.clone()],
            _ => old
                .into_iter()
                .filter(|x| !self.dead.contains(x) && x != node)
                .collect(),
        }
    }

    /// The version byte, then postcard.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![LAYOUT_FORMAT_VERSION];
        // A Layout holds only rings and names, which postcard always encodes.
        out.extend(postcard::to_allocvec(self).unwrap_or_default());
        out
    }

    /// Reads what [`Layout::encode`] wrote, checking it.
    pub fn decode(bytes: &[u8]) -> Result<Self, LayoutError> {
        let (&version, body) = bytes.split_first().ok_or(LayoutError::Empty)?;
        if version != LAYOUT_FORMAT_VERSION {
            return Err(LayoutError::UnsupportedVersion {
                found: version,
                supported: LAYOUT_FORMAT_VERSION,
            });
        }
        let layout: Layout = postcard::from_bytes(body).map_err(|e| LayoutError::Malformed {
            len: bytes.len(),
            reason: e.to_string(),
        })?;
        layout.check()?;
        Ok(layout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_ring::PartitionScheme;

    fn ring(nodes: &[&str]) -> Ring {
        Ring::new(
            PartitionScheme::new(16).unwrap(),
            nodes.iter().map(|n| n.to_string()),
            3,
        )
        .unwrap()
    }

    #[test]
    fn encodes_and_checks() {
        let first = Layout::first(ring(&["a", "b", "c"]));
        assert_eq!(Layout::decode(&first.encode()).unwrap(), first);
        let next = first
            .moving_to(
                first.ring().with_node_added("d".into()).unwrap(),
                BTreeSet::new(),
            )
            .unwrap();
        assert_eq!(Layout::decode(&next.encode()).unwrap(), next);
        assert_eq!(next.epoch(), 2);
        assert!(matches!(Layout::decode(&[]), Err(LayoutError::Empty)));
        assert!(matches!(
            Layout::decode(&[9, 1, 2]),
            Err(LayoutError::UnsupportedVersion { found: 9, .. })
        ));
        let mut bytes = next.encode();
        bytes.truncate(bytes.len() / 2);
        assert!(matches!(
            Layout::decode(&bytes),
            Err(LayoutError::Malformed { .. })
        ));
        // Epochs must follow each other.
        let far = ring(&["a", "b"]);
        assert!(next.moving_to(far, BTreeSet::new()).is_err());
    }

    #[test]
    fn a_joining_node_pulls_from_the_node_it_replaces_or_from_every_survivor() {
        let first = Layout::first(ring(&["a", "b", "c", "d"]));
        let without_b = first.ring().with_node_removed(&"b".into()).unwrap();
        let live = first.moving_to(without_b.clone(), BTreeSet::new()).unwrap();
        let dead = first
            .moving_to(without_b, BTreeSet::from(["b".to_owned()]))
            .unwrap();
        let mut checked = 0;
        for p in 0..16 {
            for joiner in live.joining(p, 3) {
                let (old, new) = live.replica_sets(p, 3);
                // Decommission: the leaving node (b) is the one source.
                assert_eq!(
                    live.sources(p, 3, &joiner),
                    vec!["b".to_owned()],
                    "{old:?} -> {new:?}"
                );
                // Removed dead: every surviving old replica.
                let survivors: Vec<_> = old.iter().filter(|x| *x != "b").cloned().collect();
                assert_eq!(dead.sources(p, 3, &joiner), survivors);
                checked += 1;
            }
        }
        assert!(checked > 0);
        assert_eq!(
            dead.participants(),
            BTreeSet::from(["a".into(), "c".into(), "d".into()])
        );
        assert!(live.sources(0, 3, &"zz".to_owned()).is_empty());
    }
}
