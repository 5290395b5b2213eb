//! The mesh core on its own, event by event: admission, frames held before it, revocation,
//! one request in flight, greeting again after a lost greeting, relaying and marking synced (on
//! agreement, on a receipt, after a confirming round).
//! (The simulator runs the same core under faults across thousands of seeds.)

use std::convert::Infallible;

use automerge::{AutoCommit, ROOT, transaction::Transactable};
use tillmesh_core::{HqSigningKey, RosterEntry, SignedRosterEntry, TillCode, Timestamp};
use tillmesh_mesh::{Action, CoreConfig, Event, Introductions, KeptWrites, LocalWrite, MeshCore, Storage};
use tillmesh_sync::{DocId, Documents, Frame, Index, MemoryDocuments, Refusal, decode, encode};
use uuid::Uuid;

/// A store in memory that keeps what the core asks it to.
#[derive(Debug, Default)]
struct Memory {
    docs: MemoryDocuments,
    roster: Vec<SignedRosterEntry>,
    introduced: Introductions,
    marked: Vec<String>,
    /// A document this store refuses whenever it is sent.
    refuses: Option<DocId>,
    /// Writes of this node that the index counts and the core has not taken.
    local_writes: KeptWrites,
}

impl Storage for Memory {
    type Error = Infallible;
    type Docs<'s> = Accepting<'s>;

    fn documents<'s>(&'s mut self, _remote: &'s str) -> Accepting<'s> {
        Accepting { docs: &mut self.docs, accepted: Vec::new(), refuses: self.refuses }
    }

    fn commit(docs: Accepting<'_>) -> Result<Vec<DocId>, Infallible> {
        Ok(docs.accepted)
    }

    fn index(&self) -> &Index {
        self.docs.index()
    }

    fn take_local_writes(&mut self) -> KeptWrites {
        std::mem::take(&mut self.local_writes)
    }

    fn mark_synced(&mut self, remote: &str, _at: Timestamp) -> Result<(), Infallible> {
        self.marked.push(remote.to_string());
        Ok(())
    }

    fn refused(&mut self, _: &str, _: Vec<Refusal>, _: usize, _: Timestamp) -> Result<(), Infallible> {
        Ok(())
    }

    fn register_remote(&mut self, _remote: &str) -> Result<(), Infallible> {
        Ok(())
    }

    fn forget_remotes(&mut self, remotes: Vec<String>) -> Result<Vec<String>, Infallible> {
        Ok(remotes)
    }

    fn save_roster(&mut self, entries: Vec<SignedRosterEntry>) -> Result<(), Infallible> {
        self.roster = entries;
        Ok(())
    }

    fn save_introductions(&mut self, introduced: &Introductions) -> Result<(), Infallible> {
        self.introduced = introduced.clone();
        Ok(())
    }

    fn save_sync_states(&mut self, _: &str, _: Vec<(DocId, Vec<u8>)>) -> Result<(), Infallible> {
        Ok(())
    }
}

const NOW: Timestamp = Timestamp(1_700_000_000_000);

struct Shop {
    hq: HqSigningKey,
}

impl Shop {
    fn new() -> Shop {
        Shop { hq: HqSigningKey::from_bytes(&[7; 32]) }
    }

    fn entry(&self, peer: u32, code: &str, revoked: bool, version: u64) -> SignedRosterEntry {
        self.hq.sign_roster(RosterEntry {
            peer_id: peer.to_string(),
            till_code: TillCode::parse(code).expect("code"),
            revoked,
            version,
            issued_at: NOW,
        })
    }

    /// Peer `peer` (till `code`), knowing the given roster.
    fn core(&self, peer: u32, code: &str, roster: Vec<SignedRosterEntry>) -> MeshCore<u32, u64> {
        self.restarted(peer, code, &Memory { roster, ..Memory::default() })
    }

    /// Peer `peer` (till `code`) started on what `store` kept: its roster and introductions.
    fn restarted(&self, peer: u32, code: &str, store: &Memory) -> MeshCore<u32, u64> {
        MeshCore::new(CoreConfig {
            local: peer,
            hq: self.hq.public_key(),
            own_entry: self.entry(peer, code, false, 1),
            roster: store.roster.clone(),
            held_frames_max: 2,
            introduced: store.introduced.clone(),
        })
    }
}

fn handle(
    core: &mut MeshCore<u32, u64>,
    store: &mut Memory,
    event: Event<u32, u64>,
) -> Vec<Action<u32, u64>> {
    let step = core.handle(NOW, event, store);
    assert!(step.failed.is_none());
    step.actions
}

/// The frames sent (requests) and the answers given, decoded.
fn sent(actions: &[Action<u32, u64>]) -> Vec<(u32, Frame)> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Send { peer, frame } => Some((*peer, decode(frame).expect("frame"))),
            _ => None,
        })
        .collect()
}

fn answers(actions: &[Action<u32, u64>]) -> Vec<(u64, Frame)> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Respond { reply, frame } => Some((*reply, decode(frame).expect("frame"))),
            _ => None,
        })
        .collect()
}

