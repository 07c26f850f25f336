//! Whole-cluster behaviour under failures, loss, slowness and partitions.
//!
//! Sizes 5, 20 and 100 throughout. Debug builds are slow, so the longest runs disable what they
//! do not test (metadata gossip in the hour-long loss run at 100 members) and use a coarser
//! maximum tick; every such choice is noted at the test.

use super::*;
use crate::Config;

const SIZES: [usize; 3] = [5, 20, 100];

/// A converged cluster of `n`.
fn cluster(n: usize, seed: u64, config: &Config) -> Sim {
    let mut sim = Sim::new(seed);
    sim.start_cluster(n, config);
    let took = sim.run_until_converged(250, 120_000);
    assert!(took.is_some(), "{n} members did not converge (seed {seed})");
    sim
}

/// The defaults with a coarser tick, for long runs (ticks still come at every deadline).
fn coarse() -> Config {
    Config {
        max_tick_interval_ms: 1000,
        stall_threshold_ms: 5000,
        ..Config::default()
    }
}

fn assert_sizes(sim: &Sim, config: &Config) {
    assert!(
        sim.max_datagram <= config.max_payload,
        "a {}-byte datagram",
        sim.max_datagram
    );
}

fn events_about<'a>(
    sim: &'a Sim,
    node: &'a str,
    pick: fn(&Event) -> Option<&MemberId>,
) -> impl Iterator<Item = &'a Record> + 'a {
    sim.log
        .iter()
        .filter(move |r| pick(&r.event).is_some_and(|id| id.node == node))
}

/// Kills one member of a converged cluster and returns (first detection, detection by all), in
/// ms after the kill.
fn detect_kill(sim: &mut Sim, victim: usize, limit: u64) -> (u64, u64) {
    let start = sim.now();
    let name = Sim::name(victim);
    sim.kill(victim);
    let survivors: Vec<usize> = sim.up();
    let all_down = |sim: &Sim| {
        survivors.iter().all(|&i| {
            sim.swim(i)
                .member(&name)
                .is_some_and(|m| !m.state.is_live())
        })
    };
    while !all_down(sim) {
        sim.run_for(50);
        assert!(
            sim.now() - start <= limit,
            "{name} not declared dead by all within {limit} ms"
        );
    }
    let downs: Vec<u64> = sim
        .downs_of(&name)
        .into_iter()
        .filter(|&(at, _)| at >= start)
        .map(|(at, _)| at - start)
        .collect();
    let others = sim
        .downs()
        .into_iter()
        .filter(|r| match &r.event {
            Event::MemberDown(id) => id.node != name,
            _ => false,
        })
        .count();
    assert_eq!(others, 0, "only the victim goes down");
    (
        downs.iter().copied().min().unwrap_or(0),
        downs.iter().copied().max().unwrap_or(0),
    )
}

#[test]
fn a_killed_member_is_declared_dead_by_everyone_within_the_bound() {
    let config = Config::default();
    for n in SIZES {
        let bound = config.detection_bound_ms(n);
        let seeds = if n == 100 { 1 } else { 4 };
        for seed in 0..seeds {
            let mut sim = cluster(n, seed, &config);
            sim.run_for(5000);
            let victim = 1 + (seed as usize * 7) % (n - 1);
            let (first, all) = detect_kill(&mut sim, victim, bound);
            assert!(all <= bound, "n={n}: {all} ms > bound {bound} ms");
            // The typical case is far inside the bound: the first detector needs about
            // T/2 + T + max(n), the rest hear the rumour.
            let (_, max) = config.suspicion_timeouts_ms(n);
            assert!(
                first <= 3 * config.probe_interval_ms + max,
                "n={n}: first {first} ms"
            );
            assert_sizes(&sim, &config);
        }
    }
}

#[test]
fn three_member_cluster_meets_the_runtime_detection_targets() {
    // The runtime's target after kill -9 of one of 3: median <= 3 s, max <= 6 s.
    let config = Config::default();
    let mut times = Vec::new();
    for seed in 0..40 {
        let mut sim = cluster(3, 100 + seed, &config);
        sim.run_for(3000 + seed * 37);
        let (_, all) = detect_kill(
            &mut sim,
            1 + seed as usize % 2,
            config.detection_bound_ms(3),
        );
        times.push(all);
    }
    times.sort_unstable();
    let median = times[times.len() / 2];
    let max = times[times.len() - 1];
    assert!(median <= 3000, "median {median} ms: {times:?}");
    assert!(max <= 6000, "max {max} ms: {times:?}");
}

