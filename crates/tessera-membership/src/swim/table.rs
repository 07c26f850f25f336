//! The member table: applying rumours, the state transitions they cause, and refutation.
//!
//! Every claim about a member (a piggybacked rumour, a sync entry, or the implicit "I am alive"
//! of a message's sender) goes through [`Swim::apply`], which keeps the precedence rules of
//! `member::supersedes`, emits the events, keeps the probe order, suspicion timers and phi
//! detectors in step, and queues accepted news for dissemination. A death declared here by a
//! suspicion timer is also sent straight to every live member.

use super::Swim;
use crate::member::supersedes;
use crate::metadata::NodeKey;
use crate::phi::PhiDetector;
use crate::suspicion::Suspicion;
use crate::{Body, Event, Member, MemberId, State, Update};

/// Where a claim came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Origin {
    /// A message's sender speaking for itself, or a piggybacked rumour.
    Rumor,
    /// An entry of a full member list from this node. Such lists can be old news (a view from
    /// the other side of a healed partition), so a Dead entry for a member we hold live only
    /// makes it Suspect: it gets the chance to refute instead of being killed by a stale view.
    Sync(String),
}

/// What the sender of a message is to us.
pub(super) enum Sender {
    Live,
    /// We hold it Dead: its record, so it can refute.
    Dead(Update),
    /// An older generation than we know, or Left: ignore the message.
    Stale,
}

impl Swim {
    /// Takes the sender's implicit claim to be alive, and feeds its phi detector.
    pub(super) fn note_sender(&mut self, from: &MemberId, incarnation: u64, now: u64) -> Sender {
        if let Some(m) = self.members.get(&from.node) {
            if from.generation < m.id.generation
                || (from.generation == m.id.generation && m.state == State::Left)
            {
                return Sender::Stale;
            }
        }
        let claim = Update {
            id: from.clone(),
            incarnation,
            state: State::Alive,
            by: None,
        };
        self.apply(claim, Origin::Rumor, &from.addr, now);
        match self.members.get(&from.node) {
            Some(m) if m.state == State::Dead => Sender::Dead(Update {
                id: m.id.clone(),
                incarnation: m.incarnation,
                state: State::Dead,
                by: None,
            }),
            _ => {
                if let Some(d) = self.detectors.get_mut(&from.node) {
                    d.heartbeat(now);
                }
                Sender::Live
            }
        }
    }

    /// Applies one claim about a member.
    pub(super) fn apply(&mut self, mut u: Update, origin: Origin, reply_to: &str, now: u64) {
        if u.id.node.is_empty() {
            return;
        }
        if u.id.node == self.me.node {
            self.apply_about_me(u, reply_to);
            return;
        }
        let Some(old) = self.members.get(&u.id.node) else {
            self.learn(u, now);
            return;
        };
        if let Origin::Sync(from) = origin {
            if u.state == State::Dead && old.state.is_live() && u.id.generation == old.id.generation
            {
                u.state = State::Suspect;
                u.by = Some(from);
            }
        }
        if supersedes(u.id.generation, u.incarnation, u.state, old) {
            let old = old.clone();
            self.transition(old, u, now);
            return;
        }
        let same_suspicion = u.state == State::Suspect
            && old.state == State::Suspect
            && old.id.generation == u.id.generation
            && old.incarnation == u.incarnation;
        if let (true, Some(by)) = (same_suspicion, &u.by) {
            let confirmed = self
                .suspicions
                .get_mut(&u.id.node)
                .is_some_and(|s| s.confirm(by));
            if confirmed {
                self.broadcasts.push(u);
            }
        }
    }

    /// A member we knew nothing about.
    fn learn(&mut self, u: Update, now: u64) {
        let node = u.id.node.clone();
        self.members.insert(
            node.clone(),
            Member {
                id: u.id.clone(),
                incarnation: u.incarnation,
                state: u.state,
                since_ms: now,
            },
        );
        if !u.state.is_live() {
            // Remembered so that stale rumours of it are recognised; not news worth spreading.
            self.gone.insert(node);
            return;
        }
        self.became_live(&node, now);
        self.out.events.push(Event::MemberUp(u.id.clone()));
        if u.state == State::Suspect {
            self.out.events.push(Event::MemberSuspect(u.id.clone()));
            self.start_suspicion(&node, u.incarnation, u.by.clone(), now);
        }
        self.broadcasts.push(u);
    }

