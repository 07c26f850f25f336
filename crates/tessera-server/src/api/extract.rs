//! Request parsing for the data routes: path segments, query, consistency, context and body.
//!
//! Paths are decoded here from the raw URI rather than by the router, so that every byte of a key
//! or column is checked by our rules and every bad input gets our JSON error (the router's own
//! rejections are plain text and cannot say which segment was wrong).

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use std::time::Duration;
use tessera_storage::{Context, MAX_COLUMN_LEN, MAX_KEY_LEN};

use super::error::ApiError;
use crate::consistency::ConsistencyLevel;
use crate::schema::validate_table_name;

pub const CONSISTENCY_HEADER: &str = "x-consistency";
pub const CONTEXT_HEADER: &str = "x-causal-context";

/// `/v1/tables/{table}`
pub struct TablePath {
    pub table: String,
}

/// `/v1/tables/{table}/rows/{key}`
pub struct RowPath {
    pub table: String,
    pub key: Vec<u8>,
}

/// `/v1/tables/{table}/rows/{key}/{column}`
pub struct CellPath {
    pub table: String,
    pub key: Vec<u8>,
    pub column: Vec<u8>,
}

/// The decoded segments of a `/v1/tables/...` path, checked one by one.
pub struct DataPath {
    pub table: String,
    pub key: Option<Vec<u8>>,
    pub column: Option<Vec<u8>>,
}

impl DataPath {
    /// Parses a raw path. `None` when it is not under `/v1/tables/{table}`.
    pub fn parse(raw: &str) -> Option<Result<Self, ApiError>> {
        let rest = raw.strip_prefix("/v1/tables/")?;
        let segments: Vec<&str> = rest.split('/').collect();
        let parsed = (|| {
            let table = decode_table(segments[0])?;
            let (key, column) = match segments.as_slice() {
                [_] => (None, None),
                [_, "rows", key] => (Some(decode_name(key, Name::Key)?), None),
                [_, "rows", key, column] => (
                    Some(decode_name(key, Name::Key)?),
                    Some(decode_name(column, Name::Column)?),
                ),
                _ => return Err(route_not_found(raw)),
            };
            Ok(Self { table, key, column })
        })();
        Some(parsed)
    }
}

pub fn route_not_found(path: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "route_not_found",
        format!("no route for {path}; see docs/api.md for the routes"),
    )
}

fn parse_parts(parts: &Parts) -> Result<DataPath, ApiError> {
    let raw = parts.uri.path();
    DataPath::parse(raw).unwrap_or_else(|| Err(route_not_found(raw)))
}

impl<S: Send + Sync> FromRequestParts<S> for TablePath {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let path = parse_parts(parts)?;
        Ok(Self { table: path.table })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RowPath {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match parse_parts(parts)? {
            DataPath {
                table,
                key: Some(key),
                column: None,
            } => Ok(Self { table, key }),
            _ => Err(route_not_found(parts.uri.path())),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CellPath {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match parse_parts(parts)? {
            DataPath {
                table,
                key: Some(key),
                column: Some(column),
            } => Ok(Self { table, key, column }),
            _ => Err(route_not_found(parts.uri.path())),
        }
    }
}

fn decode_table(segment: &str) -> Result<String, ApiError> {
    let decoded = strict_percent_decode(segment).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_table_name",
            format!("table name {segment:?} has a malformed percent escape"),
        )
    })?;
    let name = String::from_utf8_lossy(&decoded).into_owned();
    validate_table_name(&name)?;
    Ok(name)
}

#[derive(Clone, Copy)]
pub enum Name {
    Key,
    Column,
}

impl Name {
    fn code(self) -> &'static str {
        match self {
            Name::Key => "invalid_key",
            Name::Column => "invalid_column",
        }
    }
    fn what(self) -> &'static str {
        match self {
            Name::Key => "partition key",
            Name::Column => "column name",
        }
    }
    fn max(self) -> usize {
        match self {
            Name::Key => MAX_KEY_LEN,
            Name::Column => MAX_COLUMN_LEN,
        }
    }
}

