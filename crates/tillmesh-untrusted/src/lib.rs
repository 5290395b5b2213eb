//! Automerge bytes from outside, loaded without trusting them.
//!
//! Automerge's loader (0.12, with its `hexane` column decoder) panics on some malformed inputs
//! and allocates without bound on others: a run-length encoded column can declare billions of
//! rows in a few bytes, and the loader collects them. Every place tillmesh takes Automerge bytes
//! it did not just make — a whole document or a sync message from a peer, a document read back
//! from its own disk, HQ's PostgreSQL `document` column — goes through this crate, which
//!
//! 1. bounds the size: at most [`DOCUMENT_BYTES_MAX`] bytes;
//! 2. checks the shape before automerge sees the bytes: only the chunk kinds tillmesh peers write
//!    (documents and changes: never bundles), every column's declared rows at
//!    most [`COLUMN_ROWS_MAX`], deflated columns inflated only up to [`DOCUMENT_BYTES_MAX`] — so
//!    the memory one load can take is bounded before automerge allocates anything;
//! 3. runs automerge under `catch_unwind`, so a panic left in it becomes [`LoadError::Panicked`]
//!    for that input instead of unwinding through the caller (a till's writer thread).
//!
//! The checks cost one pass over the bytes (≈ 1 µs for a 700-byte order document), against
//! ≈ 30 µs for automerge's own load.
//!
//! Bytes at rest and on the wire are packed with a dictionary trained on tillmesh's documents
//! ([`packed`]); unpacking them is bounded the same way.
//!
//! # Layout
//! - `lib.rs`: the entry points and [`LoadError`].
//! - `shape.rs`: the structural check of Automerge's chunk and column format.
//! - `packed.rs`: zstd with the shipped dictionary.

use std::panic::{AssertUnwindSafe, catch_unwind};

use automerge::AutoCommit;
use automerge::sync::{self, SyncDoc};

pub mod packed;
mod shape;

/// The most bytes a document (or a sync message) may have, and the most a deflated column may
/// inflate to. Order documents are 0.6–0.8 KB.
pub const DOCUMENT_BYTES_MAX: usize = 8 * 1024 * 1024;

/// The most rows one column may declare. An order document has a few hundred operations; a
/// column of 262,144 rows decodes to at most a few MB.
pub const COLUMN_ROWS_MAX: u64 = 262_144;

/// Why untrusted bytes were refused. Nothing was loaded or changed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Larger than [`DOCUMENT_BYTES_MAX`] (or a column inflates beyond it).
    #[error("{bytes} bytes, more than the {max} allowed")]
    TooLarge {
        /// How many bytes (at least).
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// Not Automerge's chunk format.
    #[error("malformed at byte {offset}: {problem}")]
    Malformed {
        /// Where, from the start of the chunk being read.
        offset: usize,
        /// What is wrong.
        problem: &'static str,
    },
    /// A chunk kind this place does not take (e.g. a bundle, which tillmesh never writes).
    #[error("chunk of kind {kind} ({name}) is not accepted here")]
    ChunkKind {
        /// The chunk type byte.
        kind: u8,
        /// Its name in Automerge's format.
        name: &'static str,
    },
    /// A column declares more rows than [`COLUMN_ROWS_MAX`].
    #[error("column {column} declares {rows} rows, more than the {max} allowed")]
    TooManyRows {
        /// The column's id.
        column: u32,
        /// Rows declared so far (at least).
        rows: u64,
        /// The limit.
        max: u64,
    },
    /// Automerge refused the bytes.
    #[error("automerge: {0}")]
    Automerge(String),
    /// Automerge panicked on the bytes (a bug in automerge, contained here).
    #[error("automerge panicked: {0}")]
    Panicked(String),
}

/// Loads a whole document (document chunks, and changes whose dependencies it lacks).
pub fn load_document(bytes: &[u8]) -> Result<AutoCommit, LoadError> {
    shape::check(bytes)?;
    contain(|| AutoCommit::load(bytes))
}

/// Decodes a sync message and checks every chunk of changes it carries.
pub fn decode_sync_message(bytes: &[u8]) -> Result<sync::Message, LoadError> {
    shape::check_size(bytes.len())?;
    let message = contain(|| sync::Message::decode(bytes))?;
    for chunks in message.changes.iter() {
        shape::check(chunks)?;
    }
    Ok(message)
}

/// Applies a sync message decoded by [`decode_sync_message`] to `doc`. On an error `doc` and
/// `state` may hold part of the message: the caller drops both.
pub fn receive_sync_message(
    doc: &mut AutoCommit,
    state: &mut sync::State,
    message: sync::Message,
) -> Result<(), LoadError> {
    contain(|| doc.sync().receive_sync_message(state, message))
}

/// Merges `theirs` (loaded by [`load_document`]) into `mine`. On an error `mine` may hold part
/// of it: the caller drops it.
pub fn merge(mine: &mut AutoCommit, theirs: &mut AutoCommit) -> Result<(), LoadError> {
    contain(|| mine.merge(theirs).map(|_| ()))
}

/// Runs automerge, turning a panic into [`LoadError::Panicked`].
fn contain<T, E: std::fmt::Display>(run: impl FnOnce() -> Result<T, E>) -> Result<T, LoadError> {
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(result) => result.map_err(|error| LoadError::Automerge(error.to_string())),
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|text| (*text).to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_string());
            Err(LoadError::Panicked(message))
        }
    }
}
