//! Tessera's HTTP API as the workloads use it, each answer classified the way the checker
//! needs: acknowledged, certainly not applied, or unknown (see [`Outcome`]).
//!
//! - `2xx`: acknowledged. Reads: `200`, `300` (siblings) and `404` all answer.
//! - Certainly not applied: `4xx`, `503 unavailable` ("nothing was done", docs/api.md), and a
//!   connection that was never made.
//! - Unknown: `503 quorum_failed` or `forward_failed`, `504`, `500`, a timeout, a connection
//!   broken after the request went out.

use std::collections::BTreeMap;
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::{Client, Method, StatusCode};
use serde_json::Value;

use crate::history::Outcome;

/// Bytes of a path segment left as they are.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

fn segment(text: &str) -> String {
    utf8_percent_encode(text, SEGMENT).to_string()
}

/// The answer to a write.
#[derive(Debug, Clone)]
pub struct Written {
    pub outcome: Outcome,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub hinted: Option<u32>,
}

/// One cell as read: live values, whether a tombstone was among the versions, the context.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CellRead {
    pub values: Vec<String>,
    pub tombstone: bool,
    pub context: Option<String>,
}

/// The answer to a read.
#[derive(Debug, Clone)]
pub struct Read<T> {
    pub outcome: Outcome,
    pub status: Option<u16>,
    pub error: Option<String>,
    /// `Some` when the read answered.
    pub value: Option<T>,
}

impl<T> Read<T> {
    fn failed(outcome: Outcome, status: Option<u16>, error: String) -> Self {
        Read {
            outcome,
            status,
            error: Some(error),
            value: None,
        }
    }
}

/// A client of one cluster.
#[derive(Debug, Clone)]
pub struct Api {
    http: Client,
    secret: String,
}

/// What came back from one request, before it is classified.
enum Raw {
    Answer {
        status: StatusCode,
        headers: reqwest::header::HeaderMap,
        body: Vec<u8>,
    },
    Transport {
        connect: bool,
        message: String,
    },
}

fn error_code(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "error".into())
}

/// Classifies a failed write's answer.
pub fn write_failure(status: u16, code: &str) -> Outcome {
    match (status, code) {
        (503, "unavailable") => Outcome::Fail,
        (400..=499, _) => Outcome::Fail,
        _ => Outcome::Info,
    }
}

/// The values of a JSON sibling list: `[{"value"}, {"value_base64"}, {"deleted": true}]`.
fn siblings(list: &Value) -> (Vec<String>, bool) {
    let mut values = Vec::new();
    let mut tombstone = false;
    for version in list.as_array().into_iter().flatten() {
        if version["deleted"].as_bool() == Some(true) {
            tombstone = true;
        } else if let Some(text) = version["value"].as_str() {
            values.push(text.to_owned());
        } else if let Some(b64) = version["value_base64"].as_str() {
            values.push(format!("base64:{b64}"));
        }
    }
    values.sort();
    (values, tombstone)
}

impl Api {
    pub fn new(timeout: Duration, secret: &str) -> Result<Self, reqwest::Error> {
        let http = Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .pool_idle_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(64)
            .no_proxy()
            .build()?;
        Ok(Api {
            http,
            secret: secret.to_owned(),
        })
    }