fn decode_name(segment: &str, name: Name) -> Result<Vec<u8>, ApiError> {
    let bytes = strict_percent_decode(segment).ok_or_else(|| {
        ApiError::bad_request(
            name.code(),
            format!("{} {segment:?} has a malformed percent escape", name.what()),
        )
    })?;
    validate_name(&bytes, name)?;
    Ok(bytes)
}

/// Decodes `%XX` escapes, refusing a `%` that is not followed by two hex digits: taking it
/// literally, as lenient decoders do, would store a key the client never meant.
pub fn strict_percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Checks every name and value of a query string: escapes well formed, text UTF-8. The
/// form decoder behind `Query` would otherwise replace bad bytes and carry on.
fn check_raw_query(query: &str) -> Result<(), ApiError> {
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |part: &str| {
            strict_percent_decode(&part.replace('+', " ")).and_then(|b| String::from_utf8(b).ok())
        };
        let name = decode(name).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_parameter",
                format!("query parameter name {name:?} is not well-formed UTF-8"),
            )
        })?;
        if decode(value).is_none() {
            return Err(ApiError::invalid_parameter(
                &name,
                format!("query parameter {name} has a malformed escape or is not UTF-8"),
            ));
        }
    }
    Ok(())
}

/// The rules for partition keys and column names, wherever they come from (path or JSON).
pub fn validate_name(bytes: &[u8], name: Name) -> Result<(), ApiError> {
    let fail =
        |reason: String| ApiError::bad_request(name.code(), format!("{} {reason}", name.what()));
    if bytes.is_empty() {
        return Err(fail("is empty".into()));
    }
    if bytes.len() > name.max() {
        return Err(fail(format!(
            "is {} bytes, above the limit of {}",
            bytes.len(),
            name.max()
        ))
        .with("length", bytes.len())
        .with("max", name.max()));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| fail("is not valid UTF-8".into()))?;
    if text.contains('\0') {
        return Err(fail("contains a NUL byte".into()));
    }
    // Clients and proxies rewrite `.` and `..` path components, so such a name would be unreachable.
    if text.split('/').any(|part| part == "." || part == "..") {
        return Err(fail(format!(
            "{text:?} has a '.' or '..' path component, which HTTP clients rewrite"
        )));
    }
    Ok(())
}

/// Query string parsing with our error format, and unknown parameters refused: a misspelt
/// `consistency` must not silently fall back to the table default.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        check_raw_query(parts.uri.query().unwrap_or(""))?;
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(query)| ApiQuery(query))
            .map_err(|rejection| {
                ApiError::bad_request(
                    "invalid_parameter",
                    format!("bad query string: {}", rejection.body_text()),
                )
            })
    }
}

