//! Request bodies for etcd 3.4's grpc-gateway JSON API, so that the cluster benchmark can drive
//! etcd with the same keys, values, mix and connections as Tessera.
//!
//! - write: `POST /v3/kv/put` with `{"key": base64(key), "value": base64(value)}`;
//! - read: `POST /v3/kv/range` with `{"key": base64(key)}` (linearizable: etcd's default).
//!
//! The gateway carries protobuf `bytes` fields as standard base64 (with padding). The value is the
//! same for every write, so its base64 is computed once and each body only encodes the key.

/// The write path.
pub const PUT_PATH: &str = "/v3/kv/put";
/// The read path.
pub const RANGE_PATH: &str = "/v3/kv/range";

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Appends standard base64 (RFC 4648, padded) of `input` to `out`.
///
/// A dozen lines here rather than a dependency: the benchmark only ever encodes.
pub fn base64_into(input: &[u8], out: &mut String) {
    out.reserve(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextet = |shift: u32| char::from(ALPHABET[((n >> shift) & 0x3f) as usize]);
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if chunk.len() > 1 { sextet(6) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(0) } else { '=' });
    }
}

/// Standard base64 of `input`.
pub fn base64(input: &[u8]) -> String {
    let mut out = String::new();
    base64_into(input, &mut out);
    out
}

/// Builds the JSON bodies of the etcd requests for one value.
#[derive(Clone, Debug)]
pub struct EtcdBodies {
    /// `base64(value)`, computed once.
    value: String,
}

impl EtcdBodies {
    /// Bodies whose writes all carry `value`.
    pub fn new(value: &[u8]) -> Self {
        Self {
            value: base64(value),
        }
    }

    /// `{"key":"<b64 k{n}>","value":"<b64 value>"}`.
    pub fn put(&self, n: u64) -> String {
        let mut body = String::with_capacity(40 + self.value.len());
        body.push_str("{\"key\":\"");
        base64_into(key(n).as_bytes(), &mut body);
        body.push_str("\",\"value\":\"");
        body.push_str(&self.value);
        body.push_str("\"}");
        body
    }

    /// `{"key":"<b64 k{n}>"}`.
    pub fn range(&self, n: u64) -> String {
        let mut body = String::with_capacity(40);
        body.push_str("{\"key\":\"");
        base64_into(key(n).as_bytes(), &mut body);
        body.push_str("\"}");
        body
    }
}

/// The key of number `n`: `k{n}`, the row key Tessera's runs use.
pub fn key(n: u64) -> String {
    format!("k{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
        // Every byte value, through the high bits that select '+' and '/'.
        assert_eq!(base64(&[0xfb, 0xff, 0xbf]), "+/+/");
        assert_eq!(base64(&[0, 0, 0]), "AAAA");
    }

    #[test]
    fn bodies_are_the_gateway_json() {
        let bodies = EtcdBodies::new(b"hello");
        assert_eq!(bodies.put(42), r#"{"key":"azQy","value":"aGVsbG8="}"#);
        assert_eq!(bodies.range(7), r#"{"key":"azc="}"#);
        // They are JSON, with the fields etcd expects.
        let put: serde_json::Value = serde_json::from_str(&bodies.put(123_456)).unwrap();
        assert_eq!(put["key"], base64(b"k123456"));
        assert_eq!(put["value"], "aGVsbG8=");
        let range: serde_json::Value = serde_json::from_str(&bodies.range(0)).unwrap();
        assert_eq!(range.as_object().unwrap().len(), 1);
        assert_eq!(range["key"], "azA=");
    }

    #[test]
    fn a_100_byte_value_encodes_to_136_characters() {
        let bodies = EtcdBodies::new(&[b'a'; 100]);
        let put: serde_json::Value = serde_json::from_str(&bodies.put(1)).unwrap();
        assert_eq!(put["value"].as_str().unwrap().len(), 136);
    }
}
