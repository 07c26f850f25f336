//! API errors: the only place where failures become HTTP statuses and JSON bodies.
//!
//! Every error answers `{"error": {"code", "message", ...details}}`, so that clients can branch on a
//! stable `code` and operators can read the `message` and the numbers in the details.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use tessera_storage::StorageError;

use tessera_cluster::{CoordinatorError, QuorumFailure};

use crate::consistency::ConsistencyError;
use crate::schema::SchemaError;

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Map<String, Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Map::new(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// Adds a detail field to the error body.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_string(), value.into());
        self
    }

    pub fn invalid_parameter(parameter: &str, message: impl Into<String>) -> Self {
        Self::bad_request("invalid_parameter", message).with("parameter", parameter)
    }

    pub fn invalid_json(message: impl std::fmt::Display) -> Self {
        Self::bad_request("invalid_json", format!("invalid JSON body: {message}"))
    }

    pub fn table_not_found(table: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "table_not_found",
            format!(
                "table {table:?} does not exist; create it with PUT /v1/tables/{table} (body optional, e.g. {{\"replication\": 3}})"
            ),
        )
        .with("table", table)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn too_large(code: &'static str, what: &str, length: usize, max: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            code,
            format!("{what} is {length} bytes, above the limit of {max} bytes"),
        )
        .with("length", length)
        .with("max", max)
    }

    pub fn timeout(what: &str, timeout_ms: u64) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!("{what} did not finish within {timeout_ms} ms; a write may or may not have been applied"),
        )
        .with("timeout_ms", timeout_ms)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = Map::new();
        error.insert("code".into(), json!(self.code));
        error.insert("message".into(), json!(self.message));
        error.extend(self.details);
        if self.status.is_server_error() {
            tracing::warn!(status = self.status.as_u16(), code = self.code, message = %self.message, "request failed");
        }
        (self.status, Json(json!({ "error": error }))).into_response()
    }
}

impl From<StorageError> for ApiError {
    fn from(err: StorageError) -> Self {
        match &err {
            StorageError::TooManySiblings {
                column,
                siblings,
                max,
            } => Self::new(
                StatusCode::CONFLICT,
                "too_many_siblings",
                format!(
                    "{err}; read the cell and write with its X-Causal-Context to resolve the siblings"
                ),
            )
            .with("column", column.as_str())
            .with("siblings", *siblings)
            .with("max", *max),
            StorageError::KeyTooLong { len, max } => Self::bad_request("invalid_key", err.to_string())
                .with("length", *len)
                .with("max", *max),
            StorageError::ColumnTooLong { len, max } => {
                Self::bad_request("invalid_column", err.to_string())
                    .with("length", *len)
                    .with("max", *max)
            }
            StorageError::InvalidBatch { .. } => Self::bad_request("invalid_batch", err.to_string()),
            _ => Self::internal(format!("storage failure: {err}")),
        }
    }
}

impl From<SchemaError> for ApiError {
    fn from(err: SchemaError) -> Self {
        match err {
            SchemaError::InvalidName { ref name } => {
                let name = name.clone();
                Self::bad_request("invalid_table_name", err.to_string()).with("table", name)
            }
            SchemaError::InvalidSettings { .. } => {
                Self::bad_request("invalid_table_settings", err.to_string())
            }
            SchemaError::Conflict { ref existing } => {
                let existing = serde_json::to_value(existing.as_ref()).unwrap_or(Value::Null);
                Self::new(StatusCode::CONFLICT, "table_exists", err.to_string())
                    .with("existing", existing)
            }
            SchemaError::IdCollision { .. } => {
                Self::new(StatusCode::CONFLICT, "table_id_collision", err.to_string())
            }
            SchemaError::Storage(storage) => storage.into(),
        }
    }
}

impl From<ConsistencyError> for ApiError {
    fn from(err: ConsistencyError) -> Self {
        let error = Self::bad_request("invalid_consistency", err.to_string());
        match err {
            ConsistencyError::Unknown { level } => error.with("level", level),
            ConsistencyError::AboveReplication {
                level, replication, ..
            } => error
                .with("level", level.to_string())
                .with("replication", replication),
        }
    }
}

impl ApiError {
    /// A quorum that could not be reached, with who answered and who failed and how.
    pub fn quorum(code: &'static str, message: String, failure: &QuorumFailure) -> Self {
        let failed: Vec<Value> = failure
            .failed
            .iter()
            .map(|(node, reason)| json!({ "node": node, "reason": reason }))
            .collect();
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
            .with("required", failure.required)
            .with("acked", failure.acked)
            .with("acked_by", json!(failure.acked_by))
            .with("failed", Value::Array(failed))
            .with("replication", failure.replication)
    }
}

impl From<CoordinatorError> for ApiError {
    fn from(err: CoordinatorError) -> Self {
        let message = err.to_string();
        match err {
            CoordinatorError::Unavailable(failure) => {
                Self::quorum("unavailable", message, &failure)
            }
            CoordinatorError::Failed(failure) => Self::quorum("quorum_failed", message, &failure),
            CoordinatorError::Timeout {
                required,
                acked,
                replication,
                pending,
                timeout_ms,
            } => Self::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                format!("{message}; a write may or may not have been applied"),
            )
            .with("required", required)
            .with("acked", acked)
            .with("replication", replication)
            .with("pending", json!(pending))
            .with("timeout_ms", timeout_ms),
            CoordinatorError::Storage(storage) => storage.into(),
            CoordinatorError::Forward { to, .. } => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "forward_failed", message).with("to", to)
            }
            CoordinatorError::InvalidRequest { .. } => Self::internal(message),
        }
    }
}
