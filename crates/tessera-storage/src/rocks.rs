//! The RocksDB [`Engine`]: the one that runs in production.
//!
//! One `DB` with one RocksDB column family per [`ColumnFamily`], all sharing a
//! block cache. The WAL is always on: a write returns only once its batch is in
//! the WAL, and with `sync_writes` only once the WAL is fsynced.
//!
//! The `DB` is behind an `Arc` so that a [`RocksSnapshot`] can own its share
//! of it: the database closes when the engine and every snapshot are gone.
//! Range reads are raw RocksDB iterators with an upper bound, so they stop at
//! the end of the range instead of reading past it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType,
    DBRawIteratorWithThreadMode, FlushOptions, Options, ReadOptions, ReadTier, WriteOptions, DB,
};

use crate::engine::{
    is_empty_range, BatchOp, CfStats, ColumnFamily, Engine, EngineRead, KvItem, KvIter, KvPairs,
    RangeEstimate, WriteBatch,
};
use crate::error::StorageError;

/// Tuning of the RocksDB engine. `Default` is sane for a small node.
#[derive(Clone, Debug, PartialEq)]
pub struct RocksOptions {
    /// Fsync the WAL before a write returns. Without it a write survives a
    /// process crash but not a power loss.
    pub sync_writes: bool,
    /// Size of the block cache shared by every column family.
    pub block_cache_bytes: usize,
    /// Size of one memtable, per column family.
    pub write_buffer_bytes: usize,
    /// Bits per key of the bloom filters (0 disables them).
    pub bloom_bits_per_key: f64,
    /// Threads for flushes and compactions.
    pub background_jobs: i32,
}

impl Default for RocksOptions {
    fn default() -> Self {
        Self {
            sync_writes: true,
            block_cache_bytes: 256 << 20,
            write_buffer_bytes: 64 << 20,
            bloom_bits_per_key: 10.0,
            background_jobs: 4,
        }
    }
}

/// The RocksDB engine. Dropping it syncs the WAL; the database closes once the engine and every
/// [`RocksSnapshot`] of it are gone.
pub struct RocksEngine {
    db: Arc<DB>,
    write_options: WriteOptions,
    path: PathBuf,
}

impl std::fmt::Debug for RocksEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksEngine")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn engine_error(op: &'static str) -> impl FnOnce(rocksdb::Error) -> StorageError {
    move |e| StorageError::Engine {
        op,
        message: e.into_string(),
    }
}

/// Options of one column family: lz4, bloom filters, the shared block cache.
fn cf_options(options: &RocksOptions, cache: &Cache) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    if options.bloom_bits_per_key > 0.0 {
        table.set_bloom_filter(options.bloom_bits_per_key, false);
    }
    // Filters and indexes live in the cache so memory stays bounded by it;
    // L0's are pinned because every read consults them.
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);

    let mut cf = Options::default();
    cf.set_block_based_table_factory(&table);
    cf.set_compression_type(DBCompressionType::Lz4);
    cf.set_bottommost_compression_type(DBCompressionType::Lz4);
    cf.set_write_buffer_size(options.write_buffer_bytes);
    cf.set_level_compaction_dynamic_level_bytes(true);
    // Every write reads its cell first (to merge versions), so most gets are of keys that may
    // not be in the memtables: a whole-key bloom filter per memtable lets those skip the
    // skiplist search, which the cluster profile showed as RocksDB's largest cost.
    cf.set_memtable_prefix_bloom_ratio(0.1);
    cf.set_memtable_whole_key_filtering(true);
    cf
}

