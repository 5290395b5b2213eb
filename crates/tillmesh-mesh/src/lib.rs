//! A tillmesh peer's whole behaviour in its shop's mesh, sans-IO: the code that runs in shops and
//! the code the simulator checks are this one state machine.
//!
//! [`MeshCore`] takes [`Event`]s — a peer connected or went away, a frame arrived, a request of
//! ours failed, local writes, the anti-entropy timer, a roster entry — and returns [`Action`]s:
//! send a frame, answer a request, block a peer, the admitted peers changed. It reads and writes
//! the node's documents and bookkeeping through [`Storage`], synchronously, and reads no clock,
//! opens no socket and spawns nothing. `tillmesh-node`'s driver is its I/O shell (libp2p, the
//! sled store through the writer thread, tokio timers); `tillmesh-sim` drives it with simulated
//! network, time and storage.
//!
//! What the core decides:
//! - **Admission**: a peer is admitted once it presents an HQ-signed, unrevoked roster entry for
//!   its own peer id, or as it connects when the roster holds one already; frames it sends before
//!   are held (up to a bound, then it is blocked); a peer presenting anything else is blocked.
//!   Our own credentials go to every peer that has not acknowledged them as they are now
//!   ([`Introductions`]), and to any peer that sends its own.
//! - **Roster and revocation**: entries arrive from the operator ([`Event::RosterEntry`]) and
//!   from peers (every frame may carry revocations); a revoked peer is blocked at once, and a
//!   revoked till whose code no active device holds is forgotten as a sync remote.
//! - **Relay**: documents one peer brings are pushed to every other admitted peer.
//! - **Flow control**: one request in flight per peer, two when both are frames of documents
//!   alone; the next frame waits for an answer.
//! - **Anti-entropy**: a reconciliation with every peer on each [`Event::Reconcile`], and with a
//!   newly admitted peer by the side with the lower peer id.
//! - **Marking synced**: when a reconciliation shows both sides hold the same documents, every
//!   document is marked synced with that peer.
//! - **Durability before answers**: actions are to be carried out only once what the step wrote
//!   is durable; a step whose storage failed answers nothing and starts its sessions afresh.
//!
//! # Layout
//! - [`storage`]: [`Storage`], what the core needs of the node's store, and [`Unavailable`].
//! - [`event`]: [`Event`], [`Action`], [`LocalWrite`], [`Step`].
//! - [`machine`]: the state machine, [`MeshCore`].
//! - `credentials`: what a peer presents, and remote names.
//!
//! With the feature `planted-bugs` (tests only), `tillmesh_core::planted` switches plant known
//! bugs here (a dropped relay, a skipped admission check, an answer before durability) for the
//! simulator's tests that show each is caught.

pub mod event;
pub mod machine;
pub mod storage;

mod credentials;

pub use credentials::{Introductions, remote_name};
pub use event::{Action, Event, KeptWrites, LocalWrite, Step};
pub use machine::{CoreConfig, MeshCore};
pub use storage::{Storage, Unavailable};
