//! Structural invariants of decoded clocks and vectors.
//!
//! Clocks and vectors arrive from disk, from peers and (as context tokens) from
//! clients. The algorithms assume sorted, duplicate-free actors, non-zero
//! counters and value lists no longer than their counter, so every decoder
//! checks these first and reports which entry broke which rule.

use crate::Counter;

/// Why a decoded vector or clock was rejected; `index` is the offending entry's position.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub(crate) enum Invalid {
    #[error("actor at index {index} is smaller than the one before it (entries must be sorted by actor)")]
    UnsortedActors { index: usize },
    #[error("actor at index {index} repeats the one before it (duplicate actor)")]
    DuplicateActor { index: usize },
    #[error("counter of the entry at index {index} is zero")]
    ZeroCounter { index: usize },
    #[error("entry at index {index} holds {values} values but its counter is only {counter}")]
    TooManyValues {
        index: usize,
        values: usize,
        counter: Counter,
    },
    #[error("entry at index {index} ends with a purged value slot (non-canonical encoding)")]
    TrailingPurgedSlot { index: usize },
}

/// Checks that `actors` is strictly increasing.
pub(crate) fn check_sorted<'a, A: Ord + 'a>(
    actors: impl IntoIterator<Item = &'a A>,
) -> Result<(), Invalid> {
    let mut previous: Option<&A> = None;
    for (index, actor) in actors.into_iter().enumerate() {
        if let Some(previous) = previous {
            match previous.cmp(actor) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => return Err(Invalid::DuplicateActor { index }),
                std::cmp::Ordering::Greater => return Err(Invalid::UnsortedActors { index }),
            }
        }
        previous = Some(actor);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_actors_pass() {
        assert_eq!(check_sorted::<u8>(&[]), Ok(()));
        assert_eq!(check_sorted(&[1u8, 2, 7]), Ok(()));
    }

    #[test]
    fn duplicate_and_unsorted_actors_are_named() {
        assert_eq!(
            check_sorted(&[1u8, 2, 2]),
            Err(Invalid::DuplicateActor { index: 2 })
        );
        assert_eq!(
            check_sorted(&[3u8, 1]),
            Err(Invalid::UnsortedActors { index: 1 })
        );
    }
}