impl RocksEngine {
    /// Opens (creating if needed) the database at `path`, creating missing column families.
    pub fn open(path: &Path, options: &RocksOptions) -> Result<Self, StorageError> {
        let cache = Cache::new_lru_cache(options.block_cache_bytes);

        let mut db_options = cf_options(options, &cache);
        db_options.create_if_missing(true);
        db_options.create_missing_column_families(true);
        db_options.set_max_background_jobs(options.background_jobs);
        db_options.set_keep_log_file_num(10);

        let mut descriptors: Vec<ColumnFamilyDescriptor> = ColumnFamily::ALL
            .iter()
            .map(|cf| {
                let mut cf_opts = cf_options(options, &cache);
                if *cf == ColumnFamily::Merkle {
                    cf_opts.set_merge_operator_associative("tessera-merkle-xor", xor_merge);
                }
                ColumnFamilyDescriptor::new(cf.name(), cf_opts)
            })
            .collect();
        // RocksDB refuses to open a database without naming every column family
        // it has, so families unknown to this version (a downgrade) are opened too.
        if let Ok(existing) = DB::list_cf(&db_options, path) {
            for name in existing {
                let known =
                    name == "default" || ColumnFamily::ALL.iter().any(|cf| cf.name() == name);
                if !known {
                    tracing::warn!(column_family = %name, "opening a column family this version does not use");
                    descriptors.push(ColumnFamilyDescriptor::new(
                        name,
                        cf_options(options, &cache),
                    ));
                }
            }
        }

        let db = DB::open_cf_descriptors(&db_options, path, descriptors)
            .map_err(engine_error("open"))?;

        let mut write_options = WriteOptions::default();
        // Concurrent writers are group-committed by RocksDB: one WAL write (and
        // one fsync) covers every batch queued behind the leader, so syncing each
        // batch costs far less than one fsync per write under load.
        write_options.set_sync(options.sync_writes);
        write_options.disable_wal(false);

        tracing::info!(path = %path.display(), sync_writes = options.sync_writes, "opened RocksDB");
        Ok(Self {
            db: Arc::new(db),
            write_options,
            path: path.to_path_buf(),
        })
    }

    /// The directory the database lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn handle(&self, cf: ColumnFamily) -> Result<&rocksdb::ColumnFamily, StorageError> {
        handle(&self.db, cf)
    }

    fn property(
        &self,
        cf: &rocksdb::ColumnFamily,
        name: &rocksdb::properties::PropName,
    ) -> Result<u64, StorageError> {
        Ok(self
            .db
            .property_int_value_cf(cf, name)
            .map_err(engine_error("stats"))?
            .unwrap_or(0))
    }
}

/// The merge operator of the `merkle` column family: the XOR of tree node values, full and
/// partial merges alike (XOR is associative). Operands were checked by the write
/// ([`WriteBatch::check_merges`]); an existing value that does not decode is dropped rather than
/// failing every later read of the node, since the periodic tree check rewrites a wrong node.
fn xor_merge(
    _key: &[u8],
    existing: Option<&[u8]>,
    operands: &rocksdb::MergeOperands,
) -> Option<Vec<u8>> {
    let merged = tessera_merkle::merge_node_values(existing, operands.iter())
        .or_else(|_| tessera_merkle::merge_node_values(None, operands.iter()));
    merged.ok().map(|value| value.to_vec())
}

/// The handle of `cf`. Every family in ALL is created at open, so this only fails on a bug.
fn handle(db: &DB, cf: ColumnFamily) -> Result<&rocksdb::ColumnFamily, StorageError> {
    db.cf_handle(cf.name()).ok_or_else(|| StorageError::Engine {
        op: "cf_handle",
        message: format!("column family {} is not open", cf.name()),
    })
}

/// Read options that read `snapshot`, or the latest data without one.
fn read_options(snapshot: Option<&Snapshot<'_>>) -> ReadOptions {
    let mut options = ReadOptions::default();
    if let Some(snapshot) = snapshot {
        options.set_snapshot(snapshot);
    }
    options
}

/// The RocksDB snapshot type, borrowing the database for `'a`.
type Snapshot<'a> = rocksdb::SnapshotWithThreadMode<'a, DB>;

fn get(
    db: &DB,
    snapshot: Option<&Snapshot<'_>>,
    cf: ColumnFamily,
    key: &[u8],
) -> Result<Option<Vec<u8>>, StorageError> {
    Ok(db
        .get_pinned_cf_opt(handle(db, cf)?, key, &read_options(snapshot))
        .map_err(engine_error("get"))?
        .map(|value| value.to_vec()))
}

