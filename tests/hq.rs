//! The HQ node as one more peer: it stores every order, and its signed settlement wins on every
//! till over a till's contrary claim (SERVER_WINS), offline-verifiable.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{TillProcess, cli, shop};

/// How long propagation may take before the test fails.
const WAIT_MS: u64 = 30_000;

async fn order(http: &reqwest::Client, url: &str, id: &str) -> Option<Value> {
    let response = http.get(format!("{url}/api/orders/{id}")).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

/// Waits until `check` holds for the order on every node.
async fn wait_for(
    http: &reqwest::Client,
    urls: &[&str],
    id: &str,
    check: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let mut views = Vec::new();
        for url in urls {
            views.push(order(http, url, id).await);
        }
        if views.iter().all(|view| view.as_ref().is_some_and(&check)) {
            return views.into_iter().flatten().collect();
        }
        assert!(started.elapsed() < Duration::from_millis(WAIT_MS), "not everywhere in time: {views:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hq_settlement_wins_on_every_till() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    shop(dir, &["A", "B"]);
    let shop_dir = dir.join("shop");
    let hq = TillProcess::spawn(&[
        "hq",
        "--shop",
        shop_dir.to_str().expect("utf-8"),
        "--data-dir",
        dir.join("data-hq").to_str().expect("utf-8"),
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--sync-interval-ms",
        "500",
    ]);
    let hq_peer = hq.peer.clone().expect("HQ listens");
    let till = |code: &str| {
        TillProcess::spawn(&[
            "till",
            "--credentials",
            dir.join(format!("{code}.till")).to_str().expect("utf-8"),
            "--data-dir",
            dir.join(format!("data-{code}")).to_str().expect("utf-8"),
            "--peer",
            &hq_peer,
            "--sync-interval-ms",
            "500",
        ])
    };
    let (a, b) = (till("A"), till("B"));
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");

    let body = json!({ "items": [{ "sku": "SOUP", "name": "Soup", "quantity": 2, "unitPrice": "4.50" }] });
    let created: Value = http
        .post(format!("{}/api/orders", a.url))
        .json(&body)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id").to_string();
    let paid = http
        .post(format!("{}/api/orders/{id}/payments", a.url))
        .json(&json!({ "method": "CARD", "cardLast4": "4242" }))
        .send()
        .await
        .expect("pay");
    assert_eq!(paid.status(), reqwest::StatusCode::CREATED);
    wait_for(&http, &[&hq.url, &b.url], &id, |order| order["payment"]["status"] == "PAID").await;

    // A till cannot settle; HQ can, and every till shows HQ's decision, confirmed.
    let refused = http
        .post(format!("{}/api/orders/{id}/settle", a.url))
        .json(&json!({ "status": "CAPTURED" }))
        .send()
        .await
        .expect("send");
    assert_eq!(refused.status(), reqwest::StatusCode::FORBIDDEN);
    let (ok, out, err) = cli(&["hq", "settle", "--hq", &hq.url, "--order", &id, "--status", "DECLINED"]);
    assert!(ok && out.contains("DECLINED"), "{out}{err}");
    wait_for(&http, &[&hq.url, &a.url, &b.url], &id, |order| {
        order["payment"]["status"] == "DECLINED" && order["payment"]["confirmed"] == true
    })
    .await;

    // A till's later contrary claim does not override HQ: still DECLINED, the conflict reported.
    let claimed = http
        .post(format!("{}/api/orders/{id}/payments", b.url))
        .json(&json!({ "method": "CASH" }))
        .send()
        .await
        .expect("pay");
    assert_eq!(claimed.status(), reqwest::StatusCode::CREATED);
    let views =
        wait_for(&http, &[&hq.url, &a.url, &b.url], &id, |order| !order["payment"]["conflict"].is_null())
            .await;
    for view in views {
        assert_eq!(view["payment"]["status"], "DECLINED", "SERVER_WINS");
        assert_eq!(view["payment"]["conflict"]["claimed"], "PAID");
        assert!(view["violations"].as_array().is_some_and(Vec::is_empty));
    }
    let metrics =
        http.get(format!("{}/metrics", hq.url)).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("\ntillmesh_peers 2\n"), "{metrics}");
    assert!(metrics.contains("tillmesh_sync_frames_received_total "), "{metrics}");
    for node in [hq, a, b] {
        assert!(node.terminate().success());
    }
}
