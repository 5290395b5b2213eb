//! The counters table (`legacy_counters`): the change feed's end, and the counts `/metrics` and
//! `/api/health` report, each read with one lookup however many records there are. Batches
//! advance them in the statement that writes their rows ([`super::write`]); adding a device
//! counts it in its insert and revoking it takes it back ([`super::devices`]).

use sqlx::PgPool;

use super::rows::{corrupt, counter_value};
use crate::records::{RecordCounts, RecordError};

/// The newest change-feed position (0 when empty).
pub(super) async fn last_position(pool: &PgPool) -> Result<u64, RecordError> {
    let position: Option<i64> =
        sqlx::query_scalar("SELECT value FROM legacy_counters WHERE name = 'position'")
            .fetch_optional(pool)
            .await?;
    counter_value(position.ok_or_else(|| corrupt("counter position missing"))?, "position")
}

/// How many records, devices whose token is valid, and conflicts.
pub(super) async fn counts(pool: &PgPool) -> Result<RecordCounts, RecordError> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT name, value FROM legacy_counters \
         WHERE name IN ('orders', 'transactions', 'devices', 'conflicts')",
    )
    .fetch_all(pool)
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
