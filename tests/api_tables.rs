//! Table routes: create (201 / idempotent 200 / 409), defaults, list, show,
//! 404 for unknown tables on every route, bad settings, and that the schema
//! survives a restart.

use serde_json::{json, Value};
use tessera_tests::{Opts, TestNode};

/// Asserts the documented table shape and returns it.
#[track_caller]
fn assert_table(v: &Value, name: &str, replication: u64, read: &str, write: &str) {
    assert_eq!(v["name"], json!(name), "table name in {v}");
    assert_eq!(v["replication"], json!(replication), "replication in {v}");
    assert_eq!(v["read"], json!(read), "read level in {v}");
    assert_eq!(v["write"], json!(write), "write level in {v}");
    assert!(
        v["created_at_ms"]
            .as_u64()
            .is_some_and(|t| t > 1_600_000_000_000),
        "created_at_ms should be a Unix time in ms: {v}"
    );
}

#[tokio::test]
async fn create_is_idempotent_and_conflicts_are_409() {
    let node = TestNode::start_default();
    let c = node.client();

    let r = c.create_table("users", json!({"replication": 1})).await;
    r.expect(201);
    assert_table(&r.json(), "users", 1, "quorum", "quorum");
    let created_at = r.json()["created_at_ms"].clone();

    // The same settings again: 200, and it is the same table.
    let r = c.create_table("users", json!({"replication": 1})).await;
    r.expect(200);
    assert_table(&r.json(), "users", 1, "quorum", "quorum");
    assert_eq!(
        r.json()["created_at_ms"],
        created_at,
        "re-create must not recreate"
    );
    let r = c
        .create_table(
            "users",
            json!({"replication": 1, "read": "quorum", "write": "quorum"}),
        )
        .await;
    r.expect(200);

    // Different settings: 409 with the existing table in the details.
    for other in [
        json!({"replication": 2}),
        json!({"replication": 1, "read": "one"}),
        json!({"replication": 1, "write": "all"}),
    ] {
        let r = c.create_table("users", other.clone()).await;
        let err = r.expect_error(409, "table_exists");
        assert!(
            err.get("existing").is_some(),
            "409 table_exists for {other} should carry `existing`: {}",
            r.describe()
        );
    }
    // The conflicting attempts changed nothing.
    let r = c.show_table("users").await;
    r.expect(200);
    assert_table(&r.json(), "users", 1, "quorum", "quorum");
    assert_eq!(r.json()["created_at_ms"], created_at);
}

#[tokio::test]
async fn defaults_are_replication_3_quorum_quorum() {
    let node = TestNode::start_default();
    let c = node.client();

    // No body at all.
    let r = c.create_table_raw("nobody", None).await;
    r.expect(201);
    assert_table(&r.json(), "nobody", 3, "quorum", "quorum");
    // An empty object.
    let r = c.create_table("empty", json!({})).await;
    r.expect(201);
    assert_table(&r.json(), "empty", 3, "quorum", "quorum");
    // Only some fields: the others default.
    let r = c.create_table("partial", json!({"read": "one"})).await;
    r.expect(201);
    assert_table(&r.json(), "partial", 3, "one", "quorum");

    // Re-creating with the defaults spelled out (or left out) is the same table.
    for body in [
        json!({}),
        json!({"replication": 3}),
        json!({"replication": 3, "read": "quorum", "write": "quorum"}),
    ] {
        c.create_table("nobody", body).await.expect(200);
    }
    c.create_table_raw("empty", None).await.expect(200);
}

#[tokio::test]
async fn list_is_sorted_and_show_returns_the_table() {
    let node = TestNode::start_default();
    let c = node.client();

    let r = c.list_tables().await;
    r.expect(200);
    assert_eq!(r.json()["tables"], json!([]), "a new node has no tables");

    let names = ["zeta", "Alpha", "beta", "_x", "alpha9", "B2"];
    for (i, n) in names.iter().enumerate() {
        c.create_table(n, json!({"replication": 1 + (i as u64 % 3)}))
            .await
            .expect(201);
    }
    let r = c.list_tables().await;
    r.expect(200);
    let listed: Vec<Value> = r.json()["tables"].as_array().expect("tables list").clone();
    let listed_names: Vec<String> = listed
        .iter()
        .map(|t| t["name"].as_str().expect("name").to_string())
        .collect();
    let mut expected: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    expected.sort(); // byte order
    assert_eq!(
        listed_names, expected,
        "GET /v1/tables must be sorted by name"
    );

    for t in &listed {
        let name = t["name"].as_str().expect("name");
        let r = c.show_table(name).await;
        r.expect(200);
        assert_eq!(&r.json(), t, "show and list disagree on {name}");
    }
    let i = names.iter().position(|n| *n == "alpha9").expect("alpha9");
    let r = c.show_table("alpha9").await;
    assert_table(&r.json(), "alpha9", 1 + (i as u64 % 3), "quorum", "quorum");
}

