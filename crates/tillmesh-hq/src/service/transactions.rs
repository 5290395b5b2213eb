//! Transactions: a new one made as a document with the client's claim, an existing one's claim
//! and names edited when the client wins on version, or answered as it stands.

use std::sync::atomic::Ordering;

use tillmesh_core::legacy::{self, RecordKind, Resolution, SyncStatus, SyncableTransaction};
use tillmesh_core::{Document, NewTransaction, PaymentStatus, Timestamp, TransactionDoc};
use tillmesh_node::TillError;

use super::LegacyService;
use super::build::{Built, new_record};
use super::edits::{claim_of, next_version, tolerate};
use super::rules::bounded_version;
use super::work::{Outcome, Work};
use crate::error::{HqError, invalid};
use crate::mapping::{heads_hex, transaction_body};
use crate::records::{RecordBatch, RecordBody, RecordStore};

impl<S: RecordStore> LegacyService<S> {
    pub(super) async fn ingest_transaction<B: RecordBatch>(
        &self,
        batch: &mut B,
        device: &str,
        incoming: SyncableTransaction,
        now: Timestamp,
        work: &mut Work,
    ) -> Result<Outcome, HqError> {
        let mut incoming = incoming;
        let mut record = self.existing(batch, RecordKind::Transaction, incoming.local_id, now).await?;
        let key = (incoming.transaction.id.as_str(), incoming.device_id.as_str(), incoming.local_id);
        if record.is_none()
            && let Some(same) = self.same_record(batch, RecordKind::Transaction, key, now, work).await?
        {
            // The same payment queued again under a fresh localId: never a second payment.
            incoming.sync_version = incoming.sync_version.max(same.sync_version.saturating_add(1));
            record = Some(same);
        }
        let record = match record {
            None if incoming.sync_status == SyncStatus::Deleted => {
                return Ok(Outcome {
                    record: None,
                    conflicts: Vec::new(),
                    message: Some("not on the server: nothing to delete".into()),
                });
            }
            None => return self.create_transaction(batch, device, incoming, now, work).await,
            Some(record) => record,
        };
        let RecordBody::Transaction(server) = &record.body else {
            return Err(invalid("localId belongs to an order"));
        };
        let client = incoming.transaction;
        let deleting = incoming.sync_status == SyncStatus::Deleted;
        if let Some(outcome) =
            self.unchanged(&record, deleting, &client.content_hash(), incoming.sync_version, || {
                client.differences(server, Resolution::ServerWins)
            })
        {
            return Ok(outcome);
        }
        self.stats.client_wins.fetch_add(1, Ordering::Relaxed);
        let (version, stepped) = bounded_version(incoming.sync_version, record.sync_version);
        let mut document = self.load_for_edit(&record)?;
        let Document::Transaction(transaction) = &mut document else {
            return Err(invalid("localId belongs to an order"));
        };
        let view = transaction.view(None)?;
        let claim = if deleting { Some(PaymentStatus::Pending) } else { claim_of(client.status.value()) };
        if let Some(status) = claim
            && view.payment.claimed != Some(status)
            && view.payment.settlement.is_none()
        {
            tolerate(transaction.claim(status, device, now))?;
        }
        let names = client.names();
        if names != view.legacy_names {
            transaction.set_legacy_names(&names, device, now)?;
        }
        let (body, mut conflicts) =
            transaction_body(&mut document, &client, self.node.config().hq.as_ref(), &[])?;
        conflicts.extend(stepped);
        let mut updated = next_version(record, device, version, body, &mut document, now);
        updated.deleted = deleting;
        let updated = batch.put(updated).await?;
        work.publish_edited(document);
        Ok(Outcome {
            record: Some(updated),
            conflicts,
            message: Some(if deleting { "deleted" } else { "client version is newer: stored" }.into()),
        })
    }

    async fn create_transaction<B: RecordBatch>(
        &self,
        batch: &mut B,
        device: &str,
        incoming: SyncableTransaction,
        now: Timestamp,
        work: &mut Work,
    ) -> Result<Outcome, HqError> {
        self.stats.created.fetch_add(1, Ordering::Relaxed);
        let client = incoming.transaction;
        let creator = incoming.device_id.as_str();
        let mut assigned = Vec::new();
        let doc_id =
            self.fresh_doc_id("transaction", &client.id, incoming.local_id, creator, work, &mut assigned)?;
        let reference_number =
            if batch.number_owner(RecordKind::Transaction, &client.reference_number).await?.is_none() {
                client.reference_number.clone()
            } else {
                assigned.push("referenceNumber");
                format!("{}-P", self.assign_number(batch, RecordKind::Transaction).await?)
            };
        let mut transaction = TransactionDoc::create(
            NewTransaction {
                id: doc_id,
                local_id: incoming.local_id,
                reference_number,
                order_id: legacy::document_id("order", &client.order_id),
                device_id: creator.to_string(),
                amount: client.amount,
                currency: self.node.config().currency,
                payment_method: client.payment_method.value(),
                status: claim_of(client.status.value()).unwrap_or(PaymentStatus::Paid),
                card_last4: None,
                processor_reference: None,
                created_at: client.created_at,
            },
            self.actor.clone(),
        )?;
        // The client's own names, kept as sent in the document every till holds.
        transaction.set_legacy_names(&client.names(), device, now)?;
        let mut document = Document::Transaction(transaction);
        let (body, conflicts) =
            transaction_body(&mut document, &client, self.node.config().hq.as_ref(), &assigned)?;
        let saved = document.save();
        let heads = heads_hex(&mut document);
        let prepared =
            self.node.store().prepare(&mut document, Some(saved.clone())).map_err(TillError::from)?;
        let built = Built { document, body, conflicts, saved, heads, prepared };
        let (version, stepped) = bounded_version(incoming.sync_version, 0);
        let record = new_record(incoming.local_id, creator, device, version, &built, now);
        let record = batch.put(record).await?;
        let mut conflicts = built.conflicts.clone();
        conflicts.extend(stepped);
        work.publish(built);
        Ok(Outcome { record: Some(record), conflicts, message: None })
    }
}
