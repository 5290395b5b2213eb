//! Till codes are never reissued by accident: `shop add-till` refuses a code used before (here a
//! revoked till's) unless `--reuse` is given, and the till that then takes the code continues
//! its numbering past the highest number it sees from the shop instead of issuing `A-1` again.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{TillProcess, cli, shop};

fn start(dir: &Path, credentials: &str, data: &str, peers: &[&str]) -> TillProcess {
    let args = support::shop_till_args(dir, credentials, data, 300, peers);
    TillProcess::spawn(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

async fn create(http: &reqwest::Client, url: &str) -> Value {
    let body = json!({ "items": [{ "sku": "TEA", "name": "Tea", "quantity": 1, "unitPrice": "2.00" }] });
    let response = http.post(format!("{url}/api/orders")).json(&body).send().await.expect("send");
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    response.json().await.expect("json")
}

async fn wait_orders(http: &reqwest::Client, url: &str, count: usize) {
    let started = Instant::now();
    while support::order_ids(http, url).await.len() != count {
        assert!(started.elapsed() < Duration::from_secs(60), "{url} never held {count} orders");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_code_continues_its_numbering_and_needs_reuse() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    shop(dir, &["A", "B"]);
    let shop_dir = dir.join("shop");
    let shop_dir = shop_dir.to_str().expect("utf-8");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");

    let b = start(dir, "B", "B", &[]);
    let b_peer = b.peer.clone().expect("B listens");
    let a = start(dir, "A", "A", &[&b_peer]);
    for _ in 0..3 {
        create(&http, &a.url).await;
    }
    wait_orders(&http, &b.url, 3).await;
    a.kill();

    let revocation = dir.join("revoke-A.json");
    let (ok, _, err) = cli(&[
        "shop",
        "revoke-till",
        "--dir",
        shop_dir,
        "--code",
        "A",
        "--out",
        revocation.to_str().expect("utf-8"),
    ]);
    assert!(ok, "{err}");
    let (ok, _, err) = cli(&["roster", "apply", revocation.to_str().expect("utf-8"), "--till", &b.url]);
    assert!(ok, "{err}");

    let again = dir.join("A-again.till");
    let again_path = again.to_str().expect("utf-8");
    let (ok, _, err) = cli(&["shop", "add-till", "--dir", shop_dir, "--code", "A", "--out", again_path]);
    assert!(!ok, "a used code is refused");
    assert!(err.contains("used before") && err.contains("--reuse"), "{err}");
    assert!(!again.exists(), "nothing written");
    let (ok, _, err) =
        cli(&["shop", "add-till", "--dir", shop_dir, "--code", "A", "--out", again_path, "--reuse"]);
    assert!(ok, "{err}");

    let a_again = start(dir, "A-again", "A-again", &[&b_peer]);
    wait_orders(&http, &a_again.url, 3).await;
    let order = create(&http, &a_again.url).await;
    assert_eq!(order["orderNumber"], "A-4", "continues past A-3");
    for till in [b, a_again] {
        assert!(till.terminate().success());
    }
}
