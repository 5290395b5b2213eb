//! Writes cut off or slower than the request timeout answer the truth.
//!
//! Batches cut off mid-way — the client gives up after a few milliseconds, while HQ is between
//! committing records in PostgreSQL and writing their documents — leave no split: HQ's work runs
//! to its end, every committed record's document reaches HQ's node, and sending each batch again
//! stores nothing twice (`TILLMESH_TEST_DATABASE_URL`; without it this prints `SKIPPED`).
//!
//! The node's own writes behind HQ's admin token (orders, settlement) are answered once stored,
//! never 408, however long they take: time is paused (tokio's test clock), so whenever HQ waits
//! on the disk the clock jumps to the next timer, and a timeout armed on a write fires first.

mod common;
#[path = "common/kotlin.rs"]
mod kotlin;
#[path = "common/served.rs"]
mod served;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use served::Served;
use tillmesh_core::PaymentStatus;
use tillmesh_hq::records::RecordStore;
use tillmesh_hq::{Access, Hq, PgRecords, SledRecords};
use tillmesh_node::SystemClock;
use tower::ServiceExt;
use uuid::Uuid;

const ADMIN_TOKEN: &str = "admin-secret-for-tests";
const ORDERS_PER_BATCH: usize = 150;
/// How long the client waits before it gives up, per batch: cuts at different points.
const CUT_AFTER_MS: [u64; 6] = [1, 3, 8, 15, 30, 60];

fn order(local_id: Uuid, number: usize) -> Value {
    kotlin::soup_order(local_id, &format!("CUT-{number}"), 1_704_067_200_000, 1_704_067_200_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_off_batches_leave_no_record_without_its_document() {
    common::on_pg_database(|url| async move {
        let access = Access::new(ADMIN_TOKEN);
        let served =
            Served::start(|_| async move { PgRecords::connect(&url).await.expect("records") }, &access).await;
        let token = served.service.add_device("pos-a").await.expect("device");
        let mut batches = Vec::new();
        for (batch, cut_after_ms) in CUT_AFTER_MS.iter().enumerate() {
            let orders: Vec<Value> =
                (0..ORDERS_PER_BATCH).map(|n| order(Uuid::new_v4(), batch * ORDERS_PER_BATCH + n)).collect();
            let body =
                json!({"deviceId": "pos-a", "orders": orders, "transactions": [], "lastSyncTimestamp": 0});
            let impatient = reqwest::Client::builder()
                .timeout(Duration::from_millis(*cut_after_ms))
                .build()
                .expect("client");
            // Most of these give up before HQ answers.
            let _ = impatient
                .post(format!("{}/api/sync/batch", served.base))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await;
            batches.push(body);
        }

        // Every record committed gets its document on HQ's node.
        let records = served.service.records();
        let node = served.service.node().store().clone();
        let started = Instant::now();
        loop {
            let versions = records.versions().await.expect("versions");
            let missing = versions
                .iter()
                .filter(|version| node.get_bytes(version.doc_id).ok().flatten().is_none())
                .count();
            if missing == 0 {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "{missing} records without their document");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // Sent again in full: every record is answered, none stored twice.
        let patient = reqwest::Client::new();
        for body in &batches {
            let answer: Value = patient
                .post(format!("{}/api/sync/batch", served.base))
                .bearer_auth(&token)
                .json(body)
                .send()
                .await
                .expect("resend")
                .json()
                .await
                .expect("json");
            let synced = answer["syncedOrders"].as_array().expect("syncedOrders");
            assert_eq!(synced.len(), ORDERS_PER_BATCH);
            assert!(synced.iter().all(|order| order["success"] == true), "{answer}");
        }
        let versions = records.versions().await.expect("versions");
        let unique: HashSet<Uuid> = versions.iter().map(|version| version.local_id).collect();
        assert_eq!(versions.len(), CUT_AFTER_MS.len() * ORDERS_PER_BATCH);
        assert_eq!(unique.len(), versions.len(), "nothing stored twice");
        assert!(versions.iter().all(|version| node.get_bytes(version.doc_id).ok().flatten().is_some()));
        served.stop().await;
    })
    .await;
}

/// A `POST` of `body` to HQ's `path` with `token`.
fn post(path: &str, token: &str, body: &Value) -> Request<Body> {
    Request::post(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("request")
}

#[tokio::test(start_paused = true)]
async fn the_nodes_writes_behind_the_admin_token_are_answered_when_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = served::open_hq_node(dir.path());
    let records = SledRecords::open(node.store().clone()).expect("records");
    let app = Hq::start(records, node.clone(), Arc::new(SystemClock), &Access::new(ADMIN_TOKEN)).app();
    let order = json!({"items": [{"sku": "TEA", "name": "Tea", "quantity": 1, "unitPrice": "2.00"}]});

    let refused =
        app.clone().oneshot(post("/api/orders", "not-the-admin-token", &order)).await.expect("answer");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let created = app.clone().oneshot(post("/api/orders", ADMIN_TOKEN, &order)).await.expect("answer");
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value =
        serde_json::from_slice(&axum::body::to_bytes(created.into_body(), usize::MAX).await.expect("body"))
            .expect("JSON");
    let id = created["id"].as_str().expect("id");
    let settle = post(&format!("/api/orders/{id}/settle"), ADMIN_TOKEN, &json!({"status": "CAPTURED"}));
    let settled = app.oneshot(settle).await.expect("answer");
    assert_eq!(settled.status(), StatusCode::OK);
    let stored = node.order(id.parse().expect("uuid")).expect("the order is stored");
    assert_eq!(
        (stored.order.payment.status, stored.order.payment.confirmed),
        (PaymentStatus::Captured, true)
    );
}
