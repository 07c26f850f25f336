//! The seeded schedule of faults. Pure: the same seed, settings and node count always give the
//! same faults, victims and timings, which is what makes a run replayable (`--seed`).
//!
//! Faults come one at a time: a fault window, then a quiet gap, and so on until the chaos phase
//! ends. The kinds are drawn from a shuffled bag, so every enabled nemesis appears once before
//! any appears twice.
//!
//! Adding a nemesis (the ring change, once rebalancing exists): a variant of [`NemesisKind`]
//! with its name, an [`Action`] drawn in [`draw_action`], and its effect in `run::nemesis`.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::error::ChaosError;
use crate::grudge;

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NemesisKind {
    /// One node cut off from every other.
    Isolate,
    /// A minority cut off from a majority.
    Majority,
    /// Each node sees a different majority.
    MajoritiesRing,
    /// Two halves joined by one node.
    Bridge,
    /// Random halves.
    Halves,
    /// `kill -9` one node, restart it at the end of the window.
    Kill,
    /// `SIGSTOP` one node, `SIGCONT` at the end of the window.
    Pause,
    /// Delay, jitter and loss on links (tc netem).
    Slow,
    /// Random packet loss on links (iptables `statistic`).
    Lossy,
    /// `kill -9` one node, delete its data dir, restart it empty. Opt-in: without anti-entropy a
    /// wiped replica is refilled only by reads, so at most one wipe is scheduled per run.
    Wipe,
}

impl NemesisKind {
    pub const ALL: [NemesisKind; 10] = [
        NemesisKind::Isolate,
        NemesisKind::Majority,
        NemesisKind::MajoritiesRing,
        NemesisKind::Bridge,
        NemesisKind::Halves,
        NemesisKind::Kill,
        NemesisKind::Pause,
        NemesisKind::Slow,
        NemesisKind::Lossy,
        NemesisKind::Wipe,
    ];

    pub fn name(self) -> &'static str {
        match self {
            NemesisKind::Isolate => "isolate",
            NemesisKind::Majority => "majority",
            NemesisKind::MajoritiesRing => "majorities-ring",
            NemesisKind::Bridge => "bridge",
            NemesisKind::Halves => "halves",
            NemesisKind::Kill => "kill",
            NemesisKind::Pause => "pause",
            NemesisKind::Slow => "slow",
            NemesisKind::Lossy => "lossy",
            NemesisKind::Wipe => "wipe",
        }
    }

    pub fn is_partition(self) -> bool {
        matches!(
            self,
            NemesisKind::Isolate
                | NemesisKind::Majority
                | NemesisKind::MajoritiesRing
                | NemesisKind::Bridge
                | NemesisKind::Halves
        )
    }

    pub fn is_process(self) -> bool {
        matches!(
            self,
            NemesisKind::Kill | NemesisKind::Pause | NemesisKind::Wipe
        )
    }

    /// Parses a comma-separated list of kinds and groups: `partition` (the five partition
    /// shapes), `process` (kill, pause), `link` (slow, lossy), `all` (everything but wipe).
    pub fn parse_list(text: &str) -> Result<Vec<NemesisKind>, ChaosError> {
        let mut out: Vec<NemesisKind> = Vec::new();
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let group: Vec<NemesisKind> = match word {
                "all" => NemesisKind::ALL
                    .into_iter()
                    .filter(|k| *k != NemesisKind::Wipe)
                    .collect(),
                "partition" => NemesisKind::ALL
                    .into_iter()
                    .filter(|k| k.is_partition())
                    .collect(),
                "process" => vec![NemesisKind::Kill, NemesisKind::Pause],
                "link" => vec![NemesisKind::Slow, NemesisKind::Lossy],
                "none" => vec![],
                name => match NemesisKind::ALL.into_iter().find(|k| k.name() == name) {
                    Some(kind) => vec![kind],
                    None => {
                        let known: Vec<&str> = NemesisKind::ALL.iter().map(|k| k.name()).collect();
                        return Err(ChaosError::Usage(format!(
                            "unknown nemesis {name:?}: use all, partition, process, link, none, or {}",
                            known.join(", ")
                        )));
                    }
                },
            };
            for kind in group {
                if !out.contains(&kind) {
                    out.push(kind);
                }
            }
        }
        Ok(out)
    }
}

