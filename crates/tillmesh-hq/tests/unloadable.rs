//! A PostgreSQL record whose `document` column no longer loads (bit rot, a faulty writer, bytes
//! that crash Automerge's loader) stops neither HQ's start nor its projection: a new HQ process
//! on the same database hands every loadable record's document to its node and reports the bad
//! one (`TILLMESH_TEST_DATABASE_URL`; without it this prints `SKIPPED`).

mod common;
#[path = "common/kotlin.rs"]
mod kotlin;
#[path = "common/served.rs"]
mod served;

use std::time::{Duration, Instant};

use serde_json::json;
use served::Served;
use tillmesh_hq::{Access, PgRecords};
use uuid::Uuid;

const ADMIN_TOKEN: &str = "admin-secret-for-tests";

fn order(local_id: Uuid, number: &str) -> serde_json::Value {
    kotlin::soup_order(local_id, number, 1_704_067_200_000, 1_704_067_200_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_whose_document_does_not_load_stops_neither_start_nor_projection() {
    common::on_pg_database(|url| async move {
        let connect = |url: String| move |_| async move { PgRecords::connect(&url).await.expect("records") };
        let access = Access::new(ADMIN_TOKEN);
        let first = Served::start(connect(url.clone()), &access).await;
        let token = first.service.add_device("pos-a").await.expect("device");
        let (good, bad) = (Uuid::new_v4(), Uuid::new_v4());
        let body = json!({"deviceId": "pos-a", "orders": [order(good, "1001"), order(bad, "1002")],
                          "transactions": [], "lastSyncTimestamp": 0});
        let response = reqwest::Client::new()
            .post(format!("{}/api/sync/batch", first.base))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .expect("batch");
        assert!(response.status().is_success(), "{}", response.text().await.unwrap_or_default());
        first.stop().await;

        let crasher = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../fuzz/crashers/document_receive/document-load-panic-none.bin"),
        )
        .expect("crasher");
        let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await.expect("connect");
        let changed = sqlx::query("UPDATE sync_orders SET document = $1 WHERE local_id = $2::uuid")
            .bind(crasher)
            .bind(bad.to_string())
            .execute(&mut db)
            .await
            .expect("plant")
            .rows_affected();
        assert_eq!(changed, 1);

        // A new HQ process (an empty node) on the same database.
        let second = Served::start(connect(url.clone()), &access).await;
        let started = Instant::now();
        while second.service.node().store().document_count() < 1 {
            assert!(started.elapsed() < Duration::from_secs(30), "the good record never reached the node");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let store = second.service.node().store();
        assert_eq!(store.document_count(), 1, "only the loadable document");
        second.stop().await;
    })
    .await;
}
