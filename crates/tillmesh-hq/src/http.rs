//! HQ's HTTP routes for legacy clients and HQ's staff, added to the node's API
//! ([`tillmesh_node::http::app_with`]). Documented in `docs/API.md`; OpenAPI at
//! `/api/openapi.json`.
//!
//! - `POST /api/sync/batch`, `POST /api/sync/order`, `POST /api/sync/transaction`,
//!   `GET /api/sync/updates?deviceId=…&since=…`: the seed's API, each with
//!   `Authorization: Bearer <device token>`; a token may only act as its own device (403), and a
//!   revoked device's is refused (401 `token_revoked`). With [`LegacyAuth::Open`] a request
//!   without a token is admitted as the device it names, unless that device was revoked. Web
//!   origins listed in [`Access::cors_origins`] may call them from a browser (CORS). Every body
//!   is read to its end before it is judged (up to [`REST_BODY_DRAIN_BYTES_MAX`]; over the
//!   limit, answered 413), so a client refused while still sending (a bad token, a body too
//!   large) reads the answer instead of seeing its connection reset.
//! - `POST /api/hq/devices` `{"deviceId"}` → `{"deviceId","token"}` (a revoked device gets a new
//!   token), `GET /api/hq/devices`, `POST /api/hq/devices/{deviceId}/revoke` and
//!   `GET /api/hq/conflicts`: HQ's admin endpoints, with `Authorization: Bearer <admin token>`
//!   (the file `admin-token` in HQ's data directory).
//! - The node's own API (orders, `POST /api/orders/{id}/settle`, roster, sync), with the admin
//!   token too; `GET /api/health` and `GET /metrics` stay open.
//! - The back office (`crate::back_office`): the page at `/` (the sign-in form, or with the
//!   admin token the office), `POST /api/hq/session` `{"token"}` and `DELETE /api/hq/session` to
//!   sign in and out (a cookie the admin routes take like the bearer token),
//!   `GET /api/hq/overview?since=…`, and the office's parts under `/screens/office/` (admin).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use tillmesh_core::Timestamp;
use tillmesh_core::legacy::{BatchSyncResponse, Since, SyncResponse};
use tillmesh_node::http::{ApiError, ApiJson, ApiPath, ApiQuery, Figures, MetricsSource, TillRoutes, single};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::back_office;
use crate::error::HqError;
use crate::records::{ConflictEntry, LegacyDevice, RecordStore};
use crate::service::{FeedCursor, IncomingBatch, LegacyService, Listed, token_sha256};

/// Largest legacy request body: a batch of 1,000 records fits.
pub const REST_BODY_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Most of an oversized body HQ reads (and throws away) before answering 413, so that the
/// client, still sending, is not cut off before it can read the answer. Beyond it (or with a
/// `content-length` beyond it) HQ answers at once.
pub const REST_BODY_DRAIN_BYTES_MAX: usize = 64 * 1024 * 1024;

/// How legacy clients authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LegacyAuth {
    /// Every request carries its device's bearer token (the default).
    #[default]
    Token,
    /// A migration mode for a shop's LAN, for clients that have no token (the seed's client
    /// has none): a request without a token is admitted as the `deviceId` it names, and that
    /// device is registered among HQ's devices on first sight. Anyone who can reach HQ can
    /// then write as any device: never expose HQ to the internet in this mode. A request with
    /// a token is still checked.
    Open,
}

impl LegacyAuth {
    /// `token` or `open`.
    pub const fn as_str(self) -> &'static str {
        match self {
            LegacyAuth::Token => "token",
            LegacyAuth::Open => "open",
        }
    }
}

/// Who may use HQ's HTTP API, and from which web origins.
#[derive(Debug, Clone)]
pub struct Access {
    /// Guards the admin routes and the node's own (orders, settlement, roster, sync).
    pub admin_token: String,
    /// How legacy clients authenticate.
    pub legacy_auth: LegacyAuth,
    /// Web origins (`https://pos.example.com`) whose pages may call the legacy API (CORS);
    /// none by default.
    pub cors_origins: Vec<HeaderValue>,
    /// How far ahead of HQ's clock a legacy record's times may be (a register's clock runs
    /// fast); beyond, or before 2000-01-01, the record is refused.
    pub clock_skew_max_ms: i64,
}

