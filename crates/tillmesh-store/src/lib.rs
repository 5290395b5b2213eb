//! Durable local storage for a tillmesh peer, on sled.
//!
//! Every document (orders, transactions, the menu) lives here as saved Automerge bytes, next to the indexes
//! a till needs without loading documents (order summaries by update time and by status, `localId`
//! lookups, transactions per order) and the sync bookkeeping per remote peer. A batch of writes
//! is one sled transaction: it lands whole or not at all, so a crash never leaves a half-written
//! order. [`Store::flush`] makes everything written so far durable; a caller acknowledges a write
//! only after it.
//!
//! # Layout
//! - [`Store`]: open, read, write, list, flush.
//! - `keys`: how keys are encoded (big-endian, so sled's order is time order).
//! - `summary`: the [`OrderSummary`] kept per order for listing.
//! - `sync`: per-remote [`SyncStatus`] and Automerge sync states.
//! - `quarantine`: refused documents kept aside ([`Quarantined`]).
//! - `sled_db`: sled made dependable: [`open_waiting`] for a lock a closing database holds,
//!   [`DurableLog`] for a durable flush.
//! - `error`: [`StoreError`].

mod error;
mod keys;
mod quarantine;
mod sled_db;
mod summary;
mod sync;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use tillmesh_core::{Document, HqPublicKey, OrderStatus, TillCode};
use tillmesh_sync::{Index, ItemHash};
use uuid::Uuid;

pub use error::StoreError;
pub use quarantine::{QUARANTINE_ENTRIES_MAX, Quarantined};
pub use sled_db::{DurableLog, open_waiting};
pub use summary::{OrderPage, OrderQuery, OrderSummary, PAGE_ROWS_MAX, Prepared};
pub use sync::{REMOTE_NAME_BYTES_MAX, RemoteCounts, SyncStatus};
/// A document's effective view, as [`Store::prepare_viewed`] takes it (core's).
pub use tillmesh_core::View;
use tillmesh_untrusted::packed;

/// The on-disk layout this build writes and the newest it opens.
pub const STORE_SCHEMA_VERSION: u64 = 3;

/// Migrations by name, applied in order, each once. A store records the names it has applied.
/// 0002 packs every stored document (version 2 stores documents packed: a build of version 1
/// would take them for damaged documents, so it refuses the store); 0003 keeps order summaries
/// compact instead of as JSON (a build of version 2 could not read them).
const MIGRATIONS: &[&str] = &["0001-initial-layout", PACK_DOCUMENTS, COMPACT_SUMMARIES];

const PACK_DOCUMENTS: &str = "0002-packed-documents";

const COMPACT_SUMMARIES: &str = "0003-compact-summaries";

/// Entries rewritten per batch by a migration.
const MIGRATION_BATCH: usize = 1_000;

/// How to open a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// sled's page cache in bytes: bounds memory whatever the number of orders.
    pub cache_bytes: u64,
    /// HQ's public key, to compute summaries with settlements honoured.
    pub hq: Option<HqPublicKey>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { cache_bytes: 32 * 1024 * 1024, hq: None }
    }
}

/// Why a store refuses writes: its first I/O error since it last worked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageFailure {
    /// The error.
    pub reason: String,
    /// Whether the disk is full (as opposed to another I/O error).
    pub disk_full: bool,
}

/// Creates the store's directory readable by its owner only (0700), or makes an existing one so:
/// every order is in there.
fn restrict(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Makes the files sled created in the store's directory the owner's only (0600; directories
/// 0700). Files sled creates later sit behind the 0700 directory.
fn restrict_files(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let mode = if entry.file_type()?.is_dir() { 0o700 } else { 0o600 };
        std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// [`Shared::documents`] before the documents are counted.
const UNCOUNTED: u64 = u64::MAX;

/// Space a store keeps in reserve beside its database: given back when the disk fills up, so
/// that the database can be opened again (sled writes when it opens) and serve reads; taken
/// again, written and flushed, before writes resume. Eight of sled's 512 KiB segments.
const RESERVE_BYTES: usize = 4 * 1024 * 1024;

/// The reserve's file in the store's directory.
const RESERVE_FILE: &str = "reserve";

/// A file written (as large as the reserve) and removed to check that a disk which filled up
/// has room again beyond the reserve before writes resume.
const HEADROOM_FILE: &str = "headroom";

/// How long reopening waits for readers of the old opening to let go of its file lock.
const REOPEN_LOCK_WAIT_MS: u64 = 500;

/// Writes and flushes the reserve in `dir` (0600). On failure nothing of it is left.
fn take_reserve(dir: &Path) -> std::io::Result<()> {
    fill(&dir.join(RESERVE_FILE))
}

/// Writes and flushes [`RESERVE_BYTES`] of zeros to `path` (0600). On failure nothing of it is
/// left.
fn fill(path: &Path) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let written =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).and_then(
            |mut file| {
                file.write_all(&vec![0u8; RESERVE_BYTES])?;
                file.sync_all()
            },
        );
    if written.is_err() {
        let _ = std::fs::remove_file(path);
    }
    written
}

/// The till a store belongs to, fixed when the store is first used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TillIdentity {
    /// The till's code in its shop.
    pub code: TillCode,
    /// The device id it writes as.
    pub device_id: String,
}

