//! A tiny replicated-store simulator that produces realistic DVVSet clocks.
//!
//! Replicas are actors `0..R`; clients read from a replica (keeping its
//! context and values), write at a replica with the context of an earlier read
//! (or none, or the replica's own), and replicas sync pairwise. The simulator
//! records, per written value, whether some later write's context covered it,
//! which is the model the property tests check the clocks against.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::collections::BTreeSet;

use proptest::prelude::*;
use tessera_version::{DvvSet, VersionVector};

pub type Actor = u8;
pub type Value = u16;
pub type Clock = DvvSet<Actor, Value>;

/// Which causal context a write carries.
#[derive(Clone, Debug)]
pub enum Ctx {
    /// No context: supersedes nothing.
    Empty,
    /// The coordinating replica's own context, as the server does for a blind write.
    Own,
    /// The context of an earlier read (index taken modulo the number of reads so far).
    Read(usize),
}

#[derive(Clone, Debug)]
pub enum Op {
    Read(Actor),
    Write {
        replica: Actor,
        ctx: Ctx,
    },
    /// `to` takes `from`'s clock into its own; with `both`, `from` does too.
    Sync {
        from: Actor,
        to: Actor,
        both: bool,
    },
}

/// What a client saw in one read.
#[derive(Clone, Debug)]
pub struct Read {
    pub context: VersionVector<Actor>,
    pub values: BTreeSet<Value>,
}

pub struct Sim {
    pub replicas: Vec<Clock>,
    pub reads: Vec<Read>,
    /// Every value ever written, in write order.
    pub written: Vec<Value>,
    /// Values some write's context covered.
    pub superseded: BTreeSet<Value>,
    /// Every replica's clock after every op, for drawing related clocks.
    pub snapshots: Vec<Clock>,
    next_value: Value,
    /// Values wrap modulo this, so equal values under different dots happen.
    value_space: Option<Value>,
}

impl Sim {
    /// Unique values: needed whenever values identify writes.
    pub fn new(replicas: usize) -> Self {
        Self {
            replicas: vec![Clock::new(); replicas],
            reads: Vec::new(),
            written: Vec::new(),
            superseded: BTreeSet::new(),
            snapshots: Vec::new(),
            next_value: 0,
            value_space: None,
        }
    }

    /// Values drawn from a small space so that collisions happen.
    pub fn with_colliding_values(replicas: usize, space: Value) -> Self {
        Self {
            value_space: Some(space),
            ..Self::new(replicas)
        }
    }

    pub fn run(&mut self, ops: &[Op]) {
        for op in ops {
            self.apply(op);
        }
    }

    pub fn apply(&mut self, op: &Op) {
        match op {
            Op::Read(r) => {
                self.read(*r);
            }
            Op::Write { replica, ctx } => {
                self.write(*replica, ctx);
            }
            Op::Sync { from, to, both } => self.sync(*from, *to, *both),
        }
        self.snapshots.extend(self.replicas.iter().cloned());
    }

    pub fn read(&mut self, replica: Actor) -> Read {
        let clock = &self.replicas[usize::from(replica)];
        let read = Read {
            context: clock.join(),
            values: clock.values().into_iter().copied().collect(),
        };
        self.reads.push(read.clone());
        read
    }

    /// Writes a fresh value at `replica` and returns it.
    pub fn write(&mut self, replica: Actor, ctx: &Ctx) -> Value {
        let stored = &self.replicas[usize::from(replica)];
        let (context, covered) = match ctx {
            Ctx::Read(k) if !self.reads.is_empty() => {
                let read = &self.reads[k % self.reads.len()];
                (read.context.clone(), read.values.clone())
            }
            Ctx::Own => (
                stored.join(),
                stored.values().into_iter().copied().collect(),
            ),
            Ctx::Empty | Ctx::Read(_) => (VersionVector::new(), BTreeSet::new()),
        };
        let value = self.fresh_value();
        self.write_value(replica, &context, value);
        self.superseded.extend(covered);
        value
    }

    /// Writes `value` at `replica` with an explicit context (the caller tracks supersession).
    pub fn write_value(&mut self, replica: Actor, context: &VersionVector<Actor>, value: Value) {
        let stored = &mut self.replicas[usize::from(replica)];
        *stored = stored.write(context, &replica, value);
        self.written.push(value);
    }

    pub fn fresh_value(&mut self) -> Value {
        let v = self.next_value;
        self.next_value = self.next_value.wrapping_add(1);
        match self.value_space {
            Some(space) => v % space,
            None => v,
        }
    }

    pub fn sync(&mut self, from: Actor, to: Actor, both: bool) {
        let (from, to) = (usize::from(from), usize::from(to));
        let merged = self.replicas[to].sync(&self.replicas[from]);
        if both {
            self.replicas[from] = merged.clone();
        }
        self.replicas[to] = merged;
    }

    /// Every replica synced with every other: what anti-entropy converges to.
    pub fn converged(&self) -> Clock {
        Clock::sync_all(&self.replicas)
    }

    /// The model's answer: written values no write's context covered.
    pub fn expected_survivors(&self) -> BTreeSet<Value> {
        self.written
            .iter()
            .copied()
            .filter(|v| !self.superseded.contains(v))
            .collect()
    }
}

pub fn values_of(clock: &Clock) -> BTreeSet<Value> {
    clock.values().into_iter().copied().collect()
}

pub fn ctx_strategy() -> impl Strategy<Value = Ctx> {
    prop_oneof![
        1 => Just(Ctx::Empty),
        1 => Just(Ctx::Own),
        4 => any::<usize>().prop_map(Ctx::Read),
    ]
}

pub fn op_strategy(replicas: Actor) -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..replicas).prop_map(Op::Read),
        4 => (0..replicas, ctx_strategy()).prop_map(|(replica, ctx)| Op::Write { replica, ctx }),
        3 => (0..replicas, 0..replicas, any::<bool>())
            .prop_map(|(from, to, both)| Op::Sync { from, to, both }),
    ]
}

/// A history of up to `max_ops` operations over `replicas` replicas.
pub fn history(replicas: Actor, max_ops: usize) -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op_strategy(replicas), 0..max_ops)
}
