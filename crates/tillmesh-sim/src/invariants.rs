//! The invariants checked after the healed phase (see `docs/ARCHITECTURE.md`, reliability model):
//! - every node holds the same documents at the same heads, and computes the same views;
//! - no acknowledged document is lost, and no document appears that no device created;
//! - no order number is used twice; every `localId` is carried by one document only;
//! - every HQ-owned field shows the value HQ last signed, confirmed, on every node, and no node
//!   sees an authority violation;
//! - nothing a revoked till wrote after its revocation is held by any other node.
//!
//! A revoked till is left out of the checks of the others (it keeps what it wrote alone).

use std::collections::BTreeMap;

use automerge::ChangeHash;
use tillmesh_core::{Document, HqPublicKey, PaymentView, order_hash, transaction_hash};
use tillmesh_sync::{DocId, Documents};
use uuid::Uuid;

use crate::error::SimError;
use crate::ledger::Ledger;
use crate::node::Node;

/// What one node shows of one document.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shown {
    what: &'static str,
    local_id: Uuid,
    label: String,
    hash: String,
    payment: PaymentView,
    violation: Option<String>,
}

/// Checks every invariant; the first violated one is returned.
pub(crate) fn check(
    seed: u64,
    nodes: &mut [Node],
    ledger: &Ledger,
    hq_public: Option<&HqPublicKey>,
) -> Result<(), SimError> {
    let revoked = ledger.revoked.map(|till| nodes[till].device_id.clone());
    let mut members: Vec<&mut Node> = nodes
        .iter_mut()
        .enumerate()
        .filter(|(index, _)| Some(*index) != ledger.revoked)
        .map(|(_, node)| node)
        .collect();
    same_heads_everywhere(seed, &mut members)?;
    if let Some(revoked) = revoked {
        revoked_writes_stayed(seed, &members, ledger, &revoked)?;
    }
    let mut reference: Option<(String, BTreeMap<DocId, Shown>)> = None;
    for node in &members {
        let shown = views(seed, node, hq_public)?;
        nothing_lost_nothing_invented(seed, node, ledger, &shown)?;
        hq_values_in_force(seed, node, ledger, &shown)?;
        match &reference {
            None => reference = Some((node.device_id.clone(), shown)),
            Some((reference_node, expected)) => {
                for (id, view) in &shown {
                    if expected.get(id) != Some(view) {
                        return Err(SimError::ViewsDiffer {
                            seed,
                            doc_id: *id,
                            node: node.device_id.clone(),
                            reference: reference_node.clone(),
                        });
                    }
                }
            }
        }
    }
    if let Some((_, shown)) = &reference {
        unique_numbers_and_local_ids(seed, shown)?;
    }
    Ok(())
}

/// No member holds a change the revoked till made after its revocation.
fn revoked_writes_stayed(
    seed: u64,
    members: &[&mut Node],
    ledger: &Ledger,
    revoked: &str,
) -> Result<(), SimError> {
    for node in members {
        for id in &ledger.revoked_writes {
            let Some(doc) = node.docs.get(id) else { continue };
            let mut doc = doc.clone();
            if doc.get_changes(&[]).iter().any(|change| ledger.revoked_actors.contains(change.actor_id())) {
                return Err(SimError::RevokedWriteSpread {
                    seed,
                    node: node.device_id.clone(),
                    revoked: revoked.to_string(),
                    doc_id: *id,
                });
            }
        }
    }
    Ok(())
}

/// Every node holds the same set of documents, each at the same heads.
fn same_heads_everywhere(seed: u64, nodes: &mut [&mut Node]) -> Result<(), SimError> {
    let Some((first, rest)) = nodes.split_first_mut() else { return Ok(()) };
    let expected = all_heads(first);
    for node in rest {
        let found = all_heads(node);
        for (id, heads) in &expected {
            match found.get(id) {
                None => {
                    return Err(SimError::HeadsDiffer {
                        seed,
                        doc_id: *id,
                        detail: format!("held by {}, missing on {}", first.device_id, node.device_id),
                    });
                }
                Some(theirs) if theirs != heads => {
                    return Err(SimError::HeadsDiffer {
                        seed,
                        doc_id: *id,
                        detail: format!(
                            "{} has {} heads {}, {} has {} heads {}",
                            first.device_id,
                            heads.len(),
                            short(heads),
                            node.device_id,
                            theirs.len(),
                            short(theirs)
                        ),
                    });
                }
                Some(_) => {}
            }
        }
        if let Some(id) = found.keys().find(|id| !expected.contains_key(id)) {
            return Err(SimError::HeadsDiffer {
                seed,
                doc_id: *id,
                detail: format!("held by {}, missing on {}", node.device_id, first.device_id),
            });
        }
    }
    Ok(())
}

/// Every document's sorted heads on one node.
pub(crate) fn all_heads(node: &mut Node) -> BTreeMap<DocId, Vec<ChangeHash>> {
    let ids: Vec<DocId> = node.docs.iter().map(|(id, _)| *id).collect();
    let mut all = BTreeMap::new();
    for id in ids {
        let Ok(Some(mut heads)) = node.docs.heads(id) else { continue };
        heads.sort();
        all.insert(id, heads);
    }
    all
}

fn short(heads: &[ChangeHash]) -> String {
    heads
        .iter()
        .map(|head| head.to_string().chars().take(8).collect::<String>())
        .collect::<Vec<_>>()
        .join(",")
}

