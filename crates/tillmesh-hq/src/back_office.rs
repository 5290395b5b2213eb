//! HQ's back office: the page at `/`, signing in to it, and the day's overview it shows.
//!
//! Signing in exchanges the admin token for a cookie (`HttpOnly`, `SameSite=Strict`) that the
//! admin routes accept like the bearer token, so that the page and its change stream
//! (`EventSource` sends no headers) need none; no other site's page can send it. The overview —
//! sales by till and by payment method since a time, payments awaiting HQ's settlement, captured
//! payments that may be refunded — is computed from the node's order summaries in exact cents.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;
use tillmesh_core::{Amount, Currency, OrderStatus, PaymentMethod, PaymentStatus, Timestamp};
use tillmesh_node::{Till, TillError};
use tillmesh_store::{OrderQuery, OrderSummary, PAGE_ROWS_MAX};

/// The cookie that carries the admin token once signed in.
const ADMIN_COOKIE: &str = "tillmesh-admin";

/// The back office page (compiled into the binary).
pub(crate) async fn page() -> Html<&'static str> {
    Html(include_str!("back_office.html"))
}

/// The admin token in a request's cookie, if signed in.
pub(crate) fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .filter_map(|cookie| cookie.trim().split_once('='))
        .find(|(name, _)| *name == ADMIN_COOKIE)
        .map(|(_, token)| token)
        .filter(|token| !token.is_empty())
}

/// The answer to a sign-in with the right token: the cookie set.
pub(crate) fn signed_in(token: &str) -> Response {
    set_cookie(&format!("{ADMIN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"))
}

/// The answer to a sign-out: the cookie cleared.
pub(crate) fn signed_out() -> Response {
    set_cookie(&format!("{ADMIN_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"))
}

fn set_cookie(cookie: &str) -> Response {
    match HeaderValue::from_str(cookie) {
        Ok(value) => (StatusCode::NO_CONTENT, [(header::SET_COOKIE, value)]).into_response(),
        // Only a token with characters a header cannot carry gets here: it is not HQ's.
        Err(_) => StatusCode::UNAUTHORIZED.into_response(),
    }
}

/// Sales and payments since a time, as the back office shows them.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Overview {
    /// The start of the period (orders taken at or after it count as its sales).
    since: Timestamp,
    /// Paid or captured orders of the period, by till.
    by_till: Vec<Tally>,
    /// Paid or captured orders of the period, by payment method.
    by_method: Vec<Tally>,
    /// Payments a till took that HQ has not settled yet (card and other non-cash claims), any
    /// time: capture or decline.
    unsettled: Vec<OrderSummary>,
    /// Payments HQ captured for orders of the period: refundable.
    captured: Vec<OrderSummary>,
}

/// Orders and their total for one till or one payment method, in one currency.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Tally {
    /// The till (its device id) or the payment method.
    key: String,
    currency: Currency,
    orders: u64,
    total: Amount,
}

/// Reads every order summary once and sums the period's sales in exact cents.
pub(crate) fn overview(till: &Till, since: Timestamp) -> Result<Overview, TillError> {
    let mut by_till: BTreeMap<(String, Currency), (u64, Amount)> = BTreeMap::new();
    let mut by_method: BTreeMap<(String, Currency), (u64, Amount)> = BTreeMap::new();
    let mut unsettled = Vec::new();
    let mut captured = Vec::new();
    let mut query = OrderQuery { limit: PAGE_ROWS_MAX, ..OrderQuery::default() };
    loop {
        let page = till.list(&query)?;
        for order in page.orders {
            let in_period = order.created_at >= since && order.order_status != OrderStatus::Voided;
            let sold = matches!(order.payment_status, PaymentStatus::Paid | PaymentStatus::Captured);
            if in_period && sold {
                let method = order.payment_method.map_or("UNKNOWN", PaymentMethod::as_str);
                for (tallies, key) in [(&mut by_till, order.device_id.as_str()), (&mut by_method, method)] {
                    let (orders, total) = tallies.entry((key.to_string(), order.currency)).or_default();
                    *orders += 1;
                    *total = total.checked_add(order.total).map_err(|_| TillError::Internal {
                        detail: "a sales total beyond the cents an i64 holds",
                    })?;
                }
            }
            if awaits_settlement(&order) {
                unsettled.push(order);
            } else if in_period && order.payment_confirmed && order.payment_status == PaymentStatus::Captured
            {
                captured.push(order);
            }
        }
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }
    let tallies = |map: BTreeMap<(String, Currency), (u64, Amount)>| {
        map.into_iter()
            .map(|((key, currency), (orders, total))| Tally { key, currency, orders, total })
            .collect()
    };
    Ok(Overview { since, by_till: tallies(by_till), by_method: tallies(by_method), unsettled, captured })
}

/// A till's payment claim that only HQ's settlement confirms: not cash (settled in the
/// drawer), not settled yet, on an order that still stands.
fn awaits_settlement(order: &OrderSummary) -> bool {
    matches!(order.payment_method, Some(method) if method != PaymentMethod::Cash)
        && !order.payment_confirmed
        && matches!(order.payment_status, PaymentStatus::Paid | PaymentStatus::Pending)
        && order.order_status != OrderStatus::Voided
}