    async fn call(
        &self,
        method: Method,
        url: String,
        headers: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Raw {
        let mut request = self.http.request(method, url);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        match request.send().await {
            Err(e) => Raw::Transport {
                connect: e.is_connect(),
                message: e.to_string(),
            },
            Ok(response) => {
                let status = response.status();
                let headers = response.headers().clone();
                match response.bytes().await {
                    Ok(body) => Raw::Answer {
                        status,
                        headers,
                        body: body.to_vec(),
                    },
                    Err(e) => Raw::Transport {
                        connect: false,
                        message: e.to_string(),
                    },
                }
            }
        }
    }

    fn cell_url(node: &str, table: &str, key: &str, column: &str, level: &str) -> String {
        format!(
            "http://{node}/v1/tables/{table}/rows/{}/{}?consistency={level}",
            segment(key),
            segment(column)
        )
    }

    fn written(raw: Raw) -> Written {
        match raw {
            Raw::Transport { connect, message } => Written {
                outcome: if connect {
                    Outcome::Fail
                } else {
                    Outcome::Info
                },
                status: None,
                error: Some(message),
                hinted: None,
            },
            Raw::Answer {
                status,
                headers,
                body,
            } => {
                if status.is_success() {
                    let hinted = headers
                        .get("x-hinted")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse().ok());
                    Written {
                        outcome: Outcome::Ok,
                        status: Some(status.as_u16()),
                        error: None,
                        hinted,
                    }
                } else {
                    let code = error_code(&body);
                    Written {
                        outcome: write_failure(status.as_u16(), &code),
                        status: Some(status.as_u16()),
                        error: Some(code),
                        hinted: None,
                    }
                }
            }
        }
    }

    /// `PUT` a cell, superseding `context` (or blind without one).
    #[allow(clippy::too_many_arguments)]
    pub async fn put_cell(
        &self,
        node: &str,
        table: &str,
        key: &str,
        column: &str,
        value: &str,
        level: &str,
        context: Option<&str>,
    ) -> Written {
        let headers: Vec<(&str, String)> = context
            .map(|c| vec![("x-causal-context", c.to_owned())])
            .unwrap_or_default();
        let url = Self::cell_url(node, table, key, column, level);
        let raw = self
            .call(Method::PUT, url, &headers, Some(value.as_bytes().to_vec()))
            .await;
        Self::written(raw)
    }

    /// `DELETE` a cell with the context of a read.
    pub async fn delete_cell(
        &self,
        node: &str,
        table: &str,
        key: &str,
        column: &str,
        level: &str,
        context: Option<&str>,
    ) -> Written {
        let headers: Vec<(&str, String)> = context
            .map(|c| vec![("x-causal-context", c.to_owned())])
            .unwrap_or_default();
        let url = Self::cell_url(node, table, key, column, level);
        Self::written(self.call(Method::DELETE, url, &headers, None).await)
    }

    /// `POST` a batch setting each column to `value`, each with its context.
    pub async fn post_batch(
        &self,
        node: &str,
        table: &str,
        key: &str,
        columns: &[(String, Option<String>)],
        value: &str,
        level: &str,
    ) -> Written {
        let ops: Vec<Value> = columns
            .iter()
            .map(|(column, context)| {
                let mut op = serde_json::json!({"op": "set", "column": column, "value": value});
                if let Some(context) = context {
                    op["context"] = Value::String(context.clone());
                }
                op
            })
            .collect();
        let body = serde_json::to_vec(&serde_json::json!({ "ops": ops })).unwrap_or_default();
        let url = format!(
            "http://{node}/v1/tables/{table}/rows/{}?consistency={level}",
            segment(key)
        );
        let headers = [("content-type", "application/json".to_string())];
        Self::written(self.call(Method::POST, url, &headers, Some(body)).await)
    }

