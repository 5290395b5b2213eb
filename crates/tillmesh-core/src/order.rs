//! One order, one Automerge document: created once on the till that takes it, edited on any till,
//! merged without losing anyone's work.
//!
//! The layout is chosen so that concurrent edits merge the way a restaurant expects:
//! - `items` is a map keyed by item id (made by the till that adds the item): two tills adding
//!   items at once both keep theirs.
//! - `qty` of an item is an Automerge counter: two tills changing a quantity at once both count.
//!   Weighed goods add thousandths in a second counter, `qtyMilli` (0.5 kg: `qty` 0, `qtyMilli`
//!   500), made with every item; an item's quantity is `qty × 1000 + qtyMilli` thousandths.
//!   Documents made before it existed read as zero.
//! - voiding an item adds an entry to `voids` (an event): it never deletes the item.
//! - `progress` maps each status reached to when: the status shown is the most advanced one
//!   reached, so a stale till can never move an order back.
//! - payments are the till's append-only `claims` and HQ's signed `settlements`
//!   (see [`crate::authority`]).
//! - `adjustment` (cents, last writer wins) is a discount (below zero) or a surcharge (above) on
//!   top of the items and tax: how an order taken on a legacy device keeps the total it was
//!   sold at (a discount, a service charge, a VAT-inclusive price). Documents made before it
//!   existed read as zero.
//! - `legacyNames` keeps the names a legacy device gave the status and payment (`orderStatus`
//!   → `COMPLETED`) exactly as sent, next to tillmesh's own model; made (empty) with every
//!   document, written by HQ only.

use std::collections::BTreeMap;

use automerge::transaction::Transactable;
use automerge::{ActorId, ROOT, ReadDoc};
use autosurgeon::{Counter, Hydrate, Reconcile};
use serde::Serialize;
use uuid::Uuid;

use crate::authority::{
    self, AuthorityViolation, ClaimRecord, HqPublicKey, HqSigningKey, PaymentView, SettlementRecord,
    SignedSettlement,
};
use crate::base::{self, BaseDoc};
use crate::edit::{EditError, check_device_id, limits};
use crate::kind::{DocKind, DocumentError, SCHEMA_VERSION};
use crate::money::{Amount, Currency};
use crate::quantity::{Quantity, THOUSANDTHS_PER_UNIT};
use crate::status::{OrderStatus, PaymentMethod, PaymentStatus};
use crate::time::Timestamp;

/// What a till needs to create an order. Ids are made by the caller (the core has no randomness).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    /// The order's id (and its document's id).
    pub id: Uuid,
    /// The device-made idempotency key of the legacy API.
    pub local_id: Uuid,
    /// The order number: `<till code>-<sequence>` ([`crate::OrderNumber`]) when a till takes the
    /// order; a legacy device's own number (`1001`, `ORD-20250115-0001`, never shaped like a
    /// till's) when HQ records one. 1 to [`limits::ORDER_NUMBER_CHARS_MAX`] characters.
    pub number: String,
    /// The device that takes the order.
    pub device_id: String,
    /// The order's currency.
    pub currency: Currency,
    /// The shop's tax rate in basis points (825 = 8.25 %), fixed at creation.
    pub tax_rate_bps: u32,
    /// The first items.
    pub items: Vec<NewItem>,
    /// Free-text notes.
    pub notes: String,
    /// When the order was taken.
    pub created_at: Timestamp,
}

/// Where an order taken on a device outside the mesh already stands when it is first recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reached {
    /// The status reached (`OPEN` adds nothing).
    pub status: OrderStatus,
    /// The device's payment claim, if any: its method and `PENDING` or `PAID`.
    pub claim: Option<(PaymentMethod, PaymentStatus)>,
    /// The device's total minus the items and tax: a discount (below zero) or a surcharge.
    pub adjustment: Amount,
    /// The device's own names of the status and payment, by legacy field (`orderStatus`,
    /// `paymentStatus`, `paymentMethod`), as sent.
    pub names: BTreeMap<String, String>,
    /// When the status and the claim were recorded.
    pub at: Timestamp,
}

/// An item to add to an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewItem {
    /// The item's id, made by the adding device.
    pub id: Uuid,
    /// Product code (the legacy API's `productId`).
    pub sku: String,
    /// Product name.
    pub name: String,
    /// How many: [`limits::QUANTITY_MIN`] to [`limits::QUANTITY_MAX`], in thousandths.
    pub quantity: Quantity,
    /// Price of one, zero or more.
    pub unit_price: Amount,
}

