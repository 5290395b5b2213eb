//! Document layout rules: schema versions, kinds, validation, transactions, and the canonical
//! hash with its golden vectors.

mod common;

use automerge::ReadDoc;
use automerge::transaction::Transactable;
use common::{actor, at, item, new_order, order_on_a};
use tillmesh_core::{
    Amount, Currency, Document, DocumentError, EditError, HqSigningKey, NewTransaction, OrderDoc,
    OrderStatus, PaymentMethod, PaymentStatus, Quantity, Reached, TextError, TransactionDoc, order_hash,
    transaction_hash,
};
use uuid::Uuid;

fn new_transaction() -> NewTransaction {
    NewTransaction {
        id: Uuid::from_u128(0x0b),
        local_id: Uuid::from_u128(0x1b),
        reference_number: "A-1-PAY-1".to_string(),
        order_id: Uuid::from_u128(0x0a),
        device_id: "till-a".to_string(),
        amount: "10.57".parse().expect("amount"),
        currency: Currency::parse("USD").expect("code"),
        payment_method: PaymentMethod::Card,
        status: PaymentStatus::Paid,
        card_last4: Some("1111".to_string()),
        processor_reference: Some("ch_3PQ".to_string()),
        created_at: at(60_000),
    }
}

#[test]
fn a_document_from_a_newer_schema_is_refused_with_a_clear_error() {
    let mut order = order_on_a();
    order.automerge().put(automerge::ROOT, "schema", 2u64).expect("put");
    let error = OrderDoc::load(&order.save()).expect_err("newer schema");
    assert!(matches!(error, DocumentError::NewerSchema { found: 2, supported: 1, .. }), "{error}");
    assert!(error.to_string().contains("upgrade tillmesh"));
}

#[test]
fn loading_checks_the_kind() {
    let mut transaction = TransactionDoc::create(new_transaction(), actor(1)).expect("valid");
    let bytes = transaction.save();
    assert!(matches!(OrderDoc::load(&bytes), Err(DocumentError::WrongKind { .. })));
    assert!(matches!(Document::load(&bytes), Ok(Document::Transaction(_))));
    assert!(Document::load(b"not automerge").is_err());
    assert!(Document::load(&automerge::AutoCommit::new().save()).is_err(), "an empty document has no header");
}

#[test]
fn order_validation_refuses_bad_input() {
    let card = new_order(vec![item(1, "SOUP", Quantity::pieces(1), "1.00")]);
    let mut with_card = card.clone();
    with_card.notes = "card 4111 1111 1111 1111".to_string();
    assert!(matches!(
        OrderDoc::create(with_card, actor(1)),
        Err(EditError::Text(TextError::CardNumber { .. }))
    ));
    let mut negative = card.clone();
    negative.items[0].unit_price = Amount::from_minor(-1);
    assert!(matches!(OrderDoc::create(negative, actor(1)), Err(EditError::Money { field: "unitPrice", .. })));
    let mut zero_qty = card.clone();
    zero_qty.items[0].quantity = Quantity::ZERO;
    assert!(matches!(
        OrderDoc::create(zero_qty, actor(1)),
        Err(EditError::Quantity { quantity: Quantity::ZERO })
    ));
    let mut bad_device = card;
    bad_device.device_id = "till a".to_string();
    assert!(OrderDoc::create(bad_device, actor(1)).is_err());

    let mut order = order_on_a();
    let before = order.save();
    assert!(
        order.add_item(item(1, "SOUP", Quantity::pieces(1), "1.00"), "till-a", at(1)).is_err(),
        "duplicate item id"
    );
    assert!(
        order.set_quantity(Uuid::from_u128(99), Quantity::pieces(2), "till-a", at(1)).is_err(),
        "unknown item"
    );
    let tiny = Quantity::from_thousandths(0);
    assert!(order.set_quantity(Uuid::from_u128(1), tiny, "till-a", at(1)).is_err(), "zero");
    let huge = Quantity::from_thousandths(10_000_001);
    assert!(order.set_quantity(Uuid::from_u128(1), huge, "till-a", at(1)).is_err(), "over 10,000");
    assert_eq!(order.save(), before, "refused edits change nothing");
}

