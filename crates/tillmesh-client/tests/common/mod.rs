//! Test support: a real HQ (its peer node, sled records and the legacy REST API) served over
//! HTTP on 127.0.0.1, clients pointed at it, order builders and a wait-until helper.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tillmesh_client::{ClientConfig, SyncService, SyncState};
use tillmesh_core::legacy::{LegacyItem, LegacyOrder, LegacyTransaction, RecordKind};
use tillmesh_core::{
    Amount, HqSigningKey, OrderStatus, PaymentMethod, PaymentStatus, Quantity, TillCode, Timestamp,
};
use tillmesh_hq::records::{Record, RecordStore};
use tillmesh_hq::{Access, Hq, LegacyService, SledRecords};
use tillmesh_node::SystemClock;
use tillmesh_node::{Till, TillConfig};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// How long any wait in these tests may take (the machine may be busy).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The tax rate HQ and the order builder use (8.25 %).
pub const TAX_BPS: i64 = 825;

/// HQ started over its data directory; [`HqNode::serve`] puts it on the network.
pub struct HqNode {
    hq: Hq<SledRecords>,
    /// The service, kept to look at HQ's records while the app is served.
    pub service: Arc<LegacyService<SledRecords>>,
}

/// HQ answering HTTP on `addr`.
pub struct HqServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The service behind the routes.
    pub service: Arc<LegacyService<SledRecords>>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl HqNode {
    /// Opens HQ's node and record store in `dir/hq` (again after a restart).
    pub fn start(dir: &Path) -> HqNode {
        let mut config = TillConfig::new(dir.join("hq"), TillCode::parse("HQ").expect("code"));
        config.set_hq(HqSigningKey::from_bytes(&[7; 32]));
        config.tax_rate_bps = u32::try_from(TAX_BPS).expect("rate");
        let till = Till::open(config, Arc::new(SystemClock)).expect("open HQ's node");
        let records = SledRecords::open(till.store().clone()).expect("HQ's records");
        let hq = Hq::start(records, till, Arc::new(SystemClock), &Access::new("admin-secret"));
        let service = Arc::clone(&hq.service);
        HqNode { hq, service }
    }

    /// Registers `device` and returns its bearer token.
    pub async fn add_device(&self, device: &str) -> String {
        self.service.add_device(device).await.expect("device token")
    }

    /// Serves HQ on `addr` (port 0: any free port).
    pub async fn serve(self, addr: SocketAddr) -> HqServer {
        self.serve_with(addr, None).await
    }

    /// Serves HQ on `addr`, over HTTPS with `tls`.
    pub async fn serve_with(
        self,
        addr: SocketAddr,
        tls: Option<Arc<tillmesh_node::http::TlsServerConfig>>,
    ) -> HqServer {
        let listener = TcpListener::bind(addr).await.expect("bind HQ's port");
        let addr = listener.local_addr().expect("address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(self.hq.serve(listener, tls, async move {
            let _ = stopped.await;
        }));
        HqServer { addr, service: self.service, stop, task }
    }
}

impl HqServer {
    /// HQ's base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving and closes HQ's node (its directory can be opened again afterwards).
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("HQ's task").expect("HQ stopped cleanly");
    }

    /// How many orders HQ holds.
    pub async fn orders_held(&self) -> u64 {
        self.service.records().counts().await.expect("counts").orders
    }

    /// HQ's order record of `local_id`.
    pub async fn order_record(&self, local_id: Uuid) -> Option<Record> {
        self.service.records().get(RecordKind::Order, local_id).await.expect("record")
    }
}

/// Starts HQ on any free port with the devices `devices`; returns it and their tokens.
pub async fn hq_with(dir: &Path, devices: &[&str]) -> (HqServer, Vec<String>) {
    let node = HqNode::start(dir);
    let mut tokens = Vec::new();
    for device in devices {
        tokens.push(node.add_device(device).await);
    }
    (node.serve(SocketAddr::from(([127, 0, 0, 1], 0))).await, tokens)
}

