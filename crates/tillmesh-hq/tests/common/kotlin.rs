//! A legacy order as a Kotlin register sends it: doubles for money, its own status names.

use serde_json::{Value, json};
use uuid::Uuid;

/// One soup at 4.00 plus 0.33 tax, from `pos-a`, dated `created_at` / `updated_at`.
pub(crate) fn soup_order(local_id: Uuid, number: &str, created_at: i64, updated_at: i64) -> Value {
    json!({
        "order": {
            "id": format!("order-{local_id}"), "orderNumber": number,
            "items": [{"productId": "SOUP", "productName": "Soup", "quantity": 1, "unitPrice": 4.00, "totalPrice": 4.00}],
            "subtotal": 4.00, "tax": 0.33, "total": 4.33,
            "paymentMethod": "CASH", "paymentStatus": "PENDING", "orderStatus": "OPEN",
            "createdAt": created_at, "updatedAt": updated_at
        },
        "localId": local_id, "syncStatus": "PENDING", "syncVersion": 1, "deviceId": "pos-a"
    })
}
