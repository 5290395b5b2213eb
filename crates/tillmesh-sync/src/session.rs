//! One peer's sync session: reconciliation of the document sets, then Automerge sync of the
//! documents that differ, through an outbox the driver drains into frames.
//!
//! The driver (network or simulator) calls [`Session::receive`] with each frame the peer sends
//! of its own accord and [`Session::receive_answer`] with each answer to a frame of ours,
//! [`Session::start_reconcile`] for anti-entropy, [`Session::push_new`] /
//! [`Session::push_change`] on local writes, and sends whatever [`Session::next_frame`] returns
//! until it returns `None`. The session never touches a socket or a clock.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use automerge::sync::{self, SyncDoc};
use automerge::{ActorId, AutoCommit, ChangeHash};

use crate::frame::{self, DocBody, DocMsg, Frame, RangeBody, RangeMsg};
use crate::index::{Bound, DocId, Fingerprint, Index, ItemHash};

/// How many sub-ranges a differing range is split into.
pub const BRANCHING: usize = 16;
/// A differing range with at most this many of our documents is answered with the list of them
/// (with heads) rather than split further; 2 measured cheapest for ten differences in 10,000.
pub const ITEMS_DIRECT_MAX: u64 = 2;

/// Whether a document offered by a peer was accepted.
pub type Verdict = Result<(), String>;

/// The documents a session reads and writes; implemented by the driver (sled store, simulator).
pub trait Documents {
    /// A failure of the storage itself (not of the peer's input).
    type Error: std::error::Error + Send + Sync + 'static;

    /// The reconciliation index of every document held.
    fn index(&self) -> &Index;

    /// The saved bytes of a document.
    fn saved(&mut self, id: DocId) -> Result<Option<Vec<u8>>, Self::Error>;

    /// A document's current heads.
    fn heads(&mut self, id: DocId) -> Result<Option<Vec<ChangeHash>>, Self::Error>;

    /// A document, to apply sync messages to.
    fn load(&mut self, id: DocId) -> Result<Option<AutoCommit>, Self::Error>;

    /// Keeps a document changed by sync (and updates the index), or refuses it with a reason
    /// (not a valid document, wrong id): a refused document changes nothing. `saved` are the
    /// document's saved bytes when they are at hand (a whole document received as it is).
    fn store(&mut self, id: DocId, doc: AutoCommit, saved: Option<Vec<u8>>) -> Result<Verdict, Self::Error>;

    /// Keeps a whole document sent by the peer that is not held here (not in the index) as it
    /// was received: its bytes are already the saved form. Refused with a reason when it does
    /// not load or [`Documents::store`] refuses it. A store that loaded the document ahead of
    /// time (on other threads, say) overrides this to use what it loaded.
    fn store_whole(&mut self, id: DocId, bytes: &[u8]) -> Result<Verdict, Self::Error> {
        match tillmesh_untrusted::load_document(bytes) {
            Ok(doc) => self.store(id, doc, Some(bytes.to_vec())),
            Err(error) => Ok(Err(undecodable(&error))),
        }
    }

    /// The id a whole document sent without one (in a compact frame) gives itself in its header,
    /// or why it gives none (the reason it is refused). A store that reads no headers (the
    /// default) refuses every such document: only peers whose transport says they read compact
    /// frames are sent them.
    fn name_whole(&mut self, bytes: &[u8]) -> Result<Result<DocId, String>, Self::Error> {
        let _ = bytes;
        Ok(Err("a whole document without its id, which this store cannot name".into()))
    }

    /// The Automerge sync state kept from an earlier session with this peer.
    fn sync_state(&mut self, id: DocId) -> Result<Option<sync::State>, Self::Error>;

    /// Whether exactly these bytes were refused before (and kept aside): they are then dropped
    /// without being loaded again. Nothing is kept aside by default.
    fn refused_before(&mut self, bytes: &[u8]) -> Result<bool, Self::Error> {
        let _ = bytes;
        Ok(false)
    }
}