/// The effective state of an order, as every peer with the same document computes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// The order's id.
    pub id: Uuid,
    /// The device-made idempotency key.
    pub local_id: Uuid,
    /// `<till code>-<sequence>`.
    pub order_number: String,
    /// The device that took the order.
    pub device_id: String,
    /// The order's currency.
    pub currency: Currency,
    /// Tax rate in basis points.
    pub tax_rate_bps: u32,
    /// Items, oldest first; voided items stay, marked.
    pub items: Vec<OrderItem>,
    /// Sum of the lines of items not voided.
    pub subtotal: Amount,
    /// `subtotal × tax_rate_bps / 10 000`, rounded half away from zero to the cent.
    pub tax: Amount,
    /// A discount (below zero) or surcharge (above zero) on top of items and tax.
    pub adjustment: Amount,
    /// `subtotal + tax + adjustment`, never below zero.
    pub total: Amount,
    /// A legacy device's names of the status and payment, by legacy field, as sent.
    pub legacy_names: BTreeMap<String, String>,
    /// Payment: HQ's settlement or the till's claim.
    pub payment: PaymentView,
    /// The most advanced status reached.
    pub status: OrderStatus,
    /// Free-text notes.
    pub notes: String,
    /// When the order was taken.
    pub created_at: Timestamp,
    /// The latest edit's time.
    pub updated_at: Timestamp,
    /// Writes to HQ-owned fields that are ignored.
    pub violations: Vec<AuthorityViolation>,
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderItem {
    /// The item's id.
    pub id: Uuid,
    /// Product code.
    pub sku: String,
    /// Product name.
    pub name: String,
    /// Quantity: the merged counters, never below zero.
    pub quantity: Quantity,
    /// Price of one.
    pub unit_price: Amount,
    /// `quantity × unit_price`, rounded once to the cent (zero when voided).
    pub line_total: Amount,
    /// Whether the item was voided.
    pub voided: bool,
}

/// The root of an order document, as written at creation and read back.
#[derive(Debug, Clone, Reconcile, Hydrate)]
struct OrderRecord {
    schema: u64,
    kind: String,
    id: String,
    #[autosurgeon(rename = "localId")]
    local_id: String,
    #[autosurgeon(rename = "orderNumber")]
    order_number: String,
    #[autosurgeon(rename = "deviceId")]
    device_id: String,
    currency: String,
    #[autosurgeon(rename = "taxRateBps")]
    tax_rate_bps: u64,
    notes: String,
    #[autosurgeon(rename = "createdAt")]
    created_at: i64,
    #[autosurgeon(rename = "updatedAt")]
    updated_at: i64,
    items: BTreeMap<String, ItemRecord>,
    voids: BTreeMap<String, VoidRecord>,
    progress: BTreeMap<String, i64>,
    /// Cents; missing in documents made before adjustments existed.
    #[autosurgeon(missing = "Default::default")]
    adjustment: i64,
    /// Missing in documents made before legacy names were kept.
    #[autosurgeon(rename = "legacyNames", missing = "Default::default")]
    legacy_names: BTreeMap<String, String>,
    /// Written at creation, so that the whole document is made in one batch; read entry by
    /// entry by the payment view, never through this record (it hydrates empty).
    #[autosurgeon(hydrate = "base::not_hydrated")]
    claims: Vec<ClaimRecord>,
    #[autosurgeon(hydrate = "base::not_hydrated")]
    settlements: Vec<SettlementRecord>,
}

#[derive(Debug, Clone, Reconcile, Hydrate)]
struct ItemRecord {
    sku: String,
    name: String,
    #[autosurgeon(rename = "unitPrice")]
    unit_price: i64,
    qty: Counter,
    /// Thousandths on top of `qty`; missing in documents made before weighed goods.
    #[autosurgeon(rename = "qtyMilli", missing = "Default::default")]
    qty_milli: Counter,
    #[autosurgeon(rename = "addedBy")]
    added_by: String,
    #[autosurgeon(rename = "addedAt")]
    added_at: i64,
}

#[derive(Debug, Clone, Reconcile, Hydrate)]
struct VoidRecord {
    by: String,
    at: i64,
}

