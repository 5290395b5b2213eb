//! A till's change stream (`GET /api/changes`) with the real binary: every durable write shows
//! as it happens, with the order's summary, to every subscriber from when it subscribed; the
//! stream ends when the till stops.

mod support;

use serde_json::json;
use support::{Changes, TillProcess};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_stream_shows_every_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("till");
    let till = TillProcess::spawn(&["till", "--data-dir", data.to_str().expect("utf-8"), "--code", "A"]);
    let http = reqwest::Client::new();
    let mut changes = Changes::open(&http, &till.url).await;

    let body =
        json!({ "items": [{ "sku": "SOUP", "name": "Tomato soup", "quantity": 2, "unitPrice": "4.50" }] });
    let (status, order) = support::post_order(&http, &till.url, &body).await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{order}");
    let id = order["id"].as_str().expect("id").to_string();
    let created = changes.order(&id).await;
    assert_eq!(
        (created["orderNumber"].as_str(), created["orderStatus"].as_str(), created["total"].to_string()),
        (Some("A-1"), Some("OPEN"), "9.00".to_string())
    );
    let advance = |status: &'static str| {
        http.post(format!("{}/api/orders/{id}/status", till.url)).json(&json!({ "status": status })).send()
    };
    assert!(advance("SENT").await.expect("sent").status().is_success());
    assert_eq!(changes.order(&id).await["orderStatus"], "SENT");

    // A second subscriber sees only what comes after it subscribed.
    let mut late = Changes::open(&http, &till.url).await;
    assert!(advance("READY").await.expect("ready").status().is_success());
    let (event, data) = late.next().await.expect("an event");
    assert_eq!((event.as_str(), data["orderStatus"].as_str()), ("order", Some("READY")));

    assert!(till.terminate().success());
    while changes.next().await.is_some() {}
    while late.next().await.is_some() {}
}

/// Peers coming and going are no writes: the stream says so with `event: sync`, so that a
/// screen reads the sync status again instead of polling it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_stream_tells_when_peers_come_and_go() {
    let dir = tempfile::tempdir().expect("tempdir");
    support::shop(dir.path(), &["A", "B"]);
    let a = support::start_shop_till(dir.path(), "A", 60_000, &[]);
    let http = reqwest::Client::new();
    let mut changes = Changes::open(&http, &a.url).await;
    let peers = || async { support::sync_status(&http, &a.url).await["peers"].clone() };
    assert_eq!(peers().await, json!([]));

    let b = support::start_shop_till(dir.path(), "B", 60_000, &[a.peer.as_deref().expect("A listens")]);
    let (event, _) = changes.next().await.expect("an event");
    assert_eq!(event, "sync", "B's admission is told");
    // The event may come as B is admitted or as documents are marked synced: wait for the peer.
    while peers().await != json!(["till-B"]) {
        let (event, _) = changes.next().await.expect("another event");
        assert_eq!(event, "sync");
    }
    let (ok, out, err) = support::cli(&["status", "--till", &a.url]);
    assert!(ok && out.contains("connected to till-B"), "`tillmesh status` names the peer: {out}{err}");

    assert!(b.terminate().success());
    loop {
        let (event, _) = changes.next().await.expect("an event");
        if event == "sync" && peers().await == json!([]) {
            break;
        }
    }
    assert!(a.terminate().success());
}
