//! The pure mapping from a document to the record legacy clients see: its legacy view, what it
//! differs from what a client sent, its version hash, and the whole record the
//! projector stores for a document the node wrote. Nothing here reads HQ's service state.

use tillmesh_core::legacy::{
    FieldConflict, LegacyOrder, LegacyTransaction, RecordKind, Resolution, json_text,
};
use tillmesh_core::{Document, HqPublicKey, Order, Timestamp, View};

use crate::error::{HqError, invalid};
use crate::records::{ConflictEntry, Record, RecordBatch, RecordBody};

/// The server's legacy view of an order document (with the client's `id` and the record's
/// `number`) and its differences from what the client sent.
pub(crate) fn order_body(
    document: &mut Document,
    client: &LegacyOrder,
    number: &str,
    hq: Option<&tillmesh_core::HqPublicKey>,
) -> Result<(RecordBody, Vec<FieldConflict>), HqError> {
    let Document::Order(order) = document else {
        return Err(invalid("not an order"));
    };
    Ok(order_body_of(&order.view(hq)?, client, number, &[]))
}

/// The legacy view of an order (with the client's `id` unless HQ assigned one, and the number
/// legacy clients see, `number`) and its differences from what the client sent. Fields in
/// `assigned` were given new values by HQ.
pub(crate) fn order_body_of(
    view: &Order,
    client: &LegacyOrder,
    number: &str,
    assigned: &[&str],
) -> (RecordBody, Vec<FieldConflict>) {
    let mut body = LegacyOrder::from_view(view);
    body.order_number = number.to_string();
    if !assigned.contains(&"id") {
        body.id.clone_from(&client.id);
    }
    let mut conflicts = client.differences(&body, Resolution::ServerWins);
    mark_assigned(&mut conflicts, assigned, &client.id, &body.id);
    (RecordBody::Order(body), conflicts)
}

/// Like [`order_body`] for a transaction.
pub(crate) fn transaction_body(
    document: &mut Document,
    client: &LegacyTransaction,
    hq: Option<&tillmesh_core::HqPublicKey>,
    assigned: &[&str],
) -> Result<(RecordBody, Vec<FieldConflict>), HqError> {
    let Document::Transaction(transaction) = document else {
        return Err(invalid("not a transaction"));
    };
    let mut body = LegacyTransaction::from_view(&transaction.view(hq)?);
    if !assigned.contains(&"id") {
        body.id.clone_from(&client.id);
    }
    body.order_id.clone_from(&client.order_id);
    body.keep_names_of(client);
    let mut conflicts = client.differences(&body, Resolution::ServerWins);
    mark_assigned(&mut conflicts, assigned, &client.id, &body.id);
    Ok((RecordBody::Transaction(body), conflicts))
}

fn mark_assigned(conflicts: &mut Vec<FieldConflict>, assigned: &[&str], client_id: &str, server_id: &str) {
    for conflict in conflicts.iter_mut() {
        if assigned.contains(&conflict.field.as_str()) {
            conflict.resolution = Resolution::ServerAssigned;
        }
    }
    if assigned.contains(&"id") {
        conflicts.push(FieldConflict {
            field: "id".into(),
            client_value: Some(json_text(&client_id)),
            server_value: Some(json_text(&server_id)),
            resolution: Resolution::ServerAssigned,
        });
    }
}

