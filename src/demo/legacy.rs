//! The legacy side of the shop: the REST client's orders, and a register that sends as the
//! original Kotlin client writes.

use anyhow::{Context, ensure};
use tillmesh_client::TrackedOrder;
use tillmesh_core::legacy::{LegacyItem, LegacyOrder};
use tillmesh_core::{Amount, Clock, OrderStatus, PaymentStatus, Quantity};
use tillmesh_node::SystemClock;
use uuid::Uuid;

use super::menu::MENU;
use super::shop::DemoShop;
use super::{KOTLIN, TAX_BPS};

/// A legacy client's open order `number` with lines `(dish, quantity)`, totals at the shop's
/// tax rate.
pub(super) fn legacy_order(number: &str, lines: &[(usize, i64)]) -> anyhow::Result<LegacyOrder> {
    let mut items = Vec::new();
    for &(dish, quantity) in lines {
        let (sku, name, cents) = MENU[dish % MENU.len()];
        let unit_price = Amount::from_minor(cents);
        items.push(LegacyItem {
            product_id: sku.into(),
            product_name: name.into(),
            quantity: Quantity::pieces(quantity),
            unit_price,
            total_price: unit_price.checked_mul(quantity)?,
        });
    }
    let subtotal: i64 = items.iter().map(|item| item.total_price.minor()).sum();
    let tax = (subtotal * TAX_BPS + 5_000) / 10_000;
    let now = SystemClock.now();
    Ok(LegacyOrder {
        id: Uuid::new_v4().to_string(),
        order_number: number.into(),
        items,
        subtotal: Amount::from_minor(subtotal),
        tax: Amount::from_minor(tax),
        total: Amount::from_minor(subtotal + tax),
        payment_method: None,
        payment_status: PaymentStatus::Pending.into(),
        order_status: OrderStatus::Open.into(),
        created_at: now,
        updated_at: now,
    })
}

/// The order [`KOTLIN`], a register still running the original Kotlin client, sends exactly as
/// kotlinx.serialization writes it: money as doubles (3 × 1.1 = 3.3000000000000003), cheese
/// sold by weight (0.5 kg), its own status and method names, a 10 % discount (the total is not
/// subtotal + tax), `syncStatus` and `syncVersion` left out. Returns its document id and the total HQ stored (cents, rounded once
/// half away from zero, as the original `DECIMAL(10,2)` columns did).
pub(super) async fn send_as_kotlin(shop: &DemoShop) -> anyhow::Result<(Uuid, Amount)> {
    let local_id = Uuid::new_v4();
    let body = format!(
        r#"{{"deviceId":"{KOTLIN}","orders":[{{"order":{{"id":"{local_id}","orderNumber":"ORD-20250115-0001","items":[{{"productId":"5449000000996","productName":"Cola","quantity":3,"unitPrice":1.1,"totalPrice":3.3000000000000003}},{{"productId":"steak","productName":"Steak","quantity":2,"unitPrice":10.0,"totalPrice":20.0}},{{"productId":"comte","productName":"Comté by the kg","quantity":0.5,"unitPrice":24.9,"totalPrice":12.45}}],"subtotal":35.75,"tax":2.9493750000000003,"total":34.829437500000004,"paymentMethod":"CREDIT_CARD","paymentStatus":"COMPLETED","orderStatus":"COMPLETED","createdAt":1736899200000,"updatedAt":1736899200000}},"localId":"{local_id}","deviceId":"{KOTLIN}"}}],"transactions":[]}}"#
    );
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/api/sync/batch", shop.nodes[0].url))
        .bearer_auth(&shop.kotlin_token)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let synced = &answer["syncedOrders"][0];
    ensure!(synced["success"] == true, "HQ did not take the Kotlin client's order: {synced}");
    let id: Uuid = synced["serverId"].as_str().context("no serverId")?.parse()?;
    let total = Amount::from_minor(3483);
    let stored = shop.nodes[0].till.order(id)?.order;
    ensure!(
        stored.total == total,
        "HQ stored the Kotlin order's total as {} instead of {total}",
        stored.total
    );
    Ok((id, total))
}

/// The legacy client's payment status of the order with document id `id`.
pub(super) fn client_view(orders: &[TrackedOrder], id: Uuid) -> Option<PaymentStatus> {
    let id = id.to_string();
    orders.iter().find(|order| order.record.id == id).map(|order| order.record.payment_status.value())
}
