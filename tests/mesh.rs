//! Real till processes syncing over real libp2p on 127.0.0.1: concurrent orders, a till killed
//! and restarted, a till paused (cut off) and resumed, concurrent edits of one order — all
//! converge with nothing lost. Strangers (wrong shop key, or not on the roster) and revoked tills
//! get no document.
//!
//! Nothing here waits a fixed time to decide an outcome: a test waits for the state it needs,
//! and "nothing crossed" is checked once an event shows that it would have (the stranger was
//! turned away, another till already holds the order the revoked one must not get).

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{TillProcess, cli, shop};

/// Reconciliation interval of the tills under test.
const SYNC_INTERVAL_MS: u64 = 500;
/// How long convergence may take before the test fails.
const CONVERGE_TIMEOUT_MS: u64 = 60_000;

fn start(dir: &Path, code: &str, peers: &[&str]) -> TillProcess {
    support::start_shop_till(dir, code, SYNC_INTERVAL_MS, peers)
}

async fn create_order(http: &reqwest::Client, url: &str, sku: &str) -> Value {
    let body = json!({ "items": [{ "sku": sku, "name": format!("dish {sku}"), "quantity": 1, "unitPrice": "3.50" }] });
    let response = http.post(format!("{url}/api/orders")).json(&body).send().await.expect("send");
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    response.json().await.expect("json")
}

/// Every order a till holds: id → (status, total, item count).
async fn orders(http: &reqwest::Client, url: &str) -> BTreeMap<String, (String, String, u64)> {
    let mut all = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = format!("{url}/api/orders?limit=500");
        if let Some(cursor) = &cursor {
            query.push_str(&format!("&cursor={cursor}"));
        }
        let Ok(response) = http.get(query).send().await else { return all };
        let page: Value = response.json().await.expect("json");
        for order in page["orders"].as_array().expect("orders") {
            all.insert(
                order["id"].as_str().expect("id").to_string(),
                (
                    order["orderStatus"].to_string(),
                    order["total"].to_string(),
                    order["itemCount"].as_u64().expect("n"),
                ),
            );
        }
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return all,
        }
    }
}

