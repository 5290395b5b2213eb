//! The plumbing the order and transaction documents share: their Automerge document and id,
//! the methods every kind delegates to it ([`document_plumbing`]), edits that commit one change,
//! the payment lists, and the small Automerge helpers they use.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ObjType, ROOT, ReadDoc, Value};
use uuid::Uuid;

use crate::kind::{DocKind, DocumentError};

/// The methods every document kind shares, delegating to its [`BaseDoc`]: loading with the
/// header check, id, the Automerge document, save, heads, fork, merge.
macro_rules! document_plumbing {
    ($doc:ident, $kind:expr, $what:literal) => {
        impl $doc {
            /// Wraps a loaded Automerge document whose header was checked.
            pub(crate) fn from_checked(doc: automerge::AutoCommit, id: uuid::Uuid) -> $doc {
                $doc { base: $crate::base::BaseDoc { doc, id } }
            }

            #[doc = concat!("Loads saved bytes, checking that they are ", $what, " of a known schema.")]
            pub fn load(bytes: &[u8]) -> Result<$doc, $crate::kind::DocumentError> {
                $doc::from_automerge(tillmesh_untrusted::load_document(bytes)?)
            }

            #[doc = concat!("Wraps an Automerge document, checking that it is ", $what, " of a known schema.")]
            pub fn from_automerge(doc: automerge::AutoCommit) -> Result<$doc, $crate::kind::DocumentError> {
                let id = $crate::kind::Header::expect(&doc, $kind)?;
                Ok($doc::from_checked(doc, id))
            }

            /// The document's id.
            pub fn id(&self) -> uuid::Uuid {
                self.base.id
            }

            /// The underlying Automerge document.
            pub fn automerge(&mut self) -> &mut automerge::AutoCommit {
                &mut self.base.doc
            }

            /// The whole document, compacted (see [`crate::Document::save`]).
            pub fn save(&mut self) -> Vec<u8> {
                self.base.doc.save_nocompress()
            }

            /// The current heads.
            pub fn heads(&mut self) -> Vec<automerge::ChangeHash> {
                self.base.doc.get_heads()
            }

            /// A copy that writes as `actor` (another device, or this device after a restart).
            pub fn fork(&mut self, actor: automerge::ActorId) -> $doc {
                $doc { base: self.base.fork(actor) }
            }

            /// Takes in every change of `other` (another peer's copy of this document).
            pub fn merge(&mut self, other: &mut $doc) -> Result<(), $crate::edit::EditError> {
                self.base.merge(&mut other.base)
            }
        }
    };
}

/// The hydrator of a field a record writes but never reads back (a list read entry by entry
/// elsewhere): the field's default, without reading the document.
pub(crate) fn not_hydrated<D: autosurgeon::ReadDoc, T: Default>(
    _: &D,
    _: &ObjId,
    _: autosurgeon::Prop<'_>,
) -> Result<T, autosurgeon::HydrateError> {
    Ok(T::default())
}

/// The id of the map or list at `obj[key]`.
pub(crate) fn child(doc: &AutoCommit, obj: &ObjId, key: &str, id: Uuid) -> Result<ObjId, DocumentError> {
    match doc.get(obj, key)? {
        Some((Value::Object(ObjType::Map | ObjType::List), child)) => Ok(child),
        _ => Err(DocumentError::Malformed {
            id: id.to_string(),
            problem: format!("{key} is missing or not an object"),
        }),
    }
}