/// `[start, end)` of `cf` one pair at a time, ascending; `None` for an empty range.
fn range<'a>(
    db: &'a DB,
    snapshot: Option<&Snapshot<'_>>,
    cf: ColumnFamily,
    start: &[u8],
    end: Option<&[u8]>,
) -> Result<Option<RangeIter<'a>>, StorageError> {
    if is_empty_range(start, end) {
        return Ok(None);
    }
    let handle = handle(db, cf)?;
    let mut options = read_options(snapshot);
    if let Some(end) = end {
        // The bound lets RocksDB stop at the end instead of reading past it.
        options.set_iterate_upper_bound(end);
    }
    // Without a snapshot, RocksDB reads as of the iterator's creation (an implicit snapshot).
    let mut raw = db.raw_iterator_cf_opt(handle, options);
    raw.seek(start);
    Ok(Some(RangeIter { raw, done: false }))
}

fn scan(
    db: &DB,
    snapshot: Option<&Snapshot<'_>>,
    cf: ColumnFamily,
    start: &[u8],
    end: Option<&[u8]>,
    limit: usize,
) -> Result<KvPairs, StorageError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let Some(range) = range(db, snapshot, cf, start, end)? else {
        return Ok(Vec::new());
    };
    // `limit` may be usize::MAX ("everything"): don't reserve by it.
    let mut out = Vec::with_capacity(limit.min(256));
    for pair in range.take(limit) {
        out.push(pair?);
    }
    Ok(out)
}

fn iter<'a>(
    db: &'a DB,
    snapshot: Option<&Snapshot<'_>>,
    cf: ColumnFamily,
    start: &[u8],
    end: Option<&[u8]>,
) -> KvIter<'a> {
    match range(db, snapshot, cf, start, end) {
        Ok(Some(range)) => Box::new(range),
        Ok(None) => Box::new(std::iter::empty()),
        Err(error) => Box::new(std::iter::once(Err(error))),
    }
}

/// A raw RocksDB iterator as an [`Iterator`] of pairs.
struct RangeIter<'a> {
    raw: DBRawIteratorWithThreadMode<'a, DB>,
    done: bool,
}

impl Iterator for RangeIter<'_> {
    type Item = KvItem;

    fn next(&mut self) -> Option<KvItem> {
        if self.done {
            return None;
        }
        if let Some((key, value)) = self.raw.item() {
            let pair = (key.to_vec(), value.to_vec());
            self.raw.next();
            return Some(Ok(pair));
        }
        self.done = true;
        // An iterator that stopped early because of an I/O error is not "the end".
        self.raw
            .status()
            .err()
            .map(|e| Err(engine_error("scan")(e)))
    }
}

impl EngineRead for RocksEngine {
    fn get(&self, cf: ColumnFamily, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        get(&self.db, None, cf, key)
    }

    fn scan(
        &self,
        cf: ColumnFamily,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<KvPairs, StorageError> {
        scan(&self.db, None, cf, start, end, limit)
    }

    fn iter(&self, cf: ColumnFamily, start: &[u8], end: Option<&[u8]>) -> KvIter<'_> {
        iter(&self.db, None, cf, start, end)
    }
}

impl Engine for RocksEngine {
    type Snapshot = RocksSnapshot;

    fn snapshot(&self) -> RocksSnapshot {
        RocksSnapshot {
            owned: OwnedSnapshot::new(&self.db),
        }
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        batch.check_merges()?;
        let mut raw = rocksdb::WriteBatch::default();
        for op in batch.into_ops() {
            match op {
                BatchOp::Put { cf, key, value } => raw.put_cf(self.handle(cf)?, key, value),
                BatchOp::Delete { cf, key } => raw.delete_cf(self.handle(cf)?, key),
                BatchOp::Merge { cf, key, value } => raw.merge_cf(self.handle(cf)?, key, value),
                BatchOp::DeleteRange { cf, start, end } => {
                    // RocksDB rejects inverted ranges; the engine contract makes them no-ops.
                    if start < end {
                        raw.delete_range_cf(self.handle(cf)?, start, end);
                    }
                }
            }
        }
        self.db
            .write_opt(raw, &self.write_options)
            .map_err(engine_error("write"))
    }