fn blocked(actions: &[Action<u32, u64>]) -> Vec<u32> {
    actions
        .iter()
        .filter_map(|action| if let Action::Block(peer) = action { Some(*peer) } else { None })
        .collect()
}

/// Greets `core` as `peer` would: its hello, answered.
fn greet(
    core: &mut MeshCore<u32, u64>,
    store: &mut Memory,
    hello: Frame,
    peer: u32,
) -> Vec<Action<u32, u64>> {
    handle(core, store, Event::Request { peer, frame: encode(&hello), reply: 1 })
}

/// Connects A (1) and B (2), which meet for the first time (neither holds the other's entry):
/// returns both cores, stores, after both admitted each other on their greetings.
fn pair(shop: &Shop) -> (MeshCore<u32, u64>, Memory, MeshCore<u32, u64>, Memory) {
    let (mut a, mut b) = (shop.core(1, "A", Vec::new()), shop.core(2, "B", Vec::new()));
    let (mut at_a, mut at_b) = (Memory::default(), Memory::default());
    let hello_a = sent(&handle(&mut a, &mut at_a, Event::Connected(2))).remove(0).1;
    let hello_b = sent(&handle(&mut b, &mut at_b, Event::Connected(1))).remove(0).1;
    greet(&mut a, &mut at_a, hello_b, 2);
    greet(&mut b, &mut at_b, hello_a, 1);
    assert_eq!(a.admitted(), vec!["till-B".to_string()]);
    assert_eq!(b.admitted(), vec!["till-A".to_string()]);
    (a, at_a, b, at_b)
}

#[test]
fn a_peer_is_admitted_only_on_its_own_signed_unrevoked_entry() {
    let shop = Shop::new();
    let mut store = Memory::default();
    let mut core = shop.core(1, "A", vec![shop.entry(2, "B", false, 1)]);
    handle(&mut core, &mut store, Event::Connected(3));
    // Peer 3 shows B's entry: not its own.
    let credentials =
        serde_json::to_vec(&serde_json::json!({ "entries": [shop.entry(2, "B", false, 1)] })).expect("json");
    let hello = Frame { credentials: Some(credentials), ..Frame::default() };
    let actions = greet(&mut core, &mut store, hello, 3);
    assert_eq!(blocked(&actions), vec![3]);
    assert!(answers(&actions).is_empty(), "a refused peer gets no answer");
    // An entry signed by another key.
    let stranger = Shop { hq: HqSigningKey::from_bytes(&[9; 32]) };
    handle(&mut core, &mut store, Event::Connected(4));
    let credentials =
        serde_json::to_vec(&serde_json::json!({ "entries": [stranger.entry(4, "D", false, 1)] }))
            .expect("json");
    let actions =
        greet(&mut core, &mut store, Frame { credentials: Some(credentials), ..Frame::default() }, 4);
    assert_eq!(blocked(&actions), vec![4]);
    assert!(core.admitted().is_empty());
}

#[test]
fn frames_before_admission_are_held_then_answered_and_a_flood_is_blocked() {
    let shop = Shop::new();
    let mut store = Memory::default();
    // B's entry is not on A's roster yet: it comes with B's greeting.
    let mut core = shop.core(1, "A", Vec::new());
    handle(&mut core, &mut store, Event::Connected(2));
    let plain = encode(&Frame::default());
    for reply in 10..12 {
        let actions = handle(&mut core, &mut store, Event::Request { peer: 2, frame: plain.clone(), reply });
        assert!(actions.is_empty(), "held, unanswered: {actions:?}");
    }
    // B's real greeting admits it; the held frames are answered after it.
    let mut b = shop.core(2, "B", Vec::new());
    let hello = sent(&handle(&mut b, &mut Memory::default(), Event::Connected(1))).remove(0).1;
    let actions = handle(&mut core, &mut store, Event::Request { peer: 2, frame: encode(&hello), reply: 12 });
    let replies: Vec<u64> = answers(&actions).into_iter().map(|(reply, _)| reply).collect();
    assert_eq!(replies, vec![12, 10, 11]);
    // Another peer floods before admission: blocked at the third frame (limit 2).
    handle(&mut core, &mut store, Event::Connected(5));
    for reply in 20..22 {
        assert!(
            blocked(&handle(&mut core, &mut store, Event::Request { peer: 5, frame: plain.clone(), reply }))
                .is_empty()
        );
    }
    let actions = handle(&mut core, &mut store, Event::Request { peer: 5, frame: plain.clone(), reply: 22 });
    assert_eq!(blocked(&actions), vec![5]);
}

