//! The replica side: what a node does with its peers' requests.
//!
//! Reads go straight to the local [`CellStore`], merges to the node's group
//! commit ([`RowWriter`], shared with its coordinator), and hints a coordinator
//! asks this node to keep for a replica that is down ([`Request::StoreHint`],
//! durable before the answer) to the node's [`HintStore`]; a forwarded
//! client write ([`Request::Coordinate`]) goes to this node's coordinator,
//! attached after construction with [`Replica::set_coordinator`] because the
//! coordinator and the network that delivers to this replica are built from
//! each other. The link is weak so that a dropped coordinator does not linger.
//! Layout messages ([`Request::Layout`]) go, the same way, to the
//! [`LayoutService`] attached with [`Replica::set_layout_service`]. Anti-entropy messages
//! ([`Request::AntiEntropy`]) go to the node's [`Responders`], and an exchange's repairs read
//! cells with [`Request::ReadCells`] and write them with ordinary merges.

use std::sync::{Arc, PoisonError, RwLock, Weak};

use tessera_layout::LayoutMessage;
use tessera_merkle::ExchangeConfig;
use tessera_storage::{CellStore, Engine, Hint, HintStore, StorageError};
use tracing::debug;

use crate::antientropy::{Responders, ServeError};
use crate::clock::system_now_ms;
use crate::commit::RowWriter;
use crate::coordinator::WriteCoordinator;
use crate::error::storage_kind;
use crate::exec::StorageRunner;
use crate::messages::{ErrorKind, Request, Response};
use crate::transfer::source::{estimate_partition, read_chunk, SourceStats};
use crate::transport::{BoxFuture, Handler, NodeId};

/// What a node does with layout messages: its acceptor's answers (persisted first), and its
/// committed layout for a peer that fetches it.
pub trait LayoutService: Send + Sync + 'static {
    /// Handles `message` from `from`; `None` when it needs no answer.
    fn handle(
        &self,
        from: &NodeId,
        message: LayoutMessage,
    ) -> BoxFuture<'static, Option<LayoutMessage>>;
}

/// Serves internal requests from the local store and coordinator.
pub struct Replica<E: Engine> {
    node: NodeId,
    store: Arc<CellStore<E>>,
    hints: Arc<HintStore<E>>,
    writer: Arc<RowWriter<E>>,
    runner: StorageRunner,
    coordinator: RwLock<Option<Weak<dyn WriteCoordinator>>>,
    layout: RwLock<Option<Weak<dyn LayoutService>>>,
    /// What this node served to nodes streaming its partitions.
    transfers: Arc<SourceStats>,
    /// The replica side of anti-entropy exchanges peers run with this node.
    responders: Arc<Responders<E>>,
}

impl<E: Engine> std::fmt::Debug for Replica<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("node", &self.node)
            .field("runner", &self.runner)
            .finish_non_exhaustive()
    }
}

fn storage_failure(error: &StorageError) -> Response {
    Response::Error {
        kind: storage_kind(error),
        message: error.to_string(),
    }
}

impl<E: Engine> Replica<E> {
    /// The replica of node `node`, merging through `writer` (give it the coordinator's, so that
    /// a node's writes and merges share batches), keeping hints in `hints`, and running other
    /// storage calls with `runner`.
    pub fn new(
        node: impl Into<NodeId>,
        writer: Arc<RowWriter<E>>,
        hints: Arc<HintStore<E>>,
        runner: StorageRunner,
    ) -> Self {
        let responders = Arc::new(Responders::new(
            writer.store().clone(),
            runner,
            ExchangeConfig::default(),
        ));
        Self {
            node: node.into(),
            responders,
            store: writer.store().clone(),
            hints,
            writer,
            runner,
            coordinator: RwLock::new(None),
            layout: RwLock::new(None),
            transfers: Arc::default(),
        }
    }

    /// Attaches what answers layout messages (held weakly).
    pub fn set_layout_service<S: LayoutService>(&self, service: &Arc<S>) {
        let weak: Weak<dyn LayoutService> = Arc::downgrade(service) as Weak<dyn LayoutService>;
        *self.layout.write().unwrap_or_else(PoisonError::into_inner) = Some(weak);
    }

    fn layout_service(&self) -> Option<Arc<dyn LayoutService>> {
        self.layout
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .and_then(Weak::upgrade)
    }

    /// What this node served to nodes streaming its partitions (chunks, cells, bytes).
    pub fn transfer_source_stats(&self) -> &Arc<SourceStats> {
        &self.transfers
    }

    /// Attaches the coordinator that runs forwarded writes (held weakly).
    pub fn set_coordinator<C: WriteCoordinator>(&self, coordinator: &Arc<C>) {
        let weak: Weak<dyn WriteCoordinator> =
            Arc::downgrade(coordinator) as Weak<dyn WriteCoordinator>;
        *self
            .coordinator
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(weak);
    }

    /// The local store.
    pub fn store(&self) -> &Arc<CellStore<E>> {
        &self.store
    }

    fn coordinator(&self) -> Option<Arc<dyn WriteCoordinator>> {
        self.coordinator
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .and_then(Weak::upgrade)
    }
}

