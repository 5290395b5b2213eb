//! Request handlers: parse, call the till, answer JSON.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tillmesh_core::{
    AuthorityViolation, Currency, Menu, MenuItem, MenuItemPatch, NewMenuItem, OrderStatus, SignedRosterEntry,
    Timestamp,
};
use tillmesh_store::{OrderPage, OrderQuery};
use uuid::Uuid;

use super::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::Till;
use crate::till::{ItemInput, OrderDetail, OrderInput, PaymentInput, SyncOverview};

type Answer<T> = Result<Json<T>, ApiError>;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Health {
    /// `ok`, or `degraded: …` while the store refuses writes.
    status: &'static str,
    /// The storage error behind a degraded status.
    #[serde(skip_serializing_if = "Option::is_none")]
    storage_error: Option<String>,
    till_code: String,
    device_id: String,
    documents: usize,
    version: &'static str,
    /// What a layer above adds ([`super::MetricsSource::health`]).
    #[serde(flatten)]
    extra: serde_json::Map<String, serde_json::Value>,
}

pub(super) async fn health(
    State((till, extra)): State<(Till, Option<std::sync::Arc<dyn super::MetricsSource>>)>,
) -> Json<Health> {
    let failure = till.store().failure();
    let status = match &failure {
        None => "ok",
        Some(failure) if failure.disk_full => "degraded: disk full",
        Some(_) => "degraded: storage failing",
    };
    Json(Health {
        status,
        storage_error: failure.map(|failure| failure.reason),
        till_code: till.config().code.to_string(),
        device_id: till.device_id().to_string(),
        documents: till.store().document_count(),
        version: env!("CARGO_PKG_VERSION"),
        extra: extra.map(|source| source.health()).unwrap_or_default(),
    })
}

