//! The envelope of every value this node writes: a format version byte, then postcard.
//!
//! The version byte lets a later release change an encoding and still read
//! what an older one wrote. Decoding is defensive: bytes from disk or from a
//! peer can be anything, and the answer to garbage is
//! [`StorageError::Corrupt`], never a panic. Other crates reuse these helpers
//! for their own records (ring, schema in `meta`; hints in `hints`).

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{hex_key, StorageError};

/// The version byte that starts every value encoded by this release.
pub const FORMAT_VERSION: u8 = 1;

/// Encodes `value` as `[FORMAT_VERSION] ++ postcard(value)`.
///
/// Fails only if `T`'s `Serialize` impl is one postcard cannot express (a
/// bug, not bad input); `what` names the record in that error.
pub fn encode_versioned<T: Serialize + ?Sized>(
    what: &'static str,
    value: &T,
) -> Result<Vec<u8>, StorageError> {
    postcard::to_extend(value, vec![FORMAT_VERSION]).map_err(|e| StorageError::Encode {
        what,
        reason: e.to_string(),
    })
}

/// Decodes what [`encode_versioned`] wrote. `what` and `key` only label errors.
pub fn decode_versioned<T: DeserializeOwned>(
    what: &'static str,
    key: &[u8],
    bytes: &[u8],
) -> Result<T, StorageError> {
    let corrupt = |reason: String| StorageError::Corrupt {
        what,
        key: hex_key(key),
        reason,
    };
    let Some((&version, body)) = bytes.split_first() else {
        return Err(corrupt(
            "empty value, expected a format version byte".to_owned(),
        ));
    };
    if version != FORMAT_VERSION {
        return Err(corrupt(format!(
            "unknown format version {version} (this release reads {FORMAT_VERSION})"
        )));
    }
    let (value, rest) = postcard::take_from_bytes(body)
        .map_err(|e| corrupt(format!("{e} ({} bytes after the version)", body.len())))?;
    // Trailing bytes mean the value is not what we think it is.
    if !rest.is_empty() {
        return Err(corrupt(format!(
            "{} trailing bytes after a {}-byte value",
            rest.len(),
            body.len() - rest.len()
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Record {
        name: String,
        count: u64,
        blob: Option<Vec<u8>>,
    }

    fn record() -> Record {
        Record {
            name: "node".to_owned(),
            count: 42,
            blob: Some(vec![0, 255]),
        }
    }

    #[test]
    fn round_trip_starts_with_the_version() {
        let bytes = encode_versioned("record", &record()).unwrap();
        assert_eq!(bytes[0], FORMAT_VERSION);
        let back: Record = decode_versioned("record", b"k", &bytes).unwrap();
        assert_eq!(back, record());
    }

    #[test]
    fn bad_envelopes_are_corrupt() {
        let good = encode_versioned("record", &record()).unwrap();
        let mut wrong_version = good.clone();
        wrong_version[0] = 9;
        let mut trailing = good.clone();
        trailing.push(0);
        let truncated = &good[..good.len() - 1];
        for (bytes, needle) in [
            (&[][..], "empty"),
            (&wrong_version[..], "unknown format version 9"),
            (&trailing[..], "trailing"),
            (truncated, ""),
        ] {
            match decode_versioned::<Record>("record", b"\x01key", bytes) {
                Err(StorageError::Corrupt { what, key, reason }) => {
                    assert_eq!(what, "record");
                    assert_eq!(key, "016b6579");
                    assert!(reason.contains(needle), "{reason}");
                }
                other => panic!("expected Corrupt, got {other:?}"),
            }
        }
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_versioned::<Record>("record", b"k", &bytes);
        }
    }
}