#[test]
fn a_revocation_blocks_the_peer_and_travels_on() {
    let shop = Shop::new();
    let (mut a, mut at_a, _, _) = pair(&shop);
    let actions = handle(&mut a, &mut at_a, Event::RosterEntry(shop.entry(2, "B", true, 2)));
    assert_eq!(blocked(&actions), vec![2]);
    assert!(a.admitted().is_empty());
    assert!(
        at_a.roster.iter().any(|entry| entry.entry.peer_id == "2" && entry.entry.revoked),
        "kept for the next start"
    );
    // B comes back on a new connection with its old entry: refused.
    handle(&mut a, &mut at_a, Event::Connected(2));
    let credentials =
        serde_json::to_vec(&serde_json::json!({ "entries": [shop.entry(2, "B", false, 1)] })).expect("json");
    let actions = greet(&mut a, &mut at_a, Frame { credentials: Some(credentials), ..Frame::default() }, 2);
    assert_eq!(blocked(&actions), vec![2]);
}

#[test]
fn two_frames_of_documents_in_flight_at_most_and_a_lost_greeting_is_sent_again() {
    let shop = Shop::new();
    let (mut a, mut at_a, _, _) = pair(&shop);
    let write = |n: u128, store: &mut Memory| {
        let mut doc = AutoCommit::new();
        doc.put(ROOT, "n", 1).expect("put");
        store.docs.put(Uuid::from_u128(n), doc);
        Event::LocalWrites(vec![LocalWrite { id: Uuid::from_u128(n), created: true }])
    };
    // A's greeting to B is still unanswered: the first write waits behind it.
    let first = write(1, &mut at_a);
    assert!(sent(&handle(&mut a, &mut at_a, first)).is_empty());
    let actions = handle(&mut a, &mut at_a, Event::Response { peer: 2, frame: encode(&Frame::default()) });
    let first = sent(&actions);
    assert_eq!(first.len(), 1, "the write goes once the greeting is answered");
    assert!(first[0].1.ranges.is_some(), "with the reconciliation that admission started");
    // Nothing follows a range list before its answer.
    let second = write(2, &mut at_a);
    assert!(sent(&handle(&mut a, &mut at_a, second)).is_empty(), "behind the range list");
    let actions = handle(&mut a, &mut at_a, Event::Response { peer: 2, frame: encode(&Frame::default()) });
    assert_eq!(sent(&actions).len(), 1, "the second goes once the range list is answered");
    // Frames of documents alone follow one another: two may await their answers.
    let third = write(3, &mut at_a);
    assert_eq!(sent(&handle(&mut a, &mut at_a, third)).len(), 1, "a second frame of documents goes");
    let fourth = write(4, &mut at_a);
    assert!(sent(&handle(&mut a, &mut at_a, fourth)).is_empty(), "two requests in flight at most");
    let actions = handle(&mut a, &mut at_a, Event::Response { peer: 2, frame: encode(&Frame::default()) });
    assert_eq!(sent(&actions).len(), 1, "the fourth goes once the second is answered");
    // A range list waits for every answer before it.
    assert!(sent(&handle(&mut a, &mut at_a, Event::Reconcile)).is_empty(), "two in flight");
    let actions = handle(&mut a, &mut at_a, Event::Response { peer: 2, frame: encode(&Frame::default()) });
    assert!(sent(&actions).is_empty(), "one still in flight");
    let actions = handle(&mut a, &mut at_a, Event::Response { peer: 2, frame: encode(&Frame::default()) });
    let reconciliation = sent(&actions);
    assert_eq!(reconciliation.len(), 1);
    assert!(reconciliation[0].1.ranges.is_some() && reconciliation[0].1.docs.is_empty());

    // A peer whose greeting was lost is greeted again when it fails.
    let mut c = shop.core(3, "C", Vec::new());
    let mut at_c = Memory::default();
    assert_eq!(sent(&handle(&mut c, &mut at_c, Event::Connected(1))).len(), 1);
    let again = sent(&handle(&mut c, &mut at_c, Event::RequestFailed(1)));
    assert_eq!(again.len(), 1);
    assert!(again[0].1.credentials.is_some(), "the greeting carries the credentials");
}

