//! Percent-encoding for path segments and query values.
//!
//! Everything except the RFC 3986 unreserved characters is encoded, so a key
//! holding `/`, `%`, `?`, spaces or any non-ASCII byte reaches the server as
//! exactly one segment. Keys `.` and `..` cannot be sent through `reqwest`
//! at all (URL parsing removes them, encoded or not); tests of those use
//! [`crate::raw`].

use percent_encoding::{percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Bytes left as they are: `A-Z a-z 0-9 - . _ ~`.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Encodes raw bytes as one path segment or query value.
pub fn enc(bytes: impl AsRef<[u8]>) -> String {
    percent_encode(bytes.as_ref(), SEGMENT).to_string()
}

/// `/v1/tables/{table}`.
pub fn table_path(table: &str) -> String {
    format!("/v1/tables/{}", enc(table))
}

/// `/v1/tables/{table}/rows/{key}`.
pub fn row_path(table: &str, key: &str) -> String {
    format!("/v1/tables/{}/rows/{}", enc(table), enc(key))
}

/// `/v1/tables/{table}/rows/{key}/{column}`.
pub fn cell_path(table: &str, key: &str, column: &str) -> String {
    format!("{}/{}", row_path(table, key), enc(column))
}

/// `?k=v&...` with encoded values, or `""` when there are none.
pub fn query(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    format!("?{}", parts.join("&"))
}