/// Bytes of every file of the store in `dir` (sled's, and the store's reserve): what it takes on
/// disk, beside what its trees hold ([`Store::footprint`]). A diagnostic the benchmarks print.
pub fn disk_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let metadata = entry.metadata()?;
        bytes += if metadata.is_dir() { disk_bytes(&entry.path())? } else { metadata.len() };
    }
    Ok(bytes)
}

/// What one tree of a store holds ([`Store::footprint`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFootprint {
    /// The tree's name.
    pub tree: String,
    /// Its entries.
    pub entries: u64,
    /// The bytes of their keys.
    pub key_bytes: u64,
    /// The bytes of their values.
    pub value_bytes: u64,
}

/// A peer's durable local storage. Cheap to clone; clones share the same database.
///
/// sled poisons itself after an I/O error (a full disk): every later write fails until the
/// database is opened again. So the database sits behind a handle that [`Store::recover`] can
/// swap for a freshly opened one, and the store records the failure ([`Store::failure`]) for
/// the node to report and to refuse writes meanwhile.
#[derive(Debug, Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    dir: std::path::PathBuf,
    cache_bytes: u64,
    hq: Option<HqPublicKey>,
    /// The open database; `None` only while [`Store::recover`] reopens it.
    open: std::sync::RwLock<Option<Arc<Open>>>,
    /// Why writes are failing, from the first I/O error until [`Store::recover`] succeeds.
    failure: std::sync::Mutex<Option<StorageFailure>>,
    /// Entries in the quarantine tree (counted at open: the tree is bounded).
    quarantined: AtomicU64,
    /// Documents held, kept by every write so that health and metrics never walk a tree; taken
    /// from [`Store::load_index`] (which walks the item hashes anyway), or counted on first
    /// use by a store opened without it. [`UNCOUNTED`] until then.
    documents: AtomicU64,
}

/// One opening of the sled database.
#[derive(Debug)]
struct Open {
    db: sled::Db,
    trees: Trees,
    /// sled's log, made durable by [`Store::flush`].
    log: DurableLog,
}

impl Open {
    /// Opens the database in `dir`, waiting up to `lock_wait_ms` for another holder of its
    /// lock to let go.
    fn at(dir: &Path, cache_bytes: u64, lock_wait_ms: u64) -> Result<Open, StoreError> {
        let db = open_db(dir, cache_bytes, lock_wait_ms)?;
        let found = match db.get(meta_keys::SCHEMA)? {
            Some(bytes) => keys::decode_u64(&bytes).ok_or(StoreError::Corrupt { what: "schema version" })?,
            None => 0,
        };
        if found > STORE_SCHEMA_VERSION {
            return Err(StoreError::NewerStore {
                dir: dir.to_path_buf(),
                found,
                supported: STORE_SCHEMA_VERSION,
            });
        }
        let tree = |name: &str| db.open_tree(name);
        let trees = Trees {
            docs: tree("docs")?,
            item_hashes: tree("item_hashes")?,
            summaries: tree("summaries")?,
            by_updated: tree("by_updated")?,
            by_status: tree("by_status")?,
            by_local_id: tree("by_local_id")?,
            transactions_by_order: tree("transactions_by_order")?,
            sync_status: tree("sync_status")?,
            sync_counts: tree("sync_counts")?,
            sync_states: tree("sync_states")?,
            remotes: tree("remotes")?,
            quarantine: tree("quarantine")?,
        };
        let log = DurableLog::of(dir)?;
        Ok(Open { db, trees, log })
    }
}

#[derive(Debug, Clone)]
struct Trees {
    /// doc id → saved Automerge bytes.
    docs: sled::Tree,
    /// doc id → [`ItemHash`] of its heads, for the sync index.
    item_hashes: sled::Tree,
    /// order id → [`OrderSummary`], compact (`summary::encode`).
    summaries: sled::Tree,
    /// updatedAt ++ order id → ().
    by_updated: sled::Tree,
    /// status tag ++ updatedAt ++ order id → ().
    by_status: sled::Tree,
    /// localId → doc id.
    by_local_id: sled::Tree,
    /// order id ++ transaction id → ().
    transactions_by_order: sled::Tree,
    /// remote ++ 0 ++ doc id → [`SyncStatus`] tag.
    sync_status: sled::Tree,
    /// remote ++ 0 ++ status tag → count (u64 BE).
    sync_counts: sled::Tree,
    /// remote ++ 0 ++ doc id → encoded Automerge sync state.
    sync_states: sled::Tree,
    /// remote → last successful sync time (i64 BE).
    remotes: sled::Tree,
    /// SHA-256 of refused bytes → [`Quarantined`] as JSON.
    quarantine: sled::Tree,
}

