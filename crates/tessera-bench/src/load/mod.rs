//! `tessera-bench load`: a closed-loop HTTP load generator.
//!
//! `--connections` workers, each a tokio task with one keep-alive connection per target (HTTP/1.1,
//! or HTTP/2 for gRPC), each with one request in flight; a worker spreads its requests round-robin
//! over the targets.
//! Latencies go into one HDR histogram per worker, merged at the end. Everything random (keys,
//! the read/write coin, value bytes) comes from `StdRng`s derived from `--seed`, so a run's request
//! sequence per worker is reproducible (which worker sends how many requests depends on timing).
//!
//! Closed-loop latencies suffer coordinated omission: a stalled server also stalls the load, so
//! the percentiles describe the requests that were sent, not a fixed arrival rate.
//!
//! The cluster workloads (YCSB-A-like and write-only, `--distribution zipfian`, `--consistency
//! one|quorum`, several `--target`s) are this same command with other flags. `--protocol etcd`
//! drives an etcd cluster through its JSON gateway instead, with the same keys, values, seed and
//! connections, so that `scripts/bench-cluster.sh` can put the two side by side. `--protocol
//! etcd-grpc` drives etcd through its native gRPC API, the same workload without the gateway's
//! proxy hop, so that etcd is compared at its best.
//!
//! The parts: [`workload`] draws operations, `request` turns them into each protocol's requests
//! ([`etcd`] and [`etcd_grpc`] encode etcd's), `target` holds the connections, `answer` reads and
//! judges the answers, and `worker` runs the closed loop.

mod answer;
pub mod etcd;
pub mod etcd_grpc;
mod grpc_conn;
mod http1;
mod request;
mod target;
mod worker;
pub mod workload;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub use request::{Protocol, Requests, Wire};
pub use target::{Connection, Target, Transport};
pub use worker::{Failure, Shared, Stats, Worker};
pub use workload::{Distribution, Op, OpChooser, Paths, Workload};

use crate::error::BenchError;
use crate::summary::{self, Labels, Summary};

/// The tool name in summaries.
pub const TOOL: &str = "tessera-bench";

/// `tessera-bench load`.
#[derive(Clone, Debug, Args)]
pub struct LoadArgs {
    /// Node base URLs, comma-separated (`http://127.0.0.11:7000,http://127.0.0.12:7000`); each
    /// worker sends its requests to them in turn.
    #[arg(long, value_delimiter = ',', required = true)]
    pub target: Vec<String>,
    /// The table.
    #[arg(long, default_value = "bench")]
    pub table: String,
    /// Create the table first with this replication factor (200 and 201 both count as done).
    #[arg(long)]
    pub create_table: Option<u32>,
    /// The column every key is written to and read from.
    #[arg(long, default_value = "v")]
    pub column: String,
    /// Concurrent connections (closed-loop workers).
    #[arg(long, default_value_t = 64)]
    pub connections: u64,
    /// Measured seconds; 0 with `--preload` only loads the keys.
    #[arg(long, default_value_t = 15.0)]
    pub duration: f64,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 3.0)]
    pub warmup: f64,
    /// The operation mix.
    #[arg(long, value_enum, default_value_t = Workload::Get)]
    pub workload: Workload,
    /// Keys `k0` .. `k{K-1}`.
    #[arg(long, default_value_t = 100_000)]
    pub keys: u64,
    /// Bytes per written value.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Consistency level sent with every request (`?consistency=`); the table's default if absent.
    #[arg(long)]
    pub consistency: Option<String>,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// How keys are chosen.
    #[arg(long, value_enum, default_value_t = Distribution::Uniform)]
    pub distribution: Distribution,
    /// Write every key once before the warmup (reported as its own summary, `preload`).
    #[arg(long)]
    pub preload: bool,
    /// Seconds to wait for one answer before counting a timeout and reconnecting.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// Name of the measurement in the summary (default: the workload's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Runtime worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// The API of the targets: Tessera's; etcd 3.4's JSON gateway (`etcd`); or etcd's native gRPC
    /// over HTTP/2 (`etcd-grpc`, without the gateway's proxy hop). For both etcd protocols the
    /// targets are `http://HOST:2379`, the keys `k0`, `k1`, ..., and there is no table and no
    /// consistency level: etcd writes through raft and reads linearizably.
    #[arg(long, value_enum, default_value_t = Protocol::Tessera)]
    pub protocol: Protocol,
}

