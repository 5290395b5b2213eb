//! What a till's clients see while it is attacked: durable create-order latency over HTTP
//! (sequential, one client) with no attack, under 1,100 idle HTTP connections from one address,
//! and under a stranger's 1,100 connections to its peer port (no shop key); real processes of
//! the release binary on 127.0.0.1, each under `ulimit -n 1024`. Prints figures, asserts
//! nothing.
//!
//! Run with: `cargo bench --bench attacks`

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::TillProcess;

const ORDERS: usize = 500;
const FLOOD_CONNECTIONS: usize = 1_100;

async fn latencies(http: &reqwest::Client, url: &str) -> Vec<Duration> {
    let body = json!({ "items": [{ "sku": "TEA", "name": "Tea", "quantity": 1, "unitPrice": "2.00" }] });
    let mut took = Vec::with_capacity(ORDERS);
    for _ in 0..ORDERS {
        let started = Instant::now();
        let response = http.post(format!("{url}/api/orders")).json(&body).send().await.expect("answered");
        assert_eq!(response.status(), reqwest::StatusCode::CREATED);
        took.push(started.elapsed());
    }
    took
}

fn report(what: &str, mut took: Vec<Duration>) {
    took.sort();
    let at = |q: f64| took[((took.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0;
    println!(
        "create order, {what}: p50 {:.2} ms p99 {:.2} ms max {:.2} ms ({} orders)",
        at(0.5),
        at(0.99),
        at(1.0),
        took.len()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    rlimit::increase_nofile_limit(8_192).expect("raise the bench's own descriptor limit");
    let dir = tempfile::tempdir().expect("tempdir");
    support::shop(dir.path(), &["A"]);
    let args = support::shop_till_args(dir.path(), "A", "A", 5_000, &[]);
    let till =
        TillProcess::spawn_with_descriptors(1_024, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let http = reqwest::Client::new();
    let http_port = till.url.rsplit(':').next().and_then(|port| port.parse().ok()).expect("HTTP port");
    let peer_port =
        till.peer.as_deref().and_then(|peer| peer.split('/').nth(4)?.parse().ok()).expect("peer port");

    report("no attack", latencies(&http, &till.url).await);
    let idle = support::flood(http_port, FLOOD_CONNECTIONS).await;
    let held = idle.len();
    report(&format!("{held} idle HTTP connections from one address"), latencies(&http, &till.url).await);
    drop(idle);
    let strangers = support::flood(peer_port, FLOOD_CONNECTIONS).await;
    let held = strangers.len();
    report(&format!("a stranger's {held} connections on the peer port"), latencies(&http, &till.url).await);
    drop(strangers);
    assert!(till.terminate().success());
}