/// The hex of a document's version ([`tillmesh_sync::ItemHash`] of its id and heads).
pub fn heads_hex(document: &mut Document) -> String {
    let id = document.id();
    hex::encode(tillmesh_sync::ItemHash::of(id, &document.heads()).0)
}
/// The record of `document`: its legacy view (keeping the client's ids of `previous`, and a
/// transaction's names of status and method where they still mean the same), the
/// version one higher when the content changed, the device of its latest change, a renumbering
/// when its number is taken by another record, a payment conflict logged once.
pub(crate) async fn record_of<B: RecordBatch>(
    batch: &mut B,
    previous: Option<Record>,
    document: &mut Document,
    hq: Option<&HqPublicKey>,
    now: Timestamp,
) -> Result<Record, HqError> {
    let (kind, local_id, device_id, mut body, payment_conflict) = match document.view(hq)? {
        View::Order(view) => {
            let mut body = LegacyOrder::from_view(&view);
            if let Some(RecordBody::Order(before)) = previous.as_ref().map(|record| &record.body) {
                body.id.clone_from(&before.id);
                body.order_number.clone_from(&before.order_number);
            }
            (RecordKind::Order, view.local_id, view.device_id, RecordBody::Order(body), view.payment.conflict)
        }
        View::Transaction(view) => {
            let mut body = LegacyTransaction::from_view(&view);
            if let Some(RecordBody::Transaction(before)) = previous.as_ref().map(|record| &record.body) {
                body.id.clone_from(&before.id);
                body.order_id.clone_from(&before.order_id);
                body.reference_number.clone_from(&before.reference_number);
                body.keep_names_of(before);
            }
            let conflict = view.payment.conflict;
            (RecordKind::Transaction, view.local_id, view.device_id, RecordBody::Transaction(body), conflict)
        }
        View::Menu(_) => return Err(invalid("the menu maps to no legacy record")),
    };
    let mut conflicts = Vec::new();
    if previous.is_none()
        && let Some(owner) = batch.number_owner(kind, body.number()).await?
        && owner != local_id
    {
        // Two records cannot share a number: this one is listed under a suffixed number; the
        // document (and every till) keeps its own.
        let taken = body.number().to_string();
        let listed = format!("{taken}~{}", &document.id().simple().to_string()[..8]);
        match &mut body {
            RecordBody::Order(order) => order.order_number.clone_from(&listed),
            RecordBody::Transaction(transaction) => transaction.reference_number.clone_from(&listed),
        }
        conflicts.push(FieldConflict {
            field: if kind == RecordKind::Order { "orderNumber" } else { "referenceNumber" }.into(),
            client_value: Some(json_text(&taken)),
            server_value: Some(json_text(&listed)),
            resolution: Resolution::ServerAssigned,
        });
    }
    let mut logged_conflict = previous.as_ref().and_then(|record| record.logged_conflict.clone());
    let mut conflict_device = None;
    if let Some(conflict) = payment_conflict {
        let marker = format!("{}@{}@{}", conflict.claimed, conflict.claimed_by, conflict.claimed_at.0);
        if logged_conflict.as_deref() != Some(marker.as_str()) {
            conflicts.push(FieldConflict {
                field: if kind == RecordKind::Order { "paymentStatus" } else { "status" }.into(),
                client_value: Some(json_text(&conflict.claimed)),
                server_value: Some(json_text(&conflict.settled)),
                resolution: Resolution::ServerWins,
            });
            conflict_device = Some(conflict.claimed_by.clone());
            logged_conflict = Some(marker);
        }
    }
    let server_hash = body.content_hash();
    let writer = last_writer(document).unwrap_or_else(|| device_id.clone());
    for conflict in conflicts {
        batch
            .log_conflict(ConflictEntry {
                at: now,
                kind,
                local_id,
                doc_id: document.id(),
                device_id: conflict_device.clone().unwrap_or_else(|| device_id.clone()),
                conflict,
            })
            .await?;
    }
    let (sync_version, device_id, deleted) = match &previous {
        Some(before) if before.server_hash == server_hash => {
            (before.sync_version, before.device_id.clone(), before.deleted)
        }
        Some(before) => (before.sync_version + 1, before.device_id.clone(), before.deleted),
        None => (1, device_id, false),
    };
    Ok(Record {
        local_id,
        doc_id: document.id(),
        device_id,
        written_by: writer,
        sync_version,
        server_hash,
        heads: heads_hex(document),
        deleted,
        body,
        logged_conflict,
        changed_at: now,
        position: 0,
        document: document.save(),
    })
}

/// The device of a document's newest change (every change's message is its author's device).
fn last_writer(document: &mut Document) -> Option<String> {
    let heads = document.heads();
    let doc = document.automerge();
    heads
        .iter()
        .filter_map(|head| doc.get_change_by_hash(head))
        .map(|change| (change.timestamp(), change.message().map(str::to_string).unwrap_or_default()))
        .max()
        .map(|(_, message)| message)
        .filter(|message| !message.is_empty())
}
