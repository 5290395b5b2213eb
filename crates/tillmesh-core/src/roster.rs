//! The shop roster: which devices may join the shop's mesh, signed by HQ.
//!
//! Each entry binds a till code to a device's libp2p peer id (as text); HQ signs it with the same
//! key it signs settlements with, so every peer checks entries offline. A revocation is a newer
//! entry for the same peer id with `revoked: true`. Peers present their own signed entry when they
//! connect, and pass on the entries they know, so a till added after others started is still
//! admitted and a revocation reaches every peer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::authority::{HqPublicKey, HqSigningKey};
use crate::numbering::TillCode;
use crate::time::Timestamp;

/// Domain separation for roster signatures.
const ROSTER_CONTEXT: &[u8] = b"tillmesh/roster/v1\0";

/// The till code of the HQ node on the roster.
pub const HQ_CODE: &str = "HQ";

/// Longest peer id text accepted.
pub const PEER_ID_CHARS_MAX: usize = 128;

/// One device on the roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RosterEntry {
    /// The device's libp2p peer id, as text.
    pub peer_id: String,
    /// The till's code in the shop (`HQ` for the HQ server).
    pub till_code: TillCode,
    /// Whether the device has been revoked.
    pub revoked: bool,
    /// Newer versions of an entry replace older ones.
    pub version: u64,
    /// When HQ issued this version.
    pub issued_at: Timestamp,
}

impl RosterEntry {
    fn signed_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(ROSTER_CONTEXT.len() + self.peer_id.len() + 32);
        bytes.extend_from_slice(ROSTER_CONTEXT);
        bytes.extend_from_slice(&(self.peer_id.len() as u32).to_be_bytes());
        bytes.extend_from_slice(self.peer_id.as_bytes());
        bytes.extend_from_slice(self.till_code.as_str().as_bytes());
        bytes.push(0);
        bytes.push(u8::from(self.revoked));
        bytes.extend_from_slice(&self.version.to_be_bytes());
        bytes.extend_from_slice(&self.issued_at.0.to_be_bytes());
        bytes
    }
}

/// A roster entry with HQ's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignedRosterEntry {
    /// The entry.
    pub entry: RosterEntry,
    /// HQ's ed25519 signature over it, hex.
    #[serde(with = "hex::serde")]
    pub signature: [u8; 64],
}

impl HqSigningKey {
    /// Signs a roster entry.
    pub fn sign_roster(&self, entry: RosterEntry) -> SignedRosterEntry {
        let signature = self.sign_bytes(&entry.signed_bytes());
        SignedRosterEntry { entry, signature }
    }
}

impl SignedRosterEntry {
    /// Whether HQ's key signed exactly this entry.
    pub fn verify(&self, hq: &HqPublicKey) -> bool {
        self.entry.peer_id.len() <= PEER_ID_CHARS_MAX
            && hq.verify_bytes(&self.entry.signed_bytes(), &self.signature)
    }
}

/// Why a roster entry was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RosterError {
    /// The signature does not verify with HQ's key.
    #[error("roster entry for {peer_id} is not signed by this shop's HQ")]
    BadSignature {
        /// The entry's peer id.
        peer_id: String,
    },
    /// Another active device already holds the till code.
    #[error("till code {code} already belongs to {holder}")]
    CodeTaken {
        /// The code.
        code: String,
        /// The peer id holding it.
        holder: String,
    },
}

/// The entries a peer knows, newest version per peer id, all verified.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roster {
    entries: BTreeMap<String, SignedRosterEntry>,
}

impl Roster {
    /// An empty roster.
    pub fn new() -> Roster {
        Roster::default()
    }

    /// Takes in an entry if HQ signed it and it is newer than what is known. Returns whether the
    /// roster changed.
    pub fn merge(&mut self, signed: SignedRosterEntry, hq: &HqPublicKey) -> Result<bool, RosterError> {
        if !signed.verify(hq) {
            return Err(RosterError::BadSignature {
                peer_id: signed.entry.peer_id.chars().take(64).collect(),
            });
        }
        if let Some(known) = self.entries.get(&signed.entry.peer_id)
            && known.entry.version >= signed.entry.version
        {
            return Ok(false);
        }
        self.entries.insert(signed.entry.peer_id.clone(), signed);
        Ok(true)
    }

