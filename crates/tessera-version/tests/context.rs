//! Causal-context tokens: round trips for arbitrary vectors, and garbled input
//! of every kind yields the right error without panicking.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use proptest::prelude::*;
use tessera_version::{
    decode_context, encode_context, ContextError, Counter, VersionVector, CONTEXT_FORMAT_VERSION,
    MAX_CONTEXT_TOKEN_LEN,
};

fn vector<A: Ord + Clone + std::fmt::Debug>(
    actor: impl Strategy<Value = A>,
) -> impl Strategy<Value = VersionVector<A>> {
    prop::collection::vec((actor, any::<Counter>()), 0..12).prop_map(VersionVector::from_entries)
}

proptest! {
    #[test]
    fn round_trip_u8(v in vector(any::<u8>())) {
        prop_assert_eq!(decode_context::<u8>(&encode_context(&v)), Ok(v));
    }

    #[test]
    fn round_trip_u64(v in vector(any::<u64>())) {
        let token = encode_context(&v);
        prop_assert!(token.len() <= MAX_CONTEXT_TOKEN_LEN);
        prop_assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        prop_assert_eq!(decode_context::<u64>(&token), Ok(v));
    }

    #[test]
    fn round_trip_string(v in vector(".{0,12}")) {
        prop_assert_eq!(decode_context::<String>(&encode_context(&v)), Ok(v));
    }

    #[test]
    fn arbitrary_strings_never_panic(token in ".{0,64}") {
        let result = decode_context::<u64>(&token);
        if token.is_empty() {
            prop_assert_eq!(result, Err(ContextError::Empty));
        }
        let _ = decode_context::<String>(&token);
    }

    #[test]
    fn base64_strings_never_panic(token in "[A-Za-z0-9_-]{0,64}") {
        let _ = decode_context::<u8>(&token);
        let _ = decode_context::<u64>(&token);
        let _ = decode_context::<String>(&token);
    }

    #[test]
    fn arbitrary_bodies_never_panic_and_decode_only_valid_vectors(body in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut bytes = vec![CONTEXT_FORMAT_VERSION];
        bytes.extend(&body);
        let token = URL_SAFE_NO_PAD.encode(&bytes);
        match decode_context::<u8>(&token) {
            // Whatever decodes must be valid and re-encode to the very same token.
            Ok(v) => prop_assert_eq!(&encode_context(&v), &token),
            Err(e) => prop_assert!(matches!(e, ContextError::Malformed { .. }), "{:?}", e),
        }
        let _ = decode_context::<String>(&token);
        let _ = decode_context::<u64>(&token);
    }

    #[test]
    fn truncated_tokens_are_rejected(v in vector(any::<u16>()), cut in any::<prop::sample::Index>()) {
        let token = encode_context(&v);
        let cut = cut.index(token.len());
        let result = decode_context::<u16>(&token[..cut]);
        prop_assert!(result.is_err(), "{} cut at {} decoded", token, cut);
        if cut == 0 {
            prop_assert_eq!(result, Err(ContextError::Empty));
        }
    }

    #[test]
    fn wrong_version_byte_is_named(v in vector(any::<u8>()), version in any::<u8>()) {
        prop_assume!(version != CONTEXT_FORMAT_VERSION);
        let mut bytes = URL_SAFE_NO_PAD.decode(encode_context(&v)).unwrap();
        bytes[0] = version;
        prop_assert_eq!(
            decode_context::<u8>(&URL_SAFE_NO_PAD.encode(&bytes)),
            Err(ContextError::UnknownVersion { found: version, supported: CONTEXT_FORMAT_VERSION })
        );
    }

    #[test]
    fn appended_bytes_are_rejected(v in vector(any::<u8>()), extra in prop::collection::vec(any::<u8>(), 1..8)) {
        let mut bytes = URL_SAFE_NO_PAD.decode(encode_context(&v)).unwrap();
        bytes.extend(extra);
        let result = decode_context::<u8>(&URL_SAFE_NO_PAD.encode(&bytes));
        prop_assert!(matches!(result, Err(ContextError::Malformed { .. })), "{:?}", result);
    }
}

#[test]
fn over_long_tokens_are_rejected_before_decoding() {
    let token = "!".repeat(MAX_CONTEXT_TOKEN_LEN + 10);
    assert_eq!(
        decode_context::<u8>(&token),
        Err(ContextError::TooLong {
            len: MAX_CONTEXT_TOKEN_LEN + 10,
            max: MAX_CONTEXT_TOKEN_LEN
        })
    );
}

#[test]
fn padded_or_standard_alphabet_is_not_base64url() {
    let v = VersionVector::from_entries([(250u8, 1_000_000)]);
    let bytes = URL_SAFE_NO_PAD.decode(encode_context(&v)).unwrap();
    let padded = base64::engine::general_purpose::URL_SAFE.encode(&bytes);
    if padded.ends_with('=') {
        assert_eq!(decode_context::<u8>(&padded), Err(ContextError::NotBase64));
    }
    assert_eq!(decode_context::<u8>("ab+/"), Err(ContextError::NotBase64));
}