/// An order document.
#[derive(Debug, Clone)]
pub struct OrderDoc {
    base: BaseDoc,
}

document_plumbing!(OrderDoc, DocKind::Order, "an order");

impl OrderDoc {
    /// Creates the order's document. Call once, on the device that takes the order; every other
    /// peer gets it by sync, never by creating it again.
    pub fn create(new: NewOrder, actor: ActorId) -> Result<OrderDoc, EditError> {
        Ok(OrderDoc::build(new, None, actor)?.0)
    }

    /// Like [`OrderDoc::create`] for an order taken on a device outside the mesh that has
    /// already `reached` a status and a payment claim (HQ recording a legacy device's order):
    /// the same document as creating it and then advancing and claiming, made in one change.
    /// Returns its view as well, computed without reading the document back.
    pub fn create_reached(
        new: NewOrder,
        reached: Option<Reached>,
        actor: ActorId,
    ) -> Result<(OrderDoc, Order), EditError> {
        let writer = actor.to_hex_string();
        let (doc, record) = OrderDoc::build(new, reached, actor)?;
        let claims = record.claims.iter().map(|claim| (claim.clone(), writer.clone()));
        let payment = authority::resolve(DocKind::Order, doc.base.id, claims, [], None);
        let updated_at = Timestamp(record.updated_at);
        let view = Order::of(doc.base.id, record, updated_at, payment)?;
        Ok((doc, view))
    }

    /// The document [`OrderDoc::create_reached`] makes, and the record it was made from.
    fn build(
        new: NewOrder,
        reached: Option<Reached>,
        actor: ActorId,
    ) -> Result<(OrderDoc, OrderRecord), EditError> {
        check_device_id(&new.device_id)?;
        limits::ORDER_NUMBER.check(&new.number)?;
        if new.tax_rate_bps > limits::TAX_RATE_BPS_MAX {
            return Err(EditError::TaxRate { bps: new.tax_rate_bps });
        }
        limits::NOTES.check(&new.notes)?;
        if new.items.len() > limits::ITEMS_MAX {
            return Err(EditError::TooManyItems { items_max: limits::ITEMS_MAX });
        }
        let mut items = BTreeMap::new();
        for item in &new.items {
            items.insert(item.id.to_string(), ItemRecord::new(item, &new.device_id, new.created_at)?);
        }
        let mut progress = BTreeMap::from([(OrderStatus::Open.as_str().to_string(), new.created_at.0)]);
        let mut claims = Vec::new();
        let mut updated_at = new.created_at;
        let (adjustment, legacy_names) = reached
            .as_ref()
            .map_or((Amount::ZERO, BTreeMap::new()), |reached| (reached.adjustment, reached.names.clone()));
        for name in legacy_names.values() {
            crate::edit::limits::LEGACY_NAME.check(name)?;
        }
        if let Some(reached) = reached {
            if reached.status != OrderStatus::Open {
                progress.insert(reached.status.as_str().to_string(), reached.at.0);
            }
            if let Some((method, status)) = reached.claim {
                if status.is_settlement() {
                    return Err(EditError::HqOnly { status });
                }
                if reached.status == OrderStatus::Voided {
                    return Err(EditError::Terminal { status: OrderStatus::Voided });
                }
                claims.push(ClaimRecord {
                    status: status.as_str().to_string(),
                    method: Some(method.as_str().to_string()),
                    by: new.device_id.clone(),
                    at: reached.at.0,
                });
            }
            if reached.status != OrderStatus::Open || reached.claim.is_some() {
                updated_at = updated_at.max(reached.at);
            }
        }
        let record = OrderRecord {
            schema: SCHEMA_VERSION,
            kind: DocKind::Order.as_str().to_string(),
            id: new.id.to_string(),
            local_id: new.local_id.to_string(),
            order_number: new.number,
            device_id: new.device_id.clone(),
            currency: new.currency.to_string(),
            tax_rate_bps: u64::from(new.tax_rate_bps),
            notes: new.notes,
            created_at: new.created_at.0,
            updated_at: updated_at.0,
            items,
            voids: BTreeMap::new(),
            progress,
            adjustment: adjustment.minor(),
            legacy_names,
            claims,
            settlements: Vec::new(),
        };
        let mut base = BaseDoc::new(new.id, actor);
        autosurgeon::reconcile(&mut base.doc, &record).map_err(DocumentError::from)?;
        base.commit(&new.device_id, updated_at);
        Ok((OrderDoc { base }, record))
    }

