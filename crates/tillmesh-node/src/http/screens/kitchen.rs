//! The kitchen display: every till's orders sent to the kitchen ("Cooking") and those ready,
//! oldest first, each with how long it has waited and one button that bumps it to its next
//! status (SENT → READY → SERVED).

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use serde_json::json;
use tillmesh_core::{OrderStatus, Timestamp};
use tillmesh_store::OrderQuery;
use uuid::Uuid;

use super::{html, part};
use crate::Till;

/// Tickets shown in each column, oldest first.
const TICKETS_PER_COLUMN: usize = 500;

/// Waiting longer than this shows the clock in red.
const LATE_MS: i64 = 15 * 60 * 1000;

#[derive(Template)]
#[template(path = "kitchen.html")]
struct Page {
    tickets: String,
}

pub(super) async fn page(State(till): State<Till>) -> Response {
    html(&Page { tickets: part(&tickets_part(&till)) })
}

pub(super) async fn tickets(State(till): State<Till>) -> Response {
    html(&tickets_part(&till))
}

#[derive(Template)]
#[template(path = "kitchen_tickets.html")]
struct TicketsPart {
    columns: Vec<Column>,
    error: String,
}

struct Column {
    /// The status its tickets have.
    status: &'static str,
    title: &'static str,
    /// The bump button's label, and the API body that bumps.
    bump: &'static str,
    bump_body: String,
    tickets: Vec<Ticket>,
}

struct Ticket {
    id: Uuid,
    number: String,
    device_id: String,
    /// When it was taken (ms), for the clock the page moves.
    since: i64,
    /// How long it has waited, `m:ss`, as the page opens.
    waited: String,
    /// Waited too long: the clock shows red.
    late: bool,
    /// `2 × Tomato soup`, the voided lines left out.
    lines: Vec<String>,
    notes: String,
}

fn tickets_part(till: &Till) -> TicketsPart {
    let now = till.clock().now();
    let mut columns = Vec::new();
    let mut problems = Vec::new();
    for (status, title, next, bump) in [
        (OrderStatus::Sent, "Cooking", OrderStatus::Ready, "Ready"),
        (OrderStatus::Ready, "Ready to serve", OrderStatus::Served, "Served"),
    ] {
        let query = OrderQuery { status: Some(status), limit: TICKETS_PER_COLUMN, ..OrderQuery::default() };
        let mut summaries = match till.list(&query) {
            Ok(page) => page.orders,
            Err(error) => {
                problems.push(format!("{title}: {error}"));
                Vec::new()
            }
        };
        summaries.sort_by_key(|order| (order.created_at, order.id));
        let mut tickets = Vec::with_capacity(summaries.len());
        for summary in summaries {
            // The order may have moved on since it was listed: only its detail counts.
            match till.order(summary.id) {
                Ok(detail) if detail.order.status == status => tickets.push(ticket(detail.order, now)),
                Ok(_) => {}
                Err(error) => problems.push(format!("{}: {error}", summary.order_number)),
            }
        }
        columns.push(Column {
            status: status.as_str(),
            title,
            bump,
            bump_body: json!({ "status": next.as_str() }).to_string(),
            tickets,
        });
    }
    TicketsPart { columns, error: problems.join("; ") }
}

fn ticket(order: tillmesh_core::Order, now: Timestamp) -> Ticket {
    let waited_ms = (now.0 - order.created_at.0).max(0);
    let seconds = waited_ms / 1000;
    Ticket {
        id: order.id,
        number: order.order_number,
        device_id: order.device_id,
        since: order.created_at.0,
        waited: format!("{}:{:02}", seconds / 60, seconds % 60),
        late: waited_ms > LATE_MS,
        lines: order
            .items
            .iter()
            .filter(|item| !item.voided)
            .map(|item| format!("{} × {}", item.quantity, item.name))
            .collect(),
        notes: order.notes,
    }
}
