//! The version + hash rules for a record the server holds already: in sync, deleted, or
//! SERVER_WINS when the client's version does not beat the server's; the version a winning
//! write gives, bounded.

use std::sync::atomic::Ordering;

use tillmesh_core::legacy::{self, FieldConflict, Resolution, SyncStatus};

use super::work::Outcome;
use super::{LegacyService, SYNC_VERSION_STEP_MAX};
use crate::records::{Record, RecordStore};

impl<S: RecordStore> LegacyService<S> {
    /// The answer when nothing changes: the same content (in sync), a deleted record, or a
    /// version that does not beat the server's (SERVER_WINS, differences reported). A deletion
    /// at the server's version or above is applied.
    pub(super) fn unchanged(
        &self,
        record: &Record,
        deleting: bool,
        client_hash: &str,
        client_version: i64,
        differences: impl FnOnce() -> Vec<FieldConflict>,
    ) -> Option<Outcome> {
        let same = |message: &str, conflicts| {
            Some(Outcome { record: Some(record.clone()), conflicts, message: Some(message.to_string()) })
        };
        if record.deleted {
            let conflicts = if deleting { Vec::new() } else { vec![deleted_on_server()] };
            return same("deleted on the server", conflicts);
        }
        if !deleting && client_hash == record.server_hash {
            self.stats.in_sync.fetch_add(1, Ordering::Relaxed);
            return same("already in sync", Vec::new());
        }
        if client_version > record.sync_version || (deleting && client_version == record.sync_version) {
            return None;
        }
        let message = if client_version < record.sync_version {
            "the server's version is newer: the server's copy stands (SERVER_WINS)"
        } else {
            "same version with other content: the server's copy stands (SERVER_WINS)"
        };
        let mut conflicts = differences();
        if deleting {
            conflicts.push(not_deleted());
        }
        same(message, conflicts)
    }
}

/// The conflict for a deletion that did not take.
pub(super) fn not_deleted() -> FieldConflict {
    FieldConflict {
        field: "syncStatus".into(),
        client_value: Some(legacy::json_text(&SyncStatus::Deleted)),
        server_value: Some(legacy::json_text(&SyncStatus::Synced)),
        resolution: Resolution::ServerWins,
    }
}

/// The conflict for a change sent for a record deleted on the server.
pub(super) fn deleted_on_server() -> FieldConflict {
    FieldConflict {
        field: "syncStatus".into(),
        client_value: None,
        server_value: Some(legacy::json_text(&SyncStatus::Deleted)),
        resolution: Resolution::ServerWins,
    }
}

/// The version a winning write gives a record at `server` (0: new): the client's, at least one
/// more than the server's, at most [`SYNC_VERSION_STEP_MAX`] more; a capped version is
/// reported.
pub(super) fn bounded_version(client: i64, server: i64) -> (i64, Option<FieldConflict>) {
    let version = client.max(server.saturating_add(1)).min(server.saturating_add(SYNC_VERSION_STEP_MAX));
    let capped = (client > version).then(|| FieldConflict {
        field: "syncVersion".into(),
        client_value: Some(client.to_string()),
        server_value: Some(version.to_string()),
        resolution: Resolution::ServerAssigned,
    });
    (version, capped)
}
