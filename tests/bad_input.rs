//! Every bad input the contract names gets its documented status and a JSON
//! error `{"error": {"code", "message"}}`, changes no stored data (canary
//! cells written first must read back unchanged), creates no file outside
//! the data directory, and never takes the node down.
//!
//! Paths with `..`, `%00` and friends are sent with the raw client: any real
//! HTTP client would normalise them before the server could refuse them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};
use tessera_tests::raw;
use tessera_tests::resp::parse_row;
use tessera_tests::{Checks, Client, NodeOptions, Opts, Resp, TestNode};

const CANARY: &[u8] = b"canary \x00\xff value";
const CANARY3: &[u8] = b"canary on r3";

/// A node with table `t` (N=1) and `r3` (N=3), each with a canary cell.
async fn setup_with(opts: NodeOptions) -> (TestNode, Client) {
    let node = TestNode::start(opts);
    let c = node.client();
    c.create_table_n("t", 1).await.expect(201);
    c.create_table_n("r3", 3).await.expect(201);
    c.put_ok("t", "canary", "col", CANARY).await;
    c.put("r3", "canary", "col", CANARY3, &Opts::level("one"))
        .await
        .expect(204);
    (node, c)
}

async fn setup() -> (TestNode, Client) {
    setup_with(NodeOptions::default()).await
}

