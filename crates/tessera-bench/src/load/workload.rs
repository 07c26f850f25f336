//! What a load generator's next operation is: read or write, and which key.
//!
//! Keys are `k{n}` for `n` in `0..keys`, one row per key, one column per row
//! (`/v1/tables/T/rows/k{n}/{column}`), so every operation touches exactly one cell.

use clap::ValueEnum;
use rand::rngs::StdRng;
use rand::Rng;

use crate::error::BenchError;
use crate::zipf::{Zipfian, YCSB_THETA};

/// The operation mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// 100% cell writes (the single-node PUT benchmark).
    Put,
    /// 100% cell reads.
    Get,
    /// YCSB workload A: 50% reads, 50% updates (blind writes of the whole value).
    YcsbA,
    /// 100% cell writes; the same mix as `put`, named as in the cluster benchmarks.
    WriteOnly,
}

impl Workload {
    /// The fraction of operations that are reads.
    pub fn read_fraction(self) -> f64 {
        match self {
            Workload::Put | Workload::WriteOnly => 0.0,
            Workload::Get => 1.0,
            Workload::YcsbA => 0.5,
        }
    }

    /// The name used on the command line and in summaries.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Put => "put",
            Workload::Get => "get",
            Workload::YcsbA => "ycsb-a",
            Workload::WriteOnly => "write-only",
        }
    }
}

/// How keys are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Distribution {
    /// Every key equally likely.
    Uniform,
    /// YCSB's zipfian (θ = 0.99): `k0` hottest.
    Zipfian,
}

/// One operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Read key `n`.
    Read(u64),
    /// Write key `n`.
    Write(u64),
}

/// Draws operations: the mix of a [`Workload`] over keys from a [`Distribution`].
#[derive(Clone, Debug)]
pub struct OpChooser {
    read_fraction: f64,
    keys: Keys,
}

#[derive(Clone, Debug)]
enum Keys {
    Uniform(u64),
    Zipfian(Zipfian),
}

impl OpChooser {
    /// A chooser of `workload` operations over `keys` keys.
    pub fn new(
        workload: Workload,
        distribution: Distribution,
        keys: u64,
    ) -> Result<Self, BenchError> {
        if keys == 0 {
            return Err(BenchError::InvalidArgument {
                flag: "keys",
                value: keys.to_string(),
                reason: "at least one key is needed".to_owned(),
            });
        }
        let keys = match distribution {
            Distribution::Uniform => Keys::Uniform(keys),
            Distribution::Zipfian => Keys::Zipfian(Zipfian::new(keys, YCSB_THETA)?),
        };
        Ok(Self {
            read_fraction: workload.read_fraction(),
            keys,
        })
    }

    /// The next operation.
    pub fn next(&self, rng: &mut StdRng) -> Op {
        let key = match &self.keys {
            Keys::Uniform(n) => rng.random_range(0..*n),
            Keys::Zipfian(zipf) => zipf.sample(rng),
        };
        // Pure mixes draw no coin, so `put` and `get` spend their randomness on keys alone.
        let read = if self.read_fraction >= 1.0 {
            true
        } else if self.read_fraction <= 0.0 {
            false
        } else {
            rng.random_bool(self.read_fraction)
        };
        if read {
            Op::Read(key)
        } else {
            Op::Write(key)
        }
    }
}

/// Builds request paths for one table and column, reusing one buffer.
#[derive(Clone, Debug)]
pub struct Paths {
    prefix: String,
    suffix: String,
}

impl Paths {
    /// Paths of `table`/`column`, with `?consistency=LEVEL` when a level is given.
    ///
    /// The table must match `[A-Za-z0-9_]{1,48}`, and the column and level must be plain
    /// alphanumerics, so that nothing needs percent-encoding.
    pub fn new(table: &str, column: &str, consistency: Option<&str>) -> Result<Self, BenchError> {
        let plain =
            |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !plain(table) || table.len() > 48 {
            return Err(BenchError::InvalidArgument {
                flag: "table",
                value: table.to_owned(),
                reason: "table names match [A-Za-z0-9_]{1,48}".to_owned(),
            });
        }
        if !plain(column) {
            return Err(BenchError::InvalidArgument {
                flag: "column",
                value: column.to_owned(),
                reason: "the benchmark column must be [A-Za-z0-9_]+".to_owned(),
            });
        }
        let mut suffix = format!("/{column}");
        if let Some(level) = consistency {
            if !plain(level) {
                return Err(BenchError::InvalidArgument {
                    flag: "consistency",
                    value: level.to_owned(),
                    reason: "levels are one, two, three, quorum, all or a number".to_owned(),
                });
            }
            suffix.push_str("?consistency=");
            suffix.push_str(level);
        }
        Ok(Self {
            prefix: format!("/v1/tables/{table}/rows/k"),
            suffix,
        })
    }

    /// The path of key `n`.
    pub fn cell(&self, n: u64) -> String {
        use std::fmt::Write as _;
        let mut path = String::with_capacity(self.prefix.len() + 20 + self.suffix.len());
        path.push_str(&self.prefix);
        // Writing into a String cannot fail.
        let _ = write!(path, "{n}");
        path.push_str(&self.suffix);
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn mixes_have_the_right_read_fraction() {
        let mut rng = StdRng::seed_from_u64(1);
        let reads = |workload| {
            let chooser = OpChooser::new(workload, Distribution::Uniform, 100).unwrap();
            let mut rng = StdRng::seed_from_u64(1);
            (0..10_000)
                .filter(|_| matches!(chooser.next(&mut rng), Op::Read(_)))
                .count()
        };
        assert_eq!(reads(Workload::Get), 10_000);
        assert_eq!(reads(Workload::Put), 0);
        assert_eq!(reads(Workload::WriteOnly), 0);
        let ycsb = reads(Workload::YcsbA);
        assert!((4_500..5_500).contains(&ycsb), "{ycsb}");
        let chooser = OpChooser::new(Workload::Get, Distribution::Zipfian, 10).unwrap();
        assert!((0..1000).all(|_| matches!(chooser.next(&mut rng), Op::Read(k) if k < 10)));
    }

    #[test]
    fn paths_follow_the_api() {
        let paths = Paths::new("bench", "v", None).unwrap();
        assert_eq!(paths.cell(42), "/v1/tables/bench/rows/k42/v");
        let paths = Paths::new("bench", "v", Some("quorum")).unwrap();
        assert_eq!(
            paths.cell(0),
            "/v1/tables/bench/rows/k0/v?consistency=quorum"
        );
        assert!(Paths::new("no/slash", "v", None).is_err());
        assert!(Paths::new("t", "v", Some("a&b")).is_err());
        assert!(OpChooser::new(Workload::Get, Distribution::Uniform, 0).is_err());
    }
}
