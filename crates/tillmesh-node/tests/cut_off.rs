//! A till's writes answer the truth whatever the clock and the client do. Time is paused
//! (tokio's test clock): whenever the server waits on the disk, the clock jumps to the next
//! timer, so a timeout armed on a write fires before the write is stored. A write is still
//! answered once stored, never 408; a client that gives up mid-write leaves the order stored once
//! and handed to the sync driver, and sending it again finds it instead of making another.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use tillmesh_core::TillCode;
use tillmesh_node::{SystemClock, Till, TillConfig};
use tillmesh_store::OrderQuery;
use tower::ServiceExt;
use uuid::Uuid;

fn open_till(dir: &tempfile::TempDir) -> Till {
    let config = TillConfig::new(dir.path().join("till"), TillCode::parse("A").expect("code"));
    Till::open(config, Arc::new(SystemClock)).expect("open till")
}

fn create_order(local_id: Uuid) -> Request<Body> {
    let body = json!({
        "localId": local_id,
        "items": [{ "sku": "TEA", "name": "Tea", "quantity": 1, "unitPrice": "2.00" }],
    });
    Request::post("/api/orders")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("request")
}

async fn json_of(response: Response) -> Value {
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
    serde_json::from_slice(&bytes).expect("JSON")
}

/// The ids of the orders the till holds.
fn order_ids(till: &Till) -> Vec<Uuid> {
    let page = till.list(&OrderQuery { limit: 500, ..OrderQuery::default() }).expect("list");
    page.orders.iter().map(|order| order.id).collect()
}

fn id_of(order: &Value) -> Uuid {
    order["id"].as_str().and_then(|id| id.parse().ok()).expect("an order id")
}

#[tokio::test(start_paused = true)]
async fn a_write_is_answered_when_stored_however_long_it_takes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let till = open_till(&dir);
    let app = tillmesh_node::http::app(till.clone());

    let response = app.clone().oneshot(create_order(Uuid::new_v4())).await.expect("answered");
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(order_ids(&till), vec![id_of(&json_of(response).await)]);

    // Reads keep their timeout.
    let list = Request::get("/api/orders").body(Body::empty()).expect("request");
    assert_eq!(app.oneshot(list).await.expect("answered").status(), StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn a_client_that_gives_up_mid_write_leaves_it_stored_once_and_pushed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let till = open_till(&dir);
    let pushed = till.writer().follow_local_writes();
    let app = tillmesh_node::http::app(till.clone());
    let local_id = Uuid::new_v4();

    // The client gives up after a millisecond: as soon as the server waits on the disk.
    let _ = tokio::time::timeout(Duration::from_millis(1), app.clone().oneshot(create_order(local_id))).await;
    tokio::time::resume();
    tokio::time::timeout(Duration::from_secs(10), pushed.written())
        .await
        .expect("the order is handed to the sync driver");
    let kept = till.writer().submit(|context| Ok(context.take_local_writes())).await.expect("taken");
    let [change] = kept.writes.as_slice() else { panic!("one write to push, not {kept:?}") };
    assert!(!kept.dropped);
    assert!(change.created);
    assert_eq!(order_ids(&till), vec![change.id], "stored once");

    let response = app.oneshot(create_order(local_id)).await.expect("answered");
    assert_eq!(response.status(), StatusCode::OK, "sent again: found, not made again");
    assert_eq!(id_of(&json_of(response).await), change.id);
    assert_eq!(order_ids(&till).len(), 1);
}
