//! The legacy REST API's logic, written once over any [`RecordStore`]: ingestion with the seed's
//! dedup by `localId` and conflict rules, `updates` from the change feed, device tokens.
//!
//! A submitted order or transaction becomes an Automerge document made here, on HQ, once (its id
//! derives from the client's `id`, so a retry finds it), stored as a [`Record`] and then handed
//! to HQ's peer node, which syncs it to every till. The [`crate::projector`] brings the other
//! direction: documents the mesh delivers become records legacy clients receive.
//!
//! Conflict rules for a record the server holds already, with the client's `syncVersion` `v`:
//! same content hash → in sync; `v` higher → the client wins, its changes are applied to the
//! document as edits (items, status, its payment claim), and what HQ owns — the settled payment
//! status, the order number, derived totals, a status that only moves forward — keeps HQ's value,
//! each reported as a field conflict; `v` lower, or equal with other content → SERVER_WINS:
//! nothing changes, the differing fields are reported. Every reported conflict is also logged
//! for HQ's report.
//!
//! Each record is judged alone: one that cannot be read or breaks a rule gets `success: false`
//! and a message naming the field, at its own place in the answer, and the others are stored.
//! The writer of a change is the authenticated device; a record's own `deviceId` names its
//! creator, which may be another device of the shop (a register editing another's order).
//! Besides `localId`, the client's `id` from the same creator identifies an order or a
//! transaction: sent again under a fresh `localId` it is the same record, edited.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use automerge::ActorId;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tillmesh_core::edit::{check_device_id, limits};
use tillmesh_core::legacy::{
    self, BatchSyncResponse, FieldConflict, LegacyError, LegacyOrder, Named, Resolution, Since, SyncResponse,
    SyncStatus, SyncableOrder, SyncableTransaction, UpdatesResponse,
};
use tillmesh_core::{
    Amount, Clock, DocKind, Document, EditError, NewItem, NewOrder, NewTransaction, OrderDoc, OrderNumber,
    OrderStatus, PaymentMethod, PaymentStatus, Reached, Timestamp, TransactionDoc,
};
use tillmesh_node::{Till, TillError};
use tillmesh_store::{Prepared, View};
use uuid::Uuid;

pub use crate::error::HqError;
use crate::error::invalid;
use crate::mapping::{heads_hex, order_body, order_body_of, transaction_body};
use crate::records::{BatchKeys, ConflictEntry, Record, RecordBatch, RecordBody, RecordError, RecordStore};

/// Most records returned by one `updates` call (or in one batch answer's `serverUpdates`).
pub const UPDATES_PAGE_MAX: usize = 500;

/// Most orders plus transactions in one batch.
pub const BATCH_RECORDS_MAX: usize = 1_000;

/// The most one write may move a record's `syncVersion` forward: a client's version beyond it
/// is taken as this step, so no device can push a record out of every other client's reach
/// (`9223372036854775807`). The step taken is reported as a conflict on `syncVersion`.
pub const SYNC_VERSION_STEP_MAX: i64 = 1_000;

/// How far ahead of HQ's clock legacy records' times may be by default: a day.
pub const CLOCK_SKEW_MAX_MS: i64 = 24 * 60 * 60 * 1000;

/// `POST /api/sync/batch` as it arrives: the top level is checked as a whole; each record is
/// still JSON, to be read and judged on its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IncomingBatch {
    /// The submitting device: the writer of every change in the batch.
    pub device_id: String,
    /// Orders (`SyncableOrder`s).
    #[serde(default)]
    pub orders: Vec<serde_json::Value>,
    /// Transactions (`SyncableTransaction`s).
    #[serde(default)]
    pub transactions: Vec<serde_json::Value>,
    /// Where the client's last sync ended: a time or a `nextSyncToken`.
    #[serde(default)]
    pub last_sync_timestamp: Option<Since>,
}

/// A record as `updates` lists it.
#[derive(Debug, Clone)]
pub enum Listed {
    /// An order created or changed.
    Order(SyncableOrder),
    /// A transaction created or changed.
    Transaction(SyncableTransaction),
    /// The client's `id` of a deleted order.
    DeletedOrder(String),
    /// The client's `id` of a deleted transaction.
    DeletedTransaction(String),
}

impl Listed {
    fn of(record: Record) -> Listed {
        let sync_status = if record.deleted { SyncStatus::Deleted } else { SyncStatus::Synced };
        match record.body {
            RecordBody::Order(order) if record.deleted => Listed::DeletedOrder(order.id),
            RecordBody::Transaction(transaction) if record.deleted => {
                Listed::DeletedTransaction(transaction.id)
            }
            RecordBody::Order(order) => Listed::Order(SyncableOrder {
                order,
                local_id: record.local_id,
                sync_status,
                sync_version: record.sync_version,
                device_id: record.device_id,
                server_hash: Some(record.server_hash),
            }),
            RecordBody::Transaction(transaction) => Listed::Transaction(SyncableTransaction {
                transaction,
                local_id: record.local_id,
                sync_status,
                sync_version: record.sync_version,
                device_id: record.device_id,
                server_hash: Some(record.server_hash),
            }),
        }
    }
}

/// Where a pass over the change feed is: after `after`, up to position `end` (changes
/// committed later wait for the next call).
#[derive(Debug, Clone, Copy)]
pub struct FeedCursor {
    after: Since,
    end: u64,
    done: bool,
}

impl FeedCursor {
    /// A pass over the changes after `after` up to position `end`.
    pub const fn new(after: Since, end: u64) -> FeedCursor {
        FeedCursor { after, end, done: false }
    }

    /// The position of the last change read, or the token it started from; `None` when it
    /// started from a time and read nothing.
    pub const fn position(&self) -> Option<u64> {
        match self.after {
            Since::Token(position) => Some(position),
            Since::Time(_) => None,
        }
    }
}

/// A record as read from its JSON, or why it cannot be (the field and what is wrong).
type Judged<T> = Result<T, String>;

/// Reads one record; a failure names the field's path (`order.items[0].quantity: …`).
pub fn read_record<T: DeserializeOwned>(value: serde_json::Value) -> Judged<T> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if path == "." { inner.to_string() } else { format!("{path}: {inner}") }
    })
}

/// Counters of the legacy API for `/metrics`.
#[derive(Debug, Default)]
pub struct RestStats {
    /// Batches (and single-record syncs) handled.
    pub sync_sessions: AtomicU64,
    /// Records created.
    pub created: AtomicU64,
    /// Records changed by a client that won on version.
    pub client_wins: AtomicU64,
    /// Records already in sync (a resend).
    pub in_sync: AtomicU64,
    /// Field conflicts reported.
    pub conflicts: AtomicU64,
    /// `updates` calls.
    pub update_calls: AtomicU64,
    /// Records and documents found apart by a reconciliation (at start, periodically) and
    /// brought together: documents projected into records, records' documents handed to the
    /// node.
    pub splits_repaired: AtomicU64,
    /// Conflicts reported again, identical, within [`COALESCE_WINDOW_MS`]: answered to the
    /// client, not logged again.
    pub conflicts_coalesced: AtomicU64,
}

/// How long an identical conflict (same record, device, field, values, resolution) is not
/// logged again: a device resending the same stale copy every 30 s logs it once.
pub const COALESCE_WINDOW_MS: i64 = 10 * 60 * 1000;

/// Identical conflicts remembered for coalescing; past this the memory starts afresh.
const RECENT_CONFLICTS_MAX: usize = 65_536;

