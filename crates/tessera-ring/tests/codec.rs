//! The ring's encoding: round trips, and hostile bytes are errors, never panics or broken rings.

mod support;

use proptest::prelude::*;
use support::*;
use tessera_ring::{PartitionScheme, Ring, RING_FORMAT_VERSION};

fn ring(q: u32, n: u32, s: usize, joins: usize) -> Ring {
    let scheme = PartitionScheme::new(q.into()).unwrap();
    let mut ring = Ring::new(scheme, names("n", s), n).unwrap();
    for j in 0..joins {
        ring = ring.with_node_added(format!("j{j}")).unwrap();
    }
    ring
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn round_trips(q in prop::sample::select(vec![32u32, 64, 256]), n in 1u32..=5, s in 1usize..=16, joins in 0usize..3) {
        let ring = ring(q, n, s, joins);
        let bytes = ring.encode();
        prop_assert_eq!(bytes[0], RING_FORMAT_VERSION);
        prop_assert_eq!(Ring::decode(&bytes), Ok(ring.clone()));
        let via_serde: Ring = postcard::from_bytes(&postcard::to_allocvec(&ring).unwrap()).unwrap();
        prop_assert_eq!(via_serde, ring);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic(body in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = Ring::decode(&body);
        let mut versioned = vec![RING_FORMAT_VERSION];
        versioned.extend(&body);
        if let Ok(ring) = Ring::decode(&versioned) {
            // Whatever decodes must be a ring that keeps every invariant.
            prop_assert!(check_ring(&ring).is_ok());
        }
    }

    #[test]
    fn damaged_rings_are_errors_or_valid(at in any::<prop::sample::Index>(), byte: u8, cut in any::<prop::sample::Index>()) {
        let bytes = ring(64, 3, 5, 1).encode();
        let mut flipped = bytes.clone();
        flipped[at.index(bytes.len())] = byte;
        if let Ok(ring) = Ring::decode(&flipped) {
            prop_assert!(check_ring(&ring).is_ok());
        }
        let truncated = &bytes[..cut.index(bytes.len())];
        prop_assert!(Ring::decode(truncated).is_err());
    }
}
