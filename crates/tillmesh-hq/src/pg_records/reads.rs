//! Reads of records: one record with its document, the change feed page by page, every record's
//! document version. Each is one statement, so orders, transactions and lines come from one
//! snapshot.

use sqlx::{PgConnection, PgPool, Row};
use tillmesh_core::legacy::Since;
use uuid::Uuid;

use super::rows::{
    ORDER_COLUMNS, ORDER_FROM, TRANSACTION_COLUMNS, TRANSACTION_FROM, columns, decode_record, from,
    parse_kind, position_bound,
};
use crate::records::{Record, RecordError, RecordVersion};
use tillmesh_core::legacy::RecordKind;

/// The record of `kind` with `local_id`, with its document and lines, in one statement.
pub(super) async fn fetch_record(
    conn: &mut PgConnection,
    kind: RecordKind,
    local_id: Uuid,
) -> Result<Option<Record>, RecordError> {
    let sql = format!("SELECT {}, document FROM {} WHERE local_id = $1", columns(kind), from(kind));
    let row = sqlx::query(&sql).bind(local_id).fetch_optional(&mut *conn).await?;
    row.as_ref().map(decode_record).transpose()
}

/// Up to `limit` records changed after `since`, in change-feed order, without documents.
pub(super) async fn changes(pool: &PgPool, since: Since, limit: usize) -> Result<Vec<Record>, RecordError> {
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
           (SELECT {ORDER_COLUMNS}, NULL::bytea AS document FROM {ORDER_FROM} \
            WHERE position > $1 AND ($2::bigint IS NULL OR changed_at > $2) ORDER BY position LIMIT $3) \
           UNION ALL \
           (SELECT {TRANSACTION_COLUMNS}, NULL::bytea AS document FROM {TRANSACTION_FROM} \
            WHERE position > $1 AND ($2::bigint IS NULL OR changed_at > $2) ORDER BY position LIMIT $3) \
         ) AS feed ORDER BY position LIMIT $3"
    );
    let rows = sqlx::query(&sql).bind(after_position).bind(after_time).bind(limit).fetch_all(pool).await?;
    rows.iter().map(decode_record).collect()
}

/// Every record's document version, in the sled store's order: orders, then transactions, each
/// by `localId`'s bytes.
pub(super) async fn versions(pool: &PgPool) -> Result<Vec<RecordVersion>, RecordError> {
    let rows = sqlx::query(
        "SELECT kind, local_id, id, heads FROM ( \
           SELECT 'order' AS kind, local_id, id, heads FROM sync_orders \
           UNION ALL \
           SELECT 'transaction' AS kind, local_id, id, heads FROM transactions \
         ) AS records ORDER BY records.kind, records.local_id",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(RecordVersion {
                kind: parse_kind(row.try_get("kind")?)?,
                local_id: row.try_get("local_id")?,
                doc_id: row.try_get("id")?,
                heads: row.try_get("heads")?,
            })
        })
        .collect()
}
