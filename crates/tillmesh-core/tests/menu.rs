//! The shop's menu: HQ's signed offers are the only prices and availability any view shows; a
//! till's write to them is ignored and reported; concurrent copies merge to one menu.

mod common;

use automerge::transaction::Transactable;
use automerge::{ObjType, ROOT, ReadDoc};
use common::{actor, at};
use tillmesh_core::{
    Amount, Currency, DocKind, Document, DocumentError, EditError, HqSigningKey, Menu, MenuDoc,
    MenuItemPatch, NewMenuItem, View,
};

fn hq() -> HqSigningKey {
    HqSigningKey::from_bytes(&[7; 32])
}

fn usd() -> Currency {
    Currency::parse("USD").expect("code")
}

fn item(sku: &str, category: &str, price: &str, available: bool) -> NewMenuItem {
    NewMenuItem {
        sku: sku.to_string(),
        name: format!("{sku} name"),
        category: category.to_string(),
        tax_class: "standard".to_string(),
        price: price.parse().expect("price"),
        available,
    }
}

/// HQ's menu with soup (4.50) and tea (2.00), both on sale.
fn menu_on_hq() -> MenuDoc {
    let mut menu = MenuDoc::create(&hq().public_key(), usd(), "hq", at(0), actor(9)).expect("create");
    let items = [item("SOUP", "Soups", "4.50", true), item("TEA", "Drinks", "2.00", true)];
    assert!(menu.replace(&hq(), Some(usd()), &items, "hq", at(1_000)).expect("replace"));
    menu
}

fn view(menu: &MenuDoc) -> Menu {
    menu.view(Some(&hq().public_key())).expect("view")
}

/// (price, available) of a SKU as the view shows it.
fn offer_of(menu: &Menu, sku: &str) -> (Option<Amount>, bool) {
    let item = menu.items.iter().find(|item| item.sku == sku).expect("listed");
    (item.price, item.available)
}

fn cents(minor: i64) -> Option<Amount> {
    Some(Amount::from_minor(minor))
}

/// Appends an offer entry as any peer can, bypassing the API.
fn append_raw_offer(menu: &mut MenuDoc, writer: u8, sku: &str, price: i64, seq: u64, signature: &str) {
    let doc = menu.automerge();
    doc.set_actor(actor(writer));
    let (_, offers) = doc.get(ROOT, "offers").expect("read").expect("list");
    let end = doc.length(&offers);
    let entry = doc.insert_object(&offers, end, ObjType::Map).expect("insert");
    doc.put(&entry, "sku", sku).expect("put");
    doc.put(&entry, "price", price).expect("put");
    doc.put(&entry, "available", true).expect("put");
    doc.put(&entry, "seq", seq).expect("put");
    doc.put(&entry, "at", at(5_000).0).expect("put");
    doc.put(&entry, "signature", signature).expect("put");
    doc.commit();
}

/// The signature (hex) of the entry in force for `sku`, read from the document.
fn signature_in_force(menu: &mut MenuDoc, sku: &str) -> (i64, u64, String) {
    let doc = menu.automerge();
    let (_, offers) = doc.get(ROOT, "offers").expect("read").expect("list");
    let mut best = None;
    for index in 0..doc.length(&offers) {
        let (_, entry) = doc.get(&offers, index).expect("read").expect("entry");
        let text =
            |key: &str| doc.get(&entry, key).expect("read").expect("field").0.as_str().map(str::to_string);
        if text("sku").as_deref() != Some(sku) {
            continue;
        }
        let value = |key: &str| doc.get(&entry, key).expect("read").expect("field").0;
        let seq = value("seq").as_u64().expect("seq");
        if best.as_ref().is_none_or(|(_, best_seq, _)| seq > *best_seq) {
            best =
                Some((value("price").as_i64().expect("price"), seq, text("signature").expect("signature")));
        }
    }
    best.expect("an entry")
}