#[test]
fn documents_one_peer_brings_are_relayed_and_agreement_marks_synced() {
    let shop = Shop::new();
    // First contact: each peer's entry comes with its greeting.
    let mut hub = shop.core(2, "B", Vec::new());
    let mut at_hub = Memory::default();
    for (peer, code) in [(1, "A"), (3, "C")] {
        handle(&mut hub, &mut at_hub, Event::Connected(peer));
        let mut other = shop.core(peer, code, Vec::new());
        let hello = sent(&handle(&mut other, &mut Memory::default(), Event::Connected(2))).remove(0).1;
        greet(&mut hub, &mut at_hub, hello, peer);
        handle(&mut hub, &mut at_hub, Event::Response { peer, frame: encode(&Frame::default()) });
    }
    // A sends a new document whole: the hub keeps it and passes it on to C.
    let mut doc = AutoCommit::new();
    doc.put(ROOT, "table", 4).expect("put");
    let id = Uuid::from_u128(42);
    let mut from_a = MemoryDocuments::new();
    from_a.put(id, doc);
    let mut session = tillmesh_sync::Session::new();
    session.push_new(id);
    let frame = session.next_frame(&mut from_a).expect("memory").expect("frame");
    let actions = handle(&mut hub, &mut at_hub, Event::Request { peer: 1, frame: encode(&frame), reply: 7 });
    assert_eq!(answers(&actions).len(), 1);
    // C's channel is busy with the hub's reconciliation: the relay waits for its answer.
    assert!(sent(&actions).iter().all(|(peer, _)| *peer != 3));
    let actions =
        handle(&mut hub, &mut at_hub, Event::Response { peer: 3, frame: encode(&Frame::default()) });
    let to_c: Vec<Frame> =
        sent(&actions).into_iter().filter(|(peer, _)| *peer == 3).map(|(_, f)| f).collect();
    assert_eq!(to_c.len(), 1, "relayed to C: {actions:?}");
    assert!(to_c[0].docs.iter().any(|doc| doc.id == id));
    // C answers a reconciliation with its fingerprint of the same set: the hub marks it synced.
    let mut at_c = MemoryDocuments::new();
    at_c.put(id, at_hub.docs.get(&id).expect("kept").clone());
    let mut c_session = tillmesh_sync::Session::new();
    c_session.start_reconcile(Documents::index(&at_c));
    let start = c_session.next_frame(&mut at_c).expect("memory").expect("start");
    handle(&mut hub, &mut at_hub, Event::Response { peer: 3, frame: encode(&Frame::default()) });
    handle(&mut hub, &mut at_hub, Event::Request { peer: 3, frame: encode(&start), reply: 8 });
    assert_eq!(at_hub.marked, vec!["till-C".to_string()]);
}

/// A request from `from` delivered to `to` and its answer delivered back: the actions of `from`
/// on the answer, the answer, and the requests `to` sent meanwhile.
fn exchange(
    (from, at_from, from_id): (&mut MeshCore<u32, u64>, &mut Memory, u32),
    (to, at_to, to_id): (&mut MeshCore<u32, u64>, &mut Memory, u32),
    request: Frame,
) -> (Vec<Action<u32, u64>>, Frame, Vec<Frame>) {
    let at_to_actions =
        handle(to, at_to, Event::Request { peer: from_id, frame: encode(&request), reply: 9 });
    let (_, answer) = answers(&at_to_actions).remove(0);
    let actions = handle(from, at_from, Event::Response { peer: to_id, frame: encode(&answer) });
    (actions, answer, sent(&at_to_actions).into_iter().map(|(_, frame)| frame).collect())
}

/// Carries A's (1) and B's (2) requests and their answers until neither sends more: how many
/// exchanges that took.
fn until_quiet(
    (a, at_a): (&mut MeshCore<u32, u64>, &mut Memory),
    (b, at_b): (&mut MeshCore<u32, u64>, &mut Memory),
    mut requests: Vec<(u32, Frame)>,
) -> usize {
    let mut exchanges = 0;
    while let Some((from, request)) = requests.pop() {
        exchanges += 1;
        assert!(exchanges < 50, "no end");
        let (actions, _, theirs) = if from == 1 {
            exchange((&mut *a, &mut *at_a, 1), (&mut *b, &mut *at_b, 2), request)
        } else {
            exchange((&mut *b, &mut *at_b, 2), (&mut *a, &mut *at_a, 1), request)
        };
        requests.extend(sent(&actions).into_iter().map(|(_, frame)| (from, frame)));
        requests.extend(theirs.into_iter().map(|frame| (3 - from, frame)));
    }
    exchanges
}

/// A and B admitted, their greetings answered and their first reconciliation over (both empty).
fn settled_pair(shop: &Shop) -> (MeshCore<u32, u64>, Memory, MeshCore<u32, u64>, Memory) {
    let (mut a, mut at_a, mut b, mut at_b) = pair(shop);
    handle(&mut b, &mut at_b, Event::Response { peer: 1, frame: encode(&Frame::default()) });
    let start =
        sent(&handle(&mut a, &mut at_a, Event::Response { peer: 2, frame: encode(&Frame::default()) }));
    until_quiet((&mut a, &mut at_a), (&mut b, &mut at_b), vec![(1, start[0].1.clone())]);
    assert_eq!((at_a.marked.len(), at_b.marked.len()), (1, 1), "the first round agrees");
    (a, at_a, b, at_b)
}

fn order(n: i64) -> AutoCommit {
    let mut doc = AutoCommit::new();
    doc.put(ROOT, "table", n).expect("put");
    doc
}

/// The one frame a core sends on the local write of a new document `id`.
fn pushed(core: &mut MeshCore<u32, u64>, store: &mut Memory, id: Uuid) -> Frame {
    let mut frames = sent(&handle(core, store, Event::LocalWrites(vec![LocalWrite { id, created: true }])));
    assert_eq!(frames.len(), 1, "one push: {frames:?}");
    frames.remove(0).1
}

