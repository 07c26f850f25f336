//! The membership state machine: SWIM with Lifeguard, phi accrual and metadata gossip, no I/O.
//!
//! [`Swim`] is driven by its runtime with two calls and one query:
//!
//! - [`Swim::handle`] with every datagram that arrives on the membership socket, and the address it
//!   came from (replies go back to that address);
//! - [`Swim::tick`] at or soon after [`Swim::next_deadline`] (never more than
//!   `Config::max_tick_interval_ms` away), or simply every 50–100 ms; the runtime should handle
//!   the datagrams already queued before it ticks, so a probe is not judged on stale input.
//!
//! Each returns an [`Output`]: datagrams to send (already encoded, within `Config::max_payload`)
//! and [`crate::Event`]s. Time is whatever monotonic millisecond clock the runtime passes in, and
//! all randomness comes from the seed given to [`Swim::new`], so a run replays exactly.
//!
//! # How failure detection combines
//!
//! SWIM's own probing is the only thing that accuses: a member becomes Suspect when one of our
//! probes (direct ping, then ping-req through k relays) gets no answer, or when we hear that
//! another member suspects it. Phi accrual (fed by every message from a peer and every rise of its
//! gossip heartbeat) never accuses on its own: when a peer's phi crosses the threshold, that peer
//! gets an extra, out-of-turn probe (at most one per probe interval, and only while our local
//! health is perfect), so phi speeds up detection without adding false suspicions. The runtime can
//! also ask [`Swim::is_likely_dead`] to steer requests away from a replica before SWIM decides.

mod gossip;
mod probe;
mod send;
mod table;
#[cfg(test)]
mod tests;

use crate::broadcast::Broadcasts;
use crate::health::LocalHealth;
use crate::metadata::{Metadata, NodeKey, NodeState};
use crate::phi::PhiDetector;
use crate::probe_order::ProbeOrder;
use crate::suspicion::Suspicion;
use crate::{Body, Config, Counters, Member, MemberId, MembershipError, Message, Output, State};
use crate::{Update, MAX_DATAGRAM};
pub use probe::EXPEDITE_EVERY;
use probe::{Probe, Relay};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::{BTreeMap, BTreeSet};

/// The longest node id or address accepted for this process.
pub const MAX_ID_LEN: usize = 128;

/// When each periodic job next runs.
#[derive(Debug, Clone, Default)]
struct Timers {
    probe: u64,
    expedite: u64,
    gossip: u64,
    sync: u64,
    reconnect: u64,
    join: Option<u64>,
}

/// One process's membership: its view of the cluster and everything needed to keep it current.
#[derive(Debug)]
pub struct Swim {
    me: MemberId,
    incarnation: u64,
    left: bool,
    config: Config,
    rng: StdRng,
    /// Every other member known, by node id, including remembered Dead and Left ones.
    members: BTreeMap<String, Member>,
    /// The Dead and Left among `members`.
    gone: BTreeSet<String>,
    suspicions: BTreeMap<String, Suspicion>,
    detectors: BTreeMap<String, PhiDetector>,
    order: ProbeOrder,
    broadcasts: Broadcasts,
    health: LocalHealth,
    probes: Vec<Probe>,
    /// For each member given an expedited probe, its last arrival then: one per silence.
    expedited: BTreeMap<String, u64>,
    relays: BTreeMap<u64, Relay>,
    metadata: Metadata,
    seeds: Vec<String>,
    next_seq: u64,
    timers: Timers,
    last_tick: Option<u64>,
    now: u64,
    counters: Counters,
    out: Output,
}

