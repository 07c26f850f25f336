//! An in-memory network for deterministic cluster tests.
//!
//! [`SimNetwork`] delivers [`Request`]s between registered [`Handler`]s with
//! per-link faults: cut links and isolated nodes, a drop probability and a
//! delay range, all driven by one seeded [`StdRng`]. Delays are
//! `tokio::time::sleep`s, so under a current-thread runtime with paused time
//! (`tokio::time::pause`) a simulation runs in virtual time, fast, and
//! replays exactly from its seed.
//!
//! Messages go through the real codec ([`encode_request`] and friends) so
//! every simulated call also exercises the wire format. A delivered request
//! is handled to completion even if the caller gives up, as on a real
//! network; a lost message or response leaves the caller waiting until its
//! own deadline, like a silently dropped packet.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::oneshot;

use crate::messages::{decode_request, decode_response, encode_request, encode_response};
use crate::messages::{Request, Response};
use crate::transport::{BoxFuture, Handler, NodeId, Transport, TransportError};

/// Faults of one direction of one link.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkConfig {
    /// Chance that a message (request or response) is lost, from 0 to 1.
    pub drop_probability: f64,
    /// Shortest delivery delay.
    pub min_delay: Duration,
    /// Longest delivery delay (uniform between the two).
    pub max_delay: Duration,
}

impl LinkConfig {
    /// No loss, no delay.
    pub const PERFECT: LinkConfig = LinkConfig {
        drop_probability: 0.0,
        min_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
    };

    /// A link losing `drop_probability` of messages and delaying the rest
    /// uniformly between `min_delay` and `max_delay`.
    pub fn new(drop_probability: f64, min_delay: Duration, max_delay: Duration) -> Self {
        Self {
            drop_probability,
            min_delay,
            max_delay,
        }
    }
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self::PERFECT
    }
}

/// What a cut link (or an isolated node) does to messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CutMode {
    /// Calls fail at once with [`TransportError::Unreachable`] (connection refused).
    #[default]
    Refuse,
    /// Messages vanish; callers wait until their deadline (an iptables DROP).
    Silent,
}

/// What the network did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Calls made.
    pub calls: u64,
    /// Requests handed to a handler.
    pub delivered: u64,
    /// Requests or responses lost (drop probability or a silent cut).
    pub lost: u64,
    /// Calls refused (a cut in [`CutMode::Refuse`], or an unknown node).
    pub refused: u64,
}

/// What happens to one message.
enum Fate {
    Deliver(Duration),
    Lost,
    Refused(String),
}

struct State {
    handlers: BTreeMap<NodeId, Arc<dyn Handler>>,
    cuts: BTreeSet<(NodeId, NodeId)>,
    isolated: BTreeSet<NodeId>,
    default_link: LinkConfig,
    links: BTreeMap<(NodeId, NodeId), LinkConfig>,
    cut_mode: CutMode,
    rng: StdRng,
    stats: SimStats,
}

/// Both orders of a pair in one canonical form: cuts are symmetric.
fn pair(a: &str, b: &str) -> (NodeId, NodeId) {
    if a <= b {
        (a.to_owned(), b.to_owned())
    } else {
        (b.to_owned(), a.to_owned())
    }
}

impl State {
    fn severed(&self, from: &str, to: &str) -> bool {
        from != to
            && (self.isolated.contains(from)
                || self.isolated.contains(to)
                || self.cuts.contains(&pair(from, to)))
    }

    fn fate(&mut self, from: &str, to: &str) -> Fate {
        if self.severed(from, to) {
            return match self.cut_mode {
                CutMode::Refuse => {
                    self.stats.refused += 1;
                    Fate::Refused(format!("link {from} -> {to} is cut"))
                }
                CutMode::Silent => {
                    self.stats.lost += 1;
                    Fate::Lost
                }
            };
        }
        let link = self
            .links
            .get(&(from.to_owned(), to.to_owned()))
            .unwrap_or(&self.default_link);
        let p = link.drop_probability;
        let (min, max) = (link.min_delay, link.max_delay);
        // `p > 0.0` is false for NaN too, so a bad setting means "never drop".
        let lost = p > 0.0 && (p >= 1.0 || self.rng.random_bool(p));
        if lost {
            self.stats.lost += 1;
            return Fate::Lost;
        }
        let delay = if max > min {
            let span = u64::try_from((max - min).as_nanos()).unwrap_or(u64::MAX);
            min + Duration::from_nanos(self.rng.random_range(0..=span))
        } else {
            min
        };
        Fate::Deliver(delay)
    }
}

/// An in-memory network of handlers with seeded faults. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct SimNetwork {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for SimNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.with(|s| {
            f.debug_struct("SimNetwork")
                .field("nodes", &s.handlers.keys().collect::<Vec<_>>())
                .field("cuts", &s.cuts)
                .field("isolated", &s.isolated)
                .field("stats", &s.stats)
                .finish_non_exhaustive()
        })
    }
}

