//! Several devices: what device A saves reaches device B through `updates` and is listed by
//! B; B cannot change A's records; A's later changes and deletions reach B too.

mod common;

use common::{client, hq_with, order, transaction, with_item};
use tillmesh_client::ClientError;
use tillmesh_core::OrderStatus;
use tillmesh_core::legacy::SyncStatus;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_of_one_device_are_listed_by_another() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (hq, tokens) = hq_with(dir.path(), &["pos-a", "pos-b"]).await;
    let a = client(dir.path().join("a"), &hq.url(), "pos-a", &tokens[0]);
    let b = client(dir.path().join("b"), &hq.url(), "pos-b", &tokens[1]);

    let mut from_a = Vec::new();
    for n in 1..=3 {
        from_a
            .push(a.save_order_for_sync(order(&format!("A-{n}"), &[("wrap", n, 650)])).await.expect("save"));
    }
    let paid = a.save_transaction_for_sync(transaction(&from_a[0].record, "REF-A-1")).await.expect("save");
    let report = a.sync_now().await.expect("sync A");
    assert_eq!((report.synced_orders, report.synced_transactions), (3, 1));
    let own = b.save_order_for_sync(order("B-1", &[("salad", 1, 800)])).await.expect("save");

    let report = b.sync_now().await.expect("sync B");
    assert_eq!((report.received_orders, report.received_transactions), (3, 1), "{report:?}");
    let listed = b.orders().expect("list");
    assert_eq!(listed.len(), 4);
    for sent in &from_a {
        let seen = listed.iter().find(|order| order.local_id == sent.local_id).expect("A's order on B");
        assert_eq!((seen.device_id.as_str(), seen.sync_status), ("pos-a", SyncStatus::Synced));
        assert_eq!(seen.record.content_hash(), sent.record.content_hash(), "A's content");
    }
    let transactions = b.transactions().expect("list");
    assert_eq!(transactions.len(), 1);
    assert_eq!(transactions[0].local_id, paid.local_id);
    assert_eq!(transactions[0].record.amount, from_a[0].record.total);
    let error =
        b.save_order_for_sync(with_item(&from_a[1].record, "tip", 1, 100)).await.expect_err("not B's");
    assert!(matches!(error, ClientError::NotOwned { ref owner, .. } if owner == "pos-a"), "{error}");

    // A sees B's order; A's change and deletion reach B.
    let report = a.sync_now().await.expect("sync A");
    assert_eq!(report.received_orders, 1);
    assert!(a.orders().expect("list").iter().any(|order| order.local_id == own.local_id));
    a.save_order_for_sync(with_item(&from_a[1].record, "tip", 1, 100)).await.expect("change");
    let deleted = a.delete_order(from_a[2].local_id).await.expect("delete");
    assert_eq!((deleted.sync_status, deleted.deleted), (SyncStatus::Deleted, true));
    a.sync_now().await.expect("sync A");
    let gone = a.order(from_a[2].local_id).expect("read").expect("kept as deleted");
    assert_eq!(
        (gone.sync_status, gone.record.order_status.value()),
        (SyncStatus::Synced, OrderStatus::Voided)
    );
    assert!(gone.deleted, "HQ voided it");

    let report = b.sync_now().await.expect("sync B");
    assert_eq!((report.received_orders, report.deleted), (1, 1), "{report:?}");
    let listed = b.orders().expect("list");
    assert_eq!(listed.len(), 3, "the deleted order is not listed");
    let changed = listed.iter().find(|order| order.local_id == from_a[1].local_id).expect("changed order");
    assert_eq!((changed.record.items.len(), changed.sync_version), (2, 2));
    assert!(b.order(from_a[2].local_id).expect("read").expect("tombstone").deleted);
    let stats = b.stats().expect("stats");
    assert_eq!((stats.pending_orders, stats.synced_orders, stats.synced_transactions), (0, 3, 1));
    hq.stop().await;
}
