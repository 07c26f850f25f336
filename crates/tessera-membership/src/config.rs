//! Protocol parameters, their defaults, and the bounds that follow from them.
//!
//! # How the defaults were chosen
//!
//! The runtime's targets for a small loopback cluster are: after `kill -9` of one of 3 nodes,
//! detection in a median of at most 3 s and a maximum of 6 s; at most 20 messages per second per
//! node when idle; no false deaths under heavy CPU load.
//!
//! **Probing.** One probe per `probe_interval_ms` = T = 800 ms. A direct ping is given
//! `probe_timeout_ms` = 400 ms (a loaded but healthy node answers in far less), then
//! `indirect_probes` = 3 relays get a ping-req and the rest of the period; an ack, direct or
//! relayed, counts until the period ends, and only then does the probe fail. Relays send a NACK
//! after `nack_timeout_ms` = 320 ms (80 % of the direct timeout, as in memberlist), so it reaches
//! the prober before the period ends. SWIM and memberlist use 1 s; 800 ms is what brings the
//! 3-node median under 3 s (below), at 0.5 more datagrams per second.
//!
//! **Suspicion.** Lifeguard's dynamic timeout runs from `min(n)` = `suspicion_min_ms` ×
//! max(1, log10 n) to `max(n)` = `suspicion_max_multiplier` × `min(n)`, shrinking with
//! log(C+1)/log(K+1) as C of K = min(`suspicion_confirmations`, n − 2) independent suspecters
//! confirm: with 1 s × 5, 1–5 s below 10 members and 2–10 s at 100. A suspicion that times out
//! without its K confirmations is verified by one more probe (with twice the relays) before the
//! member is declared Dead, so a lossy network or a refutation that happened to miss this node
//! does not kill a healthy member, while a member that K peers cannot reach dies at `min(n)`.
//! In a 3-node cluster K = 1: each survivor probes the dead node at least every 3 slots; the
//! first failed probe (about T/2 + T after the crash) starts a suspicion, and the other
//! survivor's failed probe confirms it, which takes it straight to the 1 s minimum. The
//! simulation measures a median of about 2.5 s and a maximum under 5 s over 40 kills
//! (`three_member_cluster_meets_the_runtime_detection_targets`).
//!
//! **Dissemination.** Every message carries as many pending updates as fit in
//! `max_payload` = 1400 bytes (below a 1500-byte Ethernet MTU minus IP/UDP headers, with room
//! for tunnels), each retransmitted up to `retransmit_multiplier` × ⌈log10(n + 1)⌉ times (4 ×, as
//! memberlist). Refutations and new suspicions are also sent straight to the member concerned
//! (so it can refute at once), and a death is sent straight to every live member by the member
//! whose suspicion timer declares it, as a leave is by the member leaving: otherwise the other
//! survivors would each learn of it with their next probe or gossip exchange, up to a period
//! apart, instead of within one network delay of the first.
//!
//! **Metadata gossip.** Every `gossip_interval_ms` = G = 1 s, a push-pull digest exchange with
//! `gossip_fanout` = f = 2 random live peers. Push-pull with fanout f spreads a change to all n
//! members in about log_(2f+1)(n) + ln ln n rounds (under 6 rounds at n = 100); fanout 2 rather
//! than chitchat's 3 keeps the idle rate well under 20/s.
//!
//! **Idle message rate** ([`Config::idle_messages_per_second`]): per node and second, a ping and
//! (on average) an ack to another node's ping = 2/T, plus per gossip round f SYNs, on average f
//! SYN-ACKs and f ACKs = 3f/G; with the defaults 2.5 + 6 = 8.5 datagrams sent (and as many
//! received) per second, independent of n. Anti-entropy syncs (`sync_interval_ms`) add a few
//! datagrams every 30 s, and phi-expedited probes at most one per 4 T.
//!
//! **Detection bound** ([`Config::detection_bound_ms`]): (2n − 1) × T + max(n): 9 s for 3 members,
//! 12 s for 5, 41 s for 20 and 169 s for 100, a worst case that needs every unlucky draw at once;
//! the simulation's typical first detection is T/2 + T + min(n).

use crate::phi::PhiConfig;
use crate::MembershipError;

/// The smallest `max_payload` accepted: room for a header with two identities and a few updates.
pub const MIN_PAYLOAD: usize = 512;

