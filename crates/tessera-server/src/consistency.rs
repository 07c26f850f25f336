//! Consistency levels: how many replicas must answer a read or acknowledge a write.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A consistency level as a client names it. It is resolved against a table's replication factor N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsistencyLevel {
    One,
    Two,
    Three,
    Quorum,
    All,
    Exactly(u32),
}

/// Why a consistency level was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsistencyError {
    #[error("unknown consistency level {level:?}: use one, two, three, quorum, all, or a number from 1 to N")]
    Unknown { level: String },
    #[error(
        "consistency level {level} needs {required} replicas, but the table has only {replication}"
    )]
    AboveReplication {
        level: ConsistencyLevel,
        required: u32,
        replication: u32,
    },
}

impl ConsistencyLevel {
    /// How many replicas this level needs out of `replication`, or why it cannot be met by any cluster.
    pub fn required(self, replication: u32) -> Result<u32, ConsistencyError> {
        let required = match self {
            Self::One => 1,
            Self::Two => 2,
            Self::Three => 3,
            Self::Quorum => replication / 2 + 1,
            Self::All => replication,
            Self::Exactly(n) => n,
        };
        if required == 0 || required > replication {
            return Err(ConsistencyError::AboveReplication {
                level: self,
                required,
                replication,
            });
        }
        Ok(required)
    }
}

impl FromStr for ConsistencyLevel {
    type Err = ConsistencyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let level = match text.to_ascii_lowercase().as_str() {
            "one" => Self::One,
            "two" => Self::Two,
            "three" => Self::Three,
            "quorum" => Self::Quorum,
            "all" => Self::All,
            digits if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                match digits.parse::<u32>() {
                    Ok(n) if n > 0 => Self::Exactly(n),
                    _ => {
                        return Err(ConsistencyError::Unknown {
                            level: text.to_string(),
                        })
                    }
                }
            }
            _ => {
                return Err(ConsistencyError::Unknown {
                    level: text.to_string(),
                })
            }
        };
        Ok(level)
    }
}

impl fmt::Display for ConsistencyLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::One => f.write_str("one"),
            Self::Two => f.write_str("two"),
            Self::Three => f.write_str("three"),
            Self::Quorum => f.write_str("quorum"),
            Self::All => f.write_str("all"),
            Self::Exactly(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for ConsistencyLevel {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ConsistencyLevel {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn named_levels_resolve_against_replication() {
        let cases = [
            ("one", 3, Ok(1)),
            ("two", 3, Ok(2)),
            ("three", 3, Ok(3)),
            ("quorum", 3, Ok(2)),
            ("quorum", 1, Ok(1)),
            ("quorum", 4, Ok(3)),
            ("quorum", 5, Ok(3)),
            ("all", 5, Ok(5)),
            ("ALL", 1, Ok(1)),
            ("2", 3, Ok(2)),
        ];
        let cases: [(&str, u32, Result<u32, ()>); 10] = cases;
        for (text, n, want) in cases {
            let got = text.parse::<ConsistencyLevel>().unwrap().required(n);
            assert_eq!(got.ok(), want.ok(), "{text} with N={n}");
        }
    }

    #[test]
    fn bad_levels_are_refused() {
        for text in ["", "eventual", "0", "-1", "1.5", " one", "99999999999"] {
            assert!(text.parse::<ConsistencyLevel>().is_err(), "{text:?}");
        }
        assert!(ConsistencyLevel::Two.required(1).is_err());
        assert!(ConsistencyLevel::Exactly(4).required(3).is_err());
        assert!(ConsistencyLevel::Three.required(2).is_err());
    }

    proptest! {
        #[test]
        fn required_is_between_one_and_n(n in 1u32..32, k in 1u32..40) {
            for level in [ConsistencyLevel::One, ConsistencyLevel::Quorum, ConsistencyLevel::All, ConsistencyLevel::Exactly(k)] {
                if let Ok(required) = level.required(n) {
                    prop_assert!((1..=n).contains(&required));
                }
            }
            // Two quorums always overlap: R + W > N.
            let q = ConsistencyLevel::Quorum.required(n).unwrap();
            prop_assert!(2 * q > n);
        }

        #[test]
        fn display_round_trips(k in 1u32..1000) {
            for level in [ConsistencyLevel::One, ConsistencyLevel::Two, ConsistencyLevel::Three,
                          ConsistencyLevel::Quorum, ConsistencyLevel::All, ConsistencyLevel::Exactly(k)] {
                prop_assert_eq!(level.to_string().parse::<ConsistencyLevel>().unwrap(), level);
            }
        }
    }
}
