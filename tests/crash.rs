//! Kill -9 at random moments while several clients create orders: every acknowledged order
//! survives byte for byte, and nothing half-written ever shows.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use support::{Seeded, TillProcess};

/// Kills of the till process.
const KILLS: usize = 24;
/// Concurrent clients creating orders.
const CLIENTS: usize = 4;
/// The seed of the kill moments and order contents; printed so a failure can be replayed.
const SEED: u64 = 0x7111_3e5b;

/// What one client sent, by localId, and what the till acknowledged (the response body text).
#[derive(Default)]
struct Ledger {
    sent: HashMap<String, Value>,
    acknowledged: HashMap<String, String>,
}

fn items_for(rng: &mut Seeded) -> Value {
    let count = rng.range(1, 6);
    let items: Vec<Value> = (0..count)
        .map(|n| {
            json!({
                "sku": format!("SKU{n}"),
                "name": format!("Dish {}", rng.range(0, 1000)),
                "quantity": rng.range(1, 9),
                "unitPrice": format!("{}.{:02}", rng.range(0, 50), rng.range(0, 100)),
            })
        })
        .collect();
    Value::Array(items)
}

async fn client_loop(url: String, ledger: Arc<Mutex<Ledger>>, seed: u64) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("client");
    let mut rng = Seeded::new(seed);
    loop {
        let local_id = uuid::Uuid::from_u64_pair(seed, rng.next_u64()).to_string();
        let body = json!({ "localId": local_id, "items": items_for(&mut rng) });
        ledger.lock().expect("ledger").sent.insert(local_id.clone(), body["items"].clone());
        let Ok(response) = http.post(format!("{url}/api/orders")).json(&body).send().await else { return };
        if response.status() != reqwest::StatusCode::CREATED {
            return;
        }
        let Ok(text) = response.text().await else { return };
        ledger.lock().expect("ledger").acknowledged.insert(local_id, text);
    }
}

fn comparable_items(items: &Value) -> Vec<(String, String, String, tillmesh_core::Amount)> {
    let mut rows: Vec<_> = items
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            let price = serde_json::from_value(i["unitPrice"].clone()).expect("an amount");
            (i["sku"].to_string(), i["name"].to_string(), i["quantity"].to_string(), price)
        })
        .collect();
    rows.sort();
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_orders_survive_kill_9() {
    println!("crash test seed {SEED:#x}");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("till");
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut rng = Seeded::new(SEED);
    for kill in 0..KILLS {
        let till = TillProcess::start(&data, "A");
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                tokio::spawn(client_loop(
                    till.url.clone(),
                    Arc::clone(&ledger),
                    SEED ^ ((kill * CLIENTS + c) as u64) << 20,
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.range(20, 250))).await;
        till.kill();
        for client in clients {
            client.await.expect("client task");
        }
    }

    let till = TillProcess::start(&data, "A");
    let http = reqwest::Client::new();
    let ledger = std::mem::take(&mut *ledger.lock().expect("ledger"));
    assert!(ledger.acknowledged.len() >= KILLS, "too few orders were acknowledged to test anything");
    for (local_id, acknowledged_text) in &ledger.acknowledged {
        let acknowledged: Value = serde_json::from_str(acknowledged_text).expect("json");
        let id = acknowledged["id"].as_str().expect("id");
        let now = http
            .get(format!("{}/api/orders/{id}", till.url))
            .send()
            .await
            .expect("get")
            .text()
            .await
            .expect("body");
        assert_eq!(&now, acknowledged_text, "acknowledged order {local_id} changed or vanished");
    }
    // Every order the till holds is whole: one that a client sent, with exactly its items.
    let mut cursor: Option<String> = None;
    let mut seen = 0;
    loop {
        let mut url = format!("{}/api/orders?limit=500", till.url);
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let page: Value = http.get(url).send().await.expect("list").json().await.expect("json");
        for summary in page["orders"].as_array().expect("orders") {
            let order: Value = http
                .get(format!("{}/api/orders/{}", till.url, summary["id"].as_str().expect("id")))
                .send()
                .await
                .expect("get")
                .json()
                .await
                .expect("json");
            let local_id = order["localId"].as_str().expect("localId");
            let sent = ledger.sent.get(local_id).expect("an order nobody sent");
            assert_eq!(
                comparable_items(&order["items"]),
                comparable_items(sent),
                "half-written order {local_id}"
            );
            seen += 1;
        }
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert!(seen >= ledger.acknowledged.len());
    println!("{KILLS} kills, {} orders acknowledged, {seen} stored, all intact", ledger.acknowledged.len());
    till.terminate();
}
