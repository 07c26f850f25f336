//! Concurrent writes must never lose data: they survive as siblings.
//!
//! The overlap of two blind (context-less) writes is made deterministic with
//! `Expect: 100-continue`. The server takes the coordinator's snapshot (the
//! implicit context) before it reads the body, and hyper sends
//! `HTTP/1.1 100 Continue` only when the handler starts reading the body. So
//! once both connections have received `100 Continue`, both writes have
//! taken their snapshots, and neither can see the other: both must survive.

use std::net::SocketAddr;

use tessera_tests::raw::{self, RawConn};
use tessera_tests::resp::{live_values, val, Version};
use tessera_tests::{Client, NodeOptions, Opts, Resp, TestNode};
use tokio::task::JoinSet;

/// Sends the head of a blind `PUT` with `Expect: 100-continue` and waits for
/// the `100 Continue`; returns the connection, ready for the body.
async fn start_put(addr: SocketAddr, path: &str, body_len: usize) -> RawConn {
    let mut conn = RawConn::connect(addr).await;
    let head = raw::head(
        addr,
        "PUT",
        path,
        &[
            ("Expect", "100-continue"),
            ("Content-Type", "application/octet-stream"),
        ],
        Some(body_len),
    );
    conn.write(&head).await;
    let (status, headers) = tokio::time::timeout(tessera_tests::DEADLINE, conn.read_head())
        .await
        .expect("no answer to the request head");
    assert_eq!(
        status, 100,
        "expected `HTTP/1.1 100 Continue` before the body (the handler must take its snapshot, \
         then read the body); got status {status} with headers {headers:?}"
    );
    conn
}

async fn finish_put(mut conn: RawConn, body: &[u8]) -> Resp {
    conn.write(body).await;
    tokio::time::timeout(tessera_tests::DEADLINE, conn.read_response())
        .await
        .expect("no final response after the body")
}

async fn node_with_table(opts: NodeOptions) -> (TestNode, Client) {
    let node = TestNode::start(opts);
    let c = node.client();
    c.create_table_n("t", 1).await.expect(201);
    (node, c)
}

#[tokio::test]
async fn two_overlapping_blind_writes_both_survive() {
    let (node, c) = node_with_table(NodeOptions::default()).await;
    // An old value both writers' snapshots include: both supersede it.
    c.put_ok("t", "k", "c", "old").await;

    let path = "/v1/tables/t/rows/k/c";
    let a = start_put(node.addr(), path, 6).await;
    let b = start_put(node.addr(), path, 6).await;
    let ra = finish_put(a, b"from-A").await;
    let rb = finish_put(b, b"from-B").await;
    ra.expect(204);
    rb.expect(204);

    let r = c.get("t", "k", "c", &Opts::none()).await;
    r.expect(300);
    assert_eq!(
        r.versions(),
        vec![val("from-A"), val("from-B")],
        "both concurrent blind writes must survive, and only them"
    );
    assert_eq!(r.siblings(), Some(2));

    // The 300's context resolves them.
    c.put("t", "k", "c", "merged", &Opts::ctx(r.ctx()))
        .await
        .expect(204);
    let r = c.get("t", "k", "c", &Opts::none()).await;
    r.expect(200);
    assert_eq!(r.body, b"merged");
    assert_eq!(r.siblings(), Some(1));

    // The same on a cell that did not exist before.
    let path = "/v1/tables/t/rows/k/new";
    let a = start_put(node.addr(), path, 6).await;
    let b = start_put(node.addr(), path, 6).await;
    finish_put(b, b"from-B").await.expect(204);
    finish_put(a, b"from-A").await.expect(204);
    let r = c.get("t", "k", "new", &Opts::none()).await;
    r.expect(300);
    assert_eq!(r.versions(), vec![val("from-A"), val("from-B")]);
}

#[tokio::test]
async fn eight_overlapping_blind_writes_all_survive() {
    let (node, c) = node_with_table(NodeOptions::default()).await;
    c.put_ok("t", "row", "col", "old").await;

    let path = "/v1/tables/t/rows/row/col";
    let bodies: Vec<Vec<u8>> = (0..8).map(|i| format!("writer-{i}").into_bytes()).collect();
    let mut conns = Vec::new();
    for b in &bodies {
        conns.push(start_put(node.addr(), path, b.len()).await);
    }
    let mut set = JoinSet::new();
    for (conn, body) in conns.into_iter().zip(bodies.clone()) {
        set.spawn(async move { finish_put(conn, &body).await });
    }
    while let Some(r) = set.join_next().await {
        r.expect("writer task").expect(204);
    }

    let r = c.get("t", "row", "col", &Opts::none()).await;
    r.expect(300);
    let mut expected = bodies.clone();
    expected.sort();
    assert_eq!(live_values(&r.versions()), expected);
    assert!(!r.versions().contains(&val("old")));
    assert_eq!(r.siblings(), Some(8));

    c.put("t", "row", "col", "one", &Opts::ctx(r.ctx()))
        .await
        .expect(204);
    let r = c.get("t", "row", "col", &Opts::none()).await;
    r.expect(200);
    assert_eq!(r.body, b"one");
}

