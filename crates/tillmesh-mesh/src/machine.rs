//! [`MeshCore`]: one peer's behaviour as a state machine from [`Event`]s to [`Action`]s.

use std::collections::BTreeMap;
use std::fmt::{Debug, Display};

use tillmesh_core::{HqPublicKey, Roster, SignedRosterEntry, Timestamp};
use tillmesh_sync::{
    Bound, DocId, Documents, Fingerprint, Frame, Received, Session, decode, encode, receipt,
};

use crate::credentials::{Credentials, Introductions, digest, remote_name};
use crate::event::{Action, Event, LocalWrite, Step};
use crate::storage::{Storage, StoreUnavailable, Unavailable};

/// How a peer starts.
#[derive(Debug, Clone)]
pub struct CoreConfig<P> {
    /// This node's own peer id.
    pub local: P,
    /// HQ's public key: it signs the roster (and settlements).
    pub hq: HqPublicKey,
    /// This node's own signed roster entry, presented to every peer.
    pub own_entry: SignedRosterEntry,
    /// Roster entries known at start (kept from the last run, from the credentials file).
    pub roster: Vec<SignedRosterEntry>,
    /// Frames a peer may send before it is admitted (held until it is); one more and it is
    /// blocked.
    pub held_frames_max: usize,
    /// What each peer acknowledged of our credentials (kept from the last run).
    pub introduced: Introductions,
}

/// One connected peer.
#[derive(Debug)]
struct Peer<R> {
    /// The remote's name once admitted (`till-B`, `hq`).
    remote: Option<String>,
    session: Session,
    /// Requests of ours that await their answers (at most [`DOCUMENT_FRAMES_IN_FLIGHT`]).
    in_flight: u8,
    /// Whether every request in flight is a frame of documents alone (no range list of its own,
    /// no credentials): only then may another such frame follow before their answers.
    documents_in_flight: bool,
    /// Requests that arrived before the peer was admitted.
    held: Vec<(R, Frame)>,
    /// Whether our next request carries the roster (it changed).
    send_roster: bool,
    /// Whether the peer answered one of our requests, so has admitted us, or holds our entry
    /// and every revocation we know from an earlier connection: until then every request
    /// carries our credentials (the first may have been lost).
    introduced: bool,
    /// The [`digest`] of the credentials we sent on this connection, if we sent any.
    told: Option<u64>,
    /// Whether we sent the peer documents since we last agreed with it: once that exchange is
    /// over, a reconciliation confirms them (see [`MeshCore::confirm_sent`]). Documents sent in a
    /// request rarely need it: the peer's [`receipt`] in its answer usually agrees at once.
    unconfirmed: bool,
    /// Whether we queued a push (local writes, documents relayed) whose last frame has not gone
    /// yet: that frame carries our fingerprint.
    pushing: bool,
    /// The fingerprint our last frame of documents carried, if it carried one. A receipt equal
    /// to it says the peer holds all we sent it: nothing to confirm, though our set may have
    /// moved on since (a local write made while the frame travelled: its push carries a
    /// fingerprint of its own, which a confirming round would only cross).
    fingerprinted: Option<Fingerprint>,
    /// Confirming reconciliations left before we agree with the peer again: a peer that
    /// refuses a document we keep sending never agrees, and is not asked again and again (the
    /// timer's rounds go on trying).
    confirms_left: u8,
}

/// Confirming reconciliations started with a peer without agreeing with it in between: rounds
/// that find differences exchange them, and the next confirms them.
const CONFIRMS_WITHOUT_AGREEMENT: u8 = 3;

/// Requests of documents alone that may await their answers at once: while the peer stores one
/// frame (and makes it durable before answering), the next is on its way and being loaded,
/// instead of the two sides taking turns. Range lists, credentials and the roster still wait
/// for every answer before them, and nothing follows them before their answer.
const DOCUMENT_FRAMES_IN_FLIGHT: u8 = 2;

