//! Reconciliation and document sync between two in-memory peers: they always converge, and the
//! cost follows the differences.

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ROOT};
use proptest::prelude::*;
use tillmesh_sync::{Documents, MemoryDocuments, Session, encode};
use uuid::Uuid;

/// Counts of one conversation.
#[derive(Debug, Default)]
struct Conversation {
    round_trips: usize,
    bytes: usize,
}

/// Runs a conversation started by `a` until both outboxes are empty: each round trip is one
/// frame from `a` and the answer from `b` (as request and response on the network).
fn converse(a: &mut MemoryDocuments, b: &mut MemoryDocuments) -> Conversation {
    let (mut on_a, mut on_b) = (Session::new(), Session::new());
    on_a.start_reconcile(a.index());
    talk(a, &mut on_a, b, &mut on_b)
}

/// Two live sessions talk until neither has anything to send; panics when they go on without
/// end.
fn talk(
    a: &mut MemoryDocuments,
    on_a: &mut Session,
    b: &mut MemoryDocuments,
    on_b: &mut Session,
) -> Conversation {
    let mut talk = Conversation::default();
    while on_a.has_outgoing() || on_b.has_outgoing() {
        talk.round_trips += 1;
        assert!(talk.round_trips < 1_000, "no convergence");
        if let Some(frame) = on_a.next_frame(a).expect("in memory") {
            talk.bytes += encode(&frame).len();
            on_b.receive(frame, b).expect("in memory");
        }
        if let Some(frame) = on_b.next_frame(b).expect("in memory") {
            talk.bytes += encode(&frame).len();
            on_a.receive(frame, a).expect("in memory");
        }
    }
    talk
}

fn doc(n: u64, actor: u8) -> AutoCommit {
    let mut doc = AutoCommit::new().with_actor(ActorId::from([actor; 16]));
    doc.put(ROOT, "n", n).expect("put");
    doc.put(ROOT, "name", format!("order {n}")).expect("put");
    doc
}

fn id(n: u64) -> Uuid {
    // Spread ids over the space like random UUIDs, deterministically.
    Uuid::from_u128(u128::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835))
}

