//! The legacy REST API over real HTTP on 127.0.0.1, with the exact JSON of the seed, on both
//! record stores: every test runs on sled and on PostgreSQL (`TILLMESH_TEST_DATABASE_URL`;
//! without it the PostgreSQL variants print `SKIPPED`).

mod common;
#[path = "common/served.rs"]
mod served;

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use served::Served;
use tillmesh_core::PaymentStatus;
use tillmesh_hq::records::RecordStore;
use tillmesh_hq::{Access, LegacyAuth, LegacyService, PgRecords, SledRecords};
use tillmesh_node::Till;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

const ADMIN_TOKEN: &str = "admin-secret-for-tests";

struct Harness<S> {
    base: String,
    http: reqwest::Client,
    service: Arc<LegacyService<S>>,
    token_a: String,
    token_b: String,
    served: Served<S>,
}

/// The web origin the tests' HQ lets call the legacy API.
const ORIGIN: &str = "http://pos.example";

/// HQ served with `make` its record store (see [`Served`]), with devices `pos-a` and `pos-b`,
/// device tokens required, [`ORIGIN`] allowed.
async fn harness<S, F, Fut>(make: F) -> Harness<S>
where
    S: RecordStore,
    F: FnOnce(Till) -> Fut,
    Fut: Future<Output = S>,
{
    let mut access = Access::new(ADMIN_TOKEN);
    access.cors_origins = vec![ORIGIN.parse().expect("origin")];
    harness_with(make, &access).await
}

async fn harness_with<S, F, Fut>(make: F, access: &Access) -> Harness<S>
where
    S: RecordStore,
    F: FnOnce(Till) -> Fut,
    Fut: Future<Output = S>,
{
    let served = Served::start(make, access).await;
    let service = Arc::clone(&served.service);
    let token_a = service.add_device("pos-a").await.expect("device a");
    let token_b = service.add_device("pos-b").await.expect("device b");
    Harness { base: served.base.clone(), http: reqwest::Client::new(), service, token_a, token_b, served }
}

async fn on_sled() -> Harness<SledRecords> {
    harness(|till| async move { SledRecords::open(till.store().clone()).expect("sled records") }).await
}

async fn on_pg(url: String) -> Harness<PgRecords> {
    harness(|_| async move { PgRecords::connect(&url).await.expect("PostgreSQL records") }).await
}

impl<S: RecordStore> Harness<S> {
    async fn post(&self, path: &str, token: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request");
        let status = response.status();
        (status, response.json().await.expect("JSON answer"))
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        let response =
            self.http.get(format!("{}{path}", self.base)).bearer_auth(token).send().await.expect("request");
        let status = response.status();
        (status, response.json().await.expect("JSON answer"))
    }

