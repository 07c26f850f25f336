//! The state machine's rules, one at a time, with hand-made messages.

use super::*;
use crate::{Datagram, Event, MESSAGE_FORMAT_VERSION};
use proptest::prelude::*;

fn id(n: &str) -> MemberId {
    MemberId::new(n, format!("{n}:1"), 1)
}

/// The defaults, but phi never expedites a probe: these tests stage every probe themselves.
fn config() -> Config {
    let mut c = Config::default();
    c.phi.threshold = 1e9;
    c
}

fn swim(n: &str) -> Swim {
    Swim::new(id(n), config(), 1).unwrap()
}

fn msg(from: &str, incarnation: u64, body: Body, updates: Vec<Update>) -> Message {
    Message {
        from: id(from),
        incarnation,
        body,
        updates,
    }
}

fn update(n: &str, incarnation: u64, state: State, by: Option<&str>) -> Update {
    Update {
        id: id(n),
        incarnation,
        state,
        by: by.map(String::from),
    }
}

fn decoded(out: &Output) -> Vec<(String, Message)> {
    out.send
        .iter()
        .map(|d| (d.to.clone(), Message::decode(&d.payload).unwrap()))
        .collect()
}

/// `s` hears from each of `nodes` (a `Updates` message, answered by nothing).
fn know(s: &mut Swim, nodes: &[&str], now: u64) {
    for n in nodes {
        s.handle_message(&id(n).addr, msg(n, 0, Body::Updates, vec![]), now);
    }
}

fn state_of(s: &Swim, n: &str) -> Option<(u64, u64, State)> {
    s.member(n)
        .map(|m| (m.id.generation, m.incarnation, m.state))
}

#[test]
fn rejects_bad_identities_and_configs() {
    assert!(Swim::new(MemberId::new("", "a:1", 1), Config::default(), 0).is_err());
    assert!(Swim::new(MemberId::new("a", "x".repeat(200), 1), Config::default(), 0).is_err());
    let bad = Config {
        probe_interval_ms: 0,
        ..Config::default()
    };
    assert!(Swim::new(id("a"), bad, 0).is_err());
}

#[test]
fn join_needs_only_seed_addresses() {
    let mut a = swim("a");
    let mut b = swim("b");
    let out = a.join(["b:1", "a:1", "b:1"], 0);
    let sent = decoded(&out);
    assert_eq!(sent.len(), 1, "own address and duplicates are dropped");
    assert_eq!(sent[0].0, "b:1");
    assert_eq!(sent[0].1.body, Body::Join);
    let reply = b.handle("a:1", &out.send[0].payload, 1).unwrap();
    assert_eq!(reply.events, vec![Event::MemberUp(id("a"))]);
    let (to, sync) = &decoded(&reply)[0];
    assert_eq!(to, "a:1");
    assert!(matches!(sync.body, Body::Sync { reply: false, .. }));
    let joined = a.handle("b:1", &reply.send[0].payload, 2).unwrap();
    assert_eq!(joined.events, vec![Event::MemberUp(id("b"))]);
    assert_eq!(state_of(&a, "b"), Some((1, 0, State::Alive)));
    // Joined: no more JOINs on retry.
    a.tick(3);
    let retry = a.tick(3 + a.config().join_retry_interval_ms);
    assert!(decoded(&retry).iter().all(|(_, m)| m.body != Body::Join));
}

#[test]
fn join_is_retried_while_alone() {
    let mut a = swim("a");
    a.join(["b:1"], 0);
    a.tick(0);
    let out = a.tick(a.config().join_retry_interval_ms);
    assert!(decoded(&out)
        .iter()
        .any(|(to, m)| to == "b:1" && m.body == Body::Join));
}

#[test]
fn a_ping_is_acked_to_its_source_address() {
    let mut a = swim("a");
    let out = a.handle_message("10.9.9.9:5", msg("b", 0, Body::Ping { seq: 7 }, vec![]), 0);
    let sent = decoded(&out);
    assert_eq!(sent[0].0, "10.9.9.9:5");
    assert_eq!(sent[0].1.body, Body::Ack { seq: 7 });
    assert_eq!(out.events, vec![Event::MemberUp(id("b"))]);
}

