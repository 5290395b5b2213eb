//! A till of the shop turned hostile: it holds the shop key and a valid roster entry, and sends
//! documents that crash or exhaust Automerge's own loader (`fuzz/crashers/document_receive`).
//! Three real till processes take them, refuse each, keep it aside, report it in `/metrics`, and
//! go on taking and syncing orders; no bad document reaches any till's orders, and the same
//! bytes sent again are dropped unread.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{TillProcess, shop};
use tillmesh_net::{Keypair, Multiaddr, NetConfig, PeerId};
use tillmesh_sync::{DocBody, DocMsg, Frame};

/// How long the tills may take to agree or to report.
const WAIT_TIMEOUT_MS: u64 = 60_000;

fn start(dir: &Path, code: &str, peers: &[&str]) -> TillProcess {
    support::start_shop_till(dir, code, 300, peers)
}

/// The value of an unlabelled metric in `GET /metrics`.
async fn metric(http: &reqwest::Client, url: &str, name: &str) -> u64 {
    let text = http.get(format!("{url}/metrics")).send().await.expect("metrics").text().await.expect("text");
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} in /metrics:\n{text}"))
}

/// Waits until `check` holds, polling every 50 ms, failing after [`WAIT_TIMEOUT_MS`].
async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < Duration::from_millis(WAIT_TIMEOUT_MS), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn create_order(http: &reqwest::Client, url: &str, sku: &str) {
    let body = json!({ "items": [{ "sku": sku, "name": "Soup", "quantity": 1, "unitPrice": "4.50" }] });
    let response = http.post(format!("{url}/api/orders")).json(&body).send().await.expect("send");
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
}

/// The hostile till: its own identity and roster entry from its credentials file, a libp2p node
/// with the shop key that dials the three tills.
struct Hostile {
    net: tillmesh_net::NetClient,
    credentials: Vec<u8>,
}

impl Hostile {
    fn start(credentials_file: &Path, peers: &[&str]) -> Hostile {
        let file: Value =
            serde_json::from_str(&std::fs::read_to_string(credentials_file).expect("read")).expect("json");
        let hex_bytes = |key: &str| -> [u8; 32] {
            let bytes = hex::decode(file[key].as_str().expect(key)).expect("hex");
            bytes.try_into().expect("32 bytes")
        };
        let keypair = Keypair::ed25519_from_bytes(hex_bytes("identity")).expect("identity");
        let mut config = NetConfig::new(keypair, hex_bytes("shopKey"));
        config.peers = peers.iter().map(|peer| peer.parse::<Multiaddr>().expect("address")).collect();
        let (net, mut events, _) = tillmesh_net::spawn(config).expect("network");
        // Whatever the tills send is read and left unanswered.
        tokio::spawn(async move { while events.recv().await.is_some() {} });
        let credentials = serde_json::to_vec(&json!({ "entries": [file["entry"]] })).expect("json");
        Hostile { net, credentials }
    }

    async fn send(&self, peer: PeerId, docs: Vec<DocMsg>) {
        let frame = Frame { credentials: Some(self.credentials.clone()), ranges: None, docs };
        self.net.send(peer, tillmesh_sync::encode(&frame)).await.expect("send");
    }
}

fn peer_id(address: &str) -> PeerId {
    address.rsplit('/').next().expect("p2p part").parse().expect("peer id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_peer_sending_documents_that_crash_automerge_stops_no_till() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    shop(dir, &["A", "B", "C", "M"]);
    let a = start(dir, "A", &[]);
    let a_peer = a.peer.clone().expect("A listens");
    let b = start(dir, "B", &[&a_peer]);
    let c = start(dir, "C", &[&a_peer]);
    let tills = [&a, &b, &c];
    let peers: Vec<String> = tills.iter().map(|till| till.peer.clone().expect("listens")).collect();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");

    create_order(&http, &a.url, "BEFORE").await;
    wait_for("the first order everywhere", || async {
        let mut everywhere = true;
        for till in &tills {
            everywhere &= support::order_ids(&http, &till.url).await.len() == 1;
        }
        everywhere
    })
    .await;

    let dir_crashers = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/crashers/document_receive");
    let mut crashers: Vec<Vec<u8>> = std::fs::read_dir(&dir_crashers)
        .expect("crashers")
        .map(|entry| std::fs::read(entry.expect("entry").path()).expect("read"))
        .collect();
    crashers.sort();
    let poisoned: Vec<DocMsg> = crashers
        .iter()
        .enumerate()
        .map(|(n, bytes)| DocMsg {
            id: uuid::Uuid::from_u128(0xbad0 + n as u128),
            body: DocBody::Whole(bytes.clone()),
        })
        .collect();
    let hostile = Hostile::start(&dir.join("M.till"), &peers.iter().map(String::as_str).collect::<Vec<_>>());
    wait_for("the hostile till connected to every till", || async {
        hostile.net.connected().await.map(|connected| connected.len() == 3).unwrap_or(false)
    })
    .await;
    for peer in &peers {
        hostile.send(peer_id(peer), poisoned.clone()).await;
    }
    for till in &tills {
        wait_for("every crasher kept aside", || async {
            metric(&http, &till.url, "tillmesh_documents_quarantined").await == crashers.len() as u64
        })
        .await;
    }

    // Every till goes on taking and syncing orders.
    for (till, sku) in tills.iter().zip(["A2", "B2", "C2"]) {
        create_order(&http, &till.url, sku).await;
    }
    wait_for("four orders on every till", || async {
        let mut everywhere = true;
        for till in &tills {
            everywhere &= support::order_ids(&http, &till.url).await.len() == 4;
        }
        everywhere
    })
    .await;
    let first = support::order_ids(&http, &a.url).await;
    for till in &tills {
        assert_eq!(support::order_ids(&http, &till.url).await, first, "the same orders everywhere");
        for message in &poisoned {
            let response =
                http.get(format!("{}/api/orders/{}", till.url, message.id)).send().await.expect("get");
            assert_eq!(response.status(), reqwest::StatusCode::NOT_FOUND, "a bad document spread");
        }
    }

    // Sent again: refused again without being loaded or kept twice.
    let refused_before = metric(&http, &a.url, "tillmesh_documents_refused_total").await;
    assert!(refused_before >= crashers.len() as u64);
    hostile.send(peer_id(&peers[0]), poisoned.clone()).await;
    wait_for("the repeats counted", || async {
        metric(&http, &a.url, "tillmesh_documents_refused_total").await
            >= refused_before + crashers.len() as u64
    })
    .await;
    assert_eq!(metric(&http, &a.url, "tillmesh_documents_quarantined").await, crashers.len() as u64);
    create_order(&http, &a.url, "AFTER").await;
    assert_eq!(support::order_ids(&http, &a.url).await.len(), 5);

    for till in [a, b, c] {
        assert!(till.terminate().success(), "a clean stop");
    }
}
