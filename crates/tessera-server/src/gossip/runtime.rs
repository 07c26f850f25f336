//! The membership worker: one UDP socket, the SWIM state machine, and what the node does with
//! its events.
//!
//! Each step handles the datagrams that have arrived (without waiting for more) and, when the
//! state machine's next deadline or the next publish of this node's metadata is due, ticks it;
//! between steps the worker waits for whichever comes first. What the state machine returns is
//! acted on at once: datagrams are sealed and sent, and events update the peer directory and
//! wake hint delivery, all in memory. Nothing here waits on the disk: what must be written (a new
//! node for the roster, a table) goes to the `membership-events` worker (`events.rs`), so a
//! storage stall cannot delay an ack and make peers suspect a node that is only slow. On stop,
//! the node leaves gracefully, so its peers mark it down at once instead of after a suspicion
//! timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tessera_membership::{Event, Output};
use tessera_worker::{Step, StepContext, Worker, WorkerError, WorkerStatus};
use tokio::net::UdpSocket;
use tokio::time::Instant;
use tracing::{debug, info};

use super::events::MetadataEvent;
use super::metadata::{self, Facts};
use super::seal::Sealer;
use crate::node::Node;

/// How often this node's metadata is compared with what it published, and republished.
const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);
/// How often a node that knows no live member joins through its seeds again.
const REJOIN_INTERVAL: Duration = Duration::from_secs(10);
/// Room for any datagram: the core never sends more than its max payload, but a peer might.
const RECEIVE_BUFFER: usize = 64 * 1024;
/// Most datagrams handled in one step, so a flood cannot starve the timers.
const STEP_DATAGRAMS: usize = 256;

/// The worker's name.
pub const MEMBERSHIP: &str = "membership";

/// The membership worker; see the module docs.
pub struct MembershipWorker {
    node: Arc<Node>,
    socket: UdpSocket,
    sealer: Sealer,
    /// The state machine's clock starts here.
    started: Instant,
    buf: Vec<u8>,
    joined: bool,
    next_publish: Instant,
    next_rejoin: Instant,
    datagrams: u64,
}

impl MembershipWorker {
    /// Membership of `node` over `socket` (bound to the node's own address and port).
    pub fn new(node: Arc<Node>, socket: UdpSocket) -> Self {
        let gossip = node.cluster.gossip.clone();
        let now = Instant::now();
        Self {
            sealer: Sealer::new(node.config.cluster.secret.as_bytes()),
            started: now - Duration::from_millis(gossip.now_ms()),
            node,
            socket,
            buf: vec![0u8; RECEIVE_BUFFER],
            joined: false,
            next_publish: now,
            next_rejoin: now + REJOIN_INTERVAL,
            datagrams: 0,
        }
    }

    /// When the next tick is due: the state machine's deadline or the next publish.
    fn next_deadline(&self) -> Instant {
        let gossip = &self.node.cluster.gossip;
        gossip
            .swim()
            .next_deadline()
            .map_or(self.next_publish, |ms| {
                self.started + Duration::from_millis(ms)
            })
            .min(self.next_publish)
    }

    /// Republishes changed metadata, and joins through the seeds again when this node knows no
    /// live member.
    async fn chores(&mut self) {
        let now = Instant::now();
        if now < self.next_publish {
            return;
        }
        publish(&self.node);
        self.next_publish = now + PUBLISH_INTERVAL;
        if now >= self.next_rejoin && alone(&self.node) {
            // Cut off from everyone for longer than the dead memory: the state machine has
            // forgotten its peers, so start over from the seeds.
            self.next_rejoin = now + REJOIN_INTERVAL;
            let gossip = &self.node.cluster.gossip;
            let out = gossip
                .swim()
                .join(gossip.seeds().iter().cloned(), gossip.now_ms());
            act(&self.node, &self.socket, &self.sealer, out).await;
        }
    }
}

impl Worker for MembershipWorker {
    fn name(&self) -> String {
        MEMBERSHIP.to_owned()
    }

    fn status(&self) -> WorkerStatus {
        let snapshot = self.node.cluster.gossip.snapshot();
        let alive = snapshot.members.values().filter(|m| m.usable).count();
        WorkerStatus {
            progress: Some(format!(
                "{alive} of {} other members usable",
                snapshot.members.len()
            )),
            ..WorkerStatus::default()
        }
        .counter("datagrams", self.datagrams)
    }

