//! The till screen: the ticket being taken (from the menu or typed in), sending it to the
//! kitchen, payments, the shop's open orders, and where the till stands with its peers.
//!
//! The order on the ticket is the page's `?order=` (none: a new order, made by its first item
//! under an idempotency key rendered into the page). Every button and form names the API route
//! it calls; the page shows what the API answers (totals, statuses, payments), never sums.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use tillmesh_core::{Menu, OrderStatus, PaymentMethod, PaymentStatus};
use tillmesh_store::{OrderQuery, OrderSummary};
use uuid::Uuid;

use super::{When, html, money, part};
use crate::Till;
use crate::till::OrderDetail;

/// Orders listed as open: taken and not yet closed or voided.
const OPEN: [OrderStatus; 4] =
    [OrderStatus::Open, OrderStatus::Sent, OrderStatus::Ready, OrderStatus::Served];

/// Open orders listed, of each status.
const LISTED_PER_STATUS: usize = 500;

/// The page's query: the order on the ticket.
#[derive(Debug, Deserialize)]
pub(super) struct Shown {
    order: Option<String>,
}

impl Shown {
    /// The order asked for, when it is an id at all.
    fn order(&self) -> Option<Uuid> {
        self.order.as_deref().and_then(|text| text.parse().ok())
    }
}

#[derive(Template)]
#[template(path = "till.html")]
struct Page {
    till_code: String,
    ticket: String,
    orders: String,
    sync: String,
}

pub(super) async fn page(State(till): State<Till>, Query(shown): Query<Shown>) -> Response {
    html(&Page {
        till_code: till.config().code.to_string(),
        ticket: part(&ticket_part(&till, shown.order())),
        orders: part(&orders_part(&till, shown.order())),
        sync: part(&sync_part(&till)),
    })
}

pub(super) async fn ticket(State(till): State<Till>, Query(shown): Query<Shown>) -> Response {
    html(&ticket_part(&till, shown.order()))
}

pub(super) async fn orders(State(till): State<Till>, Query(shown): Query<Shown>) -> Response {
    html(&orders_part(&till, shown.order()))
}

pub(super) async fn sync(State(till): State<Till>) -> Response {
    html(&sync_part(&till))
}

#[derive(Template)]
#[template(path = "till_ticket.html")]
struct TicketPart {
    /// The order on the ticket, or none for a new one.
    order: Option<TicketOrder>,
    /// Why the order asked for is not shown.
    missing: String,
    /// Whether the order has any line.
    has_items: bool,
    /// Whether items can be added (a new order, or one not closed or voided).
    editable: bool,
    /// Where items go: the order's items, or a new order.
    add_to: String,
    /// For a new order: the body its first item goes in (the idempotency key), else empty.
    create_body: String,
    menu: Vec<MenuCategory>,
    menu_error: String,
}

struct TicketOrder {
    id: Uuid,
    number: String,
    status: &'static str,
    status_text: &'static str,
    items: Vec<TicketLine>,
    subtotal: String,
    tax: String,
    /// The adjustment, when not zero.
    adjustment: Option<String>,
    total: String,
    notes: String,
    can_send: bool,
    can_pay: bool,
    can_close: bool,
    payment_text: String,
    payment_tone: &'static str,
}

struct TicketLine {
    id: Uuid,
    name: String,
    sku: String,
    quantity: String,
    unit_price: String,
    line_total: String,
    voided: bool,
}

struct MenuCategory {
    name: String,
    items: Vec<MenuButton>,
}

struct MenuButton {
    sku: String,
    name: String,
    price: String,
    sellable: bool,
    /// The API body that adds one of it.
    body: String,
}

fn ticket_part(till: &Till, asked: Option<Uuid>) -> TicketPart {
    let (detail, missing) = match asked.map(|id| till.order(id)) {
        None => (None, String::new()),
        Some(Ok(detail)) => (Some(detail), String::new()),
        Some(Err(error)) => (None, format!("The order asked for is not shown: {error}")),
    };
    let editable = detail.as_ref().is_none_or(|detail| !detail.order.status.is_terminal());
    let (add_to, local_id) = match &detail {
        Some(detail) => (format!("/api/orders/{}/items", detail.order.id), None),
        None => ("/api/orders".to_string(), Some(Uuid::new_v4())),
    };
    let create_body = local_id.map(|id| json!({ "localId": id }).to_string()).unwrap_or_default();
    let (menu, menu_error) = match till.menu() {
        Ok(menu) => (menu_categories(menu, local_id), String::new()),
        Err(error) => (Vec::new(), format!("The menu cannot be read: {error}")),
    };
    let has_items = detail.as_ref().is_some_and(|detail| !detail.order.items.is_empty());
    TicketPart {
        order: detail.map(ticket_order),
        missing,
        has_items,
        editable,
        add_to,
        create_body,
        menu,
        menu_error,
    }
}

/// The menu as buttons by category, each with the body that adds one (in a new order made with
/// `local_id` when there is no order yet).
fn menu_categories(menu: Option<Menu>, local_id: Option<Uuid>) -> Vec<MenuCategory> {
    let Some(menu) = menu else { return Vec::new() };
    let mut categories: Vec<MenuCategory> = Vec::new();
    for item in menu.items {
        let sellable = item.available && item.price.is_some();
        let line = json!({
            "sku": item.sku,
            "name": item.name,
            "quantity": 1,
            "unitPrice": item.price.map(|price| price.to_string()),
        });
        let body = match local_id {
            Some(local_id) => json!({ "localId": local_id, "items": [line] }),
            None => line,
        };
        let button = MenuButton {
            price: item
                .price
                .filter(|_| sellable)
                .map_or_else(|| "unavailable".into(), |price| money(price, menu.currency)),
            sku: item.sku,
            name: item.name,
            sellable,
            body: body.to_string(),
        };
        let name = if item.category.is_empty() { "Other".to_string() } else { item.category };
        match categories.iter_mut().find(|category| category.name == name) {
            Some(category) => category.items.push(button),
            None => categories.push(MenuCategory { name, items: vec![button] }),
        }
    }
    categories
}

