//! The till's HTTP API end to end on a real socket (127.0.0.1:0) over a real sled store.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tillmesh_core::{Clock, HqSigningKey, MenuDoc, TillCode, Timestamp};
use tillmesh_node::{SystemClock, Till, TillConfig};
use tokio::sync::oneshot;
use uuid::Uuid;

struct Harness {
    till: Till,
    base: String,
    client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    dir: tempfile::TempDir,
}

/// Wall-clock time, one millisecond further on every reading: edits made within the same
/// millisecond still order by time, however fast the machine.
#[derive(Debug)]
struct TickingClock(AtomicI64);

impl Clock for TickingClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.fetch_add(1, Ordering::Relaxed))
    }
}

impl Harness {
    async fn start() -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        Harness::start_in(dir).await
    }

    async fn start_in(dir: tempfile::TempDir) -> Harness {
        Harness::start_with(dir, |_| {}).await
    }

    /// A node holding HQ's signing key (HQ's own node, without HQ's admin layer).
    async fn start_hq() -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        Harness::start_with(dir, |config| {
            config.set_hq(HqSigningKey::from_bytes(&[7; 32]));
        })
        .await
    }

    async fn start_with(dir: tempfile::TempDir, configure: impl FnOnce(&mut TillConfig)) -> Harness {
        let mut config = TillConfig::new(dir.path().join("till"), TillCode::parse("A").expect("code"));
        config.tax_rate_bps = 825;
        configure(&mut config);
        let clock = TickingClock(AtomicI64::new(SystemClock.now().0));
        let till = Till::open(config, Arc::new(clock)).expect("open till");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(tillmesh_node::http::serve(listener, till.clone(), async {
            let _ = stopped.await;
        }));
        Harness { till, base, client: reqwest::Client::new(), stop: Some(stop), server: Some(server), dir }
    }

    async fn stop(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server");
        }
        drop(self.till);
        self.dir
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.client.get(url),
            "POST" => self.client.post(url),
            "PATCH" => self.client.patch(url),
            "PUT" => self.client.put(url),
            other => panic!("unknown method {other}"),
        };
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        let response = request.send().await.expect("send");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn raw(&self, path: &str, content_type: Option<&str>, body: Vec<u8>) -> (StatusCode, Value) {
        let mut request = self.client.post(format!("{}{path}", self.base)).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.expect("send");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Every document's bytes and the order sequence: what "nothing changed" compares.
    fn snapshot(&self) -> Vec<(Uuid, Vec<u8>)> {
        let store = self.till.store();
        store
            .document_ids()
            .expect("ids")
            .into_iter()
            .map(|id| (id, store.get_bytes(id).expect("read").expect("present")))
            .collect()
    }
}

fn soup(quantity: Value, price: Value) -> Value {
    json!({ "sku": "SOUP", "name": "Tomato soup", "quantity": quantity, "unitPrice": price })
}

