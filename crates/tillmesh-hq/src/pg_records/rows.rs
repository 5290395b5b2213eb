//! A record's shape in SQL and back: the columns a read selects (an order's lines aggregated into
//! arrays on its row, so a record and its lines come from one statement and one snapshot), the
//! table and number column of each kind, and decoding a row into a [`Record`].

use sqlx::Row;
use sqlx::postgres::PgRow;
use tillmesh_core::legacy::{LegacyItem, LegacyNames, LegacyOrder, LegacyTransaction, Named, RecordKind};
use tillmesh_core::{Amount, Quantity, Timestamp};

use crate::records::{Record, RecordBody, RecordError};

/// The columns of an order record as [`decode_record`] reads them (without `document`), from
/// [`ORDER_FROM`]: its lines come as arrays in line order (null when it has none).
pub(super) const ORDER_COLUMNS: &str = "'order' AS kind, id, local_id, client_id, \
     order_number AS number, subtotal_cents, tax_cents, total_cents AS amount_cents, payment_method, \
     payment_status, order_status, NULL::text AS paid_order, device_id, written_by, sync_version, \
     server_hash, heads, deleted, logged_conflict, created_at, updated_at, changed_at, position, \
     items.item_product_ids, items.item_product_names, items.item_quantities, \
     items.item_unit_prices_cents, items.item_total_prices_cents";

/// Orders with their lines aggregated (one row per order).
pub(super) const ORDER_FROM: &str = "sync_orders LEFT JOIN LATERAL ( \
       SELECT array_agg(product_id ORDER BY line) AS item_product_ids, \
         array_agg(product_name ORDER BY line) AS item_product_names, \
         array_agg(quantity_thousandths ORDER BY line) AS item_quantities, \
         array_agg(unit_price_cents ORDER BY line) AS item_unit_prices_cents, \
         array_agg(total_price_cents ORDER BY line) AS item_total_prices_cents \
       FROM sync_order_items WHERE sync_order_items.order_id = sync_orders.id \
     ) AS items ON true";

/// The columns of a transaction record, in the same shape as [`ORDER_COLUMNS`].
pub(super) const TRANSACTION_COLUMNS: &str = "'transaction' AS kind, id, local_id, \
     client_id, reference_number AS number, NULL::bigint AS subtotal_cents, NULL::bigint AS tax_cents, \
     amount_cents, payment_method, status AS payment_status, NULL::text AS order_status, \
     order_id AS paid_order, device_id, written_by, sync_version, server_hash, heads, deleted, \
     logged_conflict, created_at, updated_at, changed_at, position, \
     NULL::text[] AS item_product_ids, NULL::text[] AS item_product_names, \
     NULL::bigint[] AS item_quantities, NULL::bigint[] AS item_unit_prices_cents, \
     NULL::bigint[] AS item_total_prices_cents";

/// Transactions, in the shape of [`ORDER_FROM`].
pub(super) const TRANSACTION_FROM: &str = "transactions";

/// The table of a kind's records.
pub(super) fn table(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Order => "sync_orders",
        RecordKind::Transaction => "transactions",
    }
}

/// The column of a kind's unique number.
pub(super) fn number_column(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Order => "order_number",
        RecordKind::Transaction => "reference_number",
    }
}

/// [`ORDER_COLUMNS`] or [`TRANSACTION_COLUMNS`].
pub(super) fn columns(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Order => ORDER_COLUMNS,
        RecordKind::Transaction => TRANSACTION_COLUMNS,
    }
}

/// [`ORDER_FROM`] or [`TRANSACTION_FROM`].
pub(super) fn from(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Order => ORDER_FROM,
        RecordKind::Transaction => TRANSACTION_FROM,
    }
}

pub(super) fn corrupt(what: impl Into<String>) -> RecordError {
    RecordError::Corrupt { what: what.into() }
}

/// A kind as the `kind` columns hold it ([`RecordKind::as_str`]).
pub(super) fn parse_kind(text: &str) -> Result<RecordKind, RecordError> {
    match text {
        "order" => Ok(RecordKind::Order),
        "transaction" => Ok(RecordKind::Transaction),
        other => Err(corrupt(format!("record kind {other:?}"))),
    }
}

/// Parses a status or method column with its `FromStr`.
pub(super) fn parse_column<T: std::str::FromStr>(text: &str, column: &str) -> Result<T, RecordError> {
    text.parse().map_err(|_| corrupt(format!("{column} {text:?}")))
}

/// A status or method column: the name a client sent.
fn parse_name<T: LegacyNames>(text: &str, column: &'static str) -> Result<Named<T>, RecordError> {
    Named::parse(column, text).map_err(|_| corrupt(format!("{column} {text:?}")))
}

/// A change-feed position as PostgreSQL stores it (`BIGINT`); positions past `i64::MAX` are
/// never assigned, so a larger bound means "after everything".
pub(super) fn position_bound(position: u64) -> i64 {
    i64::try_from(position).unwrap_or(i64::MAX)
}

/// A counter's value read from the database, as a count.
pub(super) fn counter_value(value: i64, name: &str) -> Result<u64, RecordError> {
    u64::try_from(value).map_err(|_| corrupt(format!("{name} counter {value}")))
}

/// Decodes a row of [`ORDER_COLUMNS`] or [`TRANSACTION_COLUMNS`] (plus `document`, possibly
/// null), an order with its lines.
pub(super) fn decode_record(row: &PgRow) -> Result<Record, RecordError> {
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
        RecordKind::Order => {
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
    let position: i64 = row.try_get("position")?;
    Ok(Record {
        local_id: row.try_get("local_id")?,
        doc_id: row.try_get("id")?,
        device_id: row.try_get("device_id")?,
        written_by: row.try_get("written_by")?,
        sync_version: row.try_get("sync_version")?,
        server_hash: row.try_get("server_hash")?,
        heads: row.try_get("heads")?,
        deleted: row.try_get("deleted")?,
        body,
        logged_conflict: row.try_get("logged_conflict")?,
        changed_at: Timestamp(row.try_get("changed_at")?),
        position: u64::try_from(position).map_err(|_| corrupt(format!("position {position}")))?,
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