impl Access {
    /// Device tokens required, no CORS origin, times up to a day ahead, `admin_token` for the
    /// admin routes.
    pub fn new(admin_token: impl Into<String>) -> Access {
        Access {
            admin_token: admin_token.into(),
            legacy_auth: LegacyAuth::Token,
            cors_origins: Vec::new(),
            clock_skew_max_ms: crate::service::CLOCK_SKEW_MAX_MS,
        }
    }
}

/// The OpenAPI description of the legacy API and HQ's admin endpoints.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

/// Requests to the legacy API, by endpoint.
#[derive(Debug, Default)]
struct RestRequests {
    batch: AtomicU64,
    order: AtomicU64,
    transaction: AtomicU64,
    updates: AtomicU64,
}

pub(crate) struct Shared<S> {
    pub(crate) service: Arc<LegacyService<S>>,
    admin_token_sha256: String,
    legacy_auth: LegacyAuth,
    requests: RestRequests,
    /// Per-device rate and turns of legacy writes.
    gate: crate::fairness::Gate,
}

type AppState<S> = State<Arc<Shared<S>>>;

impl<S> Shared<S> {
    /// Whether a request carries HQ's admin token, as a bearer token or the back office's cookie.
    fn admits(&self, headers: &HeaderMap) -> bool {
        bearer(headers)
            .or_else(|| back_office::cookie_token(headers))
            .is_some_and(|token| token_sha256(token) == self.admin_token_sha256)
    }
}

impl<S: RecordStore> back_office::Office for Shared<S> {
    type Records = S;

    fn service(&self) -> &LegacyService<S> {
        &self.service
    }

    fn admits(&self, headers: &HeaderMap) -> bool {
        Shared::admits(self, headers)
    }
}
type Answer<T> = Result<Json<T>, ApiError>;

/// The legacy routes, HQ's admin routes and the node's own routes (orders, settlement, roster,
/// sync) over `service`, and the figures they add to `/metrics` and `/api/health`. The admin
/// token guards the admin routes and the node's: HQ's HTTP faces legacy clients on the network,
/// so nobody else may settle a payment or edit an order there.
///
/// The writes come apart (the legacy writes and the node's own), for
/// [`tillmesh_node::http::app_with`] to run each to its end in a task of its own, outside the
/// request timeout, and so does the node's change stream (behind the admin token too): a client that goes away never cuts a write between committing its records
/// and writing their documents (nor a device's turn short while its write goes on), and no 408
/// says nothing was done while the work goes on.
pub fn routes<S: RecordStore>(
    service: Arc<LegacyService<S>>,
    access: &Access,
) -> (TillRoutes, Arc<dyn MetricsSource>) {
    let shared = Arc::new(Shared {
        service,
        admin_token_sha256: token_sha256(&access.admin_token),
        legacy_auth: access.legacy_auth,
        requests: RestRequests::default(),
        gate: crate::fairness::Gate::default(),
    });
    let edge = |router: Router| {
        let router = router
            .layer(DefaultBodyLimit::max(REST_BODY_BYTES_MAX))
            .layer(middleware::from_fn(read_body_to_end));
        if access.cors_origins.is_empty() {
            return router;
        }
        router.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(access.cors_origins.iter().cloned()))
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]),
        )
    };
    let counted = |endpoint: Endpoint| {
        middleware::from_fn_with_state((Arc::clone(&shared), endpoint), count_request::<S>)
    };
    let admin_only = middleware::from_extractor_with_state::<Admin, _>(Arc::clone(&shared));
    let writes = edge(
        Router::new()
            .route("/api/sync/batch", post(batch::<S>).route_layer(counted(|requests| &requests.batch)))
            .route("/api/sync/order", post(order::<S>).route_layer(counted(|requests| &requests.order)))
            .route(
                "/api/sync/transaction",
                post(transaction::<S>).route_layer(counted(|requests| &requests.transaction)),
            )
            .with_state(Arc::clone(&shared)),
    );
    let admin = Router::new()
        .route("/api/hq/devices", post(add_device::<S>).get(devices::<S>))
        .route("/api/hq/devices/{device_id}/revoke", post(revoke_device::<S>))
        .route("/api/hq/conflicts", get(conflicts::<S>))
        .route("/api/hq/overview", get(overview::<S>))
        .route("/screens/office/tills", get(back_office::tills::<Shared<S>>))
        .route("/screens/office/overview", get(back_office::sales_and_payments::<Shared<S>>))
        .route("/screens/office/conflicts", get(back_office::conflicts::<Shared<S>>))
        .route("/screens/office/devices", get(back_office::devices::<Shared<S>>))
        .route("/screens/office/menu", get(back_office::menu::<Shared<S>>))
        .route_layer(admin_only.clone());
    let reads = edge(
        Router::new()
            .route("/api/sync/updates", get(updates::<S>).route_layer(counted(|requests| &requests.updates)))
            .merge(admin)
            .route("/", get(back_office::page::<Shared<S>>))
            .route("/api/hq/session", post(sign_in::<S>).delete(sign_out))
            .route("/api/openapi.json", get(openapi))
            .with_state(Arc::clone(&shared)),
    );
    let node = tillmesh_node::http::till_routes(shared.service.node().clone());
    let routes = TillRoutes {
        reads: reads.merge(node.reads.route_layer(admin_only.clone())),
        writes: writes.merge(node.writes.route_layer(admin_only.clone())),
        streams: node.streams.route_layer(admin_only),
    };
    (routes, Arc::new(RestMetrics(shared)))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|token| !token.is_empty())
}

