//! [`SyncService`]: the seed's client `SyncService` — save locally first, sync with HQ later.
//!
//! A sync pushes every record waiting in the outbox in batches of at most
//! [`ClientConfig::batch_size`], applies HQ's answer for each (synced, or HQ's values taken for
//! the fields HQ kept), then pages `GET /api/sync/updates` from the stored `nextSyncToken` until
//! `hasMore` is false, storing what other devices changed. One sync runs at a time: the
//! background loop ([`crate::background`]) and [`SyncService::sync_now`] take turns on a mutex.

use std::fmt;
use std::sync::Arc;

use tillmesh_core::legacy::{
    BatchSyncRequest, LegacyOrder, LegacyTransaction, RecordKind, ServerUpdates, Since, SyncResponse,
    SyncableOrder, SyncableTransaction,
};
use tillmesh_core::{Clock, Timestamp};
use tokio::sync::{Mutex, watch};
use uuid::Uuid;

use crate::api::HqApi;
use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::outbox::{Applied, Outbox, Remote};
use crate::record::{LegacyRecord, Tracked, TrackedOrder, TrackedTransaction};

/// What the service is doing, for a status line in the POS (the seed's `SyncState`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncState {
    /// No sync has run yet (or the background loop stopped).
    Idle,
    /// A sync is running.
    Syncing,
    /// The last sync succeeded.
    Success {
        /// Orders HQ answered for in that sync.
        synced_orders: usize,
        /// Transactions HQ answered for in that sync.
        synced_transactions: usize,
    },
    /// The last sync failed; the background loop retries after a backoff.
    Error {
        /// What went wrong, for people.
        message: String,
    },
}

/// Where the outbox stands (the seed's `getSyncStats()`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Orders waiting to be sent: `PENDING`, `MODIFIED`, `DELETED` (or `SYNCING`).
    pub pending_orders: u64,
    /// Orders HQ holds as shown (deleted ones not counted), including other devices' orders.
    pub synced_orders: u64,
    /// Orders whose last attempt failed.
    pub failed_orders: u64,
    /// Transactions waiting to be sent.
    pub pending_transactions: u64,
    /// Transactions HQ holds as shown.
    pub synced_transactions: u64,
    /// Transactions whose last attempt failed.
    pub failed_transactions: u64,
    /// When a sync last succeeded.
    pub last_sync: Option<Timestamp>,
}

impl SyncStats {
    /// Records not yet on HQ as shown here: pending plus failed, orders and transactions.
    pub fn unsent(&self) -> u64 {
        self.pending_orders + self.failed_orders + self.pending_transactions + self.failed_transactions
    }
}

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Orders HQ answered for with success (conflicts included).
    pub synced_orders: usize,
    /// Transactions HQ answered for with success (conflicts included).
    pub synced_transactions: usize,
    /// Fields of local copies that took HQ's value (SERVER_WINS, SERVER_ASSIGNED).
    pub conflicts_resolved: usize,
    /// Records HQ refused as invalid, as a whole batch or one by one with `success: false`
    /// (kept `FAILED` until saved with changes).
    pub rejected: usize,
    /// Records saved again while in flight (their newer change waits for the next sync).
    pub superseded: usize,
    /// Orders of other devices stored or updated locally.
    pub received_orders: usize,
    /// Transactions of other devices stored or updated locally.
    pub received_transactions: usize,
    /// Local copies HQ reported deleted.
    pub deleted: usize,
    /// The page limit stopped the updates early; the next sync continues.
    pub more_updates: bool,
}

/// The client's sync service: a durable outbox plus the sync with HQ. Cheap to clone (all
/// clones share one outbox and one sync lock).
#[derive(Clone)]
pub struct SyncService {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    outbox: Outbox,
    api: HqApi,
    clock: Arc<dyn Clock>,
    /// The latest [`SyncState`], for any number of watchers.
    state: watch::Sender<SyncState>,
    /// One sync at a time: the background loop and `sync_now` take turns.
    sync_lock: Mutex<()>,
}

impl fmt::Debug for SyncService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncService")
            .field("base_url", &self.inner.config.base_url)
            .field("device_id", &self.inner.config.device_id)
            .field("outbox", &self.inner.outbox)
            .field("state", &*self.inner.state.borrow())
            .finish_non_exhaustive()
    }
}

/// Up to `batch_size` records sent in one request.
#[derive(Debug, Default)]
struct Chunk {
    orders: Vec<TrackedOrder>,
    transactions: Vec<TrackedTransaction>,
}

