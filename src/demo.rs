//! `tillmesh demo`: the whole system on this machine, in one process. HQ and three tills run as
//! real nodes on 127.0.0.1 — real libp2p (pnet, noise, yamux), real sled stores in a temporary
//! directory, each serving its HTTP API on a free port — plus one legacy REST client
//! (`tillmesh_client::SyncService`) talking to HQ over HTTP.
//!
//! The scenario: orders on every till; till C is cut off the network; while it is away, two
//! tills edit the same order at once (and C edits it too), and C takes an order and a card
//! payment offline; C comes back; HQ settles two payments (declining one); the legacy client
//! sends orders and receives the tills'. Every wait is bounded and every step is checked: a
//! failed check ends the demo with a reason (exit status 1). It ends with a table of what every
//! node holds (equal documents, heads digest, nothing pending) and of the settled payments as
//! every node sees them.
//!
//! Till C is cut off for real: it reaches its peers only through TCP relays on 127.0.0.1
//! ([`Relay`]), and cutting them drops its connections and stalls its re-dials, as a pulled cable
//! would; its node keeps running (its HTTP API answers, its mesh keeps re-dialing).

use std::collections::BTreeSet;
use std::fmt::Display;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use sha2::{Digest, Sha256};
use tillmesh_client::{ClientConfig, SyncHandle, SyncService, TrackedOrder};
use tillmesh_core::legacy::{LegacyItem, LegacyOrder};
use tillmesh_core::{Amount, Clock, OrderStatus, PaymentMethod, PaymentStatus, Quantity, TillCode};
use tillmesh_hq::{Access, Hq, SledRecords};
use tillmesh_net::{Multiaddr, PeerId, multiaddr::Protocol};
use tillmesh_node::till::{ItemInput, OrderInput};
use tillmesh_node::{LocalShop, Mesh, OrderDetail, PaymentInput, SystemClock, Till, TillConfig};
use tillmesh_store::OrderQuery;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Seed of the demo shop's keys (predictable: a demo shop only, see [`LocalShop`]).
const SEED: u8 = 42;
/// The shop's devices: HQ first (its roster entry admits it everywhere), then the tills.
const DEVICES: [&str; 4] = [tillmesh_core::roster::HQ_CODE, "A", "B", "C"];
/// Index (in [`DEVICES`] and the node list) of the till that is cut off.
const CUT: usize = 3;
/// How often every node reconciles with every peer.
const SYNC_INTERVAL_MS: u64 = 500;
/// The longest any single wait may take before the demo fails.
const PATIENCE: Duration = Duration::from_secs(15);
/// Pause between two looks while waiting.
const POLL: Duration = Duration::from_millis(20);
/// The legacy client's device id.
const CLIENT: &str = "pos-1";
/// How the legacy client shows in the tables.
const CLIENT_NAME: &str = "pos-1 (REST)";

/// A register that still runs the original Kotlin client (its requests are written here as
/// kotlinx.serialization writes them).
const KOTLIN: &str = "register-k";
/// The shop's tax rate (8.25 %), also used for the legacy client's orders.
const TAX_BPS: i64 = 825;

/// `tillmesh demo [--keep]`.
pub(crate) async fn run(keep: bool) -> anyhow::Result<()> {
    crate::run_till::init_logging("warn");
    let progress = Progress { started: Instant::now() };
    let mut shop = DemoShop::start(&progress).await?;
    let outcome = scenario(&mut shop, &progress).await;
    let outcome = match outcome {
        Ok(summary) => {
            print_summary(&shop, &summary, progress.started.elapsed());
            if keep { keep_running(&mut shop).await } else { Ok(()) }
        }
        Err(error) => Err(error),
    };
    shop.stop().await;
    outcome
}

/// Logs warnings and errors only (`RUST_LOG` overrides), on stderr: stdout is the demo's.
/// Prints one line per step with the time since the start.
struct Progress {
    started: Instant,
}

/// Width the demo's output keeps to.
const WIDTH: usize = 100;

impl Progress {
    /// `[  1.23 s] what`, wrapped at [`WIDTH`] columns with a hanging indent.
    fn step(&self, what: impl Display) {
        let prefix = format!("[{:>6.2} s] ", self.started.elapsed().as_secs_f64());
        let indent = " ".repeat(prefix.len() + 2);
        let mut line = prefix;
        let mut words_on_line = 0;
        for word in what.to_string().split(' ') {
            if words_on_line > 0 && line.chars().count() + 1 + word.chars().count() > WIDTH {
                println!("{line}");
                line = indent.clone();
                words_on_line = 0;
            }
            if words_on_line > 0 {
                line.push(' ');
            }
            line.push_str(word);
            words_on_line += 1;
        }
        println!("{line}");
    }
}