    fn stats(&self, cf: ColumnFamily) -> Result<CfStats, StorageError> {
        use rocksdb::properties::{
            ESTIMATE_LIVE_DATA_SIZE, ESTIMATE_NUM_KEYS, NUM_ENTRIES_ACTIVE_MEM_TABLE,
            NUM_ENTRIES_IMM_MEM_TABLES,
        };
        let handle = self.handle(cf)?;
        // SST estimates miss what is still in memtables, so add those. Not by the memtables'
        // size: that is their arena, megabytes for a few cells, which made a small node look
        // hundreds of times bigger than it is (and plans of ring changes with it). Their entry
        // count times the mean entry of a bounded sample instead.
        let entries = self.property(handle, NUM_ENTRIES_ACTIVE_MEM_TABLE)?
            + self.property(handle, NUM_ENTRIES_IMM_MEM_TABLES)?;
        let in_memory = if entries == 0 {
            0
        } else {
            let sample = memtable_walk(&self.db, handle, &[], None, MEMTABLE_SAMPLE)?;
            (sample.bytes / sample.keys.max(1)).saturating_mul(entries)
        };
        Ok(CfStats {
            live_bytes: self.property(handle, ESTIMATE_LIVE_DATA_SIZE)? + in_memory,
            keys: self.property(handle, ESTIMATE_NUM_KEYS)?,
        })
    }

    /// Memtables are walked (a memtable-only iterator: no file is read), up to
    /// [`MEMTABLE_WALK_CAP`] keys; files are estimated from the byte span RocksDB's index gives
    /// the range (`GetApproximateSizes`, on-disk and so compressed bytes), converted to keys and
    /// raw bytes with the column family's own ratios from its table properties. Keys overwritten
    /// in a memtable and still in a file count twice, and range deletes are not subtracted until
    /// compaction drops what they cover: an estimate, as the contract says.
    fn estimate_range(
        &self,
        cf: ColumnFamily,
        start: &[u8],
        end: &[u8],
    ) -> Result<RangeEstimate, StorageError> {
        if is_empty_range(start, Some(end)) {
            return Ok(RangeEstimate::default());
        }
        let handle = self.handle(cf)?;
        let in_memory = memtable_walk(&self.db, handle, start, Some(end), MEMTABLE_WALK_CAP)?;
        let on_disk = self
            .db
            .get_approximate_sizes_cf(handle, &[rocksdb::Range::new(start, end)])
            .first()
            .copied()
            .unwrap_or(0);
        if on_disk == 0 {
            return Ok(in_memory);
        }
        let files = self
            .db
            .property_value_cf(handle, rocksdb::properties::AGGREGATED_TABLE_PROPERTIES)
            .map_err(engine_error("estimate"))?
            .map(|text| TableTotals::parse(&text))
            .unwrap_or_default();
        let total = self.property(handle, rocksdb::properties::LIVE_SST_FILES_SIZE)?;
        Ok(in_memory.plus(files.share(on_disk, total)))
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.db.flush_wal(true).map_err(engine_error("flush"))?;
        let mut flush_options = FlushOptions::default();
        flush_options.set_wait(true);
        for cf in ColumnFamily::ALL {
            self.db
                .flush_cf_opt(self.handle(cf)?, &flush_options)
                .map_err(engine_error("flush"))?;
        }
        Ok(())
    }
}

/// Most memtable entries one estimate walks; past it the estimate stops counting them (a
/// memtable is tens of MiB, so this is reached only by one range holding most of it).
const MEMTABLE_WALK_CAP: u64 = 1 << 20;

/// Memtable entries [`Engine::stats`] reads to learn their mean size.
const MEMTABLE_SAMPLE: u64 = 4096;

/// Keys and bytes of `[start, end)` in the memtables of `handle` (the first `cap` keys of it),
/// read without touching a file.
fn memtable_walk(
    db: &DB,
    handle: &rocksdb::ColumnFamily,
    start: &[u8],
    end: Option<&[u8]>,
    cap: u64,
) -> Result<RangeEstimate, StorageError> {
    let mut options = ReadOptions::default();
    options.set_read_tier(ReadTier::Memtable);
    if let Some(end) = end {
        options.set_iterate_upper_bound(end);
    }
    let mut raw = db.raw_iterator_cf_opt(handle, options);
    raw.seek(start);
    let mut found = RangeEstimate::default();
    while let Some((key, value)) = raw.item() {
        found.keys += 1;
        found.bytes += (key.len() + value.len()) as u64;
        if found.keys >= cap {
            return Ok(found);
        }
        raw.next();
    }
    match raw.status() {
        // A memtable-only iterator may end "incomplete" where the data goes on in files, which
        // are estimated separately.
        Err(error) if error.kind() == rocksdb::ErrorKind::Incomplete => Ok(found),
        Err(error) => Err(engine_error("estimate")(error)),
        Ok(()) => Ok(found),
    }
}

