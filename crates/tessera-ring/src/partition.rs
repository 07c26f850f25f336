//! Partitions: Q equal slices of the token space, the ring's virtual nodes.

use crate::{RingError, Token};

/// Index of a partition, `0..Q`.
pub type PartitionId = u16;

/// Default partition count, fixed when a cluster is created.
pub const DEFAULT_PARTITIONS: u32 = 256;

/// Largest partition count: partition ids are stored as `u16` in every storage key.
pub const MAX_PARTITIONS: u32 = 1 << 16;

/// How the token space is cut: Q = 2^bits equal partitions, so a partition is the top `bits` of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionScheme {
    bits: u32,
}

impl PartitionScheme {
    /// A scheme of `count` partitions, which must be a power of two from 1 to [`MAX_PARTITIONS`].
    pub fn new(count: u64) -> Result<Self, RingError> {
        if count == 0 || !count.is_power_of_two() || count > u64::from(MAX_PARTITIONS) {
            return Err(RingError::InvalidPartitionCount {
                count,
                max: MAX_PARTITIONS,
            });
        }
        Ok(Self {
            bits: count.trailing_zeros(),
        })
    }

    /// Q, the number of partitions.
    pub fn count(&self) -> u32 {
        1 << self.bits
    }

    /// The partition that holds `token`.
    pub fn partition_of(&self, token: Token) -> PartitionId {
        if self.bits == 0 {
            return 0;
        }
        (token >> (64 - self.bits)) as PartitionId
    }

    /// The first token of `partition`; the partition ends where the next one starts.
    pub fn first_token(&self, partition: PartitionId) -> Token {
        if self.bits == 0 {
            return 0;
        }
        u64::from(partition) << (64 - self.bits)
    }
}

impl Default for PartitionScheme {
    fn default() -> Self {
        Self {
            bits: DEFAULT_PARTITIONS.trailing_zeros(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_counts_that_are_not_powers_of_two() {
        for bad in [0, 3, 100, 1 << 17] {
            assert!(PartitionScheme::new(bad).is_err(), "{bad}");
        }
        for good in [1, 2, 256, 1 << 16] {
            assert_eq!(
                PartitionScheme::new(good).map(|s| s.count()),
                Ok(good as u32)
            );
        }
    }

    #[test]
    fn extremes_land_in_first_and_last_partition() {
        let scheme = PartitionScheme::new(256).unwrap();
        assert_eq!(scheme.partition_of(0), 0);
        assert_eq!(scheme.partition_of(u64::MAX), 255);
        assert_eq!(PartitionScheme::new(1).unwrap().partition_of(u64::MAX), 0);
        assert_eq!(
            PartitionScheme::new(1 << 16)
                .unwrap()
                .partition_of(u64::MAX),
            u16::MAX
        );
    }

    proptest! {
        #[test]
        fn partition_contains_its_tokens(bits in 0u32..=16, token: u64) {
            let scheme = PartitionScheme::new(1 << bits).unwrap();
            let p = scheme.partition_of(token);
            prop_assert!(u32::from(p) < scheme.count());
            prop_assert!(scheme.first_token(p) <= token);
            if u32::from(p) + 1 < scheme.count() {
                prop_assert!(token < scheme.first_token(p + 1));
            }
        }

        #[test]
        fn partitions_are_monotonic_in_token(bits in 0u32..=16, a: u64, b: u64) {
            let scheme = PartitionScheme::new(1 << bits).unwrap();
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(scheme.partition_of(lo) <= scheme.partition_of(hi));
        }
    }
}
