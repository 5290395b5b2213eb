//! HQ's back office: the page at `/`, signing in to it, its parts and the day's overview it
//! shows.
//!
//! Signing in exchanges the admin token for a cookie (`HttpOnly`, `SameSite=Strict`) that the
//! admin routes accept like the bearer token, so that the page, its parts and its change stream
//! (`EventSource` sends no headers) need none; no other site's page can send it. `GET /` renders
//! the sign-in form without it and the office with it; each part of the office (tills, the
//! day's sales and payments, the conflict log, legacy devices, the menu) is also served on its
//! own under `/screens/office/…` (admin routes), which the page's script renders again on
//! change-stream events. The overview — sales by till and by payment method since a time,
//! payments awaiting HQ's settlement, captured payments that may be refunded — is computed from
//! the node's order summaries in exact cents.

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tillmesh_core::{Amount, Currency, OrderStatus, PaymentMethod, PaymentStatus, Timestamp};
use tillmesh_node::http::{ApiError, ApiQuery, When, html, money, part};
use tillmesh_node::{Till, TillError};
use tillmesh_store::{OrderQuery, OrderSummary, PAGE_ROWS_MAX};

use crate::error::HqError;
use crate::records::RecordStore;
use crate::service::LegacyService;

/// What the office needs of the state HQ's HTTP routes share (`crate::http`'s, which serves
/// these handlers): the service it reads, and whether a request carries the admin token.
pub(crate) trait Office: Send + Sync + 'static {
    /// Where HQ keeps legacy records.
    type Records: RecordStore;
    /// HQ's service: its node and its records.
    fn service(&self) -> &LegacyService<Self::Records>;
    /// Whether `headers` carry HQ's admin token (a bearer token, or this office's cookie).
    fn admits(&self, headers: &HeaderMap) -> bool;
}

/// The cookie that carries the admin token once signed in.
const ADMIN_COOKIE: &str = "tillmesh-admin";

/// Conflicts the office lists, newest first.
const CONFLICTS_SHOWN: usize = 50;

#[derive(Template)]
#[template(path = "back_office.html")]
struct Page {
    /// The office's parts, rendered; `None` shows the sign-in form.
    office: Option<OfficeParts>,
}

struct OfficeParts {
    tills: String,
    conflicts: String,
    devices: String,
    menu: String,
}

/// `GET /`: the office when the request is signed in, else the sign-in form. The day's sales
/// and payments are rendered by the page's script, which knows where the browser's day starts.
pub(crate) async fn page<O: Office>(State(office): State<Arc<O>>, headers: HeaderMap) -> Response {
    if !office.admits(&headers) {
        return html(&Page { office: None });
    }
    let service = office.service();
    let parts = OfficeParts {
        tills: part(&tills_part(service.node())),
        conflicts: part(&conflicts_part(service).await),
        devices: part(&devices_part(service).await),
        menu: part(&menu_part(service.node())),
    };
    html(&Page { office: Some(parts) })
}

