//! A till: its store, its writer thread, and the operations the POS front-end calls.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use automerge::ActorId;
use serde::{Deserialize, Serialize};
use tillmesh_core::{
    Amount, Clock, Currency, DocKind, Document, EditError, HqPublicKey, HqSigningKey, Menu, MenuDoc,
    MenuItemPatch, NewItem, NewMenuItem, NewOrder, NewTransaction, Order, OrderDoc, OrderStatus,
    PaymentMethod, PaymentStatus, Quantity, TillCode, Timestamp, Transaction, TransactionDoc, View,
    order_hash,
};
use tillmesh_store::{OrderPage, OrderQuery, Prepared, RemoteCounts, Store, StoreOptions, TillIdentity};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::TillError;
use crate::sync_control::SyncControl;
use crate::writer::{WriteContext, Writer};

/// How to run a till.
#[derive(Debug, Clone)]
pub struct TillConfig {
    /// Where the store lives.
    pub data_dir: PathBuf,
    /// The till's code in its shop (`A`).
    pub code: TillCode,
    /// The shop's currency.
    pub currency: Currency,
    /// The shop's tax rate in basis points (825 = 8.25 %).
    pub tax_rate_bps: u32,
    /// HQ's public key, when the till belongs to a shop with HQ.
    pub hq: Option<HqPublicKey>,
    /// HQ's signing key: only on the HQ node, which alone may settle payments.
    pub hq_signing: Option<tillmesh_core::HqSigningKey>,
    /// Edits that may wait for the writer before callers wait to enqueue.
    pub writer_queue_max: usize,
    /// sled's page cache in bytes: [`TILL_CACHE_BYTES`], or [`HQ_CACHE_BYTES`] on HQ's node.
    pub cache_bytes: u64,
    /// Host names (besides `localhost` and IP addresses) the till's HTTP API answers for; any
    /// other `Host` is refused, so that a web page cannot reach the API by DNS rebinding.
    pub allowed_hosts: Vec<String>,
}

/// A till's page cache. sled holds well over the capacity it is given while it writes: a till
/// that catches up on 100,000 orders peaked at 133 MiB with 32 MiB, 106 MiB with 16 MiB and 90
/// MiB with 8 MiB, which left creating orders and listing them as fast as before (`cargo bench
/// --bench sync_pair -- --orders 100000`, `cargo bench -p tillmesh-node --bench till`).
pub const TILL_CACHE_BYTES: u64 = 8 * 1024 * 1024;

/// HQ's page cache: HQ takes in every till's orders, and its REST ingest lost a sixth of its
/// speed on sled with a till's cache (`cargo bench -p tillmesh-hq --bench ingest`).
pub const HQ_CACHE_BYTES: u64 = 32 * 1024 * 1024;

impl TillConfig {
    /// A standalone till with the defaults: USD, no tax, 1,024 queued edits, a
    /// [`TILL_CACHE_BYTES`] cache.
    pub fn new(data_dir: PathBuf, code: TillCode) -> TillConfig {
        TillConfig {
            data_dir,
            code,
            currency: Currency::parse("USD").unwrap_or_else(|_| unreachable!("USD is a currency code")),
            tax_rate_bps: 0,
            hq: None,
            hq_signing: None,
            writer_queue_max: 1024,
            cache_bytes: TILL_CACHE_BYTES,
            allowed_hosts: Vec::new(),
        }
    }

    /// Makes this HQ's node: it holds HQ's signing key (it alone settles payments) and
    /// [`HQ_CACHE_BYTES`] of cache.
    pub fn set_hq(&mut self, signing: tillmesh_core::HqSigningKey) {
        self.hq = Some(signing.public_key());
        self.hq_signing = Some(signing);
        self.cache_bytes = HQ_CACHE_BYTES;
    }

    /// The device id a node writes as: `till-<code>`, or `hq` for HQ.
    pub fn device_id(&self) -> String {
        if self.code.as_str() == tillmesh_core::roster::HQ_CODE {
            "hq".to_string()
        } else {
            format!("till-{}", self.code)
        }
    }
}

