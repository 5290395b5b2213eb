//! Two tills of a shop as real processes of the release binary on 127.0.0.1, B dialing A: how
//! long a new order taken on A takes to be seen on B by a subscriber of B's change stream
//! (`GET /api/changes`), one order at a time — the latency a kitchen display or another till's
//! screen sees. Prints figures, asserts nothing.
//!
//! Run with: `cargo bench --bench sync_pair` (`-- --orders N`, default 500).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use serde_json::json;
use support::Changes;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let orders: usize = args
        .iter()
        .position(|arg| arg == "--orders")
        .and_then(|at| args.get(at + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(500);
    let dir = tempfile::tempdir().expect("tempdir");
    support::shop(dir.path(), &["A", "B"]);
    // Reconciliation every 5 s: what is measured is the push of a new order, not a round.
    let a = support::start_shop_till(dir.path(), "A", 5_000, &[]);
    let b = support::start_shop_till(dir.path(), "B", 5_000, &[a.peer.as_deref().expect("A listens")]);
    let http = reqwest::Client::new();
    let mut changes = Changes::open(&http, &b.url).await;
    let body =
        json!({ "items": [{ "sku": "SOUP", "name": "Tomato soup", "quantity": 2, "unitPrice": "4.50" }] });

    // The first order waits for A and B to find each other; it is not measured.
    let mut seen = Vec::with_capacity(orders);
    for n in 0..=orders {
        let started = Instant::now();
        let (status, order) = support::post_order(&http, &a.url, &body).await;
        assert!(status.is_success(), "{order}");
        let id = order["id"].as_str().expect("id");
        changes.order(id).await;
        if n > 0 {
            seen.push(started.elapsed());
        }
    }
    seen.sort();
    let at = |q: f64| seen[((seen.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0;
    println!(
        "new order on A seen on B's change stream (from the create request): p50 {:.2} ms p99 {:.2} ms max {:.2} ms ({} orders)",
        at(0.5),
        at(0.99),
        at(1.0),
        seen.len()
    );
    drop(changes);
    for till in [a, b] {
        assert!(till.terminate().success());
    }
}
