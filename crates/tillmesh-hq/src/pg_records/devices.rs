//! Legacy devices and the SHA-256 of their bearer tokens (`legacy_devices`).

use sqlx::PgPool;
use tillmesh_core::Timestamp;

use crate::records::RecordError;

/// Registers a device with its token's SHA-256 (hex), counting it in the same statement.
pub(super) async fn add_device(
    pool: &PgPool,
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
    .execute(pool)
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

/// The device a token's SHA-256 (hex) belongs to.
pub(super) async fn device_of(pool: &PgPool, token_sha256: &str) -> Result<Option<String>, RecordError> {
    Ok(sqlx::query_scalar("SELECT device_id FROM legacy_devices WHERE token_sha256 = $1")
        .bind(token_sha256)
        .fetch_optional(pool)
        .await?)
}