/// An item as the front-end sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ItemInput {
    /// Product code; [`FREE_FORM_SKU`] when the front-end sends none (an item typed in by hand).
    #[serde(default = "free_form_sku")]
    pub sku: String,
    /// Product name.
    pub name: String,
    /// How many: whole pieces or a weight with up to three decimals (`0.5`).
    pub quantity: Quantity,
    /// Price of one.
    pub unit_price: Amount,
}

/// The product code of an item sent without one: every item's document and legacy record carry
/// a product code (`productId`), and one typed in by hand has none of its own.
pub const FREE_FORM_SKU: &str = "OPEN-ITEM";

fn free_form_sku() -> String {
    FREE_FORM_SKU.to_string()
}

/// A new order as the front-end sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderInput {
    /// The front-end's idempotency key: the same key twice creates one order.
    #[serde(default)]
    pub local_id: Option<Uuid>,
    /// The items.
    pub items: Vec<ItemInput>,
    /// Free-text notes.
    #[serde(default)]
    pub notes: String,
}

/// A payment the till took (its claim until HQ settles).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PaymentInput {
    /// How the guest paid.
    pub method: PaymentMethod,
    /// `PAID` (default) or `PENDING`.
    #[serde(default = "paid")]
    pub status: PaymentStatus,
    /// How much; the order total when absent.
    #[serde(default)]
    pub amount: Option<Amount>,
    /// Last four digits of the card.
    #[serde(default)]
    pub card_last4: Option<String>,
    /// The payment processor's reference.
    #[serde(default)]
    pub processor_reference: Option<String>,
}

fn paid() -> PaymentStatus {
    PaymentStatus::Paid
}

/// An order with its hash and its transactions, as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderDetail {
    /// The order.
    #[serde(flatten)]
    pub order: Order,
    /// The canonical hash (the legacy API's `serverHash`).
    pub server_hash: String,
    /// The order's payment transactions.
    pub transactions: Vec<Transaction>,
}

/// Where the till stands with its peers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncOverview {
    /// Documents held.
    pub documents: u64,
    /// Documents not yet held by every remote (all of them while there is no remote).
    pub pending: u64,
    /// Documents every remote holds as they are here.
    pub synced: u64,
    /// Documents whose last sync attempt failed with some remote.
    pub failed: u64,
    /// The latest successful sync with any remote.
    pub last_sync_at: Option<Timestamp>,
    /// The peers admitted now, by remote name (none for a standalone till).
    pub peers: Vec<String>,
    /// Per remote.
    pub remotes: Vec<RemoteCounts>,
}

/// A running till. Cheap to clone; clones share the till.
#[derive(Debug, Clone)]
pub struct Till {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    writer: Writer,
    config: TillConfig,
    device_id: String,
    /// This process run's Automerge actor: fresh on every start, so a change lost in a crash
    /// can never be confused with a new one carrying the same sequence number.
    actor: ActorId,
    clock: Arc<dyn Clock>,
    /// The sync driver's controls, when the till runs in a mesh.
    sync: OnceLock<SyncControl>,
    /// Cancelled when the node stops serving: ends its change streams.
    serving_ends: tokio_util::sync::CancellationToken,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Till").field("device_id", &self.device_id).field("actor", &self.actor).finish()
    }
}