/// One node of the shop: HQ or a till, with its HTTP API and its mesh membership.
struct Node {
    /// `hq`, `till-A`, …
    name: String,
    till: Till,
    /// Its HTTP API.
    url: String,
    /// Its peer address (`/ip4/127.0.0.1/tcp/…/p2p/…`).
    peer: Multiaddr,
    mesh: Option<Mesh>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

/// Everything the demo runs.
struct DemoShop {
    /// The nodes: HQ, then till A, B and C.
    nodes: Vec<Node>,
    /// Till C's links to each other node.
    relays: Vec<Relay>,
    client: SyncService,
    client_token: String,
    /// [`KOTLIN`]'s device token.
    kotlin_token: String,
    client_loop: Option<SyncHandle>,
    admin_token: String,
    admin_token_file: PathBuf,
    /// Tells the HTTP servers to stop.
    stop: watch::Sender<bool>,
    dir: tempfile::TempDir,
}

impl DemoShop {
    /// Starts HQ, the tills (C behind its relays) and the legacy client, and waits until every
    /// node admitted every other.
    async fn start(progress: &Progress) -> anyhow::Result<DemoShop> {
        let dir = tempfile::Builder::new().prefix("tillmesh-demo-").tempdir()?;
        progress.step(format!(
            "starting HQ, tills A, B, C and a legacy REST client on 127.0.0.1 (stores in {})",
            dir.path().display()
        ));
        let shop = LocalShop::new(SEED, &DEVICES)?;
        let (stop, stopped) = watch::channel(false);

        // HQ: a node with HQ's signing key and HQ's roster entry, plus the legacy REST API.
        let hq_till = open_hq(&shop, dir.path())?;
        let (mesh, peer) = shop.join(&hq_till, 0, Vec::new(), SYNC_INTERVAL_MS).await?;
        let admin_token = random_token("tma_")?;
        let admin_token_file = dir.path().join("admin-token");
        std::fs::write(&admin_token_file, format!("{admin_token}\n"))?;
        let records = SledRecords::open(hq_till.store().clone())?;
        let hq =
            Hq::start(records, hq_till.clone(), Arc::new(SystemClock), &Access::new(admin_token.as_str()));
        let client_token = hq.service.add_device(CLIENT).await?;
        let kotlin_token = hq.service.add_device(KOTLIN).await?;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let server = tokio::spawn(hq.serve(listener, None, until_stopped(&stopped)));
        let mut nodes = vec![Node {
            name: hq_till.device_id().to_string(),
            till: hq_till,
            url,
            peer,
            mesh: Some(mesh),
            server: Some(server),
        }];

        // The tills: each dials the nodes started before it; C only through relays.
        let mut relays = Vec::new();
        for n in 1..DEVICES.len() {
            let till = shop.till(dir.path(), n)?;
            let mut peers: Vec<Multiaddr> = nodes.iter().map(|node| node.peer.clone()).collect();
            if n == CUT {
                let mut relayed = Vec::new();
                for peer in &peers {
                    let relay = Relay::start(peer).await?;
                    relayed.push(relay.address.clone());
                    relays.push(relay);
                }
                peers = relayed;
            }
            let (mesh, peer) = shop.join(&till, n, peers, SYNC_INTERVAL_MS).await?;
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
            let url = format!("http://{}", listener.local_addr()?);
            let server =
                tokio::spawn(tillmesh_node::http::serve(listener, till.clone(), until_stopped(&stopped)));
            nodes.push(Node {
                name: till.device_id().to_string(),
                till,
                url,
                peer,
                mesh: Some(mesh),
                server: Some(server),
            });
        }

        // The legacy client: its own outbox, HQ's URL and a device token HQ issued.
        let mut config = ClientConfig::new(&nodes[0].url, CLIENT, &client_token, dir.path().join(CLIENT));
        config.interval = Duration::from_secs(5);
        config.request_timeout = Duration::from_secs(10);
        let client = SyncService::open(config, Arc::new(tillmesh_client::SystemClock))?;

        let shop = DemoShop {
            nodes,
            relays,
            client,
            client_token,
            kotlin_token,
            client_loop: None,
            admin_token,
            admin_token_file,
            stop,
            dir,
        };
        for node in &shop.nodes {
            let libp2p =
                socket_of(&node.peer).map_or_else(|| node.peer.to_string(), |(at, _)| at.to_string());
            progress.step(format!("{:<7} up: HTTP API {}, libp2p on {libp2p}", node.name, node.url));
        }
        progress.step(format!("{CLIENT} registered at HQ (device token issued by HQ)"));
        let all: Vec<usize> = (0..shop.nodes.len()).collect();
        let waited = shop.wait_connected(&all, &all).await?;
        progress.step(format!(
            "mesh up: every node admitted its {} peers by their HQ-signed roster entries ({})",
            shop.nodes.len() - 1,
            seconds(waited)
        ));
        Ok(shop)
    }

    fn hq(&self) -> &Till {
        &self.nodes[0].till
    }

    /// The three tills.
    fn tills(&self) -> &[Node] {
        &self.nodes[1..]
    }

