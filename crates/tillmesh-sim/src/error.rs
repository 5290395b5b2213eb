//! Why a simulation run failed. Every variant but [`SimError::Config`] names the seed, so the
//! failure can be replayed with `--seed` and pinned as a regression test.

use tillmesh_core::{DocumentError, EditError};
use tillmesh_sync::{DocId, FrameError};
use uuid::Uuid;

/// A failed run: a violated invariant, or something that should never happen in a correct
/// system (a valid document refused, a frame that does not decode).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The configuration does not make sense; nothing ran.
    #[error("invalid simulation configuration: {problem}")]
    Config {
        /// What is wrong.
        problem: String,
    },
    /// The healed phase ended without every node holding the same index.
    #[error("seed {seed}: no convergence after {ticks} healed ticks without faults: {detail}")]
    NotConverged {
        /// The run's seed.
        seed: u64,
        /// How long the healed phase ran.
        ticks: u64,
        /// Which nodes and documents still differ.
        detail: String,
    },
    /// After convergence (anti-entropy off, no writes), the peers kept sending frames.
    #[error(
        "seed {seed}: traffic did not stop within {ticks} ticks after convergence ({in_flight} frames in flight)"
    )]
    Chatter {
        /// The run's seed.
        seed: u64,
        /// How long the quiet phase ran.
        ticks: u64,
        /// Frames still in flight or queued at the end.
        in_flight: usize,
    },
    /// A document is missing on a node, or held at other heads than on the reference node.
    #[error("seed {seed}: document {doc_id} differs: {detail}")]
    HeadsDiffer {
        /// The run's seed.
        seed: u64,
        /// The document.
        doc_id: DocId,
        /// Which nodes and what they hold.
        detail: String,
    },
    /// An order or transaction a till wrote (and so acknowledged) is missing from a node.
    #[error("seed {seed}: acknowledged {what} {doc_id} ({label}) is missing on {node}")]
    Lost {
        /// The run's seed.
        seed: u64,
        /// `order` or `transaction`.
        what: &'static str,
        /// The document.
        doc_id: DocId,
        /// The order number or reference.
        label: String,
        /// The node that lacks it.
        node: String,
    },
    /// A document no device created is present.
    #[error("seed {seed}: {node} holds document {doc_id} that no device created")]
    UnknownDocument {
        /// The run's seed.
        seed: u64,
        /// The document.
        doc_id: DocId,
        /// The node holding it.
        node: String,
    },
    /// Two orders carry the same order number.
    #[error("seed {seed}: order number {number} is used by orders {first} and {second}")]
    DuplicateOrderNumber {
        /// The run's seed.
        seed: u64,
        /// The number.
        number: String,
        /// One order.
        first: Uuid,
        /// The other.
        second: Uuid,
    },
    /// Two documents carry the same `localId`: a submission was applied twice.
    #[error("seed {seed}: localId {local_id} is carried by documents {first} and {second}")]
    DuplicateLocalId {
        /// The run's seed.
        seed: u64,
        /// The idempotency key.
        local_id: Uuid,
        /// One document.
        first: Uuid,
        /// The other.
        second: Uuid,
    },
    /// A document's fields differ from what its creator wrote (id, localId, number).
    #[error("seed {seed}: document {doc_id} on {node} shows {found}, its creator wrote {expected}")]
    WrongHeader {
        /// The run's seed.
        seed: u64,
        /// The document.
        doc_id: DocId,
        /// The node showing it.
        node: String,
        /// What the creator wrote.
        expected: String,
        /// What the node shows.
        found: String,
    },
    /// A node's view of an HQ-owned field differs from the value HQ last signed.
    #[error("seed {seed}: {node} shows payment of {doc_id} as {found}, HQ last signed {expected}")]
    SettlementMismatch {
        /// The run's seed.
        seed: u64,
        /// The document.
        doc_id: DocId,
        /// The node.
        node: String,
        /// HQ's last signed settlement.
        expected: String,
        /// What the node's view shows.
        found: String,
    },
    /// A node's view reports a write to an HQ-owned field that does not verify.
    #[error("seed {seed}: {node} reports an authority violation on {doc_id}: {violation}")]
    AuthorityViolation {
        /// The run's seed.
        seed: u64,
        /// The document.
        doc_id: DocId,
        /// The node.
        node: String,
        /// The violation, as text.
        violation: String,
    },
    /// Two nodes hold the same heads of a document but compute different views of it.
    #[error("seed {seed}: {node} and {reference} hold the same heads of {doc_id} but their views differ")]
    ViewsDiffer {
        /// The run's seed.
        seed: u64,
        /// The document.
        doc_id: DocId,
        /// One node.
        node: String,
        /// The other.
        reference: String,
    },
    /// A node refused a document an honest peer sent (only valid documents are ever written).
    #[error("seed {seed}: {node} refused document {doc_id} from {from}: {reason}")]
    Refused {
        /// The run's seed.
        seed: u64,
        /// The refusing node.
        node: String,
        /// The sender.
        from: String,
        /// The document.
        doc_id: DocId,
        /// The reason given.
        reason: String,
    },
    /// A node marked every document synced with a peer that does not durably hold them all: an
    /// answer was given for documents that were not kept.
    #[error(
        "seed {seed}: {node} marked everything synced with {remote}, which does not hold document {doc_id}: {detail}"
    )]
    SyncedNotHeld {
        /// The run's seed.
        seed: u64,
        /// The node that marked.
        node: String,
        /// The peer it believed in step.
        remote: String,
        /// A document the peer lacks.
        doc_id: DocId,
        /// What the peer holds of it.
        detail: String,
    },
    /// A change a revoked till made after its revocation reached another node.
    #[error(
        "seed {seed}: {node} holds a change that revoked {revoked} made after its revocation, in {doc_id}"
    )]
    RevokedWriteSpread {
        /// The run's seed.
        seed: u64,
        /// The node that accepted it.
        node: String,
        /// The revoked till.
        revoked: String,
        /// The document.
        doc_id: DocId,
    },
    /// A frame the simulator encoded did not decode.
    #[error("seed {seed}: frame from {from} to {to} does not decode")]
    Wire {
        /// The run's seed.
        seed: u64,
        /// The sender.
        from: String,
        /// The receiver.
        to: String,
        /// The decoder's complaint.
        #[source]
        source: FrameError,
    },
    /// An edit the workload chose from the node's own view was refused.
    #[error("seed {seed}: {node} could not {action} on {doc_id}")]
    Edit {
        /// The run's seed.
        seed: u64,
        /// The writing node.
        node: String,
        /// What it tried.
        action: &'static str,
        /// The document.
        doc_id: DocId,
        /// Why it was refused.
        #[source]
        source: EditError,
    },
    /// The simulator broke its own rules (a bug in this crate, not in the system under test).
    #[error("seed {seed}: simulator bug: {problem}")]
    Internal {
        /// The run's seed.
        seed: u64,
        /// What went wrong.
        problem: String,
    },
    /// A document a node holds cannot be read as a tillmesh document.
    #[error("seed {seed}: {node} cannot read document {doc_id}")]
    Document {
        /// The run's seed.
        seed: u64,
        /// The node.
        node: String,
        /// The document.
        doc_id: DocId,
        /// Why.
        #[source]
        source: DocumentError,
    },
}

impl SimError {
    /// The seed of the failed run (`None` for a configuration error).
    pub fn seed(&self) -> Option<u64> {
        match self {
            SimError::Config { .. } => None,
            SimError::NotConverged { seed, .. }
            | SimError::Chatter { seed, .. }
            | SimError::HeadsDiffer { seed, .. }
            | SimError::Lost { seed, .. }
            | SimError::UnknownDocument { seed, .. }
            | SimError::DuplicateOrderNumber { seed, .. }
            | SimError::DuplicateLocalId { seed, .. }
            | SimError::WrongHeader { seed, .. }
            | SimError::SettlementMismatch { seed, .. }
            | SimError::AuthorityViolation { seed, .. }
            | SimError::ViewsDiffer { seed, .. }
            | SimError::Refused { seed, .. }
            | SimError::SyncedNotHeld { seed, .. }
            | SimError::RevokedWriteSpread { seed, .. }
            | SimError::Wire { seed, .. }
            | SimError::Edit { seed, .. }
            | SimError::Internal { seed, .. }
            | SimError::Document { seed, .. } => Some(*seed),
        }
    }
}