/// The consistency level of a request: `?consistency=` wins over `X-Consistency`.
pub fn consistency(
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Option<ConsistencyLevel>, ApiError> {
    let text = match query {
        Some(text) => text.to_string(),
        None => match headers.get(CONSISTENCY_HEADER) {
            Some(value) => value
                .to_str()
                .map_err(|_| {
                    ApiError::bad_request("invalid_consistency", "X-Consistency is not ASCII")
                })?
                .to_string(),
            None => return Ok(None),
        },
    };
    Ok(Some(text.parse::<ConsistencyLevel>()?))
}

/// The causal context a write sends back, if any.
pub fn context_header(headers: &HeaderMap) -> Result<Option<Context>, ApiError> {
    match headers.get(CONTEXT_HEADER) {
        None => Ok(None),
        Some(value) => {
            let token = value.to_str().map_err(|_| {
                ApiError::bad_request("invalid_context", "X-Causal-Context is not ASCII")
            })?;
            decode_context(token).map(Some)
        }
    }
}

pub fn decode_context(token: &str) -> Result<Context, ApiError> {
    tessera_version::decode_context(token.trim()).map_err(|e| {
        ApiError::bad_request(
            "invalid_context",
            format!("causal context is not one this server issued: {e}"),
        )
    })
}

/// Refuses a body whose `Content-Length` is above `max`, before anything is read.
pub fn check_declared_length(
    headers: &HeaderMap,
    max: usize,
    code: &'static str,
    what: &str,
) -> Result<(), ApiError> {
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    match declared {
        Some(length) if length > max => Err(ApiError::too_large(code, what, length, max)),
        _ => Ok(()),
    }
}

/// Reads a request body of at most `max` bytes, refusing larger ones before reading them when
/// `Content-Length` says so.
pub async fn read_body(
    body: Body,
    headers: &HeaderMap,
    max: usize,
    code: &'static str,
    what: &str,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    check_declared_length(headers, max, code, what)?;
    // A client that sends its body slowly (or stops) must not hold a connection and a task for
    // ever: the whole body must arrive within the timeout.
    let read = tokio::time::timeout(timeout, axum::body::to_bytes(body, max))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "{what} did not arrive within {} ms (requests.body_timeout_ms)",
                    timeout.as_millis()
                ),
            )
            .with(
                "timeout_ms",
                u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            )
        })?;
    read.map_err(|err| {
        let inner = err.into_inner();
        if inner
            .downcast_ref::<http_body_util::LengthLimitError>()
            .is_some()
        {
            ApiError::too_large(code, what, max + 1, max)
        } else {
            ApiError::bad_request("invalid_body", format!("could not read the body: {inner}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_paths_decode_percent_escapes() {
        let path = DataPath::parse("/v1/tables/t/rows/user%2F1/na%20me")
            .unwrap()
            .unwrap();
        assert_eq!(path.table, "t");
        assert_eq!(path.key.unwrap(), b"user/1");
        assert_eq!(path.column.unwrap(), b"na me");
        assert!(DataPath::parse("/health").is_none());
    }

    #[test]
    fn path_tricks_are_refused() {
        for raw in [
            "/v1/tables/t/rows/../c",
            "/v1/tables/t/rows/%2e%2e%2f/c",
            "/v1/tables/t/rows/a%2f..%2fb/c",
            "/v1/tables/t/rows/k/%2E",
            "/v1/tables/t/rows/a%00b/c",
            "/v1/tables/t/rows/k/c%00",
            "/v1/tables/t%00/rows/k/c",
            "/v1/tables/%2e%2e/rows/k/c",
            "/v1/tables/t/rows/%FF/c",
            "/v1/tables/t/rows//c",
            "/v1/tables/t/rows/k/",
            "/v1/tables/t/rows/%zz/c",
            "/v1/tables/t/rows/k/%4",
            "/v1/tables/t/rows/%/c",
            "/v1/tables/t%G1/rows/k/c",
        ] {
            let parsed = DataPath::parse(raw).unwrap();
            let err = parsed.err().unwrap_or_else(|| panic!("{raw} accepted"));
            assert_eq!(err.status, 400, "{raw}: {}", err.message);
        }
    }

    #[test]
    fn queries_are_decoded_strictly() {
        assert!(check_raw_query("from=a%20b&to=c+d&limit=5").is_ok());
        assert!(check_raw_query("").is_ok());
        for bad in ["from=%FF", "from=%zz", "to=%", "%FF=1"] {
            assert!(check_raw_query(bad).is_err(), "{bad}");
        }
        assert_eq!(strict_percent_decode("a%2Fb%00").unwrap(), b"a/b\0");
    }

    #[test]
    fn names_have_length_limits() {
        assert!(validate_name(&vec![b'a'; MAX_KEY_LEN], Name::Key).is_ok());
        let err = validate_name(&vec![b'a'; MAX_KEY_LEN + 1], Name::Key).unwrap_err();
        assert_eq!(err.code, "invalid_key");
        assert!(validate_name(b"a..b/c.d", Name::Column).is_ok());
    }
}
