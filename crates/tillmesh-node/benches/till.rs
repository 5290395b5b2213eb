//! Till benchmark: prints figures, asserts nothing.
//!
//! Run with: `cargo bench -p tillmesh-node --bench till` (add `-- --orders N` to change the
//! store size; default 100,000).
//!
//! Prints:
//! - create-order latency p50/p99 through the HTTP API, each acknowledged only after fsync
//!   (one client, then four concurrent clients sharing group commits);
//! - store open time and resident memory with N orders (measured in a fresh process);
//! - list-page latency p50/p99 at N orders (first page and deep pages, over HTTP).
//!
//! Targets on the 2-core machine: create p99 < 5 ms, open < 2 s, RSS < 150 MB, list p99 < 10 ms.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use automerge::ActorId;
use serde_json::{Value, json};
use tillmesh_core::{Amount, Currency, Document, NewItem, NewOrder, OrderDoc, TillCode, Timestamp};
use tillmesh_node::{SystemClock, Till, TillConfig};
use tillmesh_store::{Store, StoreOptions, TillIdentity};
use uuid::Uuid;

/// The allocator the `tillmesh` binary runs with (its options in `.cargo/config.toml`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const CREATES: usize = 2_000;
const LIST_CALLS: usize = 1_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--open-probe") {
        let dir = PathBuf::from(&args[at + 1]);
        runtime().block_on(open_probe(&dir));
        return;
    }
    let orders: usize = args
        .iter()
        .position(|a| a == "--orders")
        .and_then(|at| args.get(at + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(create_latency(&dir.path().join("latency")));
    let big = dir.path().join("big");
    populate(&big, orders);
    let status = std::process::Command::new(&args[0])
        .args(["--open-probe", big.to_str().expect("utf-8 path")])
        .status()
        .expect("run the open probe");
    assert!(status.success(), "open probe failed");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime")
}

fn config(dir: &Path) -> TillConfig {
    let mut config = TillConfig::new(dir.to_path_buf(), TillCode::parse("A").expect("code"));
    config.tax_rate_bps = 825;
    config
}

async fn serve(dir: &Path) -> (Till, String) {
    let till = Till::open(config(dir), Arc::new(SystemClock)).expect("open");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(tillmesh_node::http::serve(listener, till.clone(), std::future::pending()));
    (till, url)
}

fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index].as_secs_f64() * 1000.0
}

fn order_body(n: usize) -> Value {
    json!({ "items": [
        { "sku": "SOUP", "name": "Tomato soup", "quantity": 1 + n % 3, "unitPrice": "4.50" },
        { "sku": "BREAD", "name": "Bread", "quantity": 1, "unitPrice": 2.25 }
    ]})
}

async fn create_latency(dir: &Path) {
    let (_till, url) = serve(dir).await;
    let http = reqwest::Client::new();
    for clients in [1usize, 4] {
        let per_client = CREATES / clients;
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let (http, url) = (http.clone(), url.clone());
                tokio::spawn(async move {
                    let mut samples = Vec::with_capacity(per_client);
                    for n in 0..per_client {
                        let started = Instant::now();
                        let response = http
                            .post(format!("{url}/api/orders"))
                            .json(&order_body(n))
                            .send()
                            .await
                            .expect("send");
                        assert_eq!(response.status(), reqwest::StatusCode::CREATED);
                        response.bytes().await.expect("body");
                        samples.push(started.elapsed());
                    }
                    samples
                })
            })
            .collect();
        let started = Instant::now();
        let mut samples = Vec::new();
        for task in tasks {
            samples.extend(task.await.expect("client"));
        }
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "create order over HTTP, durable ({clients} client{}): p50 {:.2} ms  p99 {:.2} ms  ({:.0} orders/s, {} orders)",
            if clients == 1 { "" } else { "s" },
            percentile(&mut samples, 0.50),
            percentile(&mut samples, 0.99),
            samples.len() as f64 / elapsed,
            samples.len()
        );
    }
}