impl Chunk {
    fn len(&self) -> usize {
        self.orders.len() + self.transactions.len()
    }

    /// One chunk per record.
    fn singles(self) -> Vec<Chunk> {
        let orders = self.orders.into_iter().map(|order| Chunk { orders: vec![order], ..Chunk::default() });
        let transactions = self
            .transactions
            .into_iter()
            .map(|transaction| Chunk { transactions: vec![transaction], ..Chunk::default() });
        orders.chain(transactions).collect()
    }
}

/// Orders first, then transactions, `size` records per chunk.
fn chunks(orders: Vec<TrackedOrder>, transactions: Vec<TrackedTransaction>, size: usize) -> Vec<Chunk> {
    let mut chunks = vec![Chunk::default()];
    for order in orders {
        if chunks.last().is_some_and(|chunk| chunk.len() >= size) {
            chunks.push(Chunk::default());
        }
        if let Some(chunk) = chunks.last_mut() {
            chunk.orders.push(order);
        }
    }
    for transaction in transactions {
        if chunks.last().is_some_and(|chunk| chunk.len() >= size) {
            chunks.push(Chunk::default());
        }
        if let Some(chunk) = chunks.last_mut() {
            chunk.transactions.push(transaction);
        }
    }
    chunks.retain(|chunk| chunk.len() > 0);
    chunks
}

fn wire_order(tracked: &TrackedOrder) -> SyncableOrder {
    SyncableOrder {
        order: tracked.record.clone(),
        local_id: tracked.local_id,
        sync_status: tracked.wire_status(),
        sync_version: tracked.sync_version,
        device_id: tracked.device_id.clone(),
        server_hash: None,
    }
}

fn wire_transaction(tracked: &TrackedTransaction) -> SyncableTransaction {
    SyncableTransaction {
        transaction: tracked.record.clone(),
        local_id: tracked.local_id,
        sync_status: tracked.wire_status(),
        sync_version: tracked.sync_version,
        device_id: tracked.device_id.clone(),
        server_hash: None,
    }
}

