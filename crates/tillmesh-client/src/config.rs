//! [`ClientConfig`]: where HQ is, who this device is, where the outbox lives, and the bounds of
//! every sync (batch size, timeouts, backoff).

use std::path::PathBuf;
use std::time::Duration;

use crate::error::ClientError;

/// Most records in one `POST /api/sync/batch` (the seed's batches; HQ accepts up to 1,000).
pub const BATCH_RECORDS_MAX: usize = 100;

/// Shortest background interval and backoff step: the loop never spins.
pub const DELAY_MIN: Duration = Duration::from_millis(10);

/// Longest backoff the configuration accepts.
pub const BACKOFF_MAX_LIMIT: Duration = Duration::from_secs(3_600);

/// Most `updates` pages one sync fetches (500 records each); the rest waits for the next sync.
pub const UPDATE_PAGES_LIMIT: usize = 1_000;

/// How a [`crate::SyncService`] reaches HQ and keeps its outbox.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// HQ's base URL, e.g. `http://10.0.0.2:8080` (no trailing `/api`).
    pub base_url: String,
    /// This device's id as HQ registered it (`tillmesh hq device add`).
    pub device_id: String,
    /// The device's bearer token from HQ.
    pub token: String,
    /// The outbox's own directory (a sled database).
    pub data_dir: PathBuf,
    /// Time between background syncs after a success (the seed's 30 s).
    pub interval: Duration,
    /// Records per batch request, 1 to [`BATCH_RECORDS_MAX`].
    pub batch_size: usize,
    /// Longest wait for one HTTP request, connection included.
    pub request_timeout: Duration,
    /// Longest wait for the TCP connection.
    pub connect_timeout: Duration,
    /// First wait after a failed sync; doubles after every further failure.
    pub backoff_base: Duration,
    /// Longest wait after failures.
    pub backoff_max: Duration,
    /// Most `updates` pages fetched by one sync, 1 to [`UPDATE_PAGES_LIMIT`].
    pub update_pages_max: usize,
    /// A CA certificate (PEM) to trust for an HQ served over HTTPS with a private certificate,
    /// besides the public roots.
    pub hq_ca_pem: Option<Vec<u8>>,
}

impl ClientConfig {
    /// The seed's defaults: a sync every 30 s, batches of 100, 10 s per request, backoff from
    /// 1 s doubling up to 60 s, 100 pages of updates per sync.
    pub fn new(
        base_url: impl Into<String>,
        device_id: impl Into<String>,
        token: impl Into<String>,
        data_dir: impl Into<PathBuf>,
    ) -> ClientConfig {
        ClientConfig {
            base_url: base_url.into(),
            device_id: device_id.into(),
            token: token.into(),
            data_dir: data_dir.into(),
            interval: Duration::from_secs(30),
            batch_size: BATCH_RECORDS_MAX,
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            update_pages_max: 100,
            hq_ca_pem: None,
        }
    }

    /// Checks every field against its bounds.
    pub fn check(&self) -> Result<(), ClientError> {
        let problem = |detail: String| Err(ClientError::Config { detail });
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
            return problem(format!("base_url {:?} must start with http:// or https://", self.base_url));
        }
        if let Err(error) = tillmesh_core::edit::check_device_id(&self.device_id) {
            return problem(error.to_string());
        }
        if self.token.trim().is_empty() || self.token.chars().any(char::is_control) {
            return problem("token must be non-empty without control characters".into());
        }
        if !(1..=BATCH_RECORDS_MAX).contains(&self.batch_size) {
            return problem(format!("batch_size {} is not within 1..={BATCH_RECORDS_MAX}", self.batch_size));
        }
        if !(1..=UPDATE_PAGES_LIMIT).contains(&self.update_pages_max) {
            return problem(format!(
                "update_pages_max {} is not within 1..={UPDATE_PAGES_LIMIT}",
                self.update_pages_max
            ));
        }
        for (name, value) in [
            ("interval", self.interval),
            ("request_timeout", self.request_timeout),
            ("connect_timeout", self.connect_timeout),
            ("backoff_base", self.backoff_base),
        ] {
            if value < DELAY_MIN {
                return problem(format!("{name} {value:?} is shorter than {DELAY_MIN:?}"));
            }
        }
        if self.backoff_max < self.backoff_base || self.backoff_max > BACKOFF_MAX_LIMIT {
            return problem(format!(
                "backoff_max {:?} must be within backoff_base {:?} and {BACKOFF_MAX_LIMIT:?}",
                self.backoff_max, self.backoff_base
            ));
        }
        Ok(())
    }

    /// The base URL without trailing slashes.
    pub(crate) fn base(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }
}