mod meta_keys {
    pub(crate) const SCHEMA: &[u8] = b"schema_version";
    pub(crate) const MIGRATION_PREFIX: &str = "migration/";
    pub(crate) const TILL_CODE: &[u8] = b"till_code";
    pub(crate) const DEVICE_ID: &[u8] = b"device_id";
    pub(crate) const ORDER_SEQUENCE: &[u8] = b"order_sequence";
    pub(crate) const SETTING_PREFIX: &str = "setting/";
    /// Written (and flushed) to check that a reopened store takes writes.
    pub(crate) const PROBE: &[u8] = b"probe";
}

impl Store {
    /// Opens (or creates) the store in `dir`. A store written by a newer tillmesh is refused.
    pub fn open(dir: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        restrict(dir).map_err(|error| StoreError::Open { dir: dir.to_path_buf(), source: error.into() })?;
        let reserve = dir.join(RESERVE_FILE);
        if std::fs::metadata(&reserve).map_or(true, |file| file.len() < RESERVE_BYTES as u64)
            && let Err(error) = take_reserve(dir)
        {
            tracing::warn!(%error, "no room for the store's reserve: a full disk will stop reads too");
        }
        let open = Open::at(dir, options.cache_bytes, LOCK_WAIT_MS)?;
        restrict_files(dir)
            .map_err(|error| StoreError::Open { dir: dir.to_path_buf(), source: error.into() })?;
        let shared = Shared {
            dir: dir.to_path_buf(),
            cache_bytes: options.cache_bytes,
            hq: options.hq,
            quarantined: AtomicU64::new(open.trees.quarantine.len() as u64),
            documents: AtomicU64::new(UNCOUNTED),
            open: std::sync::RwLock::new(Some(Arc::new(open))),
            failure: std::sync::Mutex::new(None),
        };
        let store = Store { shared: Arc::new(shared) };
        store.migrate()?;
        Ok(store)
    }

    /// The open database.
    fn open_db(&self) -> Result<Arc<Open>, StoreError> {
        let open = self.shared.open.read().map_err(|_| StoreError::Reopening)?;
        open.clone().ok_or(StoreError::Reopening)
    }

    /// Why writes are failing (the first I/O error since the store last worked), if they are.
    pub fn failure(&self) -> Option<StorageFailure> {
        self.shared.failure.lock().ok().and_then(|failure| failure.clone())
    }

    /// Records that a write met `error`; an I/O error (a full disk, a failing device) puts the
    /// store in the failed state until [`Store::recover`]. Returns whether it did.
    pub fn note_failure(&self, error: &StoreError) -> bool {
        if !error.is_io() {
            return false;
        }
        if let Ok(mut failure) = self.shared.failure.lock()
            && failure.is_none()
        {
            tracing::error!(%error, "storage failed: writes are refused until it works again");
            *failure = Some(StorageFailure { reason: error.to_string(), disk_full: error.is_disk_full() });
        }
        true
    }

    /// Opens the database again: sled poisons itself after an I/O error, reads included, so
    /// the node reopens it at once to go on serving reads while writes stay refused. Writes
    /// that were not flushed may or may not be there afterwards (as after a crash); counts are
    /// taken afresh. If the database does not open, reads get [`StoreError::Reopening`] until
    /// [`Store::recover`] opens it. Call only with no write in flight (the node's writer thread
    /// does, between batches).
    pub fn reopen(&self) -> Result<(), StoreError> {
        // The reserve makes room for sled to open on a full disk.
        let _ = std::fs::remove_file(self.shared.dir.join(RESERVE_FILE));
        let mut open = self.shared.open.write().map_err(|_| StoreError::Reopening)?;
        // Dropping the poisoned database releases its file lock once readers let go of it.
        *open = None;
        let fresh = Open::at(&self.shared.dir, self.shared.cache_bytes, REOPEN_LOCK_WAIT_MS)?;
        self.shared.documents.store(UNCOUNTED, Ordering::Relaxed);
        self.shared.quarantined.store(fresh.trees.quarantine.len() as u64, Ordering::Relaxed);
        *open = Some(Arc::new(fresh));
        Ok(())
    }

    /// Ends the failed state once the disk takes writes again: the reserve taken back (written
    /// and flushed) with as much room again beside it (written and removed: the space the
    /// reserve gave back is not space to resume on), then a durable write in the database
    /// (opening it again if it is not open).
    pub fn recover(&self) -> Result<(), StoreError> {
        take_reserve(&self.shared.dir).map_err(|error| StoreError::Sled(error.into()))?;
        let headroom = self.shared.dir.join(HEADROOM_FILE);
        let room = fill(&headroom);
        let _ = std::fs::remove_file(&headroom);
        if let Err(error) = room {
            // Still full: the reserve goes back to the database's reads.
            let _ = std::fs::remove_file(self.shared.dir.join(RESERVE_FILE));
            return Err(StoreError::Sled(error.into()));
        }
        let open = match self.open_db() {
            Ok(open) => open,
            Err(_) => {
                self.reopen()?;
                self.open_db()?
            }
        };
        open.db.insert(meta_keys::PROBE, &[1u8])?;
        open.db.flush()?;
        if let Ok(mut failure) = self.shared.failure.lock() {
            *failure = None;
        }
        tracing::info!("storage works again: writes resume");
        Ok(())
    }

