//! One simulated peer (a till or HQ): its durable documents, order counter, roster and sync
//! states, which survive a crash, and its volatile state — the mesh core (sessions, admitted
//! peers) and the Automerge actor — which does not.

use std::collections::BTreeMap;
use std::fmt;

use automerge::{ActorId, AutoCommit};
use tillmesh_core::{Document, HqPublicKey, SignedRosterEntry, TillCode, Timestamp};
use tillmesh_mesh::{Action, CoreConfig, Event, Introductions, MeshCore};
use tillmesh_sync::{DocId, MemoryDocuments, Verdict};

use crate::clock::SimClock;
use crate::storage::{Effects, SavedStates, SimStorage};

/// Frames a peer may send before it is admitted (the node's default).
const HELD_FRAMES_MAX: usize = 64;

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A till: takes orders and payments.
    Till,
    /// HQ: settles payments with its signing key.
    Hq,
}

/// A node as the mesh names it; its roster entry's peer id is `sim-<index>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Peer(pub(crate) usize);

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sim-{}", self.0)
    }
}

/// Where the answer to a request goes: the requester, the request's number, the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) requester: usize,
    pub(crate) number: u64,
    pub(crate) connection: u64,
}

/// The mesh core as the simulator runs it.
pub(crate) type SimCore = MeshCore<Peer, Reply>;

/// What one step of a node's core did.
#[derive(Debug)]
pub(crate) struct Stepped {
    /// The actions, to carry out.
    pub(crate) actions: Vec<Action<Peer, Reply>>,
    /// What it did to the storage.
    pub(crate) effects: Effects,
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
    /// `till-A`, …, `hq`: written into every change the node makes, and its remote name.
    pub(crate) device_id: String,
    /// Durable: every document the node holds. A local write counts as acknowledged once here.
    pub(crate) docs: MemoryDocuments,
    /// Durable: the last order sequence number used, so a restarted till never reuses one.
    pub(crate) order_seq: u64,
    /// Durable: its own HQ-signed roster entry.
    pub(crate) own_entry: SignedRosterEntry,
    /// Durable: the roster entries it knows.
    pub(crate) roster: Vec<SignedRosterEntry>,
    /// Durable: what each peer acknowledged of its credentials.
    pub(crate) introduced: Introductions,
    /// Durable: per remote, the Automerge sync states of the last session that ended cleanly.
    pub(crate) sync_states: BTreeMap<String, SavedStates>,
    /// How far this node's clock is off, in milliseconds.
    pub(crate) skew_ms: i64,
    /// Volatile: the Automerge actor of this process run; fresh after every restart so that no
    /// two runs write changes under one actor.
    pub(crate) actor: ActorId,
    /// Volatile: the mesh core; `None` while the node is down.
    pub(crate) core: Option<SimCore>,
    /// While down: the tick it restarts.
    pub(crate) restart_tick: u64,
}

impl Node {
    /// A node that is up, with its roster and no connections yet.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        index: usize,
        role: Role,
        till_code: TillCode,
        own_entry: SignedRosterEntry,
        roster: Vec<SignedRosterEntry>,
        skew_ms: i64,
        actor: ActorId,
        hq: &HqPublicKey,
    ) -> Node {
        let device_id = match role {
            Role::Till => format!("till-{}", till_code.as_str()),
            Role::Hq => "hq".to_string(),
        };
        let mut node = Node {
            role,
            till_code,
            device_id,
            docs: MemoryDocuments::with_validator(validate),
            order_seq: 0,
            own_entry,
            roster,
            introduced: Introductions::new(),
            sync_states: BTreeMap::new(),
            skew_ms,
            actor,
            core: None,
            restart_tick: 0,
        };
        node.start(index, hq);
        node
    }

    /// Whether the node is running.
    pub(crate) fn up(&self) -> bool {
        self.core.is_some()
    }

    /// The time this node's clock reads now.
    pub(crate) fn now(&self, clock: &SimClock) -> Timestamp {
        clock.time_with_skew(self.skew_ms)
    }

    /// Starts the process: a new core from the durable roster.
    fn start(&mut self, index: usize, hq: &HqPublicKey) {
        self.core = Some(MeshCore::new(CoreConfig {
            local: Peer(index),
            hq: *hq,
            own_entry: self.own_entry.clone(),
            roster: self.roster.clone(),
            held_frames_max: HELD_FRAMES_MAX,
            introduced: self.introduced.clone(),
        }));
    }

    /// Kills the process: the core and everything queued in it are gone; documents, the order
    /// counter, the roster and the saved sync states stay.
    pub(crate) fn crash(&mut self, restart_tick: u64) {
        self.core = None;
        self.restart_tick = restart_tick;
    }

    /// Starts the process again with a fresh actor.
    pub(crate) fn restart(&mut self, index: usize, actor: ActorId, hq: &HqPublicKey) {
        self.actor = actor;
        self.start(index, hq);
    }

    /// Runs one event through the core against the node's durable state (`failing`: its writes
    /// fail). `None` while the node is down.
    pub(crate) fn step(
        &mut self,
        now: Timestamp,
        event: Event<Peer, Reply>,
        failing: bool,
    ) -> Option<Stepped> {
        let core = self.core.as_mut()?;
        let mut storage = SimStorage {
            docs: &mut self.docs,
            states: &mut self.sync_states,
            roster: &mut self.roster,
            introduced: &mut self.introduced,
            failing,
            effects: Effects::default(),
        };
        let step = core.handle(now, event, &mut storage);
        Some(Stepped { actions: step.actions, effects: storage.effects })
    }

    /// A copy of a held document that writes as this node's current actor.
    pub(crate) fn writable(&self, id: &DocId) -> Option<AutoCommit> {
        self.docs.get(id).map(|doc| doc.clone().with_actor(self.actor.clone()))
    }

    /// Whether the core has something to send.
    pub(crate) fn has_outgoing(&self) -> bool {
        self.core.as_ref().is_some_and(SimCore::has_outgoing)
    }
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
    fn peers_are_named_as_their_roster_entries() {
        assert_eq!(Peer(3).to_string(), "sim-3");
        assert!(Peer(2) < Peer(10));
    }

    #[test]
    fn validator_refuses_foreign_documents() {
        let mut plain = AutoCommit::new();
        plain.put(automerge::ROOT, "n", 1).expect("put");
        assert!(validate(uuid::Uuid::from_u128(1), &plain).is_err());
    }
}