    /// Waits until each node in `who` has admitted exactly the nodes of `with` (other than
    /// itself).
    async fn wait_connected(&self, who: &[usize], with: &[usize]) -> anyhow::Result<Duration> {
        let started = Instant::now();
        wait_until("the nodes to (dis)connect", || {
            let mut wrong = Vec::new();
            for &n in who {
                let expected: BTreeSet<&str> =
                    with.iter().filter(|&&m| m != n).map(|&m| self.nodes[m].name.as_str()).collect();
                let admitted = admitted(&self.nodes[n].till);
                if admitted.iter().map(String::as_str).collect::<BTreeSet<_>>() != expected {
                    wrong.push(format!("{} has {:?}, expected {:?}", self.nodes[n].name, admitted, expected));
                }
            }
            Ok(if wrong.is_empty() { Ok(()) } else { Err(wrong.join("; ")) })
        })
        .await?;
        Ok(started.elapsed())
    }

    /// Waits until the nodes `who` hold the same documents with the same heads; with
    /// `settled`, also until none of them has anything pending with any remote.
    async fn wait_agree(&self, who: &[usize], settled: bool) -> anyhow::Result<(Vec<NodeState>, Duration)> {
        let started = Instant::now();
        let states = wait_until("the nodes to agree", || {
            let states = who
                .iter()
                .map(|&n| NodeState::of(&self.nodes[n].till))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let first = &states[0];
            let agree = states.iter().all(|state| {
                state.documents == first.documents
                    && state.digest == first.digest
                    && (!settled || state.pending == 0)
            });
            Ok(if agree {
                Ok(states)
            } else {
                Err(who
                    .iter()
                    .zip(&states)
                    .map(|(&n, state)| format!("{} {state}", self.nodes[n].name))
                    .collect::<Vec<_>>()
                    .join("; "))
            })
        })
        .await?;
        Ok((states, started.elapsed()))
    }

    /// Keeps the legacy client syncing in the background (for `--keep`).
    fn start_client_loop(&mut self) {
        self.client_loop = Some(self.client.start());
    }

    /// Stops everything: the client's loop, the meshes, the relays, the HTTP servers (which
    /// flush and close the nodes); then removes the temporary directory.
    async fn stop(self) {
        let DemoShop { mut nodes, relays, client, client_loop, stop, dir, .. } = self;
        if let Some(handle) = client_loop {
            handle.stop().await;
        }
        drop(client);
        for node in &mut nodes {
            if let Some(mesh) = node.mesh.take() {
                mesh.stop().await;
            }
        }
        drop(relays);
        stop.send_replace(true);
        for node in &mut nodes {
            if let Some(server) = node.server.take() {
                match server.await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => eprintln!("warning: {} stopped with an error: {error}", node.name),
                    Err(error) => eprintln!("warning: {} did not stop cleanly: {error}", node.name),
                }
            }
        }
        drop(nodes);
        let path = dir.path().to_path_buf();
        if let Err(error) = dir.close() {
            eprintln!("warning: cannot remove {}: {error}", path.display());
        }
    }
}

/// Opens HQ's node: device 0 of the shop (code `HQ`) with HQ's signing key, its store in
/// `dir/HQ`.
fn open_hq(shop: &LocalShop, dir: &Path) -> anyhow::Result<Till> {
    let mut config = TillConfig::new(dir.join(DEVICES[0]), TillCode::parse(DEVICES[0])?);
    config.hq = Some(shop.hq().public_key());
    config.hq_signing = Some(shop.hq().clone());
    config.tax_rate_bps = shop.tax_rate_bps;
    Ok(Till::open(config, Arc::new(SystemClock))?)
}

/// A future that resolves once `stop` says so.
fn until_stopped(stop: &watch::Receiver<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut stop = stop.clone();
    async move {
        // A dropped sender also means stop.
        let _ = stop.wait_for(|stop| *stop).await;
    }
}

fn random_token(prefix: &str) -> anyhow::Result<String> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|error| anyhow::anyhow!("no secure random source: {error}"))?;
    Ok(format!("{prefix}{}", hex::encode(secret)))
}

/// The peers a node has admitted, by name.
fn admitted(till: &Till) -> Vec<String> {
    till.sync_control().map(|control| control.peers.borrow().clone()).unwrap_or_default()
}

/// Polls `probe` until it answers `Ok(Ok(_))`, for at most [`PATIENCE`]. `Ok(Err(state))`
/// means not yet; the last state is part of the error on a timeout.
async fn wait_until<T>(
    what: &str,
    mut probe: impl FnMut() -> anyhow::Result<Result<T, String>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match probe()? {
            Ok(value) => return Ok(value),
            Err(state) if Instant::now() >= deadline => {
                bail!("timed out after {} s waiting for {what}: {state}", PATIENCE.as_secs())
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

fn seconds(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

/// What a node holds, as the table shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NodeState {
    /// Documents in its store.
    documents: u64,
    /// Order documents among them.
    orders: usize,
    /// SHA-256 over every (document id, hash of its Automerge heads), in id order: equal
    /// digests mean equal documents with equal histories.
    digest: String,
    /// Documents not yet held as they are here by every remote it knows.
    pending: u64,
}

impl NodeState {
    fn of(till: &Till) -> anyhow::Result<NodeState> {
        let index = till.store().load_index()?;
        let mut entries: Vec<(Uuid, [u8; 16])> = index.iter().map(|(id, hash)| (*id, hash.0)).collect();
        entries.sort_unstable();
        let mut hasher = Sha256::new();
        for (id, hash) in &entries {
            hasher.update(id.as_bytes());
            hasher.update(hash);
        }
        let overview = till.sync_overview()?;
        Ok(NodeState {
            documents: overview.documents,
            orders: orders(till)?.len(),
            digest: hex::encode(hasher.finalize()),
            pending: overview.pending,
        })
    }

    /// The digest's first 16 hex digits.
    fn short_digest(&self) -> &str {
        self.digest.get(..16).unwrap_or(&self.digest)
    }
}

impl Display for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} documents, heads {}, {} pending", self.documents, self.short_digest(), self.pending)
    }
}