impl SyncService {
    /// Opens the outbox in `config.data_dir` (queuing again whatever a crash left in flight)
    /// and prepares the HTTP client. Nothing is sent until [`SyncService::sync_now`] or
    /// [`SyncService::start`]. `clock` stamps deletions and sync times
    /// (`tillmesh_node::SystemClock` on a device).
    pub fn open(config: ClientConfig, clock: Arc<dyn Clock>) -> Result<SyncService, ClientError> {
        config.check()?;
        let outbox = Outbox::open(&config.data_dir)?;
        let api = HqApi::new(&config)?;
        let (state, _) = watch::channel(SyncState::Idle);
        Ok(SyncService {
            inner: Arc::new(Inner { config, outbox, api, clock, state, sync_lock: Mutex::new(()) }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// This device's id.
    pub fn device_id(&self) -> &str {
        &self.inner.config.device_id
    }

    /// Watches the [`SyncState`]: the receiver sees the latest state and every change after.
    pub fn state(&self) -> watch::Receiver<SyncState> {
        self.inner.state.subscribe()
    }

    /// Saves `order` for sync (the seed's `saveOrderForSync`): new → `PENDING` with a new
    /// `localId`; an order with the same `id` saved before → `MODIFIED` at the next
    /// `syncVersion` if its content changed, unchanged otherwise. On disk when this returns.
    pub async fn save_order_for_sync(&self, order: LegacyOrder) -> Result<TrackedOrder, ClientError> {
        self.save(None, order).await
    }

    /// Like [`SyncService::save_order_for_sync`] with the `localId` given.
    pub async fn save_order_with_local_id(
        &self,
        local_id: Uuid,
        order: LegacyOrder,
    ) -> Result<TrackedOrder, ClientError> {
        self.save(Some(local_id), order).await
    }

    /// Deletes this device's order `local_id`: `DELETED` at the next version, voided locally;
    /// HQ voids it on the next sync (unless HQ closed it already: then it comes back).
    pub async fn delete_order(&self, local_id: Uuid) -> Result<TrackedOrder, ClientError> {
        self.delete(local_id).await
    }

    /// The order `local_id` as this device shows it (deleted ones too, marked `deleted`).
    pub fn order(&self, local_id: Uuid) -> Result<Option<TrackedOrder>, ClientError> {
        self.inner.outbox.get(local_id)
    }

    /// Every order not deleted, this device's and others', oldest first.
    pub fn orders(&self) -> Result<Vec<TrackedOrder>, ClientError> {
        let mut orders = self.list::<LegacyOrder>()?;
        orders.sort_by(|a, b| {
            (a.record.created_at, &a.record.order_number).cmp(&(b.record.created_at, &b.record.order_number))
        });
        Ok(orders)
    }

    /// Saves `transaction` for sync; like [`SyncService::save_order_for_sync`].
    pub async fn save_transaction_for_sync(
        &self,
        transaction: LegacyTransaction,
    ) -> Result<TrackedTransaction, ClientError> {
        self.save(None, transaction).await
    }

    /// Like [`SyncService::save_transaction_for_sync`] with the `localId` given.
    pub async fn save_transaction_with_local_id(
        &self,
        local_id: Uuid,
        transaction: LegacyTransaction,
    ) -> Result<TrackedTransaction, ClientError> {
        self.save(Some(local_id), transaction).await
    }

    /// Deletes this device's transaction `local_id`: `DELETED` at the next version.
    pub async fn delete_transaction(&self, local_id: Uuid) -> Result<TrackedTransaction, ClientError> {
        self.delete(local_id).await
    }

    /// The transaction `local_id` as this device shows it.
    pub fn transaction(&self, local_id: Uuid) -> Result<Option<TrackedTransaction>, ClientError> {
        self.inner.outbox.get(local_id)
    }

    /// Every transaction not deleted, oldest first.
    pub fn transactions(&self) -> Result<Vec<TrackedTransaction>, ClientError> {
        let mut transactions = self.list::<LegacyTransaction>()?;
        transactions.sort_by(|a, b| {
            (a.record.created_at, &a.record.reference_number)
                .cmp(&(b.record.created_at, &b.record.reference_number))
        });
        Ok(transactions)
    }

    /// Pending, synced and failed counts and the time of the last successful sync.
    pub fn stats(&self) -> Result<SyncStats, ClientError> {
        let outbox = &self.inner.outbox;
        let orders = outbox.counts::<LegacyOrder>()?;
        let transactions = outbox.counts::<LegacyTransaction>()?;
        Ok(SyncStats {
            pending_orders: orders.pending,
            synced_orders: orders.synced,
            failed_orders: orders.failed,
            pending_transactions: transactions.pending,
            synced_transactions: transactions.synced,
            failed_transactions: transactions.failed,
            last_sync: outbox.last_sync()?,
        })
    }

    /// The `nextSyncToken` the next `updates` starts from.
    pub fn next_sync_token(&self) -> Result<Option<String>, ClientError> {
        self.inner.outbox.token()
    }

    /// Syncs now (the seed's `syncWithServer`): waits for a running sync to finish first,
    /// publishes `Syncing` then `Success` or `Error` on [`SyncService::state`]. A failure
    /// leaves every record queued (`FAILED`, sent again next time).
    pub async fn sync_now(&self) -> Result<SyncReport, ClientError> {
        let _turn = self.inner.sync_lock.lock().await;
        let state = &self.inner.state;
        state.send_replace(SyncState::Syncing);
        // Set back to Idle if this future is dropped mid-sync (the loop stopping).
        let mut interrupted = Interrupted(Some(state));
        let result = self.run_sync().await;
        interrupted.0 = None;
        match &result {
            Ok(report) => {
                tracing::debug!(?report, "sync with HQ done");
                state.send_replace(SyncState::Success {
                    synced_orders: report.synced_orders,
                    synced_transactions: report.synced_transactions,
                });
            }
            Err(error) => {
                tracing::warn!(%error, "sync with HQ failed");
                state.send_replace(SyncState::Error { message: error.to_string() });
            }
        }
        result
    }

    async fn save<T: LegacyRecord>(
        &self,
        local_id: Option<Uuid>,
        record: T,
    ) -> Result<Tracked<T>, ClientError> {
        let saved = self.inner.outbox.save(self.device_id(), local_id, record)?;
        self.inner.outbox.flush().await?;
        Ok(saved)
    }

    async fn delete<T: LegacyRecord>(&self, local_id: Uuid) -> Result<Tracked<T>, ClientError> {
        let deleted = self.inner.outbox.delete(self.device_id(), local_id, self.inner.clock.now())?;
        self.inner.outbox.flush().await?;
        Ok(deleted)
    }

    fn list<T: LegacyRecord>(&self) -> Result<Vec<Tracked<T>>, ClientError> {
        Ok(self.inner.outbox.scan::<T>()?.into_iter().filter(|tracked| !tracked.deleted).collect())
    }

    async fn run_sync(&self) -> Result<SyncReport, ClientError> {
        let outbox = &self.inner.outbox;
        let mut report = SyncReport::default();
        let result = self.push_and_pull(&mut report).await;
        // What was applied before a failure stays applied.
        outbox.flush().await?;
        result?;
        outbox.set_last_sync(self.inner.clock.now())?;
        outbox.flush().await?;
        Ok(report)
    }

    async fn push_and_pull(&self, report: &mut SyncReport) -> Result<(), ClientError> {
        let outbox = &self.inner.outbox;
        let orders = outbox.sendable::<LegacyOrder>()?;
        let transactions = outbox.sendable::<LegacyTransaction>()?;
        for chunk in chunks(orders, transactions, self.inner.config.batch_size) {
            self.push(chunk, report).await?;
        }
        self.pull(report).await
    }

    /// Sends one chunk. A chunk HQ rejects as a whole (4xx: nothing stored) is sent again one
    /// record at a time, so that one invalid record does not hold back the others.
    async fn push(&self, chunk: Chunk, report: &mut SyncReport) -> Result<(), ClientError> {
        let outbox = &self.inner.outbox;
        let chunk = Chunk {
            orders: outbox.mark_syncing(&chunk.orders)?,
            transactions: outbox.mark_syncing(&chunk.transactions)?,
        };
        if chunk.len() == 0 {
            return Ok(());
        }
        match self.send(&chunk, report).await {
            Ok(()) => Ok(()),
            Err(error @ ClientError::Rejected { .. }) if chunk.len() > 1 => {
                tracing::warn!(%error, records = chunk.len(), "HQ rejected a batch: sending its records one by one");
                let mut singles = chunk.singles().into_iter();
                while let Some(single) = singles.next() {
                    match self.send(&single, report).await {
                        Ok(()) => {}
                        Err(error @ ClientError::Rejected { .. }) => {
                            self.fail(&single, &error, true)?;
                            report.rejected += 1;
                        }
                        Err(error) => {
                            self.fail(&single, &error, false)?;
                            for rest in singles {
                                self.fail(&rest, &error, false)?;
                            }
                            return Err(error);
                        }
                    }
                }
                Ok(())
            }
            Err(error @ ClientError::Rejected { .. }) => {
                self.fail(&chunk, &error, true)?;
                report.rejected += 1;
                Ok(())
            }
            Err(error) => {
                self.fail(&chunk, &error, false)?;
                Err(error)
            }
        }
    }

    fn fail(&self, chunk: &Chunk, error: &ClientError, rejected: bool) -> Result<(), ClientError> {
        let outbox = &self.inner.outbox;
        let message = error.to_string();
        if rejected {
            for local_id in
                chunk.orders.iter().map(|o| o.local_id).chain(chunk.transactions.iter().map(|t| t.local_id))
            {
                tracing::warn!(%local_id, %error, "HQ refused a record; it waits until it is saved with changes");
            }
        }
        outbox.failed(&chunk.orders, &message, rejected)?;
        outbox.failed(&chunk.transactions, &message, rejected)
    }

    /// One `POST /api/sync/batch` and everything its answer says.
    async fn send(&self, chunk: &Chunk, report: &mut SyncReport) -> Result<(), ClientError> {
        let outbox = &self.inner.outbox;
        let request = BatchSyncRequest {
            device_id: self.device_id().to_string(),
            orders: chunk.orders.iter().map(wire_order).collect(),
            transactions: chunk.transactions.iter().map(wire_transaction).collect(),
            last_sync_timestamp: outbox.token()?.and_then(|token| token.parse::<Since>().ok()),
        };
        let response = self.inner.api.batch(&request).await?;
        if response.synced_orders.len() != chunk.orders.len()
            || response.synced_transactions.len() != chunk.transactions.len()
        {
            return Err(ClientError::BadAnswer {
                detail: format!(
                    "{} orders and {} transactions sent, {} and {} answers",
                    chunk.orders.len(),
                    chunk.transactions.len(),
                    response.synced_orders.len(),
                    response.synced_transactions.len()
                ),
            });
        }
        for (sent, answer) in chunk.orders.iter().zip(&response.synced_orders) {
            self.answered(sent, answer, report)?;
        }
        for (sent, answer) in chunk.transactions.iter().zip(&response.synced_transactions) {
            self.answered(sent, answer, report)?;
        }
        self.apply_updates(response.server_updates, &response.next_sync_token, report)
    }

    fn answered<T: LegacyRecord>(
        &self,
        sent: &Tracked<T>,
        answer: &SyncResponse,
        report: &mut SyncReport,
    ) -> Result<(), ClientError> {
        let synced = match self.inner.outbox.answered(sent, answer)? {
            Applied::Synced => true,
            Applied::Resolved(fields) => {
                report.conflicts_resolved += fields;
                true
            }
            Applied::Rejected => {
                report.rejected += 1;
                false
            }
            Applied::Superseded => {
                report.superseded += 1;
                false
            }
            Applied::Gone => false,
        };
        if synced {
            match T::KIND {
                RecordKind::Order => report.synced_orders += 1,
                RecordKind::Transaction => report.synced_transactions += 1,
            }
        }
        Ok(())
    }

    /// Pages `updates` from the stored token until HQ has no more (or the page limit).
    async fn pull(&self, report: &mut SyncReport) -> Result<(), ClientError> {
        let outbox = &self.inner.outbox;
        for _ in 0..self.inner.config.update_pages_max {
            let since = outbox.token()?;
            let page = self.inner.api.updates(since.as_deref()).await?;
            let (updates, token, has_more) = page.into_parts();
            let moved = since.as_deref() != Some(token.as_str());
            self.apply_updates(updates, &token, report)?;
            if !has_more {
                return Ok(());
            }
            if !moved {
                return Err(ClientError::BadAnswer {
                    detail: format!("updates: hasMore is true but nextSyncToken stays {token:?}"),
                });
            }
        }
        report.more_updates = true;
        Ok(())
    }

    /// Stores other devices' changes and then the token that follows them.
    fn apply_updates(
        &self,
        updates: ServerUpdates,
        token: &str,
        report: &mut SyncReport,
    ) -> Result<(), ClientError> {
        token
            .parse::<Since>()
            .map_err(|error| ClientError::BadAnswer { detail: format!("nextSyncToken: {error}") })?;
        let outbox = &self.inner.outbox;
        for order in updates.orders {
            let remote = Remote {
                record: order.order,
                local_id: order.local_id,
                sync_version: order.sync_version,
                device_id: order.device_id,
                server_hash: order.server_hash,
            };
            if outbox.received(remote)? {
                report.received_orders += 1;
            }
        }
        for transaction in updates.transactions {
            let remote = Remote {
                record: transaction.transaction,
                local_id: transaction.local_id,
                sync_version: transaction.sync_version,
                device_id: transaction.device_id,
                server_hash: transaction.server_hash,
            };
            if outbox.received(remote)? {
                report.received_transactions += 1;
            }
        }
        let now = self.inner.clock.now();
        report.deleted += outbox.deleted_remotely::<LegacyOrder>(&updates.deleted_order_ids, now)?;
        report.deleted +=
            outbox.deleted_remotely::<LegacyTransaction>(&updates.deleted_transaction_ids, now)?;
        outbox.set_token(token)
    }
}

/// Puts the state back to `Idle` when a sync is dropped before it ends.
struct Interrupted<'a>(Option<&'a watch::Sender<SyncState>>);

impl Drop for Interrupted<'_> {
    fn drop(&mut self) {
        if let Some(state) = self.0 {
            state.send_replace(SyncState::Idle);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracked_orders(count: usize) -> Vec<TrackedOrder> {
        let order = LegacyOrder {
            id: "o".into(),
            order_number: "A-1".into(),
            items: Vec::new(),
            subtotal: tillmesh_core::Amount::ZERO,
            tax: tillmesh_core::Amount::ZERO,
            total: tillmesh_core::Amount::ZERO,
            payment_method: None,
            payment_status: tillmesh_core::PaymentStatus::Pending.into(),
            order_status: tillmesh_core::OrderStatus::Open.into(),
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        };
        (0..count).map(|_| Tracked::new(Uuid::new_v4(), order.clone(), "pos".into())).collect()
    }

    #[test]
    fn chunks_hold_at_most_the_batch_size() {
        assert!(chunks(Vec::new(), Vec::new(), 100).is_empty());
        let sizes: Vec<usize> = chunks(tracked_orders(250), Vec::new(), 100).iter().map(Chunk::len).collect();
        assert_eq!(sizes, [100, 100, 50]);
        let sizes: Vec<usize> = chunks(tracked_orders(3), Vec::new(), 1).iter().map(Chunk::len).collect();
        assert_eq!(sizes, [1, 1, 1]);
    }
}
