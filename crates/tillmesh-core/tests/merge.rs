//! Concurrent edits on two tills merge to the same order on both, in either merge order: no added
//! item is lost, status never regresses, concurrent quantity changes both count (whole pieces and
//! weights in thousandths alike).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{actor, at, item, order_on_a};
use proptest::prelude::*;
use tillmesh_core::{OrderDoc, OrderStatus, PaymentMethod, PaymentStatus, Quantity, order_hash};
use uuid::Uuid;

#[derive(Debug, Clone)]
enum Edit {
    AddItem { quantity: Quantity, price_cents: i64 },
    SetQuantity { pick: usize, quantity: Quantity },
    VoidItem { pick: usize },
    Advance { status: OrderStatus },
    Claim { method: PaymentMethod, paid: bool },
    Notes { text: &'static str },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (quantity(), 0i64..5_000).prop_map(|(quantity, price_cents)| Edit::AddItem { quantity, price_cents }),
        (0usize..8, quantity()).prop_map(|(pick, quantity)| Edit::SetQuantity { pick, quantity }),
        (0usize..8).prop_map(|pick| Edit::VoidItem { pick }),
        proptest::sample::select(OrderStatus::ALL).prop_map(|status| Edit::Advance { status }),
        (proptest::sample::select(PaymentMethod::ALL), any::<bool>())
            .prop_map(|(method, paid)| Edit::Claim { method, paid }),
        proptest::sample::select(&["", "no onions", "table 4"][..]).prop_map(|text| Edit::Notes { text }),
    ]
}

/// Whole pieces or a weight with up to three decimals.
fn quantity() -> impl Strategy<Value = Quantity> {
    prop_oneof![(1i64..30).prop_map(Quantity::pieces), (1i64..30_000).prop_map(Quantity::from_thousandths)]
}

/// Applies edits as device `device`; refused edits (a voided item, a backwards status) change
/// nothing. Returns the ids of the items it added.
fn apply(doc: &mut OrderDoc, device: &str, side: u128, edits: &[Edit]) -> Vec<Uuid> {
    let mut added = Vec::new();
    for (step, edit) in edits.iter().enumerate() {
        let when = at(1_000 + step as i64 * 10 + side as i64);
        let items: Vec<Uuid> = doc.view(None).expect("view").items.iter().map(|i| i.id).collect();
        let pick = |n: usize| items.get(n % items.len().max(1)).copied();
        let _refused_or_done = match edit {
            Edit::AddItem { quantity, price_cents } => {
                let id = (side << 64) | step as u128;
                let mut new = item(id, "SKU", *quantity, "0");
                new.unit_price = tillmesh_core::Amount::from_minor(*price_cents);
                let result = doc.add_item(new, device, when);
                if result.is_ok() {
                    added.push(Uuid::from_u128(id));
                }
                result
            }
            Edit::SetQuantity { pick: n, quantity } => match pick(*n) {
                Some(id) => doc.set_quantity(id, *quantity, device, when),
                None => Ok(()),
            },
            Edit::VoidItem { pick: n } => match pick(*n) {
                Some(id) => doc.void_item(id, device, when),
                None => Ok(()),
            },
            Edit::Advance { status } => doc.advance(*status, device, when),
            Edit::Claim { method, paid } => {
                let status = if *paid { PaymentStatus::Paid } else { PaymentStatus::Pending };
                doc.claim_payment(*method, status, device, when)
            }
            Edit::Notes { text } => doc.set_notes(text, device, when),
        };
    }
    added
}

fn quantities(doc: &OrderDoc) -> BTreeMap<Uuid, i64> {
    doc.view(None).expect("view").items.iter().map(|i| (i.id, i.quantity.thousandths())).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn concurrent_edits_converge_without_loss(
        edits_a in proptest::collection::vec(edit(), 0..12),
        edits_b in proptest::collection::vec(edit(), 0..12),
    ) {
        let mut base = order_on_a();
        let base_quantities = quantities(&base);
        let mut a = base.fork(actor(1));
        let mut b = base.fork(actor(2));
        let added_a = apply(&mut a, "till-a", 1, &edits_a);
        let added_b = apply(&mut b, "till-b", 2, &edits_b);
        let (view_a, view_b) = (a.view(None).expect("view"), b.view(None).expect("view"));
        let (quantities_a, quantities_b) = (quantities(&a), quantities(&b));

        // Merge both ways.
        let mut a_then_b = a.fork(actor(3));
        a_then_b.merge(&mut b.clone()).expect("merge");
        let mut b_then_a = b.fork(actor(4));
        b_then_a.merge(&mut a.clone()).expect("merge");
        let merged = a_then_b.view(None).expect("view");
        prop_assert_eq!(&merged, &b_then_a.view(None).expect("view"));
        prop_assert_eq!(order_hash(&merged), order_hash(&b_then_a.view(None).expect("view")));
        let heads = |doc: &mut OrderDoc| doc.heads().into_iter().collect::<BTreeSet<_>>();
        prop_assert_eq!(heads(&mut a_then_b), heads(&mut b_then_a));

        // Status never regresses.
        prop_assert!(merged.status >= view_a.status && merged.status >= view_b.status);
        // No added item is lost.
        let merged_ids: BTreeSet<Uuid> = merged.items.iter().map(|i| i.id).collect();
        for id in added_a.iter().chain(&added_b) {
            prop_assert!(merged_ids.contains(id), "item {} lost", id);
        }
        // Quantity changes made concurrently both count (clamped at zero).
        let merged_quantities = quantities(&a_then_b);
        for (id, base_qty) in &base_quantities {
            let expected = (quantities_a[id] - base_qty) + (quantities_b[id] - base_qty) + base_qty;
            prop_assert_eq!(merged_quantities[id], expected.max(0), "item {}", id);
        }
        // Voided on either side stays voided.
        for item in view_a.items.iter().chain(&view_b.items).filter(|i| i.voided) {
            prop_assert!(merged.items.iter().any(|m| m.id == item.id && m.voided));
        }
        // Totals are derived from the merged items, each line rounded once.
        let line = |i: &tillmesh_core::OrderItem| i.quantity.price(i.unit_price).expect("priced").minor();
        let subtotal: i64 = merged.items.iter().filter(|i| !i.voided).map(line).sum();
        prop_assert_eq!(merged.subtotal.minor(), subtotal);
        prop_assert_eq!(merged.total.minor(), merged.subtotal.minor() + merged.tax.minor());
        let _ = &mut base;
    }
}

#[test]
fn concurrent_close_and_void_merge_to_voided() {
    let base = &mut order_on_a();
    let mut a = base.fork(actor(1));
    let mut b = base.fork(actor(2));
    a.advance(OrderStatus::Closed, "till-a", at(10)).expect("close");
    b.advance(OrderStatus::Voided, "till-b", at(10)).expect("void");
    a.merge(&mut b).expect("merge");
    assert_eq!(a.view(None).expect("view").status, OrderStatus::Voided);
    assert!(a.advance(OrderStatus::Closed, "till-a", at(20)).is_err(), "voided is terminal");
}

#[test]
fn voiding_is_an_event_not_a_deletion() {
    let mut order = order_on_a();
    let soup = Uuid::from_u128(1);
    order.void_item(soup, "till-a", at(5)).expect("void");
    let view = order.view(None).expect("view");
    let line = view.items.iter().find(|i| i.id == soup).expect("still there");
    assert!(line.voided);
    assert_eq!(line.line_total.minor(), 0);
    assert_eq!(view.subtotal.minor(), 225);
    assert!(order.set_quantity(soup, Quantity::pieces(3), "till-a", at(6)).is_err());
}