/// HQ's legacy API over a record store and HQ's peer node.
pub struct LegacyService<S> {
    records: S,
    node: Till,
    clock: Arc<dyn Clock>,
    /// The Automerge actor of documents made or edited here (fresh on every start).
    actor: ActorId,
    /// Counters for `/metrics`.
    pub stats: RestStats,
    /// Document versions just recorded by ingestion (doc id → heads hex), so the projector
    /// skips them when the node announces them unchanged.
    recorded: Mutex<HashMap<Uuid, String>>,
    /// How far ahead of HQ's clock a record's times may be ([`crate::http::Access`]).
    pub(crate) clock_skew_max_ms: i64,
    /// When each recent conflict was last logged, by a hash of what it says.
    recent_conflicts: Mutex<HashMap<u64, i64>>,
}

/// Most versions kept for the projector to skip; beyond, it checks them the slow way.
const RECORDED_MAX: usize = 65_536;

impl<S> std::fmt::Debug for LegacyService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegacyService").field("node", &self.node).field("stats", &self.stats).finish()
    }
}

/// What one record's handling leaves for the answer.
struct Outcome {
    record: Option<Record>,
    conflicts: Vec<FieldConflict>,
    message: Option<String>,
}

impl<S: RecordStore> LegacyService<S> {
    /// The service over `records` and HQ's running node.
    pub fn new(records: S, node: Till, clock: Arc<dyn Clock>) -> LegacyService<S> {
        LegacyService {
            records,
            node,
            clock,
            actor: ActorId::from(Uuid::new_v4().into_bytes()),
            stats: RestStats::default(),
            recorded: Mutex::new(HashMap::new()),
            clock_skew_max_ms: CLOCK_SKEW_MAX_MS,
            recent_conflicts: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `entry` says something not logged in the last [`COALESCE_WINDOW_MS`]; remembers
    /// it as logged now if so.
    fn first_of_its_kind(&self, entry: &ConflictEntry) -> bool {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (entry.kind, entry.local_id, &entry.device_id, &entry.conflict.field).hash(&mut hasher);
        (&entry.conflict.client_value, &entry.conflict.server_value, entry.conflict.resolution.as_str())
            .hash(&mut hasher);
        let signature = hasher.finish();
        let Ok(mut recent) = self.recent_conflicts.lock() else { return true };
        if recent.get(&signature).is_some_and(|at| entry.at.0 - at < COALESCE_WINDOW_MS) {
            return false;
        }
        if recent.len() >= RECENT_CONFLICTS_MAX {
            recent.clear();
        }
        recent.insert(signature, entry.at.0);
        true
    }

    /// The record store.
    pub fn records(&self) -> &S {
        &self.records
    }

    /// HQ's peer node.
    pub fn node(&self) -> &Till {
        &self.node
    }

    /// The clock.
    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    /// The device a bearer token belongs to.
    pub async fn authenticate(&self, token: &str) -> Result<String, HqError> {
        self.records.device_of(&token_sha256(token)).await?.ok_or(HqError::Unauthorized)
    }

    /// Registers a legacy device and returns its new bearer token (shown once; only its hash is
    /// kept).
    pub async fn add_device(&self, device_id: &str) -> Result<String, HqError> {
        add_device(&self.records, device_id, self.clock.now()).await
    }

    /// `POST /api/sync/batch`.
    pub async fn sync_batch(
        &self,
        device: &str,
        request: IncomingBatch,
    ) -> Result<BatchSyncResponse, HqError> {
        if request.device_id != device {
            return Err(forbidden(device, &request.device_id));
        }
        if request.orders.len() + request.transactions.len() > BATCH_RECORDS_MAX {
            return Err(too_many_records());
        }
        let orders = request.orders.into_iter().map(read_record).collect();
        let transactions = request.transactions.into_iter().map(read_record).collect();
        // A token past the feed's end (from another HQ's feed, or made up) would leave the
        // register waiting for positions that never come: it gets everything, and the answer's
        // token to go on from. The writes are taken either way.
        let since = match request.last_sync_timestamp.unwrap_or(Since::Token(0)) {
            Since::Token(position) if position > self.records.last_position().await? => Since::Token(0),
            since => since,
        };
        let (orders, transactions) = self.ingest(device, orders, transactions).await?;
        let (server_updates, next_sync_token, has_more) =
            self.updates(device, Some(since)).await?.into_parts();
        let success = orders.iter().chain(&transactions).all(|answer| answer.success);
        Ok(BatchSyncResponse {
            success,
            synced_orders: orders,
            synced_transactions: transactions,
            server_updates,
            next_sync_token,
            has_more,
        })
    }

    /// `POST /api/sync/order`: one `SyncableOrder`, judged as in a batch.
    pub async fn sync_order(&self, device: &str, order: serde_json::Value) -> Result<SyncResponse, HqError> {
        let (mut orders, _) = self.ingest(device, vec![read_record(order)], Vec::new()).await?;
        orders.pop().ok_or_else(|| HqError::Node(TillError::Internal { detail: "no answer for the order" }))
    }

    /// `POST /api/sync/transaction`: one `SyncableTransaction`, judged as in a batch.
    pub async fn sync_transaction(
        &self,
        device: &str,
        transaction: serde_json::Value,
    ) -> Result<SyncResponse, HqError> {
        let (_, mut transactions) = self.ingest(device, Vec::new(), vec![read_record(transaction)]).await?;
        transactions
            .pop()
            .ok_or_else(|| HqError::Node(TillError::Internal { detail: "no answer for the transaction" }))
    }

    /// `GET /api/sync/updates`: what other devices (tills, HQ, other legacy clients) changed
    /// since `since`. After a `nextSyncToken` (or none), at most [`UPDATES_PAGE_MAX`] records
    /// and `hasMore`; after a time (the seed's `since`, from clients that never page), every
    /// change up to the end of the feed when called, whatever the count (`GET` streams that
    /// answer instead, [`LegacyService::feed_page`]); `nextSyncToken` continues exactly.
    pub async fn updates(&self, device: &str, since: Option<Since>) -> Result<UpdatesResponse, HqError> {
        self.stats.update_calls.fetch_add(1, Ordering::Relaxed);
        let since = since.unwrap_or(Since::Token(0));
        // Read before the pages: a record committed after it has a later position.
        let end = self.records.last_position().await?;
        if let Since::Token(position) = since
            && position > end
        {
            return Err(HqError::BadRequest {
                error: "invalid_token",
                detail: format!(
                    "sync token {} is past the end of HQ's change feed; the current token is {}: go on \
                     from it, or from 0 for everything",
                    Since::token(position),
                    Since::token(end)
                ),
            });
        }
        let complete = matches!(since, Since::Time(_));
        let mut cursor = FeedCursor::new(since, if complete { end } else { u64::MAX });
        let mut answer = UpdatesResponse {
            orders: Vec::new(),
            transactions: Vec::new(),
            deleted_order_ids: Vec::new(),
            deleted_transaction_ids: Vec::new(),
            next_sync_token: String::new(),
            has_more: false,
        };
        while let Some(page) = self.feed_page(device, &mut cursor).await? {
            for listed in page {
                match listed {
                    Listed::Order(order) => answer.orders.push(order),
                    Listed::Transaction(transaction) => answer.transactions.push(transaction),
                    Listed::DeletedOrder(id) => answer.deleted_order_ids.push(id),
                    Listed::DeletedTransaction(id) => answer.deleted_transaction_ids.push(id),
                }
            }
            if !complete {
                break;
            }
        }
        answer.has_more = !cursor.done;
        answer.next_sync_token = Since::token(cursor.position().unwrap_or(end));
        Ok(answer)
    }

    /// The next page of a pass over the change feed: at most [`UPDATES_PAGE_MAX`] records up to
    /// the cursor's end, as `updates` lists them for `device` (never its own writes); `None`
    /// once the pass is done.
    pub async fn feed_page(
        &self,
        device: &str,
        cursor: &mut FeedCursor,
    ) -> Result<Option<Vec<Listed>>, HqError> {
        if cursor.done {
            return Ok(None);
        }
        let page = self.records.changes(cursor.after, UPDATES_PAGE_MAX).await?;
        cursor.done = page.len() < UPDATES_PAGE_MAX;
        let mut listed = Vec::with_capacity(page.len());
        for record in page {
            if record.position > cursor.end {
                cursor.done = true;
                break;
            }
            cursor.after = Since::Token(record.position);
            if record.written_by != device {
                listed.push(Listed::of(record));
            }
        }
        Ok(Some(listed))
    }

    /// Judges every record on its own and stores the good ones, [`INGEST_CHUNK`] records to a
    /// store batch (orders first, then transactions), so that a device sending 1,000 records
    /// holds the record store no longer than one chunk at a time: another device's batch,
    /// waiting on the store's lock (served in order), goes between two chunks. A refused record
    /// gets its answer at its place.
    async fn ingest(
        &self,
        device: &str,
        orders: Vec<Judged<SyncableOrder>>,
        transactions: Vec<Judged<SyncableTransaction>>,
    ) -> Result<(Vec<SyncResponse>, Vec<SyncResponse>), HqError> {
        self.stats.sync_sessions.fetch_add(1, Ordering::Relaxed);
        if orders.len() + transactions.len() > BATCH_RECORDS_MAX {
            return Err(too_many_records());
        }
        let mut chunks: Vec<Chunk> = Vec::new();
        let mut orders = orders.into_iter().peekable();
        while orders.peek().is_some() {
            chunks.push((orders.by_ref().take(INGEST_CHUNK).collect(), Vec::new()));
        }
        let mut transactions = transactions.into_iter().peekable();
        while transactions.peek().is_some() {
            chunks.push((Vec::new(), transactions.by_ref().take(INGEST_CHUNK).collect()));
        }
        let (mut order_answers, mut transaction_answers) = (Vec::new(), Vec::new());
        let mut chunks = chunks.into_iter();
        while let Some((orders, transactions)) = chunks.next() {
            let (counts, stored) = (
                (orders.len(), transactions.len()),
                !order_answers.is_empty() || !transaction_answers.is_empty(),
            );
            match self.ingest_chunk(device, orders, transactions).await {
                Ok((orders, transactions)) => {
                    order_answers.extend(orders);
                    transaction_answers.extend(transactions);
                }
                // Nothing stored yet: the request fails whole, and says so.
                Err(fault) if !stored => return Err(fault),
                // Earlier chunks are stored: they keep their answers, and this chunk's records
                // and the rest are answered as not stored, each on its own, so that the answer
                // tells the truth record by record.
                Err(fault) => {
                    tracing::error!(%fault, "a legacy batch stopped part way: the rest is answered as not stored");
                    let now = self.clock.now();
                    let not_stored = || refused(format!("not stored ({fault}): send it again"), now);
                    let rest = chunks.by_ref().fold(counts, |(o, t), (orders, transactions)| {
                        (o + orders.len(), t + transactions.len())
                    });
                    order_answers.extend(std::iter::repeat_with(not_stored).take(rest.0));
                    transaction_answers.extend(std::iter::repeat_with(not_stored).take(rest.1));
                }
            }
        }
        Ok((order_answers, transaction_answers))
    }

    /// Stores one chunk of records in one store batch and hands their documents to the peer
    /// node.
    async fn ingest_chunk(
        &self,
        device: &str,
        orders: Vec<Judged<SyncableOrder>>,
        transactions: Vec<Judged<SyncableTransaction>>,
    ) -> Result<(Vec<SyncResponse>, Vec<SyncResponse>), HqError> {
        let default_tax = self.node.config().tax_rate_bps;
        let times = TimeRange::around(self.clock.now(), self.clock_skew_max_ms);
        // A record that leaves its creator out was created by the device sending it.
        let creator = |record_device: &mut String| {
            if record_device.is_empty() {
                device.clone_into(record_device);
            }
        };
        let orders: Vec<Judged<SyncableOrder>> = orders
            .into_iter()
            .map(|order| {
                order.and_then(|mut order| {
                    creator(&mut order.device_id);
                    check_order(&order, default_tax)?;
                    times.check("order", order.order.created_at, order.order.updated_at)?;
                    Ok(order)
                })
            })
            .collect();
        let transactions: Vec<Judged<SyncableTransaction>> = transactions
            .into_iter()
            .map(|transaction| {
                transaction.and_then(|mut transaction| {
                    creator(&mut transaction.device_id);
                    check_transaction(&transaction)?;
                    times.check(
                        "transaction",
                        transaction.transaction.created_at,
                        transaction.transaction.updated_at,
                    )?;
                    Ok(transaction)
                })
            })
            .collect();

        let now = self.clock.now();
        let mut prebuilt = self.prebuild(&orders, now).await;
        let mut keys = BatchKeys::default();
        for order in orders.iter().flatten() {
            keys.add(DocKind::Order, order.local_id, &order.order.order_number);
        }
        for transaction in transactions.iter().flatten() {
            keys.add(DocKind::Transaction, transaction.local_id, &transaction.transaction.reference_number);
        }
        let mut batch = self.records.begin().await?;
        batch.read_ahead(&keys).await?;
        read_ahead_assigned(&mut batch, &orders, &transactions).await?;
        let mut work = Work { publish: Vec::new(), new_docs: HashMap::new(), conflicts: Vec::new() };
        let mut order_answers = Vec::with_capacity(orders.len());
        for (index, order) in orders.into_iter().enumerate() {
            let order = match order {
                Ok(order) => order,
                Err(problem) => {
                    order_answers.push(refused(problem, now));
                    continue;
                }
            };
            let local_id = order.local_id;
            let ready = prebuilt.get_mut(index).and_then(Option::take);
            let outcome = self.ingest_order(&mut batch, device, order, now, &mut work, ready).await;
            order_answers.push(match judged(outcome)? {
                Ok(outcome) => self.answer(DocKind::Order, local_id, device, outcome, now, &mut work),
                Err(problem) => refused(problem, now),
            });
        }
        let mut transaction_answers = Vec::with_capacity(transactions.len());
        for transaction in transactions {
            let transaction = match transaction {
                Ok(transaction) => transaction,
                Err(problem) => {
                    transaction_answers.push(refused(problem, now));
                    continue;
                }
            };
            let local_id = transaction.local_id;
            let outcome = self.ingest_transaction(&mut batch, device, transaction, now, &mut work).await;
            transaction_answers.push(match judged(outcome)? {
                Ok(outcome) => self.answer(DocKind::Transaction, local_id, device, outcome, now, &mut work),
                Err(problem) => refused(problem, now),
            });
        }
        for entry in work.conflicts {
            if self.first_of_its_kind(&entry) {
                batch.log_conflict(entry).await?;
            } else {
                self.stats.conflicts_coalesced.fetch_add(1, Ordering::Relaxed);
            }
        }
        batch.commit().await?;
        self.note_recorded(&work.publish);
        if !work.publish.is_empty() {
            let documents =
                work.publish.into_iter().map(|(document, prepared, _)| (document, prepared)).collect();
            self.node.write_documents(documents).await?;
        }
        Ok((order_answers, transaction_answers))
    }

    fn answer(
        &self,
        kind: DocKind,
        local_id: Uuid,
        device: &str,
        outcome: Outcome,
        now: Timestamp,
        work: &mut Work,
    ) -> SyncResponse {
        self.stats.conflicts.fetch_add(outcome.conflicts.len() as u64, Ordering::Relaxed);
        let doc_id = outcome.record.as_ref().map_or(Uuid::nil(), |record| record.doc_id);
        for conflict in &outcome.conflicts {
            work.conflicts.push(ConflictEntry {
                at: now,
                kind,
                local_id,
                doc_id,
                device_id: device.to_string(),
                conflict: conflict.clone(),
            });
        }
        SyncResponse {
            success: true,
            server_id: outcome.record.as_ref().map(|record| record.doc_id.to_string()),
            synced_at: now,
            message: outcome.message,
            conflicts: (!outcome.conflicts.is_empty()).then_some(outcome.conflicts),
            server_version: outcome.record.as_ref().map_or(0, |record| record.sync_version),
            server_hash: outcome.record.map(|record| record.server_hash),
        }
    }

    fn note_recorded(&self, documents: &[(Document, Option<Prepared>, String)]) {
        if let Ok(mut recorded) = self.recorded.lock() {
            if recorded.len() + documents.len() > RECORDED_MAX {
                recorded.clear();
            }
            for (document, _, heads) in documents {
                recorded.insert(document.id(), heads.clone());
            }
        }
    }

    /// What building documents needs, owned, for worker threads.
    fn build_context(&self, now: Timestamp) -> BuildContext {
        let config = self.node.config();
        BuildContext {
            store: self.node.store().clone(),
            actor: self.actor.clone(),
            currency: config.currency,
            default_tax_bps: config.tax_rate_bps,
            now,
        }
    }

    /// Builds, on worker threads and before the batch, the documents new orders will get if
    /// their id and number are free (as they almost always are): the batch then only checks
    /// and stores. Entry `i` is `None` when order `i` cannot be built ahead.
    async fn prebuild(&self, orders: &[Judged<SyncableOrder>], now: Timestamp) -> Vec<Option<Built>> {
        let wanted: Vec<(usize, SyncableOrder)> = orders
            .iter()
            .enumerate()
            .filter_map(|(index, order)| Some((index, order.as_ref().ok()?)))
            .filter(|(_, order)| order.sync_status != SyncStatus::Deleted)
            .map(|(index, order)| (index, order.clone()))
            .collect();
        let mut built: Vec<Option<Built>> = (0..orders.len()).map(|_| None).collect();
        if wanted.len() < PREBUILD_MIN {
            return built;
        }
        let threads = std::thread::available_parallelism().map_or(1, usize::from).max(1);
        let chunk = wanted.len().div_ceil(threads);
        let mut workers = Vec::new();
        let mut wanted = wanted;
        while !wanted.is_empty() {
            let rest = wanted.split_off(chunk.min(wanted.len()));
            let part = std::mem::replace(&mut wanted, rest);
            let context = self.build_context(now);
            workers.push(tokio::task::spawn_blocking(move || {
                part.into_iter()
                    .map(|(index, incoming)| {
                        let client = &incoming.order;
                        let doc_id = legacy::document_id("order", &client.id);
                        if reserved_for_tills(&client.order_number) {
                            return None;
                        }
                        let built = build_order(
                            &context,
                            &incoming,
                            doc_id,
                            client.order_number.clone(),
                            &client.order_number,
                            &[],
                        )
                        .ok()?;
                        Some((index, built))
                    })
                    .collect::<Vec<_>>()
            }));
        }
        for worker in workers {
            // A worker that failed leaves its orders to the batch, which builds them itself.
            if let Ok(done) = worker.await {
                for (index, one) in done.into_iter().flatten() {
                    built[index] = Some(one);
                }
            }
        }
        built
    }

    /// Whether the node's version of `id` is the one ingestion just recorded (then the record
    /// is current). Forgets it either way.
    pub(crate) fn just_recorded(&self, id: Uuid) -> bool {
        let Some(heads) = self.recorded.lock().ok().and_then(|mut recorded| recorded.remove(&id)) else {
            return false;
        };
        matches!(self.node.store().item_hash(id), Ok(Some(hash)) if hex::encode(hash.0) == heads)
    }

    /// The record of `local_id`, or one made from a document HQ's node holds without a record
    /// (written before a crash, or not yet projected).
    async fn existing<B: RecordBatch>(
        &self,
        batch: &mut B,
        kind: DocKind,
        local_id: Uuid,
        now: Timestamp,
    ) -> Result<Option<Record>, HqError> {
        if let Some(record) = batch.get(kind, local_id).await? {
            return Ok(Some(record));
        }
        let Some(doc_id) = self.node.store().find_local_id(local_id).map_err(TillError::from)? else {
            return Ok(None);
        };
        let Some(mut document) = self.node.store().get(doc_id).map_err(TillError::from)? else {
            return Ok(None);
        };
        if document.kind() != kind {
            return Ok(None);
        }
        let record =
            crate::mapping::record_of(batch, None, &mut document, self.node.config().hq.as_ref(), now)
                .await?;
        Ok(Some(batch.put(record).await?))
    }

    async fn ingest_order<B: RecordBatch>(
        &self,
        batch: &mut B,
        device: &str,
        mut incoming: SyncableOrder,
        now: Timestamp,
        work: &mut Work,
        prebuilt: Option<Built>,
    ) -> Result<Outcome, HqError> {
        let mut record = self.existing(batch, DocKind::Order, incoming.local_id, now).await?;
        let mut resent = false;
        let key = (incoming.order.id.as_str(), incoming.device_id.as_str(), incoming.local_id);
        if record.is_none()
            && let Some(same) = self.same_record(batch, DocKind::Order, key, now, work).await?
        {
            // The client's own key for the order, under a fresh localId (the seed's
            // `saveOrderForSync` makes one per call): the latest state of the same order.
            incoming.sync_version = incoming.sync_version.max(same.sync_version.saturating_add(1));
            record = Some(same);
            resent = true;
        }
        match record {
            None if incoming.sync_status == SyncStatus::Deleted => Ok(Outcome {
                record: None,
                conflicts: Vec::new(),
                message: Some("not on the server: nothing to delete".into()),
            }),
            None => self.create_order(batch, device, incoming, now, work, prebuilt).await,
            Some(record) => {
                let mut outcome = self.update_order(batch, device, incoming, record, now, work).await?;
                if resent {
                    let note = "the same order id from the same device under another localId";
                    outcome.message = Some(match outcome.message {
                        Some(message) => format!("{note}: {message}"),
                        None => note.to_string(),
                    });
                }
                Ok(outcome)
            }
        }
    }

    /// The record a client's `id` names when a record comes with a `localId` HQ does not know:
    /// the same `id` of the same kind from the same creating device is the same record (the
    /// seed's primary key).
    async fn same_record<B: RecordBatch>(
        &self,
        batch: &mut B,
        kind: DocKind,
        (client_id, creator, local_id): (&str, &str, Uuid),
        now: Timestamp,
        work: &Work,
    ) -> Result<Option<Record>, HqError> {
        let doc_id = legacy::document_id(kind.as_str(), client_id);
        let owner = match work.new_docs.get(&doc_id) {
            Some(made) => Some(made.clone()),
            None => match self.node.store().get(doc_id).map_err(TillError::from)? {
                Some(Document::Order(order)) if kind == DocKind::Order => {
                    let view = order.view(None)?;
                    Some((view.local_id, view.device_id))
                }
                Some(Document::Transaction(transaction)) if kind == DocKind::Transaction => {
                    let view = transaction.view(None)?;
                    Some((view.local_id, view.device_id))
                }
                _ => None,
            },
        };
        match owner {
            Some((owner_local_id, owner)) if owner == creator && owner_local_id != local_id => {
                self.existing(batch, kind, owner_local_id, now).await
            }
            _ => Ok(None),
        }
    }

    async fn create_order<B: RecordBatch>(
        &self,
        batch: &mut B,
        device: &str,
        incoming: SyncableOrder,
        now: Timestamp,
        work: &mut Work,
        prebuilt: Option<Built>,
    ) -> Result<Outcome, HqError> {
        self.stats.created.fetch_add(1, Ordering::Relaxed);
        let client = &incoming.order;
        let creator = incoming.device_id.as_str();
        let mut assigned = Vec::new();
        let doc_id =
            self.fresh_doc_id("order", &client.id, incoming.local_id, creator, work, &mut assigned)?;
        // The number legacy clients see (`listed`, unique among records) and the document's
        // (unique on every till).
        let mut message = None;
        let (number, listed) = if batch.number_owner(DocKind::Order, &client.order_number).await?.is_some() {
            message = Some(format!("orderNumber {:?} is taken: HQ numbered the order", client.order_number));
            assigned.push("orderNumber");
            let number = self.assign_number(batch, DocKind::Order).await?;
            (number.clone(), number)
        } else if reserved_for_tills(&client.order_number) {
            let number = self.assign_number(batch, DocKind::Order).await?;
            message = Some(format!(
                "orderNumber {:?} has the shape of a till's numbers: kept for legacy clients; tills show {number}",
                client.order_number
            ));
            (number, client.order_number.clone())
        } else {
            (client.order_number.clone(), client.order_number.clone())
        };
        let context = self.build_context(now);
        let built = match prebuilt {
            Some(built)
                if number == client.order_number && assigned.is_empty() && built.document.id() == doc_id =>
            {
                built
            }
            _ => build_order(&context, &incoming, doc_id, number, &listed, &assigned)?,
        };
        let (version, stepped) = bounded_version(incoming.sync_version, 0);
        let record = new_record(incoming.local_id, creator, device, version, &built, now);
        let record = batch.put(record).await?;
        let mut conflicts = built.conflicts.clone();
        conflicts.extend(stepped);
        work.publish(built);
        Ok(Outcome { record: Some(record), conflicts, message })
    }

    async fn update_order<B: RecordBatch>(
        &self,
        batch: &mut B,
        device: &str,
        incoming: SyncableOrder,
        record: Record,
        now: Timestamp,
        work: &mut Work,
    ) -> Result<Outcome, HqError> {
        let RecordBody::Order(server) = &record.body else {
            return Err(invalid("localId belongs to a transaction"));
        };
        let client = incoming.order;
        let deleting = incoming.sync_status == SyncStatus::Deleted;
        if let Some(outcome) =
            self.unchanged(&record, deleting, &client.content_hash(), incoming.sync_version, || {
                client.differences(server, Resolution::ServerWins)
            })
        {
            return Ok(outcome);
        }
        // The client wins on version: its changes become edits of the document.
        self.stats.client_wins.fetch_add(1, Ordering::Relaxed);
        let (version, stepped) = bounded_version(incoming.sync_version, record.sync_version);
        let mut document = self.load_for_edit(&record)?;
        let Document::Order(order) = &mut document else {
            return Err(invalid("localId belongs to a transaction"));
        };
        if deleting {
            tolerate(order.advance(OrderStatus::Voided, device, now))?;
        } else {
            apply_order_edits(order, &client, device, now, version)?;
        }
        let voided = order.status()? == OrderStatus::Voided;
        let (body, mut conflicts) =
            order_body(&mut document, &client, server.order_number.as_str(), self.node.config().hq.as_ref())?;
        if deleting {
            // Only the status decides whether the deletion took.
            conflicts.retain(|conflict| !voided && conflict.field == "orderStatus");
            if !voided {
                conflicts.push(not_deleted());
            }
        }
        conflicts.extend(stepped);
        let mut updated = next_version(record, device, version, body, &mut document, now);
        updated.deleted = deleting && voided;
        let updated = batch.put(updated).await?;
        work.publish_edited(document);
        let message = match (deleting, voided) {
            (true, true) => "deleted: the order is voided on every till",
            (true, false) => "not deleted: the order is closed on the server",
            (false, _) if conflicts.is_empty() => "client version is newer: stored",
            (false, _) => "client version is newer: stored; the server kept the fields listed",
        };
        Ok(Outcome { record: Some(updated), conflicts, message: Some(message.into()) })
    }

    async fn ingest_transaction<B: RecordBatch>(
        &self,
        batch: &mut B,
        device: &str,
        incoming: SyncableTransaction,
        now: Timestamp,
        work: &mut Work,
    ) -> Result<Outcome, HqError> {
        let mut incoming = incoming;
        let mut record = self.existing(batch, DocKind::Transaction, incoming.local_id, now).await?;
        let key = (incoming.transaction.id.as_str(), incoming.device_id.as_str(), incoming.local_id);
        if record.is_none()
            && let Some(same) = self.same_record(batch, DocKind::Transaction, key, now, work).await?
        {
            // The same payment queued again under a fresh localId: never a second payment.
            incoming.sync_version = incoming.sync_version.max(same.sync_version.saturating_add(1));
            record = Some(same);
        }
        let record = match record {
            None if incoming.sync_status == SyncStatus::Deleted => {
                return Ok(Outcome {
                    record: None,
                    conflicts: Vec::new(),
                    message: Some("not on the server: nothing to delete".into()),
                });
            }
            None => return self.create_transaction(batch, device, incoming, now, work).await,
            Some(record) => record,
        };
        let RecordBody::Transaction(server) = &record.body else {
            return Err(invalid("localId belongs to an order"));
        };
        let client = incoming.transaction;
        let deleting = incoming.sync_status == SyncStatus::Deleted;
        if let Some(outcome) =
            self.unchanged(&record, deleting, &client.content_hash(), incoming.sync_version, || {
                client.differences(server, Resolution::ServerWins)
            })
        {
            return Ok(outcome);
        }
        self.stats.client_wins.fetch_add(1, Ordering::Relaxed);
        let (version, stepped) = bounded_version(incoming.sync_version, record.sync_version);
        let mut document = self.load_for_edit(&record)?;
        let Document::Transaction(transaction) = &mut document else {
            return Err(invalid("localId belongs to an order"));
        };
        let view = transaction.view(None)?;
        let claim = if deleting { Some(PaymentStatus::Pending) } else { claim_of(client.status.value()) };
        if let Some(status) = claim
            && view.payment.claimed != Some(status)
            && view.payment.settlement.is_none()
        {
            tolerate(transaction.claim(status, device, now))?;
        }
        let names = client.names();
        if names != view.legacy_names {
            transaction.set_legacy_names(&names, device, now)?;
        }
        let (body, mut conflicts) =
            transaction_body(&mut document, &client, self.node.config().hq.as_ref(), &[])?;
        conflicts.extend(stepped);
        let mut updated = next_version(record, device, version, body, &mut document, now);
        updated.deleted = deleting;
        let updated = batch.put(updated).await?;
        work.publish_edited(document);
        Ok(Outcome {
            record: Some(updated),
            conflicts,
            message: Some(if deleting { "deleted" } else { "client version is newer: stored" }.into()),
        })
    }

    async fn create_transaction<B: RecordBatch>(
        &self,
        batch: &mut B,
        device: &str,
        incoming: SyncableTransaction,
        now: Timestamp,
        work: &mut Work,
    ) -> Result<Outcome, HqError> {
        self.stats.created.fetch_add(1, Ordering::Relaxed);
        let client = incoming.transaction;
        let creator = incoming.device_id.as_str();
        let mut assigned = Vec::new();
        let doc_id =
            self.fresh_doc_id("transaction", &client.id, incoming.local_id, creator, work, &mut assigned)?;
        let reference_number =
            if batch.number_owner(DocKind::Transaction, &client.reference_number).await?.is_none() {
                client.reference_number.clone()
            } else {
                assigned.push("referenceNumber");
                format!("{}-P", self.assign_number(batch, DocKind::Transaction).await?)
            };
        let mut transaction = TransactionDoc::create(
            NewTransaction {
                id: doc_id,
                local_id: incoming.local_id,
                reference_number,
                order_id: legacy::document_id("order", &client.order_id),
                device_id: creator.to_string(),
                amount: client.amount,
                currency: self.node.config().currency,
                payment_method: client.payment_method.value(),
                status: claim_of(client.status.value()).unwrap_or(PaymentStatus::Paid),
                card_last4: None,
                processor_reference: None,
                created_at: client.created_at,
            },
            self.actor.clone(),
        )?;
        // The client's own names, kept as sent in the document every till holds.
        transaction.set_legacy_names(&client.names(), device, now)?;
        let mut document = Document::Transaction(transaction);
        let (body, conflicts) =
            transaction_body(&mut document, &client, self.node.config().hq.as_ref(), &assigned)?;
        let saved = document.save();
        let heads = heads_hex(&mut document);
        let prepared =
            self.node.store().prepare(&mut document, Some(saved.clone())).map_err(TillError::from)?;
        let built = Built { document, body, conflicts, saved, heads, prepared };
        let (version, stepped) = bounded_version(incoming.sync_version, 0);
        let record = new_record(incoming.local_id, creator, device, version, &built, now);
        let record = batch.put(record).await?;
        let mut conflicts = built.conflicts.clone();
        conflicts.extend(stepped);
        work.publish(built);
        Ok(Outcome { record: Some(record), conflicts, message: None })
    }

    /// The answer when nothing changes: the same content (in sync), a deleted record, or a
    /// version that does not beat the server's (SERVER_WINS, differences reported). A deletion
    /// at the server's version or above is applied.
    fn unchanged(
        &self,
        record: &Record,
        deleting: bool,
        client_hash: &str,
        client_version: i64,
        differences: impl FnOnce() -> Vec<FieldConflict>,
    ) -> Option<Outcome> {
        let same = |message: &str, conflicts| {
            Some(Outcome { record: Some(record.clone()), conflicts, message: Some(message.to_string()) })
        };
        if record.deleted {
            let conflicts = if deleting { Vec::new() } else { vec![deleted_on_server()] };
            return same("deleted on the server", conflicts);
        }
        if !deleting && client_hash == record.server_hash {
            self.stats.in_sync.fetch_add(1, Ordering::Relaxed);
            return same("already in sync", Vec::new());
        }
        if client_version > record.sync_version || (deleting && client_version == record.sync_version) {
            return None;
        }
        let message = if client_version < record.sync_version {
            "the server's version is newer: the server's copy stands (SERVER_WINS)"
        } else {
            "same version with other content: the server's copy stands (SERVER_WINS)"
        };
        let mut conflicts = differences();
        if deleting {
            conflicts.push(not_deleted());
        }
        same(message, conflicts)
    }

    /// A document id for a new record: from the client's id, unless another record holds it.
    fn fresh_doc_id(
        &self,
        kind: &str,
        client_id: &str,
        local_id: Uuid,
        creator: &str,
        work: &mut Work,
        assigned: &mut Vec<&'static str>,
    ) -> Result<Uuid, HqError> {
        let wanted = legacy::document_id(kind, client_id);
        let taken = work.new_docs.contains_key(&wanted)
            || self.node.store().get_bytes(wanted).map_err(TillError::from)?.is_some();
        let id = if taken {
            assigned.push("id");
            legacy::fallback_document_id(kind, local_id)
        } else {
            wanted
        };
        work.new_docs.insert(id, (local_id, creator.to_string()));
        Ok(id)
    }

    /// The next free number of HQ's sequence for legacy records ([`hq_number`]).
    async fn assign_number<B: RecordBatch>(&self, batch: &mut B, kind: DocKind) -> Result<String, HqError> {
        loop {
            let number = hq_number(batch.next_assigned_number().await?);
            if batch.number_owner(kind, &held_as(kind, &number)).await?.is_none() {
                return Ok(number);
            }
        }
    }

    /// The record's document with every change HQ's node holds for it, to edit as HQ.
    fn load_for_edit(&self, record: &Record) -> Result<Document, HqError> {
        let stored = self.node.store().get(record.doc_id).map_err(TillError::from)?;
        let mut document = match (record.document.is_empty(), stored) {
            (true, Some(stored)) => stored,
            (true, None) => {
                return Err(HqError::Records(RecordError::Corrupt {
                    what: format!("record {} has no document", record.local_id),
                }));
            }
            (false, stored) => {
                let mut document = Document::load(&record.document)?;
                if let Some(mut stored) = stored {
                    document.merge(&mut stored)?;
                }
                document
            }
        };
        document.automerge().set_actor(self.actor.clone());
        Ok(document)
    }
}

/// What one ingestion batch collects.
struct Work {
    /// Documents to hand to the peer node after commit, with what writing them needs when
    /// known, and their version.
    publish: Vec<(Document, Option<Prepared>, String)>,
    /// Documents made in this batch: their `localId` and creator.
    new_docs: HashMap<Uuid, (Uuid, String)>,
    /// Conflicts to log.
    conflicts: Vec<ConflictEntry>,
}

impl Work {
    fn publish(&mut self, built: Built) {
        self.publish.push((built.document, Some(built.prepared), built.heads));
    }

    fn publish_edited(&mut self, mut document: Document) {
        let heads = heads_hex(&mut document);
        self.publish.push((document, None, heads));
    }
}

/// Records stored in one store batch (see [`LegacyService::ingest`]).
const INGEST_CHUNK: usize = 100;

/// One store batch's orders and transactions.
type Chunk = (Vec<Judged<SyncableOrder>>, Vec<Judged<SyncableTransaction>>);

/// Fewest new orders in a request for building their documents on worker threads.
const PREBUILD_MIN: usize = 8;

/// What building a document needs, owned (for worker threads).
struct BuildContext {
    store: tillmesh_store::Store,
    actor: ActorId,
    currency: tillmesh_core::Currency,
    default_tax_bps: u32,
    now: Timestamp,
}

/// A new record's document, built: its legacy view, the differences from what the client sent,
/// its saved bytes, version and what the node's store needs to write it.
#[derive(Debug)]
struct Built {
    document: Document,
    body: RecordBody,
    conflicts: Vec<FieldConflict>,
    saved: Vec<u8>,
    heads: String,
    prepared: Prepared,
}

/// Makes the document of a new legacy order: created on HQ for its creator `device` at the
/// client's status, with its payment claim, in one change.
fn build_order(
    context: &BuildContext,
    incoming: &SyncableOrder,
    doc_id: Uuid,
    number: String,
    listed: &str,
    assigned: &[&str],
) -> Result<Built, HqError> {
    let (device, local_id, client) = (incoming.device_id.as_str(), incoming.local_id, &incoming.order);
    let items = client
        .items
        .iter()
        .enumerate()
        .map(|(index, item)| NewItem {
            id: legacy::item_id(doc_id, 0, index),
            sku: item.product_id.clone(),
            name: item.product_name.clone(),
            quantity: item.quantity,
            unit_price: item.unit_price,
        })
        .collect();
    // Where the client's order stands: its status and its payment claim (none on a voided
    // order, which takes no claim).
    let status = client.order_status.value();
    let method = client.payment_method.as_ref().map(Named::value);
    let claim = match (claim_of(client.payment_status.value()), method) {
        (Some(PaymentStatus::Pending), None) | (None, _) => None,
        (Some(status), method) => Some((method.unwrap_or(PaymentMethod::Other), status)),
    };
    let pricing =
        client.pricing(context.default_tax_bps).map_err(|error| invalid(format!("order.{error}")))?;
    let reached = Reached {
        status,
        claim: claim.filter(|_| status != OrderStatus::Voided),
        adjustment: pricing.adjustment,
        names: client.names(),
        at: context.now,
    };
    let (order, view) = OrderDoc::create_reached(
        NewOrder {
            id: doc_id,
            local_id,
            number,
            device_id: device.to_string(),
            currency: context.currency,
            tax_rate_bps: pricing.tax_rate_bps,
            items,
            notes: String::new(),
            created_at: client.created_at,
        },
        Some(reached),
        context.actor.clone(),
    )?;
    let (body, conflicts) = order_body_of(&view, client, listed, assigned);
    let mut document = Document::Order(order);
    let saved = document.save();
    let heads = heads_hex(&mut document);
    let prepared = context.store.prepare_viewed(&mut document, saved.clone(), &View::Order(view));
    Ok(Built { document, body, conflicts, saved, heads, prepared })
}

/// Registers a legacy device in `records` and returns its new bearer token.
pub async fn add_device<S: RecordStore>(
    records: &S,
    device_id: &str,
    now: Timestamp,
) -> Result<String, HqError> {
    check_device_id(device_id).map_err(|error| invalid(error.to_string()))?;
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|error| {
        HqError::Node(TillError::NotDurable { detail: format!("no randomness: {error}") })
    })?;
    let token = format!("tmd_{}", hex::encode(secret));
    records.add_device(device_id, &token_sha256(&token), now).await?;
    Ok(token)
}

/// The SHA-256 (hex) of a bearer token: what the store keeps instead of the token.
pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn forbidden(device: &str, claimed: &str) -> HqError {
    HqError::Forbidden {
        detail: format!("this token belongs to device {device:?}; it cannot submit as {claimed:?}"),
    }
}

fn too_many_records() -> HqError {
    HqError::BadRequest {
        error: "too_many_records",
        detail: format!("at most {BATCH_RECORDS_MAX} orders and transactions per batch"),
    }
}

/// A record's own failure as its answer (the batch goes on), or a fault of HQ that fails the
/// whole request.
fn judged(outcome: Result<Outcome, HqError>) -> Result<Judged<Outcome>, HqError> {
    match outcome {
        Ok(outcome) => Ok(Ok(outcome)),
        Err(HqError::BadRequest { detail, .. } | HqError::Forbidden { detail }) => Ok(Err(detail)),
        Err(fault) => Err(fault),
    }
}

/// The answer for a record that is not stored: why, naming the field.
fn refused(problem: String, now: Timestamp) -> SyncResponse {
    SyncResponse {
        success: false,
        server_id: None,
        synced_at: now,
        message: Some(problem),
        conflicts: None,
        server_version: 0,
        server_hash: None,
    }
}

/// The conflict for a deletion that did not take.
fn not_deleted() -> FieldConflict {
    FieldConflict {
        field: "syncStatus".into(),
        client_value: Some(legacy::json_text(&SyncStatus::Deleted)),
        server_value: Some(legacy::json_text(&SyncStatus::Synced)),
        resolution: Resolution::ServerWins,
    }
}

/// The conflict for a change sent for a record deleted on the server.
fn deleted_on_server() -> FieldConflict {
    FieldConflict {
        field: "syncStatus".into(),
        client_value: None,
        server_value: Some(legacy::json_text(&SyncStatus::Deleted)),
        resolution: Resolution::ServerWins,
    }
}

/// The version a winning write gives a record at `server` (0: new): the client's, at least one
/// more than the server's, at most [`SYNC_VERSION_STEP_MAX`] more; a capped version is
/// reported.
fn bounded_version(client: i64, server: i64) -> (i64, Option<FieldConflict>) {
    let version = client.max(server.saturating_add(1)).min(server.saturating_add(SYNC_VERSION_STEP_MAX));
    let capped = (client > version).then(|| FieldConflict {
        field: "syncVersion".into(),
        client_value: Some(client.to_string()),
        server_value: Some(version.to_string()),
        resolution: Resolution::ServerAssigned,
    });
    (version, capped)
}

/// Whether a number is one a till may issue (`<till code>-<n>`, any case: `A-2`, `ORD-55`) or
/// has HQ's prefix (`HQ-…`, where HQ's own numbers live). A legacy order keeps such a number for
/// legacy clients, but its document, which every till holds, gets one of HQ's, so it can never
/// collide with a till's order there.
fn reserved_for_tills(number: &str) -> bool {
    let hq_prefix = format!("{}-", tillmesh_core::roster::HQ_CODE);
    number.parse::<OrderNumber>().is_ok()
        || number.get(..hq_prefix.len()).is_some_and(|prefix| prefix.eq_ignore_ascii_case(&hq_prefix))
}

/// Checks a record's metadata: its creator is a well-formed device id, its version not negative.
/// The times a legacy record may carry: from 2000-01-01 to HQ's now plus the clock skew allowed.
/// An order created in year 9999 would top every till's list forever.
#[derive(Debug, Clone, Copy)]
struct TimeRange {
    earliest: i64,
    latest: i64,
}

impl TimeRange {
    /// 2000-01-01T00:00:00Z in milliseconds.
    const EARLIEST_MS: i64 = 946_684_800_000;

