//! Stopping a mesh saves every live session's sync states before the store closes, so the next
//! session with each peer starts from where this one was, not from scratch; its connections
//! close and its peer sees it go.

use std::time::Duration;

use tillmesh_core::{Amount, OrderStatus, Quantity};
use tillmesh_node::LocalShop;
use tillmesh_node::till::{ItemInput, OrderInput};

fn soup() -> OrderInput {
    let item = ItemInput {
        sku: "SOUP".into(),
        name: "Tomato soup".into(),
        quantity: Quantity::pieces(2),
        unit_price: Amount::from_minor(450),
    };
    OrderInput { local_id: None, items: vec![item], notes: String::new() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_mesh_keeps_its_sessions_sync_states() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shop = LocalShop::new(21, &["A", "B"]).expect("shop");
    let (a, b) = (shop.till(dir.path(), 0).expect("till A"), shop.till(dir.path(), 1).expect("till B"));
    let (mesh_a, address_a) = shop.join(&a, 0, Vec::new(), 60_000).await.expect("A joins");
    let (mesh_b, _) = shop.join(&b, 1, vec![address_a], 60_000).await.expect("B joins");
    // A new order travels whole; an edit of it travels as Automerge sync messages, whose
    // per-document state the session holds.
    let id = a.create_order(soup()).await.expect("an order on A").0.order.id;
    let sent = |till: &tillmesh_node::Till| till.order(id).is_ok_and(|o| o.order.status == OrderStatus::Sent);
    for _ in 0..600 {
        if b.order(id).is_ok() {
            a.advance(id, OrderStatus::Sent).await.expect("sent to the kitchen");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Wait on state: B holds A's edit.
    for _ in 0..600 {
        if sent(&b) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(sent(&b), "B received A's order and its edit");
    let peers = |till: &tillmesh_node::Till| till.sync_control().expect("sync runs").peers.borrow().clone();
    assert_eq!(peers(&a), ["till-B"]);
    assert!(a.store().sync_state("till-B", id).expect("read").is_none(), "kept only when a session ends");

    mesh_a.stop().await;
    assert!(
        a.store().sync_state("till-B", id).expect("read").is_some(),
        "the live session's states were kept"
    );
    assert!(peers(&a).is_empty());
    // B sees A go.
    let mut b_peers = b.sync_control().expect("sync runs").peers.clone();
    tokio::time::timeout(Duration::from_secs(30), b_peers.wait_for(|peers| peers.is_empty()))
        .await
        .expect("B saw A leave")
        .expect("B's driver runs");
    mesh_b.stop().await;
    for till in [a, b] {
        tokio::task::spawn_blocking(move || till.close()).await.expect("closed");
    }
}
