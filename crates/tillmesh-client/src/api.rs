//! The two calls of HQ's legacy REST API a client needs, over reqwest: `POST /api/sync/batch`
//! and `GET /api/sync/updates`. HTTP statuses become [`ClientError`] variants; answers are read
//! up to [`ANSWER_BYTES_MAX`].

use reqwest::{RequestBuilder, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tillmesh_core::legacy::{BatchSyncRequest, BatchSyncResponse, UpdatesResponse};

use crate::config::ClientConfig;
use crate::error::ClientError;

/// Largest answer read from HQ (an `updates` page of 500 records is well under 1 MiB).
pub(crate) const ANSWER_BYTES_MAX: usize = 32 * 1024 * 1024;

/// Longest error detail kept from a non-JSON error answer.
const DETAIL_CHARS_MAX: usize = 300;

/// HQ's error body: `{"error": "...", "detail": "..."}`.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    detail: String,
}

/// A client of HQ's legacy REST API for one device.
#[derive(Debug, Clone)]
pub(crate) struct HqApi {
    http: reqwest::Client,
    base: String,
    device_id: String,
    token: String,
    timeout_ms: u64,
}

impl HqApi {
    /// A client with `config`'s URL, credentials and timeouts.
    pub(crate) fn new(config: &ClientConfig) -> Result<HqApi, ClientError> {
        let mut builder = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout);
        if let Some(pem) = &config.hq_ca_pem {
            let certificate = reqwest::Certificate::from_pem(pem)
                .map_err(|error| ClientError::Config { detail: format!("HQ's CA certificate: {error}") })?;
            builder = builder.add_root_certificate(certificate);
        }
        let http = builder
            .build()
            .map_err(|error| ClientError::Config { detail: format!("HTTP client: {error}") })?;
        Ok(HqApi {
            http,
            base: config.base().to_string(),
            device_id: config.device_id.clone(),
            token: config.token.clone(),
            timeout_ms: u64::try_from(config.request_timeout.as_millis()).unwrap_or(u64::MAX),
        })
    }

    /// `POST /api/sync/batch`.
    pub(crate) async fn batch(&self, request: &BatchSyncRequest) -> Result<BatchSyncResponse, ClientError> {
        let url = format!("{}/api/sync/batch", self.base);
        self.call(self.http.post(&url).json(request), url).await
    }

    /// `GET /api/sync/updates?deviceId=…&since=…`.
    pub(crate) async fn updates(&self, since: Option<&str>) -> Result<UpdatesResponse, ClientError> {
        let url = format!("{}/api/sync/updates", self.base);
        let mut query = vec![("deviceId", self.device_id.as_str())];
        if let Some(since) = since {
            query.push(("since", since));
        }
        self.call(self.http.get(&url).query(&query), url).await
    }

    async fn call<R: DeserializeOwned>(
        &self,
        request: RequestBuilder,
        url: String,
    ) -> Result<R, ClientError> {
        let transport = |source: reqwest::Error| {
            if source.is_timeout() {
                ClientError::Timeout { url: url.clone(), timeout_ms: self.timeout_ms }
            } else {
                ClientError::Unreachable { url: url.clone(), source }
            }
        };
        let mut response = request.bearer_auth(&self.token).send().await.map_err(transport)?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > ANSWER_BYTES_MAX {
                return Err(ClientError::BadAnswer {
                    detail: format!("{url}: the answer is larger than {ANSWER_BYTES_MAX} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|error| ClientError::BadAnswer {
                detail: format!("{url} answered {status} with an unexpected body: {error}"),
            });
        }
        let (error, detail) = match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(ErrorBody { error, detail }) => (error, detail),
            Err(_) => (
                status.canonical_reason().unwrap_or("error").to_string(),
                String::from_utf8_lossy(&body).chars().take(DETAIL_CHARS_MAX).collect(),
            ),
        };
        Err(match status {
            StatusCode::UNAUTHORIZED => ClientError::Unauthorized { error, detail },
            StatusCode::FORBIDDEN => {
                ClientError::Forbidden { device_id: self.device_id.clone(), error, detail }
            }
            StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => {
                ClientError::Server { status: status.as_u16(), error, detail }
            }
            _ if status.is_client_error() => ClientError::Rejected { status: status.as_u16(), error, detail },
            _ => ClientError::Server { status: status.as_u16(), error, detail },
        })
    }
}
