//! What HQ refuses: bad credentials (401, 403) are clear errors that keep every record queued;
//! a record HQ finds invalid is set aside without holding back the rest of its batch; records
//! that cannot add up are refused before they are saved.

mod common;

use common::{client, hq_with, order};
use tillmesh_client::{ClientError, SyncState};
use tillmesh_core::Amount;
use tillmesh_core::legacy::SyncStatus;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_clear_errors_and_lose_nothing() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (hq, tokens) = hq_with(dir.path(), &["pos-1", "pos-2"]).await;

    let wrong = client(dir.path().join("wrong"), &hq.url(), "pos-1", "tmd_wrong");
    let saved = wrong.save_order_for_sync(order("POS-1", &[("tea", 1, 300)])).await.expect("save");
    let error = wrong.sync_now().await.expect_err("401");
    assert!(matches!(error, ClientError::Unauthorized { .. }) && error.is_auth(), "{error}");
    assert!(matches!(&*wrong.state().borrow(), SyncState::Error { message } if message.contains("401")));
    let kept = wrong.order(saved.local_id).expect("read").expect("kept");
    assert_eq!((kept.sync_status, kept.attempts), (SyncStatus::Failed, 1));

    let borrowed = client(dir.path().join("borrowed"), &hq.url(), "pos-1", &tokens[1]);
    borrowed.save_order_for_sync(order("POS-2", &[("tea", 1, 300)])).await.expect("save");
    let error = borrowed.sync_now().await.expect_err("403");
    assert!(matches!(error, ClientError::Forbidden { .. }) && error.is_auth(), "{error}");
    assert_eq!(borrowed.stats().expect("stats").failed_orders, 1);
    assert_eq!(hq.orders_held().await, 0);
    hq.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_invalid_order_does_not_hold_back_the_others() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (hq, tokens) = hq_with(dir.path(), &["pos-1"]).await;
    let sync = client(dir.path().join("pos-1"), &hq.url(), "pos-1", &tokens[0]);
    sync.save_order_for_sync(order("POS-1", &[("tea", 1, 300)])).await.expect("save");
    // Adds up, but HQ takes quantities from 1.
    let zero = order("POS-2", &[("tea", 0, 300)]);
    let bad = sync.save_order_for_sync(zero.clone()).await.expect("save");
    sync.save_order_for_sync(order("POS-3", &[("tea", 2, 300)])).await.expect("save");

    let report = sync.sync_now().await.expect("sync");
    assert_eq!((report.synced_orders, report.rejected), (2, 1), "{report:?}");
    assert_eq!(hq.orders_held().await, 2);
    let refused = sync.order(bad.local_id).expect("read").expect("kept");
    assert_eq!((refused.sync_status, refused.rejected), (SyncStatus::Failed, true));
    assert!(refused.last_error.as_deref().is_some_and(|e| e.contains("quantity")), "{refused:?}");

    // Not sent again as it is; sent once it is fixed.
    let report = sync.sync_now().await.expect("sync");
    assert_eq!((report.synced_orders, report.rejected), (0, 0));
    let mut fixed = zero;
    fixed.items[0].quantity = tillmesh_core::Quantity::pieces(1);
    fixed.items[0].total_price = Amount::from_minor(300);
    common::add_up(&mut fixed);
    assert_eq!(sync.save_order_for_sync(fixed).await.expect("save").sync_status, SyncStatus::Modified);
    assert_eq!(sync.sync_now().await.expect("sync").synced_orders, 1);
    assert_eq!(hq.orders_held().await, 3);
    assert_eq!(sync.stats().expect("stats").unsent(), 0);
    hq.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_with_impossible_amounts_are_refused_before_saving() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let sync = client(dir.path().join("pos-1"), "http://127.0.0.1:9", "pos-1", "tmd_x");
    let mut wrong = order("POS-1", &[("tea", 2, 300)]);
    wrong.items[0].unit_price = Amount::from_minor(-1);
    let error = sync.save_order_for_sync(wrong).await.expect_err("refused");
    assert!(matches!(error, ClientError::Invalid { .. }), "{error}");
    assert_eq!(sync.stats().expect("stats").unsent(), 0);
}