fn assert_same(a: &MemoryDocuments, b: &MemoryDocuments) {
    assert_eq!(a.index(), b.index(), "indexes differ");
    for (id, doc) in a.iter() {
        let mut mine = doc.clone();
        let mut theirs = b.get(id).expect("present on both").clone();
        let (mut x, mut y) = (mine.get_heads(), theirs.get_heads());
        x.sort();
        y.sort();
        assert_eq!(x, y, "heads of {id} differ");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever the two sets (shared, only on one side, edited on either or both), one
    /// conversation leaves both peers with the same documents at the same heads.
    #[test]
    fn any_two_sets_converge(
        shared in 0u64..120,
        only_a in 0u64..40,
        only_b in 0u64..40,
        edits in proptest::collection::vec((0u64..120, any::<bool>(), any::<bool>()), 0..30),
    ) {
        let mut a = MemoryDocuments::new();
        let mut b = MemoryDocuments::new();
        for n in 0..shared {
            let base = doc(n, 1);
            a.put(id(n), base.clone());
            b.put(id(n), base);
        }
        for n in 0..only_a {
            a.put(id(1_000 + n), doc(1_000 + n, 2));
        }
        for n in 0..only_b {
            b.put(id(2_000 + n), doc(2_000 + n, 3));
        }
        for (n, on_a, on_b) in edits {
            if n >= shared {
                continue;
            }
            for (side, actor, flag) in [(&mut a, 4u8, on_a), (&mut b, 5u8, on_b)] {
                if flag {
                    let mut edited = side.get(&id(n)).expect("shared").clone().with_actor(ActorId::from([actor; 16]));
                    edited.put(ROOT, format!("edit{actor}"), n as i64).expect("put");
                    side.put(id(n), edited);
                }
            }
        }
        converse(&mut a, &mut b);
        assert_same(&a, &b);
        prop_assert_eq!(a.index().len() as u64, shared + only_a + only_b);
    }
}

fn peers_with(count: u64) -> (MemoryDocuments, MemoryDocuments) {
    let mut a = MemoryDocuments::new();
    for n in 0..count {
        a.put(id(n), doc(n, 1));
    }
    let b = a.clone();
    (a, b)
}

#[test]
fn identical_sets_agree_in_one_round_trip() {
    let (mut a, mut b) = peers_with(10_000);
    let talk = converse(&mut a, &mut b);
    assert_eq!(talk.round_trips, 1, "{talk:?}");
    assert!(talk.bytes <= 64, "{talk:?}");
}

#[test]
fn both_sides_learn_that_they_agree() {
    let (a, b) = peers_with(50);
    let (mut on_a, mut on_b) = (Session::new(), Session::new());
    on_a.start_reconcile(a.index());
    let whole = a.index().fingerprint(&tillmesh_sync::Bound::min(), &tillmesh_sync::Bound::Max);
    let (mut a, mut b) = (a, b);
    let at_b = on_b
        .receive(on_a.next_frame(&mut a).expect("in memory").expect("fingerprint"), &mut b)
        .expect("in memory");
    assert_eq!(at_b.agreed, Some(whole));
    let echo = on_b.next_frame(&mut b).expect("in memory").expect("the fingerprint echoed");
    let late = echo.clone();
    let at_a = on_a.receive(echo, &mut a).expect("in memory");
    assert_eq!(at_a.agreed, Some(whole));
    assert!(!on_a.has_outgoing() && !on_b.has_outgoing());
    // The same echo arriving again (late, or twice) is not echoed back: no endless exchange.
    let again = on_a.receive(late, &mut a).expect("in memory");
    assert_eq!(again.agreed, Some(whole));
    assert!(!on_a.has_outgoing());
    // A set that differs agrees on nothing.
    b.put(id(99_999), doc(99_999, 7));
    on_a.start_reconcile(a.index());
    let at_b = on_b
        .receive(on_a.next_frame(&mut a).expect("in memory").expect("fingerprint"), &mut b)
        .expect("in memory");
    assert_eq!(at_b.agreed, None);
}

/// A receipt (the answer to documents we sent) equal to our set agrees, and is echoed only
/// while the session has not agreed yet (so the peer learns it once, as after a catch-up); the
/// peer's own start with that fingerprint is still echoed (it does not know we agreed); a
/// receipt of another set agrees on nothing and starts nothing.
#[test]
fn a_receipt_agrees_without_another_exchange() {
    let (mut a, mut b) = peers_with(30);
    let mut on_a = Session::new();
    let first = on_a.receive_answer(receipt(&b), &mut a).expect("in memory");
    assert_eq!(first.agreed, Some(whole(&a)));
    assert_eq!(
        on_a.next_frame(&mut a).expect("in memory").and_then(|echo| echo.ranges),
        receipt(&a).ranges,
        "first agreement echoed"
    );
    for docs in [&mut a, &mut b] {
        docs.put(id(100), doc(100, 1));
    }
    let second = on_a.receive_answer(receipt(&b), &mut a).expect("in memory");
    assert_eq!(second.agreed, Some(whole(&a)));
    assert!(!on_a.has_outgoing(), "agreed before: no echo");
    // B does not know that A agreed: B's own start with that fingerprint is still echoed.
    let start = on_a.receive(receipt(&b), &mut a).expect("in memory");
    assert_eq!(start.agreed, Some(whole(&a)));
    assert_eq!(
        on_a.next_frame(&mut a).expect("in memory").and_then(|echo| echo.ranges),
        receipt(&a).ranges,
        "B's start echoed"
    );
    b.put(id(101), doc(101, 2));
    let other = on_a.receive_answer(receipt(&b), &mut a).expect("in memory");
    assert_eq!(other.agreed, None);
    assert!(!on_a.has_outgoing(), "another set's receipt starts nothing");
}

/// The echo of our own start is not echoed back; but once the peer answered the start with
/// differences, a later receipt that happens to equal the fingerprint we started with is news
/// for the peer (it never echoed that start), and is echoed.
#[test]
fn a_start_answered_with_differences_is_no_longer_awaiting_its_echo() {
    let (mut a, mut b) = peers_with(30);
    let (mut on_a, mut on_b) = (Session::new(), Session::new());
    on_a.start_reconcile(a.index());
    on_b.receive(on_a.next_frame(&mut a).expect("in memory").expect("start"), &mut b).expect("in memory");
    let echo = on_b.next_frame(&mut b).expect("in memory").expect("echo");
    assert_eq!(on_a.receive_answer(echo, &mut a).expect("in memory").agreed, Some(whole(&a)));
    assert!(!on_a.has_outgoing(), "our start's echo is not echoed");

    let (mut a, mut b) = peers_with(30);
    let (mut on_a, mut on_b) = (Session::new(), Session::new());
    let started = whole(&a);
    b.put(id(200), doc(200, 3));
    on_a.start_reconcile(a.index());
    on_b.receive(on_a.next_frame(&mut a).expect("in memory").expect("start"), &mut b).expect("in memory");
    let differences = on_b.next_frame(&mut b).expect("in memory").expect("B's differences");
    on_a.receive_answer(differences, &mut a).expect("in memory");
    while on_a.next_frame(&mut a).expect("in memory").is_some() {}
    b.remove(&id(200));
    assert_eq!(whole(&b), started);
    let at_a = on_a.receive_answer(receipt(&b), &mut a).expect("in memory");
    assert_eq!(at_a.agreed, Some(started));
    assert_eq!(
        on_a.next_frame(&mut a).expect("in memory").and_then(|echo| echo.ranges),
        receipt(&a).ranges,
        "echoed"
    );
}

/// The peer answers our start with differences, but a document it pushed crossed the start
/// and made them: its list of fingerprints, taken together, is our set now. That is agreement,
/// not a round that ends with nothing to say (which would leave everything pending until the
/// timer's next round).
#[test]
fn differences_that_a_crossing_push_made_agree() {
    let (mut a, mut b) = peers_with(300);
    let (mut on_a, mut on_b) = (Session::new(), Session::new());
    on_a.start_reconcile(a.index());
    b.put(id(300), doc(300, 3));
    on_b.receive(on_a.next_frame(&mut a).expect("in memory").expect("start"), &mut b).expect("in memory");
    let differences = on_b.next_frame(&mut b).expect("in memory").expect("B's differences");
    let ranges = differences.ranges.clone().expect("ranges");
    assert!(
        ranges.len() > 1
            && ranges.iter().all(|range| matches!(range.body, tillmesh_sync::RangeBody::Fingerprint(_))),
        "B answers with fingerprints of parts: {ranges:?}"
    );
    // B's push of the new document reaches A before B's answer.
    a.put(id(300), doc(300, 3));
    let at_a = on_a.receive_answer(differences, &mut a).expect("in memory");
    assert_eq!(at_a.agreed, Some(whole(&a)));
    assert_eq!(whole(&a), whole(&b));

    // The same list with a part that differs still is a difference to work out.
    let (mut a, mut b) = peers_with(300);
    let (mut on_a, mut on_b) = (Session::new(), Session::new());
    on_a.start_reconcile(a.index());
    b.put(id(300), doc(300, 3));
    on_b.receive(on_a.next_frame(&mut a).expect("in memory").expect("start"), &mut b).expect("in memory");
    let at_a = on_a
        .receive_answer(on_b.next_frame(&mut b).expect("in memory").expect("differences"), &mut a)
        .expect("in memory");
    assert_eq!(at_a.agreed, None);
    assert!(on_a.has_outgoing(), "A narrows the difference down");
}

/// A narrowing list whose parts all match by the time it arrives (the document that differed
/// reached the peer meanwhile) is answered with the peer's whole-set fingerprint: the side that
/// sent the list agrees on it, instead of both sides hearing nothing and waiting for the timer.
#[test]
fn a_narrowing_list_that_a_crossing_push_settled_is_answered_with_the_set() {
    let (mut a, mut b) = peers_with(300);
    let (mut on_a, mut on_b) = (Session::new(), Session::new());
    a.put(id(300), doc(300, 3));
    on_a.start_reconcile(a.index());
    on_b.receive(on_a.next_frame(&mut a).expect("in memory").expect("start"), &mut b).expect("in memory");
    let differences = on_b.next_frame(&mut b).expect("in memory").expect("B's differences");
    // A's push of the new document reaches B while B's differences travel.
    b.put(id(300), doc(300, 3));
    let at_a = on_a.receive_answer(differences, &mut a).expect("in memory");
    assert_eq!(at_a.agreed, None, "B's parts were computed without the document");
    let narrowing = on_a.next_frame(&mut a).expect("in memory").expect("A narrows the difference down");
    let ranges = narrowing.ranges.clone().expect("ranges");
    assert!(
        ranges.iter().any(|range| range.body == tillmesh_sync::RangeBody::Skip) && ranges.len() > 2,
        "parts that agreed skipped, the differing one split: {ranges:?}"
    );
    on_b.receive(narrowing, &mut b).expect("in memory");
    let answer = on_b.next_frame(&mut b).expect("in memory").expect("B answers though every part matches");
    assert_eq!(answer.ranges, receipt(&b).ranges, "with its whole-set fingerprint");
    let at_a = on_a.receive_answer(answer, &mut a).expect("in memory");
    assert_eq!(at_a.agreed, Some(whole(&a)), "A agrees");
}

/// A peer's receipt: its whole-set fingerprint as the only range of an answer.
fn receipt(docs: &MemoryDocuments) -> tillmesh_sync::Frame {
    tillmesh_sync::Frame {
        ranges: Some(tillmesh_sync::receipt(docs.index())),
        ..tillmesh_sync::Frame::default()
    }
}

fn whole(docs: &MemoryDocuments) -> tillmesh_sync::Fingerprint {
    docs.index().fingerprint(&tillmesh_sync::Bound::min(), &tillmesh_sync::Bound::Max)
}

/// An answer that names no set (an older peer's skip) vouches for none: a start of ours that
/// it might answer, or not, is never taken as agreed on its word.
#[test]
fn a_skip_agrees_on_nothing() {
    let (mut a, _) = peers_with(20);
    let mut on_a = Session::new();
    on_a.start_reconcile(a.index());
    let _ = on_a.next_frame(&mut a).expect("in memory");
    let skip = tillmesh_sync::Frame {
        ranges: Some(vec![tillmesh_sync::RangeMsg {
            upper: tillmesh_sync::Bound::Max,
            body: tillmesh_sync::RangeBody::Skip,
        }]),
        ..tillmesh_sync::Frame::default()
    };
    assert_eq!(on_a.receive(skip, &mut a).expect("in memory").agreed, None);
}

/// A real order document (as a till makes it), cloned under many ids: realistic sizes cheaply.
fn order_doc() -> tillmesh_core::OrderDoc {
    use tillmesh_core::{Amount, Currency, NewItem, NewOrder, OrderDoc, TillCode, Timestamp};
    let items = (0..3)
        .map(|n| NewItem {
            id: Uuid::from_u128(100 + n),
            sku: format!("SKU{n}"),
            name: format!("Dish number {n}"),
            quantity: tillmesh_core::Quantity::pieces(1 + n as i64),
            unit_price: Amount::from_minor(450 + n as i64),
        })
        .collect();
    let new = NewOrder {
        id: Uuid::from_u128(7),
        local_id: Uuid::from_u128(8),
        number: TillCode::parse("A").expect("code").order_number(1).to_string(),
        device_id: "till-A".into(),
        currency: Currency::parse("USD").expect("code"),
        tax_rate_bps: 825,
        items,
        notes: String::new(),
        created_at: Timestamp(1_704_067_200_000),
    };
    OrderDoc::create(new, ActorId::from([1; 16])).expect("valid order")
}

#[test]
fn ten_differences_in_ten_thousand_orders_cost_about_the_differences() {
    let mut order = order_doc();
    let mut a = MemoryDocuments::new();
    for n in 0..10_000 {
        a.put(id(n), order.automerge().clone());
    }
    let mut b = a.clone();
    let mut differing_bytes = 0;
    for n in (0..10_000).step_by(1_000) {
        let mut edited = order.fork(ActorId::from([9; 16]));
        edited
            .advance(tillmesh_core::OrderStatus::Sent, "till-B", tillmesh_core::Timestamp(1_704_067_300_000))
            .expect("advance");
        differing_bytes += edited.save().len();
        a.put(id(n), edited.automerge().clone());
    }
    let talk = converse(&mut a, &mut b);
    assert_same(&a, &b);
    println!("10 of 10,000 orders differ: {talk:?}, the 10 documents are {differing_bytes} bytes");
    assert!(talk.round_trips <= 6, "{talk:?}");
    assert!(talk.bytes <= 2 * differing_bytes, "{talk:?} vs {differing_bytes} bytes of documents");
    let mut b = a.clone();
    let talk = converse(&mut a, &mut b);
    println!("10,000 identical orders: {talk:?}");
    assert!(talk.round_trips <= 3 && talk.bytes <= 4_096, "{talk:?}");
}

/// A peer that holds nothing is sent every document whole, each read as its frame is built:
/// the sender holds their ids until then, not their bytes (115 MB for 100,000 orders), and its
/// first frame goes without every document being read first.
#[test]
fn whole_documents_are_read_as_their_frames_are_built() {
    let (a, _) = peers_with(5_000);
    let mut b = MemoryDocuments::new();
    let (mut on_a, mut on_b) = (Session::new(), Session::new());
    on_b.start_reconcile(Documents::index(&b));
    let start = on_b.next_frame(&mut b).expect("in memory").expect("B's start");
    let mut at_a = Probe::new(a);
    on_a.receive(start, &mut at_a).expect("in memory");
    assert!(on_a.has_outgoing());
    assert_eq!(at_a.saved, 0, "queued, not read yet");
    let mut frames = Vec::new();
    while let Some(frame) = on_a.next_frame(&mut at_a).expect("in memory") {
        frames.push(frame.docs.len());
        let ahead = usize::from(on_a.has_outgoing());
        assert_eq!(
            at_a.saved,
            frames.iter().sum::<usize>() + ahead,
            "read as they go (one that did not fit ahead)"
        );
        on_b.receive(frame, &mut b).expect("in memory");
    }
    assert!(frames.len() >= 3, "several frames: {frames:?}");
    assert_eq!(frames.iter().sum::<usize>(), 5_000);
    assert_eq!(at_a.saved, 5_000, "each document read once, in the frame it went in");
    assert_same(&at_a.docs, &b);
}

#[test]
fn an_empty_peer_receives_everything_whole() {
    let (mut a, _) = peers_with(2_000);
    let mut b = MemoryDocuments::new();
    let talk = converse(&mut a, &mut b);
    assert_same(&a, &b);
    assert!(talk.round_trips <= 3, "{talk:?}");
}

#[test]
fn refused_documents_change_nothing() {
    let mut a = MemoryDocuments::new();
    a.put(id(1), doc(1, 1));
    let mut b = MemoryDocuments::with_validator(|_, doc| {
        use automerge::ReadDoc;
        match doc.get(ROOT, "n") {
            Ok(Some(_)) => Err("not accepted here".into()),
            _ => Ok(()),
        }
    });
    converse(&mut a, &mut b);
    assert!(b.index().is_empty());
}

/// Documents named by the `n` their root holds (as a tillmesh store names them by their header),
/// counting how many whole documents were read.
struct Probe {
    docs: MemoryDocuments,
    saved: usize,
}

impl Probe {
    fn new(docs: MemoryDocuments) -> Probe {
        Probe { docs, saved: 0 }
    }
}

impl Documents for Probe {
    type Error = std::convert::Infallible;

    fn index(&self) -> &tillmesh_sync::Index {
        self.docs.index()
    }

    fn saved(&mut self, id: Uuid) -> Result<Option<Vec<u8>>, Self::Error> {
        self.saved += 1;
        self.docs.saved(id)
    }

    fn heads(&mut self, id: Uuid) -> Result<Option<Vec<automerge::ChangeHash>>, Self::Error> {
        self.docs.heads(id)
    }

    fn load(&mut self, id: Uuid) -> Result<Option<AutoCommit>, Self::Error> {
        self.docs.load(id)
    }

    fn store(
        &mut self,
        id: Uuid,
        doc: AutoCommit,
        saved: Option<Vec<u8>>,
    ) -> Result<tillmesh_sync::Verdict, Self::Error> {
        self.docs.store(id, doc, saved)
    }

    fn name_whole(&mut self, bytes: &[u8]) -> Result<Result<Uuid, String>, Self::Error> {
        use automerge::ReadDoc;
        let doc = tillmesh_untrusted::load_document(bytes).map_err(|error| error.to_string());
        Ok(doc.and_then(|doc| match doc.get(ROOT, "n") {
            Ok(Some((automerge::Value::Scalar(n), _))) => {
                n.as_u64().map(id).ok_or_else(|| "no n".to_string())
            }
            _ => Err("no n".to_string()),
        }))
    }

    fn sync_state(&mut self, id: Uuid) -> Result<Option<automerge::sync::State>, Self::Error> {
        self.docs.sync_state(id)
    }
}

/// Whole documents of a compact frame (sent without their ids) are kept under the id the store
/// reads from each; a store that cannot name them refuses them, and keeps nothing.
#[test]
fn whole_documents_without_ids_are_kept_under_the_id_they_name() {
    let mut a = MemoryDocuments::new();
    let mut on_a = Session::new();
    for n in 1..=3 {
        a.put(id(n), doc(n, 1));
    }
    // a's answer to an empty peer's start carries its documents whole.
    let mut b = MemoryDocuments::new();
    let mut on_b = Session::new();
    on_b.start_reconcile(b.index());
    on_a.receive(on_b.next_frame(&mut b).expect("in memory").expect("a start"), &mut a).expect("in memory");
    let whole = on_a.next_frame(&mut a).expect("in memory").expect("documents");
    assert_eq!(whole.docs.len(), 3, "{whole:?}");
    let compacted =
        tillmesh_sync::decode(&tillmesh_sync::compact(&encode(&whole)).expect("a frame")).expect("decodes");

    let refused = Session::new().receive(compacted.clone(), &mut b).expect("in memory");
    assert_eq!(refused.refused.len(), 3);
    assert!(refused.changed.is_empty() && b.index().is_empty());

    let mut named = Probe::new(MemoryDocuments::new());
    let kept = Session::new().receive(compacted, &mut named).expect("in memory");
    assert!(kept.refused.is_empty(), "{:?}", kept.refused);
    assert_same(&a, &named.docs);
}

/// Bytes that crash or exhaust automerge's own loader, sent as a whole document or as a sync
/// message, are refused one by one with their bytes (to keep aside); the session goes on.
#[test]
fn documents_that_crash_automerge_are_refused_not_loaded() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/crashers/document_receive");
    let mut crashers: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .expect("crashers folder")
        .map(|entry| std::fs::read(entry.expect("entry").path()).expect("read"))
        .collect();
    crashers.sort();
    assert!(crashers.len() >= 3);
    let mut docs = MemoryDocuments::new();
    let mut session = Session::new();
    let mut messages = Vec::new();
    for (n, bytes) in crashers.iter().enumerate() {
        let id = uuid::Uuid::from_u128(n as u128 + 1);
        messages.push(tillmesh_sync::DocMsg { id, body: tillmesh_sync::DocBody::Whole(bytes.clone()) });
        messages.push(tillmesh_sync::DocMsg { id, body: tillmesh_sync::DocBody::Sync(bytes.clone()) });
    }
    let frame = tillmesh_sync::Frame { credentials: None, ranges: None, docs: messages };
    let received = session.receive(frame, &mut docs).expect("memory documents never fail");
    assert!(received.changed.is_empty());
    assert_eq!(received.refused.len(), crashers.len() * 2, "{:?}", received.refused);
    for refusal in &received.refused {
        assert!(crashers.contains(&refusal.bytes), "the refused bytes are reported as sent");
    }
    assert!(docs.index().is_empty(), "nothing was stored");
}

