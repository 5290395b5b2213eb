//! Why a legacy request failed ([`HqError`]), shared by the service, the projector and the
//! HTTP layer, and the HTTP answer for each ([`ApiError`], so handlers answer with `?`).

use axum::http::StatusCode;
use tillmesh_core::legacy::LegacyError;
use tillmesh_core::{EditError, Timestamp};
use tillmesh_node::TillError;
use tillmesh_node::http::ApiError;

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
    /// The token was valid until HQ's admin revoked its device.
    #[error("device {device_id}'s token was revoked at {} (ms since the Unix epoch)", at.millis())]
    Revoked {
        /// The device.
        device_id: String,
        /// When.
        at: Timestamp,
    },
    /// The token belongs to another device.
    #[error("{detail}")]
    Forbidden {
        /// Which device the token is for and what was asked.
        detail: String,
    },
    /// The device has a valid token already.
    #[error(transparent)]
    DeviceExists(RecordError),
    /// No such device is registered.
    #[error(transparent)]
    UnknownDevice(RecordError),
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
            RecordError::UnknownDevice { .. } => HqError::UnknownDevice(error),
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

/// An [`HqError`] as an HTTP answer: the client's mistakes as 4xx with their code, the node's
/// failures as the node answers them, the rest as 500.
impl From<HqError> for ApiError {
    fn from(error: HqError) -> ApiError {
        let detail = error.to_string();
        let (status, code) = match error {
            HqError::BadRequest { error, .. } => (StatusCode::BAD_REQUEST, error),
            HqError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            HqError::Revoked { .. } => (StatusCode::UNAUTHORIZED, "token_revoked"),
            HqError::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            HqError::DeviceExists(_) => (StatusCode::CONFLICT, "device_exists"),
            HqError::UnknownDevice(_) => (StatusCode::NOT_FOUND, "unknown_device"),
            HqError::Node(error) => return ApiError::from(error),
            HqError::Records(_) | HqError::Document(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError { status, error: code, detail }
    }
}