/// What a fault does, with its victims drawn.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Drop every packet between these pairs of nodes, both ways.
    Cut {
        pairs: Vec<(usize, usize)>,
        description: String,
    },
    Kill {
        node: usize,
    },
    Pause {
        node: usize,
    },
    Wipe {
        node: usize,
    },
    /// netem on these pairs, both ways.
    Slow {
        pairs: Vec<(usize, usize)>,
        delay_ms: u32,
        jitter_ms: u32,
        loss_percent: u32,
    },
    /// Random drops on these pairs, both ways.
    Lossy {
        pairs: Vec<(usize, usize)>,
        loss_percent: u32,
    },
}

impl Action {
    /// For people, with node names.
    pub fn description(&self) -> String {
        let name = |i: &usize| format!("n{}", i + 1);
        let pairs = |p: &[(usize, usize)]| {
            p.iter()
                .map(|(a, b)| format!("{}-{}", name(a), name(b)))
                .collect::<Vec<_>>()
                .join(" ")
        };
        match self {
            Action::Cut { description, .. } => description.clone(),
            Action::Kill { node } => format!("kill -9 {}", name(node)),
            Action::Pause { node } => format!("SIGSTOP {}", name(node)),
            Action::Wipe { node } => format!("kill -9 {}, wipe its data dir", name(node)),
            Action::Slow {
                pairs: p,
                delay_ms,
                jitter_ms,
                loss_percent,
            } => format!(
                "{delay_ms}±{jitter_ms} ms, {loss_percent}% loss on {}",
                pairs(p)
            ),
            Action::Lossy {
                pairs: p,
                loss_percent,
            } => format!("{loss_percent}% loss on {}", pairs(p)),
        }
    }

    /// The nodes it acts on.
    pub fn nodes(&self, n: usize) -> Vec<usize> {
        match self {
            Action::Kill { node } | Action::Pause { node } | Action::Wipe { node } => vec![*node],
            Action::Cut { pairs, .. }
            | Action::Slow { pairs, .. }
            | Action::Lossy { pairs, .. } => {
                let mut nodes: Vec<usize> = pairs.iter().flat_map(|(a, b)| [*a, *b]).collect();
                nodes.sort_unstable();
                nodes.dedup();
                nodes.retain(|i| *i < n);
                nodes
            }
        }
    }
}

/// One fault of the schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub index: u32,
    pub kind: NemesisKind,
    /// From the start of the workload.
    pub at: Duration,
    pub length: Duration,
    pub action: Action,
}

/// What the schedule is drawn from.
#[derive(Debug, Clone)]
pub struct ScheduleConfig {
    pub nodes: usize,
    pub kinds: Vec<NemesisKind>,
    /// Quiet time before the first fault.
    pub warmup: Duration,
    /// The chaos phase: no fault starts or lasts past it.
    pub chaos: Duration,
    /// Fault windows last between these (inclusive), in seconds.
    pub fault_secs: (u64, u64),
    /// Quiet gaps between faults last between these, in seconds.
    pub gap_secs: (u64, u64),
}

fn secs_between(rng: &mut StdRng, (lo, hi): (u64, u64)) -> Duration {
    let (lo, hi) = (lo.min(hi), lo.max(hi));
    // Tenths of a second, so windows do not all start on whole seconds.
    Duration::from_millis(rng.random_range(lo * 10..=hi * 10) * 100)
}

/// A random nonempty set of links from one node to some others.
fn links(rng: &mut StdRng, n: usize) -> Vec<(usize, usize)> {
    let hub = rng.random_range(0..n);
    let mut others: Vec<usize> = (0..n).filter(|&i| i != hub).collect();
    others.shuffle(rng);
    let count = rng.random_range(1..=others.len());
    let mut pairs: Vec<(usize, usize)> = others[..count]
        .iter()
        .map(|&o| (hub.min(o), hub.max(o)))
        .collect();
    pairs.sort_unstable();
    pairs
}

/// Draws the victims of one fault.
pub fn draw_action(kind: NemesisKind, n: usize, rng: &mut StdRng) -> Action {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    let cut = |p: grudge::Partition| Action::Cut {
        pairs: p.cut.into_iter().collect(),
        description: p.description,
    };
    match kind {
        NemesisKind::Isolate => cut(grudge::isolate(n, order[0])),
        NemesisKind::Majority => cut(grudge::majority_minority(&order)),
        NemesisKind::MajoritiesRing => cut(grudge::majorities_ring(&order)),
        NemesisKind::Bridge => cut(grudge::bridge(&order)),
        NemesisKind::Halves => cut(grudge::halves(&order)),
        NemesisKind::Kill => Action::Kill { node: order[0] },
        NemesisKind::Pause => Action::Pause { node: order[0] },
        NemesisKind::Wipe => Action::Wipe { node: order[0] },
        NemesisKind::Slow => {
            let delay_ms = rng.random_range(50..=200);
            Action::Slow {
                pairs: links(rng, n),
                delay_ms,
                jitter_ms: rng.random_range(0..=delay_ms / 2),
                loss_percent: rng.random_range(0..=10),
            }
        }
        NemesisKind::Lossy => Action::Lossy {
            pairs: links(rng, n),
            loss_percent: rng.random_range(20..=60),
        },
    }
}