/// A live session whose frame carrying a change was lost: Automerge alone never sends that
/// change again (its sync state counts it as sent), so the peer asks for it by hash in every
/// answer and the two talk forever. The session sends again whatever the peer asks for.
#[test]
fn a_change_whose_frame_was_lost_is_sent_again_when_asked_for() {
    let (mut a, mut b) = peers_with(3);
    let (mut on_a, mut on_b) = (Session::new(), Session::new());
    let edited = id(1);
    let edit = |docs: &mut MemoryDocuments, actor: u8, value: &str| {
        let mut doc = docs.get(&edited).expect("shared").clone().with_actor(ActorId::from([actor; 16]));
        doc.put(ROOT, "note", value).expect("put");
        docs.put(edited, doc);
    };
    // A first edit syncs: both sessions now know what the other holds.
    edit(&mut a, 7, "first from a");
    on_a.push_change(edited, &mut a).expect("in memory");
    talk(&mut a, &mut on_a, &mut b, &mut on_b);
    assert_same(&a, &b);
    // The frame with a's second edit is lost.
    edit(&mut a, 7, "second from a");
    on_a.push_change(edited, &mut a).expect("in memory");
    let lost = on_a.next_frame(&mut a).expect("in memory").expect("a's change goes out");
    assert_eq!(lost.docs.len(), 1);
    // b edits the same order; the two talk until neither has more to say.
    edit(&mut b, 8, "from b");
    on_b.push_change(edited, &mut b).expect("in memory");
    talk(&mut a, &mut on_a, &mut b, &mut on_b);
    assert_same(&a, &b);
}