/// A document message refused: what it claimed to be, why, and its bytes (to keep aside for
/// inspection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The document it was sent as.
    pub id: DocId,
    /// Why it was refused.
    pub reason: String,
    /// The message's bytes: a whole document or a sync message.
    pub bytes: Vec<u8>,
}

/// What receiving a frame did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Received {
    /// Documents created or changed here.
    pub changed: Vec<DocId>,
    /// Document messages refused (the peer sent something invalid).
    pub refused: Vec<Refusal>,
    /// Document messages refused earlier and sent again: dropped unread
    /// (see [`Documents::refused_before`]).
    pub repeated: Vec<DocId>,
    /// Set when this frame showed that both peers hold exactly the same documents: the
    /// whole-set fingerprint both agreed on (the peer's, equal to ours when we received it). (Compare it with the index now: local writes since
    /// may have changed it.)
    pub agreed: Option<Fingerprint>,
    /// The peer's [`receipt`] when the frame was its answer to one of ours and carried one (a
    /// whole-set fingerprint that is not the echo of our start): the set it holds once it has
    /// taken in what we sent, whether or not that is ours now.
    pub receipt: Option<Fingerprint>,
}

/// A document message waiting in the outbox. A whole document is read only as its frame is
/// built: a catch-up of 100,000 orders queues their ids, not 115 MB of their bytes, and its first
/// frame goes without every document being read first.
#[derive(Debug)]
enum Outgoing {
    /// A whole document, read when its frame is built (dropped if it is gone by then).
    Whole(DocId),
    /// A message made already: an Automerge sync message, or a whole document read for a frame
    /// it did not fit in.
    Ready(DocMsg),
}

impl Outgoing {
    fn id(&self) -> DocId {
        match self {
            Outgoing::Whole(id) => *id,
            Outgoing::Ready(message) => message.id,
        }
    }
}

/// One peer's session state.
#[derive(Debug, Default)]
pub struct Session {
    /// Reconciliation messages to send, each a complete range list.
    outbox_ranges: VecDeque<Vec<RangeMsg>>,
    /// Document messages to send.
    outbox_docs: VecDeque<Outgoing>,
    /// Documents already queued whole, so a document is not queued twice.
    queued_whole: HashSet<DocId>,
    /// Automerge sync state per document touched in this session.
    states: HashMap<DocId, sync::State>,
    /// The whole-set fingerprint of our last [`Session::start_reconcile`], until its echo comes.
    started: Option<Fingerprint>,
    /// Our last start, while it waits to be sent. It goes in a request of ours, never in an
    /// answer: there a single whole-set fingerprint is the answerer's [`receipt`], and a start
    /// the peer took for one would never be answered.
    start_pending: Option<Fingerprint>,
    /// The whole-set fingerprint both sides last agreed on in this session: a matching
    /// fingerprint received again is not echoed again (two echoes never answer each other).
    agreed: Option<Fingerprint>,
}

impl Session {
    /// A new session.
    pub fn new() -> Session {
        Session::default()
    }

    /// Queues a reconciliation: one fingerprint of our whole document set.
    pub fn start_reconcile(&mut self, index: &Index) {
        let fingerprint = index.fingerprint(&Bound::min(), &Bound::Max);
        self.started = Some(fingerprint);
        self.start_pending = Some(fingerprint);
    }

    /// Queues a document the peer cannot have yet (just created here): sent whole.
    pub fn push_new(&mut self, id: DocId) {
        self.queue_whole(id);
    }

    /// Queues an Automerge sync message for a document changed here.
    pub fn push_change<D: Documents>(&mut self, id: DocId, docs: &mut D) -> Result<(), D::Error> {
        if let Some(mut doc) = docs.load(id)? {
            self.queue_sync(id, &mut doc, docs)?;
        }
        Ok(())
    }

    /// Whether anything waits to be sent.
    pub fn has_outgoing(&self) -> bool {
        !self.outbox_ranges.is_empty() || self.start_pending.is_some() || !self.outbox_docs.is_empty()
    }

