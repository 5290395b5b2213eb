//! Sync benchmark over real libp2p on 127.0.0.1: prints figures, asserts nothing.
//!
//! Run with: `cargo bench -p tillmesh-node --bench sync` (add `-- --orders N`; default 10,000).
//!
//! Prints, against the targets of the sync issue:
//! - two tills holding the same N orders reconnect and agree (round trips, bytes);
//! - 10 of N orders differ (round trips, bytes, and the size of those 10 documents);
//! - an empty till catches up N orders (seconds);
//! - a new order appears on the other two tills of three (p50/p99 milliseconds).
//!
//! Round trips count requests sent by both sides (each is answered once); bytes count every
//! frame both ways, including the admission exchange (roster credentials).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use automerge::ActorId;
use tillmesh_core::{Amount, Currency, Document, NewItem, NewOrder, OrderDoc, TillCode, Timestamp};
use tillmesh_node::{LocalShop, Mesh, SystemClock, Till};
use tillmesh_store::{Store, StoreOptions, TillIdentity};
use uuid::Uuid;

const LATENCY_ORDERS: usize = 200;
/// Anti-entropy interval: long, so that only the exchanges measured happen.
const QUIET_MS: u64 = 60_000;
/// Writes `count` real orders into a till's store (before the till opens).
fn populate(dir: &Path, code: &str, documents: &[Vec<u8>]) {
    let store = Store::open(&dir.join(code), StoreOptions::default()).expect("store");
    store
        .bind_till(&TillIdentity {
            code: TillCode::parse(code).expect("code"),
            device_id: format!("till-{code}"),
        })
        .expect("bind");
    for chunk in documents.chunks(1_000) {
        let mut batch: Vec<Document> =
            chunk.iter().map(|bytes| Document::load(bytes).expect("load")).collect();
        store.put(&mut batch).expect("put");
    }
    store.flush().expect("flush");
}

/// The id of bench order `n`: spread over the id space like the random (v4) ids tills make.
fn order_id(n: usize) -> Uuid {
    Uuid::from_u128((n as u128 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835))
}

fn orders(count: usize) -> Vec<Vec<u8>> {
    let actor = ActorId::from([7u8; 16]);
    (0..count)
        .map(|n| {
            let new = NewOrder {
                id: order_id(n),
                local_id: Uuid::from_u128(0x2000_0000 + n as u128),
                number: TillCode::parse("A").expect("code").order_number(n as u64 + 1).to_string(),
                device_id: "till-A".into(),
                currency: Currency::parse("USD").expect("code"),
                tax_rate_bps: 825,
                items: vec![NewItem {
                    id: Uuid::from_u128(0x3000_0000 + n as u128),
                    sku: "SOUP".into(),
                    name: "Tomato soup".into(),
                    quantity: tillmesh_core::Quantity::pieces(2),
                    unit_price: Amount::from_minor(450),
                }],
                notes: String::new(),
                created_at: Timestamp(1_704_067_200_000 + n as i64),
            };
            OrderDoc::create(new, actor.clone()).expect("valid").save()
        })
        .collect()
}

struct Traffic {
    requests: u64,
    bytes: u64,
}

fn traffic(meshes: &[&Mesh]) -> Traffic {
    Traffic {
        requests: meshes.iter().map(|m| m.stats.requests_sent.load(Ordering::Relaxed)).sum(),
        bytes: meshes.iter().map(|m| m.stats.bytes_sent.load(Ordering::Relaxed)).sum(),
    }
}