/// A legacy request's sender, from its bearer token: the device the token belongs to, or, for
/// a request without a token that open mode lets in, nobody yet (see [`LegacyCaller::admit`]).
/// Without a valid token (and not in open mode) the request is refused 401 before its body is
/// parsed.
struct LegacyCaller(Option<String>);

impl<S: RecordStore> FromRequestParts<Arc<Shared<S>>> for LegacyCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared<S>>) -> Result<Self, ApiError> {
        match (bearer(&parts.headers), shared.legacy_auth) {
            (Some(token), _) => shared
                .service
                .authenticate(token)
                .await
                .map(|device| LegacyCaller(Some(device)))
                .map_err(ApiError::from),
            (None, LegacyAuth::Open) => Ok(LegacyCaller(None)),
            (None, LegacyAuth::Token) => Err(HqError::Unauthorized.into()),
        }
    }
}

impl LegacyCaller {
    /// The writing device: the token's, or in open mode the `claimed` one, registered among
    /// HQ's devices on first sight (and refused once revoked).
    async fn admit<S: RecordStore>(self, shared: &Shared<S>, claimed: &str) -> Result<String, ApiError> {
        if let Some(device) = self.0 {
            return Ok(device);
        }
        shared.service.admit_without_token(claimed).await?;
        Ok(claimed.to_string())
    }
}

/// A request with HQ's admin token, as a bearer token or the back office's cookie: the admin
/// routes and the node's own require it (through [`middleware::from_extractor_with_state`]).
struct Admin;

impl<S: Send + Sync> FromRequestParts<Arc<Shared<S>>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared<S>>) -> Result<Self, ApiError> {
        if shared.admits(&parts.headers) {
            return Ok(Admin);
        }
        Err(ApiError {
            status: StatusCode::UNAUTHORIZED,
            error: "unauthorized",
            detail: "HQ's admin token is required (Authorization: Bearer <contents of admin-token>)".into(),
        })
    }
}

/// A legacy endpoint's request counter.
type Endpoint = fn(&RestRequests) -> &AtomicU64;

/// Counts a request to a legacy endpoint, refused or not.
async fn count_request<S>(
    State((shared, endpoint)): State<(Arc<Shared<S>>, Endpoint)>,
    request: Request,
    next: Next,
) -> Response {
    endpoint(&shared.requests).fetch_add(1, Ordering::Relaxed);
    next.run(request).await
}

/// Why a legacy write was not taken: the API's errors, or the device's rate.
enum WriteRefused {
    Api(ApiError),
    /// The device wrote more than its rate allows: come back after this.
    RateLimited(std::time::Duration),
}

impl From<ApiError> for WriteRefused {
    fn from(error: ApiError) -> WriteRefused {
        WriteRefused::Api(error)
    }
}

impl From<HqError> for WriteRefused {
    fn from(error: HqError) -> WriteRefused {
        WriteRefused::Api(error.into())
    }
}

impl IntoResponse for WriteRefused {
    fn into_response(self) -> Response {
        match self {
            WriteRefused::Api(error) => error.into_response(),
            WriteRefused::RateLimited(wait) => {
                let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                let detail = format!(
                    "this device wrote more than {} records a second: retry after {seconds} s",
                    crate::fairness::RECORDS_PER_SECOND
                );
                let mut response =
                    ApiError { status: StatusCode::TOO_MANY_REQUESTS, error: "rate_limited", detail }
                        .into_response();
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
                response
            }
        }
    }
}

