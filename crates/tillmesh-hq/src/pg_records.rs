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
//! takes the lock and reads the counters. The batch keeps its writes in memory (its own reads see
//! them) and [`RecordBatch::commit`] writes them all with one statement (an `UNNEST` of one
//! array per column for each table; before it, one more deletes the lines of orders stored
//! before), then commits. Every read, inside a batch or not, is one statement (an order's lines
//! come aggregated into arrays on its row), so a record and its order lines come from one
//! snapshot.
//!
//! Most reads of a batch ask for records and numbers that do not exist yet (a new order is
//! looked up by `localId` and its number checked before it is stored), so each process keeps a
//! Bloom filter of the keys (`localId`s and numbers, per kind) the database may hold: a key it
//! has never seen is answered "absent" without a query. The filter is loaded when the store
//! connects and kept complete up to a change-feed position: every write goes through a batch and
//! moves the records it writes past the position counter, so a batch, once it holds the lock,
//! adds the keys of every record past the filter's position (other processes' writes, usually
//! none) in the round trip that reads the counters. The database must therefore only be written
//! through [`PgRecords`].
//!
//! What `/metrics` and `/api/health` report ([`RecordStore::counts`]: records by kind, devices,
//! conflict-log entries) is kept in the same counters table, so reading it is one lookup however
//! many records there are: a batch's statement advances the record and conflict counts with the
//! rows it writes (a record counts as new when the statement's snapshot, taken before its
//! inserts, has no row with its `localId`), trimming the conflict log takes back what it drops,
//! and adding a device counts it in its insert. The counts live in the database rather than in
//! each process's memory because several processes write one database, and a process would not
//! see the others' inserts; migration `0003` counted the rows a database held before.
//!
//! UUIDs travel as text (`$1::uuid`, `id::text`): the workspace builds sqlx without its `uuid`
//! feature.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{Connection, Executor, PgConnection, PgPool, Row};
use tillmesh_core::legacy::{
    FieldConflict, LegacyItem, LegacyNames, LegacyOrder, LegacyTransaction, Named, Since,
};
use tillmesh_core::{Amount, DocKind, Quantity, Timestamp};
use tokio::sync::{Mutex, MutexGuard};
use uuid::Uuid;

use crate::records::{
    CONFLICTS_KEPT, ConflictEntry, Record, RecordBatch, RecordBody, RecordCounts, RecordError, RecordStore,
    RecordVersion,
};

/// The key of the advisory lock that makes batches exclusive across processes (`tillmesh` in
/// ASCII).
pub const BATCH_LOCK_KEY: i64 = 0x7469_6c6c_6d65_7368;

/// Most connections one [`PgRecords`] opens: a pool for reads and one kept for batches.
pub const POOL_CONNECTIONS_MAX: u32 = 8;

/// How long an operation waits for a free pooled connection before failing.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Rows per page when the key filter is loaded.
const KEYS_PAGE: i64 = 10_000;

/// The schema migrations, embedded.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The columns of an order record as [`decode_record`] reads them (without `document`), from
/// [`ORDER_FROM`]: its lines come as arrays in line order (null when it has none).
const ORDER_COLUMNS: &str = "'order' AS kind, id::text AS id, local_id::text AS local_id, client_id, \
     order_number AS number, subtotal_cents, tax_cents, total_cents AS amount_cents, payment_method, \
     payment_status, order_status, NULL::text AS paid_order, device_id, written_by, sync_version, \
     server_hash, heads, deleted, logged_conflict, created_at, updated_at, changed_at, position, \
     items.item_product_ids, items.item_product_names, items.item_quantities, \
     items.item_unit_prices_cents, items.item_total_prices_cents";

/// Orders with their lines aggregated (one row per order).
const ORDER_FROM: &str = "sync_orders LEFT JOIN LATERAL ( \
       SELECT array_agg(product_id ORDER BY line) AS item_product_ids, \
         array_agg(product_name ORDER BY line) AS item_product_names, \
         array_agg(quantity_thousandths ORDER BY line) AS item_quantities, \
         array_agg(unit_price_cents ORDER BY line) AS item_unit_prices_cents, \
         array_agg(total_price_cents ORDER BY line) AS item_total_prices_cents \
       FROM sync_order_items WHERE sync_order_items.order_id = sync_orders.id \
     ) AS items ON true";

/// The columns of a transaction record, in the same shape as [`ORDER_COLUMNS`].
const TRANSACTION_COLUMNS: &str = "'transaction' AS kind, id::text AS id, local_id::text AS local_id, \
     client_id, reference_number AS number, NULL::bigint AS subtotal_cents, NULL::bigint AS tax_cents, \
     amount_cents, payment_method, status AS payment_status, NULL::text AS order_status, \
     order_id AS paid_order, device_id, written_by, sync_version, server_hash, heads, deleted, \
     logged_conflict, created_at, updated_at, changed_at, position, \
     NULL::text[] AS item_product_ids, NULL::text[] AS item_product_names, \
     NULL::bigint[] AS item_quantities, NULL::bigint[] AS item_unit_prices_cents, \
     NULL::bigint[] AS item_total_prices_cents";

/// Transactions, in the shape of [`ORDER_FROM`].
const TRANSACTION_FROM: &str = "transactions";

/// Legacy records in PostgreSQL.
#[derive(Debug)]
pub struct PgRecords {
    pool: PgPool,
    /// Batches of this process queue here rather than each holding a pooled connection while
    /// it waits for the advisory lock, which would starve reads of connections. The batch
    /// holding it keeps the key filter current.
    local: Mutex<Known>,
}