/// Every order a node holds (id and number).
fn orders(till: &Till) -> anyhow::Result<Vec<(Uuid, String)>> {
    let page = till.list(&OrderQuery { limit: 500, ..OrderQuery::default() })?;
    ensure!(page.next_cursor.is_none(), "{} holds more than 500 orders", till.device_id());
    Ok(page.orders.into_iter().map(|summary| (summary.id, summary.order_number)).collect())
}

/// A TCP relay on 127.0.0.1 in front of one peer's libp2p listener. Till C reaches its peers
/// only through relays, so cutting them is a real network cut: its connections drop and its
/// re-dials hang, as over a pulled cable, until the relays heal.
struct Relay {
    /// Where to dial the peer through the relay (`/ip4/127.0.0.1/tcp/<relay>/p2p/<peer>`).
    address: Multiaddr,
    open: watch::Sender<bool>,
    accept: JoinHandle<()>,
}

impl Relay {
    /// A relay to `peer` (`/ip4/…/tcp/…/p2p/…`).
    async fn start(peer: &Multiaddr) -> anyhow::Result<Relay> {
        let (target, peer_id) =
            socket_of(peer).with_context(|| format!("{peer} is not /ip4/…/tcp/…/p2p/…"))?;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let port = listener.local_addr()?.port();
        let (open, is_open) = watch::channel(true);
        let accept = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((inbound, _)) => {
                        tokio::spawn(relay(inbound, target, is_open.clone()));
                    }
                    Err(error) => {
                        tracing::warn!(%error, "relay: accept failed");
                        tokio::time::sleep(POLL).await;
                    }
                }
            }
        });
        let address = Multiaddr::empty()
            .with(Protocol::Ip4(Ipv4Addr::LOCALHOST))
            .with(Protocol::Tcp(port))
            .with(Protocol::P2p(peer_id));
        Ok(Relay { address, open, accept })
    }

    /// Cuts (`false`) or heals (`true`) the link.
    fn set_open(&self, open: bool) {
        self.open.send_replace(open);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Carries one connection while the link is up: a connection made while it is cut waits until
/// it heals; cutting drops both sides.
async fn relay(mut inbound: TcpStream, target: SocketAddr, mut open: watch::Receiver<bool>) {
    if open.wait_for(|open| *open).await.is_err() {
        return;
    }
    let Ok(mut outbound) = TcpStream::connect(target).await else {
        return;
    };
    // Frames are small: no Nagle delay on either leg.
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        _ = open.wait_for(|open| !*open) => {}
    }
}

/// The TCP address and peer id of `/ip4/…/tcp/…/p2p/…`.
fn socket_of(address: &Multiaddr) -> Option<(SocketAddr, PeerId)> {
    let (mut ip, mut port, mut peer) = (None, None, None);
    for protocol in address.iter() {
        match protocol {
            Protocol::Ip4(address) => ip = Some(address),
            Protocol::Tcp(number) => port = Some(number),
            Protocol::P2p(id) => peer = Some(id),
            _ => {}
        }
    }
    Some((SocketAddr::from((ip?, port?)), peer?))
}

/// A dish on the menu: sku, name, price in cents.
const MENU: [(&str, &str, i64); 8] = [
    ("SOUP", "Tomato soup", 450),
    ("BREAD", "Bread", 225),
    ("PASTA", "Pasta al pomodoro", 1190),
    ("SALAD", "Green salad", 780),
    ("FISH", "Grilled fish", 1850),
    ("WINE", "Glass of wine", 650),
    ("CAKE", "Chocolate cake", 520),
    ("COFFEE", "Espresso", 240),
];

fn item(dish: usize, quantity: i64) -> ItemInput {
    let (sku, name, cents) = MENU[dish % MENU.len()];
    ItemInput {
        sku: sku.into(),
        name: name.into(),
        quantity: Quantity::pieces(quantity),
        unit_price: Amount::from_minor(cents),
    }
}

fn order_input(items: Vec<ItemInput>) -> OrderInput {
    OrderInput { local_id: None, items, notes: String::new() }
}