impl Swim {
    /// A process that knows nobody yet; call [`Swim::join`] (unless it is the first member) and
    /// start ticking.
    pub fn new(me: MemberId, config: Config, seed: u64) -> Result<Swim, MembershipError> {
        config.validate()?;
        for (what, s) in [("node id", &me.node), ("address", &me.addr)] {
            if s.is_empty() || s.len() > MAX_ID_LEN {
                return Err(MembershipError::InvalidIdentity {
                    reason: format!("{what} must be 1 to {MAX_ID_LEN} bytes, got {}", s.len()),
                });
            }
        }
        Ok(Swim {
            metadata: Metadata::new(NodeKey::new(me.node.clone(), me.generation)),
            health: LocalHealth::new(config.max_local_health),
            me,
            incarnation: 0,
            left: false,
            config,
            rng: StdRng::seed_from_u64(seed),
            members: BTreeMap::new(),
            gone: BTreeSet::new(),
            suspicions: BTreeMap::new(),
            detectors: BTreeMap::new(),
            order: ProbeOrder::default(),
            broadcasts: Broadcasts::default(),
            probes: Vec::new(),
            expedited: BTreeMap::new(),
            relays: BTreeMap::new(),
            seeds: Vec::new(),
            next_seq: 0,
            timers: Timers::default(),
            last_tick: None,
            now: 0,
            counters: Counters::default(),
            out: Output::default(),
        })
    }

    /// Joins through `seeds`, membership addresses of any existing members (their ids need not be
    /// known). Each is sent a JOIN and answers with its member list; while no other live member
    /// is known, the JOINs are repeated every `join_retry_interval_ms`. Calling it again replaces
    /// the seeds.
    pub fn join<S: Into<String>>(
        &mut self,
        seeds: impl IntoIterator<Item = S>,
        now: u64,
    ) -> Output {
        let now = self.observe(now);
        let mut list: Vec<String> = Vec::new();
        for s in seeds {
            let s = s.into();
            if s != self.me.addr && !list.contains(&s) {
                list.push(s);
            }
        }
        self.seeds = list;
        self.send_joins();
        self.timers.join =
            (!self.seeds.is_empty()).then(|| now + self.config.join_retry_interval_ms);
        self.take()
    }

    /// Leaves gracefully: every live member is told directly, with an incarnation above any
    /// earlier claim, and the rumour is disseminated too. Afterwards the process only answers
    /// stray messages with its Left record; a restart must use a new generation.
    pub fn leave(&mut self, now: u64) -> Output {
        self.observe(now);
        if self.left {
            return self.take();
        }
        self.incarnation += 1;
        self.left = true;
        let notice = self.self_update();
        self.broadcasts.push(notice.clone());
        self.tell_live_members(&notice);
        self.probes.clear();
        self.relays.clear();
        self.suspicions.clear();
        self.take()
    }

    /// Handles one datagram from `from_addr`. A datagram that does not decode changes nothing and
    /// is returned as the error (and counted).
    pub fn handle(
        &mut self,
        from_addr: &str,
        bytes: &[u8],
        now: u64,
    ) -> Result<Output, MembershipError> {
        self.counters.bytes_received += bytes.len() as u64;
        match Message::decode(bytes) {
            Ok(message) => Ok(self.handle_message(from_addr, message, now)),
            Err(e) => {
                self.counters.messages_received += 1;
                self.counters.decode_errors += 1;
                Err(e)
            }
        }
    }

    /// Handles one decoded message from `from_addr`.
    pub fn handle_message(&mut self, from_addr: &str, message: Message, now: u64) -> Output {
        let now = self.observe(now);
        self.counters.messages_received += 1;
        self.receive(from_addr, message, now);
        self.take()
    }

    /// Runs every timer that is due at `now`.
    pub fn tick(&mut self, now: u64) -> Output {
        let now = self.observe(now);
        if self.left {
            self.last_tick = Some(now);
            return self.take();
        }
        match self.last_tick {
            None => self.start_timers(now),
            Some(last) if now - last > self.config.stall_threshold_ms => {
                self.stalled(now, now - last)
            }
            Some(_) => {}
        }
        self.tick_probes(now);
        self.tick_suspicions(now);
        self.tick_relays(now);
        self.tick_gossip(now);
        self.tick_sync(now);
        self.last_tick = Some(now);
        self.take()
    }