/// What the process's batches keep between them: their connection and the key filter.
#[derive(Debug)]
struct Known {
    /// Every record at or before this position (the counter's value) has its keys in `filter`.
    position: u64,
    filter: KeyFilter,
    /// The connection the last batch committed on, kept out of the pool for the next one: a
    /// pooled connection costs a round trip to check it out (and one to check it in).
    conn: Option<PgConnection>,
}

/// Closes `conn` gracefully without waiting (the server rolls back a transaction it left open,
/// releasing the batch lock); drops it (closing its socket) outside a runtime.
fn close_in_background(conn: PgConnection) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let _ = conn.close().await;
        });
    }
}

/// A key of the database: a record's `localId` or a number, per kind.
#[derive(Debug, Hash)]
enum Key<'a> {
    LocalId(DocKind, Uuid),
    Number(DocKind, &'a str),
}

impl Key<'_> {
    /// Two independent hashes of the key, for double hashing (the second is odd).
    fn hashes(&self) -> (u64, u64) {
        let hash = |salt: u8| {
            let mut hasher = std::hash::DefaultHasher::new();
            salt.hash(&mut hasher);
            self.hash(&mut hasher);
            hasher.finish()
        };
        (hash(1), hash(2) | 1)
    }
}

/// Bits per key of a filter layer (rounded up to a power of two) and bits set per key: one false
/// positive in about 2,000 lookups per layer.
const FILTER_BITS_PER_KEY: usize = 16;
const FILTER_HASHES: u64 = 11;
/// Keys of the first layer, at least.
const FILTER_FIRST_CAPACITY: usize = 1 << 16;

/// A Bloom filter that grows by layers of doubling capacity: "absent" is certain, "present"
/// means "ask the database". About 2 bytes per key.
#[derive(Debug, Default)]
struct KeyFilter {
    layers: Vec<FilterLayer>,
}

#[derive(Debug)]
struct FilterLayer {
    words: Vec<u64>,
    /// Bits minus one (bits are a power of two).
    mask: u64,
    capacity: usize,
    count: usize,
}

impl FilterLayer {
    fn new(capacity: usize) -> FilterLayer {
        let bits = capacity.saturating_mul(FILTER_BITS_PER_KEY).next_power_of_two().max(64);
        FilterLayer { words: vec![0; bits / 64], mask: bits as u64 - 1, capacity, count: 0 }
    }

    fn bits(&self, (first, second): (u64, u64)) -> impl Iterator<Item = (usize, u64)> + '_ {
        (0..FILTER_HASHES).map(move |index| {
            let bit = first.wrapping_add(index.wrapping_mul(second)) & self.mask;
            ((bit / 64) as usize, 1 << (bit % 64))
        })
    }

    fn contains(&self, hashes: (u64, u64)) -> bool {
        self.bits(hashes).all(|(word, bit)| self.words[word] & bit != 0)
    }
}

impl KeyFilter {
    /// An empty filter sized for about `keys` keys.
    fn with_capacity(keys: usize) -> KeyFilter {
        KeyFilter { layers: vec![FilterLayer::new(keys.max(FILTER_FIRST_CAPACITY))] }
    }

    fn may_contain(&self, key: &Key<'_>) -> bool {
        let hashes = key.hashes();
        self.layers.iter().any(|layer| layer.contains(hashes))
    }

    fn insert(&mut self, key: &Key<'_>) {
        let hashes = key.hashes();
        if self.layers.iter().any(|layer| layer.contains(hashes)) {
            return;
        }
        if self.layers.last().is_none_or(|layer| layer.count >= layer.capacity) {
            let capacity = self.layers.last().map_or(FILTER_FIRST_CAPACITY, |layer| layer.capacity * 2);
            self.layers.push(FilterLayer::new(capacity));
        }
        if let Some(layer) = self.layers.last_mut() {
            let bits: Vec<(usize, u64)> = layer.bits(hashes).collect();
            for (word, bit) in bits {
                layer.words[word] |= bit;
            }
            layer.count += 1;
        }
    }

    /// Adds the keys of a record.
    fn insert_record(&mut self, kind: DocKind, local_id: Uuid, number: &str) {
        self.insert(&Key::LocalId(kind, local_id));
        self.insert(&Key::Number(kind, number));
    }

    /// Adds the keys of rows of [`keys_sql`].
    fn insert_rows<'r>(&mut self, rows: impl IntoIterator<Item = &'r PgRow>) -> Result<(), RecordError> {
        for row in rows {
            let kind = parse_kind(row.try_get("key_kind")?)?;
            let local_id = parse_uuid(row.try_get("key_local_id")?, "local_id")?;
            self.insert_record(kind, local_id, row.try_get("key_number")?);
        }
        Ok(())
    }
}

/// The keys of every record after position `after` (`key_kind`, `key_local_id`, `key_number`,
/// `key_position`).
fn keys_sql(after: u64) -> String {
    let after = position_bound(after);
    format!(
        "SELECT 'order' AS key_kind, local_id::text AS key_local_id, order_number AS key_number, \
           position AS key_position FROM sync_orders WHERE position > {after} \
         UNION ALL \
         SELECT 'transaction', local_id::text, reference_number, position FROM transactions \
         WHERE position > {after}"
    )
}