impl Till {
    /// Opens the till's store (creating it on first start) and starts its writer.
    pub fn open(config: TillConfig, clock: Arc<dyn Clock>) -> Result<Till, TillError> {
        let store =
            Store::open(&config.data_dir, StoreOptions { cache_bytes: config.cache_bytes, hq: config.hq })?;
        let device_id = config.device_id();
        store.bind_till(&TillIdentity { code: config.code.clone(), device_id: device_id.clone() })?;
        let index = store.load_index()?;
        let writer = Writer::spawn(store.clone(), index, config.writer_queue_max, Arc::clone(&clock))
            .map_err(|error| TillError::NotDurable {
                detail: format!("cannot start the writer thread: {error}"),
            })?;
        let actor = ActorId::from(Uuid::new_v4().into_bytes());
        let inner = Inner {
            store,
            writer,
            config,
            device_id,
            actor,
            clock,
            sync: OnceLock::new(),
            serving_ends: tokio_util::sync::CancellationToken::new(),
        };
        let till = Till { inner: Arc::new(inner) };
        let scrubbed = Arc::downgrade(&till.inner);
        // Started here so that no till runs unchecked; in the background so that opening stays
        // fast whatever the number of documents.
        std::thread::Builder::new()
            .name("tillmesh-scrub".into())
            .spawn(move || scrub_in_background(&scrubbed))
            .map_err(|error| TillError::NotDurable {
                detail: format!("cannot start the scrub thread: {error}"),
            })?;
        Ok(till)
    }

    /// Checks every stored document as a document received from a peer is checked (contained
    /// load, header, view) and sets aside those that fail (bit rot, or written by a faulty
    /// build), so that they stop neither reads nor sync. [`Till::open`] runs it once on a thread
    /// of its own; this runs it on the caller's, which it blocks (not an async task's).
    pub fn scrub(&self) -> Result<ScrubReport, TillError> {
        let mut report = ScrubReport::default();
        let mut after = None;
        while let Some(last) = self.scrub_chunk(after, &mut report)? {
            after = Some(last);
        }
        Ok(report)
    }

    /// Checks the next chunk of documents after `after`; returns the last id checked, `None` at
    /// the end.
    fn scrub_chunk(&self, after: Option<Uuid>, report: &mut ScrubReport) -> Result<Option<Uuid>, TillError> {
        let chunk = self.inner.store.documents_after(after, SCRUB_CHUNK_DOCUMENTS)?;
        let last = chunk.last().map(|(id, _)| *id);
        for (id, bytes) in chunk {
            report.checked += 1;
            let verdict = tillmesh_untrusted::load_document(&bytes)
                .map_err(|error| error.to_string())
                .and_then(|doc| self.inner.store.receive(id, doc, Some(bytes.clone())).map(|_| ()));
            if let Err(reason) = verdict {
                let set_aside = self.inner.writer.submit_blocking(move |context| {
                    // Only the bytes found wanting: the document may have been rewritten since.
                    let unchanged = context.store.get_bytes(id)?.is_some_and(|now| now == bytes);
                    if unchanged {
                        context.set_aside(id, &reason)?;
                    }
                    Ok(unchanged)
                })?;
                report.set_aside += u64::from(set_aside);
            }
        }
        Ok(last)
    }

    /// The device id this till writes as.
    pub fn device_id(&self) -> &str {
        &self.inner.device_id
    }

    /// The till's configuration.
    pub fn config(&self) -> &TillConfig {
        &self.inner.config
    }

    /// The till's store (for reads).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Ends the change streams ([`crate::http`]'s `GET /api/changes`): the node stops serving,
    /// and a stream would otherwise hold its connection open through the shutdown's grace.
    pub fn end_streams(&self) {
        self.inner.serving_ends.cancel();
    }

    /// Resolves once [`Till::end_streams`] was called.
    pub fn streams_ended(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.inner.serving_ends.clone().cancelled_owned()
    }

    /// Stops taking edits, finishes and flushes the queued ones.
    pub fn close(&self) {
        self.inner.writer.close();
    }

    /// The writer thread: every write to the store is one of its jobs (sync steps too).
    pub fn writer(&self) -> &Writer {
        &self.inner.writer
    }

    /// The clock.
    pub(crate) fn clock(&self) -> &dyn Clock {
        self.inner.clock.as_ref()
    }

    /// Ids of documents written from now on (local edits and documents from peers), each sent
    /// once durable.
    pub fn subscribe_written(&self) -> broadcast::Receiver<Uuid> {
        self.inner.writer.subscribe_written()
    }

