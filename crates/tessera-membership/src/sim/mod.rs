//! A deterministic in-memory cluster: N state machines, virtual time, and a hostile network.
//!
//! Every datagram goes through the real codec (the state machine encodes, [`Swim::handle`]
//! decodes), so size bounds and versioning are exercised. The network drops messages at a
//! configurable rate, delays them by a random amount in a range, and can cut links or split the
//! cluster into partitions; members can be killed, restarted with a new generation, paused (they
//! process nothing until resumed, then find their queue) and slowed (everything they send leaves
//! late). Time only moves from event to event, and every random choice comes from the seed, so a
//! failing run replays exactly.

#[cfg(test)]
mod tests;

use crate::{Config, Event, MemberId, State, Swim};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

/// One event a member reported, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub at: u64,
    /// The member that reported it (index into the simulation's members).
    pub observer: usize,
    pub event: Event,
}

/// One simulated process.
#[derive(Debug)]
pub struct SimNode {
    pub swim: Swim,
    up: bool,
    paused_until: u64,
    send_delay: (u64, u64),
    wake_at: Option<u64>,
}

impl SimNode {
    /// Whether the member runs (not killed).
    pub fn is_up(&self) -> bool {
        self.up
    }
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Job {
    Deliver {
        to: usize,
        from_addr: String,
        payload: Vec<u8>,
    },
    Wake {
        node: usize,
    },
}

/// The simulated cluster.
#[derive(Debug)]
pub struct Sim {
    now: u64,
    rng: StdRng,
    nodes: Vec<SimNode>,
    /// (time, rank, sequence, job): deliveries rank before wake-ups at the same instant, as a
    /// runtime handles what is queued before it ticks; the sequence keeps the order stable.
    queue: BinaryHeap<Reverse<(u64, u8, u64, Job)>>,
    seq: u64,
    by_addr: BTreeMap<String, usize>,
    /// Probability that any one datagram is lost.
    pub loss: f64,
    /// Network delay range (ms, inclusive).
    pub delay_ms: (u64, u64),
    groups: Option<Vec<usize>>,
    cut_links: BTreeSet<(usize, usize)>,
    /// Every event every member reported.
    pub log: Vec<Record>,
    /// Datagrams handed to the network, and their bytes.
    pub datagrams: u64,
    pub bytes: u64,
    /// Largest datagram seen.
    pub max_datagram: usize,
    /// For debugging a simulation: the member whose delivered datagrams are decoded into
    /// `traced` (none by default, so runs pay nothing for it).
    pub trace: Option<usize>,
    /// The traced member's delivered messages, with their delivery times (ms).
    pub traced: Vec<(u64, crate::Message)>,
}

impl Sim {
    pub fn new(seed: u64) -> Sim {
        Sim {
            now: 0,
            rng: StdRng::seed_from_u64(seed),
            nodes: Vec::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            by_addr: BTreeMap::new(),
            loss: 0.0,
            delay_ms: (1, 5),
            groups: None,
            cut_links: BTreeSet::new(),
            log: Vec::new(),
            datagrams: 0,
            bytes: 0,
            max_datagram: 0,
            trace: None,
            traced: Vec::new(),
        }
    }

    pub fn now(&self) -> u64 {
        self.now
    }

    /// The membership address of member `i`.
    pub fn addr(i: usize) -> String {
        format!("10.0.{}.{}:7946", i / 250, i % 250 + 1)
    }

    /// The node id of member `i`.
    pub fn name(i: usize) -> String {
        format!("n{i}")
    }

    /// Adds `count` members with `config`, the first one alone and every other joining through
    /// it, and returns their indices.
    pub fn start_cluster(&mut self, count: usize, config: &Config) -> Vec<usize> {
        let first = self.nodes.len();
        let ids: Vec<usize> = (0..count).map(|_| self.add(config.clone())).collect();
        for &i in &ids[1..] {
            self.join(i, &[first]);
        }
        for &i in &ids {
            self.wake_soon(i);
        }
        ids
    }

    /// Adds a member (generation 1) that knows nobody.
    pub fn add(&mut self, config: Config) -> usize {
        let i = self.nodes.len();
        let id = MemberId::new(Sim::name(i), Sim::addr(i), 1);
        self.by_addr.insert(id.addr.clone(), i);
        let seed = self.rng.random();
        let swim = Swim::new(id, config, seed).expect("simulation configs are valid");
        self.nodes.push(SimNode {
            swim,
            up: true,
            paused_until: 0,
            send_delay: (0, 0),
            wake_at: None,
        });
        self.wake_soon(i);
        i
    }

