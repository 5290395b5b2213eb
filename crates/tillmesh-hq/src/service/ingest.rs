//! Batch ingest: `POST /api/sync/batch` and the single-record routes. Records are checked, new
//! orders' documents built ahead on worker threads, then each record is judged in a store batch
//! of [`INGEST_CHUNK`] records, the batch committed and its documents handed to HQ's node.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use tillmesh_core::Timestamp;
use tillmesh_core::legacy::{
    self, BatchSyncResponse, RecordKind, Since, SyncResponse, SyncStatus, SyncableOrder, SyncableTransaction,
};
use tillmesh_node::TillError;
use uuid::Uuid;

use super::build::{BuildContext, Built, build_order};
use super::identity::{read_ahead_assigned, reserved_for_tills};
use super::incoming::{IncomingBatch, Judged, TimeRange, check_order, check_transaction, read_record};
use super::work::{Outcome, Work};
use super::{BATCH_RECORDS_MAX, LegacyService};
use crate::error::HqError;
use crate::records::{BatchKeys, ConflictEntry, RecordBatch, RecordStore};

impl<S: RecordStore> LegacyService<S> {
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
            keys.add(RecordKind::Order, order.local_id, &order.order.order_number);
        }
        for transaction in transactions.iter().flatten() {
            keys.add(
                RecordKind::Transaction,
                transaction.local_id,
                &transaction.transaction.reference_number,
            );
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
                Ok(outcome) => self.answer(RecordKind::Order, local_id, device, outcome, now, &mut work),
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
                Ok(outcome) => {
                    self.answer(RecordKind::Transaction, local_id, device, outcome, now, &mut work)
                }
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
        kind: RecordKind,
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

    /// What building documents needs, owned, for worker threads.
    pub(super) fn build_context(&self, now: Timestamp) -> BuildContext {
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
}

/// Records stored in one store batch (see [`LegacyService::ingest`]).
const INGEST_CHUNK: usize = 100;

/// One store batch's orders and transactions.
type Chunk = (Vec<Judged<SyncableOrder>>, Vec<Judged<SyncableTransaction>>);

/// Fewest new orders in a request for building their documents on worker threads.
const PREBUILD_MIN: usize = 8;

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