#[tokio::test]
async fn orders_go_through_their_whole_life() {
    let till = Harness::start().await;
    let (status, order) = till
        .call(
            "POST",
            "/api/orders",
            Some(json!({ "items": [soup(json!(2), json!(4.50))], "notes": "table 4" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["orderNumber"], "A-1");
    assert_eq!(order["subtotal"].to_string(), "9.00");
    assert_eq!(order["tax"].to_string(), "0.74");
    let id = order["id"].as_str().expect("id").to_string();

    let (status, order) = till
        .call(
            "POST",
            &format!("/api/orders/{id}/items"),
            Some(json!({ "sku": "BREAD", "name": "Bread", "quantity": 1, "unitPrice": "2.25" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{order}");
    let bread =
        order["items"].as_array().expect("items").iter().find(|i| i["sku"] == "BREAD").expect("bread")["id"]
            .as_str()
            .expect("id")
            .to_string();
    let (status, order) =
        till.call("PATCH", &format!("/api/orders/{id}/items/{bread}"), Some(json!({ "quantity": 3 }))).await;
    assert_eq!(status, StatusCode::OK, "{order}");
    assert_eq!(order["subtotal"].to_string(), "15.75");
    // Sold by weight: 1.255 × 2.25 = 2.82375, rounded once to 2.82.
    let (status, order) = till
        .call("PATCH", &format!("/api/orders/{id}/items/{bread}"), Some(json!({ "quantity": 1.255 })))
        .await;
    assert_eq!(status, StatusCode::OK, "{order}");
    let line = order["items"].as_array().expect("items").iter().find(|i| i["sku"] == "BREAD").expect("bread");
    assert_eq!(
        (line["quantity"].to_string(), line["lineTotal"].to_string()),
        ("1.255".into(), "2.82".into())
    );
    assert_eq!(order["subtotal"].to_string(), "11.82");
    let (status, order) = till.call("POST", &format!("/api/orders/{id}/items/{bread}/void"), None).await;
    assert_eq!(status, StatusCode::OK, "{order}");
    assert_eq!(order["subtotal"].to_string(), "9.00");
    for next in ["SENT", "READY", "SERVED"] {
        let (status, order) =
            till.call("POST", &format!("/api/orders/{id}/status"), Some(json!({ "status": next }))).await;
        assert_eq!((status, order["status"].as_str()), (StatusCode::OK, Some(next)));
    }
    let (status, order) = till
        .call(
            "POST",
            &format!("/api/orders/{id}/payments"),
            Some(json!({ "method": "CARD", "cardLast4": "4242" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["payment"]["status"], "PAID");
    assert_eq!(order["payment"]["confirmed"], false);
    assert_eq!(order["transactions"][0]["amount"].to_string(), "9.74");
    assert_eq!(order["transactions"][0]["referenceNumber"], "A-1-P1");
    let (status, order) =
        till.call("PATCH", &format!("/api/orders/{id}"), Some(json!({ "notes": "paid" }))).await;
    assert_eq!((status, &order["notes"]), (StatusCode::OK, &json!("paid")));
    let (status, fetched) = till.call("GET", &format!("/api/orders/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, order, "GET returns what the last edit answered");

    let (status, sync) = till.call("GET", "/api/sync/status", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((sync["documents"].as_u64(), sync["pending"].as_u64()), (Some(2), Some(2)), "{sync}");
    assert_eq!(sync["peers"], json!([]), "a standalone till admits no peers: {sync}");
    let metrics = till.client.get(format!("{}/metrics", till.base)).send().await.expect("metrics");
    assert_eq!(metrics.status(), StatusCode::OK);
    let metrics = metrics.text().await.expect("text");
    assert!(metrics.contains("\ntillmesh_documents 2\n"), "{metrics}");
    assert!(metrics.contains("tillmesh_http_requests_total{class=\"2xx\"} "), "{metrics}");
    assert!(!metrics.contains("tillmesh_peers"), "a standalone till has no peers: {metrics}");
    let (status, answer) = till.call("POST", "/api/sync/now", None).await;
    assert_eq!((status, &answer["peers"]), (StatusCode::ACCEPTED, &json!([])));
    till.stop().await;
}

#[tokio::test]
async fn the_till_screen_is_served_and_free_form_items_need_no_sku() {
    let till = Harness::start().await;
    let page = till.client.get(format!("{}/", till.base)).send().await.expect("the till screen");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"].to_str().expect("type").starts_with("text/html"));
    let page = page.text().await.expect("text");
    assert!(page.contains("<title>Till") && page.contains("/api/changes"), "{page}");

    let typed_in = json!({ "name": "Daily special", "quantity": "0.35", "unitPrice": "24.90" });
    let (status, order) = till.call("POST", "/api/orders", Some(json!({ "items": [typed_in] }))).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["items"][0]["sku"], tillmesh_node::till::FREE_FORM_SKU);
    assert_eq!(order["items"][0]["lineTotal"].to_string(), "8.72");
    let (status, refused) = till
        .call(
            "POST",
            "/api/orders",
            Some(json!({ "items": [{ "sku": "", "name": "X", "quantity": 1, "unitPrice": 1 }] })),
        )
        .await;
    assert_eq!((status, &refused["error"]), (StatusCode::BAD_REQUEST, &json!("invalid_field")), "{refused}");
    till.stop().await;
}

/// The body of a screen or of one of its parts.
async fn screen(till: &Harness, path: &str) -> String {
    let answer = till.client.get(format!("{}{path}", till.base)).send().await.expect("send");
    assert_eq!(answer.status(), StatusCode::OK, "{path}");
    assert!(answer.headers()["content-type"].to_str().expect("type").starts_with("text/html"), "{path}");
    answer.text().await.expect("text")
}

#[tokio::test]
async fn the_screens_are_rendered_on_the_server_and_escape_what_tills_typed() {
    let till = Harness::start().await;
    let page = screen(&till, "/").await;
    assert!(page.contains("<title>Till A — tillmesh</title>") && page.contains("No open orders."), "{page}");
    assert!(page.contains("data-wrap=\"items\""), "a new order's first item makes the order: {page}");
    let script = till.client.get(format!("{}/assets/screen.js", till.base)).send().await.expect("script");
    assert!(script.headers()["content-type"].to_str().expect("type").starts_with("text/javascript"));

    // Text a till typed is shown, never run: a name and notes written as markup.
    let hostile = "<img src=x onerror=alert(1)>";
    let body = json!({ "items": [{ "name": hostile, "quantity": 2, "unitPrice": "1234.50" }],
                       "notes": "</textarea><script>alert(2)</script>" });
    let (status, order) = till.call("POST", "/api/orders", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let id = order["id"].as_str().expect("id");
    let number = order["orderNumber"].as_str().expect("number");
    let ticket = screen(&till, &format!("/?order={id}")).await;
    for shown in [
        format!("Order {number}"),
        "&#60;img src=x onerror=alert(1)&#62;".to_string(),
        "$2,469.00".to_string(),
        "$2,672.69".to_string(),
        "&#60;/textarea&#62;&#60;script&#62;".to_string(),
    ] {
        assert!(ticket.contains(&shown), "the ticket shows {shown:?}: {ticket}");
    }
    assert!(
        !ticket.contains(hostile) && !ticket.contains("<script>alert"),
        "nothing typed is markup: {ticket}"
    );
    let listed = screen(&till, "/screens/till/orders").await;
    assert!(listed.contains(&format!("data-order-id=\"{id}\"")) && listed.contains("$2,672.69"), "{listed}");
    let unknown = screen(&till, "/screens/till/ticket?order=no-such-order").await;
    assert!(unknown.contains("New order"), "an order that is not one shows a new ticket: {unknown}");

    // The kitchen shows it once sent, with the button that bumps it.
    assert!(!screen(&till, "/screens/kitchen/tickets").await.contains(id));
    let (status, _) =
        till.call("POST", &format!("/api/orders/{id}/status"), Some(json!({ "status": "SENT" }))).await;
    assert_eq!(status, StatusCode::OK);
    let kitchen = screen(&till, "/kitchen").await;
    assert!(kitchen.contains(&format!("data-order-id=\"{id}\"")), "{kitchen}");
    assert!(kitchen.contains("2 × &#60;img"), "{kitchen}");
    assert!(kitchen.contains(&format!("data-api=\"POST /api/orders/{id}/status\"")), "{kitchen}");
    till.stop().await;
}

#[tokio::test]
async fn the_same_local_id_creates_one_order() {
    let till = Harness::start().await;
    let body =
        json!({ "localId": "6f1c0d52-5b36-4b8f-9d2a-8d9a1c3e4f50", "items": [soup(json!(1), json!(1))] });
    let (first, order) = till.call("POST", "/api/orders", Some(body.clone())).await;
    let mut ids = Vec::new();
    for _ in 0..9 {
        let (status, again) = till.call("POST", "/api/orders", Some(body.clone())).await;
        assert_eq!(status, StatusCode::OK);
        ids.push(again["id"].clone());
    }
    assert_eq!(first, StatusCode::CREATED);
    assert!(ids.iter().all(|id| *id == order["id"]));
    assert_eq!(till.till.store().document_count(), 1);
    till.stop().await;
}

#[tokio::test]
async fn lists_page_and_filter() {
    let till = Harness::start().await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let (_, order) =
            till.call("POST", "/api/orders", Some(json!({ "items": [soup(json!(n + 1), json!(1))] }))).await;
        ids.push(order["id"].as_str().expect("id").to_string());
    }
    till.call("POST", &format!("/api/orders/{}/status", ids[0]), Some(json!({ "status": "SENT" }))).await;
    let (status, page) = till.call("GET", "/api/orders?limit=2", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["orders"].as_array().expect("orders").len(), 2);
    assert_eq!(page["orders"][0]["id"], json!(ids[0]), "the edited order is the most recent");
    let cursor = page["nextCursor"].as_str().expect("more pages");
    let (_, rest) = till.call("GET", &format!("/api/orders?limit=10&cursor={cursor}"), None).await;
    assert_eq!(rest["orders"].as_array().expect("orders").len(), 3);
    assert_eq!(rest["nextCursor"], Value::Null);
    let (_, sent) = till.call("GET", "/api/orders?status=SENT", None).await;
    assert_eq!(sent["orders"].as_array().expect("orders").len(), 1);
    let (_, none) = till.call("GET", "/api/orders?since=99999999999999", None).await;
    assert_eq!(none["orders"].as_array().expect("orders").len(), 0);
    till.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let till = Harness::start().await;
    let (_, order) =
        till.call("POST", "/api/orders", Some(json!({ "items": [soup(json!(1), json!(1))] }))).await;
    let id = order["id"].as_str().expect("id").to_string();
    let item = order["items"][0]["id"].as_str().expect("item").to_string();
    let (_, voided) =
        till.call("POST", "/api/orders", Some(json!({ "items": [soup(json!(1), json!(1))] }))).await;
    let voided = voided["id"].as_str().expect("id").to_string();
    till.call("POST", &format!("/api/orders/{voided}/void"), None).await;
    let missing = Uuid::new_v4();

    let long_name = "n".repeat(121);
    let many_items: Vec<Value> = (0..201).map(|_| soup(json!(1), json!(1))).collect();
    let table: Vec<(&str, String, Value, StatusCode, &str)> = vec![
        ("POST", "/api/orders".into(), json!({ "items": "soup" }), StatusCode::BAD_REQUEST, "invalid_body"),
        (
            "POST",
            "/api/orders".into(),
            json!({ "items": [], "table": 4 }),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "POST",
            "/api/orders".into(),
            json!({ "items": [soup(json!(1), json!(4.555))] }),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "POST",
            "/api/orders".into(),
            json!({ "items": [soup(json!(1), json!("NaN"))] }),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "POST",
            "/api/orders".into(),
            json!({ "items": [soup(json!(1), json!(1e300))] }),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "POST",
            "/api/orders".into(),
            json!({ "items": [soup(json!(1), json!(-1))] }),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "POST",
            "/api/orders".into(),
            json!({ "items": [soup(json!(0), json!(1))] }),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "POST",
            "/api/orders".into(),
            json!({ "items": [soup(json!(1.0005), json!(1))] }),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "POST",
            "/api/orders".into(),
            json!({ "items": [], "notes": "card 4111 1111 1111 1111" }),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "POST",
            "/api/orders".into(),
            json!({ "items": [{ "sku": "S", "name": long_name, "quantity": 1, "unitPrice": 1 }] }),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "POST",
            "/api/orders".into(),
            json!({ "items": many_items }),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "POST",
            format!("/api/orders/{id}/status"),
            json!({ "status": "OPEN" }),
            StatusCode::CONFLICT,
            "conflict",
        ),
        (
            "POST",
            format!("/api/orders/{id}/status"),
            json!({ "status": "BOGUS" }),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "POST",
            format!("/api/orders/{missing}/status"),
            json!({ "status": "SENT" }),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "PATCH",
            format!("/api/orders/{id}/items/{missing}"),
            json!({ "quantity": 2 }),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "PATCH",
            format!("/api/orders/{id}/items/{item}"),
            json!({ "quantity": 0 }),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "PATCH",
            format!("/api/orders/{id}/items/{item}"),
            json!({ "quantity": 0.0005 }),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "POST",
            format!("/api/orders/{id}/payments"),
            json!({ "method": "CARD", "status": "CAPTURED" }),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "POST",
            format!("/api/orders/{id}/payments"),
            json!({ "method": "CARD", "cardLast4": "12345" }),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "POST",
            format!("/api/orders/{id}/payments"),
            json!({ "method": "CARD", "processorReference": "4111111111111111" }),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "POST",
            format!("/api/orders/{id}/payments"),
            json!({ "method": "BITCOIN" }),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "POST",
            format!("/api/orders/{voided}/items"),
            soup(json!(1), json!(1)),
            StatusCode::CONFLICT,
            "conflict",
        ),
        ("POST", format!("/api/orders/{voided}/void"), Value::Null, StatusCode::CONFLICT, "conflict"),
        ("GET", "/api/orders/not-a-uuid".into(), Value::Null, StatusCode::BAD_REQUEST, "invalid_path"),
        ("GET", format!("/api/orders/{missing}"), Value::Null, StatusCode::NOT_FOUND, "not_found"),
        ("GET", "/api/orders?status=NOPE".into(), Value::Null, StatusCode::BAD_REQUEST, "invalid_query"),
        ("GET", "/api/orders?limit=abc".into(), Value::Null, StatusCode::BAD_REQUEST, "invalid_query"),
        ("GET", "/api/orders?cursor=zz".into(), Value::Null, StatusCode::BAD_REQUEST, "invalid_query"),
        ("GET", "/api/orders?table=4".into(), Value::Null, StatusCode::BAD_REQUEST, "invalid_query"),
        ("GET", "/api/nothing-here".into(), Value::Null, StatusCode::NOT_FOUND, "not_found"),
    ];
    for (method, path, body, expected_status, expected_error) in table {
        let before = till.snapshot();
        let body = if body.is_null() { None } else { Some(body) };
        let (status, answer) = till.call(method, &path, body.clone()).await;
        assert_eq!(status, expected_status, "{method} {path} {body:?}: {answer}");
        assert_eq!(answer["error"], expected_error, "{method} {path} {body:?}: {answer}");
        assert!(answer["detail"].as_str().is_some_and(|d| !d.is_empty()), "{answer}");
        assert!(till.snapshot() == before, "{method} {path} changed the store");
    }

    let raw_cases: Vec<(Option<&str>, Vec<u8>, StatusCode, &str)> = vec![
        (Some("application/json"), b"{not json".to_vec(), StatusCode::BAD_REQUEST, "invalid_json"),
        (None, br#"{"items":[]}"#.to_vec(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        (Some("application/json"), vec![b' '; 70 * 1024], StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
    ];
    for (content_type, body, expected_status, expected_error) in raw_cases {
        let before = till.snapshot();
        let (status, answer) = till.raw("/api/orders", content_type, body).await;
        assert_eq!((status, answer["error"].as_str()), (expected_status, Some(expected_error)), "{answer}");
        assert!(till.snapshot() == before);
    }
    // An order the domain refuses (here a quantity of 0) uses no order number.
    let (status, answer) =
        till.call("POST", "/api/orders", Some(json!({ "items": [soup(json!(0), json!(1))] }))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (_, next) =
        till.call("POST", "/api/orders", Some(json!({ "items": [soup(json!(1), json!(1))] }))).await;
    assert_eq!(next["orderNumber"], "A-3", "the refused order took no number: {next}");
    till.stop().await;
}

#[tokio::test]
async fn only_hq_writes_the_menu_and_a_bad_menu_changes_nothing() {
    let menu_item = |sku: &str, name: &str, price: Value| {
        json!({ "sku": sku, "name": name, "category": "Soups", "price": price, "taxClass": "reduced",
                "available": true })
    };
    let till = Harness::start().await;
    let (status, menu) = till.call("GET", "/api/menu", None).await;
    assert_eq!((status, &menu["id"], &menu["items"]), (StatusCode::OK, &Value::Null, &json!([])), "{menu}");
    let body = json!({ "items": [menu_item("SOUP", "Soup", json!("4.50"))] });
    let (status, refused) = till.call("PUT", "/api/menu", Some(body.clone())).await;
    assert_eq!((status, refused["error"].as_str()), (StatusCode::FORBIDDEN, Some("not_hq")), "{refused}");
    let (status, _) = till.call("PATCH", "/api/menu/items/SOUP", Some(json!({ "price": "1" }))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    till.stop().await;

    let hq = Harness::start_hq().await;
    let menu_id = MenuDoc::id_for(&HqSigningKey::from_bytes(&[7; 32]).public_key()).to_string();
    let (_, empty) = hq.call("GET", "/api/menu", None).await;
    assert_eq!((empty["id"].as_str(), &empty["items"]), (Some(menu_id.as_str()), &json!([])));
    let before = hq.snapshot();
    let soup = menu_item("SOUP", "Soup", json!("4.50"));
    let table: Vec<(Value, &str, &str)> = vec![
        (
            json!({ "items": [soup.clone(), menu_item("TEA", "", json!(2))] }),
            "invalid_field",
            "menu item 2 (SKU \"TEA\"): name must not be empty",
        ),
        (
            json!({ "items": [soup.clone(), menu_item("SOUP", "Again", json!(2))] }),
            "invalid_field",
            "menu item 2 (SKU \"SOUP\"): sku: listed twice",
        ),
        (
            json!({ "items": [menu_item("SOUP", "Soup", json!("-1"))] }),
            "invalid_field",
            "menu item 1 (SKU \"SOUP\"): price: negative amount",
        ),
        (
            json!({ "items": [soup.clone(), menu_item("TEA", "Tea", json!(4.999))] }),
            "invalid_body",
            "items[1].price",
        ),
        (json!({ "currency": "EUR", "items": [soup.clone()] }), "invalid_field", "currency"),
        (json!({ "items": [soup.clone()], "colour": "red" }), "invalid_body", "colour"),
    ];
    for (body, code, detail) in table {
        let (status, answer) = hq.call("PUT", "/api/menu", Some(body)).await;
        assert_eq!((status, answer["error"].as_str()), (StatusCode::BAD_REQUEST, Some(code)), "{answer}");
        assert!(answer["detail"].as_str().is_some_and(|text| text.contains(detail)), "{detail}: {answer}");
        assert_eq!(hq.snapshot(), before, "a refused menu wrote nothing");
    }
    let (status, unknown) = hq.call("PATCH", "/api/menu/items/SOUP", Some(json!({ "price": "1" }))).await;
    assert_eq!((status, unknown["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{unknown}");
    assert_eq!(hq.snapshot(), before);

    let body = json!({ "currency": "USD", "items": [soup, menu_item("TEA", "Tea", json!(2))] });
    let (status, written) = hq.call("PUT", "/api/menu", Some(body.clone())).await;
    assert_eq!(status, StatusCode::OK, "{written}");
    assert_eq!(written["id"].as_str(), Some(menu_id.as_str()));
    assert_eq!(written["items"][0]["price"].to_string(), "4.50", "{written}");
    let after = hq.snapshot();
    let (status, _) = hq.call("PUT", "/api/menu", Some(body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(hq.snapshot(), after, "the same menu again writes nothing");
    let (status, patched) =
        hq.call("PATCH", "/api/menu/items/TEA", Some(json!({ "price": "2.20", "available": false }))).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    let tea = &patched["items"][1];
    assert_eq!(
        (tea["sku"].as_str(), tea["price"].to_string(), &tea["available"]),
        (Some("TEA"), "2.20".into(), &json!(false))
    );
    let (_, read) = hq.call("GET", "/api/menu", None).await;
    assert_eq!(read, patched);

    // One item added (the back office's editor): priced, signed and listed; a SKU already on the
    // menu, or a bad item, refused with nothing written.
    let pie = json!({ "sku": "PIE/2", "name": "Pie", "category": "Desserts", "taxClass": "standard",
                      "price": "3.10", "available": true });
    let (status, added) = hq.call("POST", "/api/menu/items", Some(pie.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    let listed = added["items"].as_array().expect("items");
    let pie_listed = listed.iter().find(|item| item["sku"] == "PIE/2").expect("the pie is listed");
    assert_eq!((pie_listed["price"].to_string(), &pie_listed["available"]), ("3.10".into(), &json!(true)));
    assert_eq!(listed.len(), 3, "{added}");
    let after = hq.snapshot();
    let refusals = [
        (pie.clone(), StatusCode::CONFLICT, "on the menu already"),
        (menu_item("CAKE", "", json!("2")), StatusCode::BAD_REQUEST, "name must not be empty"),
        (menu_item("CAKE", "Cake", json!("2.001")), StatusCode::BAD_REQUEST, "price"),
    ];
    for (body, wanted, detail) in refusals {
        let (status, answer) = hq.call("POST", "/api/menu/items", Some(body)).await;
        assert_eq!(status, wanted, "{answer}");
        assert!(answer["detail"].as_str().is_some_and(|text| text.contains(detail)), "{detail}: {answer}");
        assert_eq!(hq.snapshot(), after, "a refused item wrote nothing");
    }
    let (status, patched) =
        hq.call("PATCH", "/api/menu/items/PIE%2F2", Some(json!({ "available": false }))).await;
    assert_eq!(status, StatusCode::OK, "a SKU with a slash is reached through its encoded path: {patched}");
    hq.stop().await;

    let till = Harness::start().await;
    let (status, refused) = till.call("POST", "/api/menu/items", Some(pie)).await;
    assert_eq!((status, refused["error"].as_str()), (StatusCode::FORBIDDEN, Some("not_hq")), "{refused}");
    till.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_keeps_every_acknowledged_order() {
    let till = Harness::start().await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        let (status, order) =
            till.call("POST", "/api/orders", Some(json!({ "items": [soup(json!(1), json!(3))] }))).await;
        assert_eq!(status, StatusCode::CREATED);
        ids.push(order["id"].clone());
    }
    let dir = till.stop().await;
    let till = Harness::start_in(dir).await;
    for id in &ids {
        let (status, _) = till.call("GET", &format!("/api/orders/{}", id.as_str().expect("id")), None).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (_, order) =
        till.call("POST", "/api/orders", Some(json!({ "items": [soup(json!(1), json!(3))] }))).await;
    assert_eq!(order["orderNumber"], "A-21", "numbering continues after a restart");
    till.stop().await;
}

/// Documents on the till's own disk that no longer load (bit rot; here one replaced by bytes
/// that crash Automerge's loader, one cut short) are set aside when the till opens: the till
/// serves and lists the rest, finds nothing at the bad ids, keeps the bytes for inspection and
/// takes new orders — no crash, no crash loop.
#[tokio::test]
async fn stored_documents_that_no_longer_load_are_set_aside_at_open() {
    let till = Harness::start().await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        let (status, order) =
            till.call("POST", "/api/orders", Some(json!({ "items": [soup(json!(1), json!(3))] }))).await;
        assert_eq!(status, StatusCode::CREATED);
        ids.push(Uuid::parse_str(order["id"].as_str().expect("id")).expect("uuid"));
    }
    let dir = till.stop().await;
    let crasher = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/crashers/document_receive/document-load-oom.bin"),
    )
    .expect("crasher");
    {
        let db = sled::open(dir.path().join("till")).expect("sled");
        let docs = db.open_tree("docs").expect("docs");
        docs.insert(ids[1].as_bytes(), crasher.as_slice()).expect("plant");
        let whole = docs.get(ids[2].as_bytes()).expect("read").expect("present");
        docs.insert(ids[2].as_bytes(), &whole[..whole.len() / 2]).expect("cut");
        db.flush().expect("flush");
    }
    let till = Harness::start_in(dir).await;
    let scrubbed = till.till.clone();
    tokio::task::spawn_blocking(move || scrubbed.scrub()).await.expect("join").expect("scrub");
    assert_eq!(till.till.store().quarantined_count(), 2, "both set aside, once");
    let (status, page) = till.call("GET", "/api/orders", None).await;
    assert_eq!(status, StatusCode::OK);
    let listed: Vec<&str> =
        page["orders"].as_array().expect("orders").iter().map(|o| o["id"].as_str().expect("id")).collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    for (n, id) in ids.iter().enumerate() {
        let (status, _) = till.call("GET", &format!("/api/orders/{id}"), None).await;
        let expected = if n == 1 || n == 2 { StatusCode::NOT_FOUND } else { StatusCode::OK };
        assert_eq!(status, expected, "order {n}");
    }
    let kept = till.till.store().quarantined().expect("quarantine");
    assert!(kept.iter().all(|entry| entry.from == "disk" && (entry.id == ids[1] || entry.id == ids[2])));
    assert!(kept.iter().any(|entry| entry.bytes == crasher));
    let (status, listed) = till.call("GET", "/api/quarantine", None).await;
    assert_eq!(status, StatusCode::OK);
    let listed = listed.as_array().expect("entries");
    assert_eq!(listed.len(), 2);
    assert!(
        listed.iter().any(|entry| entry["bytes"] == hex_of(&crasher) && entry["from"] == "disk"),
        "{listed:?}"
    );
    let (status, _) =
        till.call("POST", "/api/orders", Some(json!({ "items": [soup(json!(1), json!(3))] }))).await;
    assert_eq!(status, StatusCode::CREATED);
    let metrics = till
        .client
        .get(format!("{}/metrics", till.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("tillmesh_documents_quarantined 2"), "{metrics}");
    till.stop().await;
}

/// The till's API answers for localhost, IP addresses and the names it was given, and refuses
/// any other `Host` (a web page reaching it by DNS rebinding) without doing anything.
#[tokio::test]
async fn only_allowed_hosts_reach_the_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = TillConfig::new(dir.path().join("till"), TillCode::parse("A").expect("code"));
    config.allowed_hosts = vec!["Till-A.shop.lan".to_string()];
    let till = Till::open(config, Arc::new(SystemClock)).expect("open till");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(tillmesh_node::http::serve(listener, till.clone(), async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let order = json!({ "items": [soup(json!(1), json!(3))] });
    let port = address.port();
    for (host, allowed) in [
        (format!("127.0.0.1:{port}"), true),
        (format!("localhost:{port}"), true),
        ("localhost".to_string(), true),
        (format!("[::1]:{port}"), true),
        (format!("192.168.1.20:{port}"), true),
        (format!("till-a.shop.lan:{port}"), true),
        (format!("evil.example:{port}"), false),
        ("till-a.shop.lan.evil.example".to_string(), false),
        (format!("localhost.evil.example:{port}"), false),
    ] {
        let before = till.store().document_count();
        let response = client
            .post(format!("http://{address}/api/orders"))
            .header(reqwest::header::HOST, host.as_str())
            .json(&order)
            .send()
            .await
            .expect("send");
        if allowed {
            assert_eq!(response.status(), StatusCode::CREATED, "{host}");
        } else {
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{host}");
            let body: Value = response.json().await.expect("json");
            assert_eq!(body["error"], "host_not_allowed");
            assert_eq!(till.store().document_count(), before, "{host}: nothing written");
        }
    }
    let _ = stop.send(());
    server.await.expect("server task").expect("server");
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
