//! Orders: a new one made as a document at the client's status, an existing one edited when
//! the client wins on version (lines, status, payment claim, names, adjustment), or answered as
//! it stands.

use std::sync::atomic::Ordering;

use tillmesh_core::legacy::{self, LegacyOrder, Named, RecordKind, Resolution, SyncStatus, SyncableOrder};
use tillmesh_core::{
    Amount, Document, NewItem, OrderDoc, OrderStatus, PaymentMethod, PaymentStatus, Timestamp,
};

use super::LegacyService;
use super::build::{Built, build_order, new_record};
use super::edits::{claim_of, next_version, tolerate};
use super::identity::reserved_for_tills;
use super::rules::{bounded_version, not_deleted};
use super::work::{Outcome, Work};
use crate::error::{HqError, invalid};
use crate::mapping::order_body;
use crate::records::{Record, RecordBatch, RecordBody, RecordStore};

impl<S: RecordStore> LegacyService<S> {
    pub(super) async fn ingest_order<B: RecordBatch>(
        &self,
        batch: &mut B,
        device: &str,
        mut incoming: SyncableOrder,
        now: Timestamp,
        work: &mut Work,
        prebuilt: Option<Built>,
    ) -> Result<Outcome, HqError> {
        let mut record = self.existing(batch, RecordKind::Order, incoming.local_id, now).await?;
        let mut resent = false;
        let key = (incoming.order.id.as_str(), incoming.device_id.as_str(), incoming.local_id);
        if record.is_none()
            && let Some(same) = self.same_record(batch, RecordKind::Order, key, now, work).await?
        {
            // The client's own key for the order, under a fresh localId (the seed's
            // `saveOrderForSync` makes one per call): the latest state of the same order.
            incoming.sync_version = incoming.sync_version.max(same.sync_version.saturating_add(1));
            record = Some(same);
            resent = true;
        }
        match record {
            None if incoming.sync_status == SyncStatus::Deleted => Ok(Outcome {
                record: None,
                conflicts: Vec::new(),
                message: Some("not on the server: nothing to delete".into()),
            }),
            None => self.create_order(batch, device, incoming, now, work, prebuilt).await,
            Some(record) => {
                let mut outcome = self.update_order(batch, device, incoming, record, now, work).await?;
                if resent {
                    let note = "the same order id from the same device under another localId";
                    outcome.message = Some(match outcome.message {
                        Some(message) => format!("{note}: {message}"),
                        None => note.to_string(),
                    });
                }
                Ok(outcome)
            }
        }
    }

    async fn create_order<B: RecordBatch>(
        &self,
        batch: &mut B,
        device: &str,
        incoming: SyncableOrder,
        now: Timestamp,
        work: &mut Work,
        prebuilt: Option<Built>,
    ) -> Result<Outcome, HqError> {
        self.stats.created.fetch_add(1, Ordering::Relaxed);
        let client = &incoming.order;
        let creator = incoming.device_id.as_str();
        let mut assigned = Vec::new();
        let doc_id =
            self.fresh_doc_id("order", &client.id, incoming.local_id, creator, work, &mut assigned)?;
        // The number legacy clients see (`listed`, unique among records) and the document's
        // (unique on every till).
        let mut message = None;
        let (number, listed) = if batch.number_owner(RecordKind::Order, &client.order_number).await?.is_some()
        {
            message = Some(format!("orderNumber {:?} is taken: HQ numbered the order", client.order_number));
            assigned.push("orderNumber");
            let number = self.assign_number(batch, RecordKind::Order).await?;
            (number.clone(), number)
        } else if reserved_for_tills(&client.order_number) {
            let number = self.assign_number(batch, RecordKind::Order).await?;
            message = Some(format!(
                "orderNumber {:?} has the shape of a till's numbers: kept for legacy clients; tills show {number}",
                client.order_number
            ));
            (number, client.order_number.clone())
        } else {
            (client.order_number.clone(), client.order_number.clone())
        };
        let context = self.build_context(now);
        let built = match prebuilt {
            Some(built)
                if number == client.order_number && assigned.is_empty() && built.document.id() == doc_id =>
            {
                built
            }
            _ => build_order(&context, &incoming, doc_id, number, &listed, &assigned)?,
        };
        let (version, stepped) = bounded_version(incoming.sync_version, 0);
        let record = new_record(incoming.local_id, creator, device, version, &built, now);
        let record = batch.put(record).await?;
        let mut conflicts = built.conflicts.clone();
        conflicts.extend(stepped);
        work.publish(built);
        Ok(Outcome { record: Some(record), conflicts, message })
    }

