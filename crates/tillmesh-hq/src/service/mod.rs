//! The legacy REST API's logic, written once over any [`RecordStore`]: ingestion with the seed's
//! dedup by `localId` and conflict rules, `updates` from the change feed, device tokens.
//!
//! A submitted order or transaction becomes an Automerge document made here, on HQ, once (its id
//! derives from the client's `id`, so a retry finds it), stored as a
//! [`Record`](crate::records::Record) and then handed to HQ's peer node, which syncs it to every
//! till. The [`crate::projector`] brings the other direction: documents the mesh delivers become
//! records legacy clients receive.
//!
//! Conflict rules for a record the server holds already, with the client's `syncVersion` `v`:
//! same content hash → in sync; `v` higher → the client wins, its changes are applied to the
//! document as edits (items, status, its payment claim), and what HQ owns — the settled payment
//! status, the order number, derived totals, a status that only moves forward — keeps HQ's value,
//! each reported as a field conflict; `v` lower, or equal with other content → SERVER_WINS:
//! nothing changes, the differing fields are reported. Every reported conflict is also logged
//! for HQ's report.
//!
//! Each record is judged alone: one that cannot be read or breaks a rule gets `success: false`
//! and a message naming the field, at its own place in the answer, and the others are stored.
//! The writer of a change is the authenticated device; a record's own `deviceId` names its
//! creator, which may be another device of the shop (a register editing another's order).
//! Besides `localId`, the client's `id` from the same creator identifies an order or a
//! transaction: sent again under a fresh `localId` it is the same record, edited.
//!
//! # Layout
//! Leaves (they know nothing of [`LegacyService`]):
//! - `incoming`: what a client sends, read and checked.
//! - `feed`: a record as `updates` lists it, and a pass over the change feed.
//! - `tokens`: device tokens.
//!
//! Each of these adds to [`LegacyService`] what it names, importing this module and the leaves
//! below it (never this module importing them):
//! - `ingest`: the batch and single-record routes, chunking, building ahead, committing.
//! - `orders`, `transactions`: one record of each kind, created or edited.
//! - `identity`: which record a client's record is; new ids and numbers.
//! - `rules`: the version + hash rules.
//! - `edits`, `build`: editing a held record's document; building a new one's.
//! - `work`: what judging a batch's records leaves.
//! - `updates`: `updates` from the change feed.

mod build;
mod edits;
mod feed;
mod identity;
mod incoming;
mod ingest;
mod orders;
mod rules;
mod tokens;
mod transactions;
mod updates;
mod work;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use automerge::ActorId;
use tillmesh_core::{Clock, Document};
use tillmesh_node::Till;
use tillmesh_store::Prepared;
use uuid::Uuid;

pub use self::feed::{FeedCursor, Listed};
pub use self::incoming::{IncomingBatch, read_record};
use self::tokens::active;
pub use self::tokens::{add_device, token_sha256};
pub use crate::error::HqError;
use crate::records::{ConflictEntry, LegacyDevice, RecordStore};

/// Most records returned by one `updates` call (or in one batch answer's `serverUpdates`).
pub const UPDATES_PAGE_MAX: usize = 500;

/// Most orders plus transactions in one batch.
pub const BATCH_RECORDS_MAX: usize = 1_000;

/// The most one write may move a record's `syncVersion` forward: a client's version beyond it
/// is taken as this step, so no device can push a record out of every other client's reach
/// (`9223372036854775807`). The step taken is reported as a conflict on `syncVersion`.
pub const SYNC_VERSION_STEP_MAX: i64 = 1_000;

/// How far ahead of HQ's clock legacy records' times may be by default: a day.
pub const CLOCK_SKEW_MAX_MS: i64 = 24 * 60 * 60 * 1000;

/// Counters of the legacy API for `/metrics`.
#[derive(Debug, Default)]
pub struct RestStats {
    /// Batches (and single-record syncs) handled.
    pub sync_sessions: AtomicU64,
    /// Records created.
    pub created: AtomicU64,
    /// Records changed by a client that won on version.
    pub client_wins: AtomicU64,
    /// Records already in sync (a resend).
    pub in_sync: AtomicU64,
    /// Field conflicts reported.
    pub conflicts: AtomicU64,
    /// `updates` calls.
    pub update_calls: AtomicU64,
    /// Records and documents found apart by a reconciliation (at start, periodically) and
    /// brought together: documents projected into records, records' documents handed to the
    /// node.
    pub splits_repaired: AtomicU64,
    /// Conflicts reported again, identical, within [`COALESCE_WINDOW_MS`]: answered to the
    /// client, not logged again.
    pub conflicts_coalesced: AtomicU64,
}

/// How long an identical conflict (same record, device, field, values, resolution) is not
/// logged again: a device resending the same stale copy every 30 s logs it once.
pub const COALESCE_WINDOW_MS: i64 = 10 * 60 * 1000;