impl<R> Peer<R> {
    /// Whether the next frame may go now: nothing awaits an answer, or only frames of documents
    /// do (fewer than [`DOCUMENT_FRAMES_IN_FLIGHT`]) and the next is documents alone too.
    fn may_send(&self) -> bool {
        if self.remote.is_none() {
            return false;
        }
        if self.in_flight == 0 {
            return self.session.has_outgoing() || self.send_roster;
        }
        self.in_flight < DOCUMENT_FRAMES_IN_FLIGHT
            && self.documents_in_flight
            && self.introduced
            && !self.send_roster
            && self.session.has_only_documents()
    }

    /// Whether `frame`, documents alone about to go, carries our fingerprint: the last frame of
    /// a push always (a push follows a real change: local writes, documents relayed), the last
    /// of the documents a reconciliation sends while confirming rounds are left (they count as
    /// one: a peer that refuses what it is sent answers every fingerprint with differences, and
    /// would be sent it forever). Never a frame with more to follow: the peer cannot agree
    /// before it has them all, and would answer with differences that are only what is on its
    /// way (a catch-up's frames then went one by one, each answered with a range list).
    fn fingerprints_next(&mut self, frame: &Frame) -> bool {
        debug_assert!(!frame.docs.is_empty() && frame.ranges.is_none());
        if self.pushing {
            self.pushing = self.session.has_outgoing();
            return !self.pushing;
        }
        if self.confirms_left == 0 || self.session.has_outgoing() {
            return false;
        }
        self.confirms_left -= 1;
        true
    }

    fn new() -> Peer<R> {
        Peer {
            remote: None,
            session: Session::new(),
            in_flight: 0,
            documents_in_flight: false,
            held: Vec::new(),
            send_roster: false,
            introduced: false,
            told: None,
            unconfirmed: false,
            pushing: false,
            fingerprinted: None,
            confirms_left: CONFIRMS_WITHOUT_AGREEMENT,
        }
    }
}

/// A peer of the shop's mesh: its roster, its connected peers and their sync sessions. `P`
/// names peers (ordered; its `Display` is the peer id roster entries name), `R` is where a
/// request's answer goes.
#[derive(Debug)]
pub struct MeshCore<P, R> {
    local: P,
    hq: HqPublicKey,
    own: SignedRosterEntry,
    roster: Roster,
    peers: BTreeMap<P, Peer<R>>,
    held_max: usize,
    introduced: Introductions,
    /// The actions of the step under way.
    actions: Vec<Action<P, R>>,
}