    /// Whether only documents wait to be sent (no range list): such frames may follow one
    /// another before their answers come.
    pub fn has_only_documents(&self) -> bool {
        self.outbox_ranges.is_empty() && self.start_pending.is_none() && !self.outbox_docs.is_empty()
    }

    /// The next frame to send in a request of ours: at most one range list (answers to the
    /// peer's first, then our start) and documents up to [`frame::FRAME_BYTES_TARGET`], whole
    /// ones read from `docs` now. `None` when nothing waits (or only documents gone since they
    /// were queued).
    pub fn next_frame<D: Documents>(&mut self, docs: &mut D) -> Result<Option<Frame>, D::Error> {
        if !self.has_outgoing() {
            return Ok(None);
        }
        let ranges = self.outbox_ranges.pop_front().or_else(|| {
            let fingerprint = self.start_pending.take()?;
            self.started = Some(fingerprint);
            Some(vec![RangeMsg { upper: Bound::Max, body: RangeBody::Fingerprint(fingerprint) }])
        });
        self.with_documents(ranges, docs)
    }

    /// The next frame to answer a request of the peer's with: as [`Session::next_frame`], but
    /// never with our start, which waits for a request of ours. `None` when nothing else waits.
    pub fn next_answer<D: Documents>(&mut self, docs: &mut D) -> Result<Option<Frame>, D::Error> {
        if self.outbox_ranges.is_empty() && self.outbox_docs.is_empty() {
            return Ok(None);
        }
        let ranges = self.outbox_ranges.pop_front();
        self.with_documents(ranges, docs)
    }

    /// A frame of `ranges` and the documents that fit after them (whole ones read from `docs`
    /// as they go in); `None` when that is nothing.
    fn with_documents<D: Documents>(
        &mut self,
        ranges: Option<Vec<RangeMsg>>,
        docs: &mut D,
    ) -> Result<Option<Frame>, D::Error> {
        let mut messages = Vec::new();
        let mut bytes = 0;
        while let Some(next) = self.outbox_docs.pop_front() {
            let message = match next {
                Outgoing::Ready(message) => message,
                Outgoing::Whole(id) => match docs.saved(id)? {
                    Some(saved) => DocMsg { id, body: DocBody::Whole(saved) },
                    None => {
                        self.queued_whole.remove(&id);
                        continue;
                    }
                },
            };
            let len = frame::doc_msg_len(&message);
            if !messages.is_empty()
                && (bytes + len > frame::FRAME_BYTES_TARGET || messages.len() >= frame::DOCS_MAX)
            {
                self.outbox_docs.push_front(Outgoing::Ready(message));
                break;
            }
            bytes += len;
            if matches!(message.body, DocBody::Whole(_)) {
                self.queued_whole.remove(&message.id);
            }
            messages.push(message);
        }
        if ranges.is_none() && messages.is_empty() {
            return Ok(None);
        }
        Ok(Some(Frame { credentials: None, ranges, docs: messages }))
    }

    /// Takes in a frame from the peer: applies its documents, answers its ranges (into the
    /// outbox). Invalid document messages are refused one by one; storage failures abort.
    pub fn receive<D: Documents>(&mut self, frame: Frame, docs: &mut D) -> Result<Received, D::Error> {
        self.take_in(frame, docs, false)
    }

    /// Takes in the peer's answer to a frame of ours, as [`Session::receive`] does, except for a
    /// whole-set fingerprint that is not the echo of our own start: that is the peer's
    /// [`receipt`] for documents we sent. Equal to ours, both hold the same (agreed; echoed only
    /// if this session had not agreed yet, so that the peer learns it once); otherwise it is
    /// left alone, and the difference is for a reconciliation to find.
    pub fn receive_answer<D: Documents>(&mut self, frame: Frame, docs: &mut D) -> Result<Received, D::Error> {
        self.take_in(frame, docs, true)
    }

    fn take_in<D: Documents>(
        &mut self,
        frame: Frame,
        docs: &mut D,
        answer: bool,
    ) -> Result<Received, D::Error> {
        let mut received = Received::default();
        for message in frame.docs {
            self.receive_doc(message, docs, &mut received)?;
        }
        if let Some(ranges) = frame.ranges {
            received.receipt = self.receipt_in(&ranges, answer);
            received.agreed = self.answer_ranges(ranges, docs, answer)?;
        }
        Ok(received)
    }