/// Writes `orders` real order documents straight into a store (in batches, one flush each).
fn populate(dir: &Path, orders: usize) {
    let started = Instant::now();
    let store = Store::open(dir, StoreOptions::default()).expect("open");
    store
        .bind_till(&TillIdentity { code: TillCode::parse("A").expect("code"), device_id: "till-A".into() })
        .expect("bind");
    let currency = Currency::parse("USD").expect("code");
    let actor = ActorId::from([7u8; 16]);
    for batch_start in (0..orders).step_by(1_000) {
        let mut batch: Vec<Document> = (batch_start..(batch_start + 1_000).min(orders))
            .map(|n| {
                let sequence = store.next_order_sequence().expect("sequence");
                let new = NewOrder {
                    id: Uuid::from_u128(n as u128 + 1),
                    local_id: Uuid::from_u128((1 << 64) + n as u128),
                    number: TillCode::parse("A").expect("code").order_number(sequence).to_string(),
                    device_id: "till-A".into(),
                    currency,
                    tax_rate_bps: 825,
                    items: vec![NewItem {
                        id: Uuid::from_u128((2 << 64) + n as u128),
                        sku: "SOUP".into(),
                        name: "Tomato soup".into(),
                        quantity: tillmesh_core::Quantity::pieces(1 + (n % 3) as i64),
                        unit_price: Amount::from_minor(450),
                    }],
                    notes: String::new(),
                    created_at: Timestamp(1_704_067_200_000 + n as i64 * 1_000),
                };
                Document::Order(OrderDoc::create(new, actor.clone()).expect("valid"))
            })
            .collect();
        store.put(&mut batch).expect("put");
        store.flush().expect("flush");
    }
    println!("populated {orders} orders in {:.1} s", started.elapsed().as_secs_f64());
}

fn rss_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn open_probe(dir: &Path) {
    let started = Instant::now();
    let (till, url) = serve(dir).await;
    let open_ms = started.elapsed().as_secs_f64() * 1000.0;
    let count = till.store().document_count();
    println!("open till with {count} orders: {open_ms:.0} ms (store, writer, HTTP listener)");

    let http = reqwest::Client::new();
    let mut first_page = Vec::with_capacity(LIST_CALLS);
    let mut deep_pages = Vec::with_capacity(LIST_CALLS);
    let mut cursor: Option<String> = None;
    for _ in 0..LIST_CALLS {
        let started = Instant::now();
        let page: Value = http
            .get(format!("{url}/api/orders?limit=50"))
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        first_page.push(started.elapsed());
        assert_eq!(page["orders"].as_array().map(Vec::len), Some(50));

        let deep = match &cursor {
            Some(cursor) => format!("{url}/api/orders?limit=50&cursor={cursor}"),
            None => format!("{url}/api/orders?limit=50"),
        };
        let started = Instant::now();
        let page: Value = http.get(deep).send().await.expect("list").json().await.expect("json");
        deep_pages.push(started.elapsed());
        cursor = page["nextCursor"].as_str().map(str::to_string);
    }
    println!(
        "list page of 50 at {count} orders: first page p50 {:.2} ms p99 {:.2} ms; paging on p50 {:.2} ms p99 {:.2} ms",
        percentile(&mut first_page, 0.50),
        percentile(&mut first_page, 0.99),
        percentile(&mut deep_pages, 0.50),
        percentile(&mut deep_pages, 0.99)
    );
    for path in ["/api/health", "/metrics"] {
        let mut took = Vec::with_capacity(LIST_CALLS);
        for _ in 0..LIST_CALLS {
            let started = Instant::now();
            let answer = http.get(format!("{url}{path}")).send().await.expect("get");
            assert!(answer.status().is_success());
            answer.bytes().await.expect("body");
            took.push(started.elapsed());
        }
        println!(
            "GET {path} at {count} orders: p50 {:.2} ms p99 {:.2} ms",
            percentile(&mut took, 0.50),
            percentile(&mut took, 0.99)
        );
    }
    let (rss, peak) = rss_mb();
    println!("resident memory after open and {} list calls: {rss:.1} MB (peak {peak:.1} MB)", LIST_CALLS * 2);
}