#[test]
fn refutes_its_own_suspicion() {
    let mut a = swim("a");
    know(&mut a, &["b", "c"], 0);
    let rumour = update("a", 0, State::Suspect, Some("c"));
    let out = a.handle_message("b:1", msg("b", 0, Body::Updates, vec![rumour]), 1);
    assert_eq!(a.incarnation(), 1);
    assert_eq!(a.counters().refutations, 1);
    assert_eq!(
        a.local_health(),
        1,
        "refuting raises the local health multiplier"
    );
    let sent = decoded(&out);
    let refuted_to: Vec<&str> = sent.iter().map(|(to, _)| to.as_str()).collect();
    assert_eq!(
        refuted_to,
        vec!["b:1", "c:1"],
        "the teller and the suspecter"
    );
    for (_, m) in &sent {
        assert!(m.updates.contains(&update("a", 1, State::Alive, None)));
        assert_eq!(m.incarnation, 1);
    }
    // An older rumour changes nothing.
    let stale = update("a", 0, State::Dead, None);
    let out = a.handle_message("b:1", msg("b", 0, Body::Updates, vec![stale]), 2);
    assert!(out.send.is_empty());
    assert_eq!(a.incarnation(), 1);
    // A death at the current incarnation is refuted too.
    let death = update("a", 1, State::Dead, None);
    a.handle_message("b:1", msg("b", 0, Body::Updates, vec![death]), 3);
    assert_eq!(a.incarnation(), 2);
}

#[test]
fn a_higher_incarnation_clears_a_suspicion() {
    let mut a = swim("a");
    know(&mut a, &["b", "c"], 0);
    let out = a.handle_message(
        "c:1",
        msg(
            "c",
            0,
            Body::Updates,
            vec![update("b", 0, State::Suspect, Some("c"))],
        ),
        1,
    );
    assert_eq!(out.events, vec![Event::MemberSuspect(id("b"))]);
    // The same incarnation cannot refute...
    a.handle_message(
        "c:1",
        msg(
            "c",
            0,
            Body::Updates,
            vec![update("b", 0, State::Alive, None)],
        ),
        2,
    );
    assert_eq!(state_of(&a, "b"), Some((1, 0, State::Suspect)));
    // ...the member's own higher one can, even as the sender's incarnation.
    let out = a.handle_message("b:1", msg("b", 1, Body::Updates, vec![]), 3);
    assert_eq!(out.events, vec![Event::MemberRefuted(id("b"))]);
    assert_eq!(a.counters().false_suspicions_refuted, 1);
    assert_eq!(state_of(&a, "b"), Some((1, 1, State::Alive)));
}

#[test]
fn dead_members_are_remembered_so_stale_rumours_cannot_revive_them() {
    let mut a = swim("a");
    know(&mut a, &["b", "c"], 0);
    let out = a.handle_message(
        "c:1",
        msg(
            "c",
            0,
            Body::Updates,
            vec![update("b", 2, State::Dead, None)],
        ),
        1,
    );
    assert_eq!(out.events, vec![Event::MemberDown(id("b"))]);
    for stale in [
        update("b", 2, State::Alive, None),
        update("b", 1, State::Alive, None),
        update("b", 5, State::Suspect, Some("c")),
    ] {
        let out = a.handle_message("c:1", msg("c", 0, Body::Updates, vec![stale]), 2);
        assert!(out.events.is_empty());
        assert_eq!(state_of(&a, "b"), Some((1, 2, State::Dead)));
    }
    // The dead member itself, still talking at an old incarnation, is told it is dead.
    let out = a.handle_message("b:1", msg("b", 2, Body::Ping { seq: 1 }, vec![]), 3);
    assert_eq!(state_of(&a, "b"), Some((1, 2, State::Dead)));
    let told = decoded(&out);
    assert!(told
        .iter()
        .any(|(to, m)| to == "b:1" && m.updates.contains(&update("b", 2, State::Dead, None))));
    // Its refutation brings it back.
    let out = a.handle_message("b:1", msg("b", 3, Body::Updates, vec![]), 4);
    assert_eq!(out.events, vec![Event::MemberUp(id("b"))]);
}

