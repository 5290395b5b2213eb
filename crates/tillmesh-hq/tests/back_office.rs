//! HQ's back office over HTTP (the page itself is driven in Chromium by the workspace's
//! `tests/back_office.rs`): signing in turns the admin token into a cookie the admin routes
//! take, and the overview sums the day's sales exactly, by till and by payment method, and lists
//! the payments awaiting HQ's settlement.

#[path = "common/served.rs"]
mod served;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, SET_COOKIE};
use serde_json::{Value, json};
use served::Served;
use tillmesh_core::{PaymentMethod, PaymentStatus, Quantity};
use tillmesh_hq::{Access, SledRecords};
use tillmesh_node::PaymentInput;
use tillmesh_node::till::{ItemInput, OrderInput};
use uuid::Uuid;

const ADMIN_TOKEN: &str = "admin-secret-for-the-back-office";

fn item(name: &str, price: &str) -> ItemInput {
    ItemInput {
        sku: name.to_uppercase(),
        name: name.into(),
        quantity: Quantity::pieces(1),
        unit_price: price.parse().expect("price"),
    }
}

fn paid(method: PaymentMethod) -> PaymentInput {
    PaymentInput {
        method,
        status: PaymentStatus::Paid,
        amount: None,
        card_last4: None,
        processor_reference: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_back_office_signs_in_with_a_cookie_and_sums_the_day_exactly() {
    let served = Served::start(
        |till| async move { SledRecords::open(till.store().clone()).expect("sled records") },
        &Access::new(ADMIN_TOKEN),
    )
    .await;
    let http = reqwest::Client::new();
    let base = served.base.clone();

    // The page is open (it holds no data); the overview is not, until signed in.
    let page = http.get(format!("{base}/")).send().await.expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    assert!(
        html.contains("HQ back office") && !html.contains("Send to kitchen"),
        "HQ's own page, not a till's"
    );
    let overview_url = format!("{base}/api/hq/overview?since=0");
    assert_eq!(http.get(&overview_url).send().await.expect("send").status(), StatusCode::UNAUTHORIZED);

    // A wrong token signs nothing in; the right one sets a cookie the admin routes take.
    let sign_in =
        |token: &str| http.post(format!("{base}/api/hq/session")).json(&json!({ "token": token })).send();
    let refused = sign_in("guess").await.expect("send");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(refused.headers().get(SET_COOKIE).is_none());
    let malformed =
        http.post(format!("{base}/api/hq/session")).json(&json!({ "tok": 1 })).send().await.expect("send");
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    let signed = sign_in(ADMIN_TOKEN).await.expect("send");
    assert_eq!(signed.status(), StatusCode::NO_CONTENT);
    let set = signed.headers().get(SET_COOKIE).expect("a cookie").to_str().expect("text").to_string();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
    let cookie = set.split(';').next().expect("name=value").to_string();
    let with_cookie = |url: &str| http.get(url).header(COOKIE, format!("theme=dark; {cookie}")).send();
    assert_eq!(with_cookie(&overview_url).await.expect("send").status(), StatusCode::OK);
    let forged = http.get(&overview_url).header(COOKIE, "tillmesh-admin=guess").send().await.expect("send");
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    // The page is rendered for who asks: the sign-in form, or with the cookie the office; its
    // parts are admin routes.
    assert!(html.contains("id=\"sign-in-form\"") && !html.contains("id=\"office\""), "{html}");
    let office = with_cookie(&format!("{base}/")).await.expect("send").text().await.expect("html");
    assert!(office.contains("id=\"office\"") && !office.contains("sign-in-form"), "{office}");
    for part in ["tills", "overview?since=0", "conflicts", "devices", "menu"] {
        let url = format!("{base}/screens/office/{part}");
        assert_eq!(http.get(&url).send().await.expect("send").status(), StatusCode::UNAUTHORIZED, "{part}");
        assert_eq!(with_cookie(&url).await.expect("send").status(), StatusCode::OK, "{part}");
    }
    let out = http.delete(format!("{base}/api/hq/session")).send().await.expect("send");
    assert!(out.headers().get(SET_COOKIE).expect("cleared").to_str().expect("text").contains("Max-Age=0"));

    // Orders on HQ's node: cents that floats would not add exactly, cash and card, one voided.
    let node = served.service.node();
    let order = |items: Vec<ItemInput>| async {
        node.create_order(OrderInput { local_id: None, items, notes: String::new() })
            .await
            .expect("order")
            .0
            .order
            .id
    };
    let cash = order(vec![item("tea", "0.10")]).await;
    node.record_payment(cash, paid(PaymentMethod::Cash)).await.expect("cash");
    let card = order(vec![item("cake", "0.20")]).await;
    node.record_payment(card, paid(PaymentMethod::Card)).await.expect("card");
    let other_card = order(vec![item("pie", "0.70")]).await;
    node.record_payment(other_card, paid(PaymentMethod::Card)).await.expect("card");
    let voided = order(vec![item("soup", "9.99")]).await;
    node.record_payment(voided, paid(PaymentMethod::Card)).await.expect("card");
    node.advance(voided, tillmesh_core::OrderStatus::Voided).await.expect("void");
    let unpaid = order(vec![item("bread", "1.00")]).await;
    node.settle(other_card, PaymentStatus::Captured).await.expect("captured");

    let overview: Value = with_cookie(&overview_url).await.expect("send").json().await.expect("json");
    let tally = |list: &str, key: &str| {
        overview[list].as_array().expect("a list").iter().find(|entry| entry["key"] == key).cloned()
    };
    // 0.10 + 0.20 + 0.70 with 8.25 % tax, each rounded to the cent: 0.11 + 0.22 + 0.76.
    let hq = tally("byTill", "hq").expect("HQ's node took the orders");
    assert_eq!((hq["orders"].as_u64(), hq["total"].to_string().as_str()), (Some(3), "1.09"), "{overview}");
    let by_card = tally("byMethod", "CARD").expect("card sales");
    assert_eq!((by_card["orders"].as_u64(), by_card["total"].to_string().as_str()), (Some(2), "0.98"));
    let by_cash = tally("byMethod", "CASH").expect("cash sales");
    assert_eq!(by_cash["total"].to_string(), "0.11");
    let ids = |list: &str| -> Vec<Uuid> {
        overview[list]
            .as_array()
            .expect("a list")
            .iter()
            .map(|order| order["id"].as_str().expect("id").parse().expect("uuid"))
            .collect()
    };
    assert_eq!(
        ids("unsettled"),
        vec![card],
        "the card claim awaits HQ; cash, the voided and the unpaid do not"
    );
    assert_eq!(ids("captured"), vec![other_card]);
    assert!(!ids("unsettled").contains(&unpaid));
    // The office's part shows the same sums, and the buttons that settle.
    let part = with_cookie(&format!("{base}/screens/office/overview?since=0")).await.expect("send");
    let part = part.text().await.expect("html");
    for shown in [
        "<td>hq</td><td>3 orders</td><td class=\"money\">$1.09</td>".to_string(),
        "<td>card</td><td>2 orders</td><td class=\"money\">$0.98</td>".to_string(),
        format!("data-api=\"POST /api/orders/{card}/settle\" data-body='{{\"status\":\"CAPTURED\"}}'"),
        format!("data-api=\"POST /api/orders/{other_card}/settle\" data-body='{{\"status\":\"REFUNDED\"}}'"),
    ] {
        assert!(part.contains(&shown), "the office shows {shown:?}: {part}");
    }

    // Nothing taken after `since` counts.
    let later = format!("{base}/api/hq/overview?since={}", i64::MAX / 2);
    let empty: Value = with_cookie(&later).await.expect("send").json().await.expect("json");
    assert_eq!(empty["byTill"], json!([]));
    assert_eq!(ids("unsettled").len(), 1);
    let bad = with_cookie(&format!("{base}/api/hq/overview?since=noon")).await.expect("send");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    served.stop().await;
}
