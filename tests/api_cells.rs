//! Cell routes: write, read, delete; exact binary values; the data-route
//! headers; overwrite and sibling rules of the causal context; and
//! consistency levels on a single node (only levels that resolve to 1
//! succeed; the others are 503 and write nothing).

use serde_json::json;
use tessera_tests::resp::val;
use tessera_tests::{Client, Opts, TestNode};

async fn node_with_table(table: &str, replication: u64) -> (TestNode, Client) {
    let node = TestNode::start_default();
    let c = node.client();
    c.create_table_n(table, replication).await.expect(201);
    (node, c)
}

#[tokio::test]
async fn put_get_delete_with_headers() {
    let (_node, c) = node_with_table("t", 1).await;

    // A cell that never existed.
    let r = c.get("t", "u1", "name", &Opts::none()).await;
    r.expect_error(404, "not_found");
    assert_eq!(r.replicas().as_deref(), Some("1/1/1"), "{}", r.describe());

    let w = c.put("t", "u1", "name", "Ada", &Opts::none()).await;
    w.expect(204);
    assert!(
        w.context().is_some_and(|c| !c.is_empty()),
        "write needs X-Causal-Context: {}",
        w.describe()
    );
    assert_eq!(w.siblings(), Some(1), "{}", w.describe());
    assert_eq!(w.replicas().as_deref(), Some("1/1/1"), "{}", w.describe());

    let r = c.get("t", "u1", "name", &Opts::none()).await;
    r.expect(200);
    assert_eq!(r.body, b"Ada");
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/octet-stream"),
        "{}",
        r.describe()
    );
    assert!(
        r.context().is_some_and(|c| !c.is_empty()),
        "{}",
        r.describe()
    );
    assert_eq!(r.siblings(), Some(1), "{}", r.describe());
    assert_eq!(r.replicas().as_deref(), Some("1/1/1"), "{}", r.describe());

    // Other cells of the row and other rows are untouched.
    c.get("t", "u1", "email", &Opts::none())
        .await
        .expect_error(404, "not_found");
    c.get("t", "u2", "name", &Opts::none())
        .await
        .expect_error(404, "not_found");

    // Delete: 204, then a 404 that still carries the cell's context.
    let d = c.delete("t", "u1", "name", &Opts::none()).await;
    d.expect(204);
    assert_eq!(d.replicas().as_deref(), Some("1/1/1"), "{}", d.describe());
    let r = c.get("t", "u1", "name", &Opts::none()).await;
    r.expect_error(404, "not_found");
    assert!(
        r.context().is_some_and(|c| !c.is_empty()),
        "a 404 of a deleted cell must carry X-Causal-Context: {}",
        r.describe()
    );
    assert_eq!(r.replicas().as_deref(), Some("1/1/1"), "{}", r.describe());

    // Deleting again is fine, and a write after a delete brings it back.
    c.delete("t", "u1", "name", &Opts::none()).await.expect(204);
    c.put_ok("t", "u1", "name", "Grace").await;
    let r = c.get("t", "u1", "name", &Opts::none()).await;
    r.expect(200);
    assert_eq!(r.body, b"Grace");
    assert_eq!(r.siblings(), Some(1));

    // A delete with the context of a read, then a write with the 404's context.
    let ctx = r.ctx();
    c.delete("t", "u1", "name", &Opts::ctx(ctx))
        .await
        .expect(204);
    let r = c.get("t", "u1", "name", &Opts::none()).await;
    r.expect_error(404, "not_found");
    c.put("t", "u1", "name", "Hopper", &Opts::ctx(r.ctx()))
        .await
        .expect(204);
    let r = c.get("t", "u1", "name", &Opts::none()).await;
    r.expect(200);
    assert_eq!(r.body, b"Hopper");

    // Checked last so that a failure here does not hide the checks above:
    // "every answer carries ... X-Siblings", a cell that never existed too.
    let r = c.get("t", "never", "written", &Opts::none()).await;
    r.expect_error(404, "not_found");
    assert!(
        r.siblings().is_some(),
        "every cell answer carries X-Siblings, even a 404 of a cell that never existed: {}",
        r.describe()
    );
}