#[tokio::test]
async fn eight_writers_with_the_same_stale_context_all_survive() {
    let (_node, c) = node_with_table(NodeOptions::default()).await;
    c.put_ok("t", "k", "c", "v0").await;
    let ctx0 = c.get("t", "k", "c", &Opts::none()).await.ctx();

    let mut set = JoinSet::new();
    for i in 0..8 {
        let c = c.clone();
        let ctx0 = ctx0.clone();
        set.spawn(async move {
            c.put("t", "k", "c", format!("w{i}"), &Opts::ctx(ctx0))
                .await
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("writer task").expect(204);
    }

    let r = c.get("t", "k", "c", &Opts::none()).await;
    r.expect(300);
    let expected: Vec<Version> = (0..8).map(|i| val(&format!("w{i}"))).collect();
    assert_eq!(
        r.versions(),
        expected,
        "v0 is superseded, all 8 writes survive"
    );
    assert_eq!(r.siblings(), Some(8));

    // The row view shows the same siblings.
    let row = c.get_row("t", "k", &[]).await;
    row.expect(200);
    let (cells, _) = tessera_tests::resp::parse_row(&row.json());
    assert_eq!(cells.len(), 1);
    assert!(cells[0].has_siblings, "{}", row.describe());
    let mut vs = cells[0].versions.clone();
    vs.sort();
    assert_eq!(vs, expected);

    // A write with the 300's context resolves all eight.
    c.put("t", "k", "c", "final", &Opts::ctx(r.ctx()))
        .await
        .expect(204);
    let r = c.get("t", "k", "c", &Opts::none()).await;
    r.expect(200);
    assert_eq!(r.body, b"final");
}

#[tokio::test]
async fn too_many_siblings_is_409_until_resolved() {
    let (_node, c) = node_with_table(NodeOptions::default().max_siblings(3)).await;
    c.put_ok("t", "k", "c", "v0").await;
    let ctx0 = c.get("t", "k", "c", &Opts::none()).await.ctx();
    for i in 0..3 {
        c.put("t", "k", "c", format!("s{i}"), &Opts::ctx(&ctx0))
            .await
            .expect(204);
    }
    let w = c.put("t", "k", "c", "s3", &Opts::ctx(&ctx0)).await;
    let err = w.expect_error(409, "too_many_siblings");
    assert_eq!(err["max"], serde_json::json!(3), "{}", w.describe());
    assert_eq!(err["column"], serde_json::json!("c"), "{}", w.describe());
    assert!(err.get("siblings").is_some(), "{}", w.describe());

    // The refused write left nothing behind.
    let r = c.get("t", "k", "c", &Opts::none()).await;
    r.expect(300);
    assert_eq!(r.versions(), vec![val("s0"), val("s1"), val("s2")]);

    // Read, then write with the context: resolved.
    c.put("t", "k", "c", "ok", &Opts::ctx(r.ctx()))
        .await
        .expect(204);
    let r = c.get("t", "k", "c", &Opts::none()).await;
    r.expect(200);
    assert_eq!(r.body, b"ok");
}

#[tokio::test]
async fn a_concurrent_delete_shows_as_a_deleted_sibling() {
    let (_node, c) = node_with_table(NodeOptions::default()).await;
    c.put_ok("t", "k", "c", "v0").await;
    let ctx0 = c.get("t", "k", "c", &Opts::none()).await.ctx();
    // Two writes and a delete, each superseding only v0.
    c.put("t", "k", "c", "Ada", &Opts::ctx(&ctx0))
        .await
        .expect(204);
    c.put("t", "k", "c", "Grace", &Opts::ctx(&ctx0))
        .await
        .expect(204);
    c.delete("t", "k", "c", &Opts::ctx(&ctx0)).await.expect(204);

    let r = c.get("t", "k", "c", &Opts::none()).await;
    r.expect(300);
    assert_eq!(
        r.versions(),
        vec![val("Ada"), val("Grace"), Version::Deleted],
        "the tombstone is a sibling, shown as {{\"deleted\": true}}"
    );

    // The row view lists the same siblings.
    let row = c.get_row("t", "k", &[]).await;
    row.expect(200);
    let (cells, _) = tessera_tests::resp::parse_row(&row.json());
    assert_eq!(cells.len(), 1, "{}", row.describe());
    let mut vs = cells[0].versions.clone();
    vs.sort();
    assert_eq!(vs, vec![val("Ada"), val("Grace"), Version::Deleted]);

    // Resolving with the 300's context.
    c.put("t", "k", "c", "Ada", &Opts::ctx(r.ctx()))
        .await
        .expect(204);
    let r = c.get("t", "k", "c", &Opts::none()).await;
    r.expect(200);
    assert_eq!(r.body, b"Ada");
}