pub(super) async fn create_order(
    State(till): State<Till>,
    ApiJson(input): ApiJson<OrderInput>,
) -> Result<(StatusCode, Json<OrderDetail>), ApiError> {
    let (detail, created) = till.create_order(input).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(detail)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ListParams {
    status: Option<String>,
    since: Option<i64>,
    limit: Option<usize>,
    cursor: Option<String>,
}

pub(super) async fn list_orders(
    State(till): State<Till>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Answer<OrderPage> {
    let status = match params.status {
        Some(text) => Some(
            text.parse::<OrderStatus>()
                .map_err(|error| ApiError::bad_request("invalid_query", error.to_string()))?,
        ),
        None => None,
    };
    let query = OrderQuery {
        status,
        since: params.since.map(Timestamp),
        limit: params.limit.unwrap_or(0),
        cursor: params.cursor,
    };
    Ok(Json(till.list(&query)?))
}

pub(super) async fn get_order(
    State(till): State<Till>,
    ApiPath(order_id): ApiPath<Uuid>,
) -> Answer<OrderDetail> {
    Ok(Json(till.order(order_id)?))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct OrderUpdate {
    notes: String,
}

pub(super) async fn update_order(
    State(till): State<Till>,
    ApiPath(order_id): ApiPath<Uuid>,
    ApiJson(update): ApiJson<OrderUpdate>,
) -> Answer<OrderDetail> {
    Ok(Json(till.set_notes(order_id, update.notes).await?))
}

pub(super) async fn add_item(
    State(till): State<Till>,
    ApiPath(order_id): ApiPath<Uuid>,
    ApiJson(item): ApiJson<ItemInput>,
) -> Answer<OrderDetail> {
    Ok(Json(till.add_item(order_id, item).await?))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct QuantityUpdate {
    quantity: tillmesh_core::Quantity,
}

pub(super) async fn set_quantity(
    State(till): State<Till>,
    ApiPath((order_id, item_id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(update): ApiJson<QuantityUpdate>,
) -> Answer<OrderDetail> {
    Ok(Json(till.set_quantity(order_id, item_id, update.quantity).await?))
}

pub(super) async fn void_item(
    State(till): State<Till>,
    ApiPath((order_id, item_id)): ApiPath<(Uuid, Uuid)>,
) -> Answer<OrderDetail> {
    Ok(Json(till.void_item(order_id, item_id).await?))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct StatusUpdate {
    status: OrderStatus,
}

pub(super) async fn advance(
    State(till): State<Till>,
    ApiPath(order_id): ApiPath<Uuid>,
    ApiJson(update): ApiJson<StatusUpdate>,
) -> Answer<OrderDetail> {
    Ok(Json(till.advance(order_id, update.status).await?))
}

pub(super) async fn record_payment(
    State(till): State<Till>,
    ApiPath(order_id): ApiPath<Uuid>,
    ApiJson(payment): ApiJson<PaymentInput>,
) -> Result<(StatusCode, Json<OrderDetail>), ApiError> {
    Ok((StatusCode::CREATED, Json(till.record_payment(order_id, payment).await?)))
}

pub(super) async fn void_order(
    State(till): State<Till>,
    ApiPath(order_id): ApiPath<Uuid>,
) -> Answer<OrderDetail> {
    Ok(Json(till.advance(order_id, OrderStatus::Voided).await?))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct SettlementInput {
    status: tillmesh_core::PaymentStatus,
}

pub(super) async fn settle(
    State(till): State<Till>,
    ApiPath(order_id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<SettlementInput>,
) -> Answer<OrderDetail> {
    Ok(Json(till.settle(order_id, input.status).await?))
}

/// The shop's menu as every route answers it: the effective menu, or an empty one (`id` the
/// menu's to come, `null` on a till without a shop) while the node holds none.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct MenuAnswer {
    id: Option<Uuid>,
    currency: Option<Currency>,
    items: Vec<MenuItem>,
    updated_at: Option<Timestamp>,
    violations: Vec<AuthorityViolation>,
}

impl MenuAnswer {
    fn of(till: &Till, menu: Option<Menu>) -> MenuAnswer {
        match menu {
            Some(menu) => MenuAnswer {
                id: Some(menu.id),
                currency: Some(menu.currency),
                items: menu.items,
                updated_at: Some(menu.updated_at),
                violations: menu.violations,
            },
            None => MenuAnswer {
                id: till.menu_id(),
                currency: None,
                items: Vec::new(),
                updated_at: None,
                violations: Vec::new(),
            },
        }
    }
}

pub(super) async fn get_menu(State(till): State<Till>) -> Answer<MenuAnswer> {
    let menu = till.menu()?;
    Ok(Json(MenuAnswer::of(&till, menu)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct MenuInput {
    /// The currency the prices are in; when given, it must be the menu's.
    #[serde(default)]
    currency: Option<Currency>,
    items: Vec<NewMenuItem>,
}

pub(super) async fn put_menu(
    State(till): State<Till>,
    ApiJson(input): ApiJson<MenuInput>,
) -> Answer<MenuAnswer> {
    let menu = till.put_menu(input.currency, input.items).await?;
    Ok(Json(MenuAnswer::of(&till, Some(menu))))
}

pub(super) async fn add_menu_item(
    State(till): State<Till>,
    ApiJson(item): ApiJson<NewMenuItem>,
) -> Result<(StatusCode, Json<MenuAnswer>), ApiError> {
    let menu = till.add_menu_item(item).await?;
    Ok((StatusCode::CREATED, Json(MenuAnswer::of(&till, Some(menu)))))
}

pub(super) async fn update_menu_item(
    State(till): State<Till>,
    ApiPath(sku): ApiPath<String>,
    ApiJson(patch): ApiJson<MenuItemPatch>,
) -> Answer<MenuAnswer> {
    let menu = till.update_menu_item(sku, patch).await?;
    Ok(Json(MenuAnswer::of(&till, Some(menu))))
}

/// Every refused document kept aside, for inspection: what it claimed to be, who sent it
/// (`disk` for a stored document that no longer loads), why, when, and its bytes in hex.
pub(super) async fn quarantine(State(till): State<Till>) -> Answer<Vec<tillmesh_store::Quarantined>> {
    Ok(Json(till.store().quarantined().map_err(crate::TillError::from)?))
}

pub(super) async fn sync_status(State(till): State<Till>) -> Answer<SyncOverview> {
    Ok(Json(till.sync_overview()?))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SyncStarted {
    peers: Vec<String>,
    started: bool,
    detail: &'static str,
}

pub(super) async fn sync_now(State(till): State<Till>) -> (StatusCode, Json<SyncStarted>) {
    let answer = match till.sync_control() {
        None => SyncStarted {
            peers: Vec::new(),
            started: false,
            detail: "standalone till: no peers are configured",
        },
        Some(control) => {
            let peers = control.peers.borrow().clone();
            // A full queue means a sync is already asked for: that one serves this request too.
            let _ = control.request.try_send(());
            SyncStarted { peers, started: true, detail: "reconciling with every connected peer" }
        }
    };
    (StatusCode::ACCEPTED, Json(answer))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RosterApplied {
    peer_id: String,
    revoked: bool,
}

pub(super) async fn apply_roster(
    State(till): State<Till>,
    ApiJson(entry): ApiJson<SignedRosterEntry>,
) -> Result<(StatusCode, Json<RosterApplied>), ApiError> {
    let (Some(hq), Some(control)) = (till.config().hq.as_ref(), till.sync_control()) else {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            error: "standalone",
            detail: "this till runs without a shop: there is no roster".into(),
        });
    };
    if !entry.verify(hq) {
        return Err(ApiError::bad_request(
            "invalid_signature",
            "the roster entry is not signed by this shop's HQ",
        ));
    }
    let applied = RosterApplied { peer_id: entry.entry.peer_id.clone(), revoked: entry.entry.revoked };
    control.roster.send(entry).await.map_err(|_| ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        error: "shutting_down",
        detail: "the sync driver has stopped".into(),
    })?;
    Ok((StatusCode::ACCEPTED, Json(applied)))
}

pub(super) async fn not_found() -> ApiError {
    ApiError { status: StatusCode::NOT_FOUND, error: "not_found", detail: "no such endpoint".into() }
}
