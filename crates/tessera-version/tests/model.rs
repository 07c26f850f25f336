//! Model-based tests of the write path: what a read's context supersedes, what
//! survives as siblings, and that no acknowledged write is ever dropped.

mod sim;

use std::collections::BTreeSet;

use proptest::prelude::*;
use sim::{history, values_of, Ctx, Sim};
use tessera_version::VersionVector;

proptest! {
    /// After any history and a full sync, the surviving values are exactly the
    /// written values that no write's context covered.
    #[test]
    fn nothing_acknowledged_is_dropped(replicas in 1u8..=4, ops in history(4, 60)) {
        let mut sim = Sim::new(usize::from(replicas));
        let ops: Vec<_> = ops.into_iter().map(|op| clamp(op, replicas)).collect();
        sim.run(&ops);
        let converged = sim.converged();
        prop_assert_eq!(values_of(&converged), sim.expected_survivors());
        // No value is duplicated as a sibling.
        prop_assert_eq!(converged.sibling_count(), sim.expected_survivors().len());
        // Replicas hold only values that were written.
        let written: BTreeSet<u16> = sim.written.iter().copied().collect();
        for clock in &sim.replicas {
            prop_assert!(values_of(clock).is_subset(&written));
        }
    }

    /// A write with the context of a read removes exactly what the read saw;
    /// values written concurrently (not in the read) survive.
    #[test]
    fn read_context_supersedes_exactly_what_the_read_saw(
        ops in history(3, 30),
        reader in 0u8..3,
        concurrent in prop::collection::vec((0u8..3, prop_oneof![Just(Ctx::Empty), Just(Ctx::Own)]), 0..5),
        syncs in prop::collection::vec((0u8..3, 0u8..3), 0..4),
        writer in 0u8..3,
    ) {
        let mut sim = Sim::new(3);
        sim.run(&ops);
        let read = sim.read(reader);
        let mut concurrent_values = BTreeSet::new();
        for (replica, ctx) in &concurrent {
            concurrent_values.insert(sim.write(*replica, ctx));
        }
        for (from, to) in syncs {
            sim.sync(from, to, true);
        }
        let survivors_before_write = sim.expected_survivors();
        let value = sim.fresh_value();
        sim.write_value(writer, &read.context, value);
        let final_values = values_of(&sim.converged());
        // What the read saw is gone.
        prop_assert!(final_values.is_disjoint(&read.values));
        // The new value is there, and so is everything alive that the read did not see.
        prop_assert!(final_values.contains(&value));
        let expected: BTreeSet<u16> = survivors_before_write
            .difference(&read.values)
            .copied()
            .chain([value])
            .collect();
        prop_assert_eq!(&final_values, &expected);
        for v in &concurrent_values {
            if survivors_before_write.contains(v) {
                prop_assert!(final_values.contains(v), "concurrent value {} lost", v);
            }
        }
    }

    /// Two writes with the same context, or one with a stale context after
    /// another, at the same or different replicas, are kept as siblings.
    #[test]
    fn concurrent_updates_produce_siblings(
        ops in history(3, 30),
        reader in 0u8..3,
        first in 0u8..3,
        second in 0u8..3,
        stale in any::<bool>(),
        earlier in any::<prop::sample::Index>(),
    ) {
        let mut sim = Sim::new(3);
        sim.run(&ops);
        let earlier_reads = sim.reads.clone();
        let read = sim.read(reader);
        let v1 = sim.fresh_value();
        sim.write_value(first, &read.context, v1);
        // Stale: a context from some read before `read` (or none at all).
        let context = if stale {
            if earlier_reads.is_empty() {
                VersionVector::new()
            } else {
                earlier.get(&earlier_reads).context.clone()
            }
        } else {
            read.context.clone()
        };
        let v2 = sim.fresh_value();
        sim.write_value(second, &context, v2);
        let converged = sim.converged();
        let values = values_of(&converged);
        prop_assert!(values.contains(&v1) && values.contains(&v2));
        prop_assert!(converged.sibling_count() >= 2);
        // Both writes are in the history of the converged clock, and neither dominates the other.
        let (a, b) = (sim.replicas[usize::from(first)].clone(), sim.replicas[usize::from(second)].clone());
        if first != second {
            prop_assert!(!a.less(&b) && !b.less(&a));
        }
    }
}

/// Maps an op drawn for 4 replicas onto `replicas` replicas.
fn clamp(op: sim::Op, replicas: u8) -> sim::Op {
    use sim::Op;
    match op {
        Op::Read(r) => Op::Read(r % replicas),
        Op::Write { replica, ctx } => Op::Write {
            replica: replica % replicas,
            ctx,
        },
        Op::Sync { from, to, both } => Op::Sync {
            from: from % replicas,
            to: to % replicas,
            both,
        },
    }
}

#[test]
fn sequential_blind_writes_at_one_replica_overwrite() {
    let mut sim = Sim::new(2);
    let a = sim.write(0, &Ctx::Own);
    let b = sim.write(0, &Ctx::Own);
    assert_eq!(values_of(&sim.replicas[0]), BTreeSet::from([b]));
    assert_ne!(a, b);
    // Without any context both survive.
    let c = sim.write(1, &Ctx::Empty);
    let d = sim.write(1, &Ctx::Empty);
    assert_eq!(values_of(&sim.converged()), BTreeSet::from([b, c, d]));
}

#[test]
fn resolving_siblings_with_their_context_leaves_one_value() {
    let mut sim = Sim::new(3);
    sim.write(0, &Ctx::Empty);
    sim.write(1, &Ctx::Empty);
    sim.write(2, &Ctx::Empty);
    sim.sync(0, 1, true);
    sim.sync(1, 2, true);
    assert_eq!(sim.replicas[2].sibling_count(), 3);
    let read = sim.read(2);
    let v = sim.write(0, &Ctx::Read(0));
    assert_eq!(read.values.len(), 3);
    assert_eq!(values_of(&sim.converged()), BTreeSet::from([v]));
}