impl<E: Engine> Handler for Replica<E> {
    fn handle(&self, from: &NodeId, request: Request) -> BoxFuture<'static, Response> {
        let partition = match &request {
            Request::ReadCell { row, .. }
            | Request::ReadRow { row, .. }
            | Request::Merge { row, .. } => Some(row.partition),
            Request::Coordinate { request } => Some(request.row.partition),
            Request::StoreHint { row, .. } => Some(row.partition),
            Request::PartitionChunk { partition, .. } | Request::ReadCells { partition, .. } => {
                Some(*partition)
            }
            Request::Ping
            | Request::Layout { .. }
            | Request::EstimatePartitions { .. }
            | Request::AntiEntropy { .. } => None,
        };
        debug!(node = %self.node, %from, partition, request = request.name(), "handling");
        let store = self.store.clone();
        let runner = self.runner;
        match request {
            Request::ReadCell { row, column } => Box::pin(async move {
                match runner
                    .run_point_read(move || store.read_cell(&row, &column))
                    .await
                {
                    Ok(cell) => Response::Cell { cell },
                    Err(error) => storage_failure(&error),
                }
            }),
            Request::ReadRow { row, slice } => Box::pin(async move {
                match runner.run(move || store.read_row(&row, &slice)).await {
                    Ok(page) => Response::Row { page },
                    Err(error) => storage_failure(&error),
                }
            }),
            Request::Merge { row, cells } => {
                let writer = self.writer.clone();
                Box::pin(async move {
                    match writer.merge_row(row, cells).await {
                        Ok(outcomes) => Response::Merged {
                            changed: u32::try_from(outcomes.iter().filter(|o| o.changed).count())
                                .unwrap_or(u32::MAX),
                        },
                        Err(error) => storage_failure(&error),
                    }
                })
            }
            Request::Coordinate { request } => match self.coordinator() {
                Some(coordinator) => {
                    let write = coordinator.coordinate(request);
                    Box::pin(async move {
                        match write.await {
                            Ok(outcome) => Response::Written { outcome },
                            Err(error) => {
                                let (kind, message) = error.to_wire();
                                Response::Error { kind, message }
                            }
                        }
                    })
                }
                None => {
                    let message = format!("{} has no coordinator attached", self.node);
                    Box::pin(async move {
                        Response::Error {
                            kind: ErrorKind::NotCoordinator,
                            message,
                        }
                    })
                }
            },
            Request::Ping => Box::pin(async { Response::Pong }),
            Request::Layout { message } => match self.layout_service() {
                Some(service) => {
                    let answer = service.handle(from, message);
                    Box::pin(async move {
                        Response::Layout {
                            message: answer.await,
                        }
                    })
                }
                None => {
                    let message = format!("{} does not take layout messages yet", self.node);
                    Box::pin(async move {
                        Response::Error {
                            kind: ErrorKind::NotCoordinator,
                            message,
                        }
                    })
                }
            },
            Request::StoreHint { target, row, cells } => {
                let hints = self.hints.clone();
                Box::pin(async move {
                    let hint = Hint {
                        target,
                        row,
                        cells,
                        stored_at_ms: system_now_ms(),
                    };
                    match runner.run(move || hints.store(&hint)).await {
                        Ok(_) => Response::HintStored,
                        Err(error) => storage_failure(&error),
                    }
                })
            }
            Request::PartitionChunk {
                table,
                partition,
                after,
                max_cells,
                max_bytes,
                estimate,
            } => {
                let stats = self.transfers.clone();
                Box::pin(async move {
                    let read = runner
                        .run(move || {
                            let chunk = read_chunk(
                                &store,
                                table,
                                partition,
                                after.as_deref(),
                                max_cells,
                                max_bytes,
                            )?;
                            let size = if estimate {
                                Some(estimate_partition(&store, table, partition)?)
                            } else {
                                None
                            };
                            Ok((chunk, size))
                        })
                        .await;
                    match read {
                        Ok((chunk, estimate)) => {
                            stats.record(&chunk);
                            Response::PartitionChunk {
                                cells: chunk.cells,
                                next: chunk.next,
                                bytes: chunk.bytes,
                                estimate,
                            }
                        }
                        Err(error) => storage_failure(&error),
                    }
                })
            }
            Request::AntiEntropy { message } => {
                let responders = self.responders.clone();
                let from = from.clone();
                Box::pin(async move {
                    match responders.serve(&from, &message).await {
                        Ok(message) => Response::AntiEntropy { message },
                        Err(ServeError::Decode(message)) => Response::Error {
                            kind: ErrorKind::BadRequest,
                            message,
                        },
                        Err(ServeError::Storage(error)) => storage_failure(&error),
                    }
                })
            }
            Request::ReadCells {
                table,
                partition,
                ids,
            } => Box::pin(async move {
                match runner
                    .run(move || store.read_cells(table, partition, &ids))
                    .await
                {
                    Ok(cells) => Response::Cells { cells },
                    Err(error) => storage_failure(&error),
                }
            }),
            Request::EstimatePartitions { partitions } => Box::pin(async move {
                let sizes = runner
                    .run(move || {
                        partitions
                            .iter()
                            .map(|(table, partition)| {
                                estimate_partition(&store, *table, *partition)
                            })
                            .collect::<Result<Vec<_>, _>>()
                    })
                    .await;
                match sizes {
                    Ok(sizes) => Response::PartitionSizes { sizes },
                    Err(error) => storage_failure(&error),
                }
            }),
        }
    }
}