    /// The active (not revoked) entry of a peer.
    pub fn active(&self, peer_id: &str) -> Option<&RosterEntry> {
        self.entries.get(peer_id).map(|signed| &signed.entry).filter(|entry| !entry.revoked)
    }

    /// The newest known entry of a peer, revoked or not.
    pub fn get(&self, peer_id: &str) -> Option<&SignedRosterEntry> {
        self.entries.get(peer_id)
    }

    /// The active device holding a till code.
    pub fn holder_of(&self, code: &TillCode) -> Option<&RosterEntry> {
        self.entries
            .values()
            .map(|signed| &signed.entry)
            .find(|entry| !entry.revoked && entry.till_code == *code)
    }

    /// Every entry, by peer id.
    pub fn entries(&self) -> impl Iterator<Item = &SignedRosterEntry> {
        self.entries.values()
    }

    /// Checks that a new active entry does not reuse another active device's till code.
    pub fn check_code_free(&self, entry: &RosterEntry) -> Result<(), RosterError> {
        match self.holder_of(&entry.till_code) {
            Some(holder) if holder.peer_id != entry.peer_id && !entry.revoked => {
                Err(RosterError::CodeTaken {
                    code: entry.till_code.to_string(),
                    holder: holder.peer_id.clone(),
                })
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(peer: &str, code: &str, revoked: bool, version: u64) -> RosterEntry {
        RosterEntry {
            peer_id: peer.into(),
            till_code: TillCode::parse(code).expect("code"),
            revoked,
            version,
            issued_at: Timestamp(1),
        }
    }

    #[test]
    fn only_hq_signed_newer_entries_count() {
        let hq = HqSigningKey::from_bytes(&[7; 32]);
        let forger = HqSigningKey::from_bytes(&[8; 32]);
        let mut roster = Roster::new();
        assert_eq!(roster.merge(hq.sign_roster(entry("peer-b", "B", false, 1)), &hq.public_key()), Ok(true));
        assert!(roster.active("peer-b").is_some());
        assert!(matches!(
            roster.merge(forger.sign_roster(entry("peer-x", "X", false, 1)), &hq.public_key()),
            Err(RosterError::BadSignature { .. })
        ));
        let mut tampered = hq.sign_roster(entry("peer-c", "C", false, 1));
        tampered.entry.till_code = TillCode::parse("D").expect("code");
        assert!(roster.merge(tampered, &hq.public_key()).is_err());
        // Revocation replaces; an older version does not bring the device back.
        assert_eq!(roster.merge(hq.sign_roster(entry("peer-b", "B", true, 2)), &hq.public_key()), Ok(true));
        assert!(roster.active("peer-b").is_none());
        assert_eq!(roster.merge(hq.sign_roster(entry("peer-b", "B", false, 1)), &hq.public_key()), Ok(false));
        assert!(roster.active("peer-b").is_none());
        // A revoked device's code is free again.
        assert_eq!(roster.check_code_free(&entry("peer-e", "B", false, 1)), Ok(()));
        roster.merge(hq.sign_roster(entry("peer-e", "B", false, 1)), &hq.public_key()).expect("valid");
        assert!(roster.check_code_free(&entry("peer-f", "B", false, 1)).is_err());
    }

    #[test]
    fn entries_round_trip_through_json() {
        let hq = HqSigningKey::from_bytes(&[7; 32]);
        let signed = hq.sign_roster(entry("12D3KooW", "A", false, 3));
        let json = serde_json::to_string(&signed).expect("json");
        let back: SignedRosterEntry = serde_json::from_str(&json).expect("parse");
        assert!(back.verify(&hq.public_key()));
        assert!(serde_json::from_str::<SignedRosterEntry>(&json.replace("\"A\"", "\"a b\"")).is_err());
    }
}
