//! What clients see while a node is attacked, on real processes of the release binary on
//! 127.0.0.1. Prints latencies (p50, p99, max) and counts, asserts nothing.
//!
//! - A till under `ulimit -n 1024`: create-order latency (one client, sequential) with no attack,
//!   under 1,100 idle HTTP connections from one address, and under a stranger's 1,100
//!   connections to its peer port (no shop key).
//! - HQ holding 100,000 documents (legacy orders, sled): a register's batch latency (10 orders,
//!   one batch after another) alone; while 8 clients poll `/api/health` and `/metrics` in a loop
//!   (and what the pollers wait); and while another device hogs the legacy API with 1,000-order
//!   batches on two connections, resending at once whatever HQ answers (and how many 429s it
//!   gets).
//! - A full disk (only as root, which mounting a tmpfs needs; otherwise it prints SKIPPED): a
//!   till on an 8 MB tmpfs written until it refuses: how long health and metrics take while
//!   writes get 507, and the time from freeing space to the first write accepted.
//!
//! Run with: `cargo bench --bench attacks` (`-- --documents N` for HQ's size).

#[path = "../crates/tillmesh-hq/tests/common/kotlin.rs"]
mod kotlin;
#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{TillProcess, Tmpfs};
use uuid::Uuid;

/// Orders a till's client creates per measurement.
const ORDERS: usize = 500;
const FLOOD_CONNECTIONS: usize = 1_100;
/// Legacy orders HQ holds before it is polled and hogged, unless `--documents` says otherwise.
const HQ_DOCUMENTS: usize = 100_000;
/// Orders of each batch that fills HQ and of each batch the hog sends.
const BIG_BATCH_ORDERS: usize = 1_000;
/// Orders each filling device sends: its burst, so that filling is never refused.
const FILL_ORDERS_PER_DEVICE: usize = 10_000;
/// The register's batches per measurement, and their size.
const REGISTER_BATCHES: usize = 200;
const REGISTER_BATCH_ORDERS: usize = 10;
/// Clients polling health and metrics.
const POLLERS: usize = 8;
/// The hog's connections.
const HOG_CONNECTIONS: usize = 2;
/// Health and metrics reads while the disk is full.
const DISK_FULL_READS: usize = 200;
/// Every legacy order's `createdAt` and `updatedAt`: 2024-01-01.
const LEGACY_TIME_MS: i64 = 1_704_067_200_000;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    rlimit::increase_nofile_limit(8_192).expect("raise the bench's own descriptor limit");
    let args: Vec<String> = std::env::args().collect();
    let documents = args
        .iter()
        .position(|arg| arg == "--documents")
        .and_then(|at| args.get(at + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(HQ_DOCUMENTS);
    let dir = tempfile::tempdir().expect("tempdir");
    support::shop(dir.path(), &["A"]);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client");

    floods_on_a_till(&http, dir.path()).await;
    pollers_and_a_hog_on_hq(&http, dir.path(), documents).await;
    full_disk(&http, dir.path()).await;
}

fn report(what: &str, mut took: Vec<Duration>) {
    if took.is_empty() {
        println!("{what}: no samples");
        return;
    }
    took.sort();
    let at = |q: f64| took[((took.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0;
    println!(
        "{what}: p50 {:.2} ms p99 {:.2} ms max {:.2} ms ({} samples)",
        at(0.5),
        at(0.99),
        at(1.0),
        took.len()
    );
}

// ---------------------------------------------------------------------------------------------
// Connection floods on a till.

async fn create_order_latencies(http: &reqwest::Client, url: &str) -> Vec<Duration> {
    let body = json!({ "items": [{ "sku": "TEA", "name": "Tea", "quantity": 1, "unitPrice": "2.00" }] });
    let mut took = Vec::with_capacity(ORDERS);
    for _ in 0..ORDERS {
        let started = Instant::now();
        let response = http.post(format!("{url}/api/orders")).json(&body).send().await.expect("answered");
        assert_eq!(response.status(), StatusCode::CREATED);
        took.push(started.elapsed());
    }
    took
}

async fn floods_on_a_till(http: &reqwest::Client, dir: &Path) {
    let args = support::shop_till_args(dir, "A", "A", 5_000, &[]);
    let till =
        TillProcess::spawn_with_descriptors(1_024, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let http_port = till.url.rsplit(':').next().and_then(|port| port.parse().ok()).expect("HTTP port");
    let peer_port =
        till.peer.as_deref().and_then(|peer| peer.split('/').nth(4)?.parse().ok()).expect("peer port");

    report("till: create order, no attack", create_order_latencies(http, &till.url).await);
    let idle = support::flood(http_port, FLOOD_CONNECTIONS).await;
    let held = idle.len();
    report(
        &format!("till: create order, {held} idle HTTP connections from one address"),
        create_order_latencies(http, &till.url).await,
    );
    drop(idle);
    let strangers = support::flood(peer_port, FLOOD_CONNECTIONS).await;
    let held = strangers.len();
    report(
        &format!("till: create order, a stranger's {held} connections on the peer port"),
        create_order_latencies(http, &till.url).await,
    );
    drop(strangers);
    till.terminate();
}

// ---------------------------------------------------------------------------------------------
// Pollers and a hog on HQ's legacy API.

/// A batch of `count` new legacy orders from `device`, numbered `<device>-<first>` on.
fn batch_body(device: &str, first: usize, count: usize) -> String {
    let orders: Vec<Value> = (first..first + count)
        .map(|n| {
            let mut order =
                kotlin::soup_order(Uuid::new_v4(), &format!("{device}-{n}"), LEGACY_TIME_MS, LEGACY_TIME_MS);
            order["deviceId"] = json!(device);
            order
        })
        .collect();
    json!({ "deviceId": device, "orders": orders, "transactions": [] }).to_string()
}

/// Posts a batch; its status and how long the answer took.
async fn send_batch(http: &reqwest::Client, url: &str, body: &str) -> (StatusCode, Duration) {
    let started = Instant::now();
    let response = http
        .post(format!("{url}/api/sync/batch"))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("answered");
    let status = response.status();
    response.bytes().await.expect("the answer");
    (status, started.elapsed())
}

/// Fills HQ with `documents` legacy orders: devices of 10,000 orders each, two at a time.
async fn fill(http: &reqwest::Client, url: &str, documents: usize) {
    let started = Instant::now();
    let next_device = Arc::new(AtomicUsize::new(0));
    let fillers: Vec<_> = (0..2)
        .map(|_| {
            let (http, url, next_device) = (http.clone(), url.to_string(), Arc::clone(&next_device));
            tokio::spawn(async move {
                loop {
                    let device = next_device.fetch_add(1, Ordering::Relaxed);
                    let first = device * FILL_ORDERS_PER_DEVICE;
                    if first >= documents {
                        return;
                    }
                    let last = (first + FILL_ORDERS_PER_DEVICE).min(documents);
                    for batch_first in (first..last).step_by(BIG_BATCH_ORDERS) {
                        let count = BIG_BATCH_ORDERS.min(last - batch_first);
                        let body = batch_body(&format!("fill-{device}"), batch_first, count);
                        let (status, _) = send_batch(&http, &url, &body).await;
                        assert_eq!(status, StatusCode::OK, "a filling batch");
                    }
                }
            })
        })
        .collect();
    for filler in fillers {
        filler.await.expect("filler");
    }
    let took = started.elapsed().as_secs_f64();
    println!(
        "HQ: filled with {documents} legacy orders in {took:.1} s ({:.0} orders/s)",
        documents as f64 / took
    );
}

/// `device` sends the register's batches one after another: their latencies.
async fn register(http: &reqwest::Client, url: &str, device: &str) -> Vec<Duration> {
    let mut took = Vec::with_capacity(REGISTER_BATCHES);
    for batch in 0..REGISTER_BATCHES {
        let body = batch_body(device, batch * REGISTER_BATCH_ORDERS, REGISTER_BATCH_ORDERS);
        let (status, latency) = send_batch(http, url, &body).await;
        assert_eq!(status, StatusCode::OK, "a register's batch");
        took.push(latency);
    }
    took
}

/// Reads `/api/health` then `/metrics` until `stop`: how long each took.
async fn poll(http: reqwest::Client, url: String, stop: Arc<AtomicBool>) -> [Vec<Duration>; 2] {
    let mut took = [Vec::new(), Vec::new()];
    while !stop.load(Ordering::Relaxed) {
        for (path, samples) in ["/api/health", "/metrics"].iter().zip(took.iter_mut()) {
            let started = Instant::now();
            let response = http.get(format!("{url}{path}")).send().await.expect("answered");
            response.bytes().await.expect("the answer");
            samples.push(started.elapsed());
        }
    }
    took
}

/// What the hog got: batches stored and batches refused with 429.
#[derive(Default)]
struct Hogged {
    stored: usize,
    rate_limited: usize,
}

/// Sends 1,000-order batches on connection `connection` until `stop`, resending a refused batch
/// at once.
async fn hog(http: reqwest::Client, url: String, connection: usize, stop: Arc<AtomicBool>) -> Hogged {
    let mut hogged = Hogged::default();
    let mut first = connection * 100_000_000;
    while !stop.load(Ordering::Relaxed) {
        let body = batch_body("hog", first, BIG_BATCH_ORDERS);
        first += BIG_BATCH_ORDERS;
        while !stop.load(Ordering::Relaxed) {
            let (status, _) = send_batch(&http, &url, &body).await;
            if status == StatusCode::TOO_MANY_REQUESTS {
                hogged.rate_limited += 1;
            } else {
                assert_eq!(status, StatusCode::OK, "a hog's batch");
                hogged.stored += 1;
                break;
            }
        }
    }
    hogged
}

async fn pollers_and_a_hog_on_hq(http: &reqwest::Client, dir: &Path, documents: usize) {
    let shop = dir.join("shop");
    let data = dir.join("data-hq");
    let hq = TillProcess::spawn(&[
        "hq",
        "--shop",
        shop.to_str().expect("utf-8 path"),
        "--data-dir",
        data.to_str().expect("utf-8 path"),
        "--legacy-auth",
        "open",
    ]);
    fill(http, &hq.url, documents).await;
    let at = format!("{documents} documents");

    report(
        &format!("HQ at {at}: register's batch of 10, alone"),
        register(http, &hq.url, "register-alone").await,
    );

    let stop = Arc::new(AtomicBool::new(false));
    let pollers: Vec<_> =
        (0..POLLERS).map(|_| tokio::spawn(poll(http.clone(), hq.url.clone(), Arc::clone(&stop)))).collect();
    let polled = register(http, &hq.url, "register-polled").await;
    stop.store(true, Ordering::Relaxed);
    let (mut health, mut metrics) = (Vec::new(), Vec::new());
    for poller in pollers {
        let [health_took, metrics_took] = poller.await.expect("poller");
        health.extend(health_took);
        metrics.extend(metrics_took);
    }
    report(
        &format!("HQ at {at}: register's batch of 10, {POLLERS} clients polling health and metrics"),
        polled,
    );
    report(&format!("HQ at {at}: GET /api/health, polled by {POLLERS} clients"), health);
    report(&format!("HQ at {at}: GET /metrics, polled by {POLLERS} clients"), metrics);

    let stop = Arc::new(AtomicBool::new(false));
    let hogs: Vec<_> = (0..HOG_CONNECTIONS)
        .map(|connection| tokio::spawn(hog(http.clone(), hq.url.clone(), connection, Arc::clone(&stop))))
        .collect();
    let started = Instant::now();
    let hogged_latencies = register(http, &hq.url, "register-hogged").await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let mut hogged = Hogged::default();
    for hog in hogs {
        let got = hog.await.expect("hog");
        hogged.stored += got.stored;
        hogged.rate_limited += got.rate_limited;
    }
    report(
        &format!(
            "HQ at {at}: register's batch of 10, another device sending 1,000-order batches on {HOG_CONNECTIONS} connections"
        ),
        hogged_latencies,
    );
    println!(
        "HQ: the hog, over {elapsed:.1} s: {} batches stored ({:.0} orders/s), {} answered 429",
        hogged.stored,
        (hogged.stored * BIG_BATCH_ORDERS) as f64 / elapsed,
        hogged.rate_limited
    );
    hq.terminate();
}

// ---------------------------------------------------------------------------------------------
// A full disk.

async fn full_disk(http: &reqwest::Client, dir: &Path) {
    if !support::is_root() {
        println!("SKIPPED: full disk (mounting a tmpfs needs root)");
        return;
    }
    let Some(tmpfs) = Tmpfs::mount(&dir.join("disk"), "8m") else {
        println!("SKIPPED: full disk (mount -t tmpfs failed)");
        return;
    };
    let data = tmpfs.path().join("till");
    let till = TillProcess::spawn(&["till", "--data-dir", data.to_str().expect("utf-8 path"), "--code", "A"]);
    let mut written = 0;
    let started = Instant::now();
    while support::create_five_dish_order(http, &till.url, written).await.0 == StatusCode::CREATED {
        written += 1;
    }
    println!(
        "full disk: the first write refused after {written} orders stored on 8 MB ({:.1} s)",
        started.elapsed().as_secs_f64()
    );

    // One client keeps writing while another reads health and metrics.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn({
        let (http, url, stop) = (http.clone(), till.url.clone(), Arc::clone(&stop));
        async move {
            let (mut refused, mut other) = (Vec::new(), 0usize);
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let (status, _) = support::create_five_dish_order(&http, &url, 0).await;
                if status == StatusCode::INSUFFICIENT_STORAGE {
                    refused.push(started.elapsed());
                } else {
                    other += 1;
                }
            }
            (refused, other)
        }
    });
    let (mut health, mut metrics) = (Vec::new(), Vec::new());
    for _ in 0..DISK_FULL_READS {
        for (path, samples) in [("/api/health", &mut health), ("/metrics", &mut metrics)] {
            let started = Instant::now();
            let response = http.get(format!("{}{path}", till.url)).send().await.expect("answered");
            response.bytes().await.expect("the answer");
            samples.push(started.elapsed());
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (refused, other) = writer.await.expect("writer");
    report("full disk: GET /api/health while writes are refused", health);
    report("full disk: GET /metrics while writes are refused", metrics);
    let refused_count = refused.len();
    report(&format!("full disk: create order answered 507 ({other} other answers)"), refused);

    tmpfs.resize("64m");
    let freed = Instant::now();
    let mut refused_after = 0;
    while support::create_five_dish_order(http, &till.url, written).await.0 != StatusCode::CREATED {
        refused_after += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "full disk: space freed to first write accepted {:.0} ms ({refused_after} writes refused meanwhile, {refused_count} before)",
        freed.elapsed().as_secs_f64() * 1000.0
    );
    till.terminate();
    drop(tmpfs);
}