/// The key filter of the database `pool` reaches, read from one snapshot, page by page.
async fn load_known(pool: &PgPool) -> Result<Known, RecordError> {
    let mut snapshot = pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
    let row = sqlx::query(
        "SELECT (SELECT value FROM legacy_counters WHERE name = 'position') AS position, \
           (SELECT sum(value) FROM legacy_counters WHERE name IN ('orders', 'transactions'))::bigint \
             AS records",
    )
    .fetch_one(&mut *snapshot)
    .await?;
    let position: Option<i64> = row.try_get("position")?;
    let position = counter_value(position.ok_or_else(|| corrupt("counter position missing"))?, "position")?;
    let records: Option<i64> = row.try_get("records")?;
    let records = records.ok_or_else(|| corrupt("record counters missing"))?;
    // Two keys a record, and room to grow as much again.
    let mut filter = KeyFilter::with_capacity(usize::try_from(records).unwrap_or(0).saturating_mul(4));
    let mut after = 0;
    loop {
        let sql = format!("{} ORDER BY key_position LIMIT {KEYS_PAGE}", keys_sql(after));
        let conn: &mut PgConnection = &mut snapshot;
        let rows = conn.fetch_all(sql.as_str()).await?;
        filter.insert_rows(&rows)?;
        let Some(last) = rows.last() else { break };
        after = counter_value(last.try_get("key_position")?, "key position")?;
        if rows.len() < KEYS_PAGE as usize {
            break;
        }
    }
    snapshot.commit().await?;
    Ok(Known { position, filter, conn: None })
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
        let known = load_known(&pool).await?;
        Ok(PgRecords { pool, local: Mutex::new(known) })
    }

    /// The connection pool (without the connection batches keep).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

impl Drop for PgRecords {
    fn drop(&mut self) {
        if let Some(conn) = self.local.get_mut().conn.take() {
            close_in_background(conn);
        }
    }
}

fn corrupt(what: impl Into<String>) -> RecordError {
    RecordError::Corrupt { what: what.into() }
}

fn table(kind: DocKind) -> &'static str {
    match kind {
        DocKind::Order => "sync_orders",
        DocKind::Transaction => "transactions",
    }
}

fn number_column(kind: DocKind) -> &'static str {
    match kind {
        DocKind::Order => "order_number",
        DocKind::Transaction => "reference_number",
    }
}

fn columns(kind: DocKind) -> &'static str {
    match kind {
        DocKind::Order => ORDER_COLUMNS,
        DocKind::Transaction => TRANSACTION_COLUMNS,
    }
}

fn from(kind: DocKind) -> &'static str {
    match kind {
        DocKind::Order => ORDER_FROM,
        DocKind::Transaction => TRANSACTION_FROM,
    }
}

fn parse_kind(text: &str) -> Result<DocKind, RecordError> {
    match text {
        "order" => Ok(DocKind::Order),
        "transaction" => Ok(DocKind::Transaction),
        other => Err(corrupt(format!("record kind {other:?}"))),
    }
}

fn parse_uuid(text: &str, what: &str) -> Result<Uuid, RecordError> {
    Uuid::parse_str(text).map_err(|_| corrupt(format!("{what} {text:?}")))
}

/// Parses a status or method column with its `FromStr`.
fn parse_column<T: std::str::FromStr>(text: &str, column: &str) -> Result<T, RecordError> {
    text.parse().map_err(|_| corrupt(format!("{column} {text:?}")))
}

/// A status or method column: the name a client sent.
fn parse_name<T: LegacyNames>(text: &str, column: &'static str) -> Result<Named<T>, RecordError> {
    Named::parse(column, text).map_err(|_| corrupt(format!("{column} {text:?}")))
}

/// A change-feed position as PostgreSQL stores it (`BIGINT`); positions past `i64::MAX` are
/// never assigned, so a larger bound means "after everything".
fn position_bound(position: u64) -> i64 {
    i64::try_from(position).unwrap_or(i64::MAX)
}

fn position_of(row: &PgRow) -> Result<u64, RecordError> {
    let position: i64 = row.try_get("position")?;
    u64::try_from(position).map_err(|_| corrupt(format!("position {position}")))
}

/// A counter's value read from the database, as a count.
fn counter_value(value: i64, name: &str) -> Result<u64, RecordError> {
    u64::try_from(value).map_err(|_| corrupt(format!("{name} counter {value}")))
}

/// Decodes a row of [`ORDER_COLUMNS`] or [`TRANSACTION_COLUMNS`] (plus `document`, possibly
/// null), an order with its lines.
fn decode_record(row: &PgRow) -> Result<Record, RecordError> {
    let kind = parse_kind(row.try_get("kind")?)?;
    let required = |column: &str| -> Result<i64, RecordError> {
        let value: Option<i64> = row.try_get(column)?;
        value.ok_or_else(|| corrupt(format!("{column} is null")))
    };
    let payment_method: Option<String> = row.try_get("payment_method")?;
    let payment_method = payment_method.map(|text| parse_name(&text, "payment_method")).transpose()?;
    let payment_status = parse_name(row.try_get("payment_status")?, "payment_status")?;
    let client_id: String = row.try_get("client_id")?;
    let number: String = row.try_get("number")?;
    let created_at = Timestamp(row.try_get("created_at")?);
    let updated_at = Timestamp(row.try_get("updated_at")?);
    let body = match kind {
        DocKind::Order => {
            let order_status: Option<&str> = row.try_get("order_status")?;
            RecordBody::Order(LegacyOrder {
                id: client_id,
                order_number: number,
                items: decode_items(row)?,
                subtotal: Amount::from_minor(required("subtotal_cents")?),
                tax: Amount::from_minor(required("tax_cents")?),
                total: Amount::from_minor(required("amount_cents")?),
                payment_method,
                payment_status,
                order_status: parse_name(order_status.unwrap_or_default(), "order_status")?,
                created_at,
                updated_at,
            })
        }
        DocKind::Transaction => {
            let paid_order: Option<String> = row.try_get("paid_order")?;
            RecordBody::Transaction(LegacyTransaction {
                id: client_id,
                reference_number: number,
                amount: Amount::from_minor(required("amount_cents")?),
                payment_method: payment_method
                    .ok_or_else(|| corrupt("transaction payment_method is null"))?,
                status: payment_status,
                order_id: paid_order.ok_or_else(|| corrupt("transaction order_id is null"))?,
                created_at,
                updated_at,
            })
        }
    };
    let document: Option<Vec<u8>> = row.try_get("document")?;
    Ok(Record {
        local_id: parse_uuid(row.try_get("local_id")?, "local_id")?,
        doc_id: parse_uuid(row.try_get("id")?, "id")?,
        device_id: row.try_get("device_id")?,
        written_by: row.try_get("written_by")?,
        sync_version: row.try_get("sync_version")?,
        server_hash: row.try_get("server_hash")?,
        heads: row.try_get("heads")?,
        deleted: row.try_get("deleted")?,
        body,
        logged_conflict: row.try_get("logged_conflict")?,
        changed_at: Timestamp(row.try_get("changed_at")?),
        position: position_of(row)?,
        document: document.unwrap_or_default(),
    })
}

