//! The node's side of layouts: which layout it holds, what it promised other nodes, how far it
//! got in the move under way, and the operator's staged plan.
//!
//! - **Persisted** in `meta`, so a restart resumes exactly: the committed layout, the acceptor's
//!   promise and accepted value (Paxos needs them to survive a crash), and this node's own move
//!   progress.
//! - **Learned**: gossip carries each node's epoch (`ring_epoch`) and progress (`progress`); a
//!   node that sees a later epoch fetches that layout from the node that published it
//!   ([`LayoutMessage::Fetch`]), since a layout does not fit in a gossip datagram.
//! - **Committed** ([`commit`]): a plan staged on this node is proposed to the current ring's
//!   nodes; a majority must accept it, which makes the commit a compare-and-set on the epoch.
//! - **Driven** ([`worker`]): the `rebalance` worker publishes this node's acknowledgement of a
//!   new epoch once the writes it planned under the old one have passed their deadline, starts
//!   the transfers of the partitions it joins, and publishes what it holds and reads.
//!
//! Where the first layout comes from, for a data dir that has none:
//! - `cluster.nodes` (a static list): a ring over every listed node, the same on each of them;
//! - a roster from an earlier release (the ring was derived from it): that ring, once;
//! - no seeds: a cluster of this node alone;
//! - seeds: none. The node joins membership as `joining`, owns nothing, and learns the
//!   cluster's layout by gossip; an operator (or `cluster.auto_join`) adds it.

pub mod commit;
pub mod worker;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use tessera_cluster::{NodeId, Topology};
use tessera_layout::{Acceptor, Change, Layout, LayoutError, LayoutMessage, NodeProgress, Plan};
use tessera_ring::{PartitionScheme, Ring};
use tessera_storage::{decode_versioned, encode_versioned, StorageError};
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::config::Config;
use crate::roster::Roster;
use crate::storage::Store;

const LAYOUT_KEY: &str = "layout";
const ACCEPTOR_KEY: &str = "layout_acceptor";
const PROGRESS_KEY: &str = "layout_progress";
const CLEANED_KEY: &str = "layout_cleaned";
const MEMBER_KEY: &str = "layout_was_member";

/// Why a layout operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LayoutFailure {
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("this node has not joined a cluster yet: it knows no layout")]
    NoLayout,
    #[error("nothing is staged: plan a change first")]
    NothingStaged,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain values live under these locks and nothing panics holding them.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// See the module docs.
pub struct LayoutManager {
    node: NodeId,
    store: Arc<Store>,
    topology: Arc<Topology>,
    acceptor: Mutex<Acceptor>,
    own: Mutex<NodeProgress>,
    staged: Mutex<Option<Plan>>,
    /// When this node adopted the epoch it holds (its acknowledgement waits from there).
    adopted_at: Mutex<Instant>,
    /// Notified when the layout or any progress changes.
    nudge: Arc<Notify>,
}

impl LayoutManager {
    /// Loads what `store` holds (or makes the first layout, see the module docs), and the topology
    /// that places requests by it.
    pub fn open(
        config: &Config,
        node: &str,
        scheme: PartitionScheme,
        store: Arc<Store>,
    ) -> Result<Self, LayoutFailure> {
        let mut layout = match store.get_meta(LAYOUT_KEY)? {
            Some(bytes) => Some(Layout::decode(&bytes)?),
            None => None,
        };
        if layout.is_none() {
            layout = first_layout(config, node, scheme, &store)?;
            if let Some(first) = &layout {
                store.put_meta(LAYOUT_KEY, &first.encode())?;
                if first.ring().contains(&node.to_owned()) {
                    store.put_meta(
                        MEMBER_KEY,
                        &encode_versioned("layout membership", &first.epoch())?,
                    )?;
                }
                info!(
                    node,
                    epoch = first.epoch(),
                    nodes = first.ring().node_count(),
                    "first layout"
                );
            }
        }
        let epoch = layout.as_ref().map_or(0, Layout::epoch);
        let acceptor = match store.get_meta(ACCEPTOR_KEY)? {
            Some(bytes) => decode_versioned("layout acceptor", ACCEPTOR_KEY.as_bytes(), &bytes)?,
            None => Acceptor::new(epoch),
        };
        let own: NodeProgress = match store.get_meta(PROGRESS_KEY)? {
            Some(bytes) => decode_versioned("layout progress", PROGRESS_KEY.as_bytes(), &bytes)?,
            None => NodeProgress::default(),
        };
        let topology = Arc::new(Topology::new(layout));
        topology.record_progress(node, &own);
        Ok(Self {
            node: node.to_owned(),
            store,
            topology,
            acceptor: Mutex::new(acceptor),
            own: Mutex::new(own),
            staged: Mutex::new(None),
            adopted_at: Mutex::new(Instant::now()),
            nudge: Arc::new(Notify::new()),
        })
    }

