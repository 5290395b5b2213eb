//! The shop's menu and the tills' inputs made of it.

use tillmesh_core::{Amount, PaymentMethod, PaymentStatus, Quantity};
use tillmesh_node::PaymentInput;
use tillmesh_node::till::{ItemInput, OrderInput};

/// A dish on the menu: sku, name, price in cents.
pub(super) const MENU: [(&str, &str, i64); 8] = [
    ("SOUP", "Tomato soup", 450),
    ("BREAD", "Bread", 225),
    ("PASTA", "Pasta al pomodoro", 1190),
    ("SALAD", "Green salad", 780),
    ("FISH", "Grilled fish", 1850),
    ("WINE", "Glass of wine", 650),
    ("CAKE", "Chocolate cake", 520),
    ("COFFEE", "Espresso", 240),
];

pub(super) fn item(dish: usize, quantity: i64) -> ItemInput {
    let (sku, name, cents) = MENU[dish % MENU.len()];
    ItemInput {
        sku: sku.into(),
        name: name.into(),
        quantity: Quantity::pieces(quantity),
        unit_price: Amount::from_minor(cents),
    }
}

pub(super) fn order_input(items: Vec<ItemInput>) -> OrderInput {
    OrderInput { local_id: None, items, notes: String::new() }
}

pub(super) fn card_payment() -> PaymentInput {
    PaymentInput {
        method: PaymentMethod::Card,
        status: PaymentStatus::Paid,
        amount: None,
        card_last4: Some("4242".into()),
        processor_reference: None,
    }
}