#[test]
fn survivors_learn_of_a_death_within_one_network_delay_of_each_other() {
    // The member that declares the death tells every live member directly, so the last
    // survivor hears at most one network delay after the first; by piggyback alone it could be
    // a probe or gossip interval later. Deliveries are handled (and their events logged) at
    // their arrival instant and these members add no send delay, so the slack only guards
    // against an off-by-one in that bookkeeping.
    const SLACK_MS: u64 = 1;
    let config = Config::default();
    let n = 5;
    for seed in 0..8 {
        let mut sim = cluster(n, 70 + seed, &config);
        sim.run_for(3000 + seed * 113);
        let victim = 1 + seed as usize % (n - 1);
        let name = Sim::name(victim);
        let start = sim.now();
        sim.kill(victim);
        let survivors = sim.up();
        let bound = config.detection_bound_ms(n);
        let down_at = |sim: &Sim, i: usize| {
            sim.downs_of(&name)
                .into_iter()
                .find(|&(at, observer)| observer == i && at >= start)
                .map(|(at, _)| at)
        };
        while survivors.iter().any(|&i| down_at(&sim, i).is_none()) {
            sim.run_for(50);
            assert!(sim.now() - start <= bound, "seed {seed}: {name} not dead");
        }
        let times: Vec<u64> = survivors.iter().filter_map(|&i| down_at(&sim, i)).collect();
        let first = times.iter().copied().min().unwrap_or(0);
        let last = times.iter().copied().max().unwrap_or(0);
        let allowed = sim.delay_ms.1 + SLACK_MS;
        assert!(
            last - first <= allowed,
            "seed {seed}: the survivors saw {name} die {} ms apart (allowed {allowed}): {times:?}",
            last - first
        );
        assert_eq!(
            sim.downs().len(),
            survivors.len(),
            "only the victim goes down"
        );
    }
}

/// A full simulated hour with 10 % loss and no failures: nobody is declared dead.
fn no_false_deaths_with_ten_percent_loss(n: usize, minutes: u64, config: Config) {
    let mut sim = cluster(n, 7 + n as u64, &config);
    sim.loss = 0.10;
    sim.run_for(minutes * 60 * 1000);
    let downs = sim.downs();
    assert!(
        downs.is_empty(),
        "n={n}: false deaths {:?}",
        &downs[..downs.len().min(5)]
    );
    let refuted: u64 = (0..n)
        .map(|i| sim.swim(i).counters().false_suspicions_refuted)
        .sum();
    assert!(
        refuted > 0,
        "n={n}: loss never caused a suspicion to refute"
    );
    sim.loss = 0.0;
    assert!(sim.run_until_converged(500, 60_000).is_some());
    assert_sizes(&sim, &config);
}

#[test]
fn no_false_deaths_with_ten_percent_loss_for_an_hour_5() {
    no_false_deaths_with_ten_percent_loss(5, 60, coarse());
}

#[test]
fn no_false_deaths_with_ten_percent_loss_for_an_hour_20() {
    no_false_deaths_with_ten_percent_loss(20, 60, coarse());
}

#[test]
fn no_false_deaths_with_ten_percent_loss_for_half_an_hour_100() {
    // Half an hour with metadata gossip off, to keep the suite's debug build under a minute on
    // a shared 2-core machine: at 100 members gossip's digests cost more than all of SWIM. SWIM
    // then also lacks the gossip heartbeats' phi evidence, so its own probing carries
    // everything. The full hour is `no_false_deaths_for_an_hour_100` (ignored by default; about
    // 27 s in a debug build).
    let config = Config {
        gossip_interval_ms: 0,
        ..coarse()
    };
    no_false_deaths_with_ten_percent_loss(100, 30, config);
}

