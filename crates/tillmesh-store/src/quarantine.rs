//! Documents refused — sent by a peer and not loadable or not valid — kept aside for inspection.
//!
//! An entry is keyed by the SHA-256 of the refused bytes, so the same bytes sent again are
//! recognised and dropped without being loaded (a peer re-sending a poisoned document at every
//! anti-entropy round costs one lookup). The tree holds at most [`QUARANTINE_ENTRIES_MAX`]
//! entries; refusals beyond that are still refused and counted, not kept.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Most entries kept aside.
pub const QUARANTINE_ENTRIES_MAX: u64 = 1_000;

/// A refused document kept aside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Quarantined {
    /// The document it claimed to be.
    pub id: Uuid,
    /// Who sent it: a peer id, or `disk` for a document of this store that no longer loads.
    pub from: String,
    /// Why it was refused.
    pub reason: String,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The refused bytes (a whole document or a sync message).
    #[serde(with = "hex::serde")]
    pub bytes: Vec<u8>,
}

/// The key of refused bytes.
pub(crate) fn key(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}