#[test]
fn an_order_created_as_reached_is_the_order_created_then_advanced_and_claimed() {
    let claims = [
        None,
        Some((PaymentMethod::Cash, PaymentStatus::Pending)),
        Some((PaymentMethod::Card, PaymentStatus::Paid)),
    ];
    let hq = HqSigningKey::from_bytes(&[9; 32]).public_key();
    let mut checked = 0;
    for &status in OrderStatus::ALL {
        for claim in claims {
            // Recorded after the order was taken, and (a device's clock) before it.
            for when in [at(90_000), at(-5_000)] {
                let new = new_order(vec![
                    item(1, "SOUP", Quantity::pieces(2), "4.50"),
                    item(2, "BREAD", Quantity::pieces(1), "2.25"),
                ]);
                let mut stepwise = OrderDoc::create(new.clone(), actor(1)).expect("valid order");
                if status != OrderStatus::Open {
                    stepwise.advance(status, "till-a", when).expect("forward from OPEN");
                }
                let claimed =
                    claim.map(|(method, paid)| stepwise.claim_payment(method, paid, "till-a", when));
                let reached =
                    Reached { status, claim, adjustment: Amount::ZERO, names: Default::default(), at: when };
                let made = OrderDoc::create_reached(new, Some(reached), actor(1));
                if let Some(Err(refused)) = claimed {
                    assert_eq!(status, OrderStatus::Voided);
                    let made = made.expect_err("a claim on a voided order is refused");
                    assert_eq!(made.to_string(), refused.to_string());
                    continue;
                }
                let (mut doc, view) = made.expect("valid order");
                let expected = stepwise.view(Some(&hq)).expect("view");
                assert_eq!(view, expected, "{status} {claim:?} {when:?}");
                assert_eq!(doc.view(Some(&hq)).expect("view"), expected, "read back");
                let reloaded = OrderDoc::load(&doc.save()).expect("load");
                assert_eq!(reloaded.view(Some(&hq)).expect("view"), expected, "saved and loaded");
                assert_eq!(doc.heads().len(), 1, "one change");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, OrderStatus::ALL.len() * 6 - 4);
    let paid = Reached {
        status: OrderStatus::Open,
        claim: Some((PaymentMethod::Card, PaymentStatus::Captured)),
        adjustment: Amount::ZERO,
        names: Default::default(),
        at: at(1),
    };
    let refused = OrderDoc::create_reached(new_order(Vec::new()), Some(paid), actor(1));
    assert!(matches!(refused, Err(EditError::HqOnly { status: PaymentStatus::Captured })), "{refused:?}");
}

#[test]
fn transactions_hold_no_card_numbers_and_settle_like_orders() {
    let mut with_pan = new_transaction();
    with_pan.processor_reference = Some("4111111111111111".to_string());
    assert!(matches!(
        TransactionDoc::create(with_pan, actor(1)),
        Err(EditError::Text(TextError::CardNumber { .. }))
    ));
    let mut long_last4 = new_transaction();
    long_last4.card_last4 = Some("11111".to_string());
    assert!(TransactionDoc::create(long_last4, actor(1)).is_err());

    let hq = HqSigningKey::from_bytes(&[7; 32]);
    let mut transaction = TransactionDoc::create(new_transaction(), actor(1)).expect("valid");
    let mut on_hq = transaction.fork(actor(9));
    on_hq.settle(&hq, PaymentStatus::Declined, "hq", at(70_000)).expect("settle");
    transaction.claim(PaymentStatus::Paid, "till-a", at(80_000)).expect("claim");
    transaction.merge(&mut on_hq).expect("merge");
    let view = transaction.view(Some(&hq.public_key())).expect("view");
    assert_eq!(view.payment.status, PaymentStatus::Declined);
    assert!(view.payment.conflict.is_some());
    assert_eq!(view.amount, Amount::from_minor(1057));
}

#[test]
fn the_hash_ignores_history_and_sync_metadata() {
    let one_go = order_on_a();
    let mut step_by_step = OrderDoc::create(new_order(vec![]), actor(5)).expect("valid");
    step_by_step.add_item(item(2, "BREAD", Quantity::pieces(1), "2.25"), "till-b", at(7)).expect("add");
    step_by_step.add_item(item(1, "SOUP", Quantity::pieces(1), "4.50"), "till-c", at(8)).expect("add");
    step_by_step.set_quantity(Uuid::from_u128(1), Quantity::pieces(2), "till-c", at(9)).expect("qty");
    let (a, b) = (one_go.view(None).expect("view"), step_by_step.view(None).expect("view"));
    assert_ne!(a.updated_at, b.updated_at);
    assert_eq!(order_hash(&a), order_hash(&b));
}

/// Weighed goods: a line is its weight times its unit price, rounded once to the cent; a weight
/// set on an item of a document made before weights existed (no `qtyMilli`) counts too.
#[test]
fn weighed_goods_are_priced_exactly() {
    let weight = |text: &str| text.parse::<Quantity>().expect("quantity");
    let new =
        new_order(vec![item(1, "CHEESE", weight("0.5"), "12.99"), item(2, "BREAD", weight("2"), "2.25")]);
    let mut order = OrderDoc::create(new, actor(1)).expect("valid");
    let view = order.view(None).expect("view");
    assert_eq!((view.items[0].quantity, view.items[0].line_total), (weight("0.5"), Amount::from_minor(650)));
    assert_eq!(view.subtotal, Amount::from_minor(1100));
    assert!(tillmesh_core::hash::order_canonical_text(&view).contains(r#""quantity":0.5,"#));
    order.set_quantity(Uuid::from_u128(1), weight("1.237"), "till-a", at(2)).expect("reweighed");
    order.set_quantity(Uuid::from_u128(2), weight("1.5"), "till-a", at(3)).expect("half a loaf less");
    let view = order.view(None).expect("view");
    assert_eq!(view.items[0].line_total, Amount::from_minor(1607), "1.237 × 12.99 = 16.06863");
    assert_eq!(view.items[1].quantity, weight("1.5"));

    // An item as an earlier build wrote it: `qty` alone.
    let mut older = order_on_a();
    let items = older.automerge().get(automerge::ROOT, "items").expect("read").expect("items").1;
    let soup = older.automerge().get(&items, Uuid::from_u128(1).to_string()).expect("read").expect("soup").1;
    older.automerge().delete(&soup, "qtyMilli").expect("delete");
    assert_eq!(older.view(None).expect("view").items[0].quantity, Quantity::pieces(2));
    older.set_quantity(Uuid::from_u128(1), weight("2.75"), "till-b", at(4)).expect("a weight");
    assert_eq!(older.view(None).expect("view").items[0].quantity, weight("2.75"));
}

/// Golden vectors: these hashes are the REST API's `serverHash`. Changing them breaks every
/// legacy client's stored hashes; a change here must come with a schema version bump.
#[test]
fn golden_hash_vectors() {
    let order = order_on_a().view(None).expect("view");
    assert_eq!(
        tillmesh_core::hash::order_canonical_text(&order),
        concat!(
            r#"{"createdAt":1704067200000,"currency":"USD","id":"00000000-0000-0000-0000-00000000000a","#,
            r#""items":[{"id":"00000000-0000-0000-0000-000000000001","productId":"SOUP","productName":"SOUP name","#,
            r#""quantity":2,"unitPrice":450,"voided":false},{"id":"00000000-0000-0000-0000-000000000002","#,
            r#""productId":"BREAD","productName":"BREAD name","quantity":1,"unitPrice":225,"voided":false}],"#,
            r#""kind":"order","notes":"","orderNumber":"A-1","orderStatus":"OPEN","paymentConfirmed":false,"#,
            r#""paymentMethod":null,"paymentStatus":"PENDING","subtotal":1125,"tax":93,"taxRateBps":825,"total":1218}"#
        )
    );
    assert_eq!(order_hash(&order), "638916d02e1b4649b85b960620bbe49d3a604885305868a936071d88604c0388");
    let transaction =
        TransactionDoc::create(new_transaction(), actor(1)).expect("valid").view(None).expect("view");
    assert_eq!(
        tillmesh_core::hash::transaction_canonical_text(&transaction),
        concat!(
            r#"{"amount":1057,"cardLast4":"1111","createdAt":1704067260000,"currency":"USD","#,
            r#""id":"00000000-0000-0000-0000-00000000000b","kind":"transaction","#,
            r#""orderId":"00000000-0000-0000-0000-00000000000a","paymentConfirmed":false,"paymentMethod":"CARD","#,
            r#""processorReference":"ch_3PQ","referenceNumber":"A-1-PAY-1","status":"PAID"}"#
        )
    );
    // Both digests were checked independently with `printf '%s' '<text>' | sha256sum`.
    assert_eq!(
        transaction_hash(&transaction),
        "6ce863d48bec34925535ec91adee068a01d3448d1879723ad6b77461caaf2599"
    );
}

/// A document written as a JS client writes by default (strings as collaborative text, a
/// quantity as a plain integer, a price as a float) is refused naming the field and the type
/// tillmesh expects, not with a bare "unexpected Text".
#[test]
fn a_field_of_the_wrong_type_is_named_with_the_type_expected() {
    use automerge::{ObjType, ROOT, ReadDoc, ScalarValue};
    type Write = fn(&mut automerge::AutoCommit, &automerge::ObjId);
    let item_id = Uuid::from_u128(1).to_string();
    let cases: [(&str, Write, &str, &str); 4] = [
        (
            "notes",
            |doc, _| {
                let text = doc.put_object(ROOT, "notes", ObjType::Text).expect("text");
                doc.splice_text(&text, 0, 0, "no onions").expect("splice");
            },
            "ImmutableString",
            "collaborative text",
        ),
        (
            "items.*.qty",
            |doc, item| {
                doc.put(item, "qty", 2i64).expect("put");
            },
            "Counter",
            "an integer",
        ),
        (
            "items.*.unitPrice",
            |doc, item| {
                doc.put(item, "unitPrice", ScalarValue::F64(4.5)).expect("put");
            },
            "integer",
            "a float",
        ),
        (
            "schema",
            |doc, _| {
                doc.put(ROOT, "schema", 1i64).expect("put");
            },
            "Uint",
            "an integer",
        ),
    ];
    for (field, write, expected, found) in cases {
        let mut order = order_on_a();
        let doc = order.automerge();
        let items = match doc.get(ROOT, "items").expect("items") {
            Some((_, items)) => items,
            None => panic!("no items"),
        };
        let item = match doc.get(&items, item_id.as_str()).expect("item") {
            Some((_, item)) => item,
            None => panic!("no item"),
        };
        write(doc, &item);
        let error = match order.view(None) {
            Err(error) => error,
            Ok(_) => panic!("{field}: read"),
        };
        let field_path = field.replace('*', &item_id);
        match &error {
            DocumentError::Layout(layout) => {
                assert_eq!(layout.field, field_path);
                assert!(layout.expected.contains(expected), "{error}");
                assert!(layout.found.contains(found), "{error}");
            }
            other => panic!("{field}: {other}"),
        }
    }
}

/// A legacy order's total as sold: the adjustment (a discount or a surcharge) rides on top of
/// items and tax, in every view; it can be changed while the order is open, never below a zero
/// total; a document made before adjustments existed reads as none.
#[test]
fn an_adjustment_keeps_the_total_a_legacy_device_sold_at() {
    let new = new_order(vec![
        item(1, "SOUP", Quantity::pieces(2), "4.50"),
        item(2, "BREAD", Quantity::pieces(1), "2.25"),
    ]);
    let reached = Reached {
        status: OrderStatus::Open,
        claim: None,
        adjustment: Amount::from_minor(-150),
        names: Default::default(),
        at: at(1),
    };
    let (mut doc, view) = OrderDoc::create_reached(new, Some(reached), actor(1)).expect("valid order");
    assert_eq!((view.subtotal, view.adjustment), (Amount::from_minor(1125), Amount::from_minor(-150)));
    assert_eq!(view.total.minor(), view.subtotal.minor() + view.tax.minor() - 150);
    let reloaded = OrderDoc::load(&doc.save()).expect("load");
    assert_eq!(reloaded.view(None).expect("view"), view, "saved and loaded");

    doc.set_adjustment(Amount::from_minor(250), "hq", at(2)).expect("a surcharge");
    let surcharged = doc.view(None).expect("view");
    assert_eq!(surcharged.total.minor(), surcharged.subtotal.minor() + surcharged.tax.minor() + 250);
    let too_much = doc.set_adjustment(Amount::from_minor(-100_000), "hq", at(3));
    assert!(matches!(too_much, Err(EditError::Money { field: "adjustment", .. })), "{too_much:?}");

    doc.automerge().delete(automerge::ROOT, "adjustment").expect("delete");
    let before_adjustments = doc.view(None).expect("view");
    assert_eq!(before_adjustments.adjustment, Amount::ZERO);
    assert_eq!(
        before_adjustments.total.minor(),
        before_adjustments.subtotal.minor() + before_adjustments.tax.minor()
    );
}

/// A legacy device's own names ride in the document: a legacy client is shown them wherever
/// they still mean the order's values, tillmesh's names elsewhere.
#[test]
fn legacy_names_are_kept_as_sent() {
    use tillmesh_core::legacy::LegacyOrder;
    let names = |pairs: &[(&str, &str)]| {
        pairs.iter().map(|(field, name)| (field.to_string(), name.to_string())).collect()
    };
    let reached = Reached {
        status: OrderStatus::Closed,
        claim: None,
        adjustment: Amount::ZERO,
        names: names(&[
            ("orderStatus", "Completed"),
            ("paymentStatus", "UNPAID"),
            ("paymentMethod", "CREDIT_CARD"),
        ]),
        at: at(1),
    };
    let (mut doc, view) = OrderDoc::create_reached(
        new_order(vec![item(1, "SOUP", Quantity::pieces(1), "4.50")]),
        Some(reached),
        actor(1),
    )
    .expect("order");
    let legacy = LegacyOrder::from_view(&view);
    assert_eq!(legacy.order_status.name(), "Completed");
    assert_eq!(legacy.payment_status.name(), "UNPAID");
    assert_eq!(
        legacy.payment_method.as_ref().map(|m| m.name()),
        Some("CREDIT_CARD"),
        "no claim: the name as sent"
    );
    let reloaded = OrderDoc::load(&doc.save()).expect("load");
    assert_eq!(reloaded.view(None).expect("view").legacy_names, view.legacy_names);

    // A name that no longer means the value (HQ's settlement) gives way to tillmesh's own.
    doc.set_legacy_names(&names(&[("paymentStatus", "COMPLETED")]), "hq", at(2)).expect("names");
    let view = doc.view(None).expect("view");
    assert_eq!(view.legacy_names.get("paymentStatus").map(String::as_str), Some("COMPLETED"));
    assert_eq!(LegacyOrder::from_view(&view).payment_status.name(), "PENDING", "COMPLETED means PAID");
}