fn seconds(flag: &'static str, value: f64) -> Result<Duration, BenchError> {
    Duration::try_from_secs_f64(value).map_err(|e| BenchError::InvalidArgument {
        flag,
        value: value.to_string(),
        reason: e.to_string(),
    })
}

fn invalid(flag: &'static str, value: impl ToString, reason: &str) -> BenchError {
    BenchError::InvalidArgument {
        flag,
        value: value.to_string(),
        reason: reason.to_owned(),
    }
}

/// Runs the load (preload, warmup, measurement), printing each summary as JSON and as a line for
/// people. Returns the summaries: `preload` if asked for, then the measurement if `--duration > 0`.
pub async fn run(args: &LoadArgs) -> Result<Vec<Summary>, BenchError> {
    let duration = seconds("duration", args.duration)?;
    let warmup = seconds("warmup", args.warmup)?;
    let timeout = seconds("timeout", args.timeout)?;
    if args.connections == 0 || args.connections > 100_000 {
        return Err(invalid(
            "connections",
            args.connections,
            "must be 1 to 100,000",
        ));
    }
    if timeout.is_zero() {
        return Err(invalid("timeout", args.timeout, "must be above 0"));
    }
    if args.value_size > 16 << 20 {
        return Err(invalid(
            "value-size",
            args.value_size,
            "must be at most 16 MiB",
        ));
    }
    if duration.is_zero() && !args.preload {
        return Err(invalid(
            "duration",
            args.duration,
            "0 measures nothing without --preload",
        ));
    }
    if args.protocol.is_etcd() {
        let protocol = args.protocol.name();
        if let Some(level) = &args.consistency {
            return Err(invalid(
                "consistency",
                level,
                &format!(
                    "etcd has one level (linearizable); \
                     leave --consistency out with --protocol {protocol}"
                ),
            ));
        }
        if let Some(replication) = args.create_table {
            return Err(invalid(
                "create-table",
                replication,
                &format!("etcd has no tables; leave --create-table out with --protocol {protocol}"),
            ));
        }
    }
    let mut targets = Vec::with_capacity(args.target.len());
    for url in &args.target {
        targets.push(Target::resolve(url).await?);
    }
    let value = value_bytes(args.value_size, args.seed);
    let requests = match args.protocol {
        Protocol::Tessera => Requests::Tessera {
            paths: Paths::new(&args.table, &args.column, args.consistency.as_deref())?,
            value,
        },
        Protocol::Etcd => Requests::Etcd(etcd::EtcdBodies::new(&value)),
        Protocol::EtcdGrpc => Requests::EtcdGrpc(
            etcd_grpc::GrpcBodies::new(&value)
                .map_err(|e| invalid("value-size", args.value_size, &e.to_string()))?,
        ),
    };
    let chooser = OpChooser::new(args.workload, args.distribution, args.keys)?;
    if let Some(replication) = args.create_table {
        create_table(&targets[0], &args.table, replication).await?;
    }
    let shared = Arc::new(Shared {
        targets,
        requests,
        chooser,
        timeout,
    });
    let connections = args.connections;
    let mut workers: Vec<Worker> = (0..connections)
        .map(|i| Worker::new(i, shared.targets.len(), args.seed))
        .collect();
    let mut summaries = Vec::new();

    if args.preload {
        let started = Instant::now();
        workers = run_phase("preload", workers, |worker| {
            worker.preload(shared.clone(), connections, args.keys)
        })
        .await?;
        let labels = Labels {
            name: "preload".to_owned(),
            tool: TOOL.to_owned(),
            workload: Workload::Put.name().to_owned(),
            concurrency: connections,
        };
        summaries.push(summarise(
            "preload",
            labels,
            started.elapsed(),
            &mut workers,
        )?);
    }

    if !duration.is_zero() {
        let name = args
            .name
            .clone()
            .unwrap_or_else(|| args.workload.name().to_owned());
        let measure_from = Instant::now() + warmup;
        let end = measure_from + duration;
        workers = run_phase(&name, workers, |worker| {
            worker.measure(shared.clone(), measure_from, end)
        })
        .await?;
        let labels = Labels {
            name: name.clone(),
            tool: TOOL.to_owned(),
            workload: args.workload.name().to_owned(),
            concurrency: connections,
        };
        summaries.push(summarise(&name, labels, duration, &mut workers)?);
    }
    for summary in &summaries {
        println!("{}", summary.json_line());
        println!("{}", summary.human_line());
    }
    Ok(summaries)
}