/// The effective view of every document a node holds.
fn views(
    seed: u64,
    node: &Node,
    hq_public: Option<&HqPublicKey>,
) -> Result<BTreeMap<DocId, Shown>, SimError> {
    let mut shown = BTreeMap::new();
    for (id, doc) in node.docs.iter() {
        let unreadable =
            |source| SimError::Document { seed, node: node.device_id.clone(), doc_id: *id, source };
        let view = match Document::from_automerge(doc.clone()).map_err(unreadable)? {
            Document::Order(order) => {
                let order = order.view(hq_public).map_err(unreadable)?;
                Shown {
                    what: "order",
                    local_id: order.local_id,
                    label: order.order_number.clone(),
                    hash: order_hash(&order),
                    violation: order.violations.first().map(|v| format!("{v:?}")),
                    payment: order.payment,
                }
            }
            Document::Transaction(transaction) => {
                let transaction = transaction.view(hq_public).map_err(unreadable)?;
                Shown {
                    what: "transaction",
                    local_id: transaction.local_id,
                    label: transaction.reference_number.clone(),
                    hash: transaction_hash(&transaction),
                    violation: transaction.violations.first().map(|v| format!("{v:?}")),
                    payment: transaction.payment,
                }
            }
            // The simulated shop publishes no menu: one is a document no device created.
            Document::Menu(_) => {
                return Err(SimError::UnknownDocument { seed, doc_id: *id, node: node.device_id.clone() });
            }
        };
        shown.insert(*id, view);
    }
    Ok(shown)
}

/// Every acknowledged document is on the node, as its creator wrote it; nothing else is.
fn nothing_lost_nothing_invented(
    seed: u64,
    node: &Node,
    ledger: &Ledger,
    shown: &BTreeMap<DocId, Shown>,
) -> Result<(), SimError> {
    for (id, created) in &ledger.created {
        // What a revoked till wrote may have reached the others before its revocation, or not.
        let optional = Some(created.creator) == ledger.revoked;
        let Some(view) = shown.get(id) else {
            if optional {
                continue;
            }
            return Err(SimError::Lost {
                seed,
                what: created.what,
                doc_id: *id,
                label: created.label.clone(),
                node: node.device_id.clone(),
            });
        };
        if (view.what, view.local_id, &view.label) != (created.what, created.local_id, &created.label) {
            return Err(SimError::WrongHeader {
                seed,
                doc_id: *id,
                node: node.device_id.clone(),
                expected: format!("{} {} localId {}", created.what, created.label, created.local_id),
                found: format!("{} {} localId {}", view.what, view.label, view.local_id),
            });
        }
    }
    if let Some(id) = shown.keys().find(|id| !ledger.created.contains_key(id)) {
        return Err(SimError::UnknownDocument { seed, doc_id: *id, node: node.device_id.clone() });
    }
    Ok(())
}

/// HQ's last signed settlement is in force and confirmed wherever HQ settled; nowhere else is
/// anything confirmed; no node sees a violation but the forgeries a till wrote.
fn hq_values_in_force(
    seed: u64,
    node: &Node,
    ledger: &Ledger,
    shown: &BTreeMap<DocId, Shown>,
) -> Result<(), SimError> {
    for (id, view) in shown {
        // A forged settlement is reported by every view: that is the rule working.
        if let Some(violation) = &view.violation
            && !ledger.forged.contains(id)
        {
            return Err(SimError::AuthorityViolation {
                seed,
                doc_id: *id,
                node: node.device_id.clone(),
                violation: violation.clone(),
            });
        }
        let payment = &view.payment;
        let mismatch = |expected: String| SimError::SettlementMismatch {
            seed,
            doc_id: *id,
            node: node.device_id.clone(),
            expected,
            found: format!(
                "{} (confirmed {}, settlement seq {:?})",
                payment.status,
                payment.confirmed,
                payment.settlement.as_ref().map(|s| s.settlement.seq)
            ),
        };
        match ledger.settled.get(id) {
            Some(signed) => {
                let in_force = payment.settlement.as_ref() == Some(signed)
                    && payment.status == signed.settlement.status
                    && payment.confirmed;
                if !in_force {
                    return Err(mismatch(format!(
                        "{} (seq {})",
                        signed.settlement.status, signed.settlement.seq
                    )));
                }
            }
            None if payment.confirmed || payment.settlement.is_some() => {
                return Err(mismatch("no settlement".to_string()));
            }
            None => {}
        }
    }
    Ok(())
}

/// Order numbers and `localId`s are unique across all documents.
fn unique_numbers_and_local_ids(seed: u64, shown: &BTreeMap<DocId, Shown>) -> Result<(), SimError> {
    let mut numbers: BTreeMap<&str, DocId> = BTreeMap::new();
    let mut local_ids: BTreeMap<Uuid, DocId> = BTreeMap::new();
    for (id, view) in shown {
        if view.what == "order"
            && let Some(first) = numbers.insert(&view.label, *id)
        {
            return Err(SimError::DuplicateOrderNumber {
                seed,
                number: view.label.clone(),
                first,
                second: *id,
            });
        }
        if let Some(first) = local_ids.insert(view.local_id, *id) {
            return Err(SimError::DuplicateLocalId { seed, local_id: view.local_id, first, second: *id });
        }
    }
    Ok(())
}
