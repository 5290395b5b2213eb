//! [`ClientError`]: why saving locally or syncing with HQ failed.

use std::path::PathBuf;

use tillmesh_core::legacy::LegacyError;
use uuid::Uuid;

use tillmesh_core::legacy::RecordKind;

/// Why an operation of the [`crate::SyncService`] failed.
///
/// Errors of a sync never lose a record: what was sent stays in the outbox and is sent again
/// (HQ deduplicates by `localId`, so a resend is safe).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The configuration is unusable.
    #[error("configuration: {detail}")]
    Config {
        /// What is wrong.
        detail: String,
    },
    /// The local outbox (sled) failed.
    #[error("local outbox at {path}: {source}")]
    Store {
        /// The outbox directory.
        path: PathBuf,
        /// sled's error.
        #[source]
        source: sled::Error,
    },
    /// A stored entry of the outbox cannot be read (written by another version, or damaged).
    #[error("local outbox: {what} cannot be read: {detail}")]
    Corrupt {
        /// Which entry.
        what: String,
        /// Why.
        detail: String,
    },
    /// The order or transaction given to save is not valid (HQ would refuse it).
    #[error("invalid {kind}: {source}")]
    Invalid {
        /// Order or transaction.
        kind: RecordKind,
        /// What is wrong.
        #[source]
        source: LegacyError,
    },
    /// No record with this `localId` in the outbox.
    #[error("no {kind} with localId {local_id}")]
    NotFound {
        /// Order or transaction.
        kind: RecordKind,
        /// The `localId` asked for.
        local_id: Uuid,
    },
    /// The record was created by another device; HQ accepts changes from its creator only.
    #[error("{kind} {local_id} belongs to device {owner:?}; only that device can change it")]
    NotOwned {
        /// Order or transaction.
        kind: RecordKind,
        /// Its `localId`.
        local_id: Uuid,
        /// The device that created it.
        owner: String,
    },
    /// The record is deleted (here or on the server); it cannot change any more.
    #[error("{kind} {local_id} is deleted")]
    Deleted {
        /// Order or transaction.
        kind: RecordKind,
        /// Its `localId`.
        local_id: Uuid,
    },
    /// HQ could not be reached, or the connection broke. HQ may have applied what was sent; the
    /// next sync sends it again, which is safe.
    #[error("HQ at {url} is unreachable: {source}")]
    Unreachable {
        /// The request's URL.
        url: String,
        /// reqwest's error.
        #[source]
        source: reqwest::Error,
    },
    /// HQ did not answer in time. HQ may have applied what was sent; the next sync sends it
    /// again, which is safe.
    #[error("HQ at {url} did not answer within {timeout_ms} ms")]
    Timeout {
        /// The request's URL.
        url: String,
        /// The request timeout.
        timeout_ms: u64,
    },
    /// HQ refused the device token (401): it is wrong, or the device was never registered.
    #[error("HQ refused the device token (401 {error}): {detail}")]
    Unauthorized {
        /// HQ's error code.
        error: String,
        /// HQ's explanation.
        detail: String,
    },
    /// HQ refused the request for this device (403): the token belongs to another device.
    #[error("HQ forbids this for device {device_id:?} (403 {error}): {detail}")]
    Forbidden {
        /// The device the client is configured as.
        device_id: String,
        /// HQ's error code.
        error: String,
        /// HQ's explanation.
        detail: String,
    },
    /// HQ refused the request as malformed (another 4xx). Nothing was stored.
    #[error("HQ rejected the request ({status} {error}): {detail}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// HQ's error code.
        error: String,
        /// HQ's explanation.
        detail: String,
    },
    /// HQ failed (5xx). It may have stored part of the request; the next sync resends it.
    #[error("HQ failed ({status} {error}): {detail}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// HQ's error code.
        error: String,
        /// HQ's explanation.
        detail: String,
    },
    /// HQ's answer does not fit the contract (not JSON, wrong shape, a missing answer). HQ may
    /// have applied what was sent; the next sync resends it.
    #[error("HQ's answer cannot be used: {detail}")]
    BadAnswer {
        /// What is wrong with it.
        detail: String,
    },
}

impl ClientError {
    /// Whether trying again later may succeed without any change here (network, timeout, 5xx,
    /// a garbled answer).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ClientError::Unreachable { .. }
                | ClientError::Timeout { .. }
                | ClientError::Server { .. }
                | ClientError::BadAnswer { .. }
        )
    }

    /// Whether HQ refused the device's credentials (401 or 403): someone must fix the token or
    /// the device id.
    pub fn is_auth(&self) -> bool {
        matches!(self, ClientError::Unauthorized { .. } | ClientError::Forbidden { .. })
    }

    pub(crate) fn store(path: &std::path::Path, source: sled::Error) -> ClientError {
        ClientError::Store { path: path.to_path_buf(), source }
    }
}
