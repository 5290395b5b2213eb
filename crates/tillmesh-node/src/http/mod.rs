//! The till's local HTTP API for the POS front-end (JSON, camelCase). Documented in
//! `docs/API.md`.
//!
//! `app(till)` builds the router without a socket (tests call it with `oneshot`); [`serve`]
//! runs it on a listener until the shutdown future resolves, lets in-flight requests finish,
//! then flushes and closes the till.
//!
//! Reads answer within [`REQUEST_TIMEOUT_MS`] or get 408. Writes do not sit under that timeout:
//! each runs to its end in a task of its own and is answered once it is durable or refused (a
//! store that fails refuses writes at once), so neither a timeout nor a client that goes away
//! ever answers a stored write as failed, and what the write hands on (the push to peers) is
//! never cut off.

mod changes;
mod error;
mod extract;
mod metrics;
mod routes;
mod screens;
mod server;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, patch, post, put};
use tokio::net::TcpListener;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tracing::Level;

pub use error::ApiError;
pub use extract::{ApiJson, ApiPath, ApiQuery};
pub use metrics::{Figures, Labels, single};
pub use rustls::ServerConfig as TlsServerConfig;
pub use screens::{When, html, money, part, path_segment};
pub use server::{ConnectionLimits, TlsError, serve_router, tls_config};

use crate::Till;

/// Largest request body.
pub const BODY_BYTES_MAX: usize = 64 * 1024;

/// Largest body of `PUT /api/menu`: a whole menu of
/// [`tillmesh_core::edit::limits::MENU_ITEMS_MAX`] items with long names.
pub const MENU_BODY_BYTES_MAX: usize = 256 * 1024;

/// Longest a read may take before it is answered 408 (writes are not timed: see the module's
/// documentation).
pub const REQUEST_TIMEOUT_MS: u64 = 10_000;

/// The router of a till: its API and its screens — the till screen on `GET /` (with its parts)
/// besides the kitchen display — only for the host names it may be reached by (localhost, IP addresses and
/// [`crate::TillConfig::allowed_hosts`]). The till screen is not among [`till_routes`], which
/// HQ serves too: HQ's `/` is its own.
pub fn app(till: Till) -> Router {
    let allowed: Arc<[String]> =
        till.config().allowed_hosts.iter().map(|host| host.to_ascii_lowercase()).collect();
    let mut routes = till_routes(till.clone());
    routes.reads = routes.reads.merge(screens::till_routes().with_state(till.clone()));
    app_with(till, routes, None).layer(axum::middleware::from_fn_with_state(allowed, check_host))
}

/// Whether a request's `Host` may reach a till: `localhost`, an IP address (a page loaded from a
/// web site never sends one: DNS rebinding needs a name), or a name in `allowed` (lower case).
/// A request without a `Host` (not from a browser) passes.
fn allowed_host(host: Option<&str>, allowed: &[String]) -> bool {
    let Some(host) = host else { return true };
    let name = match host.strip_prefix('[') {
        Some(bracketed) => {
            return bracketed.split_once(']').is_some_and(|(ip, _)| ip.parse::<std::net::Ipv6Addr>().is_ok());
        }
        None => match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        },
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.parse::<std::net::IpAddr>().is_ok() || allowed.contains(&name)
}

async fn check_host(
    axum::extract::State(allowed): axum::extract::State<Arc<[String]>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let host = request.headers().get(axum::http::header::HOST).and_then(|value| value.to_str().ok());
    if allowed_host(host, &allowed) {
        return next.run(request).await;
    }
    let detail = format!(
        "this till answers for localhost, its IP addresses and the names given with --allow-host, not {:?}",
        host.unwrap_or_default()
    );
    axum::response::IntoResponse::into_response(ApiError {
        status: StatusCode::FORBIDDEN,
        error: "host_not_allowed",
        detail,
    })
}

/// The till's own routes, each with its body limit, for [`app_with`]; a caller may guard them
/// first (HQ requires its admin token).
#[derive(Debug)]
pub struct TillRoutes {
    /// Order listings and details, the menu, sync status, the quarantine, `POST /api/sync/now` (which
    /// only asks the sync driver for a round), the kitchen display (`GET /kitchen` and its
    /// part): under the request timeout.
    pub reads: Router,
    /// Orders created and edited, payments, settlements, the menu written (HQ), roster entries:
    /// each run to its end.
    pub writes: Router,
    /// `GET /api/changes`, the change stream: open as long as the client listens, so neither
    /// timed nor run as a write.
    pub streams: Router,
}

