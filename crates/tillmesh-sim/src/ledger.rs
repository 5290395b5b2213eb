//! The oracle: what every device wrote and so acknowledged, kept outside the nodes. The
//! invariants compare the nodes' converged state with it.

use std::collections::{BTreeMap, BTreeSet};

use tillmesh_core::SignedSettlement;
use tillmesh_sync::DocId;
use uuid::Uuid;

/// An acknowledged document creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Created {
    /// `order` or `transaction`.
    pub(crate) what: &'static str,
    /// The device-made idempotency key.
    pub(crate) local_id: Uuid,
    /// The order number (orders) or reference number (transactions).
    pub(crate) label: String,
    /// The creating node.
    pub(crate) creator: usize,
}

/// Everything acknowledged so far.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    /// Every document created, by id.
    pub(crate) created: BTreeMap<DocId, Created>,
    /// Orders in creation order (the workload picks recent ones to edit).
    pub(crate) orders: Vec<DocId>,
    /// Orders and transactions some till claimed PAID: what HQ looks at to settle.
    pub(crate) paid: BTreeSet<DocId>,
    /// Orders and transactions HQ settled, with the last settlement it signed.
    pub(crate) settled: BTreeMap<DocId, SignedSettlement>,
    /// Orders and transactions a till forged a settlement on: their views report it.
    pub(crate) forged: BTreeSet<DocId>,
    /// The till HQ revoked, once it has.
    pub(crate) revoked: Option<usize>,
    /// The Automerge actors the revoked till wrote under after its revocation.
    pub(crate) revoked_actors: BTreeSet<automerge::ActorId>,
    /// Documents the revoked till wrote to after its revocation.
    pub(crate) revoked_writes: BTreeSet<DocId>,
}

impl Ledger {
    /// Records an order created by `creator`.
    pub(crate) fn order_created(&mut self, id: DocId, local_id: Uuid, number: String, creator: usize) {
        self.created.insert(id, Created { what: "order", local_id, label: number, creator });
        self.orders.push(id);
    }

    /// Records a payment transaction created by `creator`.
    pub(crate) fn transaction_created(
        &mut self,
        id: DocId,
        local_id: Uuid,
        reference: String,
        creator: usize,
    ) {
        self.created.insert(id, Created { what: "transaction", local_id, label: reference, creator });
    }

    /// Records a till's PAID claim on an order or transaction.
    pub(crate) fn claimed_paid(&mut self, id: DocId) {
        self.paid.insert(id);
    }

    /// Records HQ's newest settlement of a document.
    pub(crate) fn settled(&mut self, id: DocId, signed: SignedSettlement) {
        self.settled.insert(id, signed);
    }
}