#[test]
fn a_pushed_document_is_agreed_on_both_sides_in_its_one_exchange() {
    let shop = Shop::new();
    let (mut a, mut at_a, mut b, mut at_b) = settled_pair(&shop);
    for n in 1..=3 {
        let id = Uuid::from_u128(n);
        at_a.docs.put(id, order(n as i64));
        let push = pushed(&mut a, &mut at_a, id);
        assert_eq!(
            push.ranges,
            Some(tillmesh_sync::receipt(Documents::index(&at_a.docs))),
            "the push carries A's fingerprint"
        );
        let (actions, answer, _) = exchange((&mut a, &mut at_a, 1), (&mut b, &mut at_b, 2), push);
        assert_eq!(answer.ranges, Some(tillmesh_sync::receipt(Documents::index(&at_b.docs))), "B agrees");
        assert!(at_b.docs.get(&id).is_some());
        assert_eq!(at_b.marked.len(), 1 + n as usize, "B marks A synced on the push's fingerprint");
        assert_eq!(at_a.marked.len(), 1 + n as usize, "A marks B synced on B's answer");
        assert!(sent(&actions).is_empty(), "no echo, no confirming round: {actions:?}");
    }
    // A writes again before B's answer comes: B agreed with the set A had when it pushed, which
    // marks nothing on A but tells it that B holds all it sent. What differs is the newer write,
    // whose own push (its event comes next) carries A's fingerprint: no confirming round.
    let (first, second) = (Uuid::from_u128(10), Uuid::from_u128(11));
    at_a.docs.put(first, order(10));
    let push = pushed(&mut a, &mut at_a, first);
    at_a.docs.put(second, order(11));
    let marked = (at_a.marked.len(), at_b.marked.len());
    let (actions, _, _) = exchange((&mut a, &mut at_a, 1), (&mut b, &mut at_b, 2), push);
    assert_eq!(at_a.marked.len(), marked.0, "an answer of another set marks nothing");
    assert_eq!(at_b.marked.len(), marked.1 + 1, "B held A's set as A pushed it");
    assert!(sent(&actions).is_empty(), "no confirming round: {actions:?}");
    let push = pushed(&mut a, &mut at_a, second);
    let (actions, _, _) = exchange((&mut a, &mut at_a, 1), (&mut b, &mut at_b, 2), push);
    assert!(sent(&actions).is_empty(), "nothing more: {actions:?}");
    assert!(at_b.docs.get(&second).is_some());
    assert_eq!(at_a.marked.len(), marked.0 + 1, "A marks B synced once B holds its set");
    assert_eq!(at_b.marked.len(), marked.1 + 2, "and B too, on the push's fingerprint");

    // B's answer is of a set A never pushed (B had written a document of its own, not pushed
    // yet): it vouches for nothing A sent, and once the exchange is over A confirms with a round
    // of its own, which brings each side what the other lacks.
    let (third, theirs) = (Uuid::from_u128(12), Uuid::from_u128(13));
    at_a.docs.put(third, order(12));
    let push = pushed(&mut a, &mut at_a, third);
    at_b.docs.put(theirs, order(13));
    let marked = (at_a.marked.len(), at_b.marked.len());
    let (actions, _, _) = exchange((&mut a, &mut at_a, 1), (&mut b, &mut at_b, 2), push);
    assert_eq!(at_a.marked.len(), marked.0);
    let round = sent(&actions);
    assert_eq!(round.len(), 1, "a confirming round: {actions:?}");
    until_quiet((&mut a, &mut at_a), (&mut b, &mut at_b), vec![(1, round[0].1.clone())]);
    assert!(at_a.docs.get(&theirs).is_some(), "the round brought A B's document");
    assert_eq!(at_a.marked.len(), marked.0 + 1, "both agree");
}

/// A receipt that agrees though A's frame carried no fingerprint for B to agree on: B does not
/// know, so A tells it with a start of its own, which B agrees on too.
#[test]
fn an_agreeing_receipt_its_giver_cannot_know_of_is_told() {
    let shop = Shop::new();
    let (mut a, mut at_a, mut b, mut at_b) = settled_pair(&shop);
    let (id, doc) = (Uuid::from_u128(21), order(21));
    at_a.docs.put(id, doc.clone());
    at_b.docs.put(id, doc);
    let marked = (at_a.marked.len(), at_b.marked.len());
    let answer =
        Frame { ranges: Some(tillmesh_sync::receipt(Documents::index(&at_b.docs))), ..Frame::default() };
    let actions = handle(&mut a, &mut at_a, Event::Response { peer: 2, frame: encode(&answer) });
    assert_eq!(at_a.marked.len(), marked.0 + 1, "A agrees on B's receipt");
    let told = sent(&actions);
    assert_eq!(told.len(), 1, "and tells B: {actions:?}");
    until_quiet((&mut a, &mut at_a), (&mut b, &mut at_b), vec![(1, told[0].1.clone())]);
    assert_eq!(at_b.marked.len(), marked.1 + 1, "B agrees too");

    // A receipt equal to the fingerprint A's push carried: B agreed on it itself, nothing to tell.
    let id = Uuid::from_u128(22);
    at_a.docs.put(id, order(22));
    let push = pushed(&mut a, &mut at_a, id);
    let (actions, _, _) = exchange((&mut a, &mut at_a, 1), (&mut b, &mut at_b, 2), push);
    assert!(sent(&actions).is_empty(), "{actions:?}");
}