/// The lines of an order row of [`ORDER_COLUMNS`], in line order.
fn decode_items(row: &PgRow) -> Result<Vec<LegacyItem>, RecordError> {
    let product_ids: Option<Vec<String>> = row.try_get("item_product_ids")?;
    let Some(product_ids) = product_ids else { return Ok(Vec::new()) };
    let product_names: Option<Vec<String>> = row.try_get("item_product_names")?;
    let quantities: Option<Vec<i64>> = row.try_get("item_quantities")?;
    let unit_prices: Option<Vec<i64>> = row.try_get("item_unit_prices_cents")?;
    let total_prices: Option<Vec<i64>> = row.try_get("item_total_prices_cents")?;
    let (product_names, quantities, unit_prices, total_prices) = (
        product_names.unwrap_or_default(),
        quantities.unwrap_or_default(),
        unit_prices.unwrap_or_default(),
        total_prices.unwrap_or_default(),
    );
    let count = product_ids.len();
    if [product_names.len(), quantities.len(), unit_prices.len(), total_prices.len()] != [count; 4] {
        return Err(corrupt("order lines of unequal lengths"));
    }
    Ok(product_ids
        .into_iter()
        .zip(product_names)
        .zip(quantities.into_iter().zip(unit_prices).zip(total_prices))
        .map(|((product_id, product_name), ((quantity, unit_price), total_price))| LegacyItem {
            product_id,
            product_name,
            quantity: Quantity::from_thousandths(quantity),
            unit_price: Amount::from_minor(unit_price),
            total_price: Amount::from_minor(total_price),
        })
        .collect())
}

/// The record of `kind` with `local_id`, with its document and lines, in one statement.
async fn fetch_record(
    conn: &mut PgConnection,
    kind: DocKind,
    local_id: Uuid,
) -> Result<Option<Record>, RecordError> {
    let sql = format!("SELECT {}, document FROM {} WHERE local_id = $1::uuid", columns(kind), from(kind));
    let row = sqlx::query(&sql).bind(local_id.to_string()).fetch_optional(&mut *conn).await?;
    row.as_ref().map(decode_record).transpose()
}

impl RecordStore for PgRecords {
    type Batch<'a> = PgBatch<'a>;