async fn wait_converged(
    http: &reqwest::Client,
    urls: &[&str],
    expected: usize,
) -> BTreeMap<String, (String, String, u64)> {
    let started = Instant::now();
    loop {
        let mut views = Vec::new();
        for url in urls {
            views.push(orders(http, url).await);
        }
        if views.iter().all(|view| view.len() == expected && *view == views[0]) {
            return views.swap_remove(0);
        }
        assert!(
            started.elapsed() < Duration::from_millis(CONVERGE_TIMEOUT_MS),
            "no convergence: {:?}",
            views.iter().map(BTreeMap::len).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls `check` until it holds; fails after [`CONVERGE_TIMEOUT_MS`] saying `what` it waited for.
async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < Duration::from_millis(CONVERGE_TIMEOUT_MS), "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn server_hash(http: &reqwest::Client, url: &str, id: &str) -> Value {
    support::get_json(http, &format!("{url}/api/orders/{id}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_tills_converge_through_crash_and_partition() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    shop(dir, &["A", "B", "C"]);
    let a = start(dir, "A", &[]);
    let a_peer = a.peer.clone().expect("A listens");
    let b = start(dir, "B", &[&a_peer]);
    let b_peer = b.peer.clone().expect("B listens");
    let c = start(dir, "C", &[&a_peer, &b_peer]);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let mut created = 0;

    // Orders taken on every till at once.
    for round in 0..5 {
        let (sku_a, sku_b, sku_c) = (format!("A{round}"), format!("B{round}"), format!("C{round}"));
        let (x, y, z) = tokio::join!(
            create_order(&http, &a.url, &sku_a),
            create_order(&http, &b.url, &sku_b),
            create_order(&http, &c.url, &sku_c),
        );
        assert!(x["id"] != y["id"] && y["id"] != z["id"]);
        created += 3;
    }
    wait_converged(&http, &[&a.url, &b.url, &c.url], created).await;

    // B dies without warning; the others keep selling; B comes back from its disk.
    b.kill();
    for round in 0..3 {
        create_order(&http, &a.url, &format!("A-after-kill-{round}")).await;
        create_order(&http, &c.url, &format!("C-after-kill-{round}")).await;
        created += 2;
    }
    let b = start(dir, "B", &[&a_peer]);
    wait_converged(&http, &[&a.url, &b.url, &c.url], created).await;

    // C is cut off (paused); orders and edits happen on both sides of the cut.
    c.pause();
    let shared = create_order(&http, &a.url, "SHARED").await;
    created += 1;
    for round in 0..3 {
        create_order(&http, &b.url, &format!("B-while-C-away-{round}")).await;
        created += 1;
    }
    let shared_id = shared["id"].as_str().expect("id").to_string();
    // B must hold the shared order before it can edit it.
    wait_converged(&http, &[&a.url, &b.url], created).await;
    // Concurrent edits of one order on A and B: an item added on A, the status advanced on B.
    let (added, advanced) = tokio::join!(
        http.post(format!("{}/api/orders/{shared_id}/items", a.url))
            .json(&json!({ "sku": "TEA", "name": "Tea", "quantity": 2, "unitPrice": 2 }))
            .send(),
        http.post(format!("{}/api/orders/{shared_id}/status", b.url))
            .json(&json!({ "status": "SENT" }))
            .send(),
    );
    assert!(added.expect("add").status().is_success());
    assert!(advanced.expect("advance").status().is_success());
    c.resume();

    let converged = wait_converged(&http, &[&a.url, &b.url, &c.url], created).await;
    let (status, _, items) = &converged[&shared_id];
    assert_eq!((status.as_str(), *items), ("\"SENT\"", 2), "both concurrent edits survive");
    for id in converged.keys() {
        let (x, y, z) = tokio::join!(
            server_hash(&http, &a.url, id),
            server_hash(&http, &b.url, id),
            server_hash(&http, &c.url, id)
        );
        assert_eq!(x["serverHash"], y["serverHash"]);
        assert_eq!(y["serverHash"], z["serverHash"]);
    }
    let numbers: std::collections::BTreeSet<String> = {
        let mut numbers = std::collections::BTreeSet::new();
        for id in converged.keys() {
            numbers.insert(server_hash(&http, &a.url, id).await["orderNumber"].to_string());
        }
        numbers
    };
    assert_eq!(numbers.len(), created, "order numbers never collide");
    for till in [a, b, c] {
        assert!(till.terminate().success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_and_revoked_tills_get_no_document() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    shop(dir, &["A", "B", "C"]);
    // Another shop: its till has the wrong shop key.
    let other = dir.join("other");
    std::fs::create_dir_all(&other).expect("mkdir");
    shop(&other, &["W", "N"]);
    // N gets this shop's key but keeps the other HQ's roster entry: past pnet, not on the roster.
    let shop_key =
        serde_json::from_str::<Value>(&std::fs::read_to_string(dir.join("shop/shop.json")).expect("read"))
            .expect("json")["shopKey"]
            .clone();
    let n_path = other.join("N.till");
    let mut n_credentials: Value =
        serde_json::from_str(&std::fs::read_to_string(&n_path).expect("read")).expect("json");
    n_credentials["shopKey"] = shop_key;
    std::fs::write(&n_path, n_credentials.to_string()).expect("write");

    let a = start(dir, "A", &[]);
    let a_peer = a.peer.clone().expect("A listens");
    let b = start(dir, "B", &[&a_peer]);
    // C only witnesses what A sends its peers.
    let c = start(dir, "C", &[&a_peer]);
    // W logs its failed dials (a debug line): the proof that the wrong key kept it out.
    let w_args = support::shop_till_args(&other, "W", "W", SYNC_INTERVAL_MS, &[&a_peer]);
    let wrong_key = TillProcess::spawn_with(
        &w_args.iter().map(String::as_str).collect::<Vec<_>>(),
        &["--http", "127.0.0.1:0"],
        &[("RUST_LOG", "warn,tillmesh_net=debug")],
    );
    let not_on_roster = start(&other, "N", &[&a_peer]);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");

    create_order(&http, &a.url, "A1").await;
    create_order(&http, &wrong_key.url, "W1").await;
    create_order(&http, &not_on_roster.url, "N1").await;
    wait_converged(&http, &[&a.url, &b.url, &c.url], 1).await;
    // Each stranger has been turned away: W's dial to A failed, and A or N refused the other
    // at admission (whichever judged first blocked the connection). Nothing crossed before.
    wait_for("W's dial to A failing", || wrong_key.logged(&["dial failed"])).await;
    wait_for("A and N refusing each other", || {
        a.logged(&["peer is not on the roster: blocked", not_on_roster.peer_id()])
            || not_on_roster.logged(&["peer is not on the roster: blocked", a.peer_id()])
    })
    .await;
    assert_eq!(orders(&http, &a.url).await.len(), 1, "A took nothing from strangers");
    assert_eq!(orders(&http, &wrong_key.url).await.len(), 1, "wrong shop key: no document");
    assert_eq!(orders(&http, &not_on_roster.url).await.len(), 1, "not on the roster: no document");

    // Revoke B: HQ signs the revocation, any till takes it, B is cut off.
    let revocation = dir.join("revoke-B.json");
    let (ok, _, err) = cli(&[
        "shop",
        "revoke-till",
        "--dir",
        dir.join("shop").to_str().expect("utf-8"),
        "--code",
        "B",
        "--out",
        revocation.to_str().expect("utf-8"),
    ]);
    assert!(ok, "{err}");
    let (ok, _, err) = cli(&["roster", "apply", revocation.to_str().expect("utf-8"), "--till", &a.url]);
    assert!(ok, "{err}");
    // The revocation is in force once A has dropped B as a remote (nothing pending for it).
    let started = Instant::now();
    loop {
        let status = support::sync_status(&http, &a.url).await;
        let remotes = status["remotes"].as_array().expect("remotes");
        if !remotes.iter().any(|remote| remote["remote"] == "till-B") {
            break;
        }
        assert!(started.elapsed() < Duration::from_millis(CONVERGE_TIMEOUT_MS), "A kept till-B: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    create_order(&http, &a.url, "A2").await;
    // A sent A2 to its peers: C has it, and B would have it too were it still one of them.
    wait_converged(&http, &[&a.url, &c.url], 2).await;
    assert_eq!(orders(&http, &b.url).await.len(), 1, "the revoked till gets no new document");
    // A forged roster entry is refused at the door.
    let mut forged: Value =
        serde_json::from_str(&std::fs::read_to_string(&revocation).expect("read")).expect("json");
    forged["entry"]["revoked"] = json!(false);
    forged["entry"]["version"] = json!(99);
    let response = http.post(format!("{}/api/roster", a.url)).json(&forged).send().await.expect("send");
    assert_eq!(response.status(), reqwest::StatusCode::BAD_REQUEST);
    for till in [a, b, c, wrong_key, not_on_roster] {
        assert!(till.terminate().success());
    }
}