    async fn batch(&self, token: &str, device: &str, orders: Vec<Value>, transactions: Vec<Value>) -> Value {
        let body = json!({"deviceId": device, "orders": orders, "transactions": transactions, "lastSyncTimestamp": 0});
        let (status, answer) = self.post("/api/sync/batch", token, &body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer
    }

    async fn updates(&self, token: &str, device: &str, since: Option<&str>) -> Value {
        let mut query = vec![("deviceId", device.to_string())];
        if let Some(since) = since {
            query.push(("since", since.to_string()));
        }
        let response = self
            .http
            .get(format!("{}/api/sync/updates", self.base))
            .bearer_auth(token)
            .query(&query)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("JSON answer")
    }

    /// Polls `updates` for `device` until `until` holds (the projection runs in the background).
    async fn wait_updates(&self, token: &str, device: &str, until: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..200 {
            let answer = self.updates(token, device, None).await;
            if until(&answer) {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("updates for {device} never reached the expected state");
    }

    /// What the store holds: the number of orders and transactions, and the change-feed end.
    async fn footprint(&self) -> (u64, u64, u64) {
        let records = self.service.records();
        let counts = records.counts().await.expect("counts");
        (counts.orders, counts.transactions, records.last_position().await.expect("position"))
    }

    async fn stop(self) {
        self.served.stop().await;
    }
}

fn money(cents: i64) -> Value {
    Value::Number(
        serde_json::Number::from_str(&format!("{}.{:02}", cents / 100, cents % 100)).expect("number"),
    )
}

/// A SyncableOrder as the seed's client sends it. `items` are (productId, quantity, unit cents);
/// tax is 8.25 % of the subtotal, rounded half up.
fn order(
    local_id: Uuid,
    number: &str,
    items: &[(&str, i64, i64)],
    status: &str,
    payment: &str,
    version: i64,
    device: &str,
) -> Value {
    let lines: Vec<Value> = items
        .iter()
        .map(|(sku, quantity, cents)| {
            json!({"productId": sku, "productName": format!("Product {sku}"), "quantity": quantity,
                   "unitPrice": money(*cents), "totalPrice": money(cents * quantity)})
        })
        .collect();
    let subtotal: i64 = items.iter().map(|(_, quantity, cents)| quantity * cents).sum();
    let tax = (subtotal * 825 + 5_000) / 10_000;
    json!({
        "order": {
            "id": format!("order-{local_id}"), "orderNumber": number, "items": lines,
            "subtotal": money(subtotal), "tax": money(tax), "total": money(subtotal + tax),
            "paymentMethod": "CARD", "paymentStatus": payment, "orderStatus": status,
            "createdAt": 1_704_067_200_000_i64, "updatedAt": 1_704_067_200_000_i64 + version
        },
        "localId": local_id, "syncStatus": if version == 1 { "PENDING" } else { "MODIFIED" },
        "syncVersion": version, "deviceId": device
    })
}

fn transaction(local_id: Uuid, order_id: &str, reference: &str, cents: i64, device: &str) -> Value {
    json!({
        "transaction": {
            "id": format!("txn-{local_id}"), "referenceNumber": reference, "amount": money(cents),
            "paymentMethod": "CARD", "status": "PAID", "orderId": order_id,
            "createdAt": 1_704_067_200_000_i64, "updatedAt": 1_704_067_200_000_i64
        },
        "localId": local_id, "syncStatus": "PENDING", "syncVersion": 1, "deviceId": device
    })
}

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value.as_object().expect("an object").keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

fn fields(conflicts: &Value) -> Vec<(String, String)> {
    conflicts
        .as_array()
        .map(|list| {
            list.iter()
                .map(|c| {
                    (
                        c["field"].as_str().unwrap_or("").to_string(),
                        c["resolution"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The seed's first test, server side: an order made offline and sent later is stored, and
/// another device receives it with the seed's JSON names.
async fn offline_order_then_sync<S: RecordStore>(h: Harness<S>) {
    let local_id = Uuid::new_v4();
    let sent = order(local_id, "ORD-1001", &[("cake", 1, 4599)], "OPEN", "PAID", 1, "pos-a");
    let answer = h.batch(&h.token_a, "pos-a", vec![sent.clone()], Vec::new()).await;
    assert_eq!(
        keys(&answer),
        ["hasMore", "nextSyncToken", "serverUpdates", "success", "syncedOrders", "syncedTransactions"]
    );
    assert_eq!(
        keys(&answer["serverUpdates"]),
        ["deletedOrderIds", "deletedTransactionIds", "orders", "transactions"]
    );
    let synced = &answer["syncedOrders"][0];
    assert_eq!(
        keys(synced),
        ["conflicts", "message", "serverHash", "serverId", "serverVersion", "success", "syncedAt"]
    );
    assert_eq!(synced["success"], true);
    assert_eq!(synced["conflicts"], Value::Null, "{synced}");
    assert_eq!(synced["serverVersion"], 1);
    let hash = synced["serverHash"].as_str().expect("hash");
    assert_eq!(hash.len(), 64);

    let updates = h.updates(&h.token_b, "pos-b", None).await;
    let orders = updates["orders"].as_array().expect("orders");
    assert_eq!(orders.len(), 1, "{updates}");
    let received = &orders[0];
    assert_eq!(keys(received), ["deviceId", "localId", "order", "serverHash", "syncStatus", "syncVersion"]);
    assert_eq!(
        keys(&received["order"]),
        [
            "createdAt",
            "id",
            "items",
            "orderNumber",
            "orderStatus",
            "paymentMethod",
            "paymentStatus",
            "subtotal",
            "tax",
            "total",
            "updatedAt"
        ]
    );
    assert_eq!(received["localId"], local_id.to_string());
    assert_eq!(received["deviceId"], "pos-a");
    assert_eq!(received["serverHash"], hash);
    assert_eq!(received["order"]["id"], sent["order"]["id"]);
    assert_eq!(received["order"]["items"], sent["order"]["items"]);
    assert_eq!(received["order"]["total"].to_string(), "49.78", "exact money: 45.99 + 8.25 % tax");
    // The client's own writes never come back to it.
    let own = h.updates(&h.token_a, "pos-a", None).await;
    assert_eq!(own["orders"].as_array().map(Vec::len), Some(0), "{own}");
    h.stop().await;
}

/// The seed's second test: the same order sent ten times is stored once.
async fn ten_sends_store_one<S: RecordStore>(h: Harness<S>) {
    let local_id = Uuid::new_v4();
    let sent = order(local_id, "ORD-7", &[("soup", 2, 450)], "OPEN", "PENDING", 1, "pos-a");
    let mut server_ids = Vec::new();
    for attempt in 0..10 {
        let answer = if attempt % 2 == 0 {
            h.batch(&h.token_a, "pos-a", vec![sent.clone()], Vec::new()).await["syncedOrders"][0].clone()
        } else {
            let (status, answer) = h.post("/api/sync/order", &h.token_a, &sent).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            answer
        };
        assert_eq!(answer["success"], true);
        server_ids.push(answer["serverId"].clone());
    }
    server_ids.dedup();
    assert_eq!(server_ids.len(), 1, "one server id for ten sends");
    assert_eq!(h.footprint().await.0, 1);
    let updates = h.updates(&h.token_b, "pos-b", None).await;
    assert_eq!(updates["orders"].as_array().map(Vec::len), Some(1));
    h.stop().await;
}

/// Client newer → client wins; older → server wins; same version, other content → SERVER_WINS
/// reported; HQ's settlement and the forward-only status keep HQ's value when the client wins.
async fn conflicts_in_every_direction<S: RecordStore>(h: Harness<S>) {
    let local_id = Uuid::new_v4();
    let v1 = order(local_id, "ORD-55", &[("tea", 1, 300)], "OPEN", "PENDING", 1, "pos-a");
    let first = h.batch(&h.token_a, "pos-a", vec![v1.clone()], Vec::new()).await["syncedOrders"][0].clone();
    let server_id: Uuid = first["serverId"].as_str().expect("id").parse().expect("uuid");

    // Client newer: its change is stored.
    let v2 = order(local_id, "ORD-55", &[("tea", 2, 300)], "SENT", "PENDING", 2, "pos-a");
    let won = h.batch(&h.token_a, "pos-a", vec![v2.clone()], Vec::new()).await["syncedOrders"][0].clone();
    assert_eq!((won["serverVersion"].clone(), won["conflicts"].clone()), (json!(2), Value::Null), "{won}");
    let seen = h.updates(&h.token_b, "pos-b", None).await;
    assert_eq!(seen["orders"][0]["order"]["items"][0]["quantity"], 2);
    assert_eq!(seen["orders"][0]["order"]["orderStatus"], "SENT");
    assert_eq!(seen["orders"][0]["syncVersion"], 2);

    // Client older: the server's copy stands, the differences are reported.
    let stale = order(local_id, "ORD-55", &[("tea", 5, 300)], "OPEN", "PENDING", 1, "pos-a");
    let lost = h.batch(&h.token_a, "pos-a", vec![stale], Vec::new()).await["syncedOrders"][0].clone();
    assert_eq!(lost["serverVersion"], 2);
    assert_eq!(lost["serverHash"], won["serverHash"], "nothing changed");
    let lost_fields = fields(&lost["conflicts"]);
    assert!(lost_fields.contains(&("items".into(), "SERVER_WINS".into())), "{lost}");
    let items = &lost["conflicts"]
        .as_array()
        .expect("conflicts")
        .iter()
        .find(|c| c["field"] == "items")
        .expect("items")["serverValue"];
    let server_items: Value =
        serde_json::from_str(items.as_str().expect("JSON text")).expect("serverValue is JSON");
    assert_eq!(server_items[0]["quantity"], 2);

    // Same version, other content: SERVER_WINS, reported and logged.
    let rival = order(local_id, "ORD-55", &[("tea", 7, 300)], "SENT", "PENDING", 2, "pos-a");
    let tie = h.batch(&h.token_a, "pos-a", vec![rival], Vec::new()).await["syncedOrders"][0].clone();
    assert_eq!(tie["serverVersion"], 2);
    assert!(fields(&tie["conflicts"]).contains(&("items".into(), "SERVER_WINS".into())), "{tie}");
    let report: Value = h
        .http
        .get(format!("{}/api/hq/conflicts", h.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("report")
        .json()
        .await
        .expect("JSON");
    assert!(
        report.as_array().expect("list").iter().any(|entry| entry["localId"] == local_id.to_string()),
        "{report}"
    );

    // HQ declines the payment: every device sees it as a new server version.
    h.service.node().settle(server_id, PaymentStatus::Declined).await.expect("settle");
    let settled = h
        .wait_updates(&h.token_a, "pos-a", |u| {
            u["orders"].get(0).is_some_and(|o| o["order"]["paymentStatus"] == "DECLINED")
        })
        .await;
    assert_eq!(settled["orders"][0]["syncVersion"], 3);
    assert_eq!(settled["orders"][0]["deviceId"], "pos-a", "the creator stays the creator");

    // The client wins on version with a PAID claim and an older status: its item change is
    // taken, HQ's settlement and the forward-only status are kept and reported.
    let v4 = order(local_id, "ORD-55", &[("tea", 3, 300)], "OPEN", "PAID", 4, "pos-a");
    let mixed = h.batch(&h.token_a, "pos-a", vec![v4], Vec::new()).await["syncedOrders"][0].clone();
    assert_eq!(mixed["serverVersion"], 4, "{mixed}");
    let mixed_fields = fields(&mixed["conflicts"]);
    assert!(mixed_fields.contains(&("paymentStatus".into(), "SERVER_WINS".into())), "{mixed}");
    assert!(mixed_fields.contains(&("orderStatus".into(), "SERVER_WINS".into())), "{mixed}");
    assert!(!mixed_fields.iter().any(|(field, _)| field == "items"), "the item change was taken: {mixed}");
    let now = h.updates(&h.token_b, "pos-b", None).await;
    let order_now = &now["orders"][0]["order"];
    assert_eq!(
        (order_now["paymentStatus"].clone(), order_now["orderStatus"].clone()),
        (json!("DECLINED"), json!("SENT"))
    );
    assert_eq!(order_now["items"][0]["quantity"], 3);
    h.stop().await;
}

/// A number another device used already never loses the order: HQ assigns one and says so.
async fn colliding_order_numbers<S: RecordStore>(h: Harness<S>) {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    h.batch(
        &h.token_a,
        "pos-a",
        vec![order(a, "1001", &[("x", 1, 100)], "OPEN", "PENDING", 1, "pos-a")],
        Vec::new(),
    )
    .await;
    let answer = h
        .batch(
            &h.token_b,
            "pos-b",
            vec![order(b, "1001", &[("y", 1, 200)], "OPEN", "PENDING", 1, "pos-b")],
            Vec::new(),
        )
        .await;
    let synced = &answer["syncedOrders"][0];
    assert_eq!(
        fields(&synced["conflicts"]),
        [("orderNumber".to_string(), "SERVER_ASSIGNED".to_string())],
        "{synced}"
    );
    let assigned: String =
        serde_json::from_str(synced["conflicts"][0]["serverValue"].as_str().expect("text")).expect("JSON");
    assert_eq!(assigned, "HQ-L1");
    assert_eq!(h.footprint().await.0, 2, "both orders are stored");
    let updates = h.updates(&h.token_a, "pos-a", None).await;
    assert_eq!(updates["orders"][0]["order"]["orderNumber"], "HQ-L1");
    h.stop().await;
}

/// `updates` across devices: only others' changes, resumable exactly with `nextSyncToken`,
/// by time too, deletions and transactions included.
async fn multi_device_updates<S: RecordStore>(h: Harness<S>) {
    let a_orders: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    let sent_a: Vec<Value> = a_orders
        .iter()
        .enumerate()
        .map(|(n, id)| order(*id, &format!("A-{}", n + 1), &[("x", 1, 100)], "OPEN", "PENDING", 1, "pos-a"))
        .collect();
    h.batch(&h.token_a, "pos-a", sent_a.clone(), Vec::new()).await;
    let sent_b: Vec<Value> = (0..2)
        .map(|n| {
            order(Uuid::new_v4(), &format!("B-{}", n + 1), &[("y", 1, 100)], "OPEN", "PENDING", 1, "pos-b")
        })
        .collect();
    h.batch(&h.token_b, "pos-b", sent_b, Vec::new()).await;

    let for_a = h.updates(&h.token_a, "pos-a", None).await;
    assert_eq!(for_a["orders"].as_array().map(Vec::len), Some(2), "B's two orders only: {for_a}");
    assert_eq!(for_a["hasMore"], false);
    let token = for_a["nextSyncToken"].as_str().expect("token").to_string();
    let for_b = h.updates(&h.token_b, "pos-b", None).await;
    assert_eq!(for_b["orders"].as_array().map(Vec::len), Some(3));

    // Resume exactly: one new order from B, then nothing.
    let later = order(Uuid::new_v4(), "B-3", &[("z", 1, 100)], "OPEN", "PENDING", 1, "pos-b");
    h.batch(&h.token_b, "pos-b", vec![later], Vec::new()).await;
    let next = h.updates(&h.token_a, "pos-a", Some(&token)).await;
    assert_eq!(next["orders"].as_array().map(Vec::len), Some(1), "{next}");
    assert_eq!(next["orders"][0]["order"]["orderNumber"], "B-3");
    let token = next["nextSyncToken"].as_str().expect("token").to_string();
    let nothing = h.updates(&h.token_a, "pos-a", Some(&token)).await;
    assert_eq!(nothing["orders"].as_array().map(Vec::len), Some(0));
    assert_eq!(nothing["nextSyncToken"], token.as_str(), "an empty page keeps the token");
    // By time: everything is older than the far future, none older than the epoch.
    let future = h.updates(&h.token_a, "pos-a", Some("99999999999999")).await;
    assert_eq!(future["orders"].as_array().map(Vec::len), Some(0));
    let all = h.updates(&h.token_a, "pos-a", Some("0")).await;
    assert_eq!(all["orders"].as_array().map(Vec::len), Some(3));

    // A deletes an order (a newer version marked DELETED): B is told.
    let token_b = for_b["nextSyncToken"].as_str().expect("token").to_string();
    let mut deleted = sent_a[0].clone();
    deleted["syncStatus"] = json!("DELETED");
    deleted["syncVersion"] = json!(2);
    let answer = h.batch(&h.token_a, "pos-a", vec![deleted.clone()], Vec::new()).await;
    assert_eq!(answer["syncedOrders"][0]["success"], true, "{answer}");
    let told = h.updates(&h.token_b, "pos-b", Some(&token_b)).await;
    assert_eq!(told["deletedOrderIds"], json!([deleted["order"]["id"]]), "{told}");

    // Transactions travel the same way.
    let (status, answer) = h
        .post(
            "/api/sync/transaction",
            &h.token_a,
            &transaction(Uuid::new_v4(), "order-1", "REF-1", 4599, "pos-a"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let paid = h.updates(&h.token_b, "pos-b", Some(&token_b)).await;
    let transactions = paid["transactions"].as_array().expect("transactions");
    assert_eq!(transactions.len(), 1, "{paid}");
    assert_eq!(
        keys(&transactions[0]["transaction"]),
        ["amount", "createdAt", "id", "orderId", "paymentMethod", "referenceNumber", "status", "updatedAt"]
    );
    assert_eq!(transactions[0]["transaction"]["amount"].to_string(), "45.99");
    assert_eq!(transactions[0]["transaction"]["orderId"], "order-1");
    h.stop().await;
}

/// A request that is not a batch at all gets a clear 4xx and changes nothing; a bad record in a
/// batch gets its own `success: false` naming the field, and changes nothing either.
async fn bad_input_changes_nothing<S: RecordStore>(h: Harness<S>) {
    let good = order(Uuid::new_v4(), "ORD-9", &[("x", 1, 100)], "OPEN", "PENDING", 1, "pos-a");
    h.batch(&h.token_a, "pos-a", vec![good.clone()], Vec::new()).await;
    let before = h.footprint().await;
    let batch = |orders: Vec<Value>| json!({"deviceId": "pos-a", "orders": orders, "transactions": []});
    let with = |path: &str, value: Value| {
        let mut changed = order(Uuid::new_v4(), "ORD-10", &[("x", 2, 100)], "OPEN", "PENDING", 1, "pos-a");
        let mut target = &mut changed;
        let parts: Vec<&str> = path.split('.').collect();
        for part in &parts[..parts.len() - 1] {
            target = match part.parse::<usize>() {
                Ok(index) => &mut target[index],
                Err(_) => &mut target[*part],
            };
        }
        target[parts[parts.len() - 1]] = value;
        changed
    };
    // Records refused one by one: (case, record, what the message names).
    let records: Vec<(&str, Value, &str)> = vec![
        ("wrong type", with("order.items.0.quantity", json!("two")), "order.items[0].quantity"),
        ("less than a thousandth", with("order.items.0.quantity", json!(0.0004)), "order.items[0].quantity"),
        ("more than 10,000", with("order.items.0.quantity", json!(10_000.5)), "order.items[0].quantity"),
        ("negative money", with("order.items.0.unitPrice", json!(-1.00)), "items[0].unitPrice"),
        ("money as NaN text", with("order.total", json!("NaN")), "order.total"),
        ("money beyond DECIMAL(10,2)", with("order.tax", json!(123456789.5)), "tax"),
        ("a negative total", with("order.total", json!(-1.0)), "order.total"),
        ("missing field", with("order.orderNumber", Value::Null), "order.orderNumber"),
        ("localId not a UUID", with("localId", json!("local-uuid-456")), "localId"),
        ("empty status", with("order.orderStatus", json!("")), "order.orderStatus"),
        ("quantity zero", with("order.items.0.quantity", json!(0)), "quantity"),
        ("negative version", with("syncVersion", json!(-1)), "syncVersion"),
        ("empty order number", with("order.orderNumber", json!("")), "orderNumber"),
        ("creator not a device id", with("deviceId", json!("x".repeat(100))), "deviceId"),
        (
            "card number in a name",
            with("order.items.0.productName", json!("4111 1111 1111 1111")),
            "productName",
        ),
        ("card number as order number", with("order.orderNumber", json!("4111111111111111")), "orderNumber"),
        ("card number as a status", with("order.orderStatus", json!("4111-1111-1111-1111")), "orderStatus"),
    ];
    for (name, record, field) in records {
        let (status, answer) = h.post("/api/sync/batch", &h.token_a, &batch(vec![record.clone()])).await;
        assert_eq!(status, StatusCode::OK, "{name}: {answer}");
        assert_eq!(answer["success"], false, "{name}: {answer}");
        let refused = &answer["syncedOrders"][0];
        assert_eq!(refused["success"], false, "{name}: {answer}");
        assert_eq!(refused["serverId"], Value::Null, "{name}: {answer}");
        let message = refused["message"].as_str().unwrap_or_default();
        assert!(message.contains(field), "{name}: {message:?} names {field}");
        let (status, single) = h.post("/api/sync/order", &h.token_a, &record).await;
        assert_eq!((status, single["success"].clone()), (StatusCode::OK, json!(false)), "{name}: {single}");
        assert_eq!(h.footprint().await, before, "{name} changed the store");
    }
    // Requests refused whole.
    let huge = "x".repeat(5 * 1024 * 1024);
    let cases: Vec<(&str, Option<&str>, String, StatusCode, &str)> = vec![
        (
            "malformed JSON",
            Some(&h.token_a),
            "{\"deviceId\": ".into(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "orders not a list",
            Some(&h.token_a),
            json!({"deviceId": "pos-a", "orders": {"order": 1}}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "batch as another device",
            Some(&h.token_a),
            json!({"deviceId": "pos-b", "orders": []}).to_string(),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        ("no token", None, batch(vec![good.clone()]).to_string(), StatusCode::UNAUTHORIZED, "unauthorized"),
        (
            "unknown token",
            Some("tmd_0000"),
            batch(vec![good.clone()]).to_string(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            // Refused before its body is parsed, yet read to its end: the client, still
            // sending, reads the answer instead of seeing its connection reset.
            "no token, a large body",
            None,
            format!("{{\"deviceId\":\"pos-a\",\"pad\":\"{}\"}}", &huge[..4 * 1024 * 1024 - 64]),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "oversized body",
            Some(&h.token_a),
            format!("{{\"deviceId\":\"pos-a\",\"pad\":\"{huge}\"}}"),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
    ];
    // A refused oversized body closes its connection: no pooling, so no request lands on it.
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("client");
    for (name, token, body, status, code) in cases {
        let mut request = http
            .post(format!("{}/api/sync/batch", h.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        assert_eq!(response.status(), status, "{name}");
        let answer: Value = response.json().await.expect("JSON error");
        assert_eq!(answer["error"], code, "{name}: {answer}");
        assert!(answer["detail"].as_str().is_some_and(|detail| !detail.is_empty()), "{name}: {answer}");
        assert_eq!(h.footprint().await, before, "{name} changed the store");
    }
    // Wrong content type, a bad `since`, updates as another device.
    let response = h
        .http
        .post(format!("{}/api/sync/order", h.base))
        .bearer_auth(&h.token_a)
        .body("{}")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    for (query, status) in [
        ("deviceId=pos-a&since=yesterday", StatusCode::BAD_REQUEST),
        ("deviceId=pos-b", StatusCode::FORBIDDEN),
        ("since=0", StatusCode::BAD_REQUEST),
    ] {
        let response = http
            .get(format!("{}/api/sync/updates?{query}", h.base))
            .bearer_auth(&h.token_a)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), status, "{query}");
    }
    assert_eq!(h.footprint().await, before);
    h.stop().await;
}

/// A record exactly as the seed's Kotlin client writes it with kotlinx.serialization: doubles
/// for money (with their binary noise), its own status and method names, `syncStatus` and
/// `syncVersion` left out (defaults are not written), the creating register's `deviceId`.
fn kotlin_order(
    local_id: Uuid,
    id: &str,
    number: &str,
    lines: &str,
    money: (&str, &str, &str),
    names: (&str, &str, &str),
    device: &str,
) -> Value {
    let (subtotal, tax, total) = money;
    let (method, payment, status) = names;
    let text = format!(
        r#"{{"order":{{"id":"{id}","orderNumber":"{number}","items":[{lines}],"subtotal":{subtotal},"tax":{tax},"total":{total},"paymentMethod":"{method}","paymentStatus":"{payment}","orderStatus":"{status}","createdAt":1736899200000,"updatedAt":1736899200000}},"localId":"{local_id}","deviceId":"{device}"}}"#
    );
    serde_json::from_str(&text).expect("the client's JSON")
}

/// One line as kotlinx writes it.
fn kotlin_line(product: &str, quantity: &str, unit: &str, total: &str) -> String {
    format!(
        r#"{{"productId":"{product}","productName":"Item {product}","quantity":{quantity},"unitPrice":{unit},"totalPrice":{total}}}"#
    )
}

/// The corpus of what unmodified Kotlin clients send, each with the answer expected: money
/// computed with doubles rounded once to the cent as `DECIMAL(10,2)` did, its own names kept
/// and mapped, defaults filled in, barcodes as product ids, its own order numbers kept, and
/// every till showing the client's total.
async fn kotlin_client_corpus<S: RecordStore>(h: Harness<S>) {
    let cases = [
        // 3 × 1.1 in doubles; COMPLETED everywhere; a Coca-Cola EAN-13 that passes Luhn.
        (
            "1001",
            kotlin_line("5449000000996", "3", "1.1", "3.3000000000000003"),
            ("3.3000000000000003", "0", "3.3000000000000003"),
            ("CREDIT_CARD", "COMPLETED", "COMPLETED"),
            (330, 0, 330, "CLOSED", "PAID", "CARD"),
        ),
        // 0.1 + 0.2; lower-case names; an order still being made.
        (
            "ORD-20250115-0001",
            format!("{},{}", kotlin_line("tea", "1", "0.1", "0.1"), kotlin_line("cake", "1", "0.2", "0.2")),
            ("0.30000000000000004", "0", "0.30000000000000004"),
            ("cash", "unpaid", "in_progress"),
            (30, 0, 30, "SENT", "PENDING", "CASH"),
        ),
        // An unrounded tax (45.99 × 8.25 %) and a total just under 20 in doubles.
        (
            "ORD-20250115-0002",
            kotlin_line("4006381333931", "1", "45.99", "45.99"),
            ("45.99", "3.794175", "49.784175"),
            ("CARD", "PENDING", "PENDING"),
            (4599, 379, 4978, "OPEN", "PENDING", "CARD"),
        ),
        (
            "ORD-20250115-0003",
            kotlin_line("soup", "1", "19.999999999999996", "19.999999999999996"),
            ("19.999999999999996", "0", "19.999999999999996"),
            ("CASH", "PENDING", "CANCELLED"),
            (2000, 0, 2000, "VOIDED", "PENDING", "CASH"),
        ),
        // 10 % off 20.00 after 8.25 % tax: the total is not subtotal + tax.
        (
            "ORD-20250115-0004",
            kotlin_line("steak", "2", "10.0", "20.0"),
            ("20.0", "1.65", "19.485"),
            ("CARD", "PAID", "SERVED"),
            (2000, 165, 1949, "SERVED", "PAID", "CARD"),
        ),
        // A VAT-inclusive price: the total is what the lines say, the tax is inside it.
        (
            "ORD-20250115-0005",
            kotlin_line("wine", "1", "12.0", "12.0"),
            ("12.0", "2.0", "12.0"),
            ("CASH", "PAID", "COMPLETED"),
            (1200, 200, 1200, "CLOSED", "PAID", "CASH"),
        ),
        // Weighed goods: 0.35 kg × 24.90 = 8.715, rounded once to 8.72; a weight with binary
        // noise (0.1 + 0.2 kg) at 10.00.
        (
            "ORD-20250115-0006",
            format!(
                "{},{}",
                kotlin_line("cheese", "0.35", "24.9", "8.715"),
                kotlin_line("olives", "0.30000000000000004", "10.0", "3.0000000000000004")
            ),
            ("11.715", "0", "11.715"),
            ("CASH", "PAID", "COMPLETED"),
            (1172, 0, 1172, "CLOSED", "PAID", "CASH"),
        ),
    ];
    let mut sent = Vec::new();
    for (number, lines, money, names, _) in &cases {
        let local_id = Uuid::new_v4();
        sent.push(kotlin_order(local_id, &format!("k-{local_id}"), number, lines, *money, *names, "pos-a"));
    }
    let answer = h.batch(&h.token_a, "pos-a", sent.clone(), Vec::new()).await;
    assert_eq!(answer["success"], true, "{answer}");
    let received = h.updates(&h.token_b, "pos-b", Some("0")).await;
    for (index, (number, _, _, names, expected)) in cases.iter().enumerate() {
        let synced = &answer["syncedOrders"][index];
        assert_eq!(
            (synced["success"].clone(), synced["conflicts"].clone()),
            (json!(true), Value::Null),
            "{number}: {synced}"
        );
        assert_eq!(synced["serverVersion"], 1, "syncVersion left out is 1: {synced}");
        let record = received["orders"]
            .as_array()
            .and_then(|orders| orders.iter().find(|o| o["order"]["orderNumber"] == *number))
            .unwrap_or_else(|| panic!("{number} kept as sent: {received}"));
        let order = &record["order"];
        let (subtotal, tax, total, status, payment, method) = *expected;
        assert_eq!(
            (order["subtotal"].to_string(), order["tax"].to_string(), order["total"].to_string()),
            (money(subtotal).to_string(), money(tax).to_string(), money(total).to_string()),
            "{number}: the stored, rounded values go back"
        );
        assert_eq!(
            (order["paymentMethod"].as_str(), order["paymentStatus"].as_str(), order["orderStatus"].as_str()),
            (Some(names.0), Some(names.1), Some(names.2)),
            "{number}: names go back as sent"
        );
        // What every till holds: exact cents, tillmesh's own model.
        let id: Uuid = synced["serverId"].as_str().expect("id").parse().expect("uuid");
        let on_till = h.service.node().order(id).expect("the order's document").order;
        assert_eq!(on_till.total.minor(), total, "{number}: the till shows the client's total");
        assert_eq!(on_till.adjustment.minor(), total - subtotal - tax, "{number}");
        assert_eq!(on_till.order_number, *number);
        assert_eq!(on_till.status.as_str(), status, "{number}");
        assert_eq!(on_till.payment.status.as_str(), payment, "{number}");
        // A voided order takes no payment claim, so no method either.
        let expected_method = (status != "VOIDED").then_some(method);
        assert_eq!(on_till.payment.method.map(|m| m.as_str()), expected_method, "{number}");
    }
    // Sent again unchanged (the client resends its outbox every 30 s): in sync, nothing new.
    let before = h.footprint().await;
    let again = h.batch(&h.token_a, "pos-a", sent.clone(), Vec::new()).await;
    for synced in again["syncedOrders"].as_array().expect("answers") {
        assert_eq!(
            (synced["success"].clone(), synced["conflicts"].clone()),
            (json!(true), Value::Null),
            "{synced}"
        );
    }
    assert_eq!(h.footprint().await.0, before.0);

    // HQ settles the first order: legacy clients see HQ's word for the payment, the client's
    // own names for the rest (kept in the order's document).
    let first: Uuid = answer["syncedOrders"][0]["serverId"].as_str().expect("id").parse().expect("uuid");
    h.service.node().settle(first, PaymentStatus::Captured).await.expect("settle");
    let settled = h
        .wait_updates(&h.token_b, "pos-b", |u| {
            u["orders"].as_array().is_some_and(|orders| {
                orders
                    .iter()
                    .any(|o| o["order"]["orderNumber"] == "1001" && o["order"]["paymentStatus"] == "CAPTURED")
            })
        })
        .await;
    let order = &settled["orders"]
        .as_array()
        .and_then(|orders| orders.iter().find(|o| o["order"]["orderNumber"] == "1001"))
        .expect("1001")["order"];
    assert_eq!(
        (order["orderStatus"].as_str(), order["paymentMethod"].as_str()),
        (Some("COMPLETED"), Some("CREDIT_CARD"))
    );

    // What kotlinx leaves out as defaults: the creator (the sender), tax, statuses, method.
    let bare_id = Uuid::new_v4();
    let bare = format!(
        r#"{{"order":{{"id":"bare-1","orderNumber":"B-0001x","items":[{}],"subtotal":2.5,"total":2.5,"createdAt":1736899200000,"updatedAt":1736899200000}},"localId":"{bare_id}"}}"#,
        kotlin_line("tea", "1", "2.5", "2.5")
    );
    let answer =
        h.batch(&h.token_a, "pos-a", vec![serde_json::from_str(&bare).expect("JSON")], Vec::new()).await;
    assert_eq!(answer["syncedOrders"][0]["success"], true, "{answer}");
    let record = h
        .service
        .records()
        .get(tillmesh_core::legacy::RecordKind::Order, bare_id)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(record.device_id, "pos-a");

    // The client changes the discount (a newer version): every till follows its total.
    let mut changed = answer_record(&sent, "ORD-20250115-0004");
    changed["syncVersion"] = json!(2);
    changed["order"]["total"] = serde_json::from_str("17.3").expect("number");
    let answer = h.batch(&h.token_a, "pos-a", vec![changed], Vec::new()).await;
    let synced = &answer["syncedOrders"][0];
    assert_eq!(
        (synced["serverVersion"].clone(), synced["conflicts"].clone()),
        (json!(2), Value::Null),
        "{synced}"
    );
    let id: Uuid = synced["serverId"].as_str().expect("id").parse().expect("uuid");
    assert_eq!(h.service.node().order(id).expect("document").order.total.minor(), 1730);
    h.stop().await;
}

/// A line discount (a `totalPrice` below `quantity × unitPrice`) and a subtotal that is not the
/// lines' sum are taken: the document prices the line in full, its adjustment keeps the
/// client's total, and the answer names what differs from what was sent.
async fn line_discounts_keep_the_total<S: RecordStore>(h: Harness<S>) {
    let local_id = Uuid::new_v4();
    let lines =
        format!("{},{}", kotlin_line("steak", "2", "10.0", "18.0"), kotlin_line("tea", "1", "2.5", "2.5"));
    let sent = kotlin_order(
        local_id,
        "k-1",
        "LD-1",
        &lines,
        ("20.5", "1.69", "22.19"),
        ("CASH", "PAID", "OPEN"),
        "pos-a",
    );
    let answer = h.batch(&h.token_a, "pos-a", vec![sent], Vec::new()).await;
    let synced = &answer["syncedOrders"][0];
    assert_eq!(synced["success"], true, "{answer}");
    let named: Vec<&str> = synced["conflicts"]
        .as_array()
        .map(|conflicts| conflicts.iter().filter_map(|c| c["field"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(named, ["items", "subtotal"], "what was not taken as sent is named: {synced}");
    let id: Uuid = synced["serverId"].as_str().expect("id").parse().expect("uuid");
    let on_till = h.service.node().order(id).expect("the order's document").order;
    assert_eq!(
        (on_till.subtotal.minor(), on_till.tax.minor(), on_till.adjustment.minor(), on_till.total.minor()),
        (2250, 169, -200, 2219),
        "lines in full, the client's tax, the discount in the adjustment, the client's total"
    );
    h.stop().await;
}

/// A payment's own names of its status and method travel in its document: every till holds them
/// next to the mapped values, and a newer version with other names replaces them.
async fn transaction_names_are_kept_in_the_document<S: RecordStore>(h: Harness<S>) {
    let order_id = Uuid::new_v4();
    let placed = order(order_id, "TN-1", &[("tea", 1, 250)], "OPEN", "PENDING", 1, "pos-a");
    let answer = h.batch(&h.token_a, "pos-a", vec![placed], Vec::new()).await;
    let order_doc: Uuid = answer["syncedOrders"][0]["serverId"].as_str().expect("id").parse().expect("uuid");
    let local_id = Uuid::new_v4();
    let mut paid = transaction(local_id, &format!("order-{order_id}"), "TN-1-P", 250, "pos-a");
    paid["transaction"]["paymentMethod"] = json!("Credit Card");
    paid["transaction"]["status"] = json!("SUCCESS");
    let answer = h.batch(&h.token_a, "pos-a", Vec::new(), vec![paid.clone()]).await;
    assert_eq!(answer["syncedTransactions"][0]["success"], true, "{answer}");
    let held = |h: &Harness<S>| h.service.node().order(order_doc).expect("the order").transactions;
    let on_till = &held(&h)[0];
    assert_eq!(
        (on_till.payment_method.as_str(), on_till.payment.status.as_str()),
        ("CARD", "PAID"),
        "mapped onto tillmesh's model"
    );
    let names = |pairs: [(&str, &str); 2]| pairs.map(|(k, v)| (k.to_string(), v.to_string())).into();
    assert_eq!(on_till.legacy_names, names([("paymentMethod", "Credit Card"), ("status", "SUCCESS")]));
    let listed = h.updates(&h.token_b, "pos-b", Some("0")).await;
    let record = &listed["transactions"][0]["transaction"];
    assert_eq!(
        (record["paymentMethod"].as_str(), record["status"].as_str()),
        (Some("Credit Card"), Some("SUCCESS"))
    );

    paid["syncVersion"] = json!(2);
    paid["transaction"]["paymentMethod"] = json!("VISA_CREDIT");
    paid["transaction"]["status"] = json!("COMPLETED");
    let answer = h.batch(&h.token_a, "pos-a", Vec::new(), vec![paid]).await;
    assert_eq!(answer["syncedTransactions"][0]["success"], true, "{answer}");
    assert_eq!(held(&h)[0].legacy_names, names([("paymentMethod", "VISA_CREDIT"), ("status", "COMPLETED")]));
    h.stop().await;
}

/// The record in `sent` with order number `number`.
fn answer_record(sent: &[Value], number: &str) -> Value {
    sent.iter().find(|record| record["order"]["orderNumber"] == number).cloned().expect("sent")
}

/// One bad record among 99 good ones: the 99 are stored, the one is reported at its place.
async fn one_bad_record_among_99<S: RecordStore>(h: Harness<S>) {
    let mut orders: Vec<Value> = (0..100)
        .map(|n| {
            order(Uuid::new_v4(), &format!("N-{n:03}-x"), &[("x", 1, 100 + n)], "OPEN", "PENDING", 1, "pos-a")
        })
        .collect();
    orders[37]["order"]["items"][0]["quantity"] = json!(-2);
    let answer = h.batch(&h.token_a, "pos-a", orders, Vec::new()).await;
    assert_eq!(answer["success"], false);
    let answers = answer["syncedOrders"].as_array().expect("answers");
    assert_eq!(answers.len(), 100);
    for (index, synced) in answers.iter().enumerate() {
        assert_eq!(synced["success"], index != 37, "{index}: {synced}");
    }
    assert!(
        answers[37]["message"].as_str().is_some_and(|m| m.contains("items[0].quantity")),
        "{}",
        answers[37]
    );
    assert_eq!(h.footprint().await.0, 99);
    h.stop().await;
}

/// Register B edits register A's order (Kotlin's `copy()` keeps `deviceId: "pos-a"`) in the
/// same batch as its own new order: both are stored; the creator stays A, the writer is B.
async fn a_register_edits_anothers_order<S: RecordStore>(h: Harness<S>) {
    let a_order = Uuid::new_v4();
    h.batch(
        &h.token_a,
        "pos-a",
        vec![order(a_order, "T-7", &[("tea", 1, 300)], "OPEN", "PENDING", 1, "pos-a")],
        Vec::new(),
    )
    .await;
    let token_a =
        h.updates(&h.token_a, "pos-a", None).await["nextSyncToken"].as_str().expect("token").to_string();
    let edit = order(a_order, "T-7", &[("tea", 2, 300)], "SERVED", "PENDING", 2, "pos-a");
    let own = order(Uuid::new_v4(), "T-8", &[("cake", 1, 450)], "OPEN", "PENDING", 1, "pos-b");
    let answer = h.batch(&h.token_b, "pos-b", vec![edit, own], Vec::new()).await;
    assert_eq!(answer["success"], true, "{answer}");
    assert_eq!(answer["syncedOrders"][0]["serverVersion"], 2);
    assert_eq!(h.footprint().await.0, 2);
    // A is told of B's edit of its order; the creator is still A.
    let told = h.updates(&h.token_a, "pos-a", Some(&token_a)).await;
    let edited = told["orders"]
        .as_array()
        .and_then(|orders| orders.iter().find(|o| o["localId"] == a_order.to_string()))
        .unwrap_or_else(|| panic!("A sees the edit: {told}"));
    assert_eq!(
        (edited["deviceId"].clone(), edited["order"]["orderStatus"].clone()),
        (json!("pos-a"), json!("SERVED"))
    );
    assert_eq!(edited["order"]["items"][0]["quantity"], 2);
    let record = h
        .service
        .records()
        .get(tillmesh_core::legacy::RecordKind::Order, a_order)
        .await
        .expect("get")
        .expect("record");
    assert_eq!((record.device_id.as_str(), record.written_by.as_str()), ("pos-a", "pos-b"));
    h.stop().await;
}

/// The original `saveOrderForSync` makes a fresh `localId` each time: the same client `id` from
/// the same device is still one order; a changed copy under a fresh `localId` edits it.
async fn same_id_under_fresh_local_ids<S: RecordStore>(h: Harness<S>) {
    let first = order(Uuid::new_v4(), "R-1x", &[("soup", 1, 450)], "OPEN", "PENDING", 1, "pos-a");
    let mut server_ids = Vec::new();
    for _ in 0..10 {
        let mut resent = first.clone();
        resent["localId"] = json!(Uuid::new_v4());
        let answer = h.batch(&h.token_a, "pos-a", vec![resent], Vec::new()).await;
        assert_eq!(answer["syncedOrders"][0]["success"], true, "{answer}");
        server_ids.push(answer["syncedOrders"][0]["serverId"].clone());
    }
    server_ids.dedup();
    assert_eq!(server_ids.len(), 1, "ten sends, one order");
    assert_eq!(h.footprint().await.0, 1);
    let mut changed = order(Uuid::new_v4(), "R-1x", &[("soup", 3, 450)], "SENT", "PENDING", 1, "pos-a");
    changed["order"]["id"] = first["order"]["id"].clone();
    let answer = h.batch(&h.token_a, "pos-a", vec![changed], Vec::new()).await;
    let synced = &answer["syncedOrders"][0];
    assert_eq!(
        (synced["serverId"].clone(), synced["serverVersion"].clone()),
        (server_ids[0].clone(), json!(2)),
        "{synced}"
    );
    let seen = h.updates(&h.token_b, "pos-b", None).await;
    assert_eq!(seen["orders"].as_array().map(Vec::len), Some(1));
    assert_eq!(seen["orders"][0]["order"]["items"][0]["quantity"], 3);
    // Another device's order with the same client id is another order.
    let mut other = first.clone();
    other["localId"] = json!(Uuid::new_v4());
    other["deviceId"] = json!("pos-b");
    let answer = h.batch(&h.token_b, "pos-b", vec![other], Vec::new()).await;
    assert_ne!(answer["syncedOrders"][0]["serverId"], server_ids[0]);
    assert_eq!(h.footprint().await.0, 2);
    // The same payment queued again under fresh localIds is one payment.
    let payment = transaction(Uuid::new_v4(), "order-x", "REF-77", 450, "pos-a");
    let transactions_before = h.footprint().await.1;
    let mut payment_ids = Vec::new();
    for _ in 0..5 {
        let mut resent = payment.clone();
        resent["localId"] = json!(Uuid::new_v4());
        let answer = h.batch(&h.token_a, "pos-a", Vec::new(), vec![resent]).await;
        assert_eq!(answer["syncedTransactions"][0]["success"], true, "{answer}");
        payment_ids.push(answer["syncedTransactions"][0]["serverId"].clone());
    }
    payment_ids.dedup();
    assert_eq!(payment_ids.len(), 1, "five sends, one payment");
    assert_eq!(h.footprint().await.1, transactions_before + 1);
    h.stop().await;
}

/// Order numbers: the client's own are kept exactly; a taken one is renumbered and said so; one
/// shaped like a till's is kept for legacy clients but never enters the mesh, where a till's
/// `A-2` must stay unique.
async fn order_numbers_as_sent<S: RecordStore>(h: Harness<S>) {
    let sent = [
        ("1001", Uuid::new_v4()),
        ("ORD-20250115-0001", Uuid::new_v4()),
        ("HQ-2", Uuid::new_v4()),
        ("a-2", Uuid::new_v4()),
    ];
    let orders = sent
        .iter()
        .map(|(number, id)| order(*id, number, &[("x", 1, 100)], "OPEN", "PENDING", 1, "pos-a"))
        .collect();
    let answer = h.batch(&h.token_a, "pos-a", orders, Vec::new()).await;
    let received = h.updates(&h.token_b, "pos-b", None).await;
    for (index, (number, _)) in sent.iter().enumerate() {
        let synced = &answer["syncedOrders"][index];
        assert_eq!(synced["conflicts"], Value::Null, "{number}: {synced}");
        assert!(
            received["orders"]
                .as_array()
                .expect("orders")
                .iter()
                .any(|o| o["order"]["orderNumber"] == *number),
            "{number}"
        );
        let id: Uuid = synced["serverId"].as_str().expect("id").parse().expect("uuid");
        let on_till = h.service.node().order(id).expect("document").order.order_number;
        if index < 2 {
            assert_eq!(on_till, *number);
        } else {
            assert!(on_till.starts_with("HQ-L"), "{number} is {on_till} on the tills");
        }
    }
    let taken = order(Uuid::new_v4(), "1001", &[("y", 1, 100)], "OPEN", "PENDING", 1, "pos-b");
    let answer = h.batch(&h.token_b, "pos-b", vec![taken], Vec::new()).await;
    assert_eq!(
        fields(&answer["syncedOrders"][0]["conflicts"]),
        [("orderNumber".to_string(), "SERVER_ASSIGNED".to_string())]
    );
    h.stop().await;
}

/// Nothing is silently not applied: a deletion at the same version deletes; one at a lower
/// version, or an edit of a deleted order, says so in `conflicts`; no version leaps past
/// [`tillmesh_hq::service::SYNC_VERSION_STEP_MAX`].
async fn deletions_and_versions_are_never_silent<S: RecordStore>(h: Harness<S>) {
    let local_id = Uuid::new_v4();
    let v1 = order(local_id, "D-1x", &[("x", 1, 100)], "OPEN", "PENDING", 1, "pos-a");
    h.batch(&h.token_a, "pos-a", vec![v1.clone()], Vec::new()).await;
    let mut deleted = v1.clone();
    deleted["syncStatus"] = json!("DELETED");
    let answer = h.batch(&h.token_a, "pos-a", vec![deleted], Vec::new()).await;
    let synced = &answer["syncedOrders"][0];
    assert_eq!(
        (synced["serverVersion"].clone(), synced["conflicts"].clone()),
        (json!(2), Value::Null),
        "{synced}"
    );
    let told = h.updates(&h.token_b, "pos-b", None).await;
    assert_eq!(told["deletedOrderIds"], json!([v1["order"]["id"]]), "{told}");
    let mut edit = v1.clone();
    edit["syncVersion"] = json!(3);
    edit["order"]["items"][0]["quantity"] = json!(2);
    edit["order"]["items"][0]["totalPrice"] = json!(2.00);
    edit["order"]["subtotal"] = json!(2.00);
    edit["order"]["tax"] = json!(0.17);
    edit["order"]["total"] = json!(2.17);
    let answer = h.batch(&h.token_a, "pos-a", vec![edit], Vec::new()).await;
    assert_eq!(
        fields(&answer["syncedOrders"][0]["conflicts"]),
        [("syncStatus".to_string(), "SERVER_WINS".to_string())]
    );

    // A lower-version deletion is not applied, and says so.
    let other = Uuid::new_v4();
    let o1 = order(other, "D-2x", &[("x", 1, 100)], "OPEN", "PENDING", 1, "pos-a");
    let o2 = order(other, "D-2x", &[("x", 1, 100)], "SENT", "PENDING", 2, "pos-a");
    h.batch(&h.token_a, "pos-a", vec![o1.clone(), o2], Vec::new()).await;
    let mut stale = o1;
    stale["syncStatus"] = json!("DELETED");
    let answer = h.batch(&h.token_a, "pos-a", vec![stale], Vec::new()).await;
    assert!(
        fields(&answer["syncedOrders"][0]["conflicts"])
            .contains(&("syncStatus".to_string(), "SERVER_WINS".to_string()))
    );

    // A version of i64::MAX moves the record by the bounded step only, and says so.
    let mut frozen = order(Uuid::new_v4(), "D-3x", &[("x", 1, 100)], "OPEN", "PENDING", 1, "pos-a");
    frozen["syncVersion"] = json!(i64::MAX);
    let answer = h.batch(&h.token_a, "pos-a", vec![frozen.clone()], Vec::new()).await;
    let synced = &answer["syncedOrders"][0];
    assert_eq!(synced["serverVersion"], tillmesh_hq::service::SYNC_VERSION_STEP_MAX, "{synced}");
    assert_eq!(fields(&synced["conflicts"]), [("syncVersion".to_string(), "SERVER_ASSIGNED".to_string())]);
    let mut next = frozen;
    next["syncVersion"] = json!(tillmesh_hq::service::SYNC_VERSION_STEP_MAX + 1);
    next["order"]["orderStatus"] = json!("SENT");
    let answer = h.batch(&h.token_b, "pos-b", vec![next], Vec::new()).await;
    assert_eq!(answer["syncedOrders"][0]["serverVersion"], tillmesh_hq::service::SYNC_VERSION_STEP_MAX + 1);
    h.stop().await;
}

/// `since=<time>` (the seed's form, from clients that never follow `hasMore`) answers
/// everything; a token pages with `hasMore`; the token is a decimal `Long` that means the same
/// as `since` or `lastSyncTimestamp`.
async fn updates_by_time_are_complete<S: RecordStore>(h: Harness<S>) {
    let orders: Vec<Value> = (0..520)
        .map(|n| order(Uuid::new_v4(), &format!("U-{n}-x"), &[("x", 1, 100)], "OPEN", "PENDING", 1, "pos-a"))
        .collect();
    h.batch(&h.token_a, "pos-a", orders, Vec::new()).await;
    let by_time = h.updates(&h.token_b, "pos-b", Some("1")).await;
    assert_eq!(
        (by_time["orders"].as_array().map(Vec::len), by_time["hasMore"].clone()),
        (Some(520), json!(false))
    );
    let first = h.updates(&h.token_b, "pos-b", None).await;
    assert_eq!(
        (first["orders"].as_array().map(Vec::len), first["hasMore"].clone()),
        (Some(500), json!(true))
    );
    let token = first["nextSyncToken"].as_str().expect("token");
    assert!(token.parse::<i64>().is_ok(), "a Long: {token}");
    let rest = h.updates(&h.token_b, "pos-b", Some(token)).await;
    assert_eq!((rest["orders"].as_array().map(Vec::len), rest["hasMore"].clone()), (Some(20), json!(false)));
    // The same token as a batch's lastSyncTimestamp, sent as a JSON number.
    let body =
        json!({"deviceId": "pos-b", "orders": [], "lastSyncTimestamp": token.parse::<i64>().expect("long")});
    let (status, answer) = h.post("/api/sync/batch", &h.token_b, &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["serverUpdates"]["orders"].as_array().map(Vec::len), Some(20));
    assert_eq!(answer["hasMore"], false);
    // A batch with a time answers everything as well.
    let body = json!({"deviceId": "pos-b", "orders": [], "lastSyncTimestamp": 1});
    let (_, answer) = h.post("/api/sync/batch", &h.token_b, &body).await;
    assert_eq!(answer["serverUpdates"]["orders"].as_array().map(Vec::len), Some(520));
    // GET streams that answer page by page; it is the same answer.
    let local_ids = |orders: &Value| {
        let mut ids: Vec<String> =
            orders.as_array().expect("orders").iter().map(|o| o["localId"].to_string()).collect();
        ids.sort();
        ids
    };
    assert_eq!(local_ids(&by_time["orders"]), local_ids(&answer["serverUpdates"]["orders"]));
    assert_eq!(by_time["nextSyncToken"], answer["nextSyncToken"]);
    h.stop().await;
}

/// HQ's back office lists and revokes legacy devices (admin token only): a revoked token is
/// refused as revoked on every legacy route, revoking again keeps the first time, an unknown
/// device is 404, and adding the device again issues a new token that works while the old one
/// stays refused.
async fn devices_listed_and_revoked<S: RecordStore>(h: Harness<S>) {
    let (status, listed) = h.get("/api/hq/devices", ADMIN_TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    assert_eq!(keys(&listed[0]), ["addedAt", "deviceId", "revokedAt"]);
    assert_eq!((&listed[0]["deviceId"], &listed[1]["deviceId"]), (&json!("pos-a"), &json!("pos-b")));
    let added_at = listed[0]["addedAt"].as_i64().expect("addedAt in ms");
    assert!(added_at > 1_704_067_200_000, "{listed}");
    assert_eq!(listed[0]["revokedAt"], Value::Null);

    // A device's token is not the admin's: nothing is listed nor revoked with it.
    let revoke_a = "/api/hq/devices/pos-a/revoke";
    let (status, refused) = h.get("/api/hq/devices", &h.token_a).await;
    assert_eq!((status, &refused["error"]), (StatusCode::UNAUTHORIZED, &json!("unauthorized")));
    let (status, refused) = h.post(revoke_a, &h.token_a, &json!({})).await;
    assert_eq!((status, &refused["error"]), (StatusCode::UNAUTHORIZED, &json!("unauthorized")));
    let tea = |device: &str, number: &str| {
        order(Uuid::new_v4(), number, &[("tea", 1, 300)], "OPEN", "PENDING", 1, device)
    };
    h.batch(&h.token_a, "pos-a", vec![tea("pos-a", "ORD-9001")], Vec::new()).await;

    let (status, revoked) = h.post(revoke_a, ADMIN_TOKEN, &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert_eq!((&revoked["deviceId"], revoked["addedAt"].as_i64()), (&json!("pos-a"), Some(added_at)));
    let revoked_at = revoked["revokedAt"].as_i64().expect("revokedAt in ms");
    assert!(revoked_at >= added_at, "{revoked}");
    assert_eq!(h.post(revoke_a, ADMIN_TOKEN, &json!({})).await, (StatusCode::OK, revoked.clone()));
    let body = json!({"deviceId": "pos-a", "orders": [tea("pos-a", "ORD-9002")], "transactions": []});
    let (status, refused) = h.post("/api/sync/batch", &h.token_a, &body).await;
    assert_eq!((status, &refused["error"]), (StatusCode::UNAUTHORIZED, &json!("token_revoked")), "{refused}");
    assert!(refused["detail"].as_str().is_some_and(|detail| detail.contains("revoked")), "{refused}");
    let (status, refused) = h.get("/api/sync/updates?deviceId=pos-a", &h.token_a).await;
    assert_eq!((status, &refused["error"]), (StatusCode::UNAUTHORIZED, &json!("token_revoked")));
    h.batch(&h.token_b, "pos-b", vec![tea("pos-b", "ORD-9003")], Vec::new()).await;
    let (_, listed) = h.get("/api/hq/devices", ADMIN_TOKEN).await;
    assert_eq!(listed[0], revoked);
    assert_eq!(listed[1]["revokedAt"], Value::Null);
    assert_eq!(h.service.records().counts().await.expect("counts").devices, 1, "pos-b alone is active");

    let (status, unknown) = h.post("/api/hq/devices/pos-z/revoke", ADMIN_TOKEN, &json!({})).await;
    assert_eq!((status, &unknown["error"]), (StatusCode::NOT_FOUND, &json!("unknown_device")));

    let (status, issued) = h.post("/api/hq/devices", ADMIN_TOKEN, &json!({"deviceId": "pos-a"})).await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let token = issued["token"].as_str().expect("a new token");
    assert_ne!(token, h.token_a);
    let answer = h.batch(token, "pos-a", vec![tea("pos-a", "ORD-9004")], Vec::new()).await;
    assert_eq!(answer["syncedOrders"][0]["success"], true, "{answer}");
    let (status, refused) = h.post("/api/sync/batch", &h.token_a, &body).await;
    assert_eq!((status, &refused["error"]), (StatusCode::UNAUTHORIZED, &json!("unauthorized")), "{refused}");
    let (_, listed) = h.get("/api/hq/devices", ADMIN_TOKEN).await;
    assert_eq!(listed[0]["revokedAt"], Value::Null, "{listed}");
    assert!(listed[0]["addedAt"].as_i64().is_some_and(|at| at >= revoked_at), "{listed}");
    assert_eq!(h.service.records().counts().await.expect("counts").devices, 2);
    let (status, exists) = h.post("/api/hq/devices", ADMIN_TOKEN, &json!({"deviceId": "pos-a"})).await;
    assert_eq!((status, &exists["error"]), (StatusCode::CONFLICT, &json!("device_exists")));
    h.stop().await;
}

macro_rules! on_both {
    ($($test:ident),+ $(,)?) => {
        $(
            mod $test {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sled() {
                    super::$test(super::on_sled().await).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::common::on_pg_database(|url| async move { super::$test(super::on_pg(url).await).await }).await;
                }
            }
        )+
    };
}

on_both!(
    offline_order_then_sync,
    ten_sends_store_one,
    conflicts_in_every_direction,
    colliding_order_numbers,
    multi_device_updates,
    bad_input_changes_nothing,
    kotlin_client_corpus,
    line_discounts_keep_the_total,
    transaction_names_are_kept_in_the_document,
    one_bad_record_among_99,
    a_register_edits_anothers_order,
    same_id_under_fresh_local_ids,
    order_numbers_as_sent,
    deletions_and_versions_are_never_silent,
    updates_by_time_are_complete,
    devices_listed_and_revoked,
);

/// HTTP for clients as they are: a browser's CORS preflight from an allowed origin, and a
/// body far over the limit answered with a 413 the client can read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_and_a_readable_413() {
    let h = on_sled().await;
    for (origin, allowed) in [(ORIGIN, true), ("http://elsewhere.example", false)] {
        let response = h
            .http
            .request(reqwest::Method::OPTIONS, format!("{}/api/sync/batch", h.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type")
            .send()
            .await
            .expect("preflight");
        assert!(response.status().is_success(), "{origin}: {}", response.status());
        let allow = response.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok());
        assert_eq!(allow, allowed.then_some(origin), "{origin}");
    }
    // 20 MiB, five times the limit: HQ reads it to the end and answers.
    let body = format!(r#"{{"deviceId":"pos-a","pad":"{}"}}"#, "x".repeat(20 * 1024 * 1024));
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("client");
    let response = http
        .post(format!("{}/api/sync/batch", h.base))
        .bearer_auth(&h.token_a)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .expect("an answer, not a reset");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let answer: Value = response.json().await.expect("JSON");
    assert_eq!(answer["error"], "too_large");
    let health: Value = h
        .http
        .get(format!("{}/api/health", h.base))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("JSON");
    assert_eq!(health["legacyAuth"], "token");

    // A client that writes its whole body before it reads (as a simple HTTP client does):
    // HQ must not close the connection under it.
    let address = h.base.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&address).await.expect("connect");
    let body = vec![b'x'; 20 * 1024 * 1024];
    let head = format!(
        "POST /api/sync/batch HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        h.token_a,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(&body).await.expect("the whole body is read, not cut off");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("the answer");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("too_large"), "{answer}");
    h.stop().await;
}

/// `--legacy-auth open`: a client without a token (the seed's has none) is admitted by the
/// `deviceId` it names and listed among HQ's devices; health and metrics say the mode; a wrong
/// token is still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_legacy_auth_admits_clients_without_a_token() {
    let mut access = Access::new(ADMIN_TOKEN);
    access.legacy_auth = LegacyAuth::Open;
    let h = harness_with(
        |till| async move { SledRecords::open(till.store().clone()).expect("sled records") },
        &access,
    )
    .await;
    let devices_before = h.service.records().counts().await.expect("counts").devices;
    let sent = order(Uuid::new_v4(), "1001", &[("tea", 1, 300)], "COMPLETED", "PAID", 1, "register-A");
    let response = h
        .http
        .post(format!("{}/api/sync/batch", h.base))
        .json(&json!({"deviceId": "register-A", "orders": [sent]}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.expect("JSON");
    assert_eq!(answer["syncedOrders"][0]["success"], true, "{answer}");
    assert_eq!(h.service.records().counts().await.expect("counts").devices, devices_before + 1);
    let response = h
        .http
        .get(format!("{}/api/sync/updates?deviceId=register-B&since=0", h.base))
        .send()
        .await
        .expect("request");
    let updates: Value = response.json().await.expect("JSON");
    assert_eq!(updates["orders"][0]["order"]["orderNumber"], "1001", "{updates}");
    let wrong = h
        .http
        .post(format!("{}/api/sync/batch", h.base))
        .bearer_auth("tmd_wrong")
        .json(&json!({"deviceId": "register-A"}))
        .send()
        .await
        .expect("request");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    // A revoked device stays refused without a token too.
    let (status, _) = h.post("/api/hq/devices/register-A/revoke", ADMIN_TOKEN, &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let again = order(Uuid::new_v4(), "1002", &[("tea", 1, 300)], "COMPLETED", "PAID", 1, "register-A");
    let refused = h
        .http
        .post(format!("{}/api/sync/batch", h.base))
        .json(&json!({"deviceId": "register-A", "orders": [again]}))
        .send()
        .await
        .expect("request");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let refused: Value = refused.json().await.expect("JSON");
    assert_eq!(refused["error"], "token_revoked", "{refused}");
    let active = h.service.records().counts().await.expect("counts").devices;
    assert_eq!(active, devices_before + 1, "register-B (admitted by its updates), not register-A");
    let health: Value = h
        .http
        .get(format!("{}/api/health", h.base))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("JSON");
    assert_eq!(health["legacyAuth"], "open");
    let metrics =
        h.http.get(format!("{}/metrics", h.base)).send().await.expect("request").text().await.expect("text");
    assert!(metrics.contains("tillmesh_rest_legacy_auth_open 1"), "{metrics}");
    h.stop().await;
}

/// OpenAPI, the admin endpoint for devices, `/metrics`, and orders made on HQ's node itself
/// reaching legacy clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_admin_metrics_and_node_orders() {
    let h = on_sled().await;
    let openapi: Value = h
        .http
        .get(format!("{}/api/openapi.json", h.base))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON");
    for path in [
        "/api/sync/batch",
        "/api/sync/order",
        "/api/sync/transaction",
        "/api/sync/updates",
        "/api/hq/devices",
        "/api/hq/devices/{deviceId}/revoke",
        "/api/hq/session",
        "/api/hq/overview",
    ] {
        assert!(openapi["paths"].get(path).is_some(), "{path} documented");
    }

    let add = |token: &str| {
        h.http
            .post(format!("{}/api/hq/devices", h.base))
            .bearer_auth(token)
            .json(&json!({"deviceId": "pos-c"}))
    };
    assert_eq!(add("wrong").send().await.expect("request").status(), StatusCode::UNAUTHORIZED);
    let issued = add(ADMIN_TOKEN).send().await.expect("request");
    assert_eq!(issued.status(), StatusCode::CREATED);
    let issued: Value = issued.json().await.expect("JSON");
    let token_c = issued["token"].as_str().expect("token").to_string();
    assert_eq!(add(ADMIN_TOKEN).send().await.expect("request").status(), StatusCode::CONFLICT);

    // HQ's change stream shows every order, so it is behind the admin token like the node's
    // other routes.
    let changes = |token: &str| h.http.get(format!("{}/api/changes", h.base)).bearer_auth(token).send();
    assert_eq!(changes("wrong").await.expect("request").status(), StatusCode::UNAUTHORIZED);
    let mut stream = changes(ADMIN_TOKEN).await.expect("request");
    assert_eq!(stream.status(), StatusCode::OK);
    let first = stream.chunk().await.expect("read").expect("an event");
    assert!(String::from_utf8_lossy(&first).starts_with("event: ready"), "{first:?}");
    drop(stream);
    // HQ's `/` is its own, the back office: the till screen is served by tills only.
    let root = h.http.get(format!("{}/", h.base)).send().await.expect("request");
    assert_eq!(root.status(), StatusCode::OK);
    let page = root.text().await.expect("text");
    assert!(page.contains("HQ back office") && !page.contains("Send to kitchen"), "{page}");

    let made = h
        .service
        .node()
        .create_order(tillmesh_node::till::OrderInput {
            local_id: None,
            items: vec![tillmesh_node::till::ItemInput {
                sku: "cola".into(),
                name: "Cola".into(),
                quantity: tillmesh_core::Quantity::pieces(2),
                unit_price: "2.50".parse().expect("price"),
            }],
            notes: String::new(),
        })
        .await
        .expect("order on HQ's node")
        .0;
    let seen =
        h.wait_updates(&token_c, "pos-c", |u| u["orders"].as_array().is_some_and(|o| o.len() == 1)).await;
    assert_eq!(seen["orders"][0]["order"]["id"], made.order.id.to_string());
    assert_eq!(seen["orders"][0]["deviceId"], "hq");
    assert_eq!(seen["orders"][0]["order"]["total"].to_string(), "5.41");

    let metrics =
        h.http.get(format!("{}/metrics", h.base)).send().await.expect("request").text().await.expect("text");
    for line in [
        "tillmesh_rest_requests_total{endpoint=\"updates\"}",
        "tillmesh_rest_records{kind=\"order\"} 1",
        "tillmesh_rest_devices 3",
        "tillmesh_documents 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    h.stop().await;
}

/// A batch larger than one store batch that fails part way (PostgreSQL refuses one order): the
/// records stored before keep their answers, the failed store batch and the rest are answered
/// as not stored, record by record — the answer tells the truth, and a resend completes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_failing_part_way_answers_record_by_record() {
    common::on_pg_database(|url| async move {
        let h = on_pg(url).await;
        let pool = h.service.records().pool();
        for statement in [
            "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.order_number = 'POISON' THEN RAISE EXCEPTION 'poisoned'; END IF; RETURN NEW; END $$",
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON sync_orders FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
        ] {
            sqlx::query(statement).execute(pool).await.expect("a trigger that fails one order");
        }
        let mut orders: Vec<Value> = (0..250)
            .map(|n| order(Uuid::new_v4(), &format!("PW-{n}"), &[("x", 1, 100)], "OPEN", "PENDING", 1, "pos-a"))
            .collect();
        orders[150]["order"]["orderNumber"] = json!("POISON");
        let answer = h.batch(&h.token_a, "pos-a", orders.clone(), Vec::new()).await;
        let answers = answer["syncedOrders"].as_array().expect("answers");
        assert_eq!(answers.len(), 250);
        let stored = answers.iter().take_while(|a| a["success"] == true).count();
        assert_eq!(stored, 100, "the first store batch is stored: {}", answers[100]);
        assert!(answers[100..].iter().all(|a| a["success"] == false
            && a["message"].as_str().is_some_and(|m| m.starts_with("not stored"))));
        assert_eq!(h.service.records().counts().await.expect("counts").orders, 100);

        sqlx::query("DROP TRIGGER refuse_poison ON sync_orders").execute(pool).await.expect("drop");
        let again = h.batch(&h.token_a, "pos-a", orders, Vec::new()).await;
        assert_eq!(again["success"], true, "{again}");
        assert_eq!(h.service.records().counts().await.expect("counts").orders, 250);
        h.stop().await;
    })
    .await;
}
