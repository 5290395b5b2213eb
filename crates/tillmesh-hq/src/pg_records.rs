//! The PostgreSQL [`RecordStore`]: the seed's `sync_orders` and `transactions` tables (money in
//! integer cents), for HQs that outgrow one machine: several HQ processes share one database.
//!
//! Batches run one at a time across every process: [`RecordStore::begin`] opens a transaction
//! and takes a transaction-scoped advisory lock ([`BATCH_LOCK_KEY`]), held until commit or
//! rollback. Change-feed positions and HQ's assigned numbers are counters advanced inside that
//! transaction, so positions increase in commit order (a reader paging the feed by position never
//! skips a record committed later) and a rolled-back batch leaves no trace, not even a gap.
//! Reads outside a batch run in a read-only `REPEATABLE READ` transaction, so a record and its
//! order lines come from one snapshot.
//!
//! UUIDs travel as text (`$1::uuid`, `id::text`): the workspace builds sqlx without its `uuid`
//! feature.

use std::collections::HashMap;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgConnection, PgPool, Postgres, Row, Transaction};
use tillmesh_core::legacy::{FieldConflict, LegacyItem, LegacyOrder, LegacyTransaction, Since};
use tillmesh_core::{Amount, Timestamp};
use tokio::sync::{Mutex, MutexGuard};
use uuid::Uuid;

use crate::records::{
    ConflictEntry, Record, RecordBatch, RecordBody, RecordCounts, RecordError, RecordKind, RecordStore,
    RecordVersion,
};

/// The key of the advisory lock that makes batches exclusive across processes (`tillmesh` in
/// ASCII).
pub const BATCH_LOCK_KEY: i64 = 0x7469_6c6c_6d65_7368;

/// Most connections one [`PgRecords`] opens.
pub const POOL_CONNECTIONS_MAX: u32 = 8;

/// How long an operation waits for a free pooled connection before failing.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The schema migrations, embedded.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The columns of an order record as [`decode_record`] reads them (without `document`).
const ORDER_COLUMNS: &str = "'order' AS kind, id::text AS id, local_id::text AS local_id, client_id, \
     order_number AS number, subtotal_cents, tax_cents, total_cents AS amount_cents, payment_method, \
     payment_status, order_status, NULL::text AS paid_order, device_id, written_by, sync_version, \
     server_hash, heads, deleted, logged_conflict, created_at, updated_at, changed_at, position";

/// The columns of a transaction record, in the same shape as [`ORDER_COLUMNS`].
const TRANSACTION_COLUMNS: &str = "'transaction' AS kind, id::text AS id, local_id::text AS local_id, \
     client_id, reference_number AS number, NULL::bigint AS subtotal_cents, NULL::bigint AS tax_cents, \
     amount_cents, payment_method, status AS payment_status, NULL::text AS order_status, \
     order_id AS paid_order, device_id, written_by, sync_version, server_hash, heads, deleted, \
     logged_conflict, created_at, updated_at, changed_at, position";

/// Legacy records in PostgreSQL.
#[derive(Debug)]
pub struct PgRecords {
    pool: PgPool,
    /// Batches of this process queue here rather than each holding a pooled connection while
    /// it waits for the advisory lock, which would starve reads of connections.
    local: Mutex<()>,
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
            .max_connections(POOL_CONNECTIONS_MAX)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(PgRecords { pool, local: Mutex::new(()) })
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A read-only transaction that sees one snapshot for all its statements.
    async fn snapshot(&self) -> Result<Transaction<'static, Postgres>, RecordError> {
        Ok(self.pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?)
    }
}

fn corrupt(what: impl Into<String>) -> RecordError {
    RecordError::Corrupt { what: what.into() }
}

fn table(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Order => "sync_orders",
        RecordKind::Transaction => "transactions",
    }
}

fn number_column(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Order => "order_number",
        RecordKind::Transaction => "reference_number",
    }
}

fn columns(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Order => ORDER_COLUMNS,
        RecordKind::Transaction => TRANSACTION_COLUMNS,
    }
}