#[test]
fn dead_members_are_forgotten_after_the_memory_window() {
    let mut a = swim("a");
    know(&mut a, &["b", "c"], 0);
    a.set_metadata("k", "v");
    a.handle_message(
        "c:1",
        msg(
            "c",
            0,
            Body::Updates,
            vec![update("b", 0, State::Dead, None)],
        ),
        1,
    );
    let memory = a.config().dead_memory_ms;
    a.tick(2);
    let mut t = 2;
    while t < memory {
        t += 500;
        a.tick(t);
    }
    assert!(
        a.member("b").is_some(),
        "still remembered just before the window ends"
    );
    a.tick(memory + 2000);
    assert!(a.member("b").is_none());
    assert!(a.member("c").is_some());
}

#[test]
fn a_new_generation_supersedes_a_dead_or_live_record() {
    let mut a = swim("a");
    know(&mut a, &["b", "c"], 0);
    a.handle_message(
        "c:1",
        msg(
            "c",
            0,
            Body::Updates,
            vec![update("b", 4, State::Dead, None)],
        ),
        1,
    );
    let reborn = MemberId::new("b", "b:1", 2);
    let out = a.handle_message(
        "b:1",
        Message {
            from: reborn.clone(),
            incarnation: 0,
            body: Body::Updates,
            updates: vec![],
        },
        2,
    );
    assert_eq!(out.events, vec![Event::MemberUp(reborn.clone())]);
    assert_eq!(state_of(&a, "b"), Some((2, 0, State::Alive)));
    // The old generation, however high its incarnation, is ignored, even speaking for itself.
    let out = a.handle_message("b:1", msg("b", 99, Body::Ping { seq: 1 }, vec![]), 3);
    assert!(out.is_empty());
    assert_eq!(state_of(&a, "b"), Some((2, 0, State::Alive)));
    // A live record is replaced by a newer generation: down, then up.
    let third = MemberId::new("b", "b:2", 3);
    let claim = Update {
        id: third.clone(),
        incarnation: 0,
        state: State::Alive,
        by: None,
    };
    let out = a.handle_message("c:1", msg("c", 0, Body::Updates, vec![claim]), 4);
    assert_eq!(
        out.events,
        vec![Event::MemberDown(reborn), Event::MemberUp(third)]
    );
}

#[test]
fn leave_is_disseminated_and_final() {
    let mut a = swim("a");
    let mut b = swim("b");
    know(&mut a, &["b", "c"], 0);
    know(&mut b, &["a"], 0);
    let out = a.leave(1);
    assert!(a.has_left());
    assert_eq!(a.next_deadline(), None);
    let sent = decoded(&out);
    assert_eq!(sent.len(), 2, "every live member is told");
    let notice = update("a", 1, State::Left, None);
    assert!(sent.iter().all(|(_, m)| m.updates.contains(&notice)));
    let to_b = out.send.iter().find(|d| d.to == "b:1").unwrap();
    let seen = b.handle("a:1", &to_b.payload, 2).unwrap();
    assert!(seen.events.contains(&Event::MemberLeft(id("a"))));
    assert!(!seen
        .events
        .iter()
        .any(|e| matches!(e, Event::MemberDown(_))));
    // Nothing in its generation brings it back, and it answers pings with its Left record.
    b.handle_message(
        "c:1",
        msg(
            "c",
            0,
            Body::Updates,
            vec![update("a", 9, State::Alive, None)],
        ),
        3,
    );
    assert_eq!(state_of(&b, "a"), Some((1, 1, State::Left)));
    let answer = a.handle_message("c:1", msg("c", 0, Body::Ping { seq: 1 }, vec![]), 4);
    assert!(decoded(&answer)[0].1.updates.contains(&notice));
    assert!(a.tick(5000).is_empty());
}

