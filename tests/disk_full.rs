//! A till whose disk fills up (its data directory on an 8 MB tmpfs): writes are refused at once
//! with 507 `disk_full`, reads, health (`degraded: disk full`) and metrics keep answering, every
//! acknowledged order stays, and once space is back the till writes again by itself, without a
//! restart; SIGTERM then stops it cleanly. Mounting a tmpfs needs root: elsewhere the test
//! prints SKIPPED.

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use support::{TillProcess, Tmpfs, create_five_dish_order, is_root};

/// Orders sent at most before the disk must have filled (8 MB at ≈ 3.5 KB an order).
const ORDERS_MAX: usize = 20_000;
/// How long a refused write or a degraded read may take.
const ANSWER_WITHIN: Duration = Duration::from_secs(1);

async fn get(http: &reqwest::Client, url: &str, path: &str) -> (StatusCode, Value, Duration) {
    let started = Instant::now();
    let response = http.get(format!("{url}{path}")).send().await.expect("get");
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_keeps_reads_and_recovers_without_a_restart() {
    if !is_root() {
        let _ = writeln!(std::io::stderr(), "SKIPPED: disk full test (mounting a tmpfs needs root)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(tmpfs) = Tmpfs::mount(&dir.path().join("disk"), "8m") else {
        let _ = writeln!(std::io::stderr(), "SKIPPED: disk full test (mount -t tmpfs failed)");
        return;
    };
    let data = tmpfs.path().join("till");
    let till = TillProcess::spawn(&["till", "--data-dir", data.to_str().expect("utf-8"), "--code", "A"]);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");

    let mut acknowledged = Vec::new();
    let refused = loop {
        assert!(acknowledged.len() < ORDERS_MAX, "the disk never filled");
        let (status, body) = create_five_dish_order(&http, &till.url, acknowledged.len()).await;
        if status == StatusCode::CREATED {
            acknowledged.push(body["id"].as_str().expect("id").to_string());
        } else {
            break (status, body);
        }
    };
    // The write that met the full disk is answered as not made durable; the next ones are
    // refused at once as disk full.
    assert!(refused.0.is_server_error(), "{refused:?}");
    let started = Instant::now();
    let (status, body) = create_five_dish_order(&http, &till.url, 0).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::INSUFFICIENT_STORAGE, Some("disk_full")),
        "{body}"
    );
    assert!(started.elapsed() < ANSWER_WITHIN, "refused at once");

    let (status, health, took) = get(&http, &till.url, "/api/health").await;
    assert_eq!(
        (status, health["status"].as_str()),
        (StatusCode::OK, Some("degraded: disk full")),
        "{health}"
    );
    assert!(took < ANSWER_WITHIN);
    let started = Instant::now();
    let metrics = http.get(format!("{}/metrics", till.url)).send().await.expect("metrics");
    assert_eq!(metrics.status(), StatusCode::OK);
    assert!(started.elapsed() < ANSWER_WITHIN);
    let first = &acknowledged[0];
    let (status, body, took) = get(&http, &till.url, &format!("/api/orders/{first}")).await;
    assert_eq!(status, StatusCode::OK, "reads go on: {body}");
    assert!(took < ANSWER_WITHIN);

    // Space back: the till writes again by itself.
    tmpfs.resize("64m");
    let started = Instant::now();
    loop {
        let (status, body) = create_five_dish_order(&http, &till.url, acknowledged.len()).await;
        if status == StatusCode::CREATED {
            acknowledged.push(body["id"].as_str().expect("id").to_string());
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "never wrote again: {status} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, health, _) = get(&http, &till.url, "/api/health").await;
    assert_eq!(health["status"], "ok");
    for id in &acknowledged {
        let (status, _, _) = get(&http, &till.url, &format!("/api/orders/{id}")).await;
        assert_eq!(status, StatusCode::OK, "acknowledged order {id} kept");
    }
    let started = Instant::now();
    assert!(till.terminate().success(), "a clean stop");
    assert!(started.elapsed() < Duration::from_secs(5), "SIGTERM stops it within seconds");
    drop(tmpfs);
}