    /// The peer's [`receipt`] in `ranges`, when they are its answer to a frame of ours: a single
    /// whole-set fingerprint that is not the echo of our own start.
    fn receipt_in(&self, ranges: &[RangeMsg], answer: bool) -> Option<Fingerprint> {
        match ranges {
            [RangeMsg { upper: Bound::Max, body: RangeBody::Fingerprint(theirs) }]
                if answer && self.started != Some(*theirs) =>
            {
                Some(*theirs)
            }
            _ => None,
        }
    }

    /// The sync states of this session, encoded, to keep for the next session with this peer.
    pub fn encoded_states(&self) -> Vec<(DocId, Vec<u8>)> {
        let mut states: Vec<(DocId, Vec<u8>)> =
            self.states.iter().map(|(id, state)| (*id, state.encode())).collect();
        states.sort_by_key(|(id, _)| *id);
        states
    }

    fn state<D: Documents>(&mut self, id: DocId, docs: &mut D) -> Result<&mut sync::State, D::Error> {
        match self.states.entry(id) {
            std::collections::hash_map::Entry::Occupied(entry) => Ok(entry.into_mut()),
            std::collections::hash_map::Entry::Vacant(entry) => {
                Ok(entry.insert(docs.sync_state(id)?.unwrap_or_default()))
            }
        }
    }

    /// Queues a document to go whole, read when its frame is built.
    fn queue_whole(&mut self, id: DocId) {
        if self.queued_whole.insert(id) {
            self.outbox_docs.push_back(Outgoing::Whole(id));
        }
    }

    fn queue_sync<D: Documents>(
        &mut self,
        id: DocId,
        doc: &mut AutoCommit,
        docs: &mut D,
    ) -> Result<(), D::Error> {
        let state = self.state(id, docs)?;
        if let Some(message) = doc.sync().generate_sync_message(state) {
            self.outbox_docs.push_back(Outgoing::Ready(DocMsg { id, body: DocBody::Sync(message.encode()) }));
        }
        Ok(())
    }

