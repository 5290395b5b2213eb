//! Limits at HQ's edge. Values out of range are refused, record by record: times before
//! 2000-01-01 or past HQ's clock plus the skew allowed (an order dated 9999 would top every
//! till's list forever), and a sync token past the end of HQ's change feed, which would leave a
//! client waiting for positions that never come. A device resending one stale copy is told of
//! the conflict every time and the log holds it once. Runs on sled (and, for the ranges, on
//! PostgreSQL: `TILLMESH_TEST_DATABASE_URL`; without it that variant prints `SKIPPED`).

mod common;
#[path = "common/kotlin.rs"]
mod kotlin;
#[path = "common/served.rs"]
mod served;

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use served::Served;
use tillmesh_hq::records::RecordStore;
use tillmesh_hq::{Access, PgRecords, SledRecords};
use uuid::Uuid;

const ADMIN_TOKEN: &str = "admin-secret-for-tests";

fn now_ms() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis()).expect("ms")
}

fn order(created_at: i64, updated_at: i64) -> Value {
    let local_id = Uuid::new_v4();
    kotlin::soup_order(local_id, &format!("R-{local_id}"), created_at, updated_at)
}

/// Posts a legacy batch as `pos-a`; the JSON answer.
async fn post_batch(http: &reqwest::Client, base: &str, token: &str, body: &Value) -> Value {
    http.post(format!("{base}/api/sync/batch"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("batch")
        .json()
        .await
        .expect("json")
}

async fn check<S: RecordStore>(served: Served<S>) {
    let token = served.service.add_device("pos-a").await.expect("device");
    let http = reqwest::Client::new();
    let now = now_ms();
    let hour = 3_600_000;
    let cases = [
        (order(now - hour, now), true),
        (order(now, now + hour), true),
        (order(946_684_800_000, 946_684_800_000), true),
        (order(946_684_799_999, now), false),
        (order(253_402_300_799_000, 253_402_300_799_000), false),
        (order(now, now + 2 * 24 * hour), false),
        (order(0, now), false),
    ];
    let body = json!({
        "deviceId": "pos-a", "lastSyncTimestamp": 0,
        "orders": cases.iter().map(|(order, _)| order.clone()).collect::<Vec<_>>(), "transactions": []
    });
    let answer = post_batch(&http, &served.base, &token, &body).await;
    let synced = answer["syncedOrders"].as_array().expect("syncedOrders");
    for ((_, accepted), outcome) in cases.iter().zip(synced) {
        assert_eq!(outcome["success"], *accepted, "{outcome}");
        if !accepted {
            let message = outcome["message"].as_str().or(outcome["error"].as_str()).unwrap_or_default();
            assert!(message.contains("createdAt") || message.contains("updatedAt"), "{outcome}");
        }
    }
    assert_eq!(
        served.service.records().counts().await.expect("counts").orders,
        3,
        "only the good ones stored"
    );

    // A token past the feed's end: `updates` refuses it naming the current token; a batch with
    // it stores its records and answers everything from the start.
    let end = served.service.records().last_position().await.expect("end");
    let current = (4_000_000_000_000_000_000u64 + end).to_string();
    let past = (4_000_000_000_000_000_000u64 + end + 1_000).to_string();
    let response = http
        .get(format!("{}/api/sync/updates", served.base))
        .bearer_auth(&token)
        .query(&[("deviceId", "pos-a"), ("since", past.as_str())])
        .send()
        .await
        .expect("updates");
    assert_eq!(response.status(), reqwest::StatusCode::BAD_REQUEST);
    let refused: Value = response.json().await.expect("json");
    assert_eq!(refused["error"], "invalid_token");
    assert!(refused["detail"].as_str().is_some_and(|detail| detail.contains(&current)), "{refused}");
    let past_number: u64 = past.parse().expect("number");
    let body = json!({"deviceId": "pos-a", "lastSyncTimestamp": past_number, "orders": [order(now, now)], "transactions": []});
    let answer = post_batch(&http, &served.base, &token, &body).await;
    assert_eq!(answer["syncedOrders"][0]["success"], true, "{answer}");
    let next: u64 = answer["nextSyncToken"].as_str().expect("token").parse().expect("a Long");
    assert!(next < past_number, "the answer's token is within the feed: {answer}");
    served.stop().await;
}

#[tokio::test]
async fn out_of_range_values_are_refused_on_sled() {
    let access = Access::new(ADMIN_TOKEN);
    check(
        Served::start(
            |till| async move { SledRecords::open(till.store().clone()).expect("records") },
            &access,
        )
        .await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_values_are_refused_on_postgresql() {
    common::on_pg_database(|url| async move {
        let access = Access::new(ADMIN_TOKEN);
        check(
            Served::start(|_| async move { PgRecords::connect(&url).await.expect("records") }, &access).await,
        )
        .await;
    })
    .await;
}

/// A device resending the same stale copy (every 30 s, as the original client does) is told of
/// the conflict every time, and the conflict log holds it once.
#[tokio::test]
async fn repeated_identical_conflicts_are_logged_once() {
    let access = Access::new(ADMIN_TOKEN);
    let served = Served::start(
        |till| async move { SledRecords::open(till.store().clone()).expect("records") },
        &access,
    )
    .await;
    let token = served.service.add_device("pos-a").await.expect("device");
    let http = reqwest::Client::new();
    let now = now_ms();
    let mut first = order(now, now);
    let batch = |order: &Value| json!({"deviceId": "pos-a", "orders": [order], "transactions": [], "lastSyncTimestamp": 0});
    post_batch(&http, &served.base, &token, &batch(&first)).await;
    let mut newer = first.clone();
    newer["syncVersion"] = json!(2);
    newer["syncStatus"] = json!("MODIFIED");
    newer["order"]["orderStatus"] = json!("SENT");
    newer["order"]["updatedAt"] = json!(now + 1);
    post_batch(&http, &served.base, &token, &batch(&newer)).await;
    // The stale copy: version 1 again, with other content.
    first["syncStatus"] = json!("MODIFIED");
    first["order"]["orderStatus"] = json!("PREPARING");
    let mut reported = 0;
    for _ in 0..5 {
        let answer = post_batch(&http, &served.base, &token, &batch(&first)).await;
        reported += answer["syncedOrders"][0]["conflicts"].as_array().map_or(0, Vec::len);
    }
    let logged = served.service.records().conflicts(1_000).await.expect("conflicts");
    assert!(reported >= 5, "every send is told: {reported}");
    assert!(
        !logged.is_empty() && logged.len() * 5 <= reported,
        "logged once: {} of {reported}",
        logged.len()
    );
    served.stop().await;
}