    async fn begin(&self) -> Result<PgBatch<'_>, RecordError> {
        let mut known = self.local.lock().await;
        // One round trip: the transaction, the lock, then the counters and the keys written since
        // the filter's position. The statements of one simple query take a snapshot each, so
        // these read once the lock is held (a statement that also took the lock would read the
        // database as it was before waiting for it).
        let sql = format!(
            "BEGIN; \
             SELECT pg_advisory_xact_lock({BATCH_LOCK_KEY}); \
             SELECT name, value FROM legacy_counters WHERE name IN ('position', 'assigned'); \
             {}",
            keys_sql(known.position)
        );
        let (conn, rows) = loop {
            let kept = known.conn.take();
            let fresh = kept.is_none();
            let mut conn = match kept {
                Some(conn) => conn,
                None => self.pool.acquire().await?.detach(),
            };
            // A query without arguments goes as a simple query, which may hold several statements.
            let executor: &mut PgConnection = &mut conn;
            match executor.fetch_all(sql.as_str()).await {
                Ok(rows) => break (conn, rows),
                Err(error) => {
                    close_in_background(conn);
                    if fresh {
                        return Err(error.into());
                    }
                    // The kept connection may have been lost (the server restarted, an
                    // administrator ended it): once more on a new one, which has nothing to undo.
                }
            }
        };
        let mut batch = PgBatch {
            conn: Some(conn),
            known,
            records: HashMap::new(),
            numbers: HashMap::new(),
            conflicts: Vec::new(),
            position: 0,
            assigned: 0,
            counters_read: (0, 0),
        };
        // From here on an error drops the batch, which ends its transaction.
        let known = &mut batch.known;
        known.filter.insert_rows(rows.iter().filter(|row| row.try_column("key_kind").is_ok()))?;
        let (mut position, mut assigned) = (None, None);
        for row in rows.iter().filter(|row| row.try_column("name").is_ok()) {
            let value = row.try_get::<i64, _>("value")?;
            match row.try_get::<&str, _>("name")? {
                "position" => position = Some(counter_value(value, "position")?),
                "assigned" => assigned = Some(counter_value(value, "assigned")?),
                _ => {}
            }
        }
        let position = position.ok_or_else(|| corrupt("counter position missing"))?;
        let assigned = assigned.ok_or_else(|| corrupt("counter assigned missing"))?;
        if position < known.position {
            // The database went back (restored?): what the filter holds is not its keys.
            let rows = batch.conn().fetch_all(keys_sql(0).as_str()).await?;
            let known = &mut batch.known;
            known.filter = KeyFilter::with_capacity(rows.len().saturating_mul(2));
            known.filter.insert_rows(&rows)?;
        }
        batch.known.position = position;
        batch.position = position;
        batch.assigned = assigned;
        batch.counters_read = (position, assigned);
        Ok(batch)
    }

    async fn get(&self, kind: DocKind, local_id: Uuid) -> Result<Option<Record>, RecordError> {
        let mut conn = self.pool.acquire().await?;
        fetch_record(&mut conn, kind, local_id).await
    }

    async fn changes(&self, since: Since, limit: usize) -> Result<Vec<Record>, RecordError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (after_position, after_time) = match since {
            Since::Token(position) => (position_bound(position), None),
            Since::Time(time) => (0, Some(time.millis())),
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // Each branch stops at `limit` by its position index; the merge keeps the first `limit`.
        // One statement, so orders, transactions and lines come from one snapshot.
        let sql = format!(
            "SELECT * FROM ( \
               (SELECT {ORDER_COLUMNS}, NULL::bytea AS document FROM {ORDER_FROM} \
                WHERE position > $1 AND ($2::bigint IS NULL OR changed_at > $2) ORDER BY position LIMIT $3) \
               UNION ALL \
               (SELECT {TRANSACTION_COLUMNS}, NULL::bytea AS document FROM {TRANSACTION_FROM} \
                WHERE position > $1 AND ($2::bigint IS NULL OR changed_at > $2) ORDER BY position LIMIT $3) \
             ) AS feed ORDER BY position LIMIT $3"
        );
        let rows =
            sqlx::query(&sql).bind(after_position).bind(after_time).bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(decode_record).collect()
    }

    async fn last_position(&self) -> Result<u64, RecordError> {
        let position: Option<i64> =
            sqlx::query_scalar("SELECT value FROM legacy_counters WHERE name = 'position'")
                .fetch_optional(&self.pool)
                .await?;
        counter_value(position.ok_or_else(|| corrupt("counter position missing"))?, "position")
    }

    async fn versions(&self) -> Result<Vec<RecordVersion>, RecordError> {
        // In the sled store's order: orders, then transactions, each by localId's bytes.
        let rows = sqlx::query(
            "SELECT kind, local_id::text AS local_id, id::text AS id, heads FROM ( \
               SELECT 'order' AS kind, local_id, id, heads FROM sync_orders \
               UNION ALL \
               SELECT 'transaction' AS kind, local_id, id, heads FROM transactions \
             ) AS records ORDER BY records.kind, records.local_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(RecordVersion {
                    kind: parse_kind(row.try_get("kind")?)?,
                    local_id: parse_uuid(row.try_get("local_id")?, "local_id")?,
                    doc_id: parse_uuid(row.try_get("id")?, "id")?,
                    heads: row.try_get("heads")?,
                })
            })
            .collect()
    }

    async fn counts(&self) -> Result<RecordCounts, RecordError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT name, value FROM legacy_counters \
             WHERE name IN ('orders', 'transactions', 'devices', 'conflicts')",
        )
        .fetch_all(&self.pool)
        .await?;
        let count = |name: &str| -> Result<u64, RecordError> {
            let (_, value) = rows
                .iter()
                .find(|(counter, _)| counter == name)
                .ok_or_else(|| corrupt(format!("counter {name} missing")))?;
            counter_value(*value, name)
        };
        Ok(RecordCounts {
            orders: count("orders")?,
            transactions: count("transactions")?,
            devices: count("devices")?,
            conflicts: count("conflicts")?,
        })
    }

    async fn add_device(
        &self,
        device_id: &str,
        token_sha256: &str,
        at: Timestamp,
    ) -> Result<(), RecordError> {
        let inserted = sqlx::query(
            "WITH added AS ( \
               INSERT INTO legacy_devices (token_sha256, device_id, created_at) VALUES ($1, $2, $3) \
               RETURNING device_id \
             ) \
             UPDATE legacy_counters SET value = value + (SELECT count(*) FROM added) WHERE name = 'devices'",
        )
        .bind(token_sha256)
        .bind(device_id)
        .bind(at.millis())
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(error))
                if error.is_unique_violation()
                    && error.constraint() == Some("legacy_devices_device_id_unique") =>
            {
                Err(RecordError::DeviceExists { device_id: device_id.to_string() })
            }
            Err(error) => Err(error.into()),
        }
    }

    async fn device_of(&self, token_sha256: &str) -> Result<Option<String>, RecordError> {
        Ok(sqlx::query_scalar("SELECT device_id FROM legacy_devices WHERE token_sha256 = $1")
            .bind(token_sha256)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn conflicts(&self, limit: usize) -> Result<Vec<ConflictEntry>, RecordError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = sqlx::query(
            "SELECT at, kind, local_id::text AS local_id, doc_id::text AS doc_id, device_id, field, \
             client_value, server_value, resolution FROM legacy_conflicts ORDER BY seq DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ConflictEntry {
                    at: Timestamp(row.try_get("at")?),
                    kind: parse_kind(row.try_get("kind")?)?,
                    local_id: parse_uuid(row.try_get("local_id")?, "conflict local_id")?,
                    doc_id: parse_uuid(row.try_get("doc_id")?, "conflict doc_id")?,
                    device_id: row.try_get("device_id")?,
                    conflict: FieldConflict {
                        field: row.try_get("field")?,
                        client_value: row.try_get("client_value")?,
                        server_value: row.try_get("server_value")?,
                        resolution: parse_column(row.try_get("resolution")?, "resolution")?,
                    },
                })
            })
            .collect()
    }
}
/// A batch over [`PgRecords`]: one database transaction holding the batch lock, and the batch's
/// writes in memory until [`RecordBatch::commit`] writes them all. Dropping it without committing
/// closes its connection, which rolls the transaction back.
#[derive(Debug)]
pub struct PgBatch<'a> {
    /// The connection in the batch's transaction, until commit.
    conn: Option<PgConnection>,
    /// The process's turn, its key filter and, after commit, the connection for the next batch.
    known: MutexGuard<'a, Known>,
    /// The records put, as last put, by kind and `localId`.
    records: HashMap<(DocKind, Uuid), Record>,
    /// Every number a record put in this batch took, by kind.
    numbers: HashMap<(DocKind, String), Uuid>,
    /// Conflicts logged, in order.
    conflicts: Vec<ConflictEntry>,
    /// The newest position, advanced by each put.
    position: u64,
    /// The last assigned number.
    assigned: u64,
    /// `(position, assigned)` as read at begin.
    counters_read: (u64, u64),
}

