//! How replica answers to a read are merged, and what read repair sends back.
//!
//! Merging is DVV `sync`, which is commutative, associative and idempotent,
//! so the merge does not depend on which replicas answered first. A replica
//! needs repair when what it answered differs from the merge of every answer:
//! it is sent the merged cells, which it syncs into its own.
//!
//! Row pages need care because each replica cuts its page at the limit on its
//! own: a replica whose page was cut after column `c` said nothing about the
//! columns after `c`. The merged page therefore stops at the smallest last
//! column among the cut pages, and repair only touches columns a replica's
//! page covered.

use std::collections::BTreeMap;

use tessera_storage::cell::approx_cell_bytes;
use tessera_storage::{Cell, RowPage};

use crate::transport::NodeId;

/// A kind of read answer that a [`crate::ReadQuorum`] can merge and repair.
pub trait ReadAnswer: Clone {
    /// What a stale replica is sent.
    type Repair: Clone;

    /// The merge of `answers`, in any order (the empty merge for none).
    fn merge(answers: &[&Self]) -> Self;

    /// For each answering replica whose answer differs from the merge of all
    /// of `answers`, what it must merge to catch up. Up-to-date replicas are
    /// left out.
    fn repairs(answers: &[(NodeId, Self)]) -> Vec<(NodeId, Self::Repair)>;

    /// About how many bytes the answer holds (columns and values), for budgets.
    fn approx_bytes(&self) -> usize;
}

/// One cell; `None` is "not stored here".
impl ReadAnswer for Option<Cell> {
    type Repair = Cell;

    fn approx_bytes(&self) -> usize {
        self.as_ref().map_or(0, approx_cell_bytes)
    }

    fn merge(answers: &[&Self]) -> Self {
        let mut cells = answers.iter().filter_map(|a| a.as_ref());
        let first = cells.next()?;
        Some(cells.fold(first.clone(), |merged, cell| merged.sync(cell)))
    }

    fn repairs(answers: &[(NodeId, Self)]) -> Vec<(NodeId, Cell)> {
        let all: Vec<&Self> = answers.iter().map(|(_, a)| a).collect();
        let Some(merged) = Self::merge(&all) else {
            return Vec::new();
        };
        answers
            .iter()
            .filter(|(_, answer)| answer.as_ref() != Some(&merged))
            .map(|(node, _)| (node.clone(), merged.clone()))
            .collect()
    }
}

/// Which columns a replica's page speaks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Coverage<'a> {
    /// A cut page with no cells: nothing (only a faulty replica sends one).
    Nothing,
    /// A page cut by its limit: columns up to and including this one.
    UpTo(&'a [u8]),
    /// A complete page: every column in the slice.
    All,
}

impl<'a> Coverage<'a> {
    fn of(page: &'a RowPage) -> Self {
        if !page.more {
            return Coverage::All;
        }
        match page.cells.last() {
            Some((column, _)) => Coverage::UpTo(column),
            None => Coverage::Nothing,
        }
    }

    fn covers(self, column: &[u8]) -> bool {
        match self {
            Coverage::Nothing => false,
            Coverage::UpTo(last) => column <= last,
            Coverage::All => true,
        }
    }
}

/// Per column, the sync of every cell in `pages` for which `keep` holds.
fn sync_columns<'a>(
    pages: impl Iterator<Item = &'a RowPage>,
    keep: impl Fn(&[u8]) -> bool,
) -> BTreeMap<&'a [u8], Cell> {
    let mut merged: BTreeMap<&'a [u8], Cell> = BTreeMap::new();
    for page in pages {
        for (column, cell) in &page.cells {
            if !keep(column) {
                continue;
            }
            merged
                .entry(column.as_slice())
                .and_modify(|m| *m = m.sync(cell))
                .or_insert_with(|| cell.clone());
        }
    }
    merged
}

/// A page of a row. The merge holds every column up to the smallest last
/// column among the cut pages (all of them if none was cut), each the sync of
/// the replicas' cells, and `more` is set when any page was cut. It is not cut
/// to any limit: that is the coordinator's job.
impl ReadAnswer for RowPage {
    type Repair = Vec<(Vec<u8>, Cell)>;

    fn approx_bytes(&self) -> usize {
        self.cells
            .iter()
            .map(|(column, cell)| column.len() + approx_cell_bytes(cell))
            .sum()
    }

    fn merge(answers: &[&Self]) -> Self {
        let bound = answers
            .iter()
            .map(|page| Coverage::of(page))
            .min()
            .unwrap_or(Coverage::All);
        let cells = sync_columns(answers.iter().copied(), |c| bound.covers(c))
            .into_iter()
            .map(|(column, cell)| (column.to_vec(), cell))
            .collect();
        RowPage {
            cells,
            more: bound != Coverage::All,
        }
    }

    fn repairs(answers: &[(NodeId, Self)]) -> Vec<(NodeId, Self::Repair)> {
        // Every column any replica returned, merged across the replicas that returned it.
        let merged = sync_columns(answers.iter().map(|(_, page)| page), |_| true);
        answers
            .iter()
            .filter_map(|(node, page)| {
                let coverage = Coverage::of(page);
                let held: BTreeMap<&[u8], &Cell> = page
                    .cells
                    .iter()
                    .map(|(c, cell)| (c.as_slice(), cell))
                    .collect();
                let missing: Vec<(Vec<u8>, Cell)> = merged
                    .iter()
                    .filter(|(column, cell)| {
                        coverage.covers(column) && held.get(*column) != Some(cell)
                    })
                    .map(|(column, cell)| (column.to_vec(), cell.clone()))
                    .collect();
                (!missing.is_empty()).then(|| (node.clone(), missing))
            })
            .collect()
    }
}
