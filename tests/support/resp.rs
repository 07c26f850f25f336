//! A response as the tests see it, and parsers for the API's JSON shapes.
//!
//! Both the `reqwest` helpers and the raw TCP client return a [`Resp`], so
//! assertions read the same whichever way a request was sent. The assertion
//! helpers print the whole response when they fail, because a bare "expected
//! 400, got 500" is useless for finding a server bug.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::header::HeaderMap;
use serde_json::Value;

/// Status, headers and body of one HTTP response.
#[derive(Clone, Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// One version of a cell, as shown in a sibling list or a row.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    /// A live value (decoded from `value` or `value_base64`).
    Value(Vec<u8>),
    /// A tombstone, `{"deleted": true}`.
    Deleted,
}

/// One entry of a row read's `cells`.
#[derive(Clone, Debug)]
pub struct RowCell {
    pub column: String,
    /// One element for a `value`/`value_base64` cell, several for `siblings`.
    pub versions: Vec<Version>,
    /// True when the cell was shown with a `siblings` list.
    pub has_siblings: bool,
    /// True when the single value was shown as `value_base64`.
    pub base64: bool,
    pub context: Option<String>,
    /// The entry as the server sent it.
    pub raw: Value,
}

impl Resp {
    /// A header's value as text (lossy), case-insensitive name.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// `X-Causal-Context`.
    pub fn context(&self) -> Option<String> {
        self.header("x-causal-context")
    }

    /// `X-Causal-Context`, panicking with the response when absent.
    #[track_caller]
    pub fn ctx(&self) -> String {
        match self.context() {
            Some(c) => c,
            None => panic!("response has no X-Causal-Context: {}", self.describe()),
        }
    }

    /// `X-Siblings` as a number.
    pub fn siblings(&self) -> Option<u64> {
        self.header("x-siblings")
            .and_then(|s| s.trim().parse().ok())
    }

    /// `X-Replicas`, e.g. `1/1/1`.
    pub fn replicas(&self) -> Option<String> {
        self.header("x-replicas")
    }

    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the response when it is not JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        match serde_json::from_slice(&self.body) {
            Ok(v) => v,
            Err(e) => panic!("body is not JSON ({e}): {}", self.describe()),
        }
    }

    /// `error.code` when the body is an API error.
    pub fn error_code(&self) -> Option<String> {
        let v: Value = serde_json::from_slice(&self.body).ok()?;
        v.get("error")?.get("code")?.as_str().map(str::to_string)
    }

    /// A one-paragraph dump for assertion messages (body cut at 2 KiB).
    pub fn describe(&self) -> String {
        let mut headers: Vec<String> = self
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v.as_bytes())))
            .collect();
        headers.sort();
        let body = self.text();
        let body = if body.len() > 2048 {
            let mut cut = 2048;
            while !body.is_char_boundary(cut) {
                cut -= 1;
            }
            format!("{}... ({} bytes)", &body[..cut], self.body.len())
        } else {
            body
        };
        format!(
            "status {} headers [{}] body {:?}",
            self.status,
            headers.join(", "),
            body
        )
    }

    /// Asserts the status; returns `self` for chaining.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status,
            status,
            "expected status {status}, got {}",
            self.describe()
        );
        self
    }

    /// Asserts an API error: the status, a JSON body
    /// `{"error": {"code": code, "message": non-empty, ...}}`. Returns the
    /// `error` object so the caller can check details.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) -> Value {
        let err = self.expect_any_error(status);
        assert_eq!(
            err["code"].as_str(),
            Some(code),
            "expected error code {code:?} with status {status}, got {}",
            self.describe()
        );
        err
    }

    /// Like [`expect_error`](Self::expect_error), for any of several codes.
    #[track_caller]
    pub fn expect_error_in(&self, status: u16, codes: &[&str]) -> Value {
        let err = self.expect_any_error(status);
        let code = err["code"].as_str().unwrap_or("");
        assert!(
            codes.contains(&code),
            "expected one of the error codes {codes:?} with status {status}, got {}",
            self.describe()
        );
        err
    }

    /// Asserts the status and the JSON error shape, whatever the code.
    #[track_caller]
    pub fn expect_any_error(&self, status: u16) -> Value {
        assert_eq!(
            self.status,
            status,
            "expected status {status} with a JSON error, got {}",
            self.describe()
        );
        let v: Value = match serde_json::from_slice(&self.body) {
            Ok(v) => v,
            Err(e) => panic!(
                "expected a JSON error body with status {status}, body is not JSON ({e}): {}",
                self.describe()
            ),
        };
        let err = v.get("error").cloned().unwrap_or(Value::Null);
        let code_ok = err
            .get("code")
            .and_then(Value::as_str)
            .is_some_and(|c| !c.is_empty());
        let msg_ok = err
            .get("message")
            .and_then(Value::as_str)
            .is_some_and(|m| !m.is_empty());
        assert!(
            code_ok && msg_ok,
            "expected {{\"error\": {{\"code\", \"message\"}}}}, got {}",
            self.describe()
        );
        err
    }

    /// The versions of a `300 Multiple Choices` body (a JSON list), sorted.
    #[track_caller]
    pub fn versions(&self) -> Vec<Version> {
        let v = self.json();
        let Some(list) = v.as_array() else {
            panic!("expected a JSON list of siblings, got {}", self.describe());
        };
        let mut out: Vec<Version> = list.iter().map(parse_version).collect();
        out.sort();
        out
    }
}

