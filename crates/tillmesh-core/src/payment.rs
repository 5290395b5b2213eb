//! One payment transaction, one Automerge document: what the till took (amount, method, the
//! processor's reference and the card's last four digits, never the card number) and HQ's signed
//! settlement of it. `legacyNames` keeps a legacy device's own names of the status and method
//! (`status` → `COMPLETED`) as sent, next to tillmesh's own model; made (empty) with every
//! document, written by HQ only.

use std::collections::BTreeMap;

use automerge::ActorId;
use autosurgeon::{Hydrate, Reconcile};
use serde::Serialize;
use uuid::Uuid;

use crate::authority::{
    AuthorityViolation, ClaimRecord, HqPublicKey, HqSigningKey, PaymentView, SettlementRecord,
    SignedSettlement,
};
use crate::base::{self, BaseDoc};
use crate::edit::{EditError, check_device_id, limits};
use crate::kind::{DocKind, DocumentError, SCHEMA_VERSION};
use crate::money::{Amount, Currency};
use crate::status::{PaymentMethod, PaymentStatus};
use crate::text::TextError;
use crate::time::Timestamp;

/// What a till needs to record a payment transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTransaction {
    /// The transaction's id (and its document's id).
    pub id: Uuid,
    /// The device-made idempotency key.
    pub local_id: Uuid,
    /// The till's reference number for the payment.
    pub reference_number: String,
    /// The order paid.
    pub order_id: Uuid,
    /// The device that took the payment.
    pub device_id: String,
    /// How much.
    pub amount: Amount,
    /// In which currency.
    pub currency: Currency,
    /// How.
    pub payment_method: PaymentMethod,
    /// The till's claim: `PENDING` or `PAID`.
    pub status: PaymentStatus,
    /// The last four digits of the card, for card payments.
    pub card_last4: Option<String>,
    /// The payment processor's reference.
    pub processor_reference: Option<String>,
    /// When the payment was taken.
    pub created_at: Timestamp,
}

/// The effective state of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    /// The transaction's id.
    pub id: Uuid,
    /// The device-made idempotency key.
    pub local_id: Uuid,
    /// The till's reference number.
    pub reference_number: String,
    /// The order paid.
    pub order_id: Uuid,
    /// The device that took the payment.
    pub device_id: String,
    /// How much.
    pub amount: Amount,
    /// In which currency.
    pub currency: Currency,
    /// How.
    pub payment_method: PaymentMethod,
    /// Card's last four digits.
    pub card_last4: Option<String>,
    /// Processor's reference.
    pub processor_reference: Option<String>,
    /// HQ's settlement or the till's claim.
    pub payment: PaymentView,
    /// When the payment was taken.
    pub created_at: Timestamp,
    /// The latest edit's time.
    pub updated_at: Timestamp,
    /// A legacy device's names of the status and method, by legacy field (`status`,
    /// `paymentMethod`), as sent.
    pub legacy_names: BTreeMap<String, String>,
    /// Writes to HQ-owned fields that are ignored.
    pub violations: Vec<AuthorityViolation>,
}

#[derive(Debug, Clone, Reconcile, Hydrate)]
struct TransactionRecord {
    schema: u64,
    kind: String,
    id: String,
    #[autosurgeon(rename = "localId")]
    local_id: String,
    #[autosurgeon(rename = "referenceNumber")]
    reference_number: String,
    #[autosurgeon(rename = "orderId")]
    order_id: String,
    #[autosurgeon(rename = "deviceId")]
    device_id: String,
    amount: i64,
    currency: String,
    #[autosurgeon(rename = "paymentMethod")]
    payment_method: String,
    #[autosurgeon(rename = "cardLast4")]
    card_last4: Option<String>,
    #[autosurgeon(rename = "processorReference")]
    processor_reference: Option<String>,
    #[autosurgeon(rename = "createdAt")]
    created_at: i64,
    #[autosurgeon(rename = "updatedAt")]
    updated_at: i64,
    /// Made (empty) with every document; missing in documents made before legacy names were
    /// kept.
    #[autosurgeon(rename = "legacyNames", missing = "Default::default")]
    legacy_names: BTreeMap<String, String>,
    /// Written at creation, so that the whole document is made in one batch; read entry by
    /// entry by the payment view, never through this record (it hydrates empty).
    #[autosurgeon(hydrate = "base::not_hydrated")]
    claims: Vec<ClaimRecord>,
    #[autosurgeon(hydrate = "base::not_hydrated")]
    settlements: Vec<SettlementRecord>,
}

/// A payment transaction document.
#[derive(Debug, Clone)]
pub struct TransactionDoc {
    base: BaseDoc,
}

document_plumbing!(TransactionDoc, DocKind::Transaction, "a transaction");

