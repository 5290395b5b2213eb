//! What judging one store batch's records leaves: each record's [`Outcome`] for its answer, and
//! the batch's [`Work`] (documents to hand to the node, documents made, conflicts to log).

use std::collections::HashMap;

use tillmesh_core::Document;
use tillmesh_core::legacy::FieldConflict;
use tillmesh_store::Prepared;
use uuid::Uuid;

use super::build::Built;
use crate::mapping::heads_hex;
use crate::records::{ConflictEntry, Record};

/// What one record's handling leaves for the answer.
pub(super) struct Outcome {
    pub(super) record: Option<Record>,
    pub(super) conflicts: Vec<FieldConflict>,
    pub(super) message: Option<String>,
}

/// What one ingestion batch collects.
pub(super) struct Work {
    /// Documents to hand to the peer node after commit, with what writing them needs when
    /// known, and their version.
    pub(super) publish: Vec<(Document, Option<Prepared>, String)>,
    /// Documents made in this batch: their `localId` and creator.
    pub(super) new_docs: HashMap<Uuid, (Uuid, String)>,
    /// Conflicts to log.
    pub(super) conflicts: Vec<ConflictEntry>,
}

impl Work {
    pub(super) fn publish(&mut self, built: Built) {
        self.publish.push((built.document, Some(built.prepared), built.heads));
    }

    pub(super) fn publish_edited(&mut self, mut document: Document) {
        let heads = heads_hex(&mut document);
        self.publish.push((document, None, heads));
    }
}
