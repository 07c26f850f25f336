//! Many row writes and merges in one engine batch: the core of group commit.
//!
//! A node's writes arrive from many requests at once: coordinator writes, replica merges, read
//! repairs. Applied one by one, each pays for its own engine write (a WAL append, RocksDB's write
//! group, and with `sync_writes` an fsync). [`CellStore::apply`] takes a list of them, applies
//! each as if alone and in order, and writes what they changed in one atomic [`WriteBatch`]:
//! - each op sees what the ops before it in the list wrote, exactly as if they had been
//!   applied one at a time, in order (the working set below stands in for the engine);
//! - each op succeeds or fails on its own: a row that fails validation, or a write that would
//!   pass the sibling cap, changes nothing and takes no other op down with it;
//! - the engine write is one for all: if it fails, every op that would have written fails with
//!   the same error and nothing is stored.
//!
//! The row locks of every op are taken before the first read, in stripe order, so two callers
//! of `apply` (or `apply` and a single-row call) never wait on each other in a cycle.
//! [`CellStore::write_row`] and [`CellStore::merge_row`] are this with one op.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLockWriteGuard};

use super::{lossy, reject_duplicates, CellStore, MergeOutcome};
use crate::cell::{encode_cell, Cell, CellWrite};
use crate::engine::{BatchOp, ColumnFamily, Engine, WriteBatch};
use crate::error::StorageError;
use crate::keys::{cell_key, decode_cell_key, validate_column, RowKey};
use crate::merkle::{stored_cell_digest, TreeDeltas};

/// One write to apply with others.
#[derive(Clone, Copy, Debug)]
pub enum RowOp<'a> {
    /// A coordinator write: each cell gets a new dot of this replica (see
    /// [`CellStore::write_row`]).
    Write {
        /// The row.
        row: &'a RowKey,
        /// The cells written, each column at most once.
        writes: &'a [CellWrite],
        /// The coordinator's clock, stored with each value.
        now_ms: u64,
    },
    /// A replica merge: each incoming cell is synced with the stored one (see
    /// [`CellStore::merge_row`]).
    Merge {
        /// The row.
        row: &'a RowKey,
        /// Incoming cells, merged in order.
        cells: &'a [(Vec<u8>, Cell)],
    },
}

impl RowOp<'_> {
    /// The row the op writes.
    pub fn row(&self) -> &RowKey {
        match self {
            RowOp::Write { row, .. } | RowOp::Merge { row, .. } => row,
        }
    }

    /// Checks the row and columns, before any lock is taken.
    fn validate(&self) -> Result<(), StorageError> {
        self.row().validate()?;
        match self {
            RowOp::Write { writes, .. } => {
                for write in writes.iter() {
                    validate_column(write.column())?;
                }
                reject_duplicates(writes.iter().map(CellWrite::column))
            }
            RowOp::Merge { cells, .. } => {
                for (column, _) in cells.iter() {
                    validate_column(column)?;
                }
                Ok(())
            }
        }
    }
}

/// What one [`RowOp`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowOutcome {
    /// A write's new cells, in op order.
    Written(Vec<(Vec<u8>, Cell)>),
    /// A merge's outcome per incoming cell, in order.
    Merged(Vec<MergeOutcome>),
}

impl RowOutcome {
    /// A write's cells; a merge's outcome here is a bug, reported rather than panicked on.
    pub fn into_written(self) -> Result<Vec<(Vec<u8>, Cell)>, StorageError> {
        match self {
            RowOutcome::Written(cells) => Ok(cells),
            RowOutcome::Merged(_) => Err(mismatched("a write")),
        }
    }

    /// A merge's outcomes; a write's cells here are a bug, reported rather than panicked on.
    pub fn into_merged(self) -> Result<Vec<MergeOutcome>, StorageError> {
        match self {
            RowOutcome::Merged(outcomes) => Ok(outcomes),
            RowOutcome::Written(_) => Err(mismatched("a merge")),
        }
    }
}

fn mismatched(op: &str) -> StorageError {
    StorageError::InvalidBatch {
        reason: format!("internal error: {op} was answered with the other kind of outcome"),
    }
}

