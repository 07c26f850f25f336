//! Building outgoing datagrams within `Config::max_payload`.
//!
//! A message's body is sized first; the updates that must go with it (a refutation, the buddy
//! suspicion) come next, and pending dissemination fills whatever room is left. Every item is
//! measured before it is added, so the encoded message never exceeds the bound; the final check
//! is a guard, not the mechanism.
//!
//! Most news waits in the piggyback queue, but the news every member must act on at once (a
//! death this process declared, its own leave) is also sent straight to each live member, one
//! small `Updates` datagram apiece, exactly once.

use super::Swim;
use crate::codec::encoded_size;
use crate::{Body, Datagram, Message, Update};

/// Room for a vector's length prefix growing past one byte (fewer than 16 384 items).
const LEN_SLACK: usize = 1;

impl Swim {
    /// Sends `body` to `to`, with `first` and then pending updates piggybacked as room allows.
    pub(super) fn send(&mut self, to: &str, body: Body, first: Vec<Update>) {
        let mut message = Message {
            from: self.me.clone(),
            incarnation: self.incarnation,
            body,
            updates: Vec::new(),
        };
        let mut room = self.room_after(&message);
        let mut skip: Vec<String> = Vec::new();
        for u in first {
            let size = encoded_size(&u);
            if size <= room {
                room -= size;
                skip.push(u.id.node.clone());
                message.updates.push(u);
            }
        }
        let limit = self.config.retransmit_limit(self.live_count() + 1);
        let skip: Vec<&str> = skip.iter().map(String::as_str).collect();
        let piggyback = self.broadcasts.select(room, limit, &skip);
        message.updates.extend(piggyback);
        self.emit(to, message);
    }

    /// Sends `notice` in one `Updates` datagram to every live member (Alive or Suspect), with
    /// pending updates filling the rest of each. The caller queues `notice` for piggybacking too:
    /// a lost datagram is covered by dissemination, and the notice is never repeated from here.
    pub(super) fn tell_live_members(&mut self, notice: &Update) {
        let addrs: Vec<String> = self.live_members().map(|m| m.id.addr.clone()).collect();
        for addr in addrs {
            self.send(&addr, Body::Updates, vec![notice.clone()]);
        }
    }

    /// Bytes left for updates in `message` (whose `updates` are empty).
    pub(super) fn room_after(&self, message: &Message) -> usize {
        self.config
            .max_payload
            .saturating_sub(message.encoded_len() + LEN_SLACK)
    }

    /// A message with `body` and no updates, for sizing a body's parts.
    pub(super) fn shell(&self, body: Body) -> Message {
        Message {
            from: self.me.clone(),
            incarnation: self.incarnation,
            body,
            updates: Vec::new(),
        }
    }

    fn emit(&mut self, to: &str, mut message: Message) {
        let max = self.config.max_payload;
        let mut payload = message.encode();
        if payload.len() > max {
            message.updates.clear();
            payload = message.encode();
            if payload.len() > max {
                return;
            }
        }
        self.counters.messages_sent += 1;
        self.counters.bytes_sent += payload.len() as u64;
        self.counters.updates_sent += message.updates.len() as u64;
        self.out.send.push(Datagram {
            to: to.to_string(),
            payload,
        });
    }

    /// Sends this process's full member list (itself, live members, and remembered Dead and Left
    /// ones so the receiver recognises stale rumours), in as many datagrams as it takes. Only the
    /// first asks for a reply.
    pub(super) fn send_sync(&mut self, to: &str, reply: bool) {
        let mut all = vec![self.self_update()];
        all.extend(self.members.values().map(|m| Update {
            id: m.id.clone(),
            incarnation: m.incarnation,
            state: m.state,
            by: None,
        }));
        let room = self.room_after(&self.shell(Body::Sync {
            members: Vec::new(),
            reply,
        }));
        let mut chunks: Vec<Vec<Update>> = vec![Vec::new()];
        let mut left = room;
        for u in all {
            let size = encoded_size(&u);
            if size > room {
                continue;
            }
            if size > left {
                chunks.push(Vec::new());
                left = room;
            }
            left -= size;
            if let Some(chunk) = chunks.last_mut() {
                chunk.push(u);
            }
        }
        for (i, members) in chunks.into_iter().enumerate() {
            let reply = reply && i == 0;
            self.send(to, Body::Sync { members, reply }, Vec::new());
        }
    }
}