    /// Applies the migrations this store has not seen, then records the schema version.
    fn migrate(&self) -> Result<(), StoreError> {
        for name in MIGRATIONS {
            let key = format!("{}{name}", meta_keys::MIGRATION_PREFIX);
            if self.open_db()?.db.get(&key)?.is_none() {
                // 0001 creates the trees opened above; later migrations rewrite data here.
                tracing::info!(migration = name, "applying store migration");
                match *name {
                    PACK_DOCUMENTS => self.pack_documents()?,
                    COMPACT_SUMMARIES => self.compact_summaries()?,
                    _ => {}
                }
                self.open_db()?.db.insert(key, &[1u8])?;
            }
        }
        self.open_db()?.db.insert(meta_keys::SCHEMA, &STORE_SCHEMA_VERSION.to_be_bytes())?;
        self.flush()
    }

    /// Packs every document stored as it was saved ([`PACK_DOCUMENTS`]).
    fn pack_documents(&self) -> Result<(), StoreError> {
        let docs = self.open_db()?.trees.docs.clone();
        rewrite_each(&docs, |_, stored| {
            Ok((!packed::is_packed(stored)).then(|| packed::pack(stored).ok()).flatten())
        })
    }

    /// Keeps every order summary kept as JSON compact ([`COMPACT_SUMMARIES`]). One that does
    /// not read stays as it is (listing it reports it, as before).
    fn compact_summaries(&self) -> Result<(), StoreError> {
        let summaries = self.open_db()?.trees.summaries.clone();
        rewrite_each(&summaries, |key, stored| {
            if summary::is_encoded(stored) {
                return Ok(None);
            }
            let old = Uuid::from_slice(key)
                .map_err(|_| StoreError::Corrupt { what: "summary key" })
                .and_then(|id| summary::decode(id, stored));
            match old {
                Ok(old) => summary::encode(&old).map(Some),
                Err(error) => {
                    tracing::warn!(%error, "a summary that does not read is left as it is");
                    Ok(None)
                }
            }
        })
    }

    /// Binds the store to a till on first use; later opens must name the same till.
    pub fn bind_till(&self, identity: &TillIdentity) -> Result<(), StoreError> {
        let stored_code = self.open_db()?.db.get(meta_keys::TILL_CODE)?;
        match stored_code {
            None => {
                self.open_db()?.db.insert(meta_keys::TILL_CODE, identity.code.as_str())?;
                self.open_db()?.db.insert(meta_keys::DEVICE_ID, identity.device_id.as_str())?;
                self.flush()
            }
            Some(code) if code == identity.code.as_str().as_bytes() => Ok(()),
            Some(code) => Err(StoreError::OtherTill {
                stored: String::from_utf8_lossy(&code).into_owned(),
                given: identity.code.to_string(),
            }),
        }
    }

    /// The last order sequence number this till reserved (0 before its first order).
    pub fn order_sequence(&self) -> Result<u64, StoreError> {
        Ok(self
            .open_db()?
            .db
            .get(meta_keys::ORDER_SEQUENCE)?
            .as_deref()
            .and_then(keys::decode_u64)
            .unwrap_or(0))
    }

    /// Reserves the next order sequence number of this till (1, 2, …). Durable with the next
    /// flush; a crash before it may leave a gap, never a repeat of an acknowledged number.
    pub fn next_order_sequence(&self) -> Result<u64, StoreError> {
        let next = self.open_db()?.db.update_and_fetch(meta_keys::ORDER_SEQUENCE, |old| {
            let current = old.and_then(keys::decode_u64).unwrap_or(0);
            Some((current + 1).to_be_bytes().to_vec())
        })?;
        next.as_deref().and_then(keys::decode_u64).ok_or(StoreError::Corrupt { what: "order sequence" })
    }

    /// Keeps this till's order sequence above every number of its own code among `prepared`:
    /// a till that took over a reused code (`shop add-till --reuse`) continues past the numbers
    /// it sees from its predecessor instead of issuing them again.
    fn raise_order_sequence(&self, prepared: &[Prepared]) -> Result<(), StoreError> {
        let open = self.open_db()?;
        let Some(code) = open.db.get(meta_keys::TILL_CODE)? else { return Ok(()) };
        let seen = prepared
            .iter()
            .filter_map(|entry| entry.order.as_ref()?.order_number.parse::<tillmesh_core::OrderNumber>().ok())
            .filter(|number| number.till.as_str().as_bytes() == code.as_ref())
            .map(|number| number.sequence)
            .max();
        let current = self.order_sequence()?;
        // Nothing to write for a till's own new orders (their number was drawn from it).
        if let Some(seen) = seen.filter(|seen| *seen > current) {
            open.db.update_and_fetch(meta_keys::ORDER_SEQUENCE, |old| {
                let current = old.and_then(keys::decode_u64).unwrap_or(0);
                Some(current.max(seen).to_be_bytes().to_vec())
            })?;
        }
        Ok(())
    }