#[test]
fn documents_sent_in_an_answer_are_confirmed_by_a_round_once_the_exchange_is_over() {
    let shop = Shop::new();
    let (mut a, mut at_a, mut b, mut at_b) = settled_pair(&shop);
    // A holds a document B lacks (written while they were apart): B's reconciliation finds it,
    // and A's answers carry it.
    let id = Uuid::from_u128(7);
    at_a.docs.put(id, order(7));
    let marked = (at_a.marked.len(), at_b.marked.len());
    let b_round = sent(&handle(&mut b, &mut at_b, Event::Reconcile)).remove(0).1;
    let exchanges = until_quiet((&mut a, &mut at_a), (&mut b, &mut at_b), vec![(2, b_round)]);
    assert!(at_b.docs.get(&id).is_some(), "B has the document");
    assert_eq!(
        (at_a.marked.len(), at_b.marked.len()),
        (marked.0 + 1, marked.1 + 1),
        "A's confirming round, once its answer had carried the document, agrees on both sides \
         ({exchanges} exchanges)"
    );
}

/// A write the store holds when a step begins is pushed in that step, before anything else: a
/// push's fingerprint never counts a write that no push carries. Here A writes again while its
/// last push awaits B's answer; the step that takes the answer takes the write too, its push
/// carries A's fingerprint with it, and B agrees on it in the one exchange: no range list goes
/// either way. (Told only by the write's own event, coming after, the other push's fingerprint
/// would count it, and B would answer that with differences: over 100,000 orders, a round of
/// range lists for every order taken while the previous one travelled.)
#[test]
fn a_write_the_store_holds_is_pushed_in_the_step_that_sees_it() {
    let shop = Shop::new();
    let (mut a, mut at_a, mut b, mut at_b) = settled_pair(&shop);
    let write = |store: &mut Memory, n: u128| {
        let id = Uuid::from_u128(n);
        store.docs.put(id, order(n as i64));
        store.local_writes.writes.push(LocalWrite { id, created: true });
        id
    };
    let marked = (at_a.marked.len(), at_b.marked.len());
    let first = write(&mut at_a, 31);
    let push = sent(&handle(&mut a, &mut at_a, Event::LocalWrites(Vec::new())));
    assert_eq!(push.len(), 1, "the write the store held is pushed: {push:?}");
    let first_push = push[0].1.clone();
    let second = write(&mut at_a, 32);
    let at_b_actions =
        handle(&mut b, &mut at_b, Event::Request { peer: 1, frame: encode(&first_push), reply: 9 });
    let (_, answer) = answers(&at_b_actions).remove(0);
    let actions = handle(&mut a, &mut at_a, Event::Response { peer: 2, frame: encode(&answer) });
    let frames = sent(&actions);
    assert_eq!(frames.len(), 1, "the second write goes with B's answer taken: {actions:?}");
    let (_, second_push) = &frames[0];
    assert_eq!(second_push.docs.iter().map(|doc| doc.id).collect::<Vec<_>>(), vec![second]);
    assert_eq!(second_push.ranges, Some(tillmesh_sync::receipt(Documents::index(&at_a.docs))));
    let (actions, answer, theirs) =
        exchange((&mut a, &mut at_a, 1), (&mut b, &mut at_b, 2), second_push.clone());
    assert_eq!(answer.ranges, Some(tillmesh_sync::receipt(Documents::index(&at_b.docs))), "B agrees");
    assert!(sent(&actions).is_empty() && theirs.is_empty(), "nothing more: {actions:?} {theirs:?}");
    assert!(at_b.docs.get(&first).is_some() && at_b.docs.get(&second).is_some());
    assert_eq!(at_a.marked.len(), marked.0 + 1, "A marks B synced on B's last answer");
    assert_eq!(at_b.marked.len(), marked.1 + 2, "B agreed on each push's fingerprint");
    assert_eq!(at_a.local_writes, KeptWrites::default(), "every write taken");
}

/// Writes the store dropped (more came than it keeps between two steps) are found by a
/// reconciliation with every peer, which the core starts in the step that learns of it.
#[test]
fn writes_the_store_dropped_are_found_by_a_reconciliation() {
    let shop = Shop::new();
    let (mut a, mut at_a, mut b, mut at_b) = settled_pair(&shop);
    let id = Uuid::from_u128(41);
    at_a.docs.put(id, order(41));
    at_a.local_writes.dropped = true;
    let marked = (at_a.marked.len(), at_b.marked.len());
    let start = sent(&handle(&mut a, &mut at_a, Event::LocalWrites(Vec::new())));
    assert_eq!(start.len(), 1, "a reconciliation starts: {start:?}");
    assert!(start[0].1.docs.is_empty() && start[0].1.ranges.is_some());
    until_quiet((&mut a, &mut at_a), (&mut b, &mut at_b), vec![(1, start[0].1.clone())]);
    assert!(at_b.docs.get(&id).is_some(), "B has the write that was dropped");
    assert_eq!((at_a.marked.len(), at_b.marked.len()), (marked.0 + 1, marked.1 + 1), "both agree");
}

