//! Probing: round-robin pings, ping-req through relays with Lifeguard NACKs, the local health
//! bookkeeping that goes with them, phi-expedited probes, and recovery from a local stall.
//!
//! A probe of T (period `probe_interval_ms`, times the local health multiplier) sends a ping; if
//! no ack has come after the probe timeout (also stretched), k relays get a ping-req; an ack,
//! direct or relayed, accepted any time before the period ends settles it. Otherwise the probe
//! failed: the target is suspected, and local health rises by the NACKs that did not come (a
//! prober whose relays cannot even NACK is likelier the problem than the target).

use super::Swim;
use crate::{Body, MemberId, State};
use rand::seq::index::sample;

/// Expedited probes are at most one per this many probe intervals, so phi can add at most a
/// quarter to the probe traffic.
pub const EXPEDITE_EVERY: u64 = 4;

/// Most ping-reqs relayed at once; more (a flood or an attack) are ignored.
const MAX_RELAYS: usize = 1024;

/// Why a probe was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Its turn in the round-robin order.
    RoundRobin,
    /// Out of turn: its phi crossed the threshold.
    Expedited,
    /// Out of turn: its unconfirmed suspicion timed out (see `tick_suspicions`).
    Verify,
}

/// One probe of ours in flight.
#[derive(Debug, Clone)]
pub(super) struct Probe {
    pub(super) seq: u64,
    pub(super) target: MemberId,
    pub(super) ping_req_at: u64,
    pub(super) ends: u64,
    pub(super) ping_reqs_sent: bool,
    pub(super) expected_nacks: usize,
    pub(super) nacks: usize,
    /// How many relays get a ping-req if the direct ping times out.
    pub(super) relays: usize,
}

/// A ping we send on another member's behalf.
#[derive(Debug, Clone)]
pub(super) struct Relay {
    pub(super) requester: String,
    pub(super) requester_seq: u64,
    pub(super) target: MemberId,
    pub(super) nack_at: u64,
    pub(super) expires_at: u64,
    pub(super) nacked: bool,
}

impl Swim {
    /// Ping-reqs and failures of probes in flight, then the next round-robin probe if due.
    pub(super) fn tick_probes(&mut self, now: u64) {
        for i in 0..self.probes.len() {
            let p = &self.probes[i];
            if !p.ping_reqs_sent && now >= p.ping_req_at {
                self.send_ping_reqs(i);
            }
        }
        let (ended, running): (Vec<_>, Vec<_>) = std::mem::take(&mut self.probes)
            .into_iter()
            .partition(|p| now >= p.ends);
        self.probes = running;
        for p in ended {
            self.probe_timed_out(p, now);
        }
        if now < self.timers.probe {
            return;
        }
        let interval = self.health.scale(self.config.probe_interval_ms);
        // Keep the schedule (a late tick does not delay every later probe) unless a whole period
        // was missed.
        self.timers.probe = if now - self.timers.probe >= interval {
            now + interval
        } else {
            self.timers.probe + interval
        };
        self.collect_garbage(now);
        let probing: Vec<String> = self.probes.iter().map(|p| p.target.node.clone()).collect();
        let members = &self.members;
        let next = self.order.next(&mut self.rng, |n| {
            !probing.iter().any(|p| p == n) && members.get(n).is_some_and(|m| m.state.is_live())
        });
        if let Some(target) = next
            .and_then(|n| self.members.get(&n))
            .map(|m| m.id.clone())
        {
            self.start_probe(target, Kind::RoundRobin, now);
        }
        self.expedite(now);
    }

    /// One extra probe for the Alive member with the highest phi above the threshold, if any: one
    /// per silence of each member, at most one every [`EXPEDITE_EVERY`] probe intervals, and only
    /// while this process is healthy (a struggling process sees everyone as late).
    fn expedite(&mut self, now: u64) {
        if self.health.score() > 0 || now < self.timers.expedite {
            return;
        }
        let threshold = self.config.phi.threshold;
        let mut worst: Option<(f64, &str)> = None;
        for (node, detector) in &self.detectors {
            if self.expedited.get(node) == Some(&detector.last_arrival_ms())
                || self.probes.iter().any(|p| &p.target.node == node)
            {
                continue;
            }
            let phi = detector.phi(now);
            if phi >= threshold && worst.is_none_or(|(w, _)| phi > w) {
                worst = Some((phi, node));
            }
        }
        let target = worst
            .and_then(|(_, n)| self.members.get(n))
            .filter(|m| m.state == State::Alive)
            .map(|m| m.id.clone());
        if let Some(target) = target {
            if let Some(d) = self.detectors.get(&target.node) {
                self.expedited
                    .insert(target.node.clone(), d.last_arrival_ms());
            }
            self.timers.expedite = now + EXPEDITE_EVERY * self.config.probe_interval_ms;
            self.start_probe(target, Kind::Expedited, now);
        }
    }

