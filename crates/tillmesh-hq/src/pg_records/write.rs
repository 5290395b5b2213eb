//! What a batch's commit writes: its records with their order lines, its conflicts and the
//! counters, in one statement (an `UNNEST` of one array per column for each table), after one
//! that deletes the lines of orders stored before.

use sqlx::PgConnection;
use tillmesh_core::legacy::{LegacyOrder, LegacyTransaction, Named};

use super::rows::{corrupt, position_bound};
use crate::records::{ConflictEntry, Record, RecordBody, RecordError};

/// Writes `records` (in their order, which is put order) with their lines, `conflicts` and the
/// counters (`position` and `assigned` as the batch leaves them), in the transaction on `conn`.
/// `replaces_stored_orders`: some of the orders may be stored already, so their old lines go
/// first.
pub(super) async fn write(
    conn: &mut PgConnection,
    records: &[Record],
    conflicts: &[ConflictEntry],
    (position, assigned): (u64, u64),
    replaces_stored_orders: bool,
) -> Result<(), RecordError> {
    let orders = orders_of(records);
    let transactions = transactions_of(records);
    let order_local_ids = column(&orders, |(record, _)| record.local_id);
    // The lines of orders already stored go first: an order's id may change under them.
    if replaces_stored_orders {
        sqlx::query(
            "DELETE FROM sync_order_items WHERE order_id IN \
             (SELECT id FROM sync_orders WHERE local_id = ANY($1))",
        )
        .bind(&order_local_ids)
        .execute(&mut *conn)
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
            item_orders.push(record.doc_id);
            item_lines.push(i32::try_from(line).map_err(|_| corrupt("more order lines than an INT counts"))?);
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
    let (position, assigned) = (counter(position, "position")?, counter(assigned, "assigned")?);

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
    .bind(column(&orders, |(record, _)| record.doc_id))
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
    .bind(column(&transactions, |(record, _)| record.doc_id))
    .bind(column(&transactions, |(record, _)| record.local_id))
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
    .bind(column(conflicts, |entry| entry.local_id))
    .bind(column(conflicts, |entry| entry.doc_id))
    .bind(column(conflicts, |entry| entry.device_id.as_str()))
    .bind(column(conflicts, |entry| entry.conflict.field.as_str()))
    .bind(column(conflicts, |entry| entry.conflict.client_value.as_deref()))
    .bind(column(conflicts, |entry| entry.conflict.server_value.as_deref()))
    .bind(column(conflicts, |entry| entry.conflict.resolution.as_str()))
    .bind(position)
    .bind(assigned)
    .execute(conn)
    .await?;
    Ok(())
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