fn card_payment() -> PaymentInput {
    PaymentInput {
        method: PaymentMethod::Card,
        status: PaymentStatus::Paid,
        amount: None,
        card_last4: Some("4242".into()),
        processor_reference: None,
    }
}

/// A legacy client's open order `number` with lines `(dish, quantity)`, totals at the shop's
/// tax rate.
fn legacy_order(number: &str, lines: &[(usize, i64)]) -> anyhow::Result<LegacyOrder> {
    let mut items = Vec::new();
    for &(dish, quantity) in lines {
        let (sku, name, cents) = MENU[dish % MENU.len()];
        let unit_price = Amount::from_minor(cents);
        items.push(LegacyItem {
            product_id: sku.into(),
            product_name: name.into(),
            quantity: Quantity::pieces(quantity),
            unit_price,
            total_price: unit_price.checked_mul(quantity)?,
        });
    }
    let subtotal: i64 = items.iter().map(|item| item.total_price.minor()).sum();
    let tax = (subtotal * TAX_BPS + 5_000) / 10_000;
    let now = SystemClock.now();
    Ok(LegacyOrder {
        id: Uuid::new_v4().to_string(),
        order_number: number.into(),
        items,
        subtotal: Amount::from_minor(subtotal),
        tax: Amount::from_minor(tax),
        total: Amount::from_minor(subtotal + tax),
        payment_method: None,
        payment_status: PaymentStatus::Pending.into(),
        order_status: OrderStatus::Open.into(),
        created_at: now,
        updated_at: now,
    })
}

/// The order [`KOTLIN`], a register still running the original Kotlin client, sends exactly as
/// kotlinx.serialization writes it: money as doubles (3 × 1.1 = 3.3000000000000003), cheese
/// sold by weight (0.5 kg), its own status and method names, a 10 % discount (the total is not
/// subtotal + tax), `syncStatus` and `syncVersion` left out. Returns its document id and the total HQ stored (cents, rounded once
/// half away from zero, as the original `DECIMAL(10,2)` columns did).
async fn send_as_kotlin(shop: &DemoShop) -> anyhow::Result<(Uuid, Amount)> {
    let local_id = Uuid::new_v4();
    let body = format!(
        r#"{{"deviceId":"{KOTLIN}","orders":[{{"order":{{"id":"{local_id}","orderNumber":"ORD-20250115-0001","items":[{{"productId":"5449000000996","productName":"Cola","quantity":3,"unitPrice":1.1,"totalPrice":3.3000000000000003}},{{"productId":"steak","productName":"Steak","quantity":2,"unitPrice":10.0,"totalPrice":20.0}},{{"productId":"comte","productName":"Comté by the kg","quantity":0.5,"unitPrice":24.9,"totalPrice":12.45}}],"subtotal":35.75,"tax":2.9493750000000003,"total":34.829437500000004,"paymentMethod":"CREDIT_CARD","paymentStatus":"COMPLETED","orderStatus":"COMPLETED","createdAt":1736899200000,"updatedAt":1736899200000}},"localId":"{local_id}","deviceId":"{KOTLIN}"}}],"transactions":[]}}"#
    );
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/api/sync/batch", shop.nodes[0].url))
        .bearer_auth(&shop.kotlin_token)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let synced = &answer["syncedOrders"][0];
    ensure!(synced["success"] == true, "HQ did not take the Kotlin client's order: {synced}");
    let id: Uuid = synced["serverId"].as_str().context("no serverId")?.parse()?;
    let total = Amount::from_minor(3483);
    let stored = shop.nodes[0].till.order(id)?.order;
    ensure!(
        stored.total == total,
        "HQ stored the Kotlin order's total as {} instead of {total}",
        stored.total
    );
    Ok((id, total))
}

/// A payment HQ settled, for the final table.
struct Settled {
    order: OrderDetail,
    taken: String,
    status: PaymentStatus,
}

/// What the final tables show.
struct Summary {
    states: Vec<NodeState>,
    client: NodeState,
    settled: Vec<Settled>,
    /// Per settled payment, per node (the tills, then the client): status and confirmation.
    views: Vec<Vec<(PaymentStatus, Option<bool>)>>,
}