/// Identical conflicts remembered for coalescing; past this the memory starts afresh.
const RECENT_CONFLICTS_MAX: usize = 65_536;

/// HQ's legacy API over a record store and HQ's peer node.
pub struct LegacyService<S> {
    records: S,
    node: Till,
    clock: Arc<dyn Clock>,
    /// The Automerge actor of documents made or edited here (fresh on every start).
    actor: ActorId,
    /// Counters for `/metrics`.
    pub stats: RestStats,
    /// Document versions just recorded by ingestion (doc id → heads hex), so the projector
    /// skips them when the node announces them unchanged.
    recorded: Mutex<HashMap<Uuid, String>>,
    /// How far ahead of HQ's clock a record's times may be ([`crate::http::Access`]).
    pub(crate) clock_skew_max_ms: i64,
    /// When each recent conflict was last logged, by a hash of what it says.
    recent_conflicts: Mutex<HashMap<u64, i64>>,
}

/// Most versions kept for the projector to skip; beyond, it checks them the slow way.
const RECORDED_MAX: usize = 65_536;

impl<S> std::fmt::Debug for LegacyService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegacyService").field("node", &self.node).field("stats", &self.stats).finish()
    }
}

impl<S: RecordStore> LegacyService<S> {
    /// The service over `records` and HQ's running node.
    pub fn new(records: S, node: Till, clock: Arc<dyn Clock>) -> LegacyService<S> {
        LegacyService {
            records,
            node,
            clock,
            actor: ActorId::from(Uuid::new_v4().into_bytes()),
            stats: RestStats::default(),
            recorded: Mutex::new(HashMap::new()),
            clock_skew_max_ms: CLOCK_SKEW_MAX_MS,
            recent_conflicts: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `entry` says something not logged in the last [`COALESCE_WINDOW_MS`]; remembers
    /// it as logged now if so.
    fn first_of_its_kind(&self, entry: &ConflictEntry) -> bool {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (entry.kind, entry.local_id, &entry.device_id, &entry.conflict.field).hash(&mut hasher);
        (&entry.conflict.client_value, &entry.conflict.server_value, entry.conflict.resolution.as_str())
            .hash(&mut hasher);
        let signature = hasher.finish();
        let Ok(mut recent) = self.recent_conflicts.lock() else { return true };
        if recent.get(&signature).is_some_and(|at| entry.at.0 - at < COALESCE_WINDOW_MS) {
            return false;
        }
        if recent.len() >= RECENT_CONFLICTS_MAX {
            recent.clear();
        }
        recent.insert(signature, entry.at.0);
        true
    }

    /// The record store.
    pub fn records(&self) -> &S {
        &self.records
    }

    /// HQ's peer node.
    pub fn node(&self) -> &Till {
        &self.node
    }

    /// The clock.
    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    /// The device a bearer token belongs to, unless that device was revoked.
    pub async fn authenticate(&self, token: &str) -> Result<String, HqError> {
        let device = self.records.device_of(&token_sha256(token)).await?.ok_or(HqError::Unauthorized)?;
        active(device)
    }

    /// Admits a request without a token as `device_id` (open mode): registers the device on
    /// first sight; a revoked one stays refused.
    pub async fn admit_without_token(&self, device_id: &str) -> Result<(), HqError> {
        if let Some(device) = self.records.device(device_id).await? {
            return active(device).map(drop);
        }
        match self.add_device(device_id).await {
            Ok(_) => {
                tracing::info!(device = device_id, "admitted a legacy device without a token (open mode)");
                Ok(())
            }
            Err(HqError::DeviceExists(_)) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Registers a legacy device, or a revoked one again, and returns its new bearer token
    /// (shown once; only its hash is kept).
    pub async fn add_device(&self, device_id: &str) -> Result<String, HqError> {
        add_device(&self.records, device_id, self.clock.now()).await
    }

    /// Revokes a legacy device's token: its requests are refused from now on.
    pub async fn revoke_device(&self, device_id: &str) -> Result<LegacyDevice, HqError> {
        Ok(self.records.revoke_device(device_id, self.clock.now()).await?)
    }

    fn note_recorded(&self, documents: &[(Document, Option<Prepared>, String)]) {
        if let Ok(mut recorded) = self.recorded.lock() {
            if recorded.len() + documents.len() > RECORDED_MAX {
                recorded.clear();
            }
            for (document, _, heads) in documents {
                recorded.insert(document.id(), heads.clone());
            }
        }
    }

    /// Whether the node's version of `id` is the one ingestion just recorded (then the record
    /// is current). Forgets it either way.
    pub(crate) fn just_recorded(&self, id: Uuid) -> bool {
        let Some(heads) = self.recorded.lock().ok().and_then(|mut recorded| recorded.remove(&id)) else {
            return false;
        };
        matches!(self.node.store().item_hash(id), Ok(Some(hash)) if hex::encode(hash.0) == heads)
    }
}
