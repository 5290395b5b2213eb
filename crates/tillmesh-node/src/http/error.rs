//! The one error type of the HTTP API: every failure is a status code and a JSON body
//! `{"error": <code>, "detail": <text>}`. Client mistakes are logged at debug level only.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tillmesh_core::EditError;

use crate::TillError;

/// An HTTP error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The status code.
    pub status: StatusCode,
    /// A stable, machine-readable code (`invalid_json`, `not_found`, …).
    pub error: &'static str,
    /// A sentence for people.
    pub detail: String,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    detail: &'a str,
}

impl ApiError {
    /// A 400 with `code`.
    pub fn bad_request(error: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::BAD_REQUEST, error, detail: detail.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if matches!(self.status, StatusCode::INSUFFICIENT_STORAGE | StatusCode::SERVICE_UNAVAILABLE) {
            // A state the node logged once when it began (storage failed, shutting down): one
            // line per refused write would fill the very disk that is full.
            tracing::debug!(status = %self.status, detail = %self.detail, "request refused: node degraded");
        } else if self.status.is_server_error() {
            tracing::error!(status = %self.status, detail = %self.detail, "request failed");
        } else {
            tracing::debug!(status = %self.status, error = self.error, detail = %self.detail, "request refused");
        }
        (self.status, Json(Body { error: self.error, detail: &self.detail })).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        let (status, error) = match &rejection {
            JsonRejection::JsonSyntaxError(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
            JsonRejection::JsonDataError(_) => (StatusCode::BAD_REQUEST, "invalid_body"),
            JsonRejection::MissingJsonContentType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
            }
            _ => (StatusCode::BAD_REQUEST, "invalid_body"),
        };
        ApiError { status, error, detail: rejection.body_text() }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::bad_request("invalid_query", rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> ApiError {
        ApiError::bad_request("invalid_path", rejection.body_text())
    }
}

impl From<TillError> for ApiError {
    fn from(error: TillError) -> ApiError {
        let detail = error.to_string();
        let (status, code) = match &error {
            TillError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            TillError::Edit(edit) => match edit {
                EditError::UnknownItem { .. } | EditError::UnknownSku { .. } => {
                    (StatusCode::NOT_FOUND, "not_found")
                }
                EditError::StatusTransition { .. }
                | EditError::SkuTaken { .. }
                | EditError::Terminal { .. }
                | EditError::ItemVoided { .. } => (StatusCode::CONFLICT, "conflict"),
                EditError::Document(_) | EditError::DifferentDocument { .. } => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "internal")
                }
                _ => (StatusCode::BAD_REQUEST, "invalid_field"),
            },
            TillError::Store(tillmesh_store::StoreError::Cursor) => {
                (StatusCode::BAD_REQUEST, "invalid_query")
            }
            TillError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            TillError::StorageFailed(failure) if failure.disk_full => {
                (StatusCode::INSUFFICIENT_STORAGE, "disk_full")
            }
            TillError::Store(error) if error.is_disk_full() => {
                (StatusCode::INSUFFICIENT_STORAGE, "disk_full")
            }
            TillError::StorageFailed(_) | TillError::Store(tillmesh_store::StoreError::Reopening) => {
                (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable")
            }
            TillError::Store(error) if error.is_io() => {
                (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable")
            }
            TillError::NotHq => (StatusCode::FORBIDDEN, "not_hq"),
            TillError::AlreadyExists { .. }
            | TillError::Store(_)
            | TillError::NotDurable { .. }
            | TillError::Internal { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError { status, error: code, detail }
    }
}
