//! Editing a record HQ holds: its document with every change HQ's node has, edits refused by
//! an order that moved on taken as conflicts, a client's payment status as HQ's claim, and the
//! record's next version.

use tillmesh_core::{Document, EditError, PaymentStatus, Timestamp};
use tillmesh_node::TillError;

use super::LegacyService;
use crate::error::HqError;
use crate::mapping::heads_hex;
use crate::records::{Record, RecordBody, RecordError, RecordStore};

impl<S: RecordStore> LegacyService<S> {
    /// The record's document with every change HQ's node holds for it, to edit as HQ.
    pub(super) fn load_for_edit(&self, record: &Record) -> Result<Document, HqError> {
        let stored = self.node.store().get(record.doc_id).map_err(TillError::from)?;
        let mut document = match (record.document.is_empty(), stored) {
            (true, Some(stored)) => stored,
            (true, None) => {
                return Err(HqError::Records(RecordError::Corrupt {
                    what: format!("record {} has no document", record.local_id),
                }));
            }
            (false, stored) => {
                let mut document = Document::load(&record.document)?;
                if let Some(mut stored) = stored {
                    document.merge(&mut stored)?;
                }
                document
            }
        };
        document.automerge().set_actor(self.actor.clone());
        Ok(document)
    }
}

/// An edit that may be refused because the order moved on (closed, voided): the difference is
/// reported as a conflict instead. Any other refusal is a fault.
pub(super) fn tolerate(result: Result<(), EditError>) -> Result<(), HqError> {
    match result {
        Ok(())
        | Err(
            EditError::Terminal { .. }
            | EditError::StatusTransition { .. }
            | EditError::ItemVoided { .. }
            | EditError::HqOnly { .. },
        ) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// What a client's status claims on HQ's terms: settlement statuses are HQ's, so a client's
/// `CAPTURED` is taken as the claim `PAID`.
pub(super) fn claim_of(status: PaymentStatus) -> Option<PaymentStatus> {
    match status {
        PaymentStatus::Pending => Some(PaymentStatus::Pending),
        PaymentStatus::Paid | PaymentStatus::Captured => Some(PaymentStatus::Paid),
        PaymentStatus::Declined | PaymentStatus::Refunded => None,
    }
}

pub(super) fn next_version(
    record: Record,
    device: &str,
    version: i64,
    body: RecordBody,
    document: &mut Document,
    now: Timestamp,
) -> Record {
    Record {
        written_by: device.to_string(),
        sync_version: version,
        server_hash: body.content_hash(),
        heads: heads_hex(document),
        body,
        changed_at: now,
        document: document.save(),
        ..record
    }
}
