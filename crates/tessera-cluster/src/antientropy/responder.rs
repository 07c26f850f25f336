//! The responder side of anti-entropy exchanges: one [`Responder`] per exchange a peer started
//! with this node, fed the peer's [`Request::AntiEntropy`](crate::Request::AntiEntropy) messages.
//!
//! A responder is created by an exchange's first message (the root), over a snapshot of this
//! replica's tree taken then, and dropped when the exchange is over, when the same peer starts
//! another exchange of the same (table, partition), or once idle past [`RESPONDER_IDLE`] (a peer
//! that died mid-exchange). At most [`MAX_RESPONDERS`] live at once; past it the idlest goes. A
//! message of an exchange this node holds no responder for is answered with an `Abort`, so the
//! initiator stops instead of retrying.
//!
//! A responder is taken out of the table while its request is served, so a storage scan never
//! runs under the table's lock; the initiator has at most one request outstanding, so nothing
//! else wants that responder meanwhile (a retransmission that arrives then finds no responder and
//! is aborted, which the initiator takes as a failed exchange, retried next sweep).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tessera_merkle::{Action, Body, ExchangeConfig, ExchangeId, Message, Responder};
use tessera_storage::{CellStore, Engine, StorageError};
use tokio::time::Instant;

use crate::exec::StorageRunner;
use crate::transport::NodeId;

/// How long a responder may wait for its initiator's next message.
pub const RESPONDER_IDLE: Duration = Duration::from_secs(120);
/// Most responders a node keeps at once.
pub const MAX_RESPONDERS: usize = 256;

type Key = (NodeId, u32, u16);

struct Entry {
    responder: Responder,
    exchange: ExchangeId,
    touched: Instant,
}

/// The responders of the exchanges peers run with this node.
pub struct Responders<E: Engine> {
    store: Arc<CellStore<E>>,
    runner: StorageRunner,
    config: ExchangeConfig,
    table: Mutex<HashMap<Key, Entry>>,
}

impl<E: Engine> std::fmt::Debug for Responders<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responders")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Why a message could not be served at all (as opposed to an exchange that failed, which is
/// answered with an `Abort` message).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The bytes are not an exchange message.
    #[error("anti-entropy message does not decode: {0}")]
    Decode(String),
    /// Storage failed while loading the tree or scanning cells.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl<E: Engine> Responders<E> {
    /// Responders over `store`'s trees, answering within `config`'s limits.
    pub fn new(store: Arc<CellStore<E>>, runner: StorageRunner, config: ExchangeConfig) -> Self {
        Self {
            store,
            runner,
            config,
            table: Mutex::new(HashMap::new()),
        }
    }

    /// Exchanges in progress.
    pub fn active(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Serves one encoded message from `from`; returns the encoded reply, if any.
    pub async fn serve(&self, from: &NodeId, bytes: &[u8]) -> Result<Option<Vec<u8>>, ServeError> {
        let message = Message::decode(bytes).map_err(|e| ServeError::Decode(e.to_string()))?;
        let exchange = message.exchange;
        let key = (from.clone(), exchange.table, exchange.partition);
        let now = Instant::now();
        let taken = {
            let mut table = self.lock();
            table.retain(|_, entry| now.duration_since(entry.touched) < RESPONDER_IDLE);
            match table.remove(&key) {
                Some(entry) if entry.exchange == exchange => Some(entry.responder),
                // A new root replaces the peer's previous exchange of this partition.
                Some(_) | None => None,
            }
        };
        let mut responder = match taken {
            Some(responder) => responder,
            None if message.starts_exchange() => {
                let store = self.store.clone();
                let (table, partition) = (exchange.table, exchange.partition);
                let tree = self
                    .runner
                    .run(move || store.load_tree(table, partition))
                    .await?;
                match Responder::new(table, tree, self.config) {
                    Ok(responder) => responder,
                    Err(error) => return Ok(Some(abort(&message, error.to_string()))),
                }
            }
            None => {
                // Nothing to answer for a Done or an Abort of an exchange already forgotten.
                return Ok(match message.body {
                    Body::Done | Body::Abort { .. } => None,
                    _ => Some(abort(&message, "no such exchange here".to_owned())),
                });
            }
        };
        let mut reply = None;
        let mut actions: VecDeque<Action> = responder.on_message(&message).into();
        while let Some(action) = actions.pop_front() {
            match action {
                Action::Send(out) => reply = Some(out.encode()),
                Action::Scan(request) => {
                    let store = self.store.clone();
                    let scan = request.clone();
                    let table = exchange.table;
                    let cells = self
                        .runner
                        .run(move || store.scan_cell_digests(table, &scan))
                        .await?;
                    actions.extend(responder.on_scan(&request, cells));
                }
                Action::Repair(_) | Action::Finished(_) | Action::Failed(_) => {}
            }
        }
        if !responder.is_over() {
            let mut table = self.lock();
            if table.len() >= MAX_RESPONDERS {
                let idlest = table
                    .iter()
                    .min_by_key(|(_, entry)| entry.touched)
                    .map(|(key, _)| key.clone());
                if let Some(idlest) = idlest {
                    table.remove(&idlest);
                }
            }
            table.insert(
                key,
                Entry {
                    responder,
                    exchange,
                    touched: Instant::now(),
                },
            );
        }
        Ok(reply)
    }
}

fn abort(to: &Message, reason: String) -> Vec<u8> {
    Message {
        shape: to.shape,
        exchange: to.exchange,
        seq: to.seq,
        body: Body::Abort { reason },
    }
    .encode()
}