/// A peer that refuses a document never agrees: the sender confirms a few times, then leaves
/// it to the timer's rounds instead of asking again and again.
#[test]
fn a_peer_that_keeps_refusing_a_document_is_not_asked_again_and_again() {
    let shop = Shop::new();
    let (mut a, mut at_a, mut b, mut at_b) = settled_pair(&shop);
    let id = Uuid::from_u128(5);
    at_b.refuses = Some(id);
    at_a.docs.put(id, order(5));
    let marked = at_a.marked.len();
    let push = sent(&handle(&mut a, &mut at_a, Event::LocalWrites(vec![LocalWrite { id, created: true }])));
    let exchanges = until_quiet((&mut a, &mut at_a), (&mut b, &mut at_b), vec![(1, push[0].1.clone())]);
    assert!(at_b.docs.get(&id).is_none());
    assert_eq!(at_a.marked.len(), marked, "never agreed");
    assert!(exchanges <= 12, "{exchanges} exchanges");
}

/// The documents, noting which ids a view accepted.
#[derive(Debug)]
struct Accepting<'s> {
    docs: &'s mut MemoryDocuments,
    accepted: Vec<DocId>,
    refuses: Option<DocId>,
}

impl Documents for Accepting<'_> {
    type Error = Infallible;

    fn index(&self) -> &Index {
        self.docs.index()
    }

    fn saved(&mut self, id: DocId) -> Result<Option<Vec<u8>>, Infallible> {
        self.docs.saved(id)
    }

    fn heads(&mut self, id: DocId) -> Result<Option<Vec<automerge::ChangeHash>>, Infallible> {
        self.docs.heads(id)
    }

    fn load(&mut self, id: DocId) -> Result<Option<AutoCommit>, Infallible> {
        self.docs.load(id)
    }

    fn store(
        &mut self,
        id: DocId,
        doc: AutoCommit,
        saved: Option<Vec<u8>>,
    ) -> Result<tillmesh_sync::Verdict, Infallible> {
        if self.refuses == Some(id) {
            return Ok(Err("refused by this store".into()));
        }
        self.accepted.push(id);
        self.docs.store(id, doc, saved)
    }

    fn sync_state(&mut self, id: DocId) -> Result<Option<automerge::sync::State>, Infallible> {
        self.docs.sync_state(id)
    }
}

#[test]
fn introduced_peers_reconnect_in_one_exchange_without_credentials() {
    let shop = Shop::new();
    let (mut a, mut at_a, mut b, mut at_b) = settled_pair(&shop);
    assert!(at_a.introduced.contains_key("2") && at_b.introduced.contains_key("1"), "kept");
    // The link drops and comes back; then both restart from what they kept: each time both admit
    // the other as it connects, neither sends credentials, and the lower peer id's one range
    // list agrees.
    for restart in [false, true] {
        handle(&mut a, &mut at_a, Event::Disconnected(2));
        handle(&mut b, &mut at_b, Event::Disconnected(1));
        if restart {
            a = shop.restarted(1, "A", &at_a);
            b = shop.restarted(2, "B", &at_b);
        }
        let from_a = sent(&handle(&mut a, &mut at_a, Event::Connected(2)));
        assert!(sent(&handle(&mut b, &mut at_b, Event::Connected(1))).is_empty(), "B waits for A");
        assert_eq!((a.admitted(), b.admitted()), (vec!["till-B".to_string()], vec!["till-A".to_string()]));
        assert_eq!(from_a.len(), 1);
        assert!(from_a[0].1.credentials.is_none() && from_a[0].1.ranges.is_some(), "{from_a:?}");
        let marked = (at_a.marked.len(), at_b.marked.len());
        let requests = vec![(1, from_a[0].1.clone())];
        let exchanges = until_quiet((&mut a, &mut at_a), (&mut b, &mut at_b), requests);
        assert_eq!(exchanges, 1);
        assert_eq!((at_a.marked.len(), at_b.marked.len()), (marked.0 + 1, marked.1 + 1), "both agree");
    }
}