    async fn step(&mut self, _ctx: &StepContext) -> Result<Step, WorkerError> {
        let gossip = self.node.cluster.gossip.clone();
        if !self.joined {
            self.joined = true;
            info!(node = self.node.id(), seeds = ?gossip.seeds(), "membership starting");
            let out = gossip
                .swim()
                .join(gossip.seeds().iter().cloned(), gossip.now_ms());
            act(&self.node, &self.socket, &self.sealer, out).await;
            return Ok(Step::Busy { units: 0 });
        }
        let mut handled = 0;
        while handled < STEP_DATAGRAMS {
            match self.socket.try_recv_from(&mut self.buf) {
                Ok((len, from)) => {
                    handled += 1;
                    let out = receive(&self.node, &self.sealer, &self.buf[..len], from);
                    act(&self.node, &self.socket, &self.sealer, out).await;
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(error) => {
                    // ICMP errors from earlier sends surface here on some systems; not fatal.
                    debug!(node = self.node.id(), %error, "membership socket receive failed");
                    handled += 1;
                }
            }
        }
        self.datagrams += handled as u64;
        let ticked = Instant::now() >= self.next_deadline();
        if ticked {
            self.chores().await;
            // A statement of its own, so the lock is released before anything awaits.
            let out = gossip.swim().tick(gossip.now_ms());
            act(&self.node, &self.socket, &self.sealer, out).await;
        }
        if handled == 0 && !ticked {
            return Ok(Step::Idle);
        }
        Ok(Step::Busy {
            units: handled as u64,
        })
    }

    async fn wait_for_work(&mut self) {
        let deadline = self.next_deadline();
        tokio::select! {
            _ = self.socket.readable() => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
    }

    async fn finish(&mut self) {
        let gossip = self.node.cluster.gossip.clone();
        let out = gossip.swim().leave(gossip.now_ms());
        info!(
            node = self.node.id(),
            "membership stopping: told peers this node is leaving"
        );
        act(&self.node, &self.socket, &self.sealer, out).await;
    }
}

/// Opens and handles one datagram.
fn receive(node: &Node, sealer: &Sealer, datagram: &[u8], from: SocketAddr) -> Output {
    let payload = match sealer.open(datagram) {
        Ok(payload) => payload,
        Err(rejected) => {
            node.metrics.membership_rejected(rejected.label());
            debug!(node = node.id(), %from, %rejected, "membership datagram dropped");
            return Output::default();
        }
    };
    let gossip = &node.cluster.gossip;
    let result = gossip
        .swim()
        .handle(&from.to_string(), payload, gossip.now_ms());
    result.unwrap_or_else(|error| {
        node.metrics.membership_rejected("undecodable");
        debug!(node = node.id(), %from, %error, "membership datagram dropped");
        Output::default()
    })
}

/// Sends what the state machine wants sent, and acts on its events.
async fn act(node: &Arc<Node>, socket: &UdpSocket, sealer: &Sealer, out: Output) {
    for datagram in out.send {
        let Ok(to) = datagram.to.parse::<SocketAddr>() else {
            debug!(node = node.id(), to = %datagram.to, "membership address does not parse");
            continue;
        };
        if let Err(error) = socket.send_to(&sealer.seal(&datagram.payload), to).await {
            debug!(node = node.id(), %to, %error, "membership send failed");
        }
    }
    for event in out.events {
        on_event(node, event);
    }
    let gossip = &node.cluster.gossip;
    let swim = gossip.swim();
    gossip.refresh(&swim);
    node.metrics.record_membership(&swim);
}

/// Acts on one event, in memory only (see the module docs).
fn on_event(node: &Arc<Node>, event: Event) {
    let cluster = &node.cluster;
    match event {
        Event::MemberUp(id) => {
            info!(node = node.id(), member = %id.node, addr = %id.addr, generation = id.generation, "member up");
            if let Ok(addr) = id.addr.parse::<SocketAddr>() {
                cluster.directory.set(&id.node, addr);
            }
            // It may hold hints from while it was away: deliver now rather than at the next
            // back-off retry.
            cluster.handoff.deliver_now(&id.node);
        }
        Event::MemberSuspect(id) => {
            info!(node = node.id(), member = %id.node, "member suspected")
        }
        Event::MemberRefuted(id) => {
            info!(node = node.id(), member = %id.node, "member refuted its suspicion")
        }
        Event::MemberDown(id) => {
            info!(node = node.id(), member = %id.node, generation = id.generation, "member down")
        }
        Event::MemberLeft(id) => info!(node = node.id(), member = %id.node, "member left"),
        Event::MetadataChanged { node: from, keys } => {
            let values: Vec<(String, String)> = {
                let swim = cluster.gossip.swim();
                let Some(state) = swim.metadata_of(&from.node) else {
                    return;
                };
                keys.iter()
                    .filter_map(|k| state.get(k).map(|v| (k.clone(), v.to_owned())))
                    .collect()
            };
            for (key, value) in values {
                if key == metadata::PROGRESS {
                    if let Some(progress) = tessera_layout::NodeProgress::from_metadata(&value) {
                        cluster.layout.record_progress(&from.node, &progress);
                    }
                } else if key == "http" {
                    if let Ok(addr) = value.parse::<SocketAddr>() {
                        cluster.directory.set(&from.node, addr);
                    }
                } else if MetadataEvent::needs_disk(&key) {
                    cluster.events.push(MetadataEvent {
                        from: from.node.clone(),
                        key,
                        value,
                    });
                }
            }
        }
    }
}

/// True when this node has seeds but knows no live member: it was cut off long enough for the
/// state machine to forget its peers, or they have not answered its joins.
fn alone(node: &Node) -> bool {
    let gossip = &node.cluster.gossip;
    !gossip.seeds().is_empty() && gossip.swim().live_members().next().is_none()
}

/// Sets every metadata key whose value changed since it was last published.
fn publish(node: &Node) {
    let layout = node.cluster.layout.layout();
    let tables = node.schema.list();
    let in_ring = layout
        .as_ref()
        .is_some_and(|l| l.ring().contains(&node.id().to_owned()));
    let wanted = metadata::publish(&Facts {
        http: node.config.node.listen.to_string(),
        created_at_ms: node.identity.created_at_ms,
        in_ring,
        left_ring: !in_ring && node.cluster.layout.was_member(),
        ring_epoch: layout.as_ref().map_or(0, |l| l.epoch()),
        progress: node.cluster.layout.own_progress().to_metadata(),
        tables: &tables,
        load: node.cluster.events.load().get(),
    });
    let mut swim = node.cluster.gossip.swim();
    let local = node.id().to_owned();
    for (key, value) in wanted {
        let current = swim.metadata_of(&local).and_then(|s| s.get(&key));
        if current != Some(value.as_str()) {
            swim.set_metadata(key, value);
        }
    }
}