/// What a column family's table files hold, summed over them (RocksDB's aggregated table
/// properties): the ratios that turn an on-disk byte span into keys and raw bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct TableTotals {
    entries: u64,
    raw_bytes: u64,
}

impl TableTotals {
    /// Reads `# entries`, `raw key size` and `raw value size` from the properties' text form
    /// (`name=value; name=value; ...`). A missing or unreadable figure counts as 0.
    fn parse(text: &str) -> Self {
        let mut totals = TableTotals::default();
        for field in text.split(';') {
            let Some((name, value)) = field.split_once('=') else {
                continue;
            };
            let value: u64 = value.trim().parse().unwrap_or(0);
            match name.trim() {
                "# entries" => totals.entries = value,
                "raw key size" | "raw value size" => {
                    totals.raw_bytes = totals.raw_bytes.saturating_add(value)
                }
                _ => {}
            }
        }
        totals
    }

    /// The keys and raw bytes of `span` on-disk bytes out of `total`, assuming the column family
    /// is alike throughout (`span` is at most `total` up to rounding).
    fn share(self, span: u64, total: u64) -> RangeEstimate {
        if total == 0 {
            return RangeEstimate::default();
        }
        let fraction = (span as f64 / total as f64).min(1.0);
        RangeEstimate {
            keys: (self.entries as f64 * fraction).round() as u64,
            bytes: (self.raw_bytes as f64 * fraction).round() as u64,
        }
    }
}

impl Drop for RocksEngine {
    fn drop(&mut self) {
        // Without sync_writes the tail of the WAL may still be in the OS page
        // cache; a clean shutdown should not depend on the kernel flushing it.
        if let Err(e) = self.db.flush_wal(true) {
            tracing::warn!(path = %self.path.display(), error = %e, "could not sync the WAL on close");
        }
    }
}

/// A consistent view of a [`RocksEngine`] as of [`Engine::snapshot`]. It shares the database,
/// so it may outlive the engine (the database then closes when the snapshot is dropped).
pub struct RocksSnapshot {
    owned: OwnedSnapshot,
}

impl std::fmt::Debug for RocksSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksSnapshot")
            .field("sequence", &self.owned.snapshot().sequence_number())
            .finish_non_exhaustive()
    }
}

impl EngineRead for RocksSnapshot {
    fn get(&self, cf: ColumnFamily, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        get(self.owned.db(), Some(self.owned.snapshot()), cf, key)
    }

    fn scan(
        &self,
        cf: ColumnFamily,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<KvPairs, StorageError> {
        scan(
            self.owned.db(),
            Some(self.owned.snapshot()),
            cf,
            start,
            end,
            limit,
        )
    }

    fn iter(&self, cf: ColumnFamily, start: &[u8], end: Option<&[u8]>) -> KvIter<'_> {
        // The iterator borrows `self`, so the snapshot it reads outlives it.
        iter(self.owned.db(), Some(self.owned.snapshot()), cf, start, end)
    }
}

use owned::OwnedSnapshot;

/// The one place that extends a lifetime: a RocksDB snapshot that owns the database it reads.
mod owned {
    use std::sync::Arc;

    use rocksdb::DB;

    use super::Snapshot;

    /// A RocksDB snapshot together with a share of its database.
    ///
    /// `rocksdb::SnapshotWithThreadMode` borrows the `DB` it was taken from, and releases itself
    /// through that borrow when dropped. Here the borrow is of the `DB` inside `db`'s `Arc`, made
    /// `'static` so the two can live in one owned value. That is sound because:
    /// - the `DB` lives in the `Arc`'s heap allocation, which never moves and is not freed while
    ///   `db` (a strong reference) exists;
    /// - fields drop in declaration order, so `snapshot` (which releases itself through the
    ///   `DB`) is dropped before `db`;
    /// - the `'static` borrow never leaves this module: [`OwnedSnapshot::snapshot`] hands the
    ///   snapshot out only for as long as `self` is borrowed.
    pub(super) struct OwnedSnapshot {
        // Must stay the first field: see above.
        snapshot: Snapshot<'static>,
        db: Arc<DB>,
    }