impl SimNetwork {
    /// A network with no nodes and perfect links, whose faults draw from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                handlers: BTreeMap::new(),
                cuts: BTreeSet::new(),
                isolated: BTreeSet::new(),
                default_link: LinkConfig::PERFECT,
                links: BTreeMap::new(),
                cut_mode: CutMode::Refuse,
                rng: StdRng::seed_from_u64(seed),
                stats: SimStats::default(),
            })),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        // Nothing panics while the lock is held, so a poisoned lock still guards valid state.
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Registers (or replaces) the handler of `node`.
    pub fn register(&self, node: impl Into<NodeId>, handler: Arc<dyn Handler>) {
        self.with(|s| s.handlers.insert(node.into(), handler));
    }

    /// Removes `node`, as if it crashed: calls to it are refused.
    pub fn unregister(&self, node: &str) -> bool {
        self.with(|s| s.handlers.remove(node).is_some())
    }

    /// The transport node `from` uses to call its peers.
    pub fn transport(&self, from: impl Into<NodeId>) -> SimTransport {
        SimTransport {
            network: self.clone(),
            from: from.into(),
        }
    }

    /// Cuts the link between `a` and `b`, both ways.
    pub fn cut(&self, a: &str, b: &str) {
        self.with(|s| s.cuts.insert(pair(a, b)));
    }

    /// Restores the link between `a` and `b`.
    pub fn heal(&self, a: &str, b: &str) {
        self.with(|s| s.cuts.remove(&pair(a, b)));
    }

    /// Cuts every link of `node`.
    pub fn isolate(&self, node: &str) {
        self.with(|s| s.isolated.insert(node.to_owned()));
    }

    /// Undoes [`isolate`](Self::isolate) (links cut one by one stay cut).
    pub fn rejoin(&self, node: &str) {
        self.with(|s| s.isolated.remove(node));
    }

    /// Restores every cut link and isolated node.
    pub fn heal_all(&self) {
        self.with(|s| {
            s.cuts.clear();
            s.isolated.clear();
        });
    }

    /// What cut links do to messages.
    pub fn set_cut_mode(&self, mode: CutMode) {
        self.with(|s| s.cut_mode = mode);
    }

    /// Faults of every link without its own setting.
    pub fn set_default_link(&self, link: LinkConfig) {
        self.with(|s| s.default_link = link);
    }

    /// Faults of the link between `a` and `b`, both directions.
    pub fn set_link(&self, a: &str, b: &str, link: LinkConfig) {
        self.with(|s| {
            s.links.insert((a.to_owned(), b.to_owned()), link.clone());
            s.links.insert((b.to_owned(), a.to_owned()), link);
        });
    }

    /// Drops every per-link setting, back to the default link.
    pub fn clear_links(&self) {
        self.with(|s| s.links.clear());
    }

    /// What the network did so far.
    pub fn stats(&self) -> SimStats {
        self.with(|s| s.stats)
    }

    /// Carries one call; returns nothing if the request or response was lost.
    async fn deliver(
        self,
        from: NodeId,
        to: NodeId,
        request: Request,
    ) -> Option<Result<Response, TransportError>> {
        let protocol = |reason: String| TransportError::Protocol {
            node: to.clone(),
            reason,
        };
        match self.with(|s| {
            s.stats.calls += 1;
            s.fate(&from, &to)
        }) {
            Fate::Refused(reason) => {
                return Some(Err(TransportError::Unreachable { node: to, reason }))
            }
            Fate::Lost => return None,
            Fate::Deliver(delay) => tokio::time::sleep(delay).await,
        }
        let Some(handler) = self.with(|s| s.handlers.get(&to).cloned()) else {
            self.with(|s| s.stats.refused += 1);
            return Some(Err(TransportError::Unreachable {
                node: to,
                reason: "no such node".to_owned(),
            }));
        };
        let request = match encode_request(&request).and_then(|bytes| decode_request(&bytes)) {
            Ok(request) => request,
            Err(e) => return Some(Err(protocol(e.to_string()))),
        };
        self.with(|s| s.stats.delivered += 1);
        let response = handler.handle(&from, request).await;
        let response = match encode_response(&response).and_then(|bytes| decode_response(&bytes)) {
            Ok(response) => response,
            Err(e) => return Some(Err(protocol(e.to_string()))),
        };
        match self.with(|s| s.fate(&to, &from)) {
            Fate::Refused(reason) => Some(Err(TransportError::Unreachable {
                node: to,
                reason: format!("connection lost before the response: {reason}"),
            })),
            Fate::Lost => None,
            Fate::Deliver(delay) => {
                tokio::time::sleep(delay).await;
                Some(Ok(response))
            }
        }
    }
}