    /// Ids of documents written from now on, each sent once it can be shown: a peer's as soon as
    /// it is stored, this node's own once durable (see [`Writer::subscribe_visible`]).
    pub fn subscribe_visible(&self) -> broadcast::Receiver<Uuid> {
        self.inner.writer.subscribe_visible()
    }

    /// Writes documents made elsewhere (HQ's legacy REST ingest) as this node's own writes (the
    /// sync driver pushes them, as it does every write of this node). A document the store
    /// already holds is merged into the stored copy, so nothing either side has is lost; a new
    /// one is written with its [`Prepared`] when the caller computed it (see
    /// [`Store::prepare_viewed`]). Returns the ids written.
    pub async fn write_documents(
        &self,
        documents: Vec<(Document, Option<Prepared>)>,
    ) -> Result<Vec<Uuid>, TillError> {
        let job = move |context: &mut WriteContext<'_>| {
            let store = context.store;
            let mut prepared = Vec::with_capacity(documents.len());
            for (mut document, ready) in documents {
                let existing = store.get(document.id())?;
                prepared.push(match (existing, ready) {
                    (Some(mut existing), _) => {
                        existing.merge(&mut document)?;
                        store.prepare(&mut existing, None)?
                    }
                    (None, Some(ready)) => ready,
                    (None, None) => store.prepare(&mut document, None)?,
                });
            }
            Ok(context.put_prepared(&prepared, None)?)
        };
        self.inner.writer.submit(job).await
    }

    /// Connects the sync driver's controls (once).
    pub(crate) fn attach_sync(&self, control: SyncControl) {
        // A second driver for the same till is a programming error; the first stays.
        let _ = self.inner.sync.set(control);
    }

    /// The sync driver's controls, if one runs.
    pub fn sync_control(&self) -> Option<&SyncControl> {
        self.inner.sync.get()
    }

    /// Creates an order. Returns it and whether it is new: an order whose `localId` is already
    /// here is returned as it is.
    pub async fn create_order(&self, input: OrderInput) -> Result<(OrderDetail, bool), TillError> {
        let local_id = input.local_id.unwrap_or_else(Uuid::new_v4);
        if let Some(existing) = self.inner.store.find_local_id(local_id)? {
            return Ok((self.order(existing)?, false));
        }
        let inner = Arc::clone(&self.inner);
        let items: Vec<NewItem> = input.items.into_iter().map(new_item).collect();
        let job = move |context: &mut WriteContext<'_>| {
            let store = context.store;
            if let Some(existing) = store.find_local_id(local_id)? {
                return Err(TillError::AlreadyExists { id: existing });
            }
            // The number is reserved only once the order is made: a refused order uses none.
            let sequence = store.order_sequence()? + 1;
            let new = NewOrder {
                id: Uuid::new_v4(),
                local_id,
                number: inner.config.code.order_number(sequence).to_string(),
                device_id: inner.device_id.clone(),
                currency: inner.config.currency,
                tax_rate_bps: inner.config.tax_rate_bps,
                items,
                notes: input.notes,
                created_at: inner.clock.now(),
            };
            // The view comes with the new document: it is neither read back for the store's
            // summary nor for the answer.
            let (order, view) = OrderDoc::create_reached(new, None, inner.actor.clone())?;
            // The writer runs one job at a time: nothing took the number meanwhile.
            if store.next_order_sequence()? != sequence {
                return Err(TillError::Internal {
                    detail: "the order sequence moved during an order's creation",
                });
            }
            let mut document = Document::Order(order);
            let saved = document.save();
            let prepared = store.prepare_viewed(&mut document, saved, &View::Order(view.clone()));
            context.put_prepared(&[prepared], None)?;
            Ok(view)
        };
        match self.inner.writer.submit(job).await {
            Ok(order) => {
                // A new order has no transactions yet.
                Ok((OrderDetail { server_hash: order_hash(&order), order, transactions: Vec::new() }, true))
            }
            Err(TillError::AlreadyExists { id }) => Ok((self.order(id)?, false)),
            Err(error) => Err(error),
        }
    }

    /// Adds an item to an order.
    pub async fn add_item(&self, order_id: Uuid, item: ItemInput) -> Result<OrderDetail, TillError> {
        let item = new_item(item);
        self.edit_order(order_id, move |order, by, at| order.add_item(item, by, at)).await
    }

    /// Sets an item's quantity.
    pub async fn set_quantity(
        &self,
        order_id: Uuid,
        item_id: Uuid,
        quantity: Quantity,
    ) -> Result<OrderDetail, TillError> {
        self.edit_order(order_id, move |order, by, at| order.set_quantity(item_id, quantity, by, at)).await
    }

    /// Voids an item.
    pub async fn void_item(&self, order_id: Uuid, item_id: Uuid) -> Result<OrderDetail, TillError> {
        self.edit_order(order_id, move |order, by, at| order.void_item(item_id, by, at)).await
    }

    /// Moves an order forward (`VOIDED` voids it).
    pub async fn advance(&self, order_id: Uuid, status: OrderStatus) -> Result<OrderDetail, TillError> {
        self.edit_order(order_id, move |order, by, at| order.advance(status, by, at)).await
    }

    /// HQ settles an order's payment with its signature (`CAPTURED`, `DECLINED`, `REFUNDED`).
    /// Only the node that holds HQ's signing key may.
    pub async fn settle(&self, order_id: Uuid, status: PaymentStatus) -> Result<OrderDetail, TillError> {
        let key = self.inner.config.hq_signing.clone().ok_or(TillError::NotHq)?;
        self.edit_order(order_id, move |order, by, at| order.settle(&key, status, by, at).map(drop)).await
    }

    /// The id of the shop's menu (derived from HQ's key); none for a till without a shop.
    pub fn menu_id(&self) -> Option<Uuid> {
        self.inner.config.hq.as_ref().map(MenuDoc::id_for)
    }

    /// The shop's effective menu (only prices HQ signed count), or `None` while this node holds
    /// none (a till without a shop, or before HQ wrote one).
    pub fn menu(&self) -> Result<Option<Menu>, TillError> {
        let Some(id) = self.menu_id() else { return Ok(None) };
        match self.inner.store.get(id)? {
            Some(Document::Menu(menu)) => {
                Ok(Some(menu.view(self.inner.config.hq.as_ref()).map_err(EditError::from)?))
            }
            None => Ok(None),
            Some(_) => Err(TillError::NotFound { kind: DocKind::Menu, id }),
        }
    }

    /// HQ writes the whole menu ([`MenuDoc::replace`]), creating the shop's menu on first use.
    /// Only the node that holds HQ's signing key may. Every item is checked before anything is
    /// written.
    pub async fn put_menu(
        &self,
        currency: Option<Currency>,
        items: Vec<NewMenuItem>,
    ) -> Result<Menu, TillError> {
        self.edit_menu(move |menu, key, by, at| menu.replace(key, currency, &items, by, at)).await
    }

    /// HQ adds one item to the menu ([`MenuDoc::add_item`]). Only the node that holds HQ's
    /// signing key may.
    pub async fn add_menu_item(&self, item: NewMenuItem) -> Result<Menu, TillError> {
        self.edit_menu(move |menu, key, by, at| menu.add_item(key, &item, by, at).map(|()| true)).await
    }

    /// HQ changes one menu item ([`MenuDoc::update_item`]). Only the node that holds HQ's
    /// signing key may.
    pub async fn update_menu_item(&self, sku: String, patch: MenuItemPatch) -> Result<Menu, TillError> {
        self.edit_menu(move |menu, key, by, at| menu.update_item(key, &sku, &patch, by, at)).await
    }

    /// Runs an edit of the menu as HQ, making the menu first if this node has none; writes it
    /// only if it changed. Returns the menu as it is now.
    async fn edit_menu(
        &self,
        edit: impl FnOnce(&mut MenuDoc, &HqSigningKey, &str, Timestamp) -> Result<bool, EditError>
        + Send
        + 'static,
    ) -> Result<Menu, TillError> {
        let key = self.inner.config.hq_signing.clone().ok_or(TillError::NotHq)?;
        let inner = Arc::clone(&self.inner);
        let job = move |context: &mut WriteContext<'_>| {
            let public = key.public_key();
            let id = MenuDoc::id_for(&public);
            let at = inner.clock.now();
            let by = inner.device_id.as_str();
            let (mut menu, created) = match context.store.get(id)? {
                Some(Document::Menu(mut menu)) => {
                    menu.automerge().set_actor(inner.actor.clone());
                    (menu, false)
                }
                None => (MenuDoc::create(&public, inner.config.currency, by, at, inner.actor.clone())?, true),
                Some(_) => return Err(TillError::NotFound { kind: DocKind::Menu, id }),
            };
            let changed = edit(&mut menu, &key, by, at)?;
            let view = menu.view(Some(&public)).map_err(EditError::from)?;
            if created || changed {
                context.put(&mut [Document::Menu(menu)])?;
            }
            Ok(view)
        };
        self.inner.writer.submit(job).await
    }

    /// Replaces an order's notes.
    pub async fn set_notes(&self, order_id: Uuid, notes: String) -> Result<OrderDetail, TillError> {
        self.edit_order(order_id, move |order, by, at| order.set_notes(&notes, by, at)).await
    }

    /// Records a payment: a transaction document and the till's claim on the order.
    pub async fn record_payment(
        &self,
        order_id: Uuid,
        payment: PaymentInput,
    ) -> Result<OrderDetail, TillError> {
        let inner = Arc::clone(&self.inner);
        let job = move |context: &mut WriteContext<'_>| {
            let store = context.store;
            let mut order = load_order(store, order_id, &inner.actor)?;
            let at = inner.clock.now();
            let by = inner.device_id.as_str();
            let view = order.view(inner.config.hq.as_ref()).map_err(EditError::from)?;
            let paid_before = store.transactions_of(order_id)?.len();
            let transaction = TransactionDoc::create(
                NewTransaction {
                    id: Uuid::new_v4(),
                    local_id: Uuid::new_v4(),
                    reference_number: format!("{}-P{}", view.order_number, paid_before + 1),
                    order_id,
                    device_id: inner.device_id.clone(),
                    amount: payment.amount.unwrap_or(view.total),
                    currency: view.currency,
                    payment_method: payment.method,
                    status: payment.status,
                    card_last4: payment.card_last4,
                    processor_reference: payment.processor_reference,
                    created_at: at,
                },
                inner.actor.clone(),
            )?;
            order.claim_payment(payment.method, payment.status, by, at)?;
            let mut documents = vec![Document::Order(order), Document::Transaction(transaction)];
            context.put(&mut documents)?;
            Ok(documents)
        };
        let documents = self.inner.writer.submit(job).await?;
        self.detail_of(documents)
    }

    /// One order with its transactions.
    pub fn order(&self, id: Uuid) -> Result<OrderDetail, TillError> {
        let order = load_order(&self.inner.store, id, &self.inner.actor)?;
        self.detail(&order)
    }

    /// A page of order summaries.
    pub fn list(&self, query: &OrderQuery) -> Result<OrderPage, TillError> {
        Ok(self.inner.store.list_orders(query)?)
    }

    /// Where the till stands with its peers.
    pub fn sync_overview(&self) -> Result<SyncOverview, TillError> {
        let store = &self.inner.store;
        let documents = store.document_count() as u64;
        let remotes: Vec<RemoteCounts> =
            store.remotes()?.iter().map(|remote| store.remote_counts(remote)).collect::<Result<_, _>>()?;
        let synced = remotes.iter().map(|r| r.synced).min().unwrap_or(0);
        let failed = remotes.iter().map(|r| r.failed).max().unwrap_or(0);
        Ok(SyncOverview {
            documents,
            pending: documents.saturating_sub(synced).saturating_sub(failed),
            synced,
            failed,
            last_sync_at: remotes.iter().filter_map(|r| r.last_sync_at).max(),
            peers: self.sync_control().map(|control| control.peers.borrow().clone()).unwrap_or_default(),
            remotes,
        })
    }

    async fn edit_order(
        &self,
        order_id: Uuid,
        edit: impl FnOnce(&mut OrderDoc, &str, Timestamp) -> Result<(), EditError> + Send + 'static,
    ) -> Result<OrderDetail, TillError> {
        let inner = Arc::clone(&self.inner);
        let job = move |context: &mut WriteContext<'_>| {
            let mut order = load_order(context.store, order_id, &inner.actor)?;
            edit(&mut order, &inner.device_id, inner.clock.now())?;
            let mut documents = vec![Document::Order(order)];
            context.put(&mut documents)?;
            Ok(documents)
        };
        let documents = self.inner.writer.submit(job).await?;
        self.detail_of(documents)
    }

    /// The detail of the order among freshly written documents.
    fn detail_of(&self, documents: Vec<Document>) -> Result<OrderDetail, TillError> {
        let order = documents.into_iter().find_map(|document| match document {
            Document::Order(order) => Some(order),
            Document::Transaction(_) | Document::Menu(_) => None,
        });
        match order {
            Some(order) => self.detail(&order),
            None => Err(TillError::Internal { detail: "an order edit wrote no order" }),
        }
    }

    fn detail(&self, order: &OrderDoc) -> Result<OrderDetail, TillError> {
        let hq = self.inner.config.hq.as_ref();
        let order = order.view(hq).map_err(EditError::from)?;
        let mut transactions = Vec::new();
        for id in self.inner.store.transactions_of(order.id)? {
            match self.inner.store.get(id)? {
                Some(Document::Transaction(transaction)) => {
                    transactions.push(transaction.view(hq).map_err(EditError::from)?);
                }
                _ => return Err(TillError::NotFound { kind: DocKind::Transaction, id }),
            }
        }
        transactions.sort_by_key(|transaction| (transaction.created_at, transaction.id));
        Ok(OrderDetail { server_hash: order_hash(&order), order, transactions })
    }
}