/// Waits until `till` records a completed sync with `remote` after `since`.
async fn synced(till: &Till, remote: &str, since: Timestamp) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(counts) = till.store().remote_counts(remote)
            && counts.last_sync_at.is_some_and(|at| at >= since)
            && counts.synced == till.store().document_count() as u64
        {
            return;
        }
        assert!(Instant::now() < deadline, "no sync with {remote}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn now() -> Timestamp {
    use tillmesh_core::Clock;
    SystemClock.now()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let count: usize = args
        .iter()
        .position(|a| a == "--orders")
        .and_then(|at| args.get(at + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let shop = LocalShop::new(9, &["A", "B", "C"]).expect("shop");
    let documents = orders(count);
    populate(dir.path(), "A", &documents);
    populate(dir.path(), "B", &documents);

    // 1. Same orders on both: reconnect and agree.
    let (a, b) = (shop.till(dir.path(), 0).expect("till"), shop.till(dir.path(), 1).expect("till"));
    let (mesh_a, address_a) = shop.join(&a, 0, Vec::new(), QUIET_MS).await.expect("join");
    let started = now();
    let clock = Instant::now();
    let (mesh_b, _) = shop.join(&b, 1, vec![address_a.clone()], QUIET_MS).await.expect("join");
    synced(&b, "till-A", started).await;
    synced(&a, "till-B", started).await;
    let elapsed = clock.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = traffic(&[&mesh_a, &mesh_b]);
    println!(
        "{count} identical orders, reconnect to agreement: {} requests (round trips, both sides), {} bytes, {:.1} ms \
         (target <= 3 round trips, <= 4 KB)",
        t.requests,
        t.bytes,
        elapsed.as_secs_f64() * 1000.0
    );

    // 2. B away while 10 orders change on A.
    mesh_b.stop().await;
    // Let A see B go, so that A's pushes of the edits below are not sent to a vanished peer.
    let mut peers_of_a = a.sync_control().expect("A is in the mesh").peers.clone();
    peers_of_a.wait_for(|peers| peers.is_empty()).await.expect("A's driver runs");
    let mut changed_bytes = 0;
    for n in (0..count).step_by((count / 10).max(1)).take(10) {
        let id = order_id(n);
        a.advance(id, tillmesh_core::OrderStatus::Sent).await.expect("advance");
        changed_bytes += a.store().get_bytes(id).expect("read").expect("present").len();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = traffic(&[&mesh_a]);
    let started = now();
    let (mesh_b, _) = shop.join(&b, 1, vec![address_a.clone()], QUIET_MS).await.expect("join");
    synced(&b, "till-A", started).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = traffic(&[&mesh_a, &mesh_b]);
    println!(
        "10 of {count} orders differ: {} requests, {} bytes for {changed_bytes} bytes of documents \
         (target <= 6 round trips, <= 2x the documents)",
        after.requests - before.requests,
        after.bytes - before.bytes
    );

    // 3. An empty till catches up.
    let c = shop.till(dir.path(), 2).expect("till");
    let clock = Instant::now();
    let (mesh_c, _) = shop.join(&c, 2, vec![address_a.clone()], QUIET_MS).await.expect("join");
    let deadline = Instant::now() + Duration::from_secs(300);
    while c.store().document_count() < count {
        assert!(Instant::now() < deadline, "catch-up stalled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!("empty till catches up {count} orders in {:.2} s (target < 2 s)", clock.elapsed().as_secs_f64());

    // 4. Latency: a new order on A appears on B and C.
    let mut samples = Vec::with_capacity(LATENCY_ORDERS);
    for n in 0..LATENCY_ORDERS {
        let input: tillmesh_node::till::OrderInput = serde_json::from_value(serde_json::json!({
            "items": [{ "sku": "TEA", "name": "Tea", "quantity": 1 + n % 3, "unitPrice": "2.00" }]
        }))
        .expect("input");
        let clock = Instant::now();
        let (detail, _) = a.create_order(input).await.expect("create");
        let id = detail.order.id;
        loop {
            if b.store().get_bytes(id).expect("read").is_some()
                && c.store().get_bytes(id).expect("read").is_some()
            {
                break;
            }
            assert!(clock.elapsed() < Duration::from_secs(10), "order never arrived");
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        samples.push(clock.elapsed());
    }
    samples.sort();
    let ms = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize].as_secs_f64() * 1000.0;
    println!(
        "new order visible on the other two of three tills (created, fsynced, pushed, fsynced): \
         p50 {:.2} ms p99 {:.2} ms over {LATENCY_ORDERS} orders (target p99 < 20 ms)",
        ms(0.5),
        ms(0.99)
    );
    for mesh in [mesh_a, mesh_b, mesh_c] {
        mesh.stop().await;
    }
}