impl TransactionDoc {
    /// Creates the transaction's document, once, on the device that took the payment.
    pub fn create(new: NewTransaction, actor: ActorId) -> Result<TransactionDoc, EditError> {
        check_device_id(&new.device_id)?;
        limits::REFERENCE.check(&new.reference_number)?;
        if let Some(reference) = &new.processor_reference {
            limits::PROCESSOR_REFERENCE.check(reference)?;
        }
        if let Some(last4) = &new.card_last4
            && (last4.len() != 4 || !last4.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(TextError::Format { field: "cardLast4", expected: "exactly four digits" }.into());
        }
        let amount =
            new.amount.non_negative().map_err(|source| EditError::Money { field: "amount", source })?;
        if amount > limits::TRANSACTION_AMOUNT_MAX {
            return Err(EditError::Money { field: "amount", source: crate::money::MoneyError::Overflow });
        }
        if new.status.is_settlement() {
            return Err(EditError::HqOnly { status: new.status });
        }
        let record = TransactionRecord {
            schema: SCHEMA_VERSION,
            kind: DocKind::Transaction.as_str().to_string(),
            id: new.id.to_string(),
            local_id: new.local_id.to_string(),
            reference_number: new.reference_number,
            order_id: new.order_id.to_string(),
            device_id: new.device_id.clone(),
            amount: amount.minor(),
            currency: new.currency.to_string(),
            payment_method: new.payment_method.as_str().to_string(),
            card_last4: new.card_last4,
            processor_reference: new.processor_reference,
            created_at: new.created_at.0,
            updated_at: new.created_at.0,
            legacy_names: BTreeMap::new(),
            claims: vec![ClaimRecord {
                status: new.status.as_str().to_string(),
                method: Some(new.payment_method.as_str().to_string()),
                by: new.device_id.clone(),
                at: new.created_at.0,
            }],
            settlements: Vec::new(),
        };
        let mut base = BaseDoc::new(new.id, actor);
        autosurgeon::reconcile(&mut base.doc, &record).map_err(DocumentError::from)?;
        base.commit(&new.device_id, new.created_at);
        Ok(TransactionDoc { base })
    }

    /// The effective transaction. `hq` verifies settlements; without it none is honoured.
    pub fn view(&self, hq: Option<&HqPublicKey>) -> Result<Transaction, DocumentError> {
        let record: TransactionRecord = self.base.record(DocKind::Transaction)?;
        let malformed = |problem: String| DocumentError::Malformed { id: self.base.id.to_string(), problem };
        let parse_uuid = |text: &str, what: &str| {
            Uuid::parse_str(text).map_err(|_| malformed(format!("{what} is not a UUID")))
        };
        let (payment, violations) = self.base.payment(DocKind::Transaction, hq)?;
        Ok(Transaction {
            id: self.base.id,
            local_id: parse_uuid(&record.local_id, "localId")?,
            reference_number: record.reference_number,
            order_id: parse_uuid(&record.order_id, "orderId")?,
            device_id: record.device_id,
            amount: Amount::from_minor(record.amount),
            currency: Currency::parse(&record.currency).map_err(|e| malformed(e.to_string()))?,
            payment_method: record
                .payment_method
                .parse()
                .map_err(|e: crate::status::UnknownValue| malformed(e.to_string()))?,
            card_last4: record.card_last4,
            processor_reference: record.processor_reference,
            payment,
            created_at: Timestamp(record.created_at),
            updated_at: self.base.updated_at(record.updated_at),
            legacy_names: record.legacy_names,
            violations,
        })
    }

    /// Keeps a legacy device's names of the status and method (by legacy field) as sent, like
    /// [`crate::OrderDoc::set_legacy_names`].
    pub fn set_legacy_names(
        &mut self,
        names: &BTreeMap<String, String>,
        by: &str,
        at: Timestamp,
    ) -> Result<(), EditError> {
        self.base.set_legacy_names(names, by, at)
    }

    /// Records a new claim by the till (`PENDING` or `PAID`).
    pub fn claim(&mut self, status: PaymentStatus, by: &str, at: Timestamp) -> Result<(), EditError> {
        if status.is_settlement() {
            return Err(EditError::HqOnly { status });
        }
        let method = self.view(None)?.payment_method;
        let record = ClaimRecord {
            status: status.as_str().to_string(),
            method: Some(method.as_str().to_string()),
            by: by.to_string(),
            at: at.0,
        };
        self.base.append("claims", &record)?;
        Ok(self.base.finish(by, at)?)
    }

    /// HQ settles the transaction: a signed entry that outranks every earlier settlement.
    pub fn settle(
        &mut self,
        hq: &HqSigningKey,
        status: PaymentStatus,
        by: &str,
        at: Timestamp,
    ) -> Result<SignedSettlement, EditError> {
        self.base.settle(hq, DocKind::Transaction, status, by, at)
    }
}
