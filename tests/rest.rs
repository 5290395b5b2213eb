//! The legacy REST API end to end with the real binary: an order a legacy client sends reaches
//! a till over peer-to-peer sync and a till's order reaches legacy clients; two HQ processes on
//! one PostgreSQL store a `localId` sent to both at once exactly once.

mod support;

#[path = "../crates/tillmesh-hq/tests/common/mod.rs"]
mod pg;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{TillProcess, cli, shop, start_shop_hq};
use uuid::Uuid;

/// How long propagation may take before the test fails.
const WAIT_MS: u64 = 30_000;

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client")
}

/// A legacy order of one item at 10.00, tax 8.25 % (0.83).
fn legacy_order(local_id: Uuid, number: &str, device: &str) -> Value {
    json!({
        "order": {
            "id": local_id.to_string(), "orderNumber": number,
            "items": [{"productId": "P1", "productName": "Pasta", "quantity": 1, "unitPrice": 10.00, "totalPrice": 10.00}],
            "subtotal": 10.00, "tax": 0.83, "total": 10.83, "paymentMethod": "CASH", "paymentStatus": "PAID",
            "orderStatus": "OPEN", "createdAt": 1_704_067_200_000_i64, "updatedAt": 1_704_067_200_000_i64
        },
        "localId": local_id, "syncStatus": "PENDING", "syncVersion": 1, "deviceId": device
    })
}

async fn batch(http: &reqwest::Client, url: &str, token: &str, device: &str, orders: Vec<Value>) -> Value {
    let response = http
        .post(format!("{url}/api/sync/batch"))
        .bearer_auth(token)
        .json(&json!({"deviceId": device, "orders": orders, "transactions": []}))
        .send()
        .await
        .expect("batch");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    response.json().await.expect("JSON")
}

async fn updates(http: &reqwest::Client, url: &str, token: &str, device: &str) -> Value {
    let response = http
        .get(format!("{url}/api/sync/updates"))
        .bearer_auth(token)
        .query(&[("deviceId", device)])
        .send()
        .await
        .expect("updates");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    response.json().await.expect("JSON")
}

async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(started.elapsed() < Duration::from_millis(WAIT_MS), "{what}: not in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn device_add(data_dir: &str, device: &str, database_url: Option<&str>) -> String {
    let mut args = vec!["hq", "device", "add", "--data-dir", data_dir, "--device-id", device];
    if let Some(url) = database_url {
        args.extend(["--database-url", url]);
    }
    let (ok, out, err) = cli(&args);
    assert!(ok, "{err}");
    let token = out.trim().to_string();
    assert!(!token.is_empty() && !token.contains('\n'), "one line: {out:?}");
    token
}

