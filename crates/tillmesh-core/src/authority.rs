//! SERVER_WINS by construction: HQ's settlement of a payment is signed with HQ's ed25519 key, so
//! every peer verifies it offline and no till can forge it.
//!
//! A till records what it did as an append-only *claim* (`PAID`, with the method); HQ appends
//! signed *settlements* (`CAPTURED`, `DECLINED`, `REFUNDED`). The effective payment status is
//! HQ's newest valid settlement when there is one, else the till's newest claim, shown as
//! unconfirmed. Automerge has no per-key access control, so anything in the settlement list
//! that does not verify, and any claim of an HQ-only status, is ignored by every view and
//! reported as an [`AuthorityViolation`] naming the Automerge actor that wrote it.

use std::fmt;

use automerge::{AutoCommit, ObjId, ReadDoc};
use autosurgeon::{Hydrate, Reconcile};
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use serde::Serialize;
use uuid::Uuid;

use crate::kind::DocKind;
use crate::status::{PaymentMethod, PaymentStatus};
use crate::time::Timestamp;

/// Domain separation for settlement signatures: never valid as any other signed message.
const SETTLEMENT_CONTEXT: &[u8] = b"tillmesh/settlement/v1\0";

/// HQ's secret signing key for one shop. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct HqSigningKey(SigningKey);

impl HqSigningKey {
    /// The key from its 32 secret bytes (made by the caller from a secure random source).
    pub fn from_bytes(secret: &[u8; 32]) -> Self {
        HqSigningKey(SigningKey::from_bytes(secret))
    }

    /// The 32 secret bytes, for the shop's key file.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The public half, which every till holds.
    pub fn public_key(&self) -> HqPublicKey {
        HqPublicKey(self.0.verifying_key())
    }

    /// Signs a settlement.
    pub fn sign(&self, settlement: Settlement) -> SignedSettlement {
        let signature = self.sign_bytes(&settlement.signed_bytes());
        SignedSettlement { settlement, signature }
    }

    /// Signs domain-separated bytes (a settlement or a roster entry).
    pub(crate) fn sign_bytes(&self, bytes: &[u8]) -> [u8; 64] {
        self.0.sign(bytes).to_bytes()
    }
}

impl fmt::Debug for HqSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("HqSigningKey").field(&self.public_key()).finish()
    }
}

/// HQ's public key: verifies settlements offline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HqPublicKey(VerifyingKey);

impl HqPublicKey {
    /// Parses the 64-character hex form.
    pub fn from_hex(text: &str) -> Result<HqPublicKey, KeyError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| KeyError)?;
        VerifyingKey::from_bytes(&bytes).map(HqPublicKey).map_err(|_| KeyError)
    }

    /// The 64-character hex form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_bytes())
    }

    /// Whether `signature` is HQ's over `bytes`.
    pub(crate) fn verify_bytes(&self, bytes: &[u8], signature: &[u8; 64]) -> bool {
        self.0.verify(bytes, &ed25519_dalek::Signature::from_bytes(signature)).is_ok()
    }
}

impl fmt::Debug for HqPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HqPublicKey({})", self.to_hex())
    }
}

/// Not a valid ed25519 public key in hex.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an ed25519 public key (64 hex characters)")]
pub struct KeyError;

/// HQ's decision on one document's payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settlement {
    /// The kind of document settled.
    #[serde(skip)]
    pub kind: DocKind,
    /// The document settled.
    pub doc_id: Uuid,
    /// `CAPTURED`, `DECLINED` or `REFUNDED`.
    pub status: PaymentStatus,
    /// HQ's count of settlements on this document: the highest valid one is in force.
    pub seq: u64,
    /// When HQ decided.
    pub at: Timestamp,
}

impl Settlement {
    /// The exact bytes HQ signs.
    fn signed_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(SETTLEMENT_CONTEXT.len() + 1 + 16 + 16 + 16);
        bytes.extend_from_slice(SETTLEMENT_CONTEXT);
        bytes.push(self.kind.tag());
        bytes.extend_from_slice(self.doc_id.as_bytes());
        bytes.extend_from_slice(self.status.as_str().as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(&self.seq.to_be_bytes());
        bytes.extend_from_slice(&self.at.0.to_be_bytes());
        bytes
    }
}