/// Waits for `device`'s turn to write `records` records, or refuses it past its rate.
async fn turn<S>(
    shared: &Shared<S>,
    device: &str,
    records: usize,
) -> Result<tokio::sync::OwnedMutexGuard<()>, WriteRefused> {
    shared.gate.enter(device, records).await.map_err(WriteRefused::RateLimited)
}

async fn batch<S: RecordStore>(
    State(shared): AppState<S>,
    caller: LegacyCaller,
    ApiJson(request): ApiJson<IncomingBatch>,
) -> Result<Json<BatchSyncResponse>, WriteRefused> {
    let device = caller.admit(&shared, &request.device_id).await?;
    let _turn = turn(&shared, &device, request.orders.len() + request.transactions.len()).await?;
    Ok(Json(shared.service.sync_batch(&device, request).await?))
}

async fn order<S: RecordStore>(
    State(shared): AppState<S>,
    caller: LegacyCaller,
    ApiJson(order): ApiJson<serde_json::Value>,
) -> Result<Json<SyncResponse>, WriteRefused> {
    let device = caller.admit(&shared, claimed_device(&order)?).await?;
    let _turn = turn(&shared, &device, 1).await?;
    Ok(Json(shared.service.sync_order(&device, order).await?))
}

async fn transaction<S: RecordStore>(
    State(shared): AppState<S>,
    caller: LegacyCaller,
    ApiJson(transaction): ApiJson<serde_json::Value>,
) -> Result<Json<SyncResponse>, WriteRefused> {
    let device = caller.admit(&shared, claimed_device(&transaction)?).await?;
    let _turn = turn(&shared, &device, 1).await?;
    Ok(Json(shared.service.sync_transaction(&device, transaction).await?))
}

/// The `deviceId` a single record names: its writer when it comes without a token.
fn claimed_device(record: &serde_json::Value) -> Result<&str, ApiError> {
    record["deviceId"]
        .as_str()
        .ok_or_else(|| ApiError::bad_request("invalid_body", "deviceId: a string is required"))
}

/// Reads a body to its end before the route judges it, and one over [`REST_BODY_BYTES_MAX`]
/// (read up to [`REST_BODY_DRAIN_BYTES_MAX`]) is answered 413: a server that answers while the
/// client is still sending (a refused token, a body too large) closes the connection under it,
/// and the client sees a reset instead of the answer.
async fn read_body_to_end(request: Request, next: Next) -> Response {
    let too_large = || ApiError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        error: "too_large",
        detail: format!("the body is over {REST_BODY_BYTES_MAX} bytes"),
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > REST_BODY_DRAIN_BYTES_MAX) {
        return too_large().into_response();
    }
    let (parts, mut body) = request.into_parts();
    let mut kept = Vec::with_capacity(declared.unwrap_or(0).min(REST_BODY_BYTES_MAX));
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return ApiError::bad_request("invalid_body", "the body could not be read").into_response();
        };
        if let Ok(data) = frame.into_data() {
            seen = seen.saturating_add(data.len());
            if seen > REST_BODY_DRAIN_BYTES_MAX {
                break;
            }
            if seen <= REST_BODY_BYTES_MAX {
                kept.extend_from_slice(&data);
            }
        }
    }
    if seen > REST_BODY_BYTES_MAX {
        return too_large().into_response();
    }
    next.run(Request::from_parts(parts, Body::from(kept))).await
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdatesQuery {
    device_id: String,
    #[serde(default)]
    since: Option<String>,
}

async fn updates<S: RecordStore>(
    State(shared): AppState<S>,
    caller: LegacyCaller,
    ApiQuery(query): ApiQuery<UpdatesQuery>,
) -> Result<Response, ApiError> {
    let device = caller.admit(&shared, &query.device_id).await?;
    if query.device_id != device {
        return Err(HqError::Forbidden {
            detail: format!("this token belongs to device {device:?}, not {:?}", query.device_id),
        }
        .into());
    }
    let since = query
        .since
        .filter(|since| !since.is_empty())
        .map(|since| since.parse::<Since>())
        .transpose()
        .map_err(|error| ApiError::bad_request("invalid_query", error.to_string()))?;
    match since {
        Some(since @ Since::Time(_)) => Ok(stream_updates(Arc::clone(&shared.service), device, since).await),
        _ => Ok(Json(shared.service.updates(&device, since).await?).into_response()),
    }
}