    /// Member `i` joins through the given members' addresses.
    pub fn join(&mut self, i: usize, seeds: &[usize]) {
        let addrs: Vec<String> = seeds.iter().map(|&s| Sim::addr(s)).collect();
        let out = self.nodes[i].swim.join(addrs, self.now);
        self.dispatch(i, out);
    }

    pub fn node(&self, i: usize) -> &SimNode {
        &self.nodes[i]
    }

    pub fn swim(&self, i: usize) -> &Swim {
        &self.nodes[i].swim
    }

    pub fn swim_mut(&mut self, i: usize) -> &mut Swim {
        &mut self.nodes[i].swim
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Indices of the members that are up.
    pub fn up(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].up)
            .collect()
    }

    /// Member `i` leaves gracefully.
    pub fn leave(&mut self, i: usize) {
        let out = self.nodes[i].swim.leave(self.now);
        self.dispatch(i, out);
    }

    /// Member `i` publishes `key = value` in its metadata.
    pub fn set_metadata(&mut self, i: usize, key: &str, value: &str) {
        self.nodes[i].swim.set_metadata(key, value);
    }

    /// Kills member `i` (as `kill -9`: nothing more from it, nothing delivered to it).
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].up = false;
    }

    /// Restarts a killed member as a new process with `generation`, joining through `seeds`.
    pub fn restart(&mut self, i: usize, generation: u64, config: Config, seeds: &[usize]) {
        let id = MemberId::new(Sim::name(i), Sim::addr(i), generation);
        let seed = self.rng.random();
        self.nodes[i] = SimNode {
            swim: Swim::new(id, config, seed).expect("simulation configs are valid"),
            up: true,
            paused_until: 0,
            send_delay: (0, 0),
            wake_at: None,
        };
        self.join(i, seeds);
        self.wake_soon(i);
    }

    /// Member `i` processes nothing for `ms`, then finds everything queued for it.
    pub fn pause(&mut self, i: usize, ms: u64) {
        self.nodes[i].paused_until = self.now + ms;
    }

    /// Everything member `i` sends leaves after an extra delay in `range` (ms, inclusive).
    pub fn slow(&mut self, i: usize, range: (u64, u64)) {
        self.nodes[i].send_delay = range;
    }

    /// Splits the cluster: members in different groups cannot reach each other; members in no
    /// group reach nobody.
    pub fn partition(&mut self, groups: &[&[usize]]) {
        let mut of = vec![usize::MAX; self.nodes.len()];
        for (g, members) in groups.iter().enumerate() {
            for &m in *members {
                of[m] = g;
            }
        }
        self.groups = Some(of);
    }

    /// Cuts the link between two members, both ways.
    pub fn cut(&mut self, a: usize, b: usize) {
        self.cut_links.insert((a.min(b), a.max(b)));
    }

    /// Ends every partition and link cut.
    pub fn heal(&mut self) {
        self.groups = None;
        self.cut_links.clear();
    }

    fn reachable(&self, a: usize, b: usize) -> bool {
        if self.cut_links.contains(&(a.min(b), a.max(b))) {
            return false;
        }
        match &self.groups {
            Some(of) => of[a] == of[b] && of[a] != usize::MAX,
            None => true,
        }
    }

    fn push(&mut self, at: u64, job: Job) {
        self.seq += 1;
        let rank = match job {
            Job::Deliver { .. } => 0,
            Job::Wake { .. } => 1,
        };
        self.queue.push(Reverse((at, rank, self.seq, job)));
    }

    fn wake_soon(&mut self, i: usize) {
        let at = self.now;
        self.schedule_wake(i, at);
    }

    fn schedule_wake(&mut self, i: usize, at: u64) {
        let at = at.max(self.now);
        let node = &mut self.nodes[i];
        if node.wake_at.is_some_and(|w| w <= at) {
            return;
        }
        node.wake_at = Some(at);
        self.push(at, Job::Wake { node: i });
    }

    /// Sends a member's datagrams into the network, logs its events, and books its next tick.
    fn dispatch(&mut self, from: usize, out: crate::Output) {
        for event in out.events {
            self.log.push(Record {
                at: self.now,
                observer: from,
                event,
            });
        }
        let from_addr = Sim::addr(from);
        for d in out.send {
            self.datagrams += 1;
            self.bytes += d.payload.len() as u64;
            self.max_datagram = self.max_datagram.max(d.payload.len());
            if self.loss > 0.0 && self.rng.random_bool(self.loss.min(1.0)) {
                continue;
            }
            let Some(&to) = self.by_addr.get(&d.to) else {
                continue;
            };
            if !self.reachable(from, to) {
                continue;
            }
            let (lo, hi) = self.delay_ms;
            let (slo, shi) = self.nodes[from].send_delay;
            let delay =
                self.rng.random_range(lo..=hi.max(lo)) + self.rng.random_range(slo..=shi.max(slo));
            self.push(
                self.now + delay,
                Job::Deliver {
                    to,
                    from_addr: from_addr.clone(),
                    payload: d.payload,
                },
            );
        }
        if let Some(at) = self.nodes[from].swim.next_deadline() {
            self.schedule_wake(from, at);
        }
    }

    /// Runs every event up to and including `until`.
    pub fn run_until(&mut self, until: u64) {
        while let Some(Reverse((at, _, _, _))) = self.queue.peek() {
            if *at > until {
                break;
            }
            let Some(Reverse((at, _, _, job))) = self.queue.pop() else {
                break;
            };
            self.now = at;
            match job {
                Job::Deliver {
                    to,
                    from_addr,
                    payload,
                } => {
                    let node = &mut self.nodes[to];
                    if !node.up {
                        continue;
                    }
                    if node.paused_until > at {
                        let resume = node.paused_until;
                        self.push(
                            resume,
                            Job::Deliver {
                                to,
                                from_addr,
                                payload,
                            },
                        );
                        continue;
                    }
                    if self.trace == Some(to) {
                        if let Ok(m) = crate::Message::decode(&payload) {
                            self.traced.push((at, m));
                        }
                    }
                    // Garbage would be an error, never a panic; the simulation only carries what
                    // members encoded.
                    let out = node
                        .swim
                        .handle(&from_addr, &payload, at)
                        .expect("members only send decodable messages");
                    self.dispatch(to, out);
                }
                Job::Wake { node: i } => {
                    let node = &mut self.nodes[i];
                    if !node.up || node.wake_at != Some(at) {
                        continue;
                    }
                    node.wake_at = None;
                    if node.paused_until > at {
                        let resume = node.paused_until;
                        self.schedule_wake(i, resume);
                        continue;
                    }
                    let out = node.swim.tick(at);
                    self.dispatch(i, out);
                }
            }
        }
        self.now = self.now.max(until);
    }

    /// Runs for `ms` more.
    pub fn run_for(&mut self, ms: u64) {
        let until = self.now + ms;
        self.run_until(until);
    }

    /// What member `i` believes about every other member it knows, by node id.
    pub fn view(&self, i: usize) -> BTreeMap<String, (u64, State)> {
        self.nodes[i]
            .swim
            .members()
            .map(|m| (m.id.node.clone(), (m.id.generation, m.state)))
            .collect()
    }

    /// Whether every member that is up sees every other one that is up as Alive (in its current
    /// generation), and none that is down as live.
    pub fn converged(&self) -> bool {
        let up = self.up();
        up.iter().all(|&i| {
            let swim = &self.nodes[i].swim;
            (0..self.nodes.len()).filter(|&j| j != i).all(|j| {
                let m = swim.member(&Sim::name(j));
                if self.nodes[j].up {
                    m.is_some_and(|m| {
                        m.state == State::Alive
                            && m.id.generation == self.nodes[j].swim.me().generation
                    })
                } else {
                    m.is_none_or(|m| {
                        !m.state.is_live() || m.id.generation != self.nodes[j].swim.me().generation
                    })
                }
            })
        })
    }

    /// Runs in steps of `step` ms until [`Sim::converged`] or `limit` ms pass; returns the time
    /// it took, if it converged.
    pub fn run_until_converged(&mut self, step: u64, limit: u64) -> Option<u64> {
        let start = self.now;
        while self.now - start <= limit {
            if self.converged() {
                return Some(self.now - start);
            }
            self.run_for(step);
        }
        None
    }

    /// `MemberDown` events about `node` (any generation), as (time, observer).
    pub fn downs_of(&self, node: &str) -> Vec<(u64, usize)> {
        self.log
            .iter()
            .filter_map(|r| match &r.event {
                Event::MemberDown(id) if id.node == node => Some((r.at, r.observer)),
                _ => None,
            })
            .collect()
    }

    /// Every `MemberDown` event.
    pub fn downs(&self) -> Vec<&Record> {
        self.log
            .iter()
            .filter(|r| matches!(r.event, Event::MemberDown(_)))
            .collect()
    }
}
