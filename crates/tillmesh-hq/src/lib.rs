//! tillmesh HQ: the legacy REST sync API of the original system, served over HQ's peer node.
//!
//! HQ is a peer like any till (the [`tillmesh_node::Till`] runtime with HQ's signing key); this
//! crate adds what only HQ does for legacy clients: a system of record of legacy records
//! ([`records`]) on sled or PostgreSQL, ingestion with the seed's dedup and conflict rules, the
//! projection of every document the mesh brings into records, and the REST routes.

pub mod records;
pub mod sled_records;

pub use records::{Record, RecordBatch, RecordError, RecordKind, RecordStore};
pub use sled_records::SledRecords;