#[test]
#[ignore]
fn no_false_deaths_for_an_hour_100() {
    let config = Config {
        gossip_interval_ms: 0,
        ..coarse()
    };
    no_false_deaths_with_ten_percent_loss(100, 60, config);
}

#[test]
fn a_slow_member_is_suspected_and_refutes_but_is_not_declared_dead() {
    // Everything the slow member sends leaves late by 100 ms more than the probe timeout up to
    // 100 ms more than the probe period: always too late for a direct ack, too late for the
    // whole probe about a quarter of the time.
    let config = Config::default();
    let late = (
        config.probe_timeout_ms + 100,
        config.probe_interval_ms + 100,
    );
    for n in SIZES {
        let minutes = if n == 100 { 1 } else { 5 };
        let mut sim = cluster(n, 3 + n as u64, &config);
        let slow = n - 1;
        sim.slow(slow, late);
        sim.run_for(minutes * 60 * 1000);
        let name = Sim::name(slow);
        let suspected = events_about(&sim, &name, |e| match e {
            Event::MemberSuspect(id) => Some(id),
            _ => None,
        })
        .count();
        let refuted = events_about(&sim, &name, |e| match e {
            Event::MemberRefuted(id) => Some(id),
            _ => None,
        })
        .count();
        assert!(
            suspected > 0 && refuted > 0,
            "n={n}: {suspected} suspicions, {refuted} refuted"
        );
        assert!(sim.swim(slow).counters().refutations > 0);
        let downs = sim.downs();
        assert!(
            downs.is_empty(),
            "n={n}: {:?}",
            &downs[..downs.len().min(5)]
        );
        assert_sizes(&sim, &config);
    }
}

#[test]
fn ping_req_keeps_a_member_alive_across_a_cut_link() {
    let config = Config::default();
    for n in SIZES {
        let mut sim = cluster(n, 11 + n as u64, &config);
        sim.cut(0, 1);
        let minutes = if n == 100 { 1 } else { 3 };
        sim.run_for(minutes * 60 * 1000);
        assert!(sim.downs().is_empty());
        let suspicions = sim
            .log
            .iter()
            .filter(|r| matches!(r.event, Event::MemberSuspect(_)))
            .count();
        assert_eq!(suspicions, 0, "n={n}: relays answered for the cut link");
        assert!(sim.swim(0).counters().ping_reqs_sent > 0);
        assert_sizes(&sim, &config);
    }
}

#[test]
fn after_a_partition_heals_everyone_converges_on_one_view() {
    for n in SIZES {
        let mut config = Config::default();
        if n == 100 {
            config.gossip_interval_ms = 0;
        }
        let mut sim = cluster(n, 5 + n as u64, &config);
        let (left, right): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| i % 2 == 0);
        sim.partition(&[&left, &right]);
        // Until each side has declared the whole other side dead.
        let split = |sim: &Sim| {
            left.iter().chain(&right).all(|&i| {
                let other = if i % 2 == 0 { &right } else { &left };
                other.iter().all(|&j| {
                    sim.swim(i)
                        .member(&Sim::name(j))
                        .is_some_and(|m| m.state == State::Dead)
                })
            })
        };
        let start = sim.now();
        while !split(&sim) {
            sim.run_for(500);
            assert!(
                sim.now() - start < 10 * 60 * 1000,
                "n={n}: sides never split"
            );
        }
        sim.heal();
        let took = sim.run_until_converged(500, 5 * 60 * 1000);
        assert!(took.is_some(), "n={n}: no single view after the heal");
        // And it stays one view.
        sim.run_for(30_000);
        assert!(sim.converged());
        assert_sizes(&sim, &config);
    }
}

