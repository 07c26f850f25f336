//! Row routes: atomic batches, row reads (order, contexts, siblings,
//! encodings, slices, paging over 10,000 cells) and row deletes.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};
use tessera_tests::resp::{parse_row, val, RowCell, Version};
use tessera_tests::{Client, NodeOptions, Opts, TestNode};

async fn node_with_table(table: &str) -> (TestNode, Client) {
    let node = TestNode::start_default();
    let c = node.client();
    c.create_table_n(table, 1).await.expect(201);
    (node, c)
}

fn set(column: &str, value: &str) -> Value {
    json!({"op": "set", "column": column, "value": value})
}

/// Reads every page of a row slice, following `next`; returns all cells and
/// the number of pages.
async fn read_all_pages(
    c: &Client,
    t: &str,
    k: &str,
    params: &[(&str, &str)],
) -> (Vec<RowCell>, usize) {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut p: Vec<(&str, &str)> = params.to_vec();
        if let Some(cur) = &cursor {
            p.push(("cursor", cur));
        }
        let r = c.get_row(t, k, &p).await;
        r.expect(200);
        let (cells, next) = parse_row(&r.json());
        pages += 1;
        assert!(pages < 1000, "paging does not end");
        all.extend(cells);
        match next {
            Some(n) => cursor = Some(n),
            None => return (all, pages),
        }
    }
}

#[tokio::test]
async fn batch_of_sets_and_deletes() {
    let (_node, c) = node_with_table("t").await;
    c.put_ok("t", "u1", "old", "bye").await;
    c.put_ok("t", "u1", "ctxdel", "bye too").await;
    let ctx = c.get("t", "u1", "ctxdel", &Opts::none()).await.ctx();
    let png = [0x89u8, b'P', b'N', b'G', 0, 0xff, 0x0d, 0x0a];

    let r = c
        .batch(
            "t",
            "u1",
            &json!({"ops": [
                set("name", "Ada"),
                {"op": "set", "column": "avatar", "value_base64": B64.encode(png)},
                {"op": "delete", "column": "old"},
                {"op": "delete", "column": "ctxdel", "context": ctx},
                {"op": "set", "column": "email", "value": "ada@example.com"},
            ]}),
        )
        .await;
    r.expect(200);
    assert_eq!(r.replicas().as_deref(), Some("1/1/1"), "{}", r.describe());
    let cells = r.json()["cells"].as_array().cloned().unwrap_or_default();
    assert_eq!(cells.len(), 5, "one entry per op: {}", r.describe());
    let mut cols: Vec<&str> = cells
        .iter()
        .map(|c| c["column"].as_str().unwrap_or("?"))
        .collect();
    cols.sort();
    assert_eq!(cols, vec!["avatar", "ctxdel", "email", "name", "old"]);
    for cell in &cells {
        assert!(
            cell["context"].as_str().is_some_and(|s| !s.is_empty()),
            "context in {cell}"
        );
        assert!(
            cell["siblings"].as_u64().is_some(),
            "siblings count in {cell}"
        );
        if ["name", "avatar", "email"].contains(&cell["column"].as_str().unwrap_or("")) {
            assert_eq!(cell["siblings"], json!(1), "{cell}");
        }
    }

    let r = c.get("t", "u1", "name", &Opts::none()).await;
    r.expect(200);
    assert_eq!(r.body, b"Ada");
    let r = c.get("t", "u1", "avatar", &Opts::none()).await;
    r.expect(200);
    assert_eq!(r.body, png);
    c.get("t", "u1", "old", &Opts::none())
        .await
        .expect_error(404, "not_found");
    c.get("t", "u1", "ctxdel", &Opts::none())
        .await
        .expect_error(404, "not_found");

    // The contexts a batch returns work like a read's: a batch with the
    // context of `name` overwrites it without siblings.
    let name_ctx = cells
        .iter()
        .find(|c| c["column"] == json!("name"))
        .and_then(|c| c["context"].as_str())
        .expect("name context")
        .to_string();
    c.batch(
        "t",
        "u1",
        &json!({"ops": [{"op": "set", "column": "name", "value": "Grace", "context": name_ctx}]}),
    )
    .await
    .expect(200);
    let r = c.get("t", "u1", "name", &Opts::none()).await;
    r.expect(200);
    assert_eq!(r.body, b"Grace");

    // A batch set with a stale context keeps what it did not see: siblings.
    let r = c
        .batch(
            "t",
            "u1",
            &json!({"ops": [{"op": "set", "column": "name", "value": "Hopper", "context": name_ctx}]}),
        )
        .await;
    r.expect(200);
    assert_eq!(
        r.json()["cells"][0]["siblings"],
        json!(2),
        "{}",
        r.describe()
    );
    let r = c.get("t", "u1", "name", &Opts::none()).await;
    r.expect(300);
    assert_eq!(r.versions(), vec![val("Grace"), val("Hopper")]);
}

