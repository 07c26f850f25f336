//! Acknowledged writes survive a crash: `kill -9` right after the last
//! acknowledgement, restart on the same data directory, read everything back.
//! A graceful SIGTERM exits 0 and loses nothing either.

use serde_json::json;
use tessera_tests::resp::{parse_row, val};
use tessera_tests::{Client, NodeOptions, Opts, TestNode};

fn value(round: usize, i: usize) -> Vec<u8> {
    let mut v = format!("round-{round}-value-{i}-").into_bytes();
    v.extend((0..(i % 50)).map(|j| (i * 31 + j) as u8));
    v
}

/// Writes 500 cells one by one (each acknowledged with 204), spread over 25
/// rows, and overwrites a few so the newest version is the one that counts.
async fn write_500(c: &Client, round: usize) {
    for i in 0..500 {
        c.put_ok(
            "d",
            &format!("row{}", i % 25),
            &format!("col{i}"),
            value(round, i),
        )
        .await;
    }
}

async fn read_500(c: &Client, round: usize) {
    for i in 0..500 {
        let r = c
            .get(
                "d",
                &format!("row{}", i % 25),
                &format!("col{i}"),
                &Opts::none(),
            )
            .await;
        r.expect(200);
        assert!(
            r.body == value(round, i),
            "round {round}: cell {i} lost or changed: {}",
            r.describe()
        );
        assert_eq!(r.siblings(), Some(1), "cell {i}");
    }
}

async fn crash_and_recover(opts: NodeOptions) {
    let mut node = TestNode::start(opts);
    let c = node.client();
    c.create_table_n("d", 1).await.expect(201);

    write_500(&c, 0).await;
    node.kill9();
    node.restart();
    let c = node.client();
    read_500(&c, 0).await;

    // A second round on the recovered node: overwrites, a batch, a delete,
    // then another crash.
    write_500(&c, 1).await;
    c.batch(
        "d",
        "batched",
        &json!({"ops": [
            {"op": "set", "column": "a", "value": "A"},
            {"op": "set", "column": "b", "value": "B"},
        ]}),
    )
    .await
    .expect(200);
    c.delete("d", "row0", "col0", &Opts::none())
        .await
        .expect(204);
    node.kill9();
    node.restart();
    let c = node.client();
    c.get("d", "row0", "col0", &Opts::none())
        .await
        .expect_error(404, "not_found");
    for i in 1..500 {
        let r = c
            .get(
                "d",
                &format!("row{}", i % 25),
                &format!("col{i}"),
                &Opts::none(),
            )
            .await;
        r.expect(200);
        assert!(
            r.body == value(1, i),
            "round 1: cell {i} lost or changed: {}",
            r.describe()
        );
    }
    let row = c.get_row("d", "batched", &[]).await;
    row.expect(200);
    let (cells, _) = parse_row(&row.json());
    let got: Vec<_> = cells
        .iter()
        .map(|c| (c.column.clone(), c.versions.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("a".to_string(), vec![val("A")]),
            ("b".to_string(), vec![val("B")])
        ]
    );
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    crash_and_recover(NodeOptions::default()).await;
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9_with_sync_writes() {
    crash_and_recover(NodeOptions::default().sync_writes()).await;
}

#[tokio::test]
async fn sigterm_exits_0_and_keeps_data() {
    let mut node = TestNode::start_default();
    let c = node.client();
    c.create_table_n("d", 1).await.expect(201);
    write_500(&c, 7).await;

    let status = node.terminate();
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM should exit 0, got {status}\n{}",
        node.stderr_tail(30)
    );

    node.restart();
    let c = node.client();
    read_500(&c, 7).await;
    c.health().await.expect(200);

    // Stopping an idle node that was just restarted works as well.
    let status = node.terminate();
    assert_eq!(status.code(), Some(0), "second SIGTERM: {status}");
}

#[tokio::test]
async fn versions_and_contexts_stay_valid_across_a_crash() {
    let mut node = TestNode::start_default();
    let c = node.client();
    c.create_table_n("d", 1).await.expect(201);

    // A plain cell, and a cell with two siblings.
    c.put_ok("d", "k", "plain", "before").await;
    let plain_ctx = c.get("d", "k", "plain", &Opts::none()).await.ctx();
    c.put_ok("d", "k", "sib", "s0").await;
    let stale = c.get("d", "k", "sib", &Opts::none()).await.ctx();
    c.put_ok("d", "k", "sib", "s1").await;
    c.put("d", "k", "sib", "s2", &Opts::ctx(&stale))
        .await
        .expect(204);
    let sib_ctx = c.get("d", "k", "sib", &Opts::none()).await.ctx();

    node.kill9();
    node.restart();
    let c = node.client();

    // Siblings survive the crash.
    let r = c.get("d", "k", "sib", &Opts::none()).await;
    r.expect(300);
    assert_eq!(r.versions(), vec![val("s1"), val("s2")]);
    // A blind write after the restart supersedes what was there before it:
    // the node must not reuse version counters it handed out before the crash.
    c.put_ok("d", "k", "plain", "after").await;
    let r = c.get("d", "k", "plain", &Opts::none()).await;
    r.expect(200);
    assert_eq!(r.body, b"after", "{}", r.describe());
    // A context from before the crash is still understood: it saw only
    // "before", so writing with it keeps "after" as a sibling.
    c.put("d", "k", "plain", "stale", &Opts::ctx(&plain_ctx))
        .await
        .expect(204);
    let r = c.get("d", "k", "plain", &Opts::none()).await;
    r.expect(300);
    assert_eq!(r.versions(), vec![val("after"), val("stale")]);
    // And the pre-crash 300 context resolves the siblings it saw.
    c.put("d", "k", "sib", "merged", &Opts::ctx(&sib_ctx))
        .await
        .expect(204);
    let r = c.get("d", "k", "sib", &Opts::none()).await;
    r.expect(200);
    assert_eq!(r.body, b"merged");
}