    /// Notified when the layout or any node's progress changes.
    pub fn nudge(&self) -> &Arc<Notify> {
        &self.nudge
    }

    /// Takes `node`'s published progress (from gossip); wakes the rebalance worker if it changed.
    pub fn record_progress(&self, node: &str, progress: &NodeProgress) {
        if self.topology.record_progress(node, progress) {
            self.nudge.notify_one();
        }
    }

    /// The topology this manager keeps up to date.
    pub fn topology(&self) -> &Arc<Topology> {
        &self.topology
    }

    /// The committed layout held, if any.
    pub fn layout(&self) -> Option<Layout> {
        self.topology.layout()
    }

    /// This node's own published progress.
    pub fn own_progress(&self) -> NodeProgress {
        lock(&self.own).clone()
    }

    /// When the held epoch was adopted.
    pub fn adopted_at(&self) -> Instant {
        *lock(&self.adopted_at)
    }

    /// Takes `layout` if it is later than the one held: persists it, moves the acceptor to the
    /// next slot. Blocking (writes `meta`). Returns whether it was taken.
    pub fn adopt(&self, layout: Layout) -> Result<bool, LayoutFailure> {
        layout.check()?;
        let epoch = layout.epoch();
        if self.layout().is_some_and(|held| held.epoch() >= epoch) {
            return Ok(false);
        }
        // Persisted before anything acts on it, so a restart never forgets an epoch it used.
        self.store.put_meta(LAYOUT_KEY, &layout.encode())?;
        {
            let mut acceptor = lock(&self.acceptor);
            acceptor.adopt(epoch);
            self.store.put_meta(
                ACCEPTOR_KEY,
                &encode_versioned("layout acceptor", &*acceptor)?,
            )?;
        }
        let member = layout.ring().contains(&self.node)
            || layout.previous().is_some_and(|r| r.contains(&self.node));
        if member && !self.was_member() {
            self.store
                .put_meta(MEMBER_KEY, &encode_versioned("layout membership", &epoch)?)?;
        }
        if self.topology.adopt(layout.clone()) {
            *lock(&self.adopted_at) = Instant::now();
            self.nudge.notify_one();
            if !member
                && layout.previous().is_none_or(|r| !r.contains(&self.node))
                && self.was_member()
            {
                info!(node = %self.node, epoch, "this node is no longer in the ring: it holds no data and only coordinates requests");
            }
            info!(
                node = %self.node,
                epoch,
                moving = layout.is_move(),
                nodes = layout.ring().node_count(),
                in_ring = layout.ring().contains(&self.node),
                "layout adopted"
            );
            // A staged plan was computed against an earlier epoch; it can no longer commit.
            if lock(&self.staged)
                .as_ref()
                .is_some_and(|plan| plan.base_epoch < epoch)
            {
                *lock(&self.staged) = None;
            }
        }
        Ok(true)
    }

    /// Updates this node's own progress with `change`, persisting and recording it if it
    /// changed. Blocking. Returns whether it changed.
    pub fn update_progress(
        &self,
        change: impl FnOnce(&mut NodeProgress),
    ) -> Result<bool, LayoutFailure> {
        let mut own = lock(&self.own);
        let before = own.clone();
        change(&mut own);
        if *own == before {
            return Ok(false);
        }
        self.store
            .put_meta(PROGRESS_KEY, &encode_versioned("layout progress", &*own)?)?;
        self.topology.record_progress(&self.node, &own);
        Ok(true)
    }