/// Ticks `s` at every deadline up to `until`, collecting what it sends.
fn run(s: &mut Swim, until: u64) -> Vec<(u64, String, Message)> {
    let mut sent = Vec::new();
    while let Some(at) = s.next_deadline() {
        if at > until {
            break;
        }
        let out = s.tick(at);
        for (to, m) in decoded(&out) {
            sent.push((at, to, m));
        }
    }
    sent
}

fn first_ping(sent: &[(u64, String, Message)]) -> Option<(u64, String, u64)> {
    sent.iter().find_map(|(at, to, m)| match m.body {
        Body::Ping { seq } => Some((*at, to.clone(), seq)),
        _ => None,
    })
}

#[test]
fn local_health_rises_on_missed_nacks_and_stretches_probing() {
    let mut a = swim("a");
    know(&mut a, &["b", "c", "d"], 0);
    a.tick(0);
    let c = config();
    let mut sent = run(&mut a, c.probe_interval_ms - 1);
    let (at, target, seq) = first_ping(&sent).unwrap();
    sent.extend(run(&mut a, at + c.probe_timeout_ms));
    let ping_reqs: Vec<&(u64, String, Message)> = sent
        .iter()
        .filter(|(_, _, m)| matches!(m.body, Body::PingReq { seq: s, .. } if s == seq))
        .collect();
    assert_eq!(ping_reqs.len(), 2, "both other members relay");
    assert!(ping_reqs
        .iter()
        .all(|(t, _, _)| *t == at + c.probe_timeout_ms));
    // One relay NACKs, one is silent; the probe fails at the end of its period.
    let relay = &ping_reqs[0].1;
    let relay_node = relay.trim_end_matches(":1");
    a.handle_message(
        relay,
        msg(relay_node, 0, Body::Nack { seq }, vec![]),
        at + c.probe_timeout_ms + 10,
    );
    let period = c.probe_interval_ms;
    let ended = run(&mut a, at + period);
    assert_eq!(a.local_health(), 1, "one missed NACK");
    let target_node = target.trim_end_matches(":1");
    assert_eq!(a.member(target_node).unwrap().state, State::Suspect);
    assert_eq!(a.counters().suspicions_raised, 1);
    // The next probe's direct timeout is stretched to (1 + 1) x the probe timeout...
    let stretched = 2 * c.probe_timeout_ms;
    let mut sent = ended;
    sent.extend(run(&mut a, at + period + stretched - 1));
    let (next_at, next_target, next_seq) = first_ping(&sent).unwrap();
    assert_eq!(next_at, at + period);
    let is_req = |m: &Message| matches!(m.body, Body::PingReq { seq: s, .. } if s == next_seq);
    assert!(
        !sent.iter().any(|(_, _, m)| is_req(m)),
        "not at the unstretched 500 ms"
    );
    let sent = run(&mut a, next_at + stretched);
    assert!(sent
        .iter()
        .any(|(t, _, m)| *t == next_at + stretched && is_req(m)));
    // ...and a direct ack lowers the multiplier again.
    let node = next_target.trim_end_matches(":1");
    let ack = msg(node, 5, Body::Ack { seq: next_seq }, vec![]);
    a.handle_message(&next_target, ack, next_at + stretched + 10);
    assert_eq!(a.local_health(), 0);
}

#[test]
fn nacks_come_from_relays_whose_target_is_silent() {
    let mut r = swim("r");
    know(&mut r, &["a", "t"], 0);
    r.tick(0);
    let out = r.handle_message(
        "a:1",
        msg(
            "a",
            0,
            Body::PingReq {
                seq: 42,
                target: id("t"),
            },
            vec![],
        ),
        10,
    );
    let (to, ping) = &decoded(&out)[0];
    assert_eq!(to, "t:1");
    let Body::Ping { seq } = ping.body else {
        panic!("{ping:?}")
    };
    // An answer in time is forwarded...
    let fwd = r.handle_message("t:1", msg("t", 0, Body::Ack { seq }, vec![]), 20);
    assert!(decoded(&fwd)
        .iter()
        .any(|(to, m)| to == "a:1" && m.body == Body::Ack { seq: 42 }));
    // ...silence is NACKed after the nack timeout.
    r.handle_message(
        "a:1",
        msg(
            "a",
            0,
            Body::PingReq {
                seq: 43,
                target: id("t"),
            },
            vec![],
        ),
        100,
    );
    let nack_at = 100 + r.config().nack_timeout_ms;
    let sent = run(&mut r, nack_at);
    assert!(sent
        .iter()
        .any(|(_, to, m)| to == "a:1" && m.body == Body::Nack { seq: 43 }));
    assert_eq!(r.counters().nacks_sent, 1);
}