    fn receive_doc<D: Documents>(
        &mut self,
        message: DocMsg,
        docs: &mut D,
        received: &mut Received,
    ) -> Result<(), D::Error> {
        let bytes = match &message.body {
            DocBody::Sync(bytes) | DocBody::Whole(bytes) | DocBody::Unnamed(bytes) => bytes,
        };
        if docs.refused_before(bytes)? {
            received.repeated.push(message.id);
            return Ok(());
        }
        let message = match message.body {
            DocBody::Unnamed(bytes) => match docs.name_whole(&bytes)? {
                Ok(id) => DocMsg { id, body: DocBody::Whole(bytes) },
                Err(reason) => {
                    received.refused.push(Refusal { id: message.id, reason, bytes });
                    return Ok(());
                }
            },
            body => DocMsg { body, ..message },
        };
        let id = message.id;
        let mut refuse =
            |reason: String, bytes: Vec<u8>| received.refused.push(Refusal { id, reason, bytes });
        match message.body {
            DocBody::Sync(bytes) => {
                let message = match tillmesh_untrusted::decode_sync_message(&bytes) {
                    Ok(message) => message,
                    Err(error) => {
                        refuse(format!("undecodable sync message: {error}"), bytes);
                        return Ok(());
                    }
                };
                // A document we do not hold yet starts empty; receiving writes no change of ours,
                // and our answer (empty heads) asks for everything.
                let mut doc =
                    docs.load(id)?.unwrap_or_else(|| AutoCommit::new().with_actor(ActorId::from([0u8; 16])));
                let before = doc.get_heads();
                let state = self.state(id, docs)?;
                if let Err(error) = tillmesh_untrusted::receive_sync_message(&mut doc, state, message) {
                    refuse(format!("sync message refused: {error}"), bytes);
                    // Nothing was applied: forget what this exchange said.
                    self.states.remove(&id);
                    return Ok(());
                }
                resend_needed(state);
                let changed = doc.get_heads() != before;
                self.queue_sync(id, &mut doc, docs)?;
                if changed {
                    match docs.store(id, doc, None)? {
                        Ok(()) => received.changed.push(id),
                        Err(reason) => {
                            refuse(reason, bytes);
                            self.states.remove(&id);
                            self.outbox_docs.retain(|queued| queued.id() != id);
                        }
                    }
                }
            }
            DocBody::Whole(bytes) if docs.index().get(&id).is_none() => match docs.store_whole(id, &bytes)? {
                Ok(()) => received.changed.push(id),
                Err(reason) => refuse(reason, bytes),
            },
            // (An unnamed document was named above: it is a whole one here.)
            DocBody::Whole(bytes) | DocBody::Unnamed(bytes) => {
                let mut theirs = match tillmesh_untrusted::load_document(&bytes) {
                    Ok(doc) => doc,
                    Err(error) => {
                        refuse(undecodable(&error), bytes);
                        return Ok(());
                    }
                };
                let their_heads = theirs.get_heads();
                let (doc, before, saved) = match docs.load(id)? {
                    Some(mut mine) => {
                        let before = mine.get_heads();
                        if let Err(error) = tillmesh_untrusted::merge(&mut mine, &mut theirs) {
                            refuse(format!("document does not merge: {error}"), bytes);
                            return Ok(());
                        }
                        (mine, before, None)
                    }
                    // Kept as received: its bytes are already the saved form.
                    None => (theirs, Vec::new(), Some(bytes.clone())),
                };
                let mut doc = doc;
                let after = doc.get_heads();
                let we_had_more = sorted(&after) != sorted(&their_heads);
                if after != before {
                    match docs.store(id, doc, saved)? {
                        Ok(()) => received.changed.push(id),
                        Err(reason) => {
                            refuse(reason, bytes);
                            return Ok(());
                        }
                    }
                }
                if we_had_more {
                    self.queue_whole(id);
                }
            }
        }
        Ok(())
    }

