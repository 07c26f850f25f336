//! The ring's wire and disk form: a format version byte, then postcard of [`RingRepr`].
//!
//! Owners are stored as indices into the sorted node list, so a ring of Q partitions costs about Q
//! bytes plus the names. Every decoded ring is validated (and serde deserialisation goes through
//! the same check), so a corrupt or hostile encoding is an error, never a panic or a broken ring.

use super::{NodeId, Ring};
use crate::{PartitionScheme, RingError};
use serde::{Deserialize, Serialize};

/// The format version byte that starts every encoded ring.
pub const RING_FORMAT_VERSION: u8 = 1;

/// The serialised fields of a [`Ring`], checked on the way back in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RingRepr {
    epoch: u64,
    partitions: u32,
    target_n: u32,
    nodes: Vec<NodeId>,
    owners: Vec<u32>,
}

impl From<Ring> for RingRepr {
    fn from(ring: Ring) -> RingRepr {
        RingRepr {
            epoch: ring.epoch,
            partitions: ring.scheme.count(),
            target_n: ring.target_n,
            nodes: ring.nodes,
            owners: ring.owners,
        }
    }
}

impl TryFrom<RingRepr> for Ring {
    type Error = RingError;

    fn try_from(r: RingRepr) -> Result<Ring, RingError> {
        let scheme = PartitionScheme::new(u64::from(r.partitions))?;
        if r.target_n == 0 {
            return Err(RingError::InvalidTargetN {
                target_n: r.target_n,
            });
        }
        if r.nodes.is_empty() {
            return Err(RingError::NoNodes);
        }
        if r.nodes[0].is_empty() {
            return Err(RingError::EmptyNodeId);
        }
        if let Some(i) = (1..r.nodes.len()).find(|&i| r.nodes[i - 1] >= r.nodes[i]) {
            return Err(RingError::NodesNotSorted {
                index: i,
                node: r.nodes[i].clone(),
            });
        }
        if r.owners.len() != r.partitions as usize {
            return Err(RingError::OwnerCountMismatch {
                owners: r.owners.len(),
                partitions: r.partitions,
            });
        }
        let mut owns = vec![false; r.nodes.len()];
        for (p, &index) in r.owners.iter().enumerate() {
            match owns.get_mut(index as usize) {
                Some(o) => *o = true,
                None => {
                    return Err(RingError::OwnerOutOfRange {
                        partition: p as u32,
                        index,
                        nodes: r.nodes.len(),
                    })
                }
            }
        }
        if let Some(idle) = owns.iter().position(|&o| !o) {
            return Err(RingError::NodeWithoutPartitions {
                node: r.nodes[idle].clone(),
            });
        }
        Ok(Ring {
            epoch: r.epoch,
            scheme,
            nodes: r.nodes,
            owners: r.owners,
            target_n: r.target_n,
        })
    }
}

impl Ring {
    /// The ring as bytes: [`RING_FORMAT_VERSION`], then postcard.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising strings and integers into a Vec cannot fail; an empty body would only make
        // `decode` report the ring as malformed, never a wrong ring.
        postcard::to_extend(&RingRepr::from(self.clone()), vec![RING_FORMAT_VERSION])
            .unwrap_or_else(|_| vec![RING_FORMAT_VERSION])
    }

    /// A ring from [`Ring::encode`]'s bytes. Never panics, whatever the input.
    pub fn decode(bytes: &[u8]) -> Result<Ring, RingError> {
        let Some((&version, body)) = bytes.split_first() else {
            return Err(RingError::EmptyEncoding);
        };
        if version != RING_FORMAT_VERSION {
            return Err(RingError::UnsupportedVersion {
                found: version,
                supported: RING_FORMAT_VERSION,
            });
        }
        let malformed = |reason: String| RingError::Malformed {
            len: bytes.len(),
            reason,
        };
        let (repr, rest) = postcard::take_from_bytes::<RingRepr>(body)
            .map_err(|e| malformed(format!("cannot decode the ring: {e}")))?;
        if !rest.is_empty() {
            return Err(malformed(format!(
                "{} trailing bytes after the ring",
                rest.len()
            )));
        }
        Ring::try_from(repr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> Ring {
        let scheme = PartitionScheme::new(16).unwrap();
        Ring::new(scheme, ["a", "b", "c"].map(String::from), 3).unwrap()
    }

    #[test]
    fn layout_is_version_byte_then_postcard() {
        let ring = ring();
        let bytes = ring.encode();
        assert_eq!(bytes[0], RING_FORMAT_VERSION);
        assert_eq!(
            postcard::from_bytes::<Ring>(&bytes[1..]).unwrap(),
            ring.clone()
        );
        assert_eq!(Ring::decode(&bytes), Ok(ring));
    }

    #[test]
    fn rejects_inconsistent_rings() {
        let good = RingRepr::from(ring());
        type Expect = fn(&RingError) -> bool;
        let cases: Vec<(RingRepr, Expect)> = vec![
            (
                RingRepr {
                    partitions: 15,
                    ..good.clone()
                },
                |e| matches!(e, RingError::InvalidPartitionCount { .. }),
            ),
            (
                RingRepr {
                    target_n: 0,
                    ..good.clone()
                },
                |e| matches!(e, RingError::InvalidTargetN { .. }),
            ),
            (
                RingRepr {
                    nodes: vec![],
                    ..good.clone()
                },
                |e| matches!(e, RingError::NoNodes),
            ),
            (
                RingRepr {
                    nodes: ["b", "a", "c"].map(String::from).to_vec(),
                    ..good.clone()
                },
                |e| matches!(e, RingError::NodesNotSorted { index: 1, .. }),
            ),
            (
                RingRepr {
                    owners: vec![0; 15],
                    ..good.clone()
                },
                |e| matches!(e, RingError::OwnerCountMismatch { owners: 15, .. }),
            ),
            (
                RingRepr {
                    owners: (0..16).map(|p| if p == 5 { 3 } else { p % 3 }).collect(),
                    ..good.clone()
                },
                |e| matches!(e, RingError::OwnerOutOfRange { partition: 5, .. }),
            ),
            (
                RingRepr {
                    owners: (0..16).map(|p| p % 2).collect(),
                    ..good.clone()
                },
                |e| matches!(e, RingError::NodeWithoutPartitions { .. }),
            ),
        ];
        for (repr, expected) in cases {
            let mut bytes = vec![RING_FORMAT_VERSION];
            bytes.extend(postcard::to_allocvec(&repr).unwrap());
            let err = Ring::decode(&bytes).unwrap_err();
            assert!(expected(&err), "{err}");
            assert!(postcard::from_bytes::<Ring>(&bytes[1..]).is_err());
        }
    }

    #[test]
    fn rejects_bad_framing() {
        let bytes = ring().encode();
        assert_eq!(Ring::decode(&[]), Err(RingError::EmptyEncoding));
        let mut versioned = bytes.clone();
        versioned[0] = 2;
        assert!(matches!(
            Ring::decode(&versioned),
            Err(RingError::UnsupportedVersion { found: 2, .. })
        ));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            Ring::decode(&trailing),
            Err(RingError::Malformed { .. })
        ));
        assert!(matches!(
            Ring::decode(&bytes[..bytes.len() - 1]),
            Err(RingError::Malformed { .. })
        ));
    }
}
