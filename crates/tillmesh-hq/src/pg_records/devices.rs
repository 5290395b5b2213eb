//! Legacy devices and the SHA-256 of their current bearer tokens (`legacy_devices`); the
//! `devices` counter counts those whose token is valid.

use sqlx::PgPool;
use tillmesh_core::Timestamp;

use crate::records::{LegacyDevice, RecordError};

/// A device's columns, for [`listed`].
const DEVICE_COLUMNS: &str = "device_id, created_at, revoked_at";

type DeviceRow = (String, i64, Option<i64>);

fn listed((device_id, created_at, revoked_at): DeviceRow) -> LegacyDevice {
    LegacyDevice { device_id, added_at: Some(Timestamp(created_at)), revoked_at: revoked_at.map(Timestamp) }
}

/// Registers a device with its token's SHA-256 (hex), or a revoked one afresh, counting it in the
/// same statement.
pub(super) async fn add_device(
    pool: &PgPool,
    device_id: &str,
    token_sha256: &str,
    at: Timestamp,
) -> Result<(), RecordError> {
    let added: i64 = sqlx::query_scalar(
        "WITH added AS ( \
           INSERT INTO legacy_devices (token_sha256, device_id, created_at) VALUES ($1, $2, $3) \
           ON CONFLICT ON CONSTRAINT legacy_devices_device_id_unique DO UPDATE \
             SET token_sha256 = EXCLUDED.token_sha256, created_at = EXCLUDED.created_at, revoked_at = NULL \
             WHERE legacy_devices.revoked_at IS NOT NULL \
           RETURNING device_id \
         ), counted AS ( \
           UPDATE legacy_counters SET value = value + (SELECT count(*) FROM added) WHERE name = 'devices' \
         ) \
         SELECT count(*) FROM added",
    )
    .bind(token_sha256)
    .bind(device_id)
    .bind(at.millis())
    .fetch_one(pool)
    .await?;
    if added == 0 {
        return Err(RecordError::DeviceExists { device_id: device_id.to_string() });
    }
    Ok(())
}

/// Revokes a device's token `at` (a revoked device keeps its first time), uncounting it.
pub(super) async fn revoke_device(
    pool: &PgPool,
    device_id: &str,
    at: Timestamp,
) -> Result<LegacyDevice, RecordError> {
    let mut transaction = pool.begin().await?;
    let row: Option<DeviceRow> = sqlx::query_as(&format!(
        "SELECT {DEVICE_COLUMNS} FROM legacy_devices WHERE device_id = $1 FOR UPDATE"
    ))
    .bind(device_id)
    .fetch_optional(&mut *transaction)
    .await?;
    let (device_id, created_at, revoked_at) =
        row.ok_or_else(|| RecordError::UnknownDevice { device_id: device_id.to_string() })?;
    if revoked_at.is_none() {
        sqlx::query(
            "WITH revoked AS (UPDATE legacy_devices SET revoked_at = $2 WHERE device_id = $1) \
             UPDATE legacy_counters SET value = value - 1 WHERE name = 'devices'",
        )
        .bind(&device_id)
        .bind(at.millis())
        .execute(&mut *transaction)
        .await?;
    }
    transaction.commit().await?;
    Ok(listed((device_id, created_at, revoked_at.or(Some(at.millis())))))
}

/// Every device, by device id (byte order, as the embedded store lists them).
pub(super) async fn devices(pool: &PgPool) -> Result<Vec<LegacyDevice>, RecordError> {
    let rows: Vec<DeviceRow> = sqlx::query_as(&format!(
        "SELECT {DEVICE_COLUMNS} FROM legacy_devices ORDER BY device_id COLLATE \"C\""
    ))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(listed).collect())
}

/// The device registered as `device_id`.
pub(super) async fn device(pool: &PgPool, device_id: &str) -> Result<Option<LegacyDevice>, RecordError> {
    let row: Option<DeviceRow> =
        sqlx::query_as(&format!("SELECT {DEVICE_COLUMNS} FROM legacy_devices WHERE device_id = $1"))
            .bind(device_id)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(listed))
}

/// The device whose current token has this SHA-256 (hex).
pub(super) async fn device_of(
    pool: &PgPool,
    token_sha256: &str,
) -> Result<Option<LegacyDevice>, RecordError> {
    let row: Option<DeviceRow> =
        sqlx::query_as(&format!("SELECT {DEVICE_COLUMNS} FROM legacy_devices WHERE token_sha256 = $1"))
            .bind(token_sha256)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(listed))
}