    /// A small runtime setting (the roster, …) by name.
    pub fn setting(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .open_db()?
            .db
            .get(format!("{}{name}", meta_keys::SETTING_PREFIX))?
            .map(|bytes| bytes.to_vec()))
    }

    /// Stores a small runtime setting (durable with the next flush).
    pub fn set_setting(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.open_db()?.db.insert(format!("{}{name}", meta_keys::SETTING_PREFIX), value)?;
        Ok(())
    }

    /// Keeps refused bytes aside (durable with the next flush). Returns false when these bytes
    /// are already kept or [`QUARANTINE_ENTRIES_MAX`] entries are.
    pub fn quarantine(&self, entry: &Quarantined) -> Result<bool, StoreError> {
        if self.shared.quarantined.load(Ordering::Relaxed) >= QUARANTINE_ENTRIES_MAX {
            return Ok(false);
        }
        let value =
            serde_json::to_vec(entry).map_err(|_| StoreError::Corrupt { what: "quarantine entry" })?;
        let kept = self
            .open_db()?
            .trees
            .quarantine
            .compare_and_swap(quarantine::key(&entry.bytes), None as Option<&[u8]>, Some(value))?
            .is_ok();
        if kept {
            self.shared.quarantined.fetch_add(1, Ordering::Relaxed);
        }
        Ok(kept)
    }

    /// Sets aside a stored document that no longer loads (bit rot, or written by a faulty
    /// build): in one transaction its bytes move to the quarantine tree (from `disk`) and it
    /// leaves the documents, the sync hashes and the order listing, so that reads, listings and
    /// sync go on without it. Lookups that still lead to it (by `localId`, an order's
    /// transactions) find nothing. Returns false when it was not stored.
    pub fn set_aside(&self, id: Uuid, reason: &str, at_ms: i64) -> Result<bool, StoreError> {
        let Some(stored) = self.open_db()?.trees.docs.get(id.as_bytes())? else { return Ok(false) };
        let entry = Quarantined {
            id,
            from: "disk".to_string(),
            reason: reason.to_string(),
            at_ms,
            bytes: unpacked(&stored),
        };
        let value =
            serde_json::to_vec(&entry).map_err(|_| StoreError::Corrupt { what: "quarantine entry" })?;
        let open = self.open_db()?;
        let t = &open.trees;
        let kept = (&t.docs, &t.item_hashes, &t.summaries, &t.by_updated, &t.by_status, &t.quarantine)
            .transaction(|(docs, hashes, summaries, by_updated, by_status, quarantine)| {
                docs.remove(id.as_bytes())?;
                hashes.remove(id.as_bytes())?;
                if let Some(old) = summaries.remove(id.as_bytes())?
                    && let Ok(old) = summary::decode(id, &old)
                {
                    by_updated.remove(keys::updated(old.updated_at.0, id))?;
                    by_status.remove(keys::status_updated(old.order_status, old.updated_at.0, id))?;
                }
                Ok(quarantine.insert(&quarantine::key(&entry.bytes), value.as_slice())?.is_none())
            })
            .map_err(StoreError::from_transaction)?;
        if kept {
            self.shared.quarantined.fetch_add(1, Ordering::Relaxed);
        }
        self.adjust_document_count(|held| held.saturating_sub(1));
        tracing::warn!(%id, reason, "a stored document no longer loads: set aside");
        Ok(true)
    }

    /// Whether exactly these bytes were kept aside as refused.
    pub fn is_quarantined(&self, bytes: &[u8]) -> Result<bool, StoreError> {
        if self.shared.quarantined.load(Ordering::Relaxed) == 0 {
            return Ok(false);
        }
        Ok(self.open_db()?.trees.quarantine.contains_key(quarantine::key(bytes))?)
    }

    /// How many refused documents are kept aside.
    pub fn quarantined_count(&self) -> u64 {
        self.shared.quarantined.load(Ordering::Relaxed)
    }

    /// Every refused document kept aside (at most [`QUARANTINE_ENTRIES_MAX`]).
    pub fn quarantined(&self) -> Result<Vec<Quarantined>, StoreError> {
        self.open_db()?
            .trees
            .quarantine
            .iter()
            .values()
            .map(|value| {
                serde_json::from_slice(&value?).map_err(|_| StoreError::Corrupt { what: "quarantine entry" })
            })
            .collect()
    }

    /// A named tree for a layer built on this store (HQ's legacy REST records), in the same
    /// database: made durable by the same [`Store::flush`]. The tree belongs to the current
    /// opening: take it for each operation, since a layer holding one keeps
    /// [`Store::reopen`] from opening the database again.
    pub fn extra_tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.open_db()?.db.open_tree(format!("ext/{name}"))?)
    }

    /// What each tree holds (sled's default tree is named `__sled__default`), in name order.
    /// Walks every entry of the store: a diagnostic, for measuring what an order costs on disk
    /// before sled's own overhead (`cargo bench --bench sync_pair` prints it).
    pub fn footprint(&self) -> Result<Vec<TreeFootprint>, StoreError> {
        let open = self.open_db()?;
        let mut names = open.db.tree_names();
        names.sort();
        let mut trees = Vec::with_capacity(names.len());
        for name in names {
            let mut footprint = TreeFootprint {
                tree: String::from_utf8_lossy(&name).into_owned(),
                entries: 0,
                key_bytes: 0,
                value_bytes: 0,
            };
            for entry in open.db.open_tree(&name)?.iter() {
                let (key, value) = entry?;
                footprint.entries += 1;
                footprint.key_bytes += key.len() as u64;
                footprint.value_bytes += value.len() as u64;
            }
            trees.push(footprint);
        }
        Ok(trees)
    }

    /// Makes every write so far durable (sled's flush, then `fdatasync`: [`DurableLog`]).
    pub fn flush(&self) -> Result<(), StoreError> {
        let open = self.open_db()?;
        open.log.flush(&open.db)?;
        Ok(())
    }

    /// The document with this id.
    pub fn get(&self, id: Uuid) -> Result<Option<Document>, StoreError> {
        match self.get_bytes(id)? {
            Some(bytes) => {
                Document::load(&bytes).map(Some).map_err(|source| StoreError::Document { id, source })
            }
            None => Ok(None),
        }
    }

    /// The [`ItemHash`] (id and heads) of the stored version of a document, without loading it.
    pub fn item_hash(&self, id: Uuid) -> Result<Option<ItemHash>, StoreError> {
        match self.open_db()?.trees.item_hashes.get(id.as_bytes())? {
            None => Ok(None),
            Some(bytes) => {
                let hash: [u8; 16] =
                    bytes.as_ref().try_into().map_err(|_| StoreError::Corrupt { what: "item hash" })?;
                Ok(Some(ItemHash(hash)))
            }
        }
    }

    /// The saved bytes of the document with this id (unpacked).
    pub fn get_bytes(&self, id: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.open_db()?.trees.docs.get(id.as_bytes())?.map(|stored| unpacked(&stored)))
    }

    /// Up to `limit` stored documents' saved bytes, in id order, after `after` (from the start
    /// when `None`): for walking every document in chunks.
    pub fn documents_after(
        &self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<(Uuid, Vec<u8>)>, StoreError> {
        let range = match after {
            Some(after) => self
                .open_db()?
                .trees
                .docs
                .range((std::ops::Bound::Excluded(after.as_bytes().to_vec()), std::ops::Bound::Unbounded)),
            None => self.open_db()?.trees.docs.iter(),
        };
        range
            .take(limit)
            .map(|entry| {
                let (key, stored) = entry?;
                let id = keys::decode_uuid(&key).ok_or(StoreError::Corrupt { what: "document key" })?;
                Ok((id, unpacked(&stored)))
            })
            .collect()
    }

    /// The document created with this `localId`, if any.
    pub fn find_local_id(&self, local_id: Uuid) -> Result<Option<Uuid>, StoreError> {
        let Some(bytes) = self.open_db()?.trees.by_local_id.get(local_id.as_bytes())? else {
            return Ok(None);
        };
        let id = keys::decode_uuid(&bytes).ok_or(StoreError::Corrupt { what: "localId index" })?;
        // A document set aside leaves its localId behind.
        Ok(self.open_db()?.trees.docs.contains_key(id.as_bytes())?.then_some(id))
    }

    /// The transactions recorded for an order.
    pub fn transactions_of(&self, order_id: Uuid) -> Result<Vec<Uuid>, StoreError> {
        let open = self.open_db()?;
        let mut ids = Vec::new();
        for entry in open.trees.transactions_by_order.scan_prefix(order_id.as_bytes()) {
            let (key, _) = entry?;
            let id =
                keys::decode_uuid(&key[16..]).ok_or(StoreError::Corrupt { what: "transaction index" })?;
            // A transaction set aside leaves its entry behind.
            if open.trees.docs.contains_key(id.as_bytes())? {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// How many documents the store holds.
    pub fn document_count(&self) -> usize {
        let held = self.shared.documents.load(Ordering::Relaxed);
        if held != UNCOUNTED {
            return held as usize;
        }
        let counted = self.open_db().map_or(0, |open| open.trees.item_hashes.len() as u64);
        let _ =
            self.shared.documents.compare_exchange(UNCOUNTED, counted, Ordering::Relaxed, Ordering::Relaxed);
        counted as usize
    }

    /// Every document id, in id order.
    pub fn document_ids(&self) -> Result<Vec<Uuid>, StoreError> {
        self.open_db()?
            .trees
            .docs
            .iter()
            .keys()
            .map(|key| keys::decode_uuid(&key?).ok_or(StoreError::Corrupt { what: "document key" }))
            .collect()
    }

    /// The sync index: every document's [`ItemHash`], read once at start-up (the writer keeps
    /// it current from what [`Store::put`] returns).
    pub fn load_index(&self) -> Result<Index, StoreError> {
        let mut index = Index::new();
        for entry in self.open_db()?.trees.item_hashes.iter() {
            let (key, value) = entry?;
            let id = keys::decode_uuid(&key).ok_or(StoreError::Corrupt { what: "item hash key" })?;
            let hash: [u8; 16] =
                value.as_ref().try_into().map_err(|_| StoreError::Corrupt { what: "item hash" })?;
            index.insert(id, ItemHash(hash));
        }
        self.shared.documents.store(index.len() as u64, Ordering::Relaxed);
        Ok(index)
    }

    /// Changes the document count by `change`, unless it is not counted yet.
    fn adjust_document_count(&self, change: impl Fn(u64) -> u64) {
        let _ = self.shared.documents.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
            (held != UNCOUNTED).then(|| change(held))
        });
    }

    /// Checks a document and computes what writing it needs (its saved bytes, summary and item
    /// hash). `saved` are its bytes when the caller has them already (as received). A document
    /// whose view cannot be computed is refused with [`StoreError::Document`].
    pub fn prepare(&self, document: &mut Document, saved: Option<Vec<u8>>) -> Result<Prepared, StoreError> {
        summary::Prepared::of(document, saved, self.shared.hq.as_ref())
    }

    /// Checks a document a peer sent, with this store's HQ key (see [`Prepared::received`]).
    pub fn receive(
        &self,
        id: Uuid,
        doc: automerge::AutoCommit,
        saved: Option<Vec<u8>>,
    ) -> Result<(Document, Prepared), String> {
        Prepared::received(id, doc, saved, self.shared.hq.as_ref())
    }

    /// Checks a whole document a peer sent without its id (in a compact frame) as
    /// [`Store::receive`] does, under the id its own header gives (`Document::id`).
    pub fn receive_unnamed(
        &self,
        doc: automerge::AutoCommit,
        saved: Option<Vec<u8>>,
    ) -> Result<(Document, Prepared), String> {
        Prepared::received_unnamed(doc, saved, self.shared.hq.as_ref())
    }

    /// Like [`Store::prepare`] for a document whose saved bytes and view (computed with this
    /// store's HQ key) the caller has already: nothing is computed twice.
    pub fn prepare_viewed(&self, document: &mut Document, saved: Vec<u8>, view: &View) -> Prepared {
        summary::Prepared::viewed(document, saved, view)
    }

    /// Writes documents as one atomic batch: their bytes, the order indexes and, for every
    /// known remote, the sync status (new → PENDING, changed after a sync → MODIFIED).
    /// Returns each document's new [`ItemHash`] for the sync index. Not durable until
    /// [`Store::flush`].
    pub fn put(&self, documents: &mut [Document]) -> Result<Vec<(Uuid, ItemHash)>, StoreError> {
        let prepared = documents
            .iter_mut()
            .map(|document| self.prepare(document, None))
            .collect::<Result<Vec<_>, _>>()?;
        self.put_prepared(&prepared, None)
    }

    /// Writes prepared documents as one atomic batch, like [`Store::put`]. Documents that came
    /// from remote `from` are not marked as still to be sent to it.
    pub fn put_prepared(
        &self,
        prepared: &[Prepared],
        from: Option<&str>,
    ) -> Result<Vec<(Uuid, ItemHash)>, StoreError> {
        let remotes: Vec<sled::IVec> = self
            .open_db()?
            .trees
            .remotes
            .iter()
            .keys()
            .filter(|remote| {
                remote.as_ref().map_or(true, |name| Some(name.as_ref()) != from.map(str::as_bytes))
            })
            .collect::<Result<_, _>>()?;
        let open = self.open_db()?;
        let t = &open.trees;
        let added = (
            &t.docs,
            &t.item_hashes,
            &t.summaries,
            &t.by_updated,
            &t.by_status,
            &t.by_local_id,
            &t.transactions_by_order,
            &t.sync_status,
            &t.sync_counts,
        )
            .transaction(
                |(docs, hashes, summaries, by_updated, by_status, by_local_id, by_order, status, counts)| {
                    let mut added = 0;
                    for entry in prepared {
                        let id = entry.id.as_bytes();
                        let is_new = docs.insert(id, entry.packed.as_slice())?.is_none();
                        added += u64::from(is_new);
                        hashes.insert(id, &entry.item_hash.0)?;
                        if let Some(local_id) = entry.local_id {
                            by_local_id.insert(local_id.as_bytes(), id)?;
                        }
                        if let Some(order) = &entry.order {
                            write_order_indexes(summaries, by_updated, by_status, order)?;
                        }
                        if let Some(order_id) = entry.paid_order {
                            by_order.insert(keys::pair(order_id, entry.id), &[])?;
                        }
                        for remote in &remotes {
                            sync::note_local_change(status, counts, remote, entry.id, is_new)?;
                        }
                    }
                    Ok(added)
                },
            )
            .map_err(StoreError::from_transaction)?;
        self.adjust_document_count(|held| held + added);
        self.raise_order_sequence(prepared)?;
        Ok(prepared.iter().map(|entry| (entry.id, entry.item_hash)).collect())
    }

    /// A page of order summaries, most recently updated first.
    pub fn list_orders(&self, query: &OrderQuery) -> Result<OrderPage, StoreError> {
        summary::list(
            &self.open_db()?.trees.summaries,
            &self.open_db()?.trees.by_updated,
            &self.open_db()?.trees.by_status,
            query,
        )
    }

    /// The summary of one order.
    pub fn order_summary(&self, id: Uuid) -> Result<Option<OrderSummary>, StoreError> {
        summary::get(&self.open_db()?.trees.summaries, id)
    }

    /// Counts of orders by status, over the whole store.
    pub fn status_counts(&self) -> Result<Vec<(OrderStatus, u64)>, StoreError> {
        OrderStatus::ALL
            .iter()
            .map(|status| {
                Ok((
                    *status,
                    self.open_db()?.trees.by_status.scan_prefix([keys::status_tag(*status)]).count() as u64,
                ))
            })
            .collect()
    }
}

/// How long to wait for the store's lock file: sled's background work may keep it for a few
/// milliseconds after the previous `Store` in this process is dropped.
const LOCK_WAIT_MS: u64 = 2_000;

/// A stored document's saved bytes: unpacked when stored packed (every write since store
/// version 2). Bytes that do not unpack are given as they are: they load as no document, and
/// whoever loads them sets them aside like any damaged document.
fn unpacked(stored: &[u8]) -> Vec<u8> {
    if packed::is_packed(stored)
        && let Ok(bytes) = packed::unpack(stored, tillmesh_untrusted::DOCUMENT_BYTES_MAX)
    {
        return bytes;
    }
    stored.to_vec()
}

/// Rewrites every entry of `tree` that `rewrite` gives new bytes for, [`MIGRATION_BATCH`]
/// entries a batch; a store interrupted half-way rewrites the rest when it opens again (its
/// readers take both forms).
fn rewrite_each(
    tree: &sled::Tree,
    mut rewrite: impl FnMut(&[u8], &[u8]) -> Result<Option<Vec<u8>>, StoreError>,
) -> Result<(), StoreError> {
    let mut after: Option<sled::IVec> = None;
    loop {
        let range = match &after {
            Some(key) => {
                tree.range::<&[u8], _>((std::ops::Bound::Excluded(key.as_ref()), std::ops::Bound::Unbounded))
            }
            None => tree.iter(),
        };
        let mut batch = sled::Batch::default();
        let mut seen = 0;
        for entry in range.take(MIGRATION_BATCH) {
            let (key, stored) = entry?;
            seen += 1;
            if let Some(rewritten) = rewrite(&key, &stored)? {
                batch.insert(key.clone(), rewritten);
            }
            after = Some(key);
        }
        tree.apply_batch(batch)?;
        if seen < MIGRATION_BATCH {
            return Ok(());
        }
    }
}

fn open_db(dir: &Path, cache_bytes: u64, lock_wait_ms: u64) -> Result<sled::Db, StoreError> {
    let config = sled::Config::new().path(dir).cache_capacity(cache_bytes).flush_every_ms(None);
    open_waiting(&config, std::time::Duration::from_millis(lock_wait_ms))
        .map_err(|source| StoreError::Open { dir: dir.to_path_buf(), source })
}

/// Replaces an order's summary and moves its index entries to its new update time and status.
fn write_order_indexes(
    summaries: &TransactionalTree,
    by_updated: &TransactionalTree,
    by_status: &TransactionalTree,
    order: &OrderSummary,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    let id = order.id;
    let stored = summary::encode(order).map_err(ConflictableTransactionError::Abort)?;
    if let Some(old) = summaries.insert(id.as_bytes(), stored)? {
        let old = summary::decode(id, &old).map_err(ConflictableTransactionError::Abort)?;
        by_updated.remove(keys::updated(old.updated_at.0, id))?;
        by_status.remove(keys::status_updated(old.order_status, old.updated_at.0, id))?;
    }
    by_updated.insert(keys::updated(order.updated_at.0, id), &[])?;
    by_status.insert(keys::status_updated(order.order_status, order.updated_at.0, id), &[])?;
    Ok(())
}