/// The seed's `SERVER_PORT` alone: HQ listens on every interface, as the original server did,
/// so registers on the LAN reach it; `--legacy-auth open` shows in `/api/health`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_port_alone_listens_on_every_interface() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    shop(dir, &["A"]);
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("port").port();
    let port = port.to_string();
    let hq = TillProcess::spawn_with(
        &[
            "hq",
            "--shop",
            dir.join("shop").to_str().expect("utf-8"),
            "--data-dir",
            dir.join("data-hq").to_str().expect("utf-8"),
            "--legacy-auth",
            "open",
        ],
        &[],
        &[("SERVER_PORT", port.as_str())],
    );
    assert_eq!(hq.url, format!("http://0.0.0.0:{port}"));
    let health: Value = client()
        .get(format!("http://127.0.0.1:{port}/api/health"))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("JSON");
    assert_eq!(health["legacyAuth"], "open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_clients_and_tills_see_each_others_orders() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    shop(dir, &["A"]);
    let data_hq = dir.join("data-hq");
    let data_hq = data_hq.to_str().expect("utf-8");
    let token = device_add(data_hq, "pos-1", None);
    let (hq, _) = start_shop_hq(dir, 500);
    let till = TillProcess::spawn(&[
        "till",
        "--credentials",
        dir.join("A.till").to_str().expect("utf-8"),
        "--data-dir",
        dir.join("data-A").to_str().expect("utf-8"),
        "--peer",
        hq.peer.as_deref().expect("HQ listens"),
        "--sync-interval-ms",
        "500",
    ]);
    let http = client();

    // While HQ runs, its sled store is locked: the CLI says to use the admin endpoint.
    let (ok, _, err) = cli(&["hq", "device", "add", "--data-dir", data_hq, "--device-id", "pos-2"]);
    assert!(!ok && err.contains("/api/hq/devices"), "{err}");

    // A legacy order reaches the till over peer-to-peer sync.
    let local_id = Uuid::new_v4();
    let answer =
        batch(&http, &hq.url, &token, "pos-1", vec![legacy_order(local_id, "ORD-20250115-0001", "pos-1")])
            .await;
    let server_id = answer["syncedOrders"][0]["serverId"].as_str().expect("serverId").to_string();
    let on_till = eventually("the REST order on the till", async || {
        let response = http.get(format!("{}/api/orders/{server_id}", till.url)).send().await.ok()?;
        response.status().is_success().then_some(())?;
        response.json::<Value>().await.ok()
    })
    .await;
    assert_eq!(on_till["orderNumber"], "ORD-20250115-0001", "the client's own number, on the till too");
    assert_eq!(on_till["total"].to_string(), "10.83");
    assert_eq!(on_till["payment"]["status"], "PAID");
    assert_eq!(on_till["localId"], local_id.to_string());

    // A till's order reaches the legacy client through `updates`.
    let made: Value = http
        .post(format!("{}/api/orders", till.url))
        .json(&json!({"items": [{"sku": "SOUP", "name": "Soup", "quantity": 2, "unitPrice": "4.50"}]}))
        .send()
        .await
        .expect("order")
        .json()
        .await
        .expect("JSON");
    let till_order = eventually("the till's order in updates", async || {
        let seen = updates(&http, &hq.url, &token, "pos-1").await;
        seen["orders"].as_array()?.iter().find(|order| order["order"]["id"] == made["id"]).cloned()
    })
    .await;
    assert_eq!(till_order["deviceId"], "till-A");
    assert_eq!(till_order["localId"], made["localId"]);
    assert_eq!(till_order["order"]["orderNumber"], made["orderNumber"]);
    assert_eq!(till_order["order"]["total"].to_string(), "9.74");

    // The till edits the legacy order: the legacy client sees a newer version.
    let advanced = http
        .post(format!("{}/api/orders/{server_id}/status", till.url))
        .json(&json!({"status": "SENT"}))
        .send()
        .await
        .expect("advance");
    assert!(advanced.status().is_success());
    let edited = eventually("the till's edit in updates", async || {
        let seen = updates(&http, &hq.url, &token, "pos-1").await;
        seen["orders"].as_array()?.iter().find(|order| order["localId"] == local_id.to_string()).cloned()
    })
    .await;
    assert_eq!(edited["order"]["orderStatus"], "SENT");
    assert_eq!(edited["syncVersion"], 2);
    assert_eq!(edited["deviceId"], "pos-1", "the creator stays the creator");

    // The operator lists and revokes the device on the running HQ; its token is refused from
    // then on.
    let token_file = dir.join("data-hq").join("admin-token");
    let token_file = token_file.to_str().expect("utf-8");
    let device = |args: &[&str]| {
        let mut all = vec!["hq", "device"];
        all.extend_from_slice(args);
        all.extend(["--hq", hq.url.as_str(), "--admin-token-file", token_file]);
        cli(&all)
    };
    let (ok, out, err) = device(&["list"]);
    assert!(
        ok && out.lines().any(|line| line.starts_with("pos-1") && line.ends_with("active")),
        "{out}{err}"
    );
    let (ok, out, err) = device(&["revoke", "--device-id", "pos-1"]);
    assert!(ok && out.starts_with("device pos-1 revoked at"), "{out}{err}");
    let (ok, out, err) = device(&["list"]);
    assert!(
        ok && out.lines().any(|line| line.starts_with("pos-1") && line.contains("revoked")),
        "{out}{err}"
    );
    let (ok, _, err) = device(&["revoke", "--device-id", "no-such-device"]);
    assert!(!ok && err.contains("unknown_device"), "{err}");
    let refused = http
        .get(format!("{}/api/sync/updates", hq.url))
        .bearer_auth(&token)
        .query(&[("deviceId", "pos-1")])
        .send()
        .await
        .expect("updates");
    assert_eq!(refused.status(), reqwest::StatusCode::UNAUTHORIZED);
    for node in [hq, till] {
        assert!(node.terminate().success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hq_processes_on_one_postgres_store_a_local_id_once() {
    pg::on_pg_database(|url| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let dir = dir.path();
        shop(dir, &[]);
        let shop_dir = dir.join("shop");
        let token_1 = device_add("unused", "pos-1", Some(&url));
        let token_2 = device_add("unused", "pos-2", Some(&url));
        let hq = |name: &str| {
            TillProcess::spawn(&[
                "hq",
                "--shop",
                shop_dir.to_str().expect("utf-8"),
                "--data-dir",
                dir.join(name).to_str().expect("utf-8"),
                "--database-url",
                &url,
            ])
        };
        let (first, second) = (hq("data-1"), hq("data-2"));
        let http = client();

        // The same order sent to both processes at once, ten times each.
        let local_id = Uuid::new_v4();
        let sent = legacy_order(local_id, "ORD-77", "pos-1");
        let mut sends = Vec::new();
        for attempt in 0..20 {
            let (http, sent, token) = (http.clone(), sent.clone(), token_1.clone());
            let url = if attempt % 2 == 0 { first.url.clone() } else { second.url.clone() };
            sends.push(tokio::spawn(async move { batch(&http, &url, &token, "pos-1", vec![sent]).await }));
        }
        let mut server_ids = Vec::new();
        for send in sends {
            let answer = send.await.expect("send");
            assert_eq!(answer["syncedOrders"][0]["success"], true, "{answer}");
            server_ids.push(answer["syncedOrders"][0]["serverId"].clone());
        }
        server_ids.dedup();
        assert_eq!(server_ids.len(), 1, "one server id: {server_ids:?}");

        // Each process serves the one shared record to other devices.
        for node in [&first, &second] {
            let seen = updates(&http, &node.url, &token_2, "pos-2").await;
            assert_eq!(seen["orders"].as_array().map(Vec::len), Some(1), "{seen}");
        }
        // An order sent to the second is served by the first.
        let other = Uuid::new_v4();
        batch(&http, &second.url, &token_1, "pos-1", vec![legacy_order(other, "ORD-78", "pos-1")]).await;
        let seen = updates(&http, &first.url, &token_2, "pos-2").await;
        assert_eq!(seen["orders"].as_array().map(Vec::len), Some(2), "{seen}");
        for node in [first, second] {
            assert!(node.terminate().success());
        }
    })
    .await;
}