fn new_item(input: ItemInput) -> NewItem {
    NewItem {
        id: Uuid::new_v4(),
        sku: input.sku,
        name: input.name,
        quantity: input.quantity,
        unit_price: input.unit_price,
    }
}

/// Loads an order to edit as `actor`.
fn load_order(store: &Store, id: Uuid, actor: &ActorId) -> Result<OrderDoc, TillError> {
    match store.get(id)? {
        Some(Document::Order(mut order)) => {
            order.automerge().set_actor(actor.clone());
            Ok(order)
        }
        _ => Err(TillError::NotFound { kind: DocKind::Order, id }),
    }
}

/// Documents checked between two looks at whether the till is still open.
const SCRUB_CHUNK_DOCUMENTS: usize = 512;

/// What checking every stored document found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScrubReport {
    /// Documents checked.
    pub checked: u64,
    /// Documents set aside as unloadable.
    pub set_aside: u64,
}

/// [`Till::scrub`] for as long as the till is open.
fn scrub_in_background(till: &std::sync::Weak<Inner>) {
    let started = std::time::Instant::now();
    let mut report = ScrubReport::default();
    let mut after = None;
    loop {
        let Some(inner) = till.upgrade() else { return };
        match (Till { inner }).scrub_chunk(after, &mut report) {
            Ok(Some(last)) => after = Some(last),
            Ok(None) => break,
            Err(TillError::ShuttingDown) => return,
            Err(error) => {
                tracing::error!(%error, "checking the stored documents stopped");
                return;
            }
        }
    }
    let elapsed_ms = started.elapsed().as_millis();
    if report.set_aside > 0 {
        tracing::warn!(
            checked = report.checked,
            set_aside = report.set_aside,
            elapsed_ms,
            "stored documents checked: some no longer load and were set aside"
        );
    } else {
        tracing::info!(checked = report.checked, elapsed_ms, "stored documents checked");
    }
}