    impl OwnedSnapshot {
        pub(super) fn new(db: &Arc<DB>) -> Self {
            let db = Arc::clone(db);
            // SAFETY: the reference points into the allocation kept alive by `db`, which is
            // stored beside the snapshot and dropped after it (see the type's docs).
            let shared: &'static DB = unsafe { &*Arc::as_ptr(&db) };
            Self {
                snapshot: shared.snapshot(),
                db,
            }
        }

        pub(super) fn db(&self) -> &DB {
            &self.db
        }

        /// The snapshot, for no longer than `self` is borrowed.
        pub(super) fn snapshot(&self) -> &Snapshot<'_> {
            &self.snapshot
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_options() -> RocksOptions {
        RocksOptions {
            // Tests check semantics, not power-loss durability; fsync per write is just slow.
            sync_writes: false,
            block_cache_bytes: 8 << 20,
            write_buffer_bytes: 4 << 20,
            ..RocksOptions::default()
        }
    }

    #[test]
    fn conformance() {
        let mut dirs = Vec::new();
        crate::conformance::run_all(&mut || {
            let dir = tempfile::tempdir().unwrap();
            let engine = RocksEngine::open(dir.path(), &test_options()).unwrap();
            dirs.push(dir);
            engine
        });
    }

    #[test]
    fn table_totals_are_read_from_the_properties_text() {
        let text = "# data blocks=3; # entries=1000; # deletions=0; raw key size=8000; \
                    raw average key size=8.000000; raw value size=100000; data block size=9000; ";
        let totals = TableTotals::parse(text);
        assert_eq!(
            totals,
            TableTotals {
                entries: 1000,
                raw_bytes: 108_000
            }
        );
        assert_eq!(
            totals.share(450, 900),
            RangeEstimate {
                keys: 500,
                bytes: 54_000
            }
        );
        assert_eq!(totals.share(5, 0), RangeEstimate::default());
        assert_eq!(TableTotals::parse("garbage"), TableTotals::default());
    }

    #[test]
    fn data_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let engine = RocksEngine::open(dir.path(), &test_options()).unwrap();
            let mut batch = WriteBatch::new();
            batch.put(ColumnFamily::Data, b"row".to_vec(), b"cell".to_vec());
            batch.put(ColumnFamily::Meta, b"node".to_vec(), b"7".to_vec());
            engine.write(batch).unwrap();
        }
        let engine = RocksEngine::open(dir.path(), &test_options()).unwrap();
        assert_eq!(
            engine.get(ColumnFamily::Data, b"row").unwrap(),
            Some(b"cell".to_vec())
        );
        assert_eq!(
            engine.get(ColumnFamily::Meta, b"node").unwrap(),
            Some(b"7".to_vec())
        );
    }

    #[test]
    fn data_survives_flush_and_reopen_with_sync_writes() {
        let dir = tempfile::tempdir().unwrap();
        let options = RocksOptions {
            sync_writes: true,
            ..test_options()
        };
        {
            let engine = RocksEngine::open(dir.path(), &options).unwrap();
            for i in 0u32..100 {
                let mut batch = WriteBatch::new();
                batch.put(ColumnFamily::Data, i.to_be_bytes().to_vec(), vec![1u8; 100]);
                engine.write(batch).unwrap();
            }
            engine.flush().unwrap();
            assert!(engine.stats(ColumnFamily::Data).unwrap().keys > 0);
        }
        let engine = RocksEngine::open(dir.path(), &options).unwrap();
        let all = engine
            .scan(ColumnFamily::Data, &[], None, usize::MAX)
            .unwrap();
        assert_eq!(all.len(), 100);
    }

    #[test]
    fn opens_a_database_with_an_unknown_column_family() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut options = Options::default();
            options.create_if_missing(true);
            options.create_missing_column_families(true);
            let db = DB::open_cf(&options, dir.path(), ["data", "from_the_future"]).unwrap();
            db.put_cf(db.cf_handle("data").unwrap(), b"k", b"v")
                .unwrap();
        }
        let engine = RocksEngine::open(dir.path(), &test_options()).unwrap();
        assert_eq!(
            engine.get(ColumnFamily::Data, b"k").unwrap(),
            Some(b"v".to_vec())
        );
        assert_eq!(engine.get(ColumnFamily::Meta, b"k").unwrap(), None);
    }
}
