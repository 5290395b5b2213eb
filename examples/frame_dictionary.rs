//! Trains the zstd dictionary that sync frames and stored documents are packed with
//! (`crates/tillmesh-untrusted/src/tillmesh.dict`) and prints what it saves on frames it was not
//! trained on. A new dictionary needs a new sync protocol name and a store migration (see
//! `tillmesh_untrusted::packed`).
//!
//! The samples are frames as a till sends them: one order document whole (a new order's push,
//! and every document of a catch-up), orders of one to eight lines from a restaurant's menu,
//! some weighed, some with notes, edited on and on by other tills (sent to the kitchen, served,
//! paid), each till process with its own Automerge actor.
//!
//! With `--check` it also prints what the shipped codec costs and what compact frames (whole
//! documents without their ids) save.
//!
//! ```text
//! cargo run --release --example frame_dictionary            # train, write, compare
//! cargo run --release --example frame_dictionary -- --check # compare with the shipped one
//! ```

use std::path::Path;

use automerge::ActorId;
use tillmesh_core::{
    Amount, Currency, NewItem, NewOrder, OrderDoc, OrderStatus, PaymentMethod, PaymentStatus, Quantity,
    TillCode, Timestamp,
};
use tillmesh_sim::SimRng;
use tillmesh_sync::frame::{self, DocBody, DocMsg, Frame};
use uuid::Uuid;

/// Largest dictionary: zstd's advice is about a hundredth of the samples.
const DICTIONARY_BYTES: usize = 32 * 1024;
const TRAINING_FRAMES: u64 = 4_000;
const HELD_OUT_FRAMES: u64 = 1_000;

const DISHES: &[(&str, &str, i64)] = &[
    ("SOUP", "Tomato soup", 450),
    ("ONION", "French onion soup", 650),
    ("CAESAR", "Caesar salad", 890),
    ("BURGER", "Cheeseburger", 1_250),
    ("STEAK", "Steak frites", 2_340),
    ("SALMON", "Grilled salmon", 1_990),
    ("RISOTTO", "Mushroom risotto", 1_550),
    ("PIZZA-M", "Pizza margherita", 1_100),
    ("PASTA", "Spaghetti carbonara", 1_390),
    ("FRIES", "Fries", 390),
    ("CHEESE", "Comté", 2_490),
    ("BREAD", "Sourdough bread", 225),
    ("TEA", "Green tea", 200),
    ("COFFEE", "Espresso", 250),
    ("LATTE", "Caffè latte", 380),
    ("COLA", "Cola", 300),
    ("WATER", "Sparkling water", 250),
    ("WINE-R", "House red, glass", 650),
    ("BEER", "Draught lager", 550),
    ("CAKE", "Cheesecake", 600),
    ("TART", "Lemon tart", 575),
    ("ICE", "Vanilla ice cream", 420),
];

const NOTES: &[&str] = &["", "", "", "no croutons", "table 4", "allergy: nuts", "well done", "to go"];

/// A random id (the samples need variety, not secrecy).
fn uuid(dice: &mut SimRng) -> Uuid {
    Uuid::from_u64_pair(dice.next_u64(), dice.next_u64())
}

/// One frame carrying the `n`th sample order, whole.
fn sample(dice: &mut SimRng, n: u64) -> Vec<u8> {
    let tills = ["A", "B", "C", "D"];
    let till = tills[dice.below(tills.len() as u64) as usize];
    // A till process writes many orders with one actor: a handful of processes per till.
    let actor = ActorId::from(Uuid::from_u64_pair(u64::from(till.as_bytes()[0]), dice.below(3)).into_bytes());
    let device = format!("till-{till}");
    let at = Timestamp(1_764_900_000_000 + i64::try_from(n).unwrap_or(0) * 45_000);
    let items = (0..1 + dice.below(8))
        .map(|_| {
            let (sku, name, price) = DISHES[dice.below(DISHES.len() as u64) as usize];
            let quantity = if sku == "CHEESE" {
                Quantity::parse(&format!("0.{}", 100 + dice.below(800))).expect("a weight")
            } else {
                Quantity::pieces(1 + dice.below(3) as i64)
            };
            NewItem {
                id: uuid(dice),
                sku: sku.into(),
                name: name.into(),
                quantity,
                unit_price: Amount::from_minor(price),
            }
        })
        .collect();
    let new = NewOrder {
        id: uuid(dice),
        local_id: uuid(dice),
        number: TillCode::parse(till).expect("code").order_number(1 + n).to_string(),
        device_id: device.clone(),
        currency: Currency::parse("USD").expect("USD"),
        tax_rate_bps: 825,
        items,
        notes: NOTES[dice.below(NOTES.len() as u64) as usize].into(),
        created_at: at,
    };
    let id = new.id;
    let mut order = OrderDoc::create(new, actor).expect("an order");
    // Most orders move on, edited by other tills' processes too.
    let steps = [OrderStatus::Sent, OrderStatus::Ready, OrderStatus::Served];
    for (step, status) in steps.iter().enumerate().take(dice.below(4) as usize) {
        let mut other = order.fork(ActorId::from(uuid(dice).into_bytes()));
        let by = format!("till-{}", tills[dice.below(tills.len() as u64) as usize]);
        other.advance(*status, &by, Timestamp(at.0 + 60_000 * (step as i64 + 1))).expect("advance");
        order = other;
    }
    if dice.below(2) == 0 {
        let method = if dice.below(3) == 0 { PaymentMethod::Cash } else { PaymentMethod::Card };
        order.claim_payment(method, PaymentStatus::Paid, &device, Timestamp(at.0 + 300_000)).expect("paid");
    }
    frame::encode(&Frame {
        credentials: None,
        ranges: None,
        docs: vec![DocMsg { id, body: DocBody::Whole(order.save()) }],
    })
}

