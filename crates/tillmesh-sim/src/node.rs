//! One simulated peer (a till or HQ): its durable documents and order counter, which survive a
//! crash, and its volatile state (sessions, Automerge actor), which does not.

use std::collections::BTreeMap;

use automerge::{ActorId, AutoCommit};
use tillmesh_core::{Document, TillCode, Timestamp};
use tillmesh_sync::{DocId, Frame, MemoryDocuments, Session, Verdict};

use crate::clock::SimClock;
use crate::peer_docs::{PeerDocuments, SavedStates};

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A till: takes orders and payments.
    Till,
    /// HQ: settles payments with its signing key.
    Hq,
}

/// Accepts only readable tillmesh documents whose header id is the id they are stored under,
/// as a real node's store does.
pub(crate) fn validate(id: DocId, doc: &AutoCommit) -> Verdict {
    match Document::from_automerge(doc.clone()) {
        Ok(document) if document.id() == id => Ok(()),
        Ok(document) => Err(format!("document header says {}, stored as {id}", document.id())),
        Err(error) => Err(format!("not a tillmesh document: {error}")),
    }
}

/// One peer.
#[derive(Debug)]
pub(crate) struct Node {
    /// Till or HQ.
    pub(crate) role: Role,
    /// `A`, `B`, … or `HQ`: unique in the shop, the prefix of the till's order numbers.
    pub(crate) till_code: TillCode,
    /// `till-A`, …, `hq`: written into every change the node makes.
    pub(crate) device_id: String,
    /// Durable: every document the node holds. A local write counts as acknowledged once here.
    pub(crate) docs: MemoryDocuments,
    /// Durable: the last order sequence number used, so a restarted till never reuses one.
    pub(crate) order_seq: u64,
    /// How far this node's clock is off, in milliseconds.
    pub(crate) skew_ms: i64,
    /// Volatile: the Automerge actor of this process run; fresh after every restart so that no
    /// two runs write changes under one actor.
    pub(crate) actor: ActorId,
    /// Volatile: counts restarts; frames addressed to or sent by an older incarnation are lost.
    pub(crate) incarnation: u64,
    /// Whether the node is running.
    pub(crate) up: bool,
    /// While down: the tick it restarts.
    pub(crate) restart_tick: u64,
    /// Volatile: one sync session per other node, by node index.
    pub(crate) sessions: BTreeMap<usize, Session>,
    /// Durable: per peer, the Automerge sync states of the last session that ended cleanly.
    pub(crate) sync_states: BTreeMap<usize, SavedStates>,
}

impl Node {
    /// A node that starts up with sessions to every other node in `0..nodes`.
    pub(crate) fn new(
        index: usize,
        nodes: usize,
        role: Role,
        till_code: TillCode,
        skew_ms: i64,
        actor: ActorId,
    ) -> Node {
        let device_id = match role {
            Role::Till => format!("till-{}", till_code.as_str()),
            Role::Hq => "hq".to_string(),
        };
        Node {
            role,
            till_code,
            device_id,
            docs: MemoryDocuments::with_validator(validate),
            order_seq: 0,
            skew_ms,
            actor,
            incarnation: 0,
            up: true,
            restart_tick: 0,
            sessions: fresh_sessions(index, nodes),
            sync_states: BTreeMap::new(),
        }
    }

    /// The time this node's clock reads now.
    pub(crate) fn now(&self, clock: &SimClock) -> Timestamp {
        clock.time_with_skew(self.skew_ms)
    }

    /// Kills the process: sessions and everything queued in them are gone; documents and the
    /// order counter stay.
    pub(crate) fn crash(&mut self, restart_tick: u64) {
        self.up = false;
        self.restart_tick = restart_tick;
        self.sessions.clear();
    }

    /// Starts the process again with a fresh actor and new sessions to every other node.
    pub(crate) fn restart(&mut self, index: usize, nodes: usize, actor: ActorId) {
        self.up = true;
        self.incarnation += 1;
        self.actor = actor;
        self.sessions = fresh_sessions(index, nodes);
    }

    /// Ends the session with `peer` cleanly (its connection closed: the peer crashed or came
    /// back), saving its sync states, and opens a new one for the next connection.
    pub(crate) fn reset_session(&mut self, peer: usize) {
        if !self.up {
            return;
        }
        if let Some(old) = self.sessions.insert(peer, Session::new()) {
            self.sync_states.entry(peer).or_default().extend(old.encoded_states());
        }
    }

    /// The session with `peer` and this node's documents as that session sees them.
    pub(crate) fn session_with(&mut self, peer: usize) -> Option<(&mut Session, PeerDocuments<'_>)> {
        let session = self.sessions.get_mut(&peer)?;
        Some((session, PeerDocuments::new(&mut self.docs, self.sync_states.get(&peer))))
    }

    /// A copy of a held document that writes as this node's current actor.
    pub(crate) fn writable(&self, id: &DocId) -> Option<AutoCommit> {
        self.docs.get(id).map(|doc| doc.clone().with_actor(self.actor.clone()))
    }

    /// Takes every frame waiting in the sessions' outboxes, peer by peer.
    pub(crate) fn drain_outboxes(&mut self) -> Vec<(usize, Frame)> {
        let mut frames = Vec::new();
        for (peer, session) in &mut self.sessions {
            while let Some(frame) = session.next_frame() {
                frames.push((*peer, frame));
            }
        }
        frames
    }

    /// Whether any session has something to send.
    pub(crate) fn has_outgoing(&self) -> bool {
        self.sessions.values().any(Session::has_outgoing)
    }
}

fn fresh_sessions(index: usize, nodes: usize) -> BTreeMap<usize, Session> {
    (0..nodes).filter(|peer| *peer != index).map(|peer| (peer, Session::new())).collect()
}

/// The till code of the `index`-th till: `A` to `Z`, then `T27`, `T28`, …
pub(crate) fn till_code_text(index: usize) -> String {
    match u8::try_from(index) {
        Ok(small) if small < 26 => char::from(b'A' + small).to_string(),
        _ => format!("T{}", index + 1),
    }
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;

    use super::*;

    #[test]
    fn till_codes_are_valid_and_distinct() {
        let codes: Vec<String> = (0..64).map(till_code_text).collect();
        for code in &codes {
            assert!(TillCode::parse(code).is_ok(), "{code}");
        }
        let distinct: std::collections::BTreeSet<&String> = codes.iter().collect();
        assert_eq!(distinct.len(), codes.len());
        assert_eq!(codes[0], "A");
        assert_eq!(codes[26], "T27");
    }

    #[test]
    fn validator_refuses_foreign_documents() {
        let mut plain = AutoCommit::new();
        plain.put(automerge::ROOT, "n", 1).expect("put");
        assert!(validate(uuid::Uuid::from_u128(1), &plain).is_err());
    }
}