    /// A claim that supersedes the record `old`.
    fn transition(&mut self, old: Member, u: Update, now: u64) {
        let node = u.id.node.clone();
        let new_generation = u.id.generation != old.id.generation;
        if new_generation {
            if old.state.is_live() {
                self.out.events.push(Event::MemberDown(old.id.clone()));
            }
            self.metadata
                .remove(&NodeKey::new(old.id.node.clone(), old.id.generation));
            self.detectors.remove(&node);
            self.suspicions.remove(&node);
        }
        let previous = (!new_generation).then_some(old.state);
        let since_ms = if previous == Some(u.state) {
            old.since_ms
        } else {
            now
        };
        self.members.insert(
            node.clone(),
            Member {
                id: u.id.clone(),
                incarnation: u.incarnation,
                state: u.state,
                since_ms,
            },
        );
        let id = u.id.clone();
        match u.state {
            State::Alive => {
                self.became_live(&node, now);
                self.suspicions.remove(&node);
                match previous {
                    Some(State::Alive) => {}
                    Some(State::Suspect) => {
                        self.counters.false_suspicions_refuted += 1;
                        self.out.events.push(Event::MemberRefuted(id));
                    }
                    _ => self.out.events.push(Event::MemberUp(id)),
                }
            }
            State::Suspect => {
                self.became_live(&node, now);
                if previous.is_none_or(|s| !s.is_live()) {
                    self.out.events.push(Event::MemberUp(id.clone()));
                }
                if previous != Some(State::Suspect) {
                    self.out.events.push(Event::MemberSuspect(id));
                }
                self.start_suspicion(&node, u.incarnation, u.by.clone(), now);
            }
            State::Dead | State::Left => {
                self.became_gone(&node);
                if previous.is_some_and(State::is_live) {
                    self.out.events.push(if u.state == State::Dead {
                        Event::MemberDown(id)
                    } else {
                        Event::MemberLeft(id)
                    });
                }
            }
        }
        self.broadcasts.push(u);
    }

    fn became_live(&mut self, node: &str, now: u64) {
        self.gone.remove(node);
        self.order.insert(node, &mut self.rng);
        if !self.detectors.contains_key(node) {
            let detector = PhiDetector::new(&self.config.phi, now);
            self.detectors.insert(node.to_string(), detector);
        }
    }

    fn became_gone(&mut self, node: &str) {
        self.gone.insert(node.to_string());
        self.order.remove(node);
        self.suspicions.remove(node);
        self.detectors.remove(node);
    }

    fn start_suspicion(&mut self, node: &str, incarnation: u64, by: Option<String>, now: u64) {
        let n = self.live_count() + 1;
        let suspicion = Suspicion::new(
            incarnation,
            now,
            self.config.suspicion_timeouts_ms(n),
            self.config.expected_confirmations(n),
            by,
        );
        self.suspicions.insert(node.to_string(), suspicion);
    }

    /// A claim about this very process: refute anything but Alive at or above our incarnation,
    /// straight back to whoever told us and to the suspecter, and by dissemination.
    fn apply_about_me(&mut self, u: Update, reply_to: &str) {
        if self.left || u.id.generation != self.me.generation {
            return;
        }
        if u.incarnation < self.incarnation || (u.state == State::Alive) {
            if u.state == State::Alive && u.incarnation > self.incarnation {
                // An Alive claim above our own can only be a previous life of this generation;
                // stay above it.
                self.incarnation = u.incarnation + 1;
                self.broadcasts.push(self.self_update());
            }
            return;
        }
        self.incarnation = u.incarnation + 1;
        self.health.raise(1);
        self.counters.refutations += 1;
        let alive = self.self_update();
        self.broadcasts.push(alive.clone());
        if !reply_to.is_empty() {
            self.send(reply_to, Body::Updates, vec![alive.clone()]);
        }
        let suspecter =
            u.by.as_deref()
                .and_then(|by| self.members.get(by))
                .filter(|m| m.state.is_live() && m.id.addr != reply_to)
                .map(|m| m.id.addr.clone());
        if let Some(addr) = suspecter {
            self.send(&addr, Body::Updates, vec![alive]);
        }
    }

