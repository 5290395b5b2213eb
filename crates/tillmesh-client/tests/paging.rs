//! More changes than one `updates` page (HQ sends at most 500): the client pages with
//! `nextSyncToken` until `hasMore` is false, or stops at its page limit and continues on the
//! next sync.

mod common;

use std::sync::Arc;

use common::{client, config, hq_with, order};
use tillmesh_client::SyncService;
use tillmesh_node::SystemClock;

const ORDERS: usize = 501;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_are_paged_until_hq_has_no_more() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (hq, tokens) = hq_with(dir.path(), &["pos-a", "pos-b", "pos-c"]).await;
    let a = client(dir.path().join("a"), &hq.url(), "pos-a", &tokens[0]);
    for n in 1..=ORDERS {
        a.save_order_for_sync(order(&format!("A-{n}"), &[("tea", 1, 300)])).await.expect("save");
    }
    let report = a.sync_now().await.expect("sync A");
    assert_eq!(report.synced_orders, ORDERS, "in batches of at most 100");
    assert_eq!(hq.orders_held().await, ORDERS as u64);

    let b = client(dir.path().join("b"), &hq.url(), "pos-b", &tokens[1]);
    let report = b.sync_now().await.expect("sync B");
    assert_eq!((report.received_orders, report.more_updates), (ORDERS, false));
    assert_eq!(b.orders().expect("list").len(), ORDERS);

    // One page per sync: the rest comes with the next one.
    let mut one_page = config(dir.path().join("c"), &hq.url(), "pos-c", &tokens[2]);
    one_page.update_pages_max = 1;
    let c = SyncService::open(one_page, Arc::new(SystemClock)).expect("open");
    let first = c.sync_now().await.expect("sync C");
    assert_eq!((first.received_orders, first.more_updates), (500, true));
    let second = c.sync_now().await.expect("sync C");
    assert_eq!((second.received_orders, second.more_updates), (1, false));
    assert_eq!(c.orders().expect("list").len(), ORDERS);
    hq.stop().await;
}
