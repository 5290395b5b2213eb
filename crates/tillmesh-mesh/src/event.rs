//! What happens to a peer ([`Event`]) and what it does about it ([`Action`]).

use tillmesh_core::SignedRosterEntry;
use tillmesh_sync::DocId;

/// A document written on this node, to push to the peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalWrite {
    /// The document.
    pub id: DocId,
    /// Whether the write created it (no peer can have it yet: it is sent whole).
    pub created: bool,
}

/// This node's own writes a storage kept for the core between its steps
/// ([`crate::Storage::take_local_writes`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeptWrites {
    /// The writes, in the order made.
    pub writes: Vec<LocalWrite>,
    /// Whether more were made than the storage keeps, and some were dropped: the core then
    /// reconciles with every peer, which finds them.
    pub dropped: bool,
}

/// Something that happened, for [`crate::MeshCore::handle`]. `P` names a peer (libp2p's peer id,
/// or the simulator's node), `R` is where the answer to a request goes.
#[derive(Debug)]
pub enum Event<P, R> {
    /// A connection to a peer is up: it is greeted with our credentials.
    Connected(P),
    /// The last connection to a peer is gone.
    Disconnected(P),
    /// A peer sent a frame (encoded); answer it through `reply`.
    Request {
        /// Who sent it.
        peer: P,
        /// The encoded frame.
        frame: Vec<u8>,
        /// Where the answer goes.
        reply: R,
    },
    /// A peer answered our request (encoded frame).
    Response {
        /// Who answered.
        peer: P,
        /// The encoded frame.
        frame: Vec<u8>,
    },
    /// Our request to a peer got no answer (timeout, connection closed, refused).
    RequestFailed(P),
    /// Documents written here, to push to every admitted peer (with those the storage holds:
    /// [`crate::Storage::take_local_writes`]).
    LocalWrites(Vec<LocalWrite>),
    /// Time to reconcile with every admitted peer (anti-entropy), or asked for now.
    Reconcile,
    /// A signed roster entry from the operator (a revocation, a new till): applied, passed on.
    RosterEntry(SignedRosterEntry),
    /// The node stops: every session's sync states are kept for the next session.
    Stop,
}

/// What the I/O shell must do, in order, once the step's writes are durable.
#[derive(Debug)]
pub enum Action<P, R> {
    /// Send a request (an encoded frame) to a peer.
    Send {
        /// To whom.
        peer: P,
        /// The encoded frame.
        frame: Vec<u8>,
    },
    /// Answer a request.
    Respond {
        /// The request's reply handle.
        reply: R,
        /// The encoded frame.
        frame: Vec<u8>,
    },
    /// Close every connection to a peer and refuse new ones (not on the roster, revoked, or
    /// flooding before admission).
    Block(P),
    /// The admitted peers changed: their remote names now (`till-B`, `hq`).
    PeersChanged(Vec<String>),
}

/// What one [`crate::MeshCore::handle`] call did: the actions to carry out once durable, and the
/// storage failure that cut it short, if one did (its answers are then left out: a request whose
/// documents were not kept must not be answered as if they were).
#[derive(Debug)]
pub struct Step<P, R, E> {
    /// What to do, in order.
    pub actions: Vec<Action<P, R>>,
    /// The storage failure met, if any.
    pub failed: Option<E>,
}