/// The canaries are unchanged, no table appeared, and the node answers.
async fn assert_untouched(c: &Client, what: &str) {
    let r = c.get("t", "canary", "col", &Opts::none()).await;
    r.expect(200);
    assert_eq!(r.body, CANARY, "after {what}: canary changed");
    assert_eq!(r.siblings(), Some(1), "after {what}: canary grew siblings");
    let row = c.get_row("t", "canary", &[]).await;
    row.expect(200);
    assert_eq!(
        parse_row(&row.json()).0.len(),
        1,
        "after {what}: canary row changed: {}",
        row.describe()
    );
    let r = c.get("r3", "canary", "col", &Opts::level("one")).await;
    r.expect(200);
    assert_eq!(r.body, CANARY3, "after {what}: r3 canary changed");
    assert_eq!(
        r.siblings(),
        Some(1),
        "after {what}: r3 canary grew siblings"
    );
    let tables = c.list_tables().await.json();
    let names: Vec<&str> = tables["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| t["name"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(names, vec!["r3", "t"], "after {what}: tables changed");
    c.health().await.expect(200);
}

/// A raw request with the target sent byte for byte.
async fn raw_req(node: &TestNode, method: &str, target: &str, body: &[u8]) -> Resp {
    raw::request(node.addr(), method, target, &[], body).await
}

#[tokio::test]
async fn bad_table_names() {
    let (node, c) = setup().await;
    let mut ck = Checks::new();
    let long49 = "a".repeat(49);
    let long48 = "b".repeat(48);

    // Names that reqwest can send as they are (after encoding).
    for name in [
        long49.as_str(),
        "a-b",
        "é",
        "a b",
        "a.b",
        "t$",
        "Robert'); DROP TABLE",
    ] {
        let r = c.create_table_n(name, 1).await;
        let what = format!("create {name:?}");
        let err = ck.error(&what, &r, 400, "invalid_table_name");
        ck.detail(&what, &err, &r, "table", json!(name));
        let what = format!("data routes on table {name:?}");
        for r in [
            c.put(name, "k", "c", "v", &Opts::none()).await,
            c.get(name, "k", "c", &Opts::none()).await,
            c.delete(name, "k", "c", &Opts::none()).await,
            c.get_row(name, "k", &[]).await,
            c.batch(
                name,
                "k",
                &json!({"ops": [{"op": "set", "column": "c", "value": "v"}]}),
            )
            .await,
            c.delete_row(name, "k", &Opts::none()).await,
            c.show_table(name).await,
        ] {
            ck.error(&what, &r, 400, "invalid_table_name");
        }
    }
    // Names that need the raw client.
    for seg in [
        "%2e%2e",
        "..",
        "%2E",
        "%00",
        "t%00",
        "%FF",
        "t%2fx",
        "%2e%2e%2f%2e%2e",
    ] {
        for (method, target, body) in [
            (
                "PUT",
                format!("/v1/tables/{seg}"),
                &b"{\"replication\":1}"[..],
            ),
            ("GET", format!("/v1/tables/{seg}"), &b""[..]),
            ("PUT", format!("/v1/tables/{seg}/rows/k/c"), &b"v"[..]),
            ("GET", format!("/v1/tables/{seg}/rows/k/c"), &b""[..]),
            ("GET", format!("/v1/tables/{seg}/rows/k"), &b""[..]),
        ] {
            let r = raw_req(&node, method, &target, body).await;
            ck.error(&format!("{method} {target}"), &r, 400, "invalid_table_name");
        }
    }
    assert_untouched(&c, "bad table names").await;

    // 48 characters is the longest valid name.
    c.create_table_n(&long48, 1).await.expect(201);
    c.put_ok(&long48, "k", "c", "v").await;
    ck.finish();
}

#[tokio::test]
async fn empty_and_oversized_keys_and_columns() {
    let (node, c) = setup().await;
    let mut ck = Checks::new();

    // Empty key or column: the contract lists "empty" under invalid_key /
    // invalid_column.
    for (method, target, code) in [
        ("PUT", "/v1/tables/t/rows//c", "invalid_key"),
        ("GET", "/v1/tables/t/rows//c", "invalid_key"),
        ("DELETE", "/v1/tables/t/rows//c", "invalid_key"),
        ("PUT", "/v1/tables/t/rows/k/", "invalid_column"),
        ("DELETE", "/v1/tables/t/rows/k/", "invalid_column"),
    ] {
        let r = raw_req(&node, method, target, b"v").await;
        ck.error(&format!("{method} {target}"), &r, 400, code);
    }

    // 65,536 bytes is one over the limit. In a URL that is also over the
    // 65,534-byte URI limit hyper (via the `http` crate) enforces before any
    // handler runs, so hyper may answer 414 on its own; that is tolerated and
    // printed, and the node must survive it. The limit itself is checked
    // through a batch column, which travels in the body (see below).
    let long = "k".repeat(65_536);
    for (what, target, code) in [
        ("key", format!("/v1/tables/t/rows/{long}/c"), "invalid_key"),
        (
            "column",
            format!("/v1/tables/t/rows/k/{long}"),
            "invalid_column",
        ),
    ] {
        for method in ["PUT", "GET"] {
            let r = raw_req(&node, method, &target, b"v").await;
            if r.status == 414 {
                eprintln!(
                    "NOTE: {method} with a 65,536-byte {what}: answered 414 by the HTTP layer \
                     (URI over 65,534 bytes), not 400 {code}: {}",
                    r.describe()
                );
            } else {
                let what = format!("{method} 65,536-byte {what}");
                let err = ck.error(&what, &r, 400, code);
                ck.detail(&what, &err, &r, "length", json!(65_536));
                ck.detail(&what, &err, &r, "max", json!(65_535));
            }
        }
    }
    // A column over the limit in a batch body.
    let r = c
        .batch(
            "t",
            "k",
            &json!({"ops": [{"op": "set", "column": "c".repeat(65_536), "value": "v"}]}),
        )
        .await;
    let what = "batch with a 65,536-byte column";
    let err = ck.error(what, &r, 400, "invalid_column");
    ck.detail(what, &err, &r, "length", json!(65_536));
    ck.detail(what, &err, &r, "max", json!(65_535));

    // Long keys that fit in a URL work.
    let key = "q".repeat(60_000);
    c.put_ok("t", &key, "c", "long key").await;
    let r = c.get("t", &key, "c", &Opts::none()).await;
    r.expect(200);
    assert_eq!(r.body, b"long key");
    let col = "w".repeat(60_000);
    c.put_ok("t", "k", &col, "long column").await;
    assert_eq!(
        c.get("t", "k", &col, &Opts::none()).await.body,
        b"long column"
    );

    assert_untouched(&c, "empty and oversized keys").await;
    ck.finish();
}

/// Every file and directory under `root`, relative, except `skip`'s subtree.
fn snapshot(root: &Path, skip: &Path) -> BTreeSet<PathBuf> {
    fn walk(dir: &Path, root: &Path, skip: &Path, out: &mut BTreeSet<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p == skip {
                continue;
            }
            out.insert(p.strip_prefix(root).unwrap_or(&p).to_path_buf());
            if p.is_dir() {
                walk(&p, root, skip, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, skip, &mut out);
    out
}

#[tokio::test]
async fn path_tricks_are_refused_and_touch_no_file() {
    // The data dir sits two levels down, so `..` and `../..` from it still
    // land inside `outer`, which is watched.
    let outer = tempfile::tempdir().expect("tempdir");
    let data = outer.path().join("a").join("b").join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::write(outer.path().join("a").join("marker"), b"x").expect("marker");
    let (node, c) = setup_with(NodeOptions::default().data_dir(&data)).await;
    let mut ck = Checks::new();
    let before = snapshot(outer.path(), &data);

    let bad_keys = [
        "..",
        ".",
        "%2e%2e",
        "%2E%2E",
        "%2e",
        ".%2e",
        "%2e%2e%2f",
        "a%2f..%2fb",
        "a%2F.%2Fb",
        "..%2f..%2f..%2fetc%2fpasswd",
        "..%2fmarker",
        "x%2f..",
        "%00",
        "a%00b",
        "%FF",
        "a%C3",
    ];
    for key in bad_keys {
        for (method, target, body) in [
            ("PUT", format!("/v1/tables/t/rows/{key}/c"), &b"evil"[..]),
            ("GET", format!("/v1/tables/t/rows/{key}/c"), &b""[..]),
            ("DELETE", format!("/v1/tables/t/rows/{key}/c"), &b""[..]),
            ("GET", format!("/v1/tables/t/rows/{key}"), &b""[..]),
            ("DELETE", format!("/v1/tables/t/rows/{key}"), &b""[..]),
            (
                "POST",
                format!("/v1/tables/t/rows/{key}"),
                &br#"{"ops":[{"op":"set","column":"c","value":"evil"}]}"#[..],
            ),
        ] {
            let r = raw_req(&node, method, &target, body).await;
            ck.error(&format!("{method} {target}"), &r, 400, "invalid_key");
        }
    }
    for col in [
        "..",
        ".",
        "%2e%2e",
        "%2e%2e%2f",
        "a%2f..%2fb",
        "a%2f.",
        "%00",
        "c%00",
        "%FF",
    ] {
        for (method, target, body) in [
            ("PUT", format!("/v1/tables/t/rows/k/{col}"), &b"evil"[..]),
            ("GET", format!("/v1/tables/t/rows/k/{col}"), &b""[..]),
            ("DELETE", format!("/v1/tables/t/rows/k/{col}"), &b""[..]),
        ] {
            let r = raw_req(&node, method, &target, body).await;
            ck.error(&format!("{method} {target}"), &r, 400, "invalid_column");
        }
    }
    // The same columns inside a batch body.
    for col in ["..", ".", "../", "a/../b", "a/.", "\u{0}", "c\u{0}"] {
        let r = c
            .batch(
                "t",
                "k",
                &json!({"ops": [{"op": "set", "column": col, "value": "evil"}]}),
            )
            .await;
        ck.error(&format!("batch column {col:?}"), &r, 400, "invalid_column");
    }

    // Dots that are not a whole component are ordinary bytes.
    for key in ["...", "a..b", ".hidden", "a%2f...%2fb", "..a"] {
        let target = format!("/v1/tables/t/rows/{key}/c");
        let r = raw_req(&node, "PUT", &target, key.as_bytes()).await;
        r.expect(204);
        let r = raw_req(&node, "GET", &target, b"").await;
        r.expect(200);
        assert_eq!(r.body, key.as_bytes(), "{target}");
    }

    let after = snapshot(outer.path(), &data);
    assert_eq!(
        before, after,
        "files appeared or vanished outside the data dir"
    );
    assert_eq!(
        std::fs::read(outer.path().join("a").join("marker")).expect("marker"),
        b"x"
    );
    assert_untouched(&c, "path tricks").await;
    ck.finish();
}

#[tokio::test]
async fn values_and_bodies_over_the_limits() {
    let (_node, c) = setup_with(
        NodeOptions::default()
            .max_value_bytes(1024)
            .max_batch_bytes(4096),
    )
    .await;

    // Over the limit: 413, and nothing written, over an existing cell or not.
    let big = vec![b'v'; 1025];
    for (k, col) in [("canary", "col"), ("k", "new")] {
        let r = c.put("t", k, col, &big, &Opts::none()).await;
        let err = r.expect_error(413, "value_too_large");
        assert_eq!(err["length"], json!(1025), "{}", r.describe());
        assert_eq!(err["max"], json!(1024), "{}", r.describe());
    }
    c.get("t", "k", "new", &Opts::none())
        .await
        .expect_error(404, "not_found");

    // Exactly at the limit: fine.
    let edge: Vec<u8> = (0..1024u32).map(|i| (i % 251) as u8).collect();
    c.put_ok("t", "k", "edge", &edge).await;
    let r = c.get("t", "k", "edge", &Opts::none()).await;
    r.expect(200);
    assert_eq!(r.body, edge);

    // In a batch: the value limit applies per value, and the batch is atomic.
    let r = c
        .batch(
            "t",
            "canary",
            &json!({"ops": [
                {"op": "set", "column": "other", "value": "small"},
                {"op": "set", "column": "col", "value_base64": STANDARD.encode(&big)},
            ]}),
        )
        .await;
    r.expect_error(413, "value_too_large");
    let r = c
        .batch(
            "t",
            "k",
            &json!({"ops": [{"op": "set", "column": "b", "value_base64": STANDARD.encode(&edge)}]}),
        )
        .await;
    r.expect(200);

    // A batch body over max_batch_bytes.
    let ops: Vec<Value> = (0..40)
        .map(|i| json!({"op": "set", "column": format!("c{i}"), "value": "x".repeat(200)}))
        .collect();
    let body = json!({ "ops": ops });
    assert!(serde_json::to_vec(&body).expect("json").len() > 4096);
    let r = c.batch("t", "canary", &body).await;
    let err = r.expect_error(413, "body_too_large");
    assert_eq!(err["max"], json!(4096), "{}", r.describe());
    c.get("t", "canary", "c0", &Opts::none())
        .await
        .expect_error(404, "not_found");

    assert_untouched(&c, "values over the limits").await;
}

#[tokio::test]
async fn default_value_limit_is_16_mib() {
    // A 16 MiB value is committed under the request deadline; an unoptimised build on a busy
    // machine may need more than the default 2 s for it.
    let (node, c) = setup_with(NodeOptions::default().request_timeout_ms(30_000)).await;
    let max = 16 * 1024 * 1024;
    let mut v = vec![7u8; max];
    c.put_ok("t", "big", "exact", &v).await;
    let r = c.get("t", "big", "exact", &Opts::none()).await;
    r.expect(200);
    assert!(r.body == v, "16 MiB value changed");
    v.push(8);
    // Sent raw: the server may answer 413 as soon as it sees Content-Length
    // and close before the 16 MiB body is read, which makes reqwest report a
    // broken pipe instead of the response. The raw client still reads it.
    let r = raw::request(node.addr(), "PUT", "/v1/tables/t/rows/big/over", &[], &v).await;
    let err = r.expect_error(413, "value_too_large");
    assert_eq!(err["max"], json!(max), "{}", r.describe());
    // With `Expect: 100-continue` (what curl sends for large bodies) the 413
    // comes before any of the body is sent.
    let mut conn = raw::RawConn::connect(node.addr()).await;
    conn.write(&raw::head(
        node.addr(),
        "PUT",
        "/v1/tables/t/rows/big/over",
        &[("Expect", "100-continue")],
        Some(v.len()),
    ))
    .await;
    let r = conn.read_response().await;
    r.expect_error(413, "value_too_large");
    c.get("t", "big", "over", &Opts::none())
        .await
        .expect_error(404, "not_found");
    assert_untouched(&c, "16 MiB values").await;
}

#[tokio::test]
async fn malformed_json_and_wrong_types() {
    let (_node, c) = setup().await;
    let mut ck = Checks::new();

    for raw in [
        &b""[..],
        b"{",
        b"{\"ops\": [",
        b"[]",
        b"null",
        b"\"ops\"",
        b"{\"ops\": [{\"op\": \"set\", \"column\": \"col\", \"value\": \"x\"}],}",
        b"\xff\xfe\x00",
        b"{\"ops\": 5}",
        b"{\"ops\": [5]}",
        b"{\"ops\": [{\"op\": 1, \"column\": \"col\", \"value\": \"x\"}]}",
        b"{\"ops\": [{\"op\": \"set\", \"column\": [\"col\"], \"value\": \"x\"}]}",
        b"{\"ops\": [{\"op\": \"set\", \"column\": \"col\", \"value\": {\"a\": 1}}]}",
        b"{\"ops\": [{\"op\": \"set\", \"column\": \"col\", \"value_base64\": 12}]}",
        b"{\"ops\": [{\"op\": \"delete\", \"column\": \"col\", \"context\": 12}]}",
    ] {
        let r = c.batch_raw("t", "canary", raw.to_vec()).await;
        ck.error(
            &format!("batch body {:?}", String::from_utf8_lossy(raw)),
            &r,
            400,
            "invalid_json",
        );
    }
    for raw in [
        &b"{"[..],
        b"[]",
        b"{\"replication\": \"1\"}",
        b"{\"read\": 1.5}",
        b"\xff",
    ] {
        let r = c.create_table_raw("t", Some(raw.to_vec())).await;
        ck.error(
            &format!("table body {:?}", String::from_utf8_lossy(raw)),
            &r,
            400,
            "invalid_json",
        );
        let r = c.create_table_raw("newtable", Some(raw.to_vec())).await;
        ck.error(
            &format!("table body {:?}", String::from_utf8_lossy(raw)),
            &r,
            400,
            "invalid_json",
        );
    }
    assert_untouched(&c, "malformed JSON").await;
    ck.finish();
}

#[tokio::test]
async fn unknown_consistency_levels() {
    let (_node, c) = setup().await;
    let mut ck = Checks::new();
    for level in [
        "eventual",
        "0",
        "4",
        "-1",
        "1.5",
        "four",
        "ONE!",
        "17",
        "99999999999999999999",
    ] {
        for (how, opts) in [
            ("query", Opts::level(level)),
            ("header", Opts::none().with_header_level(level)),
        ] {
            let what = format!("level {level:?} by {how}");
            let checks = [
                ("PUT", c.put("r3", "canary", "col", "changed", &opts).await),
                ("GET", c.get("r3", "canary", "col", &opts).await),
                ("DELETE", c.delete("r3", "canary", "col", &opts).await),
                ("GET row", c.get_row_with("r3", "canary", &opts).await),
                ("DELETE row", c.delete_row("r3", "canary", &opts).await),
                (
                    "POST row",
                    c.batch_with(
                        "r3",
                        "canary",
                        &json!({"ops": [{"op": "set", "column": "col", "value": "changed"}]}),
                        &opts,
                    )
                    .await,
                ),
                (
                    "PUT N=1",
                    c.put("t", "canary", "col", "changed", &opts).await,
                ),
            ];
            for (route, r) in checks {
                let what = format!("{what} on {route}");
                let err = ck.error(&what, &r, 400, "invalid_consistency");
                if level == "4" && route != "PUT N=1" {
                    ck.detail(&what, &err, &r, "replication", json!(3));
                }
            }
        }
    }
    assert_untouched(&c, "unknown consistency levels").await;
    ck.finish();
}

/// The context with its first decoded byte (the format version) set to 99,
/// re-encoded in whichever base64 alphabet the server used.
fn with_version_99(ctx: &str) -> String {
    for engine in [&STANDARD, &URL_SAFE_NO_PAD, &URL_SAFE, &STANDARD_NO_PAD] {
        if let Ok(mut bytes) = engine.decode(ctx) {
            assert!(!bytes.is_empty(), "empty context");
            bytes[0] = 99;
            return engine.encode(bytes);
        }
    }
    panic!(
        "the context {ctx:?} is not base64 in any common alphabet; cannot forge a version-99 token"
    );
}

#[tokio::test]
async fn garbled_contexts() {
    let (_node, c) = setup().await;
    let mut ck = Checks::new();
    let real = c.get("t", "canary", "col", &Opts::none()).await.ctx();
    let v99 = with_version_99(&real);
    let garbage = STANDARD.encode(b"this is not a causal context at all");
    let truncated = {
        let engine_ok = STANDARD
            .decode(&real)
            .map(|b| STANDARD.encode(&b[..b.len() / 2]));
        engine_ok.unwrap_or_else(|_| real[..real.len() / 2].to_string())
    };
    for (what, ctx) in [
        ("!!!", "!!!".to_string()),
        ("base64 garbage", garbage),
        ("version byte 99", v99),
        ("empty", String::new()),
        ("truncated", truncated),
        ("one byte", STANDARD.encode([1u8])),
    ] {
        let opts = Opts::ctx(ctx.clone());
        let r = c.put("t", "canary", "col", "changed", &opts).await;
        ck.error(
            &format!("PUT with context {what}"),
            &r,
            400,
            "invalid_context",
        );
        let r = c.delete("t", "canary", "col", &opts).await;
        ck.error(
            &format!("DELETE with context {what}"),
            &r,
            400,
            "invalid_context",
        );
        let r = c.put("t", "canary", "fresh", "changed", &opts).await;
        ck.error(
            &format!("PUT new cell with context {what}"),
            &r,
            400,
            "invalid_context",
        );
        if !ctx.is_empty() {
            let r = c
                .batch(
                    "t",
                    "canary",
                    &json!({"ops": [
                        {"op": "set", "column": "fresh", "value": "changed"},
                        {"op": "set", "column": "col", "value": "changed", "context": ctx},
                    ]}),
                )
                .await;
            ck.error(
                &format!("batch with context {what}"),
                &r,
                400,
                "invalid_context",
            );
        }
    }
    c.get("t", "canary", "fresh", &Opts::none())
        .await
        .expect_error(404, "not_found");
    assert_untouched(&c, "garbled contexts").await;
    ck.finish();
}

#[tokio::test]
async fn bad_row_parameters() {
    let (_node, c) = setup().await;
    let mut ck = Checks::new();
    for (param, value) in [
        ("limit", "0"),
        ("limit", "10001"),
        ("limit", "abc"),
        ("limit", "-1"),
        ("limit", "1.5"),
        ("limit", "99999999999999999999999"),
        ("cursor", "!!!"),
        ("cursor", "@@@@"),
        ("encoding", "hex"),
        ("encoding", "latin1"),
    ] {
        for key in ["canary", "no-such-row"] {
            let r = c.get_row("t", key, &[(param, value)]).await;
            let what = format!("GET row {key:?} with {param}={value}");
            let err = ck.error(&what, &r, 400, "invalid_parameter");
            ck.detail(&what, &err, &r, "parameter", json!(param));
        }
    }
    assert_untouched(&c, "bad row parameters").await;
    ck.finish();
}

#[tokio::test]
async fn invalid_percent_encoding() {
    let (node, c) = setup().await;
    let mut ck = Checks::new();
    for (target, code) in [
        ("/v1/tables/t/rows/%FF/c", "invalid_key"),
        ("/v1/tables/t/rows/%C3%28/c", "invalid_key"),
        ("/v1/tables/t/rows/k/%FF", "invalid_column"),
        ("/v1/tables/t/rows/k/%ED%A0%80", "invalid_column"),
        ("/v1/tables/%FF/rows/k/c", "invalid_table_name"),
    ] {
        for method in ["PUT", "GET"] {
            let r = raw_req(&node, method, target, b"v").await;
            ck.error(&format!("{method} {target}"), &r, 400, code);
        }
    }
    // Broken escapes: any 400 JSON error will do (the contract names no code).
    for target in [
        "/v1/tables/t/rows/%zz/c",
        "/v1/tables/t/rows/%/c",
        "/v1/tables/t/rows/k/%4",
        "/v1/tables/t/rows/k%G1/c",
    ] {
        for method in ["PUT", "GET"] {
            let r = raw_req(&node, method, target, b"v").await;
            ck.error_in(&format!("{method} {target}"), &r, 400, &[]);
        }
    }
    for target in [
        "/v1/tables/t/rows/canary?limit=%zz",
        "/v1/tables/t/rows/canary?encoding=%FF",
        "/v1/tables/t/rows/canary?from=%FF",
        "/v1/tables/t/rows/canary/col?consistency=%FF",
    ] {
        let r = raw_req(&node, "GET", target, b"").await;
        ck.error_in(&format!("GET {target}"), &r, 400, &[]);
    }
    assert_untouched(&c, "invalid percent-encoding").await;
    ck.finish();
}

/// A client that announces a body and then stops sending gets `408` once the body timeout
/// passes, and the node is not hurt: nothing is written, and it goes on serving.
#[tokio::test]
async fn a_body_that_never_arrives_times_out() {
    let (node, c) = setup_with(NodeOptions::default().arg("--body-timeout-ms").arg("500")).await;
    let addr = node.addr();
    for (method, target) in [
        ("PUT", "/v1/tables/t/rows/slow/c".to_owned()),
        ("POST", "/v1/tables/t/rows/slow".to_owned()),
    ] {
        let mut conn = raw::RawConn::connect(addr).await;
        conn.write(&raw::head(addr, method, &target, &[], Some(1000)))
            .await;
        conn.write(b"only the first bytes").await;
        let r = conn.read_response().await;
        let body = r.expect_error(408, "body_timeout");
        assert_eq!(body["timeout_ms"], 500, "{body}");
    }
    assert_untouched(&c, "after stalled bodies").await;
    c.get("t", "slow", "c", &Opts::none()).await.expect(404);
}