/// The largest integer among the concurrent values of `obj[key]`: a timestamp written by several
/// tills at once reads as the latest of them, on every peer alike.
pub(crate) fn latest_i64(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<i64> {
    doc.get_all(obj, key)
        .ok()?
        .into_iter()
        .filter_map(|(value, _)| match value {
            Value::Scalar(scalar) => scalar.as_i64(),
            Value::Object(_) => None,
        })
        .max()
}

/// Sets `obj[key]` to `at` unless a later time is already there.
pub(crate) fn touch(doc: &mut AutoCommit, key: &str, at: i64) -> Result<(), DocumentError> {
    if latest_i64(doc, &ROOT, key).is_none_or(|current| at > current) {
        doc.put(ROOT, key, at)?;
    }
    Ok(())
}

/// The Automerge document and id behind an order or a transaction, with the plumbing both share.
#[derive(Debug, Clone)]
pub(crate) struct BaseDoc {
    pub(crate) doc: AutoCommit,
    pub(crate) id: Uuid,
}

impl BaseDoc {
    /// A new document writing as `actor`.
    pub(crate) fn new(id: Uuid, actor: automerge::ActorId) -> BaseDoc {
        BaseDoc { doc: AutoCommit::new().with_actor(actor), id }
    }

    /// The whole root record of a `kind` document, read one map at a time
    /// ([`crate::read::OnePass`]); an error names the field that differs from the layout.
    pub(crate) fn record<T: autosurgeon::Hydrate>(&self, kind: DocKind) -> Result<T, DocumentError> {
        autosurgeon::hydrate(&crate::read::OnePass::new(&self.doc))
            .map_err(|error| crate::layout::explain(&self.doc, kind, self.id, error))
    }

    /// A copy that writes as `actor`.
    pub(crate) fn fork(&mut self, actor: automerge::ActorId) -> BaseDoc {
        BaseDoc { doc: self.doc.fork().with_actor(actor), id: self.id }
    }

    /// Takes in every change of another copy of the same document.
    pub(crate) fn merge(&mut self, other: &mut BaseDoc) -> Result<(), crate::edit::EditError> {
        if other.id != self.id {
            return Err(crate::edit::EditError::DifferentDocument { ours: self.id, theirs: other.id });
        }
        self.doc.merge(&mut other.doc).map_err(DocumentError::from)?;
        Ok(())
    }

    /// The map or list at `root[key]`.
    pub(crate) fn child(&self, key: &str) -> Result<ObjId, DocumentError> {
        child(&self.doc, &ROOT, key, self.id)
    }

    /// Appends `record` to the list at `root[key]`.
    pub(crate) fn append<R: autosurgeon::Reconcile>(
        &mut self,
        key: &str,
        record: &R,
    ) -> Result<(), DocumentError> {
        let list = self.child(key)?;
        let end = self.doc.length(&list);
        autosurgeon::reconcile_insert(&mut self.doc, list, end, record)?;
        Ok(())
    }

    /// The latest `updatedAt`, or `fallback` when there is none.
    pub(crate) fn updated_at(&self, fallback: i64) -> crate::time::Timestamp {
        crate::time::Timestamp(latest_i64(&self.doc, &ROOT, "updatedAt").unwrap_or(fallback))
    }

    /// Keeps a legacy device's names (by legacy field) in the document's `legacyNames` map as
    /// sent, replacing those it names, as one change by `by`. A document made before legacy
    /// names were kept has no map and keeps none (it is never added later, by two peers at
    /// once).
    pub(crate) fn set_legacy_names(
        &mut self,
        names: &std::collections::BTreeMap<String, String>,
        by: &str,
        at: crate::time::Timestamp,
    ) -> Result<(), crate::edit::EditError> {
        for name in names.values() {
            crate::edit::limits::LEGACY_NAME.check(name)?;
        }
        let Some((Value::Object(ObjType::Map), map)) =
            self.doc.get(ROOT, "legacyNames").map_err(DocumentError::from)?
        else {
            return Ok(());
        };
        for (field, name) in names {
            self.doc.put(&map, field.as_str(), name.as_str()).map_err(DocumentError::from)?;
        }
        Ok(self.finish(by, at)?)
    }

    /// Ends an edit: moves `updatedAt` forward and commits one change, authored by device `by`.
    pub(crate) fn finish(&mut self, by: &str, at: crate::time::Timestamp) -> Result<(), DocumentError> {
        touch(&mut self.doc, "updatedAt", at.0)?;
        self.commit(by, at);
        Ok(())
    }

    /// Commits pending operations as one change. The change's time comes from `at`, never from
    /// the system clock, so that a replayed simulation produces the same change hashes.
    pub(crate) fn commit(&mut self, by: &str, at: crate::time::Timestamp) {
        let options = automerge::transaction::CommitOptions::default()
            .with_message(by.to_string())
            .with_time(at.0 / 1000);
        self.doc.commit_with(options);
    }

    /// Reads the payment lists.
    pub(crate) fn payment(
        &self,
        kind: DocKind,
        hq: Option<&crate::authority::HqPublicKey>,
    ) -> Result<(crate::authority::PaymentView, Vec<crate::authority::AuthorityViolation>), DocumentError>
    {
        let claims = self.child("claims")?;
        let settlements = self.child("settlements")?;
        Ok(crate::authority::resolve_payment(&self.doc, kind, self.id, &claims, &settlements, hq))
    }

    /// HQ signs the next settlement and appends it to `settlements`.
    pub(crate) fn settle(
        &mut self,
        hq: &crate::authority::HqSigningKey,
        kind: DocKind,
        status: crate::status::PaymentStatus,
        by: &str,
        at: crate::time::Timestamp,
    ) -> Result<crate::authority::SignedSettlement, crate::edit::EditError> {
        use crate::authority::{Settlement, SettlementRecord, next_settlement_seq};
        if !status.is_settlement() {
            return Err(crate::edit::EditError::NotSettlement { status });
        }
        let seq = next_settlement_seq(&self.doc, &self.child("settlements")?);
        let signed = hq.sign(Settlement { kind, doc_id: self.id, status, seq, at });
        self.append("settlements", &SettlementRecord::from_signed(&signed))?;
        self.finish(by, at)?;
        Ok(signed)
    }
}