fn ticket_order(detail: OrderDetail) -> TicketOrder {
    let order = detail.order;
    let currency = order.currency;
    let payment = &order.payment;
    let paid = payment.confirmed || payment.claimed.is_some_and(|claim| claim != PaymentStatus::Pending);
    let editable = !order.status.is_terminal();
    let (payment_text, payment_tone) = if payment.confirmed {
        let tone = if payment.status == PaymentStatus::Captured { "confirmed" } else { "refused" };
        (format!("{} — settled by HQ", payment.status.as_str()), tone)
    } else if !paid {
        ("Not paid".to_string(), "")
    } else if payment.method == Some(PaymentMethod::Card) {
        ("Card — awaiting HQ".to_string(), "awaiting")
    } else {
        let method = payment.method.map_or(String::new(), |method| method.as_str().to_lowercase());
        (format!("Paid ({method})"), "confirmed")
    };
    TicketOrder {
        id: order.id,
        number: order.order_number,
        status: order.status.as_str(),
        status_text: status_text(order.status),
        items: order
            .items
            .into_iter()
            .map(|item| TicketLine {
                id: item.id,
                quantity: item.quantity.to_string(),
                unit_price: money(item.unit_price, currency),
                line_total: money(item.line_total, currency),
                name: item.name,
                sku: item.sku,
                voided: item.voided,
            })
            .collect(),
        subtotal: money(order.subtotal, currency),
        tax: money(order.tax, currency),
        adjustment: (order.adjustment.minor() != 0).then(|| money(order.adjustment, currency)),
        total: money(order.total, currency),
        notes: order.notes,
        can_send: order.status == OrderStatus::Open,
        can_pay: editable && !paid,
        can_close: editable && paid,
        payment_text,
        payment_tone,
    }
}

fn status_text(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::Open => "Open",
        OrderStatus::Sent => "In the kitchen",
        OrderStatus::Ready => "Ready",
        OrderStatus::Served => "Served",
        OrderStatus::Closed => "Closed",
        OrderStatus::Voided => "Voided",
    }
}

#[derive(Template)]
#[template(path = "till_orders.html")]
struct OrdersPart {
    orders: Vec<OpenOrder>,
    error: String,
}

struct OpenOrder {
    id: Uuid,
    number: String,
    device_id: String,
    status: &'static str,
    status_text: &'static str,
    items: String,
    /// How it is paid, with the class that colours it, when it is.
    payment: Option<(String, &'static str)>,
    total: String,
    current: bool,
}

fn orders_part(till: &Till, shown: Option<Uuid>) -> OrdersPart {
    let mut listed: Vec<OrderSummary> = Vec::new();
    for status in OPEN {
        let query = OrderQuery { status: Some(status), limit: LISTED_PER_STATUS, ..OrderQuery::default() };
        match till.list(&query) {
            Ok(page) => listed.extend(page.orders),
            Err(error) => {
                return OrdersPart {
                    orders: Vec::new(),
                    error: format!("The orders cannot be read: {error}"),
                };
            }
        }
    }
    listed.sort_by_key(|order| (order.created_at, order.id));
    let orders = listed
        .into_iter()
        .map(|order| OpenOrder {
            id: order.id,
            current: shown == Some(order.id),
            status: order.order_status.as_str(),
            status_text: status_text(order.order_status),
            items: format!("{} item{}", order.item_count, if order.item_count == 1 { "" } else { "s" }),
            payment: if order.payment_confirmed {
                let tone = if order.payment_status == PaymentStatus::Captured { "paid" } else { "refused" };
                Some((format!("{} by HQ", order.payment_status.as_str().to_lowercase()), tone))
            } else if order.payment_status == PaymentStatus::Paid {
                Some(("paid".to_string(), "paid"))
            } else {
                None
            },
            total: money(order.total, order.currency),
            number: order.order_number,
            device_id: order.device_id,
        })
        .collect();
    OrdersPart { orders, error: String::new() }
}

#[derive(Template)]
#[template(path = "till_sync.html")]
struct SyncPart {
    /// What the indicator says, or why it cannot.
    text: String,
    peers: usize,
    pending: u64,
    last_sync: Option<When>,
    /// `Some(connected)` for a till of a shop with an HQ.
    hq: Option<bool>,
}

fn sync_part(till: &Till) -> SyncPart {
    let hq = till.config().hq.is_some();
    match till.sync_overview() {
        Ok(sync) => {
            let text = match sync.peers.len() {
                0 => "no peers".to_string(),
                count => {
                    format!("{count} peer{} ({})", if count == 1 { "" } else { "s" }, sync.peers.join(", "))
                }
            };
            let hq_name = tillmesh_mesh::remote_name(tillmesh_core::roster::HQ_CODE);
            SyncPart {
                hq: hq.then(|| sync.peers.contains(&hq_name)),
                text,
                peers: sync.peers.len(),
                pending: sync.pending,
                last_sync: sync.last_sync_at.map(When),
            }
        }
        Err(error) => {
            SyncPart { text: format!("sync: {error}"), peers: 0, pending: 0, last_sync: None, hq: None }
        }
    }
}