/// Column arrays for one multi-row `UNNEST` statement.
fn column<'a, T, U>(rows: &'a [T], value: impl Fn(&'a T) -> U) -> Vec<U> {
    rows.iter().map(value).collect()
}

/// The orders among `records`, each with its body.
fn orders_of(records: &[Record]) -> Vec<(&Record, &LegacyOrder)> {
    records
        .iter()
        .filter_map(|record| match &record.body {
            RecordBody::Order(order) => Some((record, order)),
            RecordBody::Transaction(_) => None,
        })
        .collect()
}

/// The transactions among `records`, each with its body.
fn transactions_of(records: &[Record]) -> Vec<(&Record, &LegacyTransaction)> {
    records
        .iter()
        .filter_map(|record| match &record.body {
            RecordBody::Transaction(transaction) => Some((record, transaction)),
            RecordBody::Order(_) => None,
        })
        .collect()
}

impl Drop for PgBatch<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Not committed (or its commit failed): end the transaction, and the lock with it.
            close_in_background(conn);
        }
    }
}

impl PgBatch<'_> {
    /// The connection in the batch's transaction.
    fn conn(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("a batch holds its connection until it commits")
    }

    /// Writes `records` (in their order, which is put order) with their lines, `conflicts` and
    /// the counters: the lines of orders stored before go first, then one statement does the
    /// rest.
    async fn write(&mut self, records: &[Record], conflicts: &[ConflictEntry]) -> Result<(), RecordError> {
        if records.is_empty() && conflicts.is_empty() && (self.position, self.assigned) == self.counters_read
        {
            return Ok(());
        }
        let orders = orders_of(records);
        let transactions = transactions_of(records);
        let order_local_ids = column(&orders, |(record, _)| record.local_id.to_string());
        // The lines of orders already stored go first: an order's id may change under them.
        if orders
            .iter()
            .any(|(record, _)| self.known.filter.may_contain(&Key::LocalId(DocKind::Order, record.local_id)))
        {
            sqlx::query(
                "DELETE FROM sync_order_items WHERE order_id IN \
                 (SELECT id FROM sync_orders WHERE local_id = ANY($1::uuid[]))",
            )
            .bind(&order_local_ids)
            .execute(self.conn())
            .await?;
        }

        let mut item_orders = Vec::new();
        let mut item_lines = Vec::new();
        let mut item_product_ids = Vec::new();
        let mut item_product_names = Vec::new();
        let mut item_quantities = Vec::new();
        let mut item_unit_prices = Vec::new();
        let mut item_total_prices = Vec::new();
        for (record, order) in &orders {
            for (line, item) in order.items.iter().enumerate() {
                item_orders.push(record.doc_id.to_string());
                item_lines
                    .push(i32::try_from(line).map_err(|_| corrupt("more order lines than an INT counts"))?);
                item_product_ids.push(item.product_id.as_str());
                item_product_names.push(item.product_name.as_str());
                item_quantities.push(item.quantity.thousandths());
                item_unit_prices.push(item.unit_price.minor());
                item_total_prices.push(item.total_price.minor());
            }
        }
        let counter = |count: u64, name: &str| {
            i64::try_from(count).map_err(|_| corrupt(format!("{name} counter past BIGINT")))
        };
        let (position, assigned) = (counter(self.position, "position")?, counter(self.assigned, "assigned")?);

        // Each table is written by one part, so the parts' order does not matter; rows are
        // inserted in array order, so the batch's records in put order and its conflicts in the
        // order they were logged (their `seq`). The lines' foreign keys are checked once the
        // statement is done, when their orders are in. Every part and the counters' update read
        // one snapshot, taken before the inserts: the records it finds by `localId` are those
        // stored before, so the others are the new ones the counts grow by.
        sqlx::query(
            "WITH orders AS ( \
               INSERT INTO sync_orders (id, local_id, client_id, order_number, subtotal_cents, \
                 tax_cents, total_cents, payment_method, payment_status, order_status, device_id, \
                 written_by, sync_version, server_hash, heads, deleted, logged_conflict, created_at, \
                 updated_at, changed_at, position, document) \
               SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::int8[], \
                 $6::int8[], $7::int8[], $8::text[], $9::text[], $10::text[], $11::text[], \
                 $12::text[], $13::int8[], $14::text[], $15::text[], $16::bool[], $17::text[], \
                 $18::int8[], $19::int8[], $20::int8[], $21::int8[], $22::bytea[]) \
               ON CONFLICT (local_id) DO UPDATE SET id = EXCLUDED.id, client_id = EXCLUDED.client_id, \
                 order_number = EXCLUDED.order_number, subtotal_cents = EXCLUDED.subtotal_cents, \
                 tax_cents = EXCLUDED.tax_cents, total_cents = EXCLUDED.total_cents, \
                 payment_method = EXCLUDED.payment_method, payment_status = EXCLUDED.payment_status, \
                 order_status = EXCLUDED.order_status, device_id = EXCLUDED.device_id, \
                 written_by = EXCLUDED.written_by, sync_version = EXCLUDED.sync_version, \
                 server_hash = EXCLUDED.server_hash, heads = EXCLUDED.heads, \
                 deleted = EXCLUDED.deleted, logged_conflict = EXCLUDED.logged_conflict, \
                 created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at, \
                 changed_at = EXCLUDED.changed_at, position = EXCLUDED.position, \
                 document = EXCLUDED.document \
             ), lines AS ( \
               INSERT INTO sync_order_items (order_id, line, product_id, product_name, quantity_thousandths, \
                 unit_price_cents, total_price_cents) \
               SELECT * FROM UNNEST($23::uuid[], $24::int4[], $25::text[], $26::text[], $27::int8[], \
                 $28::int8[], $29::int8[]) \
             ), payments AS ( \
               INSERT INTO transactions (id, local_id, client_id, reference_number, amount_cents, \
                 payment_method, status, order_id, device_id, written_by, sync_version, server_hash, \
                 heads, deleted, logged_conflict, created_at, updated_at, changed_at, position, \
                 document) \
               SELECT * FROM UNNEST($30::uuid[], $31::uuid[], $32::text[], $33::text[], $34::int8[], \
                 $35::text[], $36::text[], $37::text[], $38::text[], $39::text[], $40::int8[], \
                 $41::text[], $42::text[], $43::bool[], $44::text[], $45::int8[], $46::int8[], \
                 $47::int8[], $48::int8[], $49::bytea[]) \
               ON CONFLICT (local_id) DO UPDATE SET id = EXCLUDED.id, client_id = EXCLUDED.client_id, \
                 reference_number = EXCLUDED.reference_number, amount_cents = EXCLUDED.amount_cents, \
                 payment_method = EXCLUDED.payment_method, status = EXCLUDED.status, \
                 order_id = EXCLUDED.order_id, device_id = EXCLUDED.device_id, \
                 written_by = EXCLUDED.written_by, sync_version = EXCLUDED.sync_version, \
                 server_hash = EXCLUDED.server_hash, heads = EXCLUDED.heads, \
                 deleted = EXCLUDED.deleted, logged_conflict = EXCLUDED.logged_conflict, \
                 created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at, \
                 changed_at = EXCLUDED.changed_at, position = EXCLUDED.position, \
                 document = EXCLUDED.document \
             ), conflicts AS ( \
               INSERT INTO legacy_conflicts (at, kind, local_id, doc_id, device_id, field, \
                 client_value, server_value, resolution) \
               SELECT * FROM UNNEST($50::int8[], $51::text[], $52::uuid[], $53::uuid[], $54::text[], \
                 $55::text[], $56::text[], $57::text[], $58::text[]) \
             ) \
             UPDATE legacy_counters SET value = CASE name \
               WHEN 'position' THEN $59 \
               WHEN 'assigned' THEN $60 \
               WHEN 'orders' THEN value + cardinality($2::uuid[]) \
                 - (SELECT count(*) FROM sync_orders WHERE local_id = ANY($2::uuid[])) \
               WHEN 'transactions' THEN value + cardinality($31::uuid[]) \
                 - (SELECT count(*) FROM transactions WHERE local_id = ANY($31::uuid[])) \
               ELSE value + cardinality($50::int8[]) END \
             WHERE name IN ('position', 'assigned', 'orders', 'transactions', 'conflicts')",
        )
        .bind(column(&orders, |(record, _)| record.doc_id.to_string()))
        .bind(&order_local_ids)
        .bind(column(&orders, |(_, order)| order.id.as_str()))
        .bind(column(&orders, |(_, order)| order.order_number.as_str()))
        .bind(column(&orders, |(_, order)| order.subtotal.minor()))
        .bind(column(&orders, |(_, order)| order.tax.minor()))
        .bind(column(&orders, |(_, order)| order.total.minor()))
        .bind(column(&orders, |(_, order)| order.payment_method.as_ref().map(Named::name)))
        .bind(column(&orders, |(_, order)| order.payment_status.name()))
        .bind(column(&orders, |(_, order)| order.order_status.name()))
        .bind(column(&orders, |(record, _)| record.device_id.as_str()))
        .bind(column(&orders, |(record, _)| record.written_by.as_str()))
        .bind(column(&orders, |(record, _)| record.sync_version))
        .bind(column(&orders, |(record, _)| record.server_hash.as_str()))
        .bind(column(&orders, |(record, _)| record.heads.as_str()))
        .bind(column(&orders, |(record, _)| record.deleted))
        .bind(column(&orders, |(record, _)| record.logged_conflict.as_deref()))
        .bind(column(&orders, |(_, order)| order.created_at.millis()))
        .bind(column(&orders, |(_, order)| order.updated_at.millis()))
        .bind(column(&orders, |(record, _)| record.changed_at.millis()))
        .bind(column(&orders, |(record, _)| position_bound(record.position)))
        .bind(column(&orders, |(record, _)| record.document.as_slice()))
        .bind(item_orders)
        .bind(item_lines)
        .bind(item_product_ids)
        .bind(item_product_names)
        .bind(item_quantities)
        .bind(item_unit_prices)
        .bind(item_total_prices)
        .bind(column(&transactions, |(record, _)| record.doc_id.to_string()))
        .bind(column(&transactions, |(record, _)| record.local_id.to_string()))
        .bind(column(&transactions, |(_, transaction)| transaction.id.as_str()))
        .bind(column(&transactions, |(_, transaction)| transaction.reference_number.as_str()))
        .bind(column(&transactions, |(_, transaction)| transaction.amount.minor()))
        .bind(column(&transactions, |(_, transaction)| transaction.payment_method.name()))
        .bind(column(&transactions, |(_, transaction)| transaction.status.name()))
        .bind(column(&transactions, |(_, transaction)| transaction.order_id.as_str()))
        .bind(column(&transactions, |(record, _)| record.device_id.as_str()))
        .bind(column(&transactions, |(record, _)| record.written_by.as_str()))
        .bind(column(&transactions, |(record, _)| record.sync_version))
        .bind(column(&transactions, |(record, _)| record.server_hash.as_str()))
        .bind(column(&transactions, |(record, _)| record.heads.as_str()))
        .bind(column(&transactions, |(record, _)| record.deleted))
        .bind(column(&transactions, |(record, _)| record.logged_conflict.as_deref()))
        .bind(column(&transactions, |(_, transaction)| transaction.created_at.millis()))
        .bind(column(&transactions, |(_, transaction)| transaction.updated_at.millis()))
        .bind(column(&transactions, |(record, _)| record.changed_at.millis()))
        .bind(column(&transactions, |(record, _)| position_bound(record.position)))
        .bind(column(&transactions, |(record, _)| record.document.as_slice()))
        .bind(column(conflicts, |entry| entry.at.millis()))
        .bind(column(conflicts, |entry| entry.kind.as_str()))
        .bind(column(conflicts, |entry| entry.local_id.to_string()))
        .bind(column(conflicts, |entry| entry.doc_id.to_string()))
        .bind(column(conflicts, |entry| entry.device_id.as_str()))
        .bind(column(conflicts, |entry| entry.conflict.field.as_str()))
        .bind(column(conflicts, |entry| entry.conflict.client_value.as_deref()))
        .bind(column(conflicts, |entry| entry.conflict.server_value.as_deref()))
        .bind(column(conflicts, |entry| entry.conflict.resolution.as_str()))
        .bind(position)
        .bind(assigned)
        .execute(self.conn())
        .await?;
        Ok(())
    }
}