/// A port on 127.0.0.1 nobody listens on (bound, then released).
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("address")
}

/// The configuration of a client in `dir` with short timeouts, interval and backoff.
pub fn config(dir: PathBuf, url: &str, device: &str, token: &str) -> ClientConfig {
    let mut config = ClientConfig::new(url, device, token, dir);
    config.interval = Duration::from_millis(200);
    config.request_timeout = Duration::from_secs(15);
    config.connect_timeout = Duration::from_secs(5);
    config.backoff_base = Duration::from_millis(100);
    config.backoff_max = Duration::from_millis(400);
    config
}

/// A client in `dir` (see [`config`]).
pub fn client(dir: PathBuf, url: &str, device: &str, token: &str) -> SyncService {
    SyncService::open(config(dir, url, device, token), Arc::new(SystemClock)).expect("open the client")
}

fn item(sku: &str, quantity: i64, cents: i64) -> LegacyItem {
    let unit_price = Amount::from_minor(cents);
    LegacyItem {
        product_id: sku.to_string(),
        product_name: format!("Product {sku}"),
        quantity: Quantity::pieces(quantity),
        unit_price,
        total_price: unit_price.checked_mul(quantity).expect("line total"),
    }
}

/// Sets subtotal, tax (8.25 %, half up) and total from the items.
pub fn add_up(order: &mut LegacyOrder) {
    let subtotal: i64 = order.items.iter().map(|item| item.total_price.minor()).sum();
    order.subtotal = Amount::from_minor(subtotal);
    order.tax = Amount::from_minor((subtotal * TAX_BPS + 5_000) / 10_000);
    order.total = Amount::from_minor(subtotal + order.tax.minor());
}

/// An open, unpaid order `number` with lines `(sku, quantity, unit cents)`.
pub fn order(number: &str, items: &[(&str, i64, i64)]) -> LegacyOrder {
    let mut order = LegacyOrder {
        id: Uuid::new_v4().to_string(),
        order_number: number.to_string(),
        items: items.iter().map(|(sku, quantity, cents)| item(sku, *quantity, *cents)).collect(),
        subtotal: Amount::ZERO,
        tax: Amount::ZERO,
        total: Amount::ZERO,
        payment_method: Some(PaymentMethod::Card.into()),
        payment_status: PaymentStatus::Pending.into(),
        order_status: OrderStatus::Open.into(),
        created_at: Timestamp(1_704_067_200_000),
        updated_at: Timestamp(1_704_067_200_000),
    };
    add_up(&mut order);
    order
}

/// `order` with one more line.
pub fn with_item(order: &LegacyOrder, sku: &str, quantity: i64, cents: i64) -> LegacyOrder {
    let mut changed = order.clone();
    changed.items.push(item(sku, quantity, cents));
    add_up(&mut changed);
    changed.updated_at = Timestamp(changed.updated_at.0 + 1_000);
    changed
}

/// A paid card transaction for `order`.
pub fn transaction(order: &LegacyOrder, reference: &str) -> LegacyTransaction {
    LegacyTransaction {
        id: Uuid::new_v4().to_string(),
        reference_number: reference.to_string(),
        amount: order.total,
        payment_method: PaymentMethod::Card.into(),
        status: PaymentStatus::Paid.into(),
        order_id: order.id.clone(),
        created_at: order.created_at,
        updated_at: order.created_at,
    }
}

/// Polls `check` until it holds, for at most [`PATIENCE`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for a state matching `wanted` on `state`, for at most [`PATIENCE`]; returns it.
pub async fn wait_state(
    state: &mut watch::Receiver<SyncState>,
    what: &str,
    wanted: impl Fn(&SyncState) -> bool,
) -> SyncState {
    let found = tokio::time::timeout(PATIENCE, state.wait_for(|state| wanted(state)))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for the state: {what}"))
        .expect("the service is alive");
    found.clone()
}

/// Copies directory `from` to `to` (both trees of files).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create directory");
    for entry in std::fs::read_dir(from).expect("read directory") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy file");
        }
    }
}
