//! What a till spends on each whole document a peer sends it (a catch-up is thousands of them),
//! step by step, on orders of five dishes as tills write them (some sent to the kitchen by
//! another till, some paid). Prints figures, asserts nothing:
//!
//! - the contained load (`tillmesh_untrusted::load_document`: the shape check, then Automerge's
//!   load);
//! - the header check (`Document::from_automerge`);
//! - the view (`Document::view`: the whole record read, totals and payment resolved), beside
//!   Automerge's own read of the whole document (`Automerge::hydrate`), the floor under any view;
//! - packing for the disk (`tillmesh_untrusted::packed::pack`);
//! - all of it as the store does it (`Store::receive`), the part that runs on every core;
//! - writing them (`Store::put_prepared`, frames of about 256 KiB of documents, each flushed),
//!   the part the writer thread does alone;
//! - what the store's trees hold per order (keys and values) and what its directory takes on disk
//!   per order once written: sled's log beside what it holds.
//!
//! Run with: `cargo bench -p tillmesh-store --bench receive` (add `-- --orders N`; default
//! 5,000).

use std::hint::black_box;
use std::time::Instant;

use automerge::ActorId;
use tillmesh_core::{
    Amount, Currency, Document, NewItem, NewOrder, OrderDoc, OrderStatus, PaymentMethod, PaymentStatus,
    Quantity, TillCode, Timestamp,
};
use tillmesh_store::{Prepared, Store, StoreOptions};
use uuid::Uuid;

/// The documents of one catch-up frame: about 256 KiB of orders of ≈ 1.15 KB.
const FRAME_DOCUMENTS: usize = 226;
const ROUNDS: usize = 3;

/// The `n`th order, saved: five dishes; every third sent to the kitchen by another till, every
/// second paid.
fn order(n: usize) -> (Uuid, Vec<u8>) {
    let at = Timestamp(1_764_900_000_000 + i64::try_from(n).unwrap_or(0) * 45_000);
    let items = (0..5)
        .map(|dish| NewItem {
            id: id(n, 2 + dish),
            sku: format!("DISH-{dish}"),
            name: format!("Dish of the day {dish}"),
            quantity: Quantity::pieces(1 + (dish as i64) % 2),
            unit_price: Amount::from_minor(450 + 125 * dish as i64),
        })
        .collect();
    let new = NewOrder {
        id: id(n, 0),
        local_id: id(n, 1),
        number: TillCode::parse("A").expect("code").order_number(1 + n as u64).to_string(),
        device_id: "till-A".into(),
        currency: Currency::parse("USD").expect("USD"),
        tax_rate_bps: 825,
        items,
        notes: String::new(),
        created_at: at,
    };
    let id = new.id;
    let mut order = OrderDoc::create(new, ActorId::from([1u8; 16])).expect("an order");
    if n.is_multiple_of(3) {
        let mut other = order.fork(ActorId::from([2u8; 16]));
        other.advance(OrderStatus::Sent, "till-B", Timestamp(at.0 + 60_000)).expect("sent");
        order.merge(&mut other).expect("merge");
    }
    if n.is_multiple_of(2) {
        order
            .claim_payment(PaymentMethod::Card, PaymentStatus::Paid, "till-A", Timestamp(at.0 + 300_000))
            .expect("paid");
    }
    (id, order.save())
}

/// An id as random as a real one (one of the `n`th order's), without a random source.
fn id(n: usize, which: u64) -> Uuid {
    let mix = |mut x: u64| {
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    };
    let seed = (n as u64) << 8 | which;
    Uuid::from_u64_pair(mix(seed), mix(seed ^ 0x9e37_79b9_7f4a_7c15))
}

/// Microseconds per document of `step` over every document, the best of [`ROUNDS`].
fn per_document_us<T>(documents: &[T], mut step: impl FnMut(&T)) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        for document in documents {
            step(document);
        }
        best = best.min(started.elapsed().as_secs_f64() * 1e6 / documents.len() as f64);
    }
    best
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let orders = args
        .iter()
        .position(|arg| arg == "--orders")
        .and_then(|at| args.get(at + 1))
        .map_or(5_000, |n| n.parse().expect("--orders takes a number"));
    let documents: Vec<(Uuid, Vec<u8>)> = (0..orders).map(order).collect();
    let bytes = documents.iter().map(|(_, bytes)| bytes.len()).sum::<usize>() / orders;
    println!(
        "{orders} orders of five dishes, {bytes} bytes saved on average; µs per document, best of {ROUNDS}"
    );

    let load = per_document_us(&documents, |(_, bytes)| {
        black_box(tillmesh_untrusted::load_document(bytes).expect("load"));
    });
    let loaded: Vec<automerge::AutoCommit> =
        documents.iter().map(|(_, bytes)| tillmesh_untrusted::load_document(bytes).expect("load")).collect();
    let header = per_document_us(&loaded, |doc| {
        black_box(Document::from_automerge(doc.clone()).expect("a document"));
    });
    let typed: Vec<Document> =
        loaded.into_iter().map(|doc| Document::from_automerge(doc).expect("doc")).collect();
    let view = per_document_us(&typed, |document| {
        black_box(document.view(None).expect("a view"));
    });
    let whole: Vec<automerge::Automerge> = documents
        .iter()
        .map(|(_, bytes)| tillmesh_untrusted::load_document(bytes).expect("load").document().clone())
        .collect();
    let hydrate = per_document_us(&whole, |doc| {
        black_box(doc.hydrate(None));
    });
    let pack = per_document_us(&documents, |(_, bytes)| {
        black_box(tillmesh_untrusted::packed::pack(bytes).expect("packs"));
    });

    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Store::open(dir.path(), StoreOptions::default()).expect("a store");
    let receive = per_document_us(&documents, |(id, bytes)| {
        let doc = tillmesh_untrusted::load_document(bytes).expect("load");
        black_box(store.receive(*id, doc, Some(bytes.clone())).expect("accepted"));
    });
    let prepared: Vec<Prepared> = documents
        .iter()
        .map(|(id, bytes)| {
            let doc = tillmesh_untrusted::load_document(bytes).expect("load");
            store.receive(*id, doc, Some(bytes.clone())).expect("accepted").1
        })
        .collect();
    let started = Instant::now();
    for frame in prepared.chunks(FRAME_DOCUMENTS) {
        store.put_prepared(frame, Some("till-A")).expect("written");
        store.flush().expect("flushed");
    }
    let write = started.elapsed().as_secs_f64() * 1e6 / orders as f64;
    let held: u64 =
        store.footprint().expect("footprint").iter().map(|tree| tree.key_bytes + tree.value_bytes).sum();
    let on_disk = tillmesh_store::disk_bytes(dir.path()).expect("the store's directory reads");

    println!("contained load (shape check, Automerge's load)  {load:7.1}");
    println!("header check (Document::from_automerge)         {header:7.1}");
    println!("view (Document::view)                           {view:7.1}");
    println!("  Automerge's own read of the whole (hydrate)   {hydrate:7.1}");
    println!("pack for the disk                               {pack:7.1}");
    println!("all of it as the store does (Store::receive)    {receive:7.1}   on every core");
    println!(
        "writing, {FRAME_DOCUMENTS} a batch, flushed (Store::put_prepared) {write:7.1}   on the writer thread, once"
    );
    let per_order = |bytes: u64| bytes / orders as u64;
    println!(
        "held per order: {} B in the trees (keys and values), {} B on disk (sled's files and the \
         store's reserve)",
        per_order(held),
        per_order(on_disk)
    );
}