#[tokio::test]
async fn batches_are_all_or_nothing() {
    // The 10,000-cell batch below is committed under the request deadline, and an unoptimised
    // build on a busy machine can take longer than the default 2 s for it.
    let node = TestNode::start(NodeOptions {
        request_timeout_ms: Some(30_000),
        ..NodeOptions::default()
    });
    let c = node.client();
    c.create_table_n("t", 1).await.expect(201);
    c.put_ok("t", "k", "keep", "v1").await;
    let long_column = "x".repeat(65_536);

    let bad_batches: Vec<(&str, Value, u16, Option<&str>)> = vec![
        (
            "oversized column",
            json!({"ops": [set("a", "1"), set("keep", "v2"), set(&long_column, "x")]}),
            400,
            Some("invalid_column"),
        ),
        (
            "garbled context",
            json!({"ops": [set("a", "1"), set("keep", "v2"), {"op": "delete", "column": "z", "context": "!!!"}]}),
            400,
            Some("invalid_context"),
        ),
        (
            "column with a NUL",
            json!({"ops": [set("a", "1"), set("keep", "v2"), set("n\u{0}ul", "x")]}),
            400,
            Some("invalid_column"),
        ),
        (
            "empty column",
            json!({"ops": [set("a", "1"), set("keep", "v2"), set("", "x")]}),
            400,
            Some("invalid_column"),
        ),
        (
            "dot-dot column",
            json!({"ops": [set("a", "1"), set("keep", "v2"), set("x/../y", "x")]}),
            400,
            Some("invalid_column"),
        ),
        (
            "duplicate column",
            json!({"ops": [set("a", "1"), set("keep", "v2"), set("a", "3")]}),
            400,
            None,
        ),
        (
            "duplicate column, set and delete",
            json!({"ops": [set("keep", "v2"), {"op": "delete", "column": "keep"}]}),
            400,
            None,
        ),
        ("no ops", json!({"ops": []}), 400, None),
        ("ops missing", json!({}), 400, Some("invalid_json")),
        (
            "ops not a list",
            json!({"ops": {"op": "set"}}),
            400,
            Some("invalid_json"),
        ),
        (
            "unknown op",
            json!({"ops": [set("a", "1"), {"op": "frobnicate", "column": "keep"}]}),
            400,
            None,
        ),
        (
            "set without a value",
            json!({"ops": [set("a", "1"), {"op": "set", "column": "keep"}]}),
            400,
            None,
        ),
        (
            "value of the wrong type",
            json!({"ops": [set("a", "1"), {"op": "set", "column": "keep", "value": 5}]}),
            400,
            Some("invalid_json"),
        ),
        (
            "value_base64 that is not base64",
            json!({"ops": [set("a", "1"), {"op": "set", "column": "keep", "value_base64": "@@@"}]}),
            400,
            None,
        ),
        (
            "column of the wrong type",
            json!({"ops": [set("a", "1"), {"op": "set", "column": 7, "value": "x"}]}),
            400,
            Some("invalid_json"),
        ),
    ];
    for (what, body, status, code) in bad_batches {
        let r = c.batch("t", "k", &body).await;
        match code {
            Some(code) => {
                r.expect_error(status, code);
            }
            None => {
                r.expect_any_error(status);
            }
        }
        let keep = c.get("t", "k", "keep", &Opts::none()).await;
        keep.expect(200);
        assert_eq!(keep.body, b"v1", "{what}: a refused batch changed `keep`");
        assert_eq!(keep.siblings(), Some(1), "{what}");
        let a = c.get("t", "k", "a", &Opts::none()).await;
        a.expect_error(404, "not_found");
    }

    // 10,001 ops is over the limit; 10,000 is fine (separate row).
    let ops: Vec<Value> = (0..10_001).map(|i| set(&format!("c{i}"), "x")).collect();
    c.batch("t", "k", &json!({ "ops": ops }))
        .await
        .expect_any_error(400);
    let row = c.get_row("t", "k", &[("limit", "10000")]).await;
    row.expect(200);
    assert_eq!(
        parse_row(&row.json()).0.len(),
        1,
        "only `keep` is in the row"
    );
    let ops: Vec<Value> = (0..10_000).map(|i| set(&format!("c{i}"), "x")).collect();
    c.batch("t", "k2", &json!({ "ops": ops })).await.expect(200);

    // A column of exactly 65,535 bytes is allowed.
    let max_column = "y".repeat(65_535);
    c.batch("t", "k3", &json!({"ops": [set(&max_column, "edge")]}))
        .await
        .expect(200);
    let row = c.get_row("t", "k3", &[]).await;
    row.expect(200);
    let (cells, _) = parse_row(&row.json());
    assert_eq!(cells.len(), 1);
    assert_eq!(cells[0].column, max_column);
    assert_eq!(cells[0].versions, vec![val("edge")]);
}

