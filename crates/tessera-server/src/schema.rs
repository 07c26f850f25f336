//! Table schemas: names, replication factors and default consistency levels, persisted in `meta`.
//!
//! A table's id is derived from its name (murmur3, 32 bits) rather than from a counter, so that nodes
//! which create tables independently agree on ids without coordination. A collision between two
//! names is detected and refused at creation.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use tessera_storage::{
    decode_versioned, encode_versioned, CellStore, Engine, StorageError, TableId,
};

use crate::consistency::ConsistencyLevel;

/// Table names match `[A-Za-z0-9_]{1,48}`.
pub const MAX_TABLE_NAME_LEN: usize = 48;
/// Largest replication factor a table may ask for.
pub const MAX_REPLICATION: u32 = 16;
const META_PREFIX: &str = "table/";

/// A table as stored and as shown by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSchema {
    pub id: TableId,
    pub name: String,
    pub replication: u32,
    pub read: ConsistencyLevel,
    pub write: ConsistencyLevel,
    pub created_at_ms: u64,
}

/// The settings a client may choose when creating a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSettings {
    pub replication: u32,
    pub read: ConsistencyLevel,
    pub write: ConsistencyLevel,
}

impl Default for TableSettings {
    fn default() -> Self {
        Self {
            replication: 3,
            read: ConsistencyLevel::Quorum,
            write: ConsistencyLevel::Quorum,
        }
    }
}

impl TableSchema {
    pub fn settings(&self) -> TableSettings {
        TableSettings {
            replication: self.replication,
            read: self.read,
            write: self.write,
        }
    }
}

/// What creating a table did.
#[derive(Debug, Clone)]
pub enum Created {
    New(Arc<TableSchema>),
    AlreadyExists(Arc<TableSchema>),
}

/// Why a table could not be created or loaded.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("table name {name:?} is invalid: use 1 to {MAX_TABLE_NAME_LEN} characters from [A-Za-z0-9_]")]
    InvalidName { name: String },
    #[error("invalid table settings: {reason}")]
    InvalidSettings { reason: String },
    #[error("table {} already exists with different settings", existing.name)]
    Conflict { existing: Arc<TableSchema> },
    #[error("table name {name:?} hashes to id {id}, which table {other:?} already uses; pick another name")]
    IdCollision {
        name: String,
        id: TableId,
        other: String,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub fn validate_table_name(name: &str) -> Result<(), SchemaError> {
    let valid = (1..=MAX_TABLE_NAME_LEN).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(SchemaError::InvalidName {
            name: name.to_string(),
        })
    }
}

pub fn validate_settings(settings: &TableSettings) -> Result<(), SchemaError> {
    if !(1..=MAX_REPLICATION).contains(&settings.replication) {
        return Err(SchemaError::InvalidSettings {
            reason: format!(
                "replication must be between 1 and {MAX_REPLICATION}, got {}",
                settings.replication
            ),
        });
    }
    for (which, level) in [("read", settings.read), ("write", settings.write)] {
        level
            .required(settings.replication)
            .map_err(|e| SchemaError::InvalidSettings {
                reason: format!("{which}: {e}"),
            })?;
    }
    Ok(())
}

/// The id of a table, derived from its name.
pub fn table_id(name: &str) -> TableId {
    murmur3::murmur3_32(&mut std::io::Cursor::new(name.as_bytes()), 0).unwrap_or(0)
}

/// The tables this node knows, cached in memory over their records in `meta`.
pub struct Schema {
    tables: RwLock<BTreeMap<String, Arc<TableSchema>>>,
    // Serialises create so that check-then-write is atomic.
    create_lock: Mutex<()>,
}

impl Schema {
    /// Loads every table record from the store.
    pub fn load<E: Engine>(store: &CellStore<E>) -> Result<Self, SchemaError> {
        let mut tables = BTreeMap::new();
        for (key, bytes) in store.scan_meta(META_PREFIX)? {
            let schema: TableSchema = decode_versioned("table schema", key.as_bytes(), &bytes)?;
            tables.insert(schema.name.clone(), Arc::new(schema));
        }
        Ok(Self {
            tables: RwLock::new(tables),
            create_lock: Mutex::new(()),
        })
    }

    pub fn get(&self, name: &str) -> Option<Arc<TableSchema>> {
        self.read_tables().get(name).cloned()
    }

    /// Every table, sorted by name.
    pub fn list(&self) -> Vec<Arc<TableSchema>> {
        self.read_tables().values().cloned().collect()
    }