/// The till's own routes (orders, payments, settlement, the menu, sync, roster).
pub fn till_routes(till: Till) -> TillRoutes {
    let reads = Router::new()
        .route("/api/orders", get(routes::list_orders))
        .route("/api/orders/{id}", get(routes::get_order))
        .route("/api/menu", get(routes::get_menu))
        .route("/api/sync/status", get(routes::sync_status))
        .route("/api/quarantine", get(routes::quarantine))
        .route("/api/sync/now", post(routes::sync_now))
        .merge(screens::kitchen_routes())
        .with_state(till.clone())
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX));
    let writes = Router::new()
        .route("/api/orders", post(routes::create_order))
        .route("/api/orders/{id}", patch(routes::update_order))
        .route("/api/orders/{id}/items", post(routes::add_item))
        .route("/api/orders/{id}/items/{item_id}", patch(routes::set_quantity))
        .route("/api/orders/{id}/items/{item_id}/void", post(routes::void_item))
        .route("/api/orders/{id}/status", post(routes::advance))
        .route("/api/orders/{id}/payments", post(routes::record_payment))
        .route("/api/orders/{id}/void", post(routes::void_order))
        .route("/api/orders/{id}/settle", post(routes::settle))
        .route("/api/menu/items", post(routes::add_menu_item))
        .route("/api/menu/items/{sku}", patch(routes::update_menu_item))
        .route("/api/roster", post(routes::apply_roster))
        .with_state(till.clone())
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .merge(
            Router::new()
                .route("/api/menu", put(routes::put_menu))
                .with_state(till.clone())
                .layer(DefaultBodyLimit::max(MENU_BODY_BYTES_MAX)),
        );
    let streams = Router::new().route("/api/changes", get(changes::changes)).with_state(till);
    TillRoutes { reads, writes, streams }
}

/// Figures another layer adds to `GET /metrics` (HQ's legacy API) and to `GET /api/health`.
pub trait MetricsSource: Send + Sync + 'static {
    /// The extra figures, read from counters, after the node's own.
    fn figures(&self) -> Pin<Box<dyn Future<Output = Figures> + Send + '_>>;

    /// Extra fields of `GET /api/health` (none by default).
    fn health(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::Map::new()
    }
}

/// `routes` (the till's own from [`till_routes`], plus any others, each with its body limit)
/// with what every node serves openly — `GET /api/health`, `GET /metrics`
/// (`extra_metrics` appended) and the screens' script — the fallback for unknown paths, request counting and tracing.
///
/// `routes.reads` (and health and metrics) answer within [`REQUEST_TIMEOUT_MS`] or get 408;
/// `routes.streams` stay open until the client or the node ends them. `routes.writes`
/// run without that timeout, each in a task of its own that the request waits on: a client that
/// goes away, or a proxy that gives up, drops only the wait, never the write, and no 408 says
/// that nothing was stored while the write goes on. What bounds a write is what it waits on: the
/// store (which refuses at once while it fails) and, on HQ, the record store.
pub fn app_with(till: Till, routes: TillRoutes, extra_metrics: Option<Arc<dyn MetricsSource>>) -> Router {
    let TillRoutes { reads, writes, streams } = routes;
    let requests = Arc::new(metrics::RequestCounts::default());
    let metrics_route =
        Router::new().route("/metrics", get(metrics::metrics)).with_state(metrics::MetricsState {
            till: till.clone(),
            requests: Arc::clone(&requests),
            extra_metrics: extra_metrics.clone(),
        });
    let health_route =
        Router::new().route("/api/health", get(routes::health)).with_state((till, extra_metrics));
    let timed = Router::new()
        .merge(reads)
        .merge(health_route)
        .merge(metrics_route)
        .merge(screens::script_route())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(REQUEST_TIMEOUT_MS),
        ));
    Router::new()
        .merge(timed)
        .merge(writes.layer(axum::middleware::from_fn(to_the_end)))
        .merge(streams)
        .fallback(routes::not_found)
        .layer(axum::middleware::from_fn_with_state(requests, metrics::count_requests))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::DEBUG))
                .on_response(DefaultOnResponse::new().level(Level::DEBUG))
                // `ApiError` logs the failures worth an operator's eye, once, with their detail.
                .on_failure(DefaultOnFailure::new().level(Level::DEBUG)),
        )
}

/// Runs a write in a task of its own and waits for it: dropping the request (the client went
/// away) drops only the wait.
async fn to_the_end(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match tokio::spawn(next.run(request)).await {
        Ok(response) => response,
        Err(error) => {
            tracing::error!(%error, "a write's task failed");
            axum::response::IntoResponse::into_response(ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                error: "internal",
                detail: "the write failed unexpectedly: read or resend it to learn what was stored".into(),
            })
        }
    }
}

/// Serves the till's API on `listener` until `shutdown` resolves; in-flight requests finish,
/// then the till flushes and closes.
pub async fn serve(
    listener: TcpListener,
    till: Till,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let streams = till.clone();
    let shutdown = async move {
        shutdown.await;
        streams.end_streams();
    };
    serve_router(listener, app(till.clone()), ConnectionLimits::default(), None, shutdown).await?;
    tokio::task::spawn_blocking(move || till.close()).await.map_err(std::io::Error::other)
}