#[tokio::test]
async fn unknown_table_is_404_with_how_to_create_it() {
    let node = TestNode::start_default();
    let c = node.client();
    c.create_table_n("exists", 1).await.expect(201);

    let r = c.show_table("nope").await;
    let err = r.expect_error(404, "table_not_found");
    assert_eq!(
        err["table"],
        json!("nope"),
        "details should name the table: {}",
        r.describe()
    );
    let msg = err["message"].as_str().unwrap_or("").to_string();
    assert!(
        msg.contains("PUT") && msg.contains("/v1/tables/nope"),
        "the message should say how to create the table (PUT /v1/tables/nope): {msg:?}"
    );

    // Every data route answers the same for a missing table.
    let checks = vec![
        (
            "PUT cell",
            c.put("nope", "k", "c", "v", &Opts::none()).await,
        ),
        ("GET cell", c.get("nope", "k", "c", &Opts::none()).await),
        (
            "DELETE cell",
            c.delete("nope", "k", "c", &Opts::none()).await,
        ),
        ("GET row", c.get_row("nope", "k", &[]).await),
        (
            "POST row",
            c.batch(
                "nope",
                "k",
                &json!({"ops": [{"op": "set", "column": "c", "value": "v"}]}),
            )
            .await,
        ),
        ("DELETE row", c.delete_row("nope", "k", &Opts::none()).await),
    ];
    for (what, r) in checks {
        let err = r.expect_error(404, "table_not_found");
        assert_eq!(err["table"], json!("nope"), "{what}: {}", r.describe());
    }
    // Nothing was created by those requests.
    let r = c.list_tables().await;
    let names: Vec<String> = r.json()["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| t["name"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(names, vec!["exists"]);
}

#[tokio::test]
async fn bad_settings_are_400_and_create_nothing() {
    let node = TestNode::start_default();
    let c = node.client();

    // Out-of-range replication, or a level above it.
    for body in [
        json!({"replication": 0}),
        json!({"replication": 17}),
        json!({"replication": 1000}),
        json!({"replication": 1, "read": "two"}),
        json!({"replication": 1, "write": "two"}),
        json!({"replication": 2, "write": "three"}),
        json!({"read": "three", "replication": 2}),
    ] {
        let r = c.create_table("bad", body.clone()).await;
        r.expect_error(400, "invalid_table_settings");
    }
    // Wrong JSON types.
    for body in [
        json!({"replication": "3"}),
        json!({"replication": 1.5}),
        json!({"replication": true}),
        json!({"replication": null, "read": 7.5}),
        json!({"read": true}),
        json!({"write": ["quorum"]}),
        json!([1, 2, 3]),
        json!("replication"),
    ] {
        let r = c.create_table("bad", body.clone()).await;
        r.expect_error(400, "invalid_json");
    }
    // Malformed JSON.
    for raw in [
        &b"{"[..],
        b"{\"replication\": ",
        b"not json",
        b"{\"replication\": 1,}",
        b"\xff\xfe",
    ] {
        let r = c.create_table_raw("bad", Some(raw.to_vec())).await;
        r.expect_error(400, "invalid_json");
    }
    // Ambiguous in the contract (a negative number is both a wrong type for an
    // unsigned field and out of range; an unknown level is a bad setting or a
    // bad level): any of the fitting codes will do.
    for body in [json!({"replication": -1}), json!({"read": "eventual"})] {
        let r = c.create_table("bad", body).await;
        r.expect_error_in(
            400,
            &[
                "invalid_json",
                "invalid_table_settings",
                "invalid_consistency",
            ],
        );
    }

    c.show_table("bad")
        .await
        .expect_error(404, "table_not_found");
    assert_eq!(c.list_tables().await.json()["tables"], json!([]));

    // The edges of the valid range work.
    let r = c
        .create_table(
            "sixteen",
            json!({"replication": 16, "read": "all", "write": "quorum"}),
        )
        .await;
    r.expect(201);
    let r = c
        .create_table(
            "one",
            json!({"replication": 1, "read": "all", "write": "one"}),
        )
        .await;
    r.expect(201);
}

#[tokio::test]
async fn schema_survives_restart() {
    let mut node = TestNode::start_default();
    let c = node.client();
    c.create_table("a", json!({"replication": 1}))
        .await
        .expect(201);
    c.create_table(
        "b",
        json!({"replication": 3, "read": "one", "write": "all"}),
    )
    .await
    .expect(201);
    c.put_ok("a", "k", "c", "v").await;
    let before = c.list_tables().await.json();

    node.restart();
    let c = node.client();
    let after = c.list_tables().await;
    after.expect(200);
    assert_eq!(after.json(), before, "tables changed across a restart");
    let r = c.show_table("b").await;
    assert_table(&r.json(), "b", 3, "one", "all");
    // Re-create with the same settings is still idempotent, different is 409.
    c.create_table("a", json!({"replication": 1}))
        .await
        .expect(200);
    c.create_table("a", json!({"replication": 2}))
        .await
        .expect_error(409, "table_exists");
    // And the table is usable.
    let r = c.get("a", "k", "c", &Opts::none()).await;
    r.expect(200);
    assert_eq!(r.body, b"v");

    // A graceful stop keeps it too.
    let status = node.terminate();
    assert!(status.success(), "SIGTERM should exit 0, got {status}");
    node.restart();
    assert_eq!(node.client().list_tables().await.json(), before);
}
