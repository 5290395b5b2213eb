//! HQ down, then up: orders taken while HQ cannot be reached are sent by the background sync
//! (after backoffs) once HQ is there, each stored once — also across an HQ restart on the same
//! data directory and port.

mod common;

use std::net::SocketAddr;

use common::{HqNode, client, closed_port, eventually, order, wait_state};
use tillmesh_client::SyncService;
use tillmesh_client::SyncState;
use uuid::Uuid;

async fn take_orders(sync: &SyncService, numbers: std::ops::RangeInclusive<u32>) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for n in numbers {
        let saved =
            sync.save_order_for_sync(order(&format!("POS-{n}"), &[("fries", 1, 399)])).await.expect("save");
        ids.push(saved.local_id);
    }
    ids
}

async fn all_sent(sync: &SyncService, orders: u64) {
    eventually(&format!("{orders} orders synced, none pending or failed"), || async {
        let stats = sync.stats().expect("stats");
        stats.unsent() == 0 && stats.synced_orders == orders
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_taken_while_hq_is_down_reach_it_once_when_it_is_up() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let node = HqNode::start(dir.path());
    let token = node.add_device("pos-1").await;
    let addr: SocketAddr = closed_port().await;
    let sync = client(dir.path().join("pos-1"), &format!("http://{addr}"), "pos-1", &token);
    let mut state = sync.state();
    let background = sync.start();

    let mut taken = take_orders(&sync, 1..=5).await;
    wait_state(&mut state, "Error while HQ is down", |s| matches!(s, SyncState::Error { .. })).await;
    assert_eq!(sync.stats().expect("stats").unsent(), 5);

    let hq = node.serve(addr).await;
    wait_state(&mut state, "Success once HQ is up", |s| matches!(s, SyncState::Success { .. })).await;
    all_sent(&sync, 5).await;
    assert_eq!(hq.orders_held().await, 5, "each order once");
    for local_id in &taken {
        assert!(hq.order_record(*local_id).await.is_some(), "{local_id} on HQ");
    }

    // Down again; two more orders; HQ restarted on the same data and port.
    hq.stop().await;
    taken.extend(take_orders(&sync, 6..=7).await);
    wait_state(&mut state, "Error after HQ stopped", |s| matches!(s, SyncState::Error { .. })).await;
    let hq = HqNode::start(dir.path()).serve(addr).await;
    wait_state(&mut state, "Success after HQ restarted", |s| matches!(s, SyncState::Success { .. })).await;
    all_sent(&sync, 7).await;
    assert_eq!(hq.orders_held().await, 7, "each order once, across the restart");
    for local_id in &taken {
        assert!(hq.order_record(*local_id).await.is_some(), "{local_id} on HQ");
    }
    background.stop().await;
    hq.stop().await;
}

/// `sync_now` while the background loop runs: the two take turns, nothing is sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_now_takes_turns_with_the_background_loop() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (hq, tokens) = common::hq_with(dir.path(), &["pos-1"]).await;
    let sync = client(dir.path().join("pos-1"), &hq.url(), "pos-1", &tokens[0]);
    let background = sync.start();
    let mut tills = Vec::new();
    for till in 0..4u32 {
        let sync = sync.clone();
        tills.push(tokio::spawn(async move {
            for n in 1..=5 {
                let number = 100 * (till + 1) + n;
                sync.save_order_for_sync(order(&format!("POS-{number}"), &[("tea", 1, 300)]))
                    .await
                    .expect("save");
                sync.sync_now().await.expect("sync now");
            }
        }));
    }
    for till in tills {
        till.await.expect("till task");
    }
    all_sent(&sync, 20).await;
    assert_eq!(hq.orders_held().await, 20);
    background.stop().await;
    hq.stop().await;
}