impl<P, R> MeshCore<P, R>
where
    P: Copy + Ord + Display + Debug,
    R: Debug,
{
    /// A peer with no connections yet; roster entries that do not verify are left out (logged).
    pub fn new(config: CoreConfig<P>) -> MeshCore<P, R> {
        let mut roster = Roster::new();
        for entry in config.roster.into_iter().chain([config.own_entry.clone()]) {
            if let Err(error) = roster.merge(entry, &config.hq) {
                tracing::warn!(%error, "ignoring a roster entry");
            }
        }
        MeshCore {
            local: config.local,
            hq: config.hq,
            own: config.own_entry,
            roster,
            peers: BTreeMap::new(),
            held_max: config.held_frames_max,
            introduced: config.introduced,
            actions: Vec::new(),
        }
    }

    /// The remote names of the admitted peers.
    pub fn admitted(&self) -> Vec<String> {
        self.peers.values().filter_map(|peer| peer.remote.clone()).collect()
    }

    /// Whether `peer` is connected and admitted.
    pub fn admits(&self, peer: &P) -> bool {
        self.peers.get(peer).is_some_and(|state| state.remote.is_some())
    }

    /// Whether any admitted peer has something to send.
    pub fn has_outgoing(&self) -> bool {
        self.peers.values().any(|peer| peer.remote.is_some() && peer.session.has_outgoing())
    }

    /// Handles one event at time `now` against `storage`. Carry out the returned actions, in
    /// order, only once everything `storage` wrote is durable; if it cannot be made durable, drop
    /// them and call [`MeshCore::storage_failed`].
    pub fn handle<S: Storage>(
        &mut self,
        now: Timestamp,
        event: Event<P, R>,
        storage: &mut S,
    ) -> Step<P, R, S::Error> {
        let result = self
            .take_local_writes(storage)
            .and_then(|()| self.dispatch(now, event, storage))
            .and_then(|()| self.confirm_sent(storage));
        let mut actions = std::mem::take(&mut self.actions);
        let failed = match result {
            Ok(()) => None,
            Err(error) => {
                tracing::warn!(%error, "sync step cut short by the store: answering nothing, sessions start afresh");
                actions.retain(|action| matches!(action, Action::Block(_) | Action::PeersChanged(_)));
                self.storage_failed();
                Some(error)
            }
        };
        Step { actions, failed }
    }

    /// [`MeshCore::handle`] while the node's store refuses every call: peers, flow control and
    /// the roster stay in order; nothing is answered.
    pub fn handle_unavailable(&mut self, now: Timestamp, event: Event<P, R>) -> Step<P, R, StoreUnavailable> {
        self.handle(now, event, &mut Unavailable::default())
    }

    /// What a step wrote did not become durable, or its actions were lost: every session starts
    /// afresh (their outboxes may answer from documents that were not kept), no request is
    /// awaited any more, and credentials sent on the connection go again with the next request
    /// (they may have been lost with the step: a later answer must not record the peer as told
    /// what it never got). The next reconciliation finds whatever differs.
    pub fn storage_failed(&mut self) {
        for peer in self.peers.values_mut() {
            peer.session = Session::new();
            peer.in_flight = 0;
            peer.fingerprinted = None;
            if peer.told.take().is_some() {
                peer.send_roster = true;
            }
        }
    }

    fn dispatch<S: Storage>(
        &mut self,
        now: Timestamp,
        event: Event<P, R>,
        storage: &mut S,
    ) -> Result<(), S::Error> {
        match event {
            Event::Connected(peer) => {
                // A peer on our roster is admitted as it connects (its peer id is what the
                // connection's handshake proved); one that acknowledged our credentials as they
                // are now, on an earlier connection, is not sent them again. An in-sync
                // reconnect is then one exchange, started by the lower peer id.
                let known =
                    self.roster.active(&peer.to_string()).map(|entry| remote_name(entry.till_code.as_str()));
                let mut state = Peer::new();
                state.introduced = known.is_some()
                    && self.introduced.get(&peer.to_string()) == Some(&digest(&self.credentials()));
                let greet = !state.introduced;
                self.peers.insert(peer, state);
                if greet {
                    self.greet(peer);
                }
                if let Some(remote) = known {
                    self.admit_as(peer, remote, storage)?;
                    if self.local < peer {
                        self.reconcile(Some(peer), storage)?;
                    }
                }
                Ok(())
            }
            Event::Disconnected(peer) => {
                let Some(state) = self.peers.remove(&peer) else { return Ok(()) };
                self.publish_peers();
                match state.remote {
                    Some(remote) => storage.save_sync_states(&remote, state.session.encoded_states()),
                    None => Ok(()),
                }
            }
            Event::Request { peer, frame, reply } => self.on_request(now, peer, &frame, reply, storage),
            Event::Response { peer, frame } => {
                if let Some(state) = self.peers.get_mut(&peer) {
                    state.in_flight = state.in_flight.saturating_sub(1);
                    state.introduced = true;
                    if let Some(told) = state.told
                        && state.remote.is_some()
                        && self.introduced.insert(peer.to_string(), told) != Some(told)
                    {
                        storage.save_introductions(&self.introduced)?;
                    }
                }
                if let Some(frame) = decoded(peer, &frame) {
                    self.on_frame(now, peer, frame, true, storage)?;
                }
                self.pump_all(storage)
            }
            Event::RequestFailed(peer) => {
                let Some(state) = self.peers.get_mut(&peer) else { return Ok(()) };
                state.in_flight = state.in_flight.saturating_sub(1);
                if state.remote.is_none() || !state.introduced {
                    // Our greeting may be what was lost: greet again, or neither side ever
                    // admits the other on this connection.
                    self.greet(peer);
                }
                // What waited behind the failed request goes now; what the request carried is
                // found again by the next reconciliation.
                self.pump_all(storage)
            }
            Event::LocalWrites(writes) => self.on_local_writes(&writes, storage),
            Event::Reconcile => self.reconcile(None, storage),
            Event::RosterEntry(entry) => self.merge_roster(vec![entry], storage),
            Event::Stop => self.save_all_states(storage),
        }
    }

    /// Our own entry, then every revocation we know: each peer presents its own entry, so only
    /// revocations need passing on (to peers that were away when they were issued).
    fn credentials(&self) -> Vec<u8> {
        let mut entries = vec![self.own.clone()];
        entries.extend(
            self.roster
                .entries()
                .filter(|entry| entry.entry.revoked && entry.entry.peer_id != self.own.entry.peer_id)
                .cloned(),
        );
        Credentials::encode(entries)
    }

    /// Sends `peer` our credentials, as a request of their own.
    fn greet(&mut self, peer: P) {
        let credentials = self.credentials();
        if let Some(state) = self.peers.get_mut(&peer) {
            state.told = Some(digest(&credentials));
        }
        self.send(peer, &Frame { credentials: Some(credentials), ..Frame::default() }, false);
    }

    fn publish_peers(&mut self) {
        let names = self.admitted();
        self.actions.push(Action::PeersChanged(names));
    }

    fn on_request<S: Storage>(
        &mut self,
        now: Timestamp,
        peer: P,
        bytes: &[u8],
        reply: R,
        storage: &mut S,
    ) -> Result<(), S::Error> {
        let admitted = self.admits(&peer);
        let Some(frame) = decoded(peer, bytes) else {
            self.respond(reply, &Frame::default());
            return Ok(());
        };
        if !admitted {
            match &frame.credentials {
                Some(credentials) => {
                    if !self.admit(peer, credentials, storage)? {
                        return Ok(());
                    }
                }
                None => {
                    let held_max = self.held_max;
                    let state = self.peers.entry(peer).or_insert_with(Peer::new);
                    if state.held.len() >= held_max {
                        tracing::warn!(%peer, "too many frames before admission: blocked");
                        self.block(peer);
                    } else {
                        state.held.push((reply, frame));
                    }
                    return Ok(());
                }
            }
        }
        self.on_frame_and_answer(now, peer, frame, reply, storage)?;
        if !admitted {
            self.release_held(now, peer, storage)?;
        }
        self.pump_all(storage)
    }

    /// The next frame of a peer's session for a request of ours, or for an `answer` (without
    /// our start: [`Session::next_answer`]), or an empty one; whole documents are read from
    /// `storage` as they go in.
    fn next_frame<S: Storage>(&mut self, peer: P, answer: bool, storage: &mut S) -> Result<Frame, S::Error> {
        let Some(state) = self.peers.get_mut(&peer) else { return Ok(Frame::default()) };
        // Documents are queued for admitted peers alone; the remote's name picks the sync
        // states kept for it, which building a frame does not read.
        let remote = state.remote.clone().unwrap_or_default();
        let mut docs = storage.documents(&remote);
        let next = if answer {
            state.session.next_answer(&mut docs)?
        } else {
            state.session.next_frame(&mut docs)?
        };
        let frame = next.unwrap_or_default();
        if !frame.docs.is_empty() {
            state.unconfirmed = true;
            state.fingerprinted = None;
        }
        Ok(frame)
    }

    /// Applies a peer's request and answers it with the next frame of its session; a request
    /// that brought documents is answered with at least our [`receipt`] for them.
    fn on_frame_and_answer<S: Storage>(
        &mut self,
        now: Timestamp,
        peer: P,
        frame: Frame,
        reply: R,
        storage: &mut S,
    ) -> Result<(), S::Error> {
        let brought = !frame.docs.is_empty();
        self.on_frame(now, peer, frame, false, storage)?;
        let mut answer = self.next_frame(peer, true, storage)?;
        if brought && answer.ranges.is_none() && self.admits(&peer) {
            answer.ranges = Some(receipt(storage.index()));
        }
        self.respond(reply, &answer);
        Ok(())
    }

    /// Checks a peer's credentials; admits it or blocks it.
    fn admit<S: Storage>(&mut self, peer: P, credentials: &[u8], storage: &mut S) -> Result<bool, S::Error> {
        let mut entries = Credentials::decode(credentials).into_iter();
        let own = entries.next();
        self.merge_roster(entries.collect(), storage)?;
        let remote = match own {
            Some(own) if own.entry.peer_id == peer.to_string() => self.admitted_as(peer, own),
            _ => None,
        };
        let Some(remote) = remote else {
            tracing::warn!(%peer, "peer is not on the roster: blocked");
            self.block(peer);
            return Ok(false);
        };
        self.admit_as(peer, remote, storage)?;
        self.save_roster(storage)?;
        Ok(true)
    }

    /// Admits a peer as `remote`.
    fn admit_as<S: Storage>(&mut self, peer: P, remote: String, storage: &mut S) -> Result<(), S::Error> {
        tracing::info!(%peer, %remote, "peer admitted");
        self.peers.entry(peer).or_insert_with(Peer::new).remote = Some(remote.clone());
        self.publish_peers();
        storage.register_remote(&remote)
    }

    /// The remote name a peer is admitted as, on its own entry: only if the roster holds an
    /// HQ-signed, unrevoked entry for it.
    fn admitted_as(&mut self, peer: P, own: SignedRosterEntry) -> Option<String> {
        #[cfg(feature = "planted-bugs")]
        if tillmesh_core::planted::planted().skip_admission_check {
            return Some(remote_name(own.entry.till_code.as_str()));
        }
        if let Err(error) = self.roster.merge(own, &self.hq) {
            tracing::warn!(%peer, %error, "peer refused");
        }
        self.roster.active(&peer.to_string()).map(|entry| remote_name(entry.till_code.as_str()))
    }

    /// Answers the frames a newly admitted peer sent before, then starts a reconciliation with
    /// it if ours is the lower peer id (both would only do the same work twice).
    fn release_held<S: Storage>(&mut self, now: Timestamp, peer: P, storage: &mut S) -> Result<(), S::Error> {
        let held = self.peers.get_mut(&peer).map(|state| std::mem::take(&mut state.held)).unwrap_or_default();
        for (reply, frame) in held {
            self.on_frame_and_answer(now, peer, frame, reply, storage)?;
        }
        if self.local < peer {
            self.reconcile(Some(peer), storage)?;
        }
        Ok(())
    }

    /// Merges roster entries; revoked peers are blocked, the news is passed on, and revoked
    /// tills no active device stands for are forgotten as remotes.
    fn merge_roster<S: Storage>(
        &mut self,
        entries: Vec<SignedRosterEntry>,
        storage: &mut S,
    ) -> Result<(), S::Error> {
        let mut changed = false;
        for entry in entries {
            match self.roster.merge(entry, &self.hq) {
                Ok(merged) => changed |= merged,
                Err(error) => tracing::warn!(%error, "roster entry ignored"),
            }
        }
        if !changed {
            return Ok(());
        }
        let revoked: Vec<P> = self
            .peers
            .iter()
            .filter(|(peer, state)| state.remote.is_some() && self.roster.active(&peer.to_string()).is_none())
            .map(|(peer, _)| *peer)
            .collect();
        for peer in revoked {
            tracing::warn!(%peer, "peer revoked: blocked");
            self.block(peer);
        }
        for state in self.peers.values_mut() {
            state.send_roster = true;
        }
        self.pump_all(storage)?;
        self.save_roster(storage)?;
        let gone: Vec<String> = self
            .roster
            .entries()
            .map(|signed| &signed.entry)
            .filter(|entry| entry.revoked && self.roster.holder_of(&entry.till_code).is_none())
            .map(|entry| remote_name(entry.till_code.as_str()))
            .collect();
        if !gone.is_empty() {
            let forgotten = storage.forget_remotes(gone)?;
            if !forgotten.is_empty() {
                tracing::info!(?forgotten, "revoked tills forgotten as remotes");
            }
        }
        Ok(())
    }

    fn save_roster<S: Storage>(&self, storage: &mut S) -> Result<(), S::Error> {
        storage.save_roster(self.roster.entries().cloned().collect())
    }

    fn block(&mut self, peer: P) {
        self.peers.remove(&peer);
        self.publish_peers();
        self.actions.push(Action::Block(peer));
    }

    /// Applies a frame from a peer (`answer`: its answer to a request of ours): roster news, then
    /// (admitted peers only) documents and ranges; marks everything synced when both sides turn
    /// out to hold the same; relays what the peer brought to every other admitted peer.
    fn on_frame<S: Storage>(
        &mut self,
        now: Timestamp,
        peer: P,
        mut frame: Frame,
        answer: bool,
        storage: &mut S,
    ) -> Result<(), S::Error> {
        if let Some(credentials) = frame.credentials.take() {
            self.merge_roster(Credentials::decode(&credentials), storage)?;
            // A peer sends its credentials when it may not hold ours (it lost them, or is of a
            // release that always greets), and then holds what we send until ours arrive: they
            // follow, unless they went on this connection already.
            if self.peers.get(&peer).is_some_and(|state| state.told.is_none()) {
                self.greet(peer);
            }
        }
        if frame.is_empty() {
            return Ok(());
        }
        let Some(state) = self.peers.get_mut(&peer) else { return Ok(()) };
        let Some(remote) = state.remote.clone() else { return Ok(()) };
        // The documents first, stored; then the ranges, against the set they made: a peer's
        // ranges (a push's fingerprint among them) count the documents it sent with them.
        #[cfg(feature = "planted-bugs")]
        let ranges = if tillmesh_core::planted::planted().answer_before_durable {
            // The bug: ranges answered with the documents, before their commit is known.
            None
        } else {
            frame.ranges.take()
        };
        #[cfg(not(feature = "planted-bugs"))]
        let ranges = frame.ranges.take();
        let mut docs = storage.documents(&remote);
        let mut received = take_in(&mut state.session, frame, &mut docs, answer)?;
        let changed = committed::<S>(docs)?;
        if let Some(ranges) = ranges {
            let ranges = Frame { ranges: Some(ranges), ..Frame::default() };
            let mut docs = storage.documents(&remote);
            let answered = take_in(&mut state.session, ranges, &mut docs, answer)?;
            committed::<S>(docs)?;
            received.agreed = answered.agreed;
            received.receipt = answered.receipt;
        }
        tracing::debug!(%peer, documents = changed.len(), "documents received");
        if !received.refused.is_empty() || !received.repeated.is_empty() {
            storage.refused(&remote, received.refused, received.repeated.len(), now)?;
        }
        if let Some(theirs) = received.receipt
            && let Some(state) = self.peers.get_mut(&peer)
            && state.fingerprinted == Some(theirs)
        {
            state.unconfirmed = false;
        }
        if let Some(agreed) = received.agreed
            && storage.index().fingerprint(&Bound::min(), &Bound::Max) == agreed
        {
            storage.mark_synced(&remote, now)?;
            if let Some(state) = self.peers.get_mut(&peer) {
                state.unconfirmed = false;
                state.confirms_left = CONFIRMS_WITHOUT_AGREEMENT;
                // A receipt that agrees though no fingerprint of ours asked for it (our last
                // frame of documents carried none, or another set's): its giver does not know
                // we agree, and would keep its documents pending until the timer's round. Unless
                // the session echoes it already, a start of ours (which it echoes) tells it.
                if received.receipt == Some(agreed)
                    && state.fingerprinted != Some(agreed)
                    && !state.session.has_outgoing()
                {
                    state.session.start_reconcile(storage.index());
                }
            }
        }
        #[cfg(feature = "planted-bugs")]
        if tillmesh_core::planted::planted().drop_relay {
            return Ok(());
        }
        for (other, state) in &mut self.peers {
            if *other == peer {
                continue;
            }
            let Some(remote) = state.remote.clone() else { continue };
            let mut docs = storage.documents(&remote);
            for id in &changed {
                state.session.push_change(*id, &mut docs)?;
            }
            state.pushing |= !changed.is_empty();
        }
        Ok(())
    }

    /// Pushes the writes `storage` kept since the last step, first thing in a step (see
    /// [`Storage::take_local_writes`]); reconciles with every peer if it dropped some.
    fn take_local_writes<S: Storage>(&mut self, storage: &mut S) -> Result<(), S::Error> {
        let kept = storage.take_local_writes();
        if !kept.writes.is_empty() {
            self.on_local_writes(&kept.writes, storage)?;
        }
        if kept.dropped {
            tracing::warn!("local writes came faster than the sync driver took them: reconciling instead");
            self.reconcile(None, storage)?;
        }
        Ok(())
    }

    /// Pushes local writes to every admitted peer.
    fn on_local_writes<S: Storage>(
        &mut self,
        writes: &[LocalWrite],
        storage: &mut S,
    ) -> Result<(), S::Error> {
        for state in self.peers.values_mut() {
            let Some(remote) = state.remote.clone() else { continue };
            let mut docs = storage.documents(&remote);
            for write in writes {
                if write.created {
                    state.session.push_new(write.id);
                } else {
                    state.session.push_change(write.id, &mut docs)?;
                }
            }
            state.pushing |= !writes.is_empty();
        }
        self.pump_all(storage)
    }

    /// Starts a reconciliation with one peer, or with every admitted peer.
    fn reconcile<S: Storage>(&mut self, only: Option<P>, storage: &mut S) -> Result<(), S::Error> {
        for (peer, state) in &mut self.peers {
            if state.remote.is_some() && only.is_none_or(|only| only == *peer) {
                state.session.start_reconcile(storage.index());
            }
        }
        self.pump_all(storage)
    }

    /// Starts a reconciliation with every peer we sent documents to and have not agreed with
    /// since, once that exchange is over (nothing in flight, nothing left to send). Agreement is
    /// what marks documents synced; left to the timer, what was sent would count as pending for
    /// a whole interval after the peer had it.
    fn confirm_sent<S: Storage>(&mut self, storage: &mut S) -> Result<(), S::Error> {
        let mut started = false;
        for state in self.peers.values_mut() {
            if state.unconfirmed
                && state.remote.is_some()
                && state.in_flight == 0
                && !state.session.has_outgoing()
            {
                state.unconfirmed = false;
                if state.confirms_left > 0 {
                    state.confirms_left -= 1;
                    state.session.start_reconcile(storage.index());
                    started = true;
                }
            }
        }
        if started {
            self.pump_all(storage)?;
        }
        Ok(())
    }

    /// Sends the next frame to every admitted peer that may have one now ([`Peer::may_send`]),
    /// and goes on while it may: frames of documents alone follow one another. A frame of documents
    /// alone may carry our whole-set fingerprint (`index`'s, taken with the documents; see
    /// [`Peer::fingerprints_next`]): a peer that holds the same once it has stored them agrees
    /// on the spot and says so in its answer, so both sides mark everything synced in the one
    /// exchange; one that holds another set answers with the differences.
    fn pump_all<S: Storage>(&mut self, storage: &mut S) -> Result<(), S::Error> {
        let mut credentials: Option<Vec<u8>> = None;
        loop {
            let Some(peer) = self.peers.iter().find(|(_, state)| state.may_send()).map(|(peer, _)| *peer)
            else {
                return Ok(());
            };
            let with_credentials =
                self.peers.get(&peer).is_some_and(|state| state.send_roster || !state.introduced);
            let mut frame = self.next_frame(peer, false, storage)?;
            if frame.is_empty() && !with_credentials {
                // Only documents gone since they were queued: nothing to send.
                continue;
            }
            let index = storage.index();
            let documents_alone = !with_credentials && !frame.docs.is_empty() && frame.ranges.is_none();
            if documents_alone
                && let Some(state) = self.peers.get_mut(&peer)
                && state.fingerprints_next(&frame)
            {
                state.fingerprinted = Some(index.fingerprint(&Bound::min(), &Bound::Max));
                frame.ranges = Some(receipt(index));
            }
            if with_credentials {
                frame.credentials = Some(credentials.get_or_insert_with(|| self.credentials()).clone());
            }
            if let Some(state) = self.peers.get_mut(&peer) {
                state.send_roster = false;
                if let Some(credentials) = &frame.credentials {
                    state.told = Some(digest(credentials));
                }
            }
            self.send(peer, &frame, documents_alone);
        }
    }

    /// Sends a request; `documents_alone` when it is a frame of documents without a range list
    /// of its own (a fingerprint added for agreement aside) and without credentials.
    fn send(&mut self, peer: P, frame: &Frame, documents_alone: bool) {
        if let Some(state) = self.peers.get_mut(&peer) {
            state.documents_in_flight =
                documents_alone && (state.in_flight == 0 || state.documents_in_flight);
            state.in_flight = state.in_flight.saturating_add(1);
        }
        let bytes = encode(frame);
        trace_frame("request", peer, frame, bytes.len());
        self.actions.push(Action::Send { peer, frame: bytes });
    }

    fn respond(&mut self, reply: R, frame: &Frame) {
        let bytes = encode(frame);
        tracing::debug!(
            bytes = bytes.len(),
            ranges = frame.ranges.as_ref().map_or(0, Vec::len),
            docs = frame.docs.len(),
            "response"
        );
        self.actions.push(Action::Respond { reply, frame: bytes });
    }

    /// Keeps every admitted peer's session states, as when each disconnects (the node stops).
    fn save_all_states<S: Storage>(&mut self, storage: &mut S) -> Result<(), S::Error> {
        let mut first_error = None;
        for (_, peer) in std::mem::take(&mut self.peers) {
            if let Some(remote) = peer.remote
                && let Err(error) = storage.save_sync_states(&remote, peer.session.encoded_states())
            {
                tracing::warn!(%remote, %error, "cannot keep a session's sync states");
                first_error.get_or_insert(error);
            }
        }
        self.publish_peers();
        first_error.map_or(Ok(()), Err)
    }
}

