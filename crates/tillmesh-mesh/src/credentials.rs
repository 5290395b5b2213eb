//! What a peer presents to be admitted, and how roster news travels: its own entry first, then
//! the revocations it knows.

use serde::{Deserialize, Serialize};
use tillmesh_core::SignedRosterEntry;

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

/// The remote name of a roster till code: `till-B`, or `hq` for HQ.
pub fn remote_name(code: &str) -> String {
    if code == tillmesh_core::roster::HQ_CODE { "hq".to_string() } else { format!("till-{code}") }
}