    /// When [`Swim::tick`] should next be called; `None` once the process has left.
    pub fn next_deadline(&self) -> Option<u64> {
        if self.left {
            return None;
        }
        let cap = self.last_tick.unwrap_or(self.now) + self.config.max_tick_interval_ms;
        if self.last_tick.is_none() {
            return Some(self.now);
        }
        let mut due = self.timers.probe.min(cap);
        if self.config.gossip_interval_ms > 0 {
            due = due.min(self.timers.gossip);
        }
        for p in &self.probes {
            due = due.min(p.ends);
            if !p.ping_reqs_sent {
                due = due.min(p.ping_req_at);
            }
        }
        for (node, s) in &self.suspicions {
            // A suspicion past its deadline that waits on a probe is due when the probe ends.
            let waiting =
                s.deadline() <= self.now && self.probes.iter().any(|p| &p.target.node == node);
            if !waiting {
                due = due.min(s.deadline());
            }
        }
        for r in self.relays.values() {
            due = due.min(r.expires_at);
            if !r.nacked {
                due = due.min(r.nack_at);
            }
        }
        if let Some(join) = self.timers.join {
            due = due.min(join);
        }
        Some(due)
    }

    /// Publishes `key = value` in this process's metadata.
    pub fn set_metadata(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.metadata.set(key, value);
    }

    /// Publishes the deletion of `key` from this process's metadata.
    pub fn delete_metadata(&mut self, key: impl Into<String>) {
        self.metadata.delete(key);
    }

    /// Every node's metadata as this process knows it.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The metadata of the process SWIM currently knows as `node` (or of this process).
    pub fn metadata_of(&self, node: &str) -> Option<&NodeState> {
        let generation = if node == self.me.node {
            self.me.generation
        } else {
            self.members.get(node)?.id.generation
        };
        self.metadata.get(&NodeKey::new(node, generation))
    }

    /// This process.
    pub fn me(&self) -> &MemberId {
        &self.me
    }

    /// This process's current incarnation.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Whether [`Swim::leave`] was called.
    pub fn has_left(&self) -> bool {
        self.left
    }