#[test]
fn metadata_reaches_everyone_in_logarithmic_rounds() {
    // Push-pull with fanout 2 spreads in about log_5(n) + ln ln n rounds; the assertion allows
    // c = 2, k = 2: rounds <= 2 log2(n) + 2.
    let config = Config::default();
    for n in SIZES {
        let seeds = if n == 100 { 2 } else { 5 };
        for seed in 0..seeds {
            let mut sim = cluster(n, 20 + seed, &config);
            sim.run_for(3000);
            let writer = (seed as usize * 3) % n;
            let start = sim.now();
            sim.set_metadata(writer, "table:users", r#"{"columns":["id","name"]}"#);
            let name = Sim::name(writer);
            let everywhere = |sim: &Sim| {
                (0..n).all(|i| {
                    sim.swim(i)
                        .metadata_of(&name)
                        .is_some_and(|s| s.get("table:users").is_some())
                })
            };
            while !everywhere(&sim) {
                sim.run_for(50);
                assert!(sim.now() - start < 60_000, "n={n}: never spread");
            }
            let rounds = (sim.now() - start).div_ceil(config.gossip_interval_ms);
            let allowed = (2.0 * (n as f64).log2() + 2.0).floor() as u64;
            assert!(rounds <= allowed, "n={n}: {rounds} rounds > {allowed}");
            assert_sizes(&sim, &config);
        }
    }
}

#[test]
fn a_restarted_member_rejoins_with_a_new_generation() {
    let config = Config::default();
    for n in SIZES {
        let mut sim = cluster(n, 30 + n as u64, &config);
        // Declared dead first, then back.
        let victim = 1;
        detect_kill(&mut sim, victim, config.detection_bound_ms(n));
        sim.restart(victim, 2, config.clone(), &[0]);
        assert!(sim.run_until_converged(250, 60_000).is_some(), "n={n}");
        // Restarted before anyone noticed: the new generation supersedes the live old one.
        let quick = 2;
        sim.kill(quick);
        sim.restart(quick, 5, config.clone(), &[0]);
        assert!(sim.run_until_converged(250, 60_000).is_some(), "n={n}");
        for i in sim.up() {
            if i == quick {
                continue;
            }
            let m = sim.swim(i).member(&Sim::name(quick)).unwrap();
            assert_eq!((m.id.generation, m.state), (5, State::Alive));
        }
        let ups = events_about(&sim, "n2", |e| match e {
            Event::MemberUp(id) if id.generation == 5 => Some(id),
            _ => None,
        });
        assert_eq!(ups.count(), n - 1);
        assert_sizes(&sim, &config);
    }
}

#[test]
fn a_member_that_leaves_is_seen_leaving_not_failing() {
    let config = Config::default();
    for n in SIZES {
        let mut sim = cluster(n, 40 + n as u64, &config);
        sim.leave(1);
        sim.run_for(5000);
        for i in sim.up() {
            if i == 1 {
                continue;
            }
            let m = sim.swim(i).member("n1").unwrap();
            assert_eq!(m.state, State::Left, "n={n} at member {i}");
        }
        let lefts = events_about(&sim, "n1", |e| match e {
            Event::MemberLeft(id) => Some(id),
            _ => None,
        });
        assert_eq!(lefts.count(), n - 1);
        sim.kill(1);
        sim.run_for(30_000);
        assert!(sim.downs().is_empty());
    }
}

#[test]
fn a_paused_member_accuses_nobody_when_it_resumes() {
    let config = Config::default();
    for n in SIZES {
        let mut sim = cluster(n, 50 + n as u64, &config);
        let paused = n - 1;
        sim.pause(paused, 15_000);
        sim.run_for(15_000);
        assert!(sim.run_until_converged(250, 120_000).is_some(), "n={n}");
        let accused: Vec<&Record> = sim
            .downs()
            .into_iter()
            .filter(|r| r.observer == paused)
            .collect();
        assert!(accused.is_empty(), "n={n}: {accused:?}");
        assert!(sim.swim(paused).counters().stalls >= 1);
    }
}

#[test]
fn idle_traffic_matches_the_configured_rate() {
    let config = Config::default();
    for n in [3, 5, 20] {
        let mut sim = cluster(n, 60 + n as u64, &config);
        sim.run_for(30_000);
        let before = sim.datagrams;
        let minutes = 5;
        sim.run_for(minutes * 60_000);
        let rate = (sim.datagrams - before) as f64 / (n as f64 * minutes as f64 * 60.0);
        let expected = config.idle_messages_per_second(n);
        assert!(rate <= 20.0, "n={n}: {rate} datagrams/s sent per member");
        assert!(
            rate <= expected * 1.15 + 0.5,
            "n={n}: {rate}/s against {expected}/s expected"
        );
    }
}