    pub(super) fn start_probe(&mut self, target: MemberId, kind: Kind, now: u64) {
        let seq = self.next_seq();
        self.probes.push(Probe {
            seq,
            ping_req_at: now + self.health.scale(self.config.probe_timeout_ms),
            ends: now + self.health.scale(self.config.probe_interval_ms),
            target: target.clone(),
            ping_reqs_sent: false,
            expected_nacks: 0,
            nacks: 0,
            // The last word before a death: twice the relays, so loss alone (each path fails
            // with p ~ 1 - (1 - loss)^4) almost never condemns a live member.
            relays: match kind {
                Kind::Verify => 2 * self.config.indirect_probes,
                _ => self.config.indirect_probes,
            },
        });
        self.counters.probes_sent += 1;
        match kind {
            Kind::Expedited => self.counters.expedited_probes += 1,
            Kind::Verify => self.counters.verification_probes += 1,
            Kind::RoundRobin => {}
        }
        let buddy = self.buddy(&target.node);
        self.send(&target.addr, Body::Ping { seq }, buddy);
    }

    fn send_ping_reqs(&mut self, i: usize) {
        let (seq, target, wanted) = {
            let p = &mut self.probes[i];
            p.ping_reqs_sent = true;
            (p.seq, p.target.clone(), p.relays)
        };
        let relays: Vec<String> = self
            .members
            .values()
            .filter(|m| m.state == State::Alive && m.id.node != target.node)
            .map(|m| m.id.addr.clone())
            .collect();
        let k = wanted.min(relays.len());
        let picked: Vec<String> = sample(&mut self.rng, relays.len(), k)
            .into_iter()
            .map(|j| relays[j].clone())
            .collect();
        self.probes[i].expected_nacks = picked.len();
        for addr in picked {
            self.counters.ping_reqs_sent += 1;
            let body = Body::PingReq {
                seq,
                target: target.clone(),
            };
            self.send(&addr, body, Vec::new());
        }
    }

    fn probe_timed_out(&mut self, p: Probe, now: u64) {
        self.counters.probe_failures += 1;
        let missed = if p.expected_nacks > 0 {
            p.expected_nacks.saturating_sub(p.nacks)
        } else {
            1
        };
        self.health.raise(missed as u32);
        self.probe_failed(&p.target, now);
    }

    pub(super) fn on_ack(&mut self, from: &MemberId, seq: u64, now: u64) {
        if let Some(i) = self.probes.iter().position(|p| p.seq == seq) {
            let p = self.probes.swap_remove(i);
            self.counters.acks_received += 1;
            if from.same_process(&p.target) {
                self.health.lower();
            } else if let Some(d) = self.detectors.get_mut(&p.target.node) {
                // A relayed ack is evidence of the target too.
                d.heartbeat(now);
            }
            self.suspect_answered(&p.target.node, now);
            return;
        }
        if let Some(relay) = self.relays.get(&seq) {
            if from.same_process(&relay.target) {
                if let Some(relay) = self.relays.remove(&seq) {
                    let body = Body::Ack {
                        seq: relay.requester_seq,
                    };
                    self.send(&relay.requester, body, Vec::new());
                }
            }
        }
    }

    pub(super) fn on_ping_req(&mut self, from_addr: &str, seq: u64, target: MemberId, now: u64) {
        if target.node == self.me.node {
            self.send(from_addr, Body::Ack { seq }, Vec::new());
            return;
        }
        if self.relays.len() >= MAX_RELAYS {
            return;
        }
        let local = self.next_seq();
        self.relays.insert(
            local,
            Relay {
                requester: from_addr.to_string(),
                requester_seq: seq,
                target: target.clone(),
                nack_at: now + self.config.nack_timeout_ms,
                expires_at: now + self.config.probe_interval_ms,
                nacked: false,
            },
        );
        let buddy = self.buddy(&target.node);
        self.send(&target.addr, Body::Ping { seq: local }, buddy);
    }

    pub(super) fn on_nack(&mut self, seq: u64) {
        if let Some(p) = self.probes.iter_mut().find(|p| p.seq == seq) {
            p.nacks += 1;
            self.counters.nacks_received += 1;
        }
    }

    /// NACKs for relayed pings that got no answer, and expiry of old relays.
    pub(super) fn tick_relays(&mut self, now: u64) {
        let mut nacks = Vec::new();
        for r in self.relays.values_mut() {
            if !r.nacked && now >= r.nack_at {
                r.nacked = true;
                nacks.push((r.requester.clone(), r.requester_seq));
            }
        }
        self.relays.retain(|_, r| now < r.expires_at);
        for (to, seq) in nacks {
            self.counters.nacks_sent += 1;
            self.send(&to, Body::Nack { seq }, Vec::new());
        }
    }

    /// This process did not tick for `gap` ms: whatever its probes saw (or did not) says nothing
    /// about the peers. Abandon them, move suspicion deadlines by the gap so refutations queued
    /// meanwhile are heard first, and forgive every peer's silence.
    pub(super) fn stalled(&mut self, now: u64, gap: u64) {
        self.counters.stalls += 1;
        self.probes.clear();
        self.relays.clear();
        for s in self.suspicions.values_mut() {
            s.start = s.start.saturating_add(gap);
        }
        for d in self.detectors.values_mut() {
            d.forgive(now);
        }
        self.timers.probe = now;
    }
}
