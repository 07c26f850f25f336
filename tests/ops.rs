//! Operations routes: `/health` and the Prometheus `/metrics`.

use std::collections::BTreeMap;

use tessera_tests::{eventually, NodeOptions, Opts, TestNode};

/// One sample line: metric name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A minimal parser of the Prometheus text format, enough for our metrics
/// (label values without escaped quotes or commas).
fn samples(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = match line.rsplit_once(' ') {
            Some(v) => v,
            None => continue,
        };
        let value: f64 = value.parse().unwrap_or(f64::NAN);
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => {
                let body = rest.trim_end_matches('}');
                let labels = body
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .filter_map(|p| p.split_once('='))
                    .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
                    .collect();
                (n.to_string(), labels)
            }
            None => (series.to_string(), BTreeMap::new()),
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

fn has_type(text: &str, name: &str, kind: &str) -> bool {
    text.lines()
        .any(|l| l.trim() == format!("# TYPE {name} {kind}"))
}

#[tokio::test]
async fn health_is_ok_json_with_the_node_id() {
    let node = TestNode::start(NodeOptions::default().node_id("node-7"));
    let r = node.client().health().await;
    r.expect(200);
    assert_eq!(
        r.json(),
        serde_json::json!({"status": "ok", "node": "node-7"})
    );

    let node = TestNode::start_default();
    let r = node.client().health().await;
    r.expect(200);
    assert_eq!(r.json()["status"], "ok");
    assert_eq!(r.json()["node"], "n1");
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let node = TestNode::start_default();
    let c = node.client();
    c.create_table_n("m", 1).await.expect(201);
    for i in 0..5 {
        c.put_ok("m", "uniquekey123", &format!("c{i}"), "v").await;
    }
    c.get("m", "uniquekey123", "c0", &Opts::none())
        .await
        .expect(200);
    c.get("m", "uniquekey123", "missing", &Opts::none())
        .await
        .expect(404);
    // Siblings, so the histogram sees a value above 1.
    let stale = c.get("m", "uniquekey123", "c1", &Opts::none()).await.ctx();
    c.put_ok("m", "uniquekey123", "c1", "x").await;
    c.put("m", "uniquekey123", "c1", "y", &Opts::ctx(stale))
        .await
        .expect(204);

    let r = c.metrics().await;
    r.expect(200);
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "Prometheus text is text/plain: {}",
        r.describe()
    );
    let text = r.text();
    let all = samples(&text);

    // The group commit counts every row write it applied (7 PUTs here) and its batches.
    let total =
        |name: &str| -> f64 { all.iter().filter(|s| s.name == name).map(|s| s.value).sum() };
    let committed = total("tessera_storage_commit_writes_total");
    let batches = total("tessera_storage_commit_batches_total");
    assert!(committed >= 7.0, "{text}");
    assert!(batches >= 1.0 && batches <= committed, "{text}");
    // The cell cache: the first write of each cell missed it, later reads of those cells hit it.
    assert!(total("tessera_cell_cache_misses_total") >= 5.0, "{text}");
    assert!(total("tessera_cell_cache_hits_total") >= 1.0, "{text}");
    assert!(total("tessera_cell_cache_entries") >= 5.0, "{text}");
    assert!(total("tessera_cell_cache_bytes") > 0.0, "{text}");

    // Requests by method, route and status.
    assert!(
        has_type(&text, "tessera_http_requests_total", "counter"),
        "{text}"
    );
    let reqs: Vec<&Sample> = all
        .iter()
        .filter(|s| s.name == "tessera_http_requests_total")
        .collect();
    for s in &reqs {
        for l in ["method", "route", "status"] {
            assert!(s.labels.contains_key(l), "label {l} missing on {s:?}");
        }
        assert!(
            !s.labels["route"].contains("uniquekey123"),
            "the route label must be the route template, not the path: {s:?}"
        );
    }
    let count = |method: &str, status: &str| -> f64 {
        reqs.iter()
            .filter(|s| s.labels["method"] == method && s.labels["status"] == status)
            .map(|s| s.value)
            .sum()
    };
    assert!(count("PUT", "204") >= 6.0, "PUT 204 counted: {reqs:?}");
    assert!(count("PUT", "201") >= 1.0, "PUT 201 counted: {reqs:?}");
    assert!(count("GET", "200") >= 1.0, "GET 200 counted: {reqs:?}");
    assert!(count("GET", "404") >= 1.0, "GET 404 counted: {reqs:?}");

    // Latency histogram by method and route.
    assert!(
        has_type(&text, "tessera_http_request_duration_seconds", "histogram"),
        "{text}"
    );
    let buckets: Vec<&Sample> = all
        .iter()
        .filter(|s| s.name == "tessera_http_request_duration_seconds_bucket")
        .collect();
    assert!(!buckets.is_empty(), "no latency buckets: {text}");
    assert!(buckets.iter().all(|s| s.labels.contains_key("method")
        && s.labels.contains_key("route")
        && s.labels.contains_key("le")));
    let lat_count: f64 = all
        .iter()
        .filter(|s| s.name == "tessera_http_request_duration_seconds_count")
        .map(|s| s.value)
        .sum();
    assert!(lat_count >= 9.0, "latency observations: {lat_count}");

    // Siblings per cell after each write.
    assert!(
        has_type(&text, "tessera_cell_siblings", "histogram"),
        "{text}"
    );
    let sib_count: f64 = all
        .iter()
        .filter(|s| s.name == "tessera_cell_siblings_count")
        .map(|s| s.value)
        .sum();
    assert!(
        sib_count >= 7.0,
        "every write observes tessera_cell_siblings: {sib_count}"
    );
    assert!(
        has_type(&text, "tessera_sibling_warnings_total", "counter"),
        "{text}"
    );

    // 25 siblings on one cell is a warning.
    let warnings = |text: &str| -> f64 {
        samples(text)
            .iter()
            .filter(|s| s.name == "tessera_sibling_warnings_total")
            .map(|s| s.value)
            .sum()
    };
    let before = warnings(&text);
    c.put_ok("m", "wide", "c", "v0").await;
    let ctx0 = c.get("m", "wide", "c", &Opts::none()).await.ctx();
    for i in 0..25 {
        c.put("m", "wide", "c", format!("s{i}"), &Opts::ctx(&ctx0))
            .await
            .expect(204);
    }
    let after = warnings(&c.metrics().await.text());
    assert!(
        after >= before + 1.0,
        "tessera_sibling_warnings_total {before} -> {after}"
    );

    // Storage gauges per column family (RocksDB estimates; may be refreshed
    // periodically, so wait for them).
    let text = eventually(
        "tessera_storage_bytes and tessera_storage_keys with a cf label",
        || {
            let c = c.clone();
            async move {
                let text = c.metrics().await.text();
                let s = samples(&text);
                let ok = |name: &str| {
                    s.iter()
                        .any(|x| x.name == name && x.labels.contains_key("cf"))
                };
                (ok("tessera_storage_bytes") && ok("tessera_storage_keys")).then_some(text)
            }
        },
    )
    .await;
    assert!(has_type(&text, "tessera_storage_bytes", "gauge"), "{text}");
    assert!(has_type(&text, "tessera_storage_keys", "gauge"), "{text}");
}

/// `storage.memtable_mb` reaches RocksDB: its own OPTIONS file, which it rewrites on open,
/// records the memtable size the node asked for (the block cache's size is not in that file).
#[tokio::test]
async fn storage_sizes_from_the_config_file_reach_rocksdb() {
    let config = tempfile::tempdir().unwrap();
    let path = config.path().join("node.toml");
    std::fs::write(&path, "[storage]\nmemtable_mb = 3\nblock_cache_mb = 5\n").unwrap();
    let node = TestNode::start(
        NodeOptions::default()
            .arg("--config")
            .arg(path.to_str().unwrap()),
    );
    node.client().health().await.expect(200);
    let rocksdb = node.data_dir().join("rocksdb");
    let options = std::fs::read_dir(&rocksdb)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("OPTIONS-"))
        .max_by_key(|entry| entry.file_name())
        .map(|entry| std::fs::read_to_string(entry.path()).unwrap())
        .expect("RocksDB writes an OPTIONS file");
    assert!(
        options.contains(&format!("write_buffer_size={}", 3 << 20)),
        "{options}"
    );
}