#[tokio::test]
async fn binary_and_empty_values_round_trip() {
    let (_node, c) = node_with_table("bin", 1).await;

    let every_byte: Vec<u8> = (0..=255u8).collect();
    c.put_ok("bin", "k", "all", &every_byte).await;
    let r = c.get("bin", "k", "all", &Opts::none()).await;
    r.expect(200);
    assert_eq!(r.body, every_byte, "all 256 byte values must round-trip");

    let mut reversed = every_byte.clone();
    reversed.reverse();
    reversed.extend_from_slice(b"\r\n\r\n\0\0");
    c.put_ok("bin", "k", "rev", &reversed).await;
    assert_eq!(c.get("bin", "k", "rev", &Opts::none()).await.body, reversed);

    // A larger value (1 MiB, a pattern that is not all zeros).
    let big: Vec<u8> = (0..1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    c.put_ok("bin", "k", "big", &big).await;
    let r = c.get("bin", "k", "big", &Opts::none()).await;
    r.expect(200);
    assert!(
        r.body == big,
        "1 MiB value changed ({} bytes back)",
        r.body.len()
    );

    // The empty value is a value, not a deletion.
    let w = c.put("bin", "k", "empty", b"", &Opts::none()).await;
    w.expect(204);
    let r = c.get("bin", "k", "empty", &Opts::none()).await;
    r.expect(200);
    assert!(r.body.is_empty(), "empty value came back as {:?}", r.body);
    assert_eq!(r.siblings(), Some(1));

    // Keys and columns with spaces, slashes, percent signs and non-ASCII.
    for (k, col) in [
        ("a b", "c/d"),
        ("100%", "?x=y&z"),
        ("ключ", "列"),
        ("a/..b", "..."),
    ] {
        c.put_ok("bin", k, col, format!("{k}|{col}")).await;
        let r = c.get("bin", k, col, &Opts::none()).await;
        r.expect(200);
        assert_eq!(r.text(), format!("{k}|{col}"));
    }
}

#[tokio::test]
async fn blind_writes_overwrite_and_stale_contexts_make_siblings() {
    let (_node, c) = node_with_table("t", 1).await;

    // Sequential blind writes: the second replaces the first.
    c.put_ok("t", "k", "c", "first").await;
    let w = c.put_ok("t", "k", "c", "second").await;
    assert_eq!(w.siblings(), Some(1), "{}", w.describe());
    let r = c.get("t", "k", "c", &Opts::none()).await;
    r.expect(200);
    assert_eq!(r.body, b"second");
    assert_eq!(r.siblings(), Some(1));

    // The context a write returns supersedes exactly that write.
    let w = c.put_ok("t", "k", "c2", "a").await;
    c.put("t", "k", "c2", "b", &Opts::ctx(w.ctx()))
        .await
        .expect(204);
    let r = c.get("t", "k", "c2", &Opts::none()).await;
    r.expect(200);
    assert_eq!(r.body, b"b");

    // A stale context: it saw "second", but "third" was written since.
    let stale = c.get("t", "k", "c", &Opts::none()).await.ctx();
    c.put_ok("t", "k", "c", "third").await;
    let w = c.put("t", "k", "c", "fourth", &Opts::ctx(&stale)).await;
    w.expect(204);
    assert_eq!(w.siblings(), Some(2), "{}", w.describe());

    let r = c.get("t", "k", "c", &Opts::none()).await;
    r.expect(300);
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "300 should be JSON: {}",
        r.describe()
    );
    assert_eq!(r.versions(), vec![val("fourth"), val("third")]);
    assert_eq!(r.siblings(), Some(2));
    assert_eq!(r.replicas().as_deref(), Some("1/1/1"));

    // Writing with the 300's context resolves them.
    let w = c.put("t", "k", "c", "resolved", &Opts::ctx(r.ctx())).await;
    w.expect(204);
    assert_eq!(w.siblings(), Some(1), "{}", w.describe());
    let r = c.get("t", "k", "c", &Opts::none()).await;
    r.expect(200);
    assert_eq!(r.body, b"resolved");

    // A delete with the 300's context resolves siblings into a deletion.
    let stale = r.ctx();
    c.put_ok("t", "k", "c", "x").await;
    c.put("t", "k", "c", "y", &Opts::ctx(stale))
        .await
        .expect(204);
    let r = c.get("t", "k", "c", &Opts::none()).await;
    r.expect(300);
    c.delete("t", "k", "c", &Opts::ctx(r.ctx()))
        .await
        .expect(204);
    c.get("t", "k", "c", &Opts::none())
        .await
        .expect_error(404, "not_found");
}