#[tokio::test]
async fn row_read_order_contexts_siblings_and_encodings() {
    let (_node, c) = node_with_table("t").await;
    let columns = ["z", "B", "a", "aa", "é", "😀", "mid", "A B", "a/b"];
    let mut ops: Vec<Value> = columns
        .iter()
        .map(|col| set(col, &format!("v-{col}")))
        .collect();
    ops.push(
        json!({"op": "set", "column": "bin", "value_base64": B64.encode([0xffu8, 0xfe, 0, 1])}),
    );
    c.batch("t", "r", &json!({ "ops": ops })).await.expect(200);
    // `mid` is deleted: it must not show.
    c.delete("t", "r", "mid", &Opts::none()).await.expect(204);
    // `sib` has two siblings.
    c.put_ok("t", "r", "sib", "s0").await;
    let stale = c.get("t", "r", "sib", &Opts::none()).await.ctx();
    c.put_ok("t", "r", "sib", "s1").await;
    c.put("t", "r", "sib", "s2", &Opts::ctx(stale))
        .await
        .expect(204);

    let r = c.get_row("t", "r", &[]).await;
    r.expect(200);
    assert_eq!(r.replicas().as_deref(), Some("1/1/1"), "{}", r.describe());
    let (cells, next) = parse_row(&r.json());
    assert!(
        next.is_none(),
        "no `next` when the page was not cut: {}",
        r.describe()
    );

    let mut expected: Vec<String> = columns
        .iter()
        .filter(|c| **c != "mid")
        .map(|c| c.to_string())
        .chain(["bin".to_string(), "sib".to_string()])
        .collect();
    expected.sort(); // String's Ord is byte order
    let got: Vec<String> = cells.iter().map(|c| c.column.clone()).collect();
    assert_eq!(
        got, expected,
        "cells in byte order of column, deleted ones left out"
    );

    for cell in &cells {
        assert!(
            cell.context.as_deref().is_some_and(|s| !s.is_empty()),
            "every cell carries its context: {}",
            cell.raw
        );
        match cell.column.as_str() {
            "sib" => {
                assert!(cell.has_siblings, "{}", cell.raw);
                let mut vs = cell.versions.clone();
                vs.sort();
                assert_eq!(vs, vec![val("s1"), val("s2")]);
            }
            "bin" => {
                assert!(
                    cell.base64,
                    "non-UTF-8 values come as value_base64: {}",
                    cell.raw
                );
                assert_eq!(cell.versions, vec![Version::Value(vec![0xff, 0xfe, 0, 1])]);
            }
            col => {
                assert!(!cell.has_siblings && !cell.base64, "{}", cell.raw);
                assert_eq!(cell.raw["value"], json!(format!("v-{col}")));
            }
        }
    }

    // The context from a row read resolves the siblings.
    let sib_ctx = cells
        .iter()
        .find(|c| c.column == "sib")
        .and_then(|c| c.context.clone())
        .expect("sib");
    c.put("t", "r", "sib", "one", &Opts::ctx(sib_ctx))
        .await
        .expect(204);
    let r = c.get("t", "r", "sib", &Opts::none()).await;
    r.expect(200);
    assert_eq!(r.body, b"one");

    // encoding=base64: every value, siblings included, as value_base64.
    c.put_ok("t", "r", "sib2", "p").await;
    let stale = c.get("t", "r", "sib2", &Opts::none()).await.ctx();
    c.put_ok("t", "r", "sib2", "q").await;
    c.put("t", "r", "sib2", "w", &Opts::ctx(stale))
        .await
        .expect(204);
    let r = c.get_row("t", "r", &[("encoding", "base64")]).await;
    r.expect(200);
    let body = r.json();
    let (cells, _) = parse_row(&body);
    assert_eq!(cells.len(), expected.len() + 1);
    for cell in &cells {
        let shown: Vec<&Value> = match cell.raw.get("siblings") {
            Some(Value::Array(list)) => list.iter().collect(),
            _ => vec![&cell.raw],
        };
        for v in shown {
            assert!(
                v.get("value").is_none() && v.get("value_base64").is_some(),
                "base64 only: {v}"
            );
        }
        if cell.column == "a" {
            assert_eq!(cell.versions, vec![val("v-a")]);
        }
        if cell.column == "sib2" {
            let mut vs = cell.versions.clone();
            vs.sort();
            assert_eq!(vs, vec![val("q"), val("w")]);
        }
    }
    // encoding=utf8 is the default.
    let a = c.get_row("t", "r", &[("encoding", "utf8")]).await;
    let b = c.get_row("t", "r", &[]).await;
    a.expect(200);
    assert_eq!(
        parse_row(&a.json())
            .0
            .iter()
            .map(|c| c.raw.clone())
            .collect::<Vec<_>>(),
        parse_row(&b.json())
            .0
            .iter()
            .map(|c| c.raw.clone())
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn slices_limits_cursors_and_empty_rows() {
    let (_node, c) = node_with_table("t").await;
    let ops: Vec<Value> = (0..20)
        .map(|i| set(&format!("c{i:02}"), &format!("v{i}")))
        .collect();
    c.batch("t", "r", &json!({ "ops": ops })).await.expect(200);
    let names = |cells: &[RowCell]| cells.iter().map(|c| c.column.clone()).collect::<Vec<_>>();
    let range = |a: usize, b: usize| (a..b).map(|i| format!("c{i:02}")).collect::<Vec<_>>();

    type Case<'a> = (Vec<(&'a str, &'a str)>, Vec<String>);
    let cases: Vec<Case> = vec![
        (vec![("from", "c05")], range(5, 20)),
        (vec![("to", "c10")], range(0, 10)),
        (vec![("from", "c05"), ("to", "c10")], range(5, 10)),
        (vec![("from", "c045"), ("to", "c105")], range(5, 11)),
        (vec![("from", "c")], range(0, 20)),
        (vec![("limit", "25")], range(0, 20)),
        (vec![("from", "x")], vec![]),
        (vec![("to", "a")], vec![]),
        (vec![("from", "c10"), ("to", "c10")], vec![]),
    ];
    for (params, want) in cases {
        let r = c.get_row("t", "r", &params).await;
        r.expect(200);
        let (cells, next) = parse_row(&r.json());
        assert_eq!(names(&cells), want, "slice {params:?}");
        assert!(
            next.is_none(),
            "slice {params:?} was not cut: {}",
            r.describe()
        );
    }

    // limit cuts and gives `next`; the cursor continues after it.
    let r = c.get_row("t", "r", &[("limit", "3")]).await;
    r.expect(200);
    let (cells, next) = parse_row(&r.json());
    assert_eq!(names(&cells), range(0, 3));
    let next = next.expect("a page cut by limit carries `next`");
    let r = c
        .get_row("t", "r", &[("limit", "3"), ("cursor", &next)])
        .await;
    r.expect(200);
    let (cells, _) = parse_row(&r.json());
    assert_eq!(names(&cells), range(3, 6));

    let (cells, pages) = read_all_pages(&c, "t", "r", &[("limit", "6")]).await;
    assert_eq!(names(&cells), range(0, 20));
    assert!(
        pages >= 4,
        "20 cells by 6 take at least 4 pages, got {pages}"
    );
    let (cells, _) = read_all_pages(
        &c,
        "t",
        "r",
        &[("limit", "4"), ("from", "c03"), ("to", "c15")],
    )
    .await;
    assert_eq!(names(&cells), range(3, 15));

    // Empty rows: 404 without bounds, 200 with no cells for a slice.
    c.get_row("t", "nothing", &[])
        .await
        .expect_error(404, "not_found");
    for params in [
        vec![("from", "a")],
        vec![("to", "z")],
        vec![("from", "a"), ("limit", "5")],
    ] {
        let r = c.get_row("t", "nothing", &params).await;
        r.expect(200);
        assert!(
            parse_row(&r.json()).0.is_empty(),
            "{params:?}: {}",
            r.describe()
        );
    }
    // A row whose cells are all deleted is empty too.
    c.put_ok("t", "gone", "x", "1").await;
    c.delete("t", "gone", "x", &Opts::none()).await.expect(204);
    c.get_row("t", "gone", &[])
        .await
        .expect_error(404, "not_found");
}

#[tokio::test]
async fn delete_row_counts_and_removes_every_cell() {
    let (_node, c) = node_with_table("t").await;
    c.batch(
        "t",
        "r",
        &json!({"ops": [set("a", "1"), set("b", "2"), set("c", "3")]}),
    )
    .await
    .expect(200);
    c.put_ok("t", "other", "a", "stays").await;

    let r = c.delete_row("t", "r", &Opts::none()).await;
    r.expect(200);
    assert_eq!(r.json()["deleted"], json!(3), "{}", r.describe());
    c.get_row("t", "r", &[])
        .await
        .expect_error(404, "not_found");
    for col in ["a", "b", "c"] {
        c.get("t", "r", col, &Opts::none())
            .await
            .expect_error(404, "not_found");
    }
    let r = c.get("t", "other", "a", &Opts::none()).await;
    r.expect(200);
    assert_eq!(r.body, b"stays");

    // The row can be written again, and a second delete counts only live cells.
    c.put_ok("t", "r", "b", "again").await;
    let r = c.get_row("t", "r", &[]).await;
    r.expect(200);
    let (cells, _) = parse_row(&r.json());
    assert_eq!(cells.len(), 1);
    assert_eq!(cells[0].versions, vec![val("again")]);
    let r = c.delete_row("t", "r", &Opts::none()).await;
    r.expect(200);
    assert_eq!(r.json()["deleted"], json!(1), "{}", r.describe());
    c.get_row("t", "r", &[])
        .await
        .expect_error(404, "not_found");
}

#[tokio::test]
async fn paging_over_ten_thousand_cells() {
    let (_node, c) = node_with_table("t").await;
    let value = |i: usize| format!("value-{i}-{}", "x".repeat(i % 7));
    for chunk in 0..10 {
        let ops: Vec<Value> = (chunk * 1000..(chunk + 1) * 1000)
            .map(|i| set(&format!("c{i:05}"), &value(i)))
            .collect();
        c.batch("t", "big", &json!({ "ops": ops }))
            .await
            .expect(200);
    }

    let (cells, pages) = read_all_pages(&c, "t", "big", &[("limit", "999")]).await;
    assert_eq!(cells.len(), 10_000, "every cell exactly once");
    assert_eq!(pages, 11, "10,000 cells by 999 are 11 pages");
    for (i, cell) in cells.iter().enumerate() {
        assert_eq!(
            cell.column,
            format!("c{i:05}"),
            "cell {i} out of order or missing"
        );
        assert_eq!(cell.versions, vec![val(&value(i))], "value of cell {i}");
    }

    // A slice in the middle, paged too.
    let (cells, pages) = read_all_pages(
        &c,
        "t",
        "big",
        &[("from", "c04000"), ("to", "c06500"), ("limit", "999")],
    )
    .await;
    assert_eq!(pages, 3);
    let got: Vec<String> = cells.iter().map(|c| c.column.clone()).collect();
    let want: Vec<String> = (4000..6500).map(|i| format!("c{i:05}")).collect();
    assert_eq!(got, want);

    // The default limit is 1,000, the largest 10,000.
    let r = c.get_row("t", "big", &[]).await;
    r.expect(200);
    let (cells, next) = parse_row(&r.json());
    assert_eq!(cells.len(), 1000);
    assert!(next.is_some());
    let r = c
        .get_row("t", "big", &[("limit", "10000"), ("from", "c00001")])
        .await;
    r.expect(200);
    let (cells, next) = parse_row(&r.json());
    assert_eq!(cells.len(), 9_999);
    assert!(next.is_none());
}