impl RecordBatch for PgBatch<'_> {
    async fn get(&mut self, kind: DocKind, local_id: Uuid) -> Result<Option<Record>, RecordError> {
        if let Some(record) = self.records.get(&(kind, local_id)) {
            return Ok(Some(record.clone()));
        }
        if !self.known.filter.may_contain(&Key::LocalId(kind, local_id)) {
            return Ok(None);
        }
        fetch_record(self.conn(), kind, local_id).await
    }

    async fn number_owner(&mut self, kind: DocKind, number: &str) -> Result<Option<Uuid>, RecordError> {
        // A number stays taken until commit even once the record holding it was put again with
        // another (the batch remembers every number its puts took, and the database still has
        // the record's old one), so no two of the batch's rows ever hold one number, whatever
        // order they are written in.
        if let Some(owner) = self.numbers.get(&(kind, number.to_string())) {
            return Ok(Some(*owner));
        }
        if !self.known.filter.may_contain(&Key::Number(kind, number)) {
            return Ok(None);
        }
        let sql = format!("SELECT local_id::text FROM {} WHERE {} = $1", table(kind), number_column(kind));
        let owner: Option<String> = sqlx::query_scalar(&sql).bind(number).fetch_optional(self.conn()).await?;
        owner.map(|owner| parse_uuid(&owner, "local_id")).transpose()
    }

    async fn next_assigned_number(&mut self) -> Result<u64, RecordError> {
        self.assigned += 1;
        Ok(self.assigned)
    }

    async fn put(&mut self, mut record: Record) -> Result<Record, RecordError> {
        self.position += 1;
        record.position = self.position;
        let kind = record.kind();
        self.numbers.insert((kind, record.body.number().to_string()), record.local_id);
        self.records.insert((kind, record.local_id), record.clone());
        Ok(record)
    }

    async fn log_conflict(&mut self, entry: ConflictEntry) -> Result<(), RecordError> {
        self.conflicts.push(entry);
        Ok(())
    }

    async fn commit(mut self) -> Result<(), RecordError> {
        let mut records: Vec<Record> = std::mem::take(&mut self.records).into_values().collect();
        records.sort_by_key(|record| record.position);
        let conflicts = std::mem::take(&mut self.conflicts);
        self.write(&records, &conflicts).await?;
        if !conflicts.is_empty() {
            sqlx::query(
                "WITH dropped AS ( \
                   DELETE FROM legacy_conflicts WHERE seq <= (SELECT max(seq) FROM legacy_conflicts) - $1 \
                   RETURNING seq \
                 ) \
                 UPDATE legacy_counters SET value = value - (SELECT count(*) FROM dropped) \
                 WHERE name = 'conflicts'",
            )
            .bind(i64::try_from(CONFLICTS_KEPT).unwrap_or(i64::MAX))
            .execute(self.conn())
            .await?;
        }
        self.conn().execute("COMMIT").await?;
        // Committed: the connection serves the next batch.
        self.known.conn = self.conn.take();
        for record in &records {
            self.known.filter.insert_record(record.kind(), record.local_id, record.body.number());
        }
        self.known.position = self.position;
        Ok(())
    }
}
