//! Serde shapes of the storage types that travel in messages.
//!
//! `tessera-storage` keeps its types free of serde; these remote definitions
//! give the protocol its own, explicit field list, so a field added in
//! storage fails to compile here instead of silently changing the wire format.

use serde::{Deserialize, Serialize};
use tessera_storage::{Cell, RowKey, RowPage, RowSlice, TableId};

/// Wire shape of [`RowKey`].
#[derive(Serialize, Deserialize)]
#[serde(remote = "RowKey")]
pub(crate) struct RowKeyDef {
    table: TableId,
    partition: u16,
    token: u64,
    key: Vec<u8>,
}

/// Wire shape of [`RowSlice`].
#[derive(Serialize, Deserialize)]
#[serde(remote = "RowSlice")]
pub(crate) struct RowSliceDef {
    from: Option<Vec<u8>>,
    after: Option<Vec<u8>>,
    to: Option<Vec<u8>>,
    limit: usize,
    include_tombstones: bool,
}

/// Wire shape of [`RowPage`].
#[derive(Serialize, Deserialize)]
#[serde(remote = "RowPage")]
pub(crate) struct RowPageDef {
    cells: Vec<(Vec<u8>, Cell)>,
    more: bool,
}
