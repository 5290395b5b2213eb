//! REST batch ingest: batches of 100 new orders over HTTP on 127.0.0.1 from 4 concurrent
//! clients, acknowledged only once stored (records committed, documents durable on HQ's node).
//! Prints orders/s and batch latency on sled and, with `TILLMESH_TEST_DATABASE_URL` set, on
//! PostgreSQL (a fresh database, dropped afterwards). Targets: ≥ 5,000 orders/s on sled,
//! ≥ 2,000 orders/s on PostgreSQL.
//!
//! `cargo bench -p tillmesh-hq --bench ingest`

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/served.rs"]
mod served;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use served::Served;
use tillmesh_hq::{PgRecords, RecordStore, SledRecords};
use tillmesh_node::Till;
use uuid::Uuid;

/// The allocator the `tillmesh` binary runs with (its options in `.cargo/config.toml`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const BATCH_ORDERS: usize = 100;
const CLIENTS: usize = 4;
const BATCHES_PER_CLIENT: usize = 50;
const WARMUP_BATCHES: usize = 5;

fn order(device: &str, n: usize) -> Value {
    let local_id = Uuid::new_v4();
    json!({
        "order": {
            "id": local_id.to_string(), "orderNumber": format!("{}-{n}", device.to_uppercase().replace('-', "")),
            "items": [
                {"productId": "P1", "productName": "Pasta", "quantity": 2, "unitPrice": 10.00, "totalPrice": 20.00},
                {"productId": "P2", "productName": "Wine", "quantity": 1, "unitPrice": 7.50, "totalPrice": 7.50}
            ],
            "subtotal": 27.50, "tax": 2.27, "total": 29.77, "paymentMethod": "CARD", "paymentStatus": "PAID",
            "orderStatus": "OPEN", "createdAt": 1_704_067_200_000_i64, "updatedAt": 1_704_067_200_000_i64
        },
        "localId": local_id, "syncStatus": "PENDING", "syncVersion": 1, "deviceId": device
    })
}

async fn run<S, F, Fut>(name: &str, make: F)
where
    S: RecordStore,
    F: FnOnce(Till) -> Fut,
    Fut: Future<Output = S>,
{
    let served = Served::start(make, &tillmesh_hq::Access::new("admin")).await;
    let service = Arc::clone(&served.service);
    let mut tokens = Vec::new();
    for client in 0..CLIENTS {
        tokens.push(service.add_device(&format!("pos-{client}")).await.expect("device"));
    }
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client");

    // Orders are serialised before the clock starts: the figure is the server's. Each client
    // passes the previous answer's `nextSyncToken`, as the seed's clients do, so every answer
    // carries the other clients' new orders.
    let bodies: Vec<Vec<String>> = (0..CLIENTS)
        .map(|client| {
            let device = format!("pos-{client}");
            (0..BATCHES_PER_CLIENT + WARMUP_BATCHES)
                .map(|batch| {
                    let orders: Vec<Value> =
                        (0..BATCH_ORDERS).map(|n| order(&device, batch * BATCH_ORDERS + n + 1)).collect();
                    serde_json::to_string(&orders).expect("JSON")
                })
                .collect()
        })
        .collect();
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Answer {
        synced_orders: Vec<serde::de::IgnoredAny>,
        next_sync_token: String,
    }
    let send = |http: reqwest::Client,
                url: String,
                token: String,
                device: String,
                orders: String,
                since: String| async move {
        let body = format!(
            r#"{{"deviceId":"{device}","lastSyncTimestamp":"{since}","transactions":[],"orders":{orders}}}"#
        );
        let started = Instant::now();
        let response = http
            .post(url)
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .expect("send");
        assert!(response.status().is_success(), "{}", response.status());
        let answer: Answer = response.json().await.expect("JSON");
        assert_eq!(answer.synced_orders.len(), BATCH_ORDERS);
        (started.elapsed(), answer.next_sync_token)
    };
    let url = format!("{}/api/sync/batch", served.base);
    let mut since = vec!["c0".to_string(); CLIENTS];
    for (client, bodies) in bodies.iter().enumerate() {
        for orders in &bodies[..WARMUP_BATCHES] {
            let device = format!("pos-{client}");
            let (_, next) = send(
                http.clone(),
                url.clone(),
                tokens[client].clone(),
                device,
                orders.clone(),
                since[client].clone(),
            )
            .await;
            since[client] = next;
        }
    }

    let started = Instant::now();
    let mut tasks = Vec::new();
    for (client, bodies) in bodies.into_iter().enumerate() {
        let (http, url, token) = (http.clone(), url.clone(), tokens[client].clone());
        let mut since = since[client].clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            for orders in bodies.into_iter().skip(WARMUP_BATCHES) {
                let (latency, next) =
                    send(http.clone(), url.clone(), token.clone(), format!("pos-{client}"), orders, since)
                        .await;
                latencies.push(latency);
                since = next;
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("client"));
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let orders = CLIENTS * BATCHES_PER_CLIENT * BATCH_ORDERS;
    let at = |q: f64| latencies[((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1];
    println!(
        "{name}: {orders} orders in {} batches of {BATCH_ORDERS} from {CLIENTS} clients: {:.0} orders/s; batch p50 {:.1} ms, p99 {:.1} ms",
        latencies.len(),
        orders as f64 / elapsed.as_secs_f64(),
        at(0.50).as_secs_f64() * 1000.0,
        at(0.99).as_secs_f64() * 1000.0,
    );
    let counts = service.records().counts().await.expect("counts");
    assert_eq!(
        counts.orders as usize,
        orders + CLIENTS * WARMUP_BATCHES * BATCH_ORDERS,
        "every order stored once"
    );
    served.stop().await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    run("sled", |till| async move { SledRecords::open(till.store().clone()).expect("sled records") }).await;
    common::on_pg_database(|url| async move {
        run("PostgreSQL", |_| async move { PgRecords::connect(&url).await.expect("PostgreSQL records") })
            .await;
    })
    .await;
}
