//! The metadata a node publishes by gossip, and what it does with its peers'.
//!
//! Each node publishes, as key/value pairs that scuttlebutt gossip versions and spreads:
//!
//! | key | value |
//! |---|---|
//! | `http` | its HTTP address, `ip:port` |
//! | `created` | when its data dir was created, ms since the epoch (for operators) |
//! | `status` | `joining` until it is in its own ring, then `normal`; `left` once a change took it out |
//! | `ring_epoch` | the epoch of the layout it holds: a node that sees a later one fetches it |
//! | `progress` | how far it got in the move under way (`tessera_layout::NodeProgress`) |
//! | `schema_version` | how many tables it knows (tables are never dropped, so this only grows) |
//! | `load` | `keys,bytes` of its `data` column family (RocksDB's estimates) |
//! | `table:<name>` | a table it knows, as the JSON of `GET /v1/tables/<name>` |
//!
//! Values are only set when they change, since every set is a new version to spread.

use std::collections::BTreeMap;

use crate::schema::TableSchema;

/// Key prefix of table schemas.
pub const TABLE_PREFIX: &str = "table:";
/// Key of the layout epoch a node holds.
pub const LAYOUT_EPOCH: &str = "ring_epoch";
/// Key of a node's move progress.
pub const PROGRESS: &str = "progress";

/// What a node publishes, keyed as in the table above.
pub type Published = BTreeMap<String, String>;

/// This node's facts, gathered by the runtime.
pub struct Facts<'a> {
    pub http: String,
    pub created_at_ms: u64,
    pub in_ring: bool,
    /// Was in a committed ring once, and is in none now (decommissioned or removed).
    pub left_ring: bool,
    pub ring_epoch: u64,
    pub progress: String,
    pub tables: &'a [std::sync::Arc<TableSchema>],
    pub load: Option<(u64, u64)>,
}

/// The key/value pairs for `facts`.
pub fn publish(facts: &Facts<'_>) -> Published {
    let mut out = Published::new();
    out.insert("http".into(), facts.http.clone());
    out.insert("created".into(), facts.created_at_ms.to_string());
    let status = match (facts.in_ring, facts.left_ring) {
        (true, _) => "normal",
        (false, true) => "left",
        (false, false) => "joining",
    };
    out.insert("status".into(), status.into());
    out.insert(LAYOUT_EPOCH.into(), facts.ring_epoch.to_string());
    out.insert(PROGRESS.into(), facts.progress.clone());
    out.insert("schema_version".into(), facts.tables.len().to_string());
    if let Some((keys, bytes)) = facts.load {
        out.insert("load".into(), format!("{keys},{bytes}"));
    }
    for table in facts.tables {
        if let Ok(json) = serde_json::to_string(table.as_ref()) {
            out.insert(format!("{TABLE_PREFIX}{}", table.name), json);
        }
    }
    out
}

/// A table a peer published, if the value parses.
pub fn table(value: &str) -> Result<TableSchema, serde_json::Error> {
    serde_json::from_str(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consistency::ConsistencyLevel;
    use std::sync::Arc;

    #[test]
    fn what_a_node_publishes_reads_back() {
        let schema = TableSchema {
            id: 7,
            name: "t".into(),
            replication: 3,
            read: ConsistencyLevel::Quorum,
            write: ConsistencyLevel::One,
            created_at_ms: 5,
        };
        let tables = vec![Arc::new(schema.clone())];
        let published = publish(&Facts {
            progress: "3.2.3.0000000000000001".into(),
            http: "127.0.0.11:7000".into(),
            created_at_ms: 42,
            in_ring: false,
            left_ring: false,
            ring_epoch: 3,
            tables: &tables,
            load: Some((10, 2048)),
        });
        assert_eq!(published["status"], "joining");
        for (in_ring, left_ring, status) in [(true, false, "normal"), (false, true, "left")] {
            let facts = Facts {
                http: String::new(),
                created_at_ms: 0,
                in_ring,
                left_ring,
                ring_epoch: 3,
                progress: String::new(),
                tables: &[],
                load: None,
            };
            assert_eq!(publish(&facts)["status"], status);
        }
        assert_eq!(published["load"], "10,2048");
        assert_eq!(published["created"], "42");
        assert_eq!(published[LAYOUT_EPOCH], "3");
        assert_eq!(
            tessera_layout::NodeProgress::from_metadata(&published[PROGRESS]).map(|p| (
                p.acked,
                p.reading,
                p.synced_epoch,
                p.synced.len()
            )),
            Some((3, 2, 3, 1))
        );
        assert_eq!(table(&published["table:t"]).unwrap(), schema);
        assert!(table("{").is_err());
    }
}
