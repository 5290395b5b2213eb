//! Keeps the legacy records in step with HQ's peer store: every document the node writes (an
//! order a till took, a till's edit of a REST order, HQ's settlement) becomes the record legacy
//! clients receive from `updates`, with the version bumped when its content changed. The menu
//! maps to no record: it stays on the node.
//!
//! The projector follows the node's durable writes ([`Till::subscribe_written`]). At start, and
//! whenever it fell behind, it reconciles the whole store: a document whose version differs from
//! its record's is projected, and a record whose document the node lacks (written by another
//! HQ process on the same database, or before a crash) is handed to the node, so the mesh gets
//! it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tillmesh_core::{Clock, Document, Timestamp};
use tillmesh_node::{Till, TillError};
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use crate::error::HqError;
use crate::mapping::{heads_hex, record_of};
use crate::records::{BatchKeys, RecordBatch, RecordStore};
use crate::service::LegacyService;
use tillmesh_core::legacy::RecordKind;

/// Most documents projected in one batch.
const PROJECT_BATCH_MAX: usize = 256;

/// How often records and documents are checked against each other besides at start.
const RECONCILE_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// Follows the node's writes until the node stops. Reconciles everything first, then every
/// five minutes (`RECONCILE_EVERY`): a split between a record and its document (a write cut short, another
/// HQ process) is repaired, counted and logged.
pub async fn run<S: RecordStore>(service: Arc<LegacyService<S>>) {
    let (records, node, clock) = (service.records(), service.node(), service.clock());
    let mut written = node.subscribe_written();
    let mut full = true;
    let mut periodic = tokio::time::interval(RECONCILE_EVERY);
    periodic.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    periodic.tick().await;
    loop {
        if full {
            match reconcile(records, node, clock).await {
                Ok(repaired) => {
                    service.stats.splits_repaired.fetch_add(repaired as u64, Ordering::Relaxed);
                    if repaired > 0 {
                        tracing::info!(repaired, "records and documents found apart: brought together");
                    }
                    full = false;
                }
                Err(error) => {
                    tracing::error!(%error, "cannot reconcile legacy records; retrying in 5 s");
                    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                    continue;
                }
            }
        }
        let first = tokio::select! {
            _ = periodic.tick() => {
                full = true;
                continue;
            }
            first = written.recv() => first,
        };
        let first = match first {
            Ok(id) => id,
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "legacy projection fell behind: reconciling");
                full = true;
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let mut ids = BTreeSet::new();
        if !service.just_recorded(first) {
            ids.insert(first);
        }
        while ids.len() < PROJECT_BATCH_MAX {
            match written.try_recv() {
                Ok(id) => {
                    if !service.just_recorded(id) {
                        ids.insert(id);
                    }
                }
                Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {
                    full = true;
                    break;
                }
                Err(_) => break,
            }
        }
        if ids.is_empty() {
            continue;
        }
        if let Err(error) = project(records, node, clock.now(), ids).await {
            tracing::error!(%error, "legacy projection failed: reconciling");
            full = true;
        }
    }
}

/// Projects every document whose record is missing or behind, and hands the node every
/// record's document it lacks. Returns how many documents and records were found apart.
pub async fn reconcile<S: RecordStore>(
    records: &S,
    node: &Till,
    clock: &dyn Clock,
) -> Result<usize, HqError> {
    let store = node.store();
    let index = store.load_index().map_err(TillError::from)?;
    let versions = records.versions().await?;
    let mut by_doc: HashMap<Uuid, (RecordKind, Uuid, String)> = HashMap::with_capacity(versions.len());
    for version in versions {
        by_doc.insert(version.doc_id, (version.kind, version.local_id, version.heads));
    }
    let mut stale = Vec::new();
    // The menu is no legacy record: never missing one.
    let menu = node.menu_id();
    for (id, hash) in index.iter().filter(|(id, _)| Some(**id) != menu) {
        match by_doc.remove(id) {
            Some((_, _, heads)) if heads == hex::encode(hash.0) => {}
            _ => stale.push(*id),
        }
    }
    // Records whose document the node does not hold (or holds an older version of).
    let mut missing = Vec::new();
    let mut unloadable = 0usize;
    for (kind, local_id, _) in by_doc.into_values() {
        if let Some(record) = records.get(kind, local_id).await?
            && !record.document.is_empty()
        {
            // A record whose stored document no longer loads (bit rot, a faulty writer) keeps its
            // legacy JSON for REST clients; it is reported and not handed to the mesh, rather
            // than stopping HQ at every start.
            match Document::load(&record.document) {
                Ok(document) => missing.push(document),
                Err(error) => {
                    unloadable += 1;
                    tracing::error!(%local_id, %error, "a record's document does not load: not handed to the mesh");
                }
            }
        }
    }
    if unloadable > 0 {
        tracing::warn!(unloadable, "records whose document does not load (kept as they are, see the log)");
    }
    let handed = missing.len();
    if !missing.is_empty() {
        node.write_documents(missing.into_iter().map(|document| (document, None)).collect()).await?;
    }
    let projected = stale.len();
    for chunk in stale.chunks(PROJECT_BATCH_MAX) {
        project(records, node, clock.now(), chunk.iter().copied().collect()).await?;
    }
    if handed > 0 {
        tracing::info!(handed, "records' documents handed to the peer store");
    }
    Ok(projected + handed)
}

/// Brings the records of documents `ids` up to date, in one batch.
async fn project<S: RecordStore>(
    records: &S,
    node: &Till,
    now: Timestamp,
    ids: BTreeSet<Uuid>,
) -> Result<(), HqError> {
    let hq = node.config().hq;
    // Read before the batch, which then looks up every record and number in one go.
    let mut documents = Vec::with_capacity(ids.len());
    let mut keys = BatchKeys::default();
    for id in ids {
        let Some(document) = node.store().get(id).map_err(TillError::from)? else { continue };
        // The menu is no legacy record: it stays on the node.
        let Some(kind) = RecordKind::of(document.kind()) else { continue };
        let view = document.view(hq.as_ref())?;
        let (Some(local_id), Some(number)) = (view.local_id(), view.number()) else { continue };
        keys.add(kind, local_id, number);
        documents.push((document, kind, local_id));
    }
    let mut batch = records.begin().await?;
    batch.read_ahead(&keys).await?;
    let mut back_to_node = Vec::new();
    for (mut document, kind, local_id) in documents {
        let previous = batch.get(kind, local_id).await?;
        if previous.as_ref().is_some_and(|record| record.heads == heads_hex(&mut document)) {
            continue;
        }
        // A record may carry changes the node lacks (another HQ process wrote them).
        if let Some(previous) = &previous
            && !previous.document.is_empty()
        {
            match Document::load(&previous.document) {
                Ok(mut theirs) => {
                    let before = heads_hex(&mut document);
                    document.merge(&mut theirs)?;
                    if heads_hex(&mut document) != before {
                        back_to_node.push(document.clone());
                    }
                }
                // The node's copy replaces a stored document that no longer loads.
                Err(error) => {
                    tracing::error!(%local_id, %error, "a record's document does not load: replaced by the node's")
                }
            }
        }
        let record = record_of(&mut batch, previous, &mut document, hq.as_ref(), now).await?;
        batch.put(record).await?;
    }
    batch.commit().await?;
    if !back_to_node.is_empty() {
        node.write_documents(back_to_node.into_iter().map(|document| (document, None)).collect()).await?;
    }
    Ok(())
}
