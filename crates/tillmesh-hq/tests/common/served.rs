//! HQ served on 127.0.0.1, for the REST tests and the ingest benchmark.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use tempfile::TempDir;
use tillmesh_core::{HqSigningKey, TillCode};
use tillmesh_hq::records::RecordStore;
use tillmesh_hq::{Access, Hq, LegacyService};
use tillmesh_node::{SystemClock, Till, TillConfig};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// HQ's node in `dir/hq`: code HQ, a fixed signing key, 8.25 % tax.
pub(crate) fn open_hq_node(dir: &Path) -> Till {
    let mut config = TillConfig::new(dir.join("hq"), TillCode::parse("HQ").expect("code"));
    config.set_hq(HqSigningKey::from_bytes(&[7; 32]));
    config.tax_rate_bps = 825;
    Till::open(config, Arc::new(SystemClock)).expect("open HQ's node")
}

/// HQ's node in a temporary directory ([`open_hq_node`]) over a record store, served on a free
/// port of 127.0.0.1.
pub(crate) struct Served<S> {
    /// `http://127.0.0.1:<port>`.
    pub(crate) base: String,
    pub(crate) service: Arc<LegacyService<S>>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
    _dir: TempDir,
}

impl<S: RecordStore> Served<S> {
    /// Starts HQ with the record store `make` builds over its node, open to what `access` lets
    /// in.
    pub(crate) async fn start<F, Fut>(make: F, access: &Access) -> Served<S>
    where
        F: FnOnce(Till) -> Fut,
        Fut: Future<Output = S>,
    {
        let dir = tempfile::tempdir().expect("temporary directory");
        let till = open_hq_node(dir.path());
        let records = make(till.clone()).await;
        let hq = Hq::start(records, till, Arc::new(SystemClock), access);
        let service = Arc::clone(&hq.service);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(hq.serve(listener, None, async move {
            let _ = stopped.await;
        }));
        Served { base, service, stop, task, _dir: dir }
    }

    /// Stops serving: in-flight requests finish, HQ's node flushes and closes.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("server task").expect("server stopped cleanly");
    }
}