#[test]
fn one_menu_per_shop_found_from_hqs_key() {
    let first = MenuDoc::create(&hq().public_key(), usd(), "hq", at(0), actor(1)).expect("create");
    let again = MenuDoc::create(&hq().public_key(), usd(), "hq", at(9_000), actor(2)).expect("create");
    assert_eq!(first.id(), again.id(), "a restarted HQ makes the same menu, never a second");
    assert_eq!(first.id(), MenuDoc::id_for(&hq().public_key()));
    let other_shop = HqSigningKey::from_bytes(&[8; 32]).public_key();
    assert_ne!(MenuDoc::id_for(&other_shop), first.id());
}

#[test]
fn hqs_signed_offers_are_the_menu() {
    let mut menu = menu_on_hq();
    let shown = view(&menu);
    assert_eq!(shown.currency, usd());
    assert!(shown.violations.is_empty());
    // By category, then name.
    let skus: Vec<&str> = shown.items.iter().map(|item| item.sku.as_str()).collect();
    assert_eq!(skus, ["TEA", "SOUP"]);
    assert_eq!(offer_of(&shown, "SOUP"), (cents(450), true));
    assert_eq!(shown.items[1].category, "Soups");
    assert_eq!(shown.items[1].tax_class, "standard");

    // Any peer reads the same from the saved bytes, as a document of kind "menu".
    let mut loaded = Document::load(&menu.save()).expect("loads");
    assert_eq!(loaded.kind(), DocKind::Menu);
    assert_eq!(loaded.heads(), menu.heads());
    let View::Menu(again) = loaded.view(Some(&hq().public_key())).expect("view") else {
        panic!("not a menu view")
    };
    assert_eq!(again, shown);
    assert_eq!((again.id, loaded.id()), (menu.id(), menu.id()));
}

#[test]
fn without_hqs_key_nothing_is_for_sale() {
    let menu = menu_on_hq();
    let shown = menu.view(None).expect("view");
    assert!(shown.items.iter().all(|item| item.price.is_none() && !item.available));
    assert_eq!(shown.violations.len(), 2);
}

#[test]
fn a_tills_unsigned_price_is_ignored_and_reported() {
    let mut on_till = menu_on_hq().fork(actor(66));
    append_raw_offer(&mut on_till, 66, "SOUP", 1, 99, &"00".repeat(64));
    let reloaded = MenuDoc::load(&on_till.save()).expect("still a readable menu");
    let shown = view(&reloaded);
    assert_eq!(offer_of(&shown, "SOUP"), (cents(450), true), "HQ's price stays");
    assert_eq!(shown.violations.len(), 1, "{:?}", shown.violations);
    let violation = &shown.violations[0];
    assert_eq!(violation.actor, actor(66).to_hex_string());
    assert_eq!(violation.doc_id, reloaded.id());
    assert!(violation.written.contains("SOUP") && violation.written.contains("0.01"), "{violation:?}");
}

#[test]
fn a_tampered_price_under_hqs_signature_is_ignored_and_reported() {
    let mut menu = menu_on_hq();
    let (price, seq, signature) = signature_in_force(&mut menu, "SOUP");
    assert_eq!(price, 450);
    let mut on_till = menu.fork(actor(67));
    // HQ's signature copied onto a lower price, and onto the next sequence number.
    append_raw_offer(&mut on_till, 67, "SOUP", 1, seq, &signature);
    append_raw_offer(&mut on_till, 67, "SOUP", 450, seq + 1, &signature);
    // A malformed entry, too.
    let doc = on_till.automerge();
    let (_, offers) = doc.get(ROOT, "offers").expect("read").expect("list");
    let end = doc.length(&offers);
    doc.insert(&offers, end, "half price").expect("insert");
    doc.commit();
    let shown = view(&on_till);
    assert_eq!(offer_of(&shown, "SOUP"), (cents(450), true));
    assert_eq!(shown.violations.len(), 3, "{:?}", shown.violations);
    assert!(shown.violations.iter().all(|v| v.actor == actor(67).to_hex_string()));
    // A shop's offer is not valid on another shop's menu either.
    let other = HqSigningKey::from_bytes(&[8; 32]);
    let foreign = on_till.view(Some(&other.public_key())).expect("view");
    assert!(foreign.items.iter().all(|item| !item.available));
}

