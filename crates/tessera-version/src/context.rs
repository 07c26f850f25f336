//! Causal-context tokens: how a [`VersionVector`] travels through HTTP clients.
//!
//! A token is unpadded base64url of `[CONTEXT_FORMAT_VERSION] ++ postcard(vector)`,
//! so it is opaque to clients, safe in URLs and headers, and versioned like every
//! other encoding in Tessera. Tokens come from untrusted clients, so decoding
//! bounds the length first, never panics, and rejects anything that is not
//! exactly one valid vector (sorted distinct actors, non-zero counters, no
//! trailing bytes).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::version_vector::VersionVector;
use crate::Counter;

/// Format version byte at the start of every decoded token.
pub const CONTEXT_FORMAT_VERSION: u8 = 1;

/// Longest token (in bytes of its text) that [`decode_context`] will look at.
pub const MAX_CONTEXT_TOKEN_LEN: usize = 16 * 1024;

/// Why a causal-context token was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ContextError {
    #[error("causal context token is empty")]
    Empty,
    #[error("causal context token is {len} bytes long, more than the maximum of {max}")]
    TooLong { len: usize, max: usize },
    #[error("causal context token is not unpadded base64url")]
    NotBase64,
    #[error("causal context token has format version {found}, but only version {supported} is supported")]
    UnknownVersion { found: u8, supported: u8 },
    #[error("causal context token is malformed: {reason}")]
    Malformed { reason: String },
}

/// Encodes `context` as an opaque token for the `X-Causal-Context` header.
///
/// # Panics
/// Only if `A`'s `Serialize` implementation itself fails, which the plain
/// actor ids Tessera uses (integers, strings) never do.
pub fn encode_context<A: Serialize>(context: &VersionVector<A>) -> String {
    let bytes = postcard::to_extend(context, vec![CONTEXT_FORMAT_VERSION])
        .expect("postcard into a Vec fails only if the actor's Serialize impl fails");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes a token made by [`encode_context`]. Never panics, whatever the input.
pub fn decode_context<A: DeserializeOwned + Ord + Clone>(
    token: &str,
) -> Result<VersionVector<A>, ContextError> {
    if token.is_empty() {
        return Err(ContextError::Empty);
    }
    if token.len() > MAX_CONTEXT_TOKEN_LEN {
        return Err(ContextError::TooLong {
            len: token.len(),
            max: MAX_CONTEXT_TOKEN_LEN,
        });
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| ContextError::NotBase64)?;
    let Some((&version, body)) = bytes.split_first() else {
        return Err(malformed("no format version byte".to_owned()));
    };
    if version != CONTEXT_FORMAT_VERSION {
        return Err(ContextError::UnknownVersion {
            found: version,
            supported: CONTEXT_FORMAT_VERSION,
        });
    }
    // Decode the raw pairs first so that an invariant violation is reported
    // precisely (postcard drops the message of serde's custom errors).
    let (pairs, rest) = postcard::take_from_bytes::<Vec<(A, Counter)>>(body)
        .map_err(|e| malformed(format!("cannot decode the vector: {e}")))?;
    if !rest.is_empty() {
        return Err(malformed(format!(
            "{} trailing bytes after the vector ({} bytes in all)",
            rest.len(),
            bytes.len()
        )));
    }
    VersionVector::try_from_raw(pairs).map_err(|e| malformed(e.to_string()))
}

fn malformed(reason: String) -> ContextError {
    ContextError::Malformed { reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_of(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    #[test]
    fn round_trip() {
        let v = VersionVector::from_entries([(3u64, 9), (1, 1), (200, 70_000)]);
        let token = encode_context(&v);
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(decode_context::<u64>(&token), Ok(v));
        let empty = VersionVector::<String>::new();
        assert_eq!(decode_context::<String>(&encode_context(&empty)), Ok(empty));
    }

    #[test]
    fn layout_is_version_byte_then_postcard() {
        let v = VersionVector::from_entries([(5u8, 2)]);
        assert_eq!(encode_context(&v), token_of(&[1, 1, 5, 2]));
    }

    #[test]
    fn rejects_empty_and_too_long() {
        assert_eq!(decode_context::<u8>(""), Err(ContextError::Empty));
        let long = "A".repeat(MAX_CONTEXT_TOKEN_LEN + 1);
        assert_eq!(
            decode_context::<u8>(&long),
            Err(ContextError::TooLong {
                len: MAX_CONTEXT_TOKEN_LEN + 1,
                max: MAX_CONTEXT_TOKEN_LEN
            })
        );
    }

    #[test]
    fn rejects_non_base64() {
        for token in ["!!", "AQA=", "A", "a b", "AQ+/", "é"] {
            assert_eq!(
                decode_context::<u8>(token),
                Err(ContextError::NotBase64),
                "{token}"
            );
        }
    }

    #[test]
    fn rejects_unknown_version() {
        assert_eq!(
            decode_context::<u8>(&token_of(&[2, 0])),
            Err(ContextError::UnknownVersion {
                found: 2,
                supported: 1
            })
        );
    }

    #[test]
    fn rejects_malformed_bodies() {
        let cases: &[&[u8]] = &[
            &[1],                // no vector
            &[1, 1, 5],          // truncated pair
            &[1, 0, 0],          // trailing byte
            &[1, 2, 5, 1, 3, 1], // unsorted
            &[1, 2, 5, 1, 5, 2], // duplicate
            &[1, 1, 5, 0],       // zero counter
        ];
        for bytes in cases {
            match decode_context::<u8>(&token_of(bytes)) {
                Err(ContextError::Malformed { reason }) => assert!(!reason.is_empty()),
                other => panic!("{bytes:?} gave {other:?}"),
            }
        }
        match decode_context::<u8>(&token_of(&[1, 2, 5, 1, 5, 2])) {
            Err(ContextError::Malformed { reason }) => assert!(reason.contains("duplicate")),
            other => panic!("{other:?}"),
        }
    }
}
