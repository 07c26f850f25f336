//! How cell values appear in JSON: text when they are UTF-8, base64 otherwise or when asked.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use tessera_storage::{Cell, CellValue};

use super::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    #[default]
    Utf8,
    Base64,
}

impl Encoding {
    /// The `encoding` query parameter: `utf8` (the default) or `base64`.
    pub fn parse(text: Option<&str>) -> Result<Self, ApiError> {
        match text {
            None | Some("utf8") => Ok(Self::Utf8),
            Some("base64") => Ok(Self::Base64),
            Some(other) => Err(ApiError::invalid_parameter(
                "encoding",
                format!("encoding must be utf8 or base64, got {other:?}"),
            )),
        }
    }
}

/// One version: `{"value"}`, `{"value_base64"}` or `{"deleted": true}`.
pub fn version_json(version: &CellValue, encoding: Encoding) -> Value {
    let mut object = Map::new();
    match &version.data {
        None => {
            object.insert("deleted".into(), json!(true));
        }
        Some(bytes) => insert_value(&mut object, bytes, encoding),
    }
    object.insert("written_at_ms".into(), json!(version.written_at_ms));
    Value::Object(object)
}

/// Adds a value to a JSON object under the key its encoding calls for.
pub fn insert_value(object: &mut Map<String, Value>, bytes: &[u8], encoding: Encoding) {
    match (encoding, std::str::from_utf8(bytes)) {
        (Encoding::Utf8, Ok(text)) => object.insert("value".into(), json!(text)),
        _ => object.insert("value_base64".into(), json!(STANDARD.encode(bytes))),
    };
}

/// The siblings of a cell as shown in a 300 answer, oldest first.
pub fn siblings_json(cell: &Cell, encoding: Encoding) -> Value {
    Value::Array(
        cell.values()
            .into_iter()
            .map(|version| version_json(version, encoding))
            .collect(),
    )
}

/// The live value, when a cell has exactly one version and it is not deleted.
pub fn single_value(cell: &Cell) -> Option<&[u8]> {
    match cell.values().as_slice() {
        [only] => only.data.as_deref(),
        _ => None,
    }
}

/// True when every version of the cell is a tombstone (or it has none).
pub fn is_deleted(cell: &Cell) -> bool {
    cell.values().iter().all(|version| version.data.is_none())
}

/// A value given in JSON as exactly one of `value` (text) or `value_base64`.
pub fn decode_json_value(
    value: Option<String>,
    value_base64: Option<String>,
    column: &str,
) -> Result<Vec<u8>, ApiError> {
    match (value, value_base64) {
        (Some(text), None) => Ok(text.into_bytes()),
        (None, Some(encoded)) => STANDARD.decode(encoded.as_bytes()).map_err(|e| {
            ApiError::invalid_json(format!(
                "value_base64 of column {column:?} is not base64: {e}"
            ))
        }),
        _ => Err(ApiError::invalid_json(format!(
            "a set of column {column:?} needs exactly one of \"value\" and \"value_base64\""
        ))),
    }
}
