//! What a peer presents to be admitted, and how roster news travels: its own entry first, then
//! the revocations it knows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tillmesh_core::SignedRosterEntry;

/// By peer id, the [`digest`] of the credentials each admitted peer last acknowledged (answered
/// a request after them): a peer that holds our entry and every revocation we know needs none of
/// it again when it reconnects, and is not sent it.
pub type Introductions = BTreeMap<String, u64>;

/// A frame's `credentials` field, as JSON.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Credentials {
    pub(crate) entries: Vec<SignedRosterEntry>,
}

impl Credentials {
    /// Encodes the entries.
    pub(crate) fn encode(entries: Vec<SignedRosterEntry>) -> Vec<u8> {
        serde_json::to_vec(&Credentials { entries }).unwrap_or_default()
    }

    /// The entries a peer sent; nothing when they do not parse.
    pub(crate) fn decode(bytes: &[u8]) -> Vec<SignedRosterEntry> {
        serde_json::from_slice::<Credentials>(bytes).map(|c| c.entries).unwrap_or_default()
    }
}

/// A digest of encoded credentials: equal for the same entries.
pub(crate) fn digest(credentials: &[u8]) -> u64 {
    let hash = Sha256::digest(credentials);
    u64::from_le_bytes([hash[0], hash[1], hash[2], hash[3], hash[4], hash[5], hash[6], hash[7]])
}

/// The remote name of a roster till code: `till-B`, or `hq` for HQ.
pub fn remote_name(code: &str) -> String {
    if code == tillmesh_core::roster::HQ_CODE { "hq".to_string() } else { format!("till-{code}") }
}
