//! Async helpers over `reqwest` for every route of the API.
//!
//! Each helper sends one request and returns a [`Resp`]; none of them
//! interprets the answer, so tests assert on exactly what the server said.
//! Transport errors (connection refused, reset) panic with the route, since
//! in a test they always mean the server died or hung up.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::paths::{cell_path, query, row_path, table_path};
use crate::resp::Resp;
use crate::DEADLINE;

/// Per-request knobs for data routes.
#[derive(Clone, Debug, Default)]
pub struct Opts {
    /// Sent as `X-Causal-Context`.
    pub context: Option<String>,
    /// Sent as `?consistency=...`.
    pub consistency: Option<String>,
    /// Sent as the `X-Consistency` header.
    pub consistency_header: Option<String>,
    /// Further query parameters.
    pub query: Vec<(String, String)>,
    /// Further headers.
    pub headers: Vec<(String, String)>,
}

impl Opts {
    /// No context, no level.
    pub fn none() -> Opts {
        Opts::default()
    }
    /// Only a causal context.
    pub fn ctx(c: impl Into<String>) -> Opts {
        Opts {
            context: Some(c.into()),
            ..Opts::default()
        }
    }
    /// Only a `?consistency=` level.
    pub fn level(l: &str) -> Opts {
        Opts {
            consistency: Some(l.to_string()),
            ..Opts::default()
        }
    }
    /// Adds a causal context.
    pub fn with_ctx(mut self, c: impl Into<String>) -> Opts {
        self.context = Some(c.into());
        self
    }
    /// Adds an `X-Consistency` header.
    pub fn with_header_level(mut self, l: &str) -> Opts {
        self.consistency_header = Some(l.to_string());
        self
    }
    /// Adds a query parameter.
    pub fn with_query(mut self, k: &str, v: &str) -> Opts {
        self.query.push((k.to_string(), v.to_string()));
        self
    }
    /// Adds a header.
    pub fn with_header(mut self, k: &str, v: &str) -> Opts {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }

    fn query_string(&self) -> String {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        if let Some(l) = &self.consistency {
            pairs.push(("consistency", l));
        }
        for (k, v) in &self.query {
            pairs.push((k, v));
        }
        query(&pairs)
    }
}