/// Draws the whole schedule from `seed`.
pub fn plan(config: &ScheduleConfig, seed: u64) -> Vec<Planned> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    let mut kinds: Vec<NemesisKind> = config.kinds.clone();
    // The ring of majorities needs 4 nodes; with 3 it would cut nothing.
    if config.nodes < 4 {
        kinds.retain(|k| *k != NemesisKind::MajoritiesRing);
    }
    if kinds.is_empty() || config.nodes < 2 {
        return out;
    }
    let mut bag: Vec<NemesisKind> = Vec::new();
    let mut wiped = false;
    let mut t = config.warmup;
    loop {
        if bag.is_empty() {
            bag = kinds.clone();
            if wiped {
                bag.retain(|k| *k != NemesisKind::Wipe);
            }
            if bag.is_empty() {
                break;
            }
            bag.shuffle(&mut rng);
        }
        let kind = bag.remove(0);
        let length = secs_between(&mut rng, config.fault_secs);
        if t + length > config.chaos {
            break;
        }
        wiped |= kind == NemesisKind::Wipe;
        let action = draw_action(kind, config.nodes, &mut rng);
        out.push(Planned {
            index: out.len() as u32 + 1,
            kind,
            at: t,
            length,
            action,
        });
        t += length + secs_between(&mut rng, config.gap_secs);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(kinds: &str) -> ScheduleConfig {
        ScheduleConfig {
            nodes: 5,
            kinds: NemesisKind::parse_list(kinds).unwrap(),
            warmup: Duration::from_secs(5),
            chaos: Duration::from_secs(300),
            fault_secs: (10, 20),
            gap_secs: (8, 15),
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        assert_eq!(plan(&config("all"), 7), plan(&config("all"), 7));
        assert_ne!(plan(&config("all"), 7), plan(&config("all"), 8));
    }

    #[test]
    fn faults_do_not_overlap_and_fit_in_the_chaos_phase() {
        for seed in 0..50 {
            let c = config("all,wipe");
            let schedule = plan(&c, seed);
            assert!(!schedule.is_empty());
            for w in schedule.windows(2) {
                assert!(w[0].at + w[0].length < w[1].at, "seed {seed}");
            }
            let last = schedule.last().unwrap();
            assert!(last.at + last.length <= c.chaos);
            let wipes = schedule
                .iter()
                .filter(|p| p.kind == NemesisKind::Wipe)
                .count();
            assert!(wipes <= 1, "seed {seed}: {wipes} wipes");
        }
    }

    #[test]
    fn every_kind_appears_before_any_repeats() {
        for seed in 0..20 {
            let c = config("all");
            let schedule = plan(&c, seed);
            let first: std::collections::BTreeSet<NemesisKind> = schedule
                .iter()
                .take(c.kinds.len())
                .map(|p| p.kind)
                .collect();
            assert_eq!(first.len(), c.kinds.len(), "seed {seed}");
        }
    }

    #[test]
    fn lists_parse_groups_and_refuse_unknown_names() {
        assert_eq!(
            NemesisKind::parse_list("process,isolate,kill").unwrap(),
            vec![NemesisKind::Kill, NemesisKind::Pause, NemesisKind::Isolate]
        );
        assert_eq!(NemesisKind::parse_list("partition").unwrap().len(), 5);
        assert!(!NemesisKind::parse_list("all")
            .unwrap()
            .contains(&NemesisKind::Wipe));
        let error = NemesisKind::parse_list("isolate,flood").unwrap_err();
        assert!(error.to_string().contains("flood"), "{error}");
    }

    #[test]
    fn victims_are_nodes_of_the_cluster() {
        let mut rng = StdRng::seed_from_u64(3);
        for kind in NemesisKind::ALL {
            for n in 3..=7 {
                if kind == NemesisKind::MajoritiesRing && n < 4 {
                    continue;
                }
                let action = draw_action(kind, n, &mut rng);
                assert!(action.nodes(n).iter().all(|&i| i < n));
                assert!(!action.nodes(n).is_empty(), "{kind:?} on {n}");
            }
        }
    }
}