#[test]
fn a_replayed_older_offer_does_not_roll_the_price_back() {
    let mut menu = menu_on_hq();
    let (old_price, old_seq, old_signature) = signature_in_force(&mut menu, "SOUP");
    let patch = MenuItemPatch { price: Some("5.00".parse().expect("price")), ..MenuItemPatch::default() };
    assert!(menu.update_item(&hq(), "SOUP", &patch, "hq", at(2_000)).expect("update"));
    assert_eq!(offer_of(&view(&menu), "SOUP"), (cents(500), true), "newest valid offer wins");
    // A till appends HQ's old, validly signed offer again: it is valid but older.
    let mut on_till = menu.fork(actor(68));
    let at_old = at(1_000).0;
    let doc = on_till.automerge();
    let (_, offers) = doc.get(ROOT, "offers").expect("read").expect("list");
    let end = doc.length(&offers);
    let entry = doc.insert_object(&offers, end, ObjType::Map).expect("insert");
    for (key, value) in [("sku", "SOUP".into()), ("signature", old_signature.as_str().into())] {
        doc.put(&entry, key, automerge::ScalarValue::Str(value)).expect("put");
    }
    doc.put(&entry, "price", old_price).expect("put");
    doc.put(&entry, "available", true).expect("put");
    doc.put(&entry, "seq", old_seq).expect("put");
    doc.put(&entry, "at", at_old).expect("put");
    doc.commit();
    let shown = view(&on_till);
    assert_eq!(offer_of(&shown, "SOUP"), (cents(500), true));
    assert!(shown.violations.is_empty(), "a genuine offer is no violation: {:?}", shown.violations);
}

#[test]
fn concurrent_copies_merge_to_one_menu() {
    let mut on_hq = menu_on_hq();
    let mut on_till = on_hq.fork(actor(66));
    let mut second_hq = on_hq.fork(actor(10));
    // HQ raises the soup; another HQ process (same key) takes tea off and re-prices the soup at
    // the same sequence number; a till forges a price meanwhile.
    let raise = MenuItemPatch { price: Some("5.00".parse().expect("price")), ..MenuItemPatch::default() };
    on_hq.update_item(&hq(), "SOUP", &raise, "hq", at(2_000)).expect("update");
    let items = [item("SOUP", "Soups", "4.75", true)];
    second_hq.replace(&hq(), None, &items, "hq", at(2_500)).expect("replace");
    append_raw_offer(&mut on_till, 66, "TEA", 1, 50, &"11".repeat(64));

    let mut merged_here = on_hq.fork(actor(1));
    merged_here.merge(&mut second_hq.clone()).expect("merge");
    merged_here.merge(&mut on_till.clone()).expect("merge");
    let mut merged_there = on_till.fork(actor(2));
    merged_there.merge(&mut second_hq).expect("merge");
    merged_there.merge(&mut on_hq).expect("merge");
    assert_eq!(merged_here.heads().len(), merged_there.heads().len());
    let (here, there) = (view(&merged_here), view(&merged_there));
    assert_eq!(here.items, there.items, "every peer shows the same menu");
    // Both HQ offers have seq 2: the later one wins everywhere.
    assert_eq!(offer_of(&here, "SOUP"), (cents(475), true));
    assert_eq!(offer_of(&here, "TEA"), (cents(200), false), "taken off by the second HQ process");
    assert_eq!(here.violations.len(), 1);
    assert_eq!(here.violations, there.violations);
}