    fn cell_read(raw: Raw) -> Read<CellRead> {
        match raw {
            Raw::Transport { connect, message } => Read::failed(
                if connect {
                    Outcome::Fail
                } else {
                    Outcome::Info
                },
                None,
                message,
            ),
            Raw::Answer {
                status,
                headers,
                body,
            } => {
                let context = headers
                    .get("x-causal-context")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let value = match status.as_u16() {
                    200 => Some(CellRead {
                        values: vec![String::from_utf8_lossy(&body).into_owned()],
                        tombstone: false,
                        context,
                    }),
                    300 => match serde_json::from_slice::<Value>(&body) {
                        Ok(list) => {
                            let (values, tombstone) = siblings(&list);
                            Some(CellRead {
                                values,
                                tombstone,
                                context,
                            })
                        }
                        Err(_) => None,
                    },
                    // Not found: a deleted cell still carries its context.
                    404 => Some(CellRead {
                        values: vec![],
                        tombstone: context.is_some(),
                        context,
                    }),
                    _ => None,
                };
                match value {
                    Some(value) => Read {
                        outcome: Outcome::Ok,
                        status: Some(status.as_u16()),
                        error: None,
                        value: Some(value),
                    },
                    None => Read::failed(
                        if status.as_u16() == 504 {
                            Outcome::Info
                        } else {
                            Outcome::Fail
                        },
                        Some(status.as_u16()),
                        error_code(&body),
                    ),
                }
            }
        }
    }

    /// `GET` a cell at `level`.
    pub async fn get_cell(
        &self,
        node: &str,
        table: &str,
        key: &str,
        column: &str,
        level: &str,
    ) -> Read<CellRead> {
        let url = Self::cell_url(node, table, key, column, level);
        Self::cell_read(self.call(Method::GET, url, &[], None).await)
    }

    /// One replica's own copy of a cell (`/internal/v1/local/...`).
    pub async fn local_cell(
        &self,
        node: &str,
        table: &str,
        key: &str,
        column: &str,
    ) -> Read<CellRead> {
        let url = format!(
            "http://{node}/internal/v1/local/tables/{table}/rows/{}/{}",
            segment(key),
            segment(column)
        );
        let headers = [("x-tessera-secret", self.secret.clone())];
        let mut read = Self::cell_read(self.call(Method::GET, url, &headers, None).await);
        // The local route answers one cell as JSON: {"node", "siblings", "context"}.
        if read.status == Some(200) {
            if let Some(cell) = &read.value {
                let body = cell.values.first().cloned().unwrap_or_default();
                match serde_json::from_str::<Value>(&body) {
                    Ok(json) => {
                        let (values, tombstone) = siblings(&json["siblings"]);
                        read.value = Some(CellRead {
                            values,
                            tombstone,
                            context: json["context"].as_str().map(str::to_owned),
                        });
                    }
                    Err(e) => {
                        read =
                            Read::failed(Outcome::Fail, Some(200), format!("bad local answer: {e}"))
                    }
                }
            }
        }
        if read.status == Some(404) {
            read.value = Some(CellRead::default());
        }
        read
    }

