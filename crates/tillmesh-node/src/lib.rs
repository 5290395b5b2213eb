//! The tillmesh peer runtime and the till's local HTTP API for the POS front-end.
//!
//! A [`Till`] owns its [`tillmesh_store::Store`] through one writer thread: every edit is a job
//! that runs there, one after another (so read-modify-write of a document never races), and a
//! whole batch of jobs is flushed to disk with one fsync before any of them is acknowledged
//! (group commit). Reads go straight to the store.
//!
//! # Layout
//! - [`till`]: [`Till`], its configuration and its operations (create order, add item, …).
//! - [`writer`]: the writer thread and group commit; it owns the sync index.
//! - [`mesh`]: the sync driver: roster admission, one sync session per peer, pushes, relays,
//!   anti-entropy, over `tillmesh-net`.
//! - [`sync_control`]: what the till and the sync driver share (local changes, the controls the
//!   HTTP API uses, traffic counters), a leaf both import.
//! - `sync_docs`: the store as the sync protocol's documents, inside writer jobs.
//! - [`local_shop`]: a whole shop in one process (predictable keys) for examples and benchmarks.
//! - [`http`]: the axum router (`http::app`) and `http::serve` with graceful shutdown.
//! - [`clock`]: the system clock.
//! - `error`: [`TillError`], why an operation failed.

pub mod clock;
pub mod error;
pub mod http;
pub mod local_shop;
pub mod mesh;
pub mod sync_control;
mod sync_docs;
pub mod till;
pub mod writer;

pub use clock::SystemClock;
pub use error::TillError;
pub use local_shop::LocalShop;
pub use mesh::{Mesh, MeshConfig, MeshError};
pub use sync_control::SyncStats;
pub use till::{OrderDetail, PaymentInput, ScrubReport, Till, TillConfig};
