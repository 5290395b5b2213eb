//! Why a legacy request failed ([`HqError`]), shared by the service, the projector and the
//! HTTP layer.

use tillmesh_core::EditError;
use tillmesh_core::legacy::LegacyError;
use tillmesh_node::TillError;

use crate::records::RecordError;

/// Why a legacy request failed. A failed request stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum HqError {
    /// The request is malformed or a value is out of range.
    #[error("{detail}")]
    BadRequest {
        /// A stable code (`invalid_field`, `too_many_records`, …).
        error: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// No valid bearer token.
    #[error("a valid bearer token is required (Authorization: Bearer <token>)")]
    Unauthorized,
    /// The token belongs to another device.
    #[error("{detail}")]
    Forbidden {
        /// Which device the token is for and what was asked.
        detail: String,
    },
    /// The device has a token already.
    #[error(transparent)]
    DeviceExists(RecordError),
    /// The record store failed.
    #[error(transparent)]
    Records(RecordError),
    /// HQ's peer node failed.
    #[error(transparent)]
    Node(#[from] TillError),
    /// A document could not be made or edited (a server fault once input is checked).
    #[error("document: {0}")]
    Document(#[from] EditError),
}

impl From<RecordError> for HqError {
    fn from(error: RecordError) -> HqError {
        match error {
            RecordError::DeviceExists { .. } => HqError::DeviceExists(error),
            other => HqError::Records(other),
        }
    }
}

impl From<tillmesh_core::DocumentError> for HqError {
    fn from(error: tillmesh_core::DocumentError) -> HqError {
        HqError::Document(EditError::from(error))
    }
}

/// A 400 `invalid_field` naming what is wrong.
pub(crate) fn invalid(detail: impl Into<String>) -> HqError {
    HqError::BadRequest { error: "invalid_field", detail: detail.into() }
}

impl From<LegacyError> for HqError {
    fn from(error: LegacyError) -> HqError {
        invalid(error.to_string())
    }
}
