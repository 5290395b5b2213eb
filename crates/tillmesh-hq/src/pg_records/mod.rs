//! The PostgreSQL [`RecordStore`]: the seed's `sync_orders` and `transactions` tables (money in
//! integer cents), for HQs that outgrow one machine: several HQ processes share one database.
//!
//! Batches run one at a time across every process: [`RecordStore::begin`] opens a transaction
//! and takes a transaction-scoped advisory lock ([`BATCH_LOCK_KEY`]), held until commit or
//! rollback. Change-feed positions and HQ's assigned numbers are counters read under that lock
//! when the batch begins, advanced in memory and written back by the batch's commit, so positions
//! increase in commit order (a reader paging the feed by position never skips a record committed
//! later) and a rolled-back batch leaves no trace, not even a gap.
//!
//! The lock is held for as few round trips as possible, whatever the batch's size. A batch runs
//! on a connection the process keeps for its batches; one simple query begins the transaction,
//! takes the lock and reads the counters. Most reads of a batch ask for records and numbers that
//! do not exist yet (a new order is looked up by `localId` and its number checked before it is
//! stored), so the batch is told the keys it carries ([`RecordBatch::read_ahead`]: the `localId`s
//! and numbers of the records a client sent) and reads them with one more statement
//! (`local_id = ANY($1) OR order_number = ANY($2)`, and likewise for transactions); a lookup of
//! those keys is then answered from memory, found or absent, and any other key is read when
//! asked. Every answer comes from the database under the lock, so rows written by other means
//! (an administrator, a restore) are seen as they are. The batch keeps its writes in memory (its
//! own reads see them) and [`RecordBatch::commit`] writes them all with one statement (an
//! `UNNEST` of one array per column for each table; before it, one more deletes the lines of
//! orders stored before), then commits. Every read, inside a batch or not, is one statement (an
//! order's lines come aggregated into arrays on its row), so a record and its order lines come
//! from one snapshot.
//!
//! What `/metrics` and `/api/health` report ([`RecordStore::counts`]: records by kind, devices
//! whose token is valid, conflict-log entries) is kept in the same counters table, so reading it is one lookup however
//! many records there are: a batch's statement advances the record and conflict counts with the
//! rows it writes (a record counts as new when the statement's snapshot, taken before its
//! inserts, has no row with its `localId`), trimming the conflict log takes back what it drops,
//! adding a device counts it in its insert and revoking it takes it back. The counts live in the database rather than in
//! each process's memory because several processes write one database, and a process would not
//! see the others' inserts; migration `0003` counted the rows a database held before.
//!
//! # Layout
//! - `rows`: a record's columns in SQL (an order's lines aggregated on its row) and decoding a
//!   row.
//! - `batch`: [`PgBatch`]: beginning (transaction, lock, counters), reads ahead and one by one,
//!   puts in memory, commit.
//! - `write`: the statement a commit writes records, lines, conflicts and counters with.
//! - `reads`: a record, the change feed, every record's version.
//! - `counters`: the feed's end and the counts, from `legacy_counters`.
//! - `devices`: legacy devices, their tokens' hashes and revocations.
//! - `conflicts`: the conflict log, read newest first and trimmed at commit.

mod batch;
mod conflicts;
mod counters;
mod devices;
mod reads;
mod rows;
mod write;

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool};
use tillmesh_core::Timestamp;
use tillmesh_core::legacy::Since;
use tokio::sync::Mutex;
use uuid::Uuid;

pub use batch::{BATCH_LOCK_KEY, PgBatch};

use crate::records::{
    ConflictEntry, LegacyDevice, Record, RecordCounts, RecordError, RecordStore, RecordVersion,
};
use tillmesh_core::legacy::RecordKind;

/// Most connections one [`PgRecords`] opens: a pool for reads and one kept for batches.
pub const POOL_CONNECTIONS_MAX: u32 = 8;

/// How long an operation waits for a free pooled connection before failing.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The schema migrations, embedded.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Legacy records in PostgreSQL.
#[derive(Debug)]
pub struct PgRecords {
    pool: PgPool,
    /// Batches of this process queue here rather than each holding a pooled connection while
    /// it waits for the advisory lock, which would starve reads of connections. It holds the
    /// connection the last batch committed on, kept out of the pool for the next one: a pooled
    /// connection costs a round trip to check it out (and one to check it in).
    batch_conn: Mutex<Option<PgConnection>>,
}

impl PgRecords {
    /// Connects to the database at `url` (`postgres://user@host:5432/db`) and brings its schema
    /// up to date (safe when several HQ processes start at once: migrations take a lock).
    pub async fn connect(url: &str) -> Result<PgRecords, RecordError> {
        let options: PgConnectOptions = url.parse()?;
        PgRecords::connect_with(options).await
    }

    /// [`PgRecords::connect`] with options already parsed.
    pub async fn connect_with(options: PgConnectOptions) -> Result<PgRecords, RecordError> {
        let pool = PgPoolOptions::new()
            // One less: batches keep a connection of their own.
            .max_connections(POOL_CONNECTIONS_MAX - 1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(PgRecords { pool, batch_conn: Mutex::new(None) })
    }

    /// The connection pool (without the connection batches keep).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

impl Drop for PgRecords {
    fn drop(&mut self) {
        if let Some(conn) = self.batch_conn.get_mut().take() {
            batch::close_in_background(conn);
        }
    }
}

impl RecordStore for PgRecords {
    type Batch<'a> = PgBatch<'a>;

    async fn begin(&self) -> Result<PgBatch<'_>, RecordError> {
        batch::begin(&self.pool, &self.batch_conn).await
    }

    async fn get(&self, kind: RecordKind, local_id: Uuid) -> Result<Option<Record>, RecordError> {
        let mut conn = self.pool.acquire().await?;
        reads::fetch_record(&mut conn, kind, local_id).await
    }

    async fn changes(&self, since: Since, limit: usize) -> Result<Vec<Record>, RecordError> {
        reads::changes(&self.pool, since, limit).await
    }

    async fn last_position(&self) -> Result<u64, RecordError> {
        counters::last_position(&self.pool).await
    }

    async fn versions(&self) -> Result<Vec<RecordVersion>, RecordError> {
        reads::versions(&self.pool).await
    }

    async fn counts(&self) -> Result<RecordCounts, RecordError> {
        counters::counts(&self.pool).await
    }

    async fn add_device(
        &self,
        device_id: &str,
        token_sha256: &str,
        at: Timestamp,
    ) -> Result<(), RecordError> {
        devices::add_device(&self.pool, device_id, token_sha256, at).await
    }

    async fn revoke_device(&self, device_id: &str, at: Timestamp) -> Result<LegacyDevice, RecordError> {
        devices::revoke_device(&self.pool, device_id, at).await
    }

    async fn devices(&self) -> Result<Vec<LegacyDevice>, RecordError> {
        devices::devices(&self.pool).await
    }

    async fn device(&self, device_id: &str) -> Result<Option<LegacyDevice>, RecordError> {
        devices::device(&self.pool, device_id).await
    }

    async fn device_of(&self, token_sha256: &str) -> Result<Option<LegacyDevice>, RecordError> {
        devices::device_of(&self.pool, token_sha256).await
    }

    async fn conflicts(&self, limit: usize) -> Result<Vec<ConflictEntry>, RecordError> {
        conflicts::newest(&self.pool, limit).await
    }
}