/// Runs every worker in its own task and collects them back.
async fn run_phase<F, Fut>(
    phase: &str,
    workers: Vec<Worker>,
    start: F,
) -> Result<Vec<Worker>, BenchError>
where
    F: Fn(Worker) -> Fut,
    Fut: std::future::Future<Output = Worker> + Send + 'static,
{
    let handles: Vec<_> = workers
        .into_iter()
        .map(|w| tokio::spawn(start(w)))
        .collect();
    let mut back = Vec::with_capacity(handles.len());
    for handle in handles {
        back.push(handle.await.map_err(|e| BenchError::Worker {
            phase: phase.to_owned(),
            message: e.to_string(),
        })?);
    }
    Ok(back)
}

/// Merges the workers' stats into a summary and resets them for the next phase.
fn summarise(
    phase: &str,
    labels: Labels,
    duration: Duration,
    workers: &mut [Worker],
) -> Result<Summary, BenchError> {
    let mut histogram = summary::new_histogram();
    let mut failures: BTreeMap<Failure, u64> = BTreeMap::new();
    let mut siblings = 0;
    for worker in workers.iter_mut() {
        let stats = std::mem::take(&mut worker.stats);
        summary::merge(&mut histogram, &stats.histogram, phase)?;
        for (failure, count) in stats.failures {
            *failures.entry(failure).or_default() += count;
        }
        siblings += stats.siblings;
    }
    let errors = failures
        .into_iter()
        .map(|(failure, count)| (failure.to_string(), count))
        .collect();
    Ok(Summary::from_histogram(
        labels, duration, &histogram, errors, siblings,
    ))
}

/// `size` printable bytes, the same for a seed.
fn value_bytes(size: usize, seed: u64) -> Bytes {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..size)
        .map(|_| rng.random_range(b'a'..=b'z'))
        .collect::<Vec<u8>>()
        .into()
}

fn http_error(target: &Target, what: &'static str, error: impl std::fmt::Display) -> BenchError {
    BenchError::Http {
        target: target.url.clone(),
        what,
        message: error.to_string(),
    }
}

/// `PUT /v1/tables/{table}` with `{"replication": N}`; 200 and 201 are both fine.
async fn create_table(target: &Target, table: &str, replication: u32) -> Result<(), BenchError> {
    const WHAT: &str = "creating the table";
    let mut connection = http1::Http1Connection::open(target.addr)
        .await
        .map_err(|e| http_error(target, WHAT, e))?;
    let body = format!("{{\"replication\": {replication}}}");
    let request = request::http1_request(
        "PUT",
        &format!("/v1/tables/{table}"),
        &target.authority,
        Some("application/json"),
        body.as_bytes(),
    );
    let reply = connection
        .exchange(&request)
        .await
        .map_err(|e| http_error(target, WHAT, e))?;
    let (status, body) = (reply.status, reply.body);
    if status == 200 || status == 201 {
        Ok(())
    } else {
        Err(BenchError::CreateTable {
            table: table.to_owned(),
            target: target.url.clone(),
            status,
            body: String::from_utf8_lossy(body).into_owned(),
        })
    }
}

#[cfg(test)]
mod etcd_grpc_tests;
#[cfg(test)]
mod grpc_stand_in;

#[cfg(test)]
mod tests {
    use super::*;

    /// A short preloaded run of `workload` against `target`.
    pub(super) fn args(target: String, workload: Workload) -> LoadArgs {
        LoadArgs {
            target: vec![target],
            table: "bench".to_owned(),
            create_table: None,
            column: "v".to_owned(),
            connections: 4,
            duration: 0.3,
            warmup: 0.1,
            workload,
            keys: 50,
            value_size: 100,
            consistency: None,
            seed: 7,
            distribution: Distribution::Zipfian,
            preload: true,
            timeout: 5.0,
            name: None,
            threads: None,
            protocol: Protocol::Tessera,
        }
    }