    /// Creates `name` with `settings`, or reports that it exists the same (idempotent) or differently.
    pub fn create<E: Engine>(
        &self,
        store: &CellStore<E>,
        name: &str,
        settings: TableSettings,
        now_ms: u64,
    ) -> Result<Created, SchemaError> {
        validate_table_name(name)?;
        validate_settings(&settings)?;
        let _guard = self.create_lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = self.get(name) {
            return if existing.settings() == settings {
                Ok(Created::AlreadyExists(existing))
            } else {
                Err(SchemaError::Conflict { existing })
            };
        }
        let id = table_id(name);
        if let Some(other) = self.read_tables().values().find(|t| t.id == id) {
            return Err(SchemaError::IdCollision {
                name: name.to_string(),
                id,
                other: other.name.clone(),
            });
        }
        let schema = Arc::new(TableSchema {
            id,
            name: name.to_string(),
            replication: settings.replication,
            read: settings.read,
            write: settings.write,
            created_at_ms: now_ms,
        });
        let key = format!("{META_PREFIX}{name}");
        store.put_meta(&key, &encode_versioned("table schema", schema.as_ref())?)?;
        self.tables
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), schema.clone());
        tracing::info!(
            table = name,
            id,
            replication = settings.replication,
            "table created"
        );
        Ok(Created::New(schema))
    }

    /// Takes a table another node created. A table this node already has is kept as it is; the
    /// cluster's schema stays the first definition each node saw until schema changes are gossiped
    /// with versions (see docs/architecture.md).
    pub fn apply<E: Engine>(
        &self,
        store: &CellStore<E>,
        remote: &TableSchema,
    ) -> Result<bool, SchemaError> {
        validate_table_name(&remote.name)?;
        validate_settings(&remote.settings())?;
        if remote.id != table_id(&remote.name) {
            return Err(SchemaError::InvalidSettings {
                reason: format!(
                    "table {} arrived with id {}, not its name's id",
                    remote.name, remote.id
                ),
            });
        }
        let _guard = self.create_lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = self.get(&remote.name) {
            if existing.settings() != remote.settings() {
                tracing::warn!(
                    table = %remote.name,
                    "a peer has this table with other settings; keeping this node's"
                );
            }
            return Ok(false);
        }
        let key = format!("{META_PREFIX}{}", remote.name);
        store.put_meta(&key, &encode_versioned("table schema", remote)?)?;
        self.tables
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(remote.name.clone(), Arc::new(remote.clone()));
        tracing::info!(table = %remote.name, id = remote.id, "table learned from a peer");
        Ok(true)
    }

    fn read_tables(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<TableSchema>>> {
        self.tables.read().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_storage::{MemoryEngine, StoreOptions};

    fn store() -> CellStore<MemoryEngine> {
        CellStore::new(
            MemoryEngine::new(),
            StoreOptions {
                actor: 1,
                max_siblings: 100,
            },
        )
    }

    #[test]
    fn names_are_checked() {
        for good in ["a", "users_2024", &"x".repeat(48)] {
            assert!(validate_table_name(good).is_ok(), "{good}");
        }
        for bad in ["", "a-b", "..", "a/b", "é", &"x".repeat(49), "a\0"] {
            assert!(validate_table_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn create_is_idempotent_and_detects_conflicts() {
        let store = store();
        let schema = Schema::load(&store).unwrap();
        let settings = TableSettings::default();
        assert!(matches!(
            schema.create(&store, "t", settings, 1).unwrap(),
            Created::New(_)
        ));
        assert!(matches!(
            schema.create(&store, "t", settings, 2).unwrap(),
            Created::AlreadyExists(_)
        ));
        let other = TableSettings {
            replication: 1,
            ..settings
        };
        assert!(matches!(
            schema.create(&store, "t", other, 3),
            Err(SchemaError::Conflict { .. })
        ));
        // The record survives a reload.
        let reloaded = Schema::load(&store).unwrap();
        assert_eq!(reloaded.get("t").unwrap().created_at_ms, 1);
    }

    #[test]
    fn settings_are_checked() {
        let bad = [
            TableSettings {
                replication: 0,
                ..Default::default()
            },
            TableSettings {
                replication: 17,
                ..Default::default()
            },
            TableSettings {
                replication: 1,
                read: ConsistencyLevel::Two,
                write: ConsistencyLevel::One,
            },
            TableSettings {
                replication: 2,
                read: ConsistencyLevel::One,
                write: ConsistencyLevel::Exactly(3),
            },
        ];
        for settings in bad {
            assert!(validate_settings(&settings).is_err(), "{settings:?}");
        }
    }
}
