//! Applying HQ's conflict answers to the local copy: every field HQ kept (`SERVER_WINS`) or
//! assigned (`SERVER_ASSIGNED`) takes the server's value, parsed from the JSON text of
//! `serverValue` into the field. Afterwards the local copy's content hash equals HQ's
//! `serverHash` whenever HQ listed every field that differs.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tillmesh_core::legacy::{FieldConflict, Resolution};

/// A conflict that could not be applied, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unapplied {
    /// The field.
    pub field: String,
    /// Why it was left alone.
    pub reason: String,
}

/// `record` with the server's value of every conflict where the server's value stands. Each
/// field is applied on its own: one that does not parse (or names an unknown field) is left
/// as it was and reported.
pub fn apply_conflicts<T: Serialize + DeserializeOwned + Clone>(
    record: &T,
    conflicts: &[FieldConflict],
) -> (T, Vec<Unapplied>) {
    let mut unapplied = Vec::new();
    let mut current = match serde_json::to_value(record) {
        Ok(Value::Object(fields)) => fields,
        Ok(_) | Err(_) => {
            unapplied.extend(conflicts.iter().map(|conflict| Unapplied {
                field: conflict.field.clone(),
                reason: "the local record is not a JSON object".into(),
            }));
            return (record.clone(), unapplied);
        }
    };
    for conflict in conflicts {
        if conflict.resolution == Resolution::ClientWins {
            continue;
        }
        let skip = |reason: String| Unapplied { field: conflict.field.clone(), reason };
        let Some(text) = &conflict.server_value else {
            unapplied.push(skip("no serverValue".into()));
            continue;
        };
        if !current.contains_key(&conflict.field) {
            unapplied.push(skip("not a field of the record".into()));
            continue;
        }
        let value: Value = match serde_json::from_str(text) {
            Ok(value) => value,
            Err(error) => {
                unapplied.push(skip(format!("serverValue is not JSON: {error}")));
                continue;
            }
        };
        let mut candidate = current.clone();
        candidate.insert(conflict.field.clone(), value);
        match serde_json::from_value::<T>(Value::Object(candidate.clone())) {
            Ok(_) => current = candidate,
            Err(error) => unapplied.push(skip(format!("serverValue does not fit the field: {error}"))),
        }
    }
    match serde_json::from_value(Value::Object(current)) {
        Ok(resolved) => (resolved, unapplied),
        Err(error) => {
            unapplied.push(Unapplied { field: "*".into(), reason: error.to_string() });
            (record.clone(), unapplied)
        }
    }
}

#[cfg(test)]
mod tests {
    use tillmesh_core::legacy::{LegacyItem, LegacyOrder, json_text};
    use tillmesh_core::{Amount, OrderStatus, PaymentMethod, PaymentStatus, Quantity, Timestamp};

    use super::*;

    fn order() -> LegacyOrder {
        LegacyOrder {
            id: "order-1".into(),
            order_number: "POS-1".into(),
            items: vec![LegacyItem {
                product_id: "tea".into(),
                product_name: "Tea".into(),
                quantity: Quantity::pieces(1),
                unit_price: Amount::from_minor(300),
                total_price: Amount::from_minor(300),
            }],
            subtotal: Amount::from_minor(300),
            tax: Amount::ZERO,
            total: Amount::from_minor(300),
            payment_method: Some(PaymentMethod::Card.into()),
            payment_status: PaymentStatus::Paid.into(),
            order_status: OrderStatus::Open.into(),
            created_at: Timestamp(1),
            updated_at: Timestamp(2),
        }
    }

    fn conflict(field: &str, server: String, resolution: Resolution) -> FieldConflict {
        FieldConflict { field: field.into(), client_value: None, server_value: Some(server), resolution }
    }

    #[test]
    fn server_values_replace_the_fields_and_the_hashes_meet() {
        let local = order();
        let mut server = order();
        server.payment_status = PaymentStatus::Declined.into();
        server.order_number = "HQ-1".into();
        server.items[0].quantity = Quantity::pieces(2);
        server.items[0].total_price = Amount::from_minor(600);
        server.subtotal = Amount::from_minor(600);
        server.total = Amount::from_minor(600);
        server.updated_at = Timestamp(99);
        let mut conflicts = local.differences(&server, Resolution::ServerWins);
        conflicts[0].resolution = Resolution::ServerAssigned;
        let (resolved, unapplied) = apply_conflicts(&local, &conflicts);
        assert_eq!(unapplied, []);
        assert_eq!(resolved.payment_status, PaymentStatus::Declined);
        assert_eq!(resolved.order_number, "HQ-1");
        assert_eq!(resolved.content_hash(), server.content_hash());
    }

    #[test]
    fn bad_values_are_skipped_one_by_one() {
        let local = order();
        let conflicts = vec![
            conflict("paymentStatus", json_text(&PaymentStatus::Declined), Resolution::ServerWins),
            conflict("orderStatus", "\"\"".into(), Resolution::ServerWins),
            conflict("tax", "not json".into(), Resolution::ServerWins),
            conflict("colour", "\"red\"".into(), Resolution::ServerWins),
            conflict("total", "\"1.00\"".into(), Resolution::ClientWins),
        ];
        let (resolved, unapplied) = apply_conflicts(&local, &conflicts);
        assert_eq!(resolved.payment_status, PaymentStatus::Declined);
        assert_eq!(resolved.order_status, OrderStatus::Open);
        assert_eq!(resolved.total, local.total, "the client's value stands");
        let fields: Vec<&str> = unapplied.iter().map(|u| u.field.as_str()).collect();
        assert_eq!(fields, ["orderStatus", "tax", "colour"]);
    }
}
