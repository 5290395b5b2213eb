//! The leaf every document module builds on: the document kinds, the `schema` / `kind` / `id`
//! header every document's root holds and its check, and why a document cannot be read.
//!
//! A document is one Automerge map. Its root always holds `schema` (the layout version, see
//! [`SCHEMA_VERSION`]), `kind` (`"order"`, `"transaction"` or `"menu"`) and `id` (a UUID string). The
//! layouts are written up in `docs/DOCUMENTS.md`.

use std::fmt;

use automerge::{AutoCommit, ObjId, ROOT, ReadDoc, Value};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The document layout this build writes and the newest it reads.
pub const SCHEMA_VERSION: u64 = 1;

/// Which kind of document (in JSON, its [`DocKind::as_str`] name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocKind {
    /// One order: items, status, the till's payment claim, HQ's settlement.
    Order,
    /// One payment transaction.
    Transaction,
    /// The shop's menu: items, and HQ's signed prices and availability.
    Menu,
}

impl DocKind {
    /// The value of the document's `kind` key.
    pub const fn as_str(self) -> &'static str {
        match self {
            DocKind::Order => "order",
            DocKind::Transaction => "transaction",
            DocKind::Menu => "menu",
        }
    }

    /// One byte that names the kind inside signed payloads and hashes.
    pub(crate) const fn tag(self) -> u8 {
        match self {
            DocKind::Order => 1,
            DocKind::Transaction => 2,
            DocKind::Menu => 3,
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

#[cfg(test)]
mod tests {
    use super::DocKind;

    #[test]
    fn json_names_are_the_kind_keys() {
        for kind in [DocKind::Order, DocKind::Transaction, DocKind::Menu] {
            let json = serde_json::to_string(&kind).expect("serialize");
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<DocKind>(&json).expect("deserialize"), kind);
        }
    }
}