    /// Against the empty-handler server: every request succeeds, and the preload writes each key once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn drives_the_ceiling_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, crate::ceiling::router()).await });
        for workload in [Workload::Get, Workload::YcsbA] {
            let summaries = run(&args(format!("http://{addr}"), workload))
                .await
                .unwrap();
            assert_eq!(summaries.len(), 2);
            assert_eq!(summaries[0].name, "preload");
            assert_eq!(summaries[0].ops, 50);
            assert_eq!(summaries[1].name, workload.name());
            assert!(summaries[1].ops > 0);
            assert!(
                summaries.iter().all(|s| s.errors.is_empty()),
                "{summaries:?}"
            );
        }
    }

    #[tokio::test]
    async fn counts_connect_failures_instead_of_failing() {
        // Bind then drop a listener to find a port that refuses connections.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let mut args = args(format!("http://{addr}"), Workload::Get);
        args.preload = false;
        args.warmup = 0.0;
        args.duration = 0.2;
        let summaries = run(&args).await.unwrap();
        assert_eq!(summaries[0].ops, 0);
        assert!(summaries[0].errors.get("connect").copied().unwrap_or(0) > 0);
    }

    #[tokio::test]
    async fn refuses_nonsense() {
        let mut bad = args("http://127.0.0.1:1".to_owned(), Workload::Get);
        bad.connections = 0;
        assert!(run(&bad).await.is_err());
        let mut bad = args("http://127.0.0.1:1".to_owned(), Workload::Get);
        bad.duration = -1.0;
        assert!(run(&bad).await.is_err());
    }

    /// A stand-in for etcd's gateway: answers 200 to the two JSON routes and records the keys.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn drives_an_etcd_gateway() {
        use axum::routing::post;
        use std::sync::Mutex;
        let seen: Arc<Mutex<Vec<(String, serde_json::Value)>>> = Arc::default();
        let record = |route: &'static str, seen: Arc<Mutex<Vec<(String, serde_json::Value)>>>| {
            post(move |body: Bytes| async move {
                let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
                seen.lock().unwrap().push((route.to_owned(), json));
                "{}"
            })
        };
        let router = axum::Router::new()
            .route(etcd::PUT_PATH, record("put", seen.clone()))
            .route(etcd::RANGE_PATH, record("range", seen.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        let mut args = args(format!("http://{addr}"), Workload::YcsbA);
        args.protocol = Protocol::Etcd;
        let summaries = run(&args).await.unwrap();
        assert_eq!(summaries[0].ops, 50);
        assert!(summaries[1].ops > 0);
        assert!(
            summaries.iter().all(|s| s.errors.is_empty()),
            "{summaries:?}"
        );
        let seen = seen.lock().unwrap();
        // The preload wrote k0..k49 with the run's value.
        let value = etcd::base64(&value_bytes(100, 7));
        for n in 0..50 {
            let key = etcd::base64(format!("k{n}").as_bytes());
            assert!(
                seen.iter().any(|(route, json)| route == "put"
                    && json["key"] == key.as_str()
                    && json["value"] == value.as_str()),
                "k{n} was not preloaded"
            );
        }
        assert!(seen.iter().any(|(route, _)| route == "range"));
    }

    #[tokio::test]
    async fn etcd_refuses_tessera_only_flags() {
        for protocol in [Protocol::Etcd, Protocol::EtcdGrpc] {
            let mut bad = args("http://127.0.0.1:1".to_owned(), Workload::Get);
            bad.protocol = protocol;
            bad.consistency = Some("quorum".to_owned());
            let error = run(&bad).await.unwrap_err().to_string();
            assert!(error.contains(protocol.name()), "{error}");
            let mut bad = args("http://127.0.0.1:1".to_owned(), Workload::Get);
            bad.protocol = protocol;
            bad.create_table = Some(3);
            assert!(run(&bad).await.is_err());
        }
    }

    #[test]
    fn values_are_printable_and_seeded() {
        let value = value_bytes(100, 3);
        assert_eq!(value.len(), 100);
        assert!(value.iter().all(u8::is_ascii_lowercase));
        assert_eq!(value, value_bytes(100, 3));
    }
}
