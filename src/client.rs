//! The command-line client of a running till's HTTP API: tables for people, `--json` for scripts.

use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tillmesh_core::{Amount, Quantity, Timestamp};
use tillmesh_node::till::{ItemInput, OrderInput, PaymentInput};

use crate::{ClientArgs, OrderCommand};

/// How long the client waits for a till.
const REQUEST_TIMEOUT_MS: u64 = 10_000;

struct TillClient {
    http: reqwest::Client,
    base: String,
    /// HQ's admin token, sent with every request when given.
    admin_token: Option<String>,
}

impl TillClient {
    fn new(args: &ClientArgs) -> anyhow::Result<TillClient> {
        let http = reqwest::Client::builder().timeout(Duration::from_millis(REQUEST_TIMEOUT_MS)).build()?;
        let admin_token = match &args.admin_token_file {
            Some(file) => {
                let token = std::fs::read_to_string(file)
                    .with_context(|| format!("cannot read the admin token in {}", file.display()))?;
                Some(token.trim().to_string())
            }
            None => None,
        };
        Ok(TillClient { http, base: args.till.trim_end_matches('/').to_string(), admin_token })
    }

    async fn get(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
        self.send(self.http.get(format!("{}{path}", self.base)).query(query)).await
    }

    async fn post(&self, path: &str, body: &impl Serialize) -> anyhow::Result<Value> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body)).await
    }

    async fn put(&self, path: &str, body: &impl Serialize) -> anyhow::Result<Value> {
        self.send(self.http.put(format!("{}{path}", self.base)).json(body)).await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let request = match &self.admin_token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response =
            request.send().await.with_context(|| format!("cannot reach the till at {}", self.base))?;
        let status = response.status();
        let body: Value =
            response.json().await.with_context(|| format!("the till answered {status} without JSON"))?;
        if !status.is_success() {
            let field = |name: &str| body.get(name).and_then(Value::as_str).unwrap_or("?").to_string();
            let hint = if status == reqwest::StatusCode::UNAUTHORIZED && self.admin_token.is_none() {
                " (for HQ, pass --admin-token-file with the admin-token file of HQ's data directory)"
            } else {
                ""
            };
            bail!("the till refused ({status}, {}): {}{hint}", field("error"), field("detail"));
        }
        Ok(body)
    }
}