fn parse_kind(text: &str) -> Result<RecordKind, RecordError> {
    match text {
        "order" => Ok(RecordKind::Order),
        "transaction" => Ok(RecordKind::Transaction),
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

/// A change-feed position as PostgreSQL stores it (`BIGINT`); positions past `i64::MAX` are
/// never assigned, so a larger bound means "after everything".
fn position_bound(position: u64) -> i64 {
    i64::try_from(position).unwrap_or(i64::MAX)
}

fn position_of(row: &PgRow) -> Result<u64, RecordError> {
    let position: i64 = row.try_get("position")?;
    u64::try_from(position).map_err(|_| corrupt(format!("position {position}")))
}

/// Decodes a row of [`ORDER_COLUMNS`] or [`TRANSACTION_COLUMNS`] (plus `document`, possibly
/// null); an order's `items` are left empty for the caller to fill.
fn decode_record(row: &PgRow) -> Result<Record, RecordError> {
    let kind = parse_kind(row.try_get("kind")?)?;
    let required = |column: &str| -> Result<i64, RecordError> {
        let value: Option<i64> = row.try_get(column)?;
        value.ok_or_else(|| corrupt(format!("{column} is null")))
    };
    let payment_method: Option<String> = row.try_get("payment_method")?;
    let payment_method = payment_method.map(|text| parse_column(&text, "payment_method")).transpose()?;
    let payment_status = parse_column(row.try_get("payment_status")?, "payment_status")?;
    let client_id: String = row.try_get("client_id")?;
    let number: String = row.try_get("number")?;
    let created_at = Timestamp(row.try_get("created_at")?);
    let updated_at = Timestamp(row.try_get("updated_at")?);
    let body = match kind {
        RecordKind::Order => {
            let order_status: Option<&str> = row.try_get("order_status")?;
            RecordBody::Order(LegacyOrder {
                id: client_id,
                order_number: number,
                items: Vec::new(),
                subtotal: Amount::from_minor(required("subtotal_cents")?),
                tax: Amount::from_minor(required("tax_cents")?),
                total: Amount::from_minor(required("amount_cents")?),
                payment_method,
                payment_status,
                order_status: parse_column(order_status.unwrap_or_default(), "order_status")?,
                created_at,
                updated_at,
            })
        }
        RecordKind::Transaction => {
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

/// Fills the `items` of the orders among `records` with one query.
async fn load_items(conn: &mut PgConnection, records: &mut [Record]) -> Result<(), RecordError> {
    let order_ids: Vec<String> = records
        .iter()
        .filter(|record| record.kind() == RecordKind::Order)
        .map(|record| record.doc_id.to_string())
        .collect();
    if order_ids.is_empty() {
        return Ok(());
    }
    let rows = sqlx::query(
        "SELECT order_id::text AS order_id, product_id, product_name, quantity, unit_price_cents, \
         total_price_cents FROM sync_order_items WHERE order_id = ANY($1::uuid[]) \
         ORDER BY sync_order_items.order_id, sync_order_items.line",
    )
    .bind(order_ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut items: HashMap<Uuid, Vec<LegacyItem>> = HashMap::new();
    for row in &rows {
        let order_id = parse_uuid(row.try_get("order_id")?, "order item's order_id")?;
        items.entry(order_id).or_default().push(LegacyItem {
            product_id: row.try_get("product_id")?,
            product_name: row.try_get("product_name")?,
            quantity: row.try_get("quantity")?,
            unit_price: Amount::from_minor(row.try_get("unit_price_cents")?),
            total_price: Amount::from_minor(row.try_get("total_price_cents")?),
        });
    }
    for record in records {
        if let RecordBody::Order(order) = &mut record.body {
            order.items = items.remove(&record.doc_id).unwrap_or_default();
        }
    }
    Ok(())
}

/// The record of `kind` with `local_id`, with its document, as `conn` sees it.
async fn fetch_record(
    conn: &mut PgConnection,
    kind: RecordKind,
    local_id: Uuid,
) -> Result<Option<Record>, RecordError> {
    let sql = format!("SELECT {}, document FROM {} WHERE local_id = $1::uuid", columns(kind), table(kind));
    let Some(row) = sqlx::query(&sql).bind(local_id.to_string()).fetch_optional(&mut *conn).await? else {
        return Ok(None);
    };
    let mut records = [decode_record(&row)?];
    load_items(conn, &mut records).await?;
    let [record] = records;
    Ok(Some(record))
}

/// Advances the counter `name` by one inside the current transaction and returns its new value.
async fn advance_counter(conn: &mut PgConnection, name: &str) -> Result<i64, RecordError> {
    let value: Option<i64> =
        sqlx::query_scalar("UPDATE legacy_counters SET value = value + 1 WHERE name = $1 RETURNING value")
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?;
    value.ok_or_else(|| corrupt(format!("counter {name} missing")))
}

impl RecordStore for PgRecords {
    type Batch<'a> = PgBatch<'a>;

    async fn begin(&self) -> Result<PgBatch<'_>, RecordError> {
        let local = self.local.lock().await;
        let mut transaction = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(BATCH_LOCK_KEY)
            .execute(&mut *transaction)
            .await?;
        Ok(PgBatch { transaction, _local: local })
    }

    async fn get(&self, kind: RecordKind, local_id: Uuid) -> Result<Option<Record>, RecordError> {
        let mut snapshot = self.snapshot().await?;
        let record = fetch_record(&mut snapshot, kind, local_id).await?;
        snapshot.commit().await?;
        Ok(record)
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
        let sql = format!(
            "SELECT * FROM ( \
               (SELECT {ORDER_COLUMNS}, NULL::bytea AS document FROM sync_orders \
                WHERE position > $1 AND ($2::bigint IS NULL OR changed_at > $2) ORDER BY position LIMIT $3) \
               UNION ALL \
               (SELECT {TRANSACTION_COLUMNS}, NULL::bytea AS document FROM transactions \
                WHERE position > $1 AND ($2::bigint IS NULL OR changed_at > $2) ORDER BY position LIMIT $3) \
             ) AS feed ORDER BY position LIMIT $3"
        );
        let mut snapshot = self.snapshot().await?;
        let rows = sqlx::query(&sql)
            .bind(after_position)
            .bind(after_time)
            .bind(limit)
            .fetch_all(&mut *snapshot)
            .await?;
        let mut records = rows.iter().map(decode_record).collect::<Result<Vec<_>, _>>()?;
        load_items(&mut snapshot, &mut records).await?;
        snapshot.commit().await?;
        Ok(records)
    }

    async fn last_position(&self) -> Result<u64, RecordError> {
        let position: Option<i64> =
            sqlx::query_scalar("SELECT value FROM legacy_counters WHERE name = 'position'")
                .fetch_optional(&self.pool)
                .await?;
        let position = position.ok_or_else(|| corrupt("counter position missing"))?;
        u64::try_from(position).map_err(|_| corrupt(format!("position counter {position}")))
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
        let row = sqlx::query(
            "SELECT (SELECT count(*) FROM sync_orders) AS orders, \
                    (SELECT count(*) FROM transactions) AS transactions, \
                    (SELECT count(*) FROM legacy_devices) AS devices, \
                    (SELECT count(*) FROM legacy_conflicts) AS conflicts",
        )
        .fetch_one(&self.pool)
        .await?;
        let count = |column: &str| -> Result<u64, RecordError> {
            let count: i64 = row.try_get(column)?;
            u64::try_from(count).map_err(|_| corrupt(format!("count of {column}")))
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
            "INSERT INTO legacy_devices (token_sha256, device_id, created_at) VALUES ($1, $2, $3)",
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

/// A batch over [`PgRecords`]: one database transaction holding the batch lock. Dropping it
/// without [`RecordBatch::commit`] rolls the transaction back.
#[derive(Debug)]
pub struct PgBatch<'a> {
    /// Declared first so that it is dropped (rolled back) before the next local batch starts.
    transaction: Transaction<'static, Postgres>,
    _local: MutexGuard<'a, ()>,
}

impl PgBatch<'_> {
    async fn put_order(&mut self, record: &Record, order: &LegacyOrder) -> Result<(), RecordError> {
        let local_id = record.local_id.to_string();
        // The lines go first: the record's id may change under them.
        sqlx::query(
            "DELETE FROM sync_order_items WHERE order_id IN \
             (SELECT id FROM sync_orders WHERE local_id = $1::uuid)",
        )
        .bind(&local_id)
        .execute(&mut *self.transaction)
        .await?;
        sqlx::query(
            "INSERT INTO sync_orders (id, local_id, client_id, order_number, subtotal_cents, tax_cents, \
               total_cents, payment_method, payment_status, order_status, device_id, written_by, \
               sync_version, server_hash, heads, deleted, logged_conflict, created_at, updated_at, \
               changed_at, position, document) \
             VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
               $17, $18, $19, $20, $21, $22) \
             ON CONFLICT (local_id) DO UPDATE SET id = EXCLUDED.id, client_id = EXCLUDED.client_id, \
               order_number = EXCLUDED.order_number, subtotal_cents = EXCLUDED.subtotal_cents, \
               tax_cents = EXCLUDED.tax_cents, total_cents = EXCLUDED.total_cents, \
               payment_method = EXCLUDED.payment_method, payment_status = EXCLUDED.payment_status, \
               order_status = EXCLUDED.order_status, device_id = EXCLUDED.device_id, \
               written_by = EXCLUDED.written_by, sync_version = EXCLUDED.sync_version, \
               server_hash = EXCLUDED.server_hash, heads = EXCLUDED.heads, deleted = EXCLUDED.deleted, \
               logged_conflict = EXCLUDED.logged_conflict, created_at = EXCLUDED.created_at, \
               updated_at = EXCLUDED.updated_at, changed_at = EXCLUDED.changed_at, \
               position = EXCLUDED.position, document = EXCLUDED.document",
        )
        .bind(record.doc_id.to_string())
        .bind(&local_id)
        .bind(&order.id)
        .bind(&order.order_number)
        .bind(order.subtotal.minor())
        .bind(order.tax.minor())
        .bind(order.total.minor())
        .bind(order.payment_method.map(|method| method.as_str()))
        .bind(order.payment_status.as_str())
        .bind(order.order_status.as_str())
        .bind(&record.device_id)
        .bind(&record.written_by)
        .bind(record.sync_version)
        .bind(&record.server_hash)
        .bind(&record.heads)
        .bind(record.deleted)
        .bind(&record.logged_conflict)
        .bind(order.created_at.millis())
        .bind(order.updated_at.millis())
        .bind(record.changed_at.millis())
        .bind(position_bound(record.position))
        .bind(&record.document)
        .execute(&mut *self.transaction)
        .await?;
        if order.items.is_empty() {
            return Ok(());
        }
        let lines = (0..order.items.len())
            .map(|line| i32::try_from(line).map_err(|_| corrupt("more order lines than an INT counts")))
            .collect::<Result<Vec<i32>, _>>()?;
        let column = |value: fn(&LegacyItem) -> i64| order.items.iter().map(value).collect::<Vec<i64>>();
        sqlx::query(
            "INSERT INTO sync_order_items (order_id, line, product_id, product_name, quantity, \
               unit_price_cents, total_price_cents) \
             SELECT $1::uuid, * FROM UNNEST($2::int4[], $3::text[], $4::text[], $5::int8[], $6::int8[], \
               $7::int8[])",
        )
        .bind(record.doc_id.to_string())
        .bind(lines)
        .bind(order.items.iter().map(|item| item.product_id.clone()).collect::<Vec<String>>())
        .bind(order.items.iter().map(|item| item.product_name.clone()).collect::<Vec<String>>())
        .bind(column(|item| item.quantity))
        .bind(column(|item| item.unit_price.minor()))
        .bind(column(|item| item.total_price.minor()))
        .execute(&mut *self.transaction)
        .await?;
        Ok(())
    }

    async fn put_transaction(
        &mut self,
        record: &Record,
        transaction: &LegacyTransaction,
    ) -> Result<(), RecordError> {
        sqlx::query(
            "INSERT INTO transactions (id, local_id, client_id, reference_number, amount_cents, \
               payment_method, status, order_id, device_id, written_by, sync_version, server_hash, heads, \
               deleted, logged_conflict, created_at, updated_at, changed_at, position, document) \
             VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
               $17, $18, $19, $20) \
             ON CONFLICT (local_id) DO UPDATE SET id = EXCLUDED.id, client_id = EXCLUDED.client_id, \
               reference_number = EXCLUDED.reference_number, amount_cents = EXCLUDED.amount_cents, \
               payment_method = EXCLUDED.payment_method, status = EXCLUDED.status, \
               order_id = EXCLUDED.order_id, device_id = EXCLUDED.device_id, \
               written_by = EXCLUDED.written_by, sync_version = EXCLUDED.sync_version, \
               server_hash = EXCLUDED.server_hash, heads = EXCLUDED.heads, deleted = EXCLUDED.deleted, \
               logged_conflict = EXCLUDED.logged_conflict, created_at = EXCLUDED.created_at, \
               updated_at = EXCLUDED.updated_at, changed_at = EXCLUDED.changed_at, \
               position = EXCLUDED.position, document = EXCLUDED.document",
        )
        .bind(record.doc_id.to_string())
        .bind(record.local_id.to_string())
        .bind(&transaction.id)
        .bind(&transaction.reference_number)
        .bind(transaction.amount.minor())
        .bind(transaction.payment_method.as_str())
        .bind(transaction.status.as_str())
        .bind(&transaction.order_id)
        .bind(&record.device_id)
        .bind(&record.written_by)
        .bind(record.sync_version)
        .bind(&record.server_hash)
        .bind(&record.heads)
        .bind(record.deleted)
        .bind(&record.logged_conflict)
        .bind(transaction.created_at.millis())
        .bind(transaction.updated_at.millis())
        .bind(record.changed_at.millis())
        .bind(position_bound(record.position))
        .bind(&record.document)
        .execute(&mut *self.transaction)
        .await?;
        Ok(())
    }
}

impl RecordBatch for PgBatch<'_> {
    async fn get(&mut self, kind: RecordKind, local_id: Uuid) -> Result<Option<Record>, RecordError> {
        fetch_record(&mut self.transaction, kind, local_id).await
    }

    async fn number_owner(&mut self, kind: RecordKind, number: &str) -> Result<Option<Uuid>, RecordError> {
        let sql = format!("SELECT local_id::text FROM {} WHERE {} = $1", table(kind), number_column(kind));
        let owner: Option<String> =
            sqlx::query_scalar(&sql).bind(number).fetch_optional(&mut *self.transaction).await?;
        owner.map(|owner| parse_uuid(&owner, "local_id")).transpose()
    }

    async fn next_assigned_number(&mut self) -> Result<u64, RecordError> {
        let number = advance_counter(&mut self.transaction, "assigned").await?;
        u64::try_from(number).map_err(|_| corrupt(format!("assigned counter {number}")))
    }

    async fn put(&mut self, mut record: Record) -> Result<Record, RecordError> {
        let position = advance_counter(&mut self.transaction, "position").await?;
        record.position =
            u64::try_from(position).map_err(|_| corrupt(format!("position counter {position}")))?;
        match &record.body {
            RecordBody::Order(order) => self.put_order(&record, order).await?,
            RecordBody::Transaction(transaction) => self.put_transaction(&record, transaction).await?,
        }
        Ok(record)
    }

    async fn log_conflict(&mut self, entry: ConflictEntry) -> Result<(), RecordError> {
        sqlx::query(
            "INSERT INTO legacy_conflicts (at, kind, local_id, doc_id, device_id, field, client_value, \
               server_value, resolution) \
             VALUES ($1, $2, $3::uuid, $4::uuid, $5, $6, $7, $8, $9)",
        )
        .bind(entry.at.millis())
        .bind(entry.kind.as_str())
        .bind(entry.local_id.to_string())
        .bind(entry.doc_id.to_string())
        .bind(&entry.device_id)
        .bind(&entry.conflict.field)
        .bind(&entry.conflict.client_value)
        .bind(&entry.conflict.server_value)
        .bind(entry.conflict.resolution.as_str())
        .execute(&mut *self.transaction)
        .await?;
        Ok(())
    }

    async fn commit(self) -> Result<(), RecordError> {
        self.transaction.commit().await?;
        Ok(())
    }
}
