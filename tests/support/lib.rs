//! Test harness for Tessera's black-box integration tests.
//!
//! The tests never link the server: they start the real `tessera` binary as a
//! child process and talk HTTP to it, so they check exactly what a user sees.
//! This crate holds the pieces every test file (and the later multi-node
//! tests) shares:
//!
//! - [`binary`]: finds the `tessera` executable;
//! - [`node`]: [`TestNode`] starts, kills, restarts and terminates one server
//!   process with its own temporary data directory, and never leaves a
//!   process behind;
//! - [`client`]: [`Client`], small async helpers over `reqwest` for every
//!   route, returning a [`Resp`] (status, headers, body);
//! - [`raw`]: hand-written HTTP/1.1 over a `TcpStream`, for requests that a
//!   real HTTP client would normalise (`..` in a path, `%00`) or for exact
//!   control of timing (`Expect: 100-continue`);
//! - [`resp`]: [`Resp`] and parsers for the JSON shapes of the API
//!   (sibling lists, row cells, errors);
//! - [`paths`]: percent-encoding of path segments and query values;
//! - [`checks`]: [`Checks`], soft assertions that report every failed case
//!   of a table-driven test at once.

pub mod binary;
pub mod checks;
pub mod client;
pub mod cluster;
pub mod node;
pub mod paths;
pub mod raw;
pub mod resp;

pub use checks::Checks;
pub use client::{Client, Opts};
pub use cluster::TestCluster;
pub use node::{NodeOptions, TestNode};
pub use resp::{Resp, RowCell, Version};

use std::future::Future;
use std::time::{Duration, Instant};

/// How long a test waits for a condition before giving up. Generous, because
/// the machine is shared and slow; tests never assert on elapsed time.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Polls `check` until it returns `Some`, or panics with `what` after
/// [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() > DEADLINE {
            panic!("gave up after {DEADLINE:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `check` every 50 ms until it holds; panics naming `what` after [`DEADLINE`].
pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        if check().await {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Like [`wait_until`] with a deadline of the caller's: for conditions that take long by design
/// (a data move), never as a timing assertion.
pub async fn wait_until_within<F, Fut>(what: &str, deadline: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let give_up = std::time::Instant::now() + deadline;
    loop {
        if check().await {
            return;
        }
        assert!(
            std::time::Instant::now() < give_up,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// GETs `url` and parses its JSON body; panics naming the URL when either fails.
pub async fn get_json(url: &str) -> serde_json::Value {
    reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
}

/// The value of the unlabelled (or fully labelled) metric `name` on a node's `/metrics`, or 0
/// when the node does not answer or does not have it.
pub async fn metric(node: &TestNode, name: &str) -> f64 {
    let Ok(response) = reqwest::get(node.url("/metrics")).await else {
        return 0.0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}