#[tokio::test]
async fn unreachable_levels_are_503_and_write_nothing() {
    let (_node, c) = node_with_table("r3", 3).await;
    let one = Opts::level("one");

    let w = c.put("r3", "k", "c", "v1", &one).await;
    w.expect(204);
    assert_eq!(w.replicas().as_deref(), Some("1/1/3"), "{}", w.describe());
    let r = c.get("r3", "k", "c", &one).await;
    r.expect(200);
    assert_eq!(r.body, b"v1");
    assert_eq!(r.replicas().as_deref(), Some("1/1/3"), "{}", r.describe());
    c.put("r3", "k", "c1", "v1", &Opts::level("1"))
        .await
        .expect(204);

    // Levels that need more than one replica, explicit or by default.
    for (level, required) in [
        (Some("quorum"), 2),
        (Some("all"), 3),
        (Some("2"), 2),
        (Some("3"), 3),
        (Some("two"), 2),
        (Some("three"), 3),
        (None, 2), // the table's default write level is quorum
    ] {
        let opts = Opts {
            consistency: level.map(str::to_string),
            ..Opts::default()
        };
        let what = format!("level {level:?}");

        let w = c.put("r3", "k", "c", "v2", &opts).await;
        let err = w.expect_error(503, "unavailable");
        assert_eq!(err["required"], json!(required), "{what}: {}", w.describe());
        assert_eq!(err["replication"], json!(3), "{what}: {}", w.describe());

        let w = c.put("r3", "k", "fresh", "v2", &opts).await;
        w.expect_error(503, "unavailable");
        let d = c.delete("r3", "k", "c", &opts).await;
        d.expect_error(503, "unavailable");
        let b = c
            .batch_with("r3", "k", &json!({"ops": [{"op": "set", "column": "c", "value": "v3"}, {"op": "set", "column": "fresh", "value": "v3"}]}), &opts)
            .await;
        b.expect_error(503, "unavailable");
        let dr = c.delete_row("r3", "k", &opts).await;
        dr.expect_error(503, "unavailable");

        // Reads at such levels are refused too.
        c.get("r3", "k", "c", &opts)
            .await
            .expect_error(503, "unavailable");
        c.get_row_with("r3", "k", &opts)
            .await
            .expect_error(503, "unavailable");

        // Nothing was written.
        let r = c.get("r3", "k", "c", &one).await;
        r.expect(200);
        assert_eq!(r.body, b"v1", "{what}: a refused write changed the value");
        assert_eq!(r.siblings(), Some(1));
        c.get("r3", "k", "fresh", &one)
            .await
            .expect_error(404, "not_found");
    }
}

#[tokio::test]
async fn level_from_query_or_header_and_the_query_wins() {
    let (_node, c) = node_with_table("r3", 3).await;

    // Header alone.
    let w = c
        .put("r3", "k", "c", "h", &Opts::none().with_header_level("one"))
        .await;
    w.expect(204);
    assert_eq!(w.replicas().as_deref(), Some("1/1/3"));
    let r = c
        .get("r3", "k", "c", &Opts::none().with_header_level("one"))
        .await;
    r.expect(200);
    assert_eq!(r.body, b"h");
    c.get("r3", "k", "c", &Opts::none().with_header_level("quorum"))
        .await
        .expect_error(503, "unavailable");

    // Both: the query wins.
    let w = c
        .put(
            "r3",
            "k",
            "c",
            "q",
            &Opts::level("quorum").with_header_level("one"),
        )
        .await;
    w.expect_error(503, "unavailable");
    let w = c
        .put(
            "r3",
            "k",
            "c",
            "q",
            &Opts::level("one").with_header_level("quorum"),
        )
        .await;
    w.expect(204);
    let r = c
        .get("r3", "k", "c", &Opts::level("one").with_header_level("all"))
        .await;
    r.expect(200);
    assert_eq!(r.body, b"q");
    c.get("r3", "k", "c", &Opts::level("all").with_header_level("one"))
        .await
        .expect_error(503, "unavailable");
}

#[tokio::test]
async fn levels_on_a_single_replica_table() {
    let (_node, c) = node_with_table("r1", 1).await;
    for level in ["one", "1", "quorum", "all"] {
        let w = c.put("r1", "k", level, level, &Opts::level(level)).await;
        w.expect(204);
        assert_eq!(
            w.replicas().as_deref(),
            Some("1/1/1"),
            "level {level}: {}",
            w.describe()
        );
        let r = c.get("r1", "k", level, &Opts::level(level)).await;
        r.expect(200);
        assert_eq!(r.body, level.as_bytes());
    }
    // Above N=1: a bad level, not an unreachable one.
    for level in ["two", "2", "three", "3"] {
        let w = c.put("r1", "k", "c", "x", &Opts::level(level)).await;
        let err = w.expect_error(400, "invalid_consistency");
        assert_eq!(err["replication"], json!(1), "{}", w.describe());
        c.get("r1", "k", "c", &Opts::level(level))
            .await
            .expect_error(400, "invalid_consistency");
        c.put("r1", "k", "c", "x", &Opts::none().with_header_level(level))
            .await
            .expect_error(400, "invalid_consistency");
    }
    c.get("r1", "k", "c", &Opts::none())
        .await
        .expect_error(404, "not_found");
}