    /// Answers a range list (see `docs/PROTOCOL.md`). Returns the whole-set fingerprint when the
    /// list shows both sets equal: a whole-set fingerprint equal to ours. The agreement is told by
    /// the fingerprint itself, never by an answer that names none: a late or repeated answer can
    /// then never vouch for a set other than the one it was computed on. A matching fingerprint
    /// is echoed once (so the sender learns it too), unless it is the echo of our own start or
    /// one we agreed on already.
    fn answer_ranges<D: Documents>(
        &mut self,
        ranges: Vec<RangeMsg>,
        docs: &mut D,
        answer: bool,
    ) -> Result<Option<Fingerprint>, D::Error> {
        let ranges = match whole_set(&ranges) {
            // Differences when the peer computed them, none now (what made them crossed this
            // list): its set then is ours now, agreed as if told by one whole-set fingerprint.
            // No echo of a start of ours comes after differences.
            Some(theirs)
                if ranges.len() > 1 && theirs == docs.index().fingerprint(&Bound::min(), &Bound::Max) =>
            {
                self.started = None;
                vec![RangeMsg { upper: Bound::Max, body: RangeBody::Fingerprint(theirs) }]
            }
            _ => ranges,
        };
        if let [RangeMsg { upper: Bound::Max, body }] = ranges.as_slice() {
            let receipt = self.receipt_in(&ranges, answer).is_some();
            match body {
                // The end of an exchange (an older peer's way of agreeing): nothing to answer, and
                // it vouches for no set.
                RangeBody::Skip => return Ok(None),
                RangeBody::Fingerprint(theirs)
                    if docs.index().fingerprint(&Bound::min(), &Bound::Max) == *theirs =>
                {
                    let theirs = *theirs;
                    if self.started == Some(theirs) {
                        self.started = None;
                    } else if receipt && self.agreed.is_some() {
                        // Agreed here alone: the peer does not know, so a start of its own with
                        // this fingerprint is still to be echoed (`agreed` stays as it was).
                        return Ok(Some(theirs));
                    } else if self.agreed != Some(theirs) {
                        self.outbox_ranges.push_back(vec![RangeMsg {
                            upper: Bound::Max,
                            body: RangeBody::Fingerprint(theirs),
                        }]);
                    }
                    self.agreed = Some(theirs);
                    return Ok(Some(theirs));
                }
                _ if receipt => return Ok(None),
                _ => {}
            }
        }
        // The peer answered with differences: our start was not echoed, so a fingerprint equal
        // to it that comes later (a receipt, the peer's own round) is news to answer, not an echo.
        self.started = None;
        let mut out: Vec<RangeMsg> = Vec::new();
        let mut lower = Bound::min();
        let mut to_push: Vec<DocId> = Vec::new();
        let total = ranges.len();
        for (position, range) in ranges.into_iter().enumerate() {
            let upper = range.upper.clone();
            let body = match range.body {
                RangeBody::Skip => RangeBody::Skip,
                RangeBody::Fingerprint(theirs) => {
                    let index = docs.index();
                    let mine = index.fingerprint(&lower, &upper);
                    if mine == theirs {
                        RangeBody::Skip
                    } else if theirs.count == 0 {
                        // They hold nothing here: everything of ours goes whole.
                        to_push.extend(index.range(&lower, &upper).map(|(id, _)| *id));
                        RangeBody::Skip
                    } else if mine.count <= ITEMS_DIRECT_MAX {
                        let ids: Vec<DocId> = index.range(&lower, &upper).map(|(id, _)| *id).collect();
                        RangeBody::Items { items: with_heads(ids, docs)?, reply: true }
                    } else {
                        let room = frame::RANGES_MAX.saturating_sub(out.len() + (total - position - 1));
                        out.extend(split(index, &lower, &upper, mine, room));
                        lower = upper;
                        continue;
                    }
                }
                RangeBody::Items { items: theirs, reply } => {
                    self.compare_items(&lower, &upper, theirs, reply, docs, &mut to_push)?
                }
            };
            out.push(RangeMsg { upper: upper.clone(), body });
            lower = upper;
        }
        let sending = !to_push.is_empty();
        for id in to_push {
            self.queue_whole(id);
        }
        if out.iter().any(|range| range.body != RangeBody::Skip) {
            self.outbox_ranges.push_back(merge_skips(out));
        } else if !answer && !sending {
            // Every part the peer asked about matches ours (what differed when it split them
            // crossed its list): our answer says which set we hold, so that a peer holding the
            // same learns the agreement. Answered with nothing, neither side learnt it, and both
            // kept their documents pending until the timer's next round.
            self.outbox_ranges.push_back(receipt(docs.index()));
        }
        Ok(None)
    }

    /// Compares the peer's list of a range with ours. Documents only we hold go whole; of the
    /// documents both hold in different versions, we send ours when we hold all the peer's heads
    /// (we are ahead). Otherwise, when they asked for a reply, we answer with our list so they
    /// can do the same; on a final list, a version we cannot order is concurrent: we send ours
    /// and the peer merges and answers with its own.
    fn compare_items<D: Documents>(
        &mut self,
        lower: &Bound,
        upper: &Bound,
        theirs: Vec<(DocId, Vec<ChangeHash>)>,
        reply: bool,
        docs: &mut D,
        to_push: &mut Vec<DocId>,
    ) -> Result<RangeBody, D::Error> {
        let mine: BTreeMap<DocId, ItemHash> =
            docs.index().range(lower, upper).map(|(id, hash)| (*id, *hash)).collect();
        let theirs: BTreeMap<DocId, Vec<ChangeHash>> = theirs.into_iter().collect();
        let mut answer_needed = theirs.keys().any(|id| !mine.contains_key(id));
        for (id, hash) in &mine {
            match theirs.get(id) {
                None => to_push.push(*id),
                Some(heads) if ItemHash::of(*id, heads) != *hash => {
                    let ahead = match docs.load(*id)? {
                        Some(mut doc) => heads.iter().all(|head| doc.get_change_by_hash(head).is_some()),
                        None => false,
                    };
                    if ahead || !reply {
                        to_push.push(*id);
                    } else {
                        answer_needed = true;
                    }
                }
                Some(_) => {}
            }
        }
        if reply && answer_needed {
            Ok(RangeBody::Items { items: with_heads(mine.into_keys().collect(), docs)?, reply: false })
        } else {
            Ok(RangeBody::Skip)
        }
    }
}