/// A start waits for a request of ours: an answer carries the range lists that answer the
/// peer's and documents, never our start (the peer would take a whole-set fingerprint in an
/// answer for its receipt, differing sets would be left alone, and the start never answered).
#[test]
fn a_start_goes_in_a_request_never_in_an_answer() {
    let (mut a, mut b) = peers_with(20);
    b.put(id(99_999), doc(99_999, 7));
    let (mut on_a, mut on_b) = (Session::new(), Session::new());
    // B starts; A starts too before B's start arrives, and answers it.
    on_b.start_reconcile(b.index());
    on_a.start_reconcile(a.index());
    on_a.receive(on_b.next_frame(&mut b).expect("in memory").expect("B's start"), &mut a).expect("in memory");
    let answer = on_a.next_answer(&mut a).expect("in memory").expect("A's differences for B");
    let whole = a.index().fingerprint(&tillmesh_sync::Bound::min(), &tillmesh_sync::Bound::Max);
    let single_fingerprint = |frame: &tillmesh_sync::Frame| matches!(frame.ranges.as_deref(), Some([tillmesh_sync::RangeMsg { body: tillmesh_sync::RangeBody::Fingerprint(f), .. }]) if *f == whole);
    assert!(!single_fingerprint(&answer), "the answer is not A's start: {answer:?}");
    assert!(on_a.has_outgoing(), "A's start still waits");
    assert!(
        on_a.next_answer(&mut a).expect("in memory").is_none(),
        "nothing but the start waits, and it is not for an answer"
    );
    let request = on_a.next_frame(&mut a).expect("in memory").expect("A's start, in a request");
    assert!(single_fingerprint(&request));
    // Carried on, both converge.
    on_b.receive_answer(answer, &mut b).expect("in memory");
    on_b.receive(request, &mut b).expect("in memory");
    talk(&mut a, &mut on_a, &mut b, &mut on_b);
    assert_eq!(
        a.index().fingerprint(&tillmesh_sync::Bound::min(), &tillmesh_sync::Bound::Max),
        b.index().fingerprint(&tillmesh_sync::Bound::min(), &tillmesh_sync::Bound::Max)
    );
}
