//! [`PgBatch`]: one database transaction holding the batch lock, its reads (read ahead in one
//! statement, or one by one), and its writes kept in memory until commit.

use std::collections::HashMap;

use sqlx::{Connection, Executor, PgConnection, PgPool, Row};
use tokio::sync::{Mutex, MutexGuard};
use uuid::Uuid;

use super::conflicts;
use super::reads::fetch_record;
use super::rows::{
    ORDER_COLUMNS, ORDER_FROM, TRANSACTION_COLUMNS, TRANSACTION_FROM, corrupt, counter_value, decode_record,
    number_column, table,
};
use super::write::write;
use crate::records::{BatchKeys, ConflictEntry, Record, RecordBatch, RecordError};
use tillmesh_core::legacy::RecordKind;

/// The key of the advisory lock that makes batches exclusive across processes (`tillmesh` in
/// ASCII).
pub const BATCH_LOCK_KEY: i64 = 0x7469_6c6c_6d65_7368;

/// A batch over [`super::PgRecords`]: one database transaction holding the batch lock, and the
/// batch's writes in memory until [`RecordBatch::commit`] writes them all. Dropping it without
/// committing closes its connection, which rolls the transaction back.
#[derive(Debug)]
pub struct PgBatch<'a> {
    /// The connection in the batch's transaction, until commit.
    conn: Option<PgConnection>,
    /// The process's turn and, after commit, the connection for its next batch.
    kept: MutexGuard<'a, Option<PgConnection>>,
    /// The records put, as last put, by kind and `localId`.
    records: HashMap<(RecordKind, Uuid), Record>,
    /// Every number a record put in this batch took, by kind.
    numbers: HashMap<(RecordKind, String), Uuid>,
    /// What the database holds for the `localId`s read (read ahead or asked): the record, or
    /// `None`. Nothing else writes while the batch holds the lock, so an answer stays true until
    /// commit.
    stored: HashMap<(RecordKind, Uuid), Option<Record>>,
    /// Likewise, who holds the numbers read.
    stored_numbers: HashMap<(RecordKind, String), Option<Uuid>>,
    /// Conflicts logged, in order.
    conflicts: Vec<ConflictEntry>,
    /// The newest position, advanced by each put.
    position: u64,
    /// The last assigned number.
    assigned: u64,
    /// `(position, assigned)` as read at begin.
    counters_read: (u64, u64),
}

/// Closes `conn` gracefully without waiting (the server rolls back a transaction it left open,
/// releasing the batch lock); drops it (closing its socket) outside a runtime.
pub(super) fn close_in_background(conn: PgConnection) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let _ = conn.close().await;
        });
    }
}

/// Begins a batch: waits for the process's turn (`kept`, which holds the connection the last
/// batch committed on), then, in one round trip, begins a transaction, takes the batch lock and
/// reads the counters.
pub(super) async fn begin<'a>(
    pool: &PgPool,
    kept: &'a Mutex<Option<PgConnection>>,
) -> Result<PgBatch<'a>, RecordError> {
    let mut kept = kept.lock().await;
    // The statements of one simple query take a snapshot each, so the counters are read once the
    // lock is held (a statement that also took the lock would read the database as it was
    // before waiting for it).
    let sql = format!(
        "BEGIN; \
         SELECT pg_advisory_xact_lock({BATCH_LOCK_KEY}); \
         SELECT name, value FROM legacy_counters WHERE name IN ('position', 'assigned')"
    );
    let (conn, rows) = loop {
        let reused = kept.take();
        let fresh = reused.is_none();
        let mut conn = match reused {
            Some(conn) => conn,
            None => pool.acquire().await?.detach(),
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
                // The kept connection may have been lost (the server restarted, an administrator
                // ended it): once more on a new one, which has nothing to undo.
            }
        }
    };
    let mut batch = PgBatch {
        conn: Some(conn),
        kept,
        records: HashMap::new(),
        numbers: HashMap::new(),
        stored: HashMap::new(),
        stored_numbers: HashMap::new(),
        conflicts: Vec::new(),
        position: 0,
        assigned: 0,
        counters_read: (0, 0),
    };
    // From here on an error drops the batch, which ends its transaction.
    let (mut position, mut assigned) = (None, None);
    for row in rows.iter().filter(|row| row.try_column("name").is_ok()) {
        let value = row.try_get::<i64, _>("value")?;
        match row.try_get::<&str, _>("name")? {
            "position" => position = Some(counter_value(value, "position")?),
            "assigned" => assigned = Some(counter_value(value, "assigned")?),
            _ => {}
        }
    }
    batch.position = position.ok_or_else(|| corrupt("counter position missing"))?;
    batch.assigned = assigned.ok_or_else(|| corrupt("counter assigned missing"))?;
    batch.counters_read = (batch.position, batch.assigned);
    Ok(batch)
}

