//! `tessera-bench load --protocol etcd-grpc` end to end against a stand-in etcd (`grpc_stand_in`):
//! a hyper HTTP/2 server that records every call and answers as etcd's gRPC server does, or with a
//! chosen `grpc-status`. It checks what the unit tests of `etcd_grpc` cannot: that hyper sends the bytes,
//! headers and `:authority` etcd needs, one connection per worker, and that gRPC errors, which
//! arrive with HTTP 200, are counted as failures.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::net::TcpListener;

use super::etcd_grpc::{self, GrpcBodies};
use super::grpc_stand_in::{stand_in, Reply, Seen};
use super::tests::args;
use super::{run, value_bytes, Protocol, Workload};

/// The stand-in's URL and a short preloaded etcd-grpc run of `workload` against it.
async fn grpc_run(reply: Reply, workload: Workload) -> (String, Arc<Seen>, super::LoadArgs) {
    let (addr, seen) = stand_in(reply).await;
    let url = format!("http://{addr}");
    let mut args = args(url.clone(), workload);
    args.protocol = Protocol::EtcdGrpc;
    (url, seen, args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drives_an_etcd_grpc_server() {
    let (url, seen, args) = grpc_run(Reply::Ok, Workload::YcsbA).await;
    let summaries = run(&args).await.unwrap();
    assert_eq!(summaries[0].ops, 50);
    assert!(summaries[1].ops > 0);
    assert!(
        summaries.iter().all(|s| s.errors.is_empty()),
        "{summaries:?}"
    );
    // One connection per worker, kept from the preload through the measured run.
    assert_eq!(seen.connections.load(Ordering::Relaxed), args.connections);
    let calls = seen.calls.lock().unwrap();
    let authority = url.trim_start_matches("http://");
    for call in calls.iter() {
        assert_eq!(call.authority.as_deref(), Some(authority), "{call:?}");
        assert_eq!(call.content_type.as_ref().unwrap(), "application/grpc");
        assert_eq!(call.te.as_ref().unwrap(), "trailers");
        assert!(
            [etcd_grpc::PUT_PATH, etcd_grpc::RANGE_PATH].contains(&call.path.as_str()),
            "{call:?}"
        );
    }
    // The preload wrote k0..k49 with the run's value, byte for byte.
    let bodies = GrpcBodies::new(&value_bytes(100, 7)).unwrap();
    for n in 0..50 {
        let put = bodies.put(n);
        assert!(
            calls
                .iter()
                .any(|c| c.path == etcd_grpc::PUT_PATH && c.body == put),
            "k{n} was not preloaded"
        );
    }
    let ranges: Vec<_> = calls
        .iter()
        .filter(|c| c.path == etcd_grpc::RANGE_PATH)
        .collect();
    assert!(!ranges.is_empty());
    assert!(ranges
        .iter()
        .all(|c| (0..50).any(|n| c.body == bodies.range(n))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_a_grpc_error_as_a_failure() {
    // etcd answers an unknown method with 12 (unimplemented), trailers-only, under HTTP 200.
    let (_, _, args) = grpc_run(Reply::TrailersOnly("12"), Workload::Get).await;
    let summaries = run(&args).await.unwrap();
    assert_eq!(summaries[0].ops, 0);
    assert_eq!(summaries[0].errors.get("grpc-12"), Some(&50));
    assert_eq!(summaries[1].ops, 0);
    assert!(summaries[1].errors.get("grpc-12").copied().unwrap_or(0) > 0);
    assert_eq!(summaries[1].errors.len(), 1, "{summaries:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_status_0_without_a_message_as_malformed() {
    let (_, _, mut args) = grpc_run(Reply::TrailersOnly("0"), Workload::Put).await;
    args.duration = 0.0;
    let summaries = run(&args).await.unwrap();
    assert_eq!(summaries[0].ops, 0);
    assert_eq!(summaries[0].errors.get("malformed"), Some(&50));
}

/// Tessera's HTTP/1.1-only server cannot speak HTTP/2: every call fails, none is a success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_a_server_without_http2_as_failures() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, crate::ceiling::router()).await });
    let mut args = args(format!("http://{addr}"), Workload::Put);
    args.protocol = Protocol::EtcdGrpc;
    args.duration = 0.0;
    let summaries = run(&args).await.unwrap();
    assert_eq!(summaries[0].ops, 0);
    assert_eq!(
        summaries[0].errors.values().sum::<u64>(),
        50,
        "{summaries:?}"
    );
}