/// A cell the batch has touched: what the engine holds, and what the batch will leave.
struct Touched {
    /// The lock stripe (and cache shard) of its row.
    stripe: usize,
    /// What the engine holds (`None`: nothing), for the tree's delta.
    stored: Option<Cell>,
    /// What the batch will leave (what the engine holds, until an op changes it).
    current: Cell,
    /// An op changed it. Cells only grow in the version lattice (writes add dots, merges join),
    /// so a changed cell never comes back to what the engine holds.
    changed: bool,
}

/// The cells of a batch so far, by engine key.
type WorkingSet = HashMap<Vec<u8>, Touched>;

impl<E: Engine> CellStore<E> {
    /// Applies `ops` in order, as one engine write. Returns one result per op, in order.
    pub fn apply(&self, ops: &[RowOp<'_>]) -> Vec<Result<RowOutcome, StorageError>> {
        let mut results: Vec<Option<Result<RowOutcome, StorageError>>> =
            ops.iter().map(|op| op.validate().err().map(Err)).collect();
        let _locked = self.lock_rows(
            ops.iter()
                .zip(&results)
                .filter(|(_, failed)| failed.is_none())
                .map(|(op, _)| op.row()),
        );

        let mut working = WorkingSet::new();
        for (op, result) in ops.iter().zip(results.iter_mut()) {
            if result.is_none() {
                *result = Some(self.stage(op, &mut working));
            }
        }
        let results = results.into_iter().map(|result| {
            result.unwrap_or_else(|| {
                Err(StorageError::InvalidBatch {
                    reason: "internal error: an op of the batch was not applied".to_owned(),
                })
            })
        });

        let written = self.write_working_set(working, WriteBatch::new());
        results
            .map(|result| match (&written, result) {
                (Err(error), Ok(_)) => Err(error.clone()),
                (_, result) => result,
            })
            .collect()
    }

    /// Applies every op of `ops` or none, in one engine write together with `extra`: records of
    /// other column families that must become durable exactly when the cells do (a streamed
    /// chunk and the progress record saying it arrived). Unlike [`Self::apply`], the first op
    /// that fails fails the call and nothing is written, `extra` included. `extra` may not touch
    /// the `data` column family (the cell cache relies on every cell write going through ops).
    pub fn apply_atomically(
        &self,
        ops: &[RowOp<'_>],
        extra: WriteBatch,
    ) -> Result<Vec<RowOutcome>, StorageError> {
        let touches_cells = |op: &BatchOp| {
            matches!(
                op,
                BatchOp::Put {
                    cf: ColumnFamily::Data,
                    ..
                } | BatchOp::Delete {
                    cf: ColumnFamily::Data,
                    ..
                } | BatchOp::DeleteRange {
                    cf: ColumnFamily::Data,
                    ..
                }
            )
        };
        if extra.ops().iter().any(touches_cells) {
            return Err(StorageError::InvalidBatch {
                reason: "records written beside cells may not be in the data column family"
                    .to_owned(),
            });
        }
        for op in ops {
            op.validate()?;
        }
        let _locked = self.lock_rows(ops.iter().map(RowOp::row));
        let mut working = WorkingSet::new();
        let outcomes = ops
            .iter()
            .map(|op| self.stage(op, &mut working))
            .collect::<Result<Vec<_>, _>>()?;
        self.write_working_set(working, extra)?;
        Ok(outcomes)
    }

    /// Takes the write lock of every row's stripe, once each, in stripe order.
    fn lock_rows<'r>(
        &self,
        rows: impl Iterator<Item = &'r RowKey>,
    ) -> Vec<RwLockWriteGuard<'_, ()>> {
        let mut stripes: Vec<usize> = rows.map(|row| self.stripe_index(row)).collect();
        stripes.sort_unstable();
        stripes.dedup();
        stripes
            .into_iter()
            .map(|stripe| {
                self.locks[stripe]
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
            })
            .collect()
    }