/// Takes a peer's frame into its session: its answer to a request of ours (`answer`), or a
/// request of its own.
fn take_in<D: Documents>(
    session: &mut Session,
    frame: Frame,
    docs: &mut D,
    answer: bool,
) -> Result<Received, D::Error> {
    if answer { session.receive_answer(frame, docs) } else { session.receive(frame, docs) }
}

/// Commits what a peer's frame brought: the documents it changed, or the store's error (the
/// step then answers nothing).
fn committed<S: Storage>(docs: S::Docs<'_>) -> Result<Vec<DocId>, S::Error> {
    match S::commit(docs) {
        Ok(changed) => Ok(changed),
        #[cfg(feature = "planted-bugs")]
        Err(_) if tillmesh_core::planted::planted().answer_before_durable => Ok(Vec::new()),
        Err(error) => Err(error),
    }
}

/// A peer's frame, or `None` (logged) when it does not decode.
fn decoded<P: Display>(peer: P, bytes: &[u8]) -> Option<Frame> {
    match decode(bytes) {
        Ok(frame) => Some(frame),
        Err(error) => {
            tracing::warn!(%peer, %error, "malformed frame ignored");
            None
        }
    }
}

/// Logs a frame at debug level: what it carries and its size.
fn trace_frame<P: Display>(kind: &str, peer: P, frame: &Frame, bytes: usize) {
    tracing::debug!(
        kind,
        %peer,
        bytes,
        ranges = frame.ranges.as_ref().map_or(0, Vec::len),
        docs = frame.docs.len(),
        credentials = frame.credentials.as_ref().map_or(0, Vec::len),
        "frame"
    );
}