/// Every parameter of the membership protocol. Times are milliseconds of the caller's clock.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Period between probes, before the local health multiplier.
    pub probe_interval_ms: u64,
    /// How long a direct ping waits for its ack before ping-reqs go out, before the multiplier.
    pub probe_timeout_ms: u64,
    /// Relays asked to ping a member whose direct ping timed out (SWIM's k).
    pub indirect_probes: usize,
    /// How long a relay waits for the target's ack before NACKing the requester.
    pub nack_timeout_ms: u64,
    /// Lifeguard's minimum suspicion timeout for a cluster of fewer than 10, scaled by log10 n.
    pub suspicion_min_ms: u64,
    /// Lifeguard's maximum suspicion timeout, as a multiple of the minimum.
    pub suspicion_max_multiplier: u64,
    /// Independent confirmations that bring a suspicion timeout down to its minimum (Lifeguard's K).
    pub suspicion_confirmations: usize,
    /// λ: each update is retransmitted λ × ⌈log10(n + 1)⌉ times.
    pub retransmit_multiplier: u32,
    /// The local health multiplier's ceiling (Lifeguard's S): timeouts stretch up to (1 + S) ×.
    pub max_local_health: u32,
    /// How long Dead and Left members (and their metadata) are remembered.
    pub dead_memory_ms: u64,
    /// Period between sync attempts to one remembered Dead member, to heal partitions (0: never).
    pub reconnect_interval_ms: u64,
    /// Period of the full-state anti-entropy sync with one random live member (0: never); scaled
    /// up by log2(n / 32) + 1 above 32 members, as memberlist does.
    pub sync_interval_ms: u64,
    /// Period between JOINs to the seeds while no other live member is known.
    pub join_retry_interval_ms: u64,
    /// Period of metadata gossip rounds (0: no metadata gossip).
    pub gossip_interval_ms: u64,
    /// Peers per metadata gossip round.
    pub gossip_fanout: usize,
    /// Largest datagram payload the core emits; piggybacked updates, digests and deltas are cut
    /// to fit.
    pub max_payload: usize,
    /// The longest [`crate::Swim::next_deadline`] ever asks the runtime to sleep.
    pub max_tick_interval_ms: u64,
    /// A gap between two ticks longer than this means this process stalled (GC, CPU starvation,
    /// SIGSTOP): probes in flight are abandoned and timers restarted instead of accusing peers.
    pub stall_threshold_ms: u64,
    /// The phi-accrual detectors fed by every message and heartbeat.
    pub phi: PhiConfig,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            probe_interval_ms: 800,
            probe_timeout_ms: 400,
            indirect_probes: 3,
            nack_timeout_ms: 320,
            suspicion_min_ms: 1000,
            suspicion_max_multiplier: 5,
            suspicion_confirmations: 3,
            retransmit_multiplier: 4,
            max_local_health: 8,
            dead_memory_ms: 5 * 60 * 1000,
            reconnect_interval_ms: 10_000,
            sync_interval_ms: 30_000,
            join_retry_interval_ms: 2000,
            gossip_interval_ms: 1000,
            gossip_fanout: 2,
            max_payload: 1400,
            max_tick_interval_ms: 200,
            stall_threshold_ms: 1000,
            phi: PhiConfig::default(),
        }
    }
}

impl Config {
    /// Checks the parameters are usable together.
    pub fn validate(&self) -> Result<(), MembershipError> {
        let bad = |reason: &str| {
            Err(MembershipError::InvalidConfig {
                reason: reason.to_string(),
            })
        };
        if self.probe_interval_ms == 0 {
            return bad("probe_interval_ms must be positive");
        }
        if self.probe_timeout_ms == 0 || self.probe_timeout_ms >= self.probe_interval_ms {
            return bad("probe_timeout_ms must be positive and below probe_interval_ms");
        }
        if self.nack_timeout_ms == 0 {
            return bad("nack_timeout_ms must be positive");
        }
        if self.suspicion_min_ms == 0 || self.suspicion_max_multiplier == 0 {
            return bad("suspicion timeouts must be positive");
        }
        if self.retransmit_multiplier == 0 {
            return bad("retransmit_multiplier must be positive");
        }
        if self.max_payload < MIN_PAYLOAD {
            return bad("max_payload is below MIN_PAYLOAD");
        }
        if self.max_tick_interval_ms == 0 || self.stall_threshold_ms <= self.max_tick_interval_ms {
            return bad("stall_threshold_ms must exceed a positive max_tick_interval_ms");
        }
        if self.join_retry_interval_ms == 0 {
            return bad("join_retry_interval_ms must be positive");
        }
        self.phi.validate()
    }

    /// Lifeguard's (minimum, maximum) suspicion timeout in a cluster of `n` live members.
    pub fn suspicion_timeouts_ms(&self, n: usize) -> (u64, u64) {
        let scale = (n.max(1) as f64).log10().max(1.0);
        let min = (self.suspicion_min_ms as f64 * scale).round() as u64;
        (min, min.saturating_mul(self.suspicion_max_multiplier))
    }

    /// Independent confirmations (K) a suspicion can expect in a cluster of `n`.
    pub fn expected_confirmations(&self, n: usize) -> usize {
        self.suspicion_confirmations.min(n.saturating_sub(2))
    }

    /// How many times one update is piggybacked in a cluster of `n`: λ × ⌈log10(n + 1)⌉.
    pub fn retransmit_limit(&self, n: usize) -> u32 {
        let digits = ((n as f64) + 1.0).log10().ceil().max(1.0) as u32;
        self.retransmit_multiplier.saturating_mul(digits)
    }