/// What a peer answers a frame that brought documents with, when it has nothing else to say:
/// its whole-set fingerprint once they are stored. Equal to the sender's, it tells the sender
/// that both hold the same without another exchange ([`Session::receive_answer`]).
pub fn receipt(index: &Index) -> Vec<RangeMsg> {
    vec![RangeMsg {
        upper: Bound::Max,
        body: RangeBody::Fingerprint(index.fingerprint(&Bound::min(), &Bound::Max)),
    }]
}

/// Why a whole document that does not load is refused.
pub fn undecodable(error: &tillmesh_untrusted::LoadError) -> String {
    format!("undecodable document: {error}")
}

/// Changes the peer asks for by hash are sent again, even those sent before in this session.
/// Automerge sends a change once per sync state and never again while the peer's heads do not
/// cover it; when the frame that carried it was lost (a request that failed, a peer whose write
/// failed and that started afresh) the peer asks for it forever and never gets it.
fn resend_needed(state: &mut sync::State) {
    if let Some(need) = &state.their_need {
        for hash in need {
            state.sent_hashes.remove(hash);
        }
    }
}

/// Documents with their current heads.
fn with_heads<D: Documents>(
    ids: Vec<DocId>,
    docs: &mut D,
) -> Result<Vec<(DocId, Vec<ChangeHash>)>, D::Error> {
    let mut items = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(heads) = docs.heads(id)? {
            items.push((id, heads));
        }
    }
    Ok(items)
}

/// Splits our documents in `[lower, upper)` into up to [`BRANCHING`] fingerprinted sub-ranges
/// (fewer when `room` ranges are left in the frame).
fn split(index: &Index, lower: &Bound, upper: &Bound, mine: Fingerprint, room: usize) -> Vec<RangeMsg> {
    let items: Vec<_> = index.range(lower, upper).collect();
    let parts = BRANCHING.min(items.len()).min(room.max(1));
    if parts <= 1 {
        return vec![RangeMsg { upper: upper.clone(), body: RangeBody::Fingerprint(mine) }];
    }
    let chunk = items.len().div_ceil(parts);
    let mut out = Vec::with_capacity(parts);
    let mut start = lower.clone();
    for (n, group) in items.chunks(chunk).enumerate() {
        let end = match items.get((n + 1) * chunk) {
            Some((next, _)) => Bound::between(group[group.len() - 1].0, next),
            None => upper.clone(),
        };
        let fingerprint = index.fingerprint(&start, &end);
        out.push(RangeMsg { upper: end.clone(), body: RangeBody::Fingerprint(fingerprint) });
        start = end;
    }
    out
}

/// The whole-set fingerprint a range list stands for, when every range of it is a fingerprint
/// (the list covers the id space: the decoder holds its bounds to that).
fn whole_set(ranges: &[RangeMsg]) -> Option<Fingerprint> {
    ranges.iter().try_fold(Fingerprint::default(), |whole, range| match &range.body {
        RangeBody::Fingerprint(part) => Some(whole.joined(part)),
        _ => None,
    })
}

/// Joins runs of skipped ranges into one.
fn merge_skips(ranges: Vec<RangeMsg>) -> Vec<RangeMsg> {
    let mut out: Vec<RangeMsg> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match out.last_mut() {
            Some(last) if last.body == RangeBody::Skip && range.body == RangeBody::Skip => {
                last.upper = range.upper
            }
            _ => out.push(range),
        }
    }
    out
}

fn sorted(heads: &[automerge::ChangeHash]) -> Vec<automerge::ChangeHash> {
    let mut heads = heads.to_vec();
    heads.sort();
    heads
}