/// `updates` after a time, complete however large: written page by page as it is read (two
/// passes over the change feed up to its end when called: orders, then transactions), so HQ
/// never holds it whole. A fault midway cuts the body: the client gets no valid JSON, so it
/// never takes part of the answer for the whole, and asks again.
async fn stream_updates<S: RecordStore>(
    service: Arc<LegacyService<S>>,
    device: String,
    since: Since,
) -> Response {
    service.stats.update_calls.fetch_add(1, Ordering::Relaxed);
    let (sender, receiver) =
        tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(UPDATES_CHUNKS_QUEUED);
    tokio::spawn(async move {
        if let Err(error) = write_updates(&service, &device, since, &sender).await {
            tracing::warn!(%error, device, "updates answer cut short");
            let _ = sender.send(Err(std::io::Error::other(error))).await;
        }
    });
    let chunks = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    ([(header::CONTENT_TYPE, "application/json")], Body::from_stream(chunks)).into_response()
}

/// Pages of a streamed `updates` answer waiting for the client.
const UPDATES_CHUNKS_QUEUED: usize = 2;

/// Writes the `updates` answer after `since` to `sender` as JSON text, a page at a time.
async fn write_updates<S: RecordStore>(
    service: &LegacyService<S>,
    device: &str,
    since: Since,
    sender: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Result<(), String> {
    let send = |text: String| async move {
        sender.send(Ok(Bytes::from(text))).await.map_err(|_| "the client went away".to_string())
    };
    let end = service.records().last_position().await.map_err(|error| error.to_string())?;
    let mut deleted_orders = Vec::new();
    let mut deleted_transactions = Vec::new();
    let mut last = None;
    for (opening, wanted_orders) in [(r#"{"orders":["#, true), (r#"],"transactions":["#, false)] {
        send(opening.to_string()).await?;
        let mut cursor = FeedCursor::new(since, end);
        let mut first = true;
        while let Some(page) =
            service.feed_page(device, &mut cursor).await.map_err(|error| error.to_string())?
        {
            let mut chunk = String::new();
            for listed in page {
                let json = match listed {
                    Listed::Order(order) if wanted_orders => serde_json::to_string(&order),
                    Listed::Transaction(transaction) if !wanted_orders => serde_json::to_string(&transaction),
                    Listed::DeletedOrder(id) if wanted_orders => {
                        deleted_orders.push(id);
                        continue;
                    }
                    Listed::DeletedTransaction(id) if !wanted_orders => {
                        deleted_transactions.push(id);
                        continue;
                    }
                    _ => continue,
                }
                .map_err(|error| error.to_string())?;
                if !first {
                    chunk.push(',');
                }
                first = false;
                chunk.push_str(&json);
            }
            if !chunk.is_empty() {
                send(chunk).await?;
            }
        }
        last = cursor.position();
    }
    let tail = serde_json::json!({
        "deletedOrderIds": deleted_orders,
        "deletedTransactionIds": deleted_transactions,
        "nextSyncToken": Since::token(last.unwrap_or(end)),
        "hasMore": false,
    });
    send(format!("],{}", tail.to_string().trim_start_matches('{'))).await
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewDevice {
    device_id: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct IssuedToken {
    device_id: String,
    token: String,
}

async fn add_device<S: RecordStore>(
    State(shared): AppState<S>,
    ApiJson(NewDevice { device_id }): ApiJson<NewDevice>,
) -> Result<(StatusCode, Json<IssuedToken>), ApiError> {
    let token = shared.service.add_device(&device_id).await?;
    Ok((StatusCode::CREATED, Json(IssuedToken { device_id, token })))
}

/// Every legacy device, revoked or not, by device id.
async fn devices<S: RecordStore>(State(shared): AppState<S>) -> Answer<Vec<LegacyDevice>> {
    Ok(Json(shared.service.records().devices().await.map_err(HqError::from)?))
}

async fn revoke_device<S: RecordStore>(
    State(shared): AppState<S>,
    ApiPath(device_id): ApiPath<String>,
) -> Answer<LegacyDevice> {
    Ok(Json(shared.service.revoke_device(&device_id).await?))
}

#[derive(Debug, Deserialize)]
struct ConflictsQuery {
    #[serde(default = "conflicts_default")]
    limit: usize,
}

const fn conflicts_default() -> usize {
    100
}

/// Most conflicts one report lists.
const CONFLICTS_LIMIT_MAX: usize = 1_000;

async fn conflicts<S: RecordStore>(
    State(shared): AppState<S>,
    ApiQuery(query): ApiQuery<ConflictsQuery>,
) -> Answer<Vec<ConflictEntry>> {
    if !(1..=CONFLICTS_LIMIT_MAX).contains(&query.limit) {
        return Err(ApiError::bad_request("invalid_query", format!("limit: 1 to {CONFLICTS_LIMIT_MAX}")));
    }
    let entries = shared.service.records().conflicts(query.limit).await.map_err(HqError::from)?;
    Ok(Json(entries))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    token: String,
}

/// Signs the back office in: the admin token, checked, becomes its cookie.
async fn sign_in<S: RecordStore>(
    State(shared): AppState<S>,
    ApiJson(SignIn { token }): ApiJson<SignIn>,
) -> Result<Response, ApiError> {
    if token_sha256(token.trim()) != shared.admin_token_sha256 {
        return Err(ApiError {
            status: StatusCode::UNAUTHORIZED,
            error: "unauthorized",
            detail: "not HQ's admin token (the file admin-token in HQ's data directory)".into(),
        });
    }
    Ok(back_office::signed_in(token.trim()))
}

async fn sign_out() -> Response {
    back_office::signed_out()
}

async fn overview<S: RecordStore>(
    State(shared): AppState<S>,
    ApiQuery(back_office::Period { since }): ApiQuery<back_office::Period>,
) -> Answer<back_office::Overview> {
    Ok(Json(back_office::overview(shared.service.node(), Timestamp(since))?))
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}

/// The legacy API's figures for `/metrics`.
struct RestMetrics<S>(Arc<Shared<S>>);

impl<S: RecordStore> MetricsSource for RestMetrics<S> {
    fn health(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::Map::from_iter([("legacyAuth".to_string(), self.0.legacy_auth.as_str().into())])
    }

    fn figures(&self) -> Pin<Box<dyn Future<Output = Figures> + Send + '_>> {
        Box::pin(async move {
            let shared = &self.0;
            let mut figures = Figures::default();
            let requests = &shared.requests;
            let by_endpoint = [
                ("batch", &requests.batch),
                ("order", &requests.order),
                ("transaction", &requests.transaction),
                ("updates", &requests.updates),
            ]
            .iter()
            .map(|(name, count)| (vec![("endpoint", (*name).to_string())], count.load(Ordering::Relaxed)))
            .collect();
            figures.counter("tillmesh_rest_requests", "Legacy REST requests, by endpoint.", by_endpoint);
            let stats = &shared.service.stats;
            for (name, help, counter) in [
                (
                    "tillmesh_rest_sync_sessions",
                    "Legacy sync sessions (batches and single records).",
                    &stats.sync_sessions,
                ),
                ("tillmesh_rest_records_created", "Legacy records created.", &stats.created),
                (
                    "tillmesh_rest_client_wins",
                    "Legacy records changed by a newer client version.",
                    &stats.client_wins,
                ),
                ("tillmesh_rest_in_sync", "Legacy submissions already in sync (resends).", &stats.in_sync),
                ("tillmesh_rest_conflicts", "Field conflicts reported to legacy clients.", &stats.conflicts),
                ("tillmesh_rest_update_calls", "Legacy updates pages served.", &stats.update_calls),
                (
                    "tillmesh_rest_conflicts_coalesced",
                    "Conflicts reported again, identical, within ten minutes: answered, not logged again.",
                    &stats.conflicts_coalesced,
                ),
                (
                    "tillmesh_rest_splits_repaired",
                    "Records and documents found apart by a reconciliation and brought together.",
                    &stats.splits_repaired,
                ),
            ] {
                figures.counter(name, help, single(counter.load(Ordering::Relaxed)));
            }
            figures.gauge(
                "tillmesh_rest_legacy_auth_open",
                "1 when legacy clients without a token are admitted by deviceId (LAN-only migration mode).",
                single(u64::from(shared.legacy_auth == LegacyAuth::Open)),
            );
            match shared.service.records().counts().await {
                Ok(counts) => {
                    figures.gauge(
                        "tillmesh_rest_records",
                        "Legacy records held, by kind.",
                        vec![
                            (vec![("kind", "order".to_string())], counts.orders),
                            (vec![("kind", "transaction".to_string())], counts.transactions),
                        ],
                    );
                    figures.gauge(
                        "tillmesh_rest_devices",
                        "Legacy devices whose token is valid (not revoked).",
                        single(counts.devices),
                    );
                    figures.gauge(
                        "tillmesh_rest_conflicts_logged",
                        "Conflicts in HQ's report.",
                        single(counts.conflicts),
                    );
                }
                Err(error) => tracing::warn!(%error, "cannot count legacy records for /metrics"),
            }
            figures
        })
    }
}