    /// Answers a layout message from `from`. Blocking: an acceptor persists its promise or
    /// acceptance before it answers.
    pub fn handle(&self, from: &str, message: &LayoutMessage) -> Option<LayoutMessage> {
        match message {
            LayoutMessage::Fetch => Some(LayoutMessage::Current {
                layout: self.layout(),
            }),
            LayoutMessage::Commit { layout } => {
                if let Err(error) = self.adopt(layout.clone()) {
                    warn!(node = %self.node, %from, %error, "cannot take a committed layout");
                    return None;
                }
                Some(LayoutMessage::Committed {
                    epoch: layout.epoch(),
                })
            }
            _ => {
                let mut acceptor = lock(&self.acceptor);
                let mut next = acceptor.clone();
                let answer = next.handle(message)?;
                if next != *acceptor {
                    let persisted = encode_versioned("layout acceptor", &next)
                        .map_err(LayoutFailure::from)
                        .and_then(|bytes| Ok(self.store.put_meta(ACCEPTOR_KEY, &bytes)?));
                    if let Err(error) = persisted {
                        // An answer that is not durable must not be given.
                        warn!(node = %self.node, %from, %error, "cannot persist a layout promise; not answering");
                        return None;
                    }
                    *acceptor = next;
                }
                Some(answer)
            }
        }
    }

    /// Whether this node has ever been in a ring it held. A node removed from the cluster has;
    /// `cluster.auto_join` never adds it back (an operator may).
    pub fn was_member(&self) -> bool {
        self.store.get_meta(MEMBER_KEY).ok().flatten().is_some()
    }

    /// The last epoch whose leftover partitions this node dropped (0: none).
    pub fn cleaned_epoch(&self) -> u64 {
        self.store
            .get_meta(CLEANED_KEY)
            .ok()
            .flatten()
            .and_then(|bytes| {
                decode_versioned::<u64>("layout cleanup", CLEANED_KEY.as_bytes(), &bytes).ok()
            })
            .unwrap_or(0)
    }

    /// Records that `epoch`'s leftovers were dropped. Blocking.
    pub fn set_cleaned_epoch(&self, epoch: u64) -> Result<(), LayoutFailure> {
        let bytes = encode_versioned("layout cleanup", &epoch)?;
        Ok(self.store.put_meta(CLEANED_KEY, &bytes)?)
    }

    /// Plans `change` against the layout held and stages it here, replacing any staged plan.
    pub fn stage(&self, change: Change) -> Result<Plan, LayoutFailure> {
        let state = self.topology.state();
        let layout = state.layout.as_ref().ok_or(LayoutFailure::NoLayout)?;
        // A move still under way blocks a plan, but for the removal of a node that died before
        // its last step was heard (see `Progress::allows`).
        let allowed = state.progress.allows(layout, &change);
        let plan = tessera_layout::plan(layout, allowed, change)?;
        *lock(&self.staged) = Some(plan.clone());
        Ok(plan)
    }

    /// The staged plan, if any.
    pub fn staged(&self) -> Option<Plan> {
        lock(&self.staged).clone()
    }

    /// Discards the staged plan; returns it.
    pub fn abort(&self) -> Option<Plan> {
        lock(&self.staged).take()
    }

    /// Takes the staged plan for a commit, leaving it staged.
    fn staged_for_commit(&self) -> Result<Plan, LayoutFailure> {
        self.staged().ok_or(LayoutFailure::NothingStaged)
    }

    /// Clears the staged plan if it is still `plan`.
    fn unstage(&self, plan: &Plan) {
        let mut staged = lock(&self.staged);
        if staged.as_ref() == Some(plan) {
            *staged = None;
        }
    }
}

