//! Algebraic laws of DVVSet on realistic clocks (drawn from simulated histories):
//! sync is a join-semilattice merge, and join/descends/less agree with it.

mod sim;

use proptest::prelude::*;
use proptest::sample::Index;
use sim::{history, values_of, Clock, Sim};
use tessera_version::DvvSet;

/// Three related clocks: snapshots of replicas somewhere in one simulated history.
fn three_clocks() -> impl Strategy<Value = (Clock, Clock, Clock)> {
    (
        2u8..=4,
        any::<u64>(),
        any::<Index>(),
        any::<Index>(),
        any::<Index>(),
    )
        .prop_flat_map(|(replicas, seed, i, j, k)| {
            history(replicas, 40).prop_map(move |ops| {
                // Values collide (mod 5) so equal values under different dots are exercised.
                let mut sim =
                    Sim::with_colliding_values(usize::from(replicas), 5 + (seed % 3) as u16);
                sim.run(&ops);
                let pool = if sim.snapshots.is_empty() {
                    sim.replicas.clone()
                } else {
                    sim.snapshots.clone()
                };
                (
                    i.get(&pool).clone(),
                    j.get(&pool).clone(),
                    k.get(&pool).clone(),
                )
            })
        })
}

proptest! {
    #[test]
    fn sync_is_commutative((a, b, _c) in three_clocks()) {
        prop_assert_eq!(a.sync(&b), b.sync(&a));
    }

    #[test]
    fn sync_is_associative((a, b, c) in three_clocks()) {
        prop_assert_eq!(a.sync(&b).sync(&c), a.sync(&b.sync(&c)));
    }

    #[test]
    fn sync_is_idempotent((a, b, _c) in three_clocks()) {
        prop_assert_eq!(a.sync(&a), a.clone());
        let ab = a.sync(&b);
        prop_assert_eq!(ab.sync(&b), ab.clone());
        prop_assert_eq!(ab.sync(&a), ab);
    }

    #[test]
    fn sync_all_ignores_order((a, b, c) in three_clocks()) {
        prop_assert_eq!(Clock::sync_all([&a, &b, &c]), Clock::sync_all([&c, &a, &b]));
        prop_assert_eq!(Clock::sync_all([&a]), a);
    }

    #[test]
    fn sync_descends_both_inputs((a, b, _c) in three_clocks()) {
        let ab = a.sync(&b);
        prop_assert!(ab.descends(&a));
        prop_assert!(ab.descends(&b));
        prop_assert!(!ab.less(&a));
        prop_assert!(!ab.less(&b));
    }

    #[test]
    fn join_of_sync_is_merge_of_joins((a, b, _c) in three_clocks()) {
        let mut merged = a.join();
        merged.merge(&b.join());
        prop_assert_eq!(a.sync(&b).join(), merged);
    }

    #[test]
    fn less_is_a_strict_order_consistent_with_descends((a, b, c) in three_clocks()) {
        prop_assert!(!a.less(&a));
        prop_assert!(!(a.less(&b) && b.less(&a)));
        if a.less(&b) && b.less(&c) {
            prop_assert!(a.less(&c));
        }
        prop_assert_eq!(a.less(&b), b.descends(&a) && !a.descends(&b));
        prop_assert_eq!(a.descends(&b), b.join().iter().all(|(actor, n)| a.join().get(actor) >= n));
        prop_assert_eq!(a.descends(&b), a.join().descends(&b.join()));
    }

    #[test]
    fn dominated_clock_adds_nothing((a, b, _c) in three_clocks()) {
        if a.less(&b) {
            // A strictly older clock's values are all in the newer one or superseded by it.
            prop_assert_eq!(b.sync(&a), b.clone());
        }
    }

    #[test]
    fn retain_values_removes_values_but_keeps_join((a, b, _c) in three_clocks(), parity in 0u16..2) {
        let mut purged = a.clone();
        purged.retain_values(|v| v % 2 != parity);
        prop_assert_eq!(purged.join(), a.join());
        let expected: Vec<&u16> = a.values().into_iter().filter(|v| *v % 2 != parity).collect();
        prop_assert_eq!(purged.values(), expected);
        prop_assert_eq!(purged.sibling_count(), purged.values().len());
        // Purging the same values everywhere commutes with syncing.
        let mut purged_b = b.clone();
        purged_b.retain_values(|v| v % 2 != parity);
        let mut purged_sync = a.sync(&b);
        purged_sync.retain_values(|v| v % 2 != parity);
        prop_assert_eq!(purged.sync(&purged_b), purged_sync);
        prop_assert_eq!(purged.sync(&purged_b), purged_b.sync(&purged));
    }

    #[test]
    fn serde_round_trip((a, _b, _c) in three_clocks()) {
        let bytes = postcard::to_allocvec(&a).unwrap();
        prop_assert_eq!(postcard::from_bytes::<Clock>(&bytes).unwrap(), a.clone());
        let mut purged = a.clone();
        purged.retain_values(|v| v % 3 == 0);
        let bytes = postcard::to_allocvec(&purged).unwrap();
        prop_assert_eq!(postcard::from_bytes::<Clock>(&bytes).unwrap(), purged);
    }
}

proptest! {
    /// With unique values: once a replica purges a value, syncing with replicas that
    /// still hold it does not bring it back.
    #[test]
    fn purged_values_stay_purged(
        ops in history(3, 40),
        replica in 0usize..3,
        parity in 0u16..2,
    ) {
        let mut sim = Sim::new(3);
        sim.run(&ops);
        let mut purged = sim.replicas[replica].clone();
        let removed: Vec<u16> = values_of(&purged).into_iter().filter(|v| v % 2 == parity).collect();
        purged.retain_values(|v| v % 2 != parity);
        let everything = DvvSet::sync_all(sim.replicas.iter().chain([&purged]));
        for v in removed {
            prop_assert!(!values_of(&everything).contains(&v), "purged value {} came back", v);
        }
    }
}
