//! Builders shared by the core's integration tests.
#![allow(dead_code, unreachable_pub)]

use automerge::ActorId;
use tillmesh_core::{Amount, Currency, NewItem, NewOrder, OrderDoc, Quantity, TillCode, Timestamp};
use uuid::Uuid;

/// A fixed point in time: 2024-01-01T00:00:00Z.
pub const T0: i64 = 1_704_067_200_000;

pub fn at(offset_ms: i64) -> Timestamp {
    Timestamp(T0 + offset_ms)
}

pub fn actor(n: u8) -> ActorId {
    ActorId::from([n; 16])
}

/// An item of `quantity` thousandths (`pieces(n)` for whole pieces).
pub fn item(id: u128, sku: &str, quantity: Quantity, price: &str) -> NewItem {
    NewItem {
        id: Uuid::from_u128(id),
        sku: sku.to_string(),
        name: format!("{sku} name"),
        quantity,
        unit_price: price.parse::<Amount>().expect("valid price"),
    }
}

pub fn new_order(items: Vec<NewItem>) -> NewOrder {
    NewOrder {
        id: Uuid::from_u128(0x0a),
        local_id: Uuid::from_u128(0x1a),
        number: TillCode::parse("A").expect("code").order_number(1).to_string(),
        device_id: "till-a".to_string(),
        currency: Currency::parse("USD").expect("code"),
        tax_rate_bps: 825,
        items,
        notes: String::new(),
        created_at: at(0),
    }
}

/// An order created on till A with two items.
pub fn order_on_a() -> OrderDoc {
    OrderDoc::create(
        new_order(vec![
            item(1, "SOUP", Quantity::pieces(2), "4.50"),
            item(2, "BREAD", Quantity::pieces(1), "2.25"),
        ]),
        actor(1),
    )
    .expect("valid order")
}