    /// The anti-entropy period for a cluster of `n`, memberlist's push-pull scaling.
    pub fn sync_interval_for(&self, n: usize) -> u64 {
        if n <= 32 {
            return self.sync_interval_ms;
        }
        let factor = (n as f64 / 32.0).log2().ceil() + 1.0;
        (self.sync_interval_ms as f64 * factor) as u64
    }

    /// Worst-case time from a member's crash until **every** live member of a cluster of `n` has
    /// declared it Dead, for probers at local health 0 and a runtime that ticks at
    /// [`crate::Swim::next_deadline`], with no message loss.
    ///
    /// `(2n − 1) × probe_interval + max(n)`, derived so:
    ///
    /// - Each member probes the other n − 1 round-robin over a list reshuffled every pass. The
    ///   longest gap between two probes of the same member is when it is first in one pass and last
    ///   in the next: 2(n − 1) − 1 = 2n − 3 slots. A crash just after a successful probe is found by
    ///   the probe 2n − 3 slots later, which fails at the end of its slot: (2n − 2) × T.
    /// - That prober then suspects, and its suspicion timer is at most `max(n)` (confirmations only
    ///   shorten it); if it heard of the suspicion earlier its timer started earlier. No refutation
    ///   can come from a crashed member, so the timer fires.
    /// - Unless K independent suspecters confirmed it, the timer's expiry first sends one
    ///   verification probe, which fails one more period T later: the member is then Dead.
    ///
    /// This bound holds at every member on its own probing alone; dissemination makes the typical
    /// case far faster: the first detector needs about T/2 + T + min(n) when others confirm, its
    /// Suspect rumour spreads in O(log n) periods, and the Dead notice it sends straight to every
    /// live member reaches the rest one network delay later. A runtime
    /// that ticks on a fixed period τ instead adds up to 3τ (probe start, probe end, timer).
    pub fn detection_bound_ms(&self, n: usize) -> u64 {
        let slots = (2 * n.max(2) - 1) as u64;
        slots * self.probe_interval_ms + self.suspicion_timeouts_ms(n).1
    }

    /// Datagrams each member sends per second when nothing changes, in a cluster of `n` (as many
    /// are received): 2 / T for probing (a ping, and on average an ack), 3f / G for metadata
    /// gossip (SYN, SYN-ACK, ACK with f = min(fanout, n − 1) peers), plus anti-entropy.
    pub fn idle_messages_per_second(&self, n: usize) -> f64 {
        if n < 2 {
            return 0.0;
        }
        let probing = 2000.0 / self.probe_interval_ms as f64;
        let gossip = if self.gossip_interval_ms == 0 {
            0.0
        } else {
            let fanout = self.gossip_fanout.min(n - 1) as f64;
            3.0 * fanout * 1000.0 / self.gossip_interval_ms as f64
        };
        let sync = match self.sync_interval_for(n) {
            0 => 0.0,
            s => {
                // One push and one reply, each as many datagrams as the member list needs
                // (about 40 bytes per member).
                let chunks = ((n * 40) as f64 / self.max_payload as f64).ceil();
                2.0 * chunks * 1000.0 / s as f64
            }
        };
        probing + gossip + sync
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_meet_the_idle_rate_target() {
        let c = Config::default();
        c.validate().unwrap();
        for n in [3, 5, 20, 100, 1000] {
            let rate = c.idle_messages_per_second(n);
            assert!(rate <= 10.0, "n={n}: {rate}/s sent");
            assert!(rate >= 8.5, "n={n}: {rate}/s sent");
        }
        assert_eq!(c.suspicion_timeouts_ms(3), (1000, 5000));
        assert_eq!(c.suspicion_timeouts_ms(100), (2000, 10_000));
        assert_eq!(c.retransmit_limit(3), 4);
        assert_eq!(c.retransmit_limit(100), 12);
        assert_eq!(c.detection_bound_ms(3), 5 * 800 + 5000);
        assert_eq!(c.detection_bound_ms(5), 9 * 800 + 5000);
        assert_eq!(c.detection_bound_ms(20), 39 * 800 + 6505);
        assert_eq!(c.detection_bound_ms(100), 199 * 800 + 10_000);
        assert_eq!(c.expected_confirmations(3), 1);
        assert_eq!(c.expected_confirmations(100), 3);
    }

    #[test]
    fn rejects_inconsistent_parameters() {
        let bad = [
            Config {
                probe_timeout_ms: 1000,
                ..Config::default()
            },
            Config {
                max_payload: 100,
                ..Config::default()
            },
            Config {
                stall_threshold_ms: 100,
                ..Config::default()
            },
        ];
        for c in bad {
            assert!(matches!(
                c.validate(),
                Err(MembershipError::InvalidConfig { .. })
            ));
        }
    }
}
