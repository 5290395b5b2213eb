//! Legacy devices' bearer tokens: issued once per device (again after a revocation), kept only
//! as their SHA-256.

use sha2::{Digest, Sha256};
use tillmesh_core::Timestamp;
use tillmesh_core::edit::check_device_id;
use tillmesh_node::TillError;

use crate::error::{HqError, invalid};
use crate::records::{LegacyDevice, RecordStore};

/// Registers a legacy device in `records`, or a revoked one again, and returns its new bearer token.
pub async fn add_device<S: RecordStore>(
    records: &S,
    device_id: &str,
    now: Timestamp,
) -> Result<String, HqError> {
    check_device_id(device_id).map_err(|error| invalid(error.to_string()))?;
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|error| {
        HqError::Node(TillError::NotDurable { detail: format!("no randomness: {error}") })
    })?;
    let token = format!("tmd_{}", hex::encode(secret));
    records.add_device(device_id, &token_sha256(&token), now).await?;
    Ok(token)
}

/// The SHA-256 (hex) of a bearer token: what the store keeps instead of the token.
pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The id of a device whose token is valid, or why it is not.
pub(super) fn active(device: LegacyDevice) -> Result<String, HqError> {
    match device.revoked_at {
        None => Ok(device.device_id),
        Some(at) => Err(HqError::Revoked { device_id: device.device_id, at }),
    }
}
