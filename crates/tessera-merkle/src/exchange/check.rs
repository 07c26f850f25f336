//! Checks of what a peer or the local caller hands an exchange: nothing they send can make a
//! machine panic, loop or accept cells outside what it asked for.

use crate::cells::{check_sorted, CellDigest};
use crate::error::MerkleError;
use crate::exchange::ScanRequest;
use crate::shape::{PartitionId, TreeShape};
use crate::wire::Message;

/// Checks that `msg` speaks our format and is about our table, partition and tree shape.
pub(super) fn check_peer(
    msg: &Message,
    shape: &TreeShape,
    table: u32,
    partition: PartitionId,
) -> Result<(), MerkleError> {
    if msg.shape.format() != shape.format() {
        return Err(MerkleError::UnsupportedVersion {
            found: msg.shape.format(),
            supported: shape.format(),
        });
    }
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
    msg.shape.check_compatible(shape)
}

/// Checks a list of branch or segment ids: not empty, at most `max`, strictly ascending, each
/// below `bound`.
pub(super) fn check_ids(
    what: &'static str,
    ids: &[u32],
    bound: u32,
    max: usize,
) -> Result<(), MerkleError> {
    if ids.is_empty() {
        return Err(MerkleError::WrongLength {
            what,
            found: 0,
            expected: 1,
        });
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
        Some(&last) if last >= bound => Err(MerkleError::TooMany {
            what,
            found: last as usize + 1,
            max: bound as usize,
        }),
        _ => Ok(()),
    }
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