    fn around(now: Timestamp, skew_max_ms: i64) -> TimeRange {
        TimeRange { earliest: TimeRange::EARLIEST_MS, latest: now.0.saturating_add(skew_max_ms) }
    }

    fn check(self, what: &str, created_at: Timestamp, updated_at: Timestamp) -> Judged<()> {
        for (field, time) in [("createdAt", created_at), ("updatedAt", updated_at)] {
            if !(self.earliest..=self.latest).contains(&time.0) {
                return Err(format!(
                    "{what}.{field}: {} is outside 2000-01-01 ({}) to HQ's clock plus the skew allowed ({})",
                    time.0, self.earliest, self.latest
                ));
            }
        }
        Ok(())
    }
}

fn check_common(creator: &str, version: i64) -> Judged<()> {
    check_device_id(creator).map_err(|error| format!("deviceId: {error}"))?;
    if version < 0 {
        return Err(format!("syncVersion: {version} is negative"));
    }
    Ok(())
}

fn check_order(order: &SyncableOrder, default_tax_bps: u32) -> Judged<()> {
    check_common(&order.device_id, order.sync_version)?;
    let client = &order.order;
    // What the order's document keeps as text is held to the documents' rules (no card number).
    limits::ORDER_NUMBER.check(&client.order_number).map_err(|error| format!("order.{error}"))?;
    for (field, name) in client.names() {
        limits::LEGACY_NAME.check(&name).map_err(|error| format!("order.{field}: {error}"))?;
    }
    if client.items.len() > limits::ITEMS_MAX {
        return Err(format!("order.items: at most {}", limits::ITEMS_MAX));
    }
    for (index, item) in client.items.iter().enumerate() {
        let problem = |detail: String| format!("order.items[{index}].{detail}");
        limits::SKU.check(&item.product_id).map_err(|error| problem(error.to_string()))?;
        limits::ITEM_NAME.check(&item.product_name).map_err(|error| problem(error.to_string()))?;
        if !(limits::QUANTITY_MIN..=limits::QUANTITY_MAX).contains(&item.quantity) {
            return Err(problem(format!(
                "quantity: {} is not within {}..={}",
                item.quantity,
                limits::QUANTITY_MIN,
                limits::QUANTITY_MAX
            )));
        }
        if item.unit_price > limits::UNIT_PRICE_MAX {
            return Err(problem(format!("unitPrice: at most {}", limits::UNIT_PRICE_MAX)));
        }
    }
    let refused = |error: LegacyError| format!("order.{error}");
    client.check().map_err(refused)?;
    client.pricing(default_tax_bps).map_err(refused)?;
    Ok(())
}

fn check_transaction(transaction: &SyncableTransaction) -> Judged<()> {
    check_common(&transaction.device_id, transaction.sync_version)?;
    transaction.transaction.check().map_err(|error| format!("transaction.{error}"))?;
    limits::REFERENCE
        .check(&transaction.transaction.reference_number)
        .map_err(|error| format!("transaction.{error}"))?;
    for (field, name) in transaction.transaction.names() {
        limits::LEGACY_NAME.check(&name).map_err(|error| format!("transaction.{field}: {error}"))?;
    }
    if transaction.transaction.amount > limits::TRANSACTION_AMOUNT_MAX {
        return Err(format!("transaction.amount: at most {}", limits::TRANSACTION_AMOUNT_MAX));
    }
    Ok(())
}

/// An edit that may be refused because the order moved on (closed, voided): the difference is
/// reported as a conflict instead. Any other refusal is a fault.
fn tolerate(result: Result<(), EditError>) -> Result<(), HqError> {
    match result {
        Ok(())
        | Err(
            EditError::Terminal { .. }
            | EditError::StatusTransition { .. }
            | EditError::ItemVoided { .. }
            | EditError::HqOnly { .. },
        ) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// What a client's status claims on HQ's terms: settlement statuses are HQ's, so a client's
/// `CAPTURED` is taken as the claim `PAID`.
fn claim_of(status: PaymentStatus) -> Option<PaymentStatus> {
    match status {
        PaymentStatus::Pending => Some(PaymentStatus::Pending),
        PaymentStatus::Paid | PaymentStatus::Captured => Some(PaymentStatus::Paid),
        PaymentStatus::Declined | PaymentStatus::Refunded => None,
    }
}

/// Applies a winning client's order as edits: matching lines change quantity, missing lines are
/// voided, new lines added; the status moves forward; a payment claim is recorded.
fn apply_order_edits(
    order: &mut OrderDoc,
    client: &LegacyOrder,
    by: &str,
    at: Timestamp,
    version: i64,
) -> Result<(), HqError> {
    let view = order.view(None)?;
    if !view.status.is_terminal() {
        let live: Vec<_> = view.items.iter().filter(|item| !item.voided).collect();
        let mut used = vec![false; live.len()];
        for (index, wanted) in client.items.iter().enumerate() {
            let matching = live.iter().enumerate().position(|(at_index, item)| {
                !used[at_index]
                    && item.sku == wanted.product_id
                    && item.name == wanted.product_name
                    && item.unit_price == wanted.unit_price
            });
            match matching {
                Some(found) => {
                    used[found] = true;
                    if live[found].quantity != wanted.quantity {
                        tolerate(order.set_quantity(live[found].id, wanted.quantity, by, at))?;
                    }
                }
                None => tolerate(order.add_item(
                    NewItem {
                        id: legacy::item_id(order.id(), version, index),
                        sku: wanted.product_id.clone(),
                        name: wanted.product_name.clone(),
                        quantity: wanted.quantity,
                        unit_price: wanted.unit_price,
                    },
                    by,
                    at,
                ))?,
            }
        }
        for (item, used) in live.iter().zip(used) {
            if !used {
                tolerate(order.void_item(item.id, by, at))?;
            }
        }
    }
    // The client's own names, kept as sent (shown where they still mean the order's values).
    let names = client.names();
    if names != view.legacy_names {
        order.set_legacy_names(&names, by, at)?;
    }
    // The client's total stands: what it adds to the items and tax is the adjustment.
    let now = order.view(None)?;
    if !now.status.is_terminal() {
        let adjustment = Amount::from_minor(client.total.minor() - now.subtotal.minor() - now.tax.minor());
        if adjustment != now.adjustment {
            tolerate(order.set_adjustment(adjustment, by, at))?;
        }
    }
    let status = client.order_status.value();
    if status != view.status {
        tolerate(order.advance(status, by, at))?;
    }
    // The client's payment claim (status and method), unless HQ has settled.
    if let Some(status) = claim_of(client.payment_status.value())
        && view.payment.settlement.is_none()
    {
        let method = client.payment_method.as_ref().map(Named::value).or(view.payment.method);
        let claimed = view.payment.claimed.unwrap_or(PaymentStatus::Pending);
        if claimed != status || method != view.payment.method {
            tolerate(order.claim_payment(method.unwrap_or(PaymentMethod::Other), status, by, at))?;
        }
    }
    Ok(())
}

fn new_record(
    local_id: Uuid,
    creator: &str,
    writer: &str,
    version: i64,
    built: &Built,
    now: Timestamp,
) -> Record {
    Record {
        local_id,
        doc_id: built.document.id(),
        device_id: creator.to_string(),
        written_by: writer.to_string(),
        sync_version: version,
        server_hash: built.body.content_hash(),
        heads: built.heads.clone(),
        deleted: false,
        body: built.body.clone(),
        logged_conflict: None,
        changed_at: now,
        position: 0,
        document: built.saved.clone(),
    }
}

fn next_version(
    record: Record,
    device: &str,
    version: i64,
    body: RecordBody,
    document: &mut Document,
    now: Timestamp,
) -> Record {
    Record {
        written_by: device.to_string(),
        sync_version: version,
        server_hash: body.content_hash(),
        heads: heads_hex(document),
        body,
        changed_at: now,
        document: document.save(),
        ..record
    }
}

/// HQ's `n`th number for legacy records: `HQ-L<n>`, a shape no till issues (HQ's own node
/// numbers its orders `HQ-<n>`).
fn hq_number(n: u64) -> String {
    format!("{}-L{n}", tillmesh_core::roster::HQ_CODE)
}

/// One of HQ's numbers as a record of `kind` holds it: a transaction's ends in `-P`.
fn held_as(kind: DocKind, number: &str) -> String {
    match kind {
        DocKind::Order => number.to_string(),
        DocKind::Transaction => format!("{number}-P"),
    }
}

/// Reads ahead, once the batch read the records' own keys, the numbers of HQ's sequence it may
/// give: one for each record not stored whose number is taken (or, for an order, has a till's
/// shape). Giving them out then costs no round trip each; a number found taken is skipped as
/// ever.
async fn read_ahead_assigned<B: RecordBatch>(
    batch: &mut B,
    orders: &[Judged<SyncableOrder>],
    transactions: &[Judged<SyncableTransaction>],
) -> Result<(), HqError> {
    let mut wanted = 0;
    for order in orders.iter().flatten() {
        let number = &order.order.order_number;
        if batch.get(DocKind::Order, order.local_id).await?.is_none()
            && (reserved_for_tills(number) || batch.number_owner(DocKind::Order, number).await?.is_some())
        {
            wanted += 1;
        }
    }
    for transaction in transactions.iter().flatten() {
        let reference = &transaction.transaction.reference_number;
        if batch.get(DocKind::Transaction, transaction.local_id).await?.is_none()
            && batch.number_owner(DocKind::Transaction, reference).await?.is_some()
        {
            wanted += 1;
        }
    }
    if wanted == 0 {
        return Ok(());
    }
    let last = batch.last_assigned_number();
    let mut keys = BatchKeys::default();
    for n in last + 1..=last + wanted {
        let number = hq_number(n);
        keys.numbers.push((DocKind::Transaction, held_as(DocKind::Transaction, &number)));
        keys.numbers.push((DocKind::Order, number));
    }
    batch.read_ahead(&keys).await?;
    Ok(())
}