/// The records of each kind held under any of the `localId`s or numbers asked, with their
/// documents: `$1`, `$2` the orders' `localId`s and numbers, `$3`, `$4` the transactions'.
fn read_ahead_sql() -> String {
    format!(
        "SELECT {ORDER_COLUMNS}, document FROM {ORDER_FROM} \
         WHERE local_id = ANY($1) OR order_number = ANY($2) \
         UNION ALL \
         SELECT {TRANSACTION_COLUMNS}, document FROM {TRANSACTION_FROM} \
         WHERE local_id = ANY($3) OR reference_number = ANY($4)"
    )
}

impl PgBatch<'_> {
    /// The connection in the batch's transaction.
    fn conn(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("a batch holds its connection until it commits")
    }

    /// Remembers a record the database holds, under its `localId` and its number.
    fn note_stored(&mut self, record: Record) {
        let kind = record.kind();
        self.stored_numbers.insert((kind, record.body.number().to_string()), Some(record.local_id));
        self.stored.insert((kind, record.local_id), Some(record));
    }
}

impl RecordBatch for PgBatch<'_> {
    async fn read_ahead(&mut self, keys: &BatchKeys) -> Result<(), RecordError> {
        let local_ids = |kind: RecordKind| -> Vec<Uuid> {
            keys.local_ids
                .iter()
                .filter(|key| key.0 == kind && !self.stored.contains_key(key))
                .map(|(_, local_id)| *local_id)
                .collect()
        };
        let numbers = |kind: RecordKind| -> Vec<String> {
            keys.numbers
                .iter()
                .filter(|key| key.0 == kind && !self.stored_numbers.contains_key(key))
                .map(|(_, number)| number.clone())
                .collect()
        };
        let asked = [local_ids(RecordKind::Order), local_ids(RecordKind::Transaction)];
        let asked_numbers = [numbers(RecordKind::Order), numbers(RecordKind::Transaction)];
        if asked.iter().all(Vec::is_empty) && asked_numbers.iter().all(Vec::is_empty) {
            return Ok(());
        }
        // Planned for the arrays at hand each time, not prepared once: a plan kept on the
        // batches' connection since the tables were small scans them whole once they are not.
        let rows = sqlx::query(&read_ahead_sql())
            .persistent(false)
            .bind(&asked[0])
            .bind(&asked_numbers[0])
            .bind(&asked[1])
            .bind(&asked_numbers[1])
            .fetch_all(self.conn())
            .await?;
        for (kind, local_ids, numbers) in [
            (RecordKind::Order, &asked[0], &asked_numbers[0]),
            (RecordKind::Transaction, &asked[1], &asked_numbers[1]),
        ] {
            self.stored.extend(local_ids.iter().map(|local_id| ((kind, *local_id), None)));
            self.stored_numbers.extend(numbers.iter().map(|number| ((kind, number.clone()), None)));
        }
        for row in &rows {
            self.note_stored(decode_record(row)?);
        }
        Ok(())
    }

    async fn get(&mut self, kind: RecordKind, local_id: Uuid) -> Result<Option<Record>, RecordError> {
        if let Some(record) = self.records.get(&(kind, local_id)) {
            return Ok(Some(record.clone()));
        }
        if let Some(stored) = self.stored.get(&(kind, local_id)) {
            return Ok(stored.clone());
        }
        let record = fetch_record(self.conn(), kind, local_id).await?;
        match &record {
            Some(record) => self.note_stored(record.clone()),
            None => {
                self.stored.insert((kind, local_id), None);
            }
        }
        Ok(record)
    }

    async fn number_owner(&mut self, kind: RecordKind, number: &str) -> Result<Option<Uuid>, RecordError> {
        // A number stays taken until commit even once the record holding it was put again with
        // another (the batch remembers every number its puts took, and the database still has
        // the record's old one), so no two of the batch's rows ever hold one number, whatever
        // order they are written in.
        let key = (kind, number.to_string());
        if let Some(owner) = self.numbers.get(&key) {
            return Ok(Some(*owner));
        }
        if let Some(owner) = self.stored_numbers.get(&key) {
            return Ok(*owner);
        }
        let sql = format!("SELECT local_id FROM {} WHERE {} = $1", table(kind), number_column(kind));
        let owner: Option<Uuid> = sqlx::query_scalar(&sql).bind(number).fetch_optional(self.conn()).await?;
        self.stored_numbers.insert(key, owner);
        Ok(owner)
    }

    fn last_assigned_number(&self) -> u64 {
        self.assigned
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
        let counters = (self.position, self.assigned);
        if !records.is_empty() || !conflicts.is_empty() || counters != self.counters_read {
            // An order whose `localId` the batch found absent has no lines to replace.
            let replaces_stored_orders = records.iter().any(|record| {
                record.kind() == RecordKind::Order
                    && !matches!(self.stored.get(&(RecordKind::Order, record.local_id)), Some(None))
            });
            write(self.conn(), &records, &conflicts, counters, replaces_stored_orders).await?;
        }
        if !conflicts.is_empty() {
            conflicts::trim(self.conn()).await?;
        }
        self.conn().execute("COMMIT").await?;
        // Committed: the connection serves the next batch.
        *self.kept = self.conn.take();
        Ok(())
    }
}

impl Drop for PgBatch<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Not committed (or its commit failed): end the transaction, and the lock with it.
            close_in_background(conn);
        }
    }
}