    /// Our own probe of `target` failed: suspect it (or confirm an existing suspicion), and tell
    /// it directly so it can refute at once.
    pub(super) fn probe_failed(&mut self, target: &MemberId, now: u64) {
        let Some(m) = self.members.get(&target.node) else {
            return;
        };
        if m.id.generation != target.generation {
            return;
        }
        let suspicion = Update {
            id: m.id.clone(),
            incarnation: m.incarnation,
            state: State::Suspect,
            by: Some(self.me.node.clone()),
        };
        match m.state {
            State::Alive => {
                self.counters.suspicions_raised += 1;
                self.apply(suspicion.clone(), Origin::Rumor, "", now);
                self.send(&target.addr, Body::Updates, vec![suspicion]);
            }
            State::Suspect => {
                let me = self.me.node.clone();
                let confirmed = self
                    .suspicions
                    .get_mut(&target.node)
                    .is_some_and(|s| s.confirm(&me));
                if confirmed {
                    self.broadcasts.push(suspicion);
                }
            }
            State::Dead | State::Left => {}
        }
    }

    /// Suspicions whose Lifeguard timeout ran out become deaths, once verified.
    ///
    /// A suspicion that K independent suspecters confirmed is enough evidence. One that is not
    /// gets a verification probe of our own first (with the suspicion piggybacked, so the member
    /// refutes in its ack, and twice the usual relays): a member whose refutation missed us,
    /// because this process heard few
    /// messages while it was disseminated, is not killed for it. Only if that probe fails too is
    /// the member declared Dead; that costs one more probe period, which the detection bound
    /// includes. A death is queued for piggybacking and also sent once, straight to every live
    /// member.
    pub(super) fn tick_suspicions(&mut self, now: u64) {
        let due: Vec<(String, u64, bool)> = self
            .suspicions
            .iter()
            .filter(|(_, s)| s.deadline() <= now)
            .map(|(n, s)| (n.clone(), s.incarnation, s.fully_confirmed() || s.verified))
            .collect();
        for (node, incarnation, settled) in due {
            let Some(m) = self.members.get(&node) else {
                self.suspicions.remove(&node);
                continue;
            };
            if m.state != State::Suspect || m.incarnation != incarnation {
                self.suspicions.remove(&node);
                continue;
            }
            let target = m.id.clone();
            let probing = self.probes.iter().any(|p| p.target.node == node);
            if !settled {
                if let Some(s) = self.suspicions.get_mut(&node) {
                    s.verified = true;
                }
                if !probing {
                    self.start_probe(target, super::probe::Kind::Verify, now);
                }
                continue;
            }
            if probing {
                continue;
            }
            self.suspicions.remove(&node);
            let death = Update {
                id: target,
                incarnation,
                state: State::Dead,
                by: None,
            };
            self.counters.deaths_declared += 1;
            self.apply(death.clone(), Origin::Rumor, "", now);
            // Piggybacked, the death reaches each other survivor only with its next probe or
            // gossip exchange with someone who knows, up to a period apart; told directly, they
            // all drop the member within one network delay of us. Those who hear it only
            // piggyback it, so this costs n - 1 datagrams per declarer, once.
            let declared = self
                .members
                .get(&node)
                .is_some_and(|m| m.state == State::Dead && m.incarnation == incarnation);
            if declared {
                self.tell_live_members(&death);
            }
        }
    }

    /// A probe of a Suspect member was answered but the member did not refute (it never heard):
    /// the suspicion starts over, and the member is told directly.
    pub(super) fn suspect_answered(&mut self, node: &str, now: u64) {
        let Some(m) = self.members.get(node) else {
            return;
        };
        if m.state != State::Suspect {
            return;
        }
        let (id, incarnation) = (m.id.clone(), m.incarnation);
        if self.suspicions.get(node).is_some_and(|s| s.verified) {
            self.start_suspicion(node, incarnation, None, now);
            let suspicion = Update {
                id: id.clone(),
                incarnation,
                state: State::Suspect,
                by: Some(self.me.node.clone()),
            };
            self.send(&id.addr, Body::Updates, vec![suspicion]);
        }
    }

    /// A Suspect claim about `node` to send along with a message to it, so it learns of the
    /// suspicion and refutes (Lifeguard's buddy system).
    pub(super) fn buddy(&self, node: &str) -> Vec<Update> {
        match self.members.get(node) {
            Some(m) if m.state == State::Suspect => vec![Update {
                id: m.id.clone(),
                incarnation: m.incarnation,
                state: State::Suspect,
                by: None,
            }],
            _ => Vec::new(),
        }
    }
}