#[test]
fn replace_signs_only_changes_and_takes_gone_items_off() {
    let mut menu = menu_on_hq();
    let heads = menu.heads();
    let same = [item("SOUP", "Soups", "4.50", true), item("TEA", "Drinks", "2.00", true)];
    assert!(!menu.replace(&hq(), Some(usd()), &same, "hq", at(3_000)).expect("replace"));
    assert_eq!(menu.heads(), heads, "nothing changed, nothing written");

    let mut renamed = item("SOUP", "Soups", "4.50", true);
    renamed.name = "Tomato soup".to_string();
    let next = [renamed, item("CAKE", "Desserts", "3.00", false)];
    assert!(menu.replace(&hq(), Some(usd()), &next, "hq", at(4_000)).expect("replace"));
    let shown = view(&menu);
    let soup = shown.items.iter().find(|item| item.sku == "SOUP").expect("soup");
    assert_eq!((soup.name.as_str(), soup.price, soup.available), ("Tomato soup", cents(450), true));
    assert_eq!(offer_of(&shown, "TEA"), (cents(200), false), "gone from the list: off sale, signed");
    assert_eq!(offer_of(&shown, "CAKE"), (cents(300), false));
    assert!(shown.violations.is_empty());
}

#[test]
fn bad_items_are_refused_naming_item_and_field_and_nothing_is_written() {
    let mut menu = menu_on_hq();
    let heads = menu.heads();
    let mut nameless = item("PIE", "Mains", "6.00", true);
    nameless.name.clear();
    let cases: Vec<(Vec<NewMenuItem>, &str)> = vec![
        (
            vec![item("SOUP", "Soups", "5.00", true), nameless],
            "menu item 2 (SKU \"PIE\"): name must not be empty",
        ),
        (vec![item("SOUP", "Soups", "-1", true)], "menu item 1 (SKU \"SOUP\"): price: negative amount"),
        (
            vec![item("SOUP", "Soups", "1", true), item("SOUP", "Soups", "2", true)],
            "menu item 2 (SKU \"SOUP\"): sku: listed twice",
        ),
        (vec![item("", "Soups", "1", true)], "menu item 1 (SKU \"\"): sku must not be empty"),
        (vec![item("TEA", "", "1", true)], "menu item 1 (SKU \"TEA\"): category must not be empty"),
    ];
    for (items, expected) in cases {
        let error = menu.replace(&hq(), None, &items, "hq", at(5_000)).expect_err(expected);
        assert!(matches!(error, EditError::MenuItem(_)), "{error:?}");
        assert!(error.to_string().starts_with(expected), "{error} should start with {expected}");
        assert_eq!(menu.heads(), heads, "nothing written");
    }
    let euros = Currency::parse("EUR").expect("code");
    let error = menu.replace(&hq(), Some(euros), &[], "hq", at(5_000)).expect_err("other currency");
    assert!(matches!(error, EditError::Money { field: "currency", .. }), "{error:?}");
    let unknown = menu.update_item(&hq(), "NOPE", &MenuItemPatch::default(), "hq", at(5_000));
    assert!(matches!(unknown, Err(EditError::UnknownSku { .. })), "{unknown:?}");
    assert_eq!(menu.heads(), heads);
}

#[test]
fn a_malformed_menu_is_refused_naming_the_field() {
    let mut menu = menu_on_hq();
    let doc = menu.automerge();
    let (_, items) = doc.get(ROOT, "items").expect("read").expect("map");
    let (_, soup) = doc.get(&items, "SOUP").expect("read").expect("map");
    doc.put(&soup, "name", 42i64).expect("put");
    doc.commit();
    let document = Document::load(&menu.save()).expect("the header is fine");
    match document.view(Some(&hq().public_key())) {
        Err(DocumentError::Layout(layout)) => assert_eq!(layout.field, "items.SOUP.name"),
        other => panic!("expected a layout error, got {other:?}"),
    }
}