/// The first layout of a data dir that has none; see the module docs.
fn first_layout(
    config: &Config,
    node: &str,
    scheme: PartitionScheme,
    store: &Store,
) -> Result<Option<Layout>, LayoutFailure> {
    let members = config
        .cluster
        .members()
        .map_err(|e| LayoutError::InvalidChange {
            reason: e.to_string(),
        })?;
    let target_n = config.cluster.ring_replicas;
    if !members.is_empty() {
        let ring = Ring::new(scheme, members.into_iter().map(|m| m.id), target_n)
            .map_err(LayoutError::from)?;
        return Ok(Some(Layout::first(ring)));
    }
    let roster = Roster::load(store)?;
    if roster.contains(node) {
        // A data dir of an earlier release: its ring was the roster's.
        let ring = roster.ring(scheme, target_n).map_err(LayoutError::from)?;
        return Ok(Some(Layout::first(ring)));
    }
    if config.membership.seeds.is_empty() {
        let ring = Ring::new(scheme, [node.to_owned()], target_n).map_err(LayoutError::from)?;
        return Ok(Some(Layout::first(ring)));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_layout::{Ballot, Change};

    fn config(dir: &std::path::Path, node: &str, seeds: &[&str]) -> Config {
        let mut config = Config::load(None).unwrap();
        config.node.data_dir = dir.to_path_buf();
        config.node.id = node.to_owned();
        config.membership.seeds = seeds.iter().map(|s| s.to_string()).collect();
        config
    }

    fn open(config: &Config) -> (LayoutManager, Arc<Store>) {
        let opened = crate::storage::open(config).unwrap();
        let scheme = PartitionScheme::new(config.cluster.partitions).unwrap();
        let manager =
            LayoutManager::open(config, &config.node.id, scheme, opened.store.clone()).unwrap();
        (manager, opened.store)
    }

    #[test]
    fn where_the_first_layout_comes_from() {
        let dir = tempfile::tempdir().unwrap();
        // No seeds: a cluster of this node alone.
        let (alone, _) = open(&config(&dir.path().join("a"), "n1", &[]));
        let layout = alone.layout().unwrap();
        assert_eq!(layout.epoch(), 1);
        assert_eq!(layout.ring().nodes().collect::<Vec<_>>(), ["n1"]);
        // Seeds: nothing until the cluster's layout is learned.
        let (joining, _) = open(&config(&dir.path().join("b"), "n2", &["127.0.0.1:1"]));
        assert!(joining.layout().is_none());
        // A static list: the same ring on every node.
        let mut listed = config(&dir.path().join("c"), "n2", &[]);
        listed.cluster.nodes = vec!["n1@127.0.0.11:7000".into(), "n2@127.0.0.12:7000".into()];
        let (manager, _) = open(&listed);
        assert_eq!(manager.layout().unwrap().ring().node_count(), 2);
    }

    #[test]
    fn a_data_dir_of_the_roster_era_keeps_its_ring() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), "n2", &["127.0.0.1:1"]);
        let scheme = PartitionScheme::new(config.cluster.partitions).unwrap();
        let expected = {
            let opened = crate::storage::open(&config).unwrap();
            let mut roster = Roster::default();
            for (node, at) in [("n1", 1), ("n2", 2), ("n3", 3)] {
                roster.add(node, at);
            }
            roster.save(&opened.store).unwrap();
            roster.ring(scheme, config.cluster.ring_replicas).unwrap()
        };
        let (manager, _) = open(&config);
        assert_eq!(manager.layout().unwrap().ring(), &expected);
    }

    #[test]
    fn layouts_promises_and_progress_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), "n1", &[]);
        let next = {
            let (manager, _) = open(&config);
            let plan = manager.stage(Change::Add { node: "n2".into() }).unwrap();
            // An acceptor's promise is durable before it is answered.
            let answer = manager.handle(
                "n9",
                &LayoutMessage::Prepare {
                    epoch: 2,
                    ballot: Ballot {
                        round: 7,
                        node: "n9".into(),
                    },
                },
            );
            assert!(matches!(answer, Some(LayoutMessage::Promise { .. })));
            manager.update_progress(|p| p.acked = 1).unwrap();
            plan.next
        };
        {
            let (manager, _) = open(&config);
            // The promise holds: a lower ballot is refused after the restart.
            let answer = manager.handle(
                "n8",
                &LayoutMessage::Prepare {
                    epoch: 2,
                    ballot: Ballot {
                        round: 3,
                        node: "n8".into(),
                    },
                },
            );
            assert!(
                matches!(answer, Some(LayoutMessage::Reject { .. })),
                "{answer:?}"
            );
            assert_eq!(manager.own_progress().acked, 1);
            assert!(manager.adopt(next.clone()).unwrap());
            assert!(
                !manager.adopt(next.clone()).unwrap(),
                "the same epoch again"
            );
        }
        let (manager, _) = open(&config);
        assert_eq!(manager.layout(), Some(next));
        assert_eq!(
            manager.handle("n3", &LayoutMessage::Fetch),
            Some(LayoutMessage::Current {
                layout: manager.layout()
            })
        );
    }
}