/// `a` with members b..f (n = 6: K = 3, timeouts 1-5 s), b suspected by c at `t0`.
fn suspected_b(t0: u64) -> Swim {
    let mut a = swim("a");
    know(&mut a, &["b", "c", "d", "e", "f"], 0);
    a.tick(0);
    a.handle_message(
        "c:1",
        msg(
            "c",
            0,
            Body::Updates,
            vec![update("b", 0, State::Suspect, Some("c"))],
        ),
        t0,
    );
    a
}

#[test]
fn suspicion_timeout_shrinks_with_independent_confirmations() {
    let t0 = 100;
    let mut a = suspected_b(t0);
    assert_eq!(a.suspicions["b"].deadline(), t0 + 5000);
    confirm_b(&mut a, "c", t0 + 10);
    assert_eq!(
        a.suspicions["b"].deadline(),
        t0 + 5000,
        "the first suspecter is no confirmation"
    );
    confirm_b(&mut a, "d", t0 + 20);
    assert_eq!(a.suspicions["b"].deadline(), t0 + 3000);
    confirm_b(&mut a, "e", t0 + 30);
    assert_eq!(a.suspicions["b"].deadline(), t0 + 1830);
    confirm_b(&mut a, "f", t0 + 40);
    assert_eq!(a.suspicions["b"].deadline(), t0 + 1000);
    // Fully confirmed: dead at the minimum (or when a probe of b in flight then ends), without
    // a verification probe.
    // Nobody answers in this test, so local health may stretch a probe of b in flight to 9 T.
    let until = t0 + 1000 + 9 * a.config().probe_interval_ms;
    let sent = run(&mut a, until);
    assert_eq!(a.member("b").unwrap().state, State::Dead);
    assert!(
        !sent.iter().any(|(at, to, m)| *at >= t0 + 1000
            && to == "b:1"
            && matches!(m.body, Body::Ping { .. })),
        "no verification ping"
    );
}

/// `by` tells `a` it suspects b too.
fn confirm_b(a: &mut Swim, by: &str, at: u64) {
    a.handle_message(
        &id(by).addr,
        msg(
            by,
            0,
            Body::Updates,
            vec![update("b", 0, State::Suspect, Some(by))],
        ),
        at,
    );
}

#[test]
fn a_death_is_sent_straight_to_every_live_member_once() {
    let t0 = 100;
    let mut a = suspected_b(t0);
    for (i, by) in ["d", "e", "f"].into_iter().enumerate() {
        confirm_b(&mut a, by, t0 + 10 * (i as u64 + 1));
    }
    // Nobody answers in this test, so local health may stretch a probe of b in flight to 9 T.
    let limit = t0 + 1000 + 9 * a.config().probe_interval_ms;
    let (at, out) = loop {
        let at = a.next_deadline().unwrap();
        assert!(at <= limit, "b never declared dead");
        let out = a.tick(at);
        if out.events.contains(&Event::MemberDown(id("b"))) {
            break (at, out);
        }
    };
    let death = update("b", 0, State::Dead, None);
    let sent = decoded(&out);
    for n in ["c", "d", "e", "f"] {
        let told = sent
            .iter()
            .any(|(to, m)| *to == id(n).addr && m.updates.contains(&death));
        assert!(told, "{n} is not told of the death in the declaring tick");
    }
    let max = a.config().max_payload;
    assert!(out.send.iter().all(|d| d.payload.len() <= max));
    // Sent once, not on every tick; later messages still piggyback it.
    let until = at + 3 * a.config().probe_interval_ms;
    let later = run(&mut a, until);
    let carrying: Vec<&Message> = later
        .iter()
        .map(|(_, _, m)| m)
        .filter(|m| m.updates.contains(&death))
        .collect();
    assert!(
        carrying.iter().all(|m| m.body != Body::Updates),
        "the direct notice was sent again"
    );
    assert!(!carrying.is_empty(), "the death left the piggyback queue");
}