/// A settlement with HQ's signature over it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedSettlement {
    /// What HQ decided.
    #[serde(flatten)]
    pub settlement: Settlement,
    /// HQ's ed25519 signature over the settlement.
    #[serde(serialize_with = "hex::serde::serialize")]
    pub signature: [u8; 64],
}

impl SignedSettlement {
    /// Whether HQ's key signed exactly this settlement.
    pub fn verify(&self, hq: &HqPublicKey) -> bool {
        let signature = ed25519_dalek::Signature::from_bytes(&self.signature);
        self.settlement.status.is_settlement()
            && hq.0.verify(&self.settlement.signed_bytes(), &signature).is_ok()
    }
}

/// A write to an HQ-owned field that no view honours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorityViolation {
    /// The document written to.
    pub doc_id: Uuid,
    /// The Automerge actor (hex) whose change wrote it: one process run of one device.
    pub actor: String,
    /// What was written, as text.
    pub written: String,
    /// Why it is ignored.
    pub reason: &'static str,
}

/// A till's claim written after HQ settled, contrary to HQ's value. HQ's value stays in force;
/// the conflict is reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentConflict {
    /// What the till claimed.
    pub claimed: PaymentStatus,
    /// The device that claimed it.
    pub claimed_by: String,
    /// When it claimed it.
    pub claimed_at: Timestamp,
    /// HQ's settled value, which wins.
    pub settled: PaymentStatus,
}

/// One entry of a document's `claims` list: what a till says happened.
#[derive(Debug, Clone, PartialEq, Eq, Reconcile, Hydrate)]
pub(crate) struct ClaimRecord {
    pub(crate) status: String,
    pub(crate) method: Option<String>,
    pub(crate) by: String,
    pub(crate) at: i64,
}

/// One entry of a document's `settlements` list, as HQ writes it.
#[derive(Debug, Clone, PartialEq, Eq, Reconcile, Hydrate)]
pub(crate) struct SettlementRecord {
    pub(crate) status: String,
    pub(crate) seq: u64,
    pub(crate) at: i64,
    pub(crate) signature: String,
}

impl SettlementRecord {
    pub(crate) fn from_signed(signed: &SignedSettlement) -> Self {
        SettlementRecord {
            status: signed.settlement.status.as_str().to_string(),
            seq: signed.settlement.seq,
            at: signed.settlement.at.0,
            signature: hex::encode(signed.signature),
        }
    }

    fn to_signed(&self, kind: DocKind, doc_id: Uuid) -> Option<SignedSettlement> {
        let mut signature = [0u8; 64];
        hex::decode_to_slice(&self.signature, &mut signature).ok()?;
        let status = self.status.parse().ok()?;
        Some(SignedSettlement {
            settlement: Settlement { kind, doc_id, status, seq: self.seq, at: Timestamp(self.at) },
            signature,
        })
    }
}

/// The payment state every view shows: HQ's settlement if any, else the till's claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentView {
    /// The effective status.
    pub status: PaymentStatus,
    /// Whether HQ's signed settlement stands behind `status`.
    pub confirmed: bool,
    /// The method of the newest claim.
    pub method: Option<PaymentMethod>,
    /// The till's newest claim, if any.
    pub claimed: Option<PaymentStatus>,
    /// HQ's settlement in force, if any.
    pub settlement: Option<SignedSettlement>,
    /// A till's claim made after HQ settled and contrary to it.
    pub conflict: Option<PaymentConflict>,
}

/// Reads a document's `claims` and `settlements` lists into the payment view and the violations.
pub(crate) fn resolve_payment(
    doc: &AutoCommit,
    kind: DocKind,
    doc_id: Uuid,
    claims: &ObjId,
    settlements: &ObjId,
    hq: Option<&HqPublicKey>,
) -> (PaymentView, Vec<AuthorityViolation>) {
    // An entry that is not a claim at all has nothing to show and nothing it could change.
    let claim_entries = list_entries(doc, claims)
        .filter_map(|(index, actor)| Some((autosurgeon::hydrate_prop(doc, claims, index).ok()?, actor)));
    let settlement_entries = list_entries(doc, settlements)
        .map(|(index, actor)| (autosurgeon::hydrate_prop(doc, settlements, index).ok(), actor));
    resolve(kind, doc_id, claim_entries, settlement_entries, hq)
}

