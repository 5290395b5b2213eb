//! The legacy POS client's sync service in Rust: the seed's `SyncService`
//! (`seed/000_7e5eaa4308e293f2.md`), talking to HQ's legacy REST API
//! (`POST /api/sync/batch`, `GET /api/sync/updates`).
//!
//! A POS saves every order and transaction here first — on disk before the call returns, with
//! or without a network — and a background loop sends them to HQ in batches, with HQ's
//! deduplication by `localId` making every resend safe. HQ's answers are applied to the local
//! copy (HQ's value wins for the fields it keeps), and what other devices changed comes back
//! through `updates`, so the POS can list every order of the shop.
//!
//! # Layout
//! - [`service`]: [`SyncService`] — save, delete, list, [`SyncService::sync_now`], statistics
//!   and the observable [`SyncState`].
//! - [`background`]: the loop started by [`SyncService::start`], stopped through its
//!   [`SyncHandle`].
//! - `outbox`: the durable sled outbox: saves, answers, updates, crash recovery.
//! - [`record`]: what it keeps, [`Tracked`] orders and transactions with the seed's statuses
//!   `PENDING`, `SYNCING`, `SYNCED`, `FAILED`, `MODIFIED`, `DELETED`.
//! - [`resolve`]: applying HQ's field conflicts (`SERVER_WINS`, `SERVER_ASSIGNED`).
//! - [`backoff`]: exponential backoff with jitter after failures.
//! - `api`: the HTTP calls and how HQ's statuses become [`ClientError`]s.
//! - [`config`]: [`ClientConfig`] and its bounds; [`error`]: [`ClientError`].
//!
//! The service stamps what it saves with an injected [`tillmesh_core::Clock`]: on a device,
//! `tillmesh_node::SystemClock` (the one wall clock of the workspace); in tests, their own.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use tillmesh_client::{ClientConfig, SyncService, SyncState};
//! use tillmesh_core::legacy::LegacyOrder;
//! use tillmesh_node::SystemClock;
//!
//! # async fn example(order: LegacyOrder) -> Result<(), tillmesh_client::ClientError> {
//! let config = ClientConfig::new("http://hq.local:8080", "pos-1", "tmd_…", "/var/lib/pos/outbox");
//! let sync = SyncService::open(config, Arc::new(SystemClock))?;
//! let background = sync.start(); // a sync now, then every 30 s; backoff after failures
//!
//! let saved = sync.save_order_for_sync(order).await?; // PENDING, on disk, works offline
//! println!("order {} is {}", saved.local_id, saved.sync_status);
//!
//! let mut state = sync.state();
//! while state.changed().await.is_ok() {
//!     if let SyncState::Success { synced_orders, .. } = &*state.borrow() {
//!         println!("{synced_orders} orders synced");
//!         break;
//!     }
//! }
//! let stats = sync.stats()?;
//! println!("pending {}, failed {}", stats.pending_orders, stats.failed_orders);
//! background.stop().await;
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod api;
pub mod background;
pub mod backoff;
pub mod config;
pub mod error;
mod outbox;
pub mod record;
pub mod resolve;
pub mod service;

pub use background::SyncHandle;
pub use config::ClientConfig;
pub use error::ClientError;
pub use record::{LegacyRecord, Tracked, TrackedOrder, TrackedTransaction};
pub use service::{SyncReport, SyncService, SyncState, SyncStats};
