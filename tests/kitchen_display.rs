//! The kitchen display in real Chromium: two tills of a shop as real processes; the kitchen
//! screen open on till B. An order taken on till A and sent to the kitchen appears on B's
//! screen (synced, then pushed by B's change stream, no reload); a click bumps it to READY,
//! which till A then shows; a second click serves it and it leaves the screen. A screenshot is
//! written to `target/screens/kitchen.png`. Prints SKIPPED without Chromium (`.ci/run` installs
//! it).

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::browser::Browser;

async fn status_on(http: &reqwest::Client, url: &str, id: &str) -> Option<String> {
    let answer = http.get(format!("{url}/api/orders/{id}")).send().await.ok()?;
    let detail: Value = answer.json().await.ok()?;
    detail["status"].as_str().map(str::to_string)
}

async fn wait_status(http: &reqwest::Client, url: &str, id: &str, wanted: &str) {
    for _ in 0..600 {
        if status_on(http, url, id).await.as_deref() == Some(wanted) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("order {id} never became {wanted} on {url}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_sent_on_one_till_is_bumped_on_anothers_kitchen_display() {
    let Some(browser) = Browser::start().await else {
        println!("SKIPPED: kitchen display in Chromium (install chromium and chromium-driver)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    support::shop(dir.path(), &["A", "B"]);
    let a = support::start_shop_till(dir.path(), "A", 300, &[]);
    let b = support::start_shop_till(dir.path(), "B", 300, &[a.peer.as_deref().expect("A listens")]);
    let http = reqwest::Client::new();

    browser.open(&format!("{}/kitchen", b.url)).await;
    assert_eq!(browser.text("#link").await, "live", "the screen follows B's change stream");

    let body = json!({ "items": [
        { "sku": "SOUP", "name": "Tomato soup", "quantity": 2, "unitPrice": "4.50" },
        { "sku": "CHEESE", "name": "Comté", "quantity": 0.25, "unitPrice": "24.90" }
    ], "notes": "no croutons" });
    let (status, order) = support::post_order(&http, &a.url, &body).await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{order}");
    let id = order["id"].as_str().expect("id").to_string();
    let number = order["orderNumber"].as_str().expect("number").to_string();
    let sent = http
        .post(format!("{}/api/orders/{id}/status", a.url))
        .json(&json!({ "status": "SENT" }))
        .send()
        .await
        .expect("send to the kitchen");
    assert!(sent.status().is_success());

    let ticket = format!("#SENT article[data-order-id='{id}']");
    let text = browser.text(&ticket).await;
    for shown in [number.as_str(), "2 × Tomato soup", "0.25 × Comté", "no croutons", "till-A"] {
        assert!(text.contains(shown), "the ticket shows {shown:?}: {text:?}");
    }
    browser.screenshot(&support::browser::screens_dir().join("kitchen.png")).await;

    browser.click(&format!("{ticket} button.bump")).await;
    browser.find(&format!("#READY article[data-order-id='{id}']")).await;
    wait_status(&http, &a.url, &id, "READY").await;

    browser.click(&format!("#READY article[data-order-id='{id}'] button.bump")).await;
    browser.gone(&format!("article[data-order-id='{id}']")).await;
    wait_status(&http, &a.url, &id, "SERVED").await;

    browser.close().await;
    for till in [a, b] {
        assert!(till.terminate().success());
    }
}