/// The last ping to `b` in `sent`.
fn last_ping_to_b(sent: &[(u64, String, Message)]) -> Option<(u64, u64, &Message)> {
    sent.iter().rev().find_map(|(at, to, m)| match m.body {
        Body::Ping { seq } if to == "b:1" => Some((*at, seq, m)),
        _ => None,
    })
}

/// The probe of `b` in flight.
fn probe_of_b(a: &Swim) -> u64 {
    a.probes
        .iter()
        .find(|p| p.target.node == "b")
        .map(|p| p.seq)
        .expect("b is being probed")
}

#[test]
fn an_unconfirmed_suspicion_is_verified_before_death() {
    let t0 = 100;
    let deadline = t0 + 5000;
    // Nobody answers in this test, so local health may stretch a probe to 9 T.
    let long = 9 * config().probe_interval_ms;
    let mut a = suspected_b(t0);
    let mut sent = run(&mut a, deadline);
    assert_eq!(
        a.member("b").unwrap().state,
        State::Suspect,
        "not dead at the deadline"
    );
    assert!(a.suspicions["b"].verified);
    probe_of_b(&a);
    sent.extend(run(&mut a, deadline + 2 * long));
    let (_, _, ping) = last_ping_to_b(&sent).expect("b is probed");
    assert!(
        ping.updates
            .iter()
            .any(|u| u.id.node == "b" && u.state == State::Suspect),
        "the ping tells b it is suspected"
    );
    assert_eq!(
        a.member("b").unwrap().state,
        State::Dead,
        "dead when the verification fails"
    );

    // If b answers without refuting (it never heard), the suspicion starts over.
    let mut a = suspected_b(t0);
    run(&mut a, deadline);
    let seq = probe_of_b(&a);
    a.handle_message("b:1", msg("b", 0, Body::Ack { seq }, vec![]), deadline + 1);
    assert_eq!(a.member("b").unwrap().state, State::Suspect);
    assert_eq!(a.suspicions["b"].deadline(), deadline + 1 + 5000);
    // And its refutation in the ack clears it.
    let mut a = suspected_b(t0);
    run(&mut a, deadline);
    let seq = probe_of_b(&a);
    let out = a.handle_message("b:1", msg("b", 1, Body::Ack { seq }, vec![]), deadline + 1);
    assert_eq!(out.events, vec![Event::MemberRefuted(id("b"))]);
}

#[test]
fn a_stall_abandons_probes_instead_of_accusing() {
    let mut a = swim("a");
    know(&mut a, &["b", "c"], 0);
    a.tick(0);
    let first = a.config().probe_interval_ms - 1;
    let sent = run(&mut a, first);
    let (at, _, _) = first_ping(&sent).unwrap();
    // Nothing for 10 s while the probe was in flight: the process was frozen.
    let out = a.tick(at + 10_000);
    assert_eq!(a.counters().stalls, 1);
    assert!(out.events.is_empty());
    assert!(a.members().all(|m| m.state == State::Alive));
    assert_eq!(a.counters().probe_failures, 0);
}

#[test]
fn phi_flags_a_silent_member_before_swim_does() {
    let mut a = Swim::new(id("a"), Config::default(), 1).unwrap();
    for t in 0..30 {
        a.handle_message("b:1", msg("b", 0, Body::Updates, vec![]), t * 1000);
    }
    let last = 29_000;
    assert!(a.phi("b", last).unwrap() < 0.1);
    assert!(!a.is_likely_dead("b", last + 500));
    assert!(a.is_likely_dead("b", last + 10_000));
    assert_eq!(a.member("b").unwrap().state, State::Alive);
    assert!(a.is_likely_dead("zz", 0), "unknown nodes are avoided");
    assert!(!a.is_likely_dead("a", 0));
}

