//! The HQ node as one more peer: it stores every order, and its signed settlement wins on every
//! till over a till's contrary claim (SERVER_WINS), offline-verifiable.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{TillProcess, cli, shop, start_shop_hq};

/// How long propagation may take before the test fails.
const WAIT_MS: u64 = 30_000;

/// The order as the node at `url` shows it, asked with HQ's admin token (which HQ's node API
/// requires and a till's ignores).
async fn order(http: &reqwest::Client, url: &str, id: &str, admin_token: &str) -> Option<Value> {
    let response = http.get(format!("{url}/api/orders/{id}")).bearer_auth(admin_token).send().await.ok()?;
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
    admin_token: &str,
    check: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    support::wait_everywhere(urls, WAIT_MS, async |url| order(http, url, id, admin_token).await, check).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hq_settlement_wins_on_every_till() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    shop(dir, &["A", "B"]);
    let (hq, admin_token) = start_shop_hq(dir, 500);
    let admin_token = admin_token.as_str();
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
    wait_for(&http, &[&hq.url, &b.url], &id, admin_token, |order| order["payment"]["status"] == "PAID").await;

    // A till cannot settle; HQ can, and every till shows HQ's decision, confirmed.
    let refused = http
        .post(format!("{}/api/orders/{id}/settle", a.url))
        .json(&json!({ "status": "CAPTURED" }))
        .send()
        .await
        .expect("send");
    assert_eq!(refused.status(), reqwest::StatusCode::FORBIDDEN);
    // HQ's node API faces the network: without HQ's admin token nobody settles or reads there.
    for token in [None, Some("not-the-admin-token")] {
        let mut settle =
            http.post(format!("{}/api/orders/{id}/settle", hq.url)).json(&json!({ "status": "CAPTURED" }));
        let mut read = http.get(format!("{}/api/orders/{id}", hq.url));
        if let Some(token) = token {
            settle = settle.bearer_auth(token);
            read = read.bearer_auth(token);
        }
        for request in [settle, read] {
            let answer = request.send().await.expect("send");
            assert_eq!(answer.status(), reqwest::StatusCode::UNAUTHORIZED);
            let body: Value = answer.json().await.expect("json");
            assert_eq!(body["error"], "unauthorized", "{body}");
        }
    }
    let health = http.get(format!("{}/api/health", hq.url)).send().await.expect("health");
    assert_eq!(health.status(), reqwest::StatusCode::OK, "health stays open");
    let (ok, out, err) = cli(&["hq", "settle", "--hq", &hq.url, "--order", &id, "--status", "CAPTURED"]);
    assert!(!ok && err.contains("--admin-token-file"), "{out}{err}");
    let unchanged = order(&http, &hq.url, &id, admin_token).await.expect("HQ's view");
    assert_eq!(unchanged["payment"]["status"], "PAID", "refused settlements changed nothing");
    assert_eq!(unchanged["payment"]["confirmed"], false);
    let admin_token_file = dir.join("data-hq").join("admin-token");
    let token_file = admin_token_file.to_str().expect("utf-8");
    let (ok, out, err) = cli(&[
        "hq",
        "settle",
        "--hq",
        &hq.url,
        "--admin-token-file",
        token_file,
        "--order",
        &id,
        "--status",
        "DECLINED",
    ]);
    assert!(ok && out.contains("DECLINED"), "{out}{err}");
    wait_for(&http, &[&hq.url, &a.url, &b.url], &id, admin_token, |order| {
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
    let views = wait_for(&http, &[&hq.url, &a.url, &b.url], &id, admin_token, |order| {
        !order["payment"]["conflict"].is_null()
    })
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