pub(crate) async fn tills<O: Office>(State(office): State<Arc<O>>) -> Response {
    html(&tills_part(office.service().node()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Period {
    /// Milliseconds since the Unix epoch: the start of the period (the back office sends the
    /// browser's local midnight).
    pub(crate) since: i64,
}

pub(crate) async fn sales_and_payments<O: Office>(
    State(office): State<Arc<O>>,
    ApiQuery(Period { since }): ApiQuery<Period>,
) -> Result<Response, ApiError> {
    let overview = overview(office.service().node(), Timestamp(since))?;
    Ok(html(&OverviewPart::of(overview)))
}

pub(crate) async fn conflicts<O: Office>(State(office): State<Arc<O>>) -> Response {
    html(&conflicts_part(office.service()).await)
}

pub(crate) async fn devices<O: Office>(State(office): State<Arc<O>>) -> Response {
    html(&devices_part(office.service()).await)
}

pub(crate) async fn menu<O: Office>(State(office): State<Arc<O>>) -> Response {
    html(&menu_part(office.service().node()))
}

#[derive(Template)]
#[template(path = "office_tills.html")]
struct TillsPart {
    tills: Vec<TillRow>,
    error: String,
}

struct TillRow {
    name: String,
    online: bool,
    /// Documents HQ has not yet sent it, when HQ has synced with it.
    pending: Option<u64>,
    last_sync: Option<When>,
}

/// The tills HQ has synced with or is connected to now, by name.
fn tills_part(till: &Till) -> TillsPart {
    let sync = match till.sync_overview() {
        Ok(sync) => sync,
        Err(error) => return TillsPart { tills: Vec::new(), error: error.to_string() },
    };
    let mut rows: BTreeMap<String, TillRow> = BTreeMap::new();
    for remote in sync.remotes {
        let online = sync.peers.contains(&remote.remote);
        rows.insert(
            remote.remote.clone(),
            TillRow {
                name: remote.remote,
                online,
                pending: Some(remote.pending),
                last_sync: remote.last_sync_at.map(When),
            },
        );
    }
    for peer in sync.peers {
        rows.entry(peer.clone()).or_insert(TillRow {
            name: peer,
            online: true,
            pending: None,
            last_sync: None,
        });
    }
    TillsPart { tills: rows.into_values().collect(), error: String::new() }
}

#[derive(Template)]
#[template(path = "office_overview.html")]
struct OverviewPart {
    by_till: Vec<TallyRow>,
    by_method: Vec<TallyRow>,
    unsettled: Vec<PaymentRow>,
    captured: Vec<PaymentRow>,
}

struct TallyRow {
    key: String,
    orders: String,
    total: String,
}

struct PaymentRow {
    id: uuid::Uuid,
    number: String,
    device_id: String,
    method: String,
    total: String,
}

impl OverviewPart {
    fn of(overview: Overview) -> OverviewPart {
        let tally = |tally: Tally, key: String| TallyRow {
            key,
            orders: format!("{} order{}", tally.orders, if tally.orders == 1 { "" } else { "s" }),
            total: money(tally.total, tally.currency),
        };
        let payment = |order: OrderSummary| PaymentRow {
            id: order.id,
            method: order.payment_method.map_or(String::new(), |method| method.as_str().to_lowercase()),
            total: money(order.total, order.currency),
            number: order.order_number,
            device_id: order.device_id,
        };
        OverviewPart {
            by_till: overview
                .by_till
                .into_iter()
                .map(|entry| {
                    let key = entry.key.clone();
                    tally(entry, key)
                })
                .collect(),
            by_method: overview
                .by_method
                .into_iter()
                .map(|entry| {
                    let key = entry.key.to_lowercase();
                    tally(entry, key)
                })
                .collect(),
            unsettled: overview.unsettled.into_iter().map(payment).collect(),
            captured: overview.captured.into_iter().map(payment).collect(),
        }
    }
}

#[derive(Template)]
#[template(path = "office_conflicts.html")]
struct ConflictsPart {
    conflicts: Vec<ConflictRow>,
    error: String,
}

struct ConflictRow {
    at: When,
    device_id: String,
    field: String,
    /// `theirs → kept`.
    outcome: String,
}

async fn conflicts_part<S: RecordStore>(service: &LegacyService<S>) -> ConflictsPart {
    match service.records().conflicts(CONFLICTS_SHOWN).await {
        Ok(entries) => ConflictsPart {
            conflicts: entries
                .into_iter()
                .map(|entry| {
                    let conflict = entry.conflict;
                    let theirs = conflict.client_value.clone().unwrap_or_else(|| "—".into());
                    let kept = match conflict.resolution {
                        tillmesh_core::legacy::Resolution::ClientWins => conflict.client_value,
                        _ => conflict.server_value,
                    };
                    ConflictRow {
                        at: When(entry.at),
                        device_id: entry.device_id,
                        field: conflict.field,
                        outcome: format!("{theirs} → {}", kept.unwrap_or_else(|| "—".into())),
                    }
                })
                .collect(),
            error: String::new(),
        },
        Err(error) => ConflictsPart { conflicts: Vec::new(), error: HqError::from(error).to_string() },
    }
}

#[derive(Template)]
#[template(path = "office_devices.html")]
struct DevicesPart {
    devices: Vec<DeviceRow>,
    error: String,
}

struct DeviceRow {
    device_id: String,
    added: Option<When>,
    revoked: Option<When>,
}

async fn devices_part<S: RecordStore>(service: &LegacyService<S>) -> DevicesPart {
    match service.records().devices().await {
        Ok(devices) => DevicesPart {
            devices: devices
                .into_iter()
                .map(|device| DeviceRow {
                    device_id: device.device_id,
                    added: device.added_at.map(When),
                    revoked: device.revoked_at.map(When),
                })
                .collect(),
            error: String::new(),
        },
        Err(error) => DevicesPart { devices: Vec::new(), error: HqError::from(error).to_string() },
    }
}

#[derive(Template)]
#[template(path = "office_menu.html")]
struct MenuPart {
    items: Vec<MenuRow>,
    error: String,
}

struct MenuRow {
    /// The SKU, hex: what the row's element ids are made of (a SKU may hold any character).
    key: String,
    sku: String,
    /// The SKU as a path segment of `PATCH /api/menu/items/{sku}`.
    path: String,
    name: String,
    category: String,
    tax_class: String,
    /// HQ's price (`12.50`), empty while it has none.
    price: String,
    available: bool,
}

fn menu_part(till: &Till) -> MenuPart {
    match till.menu() {
        Ok(menu) => MenuPart {
            items: menu
                .map(|menu| menu.items)
                .unwrap_or_default()
                .into_iter()
                .map(|item| MenuRow {
                    key: hex::encode(&item.sku),
                    path: tillmesh_node::http::path_segment(&item.sku),
                    price: item.price.map(|price| price.to_string()).unwrap_or_default(),
                    available: item.available,
                    sku: item.sku,
                    name: item.name,
                    category: item.category,
                    tax_class: item.tax_class,
                })
                .collect(),
            error: String::new(),
        },
        Err(error) => MenuPart { items: Vec::new(), error: error.to_string() },
    }
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