#[test]
fn garbage_is_an_error_and_changes_nothing() {
    let mut a = swim("a");
    assert!(a.handle("x:1", &[], 0).is_err());
    assert!(a.handle("x:1", &[9, 9, 9], 0).is_err());
    assert!(a
        .handle("x:1", &[MESSAGE_FORMAT_VERSION, 200, 1], 0)
        .is_err());
    assert_eq!(a.counters().decode_errors, 3);
    assert_eq!(a.members().count(), 0);
}

#[test]
fn metadata_changes_are_reported_and_gossiped() {
    let mut a = swim("a");
    let mut b = swim("b");
    know(&mut a, &["b"], 0);
    know(&mut b, &["a"], 0);
    b.set_metadata("status", "normal");
    a.tick(0);
    let sent = run(&mut a, 1000);
    let (_, to, syn) = sent
        .iter()
        .find(|(_, _, m)| matches!(m.body, Body::GossipSyn { .. }))
        .unwrap();
    assert_eq!(to, "b:1");
    let synack = b.handle_message("a:1", syn.clone(), 1000);
    let out = a.handle("b:1", &synack.send[0].payload, 1001).unwrap();
    assert!(out.events.contains(&Event::MetadataChanged {
        node: crate::metadata::NodeKey::new("b", 1),
        keys: vec!["status".into()],
    }));
    assert_eq!(a.metadata_of("b").unwrap().get("status"), Some("normal"));
}

fn long_name(i: usize, len: usize) -> String {
    format!("{i}-{}", "x".repeat(len))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn encoded_messages_never_exceed_the_max_payload(
        max_payload in 512usize..2000,
        members in 0usize..150,
        name_len in 1usize..100,
        keys in proptest::collection::vec((1usize..80, 0usize..600), 0..40),
        seed in any::<u64>(),
    ) {
        let config = Config { max_payload, ..Config::default() };
        let mut a = Swim::new(id("a"), config, seed).unwrap();
        for (i, (k, v)) in keys.iter().enumerate() {
            a.set_metadata(format!("{i}{}", "k".repeat(*k)), "v".repeat(*v));
        }
        let everyone: Vec<Update> = (0..members)
            .map(|i| Update {
                id: MemberId::new(long_name(i, name_len), long_name(i, name_len), i as u64),
                incarnation: i as u64,
                state: [State::Alive, State::Suspect, State::Dead, State::Left][i % 4],
                by: Some(long_name(i, name_len)),
            })
            .collect();
        let mut outs = Vec::new();
        outs.push(a.handle_message("z:1", msg("z", 0, Body::Sync { members: everyone, reply: true }, vec![]), 0));
        outs.push(a.handle_message("z:1", msg("z", 0, Body::Join, vec![]), 1));
        let all = crate::metadata::Digest { entries: vec![], complete: true };
        outs.push(a.handle_message("z:1", msg("z", 0, Body::GossipSyn { digest: all.clone() }, vec![]), 2));
        outs.push(a.handle_message("z:1", msg("z", 0, Body::GossipSynAck { digest: all, delta: Default::default() }, vec![]), 3));
        a.tick(4);
        let mut t = 4;
        while t < 20_000 {
            t = a.next_deadline().unwrap().max(t + 1);
            outs.push(a.tick(t));
        }
        outs.push(a.leave(t));
        let datagrams: Vec<&Datagram> = outs.iter().flat_map(|o| &o.send).collect();
        prop_assert!(!datagrams.is_empty());
        for d in datagrams {
            prop_assert!(d.payload.len() <= max_payload, "{} > {max_payload}", d.payload.len());
            prop_assert!(Message::decode(&d.payload).is_ok());
        }
    }

    #[test]
    fn random_datagrams_never_panic_the_state_machine(
        datagrams in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..30),
    ) {
        let mut a = swim("a");
        know(&mut a, &["b"], 0);
        for (i, bytes) in datagrams.iter().enumerate() {
            let mut versioned = bytes.clone();
            versioned.insert(0, MESSAGE_FORMAT_VERSION);
            let _ = a.handle("x:1", bytes, i as u64);
            let _ = a.handle("x:1", &versioned, i as u64);
            a.tick(i as u64 * 100);
        }
    }
}
