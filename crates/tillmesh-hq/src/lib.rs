//! tillmesh HQ: the legacy REST sync API of the original system, served over HQ's peer node.
//!
//! HQ is a peer like any till (the [`tillmesh_node::Till`] runtime with HQ's signing key); this
//! crate adds what only HQ does for legacy clients:
//! - [`records`]: the system of record of legacy records, one [`RecordStore`] interface with two
//!   implementations, [`SledRecords`] (embedded, the default) and [`PgRecords`] (PostgreSQL).
//! - [`service`]: ingestion with the seed's dedup by `localId` and its version + hash conflict
//!   rules, `updates` from the change feed, device tokens.
//! - [`projector`]: every document the node writes (from tills, HQ's settlements) becomes the
//!   record legacy clients receive.
//! - [`http`]: the REST routes, HQ's admin routes, OpenAPI, the figures for `/metrics`.
//!
//! [`Hq::start`] puts them together over a running node.

mod back_office;
pub mod error;
mod fairness;
pub mod http;
pub mod mapping;
pub mod pg_records;
pub mod projector;
pub mod records;
pub mod service;
pub mod sled_records;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use tillmesh_core::Clock;
use tillmesh_node::Till;
use tillmesh_node::http::ConnectionLimits;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use http::{Access, LegacyAuth};
pub use pg_records::PgRecords;
/// Connection options for HQ's PostgreSQL from the seed's settings: `url` may be a
/// `jdbc:postgresql://…` URL as the seed's `DATABASE_URL` is; `user` and `password`
/// (`DATABASE_USER`, `DATABASE_PASSWORD`) override the URL's.
pub fn database_options(
    url: &str,
    user: Option<&str>,
    password: Option<&str>,
) -> Result<PgConnectOptions, RecordError> {
    let mut options: PgConnectOptions = url.strip_prefix("jdbc:").unwrap_or(url).parse()?;
    if let Some(user) = user {
        options = options.username(user);
    }
    if let Some(password) = password {
        options = options.password(password);
    }
    Ok(options)
}

pub use error::HqError;
pub use records::{Record, RecordBatch, RecordError, RecordStore};
pub use service::{CLOCK_SKEW_MAX_MS, LegacyService};
pub use sled_records::SledRecords;
pub use sqlx::postgres::PgConnectOptions;

/// HQ's legacy layer running over HQ's node: the projection task and the whole HTTP app (the
/// node's API plus the legacy and admin routes).
#[derive(Debug)]
pub struct Hq<S> {
    /// The service (for tests and benchmarks that call it directly).
    pub service: Arc<LegacyService<S>>,
    app: Router,
    projector: JoinHandle<()>,
}

impl<S: RecordStore> Hq<S> {
    /// Starts the projection of `node`'s documents into `records` and builds the HTTP app.
    /// `access` says who may use it: the admin token guarding the admin routes and the node's
    /// own, how legacy clients authenticate, which web origins may call it.
    pub fn start(records: S, node: Till, clock: Arc<dyn Clock>, access: &http::Access) -> Hq<S> {
        let mut service = LegacyService::new(records, node.clone(), clock);
        service.clock_skew_max_ms = access.clock_skew_max_ms;
        let service = Arc::new(service);
        let projector = tokio::spawn(projector::run(Arc::clone(&service)));
        let (routes, metrics) = http::routes(Arc::clone(&service), access);
        let app = tillmesh_node::http::app_with(node, routes, Some(metrics));
        Hq { service, app, projector }
    }

    /// The HTTP app.
    pub fn app(&self) -> Router {
        self.app.clone()
    }

    /// Serves the app on `listener` (HTTPS with `tls`, for an HQ reached over the internet)
    /// until `shutdown` resolves; in-flight requests finish, the projection stops, then the node
    /// flushes and closes.
    pub async fn serve(
        self,
        listener: TcpListener,
        tls: Option<Arc<tillmesh_node::http::TlsServerConfig>>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let streams = self.service.node().clone();
        let shutdown = async move {
            shutdown.await;
            streams.end_streams();
        };
        tillmesh_node::http::serve_router(listener, self.app, ConnectionLimits::default(), tls, shutdown)
            .await?;
        self.projector.abort();
        let node = self.service.node().clone();
        tokio::task::spawn_blocking(move || node.close()).await.map_err(std::io::Error::other)
    }
}
