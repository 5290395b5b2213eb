//! What the contained load costs a till taking documents from a peer: per document, the shape
//! check alone, the whole contained load, and Automerge's own load, on documents shaped like
//! orders (a root map of scalars, a map of items with counters, a progress map, edits by three
//! tills). Prints figures, asserts nothing.
//!
//! Run with: `cargo bench -p tillmesh-untrusted --bench load`

use std::hint::black_box;
use std::time::Instant;

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ObjType, ROOT, ScalarValue};

const DOCUMENTS: usize = 10_000;
const ROUNDS: usize = 5;

fn order(n: usize) -> Vec<u8> {
    let mut doc = AutoCommit::new().with_actor(ActorId::from([1u8; 16]));
    doc.put(ROOT, "schema", 1u64).expect("put");
    doc.put(ROOT, "kind", "order").expect("put");
    doc.put(ROOT, "id", format!("00000000-0000-0000-0000-{n:012}")).expect("put");
    doc.put(ROOT, "orderNumber", format!("A-{n}")).expect("put");
    doc.put(ROOT, "currency", "USD").expect("put");
    doc.put(ROOT, "createdAt", 1_704_067_200_000i64 + n as i64).expect("put");
    let items = doc.put_object(ROOT, "items", ObjType::Map).expect("items");
    let progress = doc.put_object(ROOT, "progress", ObjType::Map).expect("progress");
    doc.put(&progress, "OPEN", 1_704_067_200_000i64).expect("put");
    for item in 0..5 {
        let entry = doc.put_object(&items, format!("item-{item}"), ObjType::Map).expect("item");
        doc.put(&entry, "sku", format!("SKU{item}")).expect("put");
        doc.put(&entry, "name", format!("Dish number {item}")).expect("put");
        doc.put(&entry, "unitPrice", 450i64 + item).expect("put");
        doc.put(&entry, "qty", ScalarValue::counter(1)).expect("put");
    }
    doc.commit();
    let mut other = doc.fork().with_actor(ActorId::from([2u8; 16]));
    other.put(&progress, "SENT", 1_704_067_260_000i64).expect("put");
    other.commit();
    doc.merge(&mut other).expect("merge");
    doc.save_nocompress()
}

fn per_document_us(documents: &[Vec<u8>], mut load: impl FnMut(&[u8])) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        for bytes in documents {
            load(bytes);
        }
        best = best.min(started.elapsed().as_secs_f64() * 1e6 / documents.len() as f64);
    }
    best
}

fn main() {
    let documents: Vec<Vec<u8>> = (0..DOCUMENTS).map(order).collect();
    let bytes = documents.iter().map(Vec::len).sum::<usize>() / DOCUMENTS;
    println!("{DOCUMENTS} order-shaped documents of {bytes} bytes on average; best of {ROUNDS} rounds");
    let raw = per_document_us(&documents, |bytes| {
        black_box(AutoCommit::load(bytes).expect("load"));
    });
    let contained = per_document_us(&documents, |bytes| {
        black_box(tillmesh_untrusted::load_document(bytes).expect("load"));
    });
    println!("automerge load (unchecked)    {raw:8.2} µs per document");
    println!("contained load (check + load) {contained:8.2} µs per document");
    println!(
        "added by the checks           {:8.2} µs per document ({:+.1} %), {:.1} ms per {DOCUMENTS} documents",
        contained - raw,
        (contained - raw) / raw * 100.0,
        (contained - raw) * DOCUMENTS as f64 / 1000.0
    );
}