/// The scenario, every step checked.
async fn scenario(shop: &mut DemoShop, progress: &Progress) -> anyhow::Result<Summary> {
    let all: Vec<usize> = (0..shop.nodes.len()).collect();
    let (a, b, c) = (shop.nodes[1].till.clone(), shop.nodes[2].till.clone(), shop.nodes[CUT].till.clone());

    // 1. Orders on every till at once; till B takes a card payment.
    let mut pending = Vec::new();
    for (n, node) in shop.tills().iter().enumerate() {
        for round in 0..2 {
            let till = node.till.clone();
            let items = vec![item(n * 2 + round, 1 + round as i64), item(n + 5, 1)];
            pending.push(tokio::spawn(async move { till.create_order(order_input(items)).await }));
        }
    }
    let mut taken = Vec::new();
    for task in pending {
        let (order, _) = task.await??;
        taken.push(order);
    }
    let x = taken[0].clone();
    ensure!(x.order.device_id == a.device_id(), "the first order is not till-A's");
    let paid_online = b.record_payment(taken[2].order.id, card_payment()).await?;
    progress.step(format!(
        "{} orders taken at once on 3 tills ({}); till-B takes a card payment for {} ({})",
        taken.len(),
        taken.iter().map(|order| order.order.order_number.as_str()).collect::<Vec<_>>().join(", "),
        paid_online.order.order_number,
        paid_online.order.total,
    ));
    let (states, waited) = shop.wait_agree(&all, true).await?;
    progress.step(format!("every node holds {} — in step after {}", states[0], seconds(waited)));

    // 2. Till C is cut off.
    for relay in &shop.relays {
        relay.set_open(false);
    }
    let waited = shop.wait_connected(&[0, 1, 2], &[0, 1, 2]).await?;
    shop.wait_connected(&[CUT], &[CUT]).await?;
    progress.step(format!(
        "till-C cut off the network: its links to hq, till-A and till-B dropped ({})",
        seconds(waited)
    ));

    // 3. While C is away: the same order edited on three tills at once; C takes an order and
    //    a payment offline.
    let note = "table 7: birthday, candles on the cake";
    let (added, advanced, noted) = tokio::join!(
        a.add_item(x.order.id, item(6, 2)),
        b.advance(x.order.id, OrderStatus::Sent),
        c.set_notes(x.order.id, note.to_string()),
    );
    let (added, advanced, noted) = (added?, advanced?, noted?);
    progress.step(format!(
        "order {} edited on three tills at once: till-A adds 2 x {} (total {}), till-B sends it \
         to the kitchen ({}), till-C (offline) notes {note:?}",
        x.order.order_number, MENU[6].1, added.order.total, advanced.order.status,
    ));
    ensure!(noted.order.notes == note, "till-C's note was not kept on till-C");
    let (offline, _) = c.create_order(order_input(vec![item(4, 2), item(5, 2)])).await?;
    let paid_offline = c.record_payment(offline.order.id, card_payment()).await?;
    ensure!(
        paid_offline.order.payment.claimed == Some(PaymentStatus::Paid)
            && !paid_offline.order.payment.confirmed,
        "till-C's offline payment is not an unconfirmed PAID claim"
    );
    progress.step(format!(
        "till-C (offline) takes order {} and a card payment of {}: durable on its own disk, \
         PAID as claimed, not yet confirmed by HQ",
        offline.order.order_number, paid_offline.order.total
    ));
    let (online, waited) = shop.wait_agree(&[0, 1, 2], false).await?;
    let c_state = NodeState::of(&c)?;
    ensure!(c_state.digest != online[0].digest, "till-C agrees with the others while cut off");
    ensure!(shop.hq().order(offline.order.id).is_err(), "HQ holds till-C's offline order while C is cut off");
    progress.step(format!(
        "hq, till-A, till-B agree on {} documents ({}); till-C holds {}, its changes unseen",
        online[0].documents,
        seconds(waited),
        c_state.documents
    ));

    // 4. Heal.
    for relay in &shop.relays {
        relay.set_open(true);
    }
    let healed = Instant::now();
    shop.wait_connected(&all, &all).await?;
    let (states, _) = shop.wait_agree(&all, true).await?;
    progress.step(format!(
        "till-C reconnected: every node holds {} — healed in {}",
        states[0],
        seconds(healed.elapsed())
    ));

    // 5. HQ settles: captures C's offline payment, declines B's.
    let hq = shop.hq().clone();
    hq.settle(offline.order.id, PaymentStatus::Captured).await?;
    hq.settle(paid_online.order.id, PaymentStatus::Declined).await?;
    progress.step(format!(
        "HQ settles with its signing key: {} CAPTURED, {} DECLINED",
        offline.order.order_number, paid_online.order.order_number
    ));
    let settled = vec![
        Settled { order: offline.clone(), taken: "till-C offline".into(), status: PaymentStatus::Captured },
        Settled { order: paid_online.clone(), taken: "till-B".into(), status: PaymentStatus::Declined },
    ];

    // 6. The legacy client sends two orders over REST.
    let mut sent = Vec::new();
    for (number, lines) in [("1001", &[(0, 2), (1, 2)][..]), ("1002", &[(2, 1), (7, 2)][..])] {
        sent.push(shop.client.save_order_for_sync(legacy_order(number, lines)?).await?);
    }
    let report = shop.client.sync_now().await.context("the legacy client's sync with HQ")?;
    ensure!(
        report.synced_orders == sent.len() && report.rejected == 0,
        "HQ did not take the legacy client's orders: {report:?}"
    );
    let (kotlin_id, kotlin_total) = send_as_kotlin(shop).await?;
    let mut client_ids = Vec::new();
    for order in &sent {
        let stored = shop.client.order(order.local_id)?.context("the client lost its own order")?;
        let id = stored.server_id.as_deref().context("HQ answered without a serverId")?;
        client_ids.push((Uuid::parse_str(id).context("HQ's serverId is not a document id")?, stored));
    }
    progress.step(format!(
        "{CLIENT} saves {} and {} in its outbox and syncs (POST /api/sync/batch); {KOTLIN} sends \
         ORD-20250115-0001 as the original Kotlin client writes it (doubles, 0.5 kg of cheese, COMPLETED, \
         CREDIT_CARD, 10 % off: total {kotlin_total}): HQ stores all three as documents",
        sent[0].record.order_number, sent[1].record.order_number
    ));

    // 7. Everything converges again: the tills get the client's orders, the client gets the
    //    tills' (and HQ's settlements) through GET /api/sync/updates.
    let (states, waited) = shop.wait_agree(&all, true).await?;
    for node in shop.tills() {
        let kotlin = node
            .till
            .order(kotlin_id)
            .with_context(|| format!("{} does not hold the Kotlin order", node.name))?;
        ensure!(
            kotlin.order.total == kotlin_total,
            "{} shows the Kotlin order's total as {} instead of the client's {kotlin_total}",
            node.name,
            kotlin.order.total
        );
        for (id, stored) in &client_ids {
            let order = node.till.order(*id).with_context(|| {
                format!("{} does not hold {CLIENT}'s order {}", node.name, stored.record.order_number)
            })?;
            ensure!(
                order.order.total == stored.record.total,
                "{} holds {CLIENT}'s order {} with total {} instead of {}",
                node.name,
                order.order.order_number,
                order.order.total,
                stored.record.total
            );
        }
    }
    progress.step(format!(
        "every till holds {CLIENT}'s 2 orders and {KOTLIN}'s at its client's total; every node holds {} ({})",
        states[0],
        seconds(waited)
    ));
    let hq_state = states[0].clone();
    let hq_payments = hq_state.documents as usize - hq_state.orders;
    let started = Instant::now();
    let (client_orders, client_payments) = loop {
        shop.client.sync_now().await.context("the legacy client's sync with HQ")?;
        let orders = shop.client.orders()?;
        let payments = shop.client.transactions()?.len();
        let settled_seen = settled.iter().all(|payment| {
            client_view(&orders, payment.order.order.id).is_some_and(|status| status == payment.status)
        });
        if orders.len() == hq_state.orders && payments == hq_payments && settled_seen {
            break (orders, payments);
        }
        ensure!(
            started.elapsed() < PATIENCE,
            "{CLIENT} holds {} orders and {payments} payments, HQ {} and {hq_payments} (settlements \
             seen: {settled_seen}) after {} s",
            orders.len(),
            hq_state.orders,
            PATIENCE.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let stats = shop.client.stats()?;
    progress.step(format!(
        "{CLIENT} receives the tills' {} orders and {client_payments} payments with HQ's \
         settlements (GET /api/sync/updates); nothing left to send",
        client_orders.len() - sent.len(),
    ));
    ensure!(stats.unsent() == 0, "{CLIENT} still has {} records to send", stats.unsent());
    let client = NodeState {
        documents: (client_orders.len() + client_payments) as u64,
        orders: client_orders.len(),
        digest: "-".into(),
        pending: stats.unsent(),
    };

    // 8. Checks on every node: all edits merged, settlements confirmed, order numbers unique.
    let mut views = vec![Vec::new(); settled.len()];
    for node in &shop.nodes {
        let order = node.till.order(x.order.id)?.order;
        let cakes = order.items.iter().filter(|line| line.sku == MENU[6].0 && !line.voided).count();
        ensure!(cakes == 1, "{}: till-A's added item on {} is missing", node.name, order.order_number);
        ensure!(
            order.status == OrderStatus::Sent,
            "{}: {} is {}, not SENT as till-B set it",
            node.name,
            order.order_number,
            order.status
        );
        ensure!(
            order.notes == note,
            "{}: till-C's offline note on {} is missing",
            node.name,
            order.order_number
        );
        for (payment, view) in settled.iter().zip(&mut views) {
            let order = node.till.order(payment.order.order.id)?.order;
            ensure!(
                order.payment.status == payment.status && order.payment.confirmed,
                "{}: {} shows {} (confirmed: {}), HQ settled {}",
                node.name,
                order.order_number,
                order.payment.status,
                order.payment.confirmed,
                payment.status
            );
            view.push((order.payment.status, Some(order.payment.confirmed)));
        }
        let numbers = orders(&node.till)?;
        let distinct: BTreeSet<&str> = numbers.iter().map(|(_, number)| number.as_str()).collect();
        ensure!(distinct.len() == numbers.len(), "{}: duplicate order numbers", node.name);
    }
    for (payment, view) in settled.iter().zip(&mut views) {
        let status =
            client_view(&client_orders, payment.order.order.id).context("the client lost a settled order")?;
        view.push((status, None));
    }
    let numbers: BTreeSet<&str> =
        client_orders.iter().map(|order| order.record.order_number.as_str()).collect();
    ensure!(numbers.len() == client_orders.len(), "{CLIENT}: duplicate order numbers");
    progress.step(format!(
        "checked on every node: {}'s three concurrent edits all kept; both settlements confirmed \
         by HQ's signature; {} orders, no duplicate order number",
        x.order.order_number, hq_state.orders
    ));

    let (states, _) = shop.wait_agree(&all, true).await?;
    Ok(Summary { states, client, settled, views })
}

/// The legacy client's payment status of the order with document id `id`.
fn client_view(orders: &[TrackedOrder], id: Uuid) -> Option<PaymentStatus> {
    let id = id.to_string();
    orders.iter().find(|order| order.record.id == id).map(|order| order.record.payment_status.value())
}

fn print_summary(shop: &DemoShop, summary: &Summary, elapsed: Duration) {
    println!();
    println!(
        "{:<14} {:>9} {:>7} {:>9}  {:<16}  {:>7}",
        "NODE", "DOCUMENTS", "ORDERS", "PAYMENTS", "HEADS DIGEST", "PENDING"
    );
    let rows = shop.nodes.iter().map(|node| node.name.as_str()).zip(&summary.states);
    for (name, state) in rows.chain(std::iter::once((CLIENT_NAME, &summary.client))) {
        println!(
            "{:<14} {:>9} {:>7} {:>9}  {:<16}  {:>7}",
            name,
            state.documents,
            state.orders,
            state.documents as usize - state.orders,
            state.short_digest(),
            state.pending
        );
    }
    println!("(heads digest: SHA-256 over every document's id and Automerge heads; REST records have none)");

    println!();
    let mut header = format!("{:<9} {:>7}  {:<15}", "PAYMENT", "TOTAL", "TAKEN ON");
    for name in shop.nodes.iter().map(|node| node.name.as_str()) {
        header.push_str(&format!(" {name:<11}"));
    }
    header.push_str(&format!(" {CLIENT_NAME}"));
    println!("{}", header.trim_end());
    for (payment, view) in summary.settled.iter().zip(&summary.views) {
        let mut row = format!(
            "{:<9} {:>7}  {:<15}",
            payment.order.order.order_number, payment.order.order.total, payment.taken
        );
        for (status, confirmed) in view {
            let mark = match confirmed {
                Some(true) => " ✓",
                Some(false) => " ?",
                None => "",
            };
            row.push_str(&format!(" {:<11}", format!("{status}{mark}")));
        }
        println!("{}", row.trim_end());
    }
    println!("(✓ = confirmed: the node verified HQ's signature on the settlement itself)");
    println!();
    let state = &summary.states[0];
    println!(
        "all nodes agree: {} documents, heads {}, nothing pending — total {}",
        state.documents,
        state.short_digest(),
        seconds(elapsed)
    );
}

/// `--keep`: prints how to reach every node, keeps the client syncing, waits for ctrl-c.
async fn keep_running(shop: &mut DemoShop) -> anyhow::Result<()> {
    shop.start_client_loop();
    let exe = std::env::current_exe()
        .ok()
        .and_then(|exe| {
            let cwd = std::env::current_dir().ok()?;
            Some(exe.strip_prefix(&cwd).map(Path::to_path_buf).unwrap_or(exe))
        })
        .map_or_else(|| "tillmesh".to_string(), |exe| exe.display().to_string());
    let hq = &shop.nodes[0];
    println!();
    println!("The nodes keep running (stores in {}); ctrl-c stops them.", shop.dir.path().display());
    println!("`{exe}` is this binary (`cargo run --release --` works too).");
    let admin = format!(" --admin-token-file {}", shop.admin_token_file.display());
    for (index, node) in shop.nodes.iter().enumerate() {
        // HQ's node API takes its admin token; the tills' is local.
        let auth = if index == 0 { admin.as_str() } else { "" };
        println!();
        println!("{:<7} {}", node.name, node.url);
        println!("  peer {}", node.peer);
        println!("  {exe} order list --till {}{auth}", node.url);
        println!("  {exe} status --till {}{auth}", node.url);
        println!("  {exe} order new --till {}{auth} --item 'SOUP:Tomato soup:1:4.50'", node.url);
        if index > 0 {
            println!("  kitchen display: {}/kitchen (in a browser)", node.url);
            println!("  change stream: curl -N {}/api/changes", node.url);
        }
    }
    println!();
    println!("HQ's legacy REST API ({CLIENT}'s token; HQ keeps only its SHA-256):");
    println!(
        "  curl -H 'Authorization: Bearer {}' '{}/api/sync/updates?deviceId={CLIENT}'",
        shop.client_token, hq.url
    );
    println!("  curl {}/api/openapi.json", hq.url);
    println!("HQ's admin token: {}", shop.admin_token);
    println!("  {exe} hq conflicts --hq {}{admin}", hq.url);
    println!("  {exe} hq settle --hq {}{admin} --order <ID> --status CAPTURED", hq.url);
    println!("{CLIENT_NAME}: syncs with HQ every 5 s in this process (device token above).");
    crate::run_till::shutdown_signal().await;
    println!("stopping: flushing every node");
    Ok(())
}
