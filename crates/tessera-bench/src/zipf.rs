//! Zipfian key choice, as YCSB's `ZipfianGenerator` (Gray et al., "Quickly generating
//! billion-record synthetic databases", SIGMOD 1994), so our skewed workloads match YCSB's.
//!
//! Item 0 is the most popular and popularity falls with rank, P(i) ∝ 1/(i+1)^θ. Unlike YCSB's
//! `ScrambledZipfianGenerator` the ranks are not hashed: Tessera places a key by the murmur3 token
//! of its bytes, which already scatters hot keys over the ring, and an unscrambled rank keeps
//! "key k0 is the hottest" easy to check.

use rand::Rng;

use crate::error::BenchError;

/// YCSB's default skew.
pub const YCSB_THETA: f64 = 0.99;

/// Most items a generator accepts: its constant is a sum over every item, computed once.
pub const MAX_ITEMS: u64 = 1 << 28;

/// Draws item numbers in `0..items` with a zipfian distribution.
#[derive(Clone, Debug)]
pub struct Zipfian {
    items: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
    /// 1 + 0.5^θ: below `u·ζ(n)` of this, the draw is item 1.
    second_bound: f64,
}

/// ζ(n, θ) = Σ_{i=1..n} 1/i^θ.
fn zeta(n: u64, theta: f64) -> f64 {
    (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum()
}

impl Zipfian {
    /// A generator over `0..items` with skew `theta` (0 < θ < 1; YCSB uses [`YCSB_THETA`]).
    pub fn new(items: u64, theta: f64) -> Result<Self, BenchError> {
        if items == 0 || items > MAX_ITEMS {
            return Err(BenchError::InvalidArgument {
                flag: "keys",
                value: items.to_string(),
                reason: format!("a zipfian distribution needs 1 to {MAX_ITEMS} keys"),
            });
        }
        if !(theta > 0.0 && theta < 1.0) {
            return Err(BenchError::InvalidArgument {
                flag: "theta",
                value: theta.to_string(),
                reason: "the zipfian skew must be strictly between 0 and 1".to_owned(),
            });
        }
        let zetan = zeta(items, theta);
        let zeta2 = zeta(2, theta);
        // With one or two items the closed form below is never reached (the first two branches
        // of `sample` cover every draw), and its denominator would be zero.
        let eta = if items > 2 {
            (1.0 - (2.0 / items as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan)
        } else {
            0.0
        };
        Ok(Self {
            items,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zetan,
            eta,
            second_bound: 1.0 + 0.5f64.powf(theta),
        })
    }

    /// How many items there are.
    pub fn items(&self) -> u64 {
        self.items
    }

    /// The skew θ.
    pub fn theta(&self) -> f64 {
        self.theta
    }

    /// One draw in `0..items`.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        let u: f64 = rng.random();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < self.second_bound {
            return 1.min(self.items - 1);
        }
        let item = (self.items as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        // Floating-point rounding can land exactly on `items`.
        item.min(self.items - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn histogram(items: u64, draws: usize, seed: u64) -> Vec<u64> {
        let zipf = Zipfian::new(items, YCSB_THETA).unwrap();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut counts = vec![0u64; items as usize];
        for _ in 0..draws {
            let item = zipf.sample(&mut rng);
            assert!(item < items, "draw {item} out of 0..{items}");
            counts[item as usize] += 1;
        }
        counts
    }

    #[test]
    fn item_zero_is_the_most_frequent_and_popularity_falls_with_rank() {
        let counts = histogram(1000, 200_000, 7);
        let max = counts.iter().copied().max().unwrap();
        assert_eq!(counts[0], max);
        assert!(counts[0] > counts[1] && counts[1] > counts[2]);
        // The head is far hotter than the tail: the first 10 items against the last 500.
        let head: u64 = counts[..10].iter().sum();
        let tail: u64 = counts[500..].iter().sum();
        assert!(head > 2 * tail, "head {head}, tail {tail}");
    }

    #[test]
    fn frequency_of_item_zero_matches_theory() {
        let items = 1000;
        let zipf = Zipfian::new(items, YCSB_THETA).unwrap();
        let expected = 1.0 / zipf.zetan;
        let counts = histogram(items, 200_000, 11);
        let observed = counts[0] as f64 / 200_000.0;
        // ~0.13 expected; 200k draws put the observed value within a few tenths of a percent.
        assert!(
            (observed - expected).abs() < 0.01,
            "observed {observed}, expected {expected}"
        );
    }

    #[test]
    fn draws_are_deterministic_for_a_seed() {
        assert_eq!(histogram(500, 10_000, 42), histogram(500, 10_000, 42));
        assert_ne!(histogram(500, 10_000, 42), histogram(500, 10_000, 43));
    }

    #[test]
    fn every_item_count_stays_in_range() {
        for items in [1, 2, 3, 10] {
            let counts = histogram(items, 5_000, 3);
            assert_eq!(counts.len() as u64, items);
            assert_eq!(counts[0], *counts.iter().max().unwrap());
        }
        // With many items, even the rarest ranks are reachable without going past the end.
        let zipf = Zipfian::new(1 << 20, YCSB_THETA).unwrap();
        let mut rng = StdRng::seed_from_u64(5);
        assert!((0..100_000).all(|_| zipf.sample(&mut rng) < 1 << 20));
    }

    #[test]
    fn refuses_nonsense() {
        assert!(Zipfian::new(0, YCSB_THETA).is_err());
        assert!(Zipfian::new(10, 1.0).is_err());
        assert!(Zipfian::new(10, 0.0).is_err());
        assert!(Zipfian::new(10, f64::NAN).is_err());
    }
}