/// The held-out orders as a catch-up sends them: many whole documents in a frame of about
/// [`frame::FRAME_BYTES_TARGET`] bytes.
fn catch_up_frames(held_out: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut docs = Vec::new();
    let mut bytes = 0;
    for one in held_out {
        let mut decoded = frame::decode(one).expect("a frame").docs;
        bytes += one.len();
        docs.append(&mut decoded);
        if bytes >= frame::FRAME_BYTES_TARGET {
            frames.push(frame::encode(&Frame {
                credentials: None,
                ranges: None,
                docs: std::mem::take(&mut docs),
            }));
            bytes = 0;
        }
    }
    frames.push(frame::encode(&Frame { credentials: None, ranges: None, docs }));
    frames
}

fn compressed_total(frames: &[Vec<u8>], level: i32, dictionary: &[u8]) -> usize {
    let mut compressor = zstd::bulk::Compressor::with_dictionary(level, dictionary).expect("compressor");
    frames.iter().map(|frame| compressor.compress(frame).expect("compress").len()).sum()
}

fn main() {
    let check = std::env::args().any(|argument| argument == "--check");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/tillmesh-untrusted/src/tillmesh.dict");
    let mut dice = SimRng::new(0x7111_e5b0);
    let training: Vec<Vec<u8>> = (0..TRAINING_FRAMES).map(|n| sample(&mut dice, n)).collect();
    let held_out: Vec<Vec<u8>> =
        (TRAINING_FRAMES..TRAINING_FRAMES + HELD_OUT_FRAMES).map(|n| sample(&mut dice, n)).collect();
    let dictionary = if check {
        std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
    } else {
        let trained = zstd::dict::from_samples(&training, DICTIONARY_BYTES).expect("a dictionary");
        std::fs::write(&path, &trained).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        println!("wrote {} ({} bytes)", path.display(), trained.len());
        trained
    };
    let batched = catch_up_frames(&held_out);
    let per_order = |total: usize| total as f64 / HELD_OUT_FRAMES as f64;
    println!("{HELD_OUT_FRAMES} orders not trained on, bytes an order:");
    println!(
        "| frames | raw | zstd 1 | zstd 3 | zstd 6 | zstd 1, dictionary | zstd 3, dictionary | zstd 6, dictionary |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, frames) in
        [("one order a frame (a new order)", &held_out), ("catch-up frames (~256 KB)", &batched)]
    {
        let raw: usize = frames.iter().map(Vec::len).sum();
        let mut row = format!("| {name} | {:.0}", per_order(raw));
        for dictionary in [&[][..], &dictionary[..]] {
            for level in [1, 3, 6] {
                row.push_str(&format!(" | {:.0}", per_order(compressed_total(frames, level, dictionary))));
            }
        }
        println!("{row} |");
    }
    if check {
        // Compact frames (whole documents without their ids, as `/tm/5` sends them) against
        // frames as the mesh writes them.
        let compacted: Vec<Vec<u8>> =
            batched.iter().map(|one| frame::compact(one).expect("a frame")).collect();
        let packed = |frames: &[Vec<u8>]| {
            per_order(
                frames.iter().map(|frame| tillmesh_untrusted::packed::pack(frame).expect("pack").len()).sum(),
            )
        };
        println!(
            "catch-up frames packed as the mesh writes them: {:.0} B an order; compact (on the wire): {:.0} B",
            packed(&batched),
            packed(&compacted),
        );
        // The shipped codec's own cost, on this machine: what a frame pays each way.
        for (name, frames) in [("one order a frame", &held_out), ("catch-up frames", &batched)] {
            let started = std::time::Instant::now();
            let compressed: Vec<Vec<u8>> =
                frames.iter().map(|frame| tillmesh_untrusted::packed::pack(frame).expect("pack")).collect();
            let compressing = started.elapsed();
            let started = std::time::Instant::now();
            for (frame, packed) in frames.iter().zip(&compressed) {
                let back =
                    tillmesh_untrusted::packed::unpack(packed, frame::FRAME_BYTES_MAX).expect("unpack");
                assert_eq!(&back, frame);
            }
            let decompressing = started.elapsed();
            let megabytes = frames.iter().map(Vec::len).sum::<usize>() as f64 / 1e6;
            println!(
                "{name}: compressed in {:.1} µs a frame ({:.0} MB/s), decompressed in {:.1} µs ({:.0} MB/s)",
                compressing.as_secs_f64() * 1e6 / frames.len() as f64,
                megabytes / compressing.as_secs_f64(),
                decompressing.as_secs_f64() * 1e6 / frames.len() as f64,
                megabytes / decompressing.as_secs_f64(),
            );
        }
    }
}
