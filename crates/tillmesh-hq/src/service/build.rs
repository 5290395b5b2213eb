//! A new legacy record's document, built: an order made in one change at the client's status
//! with its claim (on worker threads before the batch when it can be), and the record that
//! carries it.

use automerge::ActorId;
use tillmesh_core::legacy::{self, FieldConflict, Named, SyncableOrder};
use tillmesh_core::{
    Document, NewItem, NewOrder, OrderDoc, OrderStatus, PaymentMethod, PaymentStatus, Reached, Timestamp,
};
use tillmesh_store::{Prepared, View};
use uuid::Uuid;

use super::edits::claim_of;
use crate::error::{HqError, invalid};
use crate::mapping::{heads_hex, order_body_of};
use crate::records::{Record, RecordBody};

/// What building a document needs, owned (for worker threads).
pub(super) struct BuildContext {
    pub(super) store: tillmesh_store::Store,
    pub(super) actor: ActorId,
    pub(super) currency: tillmesh_core::Currency,
    pub(super) default_tax_bps: u32,
    pub(super) now: Timestamp,
}

/// A new record's document, built: its legacy view, the differences from what the client sent,
/// its saved bytes, version and what the node's store needs to write it.
#[derive(Debug)]
pub(super) struct Built {
    pub(super) document: Document,
    pub(super) body: RecordBody,
    pub(super) conflicts: Vec<FieldConflict>,
    pub(super) saved: Vec<u8>,
    pub(super) heads: String,
    pub(super) prepared: Prepared,
}

/// Makes the document of a new legacy order: created on HQ for its creator `device` at the
/// client's status, with its payment claim, in one change.
pub(super) fn build_order(
    context: &BuildContext,
    incoming: &SyncableOrder,
    doc_id: Uuid,
    number: String,
    listed: &str,
    assigned: &[&str],
) -> Result<Built, HqError> {
    let (device, local_id, client) = (incoming.device_id.as_str(), incoming.local_id, &incoming.order);
    let items = client
        .items
        .iter()
        .enumerate()
        .map(|(index, item)| NewItem {
            id: legacy::item_id(doc_id, 0, index),
            sku: item.product_id.clone(),
            name: item.product_name.clone(),
            quantity: item.quantity,
            unit_price: item.unit_price,
        })
        .collect();
    // Where the client's order stands: its status and its payment claim (none on a voided
    // order, which takes no claim).
    let status = client.order_status.value();
    let method = client.payment_method.as_ref().map(Named::value);
    let claim = match (claim_of(client.payment_status.value()), method) {
        (Some(PaymentStatus::Pending), None) | (None, _) => None,
        (Some(status), method) => Some((method.unwrap_or(PaymentMethod::Other), status)),
    };
    let pricing =
        client.pricing(context.default_tax_bps).map_err(|error| invalid(format!("order.{error}")))?;
    let reached = Reached {
        status,
        claim: claim.filter(|_| status != OrderStatus::Voided),
        adjustment: pricing.adjustment,
        names: client.names(),
        at: context.now,
    };
    let (order, view) = OrderDoc::create_reached(
        NewOrder {
            id: doc_id,
            local_id,
            number,
            device_id: device.to_string(),
            currency: context.currency,
            tax_rate_bps: pricing.tax_rate_bps,
            items,
            notes: String::new(),
            created_at: client.created_at,
        },
        Some(reached),
        context.actor.clone(),
    )?;
    let (body, conflicts) = order_body_of(&view, client, listed, assigned);
    let mut document = Document::Order(order);
    let saved = document.save();
    let heads = heads_hex(&mut document);
    let prepared = context.store.prepare_viewed(&mut document, saved.clone(), &View::Order(view));
    Ok(Built { document, body, conflicts, saved, heads, prepared })
}

pub(super) fn new_record(
    local_id: Uuid,
    creator: &str,
    writer: &str,
    version: i64,
    built: &Built,
    now: Timestamp,
) -> Record {
    Record {
        local_id,
        doc_id: built.document.id(),
        device_id: creator.to_string(),
        written_by: writer.to_string(),
        sync_version: version,
        server_hash: built.body.content_hash(),
        heads: built.heads.clone(),
        deleted: false,
        body: built.body.clone(),
        logged_conflict: None,
        changed_at: now,
        position: 0,
        document: built.saved.clone(),
    }
}
