//! Checks of what a peer or the local caller hands an exchange: nothing they send can make a
//! machine panic, loop or accept cells outside what it asked for.

use crate::cells::{check_sorted, CellDigest};
use crate::error::MerkleError;
use crate::exchange::ScanRequest;
use crate::shape::{PartitionId, TreeShape};
use crate::wire::Message;

/// Checks that `msg` is about our table and partition.
pub(super) fn check_route(
    msg: &Message,
    table: u32,
    partition: PartitionId,
) -> Result<(), MerkleError> {
    if msg.exchange.table != table {
        return Err(MerkleError::TableMismatch {
            local: table,
            remote: msg.exchange.table,
        });
    }
    if msg.exchange.partition != partition {
        return Err(MerkleError::PartitionMismatch {
            local: partition,
            remote: msg.exchange.partition,
        });
    }
    Ok(())
}

/// Checks that `msg` speaks our format and tree shape. An `Abort` is read before this check, so
/// that a peer refusing our shape or version can say so.
pub(super) fn check_format(msg: &Message, shape: &TreeShape) -> Result<(), MerkleError> {
    msg.shape.check_compatible(shape)
}

/// Checks a list of branch or segment ids: not empty, at most `max`, strictly ascending, each
/// below `bound` (reported by `out_of_range(id, bound)`).
pub(super) fn check_ids(
    what: &'static str,
    ids: &[u32],
    bound: u32,
    max: usize,
    out_of_range: fn(u32, u32) -> MerkleError,
) -> Result<(), MerkleError> {
    if ids.is_empty() {
        return Err(MerkleError::EmptyRequest { what });
    }
    if ids.len() > max {
        return Err(MerkleError::TooMany {
            what,
            found: ids.len(),
            max,
        });
    }
    if let Some(index) = ids.windows(2).position(|pair| pair[0] >= pair[1]) {
        return Err(MerkleError::NotSorted {
            what,
            index: index + 1,
        });
    }
    match ids.last() {
        Some(&last) if last >= bound => Err(out_of_range(last, bound)),
        _ => Ok(()),
    }
}

/// [`check_ids`]'s report of a branch out of range.
pub(super) fn branch_out_of_range(branch: u32, branches: u32) -> MerkleError {
    MerkleError::BranchOutOfRange { branch, branches }
}

/// [`check_ids`]'s report of a segment out of range.
pub(super) fn segment_out_of_range(segment: u32, segments: u32) -> MerkleError {
    MerkleError::SegmentOutOfRange { segment, segments }
}

/// Checks that `cells` answers `request`: at most `limit` cells, strictly ascending, each after
/// `after` and in one of the requested segments of the partition.
pub(super) fn check_page(
    what: &'static str,
    request: &ScanRequest,
    cells: &[CellDigest],
) -> Result<(), MerkleError> {
    if cells.len() > request.limit as usize {
        return Err(MerkleError::TooMany {
            what,
            found: cells.len(),
            max: request.limit as usize,
        });
    }
    check_sorted(what, cells)?;
    for (index, cell) in cells.iter().enumerate() {
        let out_of_range = |reason: String| MerkleError::CellOutOfRange {
            what,
            index,
            token: cell.id.token,
            reason,
        };
        let (partition, segment) = request.shape.locate(cell.id.token);
        if partition != request.partition {
            return Err(out_of_range(format!(
                "is in partition {partition}, not {}",
                request.partition
            )));
        }
        if request.segments.binary_search(&segment).is_err() {
            return Err(out_of_range(format!(
                "is in segment {segment}, which was not requested"
            )));
        }
        if let Some(after) = &request.after {
            // Sorted, so only the first cell can be at or before `after`.
            if index == 0 && cell.id <= *after {
                return Err(out_of_range(
                    "is not after the requested starting point".to_owned(),
                ));
            }
        }
    }
    Ok(())
}
