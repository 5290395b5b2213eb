//! Connection floods do not take a node offline. A till under `ulimit -n 1024` gets 1,100 idle
//! HTTP connections from one address (127.0.0.2): it keeps at most its per-address limit open,
//! and a client from another address (127.0.0.1) is still answered within a second; an idle
//! connection is closed by the node after its header-read timeout. A stranger without the shop
//! key flooding the till's libp2p port does not stop its HTTP API either.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::TillProcess;
use tokio::io::AsyncReadExt;

/// Idle connections the attacker opens.
const FLOOD_CONNECTIONS: usize = 1_100;
/// How long a legitimate request may take under the flood.
const ANSWER_WITHIN: Duration = Duration::from_secs(1);

async fn create_order(http: &reqwest::Client, url: &str) -> Duration {
    let started = Instant::now();
    let body = json!({ "items": [{ "sku": "TEA", "name": "Tea", "quantity": 1, "unitPrice": "2.00" }] });
    let response = http.post(format!("{url}/api/orders")).json(&body).send().await.expect("answered");
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_from_one_address_leave_others_served() {
    // The test itself holds 1,100 sockets.
    rlimit::increase_nofile_limit(4_096).expect("raise the test's own descriptor limit");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("till");
    let till = TillProcess::spawn_with_descriptors(
        1_024,
        &["till", "--data-dir", data.to_str().expect("utf-8"), "--code", "A"],
    );
    let address: std::net::SocketAddr = till.url.trim_start_matches("http://").parse().expect("address");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    create_order(&http, &till.url).await;

    let mut flood = support::flood(address.port(), FLOOD_CONNECTIONS).await;
    assert!(flood.len() >= 1_000, "the flood connected: {}", flood.len());
    for _ in 0..20 {
        let took = create_order(&http, &till.url).await;
        assert!(took < ANSWER_WITHIN, "a legitimate client waited {took:?}");
    }
    let health = http.get(format!("{}/api/health", till.url)).send().await.expect("health");
    assert_eq!(health.status(), reqwest::StatusCode::OK);

    // The node closes idle connections: every one of the flood reads end-of-stream (those
    // beyond the limits at once, the rest after the header-read timeout).
    let started = Instant::now();
    for stream in &mut flood {
        let mut buffer = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buffer)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "an idle connection stayed open");
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    drop(flood);
    assert!(till.terminate().success());
}

fn start_in_shop(dir: &std::path::Path, code: &str, peers: &[&str]) -> TillProcess {
    let args = support::shop_till_args(dir, code, code, 300, peers);
    TillProcess::spawn_with_descriptors(1_024, &args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// A stranger without the shop key holds 1,100 connections to a till's peer port: the till
/// refuses what is beyond its pending-handshake limit, drops the rest after the handshake
/// timeout, keeps answering its HTTP API, and a till of the shop still syncs with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strangers_flood_on_the_peer_port_leaves_the_till_working() {
    rlimit::increase_nofile_limit(4_096).expect("raise the test's own descriptor limit");
    let dir = tempfile::tempdir().expect("tempdir");
    support::shop(dir.path(), &["A", "B"]);
    let a = start_in_shop(dir.path(), "A", &[]);
    let a_peer = a.peer.clone().expect("A listens");
    let port: u16 = a_peer.split('/').nth(4).expect("port").parse().expect("port");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");

    let flood = support::flood(port, FLOOD_CONNECTIONS).await;
    assert!(flood.len() >= 1_000, "the flood connected: {}", flood.len());
    for _ in 0..20 {
        let took = create_order(&http, &a.url).await;
        assert!(took < ANSWER_WITHIN, "the till's API waited {took:?} under the flood");
    }
    let b = start_in_shop(dir.path(), "B", &[&a_peer]);
    let started = Instant::now();
    while support::order_ids(&http, &b.url).await.len() < 20 {
        assert!(started.elapsed() < Duration::from_secs(60), "B never synced with A under the flood");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(flood);
    for till in [a, b] {
        assert!(till.terminate().success());
    }
}
