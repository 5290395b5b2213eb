//! Starting the demo shop — HQ, the tills (C behind its relays) and the legacy client — waiting
//! for its nodes to connect and agree, and stopping it.

use std::collections::BTreeSet;
use std::fmt::Display;
use std::future::Future;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::ensure;
use sha2::{Digest, Sha256};
use tillmesh_client::{ClientConfig, SyncHandle, SyncService};
use tillmesh_core::TillCode;
use tillmesh_hq::{Access, Hq, SledRecords};
use tillmesh_net::Multiaddr;
use tillmesh_node::{LocalShop, Mesh, SystemClock, Till, TillConfig};
use tillmesh_store::OrderQuery;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::progress::{Progress, seconds};
use super::relay::{Relay, socket_of};
use super::{CLIENT, CUT, DEVICES, KOTLIN, SEED, SYNC_INTERVAL_MS, wait_until};

/// One node of the shop: HQ or a till, with its HTTP API and its mesh membership.
pub(super) struct Node {
    /// `hq`, `till-A`, …
    pub(super) name: String,
    pub(super) till: Till,
    /// Its HTTP API.
    pub(super) url: String,
    /// Its peer address (`/ip4/127.0.0.1/tcp/…/p2p/…`).
    pub(super) peer: Multiaddr,
    pub(super) mesh: Option<Mesh>,
    pub(super) server: Option<JoinHandle<std::io::Result<()>>>,
}

/// Everything the demo runs.
pub(super) struct DemoShop {
    /// The nodes: HQ, then till A, B and C.
    pub(super) nodes: Vec<Node>,
    /// Till C's links to each other node.
    pub(super) relays: Vec<Relay>,
    pub(super) client: SyncService,
    pub(super) client_token: String,
    /// [`KOTLIN`]'s device token.
    pub(super) kotlin_token: String,
    pub(super) client_loop: Option<SyncHandle>,
    pub(super) admin_token: String,
    pub(super) admin_token_file: PathBuf,
    /// Tells the HTTP servers to stop.
    pub(super) stop: watch::Sender<bool>,
    pub(super) dir: tempfile::TempDir,
}

impl DemoShop {
    /// Starts HQ, the tills (C behind its relays) and the legacy client, and waits until every
    /// node admitted every other.
    pub(super) async fn start(progress: &Progress) -> anyhow::Result<DemoShop> {
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
        let client = SyncService::open(config, Arc::new(SystemClock))?;

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

    pub(super) fn hq(&self) -> &Till {
        &self.nodes[0].till
    }

    /// The three tills.
    pub(super) fn tills(&self) -> &[Node] {
        &self.nodes[1..]
    }

    /// Waits until each node in `who` has admitted exactly the nodes of `with` (other than
    /// itself).
    pub(super) async fn wait_connected(&self, who: &[usize], with: &[usize]) -> anyhow::Result<Duration> {
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
    pub(super) async fn wait_agree(
        &self,
        who: &[usize],
        settled: bool,
    ) -> anyhow::Result<(Vec<NodeState>, Duration)> {
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
    pub(super) fn start_client_loop(&mut self) {
        self.client_loop = Some(self.client.start());
    }

    /// Stops everything: the client's loop, the meshes, the relays, the HTTP servers (which
    /// flush and close the nodes); then removes the temporary directory.
    pub(super) async fn stop(self) {
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
    config.set_hq(shop.hq().clone());
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

/// What a node holds, as the table shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NodeState {
    /// Documents in its store.
    pub(super) documents: u64,
    /// Order documents among them.
    pub(super) orders: usize,
    /// SHA-256 over every (document id, hash of its Automerge heads), in id order: equal
    /// digests mean equal documents with equal histories.
    pub(super) digest: String,
    /// Documents not yet held as they are here by every remote it knows.
    pub(super) pending: u64,
}

impl NodeState {
    pub(super) fn of(till: &Till) -> anyhow::Result<NodeState> {
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
    pub(super) fn short_digest(&self) -> &str {
        self.digest.get(..16).unwrap_or(&self.digest)
    }
}

impl Display for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} documents, heads {}, {} pending", self.documents, self.short_digest(), self.pending)
    }
}

/// Every order a node holds (id and number).
pub(super) fn orders(till: &Till) -> anyhow::Result<Vec<(Uuid, String)>> {
    let page = till.list(&OrderQuery { limit: 500, ..OrderQuery::default() })?;
    ensure!(page.next_cursor.is_none(), "{} holds more than 500 orders", till.device_id());
    Ok(page.orders.into_iter().map(|summary| (summary.id, summary.order_number)).collect())
}