/// The payment view and the violations from claims and settlements as written, each with the
/// actor (hex) that wrote it; `None` stands for a settlement entry that is not one.
pub(crate) fn resolve(
    kind: DocKind,
    doc_id: Uuid,
    claims: impl IntoIterator<Item = (ClaimRecord, String)>,
    settlements: impl IntoIterator<Item = (Option<SettlementRecord>, String)>,
    hq: Option<&HqPublicKey>,
) -> (PaymentView, Vec<AuthorityViolation>) {
    let mut violations = Vec::new();
    let mut newest_claim: Option<(ClaimRecord, PaymentStatus, Option<PaymentMethod>)> = None;
    for (record, actor) in claims {
        let Ok(status) = record.status.parse::<PaymentStatus>() else { continue };
        if status.is_settlement() {
            violations.push(AuthorityViolation {
                doc_id,
                actor,
                written: format!("claim {status} by {}", record.by),
                reason: "only HQ may set a settlement status, with its signature",
            });
            continue;
        }
        let method = record.method.as_deref().and_then(|m| m.parse().ok());
        let newer = newest_claim.as_ref().is_none_or(|(best, best_status, _)| {
            (record.at, status, &record.by) > (best.at, *best_status, &best.by)
        });
        if newer {
            newest_claim = Some((record, status, method));
        }
    }

    let mut settlement: Option<SignedSettlement> = None;
    for (written, actor) in settlements {
        let signed = written.as_ref().and_then(|record| record.to_signed(kind, doc_id));
        let valid = match (&signed, hq) {
            (Some(signed), Some(hq)) => signed.verify(hq),
            _ => false,
        };
        #[cfg(feature = "planted-bugs")]
        let valid = valid || (signed.is_some() && crate::planted::planted().accept_unsigned_settlement);
        match signed {
            Some(signed) if valid => {
                let key = |s: &SignedSettlement| {
                    (s.settlement.seq, s.settlement.at, s.settlement.status, s.signature)
                };
                if settlement.as_ref().is_none_or(|best| key(&signed) > key(best)) {
                    settlement = Some(signed);
                }
            }
            _ => violations.push(AuthorityViolation {
                doc_id,
                actor,
                written: match written {
                    Some(record) => format!("settlement {} seq {}", record.status, record.seq),
                    None => "malformed settlement".to_string(),
                },
                reason: if hq.is_none() {
                    "no HQ key is configured to verify settlements"
                } else {
                    "signature does not verify with HQ's key"
                },
            }),
        }
    }

    let claimed = newest_claim.as_ref().map(|(_, status, _)| *status);
    let conflict = match (&newest_claim, &settlement) {
        (Some((claim, claimed, _)), Some(signed))
            if claim.at > signed.settlement.at.0
                && !(*claimed == PaymentStatus::Paid
                    && signed.settlement.status == PaymentStatus::Captured) =>
        {
            Some(PaymentConflict {
                claimed: *claimed,
                claimed_by: claim.by.clone(),
                claimed_at: Timestamp(claim.at),
                settled: signed.settlement.status,
            })
        }
        _ => None,
    };
    let view = PaymentView {
        status: settlement
            .as_ref()
            .map(|signed| signed.settlement.status)
            .or(claimed)
            .unwrap_or(PaymentStatus::Pending),
        confirmed: settlement.is_some(),
        method: newest_claim.and_then(|(_, _, method)| method),
        claimed,
        settlement,
        conflict,
    };
    (view, violations)
}

/// The next settlement sequence number for a document: one above every entry written so far,
/// valid or not, so a new settlement always outranks what is there.
pub(crate) fn next_settlement_seq(doc: &AutoCommit, settlements: &ObjId) -> u64 {
    list_entries(doc, settlements)
        .filter_map(|(index, _)| {
            autosurgeon::hydrate_prop::<_, SettlementRecord, _, _>(doc, settlements, index).ok()
        })
        .map(|record| record.seq)
        .max()
        .unwrap_or(0)
        + 1
}

/// Index and writing actor (hex) of every entry of a list.
pub(crate) fn list_entries<'a>(
    doc: &'a AutoCommit,
    list: &'a ObjId,
) -> impl Iterator<Item = (usize, String)> + 'a {
    (0..doc.length(list)).map(move |index| {
        let actor = match doc.get(list, index) {
            Ok(Some((_, ObjId::Id(_, actor, _)))) => actor.to_hex_string(),
            _ => String::from("unknown"),
        };
        (index, actor)
    })
}
