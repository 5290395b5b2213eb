//! The seed's two client tests, against a real HQ over HTTP: an order taken offline is kept
//! (and survives a restart), and the same order sent ten times is stored once by HQ — also
//! when the client crashed after sending and never saw HQ's answer.

mod common;

use std::collections::HashSet;

use common::{client, closed_port, copy_dir, hq_with, order};
use tillmesh_client::SyncState;
use tillmesh_core::legacy::SyncStatus;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_order_offline_works() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let nowhere = format!("http://{}", closed_port().await);
    let outbox = dir.path().join("pos-1");
    let sync = client(outbox.clone(), &nowhere, "pos-1", "tmd_not-needed-offline");

    let taken = order("POS-1", &[("burger", 2, 899), ("cola", 1, 250)]);
    let saved = sync.save_order_for_sync(taken.clone()).await.expect("saved offline");
    assert_eq!((saved.sync_status, saved.sync_version), (SyncStatus::Pending, 1));
    let read = sync.order(saved.local_id).expect("read").expect("the order is there");
    assert_eq!(read.record, taken);
    assert_eq!(sync.orders().expect("list").len(), 1);
    let stats = sync.stats().expect("stats");
    assert_eq!((stats.pending_orders, stats.synced_orders, stats.failed_orders), (1, 0, 0));
    assert_eq!(stats.last_sync, None);

    // Syncing fails clearly and loses nothing.
    let error = sync.sync_now().await.expect_err("HQ is unreachable");
    assert!(error.is_transient(), "{error}");
    assert!(matches!(&*sync.state().borrow(), SyncState::Error { message } if !message.is_empty()));
    let failed = sync.order(saved.local_id).expect("read").expect("still there");
    assert_eq!(
        (failed.sync_status, failed.attempts, failed.record.clone()),
        (SyncStatus::Failed, 1, taken.clone())
    );
    assert!(failed.last_error.is_some());

    // On disk: a restarted client still has it, still to be sent.
    drop(sync);
    let sync = client(outbox, &nowhere, "pos-1", "tmd_not-needed-offline");
    let reopened = sync.order(saved.local_id).expect("read").expect("kept across a restart");
    assert_eq!(reopened.record, taken);
    assert_eq!(sync.stats().expect("stats").unsent(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_same_order_10_times_creates_only_1_database_entry() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (hq, tokens) = hq_with(dir.path(), &["pos-1"]).await;
    let sync = client(dir.path().join("pos-1"), &hq.url(), "pos-1", &tokens[0]);
    let taken = order("POS-7", &[("soup", 2, 450)]);

    let mut local_ids = HashSet::new();
    for _ in 0..10 {
        local_ids.insert(sync.save_order_for_sync(taken.clone()).await.expect("save").local_id);
        sync.sync_now().await.expect("sync");
    }
    assert_eq!(local_ids.len(), 1, "one order, one localId");
    assert_eq!(hq.orders_held().await, 1);
    let local_id = local_ids.into_iter().next().expect("id");
    let synced = sync.order(local_id).expect("read").expect("order");
    assert_eq!((synced.sync_status, synced.sync_version), (SyncStatus::Synced, 1));
    assert_eq!(synced.server_hash.as_deref(), Some(synced.record.content_hash().as_str()));
    let stats = sync.stats().expect("stats");
    assert_eq!((stats.pending_orders, stats.synced_orders, stats.failed_orders), (0, 1, 0));
    assert!(stats.last_sync.is_some());
    hq.stop().await;
}

/// The client sends, HQ stores, the client crashes before it records the answer: on restart
/// it sends again. Ten such crashes still make one order on HQ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_lost_in_a_crash_is_resent_and_stored_once() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (hq, tokens) = hq_with(dir.path(), &["pos-1"]).await;
    let outbox = dir.path().join("pos-1");
    let before_sync = dir.path().join("pos-1-before-sync");
    let local_id = {
        let sync = client(outbox.clone(), &hq.url(), "pos-1", &tokens[0]);
        sync.save_order_for_sync(order("POS-9", &[("pie", 1, 525)])).await.expect("save").local_id
    };
    copy_dir(&outbox, &before_sync);

    let mut server_ids = HashSet::new();
    for _ in 0..10 {
        std::fs::remove_dir_all(&outbox).expect("remove");
        copy_dir(&before_sync, &outbox);
        let sync = client(outbox.clone(), &hq.url(), "pos-1", &tokens[0]);
        assert_eq!(sync.stats().expect("stats").pending_orders, 1, "the answer was never recorded");
        sync.sync_now().await.expect("sync");
        let synced = sync.order(local_id).expect("read").expect("order");
        assert_eq!(synced.sync_status, SyncStatus::Synced);
        server_ids.insert(synced.server_id.expect("HQ's id"));
    }
    assert_eq!(server_ids.len(), 1);
    assert_eq!(hq.orders_held().await, 1);
    hq.stop().await;
}