    /// The effective order. `hq` verifies settlements; without it none is honoured.
    pub fn view(&self, hq: Option<&HqPublicKey>) -> Result<Order, DocumentError> {
        let record: OrderRecord = self.base.record(DocKind::Order)?;
        let updated_at = self.base.updated_at(record.updated_at);
        let payment = self.base.payment(DocKind::Order, hq)?;
        Order::of(self.base.id, record, updated_at, payment)
    }

    /// Adds an item. Refused once the order is closed or voided.
    pub fn add_item(&mut self, item: NewItem, by: &str, at: Timestamp) -> Result<(), EditError> {
        let order = self.editable()?;
        if order.items.len() >= limits::ITEMS_MAX {
            return Err(EditError::TooManyItems { items_max: limits::ITEMS_MAX });
        }
        if order.items.iter().any(|existing| existing.id == item.id) {
            return Err(EditError::DuplicateItem { item_id: item.id });
        }
        let record = ItemRecord::new(&item, by, at)?;
        let items = self.base.child("items")?;
        autosurgeon::reconcile_prop(&mut self.base.doc, items, item.id.to_string().as_str(), &record)
            .map_err(DocumentError::from)?;
        Ok(self.base.finish(by, at)?)
    }

    /// Sets an item's quantity ([`limits::QUANTITY_MIN`] to [`limits::QUANTITY_MAX`]). Written
    /// as increments of the item's counters (whole pieces in `qty`, the rest in `qtyMilli`), so
    /// a concurrent change on another till is added to it, not lost.
    pub fn set_quantity(
        &mut self,
        item_id: Uuid,
        quantity: Quantity,
        by: &str,
        at: Timestamp,
    ) -> Result<(), EditError> {
        check_quantity(quantity)?;
        self.editable()?.live_item(item_id)?;
        let items = self.base.child("items")?;
        let item = base::child(&self.base.doc, &items, &item_id.to_string(), self.base.id)?;
        // The raw counters, which merges may have taken below zero; the view clamps their sum.
        let pieces: Counter =
            autosurgeon::hydrate_prop(&self.base.doc, &item, "qty").map_err(DocumentError::from)?;
        let milli: Option<Counter> =
            match self.base.doc.get(&item, "qtyMilli").map_err(DocumentError::from)? {
                Some(_) => Some(
                    autosurgeon::hydrate_prop(&self.base.doc, &item, "qtyMilli")
                        .map_err(DocumentError::from)?,
                ),
                None => None,
            };
        let (whole, fraction) = split(quantity);
        if whole != pieces.value() {
            self.base.doc.increment(&item, "qty", whole - pieces.value()).map_err(DocumentError::from)?;
        }
        match milli {
            Some(milli) if fraction != milli.value() => self
                .base
                .doc
                .increment(&item, "qtyMilli", fraction - milli.value())
                .map_err(DocumentError::from)?,
            // An item made before weighed goods: its counter is made now (two tills doing so
            // at once keep one's fraction; such items predate every fractional quantity).
            None if fraction != 0 => self
                .base
                .doc
                .put(&item, "qtyMilli", automerge::ScalarValue::counter(fraction))
                .map_err(DocumentError::from)?,
            _ => {}
        }
        Ok(self.base.finish(by, at)?)
    }

    /// Voids an item: recorded as an event; the item stays in the document, marked voided.
    pub fn void_item(&mut self, item_id: Uuid, by: &str, at: Timestamp) -> Result<(), EditError> {
        self.editable()?.live_item(item_id)?;
        let voids = self.base.child("voids")?;
        let record = VoidRecord { by: by.to_string(), at: at.0 };
        autosurgeon::reconcile_prop(&mut self.base.doc, voids, item_id.to_string().as_str(), &record)
            .map_err(DocumentError::from)?;
        Ok(self.base.finish(by, at)?)
    }

    /// The most advanced status reached (what [`OrderDoc::view`] shows), read from the
    /// `progress` map alone.
    pub fn status(&self) -> Result<OrderStatus, DocumentError> {
        let progress = self.base.child("progress")?;
        let names: Vec<String> = self.base.doc.keys(&progress).collect();
        Ok(most_advanced(names.iter().map(String::as_str)))
    }