fn parse<T: DeserializeOwned>(value: Value) -> anyhow::Result<T> {
    serde_json::from_value(value).context("unexpected answer from the till")
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Parses `SKU:NAME:QTY:PRICE`; the name may itself hold colons.
pub(crate) fn parse_item(spec: &str) -> anyhow::Result<ItemInput> {
    let parts: Vec<&str> = spec.split(':').collect();
    if parts.len() < 4 {
        bail!("item {spec:?} is not SKU:NAME:QTY:PRICE");
    }
    let quantity = parts[parts.len() - 2]
        .parse()
        .with_context(|| format!("item {spec:?}: quantity is not a number of at most three decimals"))?;
    let unit_price: Amount =
        parts[parts.len() - 1].parse().with_context(|| format!("item {spec:?}: price is not an amount"))?;
    Ok(ItemInput {
        sku: parts[0].to_string(),
        name: parts[1..parts.len() - 2].join(":"),
        quantity,
        unit_price,
    })
}

pub(crate) async fn order(command: OrderCommand) -> anyhow::Result<()> {
    match command {
        OrderCommand::New { client, items, notes, local_id } => {
            let items = items.iter().map(|spec| parse_item(spec)).collect::<anyhow::Result<Vec<_>>>()?;
            let till = TillClient::new(&client)?;
            let answer = till.post("/api/orders", &OrderInput { local_id, items, notes }).await?;
            show_detail(answer, client.json)
        }
        OrderCommand::List { client, status, since, limit, cursor } => {
            let till = TillClient::new(&client)?;
            let mut query = vec![("limit", limit.to_string())];
            query.extend(status.map(|s| ("status", s.to_string())));
            query.extend(since.map(|s| ("since", s.to_string())));
            query.extend(cursor.map(|c| ("cursor", c)));
            let page = till.get("/api/orders", &query).await?;
            if client.json {
                return print_json(&page);
            }
            let page: tillmesh_store::OrderPage = parse(page)?;
            println!(
                "{:<10} {:<8} {:<9} {:>12} {:>5}  {:<20}  ID",
                "NUMBER", "STATUS", "PAYMENT", "TOTAL", "ITEMS", "UPDATED"
            );
            for order in &page.orders {
                let payment =
                    format!("{}{}", order.payment_status, if order.payment_confirmed { "" } else { "*" });
                println!(
                    "{:<10} {:<8} {:<9} {:>12} {:>5}  {:<20}  {}",
                    order.order_number,
                    order.order_status,
                    payment,
                    format!("{} {}", order.currency, order.total),
                    order.item_count,
                    time(order.updated_at),
                    order.id
                );
            }
            println!("({} orders; * = not yet confirmed by HQ)", page.orders.len());
            if let Some(cursor) = page.next_cursor {
                println!("more: --cursor {cursor}");
            }
            Ok(())
        }
        OrderCommand::Show { id, client } => {
            let till = TillClient::new(&client)?;
            show_detail(till.get(&format!("/api/orders/{id}"), &[]).await?, client.json)
        }
        OrderCommand::Advance { id, status, client } => {
            let till = TillClient::new(&client)?;
            let body = serde_json::json!({ "status": status });
            show_detail(till.post(&format!("/api/orders/{id}/status"), &body).await?, client.json)
        }
        OrderCommand::Pay { id, method, amount, card_last4, client } => {
            let till = TillClient::new(&client)?;
            let payment = PaymentInput {
                method,
                status: tillmesh_core::PaymentStatus::Paid,
                amount,
                card_last4,
                processor_reference: None,
            };
            show_detail(till.post(&format!("/api/orders/{id}/payments"), &payment).await?, client.json)
        }
    }
}

fn show_detail(answer: Value, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&answer);
    }
    let order: DetailView = parse(answer)?;
    println!("order {}  ({})", order.order_number, order.id);
    println!(
        "status {}   payment {}{}",
        order.status,
        order.payment.status,
        if order.payment.confirmed { " (confirmed by HQ)" } else { " (unconfirmed)" }
    );
    println!("taken {} on {}", time(order.created_at), order.device_id);
    println!();
    println!("{:<12} {:<28} {:>5} {:>10} {:>10}", "SKU", "NAME", "QTY", "PRICE", "LINE");
    for item in &order.items {
        let name = if item.voided { format!("{} (voided)", item.name) } else { item.name.clone() };
        println!(
            "{:<12} {:<28} {:>5} {:>10} {:>10}",
            item.sku, name, item.quantity, item.unit_price, item.line_total
        );
    }
    println!("{:>69}", format!("subtotal {}", order.subtotal));
    println!("{:>69}", format!("tax {}", order.tax));
    println!("{:>69}", format!("total {} {}", order.currency, order.total));
    for transaction in &order.transactions {
        println!(
            "payment {} {} {} {}",
            transaction.reference_number,
            transaction.payment_method,
            transaction.amount,
            transaction.payment.status
        );
    }
    if !order.notes.is_empty() {
        println!("notes: {}", order.notes);
    }
    println!("hash {}", order.server_hash);
    Ok(())
}

