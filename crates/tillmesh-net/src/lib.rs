//! The libp2p driver of a tillmesh peer: TCP with the shop key as a private network (pnet), noise,
//! yamux; mDNS discovery and static peers with an address book and re-dial backoff; frames
//! over one long-lived stream per peer and direction (request-response for peers without it).
//! It knows nothing of documents: the node gives it frames to send and gets back the frames
//! that arrive.
//!
//! Built as a client and an event loop (libp2p's file-sharing example): [`spawn`] starts the loop
//! that owns the swarm; [`NetClient`] sends it commands; [`NetEvent`]s come out of a channel.
//! The loop ends when every client is dropped.
//!
//! # Layout
//! - [`codec`]: length-prefixed frames with a size limit, zstd-compressed with a shipped
//!   dictionary (or raw, for the first release's nodes).
//! - [`event`]: what the network tells the node ([`NetEvent`]), where an answer goes ([`Reply`]).
//! - [`event_loop`]: the swarm, dialing rules, the address book, each peer's route.
//! - `streams`: the tasks of the long-lived streams (requests out, answers back in order).

pub mod codec;
pub mod event;
pub mod event_loop;
mod streams;

pub use event::{NetEvent, Reply};
pub use event_loop::{NetClient, NetConfig, NetError, spawn};
pub use libp2p::identity::Keypair;
pub use libp2p::{Multiaddr, PeerId, multiaddr};