    /// Moves the order forward to `to`; backwards or out of a terminal state is refused.
    pub fn advance(&mut self, to: OrderStatus, by: &str, at: Timestamp) -> Result<(), EditError> {
        let from = self.status()?;
        if !from.can_advance_to(to) {
            return Err(EditError::StatusTransition { from, to });
        }
        let progress = self.base.child("progress")?;
        self.base.doc.put(&progress, to.as_str(), at.0).map_err(DocumentError::from)?;
        Ok(self.base.finish(by, at)?)
    }

    /// Sets the order's adjustment: a discount (below zero) or a surcharge (above zero) on top
    /// of items and tax. Refused once the order is closed or voided, or when it would take the
    /// total below zero.
    pub fn set_adjustment(&mut self, adjustment: Amount, by: &str, at: Timestamp) -> Result<(), EditError> {
        let order = self.editable()?;
        order
            .subtotal
            .checked_add(order.tax)
            .and_then(|before| before.checked_add(adjustment))
            .and_then(Amount::non_negative)
            .map_err(|source| EditError::Money { field: "adjustment", source })?;
        self.base.doc.put(ROOT, "adjustment", adjustment.minor()).map_err(DocumentError::from)?;
        Ok(self.base.finish(by, at)?)
    }

    /// Keeps a legacy device's names of the status and payment (by legacy field) as sent,
    /// replacing those it names. A document made before legacy names were kept has no map for
    /// them and keeps none (it is never added later, by two peers at once).
    pub fn set_legacy_names(
        &mut self,
        names: &BTreeMap<String, String>,
        by: &str,
        at: Timestamp,
    ) -> Result<(), EditError> {
        self.base.set_legacy_names(names, by, at)
    }

    /// Records the till's claim about the payment (`PENDING` or `PAID`, with the method).
    /// HQ-only statuses are refused here; HQ uses [`OrderDoc::settle`].
    pub fn claim_payment(
        &mut self,
        method: PaymentMethod,
        status: PaymentStatus,
        by: &str,
        at: Timestamp,
    ) -> Result<(), EditError> {
        if status.is_settlement() {
            return Err(EditError::HqOnly { status });
        }
        if self.status()? == OrderStatus::Voided {
            return Err(EditError::Terminal { status: OrderStatus::Voided });
        }
        let record = ClaimRecord {
            status: status.as_str().to_string(),
            method: Some(method.as_str().to_string()),
            by: by.to_string(),
            at: at.0,
        };
        self.base.append("claims", &record)?;
        Ok(self.base.finish(by, at)?)
    }

    /// Replaces the notes.
    pub fn set_notes(&mut self, notes: &str, by: &str, at: Timestamp) -> Result<(), EditError> {
        limits::NOTES.check(notes)?;
        self.base.doc.put(ROOT, "notes", notes).map_err(DocumentError::from)?;
        Ok(self.base.finish(by, at)?)
    }

    /// HQ settles the order's payment: a signed entry that outranks every earlier settlement.
    pub fn settle(
        &mut self,
        hq: &HqSigningKey,
        status: PaymentStatus,
        by: &str,
        at: Timestamp,
    ) -> Result<SignedSettlement, EditError> {
        self.base.settle(hq, DocKind::Order, status, by, at)
    }

    /// The order, if edits to its items are still allowed.
    fn editable(&self) -> Result<Order, EditError> {
        let order = self.view(None)?;
        if order.status.is_terminal() {
            return Err(EditError::Terminal { status: order.status });
        }
        Ok(order)
    }
}

/// The most advanced of the statuses named (unknown names ignored), `OPEN` when none.
fn most_advanced<'a>(names: impl Iterator<Item = &'a str>) -> OrderStatus {
    names.filter_map(|name| name.parse::<OrderStatus>().ok()).max().unwrap_or(OrderStatus::Open)
}