    /// Every other member known, with its state and incarnation, including remembered Dead and
    /// Left ones, in node id order.
    pub fn members(&self) -> impl Iterator<Item = &Member> + '_ {
        self.members.values()
    }

    /// The Alive and Suspect members.
    pub fn live_members(&self) -> impl Iterator<Item = &Member> + '_ {
        self.members.values().filter(|m| m.state.is_live())
    }

    /// What this process believes about `node`.
    pub fn member(&self, node: &str) -> Option<&Member> {
        self.members.get(node)
    }

    /// The phi of a live member at `now`.
    pub fn phi(&self, node: &str, now: u64) -> Option<f64> {
        self.detectors.get(node).map(|d| d.phi(now))
    }

    /// Whether requests should avoid `node`: it is unknown, not Alive, or its phi is at or above
    /// the threshold, even if SWIM has not suspected it yet.
    pub fn is_likely_dead(&self, node: &str, now: u64) -> bool {
        match self.members.get(node) {
            Some(m) if m.state == State::Alive => self
                .phi(node, now)
                .is_none_or(|phi| phi >= self.config.phi.threshold),
            _ => node != self.me.node,
        }
    }

    /// Lifeguard's local health score: 0 is healthy; timeouts stretch by (1 + score).
    pub fn local_health(&self) -> u32 {
        self.health.score()
    }

    /// Running totals, for metrics.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Updates waiting to be piggybacked.
    pub fn pending_updates(&self) -> usize {
        self.broadcasts.len()
    }

    fn observe(&mut self, now: u64) -> u64 {
        self.now = self.now.max(now);
        self.now
    }

    fn take(&mut self) -> Output {
        std::mem::take(&mut self.out)
    }

    fn self_update(&self) -> Update {
        Update {
            id: self.me.clone(),
            incarnation: self.incarnation,
            state: if self.left { State::Left } else { State::Alive },
            by: None,
        }
    }

    /// Other live members (Alive or Suspect).
    fn live_count(&self) -> usize {
        self.members.len() - self.gone.len()
    }

    fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// The first tick: periodic jobs start at random phases, so members started together do not
    /// probe and gossip in lockstep.
    fn start_timers(&mut self, now: u64) {
        use rand::Rng;
        let c = &self.config;
        self.timers.probe = now + self.rng.random_range(0..c.probe_interval_ms);
        self.timers.gossip = now + self.rng.random_range(0..c.gossip_interval_ms.max(1));
        self.timers.sync = now + self.rng.random_range(0..c.sync_interval_ms.max(1));
        self.timers.reconnect = now + c.reconnect_interval_ms;
    }

    /// Dispatches a decoded message.
    fn receive(&mut self, from_addr: &str, message: Message, now: u64) {
        let Message {
            from,
            incarnation,
            body,
            updates,
        } = message;
        if from.node == self.me.node {
            return;
        }
        if self.left {
            if matches!(
                body,
                Body::Ping { .. } | Body::PingReq { .. } | Body::Join | Body::Sync { .. }
            ) {
                let notice = self.self_update();
                self.send(from_addr, Body::Updates, vec![notice]);
            }
            return;
        }
        match self.note_sender(&from, incarnation, now) {
            table::Sender::Stale => return,
            table::Sender::Dead(record) => {
                if !matches!(body, Body::Updates) {
                    self.send(from_addr, Body::Updates, vec![record]);
                }
            }
            table::Sender::Live => {}
        }
        for update in updates {
            self.apply(update, table::Origin::Rumor, from_addr, now);
        }
        match body {
            Body::Ping { seq } => self.send(from_addr, Body::Ack { seq }, Vec::new()),
            Body::Ack { seq } => self.on_ack(&from, seq, now),
            Body::PingReq { seq, target } => self.on_ping_req(from_addr, seq, target, now),
            Body::Nack { seq } => self.on_nack(seq),
            Body::Join => self.send_sync(from_addr, false),
            Body::Sync { members, reply } => {
                for update in members {
                    let origin = table::Origin::Sync(from.node.clone());
                    self.apply(update, origin, from_addr, now);
                }
                if reply {
                    self.send_sync(from_addr, false);
                }
            }
            Body::Updates => {}
            Body::GossipSyn { digest } => self.on_syn(from_addr, digest),
            Body::GossipSynAck { digest, delta } => self.on_syn_ack(from_addr, digest, delta, now),
            Body::GossipAck { delta } => self.merge_delta(delta, now),
        }
    }

    /// Periodic anti-entropy, partition healing and join retries.
    fn tick_sync(&mut self, now: u64) {
        use rand::seq::IndexedRandom;
        if self.config.reconnect_interval_ms > 0 && now >= self.timers.reconnect {
            self.timers.reconnect = now + self.config.reconnect_interval_ms;
            let dead: Vec<String> = self
                .gone
                .iter()
                .filter_map(|n| self.members.get(n))
                .filter(|m| m.state == State::Dead)
                .map(|m| m.id.addr.clone())
                .collect();
            if let Some(addr) = dead.choose(&mut self.rng).cloned() {
                self.send_sync(&addr, true);
            }
        }
        if self.config.sync_interval_ms > 0 && now >= self.timers.sync {
            self.timers.sync = now + self.config.sync_interval_for(self.live_count() + 1);
            let live: Vec<String> = self.live_members().map(|m| m.id.addr.clone()).collect();
            if let Some(addr) = live.choose(&mut self.rng).cloned() {
                self.send_sync(&addr, true);
            }
        }
        if let Some(at) = self.timers.join {
            if now >= at {
                self.timers.join = Some(now + self.config.join_retry_interval_ms);
                if self.live_count() == 0 {
                    self.send_joins();
                }
            }
        }
    }

    fn send_joins(&mut self) {
        let seeds = self.seeds.clone();
        for seed in seeds {
            self.send(&seed, Body::Join, Vec::new());
        }
    }

    /// Forgets Dead and Left members remembered for longer than `dead_memory_ms`, with their
    /// metadata.
    fn collect_garbage(&mut self, now: u64) {
        let expired: Vec<String> = self
            .gone
            .iter()
            .filter(|n| {
                self.members
                    .get(*n)
                    .is_none_or(|m| now >= m.since_ms.saturating_add(self.config.dead_memory_ms))
            })
            .cloned()
            .collect();
        for node in expired {
            self.gone.remove(&node);
            if let Some(m) = self.members.remove(&node) {
                self.metadata
                    .remove(&NodeKey::new(m.id.node.clone(), m.id.generation));
            }
            self.detectors.remove(&node);
            self.expedited.remove(&node);
        }
    }
}

/// Datagrams larger than this are never produced, whatever the configuration.
const _: () = assert!(crate::config::MIN_PAYLOAD < MAX_DATAGRAM);
