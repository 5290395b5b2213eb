//! A loaded document of any kind, for the code that handles them all (the store, sync, HQ).
//! The kinds, header and errors live in [`crate::kind`]; the plumbing both kinds share in the
//! crate's `base` module.

use automerge::{AutoCommit, ChangeHash};
use uuid::Uuid;

use crate::authority::HqPublicKey;
use crate::kind::{DocKind, DocumentError, Header};
use crate::menu::{Menu, MenuDoc};
use crate::order::{Order, OrderDoc};
use crate::payment::{Transaction, TransactionDoc};

/// A loaded document of any kind.
#[derive(Debug, Clone)]
pub enum Document {
    /// An order.
    Order(OrderDoc),
    /// A payment transaction.
    Transaction(TransactionDoc),
    /// The shop's menu.
    Menu(MenuDoc),
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
            "menu" => Ok(Document::Menu(MenuDoc::from_checked(doc, header.id))),
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
            Document::Menu(menu) => menu.id(),
        }
    }

    /// The document's effective view ([`OrderDoc::view`], [`TransactionDoc::view`] or
    /// [`MenuDoc::view`]): HQ's settlements and menu offers count only with a valid signature by
    /// `hq`.
    pub fn view(&self, hq: Option<&HqPublicKey>) -> Result<View, DocumentError> {
        Ok(match self {
            Document::Order(order) => View::Order(order.view(hq)?),
            Document::Transaction(transaction) => View::Transaction(transaction.view(hq)?),
            Document::Menu(menu) => View::Menu(menu.view(hq)?),
        })
    }

    /// The document's kind.
    pub fn kind(&self) -> DocKind {
        match self {
            Document::Order(_) => DocKind::Order,
            Document::Transaction(_) => DocKind::Transaction,
            Document::Menu(_) => DocKind::Menu,
        }
    }

    /// The underlying Automerge document, for sync and storage.
    pub fn automerge(&mut self) -> &mut AutoCommit {
        match self {
            Document::Order(order) => order.automerge(),
            Document::Transaction(transaction) => transaction.automerge(),
            Document::Menu(menu) => menu.automerge(),
        }
    }

    /// The whole document, compacted. Not DEFLATE-compressed: for documents this small (about
    /// a kilobyte) DEFLATE costs three times the rest of saving for a sixth of the bytes; the
    /// transport compresses whole frames of them instead.
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

/// The effective view of a document of any kind ([`Document::view`]).
#[derive(Debug, Clone)]
pub enum View {
    /// An order's.
    Order(Order),
    /// A transaction's.
    Transaction(Transaction),
    /// The menu's.
    Menu(Menu),
}

impl View {
    /// The `localId` the originating device gave the document; none for the menu, which HQ
    /// makes under an id of its own.
    pub fn local_id(&self) -> Option<Uuid> {
        match self {
            View::Order(order) => Some(order.local_id),
            View::Transaction(transaction) => Some(transaction.local_id),
            View::Menu(_) => None,
        }
    }

    /// The number it carries: the order number, or the transaction's reference number; none
    /// for the menu.
    pub fn number(&self) -> Option<&str> {
        match self {
            View::Order(order) => Some(&order.order_number),
            View::Transaction(transaction) => Some(&transaction.reference_number),
            View::Menu(_) => None,
        }
    }
}