impl Order {
    /// The view of a document's root record, latest `updatedAt` and payment.
    fn of(
        id: Uuid,
        record: OrderRecord,
        updated_at: Timestamp,
        (payment, violations): (PaymentView, Vec<AuthorityViolation>),
    ) -> Result<Order, DocumentError> {
        let malformed = |problem: String| DocumentError::Malformed { id: id.to_string(), problem };
        let parse_uuid = |text: &str, what: &str| {
            Uuid::parse_str(text).map_err(|_| malformed(format!("{what} is not a UUID")))
        };

        let mut items = Vec::with_capacity(record.items.len());
        let mut subtotal = Amount::ZERO;
        for (item_id, item) in &record.items {
            let voided = record.voids.contains_key(item_id);
            let thousandths =
                item.qty.value().saturating_mul(THOUSANDTHS_PER_UNIT).saturating_add(item.qty_milli.value());
            let quantity =
                Quantity::from_thousandths(thousandths.clamp(0, limits::QUANTITY_MAX.thousandths()));
            let unit_price = Amount::from_minor(item.unit_price);
            let line_total = if voided {
                Amount::ZERO
            } else {
                quantity.price(unit_price).map_err(|e| malformed(e.to_string()))?
            };
            subtotal = subtotal.checked_add(line_total).map_err(|e| malformed(e.to_string()))?;
            items.push((
                item.added_at,
                OrderItem {
                    id: parse_uuid(item_id, "item id")?,
                    sku: item.sku.clone(),
                    name: item.name.clone(),
                    quantity,
                    unit_price,
                    line_total,
                    voided,
                },
            ));
        }
        items.sort_by(|(a_at, a), (b_at, b)| (a_at, a.id).cmp(&(b_at, b.id)));

        let tax_rate_bps =
            u32::try_from(record.tax_rate_bps).map_err(|_| malformed("tax rate out of range".into()))?;
        let tax = subtotal
            .mul_ratio_round_half_up(i64::from(tax_rate_bps), 10_000)
            .map_err(|e| malformed(e.to_string()))?;
        let adjustment = Amount::from_minor(record.adjustment);
        // A merge may void items under a discount: the total stops at zero.
        let total = subtotal
            .checked_add(tax)
            .and_then(|total| total.checked_add(adjustment))
            .map_err(|e| malformed(e.to_string()))?
            .max(Amount::ZERO);
        let status = most_advanced(record.progress.keys().map(String::as_str));

        Ok(Order {
            id,
            local_id: parse_uuid(&record.local_id, "localId")?,
            order_number: record.order_number,
            device_id: record.device_id,
            currency: Currency::parse(&record.currency).map_err(|e| malformed(e.to_string()))?,
            tax_rate_bps,
            items: items.into_iter().map(|(_, item)| item).collect(),
            subtotal,
            tax,
            adjustment,
            total,
            legacy_names: record.legacy_names,
            payment,
            status,
            notes: record.notes,
            created_at: Timestamp(record.created_at),
            updated_at,
            violations,
        })
    }

    /// An item that exists and is not voided.
    fn live_item(&self, item_id: Uuid) -> Result<&OrderItem, EditError> {
        match self.items.iter().find(|item| item.id == item_id) {
            None => Err(EditError::UnknownItem { item_id }),
            Some(item) if item.voided => Err(EditError::ItemVoided { item_id }),
            Some(item) => Ok(item),
        }
    }
}

/// A quantity within [`limits::QUANTITY_MIN`] to [`limits::QUANTITY_MAX`].
fn check_quantity(quantity: Quantity) -> Result<(), EditError> {
    if (limits::QUANTITY_MIN..=limits::QUANTITY_MAX).contains(&quantity) {
        Ok(())
    } else {
        Err(EditError::Quantity { quantity })
    }
}

/// A quantity as the item's counters hold it: whole pieces and the thousandths beyond them.
fn split(quantity: Quantity) -> (i64, i64) {
    (quantity.thousandths() / THOUSANDTHS_PER_UNIT, quantity.thousandths() % THOUSANDTHS_PER_UNIT)
}

impl ItemRecord {
    fn new(item: &NewItem, by: &str, at: Timestamp) -> Result<ItemRecord, EditError> {
        limits::SKU.check(&item.sku)?;
        limits::ITEM_NAME.check(&item.name)?;
        check_quantity(item.quantity)?;
        let price = item
            .unit_price
            .non_negative()
            .map_err(|source| EditError::Money { field: "unitPrice", source })?;
        if price > limits::UNIT_PRICE_MAX {
            return Err(EditError::Money { field: "unitPrice", source: crate::money::MoneyError::Overflow });
        }
        Ok(ItemRecord {
            sku: item.sku.clone(),
            name: item.name.clone(),
            unit_price: price.minor(),
            qty: Counter::with_value(split(item.quantity).0),
            qty_milli: Counter::with_value(split(item.quantity).1),
            added_by: by.to_string(),
            added_at: at.0,
        })
    }
}