#[test]
fn a_peer_that_lost_our_entry_gets_it_when_it_greets_and_news_is_always_told() {
    let shop = Shop::new();
    let (mut a, mut at_a, _, _) = settled_pair(&shop);
    // B comes back with nothing kept (same peer id): A admits it as it connects and sends no
    // credentials, B holds A's range list until it has them.
    handle(&mut a, &mut at_a, Event::Disconnected(2));
    let mut b = shop.core(2, "B", Vec::new());
    let mut at_b = Memory::default();
    let start = sent(&handle(&mut a, &mut at_a, Event::Connected(2))).remove(0).1;
    assert!(start.credentials.is_none());
    let hello_b = sent(&handle(&mut b, &mut at_b, Event::Connected(1))).remove(0).1;
    let held = handle(&mut b, &mut at_b, Event::Request { peer: 1, frame: encode(&start), reply: 5 });
    assert!(answers(&held).is_empty(), "held until A's credentials come");
    // B's greeting makes A send its own.
    let at_a_actions = greet(&mut a, &mut at_a, hello_b, 2);
    let again = sent(&at_a_actions);
    assert_eq!(again.len(), 1);
    assert!(again[0].1.credentials.is_some(), "A's credentials follow B's: {again:?}");
    let released =
        handle(&mut b, &mut at_b, Event::Request { peer: 1, frame: encode(&again[0].1), reply: 6 });
    let replies: Vec<u64> = answers(&released).into_iter().map(|(reply, _)| reply).collect();
    assert_eq!(replies, vec![6, 5], "admitted: the greeting and the held range list answered");
    assert_eq!(b.admitted(), vec!["till-A".to_string()]);

    // A learns a revocation while B is away: A's next connection to B carries it, though B holds
    // A's entry.
    handle(&mut a, &mut at_a, Event::Response { peer: 2, frame: encode(&Frame::default()) });
    handle(&mut a, &mut at_a, Event::Disconnected(2));
    handle(&mut b, &mut at_b, Event::Disconnected(1));
    handle(&mut a, &mut at_a, Event::RosterEntry(shop.entry(3, "C", true, 2)));
    let news = sent(&handle(&mut a, &mut at_a, Event::Connected(2)));
    assert!(news[0].1.credentials.is_some(), "the revocation travels: {news:?}");
    handle(&mut b, &mut at_b, Event::Connected(1));
    greet(&mut b, &mut at_b, news[0].1.clone(), 1);
    assert!(at_b.roster.iter().any(|entry| entry.entry.peer_id == "3" && entry.entry.revoked));
}

#[test]
fn peers_that_know_each_other_meet_and_agree_without_the_timer() {
    let shop = Shop::new();
    let roster = vec![shop.entry(1, "A", false, 1), shop.entry(2, "B", false, 1)];
    let (mut a, mut b) = (shop.core(1, "A", roster.clone()), shop.core(2, "B", roster));
    let (mut at_a, mut at_b) = (Memory::default(), Memory::default());
    let id = Uuid::from_u128(1);
    at_a.docs.put(id, order(1));
    // Both admit the other as it connects and greet it (neither acknowledged the other's
    // credentials yet); A, the lower peer id, starts a reconciliation behind its greeting.
    let from_a = sent(&handle(&mut a, &mut at_a, Event::Connected(2)));
    let from_b = sent(&handle(&mut b, &mut at_b, Event::Connected(1)));
    assert_eq!((a.admitted(), b.admitted()), (vec!["till-B".to_string()], vec!["till-A".to_string()]));
    assert!(from_a.iter().chain(&from_b).all(|(_, frame)| frame.credentials.is_some()));
    // B's greeting reaches A first: A's answer must not carry its start (B would take it for a
    // receipt); the start follows A's own greeting's answer, and the order reaches B.
    let requests: Vec<(u32, Frame)> = from_a
        .into_iter()
        .map(|(_, frame)| (1, frame))
        .chain(from_b.into_iter().map(|(_, frame)| (2, frame)))
        .collect();
    until_quiet((&mut a, &mut at_a), (&mut b, &mut at_b), requests);
    assert!(at_b.docs.get(&id).is_some(), "B holds A's order");
    assert!(!at_a.marked.is_empty() && !at_b.marked.is_empty(), "both agree");
}

#[test]
fn credentials_lost_with_a_failed_step_go_again_before_they_count_as_told() {
    let shop = Shop::new();
    let (mut a, mut at_a, _, _) = settled_pair(&shop);
    let before = at_a.introduced.get("2").copied();
    // A learns a revocation while B is connected; the step that would tell B fails (A's store
    // refuses it), so its frame with the news is dropped.
    let step = a.handle_unavailable(NOW, Event::RosterEntry(shop.entry(3, "C", true, 2)));
    assert!(step.failed.is_some() && sent(&step.actions).is_empty(), "{:?}", step.actions);
    // A's next request carries its credentials again, and only B's answer to it records B as told.
    let next = sent(&handle(&mut a, &mut at_a, Event::Reconcile));
    assert!(next[0].1.credentials.is_some(), "{next:?}");
    assert_eq!(at_a.introduced.get("2").copied(), before);
    handle(&mut a, &mut at_a, Event::Response { peer: 2, frame: encode(&Frame::default()) });
    assert_ne!(at_a.introduced.get("2").copied(), before, "told the news");
}
