//! SERVER_WINS: HQ's signed settlement is the effective payment status on every peer; forged or
//! unsigned writes to HQ-owned fields are ignored and reported.

mod common;

use automerge::ReadDoc;
use automerge::transaction::Transactable;
use common::{actor, at, order_on_a};
use tillmesh_core::{HqSigningKey, OrderDoc, PaymentMethod, PaymentStatus};

fn hq() -> HqSigningKey {
    HqSigningKey::from_bytes(&[7; 32])
}

#[test]
fn till_claim_then_hq_confirmation() {
    let mut order = order_on_a();
    order.claim_payment(PaymentMethod::Card, PaymentStatus::Paid, "till-a", at(1_000)).expect("claim");
    let before = order.view(Some(&hq().public_key())).expect("view");
    assert_eq!((before.payment.status, before.payment.confirmed), (PaymentStatus::Paid, false));

    let mut on_hq = order.fork(actor(9));
    on_hq.settle(&hq(), PaymentStatus::Captured, "hq", at(2_000)).expect("settle");
    order.merge(&mut on_hq).expect("merge");
    let after = order.view(Some(&hq().public_key())).expect("view");
    assert_eq!((after.payment.status, after.payment.confirmed), (PaymentStatus::Captured, true));
    assert_eq!(after.payment.claimed, Some(PaymentStatus::Paid));
    assert_eq!(after.payment.method, Some(PaymentMethod::Card));
    assert_eq!(after.payment.conflict, None);
    assert!(after.violations.is_empty());
}

#[test]
fn hq_decline_overrides_a_tills_paid_claim() {
    let mut order = order_on_a();
    order.claim_payment(PaymentMethod::Card, PaymentStatus::Paid, "till-a", at(1_000)).expect("claim");
    let mut on_hq = order.fork(actor(9));
    on_hq.settle(&hq(), PaymentStatus::Declined, "hq", at(2_000)).expect("settle");
    order.merge(&mut on_hq).expect("merge");
    let view = order.view(Some(&hq().public_key())).expect("view");
    assert_eq!(view.payment.status, PaymentStatus::Declined);
    assert!(view.payment.confirmed);
    assert_eq!(view.payment.conflict, None, "the claim came before HQ's decision");
}

#[test]
fn hq_confirmation_concurrent_with_a_later_contrary_claim() {
    let mut till = order_on_a();
    let mut on_hq = till.fork(actor(9));
    on_hq.settle(&hq(), PaymentStatus::Declined, "hq", at(2_000)).expect("settle");
    // The till, not yet seeing HQ's decline, claims PAID later.
    till.claim_payment(PaymentMethod::Cash, PaymentStatus::Paid, "till-a", at(3_000)).expect("claim");

    let mut merged_on_till = till.fork(actor(1));
    merged_on_till.merge(&mut on_hq.clone()).expect("merge");
    on_hq.merge(&mut till).expect("merge");
    for doc in [&merged_on_till, &on_hq] {
        let view = doc.view(Some(&hq().public_key())).expect("view");
        assert_eq!(view.payment.status, PaymentStatus::Declined, "SERVER_WINS");
        let conflict = view.payment.conflict.expect("contrary later claim is reported");
        assert_eq!((conflict.claimed, conflict.settled), (PaymentStatus::Paid, PaymentStatus::Declined));
        assert_eq!(conflict.claimed_by, "till-a");
    }
}

#[test]
fn refund_outranks_capture() {
    let mut order = order_on_a();
    order.settle(&hq(), PaymentStatus::Captured, "hq", at(1_000)).expect("capture");
    let signed = order.settle(&hq(), PaymentStatus::Refunded, "hq", at(2_000)).expect("refund");
    assert_eq!(signed.settlement.seq, 2);
    let view = order.view(Some(&hq().public_key())).expect("view");
    assert_eq!(view.payment.status, PaymentStatus::Refunded);
}

#[test]
fn a_settlement_signed_by_another_key_is_ignored_and_reported() {
    let mut order = order_on_a();
    order.claim_payment(PaymentMethod::Card, PaymentStatus::Pending, "till-a", at(500)).expect("claim");
    let forger = HqSigningKey::from_bytes(&[8; 32]);
    let mut rogue = order.fork(actor(66));
    rogue
        .settle(&forger, PaymentStatus::Captured, "till-x", at(1_000))
        .expect("writes, but cannot sign as HQ");
    order.merge(&mut rogue).expect("merge");
    let view = order.view(Some(&hq().public_key())).expect("view");
    assert_eq!((view.payment.status, view.payment.confirmed), (PaymentStatus::Pending, false));
    assert_eq!(view.violations.len(), 1);
    assert_eq!(view.violations[0].actor, actor(66).to_hex_string());
    assert_eq!(view.violations[0].doc_id, order.id());
}

#[test]
fn unsigned_raw_writes_to_hq_fields_are_ignored_and_reported() {
    let mut order = order_on_a();
    let doc = order.automerge();
    doc.set_actor(actor(67));
    // Bypass the API: a bare settlement entry without a valid signature, and a claim of an
    // HQ-only status.
    let (_, settlements) = doc.get(automerge::ROOT, "settlements").expect("read").expect("list");
    let entry = doc.insert_object(&settlements, 0, automerge::ObjType::Map).expect("insert");
    doc.put(&entry, "status", "CAPTURED").expect("put");
    doc.put(&entry, "seq", 99u64).expect("put");
    doc.put(&entry, "at", 1i64).expect("put");
    doc.put(&entry, "signature", "00".repeat(64)).expect("put");
    let (_, claims) = doc.get(automerge::ROOT, "claims").expect("read").expect("list");
    let claim = doc.insert_object(&claims, 0, automerge::ObjType::Map).expect("insert");
    doc.put(&claim, "status", "REFUNDED").expect("put");
    doc.put(&claim, "by", "till-x").expect("put");
    doc.put(&claim, "at", 5i64).expect("put");
    doc.put(&claim, "method", automerge::ScalarValue::Null).expect("put");
    doc.commit();

    let reloaded = OrderDoc::load(&order.save()).expect("still a readable order");
    let view = reloaded.view(Some(&hq().public_key())).expect("view");
    assert_eq!((view.payment.status, view.payment.confirmed), (PaymentStatus::Pending, false));
    assert_eq!(view.violations.len(), 2, "{:?}", view.violations);
    assert!(view.violations.iter().all(|v| v.actor == actor(67).to_hex_string()));
}

#[test]
fn without_the_hq_key_no_settlement_is_honoured() {
    let mut order = order_on_a();
    order.settle(&hq(), PaymentStatus::Captured, "hq", at(1_000)).expect("settle");
    let view = order.view(None).expect("view");
    assert_eq!((view.payment.status, view.payment.confirmed), (PaymentStatus::Pending, false));
    assert_eq!(view.violations.len(), 1);
}

#[test]
fn tills_cannot_claim_hq_statuses_through_the_api() {
    let mut order = order_on_a();
    for status in [PaymentStatus::Captured, PaymentStatus::Declined, PaymentStatus::Refunded] {
        assert!(order.claim_payment(PaymentMethod::Card, status, "till-a", at(1)).is_err());
    }
    assert!(order.settle(&hq(), PaymentStatus::Paid, "hq", at(1)).is_err(), "PAID is not a settlement");
}