/// One node's handle on a [`SimNetwork`].
#[derive(Clone, Debug)]
pub struct SimTransport {
    network: SimNetwork,
    from: NodeId,
}

impl SimTransport {
    /// The node this transport sends from.
    pub fn node(&self) -> &NodeId {
        &self.from
    }
}

impl Transport for SimTransport {
    fn call(
        &self,
        to: &NodeId,
        request: Request,
    ) -> BoxFuture<'static, Result<Response, TransportError>> {
        let network = self.network.clone();
        let from = self.from.clone();
        let to = to.clone();
        Box::pin(async move {
            // Delivery runs on its own task so that a caller giving up does
            // not cancel a request already on the wire or being handled.
            let (answer, answered) = oneshot::channel();
            tokio::spawn(async move {
                if let Some(result) = network.deliver(from, to, request).await {
                    let _ = answer.send(result);
                }
            });
            match answered.await {
                Ok(result) => result,
                // Lost on the way: like a dropped packet, no answer ever comes.
                Err(_) => std::future::pending().await,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;

    impl Handler for Echo {
        fn handle(&self, _from: &NodeId, request: Request) -> BoxFuture<'static, Response> {
            Box::pin(async move {
                match request {
                    Request::Ping => Response::Pong,
                    _ => Response::Merged { changed: 0 },
                }
            })
        }
    }

    fn network(seed: u64) -> SimNetwork {
        let net = SimNetwork::new(seed);
        net.register("a", Arc::new(Echo));
        net.register("b", Arc::new(Echo));
        net
    }

    async fn ping(
        net: &SimNetwork,
        from: &str,
        to: &str,
    ) -> Option<Result<Response, TransportError>> {
        let call = net.transport(from).call(&to.to_owned(), Request::Ping);
        tokio::time::timeout(Duration::from_secs(10), call)
            .await
            .ok()
    }

    #[tokio::test(start_paused = true)]
    async fn delivers_cuts_and_heals() {
        let net = network(1);
        assert_eq!(ping(&net, "a", "b").await, Some(Ok(Response::Pong)));
        net.cut("b", "a");
        assert!(matches!(
            ping(&net, "a", "b").await,
            Some(Err(TransportError::Unreachable { .. }))
        ));
        net.set_cut_mode(CutMode::Silent);
        assert_eq!(ping(&net, "a", "b").await, None);
        net.heal("a", "b");
        assert_eq!(ping(&net, "a", "b").await, Some(Ok(Response::Pong)));
        net.isolate("a");
        assert_eq!(ping(&net, "b", "a").await, None);
        net.heal_all();
        assert_eq!(ping(&net, "b", "a").await, Some(Ok(Response::Pong)));
        assert!(matches!(
            ping(&net, "a", "zz").await,
            Some(Err(TransportError::Unreachable { .. }))
        ));
        assert!(net.unregister("b"));
        assert!(matches!(
            ping(&net, "a", "b").await,
            Some(Err(TransportError::Unreachable { .. }))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn delays_stay_in_range_and_drops_follow_the_probability() {
        let net = network(7);
        net.set_link(
            "a",
            "b",
            LinkConfig::new(0.0, Duration::from_millis(10), Duration::from_millis(50)),
        );
        for _ in 0..50 {
            let start = tokio::time::Instant::now();
            assert_eq!(ping(&net, "a", "b").await, Some(Ok(Response::Pong)));
            let took = start.elapsed();
            assert!(
                took >= Duration::from_millis(20) && took <= Duration::from_millis(100),
                "{took:?}"
            );
        }
        net.set_link(
            "a",
            "b",
            LinkConfig::new(0.5, Duration::ZERO, Duration::ZERO),
        );
        let mut answered = 0;
        for _ in 0..200 {
            if ping(&net, "a", "b").await.is_some() {
                answered += 1;
            }
        }
        // Both legs must survive: about a quarter get through.
        assert!((20..=80).contains(&answered), "{answered}");
        let stats = net.stats();
        assert_eq!(stats.calls, 250);
        assert!(stats.lost > 0);
    }

    #[tokio::test(start_paused = true)]
    async fn same_seed_same_faults() {
        async fn pattern(seed: u64) -> Vec<bool> {
            let net = network(seed);
            net.set_default_link(LinkConfig::new(
                0.3,
                Duration::ZERO,
                Duration::from_millis(5),
            ));
            let mut out = Vec::new();
            for _ in 0..64 {
                out.push(ping(&net, "a", "b").await.is_some());
            }
            out
        }
        assert_eq!(pattern(42).await, pattern(42).await);
        assert_ne!(pattern(42).await, pattern(43).await);
    }
}
