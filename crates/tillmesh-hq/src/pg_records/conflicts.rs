//! The conflict log (`legacy_conflicts`): read newest first, and trimmed to its newest
//! [`CONFLICTS_KEPT`] entries when a batch that logged some commits. Batches insert their entries
//! with their records ([`super::write`]).

use sqlx::{PgConnection, PgPool, Row};
use tillmesh_core::Timestamp;
use tillmesh_core::legacy::FieldConflict;

use super::rows::{parse_column, parse_kind};
use crate::records::{CONFLICTS_KEPT, ConflictEntry, RecordError};

/// The newest `limit` conflicts, newest first.
pub(super) async fn newest(pool: &PgPool, limit: usize) -> Result<Vec<ConflictEntry>, RecordError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = sqlx::query(
        "SELECT at, kind, local_id, doc_id, device_id, field, client_value, server_value, resolution \
         FROM legacy_conflicts ORDER BY seq DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(ConflictEntry {
                at: Timestamp(row.try_get("at")?),
                kind: parse_kind(row.try_get("kind")?)?,
                local_id: row.try_get("local_id")?,
                doc_id: row.try_get("doc_id")?,
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

/// Drops the entries beyond the newest [`CONFLICTS_KEPT`] and takes them off the count, in the
/// batch's transaction on `conn`.
pub(super) async fn trim(conn: &mut PgConnection) -> Result<(), RecordError> {
    sqlx::query(
        "WITH dropped AS ( \
           DELETE FROM legacy_conflicts WHERE seq <= (SELECT max(seq) FROM legacy_conflicts) - $1 \
           RETURNING seq \
         ) \
         UPDATE legacy_counters SET value = value - (SELECT count(*) FROM dropped) \
         WHERE name = 'conflicts'",
    )
    .bind(i64::try_from(CONFLICTS_KEPT).unwrap_or(i64::MAX))
    .execute(conn)
    .await?;
    Ok(())
}
