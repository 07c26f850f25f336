//! The membership task: one UDP socket, the SWIM state machine, and what the node does with its
//! events.
//!
//! The loop waits for whichever comes first: a datagram, the state machine's next deadline, the
//! next publish of this node's metadata, or the stop signal. Whatever the state machine returns
//! is acted on before the next wait: datagrams are sealed and sent, events update the peer
//! directory, the roster and ring, hint delivery and the schema. On stop, the node leaves
//! gracefully, so its peers mark it down at once instead of after a suspicion timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tessera_membership::{Event, Output};
use tessera_storage::ColumnFamily;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::metadata::{self, Facts, TABLE_PREFIX};
use super::seal::Sealer;
use crate::node::Node;

/// How often this node's metadata is compared with what it published, and republished.
const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);
/// How often the load figures are refreshed (RocksDB's estimates are cheap, not free).
const LOAD_INTERVAL: Duration = Duration::from_secs(10);
/// How often a node that knows no live member joins through its seeds again.
const REJOIN_INTERVAL: Duration = Duration::from_secs(10);
/// Room for any datagram: the core never sends more than its max payload, but a peer might.
const RECEIVE_BUFFER: usize = 64 * 1024;

/// Runs membership until `stop` turns true.
pub async fn run(node: Arc<Node>, socket: UdpSocket, mut stop: watch::Receiver<bool>) {
    let gossip = node.cluster.gossip.clone();
    let sealer = Sealer::new(node.config.cluster.secret.as_bytes());
    let started = Instant::now() - Duration::from_millis(gossip.now_ms());
    let mut chores = Chores::new();
    let mut buf = vec![0u8; RECEIVE_BUFFER];
    info!(node = node.id(), seeds = ?gossip.seeds(), "membership starting");
    let out = gossip
        .swim()
        .join(gossip.seeds().iter().cloned(), gossip.now_ms());
    act(&node, &socket, &sealer, out).await;
    loop {
        let deadline = gossip
            .swim()
            .next_deadline()
            .map_or(chores.next_publish, |ms| {
                started + Duration::from_millis(ms)
            })
            .min(chores.next_publish);
        let out = tokio::select! {
            () = stopped(&mut stop) => break,
            _ = tokio::time::sleep_until(deadline) => {
                chores.run_due(&node, &socket, &sealer).await;
                // A statement of its own, so the lock is released before anything awaits.
                let out = gossip.swim().tick(gossip.now_ms());
                out
            }
            received = socket.recv_from(&mut buf) => match received {
                Ok((len, from)) => receive(&node, &sealer, &buf[..len], from),
                Err(error) => {
                    // ICMP errors from earlier sends surface here on some systems; not fatal.
                    debug!(node = node.id(), %error, "membership socket receive failed");
                    continue;
                }
            },
        };
        act(&node, &socket, &sealer, out).await;
    }
    let out = gossip.swim().leave(gossip.now_ms());
    info!(
        node = node.id(),
        "membership stopping: told peers this node is leaving"
    );
    act(&node, &socket, &sealer, out).await;
}

/// The runtime's periodic work besides the state machine's own timers.
struct Chores {
    next_publish: Instant,
    next_load: Instant,
    next_rejoin: Instant,
    load: Option<(u64, u64)>,
}

impl Chores {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            next_publish: now,
            next_load: now,
            next_rejoin: now + REJOIN_INTERVAL,
            load: None,
        }
    }

    /// Republishes changed metadata (refreshing the load figures now and then), and joins
    /// through the seeds again when this node knows no live member.
    async fn run_due(&mut self, node: &Arc<Node>, socket: &UdpSocket, sealer: &Sealer) {
        let now = Instant::now();
        if now < self.next_publish {
            return;
        }
        if now >= self.next_load {
            self.load = data_load(node).await;
            self.next_load = now + LOAD_INTERVAL;
        }
        publish(node, self.load);
        self.next_publish = now + PUBLISH_INTERVAL;
        if now >= self.next_rejoin && alone(node) {
            // Cut off from everyone for longer than the dead memory: the state machine has
            // forgotten its peers, so start over from the seeds.
            self.next_rejoin = now + REJOIN_INTERVAL;
            let gossip = &node.cluster.gossip;
            let out = gossip
                .swim()
                .join(gossip.seeds().iter().cloned(), gossip.now_ms());
            act(node, socket, sealer, out).await;
        }
    }
}

/// Completes once `stop` is true (or its sender is gone). The watch's guard stays inside, so
/// the caller's future stays `Send`.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
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
        on_event(node, event).await;
    }
    let gossip = &node.cluster.gossip;
    let swim = gossip.swim();
    gossip.refresh(&swim);
    node.metrics.record_membership(&swim);
}

async fn on_event(node: &Arc<Node>, event: Event) {
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
                on_metadata(node, &from.node, &key, &value).await;
            }
        }
    }
}

async fn on_metadata(node: &Arc<Node>, from: &str, key: &str, value: &str) {
    if key == "created" {
        if let Some(created) = metadata::created(value) {
            let (node2, from2) = (node.clone(), from.to_owned());
            let learned =
                tokio::task::spawn_blocking(move || node2.cluster.learn_node(&from2, created))
                    .await;
            match learned {
                Ok(Ok(true)) => info!(node = node.id(), member = from, "member joined the ring"),
                Ok(Ok(false)) => {}
                Ok(Err(error)) => {
                    warn!(node = node.id(), member = from, %error, "cannot add a member to the ring")
                }
                Err(error) => warn!(node = node.id(), %error, "roster update failed"),
            }
        }
    } else if key == "http" {
        if let Ok(addr) = value.parse::<SocketAddr>() {
            node.cluster.directory.set(from, addr);
        }
    } else if key.starts_with(TABLE_PREFIX) {
        match metadata::table(value) {
            Ok(table) if node.schema.get(&table.name).is_none() => {
                let node2 = node.clone();
                let applied =
                    tokio::task::spawn_blocking(move || node2.schema.apply(&node2.store, &table))
                        .await;
                if let Ok(Err(error)) = applied {
                    warn!(node = node.id(), peer = from, %error, "cannot take a table from a peer");
                }
            }
            Ok(_) => {}
            Err(error) => {
                warn!(node = node.id(), peer = from, %key, %error, "a peer published a table that does not parse")
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
fn publish(node: &Node, load: Option<(u64, u64)>) {
    let ring = node.cluster.ring();
    let tables = node.schema.list();
    let wanted = metadata::publish(&Facts {
        http: node.config.node.listen.to_string(),
        created_at_ms: node.identity.created_at_ms,
        in_ring: ring.contains(&node.id().to_owned()),
        ring_epoch: ring.epoch(),
        tables: &tables,
        load,
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

/// Keys and bytes of the data column family, as RocksDB estimates them.
async fn data_load(node: &Arc<Node>) -> Option<(u64, u64)> {
    let store = node.store.clone();
    match tokio::task::spawn_blocking(move || store.stats(ColumnFamily::Data)).await {
        Ok(Ok(stats)) => Some((stats.keys, stats.live_bytes)),
        _ => None,
    }
}
