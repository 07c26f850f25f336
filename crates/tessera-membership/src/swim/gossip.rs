//! Metadata gossip rounds: the scuttlebutt SYN / SYN-ACK / ACK exchange over the SWIM socket.
//!
//! Every `gossip_interval_ms` this process bumps its heartbeat and sends its digest to
//! `gossip_fanout` random live members. The digest and delta of each step are cut to the datagram
//! (a SYN-ACK gives its digest at most half), and membership updates ride along in what is left.
//! Only processes SWIM knows are admitted, so metadata cannot resurrect a forgotten member, and a
//! rise in a node's heartbeat feeds its phi detector.

use super::Swim;
use crate::codec::encoded_size;
use crate::metadata::{Delta, Digest};
use crate::{Body, Event};
use rand::seq::index::sample;

impl Swim {
    pub(super) fn tick_gossip(&mut self, now: u64) {
        let interval = self.config.gossip_interval_ms;
        if interval == 0 || now < self.timers.gossip {
            return;
        }
        self.timers.gossip = if now - self.timers.gossip >= interval {
            now + interval
        } else {
            self.timers.gossip + interval
        };
        self.metadata.beat();
        let peers: Vec<String> = self.live_members().map(|m| m.id.addr.clone()).collect();
        let fanout = self.config.gossip_fanout.min(peers.len());
        let picked: Vec<String> = sample(&mut self.rng, peers.len(), fanout)
            .into_iter()
            .map(|i| peers[i].clone())
            .collect();
        for addr in picked {
            let shell = self.shell(Body::GossipSyn {
                digest: Digest::default(),
            });
            // The shell already counts the empty digest's bytes.
            let budget = self.room_after(&shell) + encoded_size(&Digest::default());
            let digest = self.metadata.digest(budget, &mut self.rng);
            self.send(&addr, Body::GossipSyn { digest }, Vec::new());
        }
    }

    pub(super) fn on_syn(&mut self, from_addr: &str, digest: Digest) {
        let shell = self.shell(Body::GossipSynAck {
            digest: Digest::default(),
            delta: Delta::default(),
        });
        let budget = self.room_after(&shell)
            + encoded_size(&Digest::default())
            + encoded_size(&Delta::default());
        let ours = self.metadata.digest(budget / 2, &mut self.rng);
        let left = budget.saturating_sub(crate::metadata::digest_len(&ours));
        let delta = self.metadata.delta_for(&digest, left, &mut self.rng);
        let body = Body::GossipSynAck {
            digest: ours,
            delta,
        };
        self.send(from_addr, body, Vec::new());
    }

    pub(super) fn on_syn_ack(&mut self, from_addr: &str, digest: Digest, delta: Delta, now: u64) {
        self.merge_delta(delta, now);
        let shell = self.shell(Body::GossipAck {
            delta: Delta::default(),
        });
        let budget = self.room_after(&shell) + encoded_size(&Delta::default());
        let delta = self.metadata.delta_for(&digest, budget, &mut self.rng);
        if !delta.nodes.is_empty() {
            self.send(from_addr, Body::GossipAck { delta }, Vec::new());
        }
    }

    pub(super) fn merge_delta(&mut self, delta: Delta, now: u64) {
        let members = &self.members;
        let report = self.metadata.merge(delta, |key| {
            members
                .get(&key.node)
                .is_some_and(|m| m.id.generation == key.generation)
        });
        for key in report.beats {
            let live = self
                .members
                .get(&key.node)
                .is_some_and(|m| m.id.generation == key.generation && m.state.is_live());
            if let (true, Some(d)) = (live, self.detectors.get_mut(&key.node)) {
                d.heartbeat(now);
            }
        }
        for (node, keys) in report.changed {
            self.out.events.push(Event::MetadataChanged { node, keys });
        }
    }
}
