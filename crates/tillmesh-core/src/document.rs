//! What every tillmesh document shares: the `schema` and `kind` header, loading with a version
//! check, and the small Automerge helpers the order and transaction documents use.
//!
//! A document is one Automerge map. Its root always holds `schema` (the layout version, see
//! [`SCHEMA_VERSION`]), `kind` (`"order"` or `"transaction"`) and `id` (a UUID string). The
//! layouts are written up in `docs/DOCUMENTS.md`.

use std::fmt;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, Value};
use uuid::Uuid;

use crate::order::OrderDoc;
use crate::payment::TransactionDoc;

/// The methods every document kind shares, delegating to its [`BaseDoc`]: loading with the
/// header check, id, the Automerge document, save, heads, fork, merge.
macro_rules! document_plumbing {
    ($doc:ident, $kind:expr, $what:literal) => {
        impl $doc {
            /// Wraps a loaded Automerge document whose header was checked.
            pub(crate) fn from_checked(doc: automerge::AutoCommit, id: uuid::Uuid) -> $doc {
                $doc { base: $crate::document::BaseDoc { doc, id } }
            }

            #[doc = concat!("Loads saved bytes, checking that they are ", $what, " of a known schema.")]
            pub fn load(bytes: &[u8]) -> Result<$doc, $crate::document::DocumentError> {
                $doc::from_automerge(tillmesh_untrusted::load_document(bytes)?)
            }

            #[doc = concat!("Wraps an Automerge document, checking that it is ", $what, " of a known schema.")]
            pub fn from_automerge(doc: automerge::AutoCommit) -> Result<$doc, $crate::document::DocumentError> {
                let id = $crate::document::Header::expect(&doc, $kind)?;
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

            /// The whole document, compacted (see [`Document::save`]).
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

/// The document layout this build writes and the newest it reads.
pub const SCHEMA_VERSION: u64 = 1;

/// Which kind of document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DocKind {
    /// One order: items, status, the till's payment claim, HQ's settlement.
    Order,
    /// One payment transaction.
    Transaction,
}

impl DocKind {
    /// The value of the document's `kind` key.
    pub const fn as_str(self) -> &'static str {
        match self {
            DocKind::Order => "order",
            DocKind::Transaction => "transaction",
        }
    }

    /// One byte that names the kind inside signed payloads and hashes.
    pub(crate) const fn tag(self) -> u8 {
        match self {
            DocKind::Order => 1,
            DocKind::Transaction => 2,
        }
    }
}

impl fmt::Display for DocKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why bytes or an Automerge document are not a readable tillmesh document.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// The bytes are not a loadable Automerge document (refused before or by automerge).
    #[error("unloadable: {0}")]
    Load(#[from] tillmesh_untrusted::LoadError),
    /// Automerge refused an operation.
    #[error("automerge: {0}")]
    Automerge(#[source] Box<automerge::AutomergeError>),
    /// A value in the document does not have the expected type.
    #[error("document layout: {0}")]
    Hydrate(#[source] Box<autosurgeon::HydrateError>),
    /// A field does not have the type tillmesh writes (e.g. a JS client wrote a string as
    /// collaborative text, or money as a float).
    #[error(transparent)]
    Layout(Box<LayoutError>),
    /// Writing a value into the document failed.
    #[error("document write: {0}")]
    Reconcile(#[source] Box<autosurgeon::ReconcileError>),
    /// Written by a newer tillmesh: this build must not guess at its layout.
    #[error("document {id} uses schema {found}, this build reads up to {supported}: upgrade tillmesh")]
    NewerSchema {
        /// The document's id, when readable.
        id: String,
        /// The document's schema.
        found: u64,
        /// [`SCHEMA_VERSION`].
        supported: u64,
    },
    /// A required key is missing or of the wrong shape.
    #[error("document {id}: {problem}")]
    Malformed {
        /// The document's id, when readable.
        id: String,
        /// What is wrong.
        problem: String,
    },
    /// The document is of another kind than expected.
    #[error("document {id} is an {found:?} document, expected {expected}")]
    WrongKind {
        /// The document's id.
        id: Uuid,
        /// The kind asked for.
        expected: DocKind,
        /// The `kind` found.
        found: String,
    },
}

impl From<automerge::AutomergeError> for DocumentError {
    fn from(error: automerge::AutomergeError) -> Self {
        DocumentError::Automerge(Box::new(error))
    }
}

impl From<autosurgeon::HydrateError> for DocumentError {
    fn from(error: autosurgeon::HydrateError) -> Self {
        DocumentError::Hydrate(Box::new(error))
    }
}

impl From<autosurgeon::ReconcileError> for DocumentError {
    fn from(error: autosurgeon::ReconcileError) -> Self {
        DocumentError::Reconcile(Box::new(error))
    }
}

/// A field of a document whose type is not the one tillmesh writes.
#[derive(Debug, thiserror::Error)]
#[error("document {id}: field {field} should be {expected}, found {found}")]
pub struct LayoutError {
    /// The document's id.
    pub id: Uuid,
    /// The field's path (`items.<item id>.qty`).
    pub field: String,
    /// The type expected.
    pub expected: &'static str,
    /// What was found.
    pub found: String,
}

/// A loaded document of either kind.
#[derive(Debug, Clone)]
pub enum Document {
    /// An order.
    Order(OrderDoc),
    /// A payment transaction.
    Transaction(TransactionDoc),
}

impl Document {
    /// Loads saved bytes (as from [`Document::save`] or any Automerge peer) and checks the header.
    /// The bytes are not trusted: see [`tillmesh_untrusted::load_document`].
    pub fn load(bytes: &[u8]) -> Result<Document, DocumentError> {
        Document::from_automerge(tillmesh_untrusted::load_document(bytes)?)
    }

    /// Wraps an Automerge document after checking its header.
    pub fn from_automerge(doc: AutoCommit) -> Result<Document, DocumentError> {
        let header = Header::read(&doc)?;
        match header.kind.as_str() {
            "order" => Ok(Document::Order(OrderDoc::from_checked(doc, header.id))),
            "transaction" => Ok(Document::Transaction(TransactionDoc::from_checked(doc, header.id))),
            other => Err(DocumentError::Malformed {
                id: header.id.to_string(),
                problem: format!("unknown kind {other:?}"),
            }),
        }
    }

    /// The document's id.
    pub fn id(&self) -> Uuid {
        match self {
            Document::Order(order) => order.id(),
            Document::Transaction(transaction) => transaction.id(),
        }
    }

    /// The document's kind.
    pub fn kind(&self) -> DocKind {
        match self {
            Document::Order(_) => DocKind::Order,
            Document::Transaction(_) => DocKind::Transaction,
        }
    }

    /// The underlying Automerge document, for sync and storage.
    pub fn automerge(&mut self) -> &mut AutoCommit {
        match self {
            Document::Order(order) => order.automerge(),
            Document::Transaction(transaction) => transaction.automerge(),
        }
    }

    /// The whole document, compacted. Not DEFLATE-compressed: for documents this small
    /// (≈ 0.6–0.8 KB) DEFLATE costs three times the rest of saving for a sixth of the bytes.
    pub fn save(&mut self) -> Vec<u8> {
        self.automerge().save_nocompress()
    }

    /// The current heads (hashes of the newest changes).
    pub fn heads(&mut self) -> Vec<ChangeHash> {
        self.automerge().get_heads()
    }

    /// Takes in every change of `other`, another copy of the same document.
    pub fn merge(&mut self, other: &mut Document) -> Result<(), crate::edit::EditError> {
        if other.id() != self.id() || other.kind() != self.kind() {
            return Err(crate::edit::EditError::DifferentDocument { ours: self.id(), theirs: other.id() });
        }
        self.automerge().merge(other.automerge()).map_err(DocumentError::from)?;
        Ok(())
    }
}

/// The `schema`, `kind` and `id` every document's root holds.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub(crate) kind: String,
    pub(crate) id: Uuid,
}

impl Header {
    /// Reads and checks the header: a known schema, a kind and a UUID id.
    pub(crate) fn read(doc: &AutoCommit) -> Result<Header, DocumentError> {
        let id_text = string(doc, &ROOT, "id").unwrap_or_default();
        let malformed =
            |problem: &str| DocumentError::Malformed { id: id_text.clone(), problem: problem.to_string() };
        let schema = match doc.get(ROOT, "schema")? {
            Some((Value::Scalar(scalar), _)) => {
                scalar.as_u64().ok_or_else(|| malformed("schema is not a number"))?
            }
            _ => return Err(malformed("no schema version")),
        };
        if schema > SCHEMA_VERSION {
            return Err(DocumentError::NewerSchema { id: id_text, found: schema, supported: SCHEMA_VERSION });
        }
        let kind = string(doc, &ROOT, "kind").ok_or_else(|| malformed("no kind"))?;
        let id = Uuid::parse_str(&id_text).map_err(|_| malformed("id is not a UUID"))?;
        Ok(Header { kind, id })
    }

    /// Reads the header and requires `expected` kind.
    pub(crate) fn expect(doc: &AutoCommit, expected: DocKind) -> Result<Uuid, DocumentError> {
        let header = Header::read(doc)?;
        if header.kind != expected.as_str() {
            return Err(DocumentError::WrongKind { id: header.id, expected, found: header.kind });
        }
        Ok(header.id)
    }
}

/// The string at `obj[key]`, if it is one.
pub(crate) fn string(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<String> {
    match doc.get(obj, key) {
        Ok(Some((Value::Scalar(scalar), _))) => scalar.as_str().map(str::to_string),
        _ => None,
    }
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

    /// Puts a legacy device's names (by legacy field) into the document's `legacyNames` map,
    /// replacing those it names. A document made before legacy names were kept has no map and
    /// keeps none (it is never added later, by two peers at once): false then.
    pub(crate) fn put_legacy_names(
        &mut self,
        names: &std::collections::BTreeMap<String, String>,
    ) -> Result<bool, DocumentError> {
        let Some((automerge::Value::Object(automerge::ObjType::Map), map)) =
            self.doc.get(ROOT, "legacyNames")?
        else {
            return Ok(false);
        };
        for (field, name) in names {
            self.doc.put(&map, field.as_str(), name.as_str())?;
        }
        Ok(true)
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