    /// A whole row at `level`, page by page: each column's live values and context.
    pub async fn get_row(
        &self,
        node: &str,
        table: &str,
        key: &str,
        level: &str,
    ) -> Read<BTreeMap<String, CellRead>> {
        let mut columns = BTreeMap::new();
        let mut cursor: Option<String> = None;
        // Bounded: a row of the workloads holds at most tens of thousands of columns.
        for _ in 0..1000 {
            let mut url = format!(
                "http://{node}/v1/tables/{table}/rows/{}?consistency={level}&limit=1000",
                segment(key)
            );
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={}", segment(c)));
            }
            match self.call(Method::GET, url, &[], None).await {
                Raw::Transport { connect, message } => {
                    let outcome = if connect {
                        Outcome::Fail
                    } else {
                        Outcome::Info
                    };
                    return Read::failed(outcome, None, message);
                }
                Raw::Answer { status, body, .. } => {
                    if status.as_u16() == 404 {
                        break;
                    }
                    if !status.is_success() {
                        let outcome = if status.as_u16() == 504 {
                            Outcome::Info
                        } else {
                            Outcome::Fail
                        };
                        return Read::failed(outcome, Some(status.as_u16()), error_code(&body));
                    }
                    let page: Value = match serde_json::from_slice(&body) {
                        Ok(page) => page,
                        Err(e) => {
                            return Read::failed(
                                Outcome::Fail,
                                Some(status.as_u16()),
                                format!("bad row page: {e}"),
                            )
                        }
                    };
                    for cell in page["cells"].as_array().into_iter().flatten() {
                        let Some(column) = cell["column"].as_str() else {
                            continue;
                        };
                        let (values, tombstone) = match cell.get("siblings") {
                            Some(list) => siblings(list),
                            None => (
                                cell["value"]
                                    .as_str()
                                    .map(|v| vec![v.to_owned()])
                                    .unwrap_or_default(),
                                false,
                            ),
                        };
                        columns.insert(
                            column.to_owned(),
                            CellRead {
                                values,
                                tombstone,
                                context: cell["context"].as_str().map(str::to_owned),
                            },
                        );
                    }
                    match page["next"].as_str() {
                        Some(next) => cursor = Some(next.to_owned()),
                        None => break,
                    }
                }
            }
        }
        Read {
            outcome: Outcome::Ok,
            status: Some(200),
            error: None,
            value: Some(columns),
        }
    }

    /// A JSON route (cluster views), or `None`.
    pub async fn get_json(&self, node: &str, path: &str) -> Option<Value> {
        match self
            .call(Method::GET, format!("http://{node}{path}"), &[], None)
            .await
        {
            Raw::Answer { status, body, .. } if status.is_success() => {
                serde_json::from_slice(&body).ok()
            }
            _ => None,
        }
    }

    /// A text route (`/metrics`), or `None`.
    pub async fn get_text(&self, node: &str, path: &str) -> Option<String> {
        match self
            .call(Method::GET, format!("http://{node}{path}"), &[], None)
            .await
        {
            Raw::Answer { status, body, .. } if status.is_success() => {
                Some(String::from_utf8_lossy(&body).into_owned())
            }
            _ => None,
        }
    }

    /// `PUT /v1/tables/{table}` with settings; the status, or the transport error.
    pub async fn create_table(
        &self,
        node: &str,
        table: &str,
        settings: &Value,
    ) -> Result<u16, String> {
        let body = serde_json::to_vec(settings).unwrap_or_default();
        match self
            .call(
                Method::PUT,
                format!("http://{node}/v1/tables/{table}"),
                &[("content-type", "application/json".into())],
                Some(body),
            )
            .await
        {
            Raw::Answer { status, body, .. } => {
                if status.is_success() {
                    Ok(status.as_u16())
                } else {
                    Err(format!("{status}: {}", String::from_utf8_lossy(&body)))
                }
            }
            Raw::Transport { message, .. } => Err(message),
        }
    }
}

/// A Prometheus gauge or counter without labels, from `/metrics` text.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (metric, value) = line.split_once(' ')?;
            (metric == name).then(|| value.trim().parse().ok())?
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_failures_are_classified_as_the_api_documents() {
        assert_eq!(write_failure(503, "unavailable"), Outcome::Fail);
        assert_eq!(write_failure(409, "too_many_siblings"), Outcome::Fail);
        assert_eq!(write_failure(503, "quorum_failed"), Outcome::Info);
        assert_eq!(write_failure(503, "forward_failed"), Outcome::Info);
        assert_eq!(write_failure(504, "timeout"), Outcome::Info);
        assert_eq!(write_failure(500, "internal"), Outcome::Info);
    }

    #[test]
    fn sibling_lists_and_metrics_parse() {
        let list: Value = serde_json::from_str(
            r#"[{"value":"b","written_at_ms":1},{"deleted":true},{"value":"a"}]"#,
        )
        .unwrap();
        assert_eq!(
            siblings(&list),
            (vec!["a".to_string(), "b".to_string()], true)
        );
        let text =
            "# HELP x\ntessera_hints_pending 3\ntessera_hints_pending_by_target{target=\"n2\"} 3\n";
        assert_eq!(metric(text, "tessera_hints_pending"), Some(3.0));
        assert_eq!(metric(text, "tessera_missing"), None);
    }
}