/// Parses `{"value": ..}`, `{"value_base64": ..}` or `{"deleted": true}`.
#[track_caller]
pub fn parse_version(v: &Value) -> Version {
    if v.get("deleted").and_then(Value::as_bool) == Some(true) {
        return Version::Deleted;
    }
    if let Some(s) = v.get("value").and_then(Value::as_str) {
        return Version::Value(s.as_bytes().to_vec());
    }
    if let Some(s) = v.get("value_base64").and_then(Value::as_str) {
        match STANDARD.decode(s) {
            Ok(b) => return Version::Value(b),
            Err(e) => panic!("value_base64 {s:?} is not standard padded base64: {e}"),
        }
    }
    panic!("not a version (value, value_base64 or deleted): {v}");
}

/// Live values among `versions`, sorted.
pub fn live_values(versions: &[Version]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = versions
        .iter()
        .filter_map(|v| match v {
            Version::Value(b) => Some(b.clone()),
            Version::Deleted => None,
        })
        .collect();
    out.sort();
    out
}

/// A `Version::Value` from text.
pub fn val(s: &str) -> Version {
    Version::Value(s.as_bytes().to_vec())
}

/// Parses a row read's body into its cells and `next`.
#[track_caller]
pub fn parse_row(body: &Value) -> (Vec<RowCell>, Option<String>) {
    let cells = match body.get("cells") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list.iter().map(parse_row_cell).collect(),
        Some(other) => panic!("`cells` is not a list: {other}"),
    };
    let next = match body.get("next") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => panic!("`next` is not a string: {other}"),
    };
    (cells, next)
}

#[track_caller]
fn parse_row_cell(v: &Value) -> RowCell {
    let Some(column) = v.get("column").and_then(Value::as_str) else {
        panic!("row cell without a string `column`: {v}");
    };
    let context = v.get("context").and_then(Value::as_str).map(str::to_string);
    let (versions, has_siblings) = match v.get("siblings") {
        Some(Value::Array(list)) => (list.iter().map(parse_version).collect(), true),
        Some(other) => panic!("`siblings` is not a list: {other}"),
        None => (vec![parse_version(v)], false),
    };
    RowCell {
        column: column.to_string(),
        versions,
        has_siblings,
        base64: v.get("value_base64").is_some(),
        context,
        raw: v.clone(),
    }
}
