//! The tillmesh sync protocol, sans-IO: no sockets, no tokio, no clock.
//!
//! Two peers first find *which documents differ* by range-based set reconciliation over
//! (document id, hash of heads), as iroh-docs and negentropy do: the cost grows with the
//! differences, not with the number of documents (two peers with 10,000 identical documents
//! agree in one round trip of a few dozen bytes). Then Automerge's sync protocol runs only for the
//! documents that differ, many per frame; a document the peer lacks entirely is sent whole.
//! `docs/PROTOCOL.md` describes messages, state machine and limits.
//!
//! # Layout
//! - [`index`]: [`Index`] of (id, [`ItemHash`]) and range [`Fingerprint`]s.
//! - [`frame`]: the versioned binary [`Frame`] and its decoder, which never panics.
//! - [`session`]: [`Session`], the per-peer state machine, and the [`Documents`] it works on.
//! - [`memory`]: [`MemoryDocuments`], an in-memory [`Documents`] for simulation and tests.
//!
//! # Example: two peers
//! ```
//! use automerge::{transaction::Transactable, AutoCommit, ROOT};
//! use tillmesh_sync::{MemoryDocuments, Session};
//! use uuid::Uuid;
//!
//! let mut a = MemoryDocuments::new();
//! let mut doc = AutoCommit::new();
//! doc.put(ROOT, "table", 4).unwrap();
//! a.put(Uuid::from_u128(1), doc);
//! let mut b = MemoryDocuments::new();
//!
//! let (mut on_a, mut on_b) = (Session::new(), Session::new());
//! on_a.start_reconcile(tillmesh_sync::Documents::index(&a));
//! // Drive the conversation until both outboxes are empty.
//! while on_a.has_outgoing() || on_b.has_outgoing() {
//!     if let Some(frame) = on_a.next_frame(&mut a).unwrap() {
//!         on_b.receive(frame, &mut b).unwrap();
//!     }
//!     if let Some(frame) = on_b.next_frame(&mut b).unwrap() {
//!         on_a.receive(frame, &mut a).unwrap();
//!     }
//! }
//! assert_eq!(tillmesh_sync::Documents::index(&a), tillmesh_sync::Documents::index(&b));
//! ```

pub mod frame;
pub mod index;
pub mod memory;
pub mod session;

pub use frame::{DocBody, DocMsg, Frame, FrameError, RangeBody, RangeMsg, compact, decode, encode};
pub use index::{Bound, DocId, Fingerprint, Index, ItemHash};
pub use memory::MemoryDocuments;
pub use session::{Documents, Received, Refusal, Session, Verdict, receipt, undecodable};