    async fn update_order<B: RecordBatch>(
        &self,
        batch: &mut B,
        device: &str,
        incoming: SyncableOrder,
        record: Record,
        now: Timestamp,
        work: &mut Work,
    ) -> Result<Outcome, HqError> {
        let RecordBody::Order(server) = &record.body else {
            return Err(invalid("localId belongs to a transaction"));
        };
        let client = incoming.order;
        let deleting = incoming.sync_status == SyncStatus::Deleted;
        if let Some(outcome) =
            self.unchanged(&record, deleting, &client.content_hash(), incoming.sync_version, || {
                client.differences(server, Resolution::ServerWins)
            })
        {
            return Ok(outcome);
        }
        // The client wins on version: its changes become edits of the document.
        self.stats.client_wins.fetch_add(1, Ordering::Relaxed);
        let (version, stepped) = bounded_version(incoming.sync_version, record.sync_version);
        let mut document = self.load_for_edit(&record)?;
        let Document::Order(order) = &mut document else {
            return Err(invalid("localId belongs to a transaction"));
        };
        if deleting {
            tolerate(order.advance(OrderStatus::Voided, device, now))?;
        } else {
            apply_order_edits(order, &client, device, now, version)?;
        }
        let voided = order.status()? == OrderStatus::Voided;
        let (body, mut conflicts) =
            order_body(&mut document, &client, server.order_number.as_str(), self.node.config().hq.as_ref())?;
        if deleting {
            // Only the status decides whether the deletion took.
            conflicts.retain(|conflict| !voided && conflict.field == "orderStatus");
            if !voided {
                conflicts.push(not_deleted());
            }
        }
        conflicts.extend(stepped);
        let mut updated = next_version(record, device, version, body, &mut document, now);
        updated.deleted = deleting && voided;
        let updated = batch.put(updated).await?;
        work.publish_edited(document);
        let message = match (deleting, voided) {
            (true, true) => "deleted: the order is voided on every till",
            (true, false) => "not deleted: the order is closed on the server",
            (false, _) if conflicts.is_empty() => "client version is newer: stored",
            (false, _) => "client version is newer: stored; the server kept the fields listed",
        };
        Ok(Outcome { record: Some(updated), conflicts, message: Some(message.into()) })
    }
}

/// Applies a winning client's order as edits: matching lines change quantity, missing lines are
/// voided, new lines added; the status moves forward; a payment claim is recorded.
fn apply_order_edits(
    order: &mut OrderDoc,
    client: &LegacyOrder,
    by: &str,
    at: Timestamp,
    version: i64,
) -> Result<(), HqError> {
    let view = order.view(None)?;
    if !view.status.is_terminal() {
        let live: Vec<_> = view.items.iter().filter(|item| !item.voided).collect();
        let mut used = vec![false; live.len()];
        for (index, wanted) in client.items.iter().enumerate() {
            let matching = live.iter().enumerate().position(|(at_index, item)| {
                !used[at_index]
                    && item.sku == wanted.product_id
                    && item.name == wanted.product_name
                    && item.unit_price == wanted.unit_price
            });
            match matching {
                Some(found) => {
                    used[found] = true;
                    if live[found].quantity != wanted.quantity {
                        tolerate(order.set_quantity(live[found].id, wanted.quantity, by, at))?;
                    }
                }
                None => tolerate(order.add_item(
                    NewItem {
                        id: legacy::item_id(order.id(), version, index),
                        sku: wanted.product_id.clone(),
                        name: wanted.product_name.clone(),
                        quantity: wanted.quantity,
                        unit_price: wanted.unit_price,
                    },
                    by,
                    at,
                ))?,
            }
        }
        for (item, used) in live.iter().zip(used) {
            if !used {
                tolerate(order.void_item(item.id, by, at))?;
            }
        }
    }
    // The client's own names, kept as sent (shown where they still mean the order's values).
    let names = client.names();
    if names != view.legacy_names {
        order.set_legacy_names(&names, by, at)?;
    }
    // The client's total stands: what it adds to the items and tax is the adjustment.
    let now = order.view(None)?;
    if !now.status.is_terminal() {
        let adjustment = Amount::from_minor(client.total.minor() - now.subtotal.minor() - now.tax.minor());
        if adjustment != now.adjustment {
            tolerate(order.set_adjustment(adjustment, by, at))?;
        }
    }
    let status = client.order_status.value();
    if status != view.status {
        tolerate(order.advance(status, by, at))?;
    }
    // The client's payment claim (status and method), unless HQ has settled.
    if let Some(status) = claim_of(client.payment_status.value())
        && view.payment.settlement.is_none()
    {
        let method = client.payment_method.as_ref().map(Named::value).or(view.payment.method);
        let claimed = view.payment.claimed.unwrap_or(PaymentStatus::Pending);
        if claimed != status || method != view.payment.method {
            tolerate(order.claim_payment(method.unwrap_or(PaymentMethod::Other), status, by, at))?;
        }
    }
    Ok(())
}