/// An HTTP client bound to one node.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    /// A client for `http://addr`.
    pub fn new(addr: SocketAddr) -> Client {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(DEADLINE)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .expect("build reqwest client");
        Client {
            http,
            base: format!("http://{addr}"),
        }
    }

    /// The underlying `reqwest` client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `http://IP:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends any request; `path` already carries its query string.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(String, String)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        let mut req = self.http.request(method.clone(), self.url(path));
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let r = match req.send().await {
            Ok(r) => r,
            Err(e) => panic!("{method} {path}: transport error: {e:?}"),
        };
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = match r.bytes().await {
            Ok(b) => b.to_vec(),
            Err(e) => panic!("{method} {path}: reading the body failed: {e:?}"),
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    async fn data(&self, method: Method, path: String, opts: &Opts, body: Option<Vec<u8>>) -> Resp {
        let mut headers = opts.headers.clone();
        if let Some(c) = &opts.context {
            headers.push(("X-Causal-Context".into(), c.clone()));
        }
        if let Some(l) = &opts.consistency_header {
            headers.push(("X-Consistency".into(), l.clone()));
        }
        let path = format!("{path}{}", opts.query_string());
        self.send(method, &path, &headers, body).await
    }

    // ---- tables ----

    /// `PUT /v1/tables/{t}` with a JSON body.
    pub async fn create_table(&self, table: &str, settings: Value) -> Resp {
        let body = serde_json::to_vec(&settings).expect("serialize settings");
        self.create_table_raw(table, Some(body)).await
    }

    /// `PUT /v1/tables/{t}` with `{"replication": n}`.
    pub async fn create_table_n(&self, table: &str, replication: u64) -> Resp {
        self.create_table(table, serde_json::json!({ "replication": replication }))
            .await
    }

    /// `PUT /v1/tables/{t}` with these exact body bytes (or none).
    pub async fn create_table_raw(&self, table: &str, body: Option<Vec<u8>>) -> Resp {
        let headers = if body.is_some() {
            vec![("Content-Type".to_string(), "application/json".to_string())]
        } else {
            Vec::new()
        };
        self.send(Method::PUT, &table_path(table), &headers, body)
            .await
    }

    /// `GET /v1/tables`.
    pub async fn list_tables(&self) -> Resp {
        self.send(Method::GET, "/v1/tables", &[], None).await
    }

    /// `GET /v1/tables/{t}`.
    pub async fn show_table(&self, table: &str) -> Resp {
        self.send(Method::GET, &table_path(table), &[], None).await
    }

    // ---- cells ----

    /// `PUT /v1/tables/{t}/rows/{k}/{c}` with the raw value.
    pub async fn put(
        &self,
        t: &str,
        k: &str,
        c: &str,
        value: impl AsRef<[u8]>,
        opts: &Opts,
    ) -> Resp {
        self.data(
            Method::PUT,
            cell_path(t, k, c),
            opts,
            Some(value.as_ref().to_vec()),
        )
        .await
    }

    /// `GET /v1/tables/{t}/rows/{k}/{c}`.
    pub async fn get(&self, t: &str, k: &str, c: &str, opts: &Opts) -> Resp {
        self.data(Method::GET, cell_path(t, k, c), opts, None).await
    }

    /// `DELETE /v1/tables/{t}/rows/{k}/{c}`.
    pub async fn delete(&self, t: &str, k: &str, c: &str, opts: &Opts) -> Resp {
        self.data(Method::DELETE, cell_path(t, k, c), opts, None)
            .await
    }

    /// A blind write that must succeed (204); returns the response.
    pub async fn put_ok(&self, t: &str, k: &str, c: &str, value: impl AsRef<[u8]>) -> Resp {
        let r = self.put(t, k, c, value, &Opts::none()).await;
        r.expect(204);
        r
    }

    // ---- rows ----

    /// `GET /v1/tables/{t}/rows/{k}` with query parameters.
    pub async fn get_row(&self, t: &str, k: &str, params: &[(&str, &str)]) -> Resp {
        let path = format!("{}{}", row_path(t, k), query(params));
        self.send(Method::GET, &path, &[], None).await
    }

    /// `GET /v1/tables/{t}/rows/{k}` with full options.
    pub async fn get_row_with(&self, t: &str, k: &str, opts: &Opts) -> Resp {
        self.data(Method::GET, row_path(t, k), opts, None).await
    }

    /// `POST /v1/tables/{t}/rows/{k}` with a JSON batch.
    pub async fn batch(&self, t: &str, k: &str, body: &Value) -> Resp {
        self.batch_with(t, k, body, &Opts::none()).await
    }

    /// `POST /v1/tables/{t}/rows/{k}` with a JSON batch and options.
    pub async fn batch_with(&self, t: &str, k: &str, body: &Value, opts: &Opts) -> Resp {
        let bytes = serde_json::to_vec(body).expect("serialize batch");
        let opts = opts.clone().with_header("Content-Type", "application/json");
        self.data(Method::POST, row_path(t, k), &opts, Some(bytes))
            .await
    }

    /// `POST /v1/tables/{t}/rows/{k}` with these exact body bytes.
    pub async fn batch_raw(&self, t: &str, k: &str, body: Vec<u8>) -> Resp {
        let opts = Opts::none().with_header("Content-Type", "application/json");
        self.data(Method::POST, row_path(t, k), &opts, Some(body))
            .await
    }

    /// `DELETE /v1/tables/{t}/rows/{k}`.
    pub async fn delete_row(&self, t: &str, k: &str, opts: &Opts) -> Resp {
        self.data(Method::DELETE, row_path(t, k), opts, None).await
    }

    // ---- operations ----

    /// `GET /health`.
    pub async fn health(&self) -> Resp {
        self.send(Method::GET, "/health", &[], None).await
    }

    /// `GET /metrics`.
    pub async fn metrics(&self) -> Resp {
        self.send(Method::GET, "/metrics", &[], None).await
    }
}