    /// Applies one op on top of `working`, adding its cells only if the whole op succeeds.
    fn stage(&self, op: &RowOp<'_>, working: &mut WorkingSet) -> Result<RowOutcome, StorageError> {
        // This op's own changes, kept apart until it has succeeded: a failed op leaves no trace.
        let mut mine: Vec<(Vec<u8>, Cell)> = Vec::new();
        let stripe = self.stripe_index(op.row());
        let outcome = match op {
            RowOp::Write {
                row,
                writes,
                now_ms,
            } => {
                let mut cells = Vec::with_capacity(writes.len());
                for write in writes.iter() {
                    let key = cell_key(row, write.column())?;
                    let held = self.held(stripe, &key, &mine, working)?;
                    let cell = held.write(
                        write.context(),
                        &self.options.actor,
                        write.to_value(*now_ms),
                    );
                    let siblings = cell.sibling_count();
                    if siblings > self.options.max_siblings {
                        return Err(StorageError::TooManySiblings {
                            column: lossy(write.column()),
                            siblings,
                            max: self.options.max_siblings,
                        });
                    }
                    cells.push((write.column().to_vec(), cell.clone()));
                    mine.push((key, cell));
                }
                RowOutcome::Written(cells)
            }
            RowOp::Merge { row, cells } => {
                let mut outcomes = Vec::with_capacity(cells.len());
                for (column, incoming) in cells.iter() {
                    let key = cell_key(row, column)?;
                    let held = self.held(stripe, &key, &mine, working)?;
                    let merged = held.sync(incoming);
                    let changed = merged != held;
                    outcomes.push(MergeOutcome {
                        column: column.clone(),
                        cell: merged.clone(),
                        changed,
                    });
                    if changed {
                        mine.push((key, merged));
                    }
                }
                RowOutcome::Merged(outcomes)
            }
        };
        for (key, cell) in mine {
            // `held` put every key this op read into the working set.
            if let Some(touched) = working.get_mut(&key) {
                touched.current = cell;
                touched.changed = true;
            }
        }
        Ok(outcome)
    }

    /// What `key` holds at this point of the batch: this op's own change, else an earlier op's,
    /// else the engine's (read once, through the cell cache, then kept in the working set
    /// unchanged). The caller holds the write lock of `stripe`, the key's row's stripe.
    fn held(
        &self,
        stripe: usize,
        key: &[u8],
        mine: &[(Vec<u8>, Cell)],
        working: &mut WorkingSet,
    ) -> Result<Cell, StorageError> {
        if let Some((_, cell)) = mine.iter().rev().find(|(k, _)| k.as_slice() == key) {
            return Ok(cell.clone());
        }
        if let Some(touched) = working.get(key) {
            return Ok(touched.current.clone());
        }
        let stored = self.load_locked(stripe, key)?;
        let current = stored.clone().unwrap_or_default();
        working.insert(
            key.to_vec(),
            Touched {
                stripe,
                stored,
                current: current.clone(),
                changed: false,
            },
        );
        Ok(current)
    }

    /// Writes every cell the batch changed, after what `batch` already holds, in one engine
    /// write together with the changes of their partitions' trees, then caches what it wrote
    /// (or, if the write failed, forgets those keys: the cache must never claim what the engine
    /// may not hold).
    fn write_working_set(
        &self,
        working: WorkingSet,
        mut batch: WriteBatch,
    ) -> Result<(), StorageError> {
        let mut changed = Vec::new();
        let mut deltas = self.trees.map(TreeDeltas::new);
        for (key, touched) in working {
            if touched.changed {
                // A failure here writes nothing, so the cache still matches the engine.
                let encoded = encode_cell(&touched.current)?;
                if let Some(deltas) = deltas.as_mut() {
                    let (row, column) = decode_cell_key(&key)?;
                    let old = match &touched.stored {
                        Some(cell) => Some(stored_cell_digest(&row, &column, &encode_cell(cell)?)),
                        None => None,
                    };
                    let new = stored_cell_digest(&row, &column, &encoded);
                    deltas.record(&row, old, Some(new));
                }
                batch.put(ColumnFamily::Data, key.clone(), encoded);
                changed.push((touched.stripe, key, touched.current));
            }
        }
        if let Some(deltas) = deltas {
            deltas.add_to(&mut batch);
        }
        if batch.is_empty() {
            return Ok(());
        }
        let written = self.engine.write(batch);
        for (stripe, key, cell) in changed {
            match written {
                Ok(()) => self.cache.insert(stripe, &key, Some(cell)),
                Err(_) => self.cache.remove(stripe, &key),
            }
        }
        written
    }
}