/// The parts of an order answer (`tillmesh_node::OrderDetail`) that the table shows.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct DetailView {
    id: uuid::Uuid,
    order_number: String,
    device_id: String,
    currency: tillmesh_core::Currency,
    items: Vec<ItemView>,
    subtotal: Amount,
    tax: Amount,
    total: Amount,
    payment: PaymentSummary,
    status: tillmesh_core::OrderStatus,
    notes: String,
    created_at: Timestamp,
    server_hash: String,
    transactions: Vec<TransactionView>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemView {
    sku: String,
    name: String,
    quantity: Quantity,
    unit_price: Amount,
    line_total: Amount,
    voided: bool,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct PaymentSummary {
    status: tillmesh_core::PaymentStatus,
    confirmed: bool,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct TransactionView {
    reference_number: String,
    payment_method: tillmesh_core::PaymentMethod,
    amount: Amount,
    payment: PaymentSummary,
}

pub(crate) async fn status(args: ClientArgs) -> anyhow::Result<()> {
    let till = TillClient::new(&args)?;
    let health = till.get("/api/health", &[]).await?;
    let sync = till.get("/api/sync/status", &[]).await?;
    if args.json {
        return print_json(&serde_json::json!({ "health": health, "sync": sync }));
    }
    let text = |value: &Value, key: &str| {
        value.get(key).map(|v| v.to_string().trim_matches('"').to_string()).unwrap_or_default()
    };
    println!(
        "till {} ({}) version {}",
        text(&health, "tillCode"),
        text(&health, "deviceId"),
        text(&health, "version")
    );
    println!(
        "documents {}  pending {}  synced {}  failed {}",
        text(&sync, "documents"),
        text(&sync, "pending"),
        text(&sync, "synced"),
        text(&sync, "failed")
    );
    let remotes = sync.get("remotes").and_then(Value::as_array).cloned().unwrap_or_default();
    let connected: Vec<String> = sync
        .get("peers")
        .and_then(Value::as_array)
        .map(|peers| peers.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    if remotes.is_empty() && connected.is_empty() {
        println!("no peers: this till runs standalone");
    } else if connected.is_empty() {
        println!("connected to no peer now");
    } else {
        println!("connected to {}", connected.join(", "));
    }
    for remote in remotes {
        println!(
            "peer {}: pending {} modified {} synced {} failed {} last sync {}",
            text(&remote, "remote"),
            text(&remote, "pending"),
            text(&remote, "modified"),
            text(&remote, "synced"),
            text(&remote, "failed"),
            remote
                .get("lastSyncAt")
                .and_then(Value::as_i64)
                .map_or("never".to_string(), |at| time(Timestamp(at)))
        );
    }
    Ok(())
}

/// `tillmesh hq settle`: HQ signs an order's settlement.
pub(crate) async fn settle(
    args: ClientArgs,
    order: uuid::Uuid,
    status: tillmesh_core::PaymentStatus,
) -> anyhow::Result<()> {
    let hq = TillClient::new(&args)?;
    let answer =
        hq.post(&format!("/api/orders/{order}/settle"), &serde_json::json!({ "status": status })).await?;
    show_detail(answer, args.json)
}

/// `tillmesh roster apply FILE`: posts a signed roster entry to a till.
pub(crate) async fn apply_roster(file: &std::path::Path, args: ClientArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let entry: tillmesh_core::SignedRosterEntry = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a signed roster entry", file.display()))?;
    let till = TillClient::new(&args)?;
    let answer = till.post("/api/roster", &entry).await?;
    if args.json {
        return print_json(&answer);
    }
    println!("roster entry for {} applied and passed on", entry.entry.peer_id);
    Ok(())
}

/// `tillmesh menu import`: checks a CSV menu (every error by line and column, nothing sent),
/// checks that the node at `args.till` is the HQ of the shop in `shop`, then writes the menu
/// there.
pub(crate) async fn menu_import(
    shop: &std::path::Path,
    file: &std::path::Path,
    args: ClientArgs,
) -> anyhow::Result<()> {
    let (shop_file, _) = crate::shop::read_shop(shop)?;
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let items = match crate::menu_csv::read_menu(&text) {
        Ok(items) => items,
        Err(errors) => {
            for error in &errors {
                eprintln!("{}: {error}", file.display());
            }
            bail!("{} error(s) in {}: nothing was sent", errors.len(), file.display());
        }
    };
    let hq = TillClient::new(&args)?;
    let expected = tillmesh_core::MenuDoc::id_for(&shop_file.hq_public_key()).to_string();
    let held = hq.get("/api/menu", &[]).await?;
    let id = held.get("id").and_then(Value::as_str);
    if id != Some(expected.as_str()) {
        bail!(
            "{} is not the HQ of the shop in {} (its menu is {}, the shop's is {expected}): nothing was sent",
            args.till,
            shop.display(),
            id.unwrap_or("none")
        );
    }
    let answer =
        hq.put("/api/menu", &serde_json::json!({ "currency": shop_file.currency, "items": items })).await?;
    if args.json {
        return print_json(&answer);
    }
    let menu: MenuShown = parse(answer)?;
    println!("{:<16} {:<28} {:<16} {:>10}  {:<10} SELLS", "SKU", "NAME", "CATEGORY", "PRICE", "TAX");
    for item in &menu.items {
        let price = item.price.map_or_else(|| "-".to_string(), |price| price.to_string());
        let sells = if item.available { "yes" } else { "no" };
        println!(
            "{:<16} {:<28} {:<16} {price:>10}  {:<10} {sells}",
            item.sku, item.name, item.category, item.tax_class
        );
    }
    let available = menu.items.iter().filter(|item| item.available).count();
    println!("menu written on HQ: {} items, {available} for sale", menu.items.len());
    Ok(())
}

/// The menu as `PUT /api/menu` answers it.
#[derive(serde::Deserialize)]
struct MenuShown {
    items: Vec<MenuItemShown>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct MenuItemShown {
    sku: String,
    name: String,
    category: String,
    price: Option<Amount>,
    tax_class: String,
    available: bool,
}

/// `2024-01-01T00:00:00Z`.
fn time(at: Timestamp) -> String {
    let when = UNIX_EPOCH + Duration::from_millis(u64::try_from(at.0).unwrap_or(0));
    humantime::format_rfc3339_seconds(when).to_string()
}

/// `tillmesh hq conflicts`: HQ's conflict report, newest first.
pub(crate) async fn conflicts(args: ClientArgs, limit: usize) -> anyhow::Result<()> {
    let hq = TillClient::new(&args)?;
    let answer = hq.get("/api/hq/conflicts", &[("limit", limit.to_string())]).await?;
    if args.json {
        return print_json(&answer);
    }
    let entries = answer.as_array().map(Vec::as_slice).unwrap_or_default();
    if entries.is_empty() {
        println!("no conflicts");
        return Ok(());
    }
    println!(
        "{:<20}  {:<11}  {:<36}  {:<14}  {:<15}  {:<16}  {:<16}  resolution",
        "at", "kind", "localId", "written by", "field", "client", "server"
    );
    for entry in entries {
        let text = |name: &str| match entry.get(name) {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Null) | None => "-".to_string(),
            Some(other) => other.to_string(),
        };
        let at =
            entry.get("at").and_then(Value::as_i64).map_or_else(|| "-".to_string(), |at| time(Timestamp(at)));
        println!(
            "{at:<20}  {:<11}  {:<36}  {:<14}  {:<15}  {:<16}  {:<16}  {}",
            text("kind"),
            text("localId"),
            text("deviceId"),
            text("field"),
            text("clientValue"),
            text("serverValue"),
            text("resolution")
        );
    }
    Ok(())
}

/// `tillmesh hq device list`: HQ's legacy devices.
pub(crate) async fn devices(args: ClientArgs) -> anyhow::Result<()> {
    let hq = TillClient::new(&args)?;
    let answer = hq.get("/api/hq/devices", &[]).await?;
    if args.json {
        return print_json(&answer);
    }
    let devices = answer.as_array().map(Vec::as_slice).unwrap_or_default();
    if devices.is_empty() {
        println!("no legacy devices");
        return Ok(());
    }
    println!("{:<24}  {:<20}  state", "device", "token issued");
    for device in devices {
        println!(
            "{:<24}  {:<20}  {}",
            device.get("deviceId").and_then(Value::as_str).unwrap_or("-"),
            device
                .get("addedAt")
                .and_then(Value::as_i64)
                .map_or_else(|| "-".to_string(), |at| time(Timestamp(at))),
            device
                .get("revokedAt")
                .and_then(Value::as_i64)
                .map_or_else(|| "active".to_string(), |at| format!("revoked {}", time(Timestamp(at))))
        );
    }
    Ok(())
}

/// `tillmesh hq device revoke`: refuses a legacy device's token from now on.
pub(crate) async fn revoke_device(args: ClientArgs, device_id: &str) -> anyhow::Result<()> {
    let hq = TillClient::new(&args)?;
    let path = format!("/api/hq/devices/{}/revoke", path_segment(device_id));
    let answer = hq.post(&path, &serde_json::json!({})).await?;
    if args.json {
        return print_json(&answer);
    }
    let at = answer
        .get("revokedAt")
        .and_then(Value::as_i64)
        .map_or_else(|| "-".to_string(), |at| time(Timestamp(at)));
    println!("device {device_id} revoked at {at}");
    Ok(())
}

/// `text` as one URL path segment: every byte but the unreserved ones percent-encoded.
fn path_segment(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(path_segment("pos-1"), "pos-1");
        assert_eq!(path_segment("kiosk/2 é"), "kiosk%2F2%20%C3%A9");
    }

    #[test]
    fn item_specs_parse_exactly() {
        let item = parse_item("SOUP:Tomato: the soup:2:4.50").expect("valid");
        assert_eq!(item.name, "Tomato: the soup");
        assert_eq!((item.quantity, item.unit_price), (Quantity::pieces(2), Amount::from_minor(450)));
        let weighed = parse_item("CHEESE:Cheese by the kg:0.35:24.90").expect("a weight");
        assert_eq!(weighed.quantity, Quantity::from_thousandths(350));
        for bad in [
            "SOUP:Soup:2",
            "SOUP:Soup:two:4.50",
            "SOUP:Soup:2:4.505",
            "SOUP:Soup:2:abc",
            "SOUP:Soup:0.0001:1",
        ] {
            assert!(parse_item(bad).is_err(), "{bad}");
        }
    }
}
