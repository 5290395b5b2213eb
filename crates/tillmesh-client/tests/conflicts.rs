//! HQ's conflict answers reach the local copy: HQ's settlement stands against a newer client
//! version claiming PAID, HQ's copy stands against an equal version, and a settlement made
//! while the client had nothing to send arrives through `updates`. Afterwards the local
//! content hash is HQ's `serverHash` every time.

mod common;

use common::{HqServer, client, eventually, hq_with, order, with_item};
use tillmesh_client::{SyncService, TrackedOrder};
use tillmesh_core::PaymentStatus;
use tillmesh_core::legacy::{LegacyOrder, SyncStatus};
use tillmesh_hq::records::RecordBody;
use uuid::Uuid;

/// Saves and syncs `first`, then has HQ decline its payment; returns the synced order.
async fn synced_then_declined(hq: &HqServer, sync: &SyncService, first: &LegacyOrder) -> TrackedOrder {
    let saved = sync.save_order_for_sync(first.clone()).await.expect("save");
    sync.sync_now().await.expect("sync");
    let synced = sync.order(saved.local_id).expect("read").expect("order");
    assert_eq!((synced.sync_status, synced.sync_version), (SyncStatus::Synced, 1));
    let doc_id: Uuid = synced.server_id.as_deref().expect("HQ's id").parse().expect("a UUID");
    hq.service.node().settle(doc_id, PaymentStatus::Declined).await.expect("HQ declines");
    eventually("HQ's record shows the settlement", || async {
        hq.order_record(saved.local_id).await.is_some_and(|record| {
            matches!(&record.body, RecordBody::Order(order) if order.payment_status == PaymentStatus::Declined)
        })
    })
    .await;
    synced
}

/// The local copy is HQ's: same hash, same version, synced.
async fn matches_hq(hq: &HqServer, local: &TrackedOrder) {
    let record = hq.order_record(local.local_id).await.expect("HQ's record");
    assert_eq!(local.sync_status, SyncStatus::Synced);
    assert_eq!(local.record.content_hash(), record.server_hash, "local content hash is HQ's");
    assert_eq!(local.server_hash.as_deref(), Some(record.server_hash.as_str()));
    assert_eq!(local.sync_version, record.sync_version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hqs_decline_stands_against_a_newer_paid_claim() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (hq, tokens) = hq_with(dir.path(), &["pos-1"]).await;
    let sync = client(dir.path().join("pos-1"), &hq.url(), "pos-1", &tokens[0]);
    let first = order("POS-55", &[("tea", 1, 300)]);
    let synced = synced_then_declined(&hq, &sync, &first).await;

    // Not yet told, the till adds a line (version 2) and takes the payment (version 3).
    let more = with_item(&first, "cake", 1, 450);
    assert_eq!(sync.save_order_for_sync(more.clone()).await.expect("save").sync_status, SyncStatus::Modified);
    let mut paid = more.clone();
    paid.payment_status = PaymentStatus::Paid.into();
    let claimed = sync.save_order_for_sync(paid).await.expect("save");
    assert_eq!((claimed.sync_status, claimed.sync_version), (SyncStatus::Modified, 3));

    let report = sync.sync_now().await.expect("sync");
    assert!(report.conflicts_resolved >= 1, "{report:?}");
    let local = sync.order(synced.local_id).expect("read").expect("order");
    assert_eq!(local.record.payment_status, PaymentStatus::Declined, "HQ's settlement stands");
    assert_eq!(local.record.items.len(), 2, "the newer version's line was taken");
    assert_eq!(local.sync_version, 3);
    matches_hq(&hq, &local).await;
    hq.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_equal_version_loses_to_hqs_copy() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (hq, tokens) = hq_with(dir.path(), &["pos-1"]).await;
    let sync = client(dir.path().join("pos-1"), &hq.url(), "pos-1", &tokens[0]);
    let first = order("POS-56", &[("tea", 1, 300)]);
    let synced = synced_then_declined(&hq, &sync, &first).await;

    // Version 2 on both sides with other content: SERVER_WINS, the local line is dropped.
    let changed = sync.save_order_for_sync(with_item(&first, "cake", 1, 450)).await.expect("save");
    assert_eq!(changed.sync_version, 2);
    let report = sync.sync_now().await.expect("sync");
    assert!(report.conflicts_resolved >= 2, "items and payment status at least: {report:?}");
    let local = sync.order(synced.local_id).expect("read").expect("order");
    assert_eq!(local.record.payment_status, PaymentStatus::Declined);
    assert_eq!(local.record.items, first.items, "HQ's lines");
    matches_hq(&hq, &local).await;
    hq.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settlement_reaches_an_idle_client_through_updates() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (hq, tokens) = hq_with(dir.path(), &["pos-1"]).await;
    let sync = client(dir.path().join("pos-1"), &hq.url(), "pos-1", &tokens[0]);
    let synced = synced_then_declined(&hq, &sync, &order("POS-57", &[("tea", 2, 300)])).await;

    let report = sync.sync_now().await.expect("sync");
    assert_eq!(report.received_orders, 1, "HQ's change of this device's order comes back: {report:?}");
    let local = sync.order(synced.local_id).expect("read").expect("order");
    assert_eq!(local.record.payment_status, PaymentStatus::Declined);
    assert_eq!(local.sync_version, 2);
    matches_hq(&hq, &local).await;
    // A later change wins on version again, HQ's settlement still standing.
    let more = sync.save_order_for_sync(with_item(&local.record, "cake", 1, 450)).await.expect("save");
    assert_eq!(more.sync_version, 3);
    sync.sync_now().await.expect("sync");
    let local = sync.order(synced.local_id).expect("read").expect("order");
    assert_eq!((local.record.items.len(), local.record.payment_status.value()), (2, PaymentStatus::Declined));
    matches_hq(&hq, &local).await;
    hq.stop().await;
}
