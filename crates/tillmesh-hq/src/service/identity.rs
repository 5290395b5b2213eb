//! Which record a client's record is, and the ids and numbers a new one gets: found by `localId`
//! (or made from a document HQ's node holds without a record), or by the client's `id` from the
//! same creator; a document id free on every till; HQ's own numbers when a client's are taken or
//! shaped like a till's.

use tillmesh_core::legacy::{self, RecordKind, SyncableOrder, SyncableTransaction};
use tillmesh_core::{Document, OrderNumber, Timestamp};
use tillmesh_node::TillError;
use uuid::Uuid;

use super::LegacyService;
use super::incoming::Judged;
use super::work::Work;
use crate::error::HqError;
use crate::records::{BatchKeys, Record, RecordBatch, RecordStore};

impl<S: RecordStore> LegacyService<S> {
    /// The record of `local_id`, or one made from a document HQ's node holds without a record
    /// (written before a crash, or not yet projected).
    pub(super) async fn existing<B: RecordBatch>(
        &self,
        batch: &mut B,
        kind: RecordKind,
        local_id: Uuid,
        now: Timestamp,
    ) -> Result<Option<Record>, HqError> {
        if let Some(record) = batch.get(kind, local_id).await? {
            return Ok(Some(record));
        }
        let Some(doc_id) = self.node.store().find_local_id(local_id).map_err(TillError::from)? else {
            return Ok(None);
        };
        let Some(mut document) = self.node.store().get(doc_id).map_err(TillError::from)? else {
            return Ok(None);
        };
        if RecordKind::of(document.kind()) != Some(kind) {
            return Ok(None);
        }
        let record =
            crate::mapping::record_of(batch, None, &mut document, self.node.config().hq.as_ref(), now)
                .await?;
        Ok(Some(batch.put(record).await?))
    }

    /// The record a client's `id` names when a record comes with a `localId` HQ does not know:
    /// the same `id` of the same kind from the same creating device is the same record (the
    /// seed's primary key).
    pub(super) async fn same_record<B: RecordBatch>(
        &self,
        batch: &mut B,
        kind: RecordKind,
        (client_id, creator, local_id): (&str, &str, Uuid),
        now: Timestamp,
        work: &Work,
    ) -> Result<Option<Record>, HqError> {
        let doc_id = legacy::document_id(kind.as_str(), client_id);
        let owner = match work.new_docs.get(&doc_id) {
            Some(made) => Some(made.clone()),
            None => match self.node.store().get(doc_id).map_err(TillError::from)? {
                Some(Document::Order(order)) if kind == RecordKind::Order => {
                    let view = order.view(None)?;
                    Some((view.local_id, view.device_id))
                }
                Some(Document::Transaction(transaction)) if kind == RecordKind::Transaction => {
                    let view = transaction.view(None)?;
                    Some((view.local_id, view.device_id))
                }
                _ => None,
            },
        };
        match owner {
            Some((owner_local_id, owner)) if owner == creator && owner_local_id != local_id => {
                self.existing(batch, kind, owner_local_id, now).await
            }
            _ => Ok(None),
        }
    }

    /// A document id for a new record: from the client's id, unless another record holds it.
    pub(super) fn fresh_doc_id(
        &self,
        kind: &str,
        client_id: &str,
        local_id: Uuid,
        creator: &str,
        work: &mut Work,
        assigned: &mut Vec<&'static str>,
    ) -> Result<Uuid, HqError> {
        let wanted = legacy::document_id(kind, client_id);
        let taken = work.new_docs.contains_key(&wanted)
            || self.node.store().get_bytes(wanted).map_err(TillError::from)?.is_some();
        let id = if taken {
            assigned.push("id");
            legacy::fallback_document_id(kind, local_id)
        } else {
            wanted
        };
        work.new_docs.insert(id, (local_id, creator.to_string()));
        Ok(id)
    }

    /// The next free number of HQ's sequence for legacy records ([`hq_number`]).
    pub(super) async fn assign_number<B: RecordBatch>(
        &self,
        batch: &mut B,
        kind: RecordKind,
    ) -> Result<String, HqError> {
        loop {
            let number = hq_number(batch.next_assigned_number().await?);
            if batch.number_owner(kind, &held_as(kind, &number)).await?.is_none() {
                return Ok(number);
            }
        }
    }
}

/// HQ's `n`th number for legacy records: `HQ-L<n>`, a shape no till issues (HQ's own node
/// numbers its orders `HQ-<n>`).
fn hq_number(n: u64) -> String {
    format!("{}-L{n}", tillmesh_core::roster::HQ_CODE)
}

/// One of HQ's numbers as a record of `kind` holds it: a transaction's ends in `-P`.
fn held_as(kind: RecordKind, number: &str) -> String {
    match kind {
        RecordKind::Order => number.to_string(),
        RecordKind::Transaction => format!("{number}-P"),
    }
}

/// Reads ahead, once the batch read the records' own keys, the numbers of HQ's sequence it may
/// give: one for each record not stored whose number is taken (or, for an order, has a till's
/// shape). Giving them out then costs no round trip each; a number found taken is skipped as
/// ever.
pub(super) async fn read_ahead_assigned<B: RecordBatch>(
    batch: &mut B,
    orders: &[Judged<SyncableOrder>],
    transactions: &[Judged<SyncableTransaction>],
) -> Result<(), HqError> {
    let mut wanted = 0;
    for order in orders.iter().flatten() {
        let number = &order.order.order_number;
        if batch.get(RecordKind::Order, order.local_id).await?.is_none()
            && (reserved_for_tills(number) || batch.number_owner(RecordKind::Order, number).await?.is_some())
        {
            wanted += 1;
        }
    }
    for transaction in transactions.iter().flatten() {
        let reference = &transaction.transaction.reference_number;
        if batch.get(RecordKind::Transaction, transaction.local_id).await?.is_none()
            && batch.number_owner(RecordKind::Transaction, reference).await?.is_some()
        {
            wanted += 1;
        }
    }
    if wanted == 0 {
        return Ok(());
    }
    let last = batch.last_assigned_number();
    let mut keys = BatchKeys::default();
    for n in last + 1..=last + wanted {
        let number = hq_number(n);
        keys.numbers.push((RecordKind::Transaction, held_as(RecordKind::Transaction, &number)));
        keys.numbers.push((RecordKind::Order, number));
    }
    batch.read_ahead(&keys).await?;
    Ok(())
}

/// Whether a number is one a till may issue (`<till code>-<n>`, any case: `A-2`, `ORD-55`) or
/// has HQ's prefix (`HQ-…`, where HQ's own numbers live). A legacy order keeps such a number for
/// legacy clients, but its document, which every till holds, gets one of HQ's, so it can never
/// collide with a till's order there.
pub(super) fn reserved_for_tills(number: &str) -> bool {
    let hq_prefix = format!("{}-", tillmesh_core::roster::HQ_CODE);
    number.parse::<OrderNumber>().is_ok()
        || number.get(..hq_prefix.len()).is_some_and(|prefix| prefix.eq_ignore_ascii_case(&hq_prefix))
}
